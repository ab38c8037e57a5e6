/* Unit tests of supervisor/cli.c: commands, options, the config file under
 * the command line, errors and the usage text. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/cli.h"
#include "supervisor/config.h"
#include "supervisor/util.h"

#define TEMP_DIR_TEMPLATE "/tmp/execvisor-test-cli.XXXXXX"
#include "tests/unit/temp_dir.h"
#include "tests/unit/config_defaults.h"

#define SEC UINT64_C(1000000)
#define MAX_ARGS 64

/* Arguments for cli_parse(), copied so that getopt may permute them. */
struct args {
        int argc;
        char *argv[MAX_ARGS + 1];
};

static void args_done(struct args *args)
{
        for (int i = 0; i < args->argc; i++)
                free(args->argv[i]);
}

/* Run cli_parse() on "execvisor" followed by the NULL-terminated arguments. */
static int parse(struct cli_command *command, struct config *config, char **error, ...)
{
        struct args args = { .argc = 1, .argv = { xstrdup("execvisor") } };
        const char *argument;
        va_list ap;
        int r;

        va_start(ap, error);
        while ((argument = va_arg(ap, const char *))) {
                assert_true(args.argc < MAX_ARGS);
                args.argv[args.argc++] = xstrdup(argument);
        }
        va_end(ap);

        r = cli_parse(args.argc, args.argv, command, config, error);
        args_done(&args);
        return r;
}

/* Parse arguments that must be accepted. */
#define PARSE_OK(command, config, ...)                                                             \
        do {                                                                                       \
                char *_error = NULL;                                                               \
                if (parse(command, config, &_error, __VA_ARGS__, NULL) != 0)                       \
                        fail_msg("cli_parse failed: %s", _error);                                  \
                assert_null(_error);                                                               \
        } while (0)

/* Parse arguments that must be rejected and return the error message. */
static char *parse_error_v(const char *first, va_list ap)
{
        struct cli_command command, command_before;
        struct config config, config_before;
        struct args args = { .argc = 1, .argv = { xstrdup("execvisor") } };
        const char *argument = first;
        char *error = NULL;

        for (; argument; argument = va_arg(ap, const char *)) {
                assert_true(args.argc < MAX_ARGS);
                args.argv[args.argc++] = xstrdup(argument);
        }

        memset(&command, 0x5a, sizeof(command));
        memset(&config, 0x5a, sizeof(config));
        command_before = command;
        config_before = config;

        assert_true(cli_parse(args.argc, args.argv, &command, &config, &error) < 0);
        assert_non_null(error);
        assert_null(strchr(error, '\n'));

        /* Out-parameters stay untouched on failure. */
        assert_memory_equal(&command, &command_before, sizeof(command));
        assert_memory_equal(&config, &config_before, sizeof(config));

        args_done(&args);
        return error;
}

static char *parse_error(const char *first, ...)
{
        va_list ap;
        char *error;

        va_start(ap, first);
        error = parse_error_v(first, ap);
        va_end(ap);
        return error;
}

static void assert_parse_error(const char *expected, const char *first, ...)
{
        va_list ap;
        char *error;

        va_start(ap, first);
        error = parse_error_v(first, ap);
        va_end(ap);

        assert_contains(error, expected);
        free(error);
}

static void test_run_defaults(void **state)
{
        struct cli_command command;
        struct config config;

        (void)state;
        PARSE_OK(&command, &config, "run");

        assert_int_equal(command.verb, CLI_VERB_RUN);
        assert_false(command.json);
        assert_default_settings(&config);

        config_free(&config);
}

