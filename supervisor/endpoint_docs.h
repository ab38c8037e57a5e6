#pragma once

/* The JSON documents of the task metadata endpoint. They follow the shapes of
 * the Amazon ECS task metadata endpoint version 4 (container and task
 * responses) where ECS defines a field, so that tools written for ECS can read
 * them. Each builder returns a new object that the caller releases with
 * json_object_put(). */

#include <json-c/json.h>

#include "supervisor/container.h"

/* Docker labels that ECS sets on the containers of a task. */
#define ECS_LABEL_CLUSTER "com.amazonaws.ecs.cluster"
#define ECS_LABEL_CONTAINER_NAME "com.amazonaws.ecs.container-name"
#define ECS_LABEL_TASK_ARN "com.amazonaws.ecs.task-arn"
#define ECS_LABEL_TASK_FAMILY "com.amazonaws.ecs.task-definition-family"
#define ECS_LABEL_TASK_REVISION "com.amazonaws.ecs.task-definition-version"

/* The container document of GET /v4/<id>: DockerId, Name (the ECS container
 * name label, else the Docker name), DockerName, Image, Labels, KnownStatus,
 * CreatedAt and StartedAt (left out while 0) and ManagedAgents. */
json_object *endpoint_container_document(const struct container *container);

/* The task document of GET /v4/<id>/task. A container with a task ARN label
 * belongs to the task of every container in containers (a list linked by
 * ->next) that carries the same ARN. A container without one is a task of
 * its own, with no TaskARN. */
json_object *endpoint_task_document(const struct container *container,
                                    const struct container *containers);

/* The array of GET /v1/agents: container_status_to_json() of each container
 * in containers, in list order. */
json_object *endpoint_agents_document(const struct container *containers);

/* {"error": message, "status": status}, the body of every error response. */
json_object *endpoint_error_document(unsigned status, const char *message);
