#pragma once

/* The agent's stdout and stderr: drained from the pipe that execvisor-init
 * keeps into <log-dir>/.output/<container>.log on the host, bounded in size,
 * and remembered line by line for the reason of a stop. The text is untrusted:
 * control characters are replaced before a line is kept. The file is outside
 * the directory that the container can write to and fill with symlinks. */

#include "supervisor/supervisor.h"

#define AGENT_OUTPUT_DIR ".output"
#define AGENT_OUTPUT_MAX_SIZE (10 * 1024 * 1024)

/* Take ownership of pipe_fd and drain it whenever it is readable. */
void agent_output_attach(struct supervised *s, int pipe_fd);
/* Read what is in the pipe now, without waiting. */
void agent_output_drain(struct supervised *s);
void agent_output_detach(struct supervised *s);