static void test_run_every_option(void **state)
{
        struct cli_command command;
        struct config config;

        (void)state;
        PARSE_OK(&command, &config, "run", "--docker-socket", "/srv/docker.sock", "--bundle",
                 "/srv/bundle", "--state-dir=/srv/state", "--log-dir", "/srv/log",
                 "--select-label", "team=web", "--select-label", "tier", "--all",
                 "--restart-backoff-min", "500ms", "--restart-backoff-max", "2m",
                 "--max-restarts", "9", "--restart-window", "30m", "--forget-after", "1d",
                 "--stop-agents-on-exit", "--stop-grace", "1m30s", "--agent-memory-max", "256M",
                 "--agent-pids-max", "64", "--listen", "tcp:127.0.0.1:51678", "--report-url",
                 "https://collector.example/v1", "--report-ca-file", "/srv/ca.pem",
                 "--audit-log", "/srv/audit.log", "--audit-max-size", "1G", "--log-level",
                 "debug");

        assert_int_equal(command.verb, CLI_VERB_RUN);
        assert_string_equal(config.docker_socket, "/srv/docker.sock");
        assert_string_equal(config.bundle_dir, "/srv/bundle");
        assert_string_equal(config.state_dir, "/srv/state");
        assert_string_equal(config.log_dir, "/srv/log");
        assert_int_equal(config.n_select_labels, 2);
        assert_string_equal(config.select_labels[0].key, "team");
        assert_string_equal(config.select_labels[0].value, "web");
        assert_string_equal(config.select_labels[1].key, "tier");
        assert_null(config.select_labels[1].value);
        assert_true(config.select_all);
        assert_int_equal(config.restart_backoff_min_usec, SEC / 2);
        assert_int_equal(config.restart_backoff_max_usec, 120 * SEC);
        assert_int_equal(config.max_restarts, 9);
        assert_int_equal(config.restart_window_usec, 30 * 60 * SEC);
        assert_int_equal(config.forget_after_usec, 86400 * SEC);
        assert_true(config.stop_agents_on_exit);
        assert_int_equal(config.stop_grace_usec, 90 * SEC);
        assert_int_equal(config.agent_memory_max, 256 << 20);
        assert_int_equal(config.agent_pids_max, 64);
        assert_int_equal(config.n_listen, 1);
        assert_string_equal(config.listen[0], "tcp:127.0.0.1:51678");
        assert_int_equal(config.n_report_urls, 1);
        assert_string_equal(config.report_urls[0], "https://collector.example/v1");
        assert_string_equal(config.report_ca_file, "/srv/ca.pem");
        assert_string_equal(config.audit_log, "/srv/audit.log");
        assert_int_equal(config.audit_max_size, UINT64_C(1) << 30);
        assert_int_equal(config.log_level, LOG_DEBUG);

        config_free(&config);
}

static void test_command_line_overrides_file(void **state)
{
        char *path = write_temp_file("override.json",
                                     "{\"docker-socket\": \"/file/docker.sock\",\n"
                                     " \"restart-backoff-min\": \"2s\",\n"
                                     " \"stop-grace\": \"5s\",\n"
                                     " \"select-label\": [\"a=b\", \"c=d\"],\n"
                                     " \"listen\": [\"unix:/file/a.sock\"],\n"
                                     " \"report-url\": [\"http://127.0.0.1:1/file\"],\n"
                                     " \"all\": true,\n"
                                     " \"log-level\": \"warning\"}\n");
        struct cli_command command;
        struct config config;

        (void)state;
        /* Options before --config override the file just as well as options after it. */
        PARSE_OK(&command, &config, "run", "--docker-socket", "/cli/docker.sock", "--config", path,
                 "--stop-grace", "7s", "--select-label", "e=f", "--select-label", "g");

        assert_string_equal(config.docker_socket, "/cli/docker.sock");
        assert_int_equal(config.stop_grace_usec, 7 * SEC);
        assert_int_equal(config.restart_backoff_min_usec, 2 * SEC);
        assert_true(config.select_all);
        assert_int_equal(config.log_level, LOG_WARNING);
        assert_string_equal(config.config_file, path);

        /* A repeatable option on the command line replaces the file's list... */
        assert_int_equal(config.n_select_labels, 2);
        assert_string_equal(config.select_labels[0].key, "e");
        assert_string_equal(config.select_labels[0].value, "f");
        assert_string_equal(config.select_labels[1].key, "g");

        /* ...and the lists that the command line leaves alone come from the file. */
        assert_int_equal(config.n_listen, 1);
        assert_string_equal(config.listen[0], "unix:/file/a.sock");
        assert_int_equal(config.n_report_urls, 1);
        assert_string_equal(config.report_urls[0], "http://127.0.0.1:1/file");

        config_free(&config);
        free(path);
}

