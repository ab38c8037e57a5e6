#pragma once

/* Logging to stderr with syslog levels. One line per event; values that come
 * from containers or images are quoted with log_quote() so that a hostile name
 * cannot forge log lines. */

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

void log_set_max_level(int level);
int log_get_max_level(void);
int log_level_from_string(const char *name);

void log_emit(int level, const char *format, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_emit(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_emit(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_emit(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_emit(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_emit(LOG_DEBUG, __VA_ARGS__)

/* Copy s into buffer as a double-quoted string with control characters,
 * quotes and backslashes escaped, truncated with "..." to fit. Returns buffer. */
const char *log_quote(const char *s, char *buffer, size_t size);
