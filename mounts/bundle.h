#pragma once

/* The agent bundle on the host, in the layout of an Amazon ECS host's
 * /var/lib/ecs/deps/execute-command:
 *
 *   <bundle_dir>/bin/<version>/amazon-ssm-agent, ssm-agent-worker, ssm-session-worker
 *   <bundle_dir>/certs/tls-ca-bundle.pem
 *
 * and the generated layer that goes beside the binaries in a container: the agent's
 * configuration, its logging configuration, the CA bundle and execvisor's init. */

#include <stdbool.h>

#define BUNDLE_BIN_DIR "bin"
#define BUNDLE_CERTS_FILE "certs/tls-ca-bundle.pem"

#define BUNDLE_AGENT_BINARY "amazon-ssm-agent"
#define BUNDLE_AGENT_WORKER_BINARY "ssm-agent-worker"
#define BUNDLE_SESSION_WORKER_BINARY "ssm-session-worker"

/* Paths inside a generated layer; the SSM agent looks for configuration/ and certs/ beside
 * its own binary. */
#define BUNDLE_LAYER_AGENT_CONFIG "configuration/amazon-ssm-agent.json"
#define BUNDLE_LAYER_LOG_CONFIG "configuration/seelog.xml"
#define BUNDLE_LAYER_CERTS "certs/amazon-ssm-agent.crt"
#define BUNDLE_LAYER_INIT "execvisor-init"

/* Directory in the container where the generated seelog.xml sends the agent's log files. */
#define BUNDLE_AGENT_LOG_DIR "/var/log/amazon/ssm"

/* The SessionWorkersLimit that ECS Exec uses when the task does not set one. */
#define BUNDLE_DEFAULT_SESSION_WORKERS_LIMIT 2u

/* Size of bundle_version.version; a longer directory name is not a valid version. */
#define BUNDLE_VERSION_SIZE 64

struct bundle_version {
        char version[BUNDLE_VERSION_SIZE];
        char *dir;  /* absolute path of <bundle_dir>/bin/<version> */
        int dir_fd; /* that directory, opened without following a symlink */
        /* Entries of bin/ passed over before this version was chosen, each with the reason
         * ("3.3.0: ssm-session-worker missing; \"latest\": not a dotted version number"),
         * or NULL when there were none. */
        char *skipped;
};

/* Initializer that makes bundle_version_done() a no-op on a version never filled. */
#define BUNDLE_VERSION_INIT                                                                        \
        {                                                                                          \
                .dir_fd = -1                                                                       \
        }

/* Picks the newest valid agent version under <bundle_dir>/bin. A version is valid when its
 * directory and its three binaries are reached without following a symlink and each binary is
 * a regular file with an execute bit set. A broken newer version falls back to the next older
 * one.
 *
 * Returns 0 and fills ret_version (release it with bundle_version_done()). On failure returns
 * a negative errno, leaves ret_version untouched and, when ret_error is not NULL, stores a
 * malloc'ed message that names the directory: -ENOENT when bundle_dir or its bin/ is missing,
 * -ENOEXEC when no entry of bin/ is a valid version (the message gives each entry's reason),
 * another errno when a directory cannot be opened or read. */
int bundle_find_version(const char *bundle_dir, struct bundle_version *ret_version,
                        char **ret_error);

/* Frees what bundle_find_version() stored and closes dir_fd. Safe to call twice. */
void bundle_version_done(struct bundle_version *version);

/* Returns true when name is a dotted version number: one or more groups of decimal digits
 * separated by single dots, shorter than BUNDLE_VERSION_SIZE. */
bool bundle_version_is_valid(const char *name);

/* Compares two valid version strings numerically, group by group, so "3.10.0" > "3.9.9".
 * Missing trailing groups count as 0 and leading zeros are ignored, so "3.2" equals "3.2.0"
 * and "3.02". Returns <0, 0 or >0. The result is undefined for invalid strings. */
int bundle_compare_versions(const char *a, const char *b);

/* Generates amazon-ssm-agent.json as ECS writes it for ECS Exec, with the given
 * Mgs.SessionWorkersLimit (the agent accepts 1 or more; bundle_prepare_layer() rejects 0).
 * Returns malloc'ed, pretty-printed JSON ending in a newline. */
char *bundle_generate_agent_json(unsigned session_workers_limit);

/* Generates seelog.xml: the agent logs to its console and to size-rotated
 * amazon-ssm-agent.log and errors.log under BUNDLE_AGENT_LOG_DIR. Returns a malloc'ed string. */
char *bundle_generate_seelog_xml(void);

/* Writes the generated layer for session_workers_limit once and returns its absolute path in
 * ret_layer_dir (malloc'ed). The layer is <views_dir>/<hex SHA-256 of its content>/ with
 * BUNDLE_LAYER_AGENT_CONFIG, BUNDLE_LAYER_LOG_CONFIG, BUNDLE_LAYER_CERTS (a copy of
 * <bundle_dir>/BUNDLE_CERTS_FILE, left out when the bundle has none) and BUNDLE_LAYER_INIT (a
 * copy of init_path). Files are owned by root, mode 0644 (the init 0755); directories 0755.
 *
 * A complete layer under the same name is reused. Otherwise the layer is built and fsync'ed
 * in a temporary sibling directory and renamed into place, so the final name never names a
 * partial layer. A layer whose content does not match its name is swapped out atomically.
 * views_dir is created when missing, but not its parents.
 *
 * The certificate file must be a regular file inside the bundle (a symlink is rejected).
 * ret_has_certs is set to whether the layer contains BUNDLE_LAYER_CERTS, since the agent cannot
 * verify TLS peers without it. Runs as root: the files are chowned to 0:0.
 *
 * On failure returns a negative errno (-EINVAL for a session_workers_limit of 0) and, when
 * ret_error is not NULL, stores a malloc'ed message; the other out-params stay untouched. */
int bundle_prepare_layer(const char *bundle_dir, const char *views_dir, const char *init_path,
                         unsigned session_workers_limit, char **ret_layer_dir, bool *ret_has_certs,
                         char **ret_error);