static void test_file_errors_rejected(void **state)
{
        char *unknown = write_temp_file("unknown.json", "{\"docker-sock\": \"/x\"}");
        char *type = write_temp_file("type.json", "{\"max-restarts\": \"5\"}");
        char *malformed = write_temp_file("malformed.json", "{\n\"all\": tru\n}");
        char *relation = write_temp_file("relation.json", "{\"restart-backoff-min\": \"10m\"}");

        (void)state;
        assert_parse_error("unknown key \"docker-sock\"", "run", "--config", unknown, NULL);
        assert_parse_error("invalid type for \"max-restarts\"", "run", "--config", type, NULL);
        assert_parse_error("is not valid JSON", "run", "--config", malformed, NULL);
        assert_parse_error("failed to read config file /nonexistent.json", "run", "--config",
                           "/nonexistent.json", NULL);

        /* The relation is checked on the file and the command line together. */
        assert_parse_error("restart-backoff-min (10m) must not be longer than "
                           "restart-backoff-max (5m)",
                           "run", "--config", relation, NULL);

        struct cli_command command;
        struct config config;

        PARSE_OK(&command, &config, "run", "--config", relation, "--restart-backoff-max", "1h");
        assert_int_equal(config.restart_backoff_min_usec, 600 * SEC);
        config_free(&config);

        free(relation);
        free(malformed);
        free(type);
        free(unknown);
}

static void test_bad_values_rejected(void **state)
{
        (void)state;
        assert_parse_error("invalid duration \"5x\" for --restart-backoff-min: expected a number "
                           "with a unit (ms, s, m, h, d), e.g. 250ms or 5m",
                           "run", "--restart-backoff-min", "5x", NULL);
        assert_parse_error("invalid duration \"\" for --stop-grace", "run", "--stop-grace", "",
                           NULL);
        assert_parse_error("invalid duration \"-1s\" for --forget-after", "run", "--forget-after",
                           "-1s", NULL);
        assert_parse_error("invalid duration \"99999999999d\" for --restart-window: the duration "
                           "is too long",
                           "run", "--restart-window", "99999999999d", NULL);
        assert_parse_error("invalid size \"12X\" for --agent-memory-max", "run",
                           "--agent-memory-max", "12X", NULL);
        assert_parse_error("invalid number \"0\" for --max-restarts: expected a whole number "
                           "from 1",
                           "run", "--max-restarts", "0", NULL);
        assert_parse_error("invalid number \"-3\" for --agent-pids-max", "run", "--agent-pids-max",
                           "-3", NULL);
        assert_parse_error("invalid log level \"trace\" for --log-level", "run", "--log-level",
                           "trace", NULL);
        assert_parse_error("invalid label rule \"=web\" for --select-label", "run",
                           "--select-label", "=web", NULL);
        assert_parse_error("invalid path \"\" for --bundle", "run", "--bundle", "", NULL);
}

static void test_listen_loopback_only(void **state)
{
        static const char *const accepted[] = { "tcp:127.0.0.1:8080", "tcp:127.1.2.3:80",
                                                "tcp:[::1]:8080" };
        static const char *const not_loopback[] = { "tcp:0.0.0.0:8080", "tcp:10.0.0.1:8080",
                                               "tcp:[::]:8080" };
        static const char *const host_names[] = { "tcp:localhost:8080", "tcp:metadata:80" };
        struct cli_command command;
        struct config config;

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(accepted); i++) {
                PARSE_OK(&command, &config, "run", "--listen", accepted[i]);
                assert_int_equal(config.n_listen, 1);
                assert_string_equal(config.listen[0], accepted[i]);
                config_free(&config);
        }

        for (size_t i = 0; i < ARRAY_SIZE(not_loopback); i++) {
                char *error = parse_error("run", "--listen", not_loopback[i], NULL);

                assert_contains(error, "invalid listen address");
                assert_contains(error, "is not a loopback address");
                assert_contains(error, "every container started with --network host can reach");
                free(error);
        }

        for (size_t i = 0; i < ARRAY_SIZE(host_names); i++) {
                char *error = parse_error("run", "--listen", host_names[i], NULL);

                assert_contains(error, "is not an IP address");
                free(error);
        }

        /* Several addresses, and a unix socket beside TCP. */
        PARSE_OK(&command, &config, "run", "--listen", "unix:/run/x.sock", "--listen",
                 "tcp:[::1]:9");
        assert_int_equal(config.n_listen, 2);
        assert_string_equal(config.listen[0], "unix:/run/x.sock");
        assert_string_equal(config.listen[1], "tcp:[::1]:9");
        config_free(&config);
}

