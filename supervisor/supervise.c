#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "mounts/bundle.h"
#include "mounts/safe_name.h"
#include "supervisor/agent_output.h"
#include "supervisor/docker_parse.h"
#include "supervisor/environment.h"
#include "supervisor/inject.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "supervisor/records.h"
#include "supervisor/select.h"
#include "supervisor/util.h"

#define SESSION_LIMIT_LABEL "execvisor.session-limit"

static const char *short_id(const struct container *c)
{
        static char buffer[13];

        snprintf(buffer, sizeof(buffer), "%.12s", c->id);
        return buffer;
}

/* Record an event: every observer (state file, reports, audit log) gets it
 * with a sequence number one higher than the last. */
void supervised_emit(struct supervised *s, enum container_event event)
{
        s->container->sequence++;
        container_notify(s->container, event);
}

void supervised_log(int level, const struct supervised *s, const char *format, ...)
{
        char message[1024], name[160];
        va_list args;

        va_start(args, format);
        vsnprintf(message, sizeof(message), format, args);
        va_end(args);
        log_emit(level, "container %s name=%s: %s", short_id(s->container),
                 log_quote(s->container->name, name, sizeof(name)), message);
}

void supervised_stop(struct supervised *s, const char *reason)
{
        struct agent_status *agent = &s->container->agent;

        supervised_arm_timer(s, &s->restart_timer, NULL, 0);
        agent->state = AGENT_STOPPED;
        agent->pid = 0;
        snprintf(agent->reason, sizeof(agent->reason), "%s", reason);
        s->stopped_usec = now_realtime_usec();
        supervised_emit(s, CONTAINER_EVENT_STOPPED);
}

/* The session worker limit from the container's label; bad values fall back. */
static unsigned session_limit_of(const struct supervised *s)
{
        const char *text = container_label(s->container, SESSION_LIMIT_LABEL);
        char *end;
        unsigned long value;

        if (!text)
                return BUNDLE_DEFAULT_SESSION_WORKERS_LIMIT;

        errno = 0;
        value = strtoul(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0' || value < 1 || value > 1000 || text[0] == '-') {
                char quoted[80];

                supervised_log(LOG_WARNING, s, "invalid label %s=%s: expected a number from 1 to 1000; using %u",
                              SESSION_LIMIT_LABEL, log_quote(text, quoted, sizeof(quoted)),
                              BUNDLE_DEFAULT_SESSION_WORKERS_LIMIT);
                return BUNDLE_DEFAULT_SESSION_WORKERS_LIMIT;
        }
        return (unsigned)value;
}

static void release_container_init(struct supervised *s)
{
        if (s->init_pidfd >= 0) {
                loop_remove(s->supervisor->loop, &s->init_source);
                s->init_pidfd = safe_close(s->init_pidfd);
        }
        s->init_proc_fd = safe_close(s->init_proc_fd);
        s->init_pid = 0;
}

int supervised_arm_timer(struct supervised *s, struct loop_timer *timer,
                         void (*fire)(struct loop_timer *timer), uint64_t delay_usec)
{
        int r;

        if (delay_usec == 0)
                return timer->source.fd >= 0 ? loop_timer_arm(timer, 0) : 0;

        if (timer->source.fd < 0) {
                r = loop_timer_init(s->supervisor->loop, timer, fire);
                if (r < 0) {
                        supervised_log(LOG_ERR, s, "cannot create a timer: %s", strerror(-r));
                        return r;
                }
        }
        return loop_timer_arm(timer, delay_usec);
}

/* Close the timers of a container whose agent no longer runs, so that a
 * stopped container that stays listed keeps no fd open. */
static void release_timers(struct supervised *s)
{
        struct loop *loop = s->supervisor->loop;

        loop_timer_release(loop, &s->launch_timer);
        loop_timer_release(loop, &s->restart_timer);
        loop_timer_release(loop, &s->stop_timer);
}

static void supervised_free(struct supervised *s)
{
        agent_release(s);
        release_container_init(s);
        (void)agent_cgroups_remove(&s->cgroups);
        agent_cgroups_release(&s->cgroups);
        release_timers(s);
        environment_free(s->env);
        free(s->log_name);
        free(s->exit_times);

        container_unregister(s->container);
        free(s->container->name);
        free(s->container->image);
        if (s->container->labels)
                json_object_put(s->container->labels);
        free(s->container);
        free(s);
}

struct supervised *supervised_new(struct supervisor *supervisor, const char *id)
{
        struct supervised *s = xcalloc(1, sizeof(*s));
        struct container *c = xcalloc(1, sizeof(*c));
        uint8_t bytes[16];

