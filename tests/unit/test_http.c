/* Unit tests of supervisor/http.c against a small HTTP server on a unix
 * socket, served from the same event loop as the client. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "supervisor/http.h"
#include "supervisor/loop.h"
#include "supervisor/util.h"

struct test_server {
        struct loop_source listener;
        char directory[64];
        char path[108];
};

struct test_connection {
        struct loop_source source;
        char request[16384];
        size_t size;
        bool answered;
        struct test_connection *previous, *next;
};

static struct loop *loop;
static struct http_multi *multi;
static struct test_server server;
static struct test_connection *connections;
/* loop_run() returns at the first loop_quit() and cannot be run again on the
 * same loop, so every test runs the loop once: the watchdog ends it, and the
 * action timer runs a step in the middle. */
static struct loop_timer watchdog;
static struct loop_timer action_timer;
static void (*action)(void);

static void connection_close(struct test_connection *connection)
{
        if (connection->previous)
                connection->previous->next = connection->next;
        else
                connections = connection->next;
        if (connection->next)
                connection->next->previous = connection->previous;

        loop_remove(loop, &connection->source);
        safe_close(connection->source.fd);
        free(connection);
}

static void respond(struct test_connection *connection, const char *status, const char *headers,
                    const char *body)
{
        _cleanup_free_ char *response =
            xasprintf("HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n%s", status,
                      strlen(body), headers, body);

        assert_int_equal(write_all(connection->source.fd, response, strlen(response)), 0);
        connection->answered = true;
}

/* Respond to a complete request, or return false to wait for the rest of it. */
static bool serve(struct test_connection *connection)
{
        const char *request = connection->request;
        const char *header_end = strstr(request, "\r\n\r\n");
        const char *body;
        char method[16], path[256];

        if (!header_end)
                return false;
        body = header_end + 4;
        assert_int_equal(sscanf(request, "%15s %255s", method, path), 2);

        if (streq(path, "/hello")) {
                respond(connection, "200 OK", "", "hello world");
        } else if (streq(path, "/big")) {
                char big[10001];

                memset(big, 'a', sizeof(big) - 1);
                big[sizeof(big) - 1] = '\0';
                respond(connection, "200 OK", "", big);
        } else if (streq(path, "/stream")) {
                static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                              "Connection: close\r\n\r\n"
                                              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

                assert_int_equal(write_all(connection->source.fd, chunked, strlen(chunked)), 0);
                connection->answered = true;
        } else if (streq(path, "/missing")) {
                respond(connection, "404 Not Found", "Content-Type: application/json\r\n",
                        "{\"message\":\"nothing here\"}");
        } else if (streq(path, "/redirect")) {
                respond(connection, "302 Found", "Location: /hello\r\n", "");
        } else if (streq(path, "/slow")) {
                /* No response: the client has to time out or cancel. */
        } else if (streq(path, "/echo")) {
                const char *length = strcasestr(request, "\r\nContent-Length: ");
                const char *type = strcasestr(request, "\r\nContent-Type: ");
                _cleanup_free_ char *reply = NULL;
                size_t size;

                assert_non_null(length);
                size = strtoul(length + 18, NULL, 10);
                if ((size_t)(connection->request + connection->size - body) < size)
                        return false;
                reply = xasprintf("%s %.*s type=%.*s", method, (int)size, body,
                                  type ? (int)strcspn(type + 16, "\r") : 0, type ? type + 16 : "");
                respond(connection, "200 OK", "", reply);
        } else {
                respond(connection, "500 Internal Server Error", "", "unknown path");
        }
        return true;
}

static void connection_dispatch(struct loop_source *source, uint32_t events)
{
        struct test_connection *connection = (struct test_connection *)source;
        ssize_t n;

        n = read(source->fd, connection->request + connection->size,
                 sizeof(connection->request) - 1 - connection->size);
        if (n <= 0) {
                connection_close(connection);
                return;
        }
        connection->size += (size_t)n;
        connection->request[connection->size] = '\0';

        if (!connection->answered && serve(connection) && connection->answered)
                connection_close(connection);
}

