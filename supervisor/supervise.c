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

/* How long a launch may take from fork to the agent's exec. The joiner walks
 * paths that the container controls; a FUSE mount there could stall it. */
#define LAUNCH_TIMEOUT_USEC (10ULL * 1000000ULL)
#define SESSION_LIMIT_LABEL "execvisor.session-limit"

static void start_agent(struct supervised *s);
static void release_agent(struct supervised *s);
static void kill_agent_tree(struct supervised *s);

static const char *short_id(const struct container *c)
{
        static char buffer[13];

        snprintf(buffer, sizeof(buffer), "%.12s", c->id);
        return buffer;
}

/* Record an event: every observer (state file, reports, audit log) gets it
 * with a sequence number one higher than the last. */
static void emit(struct supervised *s, enum container_event event)
{
        s->container->sequence++;
        container_notify(s->container, event);
}

static void log_container(int level, const struct supervised *s, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static void log_container(int level, const struct supervised *s, const char *format, ...)
{
        char message[1024], name[160];
        va_list args;

        va_start(args, format);
        vsnprintf(message, sizeof(message), format, args);
        va_end(args);
        log_emit(level, "container %s name=%s: %s", short_id(s->container),
                 log_quote(s->container->name, name, sizeof(name)), message);
}

static void stop_for_good(struct supervised *s, const char *reason)
{
        struct agent_status *agent = &s->container->agent;

        loop_timer_arm(&s->restart_timer, 0);
        agent->state = AGENT_STOPPED;
        agent->pid = 0;
        snprintf(agent->reason, sizeof(agent->reason), "%s", reason);
        s->stopped_usec = now_realtime_usec();
        emit(s, CONTAINER_EVENT_STOPPED);
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

                log_container(LOG_WARNING, s, "invalid label %s=%s: expected a number from 1 to 1000; using %u",
                              SESSION_LIMIT_LABEL, log_quote(text, quoted, sizeof(quoted)),
                              BUNDLE_DEFAULT_SESSION_WORKERS_LIMIT);
                return BUNDLE_DEFAULT_SESSION_WORKERS_LIMIT;
        }
        return (unsigned)value;
}

/* ---- launching ------------------------------------------------------------ */

static void end_launch(struct supervised *s)
{
        if (!s->launching)
                return;
        loop_remove(s->supervisor->loop, &s->launch_source);
        loop_timer_arm(&s->launch_timer, 0);
        s->launching = false;
}

static void launch_failed(struct supervised *s, const char *reason)
{
        log_container(LOG_ERR, s, "agent not started: %s", reason);
        metrics_injection(false, 0);
        release_agent(s);
        kill_agent_tree(s);
        stop_for_good(s, reason);
}

/* The agent's pid below execvisor-init, read from the host's /proc. */
static pid_t find_agent_pid(pid_t init_pid)
{
        _cleanup_free_ char *path = xasprintf("/proc/%d/task/%d/children", (int)init_pid, (int)init_pid);
        _cleanup_free_ char *children = NULL;

        if (read_file_at(AT_FDCWD, path, 4096, &children, NULL) < 0)
                return init_pid;
        return atoi(children) > 0 ? (pid_t)atoi(children) : init_pid;
}

static void on_agent_exit(struct loop_source *source, uint32_t events);

int supervise_watch_agent(struct supervised *s, pid_t init_pid, int init_pidfd, bool adopted)
{
        int r;

        s->adopted = adopted;
        s->agent_init_pid = init_pid;
        s->agent_init_pidfd = init_pidfd;
        s->agent_source = (struct loop_source){ .fd = init_pidfd, .dispatch = on_agent_exit };
        r = loop_add(s->supervisor->loop, &s->agent_source, EPOLLIN);
        if (r < 0)
                return r;

        /* execvisor-init keeps the read end of the agent's output pipe open,
         * so the agent never writes into a closed pipe while no supervisor
         * runs. Each supervisor takes its own copy of that end. */
        int output_fd = (int)syscall(SYS_pidfd_getfd, init_pidfd, INIT_OUTPUT_FD, 0);

        if (output_fd < 0)
                log_container(LOG_WARNING, s, "cannot take the agent's output pipe: %s; its output is not logged",
                              strerror(errno));
        else
                agent_output_attach(s, output_fd);

        s->container->agent.pid = find_agent_pid(init_pid);
        return 0;
}

