#pragma once

/* Counters of the supervisor, served as Prometheus text (exposition format
 * 0.0.4) on GET /metrics. The daemon and the report module record events.
 * The agent state gauges are computed from the container list at render time. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "supervisor/container.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Record one injection attempt and how long it took, successful or not. */
void metrics_injection(bool ok, uint64_t duration_usec);
void metrics_agent_restart(void);
/* Record one report sent to a receiver: delivered, or given up on. */
void metrics_report(bool delivered);
/* Set the number of reports waiting to be sent. */
void metrics_set_report_queue(size_t length);

/* Render every metric, with the agent state gauges counted from
 * container_list(). Returns malloc()ed text, or NULL when out of memory. */
char *metrics_render(void);
/* The same, with the gauges counted from containers (a list linked by ->next). */
char *metrics_render_containers(const struct container *containers);

/* Set every counter back to zero. Only tests call this. */
void metrics_reset(void);
