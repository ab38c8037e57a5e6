/* Unit tests of supervisor/config.c: value parsers, address checks, the JSON
 * config file and config_finalize(). */

#include <errno.h>
#include <fcntl.h>
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

#include "supervisor/config.h"
#include "supervisor/util.h"

#define TEMP_DIR_TEMPLATE "/tmp/execvisor-test-config.XXXXXX"
#include "tests/unit/temp_dir.h"
#include "tests/unit/config_defaults.h"

#define SEC UINT64_C(1000000)

static void assert_duration(const char *text, uint64_t expected_usec)
{
        uint64_t usec = UINT64_MAX - 1;

        if (parse_duration(text, &usec) != 0)
                fail_msg("parse_duration(\"%s\") failed", text);
        if (usec != expected_usec)
                fail_msg("parse_duration(\"%s\") = %llu, expected %llu", text,
                         (unsigned long long)usec, (unsigned long long)expected_usec);
}

static void assert_duration_fails(const char *text, int expected_error)
{
        uint64_t usec = 42;
        int r = parse_duration(text, &usec);

        if (r != expected_error)
                fail_msg("parse_duration(\"%s\") returned %d, expected %d", text, r,
                         expected_error);
        assert_int_equal(usec, 42);
}

static void test_duration_valid(void **state)
{
        (void)state;
        assert_duration("0", 0);
        assert_duration("0s", 0);
        assert_duration("250ms", 250000);
        assert_duration("1s", SEC);
        assert_duration("5m", 300 * SEC);
        assert_duration("1h", 3600 * SEC);
        assert_duration("2d", 2 * 86400 * SEC);
        assert_duration("007s", 7 * SEC);
}

static void test_duration_combined(void **state)
{
        (void)state;
        assert_duration("1m30s", 90 * SEC);
        assert_duration("1h1m1s1ms", 3661 * SEC + 1000);
        assert_duration("1d12h", 36 * 3600 * SEC);
        assert_duration("1s500ms", 1500000);
}

static void test_duration_bad(void **state)
{
        static const char *const bad[] = {
                "",     "5",    "5x",   "s",     "ms",   "-1s", "+1s",    " 1s", "1s ",
                "1.5s", "1m30", "1 s",  "1S",    "0x1s", "1sm", "1min",   "5us", "00",
                "1,5s", "∞",    "1s-1", "1m30x", "\t1s", "1d ", "0 ",     "h1",  "1e3s",
        };

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                assert_duration_fails(bad[i], -EINVAL);
}

static void test_duration_overflow(void **state)
{
        (void)state;
        /* UINT64_MAX microseconds is 213503982 days and a fraction. */
        assert_duration("213503982d", UINT64_C(213503982) * 86400 * SEC);
        assert_duration_fails("213503983d", -ERANGE);
        assert_duration_fails("18446744073709551616ms", -ERANGE);
        assert_duration_fails("99999999999999999999999s", -ERANGE);
        assert_duration_fails("213503982d213503982d", -ERANGE);
        assert_duration("18446744073709551ms", UINT64_C(18446744073709551) * 1000);
}

static void test_size_valid(void **state)
{
        static const struct {
                const char *text;
                uint64_t bytes;
        } cases[] = {
                { "0", 0 },
                { "4096", 4096 },
                { "1K", 1024 },
                { "1k", 1024 },
                { "64M", UINT64_C(64) << 20 },
                { "1G", UINT64_C(1) << 30 },
                { "2T", UINT64_C(2) << 40 },
                { "16777215T", UINT64_C(16777215) << 40 },
                { "18446744073709551615", UINT64_MAX },
        };

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                uint64_t bytes = 1;

                if (parse_size(cases[i].text, &bytes) != 0)
                        fail_msg("parse_size(\"%s\") failed", cases[i].text);
                assert_int_equal(bytes, cases[i].bytes);
        }
}

static void test_size_bad(void **state)
{
        static const char *const bad[] = { "",   "K",  "1KB", "1.5G", "-1",  "1 K",
                                           "1P", "M1", "1KK", " 1",   "0x10", "1b" };
        uint64_t bytes = 7;

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                if (parse_size(bad[i], &bytes) != -EINVAL)
                        fail_msg("parse_size(\"%s\") did not fail with -EINVAL", bad[i]);
        assert_int_equal(bytes, 7);

        assert_int_equal(parse_size("16777216T", &bytes), -ERANGE);
        assert_int_equal(parse_size("18446744073709551616", &bytes), -ERANGE);
        assert_int_equal(bytes, 7);
}

