#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "tests/unit/json_assert.h"

#include "supervisor/config.h"
#include "supervisor/container.h"
#include "supervisor/http.h"
#include "supervisor/loop.h"
#include "supervisor/metrics.h"
#include "supervisor/report.h"
#include "supervisor/util.h"

#define TASK_ARN "arn:aws:ecs:us-west-2:111122223333:task/default/8f03e412"
#define ID_A "aaaa000000000000000000000000000000000000000000000000000000000001"
#define ID_B "bbbb000000000000000000000000000000000000000000000000000000000002"

/* 2026-01-01T00:00:01.234Z in microseconds since the epoch. */
#define TIME_USEC 1767225601234567ULL
#define TIME_TEXT "2026-01-01T00:00:01.234Z"

static void init_container(struct container *container, const char *id, const char *name,
                           const char *labels_json)
{
        memset(container, 0, sizeof(*container));
        strcpy(container->id, id);
        container->name = (char *)name;
        container->labels = labels_json ? json_tokener_parse(labels_json) : NULL;
        if (labels_json)
                assert_non_null(container->labels);
        container->agent.state = AGENT_RUNNING;
        container->agent.restart_count = 3;
        container->agent.pid = 4242;
        strcpy(container->agent.version, "3.3.40.0");
}

static json_object *parse_body(const char *body)
{
        json_object *object = json_tokener_parse(body);

        if (!object)
                fail_msg("body is not JSON: %s", body);
        return object;
}

/* ---- The body ---- */

static void body_fields(void **state)
{
        struct container c;
        json_object *object, *agent;
        char *body;

        init_container(&c, ID_A, "web", "{\"" REPORT_TASK_ARN_LABEL "\":\"" TASK_ARN "\"}");
        c.sequence = 17;
        strcpy(c.agent.reason, "restarted");

        body = report_body(&c, CONTAINER_EVENT_STARTED, TIME_USEC);
        object = parse_body(body);

        assert_string_equal(get_string(object, "ContainerId"), ID_A);
        assert_string_equal(get_string(object, "ContainerName"), "web");
        assert_string_equal(get_string(object, "TaskARN"), TASK_ARN);
        assert_int_equal(get_int(object, "Sequence"), 17);
        assert_string_equal(get_string(object, "Time"), TIME_TEXT);
        assert_string_equal(get_string(object, "Event"), "started");
        assert_int_equal(json_object_object_length(object), 7);

        agent = get_member(object, "ManagedAgent");
        assert_string_equal(get_string(agent, "Name"), "ExecuteCommandAgent");
        assert_string_equal(get_string(agent, "LastStatus"), "RUNNING");
        assert_string_equal(get_string(agent, "Reason"), "restarted");
        assert_string_equal(get_string(agent, "Version"), "3.3.40.0");
        assert_int_equal(get_int(agent, "RestartCount"), 3);
        assert_int_equal(get_int(agent, "Pid"), 4242);

        json_object_put(object);
        free(body);
        json_object_put(c.labels);
}

static void body_without_task_arn(void **state)
{
        static const char *const labels[] = {
            NULL,
            "{}",
            "{\"com.example.other\":\"x\"}",
            "{\"" REPORT_TASK_ARN_LABEL "\":42}",
        };

        for (size_t i = 0; i < ARRAY_SIZE(labels); i++) {
                struct container c;
                json_object *object;
                char *body;

                init_container(&c, ID_B, "db", labels[i]);
                body = report_body(&c, CONTAINER_EVENT_INJECTED, TIME_USEC);
                object = parse_body(body);

                if (json_object_object_get_ex(object, "TaskARN", NULL))
                        fail_msg("TaskARN present with labels %s: %s",
                                 labels[i] ? labels[i] : "NULL", body);
                assert_string_equal(get_string(object, "ContainerId"), ID_B);
                assert_string_equal(get_string(object, "Event"), "injected");
                assert_int_equal(json_object_object_length(object), 6);

                json_object_put(object);
                free(body);
                json_object_put(c.labels);
        }
}

