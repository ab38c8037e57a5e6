#include "supervisor/endpoint_docs.h"

#include "supervisor/util.h"

static const char *known_status(bool running)
{
        return running ? "RUNNING" : "STOPPED";
}

static void add_string(json_object *object, const char *key, const char *value)
{
        json_object_object_add(object, key, json_object_new_string(value ? value : ""));
}

static void add_time(json_object *object, const char *key, uint64_t realtime_usec)
{
        char buffer[32];

        if (realtime_usec == 0)
                return;
        add_string(object, key, format_rfc3339(realtime_usec, buffer, sizeof(buffer)));
}

json_object *endpoint_container_document(const struct container *container)
{
        const char *ecs_name = container_label(container, ECS_LABEL_CONTAINER_NAME);
        json_object *document = json_object_new_object();
        json_object *agents = json_object_new_array();
        json_object *labels;

        add_string(document, "DockerId", container->id);
        add_string(document, "Name", ecs_name ? ecs_name : container->name);
        add_string(document, "DockerName", container->name);
        add_string(document, "Image", container->image);

        /* Shared by reference count rather than copied. The endpoint
         * serialises and releases the document before the loop can change
         * the container again. */
        if (container->labels && json_object_is_type(container->labels, json_type_object))
                labels = json_object_get(container->labels);
        else
                labels = json_object_new_object();
        json_object_object_add(document, "Labels", labels);

        add_string(document, "KnownStatus", known_status(container->running));
        add_time(document, "CreatedAt", container->created_usec);
        add_time(document, "StartedAt", container->started_usec);

        json_object_array_add(agents, container_agent_to_json(container));
        json_object_object_add(document, "ManagedAgents", agents);
        return document;
}

static bool same_task(const struct container *container, const char *task_arn)
{
        const char *arn = container_label(container, ECS_LABEL_TASK_ARN);

        return arn && streq(arn, task_arn);
}

json_object *endpoint_task_document(const struct container *container,
                                    const struct container *containers)
{
        const char *task_arn = container_label(container, ECS_LABEL_TASK_ARN);
        json_object *document = json_object_new_object();
        json_object *members = json_object_new_array();
        bool listed = false, running = false;

        if (task_arn) {
                const char *cluster = container_label(container, ECS_LABEL_CLUSTER);
                const char *family = container_label(container, ECS_LABEL_TASK_FAMILY);
                const char *revision = container_label(container, ECS_LABEL_TASK_REVISION);

                if (cluster)
                        add_string(document, "Cluster", cluster);
                add_string(document, "TaskARN", task_arn);
                if (family)
                        add_string(document, "Family", family);
                if (revision)
                        add_string(document, "Revision", revision);

                for (const struct container *c = containers; c; c = c->next) {
                        if (!same_task(c, task_arn))
                                continue;
                        json_object_array_add(members, endpoint_container_document(c));
                        running = running || c->running;
                        listed = listed || c == container;
                }
        }

        /* A container that is not in the list (it was just forgotten) or that
         * has no task ARN still shows up in its own task. */
        if (!listed) {
                json_object_array_add(members, endpoint_container_document(container));
                running = running || container->running;
        }

        add_string(document, "KnownStatus", known_status(running));
        json_object_object_add(document, "Containers", members);
        return document;
}

json_object *endpoint_agents_document(const struct container *containers)
{
        json_object *array = json_object_new_array();

        for (const struct container *c = containers; c; c = c->next)
                json_object_array_add(array, container_status_to_json(c));
        return array;
}

json_object *endpoint_error_document(unsigned status, const char *message)
{
        json_object *document = json_object_new_object();

        add_string(document, "error", message);
        json_object_object_add(document, "status", json_object_new_int64(status));
        return document;
}
