#include "supervisor/inject.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/stat.h>

#include "mounts/bundle.h"
#include "mounts/mountinfo.h"
#include "mounts/view.h"
#include "supervisor/log.h"
#include "supervisor/sandbox.h"
#include "supervisor/util.h"

#define PROC_FILE_MAX (1024 * 1024)
#define BUNDLE_TARGET_PREFIX "/ecs-execute-command-"

static const struct {
        const char *name;
        int flag;
} namespaces[7] = {
        { "ns/mnt", CLONE_NEWNS },   { "ns/pid", CLONE_NEWPID },       { "ns/net", CLONE_NEWNET },
        { "ns/ipc", CLONE_NEWIPC },  { "ns/uts", CLONE_NEWUTS },       { "ns/cgroup", CLONE_NEWCGROUP },
        { "ns/user", CLONE_NEWUSER },
};

/* Host-side objects of one launch, released once the joiner has been forked. */
struct launch_resources {
        int root_fd;
        int ns_fds[7];
        int view_fd;
        int log_tree_fd;
        int init_exec_fd;
        int agent_exec_fd;
        int devnull_fd;
        uint64_t *shared_ids;
        char *argv[3];
        struct bundle_version version;
        char *layer_dir;
};

static void launch_resources_release(struct launch_resources *res)
{
        safe_close(res->root_fd);
        for (size_t i = 0; i < ARRAY_SIZE(res->ns_fds); i++)
                safe_close(res->ns_fds[i]);
        safe_close(res->view_fd);
        safe_close(res->log_tree_fd);
        safe_close(res->init_exec_fd);
        safe_close(res->agent_exec_fd);
        safe_close(res->devnull_fd);
        free(res->shared_ids);
        for (size_t i = 0; i < ARRAY_SIZE(res->argv); i++)
                free(res->argv[i]);
        bundle_version_done(&res->version);
        free(res->layer_dir);
}

int read_process_start_ticks(int proc_pid_fd, uint64_t *ret_ticks)
{
        _cleanup_free_ char *stat = NULL;
        const char *p;
        uint64_t ticks;
        int r;

        r = read_file_at(proc_pid_fd, "stat", 4096, &stat, NULL);
        if (r < 0)
                return r;

        /* The command name may hold spaces and ')'; the fields after the
         * last ')' start with the state, field 3; the start time is field 22. */
        p = strrchr(stat, ')');
        if (!p)
                return -EBADMSG;
        for (int field = 2; field < 21; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EBADMSG;
        }
        if (sscanf(p + 1, "%" SCNu64, &ticks) != 1)
                return -EBADMSG;

        *ret_ticks = ticks;
        return 0;
}

int inject_read_own_namespaces(uint64_t ret_inodes[7])
{
        for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++) {
                _cleanup_free_ char *path = xasprintf("/proc/self/%s", namespaces[i].name);
                struct stat st;

                if (stat(path, &st) < 0)
                        return negative_errno();
                ret_inodes[i] = st.st_ino;
        }
        return 0;
}

static bool cgroups_name_container(const char *cgroups, const char *id)
{
        _cleanup_free_ char *copy = xstrdup(cgroups);
        char *saveptr = NULL;
        bool any = false;

        for (char *line = strtok_r(copy, "\n", &saveptr); line; line = strtok_r(NULL, "\n", &saveptr)) {
                if (!strstr(line, id))
                        return false;
                any = true;
        }
        return any;
}

int inject_pin_container(struct supervised *s, pid_t init_pid, char **ret_error)
{
        _cleanup_close_ int pidfd = -1, proc_fd = -1;
        _cleanup_free_ char *path = NULL, *cgroups = NULL;
        uint64_t ticks;
        int r;

        pidfd = pidfd_open(init_pid, 0);
        if (pidfd < 0) {
                r = negative_errno();
                *ret_error = xasprintf("pidfd_open of init pid %d failed: %s", (int)init_pid,
                                       strerror(-r));
                return r;
        }

        path = xasprintf("/proc/%d", (int)init_pid);
        proc_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0) {
                r = negative_errno();
                *ret_error = xasprintf("cannot open %s: %s", path, strerror(-r));
                return r;
        }

        r = read_process_start_ticks(proc_fd, &ticks);
        if (r >= 0)
                r = read_file_at(proc_fd, "cgroup", PROC_FILE_MAX, &cgroups, NULL);
        if (r < 0) {
                *ret_error = xasprintf("cannot read %s/stat or cgroup: %s", path, strerror(-r));
                return r;
        }
        if (!cgroups_name_container(cgroups, s->container->id)) {
                *ret_error = xasprintf("pid %d is not in the container's cgroups (pid reused?)",
                                       (int)init_pid);
                return -ESTALE;
        }

        /* Alive after the reads: what /proc/<pid> showed was this process,
         * not a later one with a reused pid. */
        if (!pidfd_running(pidfd)) {
                r = -ESRCH;
                *ret_error = xasprintf("container init pid %d exited", (int)init_pid);
                return r;
        }

        s->init_pid = init_pid;
        s->init_pidfd = TAKE_FD(pidfd);
        s->init_proc_fd = TAKE_FD(proc_fd);
        s->init_start_ticks = ticks;
        return 0;
}

