#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "supervisor/agent_output.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "supervisor/util.h"

static void on_agent_exit(struct loop_source *source, uint32_t events);
static void on_restart_timer(struct loop_timer *timer);

/* The agent's pid below execvisor-init, read from the host's /proc. */
static pid_t find_agent_pid(pid_t init_pid)
{
        _cleanup_free_ char *path = xasprintf("/proc/%d/task/%d/children", (int)init_pid, (int)init_pid);
        _cleanup_free_ char *children = NULL;

        if (read_file_at(AT_FDCWD, path, 4096, &children, NULL) < 0)
                return init_pid;
        return atoi(children) > 0 ? (pid_t)atoi(children) : init_pid;
}

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
                supervised_log(LOG_WARNING, s, "cannot take the agent's output pipe: %s; its output is not logged",
                              strerror(errno));
        else
                agent_output_attach(s, output_fd);

        s->container->agent.pid = find_agent_pid(init_pid);
        return 0;
}

void agent_release(struct supervised *s)
{
        agent_launch_cancel(s);
        agent_output_detach(s);
        if (s->agent_init_pidfd >= 0) {
                loop_remove(s->supervisor->loop, &s->agent_source);
                s->agent_init_pidfd = safe_close(s->agent_init_pidfd);
        }
        s->agent_init_pid = 0;
        s->adopted = false;
        supervised_arm_timer(s, &s->stop_timer, NULL, 0);
}

void agent_kill_tree(struct supervised *s)
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

/* True once the container's init has begun to exit. While a PID namespace's
 * init exits, the kernel ends every other process in it, and only after that
 * does the init's pidfd turn readable. So when the agent's exit arrives first,
 * the flag PF_EXITING in field 9 of the init's stat shows that the container
 * is going. */
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
        agent_release(s);
        agent_kill_tree(s);
        agent->pid = 0;

        if (s->supervisor->shutting_down) {
                supervised_stop(s, "stopped with the supervisor (--stop-agents-on-exit)");
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

        supervised_log(LOG_WARNING, s, "agent %s%s%s", exit_text,
                      agent->last_output_line[0] ? "; last output: " : "", agent->last_output_line);

        if (too_many_exits(s)) {
                char window[32];

                format_duration(s->supervisor->config->restart_window_usec, window, sizeof(window));
                snprintf(reason, sizeof(reason), "exited %zu times in %s, last %s%s%s", s->n_exit_times,
                         window, exit_text, agent->last_output_line[0] ? "; last output: " : "",
                         agent->last_output_line);
                supervised_log(LOG_ERR, s, "agent stopped: %s", reason);
                supervised_stop(s, reason);
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
        supervised_emit(s, CONTAINER_EVENT_EXITED);
        supervised_arm_timer(s, &s->restart_timer, on_restart_timer, delay);
}

static void on_restart_timer(struct loop_timer *timer)
{
        struct supervised *s = container_of(timer, struct supervised, restart_timer);

        if (s->container->agent.state != AGENT_PENDING)
                return;
        s->container->agent.restart_count++;
        metrics_agent_restart();
        agent_start(s);
}

static void on_stop_timer(struct loop_timer *timer)
{
        struct supervised *s = container_of(timer, struct supervised, stop_timer);
        int killed;

        killed = agent_cgroups_count_processes(&s->cgroups);
        (void)agent_cgroups_kill(&s->cgroups);
        if (s->agent_init_pidfd >= 0)
                (void)pidfd_send_signal(s->agent_init_pidfd, SIGKILL, NULL, 0);
        supervised_log(LOG_WARNING, s, "agent still running after the grace period; killed its tree (%d processes)",
                       killed < 0 ? 0 : killed);
}

bool agent_request_stop(struct supervised *s)
{
        if (s->agent_init_pidfd < 0)
                return false;

        /* execvisor-init passes SIGTERM on to the agent. */
        if (pidfd_send_signal(s->agent_init_pidfd, SIGTERM, NULL, 0) < 0)
                return false;
        supervised_arm_timer(s, &s->stop_timer, on_stop_timer, s->supervisor->config->stop_grace_usec);
        return true;
}

bool agent_active(const struct supervised *s)
{
        return s->agent_init_pidfd >= 0 || s->launching;
}
