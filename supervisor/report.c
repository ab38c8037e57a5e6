#include "supervisor/report.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdlib.h>

#include "supervisor/config.h"
#include "supervisor/http.h"
#include "supervisor/log.h"
#include "supervisor/loop.h"
#include "supervisor/metrics.h"
#include "supervisor/util.h"

/* A receiver's reply is only read for error messages. */
#define REPORT_RESPONSE_SIZE_MAX (64U * 1024U)

/* ---- The queue of one receiver ---- */

/* The states of one container for one receiver. An entry exists while it
 * has a state waiting or in flight. */
struct queue_entry {
        struct report_state waiting;
        struct report_state in_flight;
        bool has_waiting;
        bool has_in_flight;
        /* The container's record is gone: the state in flight is not retried. */
        bool forgotten;

        struct queue_entry *previous;
        struct queue_entry *next;

        /* Link in the ready list: entries with a waiting state and nothing in flight. */
        bool ready;
        struct queue_entry *ready_previous;
        struct queue_entry *ready_next;
};

struct report_queue {
        /* FIXME: lookup by container id is a linear walk, so each event
         * costs O(containers). That is cheap for hundreds of containers per
         * host, but many thousands would need a hash table. */
        struct queue_entry *entries;
        /* Oldest first, so that no container starves while others change often. */
        struct queue_entry *ready_head;
        struct queue_entry *ready_tail;
        size_t n_waiting;
        size_t n_in_flight;
};

struct report_queue *report_queue_new(void)
{
        return xcalloc(1, sizeof(struct report_queue));
}

static void ready_append(struct report_queue *queue, struct queue_entry *entry)
{
        entry->ready = true;
        entry->ready_next = NULL;
        entry->ready_previous = queue->ready_tail;
        if (queue->ready_tail)
                queue->ready_tail->ready_next = entry;
        else
                queue->ready_head = entry;
        queue->ready_tail = entry;
}

static void ready_remove(struct report_queue *queue, struct queue_entry *entry)
{
        if (!entry->ready)
                return;

        if (entry->ready_previous)
                entry->ready_previous->ready_next = entry->ready_next;
        else
                queue->ready_head = entry->ready_next;
        if (entry->ready_next)
                entry->ready_next->ready_previous = entry->ready_previous;
        else
                queue->ready_tail = entry->ready_previous;

        entry->ready = false;
        entry->ready_previous = entry->ready_next = NULL;
}

static struct queue_entry *entry_find(const struct report_queue *queue, const char *container_id)
{
        for (struct queue_entry *e = queue->entries; e; e = e->next)
                if (streq(e->waiting.container_id, container_id))
                        return e;
        return NULL;
}

static struct queue_entry *entry_new(struct report_queue *queue, const char *container_id)
{
        struct queue_entry *entry = xcalloc(1, sizeof(*entry));

        /* Both states carry the id, so that lookups work in either. */
        snprintf(entry->waiting.container_id, sizeof(entry->waiting.container_id), "%s",
                 container_id);
        memcpy(entry->in_flight.container_id, entry->waiting.container_id,
               sizeof(entry->in_flight.container_id));

        entry->next = queue->entries;
        if (queue->entries)
                queue->entries->previous = entry;
        queue->entries = entry;
        return entry;
}

static void entry_drop_waiting(struct report_queue *queue, struct queue_entry *entry)
{
        if (!entry->has_waiting)
                return;

        ready_remove(queue, entry);
        free(entry->waiting.body);
        entry->waiting.body = NULL;
        entry->has_waiting = false;
        queue->n_waiting--;
}

/* Free the entry once it contains no state. */
static void entry_release_if_idle(struct report_queue *queue, struct queue_entry *entry)
{
        if (entry->has_waiting || entry->has_in_flight)
                return;

        if (entry->previous)
                entry->previous->next = entry->next;
        else
                queue->entries = entry->next;
        if (entry->next)
                entry->next->previous = entry->previous;
        free(entry);
}

void report_queue_free(struct report_queue *queue)
{
        if (!queue)
                return;

        while (queue->entries) {
                struct queue_entry *entry = queue->entries;

                queue->entries = entry->next;
                free(entry->waiting.body);
                free(entry->in_flight.body);
                free(entry);
        }
        free(queue);
}