static int open_namespaces(struct supervised *s, struct launch_resources *res, int *ret_flags)
{
        int flags = 0;

        for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++) {
                struct stat st;
                int fd = openat(s->init_proc_fd, namespaces[i].name, O_RDONLY | O_CLOEXEC);

                if (fd < 0)
                        return negative_errno();
                if (fstat(fd, &st) < 0) {
                        safe_close(fd);
                        return negative_errno();
                }
                if (st.st_ino == s->supervisor->own_namespaces[i]) {
                        safe_close(fd); /* ours already: nothing to join */
                        continue;
                }
                res->ns_fds[i] = fd;
                flags |= namespaces[i].flag;
        }

        /* NOTE: containers in their own user namespace are refused for now:
         * the bundle view would need an id-mapped mount for the agent to
         * trust it, and the capability sets would need mapping. */
        if (flags & CLONE_NEWUSER)
                return -EOPNOTSUPP;

        *ret_flags = flags;
        return 0;
}

static int read_shared_mounts(struct supervised *s, struct launch_resources *res, size_t *ret_count)
{
        _cleanup_free_ char *mountinfo = NULL;
        int r;

        r = read_file_at(s->init_proc_fd, "mountinfo", PROC_FILE_MAX * 4, &mountinfo, NULL);
        if (r < 0)
                return r;
        return mountinfo_shared_ids(mountinfo, &res->shared_ids, ret_count);
}

/* The container's AppArmor profile, to carry over to the agent's exec.
 * Returns 0 with *ret_path NULL when the container has no profile.
 * NOTE: written for AppArmor's attr interface; not exercised on hosts
 * without AppArmor, where the attr files return EINVAL. */
static int read_lsm_label(struct supervised *s, char **ret_path, char **ret_value)
{
        _cleanup_free_ char *label = NULL;
        const char *path = "attr/apparmor/current";
        char *mode;
        int r;

        r = read_file_at(s->init_proc_fd, path, 4096, &label, NULL);
        if (r == -ENOENT) {
                path = "attr/current";
                r = read_file_at(s->init_proc_fd, path, 4096, &label, NULL);
        }
        if (r == -EINVAL || r == -ENOENT || r == -EOPNOTSUPP)
                return 0;
        if (r < 0)
                return r;

        label[strcspn(label, "\n")] = '\0';
        mode = strstr(label, " (");
        if (mode)
                *mode = '\0';
        if (label[0] == '\0' || streq(label, "unconfined"))
                return 0;

        *ret_path = xasprintf("thread-self/%s", streq(path, "attr/current") ? "attr/exec"
                                                                            : "attr/apparmor/exec");
        *ret_value = xasprintf("exec %s", label);
        return 0;
}

/* Layers already checked by this supervisor, by session limit. Checking one
 * means reading and hashing every file of it, which would be most of the
 * cost of an injection. The certificate file's size and time of change are
 * part of the key, so that a renewed CA bundle builds a new layer. */
struct layer_cache_entry {
        unsigned session_limit;
        struct timespec certs_ctime;
        off_t certs_size;
        char *layer_dir;
};

static struct layer_cache_entry layer_cache[8];

