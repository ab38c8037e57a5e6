/* Unit tests of supervisor/docker_parse.c: the incremental /events parser,
 * container lists, inspect and version documents, and RFC 3339 times. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/docker_parse.h"
#include "supervisor/util.h"

#define ID_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

#define EVENT_START_A                                                                              \
        "{\"status\":\"start\",\"id\":\"" ID_A "\",\"from\":\"bb\",\"Type\":\"container\","        \
        "\"Action\":\"start\",\"Actor\":{\"ID\":\"" ID_A "\",\"Attributes\":{"                     \
        "\"com.example.team\":\"blue\",\"image\":\"bb\",\"name\":\"web\"}},"                       \
        "\"scope\":\"local\",\"time\":1715000000,\"timeNano\":1715000000123456789}\n"

#define EVENT_DIE_B                                                                                \
        "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"" ID_B "\","               \
        "\"Attributes\":{\"exitCode\":\"137\",\"image\":\"bb\",\"name\":\"db\"}},"                 \
        "\"scope\":\"local\",\"time\":1715000001,\"timeNano\":1715000001000000000}\n"

#define EVENT_NETWORK                                                                              \
        "{\"Type\":\"network\",\"Action\":\"connect\",\"Actor\":{\"ID\":\"abc\","                  \
        "\"Attributes\":{\"container\":\"" ID_A "\",\"name\":\"none\"}},"                          \
        "\"time\":1715000002,\"timeNano\":1715000002000000000}\n"

/* What the parser's callbacks received, copied out of the callbacks. */
struct recorded_event {
        char action[64];
        char id[DOCKER_ID_LENGTH + 1];
        char name[64];
        char image[64];
        char attributes[512];
        int exit_code;
        uint64_t time_nsec;
};

struct recorder {
        struct recorded_event events[16];
        size_t n_events;
        int errors[16];
        char messages[16][512];
        size_t n_errors;
};

static void record_event(void *userdata, const struct docker_event *event)
{
        struct recorder *recorder = userdata;
        struct recorded_event *copy;

        assert_true(recorder->n_events < ARRAY_SIZE(recorder->events));
        copy = &recorder->events[recorder->n_events++];
        snprintf(copy->action, sizeof(copy->action), "%s", event->action);
        memcpy(copy->id, event->id, sizeof(copy->id));
        snprintf(copy->name, sizeof(copy->name), "%s", event->name ? event->name : "(null)");
        snprintf(copy->image, sizeof(copy->image), "%s", event->image ? event->image : "(null)");
        snprintf(copy->attributes, sizeof(copy->attributes), "%s",
                 event->attributes
                     ? json_object_to_json_string_ext(event->attributes, JSON_C_TO_STRING_PLAIN)
                     : "(null)");
        copy->exit_code = event->exit_code;
        copy->time_nsec = event->time_nsec;
}

static void record_error(void *userdata, int error, const char *message)
{
        struct recorder *recorder = userdata;

        assert_true(recorder->n_errors < ARRAY_SIZE(recorder->errors));
        recorder->errors[recorder->n_errors] = error;
        snprintf(recorder->messages[recorder->n_errors], sizeof(recorder->messages[0]), "%s",
                 message);
        recorder->n_errors++;
}

static const struct docker_event_parser_callbacks recorder_callbacks = {
    .on_event = record_event,
    .on_error = record_error,
};

static struct docker_event_parser *new_parser(struct recorder *recorder, size_t max_event_size)
{
        struct docker_event_parser *parser = NULL;

        memset(recorder, 0, sizeof(*recorder));
        assert_int_equal(
            docker_event_parser_new(max_event_size, &recorder_callbacks, recorder, &parser), 0);
        assert_non_null(parser);
        return parser;
}

static void feed_string(struct docker_event_parser *parser, const char *text)
{
        docker_event_parser_feed(parser, text, strlen(text));
}

