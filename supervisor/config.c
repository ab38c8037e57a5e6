#include "supervisor/config.h"
#include "supervisor/sandbox.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/un.h>
#include <syslog.h>

#include "supervisor/log.h"
#include "supervisor/util.h"

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC (UINT64_C(1000) * USEC_PER_MSEC)
#define USEC_PER_MINUTE (UINT64_C(60) * USEC_PER_SEC)
#define USEC_PER_HOUR (UINT64_C(60) * USEC_PER_MINUTE)
#define USEC_PER_DAY (UINT64_C(24) * USEC_PER_HOUR)

#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

static void json_object_putp(json_object **object)
{
        if (*object)
                json_object_put(*object);
}

static void json_tokener_freep(json_tokener **tokener)
{
        if (*tokener)
                json_tokener_free(*tokener);
}

static void curl_url_cleanupp(CURLU **url)
{
        if (*url)
                curl_url_cleanup(*url);
}

static void curl_freep(char **p)
{
        curl_free(*p);
}

#define COMMANDS_ALL (CONFIG_COMMAND_RUN | CONFIG_COMMAND_STATUS)
#define FIELD(name) offsetof(struct config, name)

/* The order here is the order of the usage text. */
const struct config_setting config_settings[] = {
        {
                .name = "docker-socket",
                .argument = "PATH",
                .value_noun = "path",
                .help = "Unix socket of the Docker Engine API.",
                .default_text = CONFIG_DEFAULT_DOCKER_SOCKET,
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_PATH,
                .offset = FIELD(docker_socket),
        },
        {
                .name = "bundle",
                .argument = "DIR",
                .value_noun = "path",
                .help = "Directory of the agent bundle, in the layout that Amazon ECS uses for "
                        "ECS Exec (bin/VERSION/ and certs/). The directory of an ECS host, "
                        "/var/lib/ecs/deps/execute-command, works as is.",
                .default_text = CONFIG_DEFAULT_BUNDLE_DIR,
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_PATH,
                .offset = FIELD(bundle_dir),
        },
        {
                .name = "state-dir",
                .argument = "DIR",
                .value_noun = "path",
                .help = "Directory of the supervisor's runtime state, which lets a restarted "
                        "supervisor adopt the agents that still run, and of the default "
                        "endpoint socket.",
                .default_text = CONFIG_DEFAULT_STATE_DIR,
                .commands = COMMANDS_ALL,
                .type = CONFIG_VALUE_PATH,
                .offset = FIELD(state_dir),
        },
        {
                .name = "log-dir",
                .argument = "DIR",
                .value_noun = "path",
                .help = "Directory of the agents' own logs, with one subdirectory per container.",
                .default_text = CONFIG_DEFAULT_LOG_DIR,
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_PATH,
                .offset = FIELD(log_dir),
        },
        {
                .name = "select-label",
                .argument = "KEY=VALUE",
                .value_noun = "label rule",
                .help = "Inject the agent into containers that carry this label. KEY alone "
                        "matches any value. Repeat the option to require several labels: a "
                        "container must carry all of them.",
                .default_text = CONFIG_DEFAULT_SELECT_LABEL,
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_LABEL_RULES,
        },
        {
                .name = "all",
                .value_noun = "flag",
                .help = "Inject the agent into every container, whatever its labels. "
                        "--select-label is ignored.",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_FLAG,
                .offset = FIELD(select_all),
        },
        {
                .name = "restart-backoff-min",
                .argument = "DURATION",
                .value_noun = "duration",
                .help = "Delay before an agent that exited is restarted for the first time. "
                        "The delay grows with each further restart, up to "
                        "--restart-backoff-max.",
                .default_text = "1s",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_DURATION,
                .offset = FIELD(restart_backoff_min_usec),
        },
        {
                .name = "restart-backoff-max",
                .argument = "DURATION",
                .value_noun = "duration",
                .help = "Maximum delay before an agent that exited is restarted.",
                .default_text = "5m",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_DURATION,
                .offset = FIELD(restart_backoff_max_usec),
        },
        {
                .name = "max-restarts",
                .argument = "N",
                .value_noun = "number",
                .help = "Number of restarts allowed within --restart-window: one more exit "
                        "in that window stops the agent for good. At least 1.",
                .default_text = "5",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_MAX_RESTARTS,
                .offset = FIELD(max_restarts),
        },
        {
                .name = "restart-window",
                .argument = "DURATION",
                .value_noun = "duration",
                .help = "Time span in which more than --max-restarts exits stop the agent.",
                .default_text = "10m",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_DURATION,
                .offset = FIELD(restart_window_usec),
        },
        {
                .name = "forget-after",
                .argument = "DURATION",
                .value_noun = "duration",
                .help = "Time for which the state of a container that exited is still "
                        "reported before it is removed.",
                .default_text = "1h",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_DURATION,
                .offset = FIELD(forget_after_usec),
        },
        {
                .name = "stop-agents-on-exit",
                .value_noun = "flag",
                .help = "Stop every agent when the supervisor exits. Without it, the agents "
                        "keep running and the next supervisor adopts them.",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_FLAG,
                .offset = FIELD(stop_agents_on_exit),
        },
        {
                .name = "stop-grace",
                .argument = "DURATION",
                .value_noun = "duration",
                .help = "Time between SIGTERM to an agent and SIGKILL to its whole process "
                        "tree when the agent is stopped.",
                .default_text = "20s",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_DURATION,
                .offset = FIELD(stop_grace_usec),
        },
        {
                .name = "agent-memory-max",
                .argument = "SIZE",
                .value_noun = "size",
                .help = "Memory limit of each agent's cgroup, which contains the agent's whole "
                        "process tree. 0 means no limit.",
                .default_text = "no limit",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_SIZE,
                .offset = FIELD(agent_memory_max),
        },
        {
                .name = "agent-pids-max",
                .argument = "N",
                .value_noun = "number",
                .help = "Maximum number of processes and threads in each agent's cgroup. "
                        "0 means no limit.",
                .default_text = "no limit",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_COUNT,
                .offset = FIELD(agent_pids_max),
        },
        {
                .name = "agent-capabilities",
                .argument = "LIST",
                .value_noun = "capability list",
                .help = "Capabilities the agent may keep, as libcap names separated by commas "
                        "(cap_chown,cap_kill), or all. The agent never gets one that the "
                        "container's init lacks in its bounding set.",
                .default_text = "all",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_CAPABILITIES,
                .offset = FIELD(agent_capabilities),
        },
        {
                .name = "listen",
                .argument = "ADDRESS",
                .value_noun = "listen address",
                .help = "Address of the task metadata endpoint: unix:PATH, or tcp:IP:PORT with "
                        "a loopback IP address (tcp:127.0.0.1:PORT or tcp:[::1]:PORT). Other TCP "
                        "addresses are rejected because every container started with "
                        "--network host can reach the host's addresses. Such containers reach "
                        "loopback too, so prefer a unix socket. Repeat the option to listen on "
                        "several addresses.",
                .default_text = "unix:STATE-DIR/" CONFIG_DEFAULT_LISTEN_SOCKET_NAME,
                .commands = COMMANDS_ALL,
                .type = CONFIG_VALUE_LISTEN_ADDRESSES,
        },
        {
                .name = "report-url",
                .argument = "URL",
                .value_noun = "report URL",
                .help = "Send each change of an agent's state to this URL: http://..., "
                        "https://..., or unix:SOCKET-PATH:/URL-PATH for HTTP over a unix "
                        "socket. Repeat the option to report to several URLs.",
                .default_text = "none",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_REPORT_URLS,
        },
        {
                .name = "report-ca-file",
                .argument = "FILE",
                .value_noun = "path",
                .help = "PEM file of the CA certificates that verify https report URLs.",
                .default_text = "the system's CA certificates",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_PATH,
                .offset = FIELD(report_ca_file),
        },
        {
                .name = "audit-log",
                .argument = "FILE",
                .value_noun = "path",
                .help = "Audit log, with one JSON line for every injection, start, restart "
                        "and stop of an agent.",
                .default_text = "LOG-DIR/" CONFIG_DEFAULT_AUDIT_LOG_NAME,
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_PATH,
                .offset = FIELD(audit_log),
        },
        {
                .name = "audit-max-size",
                .argument = "SIZE",
                .value_noun = "size",
                .help = "Size at which the audit log is rotated.",
                .default_text = "10M",
                .commands = CONFIG_COMMAND_RUN,
                .type = CONFIG_VALUE_SIZE,
                .offset = FIELD(audit_max_size),
        },
        {
                .name = "log-level",
                .argument = "LEVEL",
                .value_noun = "log level",
                .help = "Most verbose level of the messages written to stderr: error, warning, "
                        "notice, info or debug.",
                .default_text = "info",
                .commands = COMMANDS_ALL,
                .type = CONFIG_VALUE_LOG_LEVEL,
                .offset = FIELD(log_level),
        },
};

