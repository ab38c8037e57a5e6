#include "cgroups/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include "supervisor/util.h"

#define CGROUP_FILE_MAX (64 * 1024)
#define MOUNTINFO_MAX (4 * 1024 * 1024)

struct cgroup_mount {
        bool unified;
        char *super_options; /* "rw,memory" */
        char *root;          /* path inside the hierarchy that is mounted */
        char *mount_point;
};

void agent_cgroups_init(struct agent_cgroups *cgroups)
{
        *cgroups = (struct agent_cgroups){
                .unified_index = -1,
                .freezer_index = -1,
                .memory_index = -1,
                .pids_index = -1,
        };
}

void agent_cgroups_release(struct agent_cgroups *cgroups)
{
        for (int i = 0; i < cgroups->count; i++) {
                struct cgroup_hierarchy *h = &cgroups->hierarchies[i];

                free(h->controllers);
                free(h->agent_path);
                safe_close(h->agent_dir_fd);
                safe_close(h->procs_fd);
        }
        agent_cgroups_init(cgroups);
}

static void cgroup_mounts_free(struct cgroup_mount *mounts, size_t count)
{
        for (size_t i = 0; i < count; i++) {
                free(mounts[i].super_options);
                free(mounts[i].root);
                free(mounts[i].mount_point);
        }
        free(mounts);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static char *unescape_mountinfo(const char *field)
{
        char *out = xmalloc(strlen(field) + 1);
        char *o = out;

        for (const char *p = field; *p; p++) {
                if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' &&
                    p[3] >= '0' && p[3] <= '7') {
                        *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                        p += 3;
                } else
                        *o++ = *p;
        }
        *o = '\0';
        return out;
}

/* The host's cgroup mounts, from the supervisor's own mountinfo. */
static int read_cgroup_mounts(struct cgroup_mount **ret_mounts, size_t *ret_count)
{
        _cleanup_free_ char *data = NULL;
        struct cgroup_mount *mounts = NULL;
        size_t count = 0;
        char *saveptr = NULL;
        int r;

        r = read_file_at(AT_FDCWD, "/proc/self/mountinfo", MOUNTINFO_MAX, &data, NULL);
        if (r < 0)
                return r;

        for (char *line = strtok_r(data, "\n", &saveptr); line; line = strtok_r(NULL, "\n", &saveptr)) {
                char root[4096], mount_point[4096], fstype[64], super_options[1024];
                char *separator = strstr(line, " - ");

                if (!separator)
                        continue;
                if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mount_point) != 2)
                        continue;
                if (sscanf(separator + 3, "%63s %*s %1023s", fstype, super_options) != 2)
                        continue;
                if (!streq(fstype, "cgroup") && !streq(fstype, "cgroup2"))
                        continue;

                mounts = realloc(mounts, (count + 1) * sizeof(*mounts));
                if (!mounts)
                        abort();
                mounts[count++] = (struct cgroup_mount){
                        .unified = streq(fstype, "cgroup2"),
                        .super_options = xstrdup(super_options),
                        .root = unescape_mountinfo(root),
                        .mount_point = unescape_mountinfo(mount_point),
                };
        }

        *ret_mounts = mounts;
        *ret_count = count;
        return 0;
}

static bool options_contain(const char *options, const char *word)
{
        size_t length = strlen(word);

        for (const char *p = options; p && *p;) {
                const char *comma = strchr(p, ',');
                size_t item = comma ? (size_t)(comma - p) : strlen(p);

                if (item == length && strncmp(p, word, length) == 0)
                        return true;
                p = comma ? comma + 1 : NULL;
        }
        return false;
}

/* Find the mount of a hierarchy: the unified one, or the v1 mount whose
 * options carry every controller of the list (e.g. "cpu,cpuacct"). */
static const struct cgroup_mount *find_mount(const struct cgroup_mount *mounts, size_t count,
                                             bool unified, const char *controllers)
{
        for (size_t i = 0; i < count; i++) {
                bool all = true;

                if (mounts[i].unified != unified)
                        continue;
                if (unified)
                        return &mounts[i];

                _cleanup_free_ char *list = xstrdup(controllers);
                char *saveptr = NULL;

                for (char *c = strtok_r(list, ",", &saveptr); c; c = strtok_r(NULL, ",", &saveptr))
                        if (!options_contain(mounts[i].super_options, c))
                                all = false;
                if (all)
                        return &mounts[i];
        }
        return NULL;
}

