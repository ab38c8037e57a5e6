#include "supervisor/http.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "supervisor/log.h"
#include "supervisor/loop.h"
#include "supervisor/util.h"

/* libcurl rejects curl_multi_add_handle() and curl_multi_remove_handle()
 * while it runs one of its callbacks (CURLM_RECURSIVE_API_CALL). A request
 * started or cancelled from on_data therefore waits in one of these states
 * until curl_multi_socket_action() has returned. */
enum request_state {
        REQUEST_PENDING_ADD, /* started inside a curl callback, not yet added */
        REQUEST_ADD_FAILED,  /* curl_multi_add_handle() failed after the deferral */
        REQUEST_ACTIVE,      /* added to the multi handle */
        REQUEST_CANCELLED,   /* cancelled inside a curl callback, not yet removed */
        REQUEST_COMPLETING,  /* on_done is running */
};

struct http_request {
        struct http_multi *multi;
        CURL *easy;
        struct curl_slist *headers;
        enum request_state state;
        int add_error; /* CURLMcode of a failed deferred add */

        char *body;
        size_t body_size;
        size_t body_allocated;
        size_t max_response_size;

        bool status_checked; /* the status has been read at the first body byte */
        bool streaming;      /* a 2xx response body goes to on_data */
        char *failure;       /* why the write callback aborted the transfer */
        char error[CURL_ERROR_SIZE];

        int (*on_data)(void *userdata, const char *data, size_t size);
        void (*on_done)(void *userdata, const struct http_result *result);
        void *userdata;

        struct http_request *previous;
        struct http_request *next;
};

/* One socket that curl requested to be watched. */
struct http_socket {
        struct loop_source source;
        struct http_multi *multi;
        struct http_socket *previous;
        struct http_socket *next;
};

struct http_multi {
        struct loop *loop;
        CURLM *curl;
        struct loop_timer timer;
        bool inside_curl; /* curl_multi_socket_action() is on the stack */

        struct http_request *requests;
        struct http_socket *sockets;
};

static bool curl_initialized;

static struct http_multi *multi_from_timer(struct loop_timer *timer)
{
        return (struct http_multi *)((char *)timer - offsetof(struct http_multi, timer));
}

static void request_link(struct http_multi *multi, struct http_request *request)
{
        request->next = multi->requests;
        if (multi->requests)
                multi->requests->previous = request;
        multi->requests = request;
}

static void request_free(struct http_request *request)
{
        struct http_multi *multi = request->multi;

        if (request->previous)
                request->previous->next = request->next;
        else
                multi->requests = request->next;
        if (request->next)
                request->next->previous = request->previous;

        curl_easy_cleanup(request->easy);
        curl_slist_free_all(request->headers);
        free(request->body);
        free(request->failure);
        free(request);
}

static void socket_unlink(struct http_socket *s)
{
        struct http_multi *multi = s->multi;

        loop_remove(multi->loop, &s->source);
        if (s->previous)
                s->previous->next = s->next;
        else
                multi->sockets = s->next;
        if (s->next)
                s->next->previous = s->previous;
        free(s);
}

static void multi_complete(struct http_multi *multi, struct http_request *request, CURLcode code)
{
        struct http_result result = {.curl_code = (int)code};
        long os_errno = 0;

        if (request->state == REQUEST_ACTIVE)
                curl_multi_remove_handle(multi->curl, request->easy);
        request->state = REQUEST_COMPLETING;

        curl_easy_getinfo(request->easy, CURLINFO_RESPONSE_CODE, &result.status);
        if (code != CURLE_OK) {
                if (request->failure)
                        result.error = request->failure;
                else if (request->error[0])
                        result.error = request->error;
                else
                        result.error = curl_easy_strerror(code);
                curl_easy_getinfo(request->easy, CURLINFO_OS_ERRNO, &os_errno);
                result.os_errno = (int)os_errno;
        }
        result.body = request->body ? request->body : "";
        result.body_size = request->body_size;

        if (request->on_done)
                request->on_done(request->userdata, &result);
        request_free(request);
}

/* Carry out what callbacks requested while curl was running. No user
 * callback runs here, so the list cannot change under the walk. */