const size_t config_n_settings = ARRAY_SIZE(config_settings);

static const struct {
        const char *name;
        int level;
} log_levels[] = {
        { "error", LOG_ERR },   { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
        { "info", LOG_INFO },   { "debug", LOG_DEBUG },
};

void config_init_defaults(struct config *config)
{
        *config = (struct config){
                .docker_socket = xstrdup(CONFIG_DEFAULT_DOCKER_SOCKET),
                .bundle_dir = xstrdup(CONFIG_DEFAULT_BUNDLE_DIR),
                .state_dir = xstrdup(CONFIG_DEFAULT_STATE_DIR),
                .log_dir = xstrdup(CONFIG_DEFAULT_LOG_DIR),
                .restart_backoff_min_usec = 1 * USEC_PER_SEC,
                .restart_backoff_max_usec = 5 * USEC_PER_MINUTE,
                .max_restarts = 5,
                .restart_window_usec = 10 * USEC_PER_MINUTE,
                .forget_after_usec = 1 * USEC_PER_HOUR,
                .stop_grace_usec = 20 * USEC_PER_SEC,
                .audit_max_size = UINT64_C(10) * 1024 * 1024,
                .log_level = LOG_INFO,
        };
        (void)parse_capability_list("all", &config->agent_capabilities);
}

static void strv_free(char **strv, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(strv[i]);
        free(strv);
}

void label_rule_done(struct label_rule *rule)
{
        free(rule->key);
        free(rule->value);
        *rule = (struct label_rule){};
}

static void clear_label_rules(struct config *config)
{
        for (size_t i = 0; i < config->n_select_labels; i++)
                label_rule_done(&config->select_labels[i]);
        free(config->select_labels);
        config->select_labels = NULL;
        config->n_select_labels = 0;
}

void config_free(struct config *config)
{
        free(config->docker_socket);
        free(config->bundle_dir);
        free(config->state_dir);
        free(config->log_dir);
        clear_label_rules(config);
        strv_free(config->listen, config->n_listen);
        strv_free(config->report_urls, config->n_report_urls);
        free(config->report_ca_file);
        free(config->audit_log);
        free(config->config_file);
        *config = (struct config){};
}

const struct config_setting *config_setting_find(const char *name)
{
        for (size_t i = 0; i < config_n_settings; i++)
                if (streq(config_settings[i].name, name))
                        return &config_settings[i];
        return NULL;
}

bool config_setting_is_repeatable(const struct config_setting *setting)
{
        return setting->type == CONFIG_VALUE_LABEL_RULES ||
               setting->type == CONFIG_VALUE_LISTEN_ADDRESSES ||
               setting->type == CONFIG_VALUE_REPORT_URLS;
}

void config_clear_setting(struct config *config, const struct config_setting *setting)
{
        switch (setting->type) {
        case CONFIG_VALUE_LABEL_RULES:
                clear_label_rules(config);
                break;
        case CONFIG_VALUE_LISTEN_ADDRESSES:
                strv_free(config->listen, config->n_listen);
                config->listen = NULL;
                config->n_listen = 0;
                break;
        case CONFIG_VALUE_REPORT_URLS:
                strv_free(config->report_urls, config->n_report_urls);
                config->report_urls = NULL;
                config->n_report_urls = 0;
                break;
        default:
                break;
        }
}

/* Parse a decimal number of digits only: no sign, no spaces, no base prefix,
 * unlike strtoull(). Advances *text past the digits. */
static int parse_digits(const char **text, uint64_t *ret_number)
{
        const char *p = *text;
        uint64_t number = 0;

        if (*p < '0' || *p > '9')
                return -EINVAL;

        for (; *p >= '0' && *p <= '9'; p++) {
                unsigned digit = (unsigned)(*p - '0');

                if (number > (UINT64_MAX - digit) / 10)
                        return -ERANGE;
                number = number * 10 + digit;
        }

        *text = p;
        *ret_number = number;
        return 0;
}

static int parse_unsigned(const char *text, uint64_t *ret_number)
{
        uint64_t number;
        int r;

        r = parse_digits(&text, &number);
        if (r < 0)
                return r;
        if (*text != '\0')
                return -EINVAL;

        *ret_number = number;
        return 0;
}

int parse_duration(const char *text, uint64_t *ret_usec)
{
        /* "ms" comes before "m" so that the longer suffix wins. */
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "ms", USEC_PER_MSEC }, { "s", USEC_PER_SEC }, { "m", USEC_PER_MINUTE },
                { "h", USEC_PER_HOUR },  { "d", USEC_PER_DAY },
        };
        const char *p = text;
        uint64_t total = 0;

        if (streq(text, "0")) {
                *ret_usec = 0;
                return 0;
        }
        if (*p == '\0')
                return -EINVAL;

        while (*p != '\0') {
                uint64_t number, part;
                size_t i;
                int r;

                r = parse_digits(&p, &number);
                if (r < 0)
                        return r;

                for (i = 0; i < ARRAY_SIZE(units); i++)
                        if (startswith(p, units[i].suffix))
                                break;
                if (i == ARRAY_SIZE(units))
                        return -EINVAL;
                p += strlen(units[i].suffix);

                if (__builtin_mul_overflow(number, units[i].usec, &part) ||
                    __builtin_add_overflow(total, part, &total))
                        return -ERANGE;
        }

        *ret_usec = total;
        return 0;
}