static void test_label_rule_forms(void **state)
{
        struct label_rule rule;

        (void)state;
        assert_int_equal(parse_label_rule("team=web", &rule), 0);
        assert_string_equal(rule.key, "team");
        assert_string_equal(rule.value, "web");
        label_rule_done(&rule);

        assert_int_equal(parse_label_rule("team=", &rule), 0);
        assert_string_equal(rule.key, "team");
        assert_string_equal(rule.value, "");
        label_rule_done(&rule);

        assert_int_equal(parse_label_rule("com.example.agent", &rule), 0);
        assert_string_equal(rule.key, "com.example.agent");
        assert_null(rule.value);
        label_rule_done(&rule);

        assert_int_equal(parse_label_rule("url=http://x/?a=b", &rule), 0);
        assert_string_equal(rule.key, "url");
        assert_string_equal(rule.value, "http://x/?a=b");
        label_rule_done(&rule);

        assert_int_equal(parse_label_rule("note=two words", &rule), 0);
        assert_string_equal(rule.value, "two words");
        label_rule_done(&rule);
}

static void test_label_rule_bad(void **state)
{
        static const char *const bad[] = { "", "=web", "my team=web", "team\n=web", "\tteam",
                                           "team\x7f=x" };
        struct label_rule rule = { .key = (char *)"untouched" };

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                if (parse_label_rule(bad[i], &rule) != -EINVAL)
                        fail_msg("parse_label_rule(\"%s\") did not fail", bad[i]);
        assert_string_equal(rule.key, "untouched");
}

static void test_label_rule_conflict(void **state)
{
        const struct config_setting *setting = config_setting_find("select-label");
        struct config config;
        char *error = NULL;

        (void)state;
        config_init_defaults(&config);

        assert_int_equal(config_apply_setting(&config, setting, "team=web", "--select-label",
                                              &error),
                         0);
        /* The same rule twice and a rule for any value are redundant, not contradictory. */
        assert_int_equal(config_apply_setting(&config, setting, "team=web", "--select-label",
                                              &error),
                         0);
        assert_int_equal(config_apply_setting(&config, setting, "team", "--select-label", &error),
                         0);
        assert_null(error);
        assert_int_equal(config.n_select_labels, 3);

        assert_int_equal(config_apply_setting(&config, setting, "team=db", "--select-label",
                                              &error),
                         -EINVAL);
        assert_contains(error, "invalid label rule \"team=db\" for --select-label");
        assert_contains(error, "conflicts with team=web");
        assert_int_equal(config.n_select_labels, 3);

        free(error);
        config_free(&config);
}

static void assert_listen_ok(const char *address)
{
        char *reason = NULL;

        if (check_listen_address(address, &reason) != 0)
                fail_msg("check_listen_address(\"%s\") failed: %s", address, reason);
}

static char *listen_reason(const char *address)
{
        char *reason = NULL;

        if (check_listen_address(address, &reason) != -EINVAL)
                fail_msg("check_listen_address(\"%s\") did not fail", address);
        assert_non_null(reason);
        return reason;
}

static void test_listen_loopback_accepted(void **state)
{
        (void)state;
        assert_listen_ok("tcp:127.0.0.1:8080");
        assert_listen_ok("tcp:127.1.2.3:80");
        assert_listen_ok("tcp:127.255.255.255:65535");
        assert_listen_ok("tcp:[::1]:8080");
        assert_listen_ok("tcp:[0:0:0:0:0:0:0:1]:1");
        assert_listen_ok("unix:/run/execvisor/tmde.sock");
        assert_listen_ok("unix:relative.sock");
}