static void body_sequence_and_events(void **state)
{
        static const struct {
                enum container_event event;
                const char *name;
        } cases[] = {
            {CONTAINER_EVENT_INJECTED, "injected"}, {CONTAINER_EVENT_STARTED, "started"},
            {CONTAINER_EVENT_EXITED, "exited"},     {CONTAINER_EVENT_STOPPED, "stopped"},
            {CONTAINER_EVENT_ADOPTED, "adopted"},
        };
        struct container c;

        init_container(&c, ID_A, NULL, NULL);
        c.sequence = UINT64_C(1) << 40;

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char *body = report_body(&c, cases[i].event, TIME_USEC);
                json_object *object = parse_body(body);

                assert_string_equal(get_string(object, "Event"), cases[i].name);
                assert_int_equal(get_int(object, "Sequence"), (int64_t)(UINT64_C(1) << 40));
                /* A record without a name reports an empty one. */
                assert_string_equal(get_string(object, "ContainerName"), "");

                json_object_put(object);
                free(body);
        }
}

/* ---- The queue ---- */

static char *body_of(uint64_t sequence)
{
        return xasprintf("{\"Sequence\":%llu}", (unsigned long long)sequence);
}

static void queue_keeps_newest_waiting(void **state)
{
        struct report_queue *q = report_queue_new();
        const struct report_state *waiting;

        for (uint64_t seq = 1; seq <= 1000; seq++) {
                report_queue_put(q, ID_A, seq, body_of(seq));
                report_queue_put(q, ID_B, seq * 2, body_of(seq * 2));
        }

        assert_int_equal(report_queue_waiting(q), 2);
        assert_int_equal(report_queue_in_flight(q), 0);

        waiting = report_queue_find_waiting(q, ID_A);
        assert_non_null(waiting);
        assert_int_equal(waiting->sequence, 1000);
        assert_string_equal(waiting->body, "{\"Sequence\":1000}");

        waiting = report_queue_find_waiting(q, ID_B);
        assert_non_null(waiting);
        assert_int_equal(waiting->sequence, 2000);

        report_queue_free(q);
}

static void queue_one_in_flight_per_container(void **state)
{
        struct report_queue *q = report_queue_new();
        const struct report_state *sent;

        report_queue_put(q, ID_A, 1, body_of(1));
        sent = report_queue_next(q, 8);
        assert_non_null(sent);
        assert_int_equal(sent->sequence, 1);
        assert_string_equal(sent->container_id, ID_A);

        /* Newer states replace each other while the first is in flight. */
        report_queue_put(q, ID_A, 2, body_of(2));
        report_queue_put(q, ID_A, 3, body_of(3));
        assert_null(report_queue_next(q, 8));
        assert_int_equal(report_queue_waiting(q), 1);
        assert_int_equal(report_queue_in_flight(q), 1);
        /* The state in flight is untouched. */
        assert_int_equal(sent->sequence, 1);
        assert_string_equal(sent->body, "{\"Sequence\":1}");

        report_queue_finish(q, sent, true);
        sent = report_queue_next(q, 8);
        assert_non_null(sent);
        assert_int_equal(sent->sequence, 3);

        report_queue_finish(q, sent, true);
        assert_null(report_queue_next(q, 8));
        assert_int_equal(report_queue_waiting(q), 0);
        assert_int_equal(report_queue_in_flight(q), 0);

        report_queue_free(q);
}

static void queue_failed_state_waits_again(void **state)
{
        struct report_queue *q = report_queue_new();
        const struct report_state *sent;

        report_queue_put(q, ID_A, 5, body_of(5));
        sent = report_queue_next(q, 8);
        report_queue_finish(q, sent, false);

        assert_int_equal(report_queue_waiting(q), 1);
        sent = report_queue_next(q, 8);
        assert_non_null(sent);
        assert_int_equal(sent->sequence, 5);
        assert_string_equal(sent->body, "{\"Sequence\":5}");

        report_queue_free(q);
}