static void multi_flush_deferred(struct http_multi *multi)
{
        struct http_request *next;

        for (struct http_request *r = multi->requests; r; r = next) {
                next = r->next;

                if (r->state == REQUEST_CANCELLED) {
                        curl_multi_remove_handle(multi->curl, r->easy);
                        request_free(r);
                } else if (r->state == REQUEST_PENDING_ADD) {
                        CURLMcode mc = curl_multi_add_handle(multi->curl, r->easy);

                        if (mc == CURLM_OK) {
                                r->state = REQUEST_ACTIVE;
                        } else {
                                r->state = REQUEST_ADD_FAILED;
                                r->add_error = (int)mc;
                        }
                }
        }
}

static struct http_request *multi_find_add_failed(struct http_multi *multi)
{
        for (struct http_request *r = multi->requests; r; r = r->next)
                if (r->state == REQUEST_ADD_FAILED)
                        return r;
        return NULL;
}

/* Report finished transfers. on_done may start and cancel requests, which
 * curl allows here because none of its functions is on the stack. */
static void multi_process_completions(struct http_multi *multi)
{
        struct http_request *request;
        CURLMsg *message;
        int queued;

        while ((request = multi_find_add_failed(multi))) {
                request->failure = xasprintf("adding the transfer failed: %s",
                                             curl_multi_strerror(request->add_error));
                multi_complete(multi, request, CURLE_FAILED_INIT);
        }

        while ((message = curl_multi_info_read(multi->curl, &queued))) {
                CURLcode code = message->data.result;
                char *private = NULL;

                if (message->msg != CURLMSG_DONE)
                        continue;

                curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &private);
                request = (struct http_request *)private;
                if (request->state == REQUEST_CANCELLED) {
                        curl_multi_remove_handle(multi->curl, request->easy);
                        request_free(request);
                        continue;
                }
                multi_complete(multi, request, code);
        }
}

static void multi_socket_action(struct http_multi *multi, curl_socket_t fd, int event_mask)
{
        CURLMcode mc;
        int running;

        multi->inside_curl = true;
        mc = curl_multi_socket_action(multi->curl, fd, event_mask, &running);
        multi->inside_curl = false;
        if (mc != CURLM_OK)
                log_warning("curl_multi_socket_action() failed: %s; ignoring",
                            curl_multi_strerror(mc));

        multi_flush_deferred(multi);
        multi_process_completions(multi);
}

static void socket_dispatch(struct loop_source *source, uint32_t events)
{
        struct http_socket *s = (struct http_socket *)source;
        int mask = 0;

        if (events & EPOLLIN)
                mask |= CURL_CSELECT_IN;
        if (events & EPOLLOUT)
                mask |= CURL_CSELECT_OUT;
        if (events & (EPOLLERR | EPOLLHUP))
                mask |= CURL_CSELECT_ERR;

        /* The record may be freed by curl's socket callback during the call. */
        multi_socket_action(s->multi, source->fd, mask);
}

static void timer_fire(struct loop_timer *timer)
{
        multi_socket_action(multi_from_timer(timer), CURL_SOCKET_TIMEOUT, 0);
}

static int multi_socket_callback(CURL *easy, curl_socket_t fd, int what, void *userdata,
                                 void *socket_data)
{
        struct http_multi *multi = userdata;
        struct http_socket *s = socket_data;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (s)
                        socket_unlink(s);
                return 0;
        }

        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;

        if (s)
                return loop_modify(multi->loop, &s->source, events) < 0 ? -1 : 0;

        /* A record that still has this fd number belongs to a socket that
         * curl closed without a CURL_POLL_REMOVE. The kernel dropped that
         * socket from the epoll set when it was closed, so only the record
         * is left to free. */
        for (struct http_socket *old = multi->sockets; old; old = old->next)
                if (old->source.fd == fd) {
                        socket_unlink(old);
                        break;
                }

        s = xcalloc(1, sizeof(*s));
        s->source.fd = fd;
        s->source.dispatch = socket_dispatch;
        s->multi = multi;

        r = loop_add(multi->loop, &s->source, events);
        if (r == -EEXIST)
                r = loop_modify(multi->loop, &s->source, events);
        if (r < 0) {
                log_warning("watching curl socket %d failed: %s", fd, strerror(-r));
                free(s);
                return -1;
        }

        s->next = multi->sockets;
        if (multi->sockets)
                multi->sockets->previous = s;
        multi->sockets = s;
        curl_multi_assign(multi->curl, fd, s);
        return 0;
}

