#include "supervisor/docker.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/random.h>
#include <sys/un.h>

#include "supervisor/http.h"
#include "supervisor/log.h"
#include "supervisor/loop.h"
#include "supervisor/util.h"

/* List and inspect requests; the event stream has no timeout. */
#define DOCKER_REQUEST_TIMEOUT_MS 30000L
/* Inspects run in parallel up to this many, so that a burst of starts does
 * not open one connection to the engine per container. */
#define DOCKER_INSPECTS_IN_FLIGHT 8
/* Events waiting behind unfinished inspects. Past this the engine is not
 * keeping up, and a fresh synchronization is cheaper than the backlog. */
#define DOCKER_QUEUE_MAX 4096
/* The API version used until the engine reports its own (that of Docker 20.10). */
#define DOCKER_API_MINOR_DEFAULT 41

#define BACKOFF_INITIAL_USEC 250000ULL
#define BACKOFF_MAX_USEC 30000000ULL
/* A connection that stayed up this long resets the backoff. */
#define BACKOFF_RESET_USEC 30000000ULL

/* {"type":["container"]}, URL-encoded. */
#define EVENTS_FILTER "%7B%22type%22%3A%5B%22container%22%5D%7D"

enum client_state {
        CLIENT_STOPPED,    /* docker_client_start() not called yet */
        CLIENT_WAITING,    /* the retry timer runs */
        CLIENT_CONNECTING, /* GET /version in flight */
        CLIENT_SYNCING,    /* event stream open, list and inspects in flight */
        CLIENT_CONNECTED,
};

struct inspect_job {
        struct docker_client *client;
        char id[DOCKER_ID_LENGTH + 1];
        struct http_request *request;
        bool started;
        bool done;
        int error;
        char message[256];
        struct container_info *info;
};

enum entry_kind {
        ENTRY_SYNC,
        ENTRY_START,
        ENTRY_DIE,
        ENTRY_DESTROY,
};

/* Work delivered to the callbacks strictly in queue order: the
 * synchronization first, then events as they arrived. A start event waits
 * for its inspect, and everything behind it waits too, so that a die is
 * never reported before the start it follows. */
struct queue_entry {
        enum entry_kind kind;
        struct queue_entry *next;

        /* ENTRY_SYNC */
        bool listed;
        struct inspect_job *jobs;
        size_t n_jobs;

        /* events */
        char id[DOCKER_ID_LENGTH + 1];
        int exit_code;
        uint64_t time_usec;
        bool stale; /* older than the synchronization it queued behind */
        /* For a start queued behind a synchronization that contained the
         * container: its start time then, to drop the same start twice. */
        uint64_t synced_started_usec;
        struct inspect_job job; /* ENTRY_START */
};

struct public_inspect {
        struct docker_client *client;
        struct http_request *request;
        char *name; /* id or name as given */
        void (*callback)(void *userdata, int error, const struct container_info *info);
        void *userdata;
        struct public_inspect *previous;
        struct public_inspect *next;
};

struct docker_client {
        struct loop *loop;
        struct http_multi *http;
        char *socket;
        struct docker_callbacks callbacks;
        void *userdata;

        enum client_state state;
        unsigned api_major, api_minor;
        char engine_version[64];
        struct docker_event_parser *parser;

        struct http_request *version_request;
        struct http_request *events_request;
        struct http_request *list_request;

        struct queue_entry *queue_head;
        struct queue_entry *queue_tail;
        size_t queue_length;
        struct queue_entry *sync_entry; /* waiting for the list, NULL once listed */
        unsigned inspects_in_flight;

        struct loop_timer retry_timer;
        unsigned long long backoff_usec;
        unsigned attempts;  /* failed connects since the last synchronization */
        bool reported_down; /* on_disconnected called for the current outage */
        unsigned long long connected_usec;

        struct public_inspect *inspects;
};

static struct docker_client *client_from_timer(struct loop_timer *timer)
{
        return (struct docker_client *)((char *)timer -
                                        offsetof(struct docker_client, retry_timer));
}

