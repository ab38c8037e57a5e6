#include "supervisor/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/util.h"

static int max_level = LOG_INFO;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",   [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",
        [LOG_ERR] = "error",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",     [LOG_DEBUG] = "debug",
};

void log_set_max_level(int level)
{
        max_level = level;
}

int log_get_max_level(void)
{
        return max_level;
}

int log_level_from_string(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
                if (strcasecmp(name, level_names[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

void log_emit(int level, const char *format, ...)
{
        char message[2048];
        char stamp[40];
        va_list args;

        if (level > max_level)
                return;

        va_start(args, format);
        vsnprintf(message, sizeof(message), format, args);
        va_end(args);

        format_rfc3339(now_realtime_usec(), stamp, sizeof(stamp));
        /* One fprintf per line: stderr is unbuffered, so lines from the
         * supervisor and its children do not interleave mid-line. */
        fprintf(stderr, "%s execvisor[%d]: %s: %s\n", stamp, (int)getpid(), level_names[level],
                message);
}

const char *log_quote(const char *s, char *buffer, size_t size)
{
        static const char ellipsis[] = "...\"";
        size_t out = 0;

        if (size < sizeof(ellipsis) + 2) {
                if (size > 0)
                        buffer[0] = '\0';
                return buffer;
        }

        buffer[out++] = '"';
        for (; s && *s; s++) {
                unsigned char c = (unsigned char)*s;
                char escaped[8];
                size_t length;

                if (c == '"' || c == '\\')
                        length = (size_t)snprintf(escaped, sizeof(escaped), "\\%c", c);
                else if (c < 0x20 || c == 0x7f)
                        length = (size_t)snprintf(escaped, sizeof(escaped), "\\x%02x", c);
                else {
                        escaped[0] = (char)c;
                        length = 1;
                }

                if (out + length + sizeof(ellipsis) > size) {
                        memcpy(buffer + out, ellipsis, sizeof(ellipsis));
                        return buffer;
                }
                memcpy(buffer + out, escaped, length);
                out += length;
        }
        buffer[out++] = '"';
        buffer[out] = '\0';
        return buffer;
}