static void assert_start_a(const struct recorded_event *event)
{
        assert_string_equal(event->action, "start");
        assert_string_equal(event->id, ID_A);
        assert_string_equal(event->name, "web");
        assert_string_equal(event->image, "bb");
        assert_int_equal(event->exit_code, -1);
        assert_true(event->time_nsec == UINT64_C(1715000000123456789));
        assert_non_null(strstr(event->attributes, "\"com.example.team\":\"blue\""));
}

static void assert_die_b(const struct recorded_event *event)
{
        assert_string_equal(event->action, "die");
        assert_string_equal(event->id, ID_B);
        assert_string_equal(event->name, "db");
        assert_int_equal(event->exit_code, 137);
        assert_true(event->time_nsec == UINT64_C(1715000001000000000));
}

static void test_event_single(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        feed_string(parser, EVENT_START_A);

        assert_int_equal(recorder.n_errors, 0);
        assert_int_equal(recorder.n_events, 1);
        assert_start_a(&recorder.events[0]);
        docker_event_parser_free(parser);
}

static void test_event_several_in_one_chunk(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        /* Back to back with no separator, then with blank lines and CRLF. */
        feed_string(parser,
                    "{\"Type\":\"container\",\"Action\":\"destroy\",\"Actor\":{\"ID\":\"" ID_A
                    "\"},\"time\":7}" EVENT_DIE_B "\r\n\n  " EVENT_START_A "\n\n");

        assert_int_equal(recorder.n_errors, 0);
        assert_int_equal(recorder.n_events, 3);
        assert_string_equal(recorder.events[0].action, "destroy");
        assert_string_equal(recorder.events[0].attributes, "(null)");
        assert_true(recorder.events[0].time_nsec == UINT64_C(7000000000));
        assert_die_b(&recorder.events[1]);
        assert_start_a(&recorder.events[2]);
        docker_event_parser_free(parser);
}

static void test_event_split_everywhere(void **state)
{
        static const char stream[] = EVENT_START_A EVENT_NETWORK EVENT_DIE_B;
        size_t length = strlen(stream);

        for (size_t split = 0; split <= length; split++) {
                struct recorder recorder;
                struct docker_event_parser *parser = new_parser(&recorder, 0);

                docker_event_parser_feed(parser, stream, split);
                docker_event_parser_feed(parser, stream + split, length - split);

                assert_int_equal(recorder.n_errors, 0);
                assert_int_equal(recorder.n_events, 2);
                assert_start_a(&recorder.events[0]);
                assert_die_b(&recorder.events[1]);
                docker_event_parser_free(parser);
        }
}

static void test_event_one_byte_at_a_time(void **state)
{
        static const char stream[] = EVENT_DIE_B EVENT_START_A;
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        for (size_t i = 0; i < strlen(stream); i++)
                docker_event_parser_feed(parser, stream + i, 1);

        assert_int_equal(recorder.n_errors, 0);
        assert_int_equal(recorder.n_events, 2);
        assert_die_b(&recorder.events[0]);
        assert_start_a(&recorder.events[1]);
        docker_event_parser_free(parser);
}

static void test_event_malformed_then_good(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        /* A missing comma: the error is at byte 20, the '"' of "Action". */
        feed_string(parser, "{\"Type\":\"container\" \"Action\":\"start\"}\n");
        feed_string(parser, EVENT_START_A);

        assert_int_equal(recorder.n_errors, 1);
        assert_int_equal(recorder.errors[0], -EBADMSG);
        assert_non_null(strstr(recorder.messages[0], "byte 20 "));
        assert_non_null(strstr(recorder.messages[0],
                               json_tokener_error_desc(json_tokener_error_parse_object_value_sep)));
        assert_int_equal(recorder.n_events, 1);
        assert_start_a(&recorder.events[0]);
        docker_event_parser_free(parser);
}

