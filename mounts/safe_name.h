#pragma once

/* Container names made safe as one path component, for per-container host directories such as
 * the agent's log directory. */

/* Maximum length of a safe_file_name() result in bytes, without the NUL. */
#define SAFE_FILE_NAME_MAX 100

/* Turns a container name into a single path component that is never empty, ".", or "..",
 * contains only [A-Za-z0-9_.-], starts with neither '-' nor '.', and has at most
 * SAFE_FILE_NAME_MAX bytes. One leading '/' (as in Docker's names) is dropped first. An
 * unchanged name that fits is returned as is. Otherwise every other byte becomes '_', leading
 * '-' and '.' are dropped, the text is truncated to fit, and "-" plus 8 hex digits of the
 * name's SHA-256 are appended, so names that map to the same text stay distinct. A name that
 * already ends in that pattern gets a suffix too, so that it cannot pose as another
 * name's result.
 *
 * NOTE: the 32-bit suffix separates names that differ by accident. Finding a second name with
 * the same result takes about 2^32 hashes, so when the people choosing container names do not
 * trust each other, callers should add the container id to the path.
 *
 * Returns a malloc'ed string; never fails (allocation failure aborts). */
char *safe_file_name(const char *container_name);
