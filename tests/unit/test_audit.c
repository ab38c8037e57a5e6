#include <setjmp.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tests/unit/json_assert.h"

#include "supervisor/audit.h"
#include "supervisor/config.h"
#include "supervisor/container.h"
#include "supervisor/util.h"

#define ID_A "aaaa000000000000000000000000000000000000000000000000000000000001"

/* 2026-01-01T00:00:01.234Z in microseconds since the epoch. */
#define TIME_USEC 1767225601234567ULL
#define TIME_TEXT "2026-01-01T00:00:01.234Z"

struct fixture {
        char directory[64];
        char *path;
        struct config config;
        struct audit_log *audit;
};

static void init_container(struct container *container, const char *name)
{
        memset(container, 0, sizeof(*container));
        strcpy(container->id, ID_A);
        container->name = (char *)name;
        container->agent.state = AGENT_STOPPED;
        container->agent.restart_count = 5;
        container->agent.pid = 0;
        strcpy(container->agent.version, "3.3.40.0");
        strcpy(container->agent.reason, "exited 5 times in 10 min, last with status 1");
}

static char *read_text(const char *path)
{
        char *data = NULL;
        size_t size;
        int r = read_file_at(AT_FDCWD, path, 16 * 1024 * 1024, &data, &size);

        if (r < 0)
                fail_msg("cannot read %s: %s", path, strerror(-r));
        return data;
}

static unsigned count_lines(const char *text)
{
        unsigned count = 0;

        for (const char *p = text; *p; p++)
                if (*p == '\n')
                        count++;
        return count;
}

static bool exists(const char *path)
{
        struct stat st;

        return lstat(path, &st) == 0;
}

static int setup(void **state)
{
        struct fixture *f = xcalloc(1, sizeof(*f));

        strcpy(f->directory, "/tmp/test-audit-XXXXXX");
        assert_non_null(mkdtemp(f->directory));
        f->path = xasprintf("%s/audit.log", f->directory);
        f->config.log_dir = f->directory;
        f->config.audit_log = f->path;
        f->config.audit_max_size = 1024 * 1024;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *command = xasprintf("rm -rf -- '%s'", f->directory);

        audit_close(f->audit);
        assert_int_equal(system(command), 0);
        free(f->path);
        free(f);
        return 0;
}

static void line_fields(void **state)
{
        struct container c;
        json_object *object;
        char *line;

        init_container(&c, "web");
        c.sequence = 42;

        line = audit_line(&c, CONTAINER_EVENT_STOPPED, TIME_USEC);
        assert_int_equal(count_lines(line), 1);
        assert_int_equal(line[strlen(line) - 1], '\n');

        object = json_tokener_parse(line);
        assert_non_null(object);
        assert_string_equal(get_string(object, "Time"), TIME_TEXT);
        assert_string_equal(get_string(object, "Event"), "stopped");
        assert_string_equal(get_string(object, "ContainerId"), ID_A);
        assert_string_equal(get_string(object, "ContainerName"), "web");
        assert_string_equal(get_string(object, "Version"), "3.3.40.0");
        assert_int_equal(get_int(object, "Pid"), 0);
        assert_int_equal(get_int(object, "RestartCount"), 5);
        assert_string_equal(get_string(object, "LastStatus"), "STOPPED");
        assert_string_equal(get_string(object, "Reason"),
                            "exited 5 times in 10 min, last with status 1");
        assert_int_equal(get_int(object, "Sequence"), 42);
        assert_int_equal(json_object_object_length(object), 10);

        json_object_put(object);
        free(line);
}

/* A container name or a reason from the agent's output cannot start a new line. */
static void line_escapes_newlines(void **state)
{
        struct container c;
        json_object *object;
        char *line;

        init_container(&c, "evil\n{\"Event\":\"forged\"}");
        strcpy(c.agent.reason, "line one\nline two\r");

        line = audit_line(&c, CONTAINER_EVENT_EXITED, TIME_USEC);
        assert_int_equal(count_lines(line), 1);
        assert_null(strchr(line, '\r'));

        object = json_tokener_parse(line);
        assert_non_null(object);
        assert_string_equal(get_string(object, "ContainerName"), "evil\n{\"Event\":\"forged\"}");
        assert_string_equal(get_string(object, "Reason"), "line one\nline two\r");
        assert_string_equal(get_string(object, "Event"), "exited");

        json_object_put(object);
        free(line);
}