static void test_event_truncated_then_good(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        /* The first event breaks off inside a string: its newline and the
         * next event's first quote end up in that string, and the parser
         * must still find the next event on its own line. */
        feed_string(parser, "{\"Type\":\"container\",\"Action\":\"sta\n");
        feed_string(parser, EVENT_DIE_B);
        /* Also an object that ends early, with the next one right after. */
        feed_string(parser, "{\"Type\":\"container\",\"Action\":1\n" EVENT_START_A);

        assert_int_equal(recorder.n_errors, 2);
        assert_int_equal(recorder.errors[0], -EBADMSG);
        assert_int_equal(recorder.errors[1], -EBADMSG);
        assert_int_equal(recorder.n_events, 2);
        assert_die_b(&recorder.events[0]);
        assert_start_a(&recorder.events[1]);
        docker_event_parser_free(parser);
}

static void test_event_garbage_and_nul(void **state)
{
        static const char stream[] = "garbage line\n{\"Type\":\"cont\0iner\"}\n" EVENT_DIE_B
                                     "[1,2]\n\"text\"\n" EVENT_START_A;
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        docker_event_parser_feed(parser, stream, sizeof(stream) - 1);

        /* garbage, the NUL byte, the array and the string. */
        assert_int_equal(recorder.n_errors, 4);
        assert_non_null(strstr(recorder.messages[0], "byte 0 "));
        assert_non_null(strstr(recorder.messages[2], "not a JSON object"));
        assert_non_null(strstr(recorder.messages[3], "not a JSON object"));
        assert_int_equal(recorder.n_events, 2);
        assert_die_b(&recorder.events[0]);
        assert_start_a(&recorder.events[1]);
        docker_event_parser_free(parser);
}

static void test_event_error_offset_across_chunks(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);
        size_t base = strlen(EVENT_DIE_B);
        char expected[64];

        feed_string(parser, EVENT_DIE_B);
        feed_string(parser, "{\"Type\":");
        feed_string(parser, "\"container\",}x\n");

        /* The 21-byte object is valid JSON (json-c accepts the trailing
         * comma) but no valid event; the 'x' after it is a syntax error. */
        assert_int_equal(recorder.n_events, 1);
        assert_int_equal(recorder.n_errors, 2);
        snprintf(expected, sizeof(expected), "invalid event at byte %zu ", base);
        assert_non_null(strstr(recorder.messages[0], expected));
        assert_non_null(strstr(recorder.messages[0], "Action is missing"));
        snprintf(expected, sizeof(expected), "malformed event at byte %zu ", base + 21);
        assert_non_null(strstr(recorder.messages[1], expected));

        /* The next line starts at base + 23; its ']' is 8 bytes in. */
        feed_string(parser, "{\"Type\":");
        feed_string(parser, "]\n");
        snprintf(expected, sizeof(expected), "malformed event at byte %zu ", base + 23 + 8);
        assert_int_equal(recorder.n_errors, 3);
        assert_non_null(strstr(recorder.messages[2], expected));
        docker_event_parser_free(parser);
}

static void test_event_oversized(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 600);
        char big[2048];

        snprintf(big, sizeof(big),
                 "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"" ID_A
                 "\",\"Attributes\":{\"label\":\"%0900d\"}}}\n",
                 0);

        assert_true(strlen(big) > 600);
        assert_true(strlen(EVENT_START_A) < 600);
        feed_string(parser, big);
        feed_string(parser, EVENT_START_A);

        assert_int_equal(recorder.n_errors, 1);
        assert_int_equal(recorder.errors[0], -EMSGSIZE);
        assert_non_null(strstr(recorder.messages[0], "byte 0 "));
        assert_non_null(strstr(recorder.messages[0], "600 bytes"));
        assert_int_equal(recorder.n_events, 1);
        assert_start_a(&recorder.events[0]);
        docker_event_parser_free(parser);

        /* The same, fed in small pieces. */
        parser = new_parser(&recorder, 600);
        for (size_t i = 0; i < strlen(big); i += 7)
                docker_event_parser_feed(parser, big + i,
                                         strlen(big) - i < 7 ? strlen(big) - i : 7);
        feed_string(parser, EVENT_DIE_B);
        assert_int_equal(recorder.n_errors, 1);
        assert_int_equal(recorder.errors[0], -EMSGSIZE);
        assert_int_equal(recorder.n_events, 1);
        assert_die_b(&recorder.events[0]);
        docker_event_parser_free(parser);
}