static void queue_failed_state_yields_to_newer(void **state)
{
        struct report_queue *q = report_queue_new();
        const struct report_state *sent;

        report_queue_put(q, ID_A, 5, body_of(5));
        sent = report_queue_next(q, 8);
        report_queue_put(q, ID_A, 6, body_of(6));
        report_queue_finish(q, sent, false);

        assert_int_equal(report_queue_waiting(q), 1);
        sent = report_queue_next(q, 8);
        assert_non_null(sent);
        assert_int_equal(sent->sequence, 6);
        report_queue_finish(q, sent, true);
        assert_null(report_queue_next(q, 8));

        report_queue_free(q);
}

static void queue_caps_in_flight(void **state)
{
        struct report_queue *q = report_queue_new();
        const struct report_state *sent[10];
        char id[CONTAINER_ID_MAX + 1];

        for (unsigned i = 0; i < 10; i++) {
                snprintf(id, sizeof(id), "c%02u", i);
                report_queue_put(q, id, 1, body_of(1));
        }

        for (unsigned i = 0; i < 8; i++) {
                sent[i] = report_queue_next(q, 8);
                assert_non_null(sent[i]);
        }
        assert_null(report_queue_next(q, 8));
        assert_int_equal(report_queue_in_flight(q), 8);
        assert_int_equal(report_queue_waiting(q), 2);

        report_queue_finish(q, sent[0], true);
        sent[8] = report_queue_next(q, 8);
        assert_non_null(sent[8]);
        assert_null(report_queue_next(q, 8));

        report_queue_free(q);
}

static void queue_oldest_ready_first(void **state)
{
        struct report_queue *q = report_queue_new();
        const struct report_state *sent;

        report_queue_put(q, ID_A, 1, body_of(1));
        report_queue_put(q, ID_B, 1, body_of(1));
        /* A newer state of A keeps A's place in the line. */
        report_queue_put(q, ID_A, 2, body_of(2));

        sent = report_queue_next(q, 1);
        assert_string_equal(sent->container_id, ID_A);
        assert_int_equal(sent->sequence, 2);
        report_queue_finish(q, sent, false);

        /* The failed state goes behind B. */
        sent = report_queue_next(q, 1);
        assert_string_equal(sent->container_id, ID_B);
        report_queue_finish(q, sent, true);

        sent = report_queue_next(q, 1);
        assert_string_equal(sent->container_id, ID_A);
        assert_int_equal(sent->sequence, 2);
        report_queue_finish(q, sent, true);

        report_queue_free(q);
}

static void queue_forget_drops_states(void **state)
{
        struct report_queue *q = report_queue_new();
        const struct report_state *sent;

        report_queue_put(q, ID_A, 1, body_of(1));
        report_queue_put(q, ID_B, 1, body_of(1));
        sent = report_queue_next(q, 8);
        assert_string_equal(sent->container_id, ID_A);
        report_queue_put(q, ID_A, 2, body_of(2));

        report_queue_forget(q, ID_A);
        report_queue_forget(q, ID_B);
        assert_int_equal(report_queue_waiting(q), 0);
        assert_int_equal(report_queue_in_flight(q), 1);
        assert_null(report_queue_find_waiting(q, ID_A));

        /* The state in flight fails but is not retried. */
        report_queue_finish(q, sent, false);
        assert_int_equal(report_queue_waiting(q), 0);
        assert_int_equal(report_queue_in_flight(q), 0);
        assert_null(report_queue_next(q, 8));

        /* Forgetting an unknown container does nothing. */
        report_queue_forget(q, ID_B);

        report_queue_free(q);
}

