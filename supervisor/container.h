#pragma once

/* The supervised containers and the state of the agent in each: the records
 * that `execvisor status`, the task metadata endpoint, pushed reports and the
 * audit log all read. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#define CONTAINER_ID_MAX 64
#define AGENT_REASON_MAX 512
#define AGENT_NAME "ExecuteCommandAgent"

enum agent_state {
        AGENT_PENDING,
        AGENT_RUNNING,
        AGENT_STOPPED,
};

/* A change of a container's agent record; each change is one event. */
enum container_event {
        CONTAINER_EVENT_INJECTED, /* bundle mounted, agent started for the first time */
        CONTAINER_EVENT_STARTED,  /* agent started again after an exit */
        CONTAINER_EVENT_EXITED,   /* agent exited, a restart is pending */
        CONTAINER_EVENT_STOPPED,  /* agent stopped for good, with the cause in reason */
        CONTAINER_EVENT_ADOPTED,  /* running agent taken over after a supervisor restart */
        CONTAINER_EVENT_FORGOTTEN, /* record removed after --forget-after */
};

struct agent_status {
        enum agent_state state;
        char reason[AGENT_REASON_MAX];
        uint64_t last_started_usec; /* CLOCK_REALTIME, 0 if never started */
        unsigned restart_count;
        pid_t pid; /* host pid of the agent, 0 when none runs */
        char version[64];
        int last_exit_status; /* as from waitid(): code or signal, see last_exit_signaled */
        bool last_exit_signaled;
        /* Last line the agent printed, as untrusted text. */
        char last_output_line[256];
};

struct container {
        char id[CONTAINER_ID_MAX + 1];
        char *name;  /* without the leading '/' */
        char *image;
        json_object *labels; /* object of strings, owned */
        uint64_t created_usec;
        uint64_t started_usec;
        bool running; /* the container itself */

        struct agent_status agent;
        /* Rises by one with every event of this container; survives restarts
         * of the supervisor through the state file. */
        uint64_t sequence;
        uint64_t injection_usec; /* how long the last injection took */

        struct container *next;
        void *private; /* supervision data of the daemon */
};

const char *agent_state_to_string(enum agent_state state);
const char *container_event_to_string(enum container_event event);

/* The label value or NULL. */
const char *container_label(const struct container *container, const char *key);

/* The supervised containers, newest first. */
struct container *container_list(void);
/* Add a record to the list (it must not be in it yet) or take it out. */
void container_register(struct container *container);
void container_unregister(struct container *container);
/* Find by full id or a unique prefix of at least one character.
 * Returns -ENOENT for none, -EEXIST for an ambiguous prefix. */
int container_find(const char *id_or_prefix, struct container **ret_container);

typedef void (*container_observer_fn)(const struct container *container,
                                      enum container_event event, void *userdata);
/* Register fn to be called after every event of every container. */
void container_add_observer(container_observer_fn fn, void *userdata);
void container_notify(const struct container *container, enum container_event event);

/* The ManagedAgents entry of a container, as in the task metadata v4 format. */
json_object *container_agent_to_json(const struct container *container);
/* The record of `execvisor status --json` and GET /v1/agents. */
json_object *container_status_to_json(const struct container *container);