static int open_beneath(int dirfd, const char *path, int flags)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                           RESOLVE_NO_XDEV,
        };
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

        return fd < 0 ? negative_errno() : (int)fd;
}

/* A new v1 cpuset cgroup starts with no cpus and no memory nodes, and the
 * kernel refuses tasks into it with ENOSPC: copy the container's sets. */
static int inherit_cpuset(int container_fd, int agent_fd)
{
        static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };

        for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
                _cleanup_free_ char *value = NULL;
                _cleanup_close_ int fd = -1;
                int r;

                r = read_file_at(container_fd, files[i], 4096, &value, NULL);
                if (r < 0)
                        return r;
                fd = open_beneath(agent_fd, files[i], O_WRONLY);
                if (fd < 0)
                        return fd;
                r = write_all(fd, value, strlen(value));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Open (and with create, make) the agent's child cgroup of the container's
 * cgroup at cgroup_path in the hierarchy mounted at mount. */
static int open_agent_cgroup(const struct cgroup_mount *mount, const char *cgroup_path, bool create,
                             struct cgroup_hierarchy *h)
{
        _cleanup_close_ int mount_fd = -1, container_fd = -1, agent_fd = -1;
        const char *relative = cgroup_path;
        size_t root_length = strlen(mount->root);
        struct statfs fs;

        /* The mount may show a sub-tree only; the process must lie inside it. */
        if (!streq(mount->root, "/")) {
                if (strncmp(cgroup_path, mount->root, root_length) != 0 ||
                    (cgroup_path[root_length] != '/' && cgroup_path[root_length] != '\0'))
                        return -ENOENT;
                relative = cgroup_path + root_length;
        }
        while (*relative == '/')
                relative++;

        /* -ESTALE: the host's cgroup mounts are not what they were. */
        mount_fd = open(mount->mount_point, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (mount_fd < 0)
                return -ESTALE;
        if (fstatfs(mount_fd, &fs) < 0)
                return negative_errno();
        if (fs.f_type != CGROUP_SUPER_MAGIC && fs.f_type != CGROUP2_SUPER_MAGIC)
                return -ESTALE;

        container_fd = *relative ? open_beneath(mount_fd, relative, O_PATH | O_DIRECTORY)
                                 : fcntl(mount_fd, F_DUPFD_CLOEXEC, 3);
        if (container_fd < 0)
                return container_fd;

        if (create && mkdirat(container_fd, CGROUP_AGENT_DIR, 0755) < 0 && errno != EEXIST)
                return negative_errno();

        agent_fd = open_beneath(container_fd, CGROUP_AGENT_DIR, O_RDONLY | O_DIRECTORY);
        if (agent_fd < 0)
                return agent_fd;

        if (create && options_contain(mount->super_options, "cpuset")) {
                int r = inherit_cpuset(container_fd, agent_fd);

                if (r < 0)
                        return r;
        }

        h->procs_fd = open_beneath(agent_fd, "cgroup.procs", O_WRONLY);
        if (h->procs_fd < 0)
                return h->procs_fd;

        h->agent_dir_fd = TAKE_FD(agent_fd);
        h->agent_path = xasprintf("%s/%s%s%s", mount->mount_point, relative, *relative ? "/" : "",
                                  CGROUP_AGENT_DIR);
        return 0;
}

/* The host's cgroup mounts, read from mountinfo on first use and kept, so
 * that a launch does not parse the whole mount table again. They are dropped
 * and read anew when a mount point is gone or is no cgroupfs any more. */
static struct cgroup_mount *host_mounts;
static size_t n_host_mounts;

static void forget_host_mounts(void)
{
        cgroup_mounts_free(host_mounts, n_host_mounts);
        host_mounts = NULL;
        n_host_mounts = 0;
}

static int agent_cgroups_setup(int proc_pid_fd, const char *container_id, bool create,
                               struct agent_cgroups *ret_cgroups)
{
        _cleanup_free_ char *data = NULL;
        struct agent_cgroups cgroups;
        char *saveptr = NULL;
        int r;