static char *client_url(struct docker_client *client, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static char *client_url(struct docker_client *client, const char *format, ...)
{
        _cleanup_free_ char *path = NULL;
        va_list args;
        int r;

        va_start(args, format);
        r = vasprintf(&path, format, args);
        va_end(args);
        if (r < 0)
                abort();

        return xasprintf("http://localhost/v%u.%u%s", client->api_major, client->api_minor, path);
}

/* Describe a failed request for the log and on_disconnected. Returns false
 * when the request succeeded with status 200. */
static bool describe_failure(struct docker_client *client, const char *what,
                             const struct http_result *result, char *reason, size_t size)
{
        char message[256], quoted[300];

        if (result->curl_code == CURLE_COULDNT_CONNECT && result->os_errno > 0) {
                snprintf(reason, size, "connect to %s failed: %s", client->socket,
                         strerror(result->os_errno));
                return true;
        }
        if (result->curl_code != CURLE_OK) {
                snprintf(reason, size, "%s on %s failed: %s", what, client->socket, result->error);
                return true;
        }
        if (result->status != 200) {
                docker_error_message(result->body, result->body_size, message, sizeof(message));
                snprintf(reason, size, "%s on %s returned HTTP %ld: %s", what, client->socket,
                         result->status, log_quote(message, quoted, sizeof(quoted)));
                return true;
        }
        return false;
}

/* Turn the response of an inspect into an info or an error. */
static int inspect_result(const struct http_result *result, struct container_info **ret_info,
                          char *message, size_t size)
{
        char text[200];

        if (result->curl_code != CURLE_OK) {
                snprintf(message, size, "%s", result->error);
                if (result->curl_code == CURLE_OPERATION_TIMEDOUT)
                        return -ETIMEDOUT;
                if (result->curl_code == CURLE_COULDNT_CONNECT)
                        return -ECONNREFUSED;
                return -EIO;
        }
        if (result->status == 404) {
                snprintf(message, size, "no such container");
                return -ENOENT;
        }
        if (result->status != 200) {
                docker_error_message(result->body, result->body_size, text, sizeof(text));
                snprintf(message, size, "HTTP %ld: %s", result->status, text);
                return -EIO;
        }
        return docker_parse_inspect(result->body, result->body_size, ret_info, message, size);
}

/* The container runs an init that an agent can join. */
static bool info_is_live(const struct container_info *info)
{
        return info->running && !info->restarting && info->pid > 0;
}

static void job_release(struct docker_client *client, struct inspect_job *job)
{
        if (job->request) {
                http_request_cancel(job->request);
                job->request = NULL;
                client->inspects_in_flight--;
        }
        container_info_free(job->info);
        job->info = NULL;
}

static void entry_free(struct docker_client *client, struct queue_entry *entry)
{
        if (entry->kind == ENTRY_SYNC) {
                for (size_t i = 0; i < entry->n_jobs; i++)
                        job_release(client, &entry->jobs[i]);
                free(entry->jobs);
        } else if (entry->kind == ENTRY_START) {
                job_release(client, &entry->job);
        }
        free(entry);
}

static void queue_append(struct docker_client *client, struct queue_entry *entry)
{
        if (client->queue_tail)
                client->queue_tail->next = entry;
        else
                client->queue_head = entry;
        client->queue_tail = entry;
        client->queue_length++;
}

static struct queue_entry *queue_pop(struct docker_client *client)
{
        struct queue_entry *entry = client->queue_head;

        client->queue_head = entry->next;
        if (!client->queue_head)
                client->queue_tail = NULL;
        client->queue_length--;
        return entry;
}

static void queue_clear(struct docker_client *client)
{
        while (client->queue_head)
                entry_free(client, queue_pop(client));
        client->sync_entry = NULL;
}

static void client_pump(struct docker_client *client);

static void job_done(void *userdata, const struct http_result *result)
{
        struct inspect_job *job = userdata;
        struct docker_client *client = job->client;

        job->request = NULL;
        client->inspects_in_flight--;
        job->done = true;
        job->error = inspect_result(result, &job->info, job->message, sizeof(job->message));

        client_pump(client);
}

static void job_start(struct docker_client *client, struct inspect_job *job)
{
        _cleanup_free_ char *url = client_url(client, "/containers/%s/json", job->id);
        struct http_request_options options = {
            .url = url,
            .unix_socket = client->socket,
            .timeout_ms = DOCKER_REQUEST_TIMEOUT_MS,
            .on_done = job_done,
            .userdata = job,
        };
        int r;

        job->started = true;
        r = http_request_start(client->http, &options, &job->request);
        if (r < 0) {
                job->done = true;
                job->error = r;
                snprintf(job->message, sizeof(job->message), "starting the request failed: %s",
                         strerror(-r));
                return;
        }
        client->inspects_in_flight++;
}

static bool entry_ready(const struct queue_entry *entry)
{
        switch (entry->kind) {
        case ENTRY_SYNC:
                if (!entry->listed)
                        return false;
                for (size_t i = 0; i < entry->n_jobs; i++)
                        if (!entry->jobs[i].done)
                                return false;
                return true;
        case ENTRY_START:
                return entry->stale || entry->job.done;
        case ENTRY_DIE:
        case ENTRY_DESTROY:
                break;
        }
        return true;
}

static void log_job_failure(const struct inspect_job *job, const char *consequence)
{
        char quoted[300];

        if (job->error == -ENOENT)
                log_debug("container %.12s is gone before it could be inspected; %s", job->id,
                          consequence);
        else
                log_warning("inspecting container %.12s failed: %s; %s", job->id,
                            log_quote(job->message, quoted, sizeof(quoted)), consequence);
}

/* Mark what the synchronization already covers among the events queued
 * behind it: an event older than the container's current start describes an
 * earlier run, and a start event for the same run would be reported twice. */
static void mark_covered_events(struct docker_client *client, struct queue_entry *sync,
                                const struct container_info *const *infos, size_t count)
{
        for (struct queue_entry *entry = sync->next; entry; entry = entry->next) {
                for (size_t i = 0; i < count; i++) {
                        if (!streq(entry->id, infos[i]->id))
                                continue;

                        if (entry->time_usec < infos[i]->started_usec) {
                                entry->stale = true;
                                if (entry->kind == ENTRY_START)
                                        job_release(client, &entry->job);
                        } else if (entry->kind == ENTRY_START) {
                                entry->synced_started_usec = infos[i]->started_usec;
                        }
                        break;
                }
        }
}

static void deliver_sync(struct docker_client *client, struct queue_entry *entry)
{
        _cleanup_free_ const struct container_info **infos = NULL;
        size_t count = 0;

        infos = xcalloc(entry->n_jobs + 1, sizeof(*infos));
        for (size_t i = 0; i < entry->n_jobs; i++) {
                struct inspect_job *job = &entry->jobs[i];

                if (job->error < 0)
                        log_job_failure(job, "leaving it out of the synchronization");
                else if (info_is_live(job->info))
                        infos[count++] = job->info;
        }

        mark_covered_events(client, entry, infos, count);

        client->state = CLIENT_CONNECTED;
        client->connected_usec = now_monotonic_usec();
        client->reported_down = false;
        client->attempts = 0;
        log_info("synchronized with Docker engine %s on %s (API %u.%u): %zu running container%s",
                 client->engine_version, client->socket, client->api_major, client->api_minor,
                 count, count == 1 ? "" : "s");

        if (client->callbacks.on_sync)
                client->callbacks.on_sync(client->userdata, infos, count);
}

static void deliver_start(struct docker_client *client, struct queue_entry *entry)
{
        const struct container_info *info = entry->job.info;

        if (entry->stale)
                return;
        if (entry->job.error < 0) {
                log_job_failure(&entry->job, "ignoring its start event");
                return;
        }
        if (!info_is_live(info)) {
                log_debug("container %.12s stopped before it could be inspected; ignoring its "
                          "start event",
                          entry->id);
                return;
        }
        if (entry->synced_started_usec != 0 && info->started_usec == entry->synced_started_usec)
                return;

        if (client->callbacks.on_started)
                client->callbacks.on_started(client->userdata, info);
}

static void entry_deliver(struct docker_client *client, struct queue_entry *entry)
{
        switch (entry->kind) {
        case ENTRY_SYNC:
                deliver_sync(client, entry);
                return;
        case ENTRY_START:
                deliver_start(client, entry);
                return;
        case ENTRY_DIE:
                if (!entry->stale && client->callbacks.on_died)
                        client->callbacks.on_died(client->userdata, entry->id, entry->exit_code);
                return;
        case ENTRY_DESTROY:
                if (!entry->stale && client->callbacks.on_destroyed)
                        client->callbacks.on_destroyed(client->userdata, entry->id);
                return;
        }
}

static void client_pump(struct docker_client *client)
{
        struct queue_entry *entry;

        /* Start inspects in queue order, so that the head is ready first. */
        for (entry = client->queue_head;
             entry && client->inspects_in_flight < DOCKER_INSPECTS_IN_FLIGHT; entry = entry->next) {
                if (entry->kind == ENTRY_SYNC) {
                        for (size_t i = 0; i < entry->n_jobs &&
                                           client->inspects_in_flight < DOCKER_INSPECTS_IN_FLIGHT;
                             i++)
                                if (!entry->jobs[i].started)
                                        job_start(client, &entry->jobs[i]);
                } else if (entry->kind == ENTRY_START && !entry->stale && !entry->job.started) {
                        job_start(client, &entry->job);
                }
        }

        while (client->queue_head && entry_ready(client->queue_head)) {
                entry = queue_pop(client);
                entry_deliver(client, entry);
                entry_free(client, entry);
        }
}

static void format_delay(unsigned long long usec, char *buffer, size_t size)
{
        if (usec < 1000000ULL)
                snprintf(buffer, size, "%llums", usec / 1000ULL);
        else if (usec < 10000000ULL)
                snprintf(buffer, size, "%.1fs", (double)usec / 1e6);
        else
                snprintf(buffer, size, "%llus", usec / 1000000ULL);
}

/* Next retry delay: the backoff step, with "equal jitter" (half fixed, half
 * random) so that supervisors on many hosts do not reconnect in lockstep
 * after an engine upgrade. */
static unsigned long long next_retry_delay(struct docker_client *client)
{
        unsigned long long random_value;

        if (client->backoff_usec == 0)
                client->backoff_usec = BACKOFF_INITIAL_USEC;
        else if (client->backoff_usec < BACKOFF_MAX_USEC / 2)
                client->backoff_usec *= 2;
        else
                client->backoff_usec = BACKOFF_MAX_USEC;

        if (getrandom(&random_value, sizeof(random_value), GRND_NONBLOCK) != sizeof(random_value))
                random_value = now_monotonic_usec();
        return client->backoff_usec / 2 + random_value % (client->backoff_usec / 2 + 1);
}

static void client_cancel_requests(struct docker_client *client)
{
        http_request_cancel(client->version_request);
        client->version_request = NULL;
        http_request_cancel(client->events_request);
        client->events_request = NULL;
        http_request_cancel(client->list_request);
        client->list_request = NULL;
        queue_clear(client);
}

/* Drop the connection, tell the caller once per outage, and schedule a
 * reconnect. Events still queued are dropped: the next synchronization
 * covers them. */
static void client_fail(struct docker_client *client, const char *reason)
{
        unsigned long long delay;
        char delay_text[32];
        int r;

        if (client->state == CLIENT_CONNECTED &&
            now_monotonic_usec() - client->connected_usec >= BACKOFF_RESET_USEC)
                client->backoff_usec = 0;

        client_cancel_requests(client);
        client->state = CLIENT_WAITING;
        client->attempts++;

        delay = next_retry_delay(client);
        format_delay(delay, delay_text, sizeof(delay_text));
        if (!client->reported_down)
                log_warning("%s; retrying in %s", reason, delay_text);
        else
                log_info("%s; retrying in %s (attempt %u)", reason, delay_text, client->attempts);

        r = loop_timer_arm(&client->retry_timer, delay);
        if (r < 0)
                log_error(
                    "arming the Docker reconnect timer failed: %s; the client stays disconnected",
                    strerror(-r));

        if (!client->reported_down) {
                client->reported_down = true;
                if (client->callbacks.on_disconnected)
                        client->callbacks.on_disconnected(client->userdata, reason);
        }
}

static void client_on_event(void *userdata, const struct docker_event *event)
{
        struct docker_client *client = userdata;
        struct queue_entry *entry;
        enum entry_kind kind;

        if (streq(event->action, "start"))
                kind = ENTRY_START;
        else if (streq(event->action, "die"))
                kind = ENTRY_DIE;
        else if (streq(event->action, "destroy"))
                kind = ENTRY_DESTROY;
        else
                return;

        entry = xcalloc(1, sizeof(*entry));
        entry->kind = kind;
        memcpy(entry->id, event->id, sizeof(entry->id));
        entry->exit_code = event->exit_code;
        entry->time_usec = event->time_nsec / 1000ULL;
        if (kind == ENTRY_START) {
                entry->job.client = client;
                memcpy(entry->job.id, event->id, sizeof(entry->job.id));
        }
        queue_append(client, entry);
}

static void client_on_parse_error(void *userdata, int error, const char *message)
{
        char quoted[600];

        log_warning("Docker event stream: %s; ignoring",
                    log_quote(message, quoted, sizeof(quoted)));
}

static int events_data(void *userdata, const char *data, size_t size)
{
        struct docker_client *client = userdata;
        char reason[128];

        docker_event_parser_feed(client->parser, data, size);
        client_pump(client);

        if (client->queue_length > DOCKER_QUEUE_MAX) {
                snprintf(reason, sizeof(reason),
                         "more than %d container events wait for inspects; resynchronizing",
                         DOCKER_QUEUE_MAX);
                client_fail(client, reason);
        }
        return 0;
}

static void events_done(void *userdata, const struct http_result *result)
{
        struct docker_client *client = userdata;
        char reason[512];

        client->events_request = NULL;
        if (!describe_failure(client, "GET /events", result, reason, sizeof(reason)))
                snprintf(reason, sizeof(reason), "the Docker engine on %s closed the event stream",
                         client->socket);
        client_fail(client, reason);
}

static void list_done(void *userdata, const struct http_result *result)
{
        struct docker_client *client = userdata;
        struct queue_entry *sync = client->sync_entry;
        char reason[512], error[256];
        char **ids = NULL;
        size_t count = 0;
        int r;

        client->list_request = NULL;
        if (!sync)
                return;
        if (describe_failure(client, "GET /containers/json", result, reason, sizeof(reason))) {
                client_fail(client, reason);
                return;
        }

        r = docker_parse_container_ids(result->body, result->body_size, &ids, &count, error,
                                       sizeof(error));
        if (r < 0) {
                snprintf(reason, sizeof(reason), "invalid container list from %s: %s",
                         client->socket, error);
                client_fail(client, reason);
                return;
        }

        sync->jobs = xcalloc(count ? count : 1, sizeof(*sync->jobs));
        sync->n_jobs = count;
        for (size_t i = 0; i < count; i++) {
                sync->jobs[i].client = client;
                memcpy(sync->jobs[i].id, ids[i], sizeof(sync->jobs[i].id));
        }
        docker_ids_free(ids);
        sync->listed = true;
        client->sync_entry = NULL;

        client_pump(client);
}

/* Open the event stream and list the containers in parallel. The stream
 * starts at the current time ("since"), and the engine replays from its event
 * log what happened between that time and its subscription. So no event
 * between the list and the stream is lost, and mark_covered_events() drops
 * what both report. */
static void client_open_stream(struct docker_client *client)
{
        unsigned long long now = now_realtime_usec();
        _cleanup_free_ char *events_url = NULL, *list_url = NULL;
        struct http_request_options events = {
            .unix_socket = client->socket,
            .on_data = events_data,
            .on_done = events_done,
            .userdata = client,
        };
        struct http_request_options list = {
            .unix_socket = client->socket,
            .timeout_ms = DOCKER_REQUEST_TIMEOUT_MS,
            .max_response_size = 64U * 1024U * 1024U,
            .on_done = list_done,
            .userdata = client,
        };
        char reason[128];
        int r;

        docker_event_parser_reset(client->parser);
        client->state = CLIENT_SYNCING;
        client->sync_entry = xcalloc(1, sizeof(*client->sync_entry));
        client->sync_entry->kind = ENTRY_SYNC;
        queue_append(client, client->sync_entry);

        events_url = client_url(client, "/events?since=%llu.%09llu&filters=%s", now / 1000000ULL,
                                (now % 1000000ULL) * 1000ULL, EVENTS_FILTER);
        events.url = events_url;
        r = http_request_start(client->http, &events, &client->events_request);
        if (r < 0) {
                snprintf(reason, sizeof(reason), "starting GET /events failed: %s", strerror(-r));
                client_fail(client, reason);
                return;
        }

        list_url = client_url(client, "/containers/json");
        list.url = list_url;
        r = http_request_start(client->http, &list, &client->list_request);
        if (r < 0) {
                snprintf(reason, sizeof(reason), "starting GET /containers/json failed: %s",
                         strerror(-r));
                client_fail(client, reason);
        }
}

static void version_done(void *userdata, const struct http_result *result)
{
        struct docker_client *client = userdata;
        struct docker_version version;
        char reason[512], error[256];
        int r;

        client->version_request = NULL;
        if (describe_failure(client, "GET /version", result, reason, sizeof(reason))) {
                client_fail(client, reason);
                return;
        }

        r = docker_parse_version(result->body, result->body_size, &version, error, sizeof(error));
        if (r < 0) {
                snprintf(reason, sizeof(reason), "invalid version document from %s: %s",
                         client->socket, error);
                client_fail(client, reason);
                return;
        }

        r = docker_choose_api_version(&version, &client->api_major, &client->api_minor);
        if (r < 0) {
                snprintf(reason, sizeof(reason),
                         "the Docker engine on %s speaks API %u.%u to %u.%u, and %u.%u or later is "
                         "required",
                         client->socket, version.min_api_major, version.min_api_minor,
                         version.api_major, version.api_minor, DOCKER_API_MAJOR,
                         DOCKER_API_MINOR_MIN);
                client_fail(client, reason);
                return;
        }

        snprintf(client->engine_version, sizeof(client->engine_version), "%s", version.engine);
        log_debug("connected to Docker engine %s on %s, using API %u.%u", version.engine,
                  client->socket, client->api_major, client->api_minor);
        client_open_stream(client);
}

static void client_connect(struct docker_client *client)
{
        struct http_request_options options = {
            .url = "http://localhost/version",
            .unix_socket = client->socket,
            .timeout_ms = DOCKER_REQUEST_TIMEOUT_MS,
            .on_done = version_done,
            .userdata = client,
        };
        char reason[128];
        int r;

        client->state = CLIENT_CONNECTING;
        r = http_request_start(client->http, &options, &client->version_request);
        if (r < 0) {
                snprintf(reason, sizeof(reason), "starting GET /version failed: %s", strerror(-r));
                client_fail(client, reason);
        }
}

static void retry_fire(struct loop_timer *timer)
{
        client_connect(client_from_timer(timer));
}

int docker_client_new(struct loop *loop, struct http_multi *http, const char *socket,
                      const struct docker_callbacks *callbacks, void *userdata,
                      struct docker_client **ret_client)
{
        static const struct docker_event_parser_callbacks parser_callbacks = {
            .on_event = client_on_event,
            .on_error = client_on_parse_error,
        };
        struct docker_client *client;
        int r;

        if (!socket)
                socket = DOCKER_SOCKET_DEFAULT;
        if (socket[0] == '\0')
                return -EINVAL;
        if (strlen(socket) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
                return -ENAMETOOLONG;

        client = xcalloc(1, sizeof(*client));
        client->loop = loop;
        client->http = http;
        client->socket = xstrdup(socket);
        client->callbacks = *callbacks;
        client->userdata = userdata;
        client->api_major = DOCKER_API_MAJOR;
        client->api_minor = DOCKER_API_MINOR_DEFAULT;
        client->retry_timer.source.fd = -1;

        r = docker_event_parser_new(0, &parser_callbacks, client, &client->parser);
        if (r < 0)
                goto fail;
        r = loop_timer_init(loop, &client->retry_timer, retry_fire);
        if (r < 0)
                goto fail;

        *ret_client = client;
        return 0;

fail:
        docker_client_free(client);
        return r;
}

int docker_client_start(struct docker_client *client)
{
        if (client->state != CLIENT_STOPPED)
                return -EALREADY;
        client_connect(client);
        return 0;
}

void docker_client_free(struct docker_client *client)
{
        if (!client)
                return;

        client_cancel_requests(client);
        while (client->inspects) {
                struct public_inspect *inspect = client->inspects;

                client->inspects = inspect->next;
                http_request_cancel(inspect->request);
                free(inspect->name);
                free(inspect);
        }
        loop_timer_release(client->loop, &client->retry_timer);
        docker_event_parser_free(client->parser);
        free(client->socket);
        free(client);
}

bool docker_client_is_connected(const struct docker_client *client)
{
        return client->state == CLIENT_CONNECTED;
}

static void public_inspect_unlink(struct public_inspect *inspect)
{
        struct docker_client *client = inspect->client;

        if (inspect->previous)
                inspect->previous->next = inspect->next;
        else
                client->inspects = inspect->next;
        if (inspect->next)
                inspect->next->previous = inspect->previous;
}

static void public_inspect_done(void *userdata, const struct http_result *result)
{
        _cleanup_free_ struct public_inspect *inspect = userdata;
        _cleanup_(container_info_freep) struct container_info *info = NULL;
        char message[256];
        int r;

        /* Unlinked first, so that docker_inspect_cancel() from the callback
         * does not reach this record. */
        public_inspect_unlink(inspect);

        r = inspect_result(result, &info, message, sizeof(message));
        if (r < 0 && r != -ENOENT)
                log_debug("inspecting container %s failed: %s", inspect->name, message);
        inspect->callback(inspect->userdata, r < 0 ? r : 0, r < 0 ? NULL : info);
        free(inspect->name);
}

/* Container names and ids: letters, digits and "_.-". Names cannot hold
 * anything else, so the name needs no URL encoding. */
static bool inspect_name_is_valid(const char *name)
{
        size_t length = strlen(name);

        if (length == 0 || length > 128)
                return false;
        for (size_t i = 0; i < length; i++) {
                char c = name[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-'))
                        return false;
        }
        return true;
}

int docker_inspect(struct docker_client *client, const char *id,
                   void (*callback)(void *userdata, int error, const struct container_info *info),
                   void *userdata)
{
        _cleanup_free_ char *url = NULL;
        struct public_inspect *inspect;
        struct http_request_options options = {
            .unix_socket = client->socket,
            .timeout_ms = DOCKER_REQUEST_TIMEOUT_MS,
            .on_done = public_inspect_done,
        };
        int r;

        if (!inspect_name_is_valid(id) || !callback)
                return -EINVAL;

        inspect = xcalloc(1, sizeof(*inspect));
        inspect->client = client;
        inspect->name = xstrdup(id);
        inspect->callback = callback;
        inspect->userdata = userdata;

        url = client_url(client, "/containers/%s/json", id);
        options.url = url;
        options.userdata = inspect;
        r = http_request_start(client->http, &options, &inspect->request);
        if (r < 0) {
                free(inspect->name);
                free(inspect);
                return r;
        }

        inspect->next = client->inspects;
        if (client->inspects)
                client->inspects->previous = inspect;
        client->inspects = inspect;
        return 0;
}

void docker_inspect_cancel(struct docker_client *client, void *userdata)
{
        struct public_inspect *next;

        for (struct public_inspect *inspect = client->inspects; inspect; inspect = next) {
                next = inspect->next;
                if (inspect->userdata != userdata)
                        continue;
                public_inspect_unlink(inspect);
                http_request_cancel(inspect->request);
                free(inspect->name);
                free(inspect);
        }
}