static void test_event_exact_limit(void **state)
{
        struct recorder recorder;
        size_t length = strlen(EVENT_START_A) - 1; /* without the newline */
        struct docker_event_parser *parser = new_parser(&recorder, length);

        feed_string(parser, EVENT_START_A);
        feed_string(parser, EVENT_START_A);

        assert_int_equal(recorder.n_errors, 0);
        assert_int_equal(recorder.n_events, 2);
        docker_event_parser_free(parser);
}

static void test_event_non_container_ignored(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        feed_string(parser, EVENT_NETWORK);
        feed_string(parser, "{\"Type\":\"image\",\"Action\":\"pull\",\"Actor\":{\"ID\":\"bb\"}}\n");
        feed_string(parser, "{\"status\":\"start\",\"id\":\"" ID_A "\"}\n");

        assert_int_equal(recorder.n_errors, 0);
        assert_int_equal(recorder.n_events, 0);
        docker_event_parser_free(parser);
}

static void test_event_invalid_container_event(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        feed_string(parser,
                    "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"abc\"}}\n");
        feed_string(parser, "{\"Type\":\"container\",\"Actor\":{\"ID\":\"" ID_A "\"}}\n");
        feed_string(parser, "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"" ID_A
                            "\",\"Attributes\":{\"exitCode\":3}}}\n");
        feed_string(parser, "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":\"x\"}\n");

        assert_int_equal(recorder.n_events, 0);
        assert_int_equal(recorder.n_errors, 4);
        assert_non_null(strstr(recorder.messages[0], "Actor.ID is not a container id"));
        assert_non_null(strstr(recorder.messages[1], "Action is missing"));
        assert_non_null(strstr(recorder.messages[2], "Actor.Attributes.exitCode is not a string"));
        assert_non_null(strstr(recorder.messages[3], "Actor is not an object"));
        docker_event_parser_free(parser);
}

static void test_event_action_as_given(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        feed_string(parser, "{\"Type\":\"container\",\"Action\":\"exec_start: sh -c true\","
                            "\"Actor\":{\"ID\":\"" ID_A "\",\"Attributes\":{\"exitCode\":\"x1\"}},"
                            "\"timeNano\":5}\n");

        assert_int_equal(recorder.n_errors, 0);
        assert_int_equal(recorder.n_events, 1);
        assert_string_equal(recorder.events[0].action, "exec_start: sh -c true");
        assert_int_equal(recorder.events[0].exit_code, -1);
        assert_string_equal(recorder.events[0].name, "(null)");
        assert_true(recorder.events[0].time_nsec == 5);
        docker_event_parser_free(parser);
}

static void test_event_reset_drops_partial(void **state)
{
        struct recorder recorder;
        struct docker_event_parser *parser = new_parser(&recorder, 0);

        feed_string(parser, "{\"Type\":\"container\",\"Act");
        docker_event_parser_reset(parser);
        feed_string(parser, EVENT_START_A);

        assert_int_equal(recorder.n_errors, 0);
        assert_int_equal(recorder.n_events, 1);
        assert_start_a(&recorder.events[0]);
        docker_event_parser_free(parser);
}

/* Container list */

static void test_list_ids(void **state)
{
        static const char body[] =
            "[{\"Id\":\"" ID_A "\",\"Names\":[\"/web\"]},{\"Id\":\"" ID_B "\"}]\n";
        char **ids = NULL;
        size_t count = 0;
        char error[256];

        assert_int_equal(
            docker_parse_container_ids(body, strlen(body), &ids, &count, error, sizeof(error)), 0);
        assert_int_equal(count, 2);
        assert_string_equal(ids[0], ID_A);
        assert_string_equal(ids[1], ID_B);
        assert_null(ids[2]);
        docker_ids_free(ids);

        assert_int_equal(docker_parse_container_ids("[]", 2, &ids, &count, error, sizeof(error)),
                         0);
        assert_int_equal(count, 0);
        assert_null(ids[0]);
        docker_ids_free(ids);
}