static void test_listen_other_rejected(void **state)
{
        static const char *const not_loopback[] = {
                "tcp:0.0.0.0:80",   "tcp:10.0.0.1:80",         "tcp:[::]:80",
                "tcp:128.0.0.1:80", "tcp:[::ffff:127.0.0.1]:80", "tcp:192.168.1.1:8080",
                "tcp:126.255.255.255:80",
        };
        static const char *const host_names[] = { "tcp:localhost:80", "tcp:example.com:80",
                                                  "tcp:127.1:80", "tcp::80" };
        static const char *const malformed[] = {
                "tcp:127.0.0.1",       "tcp:127.0.0.1:0", "tcp:127.0.0.1:65536",
                "tcp:127.0.0.1:http",  "tcp:127.0.0.1:",  "tcp:[::1]80",
                "tcp:[::1",            "tcp:::1:80",      "tcp:[::1]:-1",
                "unix:",               "udp:127.0.0.1:53", "127.0.0.1:80",
                "",                    "tcp:[::1]:+80",   "tcp:[zz]:80",
        };

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(not_loopback); i++) {
                char *reason = listen_reason(not_loopback[i]);

                assert_contains(reason, "is not a loopback address");
                assert_contains(reason, "--network host");
                free(reason);
        }

        for (size_t i = 0; i < ARRAY_SIZE(host_names); i++) {
                char *reason = listen_reason(host_names[i]);

                assert_contains(reason, "is not an IP address");
                free(reason);
        }

        for (size_t i = 0; i < ARRAY_SIZE(malformed); i++)
                free(listen_reason(malformed[i]));
}

static void test_listen_unix_path_too_long(void **state)
{
        char path[200];
        char *address, *reason;

        (void)state;
        memset(path, 'a', sizeof(path) - 1);
        path[sizeof(path) - 1] = '\0';
        address = xasprintf("unix:/%s", path);

        reason = listen_reason(address);
        assert_contains(reason, "107 bytes");
        free(reason);
        free(address);

        /* 107 bytes is the longest path that fits sun_path with its NUL. */
        path[106] = '\0';
        address = xasprintf("unix:/%s", path);
        assert_listen_ok(address);
        free(address);
}

static void test_report_url_schemes(void **state)
{
        static const char *const good[] = {
                "http://127.0.0.1:8080/agents",
                "https://collector.example.com/v1/agents",
                "HTTPS://collector.example.com/",
                "http://[::1]:9000/x",
                "unix:/run/collector.sock:/v1/agents",
                "unix:relative.sock:/",
        };
        static const char *const bad[] = {
                "ftp://collector.example.com/",
                "file:///etc/passwd",
                "collector.example.com/agents",
                "",
                "http://",
                "https:///no-host",
                "http://exa mple.com/",
                "unix:/run/collector.sock",
                "unix::/v1/agents",
                "unix:/run/collector.sock:/a b",
                "gopher://x/",
        };
        char *reason = NULL;

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(good); i++)
                if (check_report_url(good[i], &reason) != 0)
                        fail_msg("check_report_url(\"%s\") failed: %s", good[i], reason);

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                if (check_report_url(bad[i], &reason) != -EINVAL)
                        fail_msg("check_report_url(\"%s\") did not fail", bad[i]);
                assert_non_null(reason);
                free(reason);
                reason = NULL;
        }

        assert_int_equal(check_report_url("ftp://x/", &reason), -EINVAL);
        assert_contains(reason, "http://, https:// or unix:");
        free(reason);
}

static void test_defaults_finalized(void **state)
{
        struct config config;
        char *error = NULL;

        (void)state;
        config_init_defaults(&config);
        assert_int_equal(config_finalize(&config, &error), 0);
        assert_null(error);

        assert_default_settings(&config);

        config_free(&config);
}

/* The defaults in the usage text must be the ones config_init_defaults() sets. */
static void test_default_texts_match(void **state)
{
        struct config defaults, applied;
        size_t checked = 0;

        (void)state;
        config_init_defaults(&defaults);

        for (size_t i = 0; i < config_n_settings; i++) {
                const struct config_setting *setting = &config_settings[i];
                char *error = NULL;

                if (!setting->default_text || config_setting_is_repeatable(setting) ||
                    setting->type == CONFIG_VALUE_PATH || streq(setting->default_text, "no limit"))
                        continue;

                config_init_defaults(&applied);
                memset((char *)&applied + setting->offset, 0xa5, sizeof(uint32_t));
                if (config_apply_setting(&applied, setting, setting->default_text, "test", &error))
                        fail_msg("default of --%s does not parse: %s", setting->name, error);
                if (memcmp((char *)&applied + setting->offset, (char *)&defaults + setting->offset,
                           setting->type == CONFIG_VALUE_DURATION ||
                                           setting->type == CONFIG_VALUE_SIZE ||
                                           setting->type == CONFIG_VALUE_CAPABILITIES
                                   ? sizeof(uint64_t)
                                   : sizeof(int)) != 0)
                        fail_msg("default text of --%s differs from its default", setting->name);
                config_free(&applied);
                checked++;
        }

        assert_int_equal(checked, 9);
        config_free(&defaults);
}

