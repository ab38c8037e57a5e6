#pragma once

/* Settings of the daemon and of the client subcommands. Each option can be
 * given on the command line or in a JSON config file (--config); the command
 * line wins. Durations are in microseconds, sizes in bytes. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_DOCKER_SOCKET "/var/run/docker.sock"
#define CONFIG_DEFAULT_BUNDLE_DIR "/var/lib/execvisor/deps/execute-command"
#define CONFIG_DEFAULT_STATE_DIR "/run/execvisor"
#define CONFIG_DEFAULT_LOG_DIR "/var/log/execvisor/exec"
#define CONFIG_DEFAULT_SELECT_LABEL "execvisor.enable=true"
/* File names of the defaults for --listen (in the state dir) and --audit-log (in the log dir). */
#define CONFIG_DEFAULT_LISTEN_SOCKET_NAME "tmde.sock"
#define CONFIG_DEFAULT_AUDIT_LOG_NAME "audit.log"

/* Largest config file that config_load_file() reads. */
#define CONFIG_FILE_SIZE_MAX (1024 * 1024)

struct label_rule {
        char *key;
        char *value; /* NULL matches any value */
};

struct config {
        char *docker_socket;
        char *bundle_dir;
        char *state_dir;
        char *log_dir;

        /* A container is selected when it carries every label rule, or always with select_all. */
        struct label_rule *select_labels;
        size_t n_select_labels;
        bool select_all;

        uint64_t restart_backoff_min_usec;
        uint64_t restart_backoff_max_usec;
        unsigned max_restarts;
        uint64_t restart_window_usec;
        uint64_t forget_after_usec;
        bool stop_agents_on_exit;
        uint64_t stop_grace_usec;

        /* 0 means no cap. */
        uint64_t agent_memory_max;
        uint64_t agent_pids_max;
        /* Capabilities the agent may keep, as a bit mask; the agent gets this
         * set intersected with the bounding set of the container's init. */
        uint64_t agent_capabilities;

        /* "unix:PATH" or "tcp:127.0.0.1:PORT"; empty means <state-dir>/tmde.sock.
         * config_finalize() fills in that default. */
        char **listen;
        size_t n_listen;

        /* "http://...", "https://..." or "unix:PATH:/URL-PATH". */
        char **report_urls;
        size_t n_report_urls;
        char *report_ca_file; /* NULL means the system's CA certificates */

        char *audit_log; /* NULL means <log-dir>/audit.log; config_finalize() fills it in */
        uint64_t audit_max_size;

        int log_level; /* LOG_ERR ... LOG_DEBUG */

        char *config_file; /* absolute path of the file loaded with --config, or NULL */
};

void config_init_defaults(struct config *config);
void config_free(struct config *config);

/* The commands that a setting applies to, as a bit mask. */
#define CONFIG_COMMAND_RUN (1u << 0)
#define CONFIG_COMMAND_STATUS (1u << 1)

/* Kind of a setting's value, which decides its syntax and the field that stores it. */
enum config_value_type {
        CONFIG_VALUE_PATH,
        CONFIG_VALUE_DURATION,
        CONFIG_VALUE_SIZE,
        CONFIG_VALUE_COUNT, /* uint64_t */
        CONFIG_VALUE_MAX_RESTARTS,
        CONFIG_VALUE_FLAG,
        CONFIG_VALUE_LOG_LEVEL,
        CONFIG_VALUE_CAPABILITIES, /* uint64_t mask, from a libcap name list or "all" */
        /* The repeatable ones: */
        CONFIG_VALUE_LABEL_RULES,
        CONFIG_VALUE_LISTEN_ADDRESSES,
        CONFIG_VALUE_REPORT_URLS,
};

/* One setting: the long option --NAME and the config file key "NAME". */
struct config_setting {
        const char *name;
        const char *argument;     /* placeholder in the usage text; NULL for a flag */
        const char *value_noun;   /* "duration", "size", ... for error messages */
        const char *help;         /* what it sets and in which unit */
        const char *default_text; /* NULL when there is no default */
        unsigned commands;        /* CONFIG_COMMAND_* mask */
        enum config_value_type type;
        size_t offset; /* of the field in struct config, for the types that are not repeatable */
};

extern const struct config_setting config_settings[];
extern const size_t config_n_settings;

const struct config_setting *config_setting_find(const char *name);
bool config_setting_is_repeatable(const struct config_setting *setting);

/* Empty a repeatable setting, so that the command line can replace the list
 * that the config file set. */
void config_clear_setting(struct config *config, const struct config_setting *setting);

/* Parse value and store it in one setting; a repeatable setting appends it.
 * A flag takes "true" or "false". origin names where the value came from
 * ("--stop-grace", or "\"stop-grace\" in /etc/execvisor.json") and goes into
 * the error message, which is returned in *ret_error on failure (-EINVAL). */
int config_apply_setting(struct config *config, const struct config_setting *setting,
                         const char *value, const char *origin, char **ret_error);

/* Load a JSON config file into config. Keys are the long option names
 * ("docker-socket", "select-label", ...); repeatable options take arrays,
 * which replace what config held. Keys of settings that do not apply to
 * command (a CONFIG_COMMAND_* bit) are skipped; unknown keys are an error.
 * Sets config->config_file. On failure, config may hold part of the file. */
int config_load_file_for(struct config *config, const char *path, unsigned command,
                         char **ret_error);
/* config_load_file_for() for the run command. */
int config_load_file(struct config *config, const char *path, char **ret_error);

/* Complete config after everything was applied: make every path absolute
 * against the current directory, fill in the defaults that depend on other
 * settings (select label, listen address, audit log), and check the relations
 * between settings. Returns -EINVAL with a message in *ret_error when
 * settings contradict each other or a path does not fit a unix socket address. */
int config_finalize(struct config *config, char **ret_error);

/* Parse "250ms", "1s", "5m", "1h", "2d" (also "1m30s") into microseconds.
 * A unit is required except for "0". Returns -ERANGE on overflow, -EINVAL otherwise. */
int parse_duration(const char *text, uint64_t *ret_usec);
/* Parse "64M", "1G", "4096" (bytes; K, M, G, T are powers of 1024). */
int parse_size(const char *text, uint64_t *ret_bytes);
/* Parse "KEY=VALUE" (VALUE may be empty, "KEY" alone matches any value). */
int parse_label_rule(const char *text, struct label_rule *ret_rule);
void label_rule_done(struct label_rule *rule);

/* Check a --listen address: "unix:PATH", "tcp:IPV4:PORT" or "tcp:[IPV6]:PORT",
 * where the IP address must be loopback (127.0.0.0/8 or ::1). On failure,
 * returns -EINVAL and stores the reason in *ret_reason. */
int check_listen_address(const char *text, char **ret_reason);
/* Check a --report-url: "http://HOST...", "https://HOST..." or "unix:PATH:/URL-PATH". */
int check_report_url(const char *text, char **ret_reason);
