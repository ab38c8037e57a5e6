/* execvisor-init: the agent's parent inside a container.
 *
 * The supervisor starts this static binary inside the container's namespaces,
 * after it has dropped privilege, set no_new_privs and loaded the seccomp
 * filter. It forks the agent, forwards signals to it and reaps every process of
 * the agent's tree. It exists because the container's own init is often the
 * application itself and may never reap: as a child subreaper, this process
 * inherits the agent's orphans instead, so none of them ends as a zombie of the
 * container's init. When the agent exits, it kills what the agent left behind
 * and exits with the agent's status, which the supervisor then reads as the
 * status of its own child.
 *
 * It is not pid 1 of the container's PID namespace. It signals only the agent,
 * the agent's process group and processes that waitid() confirms to be its own
 * children, never pid -1. It sets no parent-death signal because the agent must
 * outlive a restart of the supervisor, which re-adopts it.
 *
 * Usage: execvisor-init AGENT-PATH [ARGUMENT...]
 * The agent runs with argv AGENT-PATH ARGUMENT... and this process's environment.
 * File descriptors at start: 0 is /dev/null, 3 is the agent binary (O_PATH is
 * enough), 4 is the write end of the status pipe described in init/protocol.h.
 * It makes the agent's output pipe itself, as fds 1 and 2 of the agent and of
 * this process, and keeps the read end at INIT_OUTPUT_FD for the supervisor.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

#define AGENT_EXEC_FD 3
#define STATUS_FD 4

/* How long the agent's leftovers may take to die after SIGKILL before this
 * process exits anyway. A process stuck in uninterruptible sleep is the usual
 * reason to reach it. */
#define LEFTOVER_TIMEOUT_SEC 2

struct agent {
        pid_t pid;
        bool exited;
        int status;
};

/* Report a failed step on the status pipe and exit. This also runs in the
 * forked child, so it makes only async-signal-safe calls. */
static _Noreturn void fail_launch(enum launch_step step, int error)
{
        struct launch_status_record record = {.step = step, .value = error};
        ssize_t n;

        /* If the write fails, the supervisor gets EOF and exit status 127
         * without a step. */
        n = write(STATUS_FD, &record, sizeof(record));
        (void)n;
        _exit(127);
}

/* Set every signal to its default action. The kernel discards a signal that
 * the supervisor left ignored even while it is blocked, so sigwaitinfo() would
 * never return it. An ignored SIGCHLD would also make the kernel reap the agent
 * and lose its exit status. The agent inherits these defaults. */
static void reset_signal_dispositions(void)
{
        for (int sig = 1; sig < NSIG; sig++) {
                if (sig == SIGKILL || sig == SIGSTOP)
                        continue;

                /* glibc reserves two real-time signals and rejects them with
                 * EINVAL; nothing else can fail here. */
                signal(sig, SIG_DFL);
        }
}

/* The agent's side of the fork: runs only async-signal-safe calls and exits
 * through execveat() or fail_launch(). */
static _Noreturn void exec_agent(char **agent_argv, const sigset_t *original_mask)
{
        if (sigprocmask(SIG_SETMASK, original_mask, NULL) < 0)
                fail_launch(LAUNCH_STEP_INIT_SIGNALS, errno);

        /* A process group of its own lets this process end what the agent
         * leaves behind with one kill() that does not reach this process. */
        if (setpgid(0, 0) < 0)
                fail_launch(LAUNCH_STEP_AGENT_PROCESS_GROUP, errno);

        /* Exec by fd: the path in argv[0] is only the agent's name for itself,
         * so an over-mount of that path cannot swap the binary. An agent that
         * is a script fails with ENOENT, because its interpreter would need
         * fd 3, which is close-on-exec (see execveat(2)). */
        syscall(SYS_execveat, AGENT_EXEC_FD, "", agent_argv, environ, AT_EMPTY_PATH);
        fail_launch(LAUNCH_STEP_EXEC_AGENT, errno);
}

