#pragma once

/* Preparing a launch on the host: pinning the container's init, the bundle
 * view, the log mount, the cgroups and the agent's credentials. */

#include "supervisor/supervisor.h"

/* Pin the init of a running container: open its pidfd and check that it is
 * the container (its cgroups name the container id) and is still the same
 * process after the checks. */
int inject_pin_container(struct supervised *s, pid_t init_pid, char **ret_error);

/* Prepare every host-side object and fork the joiner. On success the launch
 * is in flight in s->launch. On failure ret_error names what failed. */
int inject_launch(struct supervised *s, char **ret_error);

/* Namespace inodes of the supervisor itself, for supervisor.own_namespaces. */
int inject_read_own_namespaces(uint64_t ret_inodes[7]);

/* The start time of a process in clock ticks since boot (field 22 of stat). */
int read_process_start_ticks(int proc_pid_fd, uint64_t *ret_ticks);

/* Warn about versions of the bundle that were passed over (as listed by
 * bundle_find_version()), once for each different list. */
void report_skipped_versions(const char *bundle_dir, const char *skipped);
