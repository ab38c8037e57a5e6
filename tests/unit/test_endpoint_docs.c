#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/json_assert.h"

#include "supervisor/container.h"
#include "supervisor/endpoint_docs.h"

#define TASK_ARN "arn:aws:ecs:us-west-2:111122223333:task/default/8f03e412"
#define OTHER_TASK_ARN "arn:aws:ecs:us-west-2:111122223333:task/default/0c1d2e3f"

/* 2026-01-01T00:00:00Z in microseconds since the epoch. */
#define JAN_1_2026_USEC 1767225600000000ULL

static void init_container(struct container *container, const char *id, const char *name,
                           const char *labels_json)
{
        memset(container, 0, sizeof(*container));
        strcpy(container->id, id);
        container->name = (char *)name;
        container->image = (char *)"registry.example/shop/web:1.4";
        container->labels = labels_json ? json_tokener_parse(labels_json) : NULL;
        if (labels_json)
                assert_non_null(container->labels);
        container->created_usec = JAN_1_2026_USEC;
        container->started_usec = JAN_1_2026_USEC + 1500000;
        container->running = true;
        container->agent.state = AGENT_RUNNING;
        container->agent.last_started_usec = JAN_1_2026_USEC + 61123000;
        container->agent.restart_count = 2;
        container->agent.pid = 4242;
        strcpy(container->agent.version, "3.3.40.0");
}

static void release_container(struct container *container)
{
        json_object_put(container->labels);
}

static bool has_key(json_object *object, const char *key)
{
        return json_object_object_get_ex(object, key, NULL);
}

static void container_document_fields(void **state)
{
        struct container container;
        json_object *document, *labels, *agents;

        init_container(&container, "ea32192c8553fbff06c9340478a2ff08", "ecs-shop-7-web-cca48e8d",
                       "{\"" ECS_LABEL_CONTAINER_NAME "\": \"web\", \"" ECS_LABEL_TASK_ARN
                       "\": \"" TASK_ARN "\", \"team\": \"payments\"}");

        document = endpoint_container_document(&container);

        assert_string_equal(get_string(document, "DockerId"), "ea32192c8553fbff06c9340478a2ff08");
        assert_string_equal(get_string(document, "Name"), "web");
        assert_string_equal(get_string(document, "DockerName"), "ecs-shop-7-web-cca48e8d");
        assert_string_equal(get_string(document, "Image"), "registry.example/shop/web:1.4");
        assert_string_equal(get_string(document, "KnownStatus"), "RUNNING");
        assert_string_equal(get_string(document, "CreatedAt"), "2026-01-01T00:00:00.000Z");
        assert_string_equal(get_string(document, "StartedAt"), "2026-01-01T00:00:01.500Z");

        labels = get_member(document, "Labels");
        assert_true(json_object_is_type(labels, json_type_object));
        assert_int_equal(json_object_object_length(labels), 3);
        assert_string_equal(get_string(labels, "team"), "payments");
        assert_string_equal(get_string(labels, ECS_LABEL_TASK_ARN), TASK_ARN);

        agents = get_member(document, "ManagedAgents");
        assert_true(json_object_is_type(agents, json_type_array));
        assert_int_equal(json_object_array_length(agents), 1);
        assert_string_equal(get_string(json_object_array_get_idx(agents, 0), "Name"),
                            "ExecuteCommandAgent");

        json_object_put(document);
        release_container(&container);
}

static void container_document_without_labels(void **state)
{
        struct container container;
        json_object *document, *labels;

        init_container(&container, "0123456789ab", "plain", NULL);
        container.running = false;
        container.started_usec = 0;

        document = endpoint_container_document(&container);

        /* Without the ECS label the ECS name is the Docker name. */
        assert_string_equal(get_string(document, "Name"), "plain");
        assert_string_equal(get_string(document, "DockerName"), "plain");
        assert_string_equal(get_string(document, "KnownStatus"), "STOPPED");
        assert_true(has_key(document, "CreatedAt"));
        assert_false(has_key(document, "StartedAt"));
        labels = get_member(document, "Labels");
        assert_true(json_object_is_type(labels, json_type_object));
        assert_int_equal(json_object_object_length(labels), 0);

        json_object_put(document);
}