        snprintf(c->id, sizeof(c->id), "%s", id);
        c->private = s;
        c->agent.state = AGENT_PENDING;
        s->container = c;
        s->supervisor = supervisor;
        s->init_pidfd = s->init_proc_fd = s->agent_init_pidfd = -1;
        s->output_log_fd = -1;
        s->output_source.fd = -1;
        s->launch_timer.source.fd = s->restart_timer.source.fd = s->stop_timer.source.fd = -1;
        agent_cgroups_init(&s->cgroups);
        s->exit_times = xcalloc(supervisor->config->max_restarts + 1, sizeof(uint64_t));

        /* A random (version 4) UUID names the bundle's directory in the container. */
        if (getrandom(bytes, sizeof(bytes), 0) != sizeof(bytes))
                abort();
        bytes[6] = (uint8_t)((bytes[6] & 0x0f) | 0x40);
        bytes[8] = (uint8_t)((bytes[8] & 0x3f) | 0x80);
        snprintf(s->uuid, sizeof(s->uuid),
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                 bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
                 bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);

        container_register(c);
        return s;
}

/* The name of a container's directory in the log directory: its safe file
 * name, with "container-" put before it when it would collide with one of
 * the supervisor's own files there (the audit log and its rotations). The
 * output directory ".output" cannot collide: safe names never start with a dot. */
static char *container_log_name(const struct supervisor *supervisor, const char *name)
{
        _cleanup_free_ char *safe = safe_file_name(name);
        const char *audit = supervisor->config->audit_log;
        const char *audit_name = audit ? strrchr(audit, '/') : NULL;
        size_t log_dir_length = strlen(supervisor->config->log_dir);

        if (audit_name && (size_t)(audit_name - audit) == log_dir_length &&
            strncmp(audit, supervisor->config->log_dir, log_dir_length) == 0 &&
            startswith(safe, audit_name + 1))
                return xasprintf("container-%s", safe);
        return TAKE_PTR(safe);
}

static void update_from_info(struct supervised *s, const struct container_info *info)
{
        struct container *c = s->container;

        free(c->name);
        c->name = xstrdup(info->name);
        free(c->image);
        c->image = xstrdup(info->image ? info->image : "");
        if (c->labels)
                json_object_put(c->labels);
        c->labels = json_object_get(info->labels);
        c->created_usec = info->created_usec;
        c->started_usec = info->started_usec;
        c->running = info->running;

        environment_free(s->env);
        s->env = agent_environment(info->env, info->n_env);
        free(s->log_name);
        s->log_name = container_log_name(s->supervisor, info->name);
        s->session_limit = session_limit_of(s);
}

static struct supervised *find_supervised(const char *id)
{
        struct container *c = NULL;

        if (container_find(id, &c) < 0 || !streq(c->id, id))
                return NULL;
        return c->private;
}

static void container_exited(struct supervised *s, const char *reason)
{
        s->container->running = false;
        agent_release(s);
        release_container_init(s);
        (void)agent_cgroups_remove(&s->cgroups);
        agent_cgroups_release(&s->cgroups);
        release_timers(s);

        if (s->container->agent.state != AGENT_STOPPED || !streq(s->container->agent.reason, reason)) {
                supervised_log(LOG_INFO, s, "agent stopped: %s", reason);
                supervised_stop(s, reason);
        }
        supervise_forget_later(s, s->supervisor->config->forget_after_usec);
}

static void on_container_init_exit(struct loop_source *source, uint32_t events)
{
        struct supervised *s = container_of(source, struct supervised, init_source);

        container_exited(s, "container exited");
}

/* Arm the supervisor's one forget timer for the earliest deadline. One
 * timer serves every stopped container, so they hold no fd each. */
static void arm_forget_timer(struct supervisor *supervisor)
{
        uint64_t now = now_monotonic_usec(), earliest = 0;

        for (struct container *c = container_list(); c; c = c->next) {
                const struct supervised *s = c->private;

                if (s->forget_at_usec && (!earliest || s->forget_at_usec < earliest))
                        earliest = s->forget_at_usec;
        }
        (void)loop_timer_arm(&supervisor->forget_timer,
                             earliest == 0 ? 0 : (earliest > now ? earliest - now : 1));
}

void supervise_forget_later(struct supervised *s, uint64_t delay_usec)
{
        s->forget_at_usec = now_monotonic_usec() + (delay_usec ? delay_usec : 1);
        arm_forget_timer(s->supervisor);
}

