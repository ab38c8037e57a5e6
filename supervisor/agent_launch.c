#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>

#include "mounts/bundle.h"
#include "supervisor/inject.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "supervisor/util.h"

/* How long a launch may take from fork to the agent's exec. The joiner walks
 * paths that the container controls; a FUSE mount there could stall it. */
#define LAUNCH_TIMEOUT_USEC (10ULL * 1000000ULL)

void agent_launch_end(struct supervised *s)
{
        if (!s->launching)
                return;
        loop_remove(s->supervisor->loop, &s->launch_source);
        supervised_arm_timer(s, &s->launch_timer, NULL, 0);
        s->launching = false;
}

void agent_launch_cancel(struct supervised *s)
{
        if (!s->launching)
                return;
        agent_launch_end(s);
        launch_abort(&s->launch);
}

static void launch_failed(struct supervised *s, const char *reason)
{
        supervised_log(LOG_ERR, s, "agent not started: %s", reason);
        metrics_injection(false, 0);
        agent_release(s);
        agent_kill_tree(s);
        supervised_stop(s, reason);
}

static void launch_succeeded(struct supervised *s)
{
        struct agent_status *agent = &s->container->agent;
        uint64_t total_usec = now_monotonic_usec() - s->launch.started_usec;
        bool first = s->needs_injection;
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
        s->needs_injection = false;
        s->container->injection_usec = total_usec;
        metrics_injection(true, total_usec);

        supervised_log(LOG_INFO, s,
                      "agent %s: version=%s pid=%d injection=%.3fms (prepare %.3fms, launch %.3fms)",
                      first ? "injected and started" : "started again", agent->version, (int)agent->pid,
                      (double)total_usec / 1000.0, (double)s->prepare_usec / 1000.0,
                      (double)(total_usec - s->prepare_usec) / 1000.0);
        supervised_emit(s, first ? CONTAINER_EVENT_INJECTED : CONTAINER_EVENT_STARTED);
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

        agent_launch_end(s);
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

        agent_launch_end(s);
        launch_abort(&s->launch);
        launch_failed(s, "the launch timed out after 10s (a path in the container may block)");
}

void agent_start(struct supervised *s)
{
        _cleanup_free_ char *error = NULL;
        int r;

        s->container->agent.state = AGENT_PENDING;
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
        supervised_arm_timer(s, &s->launch_timer, on_launch_timeout, LAUNCH_TIMEOUT_USEC);
}
