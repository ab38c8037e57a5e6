#pragma once

/* The audit log: one JSON line for every event of every container's agent
 * (injected, started, exited, stopped, adopted, forgotten), appended to a
 * file that is rotated by size. A failed write is logged and the event is
 * lost; it never stops the supervisor. */

#include <stddef.h>
#include <stdint.h>

#include "supervisor/container.h"

struct config;
struct audit_log;

#define AUDIT_MAX_SIZE_DEFAULT (10ULL * 1024ULL * 1024ULL)
/* Rotated files kept beside the log: audit.log.1 (newest) to audit.log.3. */
#define AUDIT_GENERATIONS 3

/* Open config->audit_log (<log_dir>/audit.log when NULL) for appending and
 * start writing a line for every container event. The file must not be a
 * symbolic link and must be a regular file; on failure, logs why and returns a
 * negative errno. Only one audit log is open at a time: a second open
 * returns -EBUSY. */
int audit_open(const struct config *config, struct audit_log **ret_audit);
/* Stop writing and close the file. NULL is ignored. */
void audit_close(struct audit_log *audit);

/* Build the line of one event: Time (realtime_usec as RFC 3339), Event,
 * ContainerId, ContainerName, Version, Pid, RestartCount, LastStatus, Reason
 * and Sequence, as JSON text that ends in a newline. Returns malloc()ed text. */
char *audit_line(const struct container *container, enum container_event event,
                 unsigned long long realtime_usec);

/* Append one line with a single write(), rotating the file first when the
 * line would make it larger than the maximum size. Returns 0, or a negative
 * errno after logging the failure (rate-limited). */
int audit_append(struct audit_log *audit, const char *line, size_t size);
