#pragma once

/* HTTP client requests driven by the event loop: libcurl's multi interface
 * with every curl socket registered as a loop source and curl's timeout on one
 * timerfd. Used for the Docker Engine API on its unix socket and for reports
 * pushed to http, https or unix-socket URLs.
 *
 * Every request ends in exactly one on_done call, unless it is cancelled
 * first. Callbacks run from the loop, never from inside http_request_start(),
 * and may start and cancel requests (their own included). */

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct http_multi;
struct http_request;

/* Default bound on a buffered response body. */
#define HTTP_RESPONSE_SIZE_DEFAULT (4U * 1024U * 1024U)

struct http_result {
        long status;   /* HTTP status code, 0 when no response arrived */
        int curl_code; /* CURLcode, CURLE_OK (0) when the transfer completed */
        int os_errno;  /* errno of a failed connect() or socket call, else 0 */
        /* Error message of a failed transfer, NULL when curl_code is 0. A
         * status of 400 or more is no failure here, so check status too. */
        const char *error;
        /* The response body, NUL-terminated (an empty string when none).
         * For a streamed 2xx response this is empty: on_data got the body. */
        const char *body;
        size_t body_size;
};

struct http_request_options {
        const char *url;         /* http:// or https:// */
        const char *unix_socket; /* connect to this unix socket instead of the URL's host */
        const char *method;      /* NULL or "GET", "HEAD", "POST", "PUT", "DELETE", ... */
        const char *body;        /* copied; sent with POST and PUT */
        size_t body_size;        /* 0 means strlen(body) */
        const char *content_type;
        long timeout_ms;          /* whole transfer, 0 for none */
        size_t max_response_size; /* bound on the buffered body, 0 for the default */
        const char *ca_file;      /* CA bundle for https, NULL for the system's */

        /* Streaming: when set, each piece of a 2xx response body is handed
         * to on_data as it arrives and is not buffered. A negative return
         * aborts the transfer, and on_done then reports the failure.
         * The body of any other status is buffered for on_done as usual,
         * so that an error message can be read. */
        int (*on_data)(void *userdata, const char *data, size_t size);
        /* Called once when the transfer ends; result and its strings are
         * valid only during the call. The request is freed right after it
         * returns. May be NULL. */
        void (*on_done)(void *userdata, const struct http_result *result);
        void *userdata;
};

/* Create a multi handle whose sockets and timer live in loop. Initialises
 * libcurl globally on first use. */
int http_multi_new(struct loop *loop, struct http_multi **ret_multi);
/* Cancel every request without calling on_done, then free. Must not be
 * called from a request's callback. */
void http_multi_free(struct http_multi *multi);

/* Start a request. The options' strings are copied. Returns 0 and, when
 * ret_request is not NULL, a handle that stays valid until on_done returns
 * or http_request_cancel() is called. */
int http_request_start(struct http_multi *multi, const struct http_request_options *options,
                       struct http_request **ret_request);
/* Abort the request and free it; neither on_data nor on_done is called after
 * this. Cancelling from inside the request's own on_done does nothing, because
 * the request is freed when on_done returns. NULL is ignored. */
void http_request_cancel(struct http_request *request);

/* Number of requests started and not yet done or cancelled. */
size_t http_multi_active(const struct http_multi *multi);