static void launch_succeeded(struct supervised *s)
{
        struct agent_status *agent = &s->container->agent;
        uint64_t total_usec = now_monotonic_usec() - s->launch.started_usec;
        bool first = agent->last_started_usec == 0 || s->container->injection_usec == 0;
        pid_t child = s->launch.child_pid;
        int pidfd;
        int r;

        launch_finish(&s->launch);

        /* Our child through CLONE_PARENT: its pid stays ours until reaped. */
        pidfd = pidfd_open(child, 0);
        if (pidfd < 0) {
                launch_failed(s, "the agent's process vanished right after it started");
                return;
        }
        r = supervise_watch_agent(s, child, pidfd, false);
        if (r < 0) {
                safe_close(pidfd);
                launch_failed(s, "cannot watch the agent's process");
                return;
        }
        {
                _cleanup_free_ char *path = xasprintf("/proc/%d", (int)child);
                _cleanup_close_ int proc_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

                if (proc_fd >= 0)
                        (void)read_process_start_ticks(proc_fd, &s->agent_init_start_ticks);
        }

        agent->state = AGENT_RUNNING;
        agent->last_started_usec = now_realtime_usec();
        agent->reason[0] = '\0';
        s->container->injection_usec = total_usec;
        metrics_injection(true, total_usec);

        log_container(LOG_INFO, s,
                      "agent %s started: version=%s pid=%d injection=%.3fms (prepare %.3fms, launch %.3fms)",
                      first ? "injected and" : "restarted and", agent->version, (int)agent->pid,
                      (double)total_usec / 1000.0, (double)s->prepare_usec / 1000.0,
                      (double)(total_usec - s->prepare_usec) / 1000.0);
        emit(s, first ? CONTAINER_EVENT_INJECTED : CONTAINER_EVENT_STARTED);
}

static void describe_launch_failure(const struct supervised *s, char *buffer, size_t size)
{
        const struct launch *launch = &s->launch;

        if (launch->failed_step == LAUNCH_STEP_MOUNT && launch->failed_mount == 0)
                snprintf(buffer, size, "mount of /ecs-execute-command-%s failed: %s", s->uuid,
                         strerror(launch->failed_error));
        else if (launch->failed_step == LAUNCH_STEP_MOUNT)
                snprintf(buffer, size, "mount of %s failed: %s", BUNDLE_AGENT_LOG_DIR,
                         strerror(launch->failed_error));
        else
                snprintf(buffer, size, "%s failed: %s", launch_step_to_string(launch->failed_step),
                         strerror(launch->failed_error));
}

static void on_launch_status(struct loop_source *source, uint32_t events)
{
        struct supervised *s = container_of(source, struct supervised, launch_source);
        char reason[AGENT_REASON_MAX];
        int r;

        r = launch_read_status(&s->launch);
        if (r == 0)
                return;

        end_launch(s);
        if (r < 0) {
                launch_abort(&s->launch);
                snprintf(reason, sizeof(reason), "reading the launch status failed: %s", strerror(-r));
                launch_failed(s, reason);
                return;
        }
        if (s->launch.failed_step != 0) {
                describe_launch_failure(s, reason, sizeof(reason));
                launch_abort(&s->launch);
                launch_failed(s, reason);
                return;
        }
        if (s->launch.child_pid <= 0) {
                launch_abort(&s->launch);
                launch_failed(s, "the joiner exited without starting the agent");
                return;
        }
        launch_succeeded(s);
}

static void on_launch_timeout(struct loop_timer *timer)
{
        struct supervised *s = container_of(timer, struct supervised, launch_timer);

        end_launch(s);
        launch_abort(&s->launch);
        launch_failed(s, "the launch timed out after 10s (a path in the container may block)");
}

static void start_agent(struct supervised *s)
{
        _cleanup_free_ char *error = NULL;
        int r;

        if (s->container->agent.state != AGENT_PENDING) {
                s->container->agent.state = AGENT_PENDING;
        }

        r = inject_launch(s, &error);
        if (r < 0) {
                launch_failed(s, error ? error : strerror(-r));
                return;
        }

        s->launch_source = (struct loop_source){ .fd = s->launch.status_fd, .dispatch = on_launch_status };
        r = loop_add(s->supervisor->loop, &s->launch_source, EPOLLIN);
        if (r < 0) {
                launch_abort(&s->launch);
                launch_failed(s, "cannot watch the launch");
                return;
        }
        s->launching = true;
        loop_timer_arm(&s->launch_timer, LAUNCH_TIMEOUT_USEC);
}

