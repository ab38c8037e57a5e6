#pragma once

/* The status pipe between the supervisor and the agent's launch path.
 *
 * The supervisor keeps the read end and hands the write end, close-on-exec, to
 * every process of the launch path down to execvisor-init and the agent. A
 * process that fails writes one record and exits. The supervisor reads until
 * EOF: EOF without a record means that every exec happened, because the last
 * copy of the write end closes when the agent's execveat succeeds. */

#include <stdint.h>

/* execvisor-init keeps the read end of the agent's output pipe open at this
 * fd, and never reads it: the supervisor takes a copy with pidfd_getfd(). So
 * the pipe outlives a restart of the supervisor, and the agent never gets
 * SIGPIPE for writing its output while no supervisor runs. */
#define INIT_OUTPUT_FD 5

/* Step ids: the supervisor's launch path below 100, execvisor-init's from 100. */
enum launch_step {
        /* Not a failure: the joiner reports the host pid of the final child. */
        LAUNCH_STEP_CHILD_STARTED = 1,
        LAUNCH_STEP_NOT_DUMPABLE = 2,
        LAUNCH_STEP_CGROUP = 3,
        LAUNCH_STEP_SETNS = 4,
        LAUNCH_STEP_CHECK_NAMESPACES = 5,
        LAUNCH_STEP_CHROOT = 6,
        /* detail is the index of the mount in the launch request. */
        LAUNCH_STEP_MOUNT = 7,
        LAUNCH_STEP_CLONE = 8,
        LAUNCH_STEP_SIGNALS = 9,
        LAUNCH_STEP_SESSION = 10,
        LAUNCH_STEP_KEYRING = 11,
        LAUNCH_STEP_FDS = 12,
        LAUNCH_STEP_GROUPS = 13,
        LAUNCH_STEP_GID = 14,
        LAUNCH_STEP_UID = 15,
        LAUNCH_STEP_CAPABILITIES = 16,
        LAUNCH_STEP_LSM_LABEL = 17,
        LAUNCH_STEP_NO_NEW_PRIVS = 18,
        LAUNCH_STEP_SECCOMP = 19,
        LAUNCH_STEP_EXEC_INIT = 20,

        /* execveat of the agent binary from execvisor-init's child. */
        LAUNCH_STEP_EXEC_AGENT = 100,
        /* execvisor-init was started without an agent path. */
        LAUNCH_STEP_INIT_ARGUMENTS = 101,
        /* prctl(PR_SET_CHILD_SUBREAPER) in execvisor-init. */
        LAUNCH_STEP_INIT_SUBREAPER = 102,
        /* Signal dispositions or mask in execvisor-init. */
        LAUNCH_STEP_INIT_SIGNALS = 103,
        /* fork of the agent's process. */
        LAUNCH_STEP_INIT_FORK = 104,
        /* setpgid that gives the agent its own process group. */
        LAUNCH_STEP_AGENT_PROCESS_GROUP = 105,
        /* The agent's output pipe in execvisor-init. */
        LAUNCH_STEP_INIT_OUTPUT = 106,
};

/* One record: step is an enum launch_step value; value is a positive errno
 * for a failure, or the pid for LAUNCH_STEP_CHILD_STARTED. Both sides run on
 * the same host, so native byte order is fine. */
struct launch_status_record {
        int32_t step;
        int32_t value;
        int32_t detail;
        int32_t reserved;
};

_Static_assert(sizeof(struct launch_status_record) == 16,
               "the status record is read and written as 16 bytes");