static void test_report_url_schemes(void **state)
{
        struct cli_command command;
        struct config config;

        (void)state;
        PARSE_OK(&command, &config, "run", "--report-url", "http://127.0.0.1:8000/agents",
                 "--report-url", "https://collector.example/v1", "--report-url",
                 "unix:/run/collector.sock:/v1/agents");
        assert_int_equal(config.n_report_urls, 3);
        assert_string_equal(config.report_urls[2], "unix:/run/collector.sock:/v1/agents");
        config_free(&config);

        assert_parse_error("invalid report URL \"ftp://collector.example/\" for --report-url: "
                           "expected a URL that starts with http://, https:// or unix:",
                           "run", "--report-url", "ftp://collector.example/", NULL);
        assert_parse_error("expected unix:SOCKET-PATH:/URL-PATH", "run", "--report-url",
                           "unix:/run/collector.sock", NULL);
        assert_parse_error("invalid report URL", "run", "--report-url", "collector:80", NULL);
}

static void test_relative_paths_absolute(void **state)
{
        struct cli_command command;
        struct config config;
        char *expected;

        (void)state;
        assert_int_equal(chdir(temp_dir), 0);

        PARSE_OK(&command, &config, "run", "--state-dir", "state", "--docker-socket",
                 "./docker.sock", "--audit-log", "logs/audit.log", "--listen", "unix:tmde.sock");

        expected = xasprintf("%s/state", temp_dir);
        assert_string_equal(config.state_dir, expected);
        free(expected);
        expected = xasprintf("%s/docker.sock", temp_dir);
        assert_string_equal(config.docker_socket, expected);
        free(expected);
        expected = xasprintf("%s/logs/audit.log", temp_dir);
        assert_string_equal(config.audit_log, expected);
        free(expected);
        expected = xasprintf("unix:%s/tmde.sock", temp_dir);
        assert_string_equal(config.listen[0], expected);
        free(expected);
        config_free(&config);

        /* The config file's own path and the paths inside it too. */
        char *path = write_temp_file("relative.json", "{\"bundle\": \"bundle\"}");

        PARSE_OK(&command, &config, "run", "--config", "relative.json");
        assert_string_equal(config.config_file, path);
        expected = xasprintf("%s/bundle", temp_dir);
        assert_string_equal(config.bundle_dir, expected);
        free(expected);
        config_free(&config);
        free(path);

        assert_int_equal(chdir(original_cwd), 0);
}

static void test_status_options(void **state)
{
        char *path = write_temp_file("shared.json", "{\"state-dir\": \"/srv/state\", "
                                                    "\"max-restarts\": \"ignored by status\", "
                                                    "\"docker-socket\": \"/srv/docker.sock\"}");
        struct cli_command command;
        struct config config;

        (void)state;
        PARSE_OK(&command, &config, "status");
        assert_int_equal(command.verb, CLI_VERB_STATUS);
        assert_false(command.json);
        assert_string_equal(config.listen[0], "unix:/run/execvisor/tmde.sock");
        config_free(&config);

        PARSE_OK(&command, &config, "status", "--json", "--state-dir", "/tmp/ev-state");
        assert_int_equal(command.verb, CLI_VERB_STATUS);
        assert_true(command.json);
        assert_string_equal(config.state_dir, "/tmp/ev-state");
        assert_string_equal(config.listen[0], "unix:/tmp/ev-state/tmde.sock");
        config_free(&config);

        /* status reads the daemon's file but skips the settings it has no use for. */
        PARSE_OK(&command, &config, "status", "--config", path);
        assert_string_equal(config.state_dir, "/srv/state");
        assert_string_equal(config.docker_socket, "/var/run/docker.sock");
        assert_int_equal(config.max_restarts, 5);
        config_free(&config);

        assert_parse_error("unknown or ambiguous option \"--docker-socket\" for "
                           "\"execvisor status\"",
                           "status", "--docker-socket", "/x", NULL);
        assert_parse_error("unknown or ambiguous option \"--json\" for \"execvisor run\"", "run",
                           "--json", NULL);

        free(path);
}