        r = read_file_at(proc_pid_fd, "cgroup", CGROUP_FILE_MAX, &data, NULL);
        if (r < 0)
                return r;
        if (!host_mounts) {
                r = read_cgroup_mounts(&host_mounts, &n_host_mounts);
                if (r < 0)
                        return r;
        }

        agent_cgroups_init(&cgroups);
        for (char *line = strtok_r(data, "\n", &saveptr); line; line = strtok_r(NULL, "\n", &saveptr)) {
                char *controllers = strchr(line, ':');
                char *path = controllers ? strchr(controllers + 1, ':') : NULL;
                struct cgroup_hierarchy *h;
                const struct cgroup_mount *mount;

                if (!path) {
                        r = -EBADMSG;
                        goto fail;
                }
                *controllers++ = '\0';
                *path++ = '\0';

                /* Each cgroup of the pinned process must name the container:
                 * this ties the pid to the container as Docker reported it. */
                if (!strstr(path, container_id)) {
                        r = -ESRCH;
                        goto fail;
                }

                mount = find_mount(host_mounts, n_host_mounts, *controllers == '\0', controllers);
                if (!mount)
                        continue; /* a hierarchy the host has not mounted */
                if (cgroups.count == CGROUP_MAX_HIERARCHIES) {
                        r = -E2BIG;
                        goto fail;
                }

                h = &cgroups.hierarchies[cgroups.count];
                *h = (struct cgroup_hierarchy){
                        .id = atoi(line),
                        .unified = *controllers == '\0',
                        .controllers = xstrdup(controllers),
                        .agent_dir_fd = -1,
                        .procs_fd = -1,
                };
                cgroups.count++;

                r = open_agent_cgroup(mount, path, create, h);
                if (r < 0)
                        goto fail;

                if (h->unified)
                        cgroups.unified_index = cgroups.count - 1;
                if (options_contain(controllers, "freezer"))
                        cgroups.freezer_index = cgroups.count - 1;
                if (options_contain(controllers, "memory"))
                        cgroups.memory_index = cgroups.count - 1;
                if (options_contain(controllers, "pids"))
                        cgroups.pids_index = cgroups.count - 1;
        }

        if (cgroups.count == 0) {
                r = -ENOENT;
                goto fail;
        }

