#include "supervisor/launch.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "supervisor/syscalls.h"
#include "supervisor/util.h"

/* Fixed fd layout of the final child at the exec of execvisor-init, which
 * relies on fds 3 and 4. */
enum {
        CHILD_FD_AGENT = 3,
        CHILD_FD_STATUS = 4,
        CHILD_FD_INIT = 5,
        CHILD_FD_FIRST_FREE = 6,
};

/* The namespaces in the order of launch_request.ns_fds, as the joiner finds
 * its own: after setns(CLONE_NEWPID) only its children are in the new one. */
static const char *const joined_ns_paths[7] = {
        "thread-self/ns/mnt", "thread-self/ns/pid_for_children", "thread-self/ns/net",
        "thread-self/ns/ipc", "thread-self/ns/uts",              "thread-self/ns/cgroup",
        "thread-self/ns/user",
};

/* Everything from here to launch_start() runs in the joiner or in the final
 * child: processes forked from a supervisor that may have threads (libcurl's
 * resolver). They make raw system calls only, allocate nothing, and report a
 * failure as one record on the status pipe before _exit(). */

static void report(int status_fd, int step, int value, int detail)
{
        struct launch_status_record record = { .step = step, .value = value, .detail = detail };

        (void)!write(status_fd, &record, sizeof(record));
}

static _Noreturn void fail(int status_fd, int step, int error, int detail)
{
        report(status_fd, step, error > 0 ? error : EIO, detail);
        _exit(127);
}

static bool same_file(int fd_a, int fd_b)
{
        struct stat a, b;

        return fstat(fd_a, &a) == 0 && fstat(fd_b, &b) == 0 && a.st_dev == b.st_dev &&
               a.st_ino == b.st_ino;
}

static bool joined_every_namespace(const struct launch_request *request)
{
        for (size_t i = 0; i < ARRAY_SIZE(joined_ns_paths); i++) {
                int own_fd;
                bool same;

                if (request->ns_fds[i] < 0)
                        continue;

                own_fd = openat(request->host_proc_fd, joined_ns_paths[i], O_RDONLY | O_CLOEXEC);
                if (own_fd < 0)
                        return false;
                same = same_file(own_fd, request->ns_fds[i]);
                close(own_fd);
                if (!same)
                        return false;
        }
        return true;
}

/* Put fds at fixed numbers. Sources are first moved above every target, so
 * that placing one never closes another that is still to be placed. */
static int place_fds(const int *sources, const int *targets, size_t count)
{
        int moved[8];

        for (size_t i = 0; i < count; i++) {
                moved[i] = fcntl(sources[i], F_DUPFD_CLOEXEC, CHILD_FD_FIRST_FREE + 16);
                if (moved[i] < 0)
                        return -errno;
        }
        for (size_t i = 0; i < count; i++)
                if (dup3(moved[i], targets[i], 0) < 0)
                        return -errno;
        return 0;
}

