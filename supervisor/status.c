#include "supervisor/status.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdint.h>

#include "supervisor/util.h"

#define STATUS_TIMEOUT_MSEC 5000L
/* A response larger than this is not a list of agents. */
#define STATUS_MAX_RESPONSE (64U * 1024U * 1024U)
#define STATUS_ID_LENGTH 12

static inline void curl_easy_cleanupp(CURL **curl)
{
        if (*curl)
                curl_easy_cleanup(*curl);
}

static inline void json_object_putp(json_object **object)
{
        if (*object)
                json_object_put(*object);
}

struct target {
        char *socket_path; /* NULL for TCP */
        char *url;
        char *description; /* the socket path or host:port, for messages */
};

static void target_done(struct target *target)
{
        free(target->socket_path);
        free(target->url);
        free(target->description);
}

/* Pick the first unix listen address of the config, else the default socket.
 * A config that listens on TCP only is reached over TCP. */
static void target_from_config(const struct config *config, struct target *ret_target)
{
        _cleanup_free_ char *default_path = NULL;
        const char *path = NULL, *tcp = NULL;

        for (size_t i = 0; i < config->n_listen && !path; i++) {
                if (startswith(config->listen[i], "unix:"))
                        path = config->listen[i] + strlen("unix:");
                else if (!tcp && startswith(config->listen[i], "tcp:"))
                        tcp = config->listen[i] + strlen("tcp:");
        }

        if (!path && tcp) {
                ret_target->socket_path = NULL;
                ret_target->url = xasprintf("http://%s/v1/agents", tcp);
                ret_target->description = xstrdup(tcp);
                return;
        }

        if (!path) {
                default_path = xasprintf(
                    "%s/%s", config->state_dir ? config->state_dir : CONFIG_DEFAULT_STATE_DIR,
                    CONFIG_DEFAULT_LISTEN_SOCKET_NAME);
                path = default_path;
        }
        ret_target->socket_path = xstrdup(path);
        ret_target->url = xstrdup("http://localhost/v1/agents");
        ret_target->description = xstrdup(path);
}

struct buffer {
        char *data;
        size_t size;
};

static void buffer_done(struct buffer *buffer)
{
        free(buffer->data);
}

static size_t buffer_append(char *data, size_t size, size_t count, void *userdata)
{
        struct buffer *buffer = userdata;
        size_t length = size * count;
        char *grown;

        if (length > STATUS_MAX_RESPONSE - buffer->size)
                return 0; /* makes curl fail with CURLE_WRITE_ERROR */

        grown = realloc(buffer->data, buffer->size + length + 1);
        if (!grown)
                return 0;
        memcpy(grown + buffer->size, data, length);
        buffer->data = grown;
        buffer->size += length;
        buffer->data[buffer->size] = '\0';
        return length;
}

static void print_transfer_error(const struct target *target, CURLcode code, long os_errno,
                                 const char *curl_message)
{
        const char *reason = os_errno != 0             ? strerror((int)os_errno)
                             : curl_message[0] != '\0' ? curl_message
                                                       : curl_easy_strerror(code);

        if (code == CURLE_COULDNT_CONNECT && (os_errno == ENOENT || os_errno == ECONNREFUSED)) {
                fprintf(stderr,
                        "execvisor: no daemon is running (cannot connect to %s: %s); "
                        "start one with \"execvisor run\"\n",
                        target->description, reason);
                return;
        }
        if (code == CURLE_COULDNT_CONNECT && (os_errno == EACCES || os_errno == EPERM)) {
                fprintf(stderr,
                        "execvisor: cannot connect to %s: %s; run as root or as the user of the "
                        "daemon\n",
                        target->description, reason);
                return;
        }
        if (code == CURLE_OPERATION_TIMEDOUT) {
                fprintf(stderr, "execvisor: the daemon at %s did not respond within %ld s\n",
                        target->description, STATUS_TIMEOUT_MSEC / 1000);
                return;
        }
        if (code == CURLE_WRITE_ERROR) {
                fprintf(stderr,
                        "execvisor: the response of the daemon at %s is larger than %u bytes\n",
                        target->description, STATUS_MAX_RESPONSE);
                return;
        }
        fprintf(stderr, "execvisor: failed to query the daemon at %s: %s\n", target->description,
                reason);
}

