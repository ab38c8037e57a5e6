#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/loop.h"
#include "supervisor/util.h"

#define CANARY_LIVE 0x4c495645u /* "LIVE" */
#define CANARY_DEAD 0x44454144u /* "DEAD" */

#define MAX_PIPES 8

/* A pipe source whose record notes every dispatch. */
struct pipe_record {
        struct loop_source source;
        unsigned canary;
        int write_fd;
        int dispatches;
        uint32_t last_events;
        struct test_context *context;
};

struct test_context {
        struct loop *loop;
        struct pipe_record *records[MAX_PIPES];
        size_t n_records;
        int dispatches_of_removed; /* dispatches of a record after its removal */
        int total_dispatches;
        bool free_removed; /* free removed records, for the sanitizers to watch */
};

static void drain(int fd)
{
        char buffer[64];

        while (read(fd, buffer, sizeof(buffer)) > 0)
                ;
}

static struct pipe_record *pipe_record_new(struct test_context *context,
                                           void (*dispatch)(struct loop_source *, uint32_t))
{
        struct pipe_record *record = calloc(1, sizeof(*record));
        int fds[2];

        assert_non_null(record);
        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        record->source.fd = fds[0];
        record->source.dispatch = dispatch;
        record->write_fd = fds[1];
        record->canary = CANARY_LIVE;
        record->context = context;
        assert_int_equal(loop_add(context->loop, &record->source, EPOLLIN), 0);
        context->records[context->n_records++] = record;
        return record;
}

static void pipe_record_close(struct pipe_record *record)
{
        safe_close(record->source.fd);
        safe_close(record->write_fd);
}

static void make_readable(struct pipe_record *record)
{
        assert_int_equal(write(record->write_fd, "x", 1), 1);
}

/* Note the dispatch and quit. */
static void dispatch_and_quit(struct loop_source *source, uint32_t events)
{
        struct pipe_record *record = container_of(source, struct pipe_record, source);

        record->dispatches++;
        record->last_events = events;
        record->context->total_dispatches++;
        drain(source->fd);
        loop_quit(record->context->loop, 0);
}

static void test_dispatch_with_record(void **state)
{
        struct test_context context = {};
        struct pipe_record *first, *second;

        assert_int_equal(loop_new(&context.loop), 0);
        first = pipe_record_new(&context, dispatch_and_quit);
        second = pipe_record_new(&context, dispatch_and_quit);

        make_readable(second);
        assert_int_equal(loop_run(context.loop), 0);
        assert_int_equal(first->dispatches, 0);
        assert_int_equal(second->dispatches, 1);
        assert_int_equal(second->last_events, EPOLLIN);
        assert_int_equal(context.total_dispatches, 1);

        for (size_t i = 0; i < context.n_records; i++) {
                pipe_record_close(context.records[i]);
                free(context.records[i]);
        }
        loop_free(context.loop);
}

static void test_hangup_reaches_handler(void **state)
{
        struct test_context context = {};
        struct pipe_record *record;

        assert_int_equal(loop_new(&context.loop), 0);
        record = pipe_record_new(&context, dispatch_and_quit);

        record->write_fd = safe_close(record->write_fd);
        assert_int_equal(loop_run(context.loop), 0);
        assert_int_equal(record->dispatches, 1);
        assert_true(record->last_events & EPOLLHUP);

        pipe_record_close(record);
        free(record);
        loop_free(context.loop);
}

/* Remove every other record of the context, as the handler that drops a
 * container frees that container's records. */
static void dispatch_removing_others(struct loop_source *source, uint32_t events)
{
        struct pipe_record *record = container_of(source, struct pipe_record, source);
        struct test_context *context = record->context;

        context->total_dispatches++;
        if (record->canary != CANARY_LIVE) {
                context->dispatches_of_removed++;
                return;
        }
        record->dispatches++;
        drain(source->fd);

        for (size_t i = 0; i < context->n_records; i++) {
                struct pipe_record *other = context->records[i];

                if (!other || other == record)
                        continue;
                loop_remove(context->loop, &other->source);
                pipe_record_close(other);
                other->canary = CANARY_DEAD;
                if (context->free_removed) {
                        free(other);
                        context->records[i] = NULL;
                }
        }
        loop_quit(context->loop, 0);
}

