#pragma once

/* Starting the agent inside a container: the parent half prepares every object
 * on the host, forks a joiner that enters the container, attaches the mounts
 * and clones the final child, which drops privilege and execs execvisor-init.
 * The launch runs asynchronously: launch_start() returns at once and the
 * outcome arrives on status_fd, read by launch_read_status(). */

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroups/cgroup.h"
#include "init/protocol.h"
#include "mounts/attach.h"

#define LAUNCH_MAX_MOUNTS 4

struct launch_request {
        /* The pinned container init. */
        int init_pidfd;
        int root_fd;        /* O_PATH of /proc/<pid>/root, opened on the host */
        int ns_fds[7];      /* the init's namespaces, -1 where not joined */
        int ns_flags;       /* CLONE_NEW* to join through init_pidfd */
        int host_proc_fd;   /* the host's /proc, for the joiner's own entries */

        struct mount_entry mounts[LAUNCH_MAX_MOUNTS];
        size_t n_mounts;
        const uint64_t *shared_mount_ids;
        size_t n_shared_mount_ids;

        const struct agent_cgroups *cgroups;

        int init_exec_fd;   /* execvisor-init, opened from the container's bundle view */
        int agent_exec_fd;  /* the agent binary, from the same view */
        int stdin_fd;       /* /dev/null opened on the host */
        int output_fd;      /* write end of the agent's output pipe */

        char *const *argv;  /* execvisor-init <agent path> [args] */
        char *const *envp;

        struct sock_fprog seccomp;
        uint64_t capabilities; /* bounding, permitted and effective set */
        int last_capability;
        uid_t uid;
        gid_t gid;

        /* Written to lsm_exec_path (relative to host_proc_fd, e.g.
         * "thread-self/attr/apparmor/exec") before the exec; NULL for none. */
        const char *lsm_exec_path;
        const char *lsm_exec_value;
};

struct launch {
        pid_t joiner_pid;
        int joiner_pidfd;
        int status_fd;      /* read end of the status pipe, non-blocking */
        pid_t child_pid;    /* host pid of execvisor-init once reported */
        int failed_step;    /* enum launch_step, 0 while none failed */
        int failed_error;   /* positive errno */
        size_t failed_mount; /* index into mounts for LAUNCH_STEP_MOUNT */
        uint64_t started_usec;
};

/* Fork the joiner. On success ret_launch contains the status fd to watch. */
int launch_start(const struct launch_request *request, struct launch *ret_launch);

/* Read what arrived on status_fd. Returns 0 while more is to come, 1 at EOF
 * (then child_pid or failed_step tell the outcome), or a negative errno. */
int launch_read_status(struct launch *launch);

/* End a launch still in flight (timeout, container gone): SIGKILL the
 * joiner and the child if known, and release the fds. */
void launch_abort(struct launch *launch);
/* Release the fds of a finished launch and reap the joiner. */
void launch_finish(struct launch *launch);

const char *launch_step_to_string(int step);