/* GET the agent list. Returns 0 with the body and the HTTP status, or a
 * negative errno after printing why the transfer failed. */
static int fetch_agents(const struct target *target, struct buffer *ret_body, long *ret_status)
{
        _cleanup_(curl_easy_cleanupp) CURL *curl = NULL;
        _cleanup_(buffer_done) struct buffer body = {0};
        char message[CURL_ERROR_SIZE] = "";
        long os_errno = 0, status = 0;
        CURLcode code;

        curl = curl_easy_init();
        if (!curl) {
                fprintf(stderr, "execvisor: failed to initialise libcurl\n");
                return -ENOMEM;
        }

        /* The endpoint is local, so no proxy from the environment may take
         * the request elsewhere, and only plain HTTP is spoken. */
        if (target->socket_path)
                curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, target->socket_path);
        curl_easy_setopt(curl, CURLOPT_URL, target->url);
        curl_easy_setopt(curl, CURLOPT_PROXY, "");
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, STATUS_TIMEOUT_MSEC);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "execvisor/" EXECVISOR_VERSION);
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, message);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, buffer_append);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);

        code = curl_easy_perform(curl);
        if (code != CURLE_OK) {
                curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
                print_transfer_error(target, code, os_errno, message);
                return -EIO;
        }
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

        *ret_body = body;
        body = (struct buffer){0};
        *ret_status = status;
        return 0;
}

/* Copy at most max_length bytes of text with control characters and
 * backslashes escaped, so that a container name or an agent's reason cannot
 * move the cursor or forge lines of the table. */
static char *escape_text(const char *text, size_t max_length)
{
        size_t length = strnlen(text, max_length);
        char *escaped = xmalloc(length * 4 + 1);
        char *out = escaped;

        for (size_t i = 0; i < length; i++) {
                unsigned char c = (unsigned char)text[i];

                if (c == '\\') {
                        *out++ = '\\';
                        *out++ = '\\';
                } else if (c == '\n') {
                        *out++ = '\\';
                        *out++ = 'n';
                } else if (c == '\t') {
                        *out++ = '\\';
                        *out++ = 't';
                } else if (c < 0x20 || c == 0x7f) {
                        out += sprintf(out, "\\x%02x", c);
                } else {
                        *out++ = (char)c;
                }
        }
        *out = '\0';
        return escaped;
}

enum column {
        COLUMN_ID,
        COLUMN_NAME,
        COLUMN_STATE,
        COLUMN_PID,
        COLUMN_RESTARTS,
        COLUMN_LAST_STARTED,
        COLUMN_REASON,
        N_COLUMNS,
};

static const char *const column_headers[N_COLUMNS] = {
    [COLUMN_ID] = "ID",
    [COLUMN_NAME] = "NAME",
    [COLUMN_STATE] = "STATE",
    [COLUMN_PID] = "PID",
    [COLUMN_RESTARTS] = "RESTARTS",
    [COLUMN_LAST_STARTED] = "LAST STARTED",
    [COLUMN_REASON] = "REASON",
};

static const char *string_field(json_object *record, const char *key)
{
        json_object *value;

        if (!json_object_object_get_ex(record, key, &value) ||
            !json_object_is_type(value, json_type_string))
                return NULL;
        return json_object_get_string(value);
}

/* The escaped string at key, cut to max_length bytes, or "-" when it is
 * missing or empty. */
static char *text_field(json_object *record, const char *key, size_t max_length)
{
        const char *value = string_field(record, key);

        if (!value || value[0] == '\0')
                return xstrdup("-");
        return escape_text(value, max_length);
}

static char *number_field(json_object *record, const char *key, bool zero_is_none)
{
        json_object *value;
        int64_t number;

        if (!json_object_object_get_ex(record, key, &value) ||
            !json_object_is_type(value, json_type_int))
                return xstrdup("-");
        number = json_object_get_int64(value);
        if (zero_is_none && number == 0)
                return xstrdup("-");
        return xasprintf("%" PRId64, number);
}