static void test_file_valid(void **state)
{
        char *path = write_temp_file("valid.json",
                                     "{\n"
                                     "  \"docker-socket\": \"/srv/docker.sock\",\n"
                                     "  \"bundle\": \"/srv/bundle\",\n"
                                     "  \"select-label\": [\"team=web\", \"tier\"],\n"
                                     "  \"all\": true,\n"
                                     "  \"restart-backoff-min\": \"250ms\",\n"
                                     "  \"restart-backoff-max\": \"1m30s\",\n"
                                     "  \"max-restarts\": 3,\n"
                                     "  \"restart-window\": \"1h\",\n"
                                     "  \"forget-after\": \"2d\",\n"
                                     "  \"stop-agents-on-exit\": true,\n"
                                     "  \"stop-grace\": \"0\",\n"
                                     "  \"agent-memory-max\": \"64M\",\n"
                                     "  \"agent-pids-max\": 100,\n"
                                     "  \"listen\": [\"unix:/srv/a.sock\", \"tcp:127.0.0.1:9\"],\n"
                                     "  \"report-url\": [\"https://collector.example/v1\"],\n"
                                     "  \"report-ca-file\": \"/srv/ca.pem\",\n"
                                     "  \"audit-log\": \"/srv/audit.log\",\n"
                                     "  \"audit-max-size\": 4096,\n"
                                     "  \"log-level\": \"debug\"\n"
                                     "}\n");
        struct config config;
        char *error = NULL;

        (void)state;
        config_init_defaults(&config);
        assert_int_equal(config_load_file(&config, path, &error), 0);
        assert_null(error);

        assert_string_equal(config.docker_socket, "/srv/docker.sock");
        assert_string_equal(config.bundle_dir, "/srv/bundle");
        assert_int_equal(config.n_select_labels, 2);
        assert_string_equal(config.select_labels[0].key, "team");
        assert_string_equal(config.select_labels[0].value, "web");
        assert_string_equal(config.select_labels[1].key, "tier");
        assert_null(config.select_labels[1].value);
        assert_true(config.select_all);
        assert_int_equal(config.restart_backoff_min_usec, 250000);
        assert_int_equal(config.restart_backoff_max_usec, 90 * SEC);
        assert_int_equal(config.max_restarts, 3);
        assert_int_equal(config.restart_window_usec, 3600 * SEC);
        assert_int_equal(config.forget_after_usec, 2 * 86400 * SEC);
        assert_true(config.stop_agents_on_exit);
        assert_int_equal(config.stop_grace_usec, 0);
        assert_int_equal(config.agent_memory_max, 64 << 20);
        assert_int_equal(config.agent_pids_max, 100);
        assert_int_equal(config.n_listen, 2);
        assert_string_equal(config.listen[0], "unix:/srv/a.sock");
        assert_string_equal(config.listen[1], "tcp:127.0.0.1:9");
        assert_int_equal(config.n_report_urls, 1);
        assert_string_equal(config.report_urls[0], "https://collector.example/v1");
        assert_string_equal(config.report_ca_file, "/srv/ca.pem");
        assert_string_equal(config.audit_log, "/srv/audit.log");
        assert_int_equal(config.audit_max_size, 4096);
        assert_int_equal(config.log_level, LOG_DEBUG);
        assert_string_equal(config.config_file, path);

        assert_int_equal(config_finalize(&config, &error), 0);
        assert_null(error);

        config_free(&config);
        free(path);
}