int parse_size(const char *text, uint64_t *ret_bytes)
{
        const char *p = text;
        uint64_t number, factor = 1, bytes;
        int r;

        r = parse_digits(&p, &number);
        if (r < 0)
                return r;

        switch (*p) {
        case '\0':
                break;
        case 'K':
        case 'k':
                factor = UINT64_C(1) << 10;
                break;
        case 'M':
        case 'm':
                factor = UINT64_C(1) << 20;
                break;
        case 'G':
        case 'g':
                factor = UINT64_C(1) << 30;
                break;
        case 'T':
        case 't':
                factor = UINT64_C(1) << 40;
                break;
        default:
                return -EINVAL;
        }
        if (*p != '\0' && p[1] != '\0')
                return -EINVAL;

        if (__builtin_mul_overflow(number, factor, &bytes))
                return -ERANGE;

        *ret_bytes = bytes;
        return 0;
}

int parse_label_rule(const char *text, struct label_rule *ret_rule)
{
        const char *equals = strchr(text, '=');
        size_t key_length = equals ? (size_t)(equals - text) : strlen(text);

        if (key_length == 0)
                return -EINVAL;

        /* Docker does not restrict label keys, but a key with blanks or
         * control characters is more likely a quoting mistake than a real label. */
        for (size_t i = 0; i < key_length; i++) {
                unsigned char c = (unsigned char)text[i];

                if (c <= ' ' || c == 0x7f)
                        return -EINVAL;
        }

        *ret_rule = (struct label_rule){
                .key = strndup(text, key_length),
                .value = equals ? xstrdup(equals + 1) : NULL,
        };
        if (!ret_rule->key)
                abort();
        return 0;
}

static bool ipv4_is_loopback(const struct in_addr *address)
{
        return (ntohl(address->s_addr) >> 24) == 127;
}

