#include "supervisor/audit.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>

#include "supervisor/config.h"
#include "supervisor/log.h"
#include "supervisor/util.h"

/* While writes fail, at most one message per this interval. */
#define AUDIT_MESSAGE_INTERVAL_USEC (60ULL * 1000000ULL)

struct audit_log {
        char *path;
        uint64_t max_size;
        int fd; /* -1 after a failure: the next line reopens the file */

        unsigned lines_lost;                  /* since the last line written */
        unsigned long long last_message_usec; /* CLOCK_MONOTONIC, 0 for none yet */
};

/* container_add_observer() has no counterpart that removes an observer, so
 * the observer is added once and reaches the log through this pointer,
 * which audit_close() clears. */
static struct audit_log *active_audit;
static bool observer_added;

static json_object *json_string_from_array(const char *array, size_t size)
{
        return json_object_new_string_len(array, (int)strnlen(array, size));
}

char *audit_line(const struct container *container, enum container_event event,
                 unsigned long long realtime_usec)
{
        const struct agent_status *agent = &container->agent;
        json_object *object = json_object_new_object();
        char time[32];
        char *line;

        json_object_object_add(
            object, "Time",
            json_object_new_string(format_rfc3339(realtime_usec, time, sizeof(time))));
        json_object_object_add(object, "Event",
                               json_object_new_string(container_event_to_string(event)));
        json_object_object_add(object, "ContainerId", json_object_new_string(container->id));
        json_object_object_add(object, "ContainerName",
                               json_object_new_string(container->name ? container->name : ""));
        json_object_object_add(object, "Version",
                               json_string_from_array(agent->version, sizeof(agent->version)));
        json_object_object_add(object, "Pid", json_object_new_int64(agent->pid));
        json_object_object_add(object, "RestartCount",
                               json_object_new_uint64(agent->restart_count));
        json_object_object_add(object, "LastStatus",
                               json_object_new_string(agent_state_to_string(agent->state)));
        json_object_object_add(object, "Reason",
                               json_string_from_array(agent->reason, sizeof(agent->reason)));
        json_object_object_add(object, "Sequence", json_object_new_uint64(container->sequence));

        /* json-c escapes control characters in strings, so a hostile
         * container name cannot end the line early. */
        line =
            xasprintf("%s\n", json_object_to_json_string_ext(
                                  object, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(object);
        return line;
}

/* Log a failure at most once per interval, so that a full disk does not
 * flood the log with one message per event. */
static void audit_warn(struct audit_log *audit, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void audit_warn(struct audit_log *audit, const char *format, ...)
{
        unsigned long long now = now_monotonic_usec();
        char message[512];
        va_list args;

        if (audit->last_message_usec != 0 &&
            now - audit->last_message_usec < AUDIT_MESSAGE_INTERVAL_USEC)
                return;
        audit->last_message_usec = now;

        va_start(args, format);
        vsnprintf(message, sizeof(message), format, args);
        va_end(args);
        log_warning("audit log %s: %s", audit->path, message);
}

/* Open the log for appending. O_NOFOLLOW rejects a symbolic link at the
 * path. O_NONBLOCK keeps a FIFO planted there from blocking the open:
 * without a reader the open fails with ENXIO, as for a unix socket, and with
 * one the type check rejects it. Returns the fd, or -EBADFD for anything but
 * a regular file. */
static int open_log_file(const char *path)
{
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = open(path,
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
                  0640);
        if (fd < 0)
                return errno == ENXIO ? -EBADFD : negative_errno();

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;

        if (fcntl(fd, F_SETFL, O_APPEND) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

static const char *describe_open_error(int error)
{
        if (error == -ELOOP)
                return "the path is a symbolic link";
        if (error == -EBADFD)
                return "the path is not a regular file";
        return strerror(-error);
}

/* Shift audit.log.1 to .2 and so on, dropping the oldest, then move the log
 * to audit.log.1 and open a new one. Returns the first error, after opening
 * a file again in any case. */
static int audit_rotate(struct audit_log *audit)
{
        int result = 0;
        int fd;

        audit->fd = safe_close(audit->fd);

        for (unsigned generation = AUDIT_GENERATIONS; generation > 0; generation--) {
                _cleanup_free_ char *from = generation == 1
                                                ? xstrdup(audit->path)
                                                : xasprintf("%s.%u", audit->path, generation - 1);
                _cleanup_free_ char *to = xasprintf("%s.%u", audit->path, generation);

                if (rename(from, to) < 0 && errno != ENOENT) {
                        int r = negative_errno();

                        if (result == 0)
                                result = r;
                        audit_warn(audit,
                                   "cannot rename %s to %s for rotation: %s; "
                                   "the log grows past its maximum size",
                                   from, to, strerror(-r));
                }
        }

        fd = open_log_file(audit->path);
        if (fd < 0)
                return result < 0 ? result : fd;
        audit->fd = fd;
        return result;
}

static int audit_lost(struct audit_log *audit, const char *step, int error)
{
        audit->lines_lost++;
        audit_warn(audit, "%s failed: %s; %u lines lost since the last line written", step,
                   describe_open_error(error), audit->lines_lost);
        return error;
}

int audit_append(struct audit_log *audit, const char *line, size_t size)
{
        struct stat st;
        ssize_t n;

        if (audit->fd < 0) {
                int fd = open_log_file(audit->path);

                if (fd < 0)
                        return audit_lost(audit, "opening", fd);
                audit->fd = fd;
        }

        if (fstat(audit->fd, &st) < 0)
                return audit_lost(audit, "fstat()", negative_errno());

        /* Removed by someone else (logrotate without copytruncate): write
         * to a new file at the path instead of the unlinked one. */
        if (st.st_nlink == 0) {
                int fd = open_log_file(audit->path);

                if (fd < 0)
                        return audit_lost(audit, "reopening after removal", fd);
                safe_close(audit->fd);
                audit->fd = fd;
                st.st_size = 0;
        }

        if (st.st_size > 0 && (uint64_t)st.st_size + size > audit->max_size) {
                (void)audit_rotate(audit);
                if (audit->fd < 0)
                        return audit_lost(audit, "reopening after rotation", -EBADF);
                if (fstat(audit->fd, &st) < 0)
                        return audit_lost(audit, "fstat()", negative_errno());
        }

        /* One write() per line: with O_APPEND the line lands in one piece
         * even when someone else appends to the same file. */
        n = write(audit->fd, line, size);
        if (n < 0) {
                int r = negative_errno();

                audit->fd = safe_close(audit->fd);
                return audit_lost(audit, "write()", r);
        }
        if ((size_t)n < size) {
                /* Cut the partial line, so that the next one starts on a line
                 * of its own. */
                if (ftruncate(audit->fd, st.st_size) < 0) {
                        int r = negative_errno();

                        audit_warn(audit, "cannot remove a partly written line: %s", strerror(-r));
                }
                audit->fd = safe_close(audit->fd);
                return audit_lost(audit, "write()", -ENOSPC);
        }

        if (audit->lines_lost > 0) {
                log_notice("audit log %s written again, %u lines were lost", audit->path,
                           audit->lines_lost);
                audit->lines_lost = 0;
                audit->last_message_usec = 0;
        }
        return 0;
}

static void on_container_event(const struct container *container, enum container_event event,
                               void *userdata)
{
        struct audit_log *audit = active_audit;
        _cleanup_free_ char *line = NULL;

        if (!audit)
                return;

        line = audit_line(container, event, now_realtime_usec());
        (void)audit_append(audit, line, strlen(line));
}

int audit_open(const struct config *config, struct audit_log **ret_audit)
{
        struct audit_log *audit;
        int fd;

        if (active_audit)
                return -EBUSY;

        audit = xcalloc(1, sizeof(*audit));
        audit->path = config->audit_log
                          ? xstrdup(config->audit_log)
                          : xasprintf("%s/%s", config->log_dir, CONFIG_DEFAULT_AUDIT_LOG_NAME);
        audit->max_size = config->audit_max_size ? config->audit_max_size : AUDIT_MAX_SIZE_DEFAULT;

        fd = open_log_file(audit->path);
        if (fd < 0) {
                log_error("cannot open the audit log %s: %s", audit->path, describe_open_error(fd));
                free(audit->path);
                free(audit);
                return fd;
        }
        audit->fd = fd;

        if (!observer_added) {
                container_add_observer(on_container_event, NULL);
                observer_added = true;
        }
        active_audit = audit;

        *ret_audit = audit;
        return 0;
}

void audit_close(struct audit_log *audit)
{
        if (!audit)
                return;

        if (active_audit == audit)
                active_audit = NULL;
        safe_close(audit->fd);
        free(audit->path);
        free(audit);
}