        *ret_cgroups = cgroups;
        return 0;

fail:
        if (r == -ESTALE)
                forget_host_mounts();
        agent_cgroups_release(&cgroups);
        return r;
}

int agent_cgroups_prepare(int proc_pid_fd, const char *container_id,
                          struct agent_cgroups *ret_cgroups)
{
        return agent_cgroups_setup(proc_pid_fd, container_id, true, ret_cgroups);
}

int agent_cgroups_open(int proc_pid_fd, const char *container_id,
                       struct agent_cgroups *ret_cgroups)
{
        return agent_cgroups_setup(proc_pid_fd, container_id, false, ret_cgroups);
}

static int write_cgroup_file(int dirfd, const char *name, const char *value)
{
        _cleanup_close_ int fd = open_beneath(dirfd, name, O_WRONLY);

        if (fd < 0)
                return fd;
        return write_all(fd, value, strlen(value));
}

/* Write a cap, or remove it when value is 0. */
static int write_limit(const struct cgroup_hierarchy *h, const char *v1_name, const char *v2_name,
                       const char *v1_unlimited, uint64_t value)
{
        char text[32];

        if (value > 0)
                snprintf(text, sizeof(text), "%" PRIu64, value);
        else
                snprintf(text, sizeof(text), "%s", h->unified ? "max" : v1_unlimited);

        return write_cgroup_file(h->agent_dir_fd, h->unified ? v2_name : v1_name, text);
}

int agent_cgroups_set_limits(struct agent_cgroups *cgroups, uint64_t memory_max, uint64_t pids_max)
{
        int r;

        if (cgroups->memory_index >= 0) {
                r = write_limit(&cgroups->hierarchies[cgroups->memory_index],
                                "memory.limit_in_bytes", "memory.max", "-1", memory_max);
                if (r < 0)
                        return r;
        } else if (memory_max > 0)
                return -EOPNOTSUPP;

        if (cgroups->pids_index >= 0) {
                r = write_limit(&cgroups->hierarchies[cgroups->pids_index], "pids.max", "pids.max",
                                "max", pids_max);
                if (r < 0)
                        return r;
        } else if (pids_max > 0)
                return -EOPNOTSUPP;

        return 0;
}

/* The pids of a cgroup, read from its cgroup.procs. */
static int read_members(const struct cgroup_hierarchy *h, pid_t **ret_pids, size_t *ret_count)
{
        _cleanup_free_ char *data = NULL;
        pid_t *pids = NULL;
        size_t count = 0;
        int r;

        r = read_file_at(h->agent_dir_fd, "cgroup.procs", CGROUP_FILE_MAX, &data, NULL);
        if (r < 0)
                return r;

        for (char *p = data; *p;) {
                char *end;
                long pid = strtol(p, &end, 10);

                if (end == p)
                        break;
                pids = realloc(pids, (count + 1) * sizeof(*pids));
                if (!pids)
                        abort();
                pids[count++] = (pid_t)pid;
                p = end;
                while (*p == '\n')
                        p++;
        }

        *ret_pids = pids;
        *ret_count = count;
        return 0;
}

bool agent_cgroups_contains(const struct agent_cgroups *cgroups, pid_t pid)
{
        _cleanup_free_ pid_t *pids = NULL;
        size_t count = 0;

        if (cgroups->count == 0 || read_members(&cgroups->hierarchies[0], &pids, &count) < 0)
                return false;
        for (size_t i = 0; i < count; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

int agent_cgroups_list(const struct agent_cgroups *cgroups, pid_t **ret_pids, size_t *ret_count)
{
        if (cgroups->count == 0)
                return -ENOENT;
        return read_members(&cgroups->hierarchies[0], ret_pids, ret_count);
}

int agent_cgroups_count_processes(const struct agent_cgroups *cgroups)
{
        _cleanup_free_ pid_t *pids = NULL;
        size_t count = 0;
        int r;

        if (cgroups->count == 0)
                return -ENOENT;
        r = read_members(&cgroups->hierarchies[0], &pids, &count);
        return r < 0 ? r : (int)count;
}

int agent_cgroups_kill(const struct agent_cgroups *cgroups)
{
        const struct cgroup_hierarchy *freezer;
        _cleanup_free_ pid_t *pids = NULL;
        size_t count = 0;
        int r;

        if (cgroups->unified_index >= 0) {
                r = write_cgroup_file(cgroups->hierarchies[cgroups->unified_index].agent_dir_fd,
                                      "cgroup.kill", "1");
                if (r != -ENOENT)
                        return r;
                /* cgroup.kill needs Linux 5.14; fall back to signalling members. */
        }

        /* Freezing first keeps a forking tree from outrunning the kills. */
        freezer = cgroups->freezer_index >= 0 ? &cgroups->hierarchies[cgroups->freezer_index] : NULL;
        if (freezer)
                (void)write_cgroup_file(freezer->agent_dir_fd, "freezer.state", "FROZEN");

        r = read_members(&cgroups->hierarchies[freezer ? cgroups->freezer_index : 0], &pids, &count);
        if (r >= 0)
                for (size_t i = 0; i < count; i++)
                        (void)kill(pids[i], SIGKILL);

        if (freezer)
                (void)write_cgroup_file(freezer->agent_dir_fd, "freezer.state", "THAWED");
        return r < 0 ? r : (int)count;
}

int agent_cgroups_remove(struct agent_cgroups *cgroups)
{
        int result = 0;

        for (int i = 0; i < cgroups->count; i++) {
                struct cgroup_hierarchy *h = &cgroups->hierarchies[i];

                if (!h->agent_path)
                        continue;
                if (rmdir(h->agent_path) < 0 && errno != ENOENT && result == 0)
                        result = negative_errno();
        }
        return result;
}

bool cgroup_host_can_cap(const char *controller)
{
        _cleanup_free_ char *data = NULL;
        char *saveptr = NULL;

        if (read_file_at(AT_FDCWD, "/proc/self/cgroup", CGROUP_FILE_MAX, &data, NULL) < 0)
                return false;

        for (char *line = strtok_r(data, "\n", &saveptr); line; line = strtok_r(NULL, "\n", &saveptr)) {
                char *controllers = strchr(line, ':');
                char *end = controllers ? strchr(controllers + 1, ':') : NULL;

                if (!end)
                        continue;
                *end = '\0';
                if (options_contain(controllers + 1, controller))
                        return true;
        }
        return false;
}