static void run_removal_batch(size_t n_pipes, bool free_removed)
{
        struct test_context context = { .free_removed = free_removed };
        struct pipe_record *survivor = NULL;

        assert_int_equal(loop_new(&context.loop), 0);
        for (size_t i = 0; i < n_pipes; i++)
                pipe_record_new(&context, dispatch_removing_others);

        /* All readable before the loop waits, so one epoll_wait returns them all. */
        for (size_t i = 0; i < n_pipes; i++)
                make_readable(context.records[i]);

        assert_int_equal(loop_run(context.loop), 0);
        assert_int_equal(context.dispatches_of_removed, 0);
        assert_int_equal(context.total_dispatches, 1);

        for (size_t i = 0; i < context.n_records; i++) {
                struct pipe_record *record = context.records[i];

                if (!record)
                        continue;
                if (record->canary == CANARY_LIVE) {
                        assert_null(survivor);
                        survivor = record;
                        assert_int_equal(record->dispatches, 1);
                        pipe_record_close(record);
                }
                free(record);
        }
        assert_non_null(survivor);
        loop_free(context.loop);
}

static void test_remove_in_batch_kept_record(void **state)
{
        run_removal_batch(2, false);
        run_removal_batch(MAX_PIPES, false);
}

static void test_remove_in_batch_freed_record(void **state)
{
        /* A dispatch of a freed record shows as a use after free under
         * AddressSanitizer or valgrind. */
        run_removal_batch(2, true);
        run_removal_batch(MAX_PIPES, true);
}

static void test_quit_returns_status(void **state)
{
        struct loop *loop;

        assert_int_equal(loop_new(&loop), 0);

        /* A quit before the run ends it at once. */
        loop_quit(loop, 42);
        assert_int_equal(loop_run(loop), 42);
        loop_free(loop);

        assert_int_equal(loop_new(&loop), 0);
        loop_quit(loop, -ECANCELED);
        assert_int_equal(loop_run(loop), -ECANCELED);
        loop_free(loop);
}

static void quit_with_status(struct loop_source *source, uint32_t events)
{
        struct pipe_record *record = container_of(source, struct pipe_record, source);

        drain(source->fd);
        loop_quit(record->context->loop, 7);
}

static void test_quit_from_handler(void **state)
{
        struct test_context context = {};
        struct pipe_record *record;

        assert_int_equal(loop_new(&context.loop), 0);
        record = pipe_record_new(&context, quit_with_status);
        make_readable(record);
        assert_int_equal(loop_run(context.loop), 7);

        pipe_record_close(record);
        free(record);
        loop_free(context.loop);
}

static void test_add_modify_errors(void **state)
{
        struct loop *loop;
        struct loop_source source = { .fd = -1, .dispatch = dispatch_and_quit };
        int fds[2];

        assert_int_equal(loop_new(&loop), 0);
        assert_int_equal(loop_add(loop, &source, EPOLLIN), -EBADF);

        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        source.fd = fds[0];
        assert_int_equal(loop_modify(loop, &source, EPOLLIN), -ENOENT);
        assert_int_equal(loop_add(loop, &source, EPOLLIN), 0);
        assert_int_equal(loop_add(loop, &source, EPOLLIN), -EEXIST);
        assert_int_equal(loop_modify(loop, &source, EPOLLIN | EPOLLRDHUP), 0);

        /* Removing outside a run, twice, is harmless. */
        loop_remove(loop, &source);
        loop_remove(loop, &source);
        assert_int_equal(loop_modify(loop, &source, EPOLLIN), -ENOENT);

        close(fds[0]);
        close(fds[1]);
        loop_free(loop);
        loop_free(NULL);
}

/* Timers. */

