#pragma once

/* The privilege an agent gets: its capability sets and its seccomp filter,
 * prepared on the host before the launch, with libcap and libseccomp. */

#include <linux/filter.h>
#include <stdint.h>

/* The capability bounding set of the process whose /proc directory is proc_pid_fd. */
int read_bounding_set(int proc_pid_fd, uint64_t *ret_set);

/* Return the highest capability number of the running kernel. */
int last_capability(void);

/* Parse a libcap text list such as "cap_chown,cap_net_bind_service" into a
 * set; "all" is every capability. */
int parse_capability_list(const char *text, uint64_t *ret_set);

/* Build the agent's seccomp filter as classic BPF, ready for
 * seccomp(SECCOMP_SET_MODE_FILTER) in a child that may not allocate. The
 * filter denies with EPERM what a container's agent has no use for and what
 * container runtimes deny by default: kernel modules, kexec, reboot, swap,
 * the clock, keyrings, bpf, perf, ptrace, mounts, namespace changes and
 * file handles. ret_program->filter is allocated; free it with free(). */
int seccomp_build_agent_filter(struct sock_fprog *ret_program);