static bool is_forwarded_signal(int sig)
{
        switch (sig) {
        case SIGTERM:
        case SIGINT:
        case SIGHUP:
        case SIGQUIT:
        case SIGUSR1:
        case SIGUSR2:
        case SIGWINCH:
        case SIGCONT:
                return true;
        default:
                return false;
        }
}

/* Reap every child that has exited, and record the agent's status when it is
 * among them. Before the agent is reaped, its process group is killed: until
 * then its zombie keeps its pid, and so the group id, from being reused, so
 * the kill reaches what the agent left in its group and nothing else.
 * Returns -ECHILD once no child is left, 0 otherwise. */
static int reap_children(struct agent *agent)
{
        for (;;) {
                siginfo_t info = {0};
                int status;

                /* WNOWAIT: look at the next exited child without reaping it. */
                if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0)
                        return errno == EINTR ? 0 : -errno;
                if (info.si_pid == 0)
                        return 0;

                if (info.si_pid == agent->pid && !agent->exited)
                        kill(-agent->pid, SIGKILL);

                /* Cannot fail for an exited child; returning avoids a busy loop if it does. */
                if (waitpid(info.si_pid, &status, WNOHANG | __WALL) != info.si_pid)
                        return 0;

                if (info.si_pid == agent->pid) {
                        agent->exited = true;
                        agent->status = status;
                }
        }
}

/* Forward signals to the agent and reap orphans until the agent has exited.
 * All signals are blocked, so they are taken here one at a time. */
static void supervise_agent(struct agent *agent)
{
        sigset_t all;

        sigfillset(&all);

        while (!agent->exited) {
                siginfo_t info;
                int sig;

                sig = sigwaitinfo(&all, &info);
                if (sig < 0) {
                        if (errno == EINTR)
                                continue;

                        /* Without signals this process can neither forward nor
                         * reap, so it ends the agent rather than leave it unwatched. */
                        fprintf(stderr,
                                "execvisor-init: sigwaitinfo failed: %m, killing the agent\n");
                        kill(-agent->pid, SIGKILL);
                        kill(agent->pid, SIGKILL);
                        exit(127);
                }

                /* The agent's pid stays reserved until this process reaps it,
                 * so a signal forwarded after the agent died reaches its zombie
                 * and no other process. */
                if (sig == SIGCHLD)
                        reap_children(agent);
                else if (is_forwarded_signal(sig))
                        kill(agent->pid, sig);
        }
}

/* Send SIGKILL to every child of this process. The candidates come from the
 * container's /proc, which its root user may have faked, so each pid is first
 * checked with waitid(): it returns ECHILD for a process that is not a child.
 * The pid of a child cannot be reused before this process reaps it, so the
 * check still holds when kill() runs. */
static void kill_children(void)
{
        DIR *proc;
        struct dirent *entry;

        /* NOTE: without a /proc mounted in the container, orphans that left the
         * agent's process group survive until LEFTOVER_TIMEOUT_SEC and then pass to
         * the container's init. */
        proc = opendir("/proc");
        if (!proc)
                return;

        while ((entry = readdir(proc))) {
                siginfo_t info;
                char *end;
                long pid;

                pid = strtol(entry->d_name, &end, 10);
                if (pid <= 0 || *end != '\0')
                        continue;

                /* WNOWAIT leaves an exited child for reap_children(). */
                if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0)
                        continue;

                kill(pid, SIGKILL);
        }

        closedir(proc);
}

static long remaining_nsec(const struct timespec *deadline)
{
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        return (deadline->tv_sec - now.tv_sec) * 1000000000L + (deadline->tv_nsec - now.tv_nsec);
}

/* Kill what the agent left behind and reap it, for at most
 * LEFTOVER_TIMEOUT_SEC. reap_children() has already killed the agent's process
 * group. This kills the orphans that this process inherited as a subreaper,
 * including those that moved to another process group or session. */