static void agent_record_all_fields(void **state)
{
        struct container container;
        json_object *agent;

        init_container(&container, "0123456789ab", "web", NULL);
        container.agent.state = AGENT_STOPPED;
        strcpy(container.agent.reason, "exited 5 times in 10 min, last with status 1");

        agent = container_agent_to_json(&container);

        assert_int_equal(json_object_object_length(agent), 7);
        assert_string_equal(get_string(agent, "Name"), "ExecuteCommandAgent");
        assert_string_equal(get_string(agent, "LastStatus"), "STOPPED");
        assert_string_equal(get_string(agent, "LastStartedAt"), "2026-01-01T00:01:01.123Z");
        assert_string_equal(get_string(agent, "Reason"),
                            "exited 5 times in 10 min, last with status 1");
        assert_int_equal(get_int(agent, "RestartCount"), 2);
        assert_int_equal(get_int(agent, "Pid"), 4242);
        assert_string_equal(get_string(agent, "Version"), "3.3.40.0");

        json_object_put(agent);
}

static void agent_record_omits_unknown(void **state)
{
        struct container container;
        json_object *agent;

        init_container(&container, "0123456789ab", "web", NULL);
        container.agent.state = AGENT_PENDING;
        container.agent.last_started_usec = 0;
        container.agent.restart_count = 0;
        container.agent.pid = 0;
        container.agent.version[0] = '\0';

        agent = container_agent_to_json(&container);

        assert_string_equal(get_string(agent, "LastStatus"), "PENDING");
        assert_false(has_key(agent, "LastStartedAt"));
        assert_false(has_key(agent, "Reason"));
        assert_false(has_key(agent, "Version"));
        assert_int_equal(get_int(agent, "RestartCount"), 0);
        assert_int_equal(get_int(agent, "Pid"), 0);

        json_object_put(agent);
}

static void agent_reason_without_nul(void **state)
{
        struct container container;
        json_object *agent;

        init_container(&container, "0123456789ab", "web", NULL);
        memset(container.agent.reason, 'r', sizeof(container.agent.reason));

        agent = container_agent_to_json(&container);

        assert_int_equal(strlen(get_string(agent, "Reason")), AGENT_REASON_MAX);
        json_object_put(agent);
}

static void agent_state_names(void **state)
{
        assert_string_equal(agent_state_to_string(AGENT_PENDING), "PENDING");
        assert_string_equal(agent_state_to_string(AGENT_RUNNING), "RUNNING");
        assert_string_equal(agent_state_to_string(AGENT_STOPPED), "STOPPED");
        assert_string_equal(agent_state_to_string((enum agent_state)42), "UNKNOWN");
}

static void container_event_names(void **state)
{
        assert_string_equal(container_event_to_string(CONTAINER_EVENT_INJECTED), "injected");
        assert_string_equal(container_event_to_string(CONTAINER_EVENT_STARTED), "started");
        assert_string_equal(container_event_to_string(CONTAINER_EVENT_EXITED), "exited");
        assert_string_equal(container_event_to_string(CONTAINER_EVENT_STOPPED), "stopped");
        assert_string_equal(container_event_to_string(CONTAINER_EVENT_ADOPTED), "adopted");
        assert_string_equal(container_event_to_string(CONTAINER_EVENT_FORGOTTEN), "forgotten");
}

static void label_lookup(void **state)
{
        struct container container;

        init_container(&container, "0123456789ab", "web",
                       "{\"a\": \"1\", \"empty\": \"\", \"number\": 5}");

        assert_string_equal(container_label(&container, "a"), "1");
        assert_string_equal(container_label(&container, "empty"), "");
        assert_null(container_label(&container, "missing"));
        /* Docker labels are strings, so any other type counts as absent. */
        assert_null(container_label(&container, "number"));
        release_container(&container);

        init_container(&container, "0123456789ab", "web", NULL);
        assert_null(container_label(&container, "a"));
}

/* A list of four containers linked newest first. Two belong to one task, one
 * to another task and one to no task. */
struct fleet {
        struct container web, sidecar, other, plain;
};