static int drop_capabilities(const struct launch_request *request)
{
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = { 0 };

        /* The bounding set first: dropping needs CAP_SETPCAP, which may not
         * survive into the final sets. */
        for (int cap = 0; cap <= request->last_capability; cap++)
                if (!(request->capabilities & (1ULL << cap)) &&
                    prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                        return -errno;

        data[0].permitted = data[0].effective = (uint32_t)request->capabilities;
        data[1].permitted = data[1].effective = (uint32_t)(request->capabilities >> 32);
        if (syscall(SYS_capset, &header, data) < 0)
                return -errno;

        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        return 0;
}

static int set_lsm_label(const struct launch_request *request)
{
        int fd;
        ssize_t n;

        if (!request->lsm_exec_path)
                return 0;

        /* The host's /proc: the container's may be a fake. thread-self names
         * this process there because it is in the host's pid namespace too. */
        fd = openat(request->host_proc_fd, request->lsm_exec_path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = write(fd, request->lsm_exec_value, strlen(request->lsm_exec_value));
        close(fd);
        return n < 0 ? -errno : 0;
}

/* The final child: in the container's namespaces and cgroups, a child of the
 * supervisor. Drops to the agent's credentials and execs execvisor-init. */
static _Noreturn void run_final_child(const struct launch_request *request, int status_fd)
{
        const int sources[] = { request->stdin_fd,      request->output_fd, request->output_fd,
                                request->agent_exec_fd, status_fd,          request->init_exec_fd };
        const int targets[] = { STDIN_FILENO,   STDOUT_FILENO,   STDERR_FILENO,
                                CHILD_FD_AGENT, CHILD_FD_STATUS, CHILD_FD_INIT };
        sigset_t none;
        int r;

        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
                fail(status_fd, LAUNCH_STEP_SIGNALS, errno, 0);

        if (setsid() < 0)
                fail(status_fd, LAUNCH_STEP_SESSION, errno, 0);
        if (sys_keyctl_join_session() < 0 && errno != ENOSYS)
                fail(status_fd, LAUNCH_STEP_KEYRING, errno, 0);

        r = place_fds(sources, targets, ARRAY_SIZE(sources));
        if (r < 0)
                fail(status_fd, LAUNCH_STEP_FDS, -r, 0);
        status_fd = CHILD_FD_STATUS;
        if (fcntl(CHILD_FD_INIT, F_SETFD, FD_CLOEXEC) < 0)
                fail(status_fd, LAUNCH_STEP_FDS, errno, 0);
        if (close_range(CHILD_FD_FIRST_FREE, ~0U, 0) < 0)
                fail(status_fd, LAUNCH_STEP_FDS, errno, 0);

        if (setgroups(0, NULL) < 0)
                fail(status_fd, LAUNCH_STEP_GROUPS, errno, 0);
        if (setresgid(request->gid, request->gid, request->gid) < 0)
                fail(status_fd, LAUNCH_STEP_GID, errno, 0);
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 ||
            setresuid(request->uid, request->uid, request->uid) < 0)
                fail(status_fd, LAUNCH_STEP_UID, errno, 0);

        r = drop_capabilities(request);
        if (r < 0)
                fail(status_fd, LAUNCH_STEP_CAPABILITIES, -r, 0);

        r = set_lsm_label(request);
        if (r < 0)
                fail(status_fd, LAUNCH_STEP_LSM_LABEL, -r, 0);

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                fail(status_fd, LAUNCH_STEP_NO_NEW_PRIVS, errno, 0);

        /* Last: the filter may deny calls that the steps above make. */
        if (sys_seccomp(SECCOMP_SET_MODE_FILTER, 0, (void *)&request->seccomp) < 0)
                fail(status_fd, LAUNCH_STEP_SECCOMP, errno, 0);

        sys_execveat(CHILD_FD_INIT, "", request->argv, request->envp, AT_EMPTY_PATH);
        fail(status_fd, LAUNCH_STEP_EXEC_INIT, errno, 0);
}

static int join_cgroups(const struct agent_cgroups *cgroups)
{
        for (int i = 0; i < cgroups->count; i++) {
                const struct cgroup_hierarchy *h = &cgroups->hierarchies[i];

                if (write(h->procs_fd, "0", 1) < 0)
                        return -errno;
        }
        return 0;
}

/* The joiner: enters the container and clones the final child. It stays in
 * the host's pid namespace (setns moves only children), so nothing in the
 * container can see it in its /proc, and it is not dumpable, so nothing can
 * ptrace it or read its fds through /proc. */
static _Noreturn void run_joiner(const struct launch_request *request, int status_fd)
{
        struct clone_args args = { .exit_signal = 0 };
        size_t failed_mount = 0;
        long pid;
        int r;

        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                fail(status_fd, LAUNCH_STEP_NOT_DUMPABLE, errno, 0);

        /* The joiner enters the agent's cgroups itself, from the host's
         * cgroup namespace, and its child inherits them. CLONE_INTO_CGROUP
         * would spare the joiner the move on cgroup v2. But on Linux 6.18 a
         * child cloned with it into a cgroup that cgroup.kill emptied before
         * gets SIGKILL at once, as observed here with every restarted agent,
         * because the restarted agent reuses its cgroup. */
        r = join_cgroups(request->cgroups);
        if (r < 0)
                fail(status_fd, LAUNCH_STEP_CGROUP, -r, 0);

        if (setns(request->init_pidfd, request->ns_flags) < 0)
                fail(status_fd, LAUNCH_STEP_SETNS, errno, 0);
        if (!joined_every_namespace(request))
                fail(status_fd, LAUNCH_STEP_CHECK_NAMESPACES, EPERM, 0);

        if (fchdir(request->root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
                fail(status_fd, LAUNCH_STEP_CHROOT, errno, 0);

        r = mount_table_attach(request->root_fd, (struct mount_entry *)request->mounts,
                               request->n_mounts, request->shared_mount_ids,
                               request->n_shared_mount_ids, &failed_mount);
        if (r < 0)
                fail(status_fd, LAUNCH_STEP_MOUNT, -r, (int)failed_mount);

        /* CLONE_PARENT makes the supervisor the parent, so it can wait for the
         * child through a pidfd; the exit signal is then the joiner's own. */
        args.flags = CLONE_PARENT;
        pid = sys_clone3(&args);
        if (pid < 0)
                fail(status_fd, LAUNCH_STEP_CLONE, errno, 0);
        if (pid == 0)
                run_final_child(request, status_fd);

        report(status_fd, LAUNCH_STEP_CHILD_STARTED, (int)pid, 0);
        _exit(0);
}

int launch_start(const struct launch_request *request, struct launch *ret_launch)
{
        int status_pipe[2];
        sigset_t all, saved;
        pid_t pid;
        int pidfd;

        if (pipe2(status_pipe, O_CLOEXEC) < 0)
                return negative_errno();

        /* No handler of the supervisor may run in the child between fork and
         * the reset of the mask in the final child. */
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, &saved);
        pid = fork();
        if (pid == 0) {
                close(status_pipe[0]);
                /* Kept open across the exec of execvisor-init; the init marks
                 * its copy close-on-exec for the agent's exec. */
                run_joiner(request, status_pipe[1]);
        }
        sigprocmask(SIG_SETMASK, &saved, NULL);

        if (pid < 0) {
                int r = negative_errno();

                safe_close(status_pipe[0]);
                safe_close(status_pipe[1]);
                return r;
        }
        safe_close(status_pipe[1]);

        /* The joiner is our child, so its pid cannot be reused before we reap it. */
        pidfd = pidfd_open(pid, 0);
        if (pidfd < 0) {
                int r = negative_errno();

                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                safe_close(status_pipe[0]);
                return r;
        }
        (void)fcntl(status_pipe[0], F_SETFL, O_NONBLOCK);

        *ret_launch = (struct launch){
                .joiner_pid = pid,
                .joiner_pidfd = pidfd,
                .status_fd = status_pipe[0],
                .started_usec = now_monotonic_usec(),
        };
        return 0;
}

int launch_read_status(struct launch *launch)
{
        for (;;) {
                struct launch_status_record record;
                ssize_t n = read(launch->status_fd, &record, sizeof(record));

                if (n < 0)
                        return errno == EAGAIN ? 0 : (errno == EINTR ? 0 : negative_errno());
                if (n == 0)
                        return 1;
                if ((size_t)n != sizeof(record))
                        return -EBADMSG;

                if (record.step == LAUNCH_STEP_CHILD_STARTED)
                        launch->child_pid = record.value;
                else if (launch->failed_step == 0) {
                        launch->failed_step = record.step;
                        launch->failed_error = record.value;
                        launch->failed_mount = (size_t)record.detail;
                }
        }
}

static void reap_joiner(struct launch *launch)
{
        if (launch->joiner_pid > 0) {
                siginfo_t info;

                /* The joiner exits right after the clone; this waits at most
                 * for that. */
                (void)waitid(P_PIDFD, (id_t)launch->joiner_pidfd, &info, WEXITED);
                launch->joiner_pid = 0;
        }
        launch->joiner_pidfd = safe_close(launch->joiner_pidfd);
        launch->status_fd = safe_close(launch->status_fd);
}

void launch_abort(struct launch *launch)
{
        if (launch->joiner_pidfd >= 0)
                (void)pidfd_send_signal(launch->joiner_pidfd, SIGKILL, NULL, 0);
        if (launch->child_pid > 0)
                (void)kill(launch->child_pid, SIGKILL);
        reap_joiner(launch);
}

void launch_finish(struct launch *launch)
{
        reap_joiner(launch);
}

const char *launch_step_to_string(int step)
{
        switch (step) {
        case LAUNCH_STEP_NOT_DUMPABLE:
                return "make the joiner not dumpable";
        case LAUNCH_STEP_CGROUP:
                return "enter the agent cgroup";
        case LAUNCH_STEP_SETNS:
                return "join the container's namespaces";
        case LAUNCH_STEP_CHECK_NAMESPACES:
                return "check the joined namespaces";
        case LAUNCH_STEP_CHROOT:
                return "change root to the container's root";
        case LAUNCH_STEP_MOUNT:
                return "mount";
        case LAUNCH_STEP_CLONE:
                return "clone the agent's process";
        case LAUNCH_STEP_SIGNALS:
                return "reset the signal mask";
        case LAUNCH_STEP_SESSION:
                return "start a new session";
        case LAUNCH_STEP_KEYRING:
                return "join a new session keyring";
        case LAUNCH_STEP_FDS:
                return "set up file descriptors";
        case LAUNCH_STEP_GROUPS:
                return "set supplementary groups";
        case LAUNCH_STEP_GID:
                return "set the group id";
        case LAUNCH_STEP_UID:
                return "set the user id";
        case LAUNCH_STEP_CAPABILITIES:
                return "drop capabilities";
        case LAUNCH_STEP_LSM_LABEL:
                return "set the security label";
        case LAUNCH_STEP_NO_NEW_PRIVS:
                return "set no_new_privs";
        case LAUNCH_STEP_SECCOMP:
                return "load the seccomp filter";
        case LAUNCH_STEP_EXEC_INIT:
                return "exec execvisor-init";
        case LAUNCH_STEP_EXEC_AGENT:
                return "exec the agent";
        case LAUNCH_STEP_INIT_ARGUMENTS:
                return "parse execvisor-init's arguments";
        case LAUNCH_STEP_INIT_SUBREAPER:
                return "make execvisor-init a child subreaper";
        case LAUNCH_STEP_INIT_SIGNALS:
                return "set up execvisor-init's signals";
        case LAUNCH_STEP_INIT_FORK:
                return "fork the agent";
        case LAUNCH_STEP_AGENT_PROCESS_GROUP:
                return "give the agent its own process group";
        case LAUNCH_STEP_INIT_OUTPUT:
                return "make the agent's output pipe";
        default:
                return "start the agent";
        }
}