struct timer_record {
        struct loop_timer timer;
        struct loop *loop;
        int fires;
        int rearms_left;
        unsigned long long rearm_usec;
        unsigned long long fired_at_usec;
        bool quit_on_fire;
};

static void timer_fired(struct loop_timer *timer)
{
        struct timer_record *record = container_of(timer, struct timer_record, timer);

        record->fires++;
        record->fired_at_usec = now_monotonic_usec();
        if (record->rearms_left > 0) {
                record->rearms_left--;
                assert_int_equal(loop_timer_arm(timer, record->rearm_usec), 0);
                return;
        }
        if (record->quit_on_fire)
                loop_quit(record->loop, 0);
}

static void timer_record_init(struct timer_record *record, struct loop *loop)
{
        *record = (struct timer_record){ .loop = loop };
        assert_int_equal(loop_timer_init(loop, &record->timer, timer_fired), 0);
}

static void test_timer_fires_once_after_delay(void **state)
{
        struct loop *loop;
        struct timer_record timer, watchdog;
        unsigned long long armed_at;

        assert_int_equal(loop_new(&loop), 0);
        timer_record_init(&timer, loop);
        timer_record_init(&watchdog, loop);
        watchdog.quit_on_fire = true;

        assert_false(loop_timer_armed(&timer.timer));
        armed_at = now_monotonic_usec();
        assert_int_equal(loop_timer_arm(&timer.timer, 20000), 0);
        assert_true(loop_timer_armed(&timer.timer));
        assert_int_equal(loop_timer_arm(&watchdog.timer, 150000), 0);

        assert_int_equal(loop_run(loop), 0);
        assert_int_equal(timer.fires, 1);
        assert_true(timer.fired_at_usec - armed_at >= 20000);
        assert_false(loop_timer_armed(&timer.timer));
        assert_int_equal(watchdog.fires, 1);

        loop_timer_release(loop, &timer.timer);
        loop_timer_release(loop, &watchdog.timer);
        loop_timer_release(loop, &watchdog.timer);
        loop_free(loop);
}

static void test_timer_rearm_from_handler(void **state)
{
        struct loop *loop;
        struct timer_record timer;
        unsigned long long armed_at;

        assert_int_equal(loop_new(&loop), 0);
        timer_record_init(&timer, loop);
        timer.rearms_left = 2;
        timer.rearm_usec = 10000;
        timer.quit_on_fire = true;

        armed_at = now_monotonic_usec();
        assert_int_equal(loop_timer_arm(&timer.timer, 10000), 0);
        assert_int_equal(loop_run(loop), 0);
        assert_int_equal(timer.fires, 3);
        assert_true(timer.fired_at_usec - armed_at >= 30000);

        loop_timer_release(loop, &timer.timer);
        loop_free(loop);
}

static void test_timer_rearm_replaces_delay(void **state)
{
        struct loop *loop;
        struct timer_record timer;
        unsigned long long armed_at;

        assert_int_equal(loop_new(&loop), 0);
        timer_record_init(&timer, loop);
        timer.quit_on_fire = true;

        /* A later arm replaces the earlier one, whether it is sooner or later. */
        assert_int_equal(loop_timer_arm(&timer.timer, 10 * 1000000ULL), 0);
        armed_at = now_monotonic_usec();
        assert_int_equal(loop_timer_arm(&timer.timer, 15000), 0);
        assert_int_equal(loop_run(loop), 0);
        assert_int_equal(timer.fires, 1);
        assert_true(timer.fired_at_usec - armed_at >= 15000);
        assert_true(timer.fired_at_usec - armed_at < 5 * 1000000ULL);

        loop_timer_release(loop, &timer.timer);
        loop_free(loop);
}

