/* The pure parts of the container model: names of states and events, label
 * lookup and the JSON records that the endpoint, `execvisor status` and the
 * reports share. Nothing here reads or changes the list of containers. */

#include "supervisor/container.h"

#include "supervisor/util.h"

const char *agent_state_to_string(enum agent_state state)
{
        switch (state) {
        case AGENT_PENDING:
                return "PENDING";
        case AGENT_RUNNING:
                return "RUNNING";
        case AGENT_STOPPED:
                return "STOPPED";
        }
        return "UNKNOWN";
}

const char *container_event_to_string(enum container_event event)
{
        switch (event) {
        case CONTAINER_EVENT_INJECTED:
                return "injected";
        case CONTAINER_EVENT_STARTED:
                return "started";
        case CONTAINER_EVENT_EXITED:
                return "exited";
        case CONTAINER_EVENT_STOPPED:
                return "stopped";
        case CONTAINER_EVENT_ADOPTED:
                return "adopted";
        case CONTAINER_EVENT_FORGOTTEN:
                return "forgotten";
        }
        return "unknown";
}

const char *container_label(const struct container *container, const char *key)
{
        json_object *value;

        if (!container->labels || !json_object_is_type(container->labels, json_type_object))
                return NULL;
        if (!json_object_object_get_ex(container->labels, key, &value))
                return NULL;
        if (!json_object_is_type(value, json_type_string))
                return NULL;
        return json_object_get_string(value);
}

/* The fixed-size text fields of struct agent_status, read without trusting
 * that the writer left a NUL in them. */
static json_object *json_string_from_array(const char *array, size_t size)
{
        return json_object_new_string_len(array, (int)strnlen(array, size));
}

static json_object *json_time_or_null(uint64_t realtime_usec)
{
        char buffer[32];

        if (realtime_usec == 0)
                return NULL;
        return json_object_new_string(format_rfc3339(realtime_usec, buffer, sizeof(buffer)));
}

/* The ECS ManagedAgent record, in the capitalised key style of task metadata
 * v4 documents, plus RestartCount, Pid and Version, which ECS does not have.
 * LastStartedAt, Reason and Version are left out while they have no value,
 * as ECS leaves out fields it does not know. */
json_object *container_agent_to_json(const struct container *container)
{
        const struct agent_status *agent = &container->agent;
        json_object *object = json_object_new_object();

        json_object_object_add(object, "Name", json_object_new_string(AGENT_NAME));
        json_object_object_add(object, "LastStatus",
                               json_object_new_string(agent_state_to_string(agent->state)));
        if (agent->last_started_usec != 0)
                json_object_object_add(object, "LastStartedAt",
                                       json_time_or_null(agent->last_started_usec));
        if (agent->reason[0] != '\0')
                json_object_object_add(
                    object, "Reason", json_string_from_array(agent->reason, sizeof(agent->reason)));
        json_object_object_add(object, "RestartCount",
                               json_object_new_uint64(agent->restart_count));
        json_object_object_add(object, "Pid", json_object_new_int64(agent->pid));
        if (agent->version[0] != '\0')
                json_object_object_add(
                    object, "Version",
                    json_string_from_array(agent->version, sizeof(agent->version)));
        return object;
}

/* Every key is always present, so that clients can read the record without
 * checks. An empty Reason or Version is "", a missing LastStartedAt is null
 * and Pid is 0 while no agent runs. */
json_object *container_status_to_json(const struct container *container)
{
        const struct agent_status *agent = &container->agent;
        json_object *object = json_object_new_object();

        json_object_object_add(object, "ContainerId", json_object_new_string(container->id));
        json_object_object_add(object, "ContainerName",
                               json_object_new_string(container->name ? container->name : ""));
        json_object_object_add(object, "LastStatus",
                               json_object_new_string(agent_state_to_string(agent->state)));
        json_object_object_add(object, "Reason",
                               json_string_from_array(agent->reason, sizeof(agent->reason)));
        json_object_object_add(object, "LastStartedAt",
                               json_time_or_null(agent->last_started_usec));
        json_object_object_add(object, "RestartCount",
                               json_object_new_uint64(agent->restart_count));
        json_object_object_add(object, "Pid", json_object_new_int64(agent->pid));
        json_object_object_add(object, "Version",
                               json_string_from_array(agent->version, sizeof(agent->version)));
        return object;
}
