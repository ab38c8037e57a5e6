#pragma once

/* Reports pushed to receivers: every event of a container's agent is POSTed
 * as JSON to each configured URL. Per URL and per container only the newest
 * state that is not yet delivered is kept, so memory stays bounded by
 * (URLs x containers) however long a receiver is down. Sends for one
 * container go out one at a time, in the order of its sequence numbers.
 * Sends for different containers run in parallel, up to
 * REPORT_MAX_IN_FLIGHT per URL. A failed send is retried with exponential
 * backoff per URL. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "supervisor/container.h"

struct loop;
struct http_multi;
struct config;
struct reporter;

#define REPORT_MAX_IN_FLIGHT 8
#define REPORT_TIMEOUT_MSEC 10000L
#define REPORT_BACKOFF_MIN_USEC (1ULL * 1000000ULL)
#define REPORT_BACKOFF_MAX_USEC (60ULL * 1000000ULL)
#define REPORT_TASK_ARN_LABEL "com.amazonaws.ecs.task-arn"

/* Start reporting the events of every container to config->report_urls.
 * With no URL configured, the reporter does nothing. Only one reporter
 * exists at a time: a second start returns -EBUSY. report_free() must run
 * before http_multi_free() of http. */
int report_start(struct loop *loop, struct http_multi *http, const struct config *config,
                 struct reporter **ret_reporter);
/* Cancel every send, drop every state not yet delivered and stop observing
 * containers. NULL is ignored. */
void report_free(struct reporter *reporter);

/* Number of states not yet delivered, waiting or in flight, over every URL. */
size_t report_pending(const struct reporter *reporter);

/* Build the body of the report of one event: ContainerId, ContainerName,
 * TaskARN (left out without the task ARN label), ManagedAgent, Sequence, Time
 * (realtime_usec as RFC 3339) and Event. Returns malloc()ed JSON text. */
char *report_body(const struct container *container, enum container_event event,
                  unsigned long long realtime_usec);

/* A state of one container as sent to one receiver. */
struct report_state {
        char container_id[CONTAINER_ID_MAX + 1];
        uint64_t sequence;
        char *body;
};

/* The states of the containers that one receiver has not yet received:
 * at most one waiting and one in flight per container. It does no I/O, so
 * the reporter's coalescing and ordering can be tested on their own. */
struct report_queue;

struct report_queue *report_queue_new(void);
void report_queue_free(struct report_queue *queue);

/* Store the newest state of a container, taking ownership of body. A state
 * of the same container that waits is replaced; one in flight is not
 * touched, and the new state goes out after it. */
void report_queue_put(struct report_queue *queue, const char *container_id, uint64_t sequence,
                      char *body);
/* Drop the waiting state of a container. A state in flight finishes, but is
 * not put back if it fails. */
void report_queue_forget(struct report_queue *queue, const char *container_id);

/* Mark the oldest waiting state of a container with nothing in flight as in
 * flight, and return it. Returns NULL when no state is ready or when
 * max_in_flight states are already in flight. The state stays valid until it
 * is passed to report_queue_finish(). */
const struct report_state *report_queue_next(struct report_queue *queue, size_t max_in_flight);
/* End the send of a state that report_queue_next() returned. A state that
 * failed waits again, unless a newer state of its container waits already or
 * the container was forgotten. */
void report_queue_finish(struct report_queue *queue, const struct report_state *state,
                         bool delivered);

size_t report_queue_waiting(const struct report_queue *queue);
size_t report_queue_in_flight(const struct report_queue *queue);
/* The state of a container that waits, or NULL. */
const struct report_state *report_queue_find_waiting(const struct report_queue *queue,
                                                     const char *container_id);
