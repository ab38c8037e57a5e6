#pragma once

/* The agent's environment: an allowlist of the container's variables, and
 * nothing of the host's. An application's own AWS_ACCESS_KEY_ID and the like
 * never reach the agent, so they cannot override the task role. */

#include <stddef.h>

#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Build a NULL-terminated environment from the container's "NAME=value"
 * strings: PATH (or AGENT_DEFAULT_PATH), the task metadata and container
 * credential variables, and the proxy variables in either case. */
char **agent_environment(char *const *container_env, size_t count);
void environment_free(char **env);