static void test_option_syntax_errors(void **state)
{
        (void)state;
        assert_parse_error("unknown or ambiguous option \"--no-such-option\" for \"execvisor run\"",
                           "run", "--no-such-option", NULL);
        assert_parse_error("unknown or ambiguous option \"-x\"", "run", "-x", NULL);
        assert_parse_error("option --stop-grace of \"execvisor run\" requires a value", "run",
                           "--stop-grace", NULL);
        assert_parse_error("option --all of \"execvisor run\" takes no value", "run", "--all=false",
                           NULL);
        assert_parse_error("option --config of \"execvisor run\" requires a value", "run",
                           "--config", NULL);
        assert_parse_error("unexpected argument \"extra\": \"execvisor run\" takes options only",
                           "run", "--all", "extra", NULL);
        assert_parse_error("unexpected argument \"--all\"", "run", "--", "--all", NULL);
        assert_parse_error("option --config is given twice", "run", "--config", "/a.json",
                           "--config", "/b.json", NULL);
        /* "--re" could be --restart-backoff-min, --restart-window, --report-url... */
        assert_parse_error("unknown or ambiguous option \"--re\"", "run", "--re", "1s", NULL);
}

static void test_commands(void **state)
{
        struct cli_command command;
        struct config config;
        char *error = NULL;

        (void)state;
        PARSE_OK(&command, &config, "version");
        assert_int_equal(command.verb, CLI_VERB_VERSION);
        config_free(&config);

        PARSE_OK(&command, &config, "--version");
        assert_int_equal(command.verb, CLI_VERB_VERSION);
        config_free(&config);

        assert_parse_error("unknown command \"start\"", "start", NULL);
        assert_parse_error("unknown command \"--all\"", "--all", NULL);
        assert_parse_error("unexpected argument \"now\" for \"execvisor version\"", "version",
                           "now", NULL);

        /* No command at all. */
        assert_int_equal(parse(&command, &config, &error, NULL), -EINVAL);
        assert_contains(error, "missing command");
        free(error);
}

static void assert_help(enum cli_verb topic, ...)
{
        struct args args = { .argc = 1, .argv = { xstrdup("execvisor") } };
        struct cli_command command;
        struct config config;
        const char *argument;
        char *error = NULL;
        va_list ap;

        va_start(ap, topic);
        while ((argument = va_arg(ap, const char *)))
                args.argv[args.argc++] = xstrdup(argument);
        va_end(ap);

        if (cli_parse(args.argc, args.argv, &command, &config, &error) != 0)
                fail_msg("help for %s failed: %s", args.argv[1], error);
        assert_int_equal(command.verb, CLI_VERB_HELP);
        assert_int_equal(command.help_topic, topic);

        config_free(&config);
        args_done(&args);
}

static void test_help_forms(void **state)
{
        (void)state;
        assert_help(CLI_VERB_HELP, "help", NULL);
        assert_help(CLI_VERB_HELP, "--help", NULL);
        assert_help(CLI_VERB_HELP, "-h", NULL);
        assert_help(CLI_VERB_HELP, "help", "--help", NULL);
        assert_help(CLI_VERB_RUN, "help", "run", NULL);
        assert_help(CLI_VERB_STATUS, "help", "status", NULL);
        assert_help(CLI_VERB_VERSION, "help", "version", NULL);
        assert_help(CLI_VERB_RUN, "run", "--help", NULL);
        assert_help(CLI_VERB_RUN, "run", "-h", NULL);
        assert_help(CLI_VERB_STATUS, "status", "--help", NULL);
        assert_help(CLI_VERB_VERSION, "version", "--help", NULL);

        /* Help wins over a bad value or a broken config file. */
        assert_help(CLI_VERB_RUN, "run", "--stop-grace", "soon", "--help", NULL);
        assert_help(CLI_VERB_RUN, "run", "--config", "/nonexistent.json", "--help", NULL);

        assert_parse_error("unknown command \"stop\"", "help", "stop", NULL);
        assert_parse_error("unexpected argument \"extra\"", "help", "run", "extra", NULL);
}