static int multi_timer_callback(CURLM *curl, long timeout_ms, void *userdata)
{
        struct http_multi *multi = userdata;
        unsigned long long delay_usec;

        if (timeout_ms < 0)
                delay_usec = 0; /* disarm */
        else if (timeout_ms == 0)
                delay_usec = 1; /* as soon as possible, but not from inside curl */
        else
                delay_usec = (unsigned long long)timeout_ms * 1000ULL;

        return loop_timer_arm(&multi->timer, delay_usec) < 0 ? -1 : 0;
}

int http_multi_new(struct loop *loop, struct http_multi **ret_multi)
{
        struct http_multi *multi;
        int r;

        if (!curl_initialized) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                curl_initialized = true;
        }

        multi = xcalloc(1, sizeof(*multi));
        multi->loop = loop;
        multi->timer.source.fd = -1;

        multi->curl = curl_multi_init();
        if (!multi->curl) {
                free(multi);
                return -ENOMEM;
        }

        r = loop_timer_init(loop, &multi->timer, timer_fire);
        if (r < 0) {
                curl_multi_cleanup(multi->curl);
                free(multi);
                return r;
        }

        curl_multi_setopt(multi->curl, CURLMOPT_SOCKETFUNCTION, multi_socket_callback);
        curl_multi_setopt(multi->curl, CURLMOPT_SOCKETDATA, multi);
        curl_multi_setopt(multi->curl, CURLMOPT_TIMERFUNCTION, multi_timer_callback);
        curl_multi_setopt(multi->curl, CURLMOPT_TIMERDATA, multi);

        *ret_multi = multi;
        return 0;
}

void http_multi_free(struct http_multi *multi)
{
        if (!multi)
                return;

        while (multi->requests) {
                struct http_request *request = multi->requests;

                if (request->state == REQUEST_ACTIVE || request->state == REQUEST_CANCELLED)
                        curl_multi_remove_handle(multi->curl, request->easy);
                request_free(request);
        }

        /* Closing cached connections may call the socket and timer
         * callbacks, which need the records and the timer still in place. */
        curl_multi_cleanup(multi->curl);
        while (multi->sockets)
                socket_unlink(multi->sockets);
        loop_timer_release(multi->loop, &multi->timer);
        free(multi);
}

size_t http_multi_active(const struct http_multi *multi)
{
        size_t count = 0;

        for (const struct http_request *r = multi->requests; r; r = r->next)
                if (r->state != REQUEST_CANCELLED)
                        count++;
        return count;
}

static size_t request_buffer(struct http_request *request, const char *data, size_t size)
{
        size_t needed;

        if (size > request->max_response_size - request->body_size) {
                request->failure =
                    xasprintf("response body exceeds %zu bytes", request->max_response_size);
                return 0;
        }

        needed = request->body_size + size + 1;
        if (needed > request->body_allocated) {
                size_t allocated = request->body_allocated ? request->body_allocated : 4096;
                char *body;

                while (allocated < needed)
                        allocated *= 2;
                body = realloc(request->body, allocated);
                if (!body) {
                        request->failure = xasprintf("out of memory for the response body");
                        return 0;
                }
                request->body = body;
                request->body_allocated = allocated;
        }

        memcpy(request->body + request->body_size, data, size);
        request->body_size += size;
        request->body[request->body_size] = '\0';
        return size;
}

static size_t request_write(char *data, size_t item_size, size_t count, void *userdata)
{
        struct http_request *request = userdata;
        size_t size = item_size * count;
        int r;

        /* Returning less than size makes curl end the transfer with
         * CURLE_WRITE_ERROR. */
        if (request->state != REQUEST_ACTIVE)
                return 0;

        if (!request->status_checked) {
                long status = 0;

                curl_easy_getinfo(request->easy, CURLINFO_RESPONSE_CODE, &status);
                request->streaming = request->on_data && status >= 200 && status < 300;
                request->status_checked = true;
        }

        if (!request->streaming)
                return request_buffer(request, data, size);

        r = request->on_data(request->userdata, data, size);
        if (r < 0) {
                if (!request->failure)
                        request->failure =
                            xasprintf("receiving the response body failed: %s", strerror(-r));
                return 0;
        }
        /* on_data may have cancelled this very request. */
        return request->state == REQUEST_ACTIVE ? size : 0;
}

static int request_add_header(struct http_request *request, const char *header)
{
        struct curl_slist *headers = curl_slist_append(request->headers, header);

        if (!headers)
                return -ENOMEM;
        request->headers = headers;
        return 0;
}