/* Store a formatted reason for a rejected value and return -EINVAL. */
static int reject_value(char **ret_reason, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

static int reject_value(char **ret_reason, const char *format, ...)
{
        va_list args;
        int r;

        va_start(args, format);
        r = vasprintf(ret_reason, format, args);
        va_end(args);
        if (r < 0)
                abort();
        return -EINVAL;
}

#define LOOPBACK_ONLY_REASON                                                                       \
        "%s is not a loopback address. Only 127.0.0.0/8 and [::1] are accepted, because every "    \
        "container started with --network host can reach the host's other addresses, and so "     \
        "can containers on bridge networks and possibly other machines"

static int check_tcp_listen_address(const char *host_port, char **ret_reason)
{
        _cleanup_free_ char *host = NULL;
        const char *port_text;
        uint64_t port;

        if (host_port[0] == '[') {
                const char *close = strchr(host_port, ']');
                struct in6_addr address;

                if (!close || close[1] != ':')
                        return reject_value(ret_reason, "expected tcp:[IPV6-ADDRESS]:PORT, e.g. "
                                                        "tcp:[::1]:8080");
                host = strndup(host_port + 1, (size_t)(close - host_port - 1));
                if (!host)
                        abort();
                port_text = close + 2;

                if (inet_pton(AF_INET6, host, &address) != 1)
                        return reject_value(ret_reason, "%s is not an IPv6 address", host);
                if (!IN6_IS_ADDR_LOOPBACK(&address))
                        return reject_value(ret_reason, LOOPBACK_ONLY_REASON, host);
        } else {
                const char *colon = strrchr(host_port, ':');
                struct in_addr address;

                if (!colon)
                        return reject_value(ret_reason, "expected tcp:IP-ADDRESS:PORT, e.g. "
                                                        "tcp:127.0.0.1:8080");
                host = strndup(host_port, (size_t)(colon - host_port));
                if (!host)
                        abort();
                port_text = colon + 1;

                if (strchr(host, ':'))
                        return reject_value(ret_reason, "an IPv6 address must be in brackets, e.g. "
                                                        "tcp:[::1]:8080");
                /* A name could resolve to any address, and to another one later. */
                if (inet_pton(AF_INET, host, &address) != 1)
                        return reject_value(ret_reason,
                                            "\"%s\" is not an IP address. Host names are "
                                            "rejected because they may resolve to a "
                                            "non-loopback address; use 127.0.0.1 or [::1]",
                                            host);
                if (!ipv4_is_loopback(&address))
                        return reject_value(ret_reason, LOOPBACK_ONLY_REASON, host);
        }

        if (parse_unsigned(port_text, &port) < 0 || port < 1 || port > 65535)
                return reject_value(ret_reason,
                                    "expected a port number from 1 to 65535 after the address");
        return 0;
}

int check_listen_address(const char *text, char **ret_reason)
{
        if (startswith(text, "unix:")) {
                const char *path = text + strlen("unix:");

                if (path[0] == '\0')
                        return reject_value(ret_reason, "expected a socket path after unix:");
                if (strlen(path) > SOCKET_PATH_MAX)
                        return reject_value(ret_reason,
                                            "the socket path is longer than the 107 bytes "
                                            "that a unix socket address holds");
                return 0;
        }

        if (startswith(text, "tcp:"))
                return check_tcp_listen_address(text + strlen("tcp:"), ret_reason);

        return reject_value(ret_reason, "expected unix:PATH, tcp:127.0.0.1:PORT or tcp:[::1]:PORT");
}

static int check_http_url(const char *text, char **ret_reason)
{
        _cleanup_(curl_url_cleanupp) CURLU *url = NULL;
        _cleanup_(curl_freep) char *host = NULL;
        CURLUcode code;

        url = curl_url();
        if (!url)
                abort();

        /* libcurl would read "https:///name" as "https://name/". The caller
         * checked that text starts with http:// or https://. */
        if (strstr(text, "://")[3] == '/')
                return reject_value(ret_reason, "the URL has no host");

        code = curl_url_set(url, CURLUPART_URL, text, 0);
        if (code != CURLUE_OK)
                return reject_value(ret_reason, "%s", curl_url_strerror(code));

        code = curl_url_get(url, CURLUPART_HOST, &host, 0);
        if (code != CURLUE_OK || !host || host[0] == '\0')
                return reject_value(ret_reason, "%s", "the URL has no host");
        return 0;
}

int check_report_url(const char *text, char **ret_reason)
{
        if (strncasecmp(text, "http://", strlen("http://")) == 0 ||
            strncasecmp(text, "https://", strlen("https://")) == 0)
                return check_http_url(text, ret_reason);

        if (startswith(text, "unix:")) {
                const char *path = text + strlen("unix:");
                const char *separator = strstr(path, ":/");

                if (!separator || separator == path)
                        return reject_value(ret_reason, "expected unix:SOCKET-PATH:/URL-PATH, e.g. "
                                                        "unix:/run/collector.sock:/v1/agents");
                if ((size_t)(separator - path) > SOCKET_PATH_MAX)
                        return reject_value(ret_reason,
                                            "the socket path is longer than the 107 bytes "
                                            "that a unix socket address holds");
                for (const char *p = separator + 1; *p; p++)
                        if ((unsigned char)*p <= ' ' || *p == 0x7f)
                                return reject_value(ret_reason,
                                                    "the URL path contains a space or a "
                                                    "control character; percent-encode it");
                return 0;
        }

        return reject_value(ret_reason,
                            "expected a URL that starts with http://, https:// or unix:");
}

static void *grow_array(void *array, size_t n, size_t size)
{
        void *grown = reallocarray(array, n + 1, size);

        if (!grown)
                abort();
        return grown;
}

static int append_label_rule(struct config *config, const char *value, char **ret_reason)
{
        struct label_rule rule;

        if (parse_label_rule(value, &rule) < 0)
                return reject_value(ret_reason,
                                    "expected KEY=VALUE, or KEY alone to match any value, where "
                                    "KEY is not empty and has no blanks or control characters");

        for (size_t i = 0; i < config->n_select_labels; i++) {
                const struct label_rule *other = &config->select_labels[i];

                if (!streq(other->key, rule.key) || !other->value || !rule.value ||
                    streq(other->value, rule.value))
                        continue;

                reject_value(ret_reason,
                             "it conflicts with %s=%s. A container has one value per label, so "
                             "no container could carry both",
                             other->key, other->value);
                label_rule_done(&rule);
                return -EINVAL;
        }

        config->select_labels =
                grow_array(config->select_labels, config->n_select_labels, sizeof(rule));
        config->select_labels[config->n_select_labels++] = rule;
        return 0;
}

static int append_string(char ***strv, size_t *n, const char *value)
{
        *strv = grow_array(*strv, *n, sizeof(char *));
        (*strv)[(*n)++] = xstrdup(value);
        return 0;
}

static int apply_number(const char *value, uint64_t min, uint64_t max, uint64_t *ret_number,
                        char **ret_reason)
{
        uint64_t number;

        if (parse_unsigned(value, &number) < 0 || number < min || number > max)
                return reject_value(ret_reason,
                                    "expected a whole number from %" PRIu64 " to %" PRIu64, min,
                                    max);

        *ret_number = number;
        return 0;
}

static int apply_value(struct config *config, const struct config_setting *setting,
                       const char *value, char **ret_reason)
{
        void *field = (char *)config + setting->offset;
        uint64_t number;
        int r;

        switch (setting->type) {
        case CONFIG_VALUE_PATH:
                if (value[0] == '\0')
                        return reject_value(ret_reason, "expected a path, not an empty string");
                free(*(char **)field);
                *(char **)field = xstrdup(value);
                return 0;

        case CONFIG_VALUE_DURATION:
                r = parse_duration(value, &number);
                if (r == -ERANGE)
                        return reject_value(ret_reason, "the duration is too long");
                if (r < 0)
                        return reject_value(ret_reason,
                                            "expected a number with a unit (ms, s, m, h, d), "
                                            "e.g. 250ms or 5m");
                *(uint64_t *)field = number;
                return 0;

        case CONFIG_VALUE_SIZE:
                r = parse_size(value, &number);
                if (r == -ERANGE)
                        return reject_value(ret_reason, "the size is too large");
                if (r < 0)
                        return reject_value(ret_reason,
                                            "expected a number of bytes, optionally with a unit "
                                            "K, M, G or T (powers of 1024), e.g. 4096 or 64M");
                *(uint64_t *)field = number;
                return 0;

        case CONFIG_VALUE_COUNT:
                return apply_number(value, 0, UINT64_MAX, (uint64_t *)field, ret_reason);

        case CONFIG_VALUE_CAPABILITIES:
                if (parse_capability_list(value, (uint64_t *)field) < 0)
                        return reject_value(ret_reason, "expected capability names such as "
                                                        "cap_chown,cap_net_bind_service, or all");
                return 0;

        case CONFIG_VALUE_MAX_RESTARTS:
                r = apply_number(value, 1, UINT_MAX, &number, ret_reason);
                if (r < 0)
                        return r;
                *(unsigned *)field = (unsigned)number;
                return 0;

        case CONFIG_VALUE_FLAG:
                if (!streq(value, "true") && !streq(value, "false"))
                        return reject_value(ret_reason, "expected true or false");
                *(bool *)field = streq(value, "true");
                return 0;

        case CONFIG_VALUE_LOG_LEVEL:
                for (size_t i = 0; i < ARRAY_SIZE(log_levels); i++)
                        if (streq(value, log_levels[i].name)) {
                                *(int *)field = log_levels[i].level;
                                return 0;
                        }
                return reject_value(ret_reason,
                                    "expected error, warning, notice, info or debug");

        case CONFIG_VALUE_LABEL_RULES:
                return append_label_rule(config, value, ret_reason);

        case CONFIG_VALUE_LISTEN_ADDRESSES:
                r = check_listen_address(value, ret_reason);
                if (r < 0)
                        return r;
                return append_string(&config->listen, &config->n_listen, value);

        case CONFIG_VALUE_REPORT_URLS:
                r = check_report_url(value, ret_reason);
                if (r < 0)
                        return r;
                return append_string(&config->report_urls, &config->n_report_urls, value);
        }

        return reject_value(ret_reason, "the setting has no parser");
}

int config_apply_setting(struct config *config, const struct config_setting *setting,
                         const char *value, const char *origin, char **ret_error)
{
        _cleanup_free_ char *reason = NULL;
        char quoted[256];
        int r;

        r = apply_value(config, setting, value, &reason);
        if (r < 0) {
                *ret_error = xasprintf("invalid %s %s for %s: %s", setting->value_noun,
                                       log_quote(value, quoted, sizeof(quoted)), origin, reason);
                return r;
        }

        return 0;
}

static const char *describe_json_type(json_type type)
{
        switch (type) {
        case json_type_null:
                return "null";
        case json_type_boolean:
                return "a boolean";
        case json_type_double:
                return "a floating-point number";
        case json_type_int:
                return "an integer";
        case json_type_object:
                return "an object";
        case json_type_array:
                return "an array";
        case json_type_string:
                return "a string";
        }
        return "a value of unknown type";
}

static const char *describe_expected_json_type(const struct config_setting *setting)
{
        if (config_setting_is_repeatable(setting))
                return "an array of strings";

        switch (setting->type) {
        case CONFIG_VALUE_SIZE:
                return "a string or an integer";
        case CONFIG_VALUE_COUNT:
        case CONFIG_VALUE_MAX_RESTARTS:
                return "an integer";
        case CONFIG_VALUE_FLAG:
                return "true or false";
        default:
                return "a string";
        }
}

static bool json_type_fits(const struct config_setting *setting, json_type type)
{
        switch (setting->type) {
        case CONFIG_VALUE_SIZE:
                return type == json_type_string || type == json_type_int;
        case CONFIG_VALUE_COUNT:
        case CONFIG_VALUE_MAX_RESTARTS:
                return type == json_type_int;
        case CONFIG_VALUE_FLAG:
                return type == json_type_boolean;
        default:
                /* Repeatable settings reach here for their array items. */
                return type == json_type_string;
        }
}

/* Apply one JSON scalar, named by origin in messages. */
static int apply_json_scalar(struct config *config, const struct config_setting *setting,
                             json_object *value, const char *origin, char **ret_error)
{
        json_type type = json_object_get_type(value);
        const char *text;

        if (!json_type_fits(setting, type)) {
                *ret_error = xasprintf("invalid type for %s: expected %s, got %s", origin,
                                       config_setting_is_repeatable(setting)
                                               ? "a string"
                                               : describe_expected_json_type(setting),
                                       describe_json_type(type));
                return -EINVAL;
        }

        switch (type) {
        case json_type_string:
                text = json_object_get_string(value);
                if (strlen(text) != (size_t)json_object_get_string_len(value)) {
                        *ret_error = xasprintf("invalid %s for %s: the string contains a NUL "
                                               "character",
                                               setting->value_noun, origin);
                        return -EINVAL;
                }
                break;
        case json_type_boolean:
                text = json_object_get_boolean(value) ? "true" : "false";
                break;
        default:
                /* An integer, printed in decimal with its sign, for the same
                 * parser that command line values go through. */
                text = json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN);
                break;
        }

        return config_apply_setting(config, setting, text, origin, ret_error);
}