static void test_parse_repeatable_calls(void **state)
{
        struct cli_command command;
        struct config config;
        char *error;

        (void)state;
        /* getopt keeps global state; a failed parse must not leak into the next one. */
        error = parse_error("run", "--stop-grace", NULL);
        free(error);

        PARSE_OK(&command, &config, "run", "--stop-grace", "3s");
        assert_int_equal(config.stop_grace_usec, 3 * SEC);
        config_free(&config);

        PARSE_OK(&command, &config, "run", "--max-restarts", "2");
        assert_int_equal(config.stop_grace_usec, 20 * SEC);
        assert_int_equal(config.max_restarts, 2);
        config_free(&config);
}

static char *usage_text(enum cli_verb topic)
{
        char *text = NULL;
        size_t size = 0;
        FILE *out = open_memstream(&text, &size);

        assert_non_null(out);
        cli_print_usage(out, topic);
        assert_int_equal(fclose(out), 0);
        return text;
}

static void assert_lines_fit(const char *text)
{
        for (const char *line = text; *line;) {
                size_t length = strcspn(line, "\n");

                if (length > 79)
                        fail_msg("usage line is %zu columns wide: %.*s", length, (int)length,
                                 line);
                line += length;
                if (*line == '\n')
                        line++;
        }
}

static void test_usage_run(void **state)
{
        char *text = usage_text(CLI_VERB_RUN);

        (void)state;
        assert_contains(text, "Usage: execvisor run [OPTIONS]");
        for (size_t i = 0; i < config_n_settings; i++) {
                const struct config_setting *setting = &config_settings[i];
                char *option = xasprintf("  --%s%s%s\n", setting->name,
                                         setting->argument ? " " : "",
                                         setting->argument ? setting->argument : "");

                if (setting->commands & CONFIG_COMMAND_RUN)
                        assert_contains(text, option);
                free(option);
        }
        assert_contains(text, "  --config FILE\n");
        assert_contains(text, "  --help\n");
        assert_contains(text, "Default: 1s.");
        assert_contains(text, "Default: /var/run/docker.sock.");
        assert_contains(text, "Default: unix:STATE-DIR/tmde.sock.");
        assert_contains(text, "every container started with --network");
        assert_contains(text, "(ms, s, m, h or d)");
        assert_null(strstr(text, "--json"));
        assert_lines_fit(text);
        free(text);
}

static void test_usage_other_topics(void **state)
{
        char *text;

        (void)state;
        text = usage_text(CLI_VERB_STATUS);
        assert_contains(text, "Usage: execvisor status [OPTIONS]");
        assert_contains(text, "  --json\n");
        assert_contains(text, "  --state-dir DIR\n");
        assert_contains(text, "  --config FILE\n");
        assert_null(strstr(text, "--docker-socket"));
        assert_lines_fit(text);
        free(text);

        text = usage_text(CLI_VERB_HELP);
        assert_contains(text, "Usage: execvisor COMMAND [OPTIONS]");
        assert_contains(text, "  run ");
        assert_contains(text, "  status ");
        assert_contains(text, "  version ");
        assert_contains(text, "  help ");
        assert_lines_fit(text);
        free(text);

        text = usage_text(CLI_VERB_VERSION);
        assert_contains(text, "Usage: execvisor version");
        free(text);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_run_defaults),
                cmocka_unit_test(test_run_every_option),
                cmocka_unit_test(test_command_line_overrides_file),
                cmocka_unit_test(test_file_errors_rejected),
                cmocka_unit_test(test_bad_values_rejected),
                cmocka_unit_test(test_listen_loopback_only),
                cmocka_unit_test(test_report_url_schemes),
                cmocka_unit_test(test_relative_paths_absolute),
                cmocka_unit_test(test_status_options),
                cmocka_unit_test(test_option_syntax_errors),
                cmocka_unit_test(test_commands),
                cmocka_unit_test(test_help_forms),
                cmocka_unit_test(test_parse_repeatable_calls),
                cmocka_unit_test(test_usage_run),
                cmocka_unit_test(test_usage_other_topics),
        };

        return cmocka_run_group_tests(tests, setup_temp_dir, teardown_temp_dir);
}