static int request_configure(struct http_request *request,
                             const struct http_request_options *options)
{
        CURL *easy = request->easy;
        const char *method = options->method ? options->method : "GET";
        int code = CURLE_OK;

        /* Never follow redirects, and allow only http and https. Keep curl
         * away from signal dispositions: without CURLOPT_NOSIGNAL it changes
         * the SIGPIPE disposition around transfers and may use SIGALRM for
         * name resolution timeouts. The process must therefore ignore SIGPIPE itself. TLS
         * peer and host verification stay at curl's default, which is on. */
        code |= curl_easy_setopt(easy, CURLOPT_URL, options->url);
        code |= curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        code |= curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
        code |= curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        code |= curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        code |= curl_easy_setopt(easy, CURLOPT_USERAGENT, "execvisor/" EXECVISOR_VERSION);
        code |= curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)request);
        code |= curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, request->error);
        code |= curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, request_write);
        code |= curl_easy_setopt(easy, CURLOPT_WRITEDATA, request);
        if (options->unix_socket)
                code |= curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, options->unix_socket);
        if (options->timeout_ms > 0)
                code |= curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, options->timeout_ms);
        if (options->ca_file)
                code |= curl_easy_setopt(easy, CURLOPT_CAINFO, options->ca_file);

        /* A body makes curl send a POST unless another method is set. */
        if (streq(method, "HEAD"))
                code |= curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
        else if (!streq(method, "GET") && !streq(method, "POST"))
                code |= curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);

        if (options->body || streq(method, "POST") || streq(method, "PUT")) {
                const char *body = options->body ? options->body : "";
                size_t size = options->body_size ? options->body_size : strlen(body);

                /* POSTFIELDSIZE must come first: COPYPOSTFIELDS copies that many bytes. */
                code |= curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
                code |= curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body);
        }

        if (options->content_type) {
                _cleanup_free_ char *header = xasprintf("Content-Type: %s", options->content_type);

                if (request_add_header(request, header) < 0)
                        return -ENOMEM;
        }
        /* Send the body at once instead of waiting for "100 Continue". */
        if (request_add_header(request, "Expect:") < 0)
                return -ENOMEM;
        code |= curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);

        /* The results are OR'ed: any non-zero value means some option was
         * rejected, and the exact code does not matter to the caller. */
        return code == CURLE_OK ? 0 : -EINVAL;
}

int http_request_start(struct http_multi *multi, const struct http_request_options *options,
                       struct http_request **ret_request)
{
        struct http_request *request;
        int r;

        if (!options->url)
                return -EINVAL;
        if (options->body && options->method &&
            (streq(options->method, "GET") || streq(options->method, "HEAD")))
                return -EINVAL;

        request = xcalloc(1, sizeof(*request));
        request->multi = multi;
        request->max_response_size =
            options->max_response_size ? options->max_response_size : HTTP_RESPONSE_SIZE_DEFAULT;
        request->on_data = options->on_data;
        request->on_done = options->on_done;
        request->userdata = options->userdata;

        request->easy = curl_easy_init();
        if (!request->easy) {
                free(request);
                return -ENOMEM;
        }

        r = request_configure(request, options);
        if (r < 0) {
                curl_easy_cleanup(request->easy);
                curl_slist_free_all(request->headers);
                free(request);
                return r;
        }

        if (multi->inside_curl) {
                request->state = REQUEST_PENDING_ADD;
        } else {
                CURLMcode mc = curl_multi_add_handle(multi->curl, request->easy);

                if (mc != CURLM_OK) {
                        curl_easy_cleanup(request->easy);
                        curl_slist_free_all(request->headers);
                        free(request);
                        return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
                }
                request->state = REQUEST_ACTIVE;
        }
        request_link(multi, request);

        if (ret_request)
                *ret_request = request;
        return 0;
}

void http_request_cancel(struct http_request *request)
{
        struct http_multi *multi;

        if (!request)
                return;
        multi = request->multi;

        switch (request->state) {
        case REQUEST_COMPLETING:
        case REQUEST_CANCELLED:
                return;
        case REQUEST_PENDING_ADD:
        case REQUEST_ADD_FAILED:
                request_free(request);
                return;
        case REQUEST_ACTIVE:
                if (multi->inside_curl) {
                        request->state = REQUEST_CANCELLED;
                        return;
                }
                curl_multi_remove_handle(multi->curl, request->easy);
                request_free(request);
                return;
        }
}