/* ---- the agent's exits and restarts --------------------------------------- */

/* Let go of the agent's process and output; the process itself is left alone. */
static void release_agent(struct supervised *s)
{
        if (s->launching) {
                end_launch(s);
                launch_abort(&s->launch);
        }
        agent_output_detach(s);
        if (s->agent_init_pidfd >= 0) {
                loop_remove(s->supervisor->loop, &s->agent_source);
                s->agent_init_pidfd = safe_close(s->agent_init_pidfd);
        }
        s->agent_init_pid = 0;
        s->adopted = false;
        loop_timer_arm(&s->stop_timer, 0);
}

/* End whatever of the agent's tree is still in its cgroup. */
static void kill_agent_tree(struct supervised *s)
{
        if (s->cgroups.count > 0)
                (void)agent_cgroups_kill(&s->cgroups);
}

static void describe_exit(const siginfo_t *info, bool known, char *buffer, size_t size)
{
        if (!known)
                snprintf(buffer, size, "exited (status unknown: adopted from an earlier supervisor)");
        else if (info->si_code == CLD_EXITED)
                snprintf(buffer, size, "exited with status %d", info->si_status);
        else
                snprintf(buffer, size, "killed by signal %d (SIG%s)", info->si_status,
                         sigabbrev_np(info->si_status) ? sigabbrev_np(info->si_status) : "?");
}

/* Count this exit; true when there were more than --max-restarts within
 * --restart-window. */
static bool too_many_exits(struct supervised *s)
{
        const struct config *config = s->supervisor->config;
        uint64_t now = now_monotonic_usec();
        size_t kept = 0;

        for (size_t i = 0; i < s->n_exit_times; i++)
                if (now - s->exit_times[i] <= config->restart_window_usec)
                        s->exit_times[kept++] = s->exit_times[i];
        s->n_exit_times = kept;

        if (s->n_exit_times == config->max_restarts + 1) {
                memmove(s->exit_times, s->exit_times + 1, config->max_restarts * sizeof(uint64_t));
                s->n_exit_times--;
        }
        s->exit_times[s->n_exit_times++] = now;
        return s->n_exit_times > config->max_restarts;
}

static uint64_t next_backoff(struct supervised *s)
{
        const struct config *config = s->supervisor->config;
        uint64_t delay = s->backoff_usec ? s->backoff_usec : config->restart_backoff_min_usec;
        uint32_t random_bits = 0;
        uint64_t jitter;

        s->backoff_usec = delay * 2 > config->restart_backoff_max_usec ? config->restart_backoff_max_usec
                                                                       : delay * 2;

        /* Up to a fifth more, so that agents that crashed together do not
         * restart together. */
        (void)getrandom(&random_bits, sizeof(random_bits), GRND_NONBLOCK);
        jitter = delay / 5 ? random_bits % (delay / 5) : 0;
        return delay + jitter;
}

static void format_duration(uint64_t usec, char *buffer, size_t size)
{
        if (usec % 60000000ULL == 0 && usec >= 60000000ULL)
                snprintf(buffer, size, "%llu min", (unsigned long long)(usec / 60000000ULL));
        else if (usec % 1000000ULL == 0)
                snprintf(buffer, size, "%llu s", (unsigned long long)(usec / 1000000ULL));
        else
                snprintf(buffer, size, "%llu ms", (unsigned long long)(usec / 1000ULL));
}

/* True once the container's init has begun to exit. The kernel ends every
 * other process of a PID namespace while its init exits, and only then does
 * the init's pidfd turn readable, so the flag PF_EXITING in field 9 of its
 * stat is what tells, when the agent's exit arrives, that the container goes. */
static bool container_init_exiting(const struct supervised *s)
{
        _cleanup_free_ char *stat = NULL;
        unsigned long flags = 0;
        const char *p;

        if (!pidfd_running(s->init_pidfd))
                return true;
        if (read_file_at(s->init_proc_fd, "stat", 4096, &stat, NULL) < 0)
                return true;

        p = strrchr(stat, ')');
        if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
                return false;
        return flags & 0x00000004UL; /* PF_EXITING in include/linux/sched.h */
}