static int apply_json_value(struct config *config, const struct config_setting *setting,
                            json_object *value, const char *path, char **ret_error)
{
        _cleanup_free_ char *origin = xasprintf("\"%s\" in %s", setting->name, path);
        size_t n;
        int r;

        if (!config_setting_is_repeatable(setting))
                return apply_json_scalar(config, setting, value, origin, ret_error);

        if (!json_object_is_type(value, json_type_array)) {
                *ret_error = xasprintf("invalid type for %s: expected %s, got %s", origin,
                                       describe_expected_json_type(setting),
                                       describe_json_type(json_object_get_type(value)));
                return -EINVAL;
        }

        config_clear_setting(config, setting);

        n = json_object_array_length(value);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *item_origin =
                        xasprintf("\"%s\"[%zu] in %s", setting->name, i, path);

                r = apply_json_scalar(config, setting, json_object_array_get_idx(value, i),
                                      item_origin, ret_error);
                if (r < 0)
                        return r;
        }

        return 0;
}

static void locate_offset(const char *data, size_t offset, unsigned *ret_line,
                          unsigned *ret_column)
{
        unsigned line = 1, column = 1;

        for (size_t i = 0; i < offset; i++) {
                if (data[i] == '\n') {
                        line++;
                        column = 1;
                } else
                        column++;
        }

        *ret_line = line;
        *ret_column = column;
}

