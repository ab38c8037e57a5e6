#include "supervisor/daemon.h"

#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "cgroups/cgroup.h"
#include "mounts/bundle.h"
#include "supervisor/audit.h"
#include "supervisor/bundle_watch.h"
#include "supervisor/docker.h"
#include "supervisor/docker_parse.h"
#include "supervisor/endpoint.h"
#include "supervisor/http.h"
#include "supervisor/inject.h"
#include "supervisor/log.h"
#include "supervisor/records.h"
#include "supervisor/report.h"
#include "supervisor/sandbox.h"
#include "supervisor/supervisor.h"
#include "supervisor/util.h"

#define INIT_BINARY_NAME "execvisor-init"

struct daemon {
        struct supervisor supervisor;
        struct http_multi *http;
        struct docker_client *docker;
        struct endpoint *endpoint;
        struct reporter *reporter;
        struct audit_log *audit;
        struct bundle_watch *bundle_watch;
        struct loop_source signal_source;
};

/* mkdir -p with the given mode for the directories it makes. */
static int make_directories(const char *path, mode_t mode)
{
        _cleanup_free_ char *copy = xstrdup(path);

        for (char *p = copy + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(copy, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *p = '/';
        }
        if (mkdir(copy, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

/* execvisor-init is installed beside the execvisor binary. */
static char *find_init_binary(void)
{
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *path;

        if (n < 0)
                return NULL;
        self[n] = '\0';
        path = xasprintf("%s/%s", dirname(self), INIT_BINARY_NAME);
        if (access(path, X_OK) < 0) {
                free(path);
                return NULL;
        }
        return path;
}

static void on_sync(void *userdata, const struct container_info *const *infos, size_t count)
{
        struct daemon *daemon = userdata;
        _cleanup_free_ const char **ids = xcalloc(count + 1, sizeof(char *));

        for (size_t i = 0; i < count; i++) {
                ids[i] = infos[i]->id;
                supervise_container_running(&daemon->supervisor, infos[i]);
        }
        supervise_sync_done(&daemon->supervisor, ids, count);
}

static void on_started(void *userdata, const struct container_info *info)
{
        struct daemon *daemon = userdata;

        supervise_container_running(&daemon->supervisor, info);
}

static void on_died(void *userdata, const char *id, int exit_code)
{
        struct daemon *daemon = userdata;

        supervise_container_exited(&daemon->supervisor, id, "container exited");
}

static void on_destroyed(void *userdata, const char *id)
{
        struct daemon *daemon = userdata;

        supervise_container_exited(&daemon->supervisor, id, "container exited");
}

static void on_disconnected(void *userdata, const char *reason)
{
        log_info("the agents keep running while the Docker engine is unreachable; containers are "
                 "resynchronised when it is back");
}

static void on_signal(struct loop_source *source, uint32_t events)
{
        struct daemon *daemon = container_of(source, struct daemon, signal_source);
        struct signalfd_siginfo info;

        if (read(source->fd, &info, sizeof(info)) != sizeof(info))
                return;
        if (daemon->supervisor.shutting_down) {
                log_notice("second signal %s: exiting now", sigabbrev_np((int)info.ssi_signo));
                loop_quit(daemon->supervisor.loop, 0);
                return;
        }

        log_notice("received SIG%s: shutting down", sigabbrev_np((int)info.ssi_signo));
        if (supervise_shutdown(&daemon->supervisor))
                log_notice("stopping agents (grace period %.1fs)",
                           (double)daemon->supervisor.config->stop_grace_usec / 1e6);
        else
                loop_quit(daemon->supervisor.loop, 0);
}

static int setup_signals(struct daemon *daemon)
{
        sigset_t mask;
        int r;

        /* A write to a closed socket or pipe is an error to handle, not an end. */
        signal(SIGPIPE, SIG_IGN);

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();

        daemon->signal_source.dispatch = on_signal;
        daemon->signal_source.fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (daemon->signal_source.fd < 0)
                return negative_errno();
        r = loop_add(daemon->supervisor.loop, &daemon->signal_source, EPOLLIN);
        return r;
}

/* Start-up: everything here may fail fast with a message, before any
 * container is touched. */
static int setup_supervisor(struct supervisor *supervisor, const struct config *config)
{
        int r;

        supervisor->config = config;
        supervisor->host_proc_fd = -1;
        supervisor->log_dir_fd = -1;

        if (geteuid() != 0) {
                log_error("execvisor run must run as root: it joins containers' namespaces and mounts into them");
                return -EPERM;
        }

        supervisor->init_path = find_init_binary();
        if (!supervisor->init_path) {
                log_error("%s not found beside the execvisor binary; install both together", INIT_BINARY_NAME);
                return -ENOENT;
        }

        r = make_directories(config->state_dir, 0700);
        if (r < 0) {
                log_error("cannot create the state directory %s: %s", config->state_dir, strerror(-r));
                return r;
        }
        supervisor->views_dir = xasprintf("%s/views", config->state_dir);
        supervisor->records_dir = xasprintf("%s/containers", config->state_dir);
        r = make_directories(supervisor->views_dir, 0700);
        if (r < 0) {
                log_error("cannot create %s: %s", supervisor->views_dir, strerror(-r));
                return r;
        }

        r = make_directories(config->log_dir, 0755);
        if (r >= 0) {
                supervisor->log_dir_fd = open(config->log_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                r = supervisor->log_dir_fd < 0 ? negative_errno() : 0;
        }
        if (r < 0) {
                log_error("cannot create or open the log directory %s: %s", config->log_dir, strerror(-r));
                return r;
        }

        supervisor->host_proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (supervisor->host_proc_fd < 0) {
                r = negative_errno();
                log_error("cannot open /proc: %s", strerror(-r));
                return r;
        }

        r = inject_read_own_namespaces(supervisor->own_namespaces);
        if (r < 0) {
                log_error("cannot read the supervisor's own namespaces: %s", strerror(-r));
                return r;
        }

        r = seccomp_build_agent_filter(&supervisor->seccomp);
        if (r < 0) {
                log_error("cannot build the agent's seccomp filter: %s", strerror(-r));
                return r;
        }
        supervisor->last_capability = last_capability();
        return 0;
}

/* Warn once at start about problems that no container has run into yet. */
static void warn_about_setup(const struct config *config)
{
        struct bundle_version version = BUNDLE_VERSION_INIT;
        _cleanup_free_ char *error = NULL;

        if (bundle_find_version(config->bundle_dir, &version, &error) < 0)
                log_warning("no usable agent bundle in %s: %s; containers will get no agent until one is installed",
                            config->bundle_dir, error ? error : "unknown error");
        else
                log_info("agent bundle %s, version %s", config->bundle_dir, version.version);
        report_skipped_versions(config->bundle_dir, version.skipped);
        bundle_version_done(&version);

        if (config->agent_memory_max > 0 && !cgroup_host_can_cap("memory"))
                log_warning("--agent-memory-max cannot apply on this host: the agent's cgroup can get no memory "
                            "controller (cgroup v2 enables none below a container's own cgroup)");
        if (config->agent_pids_max > 0 && !cgroup_host_can_cap("pids"))
                log_warning("--agent-pids-max cannot apply on this host: the agent's cgroup can get no pids "
                            "controller (cgroup v2 enables none below a container's own cgroup)");
}

static void release_supervisor(struct supervisor *supervisor)
{
        safe_close(supervisor->host_proc_fd);
        safe_close(supervisor->log_dir_fd);
        free(supervisor->init_path);
        free(supervisor->views_dir);
        free(supervisor->records_dir);
        free(supervisor->seccomp.filter);
}

int daemon_run(const struct config *config)
{
        static const struct docker_callbacks callbacks = {
                .on_sync = on_sync,
                .on_started = on_started,
                .on_died = on_died,
                .on_destroyed = on_destroyed,
                .on_disconnected = on_disconnected,
        };
        struct daemon daemon = { .signal_source.fd = -1, .supervisor.forget_timer.source.fd = -1 };
        int exit_code = 1;
        int r;

        log_set_max_level(config->log_level);

        r = setup_supervisor(&daemon.supervisor, config);
        if (r < 0)
                goto out;
        warn_about_setup(config);

        r = loop_new(&daemon.supervisor.loop);
        if (r < 0) {
                log_error("cannot create the event loop: %s", strerror(-r));
                goto out;
        }
        r = setup_signals(&daemon);
        if (r < 0) {
                log_error("cannot set up signal handling: %s", strerror(-r));
                goto out;
        }

        /* The audit log and the reporter observe every event, so they come
         * before anything that can emit one: loading records adopts agents. */
        r = audit_open(config, &daemon.audit);
        if (r < 0)
                goto out; /* audit_open() logged why */

        r = http_multi_new(daemon.supervisor.loop, &daemon.http);
        if (r < 0) {
                log_error("cannot set up libcurl: %s", strerror(-r));
                goto out;
        }
        r = report_start(daemon.supervisor.loop, daemon.http, config, &daemon.reporter);
        if (r < 0)
                goto out; /* report_start() logged why */

        r = supervise_init(&daemon.supervisor);
        if (r < 0) {
                log_error("cannot create the forget timer: %s", strerror(-r));
                goto out;
        }

        r = records_init(&daemon.supervisor);
        if (r < 0) {
                log_error("cannot create %s: %s", daemon.supervisor.records_dir, strerror(-r));
                goto out;
        }
        records_load(&daemon.supervisor);

        r = bundle_watch_start(&daemon.supervisor, &daemon.bundle_watch);
        if (r < 0)
                log_warning("cannot watch %s for changes: %s; containers that found no usable bundle "
                            "get an agent only when they or the supervisor restart",
                            config->bundle_dir, strerror(-r));

        r = endpoint_start(daemon.supervisor.loop, config, &daemon.endpoint);
        if (r < 0)
                goto out; /* endpoint_start() logged why */

        r = docker_client_new(daemon.supervisor.loop, daemon.http, config->docker_socket, &callbacks,
                              &daemon, &daemon.docker);
        if (r >= 0)
                r = docker_client_start(daemon.docker);
        if (r < 0) {
                log_error("cannot start the Docker client for %s: %s", config->docker_socket, strerror(-r));
                goto out;
        }

        log_notice("execvisor %s running: docker=%s bundle=%s state=%s logs=%s", EXECVISOR_VERSION,
                   config->docker_socket, config->bundle_dir, config->state_dir, config->log_dir);
        r = loop_run(daemon.supervisor.loop);
        exit_code = r < 0 ? 1 : 0;
        log_notice("execvisor stopped");

out:
        if (daemon.supervisor.loop)
                supervise_free_all(&daemon.supervisor);
        docker_client_free(daemon.docker);
        bundle_watch_free(daemon.bundle_watch);
        endpoint_free(daemon.endpoint);
        report_free(daemon.reporter);
        http_multi_free(daemon.http);
        audit_close(daemon.audit);
        safe_close(daemon.signal_source.fd);
        loop_free(daemon.supervisor.loop);
        release_supervisor(&daemon.supervisor);
        return exit_code;
}
