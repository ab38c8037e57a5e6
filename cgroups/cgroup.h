#pragma once

/* Finding a container's cgroups (v1, v2 or hybrid) and a child cgroup of each
 * for the agent's process tree, so that the agent counts toward the
 * container's limits while the supervisor can measure and end it.
 *
 * Runs in the supervisor, on the host: every path is read through the host's
 * /proc and cgroupfs mounts. A container with a writable cgroupfs may have made
 * or tuned the child cgroup before us, so it is opened without following links
 * and its limits are written again each time. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CGROUP_AGENT_DIR "execvisor-agent"
#define CGROUP_MAX_HIERARCHIES 16

struct cgroup_hierarchy {
        int id;             /* hierarchy id from /proc/<pid>/cgroup, 0 for the unified one */
        bool unified;       /* cgroup v2 */
        char *controllers;  /* "memory", "cpu,cpuacct", "name=systemd"; empty for v2 */
        char *agent_path;   /* host path of the agent's child cgroup */
        int agent_dir_fd;   /* O_DIRECTORY fd of the child cgroup */
        int procs_fd;       /* its cgroup.procs, open for writing */
};

struct agent_cgroups {
        struct cgroup_hierarchy hierarchies[CGROUP_MAX_HIERARCHIES];
        int count;
        int unified_index;  /* index of the v2 hierarchy, -1 if none */
        int freezer_index;  /* index of the v1 freezer, -1 if none */
        int memory_index;   /* hierarchy where a memory cap can be set, -1 if none */
        int pids_index;     /* hierarchy where a pids cap can be set, -1 if none */
};

void agent_cgroups_init(struct agent_cgroups *cgroups);
void agent_cgroups_release(struct agent_cgroups *cgroups);

/* Create (or reuse) the agent's child cgroup under every cgroup of the process
 * whose /proc directory is proc_pid_fd. Every cgroup path must contain
 * container_id, which ties the pinned process to the container. ret_cgroups is
 * filled on success only. */
int agent_cgroups_prepare(int proc_pid_fd, const char *container_id,
                          struct agent_cgroups *ret_cgroups);

/* Open the agent cgroups of a container whose agent already runs, without
 * creating anything. */
int agent_cgroups_open(int proc_pid_fd, const char *container_id,
                       struct agent_cgroups *ret_cgroups);

/* Write the caps (0 = no cap, "max"). Returns -EOPNOTSUPP when a nonzero cap
 * was requested but no hierarchy has the controller for it. */
int agent_cgroups_set_limits(struct agent_cgroups *cgroups, uint64_t memory_max,
                             uint64_t pids_max);

/* True if pid is a member of the agent's cgroups (checked on one hierarchy). */
bool agent_cgroups_contains(const struct agent_cgroups *cgroups, pid_t pid);

/* The pids in the agent's cgroup (read on one hierarchy). */
int agent_cgroups_list(const struct agent_cgroups *cgroups, pid_t **ret_pids, size_t *ret_count);

/* Count the processes in the agent's cgroup. */
int agent_cgroups_count_processes(const struct agent_cgroups *cgroups);

/* SIGKILL every process of the agent's cgroup: cgroup.kill on v2, else
 * freeze, signal each member, thaw on v1. Returns the number signalled (v1) or 0. */
int agent_cgroups_kill(const struct agent_cgroups *cgroups);

/* Remove the child cgroups; -EBUSY while processes remain. */
int agent_cgroups_remove(struct agent_cgroups *cgroups);

/* True if a child cgroup of a container can carry a cap of this controller
 * ("memory", "pids") on this host: a v1 hierarchy with the controller. On
 * cgroup v2 a container's processes sit in its own cgroup, and the kernel
 * enables no controller for children of a cgroup that has processes. */
bool cgroup_host_can_cap(const char *controller);