static void queue_put_after_forget(void **state)
{
        struct report_queue *q = report_queue_new();
        const struct report_state *sent;

        report_queue_put(q, ID_A, 1, body_of(1));
        sent = report_queue_next(q, 8);
        report_queue_forget(q, ID_A);
        /* The container came back while its old state was in flight. */
        report_queue_put(q, ID_A, 1, body_of(1));
        report_queue_finish(q, sent, false);

        assert_int_equal(report_queue_waiting(q), 1);
        sent = report_queue_next(q, 8);
        assert_non_null(sent);
        report_queue_finish(q, sent, true);
        assert_int_equal(report_queue_waiting(q), 0);

        report_queue_free(q);
}

/* ---- Delivery through the loop to a receiver on a unix socket ---- */

#define MAX_REQUESTS 64

struct receiver {
        struct loop_source listen;
        struct loop *loop;
        int status; /* of every response */
        char *request_lines[MAX_REQUESTS];
        char *content_types[MAX_REQUESTS];
        char *bodies[MAX_REQUESTS];
        int statuses[MAX_REQUESTS];
        size_t n_requests;
};

struct connection {
        struct loop_source source;
        struct receiver *receiver;
        char buffer[65536];
        size_t size;
};

static char *header_value(const char *headers, const char *name)
{
        size_t length = strlen(name);

        for (const char *line = strstr(headers, "\r\n"); line; line = strstr(line, "\r\n")) {
                line += 2;
                if (strncasecmp(line, name, length) == 0 && line[length] == ':') {
                        const char *value = line + length + 1;
                        const char *end = strstr(value, "\r\n");

                        while (*value == ' ')
                                value++;
                        return strndup(value, (size_t)(end - value));
                }
        }
        return NULL;
}

static void connection_close(struct connection *connection)
{
        loop_remove(connection->receiver->loop, &connection->source);
        close(connection->source.fd);
        free(connection);
}

