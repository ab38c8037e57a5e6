#pragma once

/* Cleanup attributes, fd hygiene and small string helpers shared by every module. */

#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Close fd if it is open and return -1, so that "fd = safe_close(fd)" resets it.
 * errno is preserved because callers close on their error paths. */
static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved_errno = errno;
                close(fd);
                errno = saved_errno;
        }
        return -1;
}

static inline void freep(void *p)
{
        free(*(void **)p);
}

static inline void closep(int *fd)
{
        safe_close(*fd);
}

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership on: return the value and reset the variable so that its
 * cleanup attribute does nothing. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _taken = (p);                                                        \
                (p) = NULL;                                                                        \
                _taken;                                                                            \
        })

#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _taken_fd = (fd);                                                              \
                (fd) = -1;                                                                         \
                _taken_fd;                                                                         \
        })

/* Return errno negated, and never 0, so that a caller that forgot to set
 * errno still gets a failure. */
static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}

static inline bool streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

static inline bool startswith(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Allocation failure ends the supervisor: every state it could fall back to
 * would need memory too. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
char *xstrdup(const char *s);
char *xasprintf(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Read a whole small file (a /proc or sysfs entry) relative to dirfd.
 * The result is NUL-terminated; ret_size excludes the NUL. */
int read_file_at(int dirfd, const char *path, size_t max_size, char **ret_data, size_t *ret_size);

/* Read from fd until size bytes or end of file, retrying on EINTR and short
 * reads. Returns the number of bytes read or a negative errno. */
ssize_t read_full(int fd, void *buffer, size_t size);

/* Write all of buffer to fd, retrying on EINTR and short writes. */
int write_all(int fd, const void *buffer, size_t size);

/* Microseconds on CLOCK_MONOTONIC and CLOCK_REALTIME. */
unsigned long long now_monotonic_usec(void);
unsigned long long now_realtime_usec(void);

/* Format a CLOCK_REALTIME time in microseconds as RFC 3339 in UTC with
 * millisecond precision ("2026-12-04T19:49:27.394Z"). buffer must have room for 32 bytes. */
const char *format_rfc3339(unsigned long long realtime_usec, char *buffer, size_t size);

#define container_of(pointer, type, member) ((type *)((char *)(pointer) - offsetof(type, member)))

/* True while the process of pidfd runs. A pidfd turns readable when its
 * process exits, zombie or not, where signal 0 still reaches a zombie. */
bool pidfd_running(int pidfd);