void report_queue_put(struct report_queue *queue, const char *container_id, uint64_t sequence,
                      char *body)
{
        struct queue_entry *entry = entry_find(queue, container_id);

        if (!entry)
                entry = entry_new(queue, container_id);
        entry->forgotten = false;

        if (entry->has_waiting) {
                free(entry->waiting.body);
        } else {
                entry->has_waiting = true;
                queue->n_waiting++;
        }
        entry->waiting.sequence = sequence;
        entry->waiting.body = body;

        if (!entry->has_in_flight && !entry->ready)
                ready_append(queue, entry);
}

void report_queue_forget(struct report_queue *queue, const char *container_id)
{
        struct queue_entry *entry = entry_find(queue, container_id);

        if (!entry)
                return;

        entry_drop_waiting(queue, entry);
        if (entry->has_in_flight)
                entry->forgotten = true;
        entry_release_if_idle(queue, entry);
}

const struct report_state *report_queue_next(struct report_queue *queue, size_t max_in_flight)
{
        struct queue_entry *entry = queue->ready_head;

        if (!entry || queue->n_in_flight >= max_in_flight)
                return NULL;

        ready_remove(queue, entry);
        entry->in_flight.sequence = entry->waiting.sequence;
        entry->in_flight.body = TAKE_PTR(entry->waiting.body);
        entry->has_in_flight = true;
        entry->has_waiting = false;
        queue->n_waiting--;
        queue->n_in_flight++;
        return &entry->in_flight;
}

void report_queue_finish(struct report_queue *queue, const struct report_state *state,
                         bool delivered)
{
        struct queue_entry *entry = container_of(state, struct queue_entry, in_flight);

        entry->has_in_flight = false;
        queue->n_in_flight--;

        /* A failed state is sent again only while nothing newer replaces it,
         * so the receiver never receives a lower sequence number of a
         * container after a higher one. */
        if (!delivered && !entry->forgotten && !entry->has_waiting) {
                entry->waiting.sequence = entry->in_flight.sequence;
                entry->waiting.body = TAKE_PTR(entry->in_flight.body);
                entry->has_waiting = true;
                queue->n_waiting++;
        } else {
                free(entry->in_flight.body);
                entry->in_flight.body = NULL;
        }
        entry->forgotten = false;

        if (entry->has_waiting)
                ready_append(queue, entry);
        entry_release_if_idle(queue, entry);
}

size_t report_queue_waiting(const struct report_queue *queue)
{
        return queue->n_waiting;
}

size_t report_queue_in_flight(const struct report_queue *queue)
{
        return queue->n_in_flight;
}

const struct report_state *report_queue_find_waiting(const struct report_queue *queue,
                                                     const char *container_id)
{
        const struct queue_entry *entry = entry_find(queue, container_id);

        return entry && entry->has_waiting ? &entry->waiting : NULL;
}

/* ---- The body ---- */