static void end_agent_leftovers(struct agent *agent)
{
        struct timespec deadline;
        sigset_t sigchld;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += LEFTOVER_TIMEOUT_SEC;

        sigemptyset(&sigchld);
        sigaddset(&sigchld, SIGCHLD);

        for (;;) {
                struct timespec timeout;
                long nsec;

                /* A killed child's own children pass to this process before its
                 * SIGCHLD arrives, so every round finds the next generation. */
                kill_children();

                if (reap_children(agent) == -ECHILD)
                        return;

                nsec = remaining_nsec(&deadline);
                if (nsec <= 0) {
                        fprintf(stderr,
                                "execvisor-init: processes left by the agent still running "
                                "after %d s, exiting without them\n",
                                LEFTOVER_TIMEOUT_SEC);
                        return;
                }

                /* SIGCHLD is blocked, so one that arrived since the last reap
                 * is pending and ends this wait at once. */
                timeout.tv_sec = nsec / 1000000000L;
                timeout.tv_nsec = nsec % 1000000000L;
                sigtimedwait(&sigchld, NULL, &timeout);
        }
}

/* Exit with the agent's wait status: the same exit code, or death by the same
 * signal. */
static _Noreturn void exit_like(int status)
{
        struct rlimit no_core = {0, 0};
        sigset_t set;
        int sig;

        if (WIFEXITED(status))
                exit(WEXITSTATUS(status));

        sig = WTERMSIG(status);

        /* The supervisor needs the signal, not a core file of this process in
         * the container's working directory or in a host core handler. */
        setrlimit(RLIMIT_CORE, &no_core);
        prctl(PR_SET_DUMPABLE, 0);

        /* SIGKILL cannot be reset or blocked; raise() kills with it all the same. */
        signal(sig, SIG_DFL);
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);

        exit(128 + sig);
}

/* Make the output pipe: fds 1 and 2 write into it, and the read end waits at
 * INIT_OUTPUT_FD, close-on-exec, for the supervisor to take. A larger buffer
 * lets the agent write on while a restarting supervisor drains nothing. */
static int setup_output_pipe(void)
{
        int fds[2];

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -1;
        (void)fcntl(fds[1], F_SETPIPE_SZ, 1024 * 1024);

        /* fd 5 is usually free, so pipe2() may have put the read end there. */
        if (fds[0] != INIT_OUTPUT_FD) {
                if (dup3(fds[0], INIT_OUTPUT_FD, O_CLOEXEC) < 0)
                        return -1;
                close(fds[0]);
        }
        if (dup2(fds[1], STDOUT_FILENO) < 0 || dup2(fds[1], STDERR_FILENO) < 0)
                return -1;
        close(fds[1]);
        return 0;
}

int main(int argc, char **argv)
{
        struct agent agent = {.pid = -1};
        sigset_t all, original_mask;

        if (argc < 2) {
                fprintf(stderr, "usage: execvisor-init AGENT-PATH [ARGUMENT...]\n");
                fail_launch(LAUNCH_STEP_INIT_ARGUMENTS, EINVAL);
        }

        reset_signal_dispositions();

        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
                fail_launch(LAUNCH_STEP_INIT_SUBREAPER, errno);

        /* Blocked before the fork, so that no signal for the agent is lost
         * between the fork and the first sigwaitinfo(). */
        sigfillset(&all);
        if (sigprocmask(SIG_SETMASK, &all, &original_mask) < 0)
                fail_launch(LAUNCH_STEP_INIT_SIGNALS, errno);

        if (setup_output_pipe() < 0)
                fail_launch(LAUNCH_STEP_INIT_OUTPUT, errno);

        /* Neither fd may reach the agent: the status pipe must reach EOF once
         * the exec happened. If fd 3 is not open, execveat() reports EBADF. */
        fcntl(AGENT_EXEC_FD, F_SETFD, FD_CLOEXEC);
        fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC);

        agent.pid = fork();
        if (agent.pid < 0)
                fail_launch(LAUNCH_STEP_INIT_FORK, errno);
        if (agent.pid == 0)
                exec_agent(argv + 1, &original_mask);

        /* Only the agent's copies of these fds are left, and its execveat()
         * closes them. */
        close(AGENT_EXEC_FD);
        close(STATUS_FD);

        supervise_agent(&agent);
        end_agent_leftovers(&agent);
        exit_like(agent.status);
}