static void on_agent_exit(struct loop_source *source, uint32_t events)
{
        struct supervised *s = container_of(source, struct supervised, agent_source);
        struct agent_status *agent = &s->container->agent;
        siginfo_t info = { 0 };
        bool known = false;
        char exit_text[128], reason[AGENT_REASON_MAX];
        uint64_t delay;

        if (!s->adopted) {
                if (waitid(P_PIDFD, (id_t)s->agent_init_pidfd, &info, WEXITED | WNOHANG) < 0 ||
                    info.si_pid == 0)
                        return; /* not exited yet */
                known = true;
                agent->last_exit_status = info.si_status;
                agent->last_exit_signaled = info.si_code != CLD_EXITED;
        }
        describe_exit(&info, known, exit_text, sizeof(exit_text));

        agent_output_drain(s);
        release_agent(s);
        kill_agent_tree(s);
        agent->pid = 0;

        if (s->supervisor->shutting_down) {
                stop_for_good(s, "stopped with the supervisor (--stop-agents-on-exit)");
                if (!supervise_agents_running())
                        loop_quit(s->supervisor->loop, 0);
                return;
        }
        if (agent->state == AGENT_STOPPED)
                return;

        /* The container's exit takes its agent with it; that is reported
         * once, as the container's exit. */
        if (container_init_exiting(s))
                return;

        log_container(LOG_WARNING, s, "agent %s%s%s", exit_text,
                      agent->last_output_line[0] ? "; last output: " : "", agent->last_output_line);

        if (too_many_exits(s)) {
                char window[32];

                format_duration(s->supervisor->config->restart_window_usec, window, sizeof(window));
                snprintf(reason, sizeof(reason), "exited %zu times in %s, last %s%s%s", s->n_exit_times,
                         window, exit_text, agent->last_output_line[0] ? "; last output: " : "",
                         agent->last_output_line);
                log_container(LOG_ERR, s, "agent stopped: %s", reason);
                stop_for_good(s, reason);
                return;
        }

        /* An agent that ran for a whole restart window has recovered: its
         * next restart starts again from the shortest delay. */
        if (agent->last_started_usec > 0 &&
            now_realtime_usec() - agent->last_started_usec >= s->supervisor->config->restart_window_usec)
                s->backoff_usec = 0;
        delay = next_backoff(s);
        agent->state = AGENT_PENDING;
        snprintf(agent->reason, sizeof(agent->reason), "%s; restarting in %.1fs", exit_text,
                 (double)delay / 1e6);
        emit(s, CONTAINER_EVENT_EXITED);
        loop_timer_arm(&s->restart_timer, delay);
}

static void on_restart_timer(struct loop_timer *timer)
{
        struct supervised *s = container_of(timer, struct supervised, restart_timer);

        if (s->container->agent.state != AGENT_PENDING)
                return;
        s->container->agent.restart_count++;
        metrics_agent_restart();
        start_agent(s);
}

/* ---- containers ------------------------------------------------------------ */


static void on_forget_timer(struct loop_timer *timer);
static void on_stop_timer(struct loop_timer *timer);
static void on_container_init_exit(struct loop_source *source, uint32_t events);

static void release_container_init(struct supervised *s)
{
        if (s->init_pidfd >= 0) {
                loop_remove(s->supervisor->loop, &s->init_source);
                s->init_pidfd = safe_close(s->init_pidfd);
        }
        s->init_proc_fd = safe_close(s->init_proc_fd);
        s->init_pid = 0;
}

static void supervised_free(struct supervised *s)
{
        struct loop *loop = s->supervisor->loop;

        release_agent(s);
        release_container_init(s);
        (void)agent_cgroups_remove(&s->cgroups);
        agent_cgroups_release(&s->cgroups);
        loop_timer_release(loop, &s->launch_timer);
        loop_timer_release(loop, &s->restart_timer);
        loop_timer_release(loop, &s->stop_timer);
        loop_timer_release(loop, &s->forget_timer);
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
        struct loop *loop = supervisor->loop;
        uint8_t bytes[16];

        snprintf(c->id, sizeof(c->id), "%s", id);
        c->private = s;
        c->agent.state = AGENT_PENDING;
        s->container = c;
        s->supervisor = supervisor;
        s->init_pidfd = s->init_proc_fd = s->agent_init_pidfd = -1;
        s->output_log_fd = -1;
        s->output_source.fd = -1;
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

        /* Timers are created up front: a failure here is out of fds, and the
         * daemon cannot supervise anything then. */
        if (loop_timer_init(loop, &s->launch_timer, on_launch_timeout) < 0 ||
            loop_timer_init(loop, &s->restart_timer, on_restart_timer) < 0 ||
            loop_timer_init(loop, &s->stop_timer, on_stop_timer) < 0 ||
            loop_timer_init(loop, &s->forget_timer, on_forget_timer) < 0) {
                log_error("cannot create timers for container %.12s: %s", id, strerror(errno));
                abort();
        }

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
        release_agent(s);
        release_container_init(s);
        (void)agent_cgroups_remove(&s->cgroups);
        agent_cgroups_release(&s->cgroups);

        if (s->container->agent.state != AGENT_STOPPED || !streq(s->container->agent.reason, reason)) {
                log_container(LOG_INFO, s, "agent stopped: %s", reason);
                stop_for_good(s, reason);
        }
        supervise_forget_later(s, s->supervisor->config->forget_after_usec);
}