static int prepare_layer_cached(const char *bundle_dir, const char *views_dir, const char *init_path,
                                unsigned limit, char **ret_layer_dir, char **ret_error)
{
        _cleanup_free_ char *certs_path = xasprintf("%s/%s", bundle_dir, BUNDLE_CERTS_FILE);
        struct stat certs = { 0 };
        struct layer_cache_entry *slot;
        bool has_certs;
        char *layer_dir;
        int r;

        (void)stat(certs_path, &certs);
        for (size_t i = 0; i < ARRAY_SIZE(layer_cache); i++) {
                const struct layer_cache_entry *e = &layer_cache[i];

                if (e->layer_dir && e->session_limit == limit && e->certs_size == certs.st_size &&
                    e->certs_ctime.tv_sec == certs.st_ctim.tv_sec &&
                    e->certs_ctime.tv_nsec == certs.st_ctim.tv_nsec && access(e->layer_dir, F_OK) == 0) {
                        *ret_layer_dir = xstrdup(e->layer_dir);
                        return 0;
                }
        }

        r = bundle_prepare_layer(bundle_dir, views_dir, init_path, limit, &layer_dir, &has_certs, ret_error);
        if (r < 0)
                return r;

        slot = &layer_cache[limit % ARRAY_SIZE(layer_cache)];
        free(slot->layer_dir);
        *slot = (struct layer_cache_entry){
                .session_limit = limit,
                .certs_ctime = certs.st_ctim,
                .certs_size = certs.st_size,
                .layer_dir = xstrdup(layer_dir),
        };
        *ret_layer_dir = layer_dir;
        return 0;
}

/* Warn about versions of the bundle that were passed over, once for each
 * different list, so that an operator learns why the newest is not used. */
void report_skipped_versions(const char *bundle_dir, const char *skipped)
{
        static char *last_reported;

        if (!skipped || (last_reported && streq(last_reported, skipped)))
                return;
        log_warning("agent bundle %s: passed over %s", bundle_dir, skipped);
        free(last_reported);
        last_reported = xstrdup(skipped);
}

static int prepare_bundle(struct supervised *s, struct launch_resources *res, char **ret_error)
{
        const struct config *config = s->supervisor->config;
        int r;

        res->version = (struct bundle_version)BUNDLE_VERSION_INIT;
        r = bundle_find_version(config->bundle_dir, &res->version, ret_error);
        if (r < 0)
                return r;

        r = prepare_layer_cached(config->bundle_dir, s->supervisor->views_dir,
                                 s->supervisor->init_path, s->session_limit, &res->layer_dir,
                                 ret_error);
        if (r < 0)
                return r;

        r = bundle_view_create(res->layer_dir, res->version.dir, &res->view_fd);
        if (r < 0) {
                *ret_error = xasprintf("cannot mount the bundle view of %s: %s", res->version.dir,
                                       strerror(-r));
                return r;
        }

        /* The exec fds come from the view itself, so that the agent's
         * /proc/self/exe names its path inside the container. */
        res->init_exec_fd = openat(res->view_fd, BUNDLE_LAYER_INIT, O_PATH | O_CLOEXEC);
        res->agent_exec_fd = openat(res->view_fd, BUNDLE_AGENT_BINARY, O_PATH | O_CLOEXEC);
        if (res->init_exec_fd < 0 || res->agent_exec_fd < 0) {
                r = negative_errno();
                *ret_error = xasprintf("cannot open the binaries in the bundle view: %s",
                                       strerror(-r));
                return r;
        }

        snprintf(s->container->agent.version, sizeof(s->container->agent.version), "%s",
                 res->version.version);
        report_skipped_versions(config->bundle_dir, res->version.skipped);
        return 0;
}