static void test_timer_disarm(void **state)
{
        struct loop *loop;
        struct timer_record timer, watchdog;

        assert_int_equal(loop_new(&loop), 0);
        timer_record_init(&timer, loop);
        timer_record_init(&watchdog, loop);
        watchdog.quit_on_fire = true;

        assert_int_equal(loop_timer_arm(&timer.timer, 20000), 0);
        assert_true(loop_timer_armed(&timer.timer));
        assert_int_equal(loop_timer_arm(&timer.timer, 0), 0);
        assert_false(loop_timer_armed(&timer.timer));

        assert_int_equal(loop_timer_arm(&watchdog.timer, 100000), 0);
        assert_int_equal(loop_run(loop), 0);
        assert_int_equal(timer.fires, 0);

        loop_timer_release(loop, &timer.timer);
        loop_timer_release(loop, &watchdog.timer);
        loop_free(loop);
}

static void test_timer_armed_until_expiry(void **state)
{
        struct loop *loop;
        struct timer_record timer;

        assert_int_equal(loop_new(&loop), 0);
        timer_record_init(&timer, loop);

        assert_int_equal(loop_timer_arm(&timer.timer, 1), 0);
        /* Expired but not yet dispatched: no longer armed. */
        usleep(5000);
        assert_false(loop_timer_armed(&timer.timer));

        timer.quit_on_fire = true;
        assert_int_equal(loop_run(loop), 0);
        assert_int_equal(timer.fires, 1);

        loop_timer_release(loop, &timer.timer);
        loop_free(loop);
}

/* A pipe whose handler re-arms a timer that expired in the same batch. */
struct rearm_context {
        struct pipe_record pipe;
        struct timer_record *timer;
        bool pipe_first; /* the pipe was dispatched before the timer */
        unsigned long long rearmed_at;
};

static void dispatch_rearm_timer(struct loop_source *source, uint32_t events)
{
        struct rearm_context *context = container_of(source, struct rearm_context, pipe.source);

        drain(source->fd);
        context->pipe_first = context->timer->fires == 0;
        context->rearmed_at = now_monotonic_usec();
        assert_int_equal(loop_timer_arm(&context->timer->timer, 30000), 0);
}

static void test_timer_rearmed_in_batch_not_fired(void **state)
{
        struct loop *loop;
        struct timer_record timer;
        struct rearm_context context = {};
        struct test_context pipe_context = {};
        int fds[2];

        assert_int_equal(loop_new(&loop), 0);
        pipe_context.loop = loop;
        timer_record_init(&timer, loop);
        timer.quit_on_fire = true;

        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        context.pipe.source = (struct loop_source){ .fd = fds[0], .dispatch = dispatch_rearm_timer };
        context.pipe.write_fd = fds[1];
        context.pipe.context = &pipe_context;
        context.timer = &timer;
        assert_int_equal(loop_add(loop, &context.pipe.source, EPOLLIN), 0);

        /* The pipe gets ready before the timer expires, so epoll lists it first. */
        assert_int_equal(write(fds[1], "x", 1), 1);
        assert_int_equal(loop_timer_arm(&timer.timer, 1000), 0);
        usleep(10000);

        assert_int_equal(loop_run(loop), 0);

        loop_remove(loop, &context.pipe.source);
        close(fds[0]);
        close(fds[1]);
        loop_timer_release(loop, &timer.timer);
        loop_free(loop);

        if (!context.pipe_first)
                skip();
        /* The expiry that the re-arm replaced is not a fire. */
        assert_int_equal(timer.fires, 1);
        assert_true(timer.fired_at_usec - context.rearmed_at >= 30000);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dispatch_with_record),
                cmocka_unit_test(test_hangup_reaches_handler),
                cmocka_unit_test(test_remove_in_batch_kept_record),
                cmocka_unit_test(test_remove_in_batch_freed_record),
                cmocka_unit_test(test_quit_returns_status),
                cmocka_unit_test(test_quit_from_handler),
                cmocka_unit_test(test_add_modify_errors),
                cmocka_unit_test(test_timer_fires_once_after_delay),
                cmocka_unit_test(test_timer_rearm_from_handler),
                cmocka_unit_test(test_timer_rearm_replaces_delay),
                cmocka_unit_test(test_timer_disarm),
                cmocka_unit_test(test_timer_armed_until_expiry),
                cmocka_unit_test(test_timer_rearmed_in_batch_not_fired),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
