#pragma once

/* Parsers for the Docker Engine API documents the supervisor reads: the
 * /events stream, the container list, container inspect documents and
 * /version. They depend on their input only, and the Docker client in
 * docker.c does the I/O.
 *
 * Functions that take error and error_size write a message naming the
 * offending field there on failure ("State.Pid is not an integer"). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#define DOCKER_ID_LENGTH 64
/* Bound on one object of the event stream. Docker events are a few hundred
 * bytes plus the container's labels. */
#define DOCKER_EVENT_SIZE_MAX (1024U * 1024U)
/* The API versions this client speaks. The oldest, 1.24, is the minimum of
 * Docker 28, and its events carry Type, Action and Actor (added in 1.22). The
 * newest is a cap, so that a later engine responds in a format known here.
 * Docker 29 rejects versions below 1.44.
 * NOTE: only 1.41 (Docker 20.10) was run against this parser. The cap rests on
 * Docker's API version history, which lists no change up to 1.52 to the fields
 * read here except that Config.Env and Config.Labels may be left out. */
#define DOCKER_API_MAJOR 1
#define DOCKER_API_MINOR_MIN 24
#define DOCKER_API_MINOR_MAX 52

/* One container event. Every pointer borrows from the parsed object and is
 * valid only during the callback that receives the event. */
struct docker_event {
        const char *action; /* "start", "die", "exec_start: sh" ..., as Docker sends it */
        char id[DOCKER_ID_LENGTH + 1];
        const char *name;        /* Actor.Attributes.name, NULL when absent */
        const char *image;       /* Actor.Attributes.image, NULL when absent */
        int exit_code;           /* Actor.Attributes.exitCode, -1 when absent or invalid */
        json_object *attributes; /* Actor.Attributes: labels mixed with name and image */
        uint64_t time_nsec;      /* timeNano, CLOCK_REALTIME */
};

struct container_info {
        char id[DOCKER_ID_LENGTH + 1];
        char *name;          /* without the leading '/' */
        char *image;         /* Config.Image, as the container was created from */
        json_object *labels; /* Config.Labels: an object of strings, owned, never NULL */
        char **env;          /* Config.Env, NULL-terminated */
        size_t n_env;
        bool running;          /* State.Running, true also while paused or restarting */
        bool paused;           /* State.Paused */
        bool restarting;       /* State.Restarting: no init runs, pid is 0 */
        pid_t pid;             /* State.Pid, host pid of the init, 0 when none runs */
        uint64_t started_usec; /* State.StartedAt, CLOCK_REALTIME, 0 if never started */
        uint64_t created_usec; /* Created */
        unsigned restart_count;
        bool privileged;      /* HostConfig.Privileged */
        bool readonly_rootfs; /* HostConfig.ReadonlyRootfs */
        char *userns_mode;    /* HostConfig.UsernsMode: "" or "host", NULL when absent */
        char *cgroupns_mode;  /* HostConfig.CgroupnsMode (API 1.40+), NULL when absent */
        char *runtime;        /* HostConfig.Runtime, NULL when absent */
};

struct docker_version {
        unsigned api_major, api_minor;         /* newest API version of the engine */
        unsigned min_api_major, min_api_minor; /* oldest; 0.0 when the engine omits it */
        char engine[64];                       /* Version, e.g. "20.10.24+dfsg1" */
};

bool docker_id_is_valid(const char *id);

/* Incremental parser of the /events stream: JSON objects one after another,
 * split anywhere across chunks. A malformed or oversized object is reported
 * through on_error and skipped, and parsing goes on: the parser resumes after
 * the newline that Docker writes after each event. Objects that are not
 * container events are dropped. The callbacks must not free the parser. */
struct docker_event_parser;

struct docker_event_parser_callbacks {
        void (*on_event)(void *userdata, const struct docker_event *event);
        /* error is -EBADMSG for malformed input and -EMSGSIZE for an oversized
         * object; message names the cause and the byte offset in the stream. */
        void (*on_error)(void *userdata, int error, const char *message);
};

/* max_event_size 0 means DOCKER_EVENT_SIZE_MAX. */
int docker_event_parser_new(size_t max_event_size,
                            const struct docker_event_parser_callbacks *callbacks, void *userdata,
                            struct docker_event_parser **ret_parser);
void docker_event_parser_free(struct docker_event_parser *parser);
/* Forget a partial object, for a new stream. */
void docker_event_parser_reset(struct docker_event_parser *parser);
void docker_event_parser_feed(struct docker_event_parser *parser, const char *data, size_t size);

/* Convert one parsed object. Returns 1 for a container event, 0 for any
 * other object (another Type, or no Type), -EBADMSG for an invalid one. */
int docker_event_from_json(json_object *object, struct docker_event *ret_event, char *error,
                           size_t error_size);

/* Parse GET /containers/json into the containers' ids: a NULL-terminated
 * array of strings, freed with docker_ids_free(). */
int docker_parse_container_ids(const char *body, size_t size, char ***ret_ids, size_t *ret_count,
                               char *error, size_t error_size);
void docker_ids_free(char **ids);

/* Parse GET /containers/{id}/json. */
int docker_parse_inspect(const char *body, size_t size, struct container_info **ret_info,
                         char *error, size_t error_size);
void container_info_free(struct container_info *info);

static inline void container_info_freep(struct container_info **info)
{
        container_info_free(*info);
}

/* Parse GET /version. */
int docker_parse_version(const char *body, size_t size, struct docker_version *ret_version,
                         char *error, size_t error_size);

/* Choose the API version to speak: the engine's newest, capped at
 * DOCKER_API_MINOR_MAX but never below the engine's oldest. Returns
 * -EPROTONOSUPPORT when the engine cannot speak DOCKER_API_MINOR_MIN. */
int docker_choose_api_version(const struct docker_version *version, unsigned *ret_major,
                              unsigned *ret_minor);

/* The "message" of a Docker error document, or the start of the body when it
 * is not one, copied into buffer. Returns buffer. */
const char *docker_error_message(const char *body, size_t size, char *buffer, size_t buffer_size);

/* Parse an RFC 3339 time as Docker writes it ("2024-05-01T12:34:56.123456789Z",
 * or with a "+02:00" offset) into CLOCK_REALTIME microseconds. Go's zero time
 * ("0001-01-01T00:00:00Z") gives 0; any other time before 1970 is -ERANGE. */
int docker_parse_rfc3339(const char *text, uint64_t *ret_usec);