static void test_file_unknown_key(void **state)
{
        char *path =
                write_temp_file("unknown.json", "{\"log-level\": \"info\", \"restart-max\": 3}");
        struct config config;
        char *error = NULL;

        (void)state;
        config_init_defaults(&config);
        assert_int_equal(config_load_file(&config, path, &error), -EINVAL);
        assert_contains(error, "unknown key \"restart-max\"");
        assert_contains(error, path);

        /* --config is a command line option, not a key. */
        free(error);
        error = NULL;
        free(path);
        path = write_temp_file("config-key.json", "{\"config\": \"/etc/other.json\"}");
        assert_int_equal(config_load_file(&config, path, &error), -EINVAL);
        assert_contains(error, "unknown key \"config\"");

        free(error);
        config_free(&config);
        free(path);
}

static char *load_error(const char *name, const char *content)
{
        char *path = write_temp_file(name, content);
        struct config config;
        char *error = NULL;

        config_init_defaults(&config);
        if (config_load_file(&config, path, &error) != -EINVAL)
                fail_msg("config file %s was accepted: %s", name, content);
        assert_non_null(error);

        config_free(&config);
        free(path);
        return error;
}

static void test_file_wrong_type(void **state)
{
        static const struct {
                const char *content;
                const char *origin;
                const char *expected;
        } cases[] = {
                { "{\"max-restarts\": \"5\"}", "\"max-restarts\"",
                  "expected an integer, got a string" },
                { "{\"max-restarts\": 2.5}", "\"max-restarts\"",
                  "expected an integer, got a floating-point number" },
                { "{\"all\": \"yes\"}", "\"all\"", "expected true or false, got a string" },
                { "{\"docker-socket\": 5}", "\"docker-socket\"",
                  "expected a string, got an integer" },
                { "{\"restart-backoff-min\": 1}", "\"restart-backoff-min\"",
                  "expected a string, got an integer" },
                { "{\"select-label\": \"team=web\"}", "\"select-label\"",
                  "expected an array of strings, got a string" },
                { "{\"listen\": [\"unix:/a.sock\", 5]}", "\"listen\"[1]",
                  "expected a string, got an integer" },
                { "{\"agent-memory-max\": true}", "\"agent-memory-max\"",
                  "expected a string or an integer, got a boolean" },
                { "{\"log-level\": null}", "\"log-level\"", "expected a string, got null" },
                { "{\"report-url\": {}}", "\"report-url\"",
                  "expected an array of strings, got an object" },
        };

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char *name = xasprintf("type-%zu.json", i);
                char *expected = xasprintf("invalid type for %s in %s/%s: %s", cases[i].origin,
                                           temp_dir, name, cases[i].expected);
                char *error = load_error(name, cases[i].content);

                assert_contains(error, expected);
                free(error);
                free(expected);
                free(name);
        }
}

static void test_file_bad_value(void **state)
{
        char *error;

        (void)state;
        error = load_error("bad-duration.json", "{\"restart-backoff-min\": \"5x\"}");
        assert_contains(error, "invalid duration \"5x\" for \"restart-backoff-min\" in ");
        assert_contains(error, "expected a number with a unit (ms, s, m, h, d)");
        free(error);

        error = load_error("bad-size.json", "{\"agent-memory-max\": -1}");
        assert_contains(error, "invalid size \"-1\" for \"agent-memory-max\"");
        free(error);

        error = load_error("bad-count.json", "{\"max-restarts\": 0}");
        assert_contains(error, "invalid number \"0\" for \"max-restarts\"");
        free(error);

        error = load_error("big-count.json", "{\"max-restarts\": 4294967296}");
        assert_contains(error, "from 1 to 4294967295");
        free(error);

        error = load_error("bad-listen.json", "{\"listen\": [\"tcp:10.0.0.1:80\"]}");
        assert_contains(error, "invalid listen address \"tcp:10.0.0.1:80\" for \"listen\"[0]");
        free(error);

        error = load_error("bad-level.json", "{\"log-level\": \"INFO\"}");
        assert_contains(error, "expected error, warning, notice, info or debug");
        free(error);

        error = load_error("nul.json", "{\"state-dir\": \"/run\\u0000/x\"}");
        assert_contains(error, "NUL character");
        free(error);
}