static void init_fleet(struct fleet *fleet)
{
        init_container(&fleet->web, "aaaa0001", "ecs-shop-7-web",
                       "{\"" ECS_LABEL_TASK_ARN "\": \"" TASK_ARN "\", \"" ECS_LABEL_CONTAINER_NAME
                       "\": \"web\", \"" ECS_LABEL_TASK_FAMILY
                       "\": \"shop\", \"" ECS_LABEL_TASK_REVISION "\": \"7\", \"" ECS_LABEL_CLUSTER
                       "\": \"default\"}");
        init_container(&fleet->sidecar, "aaaa0002", "ecs-shop-7-sidecar",
                       "{\"" ECS_LABEL_TASK_ARN "\": \"" TASK_ARN "\", \"" ECS_LABEL_CONTAINER_NAME
                       "\": \"sidecar\"}");
        init_container(&fleet->other, "bbbb0001", "ecs-other-1-app",
                       "{\"" ECS_LABEL_TASK_ARN "\": \"" OTHER_TASK_ARN "\"}");
        init_container(&fleet->plain, "cccc0001", "plain", "{}");

        fleet->sidecar.next = &fleet->web;
        fleet->other.next = &fleet->sidecar;
        fleet->plain.next = &fleet->other;
}

static void release_fleet(struct fleet *fleet)
{
        release_container(&fleet->web);
        release_container(&fleet->sidecar);
        release_container(&fleet->other);
        release_container(&fleet->plain);
}

static void task_groups_by_arn(void **state)
{
        struct fleet fleet;
        json_object *task, *members;

        init_fleet(&fleet);
        fleet.web.running = false;

        task = endpoint_task_document(&fleet.web, &fleet.plain);

        assert_string_equal(get_string(task, "TaskARN"), TASK_ARN);
        assert_string_equal(get_string(task, "Family"), "shop");
        assert_string_equal(get_string(task, "Revision"), "7");
        assert_string_equal(get_string(task, "Cluster"), "default");
        /* One running container makes the task running. */
        assert_string_equal(get_string(task, "KnownStatus"), "RUNNING");

        members = get_member(task, "Containers");
        assert_true(json_object_is_type(members, json_type_array));
        assert_int_equal(json_object_array_length(members), 2);
        assert_string_equal(get_string(json_object_array_get_idx(members, 0), "DockerId"),
                            "aaaa0002");
        assert_string_equal(get_string(json_object_array_get_idx(members, 0), "Name"), "sidecar");
        assert_string_equal(get_string(json_object_array_get_idx(members, 1), "DockerId"),
                            "aaaa0001");
        assert_string_equal(get_string(json_object_array_get_idx(members, 1), "KnownStatus"),
                            "STOPPED");

        json_object_put(task);
        release_fleet(&fleet);
}

static void task_of_member_without_family(void **state)
{
        struct fleet fleet;
        json_object *task;

        init_fleet(&fleet);
        fleet.web.running = false;
        fleet.sidecar.running = false;

        /* Family, Revision and Cluster come from the labels of the container
         * asked for, and the sidecar has none of them. */
        task = endpoint_task_document(&fleet.sidecar, &fleet.plain);

        assert_string_equal(get_string(task, "TaskARN"), TASK_ARN);
        assert_false(has_key(task, "Family"));
        assert_false(has_key(task, "Revision"));
        assert_false(has_key(task, "Cluster"));
        assert_string_equal(get_string(task, "KnownStatus"), "STOPPED");
        assert_int_equal(json_object_array_length(get_member(task, "Containers")), 2);

        json_object_put(task);
        release_fleet(&fleet);
}

static void task_without_arn(void **state)
{
        struct fleet fleet;
        json_object *task, *members;

        init_fleet(&fleet);

        task = endpoint_task_document(&fleet.plain, &fleet.plain);

        assert_false(has_key(task, "TaskARN"));
        assert_false(has_key(task, "Family"));
        assert_string_equal(get_string(task, "KnownStatus"), "RUNNING");
        members = get_member(task, "Containers");
        assert_int_equal(json_object_array_length(members), 1);
        assert_string_equal(get_string(json_object_array_get_idx(members, 0), "DockerId"),
                            "cccc0001");

        json_object_put(task);
        release_fleet(&fleet);
}

static void task_of_unlisted_container(void **state)
{
        struct fleet fleet;
        struct container gone;
        json_object *task, *members;

        init_fleet(&fleet);
        init_container(&gone, "aaaa0003", "ecs-shop-7-gone",
                       "{\"" ECS_LABEL_TASK_ARN "\": \"" TASK_ARN "\"}");

        task = endpoint_task_document(&gone, &fleet.plain);

        members = get_member(task, "Containers");
        assert_int_equal(json_object_array_length(members), 3);
        assert_string_equal(get_string(json_object_array_get_idx(members, 2), "DockerId"),
                            "aaaa0003");

        json_object_put(task);
        release_container(&gone);
        release_fleet(&fleet);
}

