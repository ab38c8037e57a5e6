#pragma once

/* The defaults of a finalized run configuration, checked field by field by
 * the config and command line tests alike. Include after <cmocka.h>. */

#include <syslog.h>

#include "supervisor/config.h"

static inline void assert_default_settings(const struct config *config)
{
        const uint64_t second = UINT64_C(1000000);

        assert_string_equal(config->docker_socket, "/var/run/docker.sock");
        assert_string_equal(config->bundle_dir, "/var/lib/execvisor/deps/execute-command");
        assert_string_equal(config->state_dir, "/run/execvisor");
        assert_string_equal(config->log_dir, "/var/log/execvisor/exec");
        assert_int_equal(config->n_select_labels, 1);
        assert_string_equal(config->select_labels[0].key, "execvisor.enable");
        assert_string_equal(config->select_labels[0].value, "true");
        assert_false(config->select_all);
        assert_int_equal(config->restart_backoff_min_usec, 1 * second);
        assert_int_equal(config->restart_backoff_max_usec, 300 * second);
        assert_int_equal(config->max_restarts, 5);
        assert_int_equal(config->restart_window_usec, 600 * second);
        assert_int_equal(config->forget_after_usec, 3600 * second);
        assert_false(config->stop_agents_on_exit);
        assert_int_equal(config->stop_grace_usec, 20 * second);
        assert_int_equal(config->agent_memory_max, 0);
        assert_int_equal(config->agent_pids_max, 0);
        assert_int_equal(config->n_listen, 1);
        assert_string_equal(config->listen[0], "unix:/run/execvisor/tmde.sock");
        assert_int_equal(config->n_report_urls, 0);
        assert_null(config->report_ca_file);
        assert_string_equal(config->audit_log, "/var/log/execvisor/exec/audit.log");
        assert_int_equal(config->audit_max_size, 10 * 1024 * 1024);
        assert_int_equal(config->log_level, LOG_INFO);
        assert_null(config->config_file);
}