static void on_container_init_exit(struct loop_source *source, uint32_t events)
{
        struct supervised *s = container_of(source, struct supervised, init_source);

        container_exited(s, "container exited");
}

void supervise_forget_later(struct supervised *s, uint64_t delay_usec)
{
        loop_timer_arm(&s->forget_timer, delay_usec ? delay_usec : 1);
}

static void on_forget_timer(struct loop_timer *timer)
{
        struct supervised *s = container_of(timer, struct supervised, forget_timer);

        log_container(LOG_DEBUG, s, "forgotten after --forget-after");
        emit(s, CONTAINER_EVENT_FORGOTTEN);
        supervised_free(s);
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

        release_agent(s);
        release_container_init(s);
        loop_timer_arm(&s->forget_timer, 0);
        loop_timer_arm(&s->restart_timer, 0);
        s->n_exit_times = 0;
        s->backoff_usec = 0;
        s->container->agent.state = AGENT_PENDING;
        s->container->agent.reason[0] = '\0';

        r = inject_pin_container(s, info->pid, &error);
        if (r == -ESRCH) {
                /* Gone between Docker's report and the pin: a normal race. */
                log_container(LOG_INFO, s, "the container exited before its agent could start");
                container_exited(s, "container exited");
                return;
        }
        if (r < 0) {
                log_container(LOG_ERR, s, "cannot pin the container: %s", error);
                stop_for_good(s, error);
                return;
        }
        r = watch_container_init(s);
        if (r < 0) {
                log_container(LOG_ERR, s, "cannot watch the container's init: %s", strerror(-r));
                stop_for_good(s, "cannot watch the container's init");
                return;
        }

        if (records_try_adopt(supervisor, s))
                return;
        start_agent(s);
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

/* ---- stopping ---------------------------------------------------------------- */

static void on_stop_timer(struct loop_timer *timer)
{
        struct supervised *s = container_of(timer, struct supervised, stop_timer);
        int killed;

        killed = agent_cgroups_kill(&s->cgroups);
        log_container(LOG_WARNING, s, "agent still running after the grace period; killed its tree (%d processes)",
                      killed < 0 ? 0 : killed);
        if (s->agent_init_pidfd >= 0)
                (void)pidfd_send_signal(s->agent_init_pidfd, SIGKILL, NULL, 0);
}

static bool agent_running(const struct supervised *s)
{
        return s->agent_init_pidfd >= 0 || s->launching;
}

bool supervise_shutdown(struct supervisor *supervisor)
{
        bool waiting = false;

        supervisor->shutting_down = true;
        for (struct container *c = container_list(); c; c = c->next) {
                struct supervised *s = c->private;

                if (s->launching) {
                        end_launch(s);
                        launch_abort(&s->launch);
                }
                loop_timer_arm(&s->restart_timer, 0);
                if (!supervisor->config->stop_agents_on_exit || !agent_running(s))
                        continue;

                /* execvisor-init passes SIGTERM on to the agent. */
                if (pidfd_send_signal(s->agent_init_pidfd, SIGTERM, NULL, 0) == 0) {
                        loop_timer_arm(&s->stop_timer, supervisor->config->stop_grace_usec);
                        waiting = true;
                }
        }
        return waiting;
}

bool supervise_agents_running(void)
{
        for (struct container *c = container_list(); c; c = c->next)
                if (agent_running(c->private))
                        return true;
        return false;
}

void supervise_free_all(void)
{
        struct container *c;

        while ((c = container_list())) {
                struct supervised *s = c->private;

                /* Agents not stopped are left running for the next supervisor
                 * to adopt: only the fds go. */
                supervised_free(s);
        }
}