static void test_file_malformed_json(void **state)
{
        char *error;

        (void)state;
        error = load_error("comma.json", "{\n  \"all\": true,\n}\n");
        assert_contains(error, "is not valid JSON: ");
        assert_contains(error, "at line 3");
        free(error);

        error = load_error("garbage.json", "{\n\n  all: true\n}");
        assert_contains(error, "is not valid JSON");
        assert_contains(error, "at line 3");
        free(error);

        error = load_error("truncated.json", "{\n  \"all\": true\n");
        assert_contains(error, "the file ends at line 3 before the JSON value is complete");
        free(error);

        error = load_error("trailing.json", "{}\n{}\n");
        assert_contains(error, "is not valid JSON");
        assert_contains(error, "at line 2, column 1");
        free(error);

        error = load_error("array.json", "[\"all\"]");
        assert_contains(error, "must contain a JSON object");
        assert_contains(error, "not an array");
        free(error);

        error = load_error("empty.json", "");
        assert_contains(error, "is empty");
        free(error);

        error = load_error("comment.json", "{ /* comments are not JSON */ }");
        assert_contains(error, "is not valid JSON");
        free(error);
}

static void test_file_missing_and_large(void **state)
{
        struct config config;
        char *error = NULL;
        char *path, *content;

        (void)state;
        config_init_defaults(&config);

        assert_int_equal(config_load_file(&config, "/nonexistent/execvisor.json", &error),
                         -ENOENT);
        assert_contains(error, "failed to read config file /nonexistent/execvisor.json");
        free(error);
        error = NULL;

        content = xmalloc(CONFIG_FILE_SIZE_MAX + 2);
        memset(content, ' ', CONFIG_FILE_SIZE_MAX + 1);
        content[0] = '{';
        content[CONFIG_FILE_SIZE_MAX] = '}';
        content[CONFIG_FILE_SIZE_MAX + 1] = '\0';
        path = write_temp_file("large.json", content);
        assert_int_equal(config_load_file(&config, path, &error), -EFBIG);
        assert_contains(error, "larger than the maximum");
        free(error);

        config_free(&config);
        free(content);
        free(path);
}

static void test_file_arrays_replace(void **state)
{
        char *path = write_temp_file("arrays.json", "{\"listen\": [\"tcp:[::1]:9\"], "
                                                    "\"select-label\": [], "
                                                    "\"report-url\": [\"unix:/r.sock:/a\", "
                                                    "\"http://127.0.0.1/b\"]}");
        const struct config_setting *listen = config_setting_find("listen");
        struct config config;
        char *error = NULL;

        (void)state;
        config_init_defaults(&config);
        assert_int_equal(
                config_apply_setting(&config, listen, "unix:/old.sock", "--listen", &error), 0);

        assert_int_equal(config_load_file(&config, path, &error), 0);
        assert_int_equal(config.n_listen, 1);
        assert_string_equal(config.listen[0], "tcp:[::1]:9");
        assert_int_equal(config.n_report_urls, 2);
        assert_string_equal(config.report_urls[1], "http://127.0.0.1/b");

        /* An empty list of labels falls back to the default label. */
        assert_int_equal(config.n_select_labels, 0);
        assert_int_equal(config_finalize(&config, &error), 0);
        assert_int_equal(config.n_select_labels, 1);
        assert_string_equal(config.select_labels[0].key, "execvisor.enable");

        config_free(&config);
        free(path);
}

static void test_file_status_skips_run_keys(void **state)
{
        char *path = write_temp_file("shared.json", "{\"state-dir\": \"/srv/state\", "
                                                    "\"max-restarts\": \"not checked\", "
                                                    "\"docker-socket\": 1}");
        char *unknown = write_temp_file("shared-unknown.json", "{\"state-dir\": \"/s\", "
                                                               "\"stat-dir\": \"/t\"}");
        struct config config;
        char *error = NULL;

        (void)state;
        config_init_defaults(&config);
        assert_int_equal(config_load_file_for(&config, path, CONFIG_COMMAND_STATUS, &error), 0);
        assert_null(error);
        assert_string_equal(config.state_dir, "/srv/state");
        assert_int_equal(config.max_restarts, 5);
        assert_string_equal(config.docker_socket, "/var/run/docker.sock");

        assert_int_equal(config_load_file_for(&config, unknown, CONFIG_COMMAND_STATUS, &error),
                         -EINVAL);
        assert_contains(error, "unknown key \"stat-dir\"");

        /* The same file is rejected for run, which reads every key. */
        free(error);
        error = NULL;
        assert_int_equal(config_load_file(&config, path, &error), -EINVAL);
        assert_contains(error, "\"max-restarts\"");

        free(error);
        config_free(&config);
        free(unknown);
        free(path);
}