static int prepare_log_mount(struct supervised *s, struct launch_resources *res)
{
        int log_dir_fd = s->supervisor->log_dir_fd;

        if (mkdirat(log_dir_fd, s->log_name, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        return host_dir_clone(log_dir_fd, s->log_name, &res->log_tree_fd);
}

static void set_mounts(struct launch_request *request, struct launch_resources *res,
                       const char *bundle_target)
{
        request->mounts[0] = (struct mount_entry){
                .target = bundle_target,
                .tree_fd = res->view_fd,
                .mkdir_mode = 0755,
                .fatal = true,
                .replace_existing = true,
        };
        request->mounts[1] = (struct mount_entry){
                .target = BUNDLE_AGENT_LOG_DIR,
                .tree_fd = res->log_tree_fd,
                .mkdir_mode = 0755,
                .fatal = true,
        };
        request->n_mounts = 2;
}

/* Wrap each step's failure as "<what>: <errno text>" unless it set a message. */
static int failed(int r, char **ret_error, const char *what)
{
        if (!*ret_error)
                *ret_error = xasprintf("%s: %s", what, strerror(-r));
        return r;
}

int inject_launch(struct supervised *s, char **ret_error)
{
        struct supervisor *supervisor = s->supervisor;
        _cleanup_(launch_resources_release) struct launch_resources res = {
                .root_fd = -1, .ns_fds = { -1, -1, -1, -1, -1, -1, -1 }, .view_fd = -1,
                .log_tree_fd = -1, .init_exec_fd = -1, .agent_exec_fd = -1, .devnull_fd = -1,
                .version = BUNDLE_VERSION_INIT,
        };
        _cleanup_free_ char *bundle_target = NULL, *lsm_path = NULL, *lsm_value = NULL;
        struct launch_request request = { .host_proc_fd = supervisor->host_proc_fd };
        uint64_t started = now_monotonic_usec();
        uint64_t bounding;
        size_t n_shared = 0;
        int r;

        *ret_error = NULL;

        res.root_fd = openat(s->init_proc_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (res.root_fd < 0)
                return failed(negative_errno(), ret_error, "cannot open the container's root");

        r = open_namespaces(s, &res, &request.ns_flags);
        if (r == -EOPNOTSUPP) {
                *ret_error = xstrdup("containers with their own user namespace are not supported yet");
                return r;
        }
        if (r < 0)
                return failed(r, ret_error, "cannot open the container's namespaces");

        r = read_shared_mounts(s, &res, &n_shared);
        if (r < 0)
                return failed(r, ret_error, "cannot read the container's mountinfo");

        r = read_bounding_set(s->init_proc_fd, &bounding);
        if (r < 0)
                return failed(r, ret_error, "cannot read the container's capability bounding set");

        r = read_lsm_label(s, &lsm_path, &lsm_value);
        if (r < 0)
                return failed(r, ret_error, "cannot read the container's security label");

        agent_cgroups_release(&s->cgroups);
        r = agent_cgroups_prepare(s->init_proc_fd, s->container->id, &s->cgroups);
        if (r < 0)
                return failed(r, ret_error, "cannot prepare the agent's cgroup");
        r = agent_cgroups_set_limits(&s->cgroups, supervisor->config->agent_memory_max,
                                     supervisor->config->agent_pids_max);
        if (r < 0 && r != -EOPNOTSUPP)
                return failed(r, ret_error, "cannot set the agent's cgroup limits");

        r = prepare_bundle(s, &res, ret_error);
        s->bundle_failed = r < 0;
        if (r < 0)
                return failed(r, ret_error, "cannot prepare the bundle");

        r = prepare_log_mount(s, &res);
        if (r < 0)
                return failed(r, ret_error, "cannot prepare the log directory mount");

        res.devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (res.devnull_fd < 0)
                return failed(negative_errno(), ret_error, "cannot open /dev/null");

        bundle_target = xasprintf(BUNDLE_TARGET_PREFIX "%s", s->uuid);
        res.argv[0] = xasprintf("%s/%s", bundle_target, BUNDLE_LAYER_INIT);
        res.argv[1] = xasprintf("%s/%s", bundle_target, BUNDLE_AGENT_BINARY);

        set_mounts(&request, &res, bundle_target);
        request.init_pidfd = s->init_pidfd;
        request.root_fd = res.root_fd;
        memcpy(request.ns_fds, res.ns_fds, sizeof(request.ns_fds));
        request.shared_mount_ids = res.shared_ids;
        request.n_shared_mount_ids = n_shared;
        request.cgroups = &s->cgroups;
        request.init_exec_fd = res.init_exec_fd;
        request.agent_exec_fd = res.agent_exec_fd;
        request.stdin_fd = res.devnull_fd;
        request.output_fd = res.devnull_fd;
        request.argv = res.argv;
        request.envp = s->env;
        request.seccomp = supervisor->seccomp;
        request.capabilities = bounding & supervisor->config->agent_capabilities;
        request.last_capability = supervisor->last_capability;
        request.uid = 0;
        request.gid = 0;
        request.lsm_exec_path = lsm_path;
        request.lsm_exec_value = lsm_value;

        /* The last check before the fork: the pinned init still lives. */
        if (!pidfd_running(s->init_pidfd))
                return failed(-ESRCH, ret_error, "the container's init exited");

        s->prepare_usec = now_monotonic_usec() - started;
        r = launch_start(&request, &s->launch);
        if (r < 0)
                return failed(r, ret_error, "cannot fork the joiner");
        s->launch.started_usec = started;
        return 0;
}
