#pragma once

/* The supervisor's shared context and the per-container supervision record
 * (struct container.private). */

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroups/cgroup.h"
#include "supervisor/config.h"
#include "supervisor/container.h"
#include "supervisor/launch.h"
#include "supervisor/loop.h"

struct container_info;

struct supervisor {
        const struct config *config;
        struct loop *loop;

        struct sock_fprog seccomp;
        int last_capability;
        int host_proc_fd;
        int log_dir_fd;
        char *init_path;    /* execvisor-init on the host */
        char *views_dir;    /* <state-dir>/views: generated bundle layers */
        char *records_dir;  /* <state-dir>/containers: one state file per container */
        /* Inodes of the supervisor's own namespaces, in launch_request.ns_fds
         * order: a container namespace equal to ours is not joined. */
        uint64_t own_namespaces[7];

        /* One timer for every stopped container's --forget-after deadline. */
        struct loop_timer forget_timer;

        bool shutting_down;
};

/* Per container: where its agent is in its life and what the supervisor holds for it. */
struct supervised {
        struct container *container;
        struct supervisor *supervisor;

        /* The container's init, pinned by pidfd. */
        pid_t init_pid;
        int init_pidfd;
        int init_proc_fd;     /* its /proc directory on the host */
        uint64_t init_start_ticks;
        struct loop_source init_source;

        char uuid[37];        /* names /ecs-execute-command-<uuid> */
        char *log_name;       /* safe file name of the container's host log directory */
        char **env;           /* the agent's environment, NULL-terminated */
        unsigned session_limit;

        /* The launch in flight. */
        bool launching;
        struct launch launch;
        struct loop_source launch_source;
        struct loop_timer launch_timer;
        uint64_t prepare_usec;

        /* execvisor-init, the supervisor's child, and the agent below it. */
        pid_t agent_init_pid;
        int agent_init_pidfd;
        uint64_t agent_init_start_ticks;
        bool adopted;         /* not our child: its exit status cannot be read */
        struct loop_source agent_source;

        /* The agent's output pipe, taken from execvisor-init. */
        struct loop_source output_source;
        int output_log_fd;
        char partial_line[256];
        size_t partial_length;

        struct agent_cgroups cgroups;
        /* Timers are created when first armed and closed when the
         * container exits; -1 fds until then. */
        struct loop_timer restart_timer;
        struct loop_timer stop_timer;  /* grace period of a stop */
        uint64_t forget_at_usec;       /* CLOCK_MONOTONIC deadline of --forget-after; 0 for none */
        /* The container has a new init, so the next start is an injection. */
        bool needs_injection;
        /* STOPPED because no usable bundle was installed: retried when the
         * bundle directory changes. */
        bool bundle_failed;

        /* CLOCK_MONOTONIC times of recent exits, oldest first. */
        uint64_t *exit_times;
        size_t n_exit_times;
        uint64_t backoff_usec;
        uint64_t stopped_usec; /* CLOCK_REALTIME when it became STOPPED */

        /* From the state file of an earlier supervisor, until the container
         * is seen again: which processes were its init and its agent. */
        struct {
                pid_t init_pid;
                uint64_t init_start_ticks;
                pid_t agent_init_pid;
                uint64_t agent_init_start_ticks;
        } stored;
};

/* Create a record for a container and list it (state PENDING). */
struct supervised *supervised_new(struct supervisor *supervisor, const char *id);

/* Watch an agent's execvisor-init by its pidfd; adopted means it is not our child. */
int supervise_watch_agent(struct supervised *s, pid_t init_pid, int init_pidfd, bool adopted);

/* Arm the timer that drops a STOPPED record after --forget-after. */
void supervise_forget_later(struct supervised *s, uint64_t delay_usec);

/* Container lifecycle, called from the Docker client's callbacks. */
void supervise_container_running(struct supervisor *supervisor, const struct container_info *info);
void supervise_container_exited(struct supervisor *supervisor, const char *id, const char *reason);
/* After a full list of running containers: anything else supervised has exited. */
void supervise_sync_done(struct supervisor *supervisor, const char *const *running_ids, size_t count);
/* On SIGTERM: stop starting agents, and with --stop-agents-on-exit send
 * SIGTERM to each. Returns true when agents are being stopped: the loop then
 * runs until supervise_agents_running() is false. */
bool supervise_shutdown(struct supervisor *supervisor);
bool supervise_agents_running(void);
/* Release every record; running agents are left running. */
void supervise_free_all(struct supervisor *supervisor);
/* Create the supervisor's forget timer; before any record exists. */
int supervise_init(struct supervisor *supervisor);

/* Between the supervision files: supervise.c (containers), agent_launch.c
 * (starting an agent) and agent_watch.c (a running agent's exits, restarts
 * and stop). */
void supervised_emit(struct supervised *s, enum container_event event);
void supervised_log(int level, const struct supervised *s, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
/* Set STOPPED for good with reason, and emit it. */
void supervised_stop(struct supervised *s, const char *reason);
/* Arm timer after delay_usec, creating it with fire on first use; 0 disarms. */
int supervised_arm_timer(struct supervised *s, struct loop_timer *timer,
                         void (*fire)(struct loop_timer *timer), uint64_t delay_usec);

/* Start (or restart) the agent: prepare on the host and launch. */
void agent_start(struct supervised *s);
/* End the bookkeeping of a launch in flight, or abort it and its processes. */
void agent_launch_end(struct supervised *s);
void agent_launch_cancel(struct supervised *s);
/* Let go of the agent's process and output; the process is left alone. */
void agent_release(struct supervised *s);
/* End whatever of the agent's tree is still in its cgroup. */
void agent_kill_tree(struct supervised *s);
/* Send SIGTERM to the agent and SIGKILL to its tree after --stop-grace;
 * false when no agent runs. */
bool agent_request_stop(struct supervised *s);
/* True while an agent runs or is being launched. */
bool agent_active(const struct supervised *s);