/* A reason that fills its array without a NUL is cut at the array's end. */
static void line_reason_without_nul(void **state)
{
        struct container c;
        json_object *object;
        char *line;

        init_container(&c, "web");
        memset(c.agent.reason, 'x', sizeof(c.agent.reason));

        line = audit_line(&c, CONTAINER_EVENT_STOPPED, TIME_USEC);
        object = json_tokener_parse(line);
        assert_non_null(object);
        assert_int_equal(strlen(get_string(object, "Reason")), AGENT_REASON_MAX);

        json_object_put(object);
        free(line);
}

static void events_written_in_order(void **state)
{
        static const struct {
                enum container_event event;
                const char *name;
        } events[] = {
            {CONTAINER_EVENT_INJECTED, "injected"}, {CONTAINER_EVENT_EXITED, "exited"},
            {CONTAINER_EVENT_STARTED, "started"},   {CONTAINER_EVENT_STOPPED, "stopped"},
            {CONTAINER_EVENT_ADOPTED, "adopted"},   {CONTAINER_EVENT_FORGOTTEN, "forgotten"},
        };
        struct fixture *f = *state;
        _cleanup_free_ char *text = NULL;
        struct container c;
        struct stat st;
        mode_t mask;
        char *line, *save = NULL;
        size_t i = 0;

        mask = umask(0);
        umask(mask);
        assert_int_equal(audit_open(&f->config, &f->audit), 0);
        init_container(&c, "web");

        for (i = 0; i < ARRAY_SIZE(events); i++) {
                c.sequence++;
                container_notify(&c, events[i].event);
        }

        assert_int_equal(lstat(f->path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0640 & ~mask);

        text = read_text(f->path);
        assert_int_equal(count_lines(text), ARRAY_SIZE(events));
        i = 0;
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
                json_object *object = json_tokener_parse(line);

                assert_non_null(object);
                assert_string_equal(get_string(object, "Event"), events[i].name);
                assert_int_equal(get_int(object, "Sequence"), (int64_t)i + 1);
                assert_string_equal(get_string(object, "ContainerId"), ID_A);
                json_object_put(object);
        }
        assert_int_equal(i, ARRAY_SIZE(events));
}

static void appends_to_existing(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = open(f->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
        struct container c;

        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, "{\"old\":1}\n", 10), 0);

        assert_int_equal(audit_open(&f->config, &f->audit), 0);
        init_container(&c, "web");
        container_notify(&c, CONTAINER_EVENT_INJECTED);

        text = read_text(f->path);
        assert_int_equal(count_lines(text), 2);
        assert_true(startswith(text, "{\"old\":1}\n{"));
}

static void default_path_in_log_dir(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *text = NULL;
        struct container c;

        f->config.audit_log = NULL;
        assert_int_equal(audit_open(&f->config, &f->audit), 0);
        init_container(&c, "web");
        container_notify(&c, CONTAINER_EVENT_INJECTED);

        /* The fixture's path is <log_dir>/audit.log. */
        text = read_text(f->path);
        assert_int_equal(count_lines(text), 1);
}

static void symlink_rejected(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *target = xasprintf("%s/elsewhere", f->directory);

        assert_int_equal(symlink(target, f->path), 0);
        assert_int_equal(audit_open(&f->config, &f->audit), -ELOOP);
        assert_null(f->audit);
        assert_false(exists(target));
}

/* A FIFO at the path would block a plain open for writing until a reader came. */
static void fifo_rejected(void **state)
{
        struct fixture *f = *state;

        assert_int_equal(mkfifo(f->path, 0600), 0);
        assert_int_equal(audit_open(&f->config, &f->audit), -EBADFD);
        assert_null(f->audit);
}

/* With a reader on the FIFO the open succeeds, and the type check rejects it. */
static void fifo_with_reader_rejected(void **state)
{
        struct fixture *f = *state;
        _cleanup_close_ int reader = -1;

        assert_int_equal(mkfifo(f->path, 0600), 0);
        reader = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        assert_true(reader >= 0);
        assert_int_equal(audit_open(&f->config, &f->audit), -EBADFD);
        assert_null(f->audit);
}

static void second_open_rejected(void **state)
{
        struct fixture *f = *state;
        struct audit_log *other = NULL;

        assert_int_equal(audit_open(&f->config, &f->audit), 0);
        assert_int_equal(audit_open(&f->config, &other), -EBUSY);
        assert_null(other);
}

