#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/container.h"
#include "supervisor/metrics.h"

#define HISTOGRAM "execvisor_injection_duration_seconds"

/* The value of the sample whose name and labels are exactly series, as in
 * "execvisor_agents{state=\"running\"}". Fails the test when it is missing
 * or appears twice. */
static double sample_value(const char *text, const char *series)
{
        size_t length = strlen(series);
        const char *found = NULL;
        char *end;
        double value;

        for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
                if (strncmp(line, series, length) == 0 && line[length] == ' ') {
                        if (found)
                                fail_msg("%s appears twice", series);
                        found = line + length + 1;
                }
                if (!strchr(line, '\n'))
                        break;
        }
        if (!found)
                fail_msg("%s is missing in:\n%s", series, text);

        value = strtod(found, &end);
        assert_true(end != found);
        assert_true(*end == '\n');
        return value;
}

static unsigned count_lines_starting(const char *text, const char *prefix)
{
        unsigned count = 0;

        for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
                if (strncmp(line, prefix, strlen(prefix)) == 0)
                        count++;
                if (!strchr(line, '\n'))
                        break;
        }
        return count;
}

static char *render_with(const struct container *containers)
{
        char *text = metrics_render_containers(containers);

        assert_non_null(text);
        return text;
}

static int reset(void **state)
{
        metrics_reset();
        return 0;
}

/* Every line is "# HELP name text", "# TYPE name type" or a sample
 * "name{labels} value", with a metric name of [a-zA-Z_:][a-zA-Z0-9_:]* and a
 * number as value. The text ends with a newline. */
static void text_is_parseable(void **state)
{
        char *text = render_with(NULL);
        char *copy = strdup(text);
        char *save = NULL;
        unsigned samples = 0, types = 0, helps = 0;

        assert_true(strlen(text) > 0);
        assert_int_equal(text[strlen(text) - 1], '\n');

        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strncmp(line, "# HELP ", 7) == 0) {
                        helps++;
                        continue;
                }
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        const char *type = strrchr(line, ' ') + 1;

                        assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                                    strcmp(type, "histogram") == 0);
                        types++;
                        continue;
                }

                {
                        size_t name_length = strspn(line, "abcdefghijklmnopqrstuvwxyz"
                                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
                        const char *value = strrchr(line, ' ');
                        char *end;

                        assert_true(name_length > 0);
                        assert_true(line[name_length] == '{' || line[name_length] == ' ');
                        if (line[name_length] == '{')
                                assert_non_null(strstr(line, "} "));
                        assert_non_null(value);
                        strtod(value + 1, &end);
                        assert_true(*end == '\0');
                        samples++;
                }
        }

        assert_int_equal(types, 6);
        assert_int_equal(helps, 6);
        /* 3 agent states, 1 restart counter, 2 injection results, 13 buckets
         * with +Inf plus _sum and _count, 2 report results, 1 queue gauge. */
        assert_int_equal(samples, 3 + 1 + 2 + 13 + 2 + 2 + 1);

        free(copy);
        free(text);
}

static void help_and_type_precede_samples(void **state)
{
        static const char *const families[] = {
            "execvisor_agents", "execvisor_agent_restarts_total", "execvisor_injections_total",
            HISTOGRAM,          "execvisor_reports_total",        "execvisor_report_queue",
        };
        char *text = render_with(NULL);

        for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
                char help[128], type[128], sample[128];
                const char *help_at, *type_at, *sample_at;

                snprintf(help, sizeof(help), "# HELP %s ", families[i]);
                snprintf(type, sizeof(type), "# TYPE %s ", families[i]);
                snprintf(sample, sizeof(sample), "\n%s", families[i]);
                help_at = strstr(text, help);
                type_at = strstr(text, type);
                sample_at = strstr(text, sample);

                assert_non_null(help_at);
                assert_non_null(type_at);
                assert_non_null(sample_at);
                assert_true(help_at < type_at);
                assert_true(type_at < sample_at);
        }
        free(text);
}

static void agent_states_counted(void **state)
{
        struct container containers[5] = {0};
        char *text;

        containers[0].agent.state = AGENT_RUNNING;
        containers[1].agent.state = AGENT_RUNNING;
        containers[2].agent.state = AGENT_PENDING;
        containers[3].agent.state = AGENT_STOPPED;
        containers[4].agent.state = AGENT_RUNNING;
        for (size_t i = 0; i < 4; i++)
                containers[i].next = &containers[i + 1];

        text = render_with(&containers[0]);

        assert_true(sample_value(text, "execvisor_agents{state=\"running\"}") == 3);
        assert_true(sample_value(text, "execvisor_agents{state=\"pending\"}") == 1);
        assert_true(sample_value(text, "execvisor_agents{state=\"stopped\"}") == 1);
        free(text);
}