static void test_list_invalid(void **state)
{
        static const struct {
                const char *body;
                const char *message;
        } cases[] = {
            {"{}", "not an array"},
            {"[{\"Id\":\"" ID_A "\"},{\"Names\":[]}]", "[1].Id is missing"},
            {"[{\"Id\":42}]", "[0].Id is missing or not a string"},
            {"[{\"Id\":\"" ID_A "0\"}]", "[0].Id is not a container id"},
            {"[\"" ID_A "\"]", "[0] is not an object"},
            {"[{\"Id\":\"" ID_A "\"}", "truncated"},
            {"[] x", "unexpected data"},
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char **ids = (char **)0x1;
                size_t count = 99;
                char error[256] = "";

                assert_int_equal(docker_parse_container_ids(cases[i].body, strlen(cases[i].body),
                                                            &ids, &count, error, sizeof(error)),
                                 -EBADMSG);
                assert_non_null(strstr(error, cases[i].message));
                /* Out-parameters stay untouched on failure. */
                assert_ptr_equal(ids, (char **)0x1);
                assert_int_equal(count, 99);
        }
}

/* Inspect documents */

static const char inspect_full[] =
    "{\"Id\":\"" ID_A "\",\"Created\":\"2024-05-06T07:08:09.123456789Z\","
    "\"Path\":\"sleep\",\"Args\":[\"1000\"],"
    "\"State\":{\"Status\":\"running\",\"Running\":true,\"Paused\":false,\"Restarting\":false,"
    "\"OOMKilled\":false,\"Dead\":false,\"Pid\":4242,\"ExitCode\":0,\"Error\":\"\","
    "\"StartedAt\":\"2024-05-06T07:08:10.5Z\",\"FinishedAt\":\"0001-01-01T00:00:00Z\"},"
    "\"Image\":\"sha256:1234\",\"Name\":\"/web\",\"RestartCount\":3,"
    "\"HostConfig\":{\"Privileged\":true,\"ReadonlyRootfs\":true,\"UsernsMode\":\"host\","
    "\"CgroupnsMode\":\"private\",\"Runtime\":\"runc\",\"NetworkMode\":\"none\"},"
    "\"Config\":{\"Hostname\":\"0123456789ab\",\"Env\":[\"PATH=/bin\",\"A=b=c\"],"
    "\"Cmd\":[\"sleep\",\"1000\"],\"Image\":\"bb:latest\","
    "\"Labels\":{\"com.example.team\":\"blue\",\"execvisor.enable\":\"true\"}}}\n";

static void test_inspect_full(void **state)
{
        struct container_info *info = NULL;
        char error[256] = "";

        assert_int_equal(
            docker_parse_inspect(inspect_full, strlen(inspect_full), &info, error, sizeof(error)),
            0);
        assert_string_equal(info->id, ID_A);
        assert_string_equal(info->name, "web");
        assert_string_equal(info->image, "bb:latest");
        assert_true(info->running);
        assert_false(info->paused);
        assert_false(info->restarting);
        assert_int_equal(info->pid, 4242);
        assert_true(info->created_usec == UINT64_C(1714979289123456));
        assert_true(info->started_usec == UINT64_C(1714979290500000));
        assert_int_equal(info->restart_count, 3);
        assert_true(info->privileged);
        assert_true(info->readonly_rootfs);
        assert_string_equal(info->userns_mode, "host");
        assert_string_equal(info->cgroupns_mode, "private");
        assert_string_equal(info->runtime, "runc");

        assert_int_equal(info->n_env, 2);
        assert_string_equal(info->env[0], "PATH=/bin");
        assert_string_equal(info->env[1], "A=b=c");
        assert_null(info->env[2]);

        assert_int_equal(json_object_object_length(info->labels), 2);
        assert_string_equal(
            json_object_get_string(json_object_object_get(info->labels, "com.example.team")),
            "blue");
        container_info_free(info);
}