static void apply(struct config *config, const char *name, const char *value)
{
        char *error = NULL;

        if (config_apply_setting(config, config_setting_find(name), value, name, &error) != 0)
                fail_msg("--%s %s: %s", name, value, error);
}

static void test_relative_paths_absolute(void **state)
{
        char *work = xasprintf("%s/work", temp_dir);
        char *expected;
        struct config config;
        char *error = NULL;

        (void)state;
        assert_int_equal(mkdir(work, 0700), 0);
        assert_int_equal(chdir(work), 0);

        config_init_defaults(&config);
        apply(&config, "state-dir", "state");
        apply(&config, "bundle", "./bundle/");
        apply(&config, "log-dir", "logs//agents/.");
        apply(&config, "docker-socket", "../docker.sock");
        apply(&config, "report-ca-file", "ca.pem");
        apply(&config, "report-url", "unix:collector.sock:/v1/agents");
        apply(&config, "report-url", "http://127.0.0.1/x");
        assert_int_equal(config_finalize(&config, &error), 0);
        assert_null(error);

#define ASSERT_UNDER_WORK(actual, suffix)                                                          \
        do {                                                                                       \
                expected = xasprintf("%s%s", work, suffix);                                        \
                assert_string_equal(actual, expected);                                             \
                free(expected);                                                                    \
        } while (0)

        ASSERT_UNDER_WORK(config.state_dir, "/state");
        ASSERT_UNDER_WORK(config.bundle_dir, "/bundle");
        ASSERT_UNDER_WORK(config.log_dir, "/logs/agents");
        ASSERT_UNDER_WORK(config.docker_socket, "/../docker.sock");
        ASSERT_UNDER_WORK(config.report_ca_file, "/ca.pem");
        ASSERT_UNDER_WORK(config.audit_log, "/logs/agents/audit.log");

        expected = xasprintf("unix:%s/state/tmde.sock", work);
        assert_string_equal(config.listen[0], expected);
        free(expected);
        expected = xasprintf("unix:%s/collector.sock:/v1/agents", work);
        assert_string_equal(config.report_urls[0], expected);
        free(expected);
        assert_string_equal(config.report_urls[1], "http://127.0.0.1/x");
#undef ASSERT_UNDER_WORK

        config_free(&config);
        assert_int_equal(chdir(original_cwd), 0);
        free(work);
}

