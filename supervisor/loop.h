#pragma once

/* The event loop: one epoll set, every wait an fd. Each registered fd carries
 * a pointer to its source record, and dispatch calls the record's handler. */

#include <stdbool.h>
#include <stdint.h>

struct loop;

struct loop_source {
        int fd;
        void (*dispatch)(struct loop_source *source, uint32_t events);
};

/* A one-shot timer on a timerfd (CLOCK_MONOTONIC). */
struct loop_timer {
        struct loop_source source;
        void (*fire)(struct loop_timer *timer);
};

int loop_new(struct loop **ret_loop);
void loop_free(struct loop *loop);

int loop_add(struct loop *loop, struct loop_source *source, uint32_t events);
int loop_modify(struct loop *loop, struct loop_source *source, uint32_t events);
/* Unregister source. Events already fetched for it in the current batch are
 * dropped, so the caller may free the record right after this returns. */
void loop_remove(struct loop *loop, struct loop_source *source);

/* Run until loop_quit(); returns the status given to it. */
int loop_run(struct loop *loop);
void loop_quit(struct loop *loop, int status);

int loop_timer_init(struct loop *loop, struct loop_timer *timer, void (*fire)(struct loop_timer *));
/* Fire once after delay_usec (at least 1 µs); 0 disarms. */
int loop_timer_arm(struct loop_timer *timer, unsigned long long delay_usec);
bool loop_timer_armed(const struct loop_timer *timer);
void loop_timer_release(struct loop *loop, struct loop_timer *timer);