static void test_inspect_minimal(void **state)
{
        static const char body[] =
            "{\"Id\":\"" ID_B "\",\"Name\":\"db\",\"Created\":\"2024-01-01T00:00:00Z\","
            "\"State\":{\"Running\":false,\"Pid\":0,\"StartedAt\":\"0001-01-01T00:00:00Z\"},"
            "\"Config\":{\"Image\":\"bb\",\"Labels\":null,\"Env\":null}}";
        struct container_info *info = NULL;
        char error[256] = "";

        assert_int_equal(docker_parse_inspect(body, strlen(body), &info, error, sizeof(error)), 0);
        assert_string_equal(info->name, "db");
        assert_false(info->running);
        assert_int_equal(info->pid, 0);
        assert_true(info->started_usec == 0);
        assert_true(info->created_usec == UINT64_C(1704067200000000));
        assert_int_equal(info->restart_count, 0);
        assert_false(info->privileged);
        assert_null(info->userns_mode);
        assert_null(info->cgroupns_mode);
        assert_null(info->runtime);
        assert_int_equal(info->n_env, 0);
        assert_null(info->env[0]);
        assert_non_null(info->labels);
        assert_int_equal(json_object_object_length(info->labels), 0);
        container_info_free(info);
}

/* Replace the first occurrence of from in inspect_full. */
static char *mutate_inspect(const char *from, const char *to)
{
        const char *at = strstr(inspect_full, from);

        assert_non_null(at);
        return xasprintf("%.*s%s%s", (int)(at - inspect_full), inspect_full, to, at + strlen(from));
}

static void test_inspect_invalid(void **state)
{
        static const struct {
                const char *from, *to, *message;
        } cases[] = {
            {"\"Id\":\"" ID_A "\",", "", "Id is missing"},
            {"\"Id\":\"" ID_A "\"", "\"Id\":\"xyz\"", "Id is not a container id"},
            {"\"Name\":\"/web\",", "", "Name is missing"},
            {"\"Name\":\"/web\"", "\"Name\":[]", "Name is not a string"},
            {"\"Created\":\"2024-05-06T07:08:09.123456789Z\"", "\"Created\":\"yesterday\"",
             "Created is not an RFC 3339 time"},
            {"\"Running\":true", "\"Running\":\"yes\"", "State.Running is not a boolean"},
            {"\"Pid\":4242,", "", "State.Pid is missing"},
            {"\"Pid\":4242", "\"Pid\":-1", "State.Pid is out of range"},
            {"\"Pid\":4242", "\"Pid\":1.5", "State.Pid is not an integer"},
            {"\"StartedAt\":\"2024-05-06T07:08:10.5Z\"", "\"StartedAt\":0",
             "State.StartedAt is not a string"},
            {"\"State\":{", "\"State\":7,\"X\":{", "State is not an object"},
            {"\"Image\":\"bb:latest\"", "\"Image\":null", "Config.Image is missing"},
            {"\"Env\":[\"PATH=/bin\",\"A=b=c\"]", "\"Env\":[\"PATH=/bin\",7]",
             "Config.Env[1] is not a string"},
            {"\"Env\":[\"PATH=/bin\",\"A=b=c\"]", "\"Env\":{\"PATH\":\"/bin\"}",
             "Config.Env is not an array"},
            {"\"execvisor.enable\":\"true\"", "\"execvisor.enable\":true",
             "Config.Labels[\"execvisor.enable\"] is not a string"},
            {"\"RestartCount\":3", "\"RestartCount\":\"3\"", "RestartCount is not an integer"},
            {"\"Privileged\":true", "\"Privileged\":1", "HostConfig.Privileged is not a boolean"},
            {"\"Runtime\":\"runc\"", "\"Runtime\":false", "HostConfig.Runtime is not a string"},
            {"\"HostConfig\":{", "\"HostConfig\":[],\"Y\":{", "HostConfig is not an object"},
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                _cleanup_free_ char *body = mutate_inspect(cases[i].from, cases[i].to);
                struct container_info *info = (struct container_info *)0x1;
                char error[256] = "";
                int r;

                r = docker_parse_inspect(body, strlen(body), &info, error, sizeof(error));
                if (r != -EBADMSG || !strstr(error, cases[i].message))
                        fail_msg("case %zu: got %d \"%s\", expected \"%s\"", i, r, error,
                                 cases[i].message);
                assert_ptr_equal(info, (struct container_info *)0x1);
        }
}