/* Lines of exactly 100 bytes, numbered. */
static void append_numbered(struct audit_log *audit, unsigned number)
{
        char line[101];

        snprintf(line, sizeof(line), "%-98u|\n", number);
        assert_int_equal(strlen(line), 100);
        assert_int_equal(audit_append(audit, line, 100), 0);
}

static void assert_file_holds(const char *path, unsigned first, unsigned last)
{
        _cleanup_free_ char *text = read_text(path);
        unsigned number = first;
        char *line, *save = NULL;

        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strtoul(line, NULL, 10) != number)
                        fail_msg("%s: expected line %u, found \"%s\"", path, number, line);
                number++;
        }
        if (number != last + 1)
                fail_msg("%s: expected lines %u to %u, it ends before %u", path, first, last,
                         number);
}

static void rotation_keeps_generations(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *first = xasprintf("%s.1", f->path);
        _cleanup_free_ char *second = xasprintf("%s.2", f->path);
        _cleanup_free_ char *third = xasprintf("%s.3", f->path);
        _cleanup_free_ char *fourth = xasprintf("%s.4", f->path);
        struct stat st;

        /* Two lines fit, a third would pass the maximum. */
        f->config.audit_max_size = 250;
        assert_int_equal(audit_open(&f->config, &f->audit), 0);

        for (unsigned i = 0; i < 20; i++)
                append_numbered(f->audit, i);

        assert_file_holds(f->path, 18, 19);
        assert_file_holds(first, 16, 17);
        assert_file_holds(second, 14, 15);
        assert_file_holds(third, 12, 13);
        assert_false(exists(fourth));

        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_size, 200);
}

/* A line longer than the maximum still goes in, alone in its file. */
static void rotation_of_long_line(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *first = xasprintf("%s.1", f->path);

        f->config.audit_max_size = 50;
        assert_int_equal(audit_open(&f->config, &f->audit), 0);

        append_numbered(f->audit, 1);
        assert_false(exists(first));
        append_numbered(f->audit, 2);

        assert_file_holds(first, 1, 1);
        assert_file_holds(f->path, 2, 2);
}

/* After the file is removed, the next line makes a new one at the path. */
static void reopens_after_removal(void **state)
{
        struct fixture *f = *state;

        assert_int_equal(audit_open(&f->config, &f->audit), 0);
        append_numbered(f->audit, 1);
        assert_int_equal(unlink(f->path), 0);

        append_numbered(f->audit, 2);
        assert_file_holds(f->path, 2, 2);
}

/* A failed write loses the line and returns an error; the log works again
 * once the path can be written. */
static void write_failure_survived(void **state)
{
        struct fixture *f = *state;
        struct container c;
        char line[] = "{\"lost\":true}\n";

        assert_int_equal(audit_open(&f->config, &f->audit), 0);
        append_numbered(f->audit, 1);

        /* A directory where the file was: reopening fails with EISDIR. */
        assert_int_equal(unlink(f->path), 0);
        assert_int_equal(mkdir(f->path, 0700), 0);
        assert_int_equal(audit_append(f->audit, line, strlen(line)), -EISDIR);
        init_container(&c, "web");
        container_notify(&c, CONTAINER_EVENT_INJECTED);

        assert_int_equal(rmdir(f->path), 0);
        append_numbered(f->audit, 3);
        assert_file_holds(f->path, 3, 3);
}

static void closed_log_ignores_events(void **state)
{
        struct fixture *f = *state;
        struct container c;
        struct stat st;

        assert_int_equal(audit_open(&f->config, &f->audit), 0);
        audit_close(f->audit);
        f->audit = NULL;

        init_container(&c, "web");
        container_notify(&c, CONTAINER_EVENT_INJECTED);
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_size, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(line_fields),
            cmocka_unit_test(line_escapes_newlines),
            cmocka_unit_test(line_reason_without_nul),
            cmocka_unit_test_setup_teardown(events_written_in_order, setup, teardown),
            cmocka_unit_test_setup_teardown(appends_to_existing, setup, teardown),
            cmocka_unit_test_setup_teardown(default_path_in_log_dir, setup, teardown),
            cmocka_unit_test_setup_teardown(symlink_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(fifo_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(fifo_with_reader_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(second_open_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(rotation_keeps_generations, setup, teardown),
            cmocka_unit_test_setup_teardown(rotation_of_long_line, setup, teardown),
            cmocka_unit_test_setup_teardown(reopens_after_removal, setup, teardown),
            cmocka_unit_test_setup_teardown(write_failure_survived, setup, teardown),
            cmocka_unit_test_setup_teardown(closed_log_ignores_events, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