static int parse_json_object(const char *data, size_t size, const char *path,
                             json_object **ret_object, char **ret_error)
{
        _cleanup_(json_tokener_freep) json_tokener *tokener = NULL;
        _cleanup_(json_object_putp) json_object *object = NULL;
        enum json_tokener_error error;
        unsigned line, column;

        tokener = json_tokener_new();
        if (!tokener)
                abort();
        /* Strict mode also rejects comments, single quotes and text after the object. */
        json_tokener_set_flags(tokener, JSON_TOKENER_STRICT);

        object = json_tokener_parse_ex(tokener, data, (int)size);
        error = json_tokener_get_error(tokener);

        if (error == json_tokener_continue) {
                locate_offset(data, size, &line, &column);
                *ret_error = xasprintf("config file %s is not valid JSON: the file ends at line %u "
                                       "before the JSON value is complete",
                                       path, line);
                return -EINVAL;
        }
        if (error != json_tokener_success) {
                locate_offset(data, json_tokener_get_parse_end(tokener), &line, &column);
                *ret_error = xasprintf("config file %s is not valid JSON: %s at line %u, column %u",
                                       path, json_tokener_error_desc(error), line, column);
                return -EINVAL;
        }

        if (!json_object_is_type(object, json_type_object)) {
                *ret_error = xasprintf("config file %s must contain a JSON object such as "
                                       "{\"log-level\": \"debug\"}, not %s",
                                       path, describe_json_type(json_object_get_type(object)));
                return -EINVAL;
        }

        *ret_object = TAKE_PTR(object);
        return 0;
}