static void test_inspect_not_json(void **state)
{
        struct container_info *info = NULL;
        char error[256] = "";

        assert_int_equal(docker_parse_inspect("[]", 2, &info, error, sizeof(error)), -EBADMSG);
        assert_non_null(strstr(error, "not an object"));
        assert_int_equal(docker_parse_inspect("{\"Id\":", 6, &info, error, sizeof(error)),
                         -EBADMSG);
        assert_non_null(strstr(error, "truncated"));
        assert_int_equal(docker_parse_inspect("{\"Id\" 1}", 8, &info, error, sizeof(error)),
                         -EBADMSG);
        assert_non_null(strstr(error, "invalid JSON at byte 6"));
        assert_null(info);
}

/* Version */

static void test_version(void **state)
{
        static const char body[] = "{\"Platform\":{\"Name\":\"\"},\"Version\":\"20.10.24+dfsg1\","
                                   "\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\","
                                   "\"Os\":\"linux\"}\n";
        struct docker_version version;
        unsigned major = 0, minor = 0;
        char error[256];

        assert_int_equal(docker_parse_version(body, strlen(body), &version, error, sizeof(error)),
                         0);
        assert_int_equal(version.api_major, 1);
        assert_int_equal(version.api_minor, 41);
        assert_int_equal(version.min_api_minor, 12);
        assert_string_equal(version.engine, "20.10.24+dfsg1");

        assert_int_equal(docker_choose_api_version(&version, &major, &minor), 0);
        assert_int_equal(major, 1);
        assert_int_equal(minor, 41);

        assert_int_equal(
            docker_parse_version("{\"ApiVersion\":\"1.x\"}", 20, &version, error, sizeof(error)),
            -EBADMSG);
        assert_non_null(strstr(error, "ApiVersion is not a version"));
        assert_int_equal(docker_parse_version("{}", 2, &version, error, sizeof(error)), -EBADMSG);
        assert_non_null(strstr(error, "ApiVersion is missing"));
}

static void test_choose_api_version(void **state)
{
        static const struct {
                unsigned api_major, api_minor, min_major, min_minor;
                int result;
                unsigned minor;
        } cases[] = {
            {1, 41, 1, 12, 0, 41},
            {1, 60, 1, 24, 0, DOCKER_API_MINOR_MAX},
            {1, 60, 1, 55, 0, 55},
            {1, 52, 1, 44, 0, 52},
            {1, 30, 0, 0, 0, 30},
            {1, 23, 1, 12, -EPROTONOSUPPORT, 0},
            {2, 0, 2, 0, -EPROTONOSUPPORT, 0},
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct docker_version version = {
                    .api_major = cases[i].api_major,
                    .api_minor = cases[i].api_minor,
                    .min_api_major = cases[i].min_major,
                    .min_api_minor = cases[i].min_minor,
                };
                unsigned major = 0, minor = 0;

                assert_int_equal(docker_choose_api_version(&version, &major, &minor),
                                 cases[i].result);
                if (cases[i].result == 0)
                        assert_int_equal(minor, cases[i].minor);
        }
}

