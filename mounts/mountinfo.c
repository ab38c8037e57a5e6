#include "mounts/mountinfo.h"

#include <errno.h>
#include <inttypes.h>

#include "supervisor/util.h"

static int count_fields(const char *text)
{
        int count = 0;

        for (const char *p = text; *p;) {
                while (*p == ' ')
                        p++;
                if (!*p)
                        break;
                count++;
                while (*p && *p != ' ')
                        p++;
        }
        return count;
}

/* Fields of a line: id parent major:minor root mount-point options
 * [optional fields...] - fstype source super-options */
static int parse_line(const char *line, uint64_t *ret_id, int *ret_shared)
{
        const char *separator = strstr(line, " - ");
        const char *p = line;
        char *end;
        uint64_t id;
        int field = 0;

        if (!separator || line[0] < '0' || line[0] > '9')
                return -EBADMSG;
        /* fstype, source and super options follow the separator. */
        if (count_fields(separator + 3) < 3)
                return -EBADMSG;

        errno = 0;
        id = strtoull(line, &end, 10);
        if (errno != 0 || end == line || *end != ' ')
                return -EBADMSG;

        *ret_shared = 0;
        while (p < separator) {
                const char *space = strchr(p, ' ');
                size_t length = (space && space < separator ? (size_t)(space - p) : (size_t)(separator - p));

                if (field >= 6 && length > 7 && strncmp(p, "shared:", 7) == 0)
                        *ret_shared = 1;
                field++;
                p += length;
                while (*p == ' ' && p < separator)
                        p++;
        }
        if (field < 6)
                return -EBADMSG;

        *ret_id = id;
        return 0;
}

int mountinfo_shared_ids(const char *text, uint64_t **ret_ids, size_t *ret_count)
{
        _cleanup_free_ uint64_t *ids = NULL;
        size_t count = 0, capacity = 0;

        for (const char *line = text; *line;) {
                const char *newline = strchr(line, '\n');
                size_t length = newline ? (size_t)(newline - line) : strlen(line);
                _cleanup_free_ char *copy = NULL;
                uint64_t id;
                int shared;
                int r;

                if (length == 0) {
                        line += newline ? 1 : 0;
                        if (!newline)
                                break;
                        continue;
                }

                copy = strndup(line, length);
                if (!copy)
                        return -ENOMEM;
                r = parse_line(copy, &id, &shared);
                if (r < 0)
                        return r;

                if (shared) {
                        if (count == capacity) {
                                uint64_t *grown;

                                capacity = capacity ? capacity * 2 : 16;
                                grown = realloc(ids, capacity * sizeof(*ids));
                                if (!grown)
                                        return -ENOMEM;
                                ids = grown;
                        }
                        ids[count++] = id;
                }

                if (!newline)
                        break;
                line = newline + 1;
        }

        *ret_ids = TAKE_PTR(ids);
        *ret_count = count;
        return 0;
}
