#include "supervisor/metrics.h"

#include <inttypes.h>
#include <stdio.h>

#include "supervisor/util.h"

/* Upper bounds of the injection duration histogram in microseconds. They
 * span 0.5 ms to 2.5 s, because an injection that joins namespaces directly
 * is expected to take under a millisecond while one that waits on a slow
 * engine or disk can take seconds. The +Inf bucket is implicit. */
static const uint64_t injection_buckets_usec[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
};

static struct {
        uint64_t agent_restarts;
        uint64_t injections_ok;
        uint64_t injections_failed;
        /* Not cumulative: bucket i counts durations in (bound i-1, bound i],
         * and the last entry those above every bound. */
        uint64_t injection_buckets[ARRAY_SIZE(injection_buckets_usec) + 1];
        uint64_t injection_sum_usec;
        uint64_t reports_delivered;
        uint64_t reports_failed;
        size_t report_queue;
} metrics;

void metrics_injection(bool ok, uint64_t duration_usec)
{
        size_t i = 0;

        if (ok)
                metrics.injections_ok++;
        else
                metrics.injections_failed++;

        while (i < ARRAY_SIZE(injection_buckets_usec) && duration_usec > injection_buckets_usec[i])
                i++;
        metrics.injection_buckets[i]++;
        metrics.injection_sum_usec += duration_usec;
}

void metrics_agent_restart(void)
{
        metrics.agent_restarts++;
}

void metrics_report(bool delivered)
{
        if (delivered)
                metrics.reports_delivered++;
        else
                metrics.reports_failed++;
}

void metrics_set_report_queue(size_t length)
{
        metrics.report_queue = length;
}

void metrics_reset(void)
{
        memset(&metrics, 0, sizeof(metrics));
}

static void write_header(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Format microseconds as seconds in decimal, exact and without trailing
 * zeros ("0.0005", "1", "2.5"), as Prometheus clients write bucket bounds. */
static const char *format_seconds(uint64_t usec, char *buffer, size_t size)
{
        size_t length;

        snprintf(buffer, size, "%" PRIu64 ".%06" PRIu64, usec / 1000000, usec % 1000000);

        length = strlen(buffer);
        while (buffer[length - 1] == '0')
                buffer[--length] = '\0';
        if (buffer[length - 1] == '.')
                buffer[--length] = '\0';
        return buffer;
}

static void write_agent_states(FILE *f, const struct container *containers)
{
        uint64_t counts[3] = {0};
        static const enum agent_state states[] = {AGENT_PENDING, AGENT_RUNNING, AGENT_STOPPED};
        static const char *const labels[] = {"pending", "running", "stopped"};

        for (const struct container *c = containers; c; c = c->next)
                for (size_t i = 0; i < ARRAY_SIZE(states); i++)
                        if (c->agent.state == states[i])
                                counts[i]++;

        write_header(f, "execvisor_agents", "gauge", "Supervised agents by state.");
        for (size_t i = 0; i < ARRAY_SIZE(states); i++)
                fprintf(f, "execvisor_agents{state=\"%s\"} %" PRIu64 "\n", labels[i], counts[i]);
}

static void write_injection_histogram(FILE *f)
{
        static const char name[] = "execvisor_injection_duration_seconds";
        uint64_t cumulative = 0;
        char seconds[32];

        write_header(f, name, "histogram",
                     "Time to inject and start an agent, successful or not, in seconds.");
        for (size_t i = 0; i < ARRAY_SIZE(injection_buckets_usec); i++) {
                cumulative += metrics.injection_buckets[i];
                fprintf(f, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
                        format_seconds(injection_buckets_usec[i], seconds, sizeof(seconds)),
                        cumulative);
        }
        cumulative += metrics.injection_buckets[ARRAY_SIZE(injection_buckets_usec)];
        fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
        fprintf(f, "%s_sum %s\n", name,
                format_seconds(metrics.injection_sum_usec, seconds, sizeof(seconds)));
        fprintf(f, "%s_count %" PRIu64 "\n", name, cumulative);
}

char *metrics_render_containers(const struct container *containers)
{
        char *text = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&text, &size);
        if (!f)
                return NULL;

        write_agent_states(f, containers);

        write_header(f, "execvisor_agent_restarts_total", "counter",
                     "Agent restarts after an exit.");
        fprintf(f, "execvisor_agent_restarts_total %" PRIu64 "\n", metrics.agent_restarts);

        write_header(f, "execvisor_injections_total", "counter",
                     "Injections of the agent bundle by result.");
        fprintf(f, "execvisor_injections_total{result=\"ok\"} %" PRIu64 "\n",
                metrics.injections_ok);
        fprintf(f, "execvisor_injections_total{result=\"failed\"} %" PRIu64 "\n",
                metrics.injections_failed);

        write_injection_histogram(f);

        write_header(f, "execvisor_reports_total", "counter",
                     "Reports pushed to receivers by result.");
        fprintf(f, "execvisor_reports_total{result=\"delivered\"} %" PRIu64 "\n",
                metrics.reports_delivered);
        fprintf(f, "execvisor_reports_total{result=\"failed\"} %" PRIu64 "\n",
                metrics.reports_failed);

        write_header(f, "execvisor_report_queue", "gauge", "Reports waiting to be sent.");
        fprintf(f, "execvisor_report_queue %zu\n", metrics.report_queue);

        if (ferror(f)) {
                fclose(f);
                free(text);
                return NULL;
        }
        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        return text;
}

char *metrics_render(void)
{
        return metrics_render_containers(container_list());
}