static void test_relative_socket_too_long(void **state)
{
        char name[90];
        char *deep, *address;
        struct config config;
        char *error = NULL;

        (void)state;
        memset(name, 'd', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        deep = xasprintf("%s/%s", temp_dir, name);
        assert_int_equal(mkdir(deep, 0700), 0);
        assert_int_equal(chdir(deep), 0);

        /* Short enough as written, too long once the directory is prepended. */
        config_init_defaults(&config);
        address = xasprintf("unix:%.40s.sock", name);
        apply(&config, "listen", address);
        assert_int_equal(config_finalize(&config, &error), -EINVAL);
        assert_contains(error, "107 bytes");
        free(error);
        config_free(&config);

        /* A long state dir makes the default socket path too long as well. */
        error = NULL;
        config_init_defaults(&config);
        apply(&config, "state-dir", name);
        assert_int_equal(config_finalize(&config, &error), -EINVAL);
        assert_contains(error, "tmde.sock");
        free(error);
        config_free(&config);

        assert_int_equal(chdir(original_cwd), 0);
        free(address);
        free(deep);
}

static void test_listen_given_twice(void **state)
{
        struct config config;
        char *error = NULL;
        char *absolute = xasprintf("unix:%s/x.sock", temp_dir);
        char *expected = xasprintf("--listen %s is given twice", absolute);

        (void)state;
        assert_int_equal(chdir(temp_dir), 0);
        config_init_defaults(&config);
        apply(&config, "listen", absolute);
        apply(&config, "listen", "unix:x.sock");
        assert_int_equal(config_finalize(&config, &error), -EINVAL);
        assert_contains(error, expected);

        free(error);
        free(expected);
        free(absolute);
        config_free(&config);
        assert_int_equal(chdir(original_cwd), 0);
}

static void test_relations(void **state)
{
        struct config config;
        char *error = NULL;

        (void)state;
        config_init_defaults(&config);
        apply(&config, "restart-backoff-min", "10m");
        assert_int_equal(config_finalize(&config, &error), -EINVAL);
        assert_contains(error, "restart-backoff-min (10m) must not be longer than "
                               "restart-backoff-max (5m)");
        free(error);
        error = NULL;

        apply(&config, "restart-backoff-max", "10m");
        assert_int_equal(config_finalize(&config, &error), 0);
        config_free(&config);

        config_init_defaults(&config);
        apply(&config, "restart-backoff-min", "1m30s500ms");
        apply(&config, "restart-backoff-max", "1m30s");
        assert_int_equal(config_finalize(&config, &error), -EINVAL);
        assert_contains(error, "(1m30s500ms) must not be longer than restart-backoff-max (1m30s)");
        free(error);
        error = NULL;
        config_free(&config);

        config_init_defaults(&config);
        apply(&config, "restart-window", "0");
        assert_int_equal(config_finalize(&config, &error), -EINVAL);
        assert_contains(error, "restart-window must be longer than 0");
        free(error);
        error = NULL;
        config_free(&config);

        config_init_defaults(&config);
        apply(&config, "audit-max-size", "0");
        assert_int_equal(config_finalize(&config, &error), -EINVAL);
        assert_contains(error, "audit-max-size must be larger than 0");
        free(error);
        error = NULL;
        config_free(&config);

        /* Zero delays and grace are allowed. */
        config_init_defaults(&config);
        apply(&config, "restart-backoff-min", "0");
        apply(&config, "restart-backoff-max", "0");
        apply(&config, "stop-grace", "0");
        assert_int_equal(config_finalize(&config, &error), 0);
        config_free(&config);
}

static void test_flags_and_levels(void **state)
{
        static const struct {
                const char *name;
                int level;
        } levels[] = { { "error", LOG_ERR },   { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
                       { "info", LOG_INFO },   { "debug", LOG_DEBUG } };
        struct config config;
        char *error = NULL;

        (void)state;
        config_init_defaults(&config);

        apply(&config, "all", "true");
        assert_true(config.select_all);
        apply(&config, "all", "false");
        assert_false(config.select_all);
        assert_int_equal(config_apply_setting(&config, config_setting_find("all"), "yes", "--all",
                                              &error),
                         -EINVAL);
        free(error);

        for (size_t i = 0; i < ARRAY_SIZE(levels); i++) {
                apply(&config, "log-level", levels[i].name);
                assert_int_equal(config.log_level, levels[i].level);
        }

        config_free(&config);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_duration_valid),
                cmocka_unit_test(test_duration_combined),
                cmocka_unit_test(test_duration_bad),
                cmocka_unit_test(test_duration_overflow),
                cmocka_unit_test(test_size_valid),
                cmocka_unit_test(test_size_bad),
                cmocka_unit_test(test_label_rule_forms),
                cmocka_unit_test(test_label_rule_bad),
                cmocka_unit_test(test_label_rule_conflict),
                cmocka_unit_test(test_listen_loopback_accepted),
                cmocka_unit_test(test_listen_other_rejected),
                cmocka_unit_test(test_listen_unix_path_too_long),
                cmocka_unit_test(test_report_url_schemes),
                cmocka_unit_test(test_defaults_finalized),
                cmocka_unit_test(test_default_texts_match),
                cmocka_unit_test(test_file_valid),
                cmocka_unit_test(test_file_unknown_key),
                cmocka_unit_test(test_file_wrong_type),
                cmocka_unit_test(test_file_bad_value),
                cmocka_unit_test(test_file_malformed_json),
                cmocka_unit_test(test_file_missing_and_large),
                cmocka_unit_test(test_file_arrays_replace),
                cmocka_unit_test(test_file_status_skips_run_keys),
                cmocka_unit_test(test_relative_paths_absolute),
                cmocka_unit_test(test_relative_socket_too_long),
                cmocka_unit_test(test_listen_given_twice),
                cmocka_unit_test(test_relations),
                cmocka_unit_test(test_flags_and_levels),
        };

        return cmocka_run_group_tests(tests, setup_temp_dir, teardown_temp_dir);
}