/* Join directory and path, unless path is absolute, and drop empty and "."
 * components. ".." stays: resolving it without the file system could walk
 * back across a symlink to the wrong directory. */
static char *join_absolute_path(const char *directory, const char *path)
{
        _cleanup_free_ char *joined = NULL;
        char *result, *component, *saveptr = NULL;
        size_t length = 0;

        joined = path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", directory, path);
        result = xmalloc(strlen(joined) + 2);

        for (component = strtok_r(joined, "/", &saveptr); component;
             component = strtok_r(NULL, "/", &saveptr)) {
                size_t component_length = strlen(component);

                if (streq(component, "."))
                        continue;
                result[length++] = '/';
                memcpy(result + length, component, component_length);
                length += component_length;
        }

        if (length == 0)
                result[length++] = '/';
        result[length] = '\0';
        return result;
}

/* The current directory, fetched the first time a relative path needs it, so
 * that a start from a deleted directory fails only when it matters. */
struct working_directory {
        char *path;
        int error; /* negative errno of getcwd(), 0 before the first attempt */
};

static void working_directory_done(struct working_directory *cwd)
{
        free(cwd->path);
}

static int make_path_absolute(struct working_directory *cwd, char **path, const char *option_name,
                              char **ret_error)
{
        char *absolute;

        if (!*path)
                return 0;

        if ((*path)[0] != '/' && !cwd->path) {
                if (cwd->error == 0) {
                        cwd->path = getcwd(NULL, 0);
                        if (!cwd->path)
                                cwd->error = negative_errno();
                }
                if (!cwd->path) {
                        *ret_error = xasprintf("failed to get the current directory to make "
                                               "the relative path \"%s\" for %s absolute: %s",
                                               *path, option_name, strerror(-cwd->error));
                        return cwd->error;
                }
        }

        absolute = join_absolute_path(cwd->path ? cwd->path : "", *path);
        free(*path);
        *path = absolute;
        return 0;
}

int config_load_file_for(struct config *config, const char *path, unsigned command,
                         char **ret_error)
{
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_(working_directory_done) struct working_directory cwd = {};
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_file_at(AT_FDCWD, path, CONFIG_FILE_SIZE_MAX, &data, &size);
        if (r == -EFBIG) {
                *ret_error = xasprintf("config file %s is larger than the maximum of %d bytes",
                                       path, CONFIG_FILE_SIZE_MAX);
                return r;
        }
        if (r < 0) {
                *ret_error = xasprintf("failed to read config file %s: %s", path, strerror(-r));
                return r;
        }

        if (size == 0) {
                *ret_error = xasprintf("config file %s is empty: write {} for a file that sets "
                                       "nothing",
                                       path);
                return -EINVAL;
        }

        r = parse_json_object(data, size, path, &root, ret_error);
        if (r < 0)
                return r;

        json_object_object_foreach(root, key, value)
        {
                const struct config_setting *setting = config_setting_find(key);
                char quoted[256];

                if (!setting) {
                        *ret_error = xasprintf("unknown key %s in config file %s: the keys are "
                                               "the long option names of \"execvisor run "
                                               "--help\" without the leading dashes",
                                               log_quote(key, quoted, sizeof(quoted)), path);
                        return -EINVAL;
                }

                /* A shared file may hold the daemon's settings too. */
                if (!(setting->commands & command))
                        continue;

                r = apply_json_value(config, setting, value, path, ret_error);
                if (r < 0)
                        return r;
        }

        free(config->config_file);
        config->config_file = xstrdup(path);
        return make_path_absolute(&cwd, &config->config_file, "--config", ret_error);
}

int config_load_file(struct config *config, const char *path, char **ret_error)
{
        return config_load_file_for(config, path, CONFIG_COMMAND_RUN, ret_error);
}

/* Make the socket path of a "unix:PATH" listen address, or of a
 * "unix:PATH:/URL-PATH" report URL when has_url_path, absolute and check that
 * it fits a sockaddr_un. Other addresses stay as they are. */
static int make_unix_address_absolute(struct working_directory *cwd, char **address,
                                      bool has_url_path, const char *option_name,
                                      char **ret_error)
{
        _cleanup_free_ char *path = NULL;
        const char *path_start, *path_end;
        char quoted[256];
        char *rewritten;
        int r;

        if (!startswith(*address, "unix:"))
                return 0;

        path_start = *address + strlen("unix:");
        path_end = has_url_path ? strstr(path_start, ":/") : path_start + strlen(path_start);
        if (!path_end)
                abort(); /* check_report_url() accepted no such URL */

        path = strndup(path_start, (size_t)(path_end - path_start));
        if (!path)
                abort();

        r = make_path_absolute(cwd, &path, option_name, ret_error);
        if (r < 0)
                return r;

        if (strlen(path) > SOCKET_PATH_MAX) {
                *ret_error = xasprintf("invalid address %s for %s: the socket path %s is longer "
                                       "than the 107 bytes that a unix socket address holds",
                                       log_quote(*address, quoted, sizeof(quoted)), option_name,
                                       path);
                return -EINVAL;
        }

        rewritten = xasprintf("unix:%s%s", path, path_end);
        free(*address);
        *address = rewritten;
        return 0;
}

