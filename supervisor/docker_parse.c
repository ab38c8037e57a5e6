#include "supervisor/docker_parse.h"

#include <limits.h>
#include <stdarg.h>
#include <time.h>

#include "supervisor/util.h"

/* Input is copied into the parser's buffer in slices of this size, so that
 * the buffer stays near max_event_size whatever size a caller feeds. */
#define FEED_SLICE_SIZE (64U * 1024U)

static inline void json_object_putp(json_object **object)
{
        if (*object)
                json_object_put(*object);
}

static inline void json_tokener_freep(struct json_tokener **tokener)
{
        if (*tokener)
                json_tokener_free(*tokener);
}

static int fail(char *error, size_t error_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *error, size_t error_size, const char *format, ...)
{
        va_list args;

        if (error && error_size > 0) {
                va_start(args, format);
                vsnprintf(error, error_size, format, args);
                va_end(args);
        }
        return -EBADMSG;
}

static bool is_json_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool docker_id_is_valid(const char *id)
{
        size_t i;

        for (i = 0; id[i]; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        return i == DOCKER_ID_LENGTH;
}

static const char *json_type_description(enum json_type type)
{
        switch (type) {
        case json_type_boolean:
                return "a boolean";
        case json_type_int:
                return "an integer";
        case json_type_double:
                return "a number";
        case json_type_string:
                return "a string";
        case json_type_object:
                return "an object";
        case json_type_array:
                return "an array";
        case json_type_null:
                break;
        }
        return "null";
}

/* Find the member at a dotted path such as "State.Pid" and check its type.
 * A missing or null member sets *ret to NULL, and is an error only when
 * required. */
static int lookup(json_object *root, const char *path, enum json_type type, bool required,
                  json_object **ret, char *error, size_t error_size)
{
        json_object *current = root;
        const char *p = path;

        while (*p) {
                const char *dot = strchr(p, '.');
                size_t length = dot ? (size_t)(dot - p) : strlen(p);
                json_object *child = NULL;
                char key[64];

                if (length >= sizeof(key))
                        return -EINVAL;
                memcpy(key, p, length);
                key[length] = '\0';

                if (!json_object_is_type(current, json_type_object)) {
                        if (p == path)
                                return fail(error, error_size, "document is not an object");
                        return fail(error, error_size, "%.*s is not an object", (int)(p - path - 1),
                                    path);
                }

                if (!json_object_object_get_ex(current, key, &child) || !child) {
                        if (required)
                                return fail(error, error_size, "%s is missing", path);
                        *ret = NULL;
                        return 0;
                }

                current = child;
                p = dot ? dot + 1 : p + length;
        }

        if (!json_object_is_type(current, type))
                return fail(error, error_size, "%s is not %s", path, json_type_description(type));
        *ret = current;
        return 0;
}

static int lookup_string(json_object *root, const char *path, bool required, const char **ret,
                         char *error, size_t error_size)
{
        json_object *value;
        int r;

        r = lookup(root, path, json_type_string, required, &value, error, error_size);
        if (r < 0)
                return r;
        *ret = value ? json_object_get_string(value) : NULL;
        return 0;
}

static int lookup_bool(json_object *root, const char *path, bool required, bool *ret, char *error,
                       size_t error_size)
{
        json_object *value;
        int r;

        r = lookup(root, path, json_type_boolean, required, &value, error, error_size);
        if (r < 0)
                return r;
        *ret = value ? json_object_get_boolean(value) : false;
        return 0;
}

static int lookup_int(json_object *root, const char *path, bool required, int64_t minimum,
                      int64_t maximum, int64_t *ret, char *error, size_t error_size)
{
        json_object *value;
        int64_t number;
        int r;

        r = lookup(root, path, json_type_int, required, &value, error, error_size);
        if (r < 0)
                return r;
        if (!value) {
                *ret = 0;
                return 0;
        }

        /* json-c clamps values beyond int64_t, which the range check catches
         * for every range used here. */
        number = json_object_get_int64(value);
        if (number < minimum || number > maximum)
                return fail(error, error_size, "%s is out of range: %lld", path, (long long)number);
        *ret = number;
        return 0;
}

/* Parse a whole response body as one JSON document. */
static int parse_document(const char *body, size_t size, json_object **ret_object, char *error,
                          size_t error_size)
{
        _cleanup_(json_tokener_freep) struct json_tokener *tokener = NULL;
        json_object *object;
        enum json_tokener_error status;
        size_t end;

        if (size > INT_MAX)
                return fail(error, error_size, "document of %zu bytes is too large", size);

        tokener = json_tokener_new();
        if (!tokener)
                return -ENOMEM;

        object = json_tokener_parse_ex(tokener, body, (int)size);
        status = json_tokener_get_error(tokener);
        if (status == json_tokener_continue)
                return fail(error, error_size, "document is truncated after %zu bytes", size);
        if (status != json_tokener_success)
                return fail(error, error_size, "invalid JSON at byte %zu: %s",
                            json_tokener_get_parse_end(tokener), json_tokener_error_desc(status));

        for (end = json_tokener_get_parse_end(tokener); end < size; end++)
                if (!is_json_space(body[end])) {
                        json_object_put(object);
                        return fail(error, error_size,
                                    "unexpected data after the JSON document at byte %zu", end);
                }

        *ret_object = object;
        return 0;
}

/* Event stream */

struct docker_event_parser {
        struct json_tokener *tokener;
        size_t max_event_size;
        struct docker_event_parser_callbacks callbacks;
        void *userdata;

        /* The bytes of the current object are kept until it is complete, so
         * that parsing can resume inside them after a syntax error. */
        char *buffer;
        size_t allocated;
        size_t start; /* first byte of the current object, or of the unparsed input */
        size_t fed;   /* bytes before this went to the tokener or were skipped */
        size_t end;
        uint64_t base; /* stream offset of buffer[0] */
        bool in_object;
        bool skipping; /* discarding input up to the next newline */
};

int docker_event_parser_new(size_t max_event_size,
                            const struct docker_event_parser_callbacks *callbacks, void *userdata,
                            struct docker_event_parser **ret_parser)
{
        struct docker_event_parser *parser;

        if (max_event_size > INT_MAX)
                return -EINVAL;

        parser = xcalloc(1, sizeof(*parser));
        parser->tokener = json_tokener_new();
        if (!parser->tokener) {
                free(parser);
                return -ENOMEM;
        }
        parser->max_event_size = max_event_size ? max_event_size : DOCKER_EVENT_SIZE_MAX;
        parser->callbacks = *callbacks;
        parser->userdata = userdata;

        *ret_parser = parser;
        return 0;
}

void docker_event_parser_free(struct docker_event_parser *parser)
{
        if (!parser)
                return;
        json_tokener_free(parser->tokener);
        free(parser->buffer);
        free(parser);
}

void docker_event_parser_reset(struct docker_event_parser *parser)
{
        json_tokener_reset(parser->tokener);
        parser->start = parser->fed = parser->end = 0;
        parser->base = 0;
        parser->in_object = false;
        parser->skipping = false;
}

static void parser_report(struct docker_event_parser *parser, int error, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void parser_report(struct docker_event_parser *parser, int error, const char *format, ...)
{
        char message[512];
        va_list args;

        if (!parser->callbacks.on_error)
                return;

        va_start(args, format);
        vsnprintf(message, sizeof(message), format, args);
        va_end(args);
        parser->callbacks.on_error(parser->userdata, error, message);
}

static void parser_append(struct docker_event_parser *parser, const char *data, size_t size)
{
        if (parser->end + size > parser->allocated && parser->start > 0) {
                memmove(parser->buffer, parser->buffer + parser->start,
                        parser->end - parser->start);
                parser->base += parser->start;
                parser->fed -= parser->start;
                parser->end -= parser->start;
                parser->start = 0;
        }

        if (parser->end + size > parser->allocated) {
                size_t allocated = parser->allocated ? parser->allocated : 4096;
                char *buffer;

                while (allocated < parser->end + size)
                        allocated *= 2;
                buffer = realloc(parser->buffer, allocated);
                if (!buffer)
                        abort();
                parser->buffer = buffer;
                parser->allocated = allocated;
        }

        memcpy(parser->buffer + parser->end, data, size);
        parser->end += size;
}

static void parser_end_object(struct docker_event_parser *parser)
{
        json_tokener_reset(parser->tokener);
        parser->in_object = false;
        parser->start = parser->fed;
}

static void parser_handle(struct docker_event_parser *parser, json_object *object, uint64_t offset)
{
        struct docker_event event;
        char error[256];
        int r;

        r = docker_event_from_json(object, &event, error, sizeof(error));
        if (r < 0)
                parser_report(parser, r, "invalid event at byte %llu of the event stream: %s",
                              (unsigned long long)offset, error);
        else if (r > 0 && parser->callbacks.on_event)
                parser->callbacks.on_event(parser->userdata, &event);
}

/* Recover from a syntax error at buffer position error_at. Docker ends every
 * event with a newline, so the next event starts after the last newline
 * before the error (an unterminated string swallows newlines, and the line
 * after it may hold a good event) or else after the next newline. */
static void parser_resync(struct docker_event_parser *parser, size_t error_at,
                          enum json_tokener_error status)
{
        const char *newline;

        parser_report(
            parser, -EBADMSG,
            "malformed event at byte %llu of the event stream: %s; skipping to the next line",
            (unsigned long long)(parser->base + error_at), json_tokener_error_desc(status));

        json_tokener_reset(parser->tokener);
        parser->in_object = false;

        newline = memrchr(parser->buffer + parser->start, '\n', error_at - parser->start);
        if (newline) {
                parser->start = parser->fed = (size_t)(newline - parser->buffer) + 1;
                return;
        }
        parser->start = parser->fed = error_at;
        parser->skipping = true;
}

static void parser_step_object(struct docker_event_parser *parser)
{
        size_t room = parser->max_event_size - (parser->fed - parser->start);
        size_t size = parser->end - parser->fed;
        enum json_tokener_error status;
        json_object *object;
        uint64_t offset;

        if (room == 0) {
                parser_report(parser, -EMSGSIZE,
                              "event at byte %llu of the event stream exceeds %zu bytes; skipping "
                              "to the next line",
                              (unsigned long long)(parser->base + parser->start),
                              parser->max_event_size);
                json_tokener_reset(parser->tokener);
                parser->in_object = false;
                parser->start = parser->fed;
                parser->skipping = true;
                return;
        }
        if (size > room)
                size = room;

        object = json_tokener_parse_ex(parser->tokener, parser->buffer + parser->fed, (int)size);
        status = json_tokener_get_error(parser->tokener);

        if (status == json_tokener_continue) {
                parser->fed += size;
                return;
        }
        if (status != json_tokener_success) {
                parser_resync(parser, parser->fed + json_tokener_get_parse_end(parser->tokener),
                              status);
                return;
        }

        offset = parser->base + parser->start;
        parser->fed += json_tokener_get_parse_end(parser->tokener);
        parser_end_object(parser);
        parser_handle(parser, object, offset);
        json_object_put(object);
}

static void parser_process(struct docker_event_parser *parser)
{
        while (parser->fed < parser->end) {
                if (parser->skipping) {
                        const char *newline =
                            memchr(parser->buffer + parser->fed, '\n', parser->end - parser->fed);

                        parser->fed =
                            newline ? (size_t)(newline - parser->buffer) + 1 : parser->end;
                        parser->start = parser->fed;
                        parser->skipping = !newline;
                        continue;
                }

                if (!parser->in_object) {
                        while (parser->fed < parser->end &&
                               is_json_space(parser->buffer[parser->fed]))
                                parser->fed++;
                        parser->start = parser->fed;
                        parser->in_object = parser->fed < parser->end;
                        continue;
                }

                parser_step_object(parser);
        }

        /* Everything parsed: restart at the beginning of the buffer. */
        if (parser->start == parser->end) {
                parser->base += parser->end;
                parser->start = parser->fed = parser->end = 0;
        }
}

void docker_event_parser_feed(struct docker_event_parser *parser, const char *data, size_t size)
{
        while (size > 0) {
                size_t slice = size < FEED_SLICE_SIZE ? size : FEED_SLICE_SIZE;

                parser_append(parser, data, slice);
                parser_process(parser);
                data += slice;
                size -= slice;
        }
}

static int parse_exit_code(const char *text)
{
        char *end;
        long value;

        errno = 0;
        value = strtol(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0' || value < INT_MIN || value > INT_MAX)
                return -1;
        return (int)value;
}

int docker_event_from_json(json_object *object, struct docker_event *ret_event, char *error,
                           size_t error_size)
{
        struct docker_event event = {.exit_code = -1};
        const char *type, *id, *exit_code = NULL;
        int64_t time_nsec, time_sec;
        int r;

        if (!json_object_is_type(object, json_type_object))
                return fail(error, error_size, "event is not a JSON object");

        r = lookup_string(object, "Type", false, &type, error, error_size);
        if (r < 0)
                return r;
        if (!type || !streq(type, "container"))
                return 0;

        r = lookup_string(object, "Action", true, &event.action, error, error_size);
        if (r < 0)
                return r;

        r = lookup_string(object, "Actor.ID", true, &id, error, error_size);
        if (r < 0)
                return r;
        if (!docker_id_is_valid(id))
                return fail(error, error_size, "Actor.ID is not a container id: \"%.80s\"", id);
        memcpy(event.id, id, DOCKER_ID_LENGTH + 1);

        r = lookup(object, "Actor.Attributes", json_type_object, false, &event.attributes, error,
                   error_size);
        if (r < 0)
                return r;
        if (event.attributes) {
                r = lookup_string(object, "Actor.Attributes.name", false, &event.name, error,
                                  error_size);
                if (r < 0)
                        return r;
                r = lookup_string(object, "Actor.Attributes.image", false, &event.image, error,
                                  error_size);
                if (r < 0)
                        return r;
                r = lookup_string(object, "Actor.Attributes.exitCode", false, &exit_code, error,
                                  error_size);
                if (r < 0)
                        return r;
                if (exit_code)
                        event.exit_code = parse_exit_code(exit_code);
        }

        r = lookup_int(object, "timeNano", false, 0, INT64_MAX, &time_nsec, error, error_size);
        if (r < 0)
                return r;
        if (time_nsec == 0) {
                r = lookup_int(object, "time", false, 0, INT64_MAX / 1000000000, &time_sec, error,
                               error_size);
                if (r < 0)
                        return r;
                time_nsec = time_sec * 1000000000;
        }
        event.time_nsec = (uint64_t)time_nsec;

        *ret_event = event;
        return 1;
}

/* Container list */

void docker_ids_free(char **ids)
{
        if (!ids)
                return;
        for (char **id = ids; *id; id++)
                free(*id);
        free(ids);
}

static inline void docker_idsp(char ***ids)
{
        docker_ids_free(*ids);
}

int docker_parse_container_ids(const char *body, size_t size, char ***ret_ids, size_t *ret_count,
                               char *error, size_t error_size)
{
        _cleanup_(json_object_putp) json_object *list = NULL;
        _cleanup_(docker_idsp) char **ids = NULL;
        size_t count;
        int r;

        r = parse_document(body, size, &list, error, error_size);
        if (r < 0)
                return r;
        if (!json_object_is_type(list, json_type_array))
                return fail(error, error_size, "container list is not an array");

        count = json_object_array_length(list);
        ids = xcalloc(count + 1, sizeof(char *));
        for (size_t i = 0; i < count; i++) {
                json_object *entry = json_object_array_get_idx(list, i);
                const char *id;
                char path[32];

                snprintf(path, sizeof(path), "[%zu]", i);
                if (!json_object_is_type(entry, json_type_object))
                        return fail(error, error_size, "%s is not an object", path);

                r = lookup_string(entry, "Id", false, &id, NULL, 0);
                if (r < 0 || !id)
                        return fail(error, error_size, "%s.Id is missing or not a string", path);
                if (!docker_id_is_valid(id))
                        return fail(error, error_size, "%s.Id is not a container id: \"%.80s\"",
                                    path, id);
                ids[i] = xstrdup(id);
        }

        *ret_ids = TAKE_PTR(ids);
        *ret_count = count;
        return 0;
}

/* Inspect documents */

void container_info_free(struct container_info *info)
{
        if (!info)
                return;
        free(info->name);
        free(info->image);
        if (info->labels)
                json_object_put(info->labels);
        if (info->env) {
                for (size_t i = 0; i < info->n_env; i++)
                        free(info->env[i]);
                free(info->env);
        }
        free(info->userns_mode);
        free(info->cgroupns_mode);
        free(info->runtime);
        free(info);
}

static int parse_time_field(json_object *root, const char *path, uint64_t *ret_usec, char *error,
                            size_t error_size)
{
        const char *text;
        int r;

        r = lookup_string(root, path, true, &text, error, error_size);
        if (r < 0)
                return r;
        if (docker_parse_rfc3339(text, ret_usec) < 0)
                return fail(error, error_size, "%s is not an RFC 3339 time: \"%.80s\"", path, text);
        return 0;
}

static int parse_labels(json_object *document, struct container_info *info, char *error,
                        size_t error_size)
{
        json_object *labels;
        int r;

        r = lookup(document, "Config.Labels", json_type_object, false, &labels, error, error_size);
        if (r < 0)
                return r;
        if (!labels) {
                info->labels = json_object_new_object();
                return info->labels ? 0 : -ENOMEM;
        }

        json_object_object_foreach(labels, key, value)
        {
                if (!json_object_is_type(value, json_type_string))
                        return fail(error, error_size, "Config.Labels[\"%.80s\"] is not a string",
                                    key);
        }
        info->labels = json_object_get(labels);
        return 0;
}

static int parse_env(json_object *document, struct container_info *info, char *error,
                     size_t error_size)
{
        json_object *env;
        size_t count;
        int r;

        r = lookup(document, "Config.Env", json_type_array, false, &env, error, error_size);
        if (r < 0)
                return r;

        count = env ? json_object_array_length(env) : 0;
        info->env = xcalloc(count + 1, sizeof(char *));
        for (size_t i = 0; i < count; i++) {
                json_object *entry = json_object_array_get_idx(env, i);

                if (!json_object_is_type(entry, json_type_string))
                        return fail(error, error_size, "Config.Env[%zu] is not a string", i);
                info->env[i] = xstrdup(json_object_get_string(entry));
                info->n_env = i + 1;
        }
        return 0;
}

static int parse_state(json_object *document, struct container_info *info, char *error,
                       size_t error_size)
{
        int64_t pid;
        int r;

        r = lookup_bool(document, "State.Running", true, &info->running, error, error_size);
        if (r < 0)
                return r;
        r = lookup_bool(document, "State.Restarting", false, &info->restarting, error, error_size);
        if (r < 0)
                return r;
        r = lookup_bool(document, "State.Paused", false, &info->paused, error, error_size);
        if (r < 0)
                return r;
        r = lookup_int(document, "State.Pid", true, 0, INT_MAX, &pid, error, error_size);
        if (r < 0)
                return r;
        info->pid = (pid_t)pid;

        return parse_time_field(document, "State.StartedAt", &info->started_usec, error,
                                error_size);
}

static int dup_optional_string(json_object *document, const char *path, char **ret, char *error,
                               size_t error_size)
{
        const char *value;
        int r;

        r = lookup_string(document, path, false, &value, error, error_size);
        if (r < 0)
                return r;
        *ret = value ? xstrdup(value) : NULL;
        return 0;
}

static int parse_host_config(json_object *document, struct container_info *info, char *error,
                             size_t error_size)
{
        int r;

        r = lookup_bool(document, "HostConfig.Privileged", false, &info->privileged, error,
                        error_size);
        if (r < 0)
                return r;
        r = lookup_bool(document, "HostConfig.ReadonlyRootfs", false, &info->readonly_rootfs, error,
                        error_size);
        if (r < 0)
                return r;
        r = dup_optional_string(document, "HostConfig.UsernsMode", &info->userns_mode, error,
                                error_size);
        if (r < 0)
                return r;
        r = dup_optional_string(document, "HostConfig.CgroupnsMode", &info->cgroupns_mode, error,
                                error_size);
        if (r < 0)
                return r;
        return dup_optional_string(document, "HostConfig.Runtime", &info->runtime, error,
                                   error_size);
}

int docker_parse_inspect(const char *body, size_t size, struct container_info **ret_info,
                         char *error, size_t error_size)
{
        _cleanup_(json_object_putp) json_object *document = NULL;
        _cleanup_(container_info_freep) struct container_info *info = NULL;
        const char *id, *name, *image;
        int64_t restart_count;
        int r;

        r = parse_document(body, size, &document, error, error_size);
        if (r < 0)
                return r;
        if (!json_object_is_type(document, json_type_object))
                return fail(error, error_size, "inspect document is not an object");

        info = xcalloc(1, sizeof(*info));

        r = lookup_string(document, "Id", true, &id, error, error_size);
        if (r < 0)
                return r;
        if (!docker_id_is_valid(id))
                return fail(error, error_size, "Id is not a container id: \"%.80s\"", id);
        memcpy(info->id, id, DOCKER_ID_LENGTH + 1);

        r = lookup_string(document, "Name", true, &name, error, error_size);
        if (r < 0)
                return r;
        info->name = xstrdup(name[0] == '/' ? name + 1 : name);

        r = parse_time_field(document, "Created", &info->created_usec, error, error_size);
        if (r < 0)
                return r;

        r = lookup_string(document, "Config.Image", true, &image, error, error_size);
        if (r < 0)
                return r;
        info->image = xstrdup(image);

        r = parse_labels(document, info, error, error_size);
        if (r < 0)
                return r;
        r = parse_env(document, info, error, error_size);
        if (r < 0)
                return r;
        r = parse_state(document, info, error, error_size);
        if (r < 0)
                return r;

        r = lookup_int(document, "RestartCount", false, 0, UINT_MAX, &restart_count, error,
                       error_size);
        if (r < 0)
                return r;
        info->restart_count = (unsigned)restart_count;

        r = parse_host_config(document, info, error, error_size);
        if (r < 0)
                return r;

        *ret_info = TAKE_PTR(info);
        return 0;
}

/* Version */

static int parse_api_version(const char *text, unsigned *ret_major, unsigned *ret_minor)
{
        unsigned major, minor;
        int consumed = 0;

        if (sscanf(text, "%u.%u%n", &major, &minor, &consumed) != 2 || text[consumed] != '\0')
                return -EINVAL;
        *ret_major = major;
        *ret_minor = minor;
        return 0;
}

int docker_parse_version(const char *body, size_t size, struct docker_version *ret_version,
                         char *error, size_t error_size)
{
        _cleanup_(json_object_putp) json_object *document = NULL;
        struct docker_version version = {};
        const char *api, *min_api, *engine;
        int r;

        r = parse_document(body, size, &document, error, error_size);
        if (r < 0)
                return r;
        if (!json_object_is_type(document, json_type_object))
                return fail(error, error_size, "version document is not an object");

        r = lookup_string(document, "ApiVersion", true, &api, error, error_size);
        if (r < 0)
                return r;
        if (parse_api_version(api, &version.api_major, &version.api_minor) < 0)
                return fail(error, error_size, "ApiVersion is not a version: \"%.40s\"", api);

        r = lookup_string(document, "MinAPIVersion", false, &min_api, error, error_size);
        if (r < 0)
                return r;
        if (min_api &&
            parse_api_version(min_api, &version.min_api_major, &version.min_api_minor) < 0)
                return fail(error, error_size, "MinAPIVersion is not a version: \"%.40s\"",
                            min_api);

        r = lookup_string(document, "Version", false, &engine, error, error_size);
        if (r < 0)
                return r;
        snprintf(version.engine, sizeof(version.engine), "%s", engine ? engine : "unknown");

        *ret_version = version;
        return 0;
}

int docker_choose_api_version(const struct docker_version *version, unsigned *ret_major,
                              unsigned *ret_minor)
{
        unsigned minor;

        if (version->api_major != DOCKER_API_MAJOR)
                return -EPROTONOSUPPORT;

        minor = version->api_minor;
        if (minor > DOCKER_API_MINOR_MAX)
                minor = DOCKER_API_MINOR_MAX;
        if (version->min_api_major == DOCKER_API_MAJOR && version->min_api_minor > minor)
                minor = version->min_api_minor;
        if (minor < DOCKER_API_MINOR_MIN)
                return -EPROTONOSUPPORT;

        *ret_major = DOCKER_API_MAJOR;
        *ret_minor = minor;
        return 0;
}

const char *docker_error_message(const char *body, size_t size, char *buffer, size_t buffer_size)
{
        _cleanup_(json_object_putp) json_object *document = NULL;
        const char *message = NULL;
        size_t length;

        if (buffer_size == 0)
                return buffer;

        if (parse_document(body, size, &document, NULL, 0) == 0 &&
            json_object_is_type(document, json_type_object))
                (void)lookup_string(document, "message", false, &message, NULL, 0);
        if (message) {
                snprintf(buffer, buffer_size, "%s", message);
                return buffer;
        }

        /* Not a Docker error document: show the start of the body. */
        length = strnlen(body, size);
        while (length > 0 && is_json_space(body[length - 1]))
                length--;
        if (length == 0)
                snprintf(buffer, buffer_size, "(empty response body)");
        else
                snprintf(buffer, buffer_size, "%.*s", (int)(length < 200 ? length : 200), body);
        return buffer;
}

/* RFC 3339 */

static bool parse_digits(const char **p, int count, int *ret)
{
        int value = 0;

        for (int i = 0; i < count; i++) {
                char c = (*p)[i];

                if (c < '0' || c > '9')
                        return false;
                value = value * 10 + (c - '0');
        }
        *p += count;
        *ret = value;
        return true;
}

static bool parse_char(const char **p, char expected)
{
        if (**p != expected)
                return false;
        (*p)++;
        return true;
}

int docker_parse_rfc3339(const char *text, uint64_t *ret_usec)
{
        const char *p = text;
        struct tm tm = {};
        int year, month, day, hour, minute, second;
        long long offset_sec = 0, usec = 0;
        time_t seconds;

        if (!parse_digits(&p, 4, &year) || !parse_char(&p, '-') || !parse_digits(&p, 2, &month) ||
            !parse_char(&p, '-') || !parse_digits(&p, 2, &day))
                return -EINVAL;
        if (!parse_char(&p, 'T') && !parse_char(&p, 't'))
                return -EINVAL;
        if (!parse_digits(&p, 2, &hour) || !parse_char(&p, ':') || !parse_digits(&p, 2, &minute) ||
            !parse_char(&p, ':') || !parse_digits(&p, 2, &second))
                return -EINVAL;
        if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 ||
            second > 60)
                return -EINVAL;

        /* Fraction: keep microseconds, ignore digits beyond. */
        if (parse_char(&p, '.')) {
                int digits = 0;

                while (*p >= '0' && *p <= '9') {
                        if (digits < 6)
                                usec = usec * 10 + (*p - '0');
                        digits++;
                        p++;
                }
                if (digits == 0)
                        return -EINVAL;
                for (; digits < 6; digits++)
                        usec *= 10;
        }

        if (parse_char(&p, 'Z') || parse_char(&p, 'z')) {
                offset_sec = 0;
        } else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1;
                int offset_hour, offset_minute;

                p++;
                if (!parse_digits(&p, 2, &offset_hour) || !parse_char(&p, ':') ||
                    !parse_digits(&p, 2, &offset_minute) || offset_hour > 23 || offset_minute > 59)
                        return -EINVAL;
                offset_sec = sign * (offset_hour * 3600LL + offset_minute * 60LL);
        } else {
                return -EINVAL;
        }
        if (*p != '\0')
                return -EINVAL;

        /* Go's zero time.Time, which Docker writes for "never". */
        if (year == 1 && month == 1 && day == 1 && hour == 0 && minute == 0 && second == 0 &&
            usec == 0 && offset_sec == 0) {
                *ret_usec = 0;
                return 0;
        }

        tm.tm_year = year - 1900;
        tm.tm_mon = month - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = minute;
        tm.tm_sec = second;
        seconds = timegm(&tm);
        if ((long long)seconds - offset_sec < 0)
                return -ERANGE;

        *ret_usec = (uint64_t)((long long)seconds - offset_sec) * 1000000ULL + (uint64_t)usec;
        return 0;
}
