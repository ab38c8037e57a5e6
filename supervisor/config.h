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

struct label_rule {
        char *key;
        char *value;
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

        /* "unix:PATH" or "tcp:127.0.0.1:PORT"; empty means <state-dir>/tmde.sock. */
        char **listen;
        size_t n_listen;

        char **report_urls;
        size_t n_report_urls;
        char *report_ca_file;

        char *audit_log; /* NULL means <log-dir>/audit.log */
        uint64_t audit_max_size;

        int log_level;
};

void config_init_defaults(struct config *config);
void config_free(struct config *config);

/* Load a JSON config file into config. Keys are the long option names
 * ("docker-socket", "select-label", ...); repeatable options take arrays. */
int config_load_file(struct config *config, const char *path, char **ret_error);

/* Parse "250ms", "1s", "5m", "1h", "2d" (also "1m30s") into microseconds. */
int parse_duration(const char *text, uint64_t *ret_usec);
/* Parse "64M", "1G", "4096" (bytes; K, M, G are powers of 1024). */
int parse_size(const char *text, uint64_t *ret_bytes);
/* Parse "KEY=VALUE" (VALUE may be empty, "KEY" alone matches any value). */
int parse_label_rule(const char *text, struct label_rule *ret_rule);