static int make_paths_absolute(struct config *config, struct working_directory *cwd,
                               char **ret_error)
{
        int r;

        for (size_t i = 0; i < config_n_settings; i++) {
                const struct config_setting *setting = &config_settings[i];
                _cleanup_free_ char *option_name = NULL;

                if (setting->type != CONFIG_VALUE_PATH)
                        continue;

                option_name = xasprintf("--%s", setting->name);
                r = make_path_absolute(cwd, (char **)((char *)config + setting->offset),
                                       option_name, ret_error);
                if (r < 0)
                        return r;
        }

        return 0;
}

static int make_addresses_absolute(struct config *config, struct working_directory *cwd,
                                   char **ret_error)
{
        int r;

        for (size_t i = 0; i < config->n_listen; i++) {
                r = make_unix_address_absolute(cwd, &config->listen[i], false, "--listen",
                                               ret_error);
                if (r < 0)
                        return r;

                for (size_t j = 0; j < i; j++)
                        if (streq(config->listen[i], config->listen[j])) {
                                *ret_error = xasprintf("--listen %s is given twice",
                                                       config->listen[i]);
                                return -EINVAL;
                        }
        }

        for (size_t i = 0; i < config->n_report_urls; i++) {
                r = make_unix_address_absolute(cwd, &config->report_urls[i], true,
                                               "--report-url", ret_error);
                if (r < 0)
                        return r;
        }

        return 0;
}

static void fill_in_defaults(struct config *config)
{
        struct label_rule rule;

        if (config->n_select_labels == 0) {
                if (parse_label_rule(CONFIG_DEFAULT_SELECT_LABEL, &rule) < 0)
                        abort();
                config->select_labels = grow_array(config->select_labels, 0, sizeof(rule));
                config->select_labels[config->n_select_labels++] = rule;
        }

        if (config->n_listen == 0) {
                config->listen = grow_array(config->listen, 0, sizeof(char *));
                config->listen[config->n_listen++] = xasprintf(
                        "unix:%s/%s", config->state_dir, CONFIG_DEFAULT_LISTEN_SOCKET_NAME);
        }

        if (!config->audit_log)
                config->audit_log =
                        xasprintf("%s/%s", config->log_dir, CONFIG_DEFAULT_AUDIT_LOG_NAME);
}

/* Print usec as "1h30m", "250ms" or "0" into buffer. */
static const char *format_duration(uint64_t usec, char *buffer, size_t size)
{
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "d", USEC_PER_DAY },    { "h", USEC_PER_HOUR }, { "m", USEC_PER_MINUTE },
                { "s", USEC_PER_SEC },    { "ms", USEC_PER_MSEC }, { "us", 1 },
        };
        size_t length = 0;

        if (usec == 0) {
                snprintf(buffer, size, "0");
                return buffer;
        }

        buffer[0] = '\0';
        for (size_t i = 0; i < ARRAY_SIZE(units) && length < size; i++) {
                if (usec < units[i].usec)
                        continue;
                length += (size_t)snprintf(buffer + length, size - length, "%" PRIu64 "%s",
                                           usec / units[i].usec, units[i].suffix);
                usec %= units[i].usec;
        }
        return buffer;
}

static int check_relations(const struct config *config, char **ret_error)
{
        char minimum[64], maximum[64];

        if (config->restart_backoff_min_usec > config->restart_backoff_max_usec) {
                format_duration(config->restart_backoff_min_usec, minimum, sizeof(minimum));
                format_duration(config->restart_backoff_max_usec, maximum, sizeof(maximum));
                *ret_error = xasprintf("restart-backoff-min (%s) must not be longer than "
                                       "restart-backoff-max (%s)",
                                       minimum, maximum);
                return -EINVAL;
        }

        if (config->max_restarts < 1) {
                *ret_error = xstrdup("max-restarts must be at least 1");
                return -EINVAL;
        }

        /* With an empty window no exit would ever count, so a crashing agent
         * would be restarted forever. */
        if (config->restart_window_usec == 0) {
                *ret_error = xstrdup("restart-window must be longer than 0");
                return -EINVAL;
        }

        if (config->audit_max_size == 0) {
                *ret_error = xstrdup("audit-max-size must be larger than 0");
                return -EINVAL;
        }

        return 0;
}

int config_finalize(struct config *config, char **ret_error)
{
        _cleanup_(working_directory_done) struct working_directory cwd = {};
        int r;

        r = make_paths_absolute(config, &cwd, ret_error);
        if (r < 0)
                return r;

        /* The default endpoint socket lives in the state directory, so a
         * long --state-dir is what to shorten. */
        if (config->n_listen == 0 &&
            strlen(config->state_dir) + 1 + strlen(CONFIG_DEFAULT_LISTEN_SOCKET_NAME) > SOCKET_PATH_MAX) {
                *ret_error = xasprintf("the endpoint socket %s/%s would be longer than the %zu bytes that a "
                                       "unix socket address holds; use a shorter --state-dir, or give "
                                       "--listen unix:PATH",
                                       config->state_dir, CONFIG_DEFAULT_LISTEN_SOCKET_NAME,
                                       (size_t)SOCKET_PATH_MAX);
                return -EINVAL;
        }

        fill_in_defaults(config);

        r = make_addresses_absolute(config, &cwd, ret_error);
        if (r < 0)
                return r;

        return check_relations(config, ret_error);
}