static void render_reads_container_list(void **state)
{
        struct container first = {0}, second = {0};
        char *text;

        first.agent.state = AGENT_STOPPED;
        second.agent.state = AGENT_STOPPED;
        container_register(&first);
        container_register(&second);

        text = metrics_render();
        container_unregister(&first);
        container_unregister(&second);

        assert_non_null(text);
        assert_true(sample_value(text, "execvisor_agents{state=\"stopped\"}") == 2);
        assert_true(sample_value(text, "execvisor_agents{state=\"running\"}") == 0);
        free(text);
}

static void counters_count(void **state)
{
        char *text;

        metrics_agent_restart();
        metrics_agent_restart();
        metrics_injection(true, 800);
        metrics_injection(false, 20000);
        metrics_injection(true, 900);
        metrics_report(true);
        metrics_report(false);
        metrics_report(false);
        metrics_set_report_queue(17);

        text = render_with(NULL);

        assert_true(sample_value(text, "execvisor_agent_restarts_total") == 2);
        assert_true(sample_value(text, "execvisor_injections_total{result=\"ok\"}") == 2);
        assert_true(sample_value(text, "execvisor_injections_total{result=\"failed\"}") == 1);
        assert_true(sample_value(text, "execvisor_reports_total{result=\"delivered\"}") == 1);
        assert_true(sample_value(text, "execvisor_reports_total{result=\"failed\"}") == 2);
        assert_true(sample_value(text, "execvisor_report_queue") == 17);
        free(text);

        metrics_set_report_queue(0);
        text = render_with(NULL);
        assert_true(sample_value(text, "execvisor_report_queue") == 0);
        free(text);
}

static void histogram_buckets_cumulative(void **state)
{
        static const char *const bounds[] = {
            "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
            "0.05",   "0.1",   "0.25",   "0.5",   "1",    "2.5",
        };
        /* Observations in microseconds: on a bound counts into that bucket
         * (le means less or equal), one above goes to the next. */
        static const uint64_t observations[] = {0,    500,     501,     1000,
                                                7000, 2500000, 2500001, 60000000};
        static const double expected[] = {2, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 6};
        double previous = 0;
        char *text;

        for (size_t i = 0; i < sizeof(observations) / sizeof(observations[0]); i++)
                metrics_injection(true, observations[i]);

        text = render_with(NULL);

        assert_int_equal(count_lines_starting(text, HISTOGRAM "_bucket{"), 13);
        for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
                char series[128];
                double value;

                snprintf(series, sizeof(series), HISTOGRAM "_bucket{le=\"%s\"}", bounds[i]);
                value = sample_value(text, series);
                if (value != expected[i])
                        fail_msg("%s is %g, expected %g", series, value, expected[i]);
                assert_true(value >= previous);
                previous = value;
        }
        assert_true(sample_value(text, HISTOGRAM "_bucket{le=\"+Inf\"}") == 8);
        assert_true(sample_value(text, HISTOGRAM "_count") == 8);
        free(text);
}

static void histogram_sum_in_seconds(void **state)
{
        char *text;

        metrics_injection(true, 1500000);
        metrics_injection(false, 250);

        text = render_with(NULL);

        /* Written exactly, not rounded: 1.50025 s. */
        assert_non_null(strstr(text, "\n" HISTOGRAM "_sum 1.50025\n"));
        free(text);

        metrics_reset();
        text = render_with(NULL);
        assert_non_null(strstr(text, "\n" HISTOGRAM "_sum 0\n"));
        assert_true(sample_value(text, HISTOGRAM "_count") == 0);
        free(text);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(text_is_parseable, reset),
            cmocka_unit_test_setup(help_and_type_precede_samples, reset),
            cmocka_unit_test_setup(agent_states_counted, reset),
            cmocka_unit_test_setup(render_reads_container_list, reset),
            cmocka_unit_test_setup(counters_count, reset),
            cmocka_unit_test_setup(histogram_buckets_cumulative, reset),
            cmocka_unit_test_setup(histogram_sum_in_seconds, reset),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