static void listener_dispatch(struct loop_source *source, uint32_t events)
{
        struct test_connection *connection;
        int fd;

        fd = accept4(source->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
                return;

        connection = xcalloc(1, sizeof(*connection));
        connection->source.fd = fd;
        connection->source.dispatch = connection_dispatch;
        assert_int_equal(loop_add(loop, &connection->source, EPOLLIN), 0);

        connection->next = connections;
        if (connections)
                connections->previous = connection;
        connections = connection;
}

static void watchdog_fire(struct loop_timer *timer)
{
        loop_quit(loop, -ETIMEDOUT);
}

static void action_fire(struct loop_timer *timer)
{
        action();
}

static int setup(void **state)
{
        struct sockaddr_un address = {.sun_family = AF_UNIX};

        if (loop_new(&loop) < 0 || http_multi_new(loop, &multi) < 0)
                return -1;
        if (loop_timer_init(loop, &watchdog, watchdog_fire) < 0 ||
            loop_timer_init(loop, &action_timer, action_fire) < 0)
                return -1;

        snprintf(server.directory, sizeof(server.directory), "/tmp/execvisor-test-http.XXXXXX");
        if (!mkdtemp(server.directory))
                return -1;
        snprintf(server.path, sizeof(server.path), "%s/http.sock", server.directory);
        snprintf(address.sun_path, sizeof(address.sun_path), "%s", server.path);

        server.listener.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        server.listener.dispatch = listener_dispatch;
        if (server.listener.fd < 0 ||
            bind(server.listener.fd, (struct sockaddr *)&address, sizeof(address)) < 0 ||
            listen(server.listener.fd, 16) < 0)
                return -1;
        return loop_add(loop, &server.listener, EPOLLIN) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
        http_multi_free(multi);
        multi = NULL;
        loop_timer_release(loop, &watchdog);
        loop_timer_release(loop, &action_timer);
        while (connections)
                connection_close(connections);
        loop_remove(loop, &server.listener);
        safe_close(server.listener.fd);
        unlink(server.path);
        rmdir(server.directory);
        loop_free(loop);
        loop = NULL;
        return 0;
}

/* Run the loop until a callback calls loop_quit(), at most timeout_ms. */
static int run_loop(unsigned timeout_ms)
{
        assert_int_equal(loop_timer_arm(&watchdog, timeout_ms * 1000ULL), 0);
        return loop_run(loop);
}

/* Recorded outcome of one request. */
struct outcome {
        unsigned done_calls;
        unsigned data_calls;
        long status;
        int curl_code;
        int os_errno;
        char error[256];
        char body[16384];
        size_t body_size;
        char streamed[256];
        size_t streamed_size;
        bool quit_when_done;
        unsigned *remaining; /* quit when this count of requests reaches 0 */

        /* Actions run from the callbacks. */
        struct http_request *self;
        struct http_request *cancel_in_done;
        bool cancel_self_in_data;
        bool cancel_self_in_done;
        struct outcome *start_in_data;
        struct outcome *start_in_done;
        unsigned chain; /* requests still to start from on_done, one after another */
};

static void start_get(struct outcome *outcome, const char *path, long timeout_ms, bool stream,
                      size_t max_response_size);

static void record_done(void *userdata, const struct http_result *result)
{
        struct outcome *outcome = userdata;

        outcome->done_calls++;
        outcome->status = result->status;
        outcome->curl_code = result->curl_code;
        outcome->os_errno = result->os_errno;
        snprintf(outcome->error, sizeof(outcome->error), "%s",
                 result->error ? result->error : "(null)");
        assert_true(result->body_size < sizeof(outcome->body));
        assert_int_equal(strlen(result->body), result->body_size);
        memcpy(outcome->body, result->body, result->body_size + 1);
        outcome->body_size = result->body_size;

        if (outcome->cancel_self_in_done)
                http_request_cancel(outcome->self);
        if (outcome->cancel_in_done)
                http_request_cancel(outcome->cancel_in_done);
        if (outcome->start_in_done)
                start_get(outcome->start_in_done, "/hello", 0, false, 0);
        if (outcome->chain > 0) {
                outcome->chain--;
                start_get(outcome, "/hello", 0, false, 0);
                return;
        }
        if (outcome->quit_when_done)
                loop_quit(loop, 0);
        if (outcome->remaining && --*outcome->remaining == 0)
                loop_quit(loop, 0);
}

static int record_data(void *userdata, const char *data, size_t size)
{
        struct outcome *outcome = userdata;

        outcome->data_calls++;
        assert_true(outcome->streamed_size + size < sizeof(outcome->streamed));
        memcpy(outcome->streamed + outcome->streamed_size, data, size);
        outcome->streamed_size += size;
        outcome->streamed[outcome->streamed_size] = '\0';

        if (outcome->cancel_self_in_data)
                http_request_cancel(outcome->self);
        if (outcome->start_in_data) {
                start_get(outcome->start_in_data, "/hello", 0, false, 0);
                outcome->start_in_data = NULL;
        }
        return 0;
}

static void start_get(struct outcome *outcome, const char *path, long timeout_ms, bool stream,
                      size_t max_response_size)
{
        _cleanup_free_ char *url = xasprintf("http://localhost%s", path);
        struct http_request_options options = {
            .url = url,
            .unix_socket = server.path,
            .timeout_ms = timeout_ms,
            .max_response_size = max_response_size,
            .on_data = stream ? record_data : NULL,
            .on_done = record_done,
            .userdata = outcome,
        };

        assert_int_equal(http_request_start(multi, &options, &outcome->self), 0);
}

static void test_get_body(void **state)
{
        struct outcome outcome = {.quit_when_done = true};

        start_get(&outcome, "/hello", 5000, false, 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(outcome.done_calls, 1);
        assert_int_equal(outcome.curl_code, CURLE_OK);
        assert_int_equal(outcome.status, 200);
        assert_string_equal(outcome.error, "(null)");
        assert_string_equal(outcome.body, "hello world");
        assert_int_equal(http_multi_active(multi), 0);
}

static void test_missing_socket(void **state)
{
        struct outcome outcome = {.quit_when_done = true};
        struct http_request_options options = {
            .url = "http://localhost/version",
            .unix_socket = "/nonexistent-execvisor-test/docker.sock",
            .on_done = record_done,
            .userdata = &outcome,
        };

        assert_int_equal(http_request_start(multi, &options, NULL), 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(outcome.done_calls, 1);
        assert_int_equal(outcome.curl_code, CURLE_COULDNT_CONNECT);
        assert_int_equal(outcome.os_errno, ENOENT);
        assert_int_equal(outcome.status, 0);
        assert_string_not_equal(outcome.error, "(null)");
}

static void test_body_limit(void **state)
{
        struct outcome outcome = {.quit_when_done = true};

        start_get(&outcome, "/big", 5000, false, 1000);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(outcome.curl_code, CURLE_WRITE_ERROR);
        assert_non_null(strstr(outcome.error, "exceeds 1000 bytes"));
}

static void test_body_default_limit(void **state)
{
        struct outcome outcome = {.quit_when_done = true};

        start_get(&outcome, "/big", 5000, false, 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(outcome.curl_code, CURLE_OK);
        assert_int_equal(outcome.body_size, 10000);
}

static void test_streaming(void **state)
{
        struct outcome outcome = {.quit_when_done = true};

        start_get(&outcome, "/stream", 0, true, 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(outcome.curl_code, CURLE_OK);
        assert_int_equal(outcome.status, 200);
        assert_true(outcome.data_calls >= 1);
        assert_string_equal(outcome.streamed, "hello world");
        assert_int_equal(outcome.body_size, 0);
}

static void test_error_status_buffered(void **state)
{
        struct outcome outcome = {.quit_when_done = true};

        start_get(&outcome, "/missing", 5000, true, 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(outcome.curl_code, CURLE_OK);
        assert_int_equal(outcome.status, 404);
        assert_int_equal(outcome.data_calls, 0);
        assert_string_equal(outcome.body, "{\"message\":\"nothing here\"}");
}

static void test_redirect_not_followed(void **state)
{
        struct outcome outcome = {.quit_when_done = true};

        start_get(&outcome, "/redirect", 5000, false, 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(outcome.curl_code, CURLE_OK);
        assert_int_equal(outcome.status, 302);
        assert_int_equal(outcome.body_size, 0);
}

static void test_timeout(void **state)
{
        struct outcome outcome = {.quit_when_done = true};

        start_get(&outcome, "/slow", 200, false, 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(outcome.done_calls, 1);
        assert_int_equal(outcome.curl_code, CURLE_OPERATION_TIMEDOUT);
}

static void test_other_protocols_rejected(void **state)
{
        static const char *const urls[] = {"file:///etc/hostname", "ftp://localhost/x",
                                           "gopher://localhost/"};
        struct outcome outcomes[ARRAY_SIZE(urls)] = {};
        unsigned remaining = ARRAY_SIZE(urls);

        for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
                struct http_request_options options = {
                    .url = urls[i],
                    .on_done = record_done,
                    .userdata = &outcomes[i],
                };

                outcomes[i].remaining = &remaining;
                assert_int_equal(http_request_start(multi, &options, NULL), 0);
        }
        assert_int_equal(run_loop(5000), 0);

        for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
                assert_int_equal(outcomes[i].done_calls, 1);
                assert_int_equal(outcomes[i].curl_code, CURLE_UNSUPPORTED_PROTOCOL);
                assert_int_equal(outcomes[i].body_size, 0);
        }
}

static void test_post_body(void **state)
{
        struct outcome outcome = {.quit_when_done = true};
        struct http_request_options options = {
            .url = "http://localhost/echo",
            .unix_socket = server.path,
            .method = "POST",
            .body = "{\"state\":\"RUNNING\"}",
            .content_type = "application/json",
            .timeout_ms = 5000,
            .on_done = record_done,
            .userdata = &outcome,
        };

        assert_int_equal(http_request_start(multi, &options, NULL), 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(outcome.status, 200);
        assert_string_equal(outcome.body, "POST {\"state\":\"RUNNING\"} type=application/json");

        /* A body on a GET is a caller error. */
        options.method = "GET";
        assert_int_equal(http_request_start(multi, &options, NULL), -EINVAL);
        options.url = NULL;
        assert_int_equal(http_request_start(multi, &options, NULL), -EINVAL);
}

static void test_cancel_from_on_data(void **state)
{
        struct outcome stream = {.cancel_self_in_data = true};
        struct outcome hello = {};

        start_get(&stream, "/stream", 0, true, 0);
        start_get(&hello, "/hello", 0, false, 0);
        /* Give the cancelled request every chance to report. */
        assert_int_equal(run_loop(300), -ETIMEDOUT);

        assert_int_equal(stream.data_calls, 1);
        assert_int_equal(stream.done_calls, 0);
        assert_int_equal(hello.done_calls, 1);
        assert_string_equal(hello.body, "hello world");
        assert_int_equal(http_multi_active(multi), 0);
}

static void test_start_from_on_data(void **state)
{
        struct outcome hello = {.quit_when_done = true};
        struct outcome stream = {.start_in_data = &hello};

        start_get(&stream, "/stream", 0, true, 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(hello.done_calls, 1);
        assert_string_equal(hello.body, "hello world");
        assert_string_equal(stream.streamed, "hello world");
        assert_int_equal(stream.done_calls, 1);
}

static void test_start_from_on_done(void **state)
{
        struct outcome chained = {.quit_when_done = true, .chain = 3};

        start_get(&chained, "/hello", 0, false, 0);
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(chained.done_calls, 4);
        assert_string_equal(chained.body, "hello world");
}

static struct outcome *cancelled_outcome;

static void cancel_slow(void)
{
        assert_int_equal(http_multi_active(multi), 1);
        http_request_cancel(cancelled_outcome->self);
        http_request_cancel(NULL);
        assert_int_equal(http_multi_active(multi), 0);
}

static void test_cancel_outside_callbacks(void **state)
{
        struct outcome slow = {};

        start_get(&slow, "/slow", 0, false, 0);
        cancelled_outcome = &slow;
        action = cancel_slow;
        assert_int_equal(loop_timer_arm(&action_timer, 100000), 0);
        assert_int_equal(run_loop(300), -ETIMEDOUT);

        assert_int_equal(http_multi_active(multi), 0);
        assert_int_equal(slow.done_calls, 0);
}

static void test_cancel_in_on_done(void **state)
{
        struct outcome slow = {};
        struct outcome hello = {.quit_when_done = true, .cancel_self_in_done = true};

        start_get(&slow, "/slow", 0, false, 0);
        start_get(&hello, "/hello", 0, false, 0);
        /* hello's on_done cancels itself, which does nothing, and slow. */
        hello.cancel_in_done = slow.self;
        assert_int_equal(run_loop(5000), 0);

        assert_int_equal(hello.done_calls, 1);
        assert_int_equal(slow.done_calls, 0);
        assert_int_equal(http_multi_active(multi), 0);
}

static void test_free_with_active_requests(void **state)
{
        struct outcome slow = {};
        struct outcome stream = {};

        start_get(&slow, "/slow", 0, false, 0);
        start_get(&stream, "/stream", 0, true, 0);
        assert_int_equal(run_loop(100), -ETIMEDOUT);

        /* Teardown frees the multi handle with slow still running; it must
         * not call on_done (the outcome is gone by then). Check it here. */
        http_multi_free(multi);
        assert_int_equal(http_multi_new(loop, &multi), 0);
        assert_int_equal(slow.done_calls, 0);
        assert_int_equal(stream.done_calls, 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_get_body, setup, teardown),
            cmocka_unit_test_setup_teardown(test_missing_socket, setup, teardown),
            cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
            cmocka_unit_test_setup_teardown(test_body_default_limit, setup, teardown),
            cmocka_unit_test_setup_teardown(test_streaming, setup, teardown),
            cmocka_unit_test_setup_teardown(test_error_status_buffered, setup, teardown),
            cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
            cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
            cmocka_unit_test_setup_teardown(test_other_protocols_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cancel_from_on_data, setup, teardown),
            cmocka_unit_test_setup_teardown(test_start_from_on_data, setup, teardown),
            cmocka_unit_test_setup_teardown(test_start_from_on_done, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cancel_outside_callbacks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cancel_in_on_done, setup, teardown),
            cmocka_unit_test_setup_teardown(test_free_with_active_requests, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