static void fill_row(json_object *record, char *row[N_COLUMNS])
{
        row[COLUMN_ID] = text_field(record, "ContainerId", STATUS_ID_LENGTH);
        row[COLUMN_NAME] = text_field(record, "ContainerName", SIZE_MAX);
        row[COLUMN_STATE] = text_field(record, "LastStatus", SIZE_MAX);
        row[COLUMN_PID] = number_field(record, "Pid", true);
        row[COLUMN_RESTARTS] = number_field(record, "RestartCount", false);
        row[COLUMN_LAST_STARTED] = text_field(record, "LastStartedAt", SIZE_MAX);
        row[COLUMN_REASON] = text_field(record, "Reason", SIZE_MAX);
}

static void print_row(const char *const row[N_COLUMNS], const size_t widths[N_COLUMNS])
{
        for (size_t i = 0; i < N_COLUMNS - 1; i++)
                printf("%-*s  ", (int)widths[i], row[i]);
        printf("%s\n", row[N_COLUMNS - 1]);
}

/* One line per agent under a header line, each column as wide as its widest
 * cell. Widths count bytes, which matches the display for the ASCII that
 * Docker allows in container names. */
static void print_table(json_object *agents)
{
        size_t n = json_object_array_length(agents);
        char *(*rows)[N_COLUMNS] = xcalloc(n, sizeof(*rows));
        size_t widths[N_COLUMNS];

        for (size_t i = 0; i < N_COLUMNS; i++)
                widths[i] = strlen(column_headers[i]);

        for (size_t r = 0; r < n; r++) {
                fill_row(json_object_array_get_idx(agents, r), rows[r]);
                for (size_t i = 0; i < N_COLUMNS; i++)
                        if (strlen(rows[r][i]) > widths[i])
                                widths[i] = strlen(rows[r][i]);
        }

        print_row(column_headers, widths);
        for (size_t r = 0; r < n; r++) {
                print_row((const char *const *)rows[r], widths);
                for (size_t i = 0; i < N_COLUMNS; i++)
                        free(rows[r][i]);
        }
        free(rows);
}

static void print_http_error(const struct target *target, long status, const char *body)
{
        _cleanup_(json_object_putp) json_object *document = json_tokener_parse(body);
        const char *message = document ? string_field(document, "error") : NULL;
        _cleanup_free_ char *escaped = message ? escape_text(message, SIZE_MAX) : NULL;

        if (escaped)
                fprintf(stderr, "execvisor: the daemon at %s responded with HTTP %ld: %s\n",
                        target->description, status, escaped);
        else
                fprintf(stderr, "execvisor: the daemon at %s responded with HTTP %ld\n",
                        target->description, status);
}

int status_main(const struct config *config, bool json)
{
        _cleanup_(target_done) struct target target = {0};
        _cleanup_(buffer_done) struct buffer body = {0};
        _cleanup_(json_object_putp) json_object *agents = NULL;
        enum json_tokener_error parse_error;
        long status = 0;

        target_from_config(config, &target);

        if (fetch_agents(&target, &body, &status) < 0)
                return 1;

        if (status != 200) {
                print_http_error(&target, status, body.data ? body.data : "");
                return 1;
        }

        agents = json_tokener_parse_verbose(body.data ? body.data : "", &parse_error);
        if (!agents || !json_object_is_type(agents, json_type_array)) {
                fprintf(stderr, "execvisor: the daemon at %s sent an invalid agent list: %s\n",
                        target.description,
                        agents ? "not a JSON array" : json_tokener_error_desc(parse_error));
                return 1;
        }

        if (json)
                printf("%s\n", json_object_to_json_string_ext(
                                   agents, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
        else
                print_table(agents);

        if (fflush(stdout) != 0) {
                fprintf(stderr, "execvisor: failed to write the status: %m\n");
                return 1;
        }
        return 0;
}