/* Read one request, and respond with the receiver's status once it is whole. */
static void connection_dispatch(struct loop_source *source, uint32_t events)
{
        struct connection *connection = container_of(source, struct connection, source);
        struct receiver *receiver = connection->receiver;
        _cleanup_free_ char *length_text = NULL;
        char *header_end, response[128];
        size_t header_size, body_size;
        ssize_t n;

        n = read(source->fd, connection->buffer + connection->size,
                 sizeof(connection->buffer) - 1 - connection->size);
        if (n <= 0) {
                connection_close(connection);
                return;
        }
        connection->size += (size_t)n;
        connection->buffer[connection->size] = '\0';

        header_end = strstr(connection->buffer, "\r\n\r\n");
        if (!header_end)
                return;
        header_size = (size_t)(header_end - connection->buffer) + 4;
        length_text = header_value(connection->buffer, "Content-Length");
        body_size = length_text ? strtoul(length_text, NULL, 10) : 0;
        if (connection->size < header_size + body_size)
                return;

        assert_true(receiver->n_requests < MAX_REQUESTS);
        receiver->request_lines[receiver->n_requests] =
            strndup(connection->buffer, strcspn(connection->buffer, "\r"));
        receiver->content_types[receiver->n_requests] =
            header_value(connection->buffer, "Content-Type");
        receiver->bodies[receiver->n_requests] = strndup(header_end + 4, body_size);
        receiver->statuses[receiver->n_requests] = receiver->status;
        receiver->n_requests++;

        snprintf(response, sizeof(response),
                 "HTTP/1.1 %d Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                 receiver->status);
        assert_int_equal(write_all(source->fd, response, strlen(response)), 0);
        connection_close(connection);
}

static void receiver_accept(struct loop_source *source, uint32_t events)
{
        struct receiver *receiver = container_of(source, struct receiver, listen);
        struct connection *connection;
        int fd = accept4(source->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
                return;
        connection = xcalloc(1, sizeof(*connection));
        connection->receiver = receiver;
        connection->source = (struct loop_source){.fd = fd, .dispatch = connection_dispatch};
        assert_int_equal(loop_add(receiver->loop, &connection->source, EPOLLIN), 0);
}

struct fixture {
        char directory[64];
        char socket_path[128];
        char *url;
        struct loop *loop;
        struct http_multi *http;
        struct reporter *reporter;
        struct receiver receiver;
        struct config config;
        struct loop_timer poll_timer;
        struct loop_timer deadline_timer;

        /* The test's script: called every 10 ms with the time since the
         * loop started, it drives the test and returns true when it is done. */
        bool (*step)(struct fixture *f, unsigned long long elapsed_usec);
        unsigned long long started_usec;
        struct container *subject;
        int phase;
        size_t requests_seen;
        size_t pending_seen;
        size_t pending_after_forget;
};

static void on_poll(struct loop_timer *timer)
{
        struct fixture *f = container_of(timer, struct fixture, poll_timer);

        if (f->step(f, now_monotonic_usec() - f->started_usec))
                loop_quit(f->loop, 0);
        else
                loop_timer_arm(timer, 10000);
}

static void on_deadline(struct loop_timer *timer)
{
        struct fixture *f = container_of(timer, struct fixture, deadline_timer);

        loop_quit(f->loop, -ETIMEDOUT);
}

/* Run the loop until step returns true or timeout_usec passes. The loop
 * runs once per test: loop_run() returns at once after a loop_quit().
 * Returns 0 or -ETIMEDOUT. */
static int run_script(struct fixture *f,
                      bool (*step)(struct fixture *f, unsigned long long elapsed_usec),
                      unsigned long long timeout_usec)
{
        f->step = step;
        f->started_usec = now_monotonic_usec();
        assert_int_equal(loop_timer_arm(&f->poll_timer, 10000), 0);
        assert_int_equal(loop_timer_arm(&f->deadline_timer, timeout_usec), 0);
        return loop_run(f->loop);
}

static int setup_delivery(void **state)
{
        struct fixture *f = xcalloc(1, sizeof(*f));
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        char *urls[1];

        strcpy(f->directory, "/tmp/test-report-XXXXXX");
        assert_non_null(mkdtemp(f->directory));
        snprintf(f->socket_path, sizeof(f->socket_path), "%s/receiver.sock", f->directory);
        f->url = xasprintf("unix:%s:/v1/reports?source=test", f->socket_path);

        assert_int_equal(loop_new(&f->loop), 0);
        assert_int_equal(http_multi_new(f->loop, &f->http), 0);
        assert_int_equal(loop_timer_init(f->loop, &f->poll_timer, on_poll), 0);
        assert_int_equal(loop_timer_init(f->loop, &f->deadline_timer, on_deadline), 0);

        f->receiver.loop = f->loop;
        f->receiver.status = 200;
        f->receiver.listen.dispatch = receiver_accept;
        f->receiver.listen.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(f->receiver.listen.fd >= 0);
        strcpy(address.sun_path, f->socket_path);
        assert_int_equal(bind(f->receiver.listen.fd, (struct sockaddr *)&address, sizeof(address)),
                         0);
        assert_int_equal(listen(f->receiver.listen.fd, 64), 0);
        assert_int_equal(loop_add(f->loop, &f->receiver.listen, EPOLLIN), 0);

        memset(&f->config, 0, sizeof(f->config));
        urls[0] = f->url;
        f->config.report_urls = urls;
        f->config.n_report_urls = 1;
        assert_int_equal(report_start(f->loop, f->http, &f->config, &f->reporter), 0);
        f->config.report_urls = NULL;

        metrics_reset();
        *state = f;
        return 0;
}

static int teardown_delivery(void **state)
{
        struct fixture *f = *state;

        report_free(f->reporter);
        http_multi_free(f->http);
        loop_timer_release(f->loop, &f->poll_timer);
        loop_timer_release(f->loop, &f->deadline_timer);
        loop_remove(f->loop, &f->receiver.listen);
        close(f->receiver.listen.fd);
        loop_free(f->loop);

        for (size_t i = 0; i < f->receiver.n_requests; i++) {
                free(f->receiver.request_lines[i]);
                free(f->receiver.content_types[i]);
                free(f->receiver.bodies[i]);
        }
        unlink(f->socket_path);
        rmdir(f->directory);
        free(f->url);
        free(f);
        return 0;
}

static void notify(struct container *c, enum container_event event)
{
        c->sequence++;
        container_notify(c, event);
}

/* ContainerId and Sequence of a received body. */
static void parse_received(const char *body, char *ret_id, uint64_t *ret_sequence)
{
        json_object *object = parse_body(body);

        strcpy(ret_id, get_string(object, "ContainerId"));
        *ret_sequence = (uint64_t)get_int(object, "Sequence");
        json_object_put(object);
}

static bool nothing_pending(struct fixture *f, unsigned long long elapsed_usec)
{
        return report_pending(f->reporter) == 0;
}

static bool metric_equals(const char *series, unsigned long long value)
{
        _cleanup_free_ char *text = metrics_render_containers(NULL);
        _cleanup_free_ char *line = xasprintf("\n%s %llu\n", series, value);

        assert_non_null(text);
        if (!strstr(text, line))
                fail_msg("expected \"%s %llu\" in:\n%s", series, value, text);
        return true;
}

static void delivery_in_order(void **state)
{
        struct fixture *f = *state;
        struct container a;
        uint64_t last_sequence = 0;

        init_container(&a, ID_A, "web", NULL);
        for (unsigned i = 0; i < 20; i++)
                notify(&a, i == 0 ? CONTAINER_EVENT_INJECTED : CONTAINER_EVENT_STARTED);
        assert_int_equal(report_pending(f->reporter), 2);
        metric_equals("execvisor_report_queue", 2);

        assert_int_equal(run_script(f, nothing_pending, 5000000), 0);

        /* The first state went out at once; the newest replaced 2 to 19 while it was in flight. */
        assert_int_equal(f->receiver.n_requests, 2);
        for (size_t i = 0; i < f->receiver.n_requests; i++) {
                char id[CONTAINER_ID_MAX + 1];
                uint64_t sequence;

                assert_string_equal(f->receiver.request_lines[i],
                                    "POST /v1/reports?source=test HTTP/1.1");
                assert_non_null(f->receiver.content_types[i]);
                assert_string_equal(f->receiver.content_types[i], "application/json");
                parse_received(f->receiver.bodies[i], id, &sequence);
                assert_string_equal(id, ID_A);
                assert_true(sequence > last_sequence);
                last_sequence = sequence;
        }
        assert_int_equal(last_sequence, 20);
        metric_equals("execvisor_reports_total{result=\"delivered\"}", 2);
        metric_equals("execvisor_report_queue", 0);
}

/* Respond with 503 for 300 ms, then with 200 until nothing is pending. */
static bool recover_step(struct fixture *f, unsigned long long elapsed_usec)
{
        if (f->phase == 0) {
                if (elapsed_usec < 300000)
                        return false;
                f->requests_seen = f->receiver.n_requests;
                f->pending_seen = report_pending(f->reporter);
                f->receiver.status = 200;
                f->phase = 1;
                return false;
        }
        return report_pending(f->reporter) == 0;
}

static void receiver_recovers(void **state)
{
        struct fixture *f = *state;
        struct container a, b;
        bool got_a = false, got_b = false;
        size_t accepted = 0;

        f->receiver.status = 503;
        init_container(&a, ID_A, "web", NULL);
        init_container(&b, ID_B, "db", NULL);
        notify(&a, CONTAINER_EVENT_INJECTED);
        notify(&b, CONTAINER_EVENT_INJECTED);
        notify(&a, CONTAINER_EVENT_EXITED);
        notify(&a, CONTAINER_EVENT_STARTED);

        assert_int_equal(run_script(f, recover_step, 5000000), 0);

        /* The first sends failed and the retry waited for the first backoff
         * step, which is longer than 300 ms. */
        assert_int_equal(f->requests_seen, 2);
        assert_int_equal(f->pending_seen, 2);

        for (size_t i = 0; i < f->receiver.n_requests; i++) {
                char id[CONTAINER_ID_MAX + 1];
                uint64_t sequence;

                if (f->receiver.statuses[i] != 200)
                        continue;
                accepted++;
                parse_received(f->receiver.bodies[i], id, &sequence);
                if (streq(id, ID_A)) {
                        assert_false(got_a);
                        assert_int_equal(sequence, 3);
                        got_a = true;
                } else {
                        assert_string_equal(id, ID_B);
                        assert_false(got_b);
                        assert_int_equal(sequence, 1);
                        got_b = true;
                }
        }
        assert_int_equal(accepted, 2);
        assert_true(got_a);
        assert_true(got_b);
        metric_equals("execvisor_reports_total{result=\"delivered\"}", 2);
        metric_equals("execvisor_reports_total{result=\"failed\"}", 2);
}

/* Respond with 500 for 300 ms, forget the container, then respond with 200
 * for 1.5 s more. That is longer than the first backoff step, after which a
 * retry would come. */
static bool forget_step(struct fixture *f, unsigned long long elapsed_usec)
{
        if (f->phase == 0) {
                if (elapsed_usec < 300000)
                        return false;
                f->requests_seen = f->receiver.n_requests;
                f->pending_seen = report_pending(f->reporter);
                notify(f->subject, CONTAINER_EVENT_STOPPED);
                notify(f->subject, CONTAINER_EVENT_FORGOTTEN);
                f->pending_after_forget = report_pending(f->reporter);
                f->receiver.status = 200;
                f->phase = 1;
                return false;
        }
        return elapsed_usec >= 1800000;
}

static void forgotten_states_dropped(void **state)
{
        struct fixture *f = *state;
        struct container a;

        f->receiver.status = 500;
        init_container(&a, ID_A, "web", NULL);
        f->subject = &a;
        notify(&a, CONTAINER_EVENT_INJECTED);

        assert_int_equal(run_script(f, forget_step, 5000000), 0);

        assert_int_equal(f->requests_seen, 1);
        assert_int_equal(f->pending_seen, 1);
        assert_int_equal(f->pending_after_forget, 0);
        assert_int_equal(f->receiver.n_requests, 1);
        assert_int_equal(report_pending(f->reporter), 0);
}

static void second_reporter_rejected(void **state)
{
        struct fixture *f = *state;
        struct reporter *other = NULL;

        assert_int_equal(report_start(f->loop, f->http, &f->config, &other), -EBUSY);
        assert_null(other);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(body_fields),
            cmocka_unit_test(body_without_task_arn),
            cmocka_unit_test(body_sequence_and_events),
            cmocka_unit_test(queue_keeps_newest_waiting),
            cmocka_unit_test(queue_one_in_flight_per_container),
            cmocka_unit_test(queue_failed_state_waits_again),
            cmocka_unit_test(queue_failed_state_yields_to_newer),
            cmocka_unit_test(queue_caps_in_flight),
            cmocka_unit_test(queue_oldest_ready_first),
            cmocka_unit_test(queue_forget_drops_states),
            cmocka_unit_test(queue_put_after_forget),
            cmocka_unit_test_setup_teardown(delivery_in_order, setup_delivery, teardown_delivery),
            cmocka_unit_test_setup_teardown(receiver_recovers, setup_delivery, teardown_delivery),
            cmocka_unit_test_setup_teardown(forgotten_states_dropped, setup_delivery,
                                            teardown_delivery),
            cmocka_unit_test_setup_teardown(second_reporter_rejected, setup_delivery,
                                            teardown_delivery),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