static void on_forget_timer(struct loop_timer *timer)
{
        struct supervisor *supervisor = container_of(timer, struct supervisor, forget_timer);
        uint64_t now = now_monotonic_usec();
        struct container *next;

        for (struct container *c = container_list(); c; c = next) {
                struct supervised *s = c->private;

                next = c->next;
                if (!s->forget_at_usec || s->forget_at_usec > now)
                        continue;
                supervised_log(LOG_DEBUG, s, "forgotten after --forget-after");
                supervised_emit(s, CONTAINER_EVENT_FORGOTTEN);
                supervised_free(s);
        }
        arm_forget_timer(supervisor);
}

int supervise_init(struct supervisor *supervisor)
{
        return loop_timer_init(supervisor->loop, &supervisor->forget_timer, on_forget_timer);
}

static int watch_container_init(struct supervised *s)
{
        s->init_source = (struct loop_source){ .fd = s->init_pidfd, .dispatch = on_container_init_exit };
        return loop_add(s->supervisor->loop, &s->init_source, EPOLLIN);
}

void supervise_container_running(struct supervisor *supervisor, const struct container_info *info)
{
        struct supervised *s = find_supervised(info->id);
        _cleanup_free_ char *error = NULL;
        bool new_init;
        int r;

        if (supervisor->shutting_down)
                return;
        if (!container_is_selected(supervisor->config, info->labels)) {
                if (s)
                        container_exited(s, "container no longer selected");
                return;
        }
        if (!info->running || info->pid <= 0)
                return;

        if (!s)
                s = supervised_new(supervisor, info->id);
        new_init = s->init_pid != info->pid;
        update_from_info(s, info);

        /* The same init again (an event repeated during a resync): nothing to do. */
        if (!new_init && s->init_pidfd >= 0)
                return;

        agent_release(s);
        release_container_init(s);
        s->forget_at_usec = 0;
        s->needs_injection = true;
        supervised_arm_timer(s, &s->restart_timer, NULL, 0);
        s->n_exit_times = 0;
        s->backoff_usec = 0;
        s->container->agent.state = AGENT_PENDING;
        s->container->agent.reason[0] = '\0';

        r = inject_pin_container(s, info->pid, &error);
        if (r == -ESRCH) {
                /* Gone between Docker's report and the pin: a normal race. */
                supervised_log(LOG_INFO, s, "the container exited before its agent could start");
                container_exited(s, "container exited");
                return;
        }
        if (r < 0) {
                supervised_log(LOG_ERR, s, "cannot pin the container: %s", error);
                supervised_stop(s, error);
                return;
        }
        r = watch_container_init(s);
        if (r < 0) {
                supervised_log(LOG_ERR, s, "cannot watch the container's init: %s", strerror(-r));
                supervised_stop(s, "cannot watch the container's init");
                return;
        }

        if (records_try_adopt(supervisor, s))
                return;
        agent_start(s);
}

void supervise_container_exited(struct supervisor *supervisor, const char *id, const char *reason)
{
        struct supervised *s = find_supervised(id);

        if (s && s->container->running)
                container_exited(s, reason);
}

void supervise_sync_done(struct supervisor *supervisor, const char *const *running_ids, size_t count)
{
        struct container *next;

        for (struct container *c = container_list(); c; c = next) {
                bool running = false;

                next = c->next;
                for (size_t i = 0; i < count && !running; i++)
                        running = streq(c->id, running_ids[i]);
                if (!running && c->running)
                        container_exited(c->private, "container exited");
        }
}

bool supervise_shutdown(struct supervisor *supervisor)
{
        bool waiting = false;

        supervisor->shutting_down = true;
        for (struct container *c = container_list(); c; c = c->next) {
                struct supervised *s = c->private;

                agent_launch_cancel(s);
                supervised_arm_timer(s, &s->restart_timer, NULL, 0);
                if (supervisor->config->stop_agents_on_exit && agent_request_stop(s))
                        waiting = true;
        }
        return waiting;
}

bool supervise_agents_running(void)
{
        for (struct container *c = container_list(); c; c = c->next)
                if (agent_active(c->private))
                        return true;
        return false;
}

void supervise_free_all(struct supervisor *supervisor)
{
        struct container *c;

        while ((c = container_list())) {
                struct supervised *s = c->private;

                /* Agents not stopped are left running for the next supervisor
                 * to adopt: only the fds go. */
                supervised_free(s);
        }
        loop_timer_release(supervisor->loop, &supervisor->forget_timer);
}