static void test_error_message(void **state)
{
        char buffer[64];

        static const char document[] = "{\"message\":\"No such container: x\"}\n";

        assert_string_equal(
            docker_error_message(document, strlen(document), buffer, sizeof(buffer)),
            "No such container: x");
        assert_string_equal(docker_error_message("page not found\n", 15, buffer, sizeof(buffer)),
                            "page not found");
        assert_string_equal(docker_error_message("", 0, buffer, sizeof(buffer)),
                            "(empty response body)");
}

/* RFC 3339 */

static void test_rfc3339(void **state)
{
        static const struct {
                const char *text;
                int result;
                uint64_t usec;
        } cases[] = {
            {"1970-01-01T00:00:00Z", 0, 0},
            {"2024-05-06T07:08:09Z", 0, UINT64_C(1714979289000000)},
            {"2024-05-06T07:08:09.123456789Z", 0, UINT64_C(1714979289123456)},
            {"2024-05-06T07:08:09.1Z", 0, UINT64_C(1714979289100000)},
            {"2024-05-06T09:08:09.000001+02:00", 0, UINT64_C(1714979289000001)},
            {"2024-05-06T06:38:09-00:30", 0, UINT64_C(1714979289000000)},
            {"0001-01-01T00:00:00Z", 0, 0},
            {"1969-12-31T23:59:59Z", -ERANGE, 0},
            {"2024-05-06 07:08:09Z", -EINVAL, 0},
            {"2024-05-06T07:08:09", -EINVAL, 0},
            {"2024-05-06T07:08:09.Z", -EINVAL, 0},
            {"2024-13-06T07:08:09Z", -EINVAL, 0},
            {"2024-05-06T07:08:09Zjunk", -EINVAL, 0},
            {"", -EINVAL, 0},
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                uint64_t usec = 12345;
                int r = docker_parse_rfc3339(cases[i].text, &usec);

                if (r != cases[i].result)
                        fail_msg("\"%s\": got %d, expected %d", cases[i].text, r, cases[i].result);
                if (r == 0 && usec != cases[i].usec)
                        fail_msg("\"%s\": got %llu, expected %llu", cases[i].text,
                                 (unsigned long long)usec, (unsigned long long)cases[i].usec);
                if (r < 0)
                        assert_true(usec == 12345);
        }
}

static void test_id_validation(void **state)
{
        assert_true(docker_id_is_valid(ID_A));
        assert_false(docker_id_is_valid(""));
        assert_false(docker_id_is_valid("0123456789ab"));
        assert_false(docker_id_is_valid(ID_A "0"));
        assert_false(
            docker_id_is_valid("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
        assert_false(
            docker_id_is_valid("0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_event_single),
            cmocka_unit_test(test_event_several_in_one_chunk),
            cmocka_unit_test(test_event_split_everywhere),
            cmocka_unit_test(test_event_one_byte_at_a_time),
            cmocka_unit_test(test_event_malformed_then_good),
            cmocka_unit_test(test_event_truncated_then_good),
            cmocka_unit_test(test_event_garbage_and_nul),
            cmocka_unit_test(test_event_error_offset_across_chunks),
            cmocka_unit_test(test_event_oversized),
            cmocka_unit_test(test_event_exact_limit),
            cmocka_unit_test(test_event_non_container_ignored),
            cmocka_unit_test(test_event_invalid_container_event),
            cmocka_unit_test(test_event_action_as_given),
            cmocka_unit_test(test_event_reset_drops_partial),
            cmocka_unit_test(test_list_ids),
            cmocka_unit_test(test_list_invalid),
            cmocka_unit_test(test_inspect_full),
            cmocka_unit_test(test_inspect_minimal),
            cmocka_unit_test(test_inspect_invalid),
            cmocka_unit_test(test_inspect_not_json),
            cmocka_unit_test(test_version),
            cmocka_unit_test(test_choose_api_version),
            cmocka_unit_test(test_error_message),
            cmocka_unit_test(test_rfc3339),
            cmocka_unit_test(test_id_validation),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
