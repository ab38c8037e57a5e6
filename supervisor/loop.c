#include "supervisor/loop.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "supervisor/util.h"

#define LOOP_BATCH 64

struct loop {
        int epoll_fd;
        bool quit;
        int status;

        /* The batch being dispatched, so that loop_remove() can drop events
         * of a source that is freed while the batch is still in flight. */
        struct epoll_event batch[LOOP_BATCH];
        int batch_size;
};

int loop_new(struct loop **ret_loop)
{
        struct loop *loop = xcalloc(1, sizeof(*loop));

        loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (loop->epoll_fd < 0) {
                int r = negative_errno();

                free(loop);
                return r;
        }
        *ret_loop = loop;
        return 0;
}

void loop_free(struct loop *loop)
{
        if (!loop)
                return;
        safe_close(loop->epoll_fd);
        free(loop);
}

static int loop_control(struct loop *loop, int operation, struct loop_source *source,
                        uint32_t events)
{
        struct epoll_event event = { .events = events, .data.ptr = source };

        if (epoll_ctl(loop->epoll_fd, operation, source->fd, &event) < 0)
                return negative_errno();
        return 0;
}

int loop_add(struct loop *loop, struct loop_source *source, uint32_t events)
{
        return loop_control(loop, EPOLL_CTL_ADD, source, events);
}

int loop_modify(struct loop *loop, struct loop_source *source, uint32_t events)
{
        return loop_control(loop, EPOLL_CTL_MOD, source, events);
}

void loop_remove(struct loop *loop, struct loop_source *source)
{
        if (source->fd >= 0)
                (void)epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, source->fd, NULL);

        for (int i = 0; i < loop->batch_size; i++)
                if (loop->batch[i].data.ptr == source)
                        loop->batch[i].data.ptr = NULL;
}

int loop_run(struct loop *loop)
{
        while (!loop->quit) {
                int n = epoll_wait(loop->epoll_fd, loop->batch, LOOP_BATCH, -1);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }

                loop->batch_size = n;
                for (int i = 0; i < n; i++) {
                        struct loop_source *source = loop->batch[i].data.ptr;

                        if (source)
                                source->dispatch(source, loop->batch[i].events);
                }
                loop->batch_size = 0;
        }
        return loop->status;
}

void loop_quit(struct loop *loop, int status)
{
        loop->quit = true;
        loop->status = status;
}

static void timer_dispatch(struct loop_source *source, uint32_t events)
{
        struct loop_timer *timer = (struct loop_timer *)source;
        uint64_t expirations;

        /* A timer re-armed by the handler of an earlier event in this batch
         * has nothing to read yet; that is not an expiry. */
        if (read(source->fd, &expirations, sizeof(expirations)) != sizeof(expirations))
                return;
        timer->fire(timer);
}

int loop_timer_init(struct loop *loop, struct loop_timer *timer, void (*fire)(struct loop_timer *))
{
        int r;

        timer->fire = fire;
        timer->source.dispatch = timer_dispatch;
        timer->source.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (timer->source.fd < 0)
                return negative_errno();

        r = loop_add(loop, &timer->source, EPOLLIN);
        if (r < 0)
                timer->source.fd = safe_close(timer->source.fd);
        return r;
}

int loop_timer_arm(struct loop_timer *timer, unsigned long long delay_usec)
{
        struct itimerspec spec = {
                .it_value.tv_sec = (time_t)(delay_usec / 1000000ULL),
                .it_value.tv_nsec = (long)(delay_usec % 1000000ULL) * 1000L,
        };

        if (timerfd_settime(timer->source.fd, 0, &spec, NULL) < 0)
                return negative_errno();
        return 0;
}

bool loop_timer_armed(const struct loop_timer *timer)
{
        struct itimerspec spec;

        if (timerfd_gettime(timer->source.fd, &spec) < 0)
                return false;
        return spec.it_value.tv_sec != 0 || spec.it_value.tv_nsec != 0;
}

void loop_timer_release(struct loop *loop, struct loop_timer *timer)
{
        if (timer->source.fd < 0)
                return;
        loop_remove(loop, &timer->source);
        timer->source.fd = safe_close(timer->source.fd);
}