char *report_body(const struct container *container, enum container_event event,
                  unsigned long long realtime_usec)
{
        const char *task_arn = container_label(container, REPORT_TASK_ARN_LABEL);
        json_object *object = json_object_new_object();
        char time[32];
        char *text;

        json_object_object_add(object, "ContainerId", json_object_new_string(container->id));
        json_object_object_add(object, "ContainerName",
                               json_object_new_string(container->name ? container->name : ""));
        if (task_arn)
                json_object_object_add(object, "TaskARN", json_object_new_string(task_arn));
        json_object_object_add(object, "ManagedAgent", container_agent_to_json(container));
        json_object_object_add(object, "Sequence", json_object_new_uint64(container->sequence));
        json_object_object_add(
            object, "Time",
            json_object_new_string(format_rfc3339(realtime_usec, time, sizeof(time))));
        json_object_object_add(object, "Event",
                               json_object_new_string(container_event_to_string(event)));

        text = xstrdup(json_object_to_json_string_ext(object, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(object);
        return text;
}

/* ---- Sending ---- */

struct report_target;

struct report_send {
        struct report_target *target;
        const struct report_state *state;
        struct http_request *request;
        struct report_send *previous;
        struct report_send *next;
};

/* One configured URL and the states its receiver has not yet received. */
struct report_target {
        struct reporter *reporter;
        char *display_url; /* the URL without user info and query, for messages */
        char *request_url; /* what curl requests */
        char *unix_socket; /* NULL for http and https URLs */
        struct report_queue *queue;
        struct report_send *sends;

        struct loop_timer retry_timer;
        /* The retry timer is armed: no send starts until it fires. */
        bool retry_pending;
        /* 0 while the receiver accepts reports; then the delay of the current step. */
        uint64_t backoff_usec;
        /* Failed sends since the last delivery, and since the last message. */
        unsigned failures;
        unsigned failures_not_logged;
};

struct reporter {
        struct loop *loop;
        struct http_multi *http;
        char *ca_file;
        struct report_target *targets;
        size_t n_targets;
};

/* container_add_observer() has no counterpart that removes an observer, so
 * the observer is added once and reaches the reporter through this pointer,
 * which report_free() clears. */
static struct reporter *active_reporter;
static bool observer_added;

static void target_pump(struct report_target *target);

size_t report_pending(const struct reporter *reporter)
{
        size_t count = 0;

        for (size_t i = 0; i < reporter->n_targets; i++)
                count += report_queue_waiting(reporter->targets[i].queue) +
                         report_queue_in_flight(reporter->targets[i].queue);
        return count;
}

static void update_queue_metric(const struct reporter *reporter)
{
        metrics_set_report_queue(report_pending(reporter));
}

static void send_free(struct report_send *send)
{
        struct report_target *target = send->target;

        if (send->previous)
                send->previous->next = send->next;
        else
                target->sends = send->next;
        if (send->next)
                send->next->previous = send->previous;
        free(send);
}

/* Why a send failed, for the log: curl's error with the errno of the
 * connect() call, or the status with the start of the receiver's reply. */
static char *describe_failure(const struct report_target *target, const struct http_result *result)
{
        char quoted[160];

        /* curl names the host and port of the request URL, "localhost port
         * 80", which would mislead for a unix socket. */
        if (target->unix_socket && result->curl_code == CURLE_COULDNT_CONNECT)
                return xasprintf("cannot connect to %s: %s", target->unix_socket,
                                 strerror(result->os_errno ? result->os_errno : ECONNREFUSED));
        if (result->curl_code != 0 && result->os_errno != 0)
                return xasprintf("%s (%s)", result->error, strerror(result->os_errno));
        if (result->curl_code != 0)
                return xasprintf("%s", result->error);
        if (result->body_size == 0)
                return xasprintf("HTTP status %ld", result->status);
        return xasprintf("HTTP status %ld, response %s", result->status,
                         log_quote(result->body, quoted, sizeof(quoted)));
}

/* Up to half of the delay is random, so that supervisors that lost the same
 * receiver at the same moment do not all retry at the same moment. */
static uint64_t jittered(uint64_t delay_usec)
{
        uint64_t half = delay_usec / 2;

        return delay_usec - half + arc4random_uniform((uint32_t)half + 1);
}

/* Enter the next backoff step unless one is running. Returns false when the
 * retry timer could not be armed: the states then wait for the next event. */
static bool target_failed(struct report_target *target, const char *cause)
{
        uint64_t delay_usec;
        int r;

        target->failures++;
        target->failures_not_logged++;
        if (target->retry_pending)
                return true; /* a send that started before this step began */

        target->backoff_usec =
            target->backoff_usec == 0 ? REPORT_BACKOFF_MIN_USEC : target->backoff_usec * 2;
        if (target->backoff_usec > REPORT_BACKOFF_MAX_USEC)
                target->backoff_usec = REPORT_BACKOFF_MAX_USEC;
        delay_usec = jittered(target->backoff_usec);

        r = loop_timer_arm(&target->retry_timer, delay_usec);
        if (r < 0) {
                log_error("cannot deliver reports to %s: %s; arming the retry timer failed: %s, "
                          "retrying at the next event",
                          target->display_url, cause, strerror(-r));
                target->failures_not_logged = 0;
                return false;
        }
        target->retry_pending = true;

        /* One message per backoff step. */
        log_warning("cannot deliver reports to %s: %s; retrying in %.1f s (failed sends since "
                    "the last message: %u, states pending: %zu)",
                    target->display_url, cause, (double)delay_usec / 1e6,
                    target->failures_not_logged,
                    report_queue_waiting(target->queue) + report_queue_in_flight(target->queue));
        target->failures_not_logged = 0;
        return true;
}

static void target_delivered(struct report_target *target)
{
        if (target->backoff_usec != 0)
                log_notice("reports to %s delivered again after %u failed sends",
                           target->display_url, target->failures);

        target->backoff_usec = 0;
        target->failures = 0;
        target->failures_not_logged = 0;

        /* A send that started before the receiver failed got through: the
         * receiver is back, so the retry need not wait. */
        if (target->retry_pending) {
                (void)loop_timer_arm(&target->retry_timer, 0);
                target->retry_pending = false;
        }
}

static void send_done(void *userdata, const struct http_result *result)
{
        struct report_send *send = userdata;
        struct report_target *target = send->target;
        bool delivered = result->curl_code == 0 && result->status >= 200 && result->status < 300;
        bool may_send = true;

        if (delivered)
                log_debug("report %" PRIu64 " of container %.12s delivered to %s",
                          send->state->sequence, send->state->container_id, target->display_url);

        report_queue_finish(target->queue, send->state, delivered);
        send_free(send);
        metrics_report(delivered);

        if (delivered) {
                target_delivered(target);
        } else {
                _cleanup_free_ char *cause = describe_failure(target, result);

                may_send = target_failed(target, cause);
        }

        if (may_send)
                target_pump(target);
        update_queue_metric(target->reporter);
}

static int send_start(struct report_target *target, const struct report_state *state)
{
        struct report_send *send = xcalloc(1, sizeof(*send));
        const struct http_request_options options = {
            .url = target->request_url,
            .unix_socket = target->unix_socket,
            .method = "POST",
            .body = state->body,
            .content_type = "application/json",
            .timeout_ms = REPORT_TIMEOUT_MSEC,
            .max_response_size = REPORT_RESPONSE_SIZE_MAX,
            .ca_file = target->reporter->ca_file,
            .on_done = send_done,
            .userdata = send,
        };
        int r;

        send->target = target;
        send->state = state;

        r = http_request_start(target->reporter->http, &options, &send->request);
        if (r < 0) {
                free(send);
                return r;
        }

        send->next = target->sends;
        if (target->sends)
                target->sends->previous = send;
        target->sends = send;
        return 0;
}

/* Start sends until the queue has nothing ready or the cap is reached.
 * While the receiver fails, one send at a time probes whether it is back. */
static void target_pump(struct report_target *target)
{
        size_t max_in_flight = target->backoff_usec == 0 ? REPORT_MAX_IN_FLIGHT : 1;
        const struct report_state *state;

        while (!target->retry_pending &&
               (state = report_queue_next(target->queue, max_in_flight))) {
                _cleanup_free_ char *cause = NULL;
                int r = send_start(target, state);

                if (r >= 0)
                        continue;

                cause = xasprintf("starting the request failed: %s", strerror(-r));
                report_queue_finish(target->queue, state, false);
                metrics_report(false);
                if (!target_failed(target, cause))
                        break;
        }
}

static void on_retry_timer(struct loop_timer *timer)
{
        struct report_target *target = container_of(timer, struct report_target, retry_timer);

        target->retry_pending = false;
        target_pump(target);
        update_queue_metric(target->reporter);
}

static void on_container_event(const struct container *container, enum container_event event,
                               void *userdata)
{
        struct reporter *reporter = active_reporter;
        _cleanup_free_ char *body = NULL;

        if (!reporter || reporter->n_targets == 0)
                return;

        /* The record is freed right after this event: keep nothing of it. */
        if (event == CONTAINER_EVENT_FORGOTTEN) {
                for (size_t i = 0; i < reporter->n_targets; i++)
                        report_queue_forget(reporter->targets[i].queue, container->id);
                update_queue_metric(reporter);
                return;
        }

        body = report_body(container, event, now_realtime_usec());
        for (size_t i = 0; i < reporter->n_targets; i++) {
                struct report_target *target = &reporter->targets[i];

                report_queue_put(target->queue, container->id, container->sequence, xstrdup(body));
                target_pump(target);
        }
        update_queue_metric(reporter);
}

/* The URL without user info and query, which may hold credentials. */
static char *url_for_display(const char *url)
{
        CURLU *handle = curl_url();
        char *stripped = NULL;
        char *display;

        if (!handle)
                return xstrdup("(URL)");

        if (curl_url_set(handle, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_set(handle, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
            curl_url_set(handle, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
            curl_url_set(handle, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
            curl_url_get(handle, CURLUPART_URL, &stripped, 0) != CURLUE_OK) {
                curl_url_cleanup(handle);
                return xstrdup("(URL that libcurl cannot parse)");
        }

        display = xstrdup(stripped);
        curl_free(stripped);
        curl_url_cleanup(handle);
        return display;
}

/* Split "unix:SOCKET-PATH:/URL-PATH" into the socket path and an http URL
 * for the local host; take http and https URLs as they are. */
static int target_init(struct reporter *reporter, struct report_target *target, const char *url)
{
        int r;

        target->reporter = reporter;
        target->retry_timer.source.fd = -1;

        if (startswith(url, "unix:")) {
                const char *path = url + strlen("unix:");
                const char *separator = strstr(path, ":/");

                if (!separator || separator == path)
                        return -EINVAL;
                target->unix_socket = strndup(path, (size_t)(separator - path));
                if (!target->unix_socket)
                        return -ENOMEM;
                target->request_url = xasprintf("http://localhost%s", separator + 1);
                /* Without the query, as for http URLs. */
                target->display_url = strndup(url, strcspn(url, "?"));
                if (!target->display_url)
                        return -ENOMEM;
        } else {
                target->request_url = xstrdup(url);
                target->display_url = url_for_display(url);
        }

        r = loop_timer_init(reporter->loop, &target->retry_timer, on_retry_timer);
        if (r < 0)
                return r;

        target->queue = report_queue_new();
        return 0;
}

static void target_done(struct report_target *target)
{
        while (target->sends) {
                http_request_cancel(target->sends->request);
                send_free(target->sends);
        }
        report_queue_free(target->queue);
        loop_timer_release(target->reporter->loop, &target->retry_timer);
        free(target->display_url);
        free(target->request_url);
        free(target->unix_socket);
}

int report_start(struct loop *loop, struct http_multi *http, const struct config *config,
                 struct reporter **ret_reporter)
{
        struct reporter *reporter;
        int r;

        if (active_reporter)
                return -EBUSY;

        reporter = xcalloc(1, sizeof(*reporter));
        reporter->loop = loop;
        reporter->http = http;
        reporter->ca_file = config->report_ca_file ? xstrdup(config->report_ca_file) : NULL;
        reporter->targets =
            xcalloc(config->n_report_urls ? config->n_report_urls : 1, sizeof(*reporter->targets));

        for (size_t i = 0; i < config->n_report_urls; i++) {
                r = target_init(reporter, &reporter->targets[i], config->report_urls[i]);
                reporter->n_targets++;
                if (r < 0) {
                        log_error("cannot set up reports to %s: %s",
                                  reporter->targets[i].display_url
                                      ? reporter->targets[i].display_url
                                      : "an invalid URL",
                                  strerror(-r));
                        report_free(reporter);
                        return r;
                }
        }

        if (!observer_added) {
                container_add_observer(on_container_event, NULL);
                observer_added = true;
        }
        active_reporter = reporter;
        update_queue_metric(reporter);

        *ret_reporter = reporter;
        return 0;
}

void report_free(struct reporter *reporter)
{
        if (!reporter)
                return;

        if (active_reporter == reporter)
                active_reporter = NULL;

        for (size_t i = 0; i < reporter->n_targets; i++)
                target_done(&reporter->targets[i]);
        free(reporter->targets);
        free(reporter->ca_file);
        free(reporter);
        metrics_set_report_queue(0);
}