static void agents_document_records(void **state)
{
        struct fleet fleet;
        json_object *agents, *record;

        init_fleet(&fleet);
        fleet.other.agent.state = AGENT_PENDING;
        fleet.other.agent.last_started_usec = 0;
        fleet.other.agent.pid = 0;
        fleet.other.agent.version[0] = '\0';
        strcpy(fleet.plain.agent.reason, "bundle missing");

        agents = endpoint_agents_document(&fleet.plain);

        assert_true(json_object_is_type(agents, json_type_array));
        assert_int_equal(json_object_array_length(agents), 4);

        record = json_object_array_get_idx(agents, 0);
        assert_int_equal(json_object_object_length(record), 8);
        assert_string_equal(get_string(record, "ContainerId"), "cccc0001");
        assert_string_equal(get_string(record, "ContainerName"), "plain");
        assert_string_equal(get_string(record, "LastStatus"), "RUNNING");
        assert_string_equal(get_string(record, "Reason"), "bundle missing");
        assert_string_equal(get_string(record, "LastStartedAt"), "2026-01-01T00:01:01.123Z");
        assert_int_equal(get_int(record, "RestartCount"), 2);
        assert_int_equal(get_int(record, "Pid"), 4242);
        assert_string_equal(get_string(record, "Version"), "3.3.40.0");

        /* Every key stays present, with "" or null for unknown values. */
        record = json_object_array_get_idx(agents, 1);
        assert_string_equal(get_string(record, "ContainerId"), "bbbb0001");
        assert_string_equal(get_string(record, "LastStatus"), "PENDING");
        assert_string_equal(get_string(record, "Reason"), "");
        assert_null(get_member(record, "LastStartedAt"));
        assert_int_equal(get_int(record, "Pid"), 0);
        assert_string_equal(get_string(record, "Version"), "");

        json_object_put(agents);
        release_fleet(&fleet);
}

static void agents_document_empty(void **state)
{
        json_object *agents = endpoint_agents_document(NULL);

        assert_true(json_object_is_type(agents, json_type_array));
        assert_int_equal(json_object_array_length(agents), 0);
        assert_string_equal(json_object_to_json_string_ext(agents, JSON_C_TO_STRING_PLAIN), "[]");
        json_object_put(agents);
}

static void error_document_shape(void **state)
{
        json_object *error = endpoint_error_document(404, "no supervised container has id cafe");

        assert_int_equal(json_object_object_length(error), 2);
        assert_string_equal(get_string(error, "error"), "no supervised container has id cafe");
        assert_int_equal(get_int(error, "status"), 404);
        json_object_put(error);
}

static void timestamps_in_utc(void **state)
{
        struct container container;
        json_object *document;

        init_container(&container, "0123456789ab", "web", NULL);
        /* 2023-11-14T22:13:20.123456Z: microseconds are cut to milliseconds. */
        container.created_usec = 1700000000123456ULL;
        /* One microsecond after the epoch is still a time, not "never". */
        container.started_usec = 1;

        document = endpoint_container_document(&container);

        assert_string_equal(get_string(document, "CreatedAt"), "2023-11-14T22:13:20.123Z");
        assert_string_equal(get_string(document, "StartedAt"), "1970-01-01T00:00:00.000Z");
        json_object_put(document);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(container_document_fields),
            cmocka_unit_test(container_document_without_labels),
            cmocka_unit_test(agent_record_all_fields),
            cmocka_unit_test(agent_record_omits_unknown),
            cmocka_unit_test(agent_reason_without_nul),
            cmocka_unit_test(agent_state_names),
            cmocka_unit_test(container_event_names),
            cmocka_unit_test(label_lookup),
            cmocka_unit_test(task_groups_by_arn),
            cmocka_unit_test(task_of_member_without_family),
            cmocka_unit_test(task_without_arn),
            cmocka_unit_test(task_of_unlisted_container),
            cmocka_unit_test(agents_document_records),
            cmocka_unit_test(agents_document_empty),
            cmocka_unit_test(error_document_shape),
            cmocka_unit_test(timestamps_in_utc),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
