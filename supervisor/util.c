#include "supervisor/util.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <time.h>

static void die_out_of_memory(void)
{
        static const char message[] = "execvisor: out of memory\n";

        (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
        abort();
}

void *xmalloc(size_t size)
{
        void *p = malloc(size ? size : 1);

        if (!p)
                die_out_of_memory();
        return p;
}

void *xcalloc(size_t count, size_t size)
{
        void *p = calloc(count ? count : 1, size ? size : 1);

        if (!p)
                die_out_of_memory();
        return p;
}

char *xstrdup(const char *s)
{
        char *copy = strdup(s);

        if (!copy)
                die_out_of_memory();
        return copy;
}

char *xasprintf(const char *format, ...)
{
        va_list args;
        char *result;
        int r;

        va_start(args, format);
        r = vasprintf(&result, format, args);
        va_end(args);
        if (r < 0)
                die_out_of_memory();
        return result;
}

int read_file_at(int dirfd, const char *path, size_t max_size, char **ret_data, size_t *ret_size)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        size_t size;
        ssize_t n;

        fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();

        data = xmalloc(max_size + 1);
        n = read_full(fd, data, max_size);
        if (n < 0)
                return (int)n;
        size = (size_t)n;
        if (size == max_size)
                return -EFBIG;

        data[size] = '\0';
        *ret_data = TAKE_PTR(data);
        if (ret_size)
                *ret_size = size;
        return 0;
}

ssize_t read_full(int fd, void *buffer, size_t size)
{
        char *p = buffer;
        size_t done = 0;

        while (done < size) {
                ssize_t n = read(fd, p + done, size - done);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                done += (size_t)n;
        }
        return (ssize_t)done;
}

int write_all(int fd, const void *buffer, size_t size)
{
        const char *p = buffer;

        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

static unsigned long long clock_usec(clockid_t clock)
{
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

unsigned long long now_monotonic_usec(void)
{
        return clock_usec(CLOCK_MONOTONIC);
}

unsigned long long now_realtime_usec(void)
{
        return clock_usec(CLOCK_REALTIME);
}

const char *format_rfc3339(unsigned long long realtime_usec, char *buffer, size_t size)
{
        time_t seconds = (time_t)(realtime_usec / 1000000ULL);
        unsigned milliseconds = (unsigned)((realtime_usec % 1000000ULL) / 1000ULL);
        struct tm tm;
        char date[24];

        gmtime_r(&seconds, &tm);
        strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buffer, size, "%s.%03uZ", date, milliseconds);
        return buffer;
}

bool pidfd_running(int pidfd)
{
        struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

        return poll(&pfd, 1, 0) == 0;
}
