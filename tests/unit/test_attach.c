/* mount_table_attach() as the joiner runs it: each case forks a child that
 * enters a private mount namespace, builds a fake container root on a tmpfs,
 * prepares detached trees, changes root into the fake root and attaches.
 * The child sends what it saw over a pipe, and the parent checks it. */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mounts/attach.h"
#include "mounts/mountinfo.h"
#include "supervisor/util.h"

#define MAX_ENTRIES 3
#define MAX_PROBES 3
#define MAX_ROUNDS 2

/* A bundle target like those that inject.c makes from BUNDLE_TARGET_PREFIX and a UUID. */
#define BUNDLE_TARGET "/ecs-execute-command-x"
#define LOG_TARGET "/var/log/amazon/ssm"

/* Source directories of the detached trees, each with a marker file of its own name. */
enum source { SOURCE_A, SOURCE_B, N_SOURCES };
static const char *const source_names[N_SOURCES] = { "a", "b" };

struct entry_case {
        const char *target;
        bool fatal;
        bool replace_existing;
        enum source source[MAX_ROUNDS]; /* the tree attached in each round */
};

struct attach_case {
        /* Fills the fake root before the change of root and returns 0 or a negative errno. */
        int (*prepare)(int root_fd);
        struct entry_case entries[MAX_ENTRIES];
        size_t n_entries;
        int rounds; /* calls of mount_table_attach() with fresh trees each, where 0 means 1 */
        /* A directory of the root that becomes a mount with shared propagation,
         * whose id is passed as shared. */
        const char *shared_dir;
        const char *probes[MAX_PROBES]; /* paths inside the root to inspect afterwards */
        /* Attach from the host's root, so that only the resolution below
         * root_fd keeps the mounts inside the fake root. */
        bool without_chroot;
};

struct probe_result {
        int mounts;    /* lines of the root's mountinfo with this mount point */
        int top_round; /* round whose tree is on top at the path, or -1 */
        int top_entry; /* entry whose tree is on top at the path, or -1 */
        char marker;   /* 'a' or 'b' when that source's marker file is visible there, else 0 */
};

struct attach_result {
        char setup_failure[256]; /* empty when the child could build the fixture */
        int r[MAX_ROUNDS];
        size_t failed[MAX_ROUNDS];
        int error[MAX_ROUNDS][MAX_ENTRIES];
        bool attached[MAX_ROUNDS][MAX_ENTRIES];
        struct probe_result probes[MAX_PROBES];
        /* The shared_dir mount's id is among mountinfo_shared_ids() of the root's mountinfo. */
        bool shared_id_listed;
};

/* The host directory that the child covers with a tmpfs. */
static char scratch_dir[64];
/* The name that hostile symlinks point to. It must appear only inside the fake root. */
static char escape_name[64];
static bool host_etc_amazon_existed;

/* Child side. */

static _Noreturn void setup_failed(int result_fd, struct attach_result *result, const char *step)
{
        snprintf(result->setup_failure, sizeof(result->setup_failure), "%s: %s", step,
                 strerror(errno));
        (void)write_all(result_fd, result, sizeof(*result));
        _exit(0);
}

static int write_marker(const char *dir, const char *name)
{
        _cleanup_free_ char *path = xasprintf("%s/marker-%s", dir, name);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

        return fd < 0 ? -errno : 0;
}

static int open_tree_clone(enum source source)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", scratch_dir, source_names[source]);

        return open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
}

static uint64_t mount_id_of(int dirfd, const char *path)
{
        struct statx stx;

        if (statx(dirfd, path, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0)
                return 0;
        return stx.stx_mnt_id;
}

static int count_mounts_at(const char *mountinfo, const char *path)
{
        _cleanup_free_ char *copy = xstrdup(mountinfo);
        char *save = NULL;
        int count = 0;

        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char mount_point[4096];

                if (sscanf(line, "%*s %*s %*s %*s %4095s", mount_point) == 1 &&
                    streq(mount_point, path))
                        count++;
        }
        return count;
}

static void probe(const char *prefix, const char *probe_path, const char *mountinfo,
                  uint64_t tree_ids[][MAX_ENTRIES], int rounds, size_t n_entries,
                  struct probe_result *ret)
{
        _cleanup_free_ char *path = xasprintf("%s%s", prefix,
                                              *prefix && streq(probe_path, "/") ? "" : probe_path);
        uint64_t id = mount_id_of(AT_FDCWD, path);

        ret->mounts = count_mounts_at(mountinfo, path);
        ret->top_round = -1;
        ret->top_entry = -1;
        for (int round = 0; round < rounds; round++)
                for (size_t i = 0; i < n_entries; i++)
                        if (id != 0 && tree_ids[round][i] == id) {
                                ret->top_round = round;
                                ret->top_entry = (int)i;
                        }

        ret->marker = 0;
        for (int s = 0; s < N_SOURCES; s++) {
                _cleanup_free_ char *marker = xasprintf("%s/marker-%s", path, source_names[s]);

                if (access(marker, F_OK) == 0)
                        ret->marker = source_names[s][0];
        }
}

static void run_child(const struct attach_case *c, int result_fd)
{
        struct attach_result result = { .setup_failure = "" };
        int rounds = c->rounds > 0 ? c->rounds : 1;
        int trees[MAX_ROUNDS][MAX_ENTRIES];
        uint64_t tree_ids[MAX_ROUNDS][MAX_ENTRIES] = {};
        uint64_t shared_id = 0;
        _cleanup_free_ char *root_path = xasprintf("%s/root", scratch_dir);
        _cleanup_free_ char *mountinfo = NULL;
        int root_fd, proc_fd;

        if (unshare(CLONE_NEWNS) < 0)
                setup_failed(result_fd, &result, "unshare(CLONE_NEWNS)");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                setup_failed(result_fd, &result, "make / private");
        if (mount("scratch", scratch_dir, "tmpfs", 0, "mode=0755") < 0)
                setup_failed(result_fd, &result, "mount the scratch tmpfs");

        for (int s = 0; s < N_SOURCES; s++) {
                _cleanup_free_ char *dir = xasprintf("%s/%s", scratch_dir, source_names[s]);

                if (mkdir(dir, 0755) < 0)
                        setup_failed(result_fd, &result, "make a source directory");
                errno = -write_marker(dir, source_names[s]);
                if (errno != 0)
                        setup_failed(result_fd, &result, "write a marker file");
        }

        /* The fake container root is a mount of its own, as an overlay root is. */
        if (mkdir(root_path, 0755) < 0)
                setup_failed(result_fd, &result, "make the root directory");
        if (mount("fake-root", root_path, "tmpfs", 0, "mode=0755") < 0)
                setup_failed(result_fd, &result, "mount the fake root");
        root_fd = open(root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                setup_failed(result_fd, &result, "open the fake root");

        if (c->prepare) {
                errno = -c->prepare(root_fd);
                if (errno != 0)
                        setup_failed(result_fd, &result, "prepare the fake root");
        }

        if (c->shared_dir) {
                _cleanup_free_ char *shared_path = xasprintf("%s/%s", root_path, c->shared_dir);

                if (mkdir(shared_path, 0755) < 0 ||
                    mount("shared", shared_path, "tmpfs", 0, "mode=0755") < 0 ||
                    mount(NULL, shared_path, NULL, MS_SHARED, NULL) < 0)
                        setup_failed(result_fd, &result, "make the shared mount");
                shared_id = mount_id_of(AT_FDCWD, shared_path);
        }

        /* Everything that needs the host's file system is opened before the
         * change of root, as the real joiner gets its fds from the supervisor. */
        for (int round = 0; round < rounds; round++)
                for (size_t i = 0; i < c->n_entries; i++) {
                        trees[round][i] = open_tree_clone(c->entries[i].source[round]);
                        if (trees[round][i] < 0)
                                setup_failed(result_fd, &result, "open_tree(OPEN_TREE_CLONE)");
                        tree_ids[round][i] = mount_id_of(trees[round][i], "");
                }
        proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0)
                setup_failed(result_fd, &result, "open /proc");

        if (!c->without_chroot && (fchdir(root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0))
                setup_failed(result_fd, &result, "change root");

        for (int round = 0; round < rounds; round++) {
                struct mount_entry entries[MAX_ENTRIES] = {};

                for (size_t i = 0; i < c->n_entries; i++)
                        entries[i] = (struct mount_entry){
                                .target = c->entries[i].target,
                                .tree_fd = trees[round][i],
                                .mkdir_mode = 0755,
                                .fatal = c->entries[i].fatal,
                                .replace_existing = c->entries[i].replace_existing,
                        };

                result.failed[round] = SIZE_MAX;
                result.r[round] = mount_table_attach(root_fd, entries, c->n_entries,
                                                     shared_id ? &shared_id : NULL,
                                                     shared_id ? 1 : 0, &result.failed[round]);
                for (size_t i = 0; i < c->n_entries; i++) {
                        result.error[round][i] = entries[i].error;
                        result.attached[round][i] = entries[i].attached;
                }
        }

        /* After the change of root, paths in this mountinfo are relative to
         * the fake root, and mounts outside it are left out. */
        if (read_file_at(proc_fd, "self/mountinfo", 16 * 1024 * 1024, &mountinfo, NULL) < 0)
                setup_failed(result_fd, &result, "read the mountinfo");
        for (size_t i = 0; i < MAX_PROBES && c->probes[i]; i++)
                probe(c->without_chroot ? root_path : "", c->probes[i], mountinfo, tree_ids,
                      rounds, c->n_entries, &result.probes[i]);

        if (shared_id) {
                uint64_t *ids = NULL;
                size_t count = 0;

                if (mountinfo_shared_ids(mountinfo, &ids, &count) == 0)
                        for (size_t i = 0; i < count; i++)
                                if (ids[i] == shared_id)
                                        result.shared_id_listed = true;
                free(ids);
        }

        (void)write_all(result_fd, &result, sizeof(result));
}

/* Parent side. */

static void run_case(const struct attach_case *c, struct attach_result *ret)
{
        int pipe_fds[2];
        ssize_t n;
        int status;
        pid_t pid;

        assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(pipe_fds[0]);
                run_child(c, pipe_fds[1]);
                _exit(0);
        }

        close(pipe_fds[1]);
        n = read(pipe_fds[0], ret, sizeof(*ret));
        close(pipe_fds[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);

        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(n, sizeof(*ret));
        if (ret->setup_failure[0])
                fail_msg("fixture failed: %s", ret->setup_failure);
}

/* Remove the empty directories that an escape from the fake root would have
 * made on the host, and return whether there were any. */
static bool remove_escapes(void)
{
        const char *const bases[] = { "", "/tmp" };
        bool found = false;

        for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
                _cleanup_free_ char *base = xasprintf("%s/%s", bases[i], escape_name);
                _cleanup_free_ char *amazon = xasprintf("%s/amazon", base);
                _cleanup_free_ char *ssm = xasprintf("%s/amazon/ssm", base);
                struct stat st;

                if (lstat(base, &st) == 0) {
                        found = true;
                        (void)rmdir(ssm);
                        (void)rmdir(amazon);
                        (void)rmdir(base);
                }
        }

        if (!host_etc_amazon_existed && access("/etc/amazon", F_OK) == 0) {
                found = true;
                (void)rmdir("/etc/amazon/ssm");
                (void)rmdir("/etc/amazon");
        }
        return found;
}

static void assert_host_untouched(void)
{
        assert_false(remove_escapes());
}

/* Clean up after a test that failed before it checked the host. */
static int test_teardown(void **state)
{
        (void)remove_escapes();
        return 0;
}

static void assert_probe(const struct probe_result *p, int mounts, int top_round, int top_entry,
                         char marker)
{
        assert_int_equal(p->mounts, mounts);
        assert_int_equal(p->top_round, top_round);
        assert_int_equal(p->top_entry, top_entry);
        assert_int_equal(p->marker, marker);
}

/* Fixture helpers, relative to the fake root. */

static int make_dirs(int root_fd, const char *path)
{
        _cleanup_free_ char *copy = xstrdup(path);

        for (char *slash = strchr(copy, '/');; slash = strchr(slash + 1, '/')) {
                if (slash)
                        *slash = '\0';
                if (mkdirat(root_fd, copy, 0755) < 0 && errno != EEXIST)
                        return -errno;
                if (!slash)
                        return 0;
                *slash = '/';
        }
}

static int make_file(int root_fd, const char *path)
{
        _cleanup_close_ int fd = openat(root_fd, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

        return fd < 0 ? -errno : 0;
}

static int make_link(int root_fd, const char *path, const char *target)
{
        return symlinkat(target, root_fd, path) < 0 ? -errno : 0;
}

static int prepare_var_log(int root_fd)
{
        return make_dirs(root_fd, "var/log");
}

static int prepare_link_dotdot_dangling(int root_fd)
{
        _cleanup_free_ char *target = xasprintf("/../../../%s", escape_name);
        int r = make_dirs(root_fd, "var");

        return r < 0 ? r : make_link(root_fd, "var/log", target);
}

static int prepare_link_dotdot_existing(int root_fd)
{
        int r = make_dirs(root_fd, escape_name);

        return r < 0 ? r : prepare_link_dotdot_dangling(root_fd);
}

static int prepare_link_relative(int root_fd)
{
        _cleanup_free_ char *target = xasprintf("../../../../%s", escape_name);
        int r = make_dirs(root_fd, "var");

        return r < 0 ? r : make_link(root_fd, "var/log", target);
}

static int prepare_link_etc(int root_fd)
{
        int r = make_dirs(root_fd, "var");

        return r < 0 ? r : make_link(root_fd, "var/log", "/etc");
}

static int prepare_link_etc_existing(int root_fd)
{
        int r = make_dirs(root_fd, "etc");

        return r < 0 ? r : prepare_link_etc(root_fd);
}

static int prepare_link_loop(int root_fd)
{
        int r = make_dirs(root_fd, "var");

        if (r >= 0)
                r = make_link(root_fd, "var/log", "log2");
        if (r >= 0)
                r = make_link(root_fd, "var/log2", "/var/log");
        return r;
}

static int prepare_file_in_way(int root_fd)
{
        int r = make_dirs(root_fd, "var");

        return r < 0 ? r : make_file(root_fd, "var/log");
}

static int prepare_link_to_root(int root_fd)
{
        int r = make_dirs(root_fd, "var/log/amazon");

        return r < 0 ? r : make_link(root_fd, "var/log/amazon/ssm", "/");
}

static int prepare_log_link_and_file(int root_fd)
{
        int r = make_dirs(root_fd, "var/log/amazon");

        if (r >= 0)
                r = make_dirs(root_fd, "data/ssm");
        if (r >= 0)
                r = make_link(root_fd, "var/log/amazon/ssm", "/data/ssm");
        if (r >= 0)
                r = make_file(root_fd, "ecs-execute-command-x");
        return r;
}

/* Tests. */

static void test_attach_missing_directories(void **state)
{
        const struct attach_case c = {
                .prepare = prepare_var_log,
                .entries = { { .target = LOG_TARGET, .fatal = true },
                             { .target = BUNDLE_TARGET, .fatal = true, .replace_existing = true,
                               .source = { SOURCE_B } } },
                .n_entries = 2,
                .probes = { LOG_TARGET, BUNDLE_TARGET },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_int_equal(result.r[0], 0);
        assert_int_equal(result.failed[0], SIZE_MAX);
        assert_int_equal(result.error[0][0], 0);
        assert_int_equal(result.error[0][1], 0);
        assert_true(result.attached[0][0]);
        assert_true(result.attached[0][1]);
        assert_probe(&result.probes[0], 1, 0, 0, 'a');
        assert_probe(&result.probes[1], 1, 0, 1, 'b');
        assert_host_untouched();
}

static void test_attach_odd_target_spelling(void **state)
{
        const struct attach_case c = {
                .entries = { { .target = "//var/./log//amazon/ssm/", .fatal = true },
                             { .target = "/../../ecs-execute-command-x", .fatal = true,
                               .source = { SOURCE_B } } },
                .n_entries = 2,
                .probes = { LOG_TARGET, BUNDLE_TARGET },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_int_equal(result.r[0], 0);
        assert_probe(&result.probes[0], 1, 0, 0, 'a');
        /* ".." at the root stays at the root. */
        assert_probe(&result.probes[1], 1, 0, 1, 'b');
        assert_host_untouched();
}

/* Run c after a change of root into the fake root, as the joiner does, and
 * again from the host's root, where only the resolution below root_fd keeps
 * the mount inside. Checks that the entry landed at probe 0 both times. */
static void assert_attached_inside(const struct attach_case *c)
{
        for (int without_chroot = 0; without_chroot <= 1; without_chroot++) {
                struct attach_case variant = *c;
                struct attach_result result;

                variant.without_chroot = without_chroot;
                run_case(&variant, &result);
                assert_int_equal(result.r[0], 0);
                assert_true(result.attached[0][0]);
                assert_probe(&result.probes[0], 1, 0, 0, 'a');
                assert_host_untouched();
        }
}

static void test_dotdot_symlink_dangling_inside(void **state)
{
        _cleanup_free_ char *inside = xasprintf("/%s/amazon/ssm", escape_name);
        const struct attach_case c = {
                .prepare = prepare_link_dotdot_dangling,
                .entries = { { .target = LOG_TARGET, .fatal = true } },
                .n_entries = 1,
                .probes = { inside, LOG_TARGET },
        };
        struct attach_result result;

        /* The link's target is made inside the fake root, and the mount is there. */
        assert_attached_inside(&c);

        /* Inside the container, the link leads to the mount. */
        run_case(&c, &result);
        assert_int_equal(result.probes[1].marker, 'a');
}

static void test_dotdot_symlink_existing_inside(void **state)
{
        _cleanup_free_ char *inside = xasprintf("/%s/amazon/ssm", escape_name);
        const struct attach_case c = {
                .prepare = prepare_link_dotdot_existing,
                .entries = { { .target = LOG_TARGET, .fatal = true } },
                .n_entries = 1,
                .probes = { inside },
        };

        assert_attached_inside(&c);
}

static void test_relative_symlink_inside(void **state)
{
        _cleanup_free_ char *inside = xasprintf("/%s/amazon/ssm", escape_name);
        const struct attach_case c = {
                .prepare = prepare_link_relative,
                .entries = { { .target = LOG_TARGET, .fatal = true } },
                .n_entries = 1,
                .probes = { inside },
        };

        assert_attached_inside(&c);
}

static void test_absolute_symlink_to_etc(void **state)
{
        const struct attach_case dangling = {
                .prepare = prepare_link_etc,
                .entries = { { .target = LOG_TARGET, .fatal = true } },
                .n_entries = 1,
                .probes = { "/etc/amazon/ssm" },
        };
        const struct attach_case existing = {
                .prepare = prepare_link_etc_existing,
                .entries = { { .target = LOG_TARGET, .fatal = true } },
                .n_entries = 1,
                .probes = { "/etc/amazon/ssm" },
        };

        /* "/etc" is the container's /etc, whether it exists there or not. */
        assert_attached_inside(&dangling);
        assert_attached_inside(&existing);
}

static void test_symlink_loop_eloop(void **state)
{
        const struct attach_case c = {
                .prepare = prepare_link_loop,
                .entries = { { .target = LOG_TARGET, .fatal = true } },
                .n_entries = 1,
                .probes = { LOG_TARGET },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_int_equal(result.r[0], -ELOOP);
        assert_int_equal(result.failed[0], 0);
        assert_int_equal(result.error[0][0], -ELOOP);
        assert_false(result.attached[0][0]);
        assert_probe(&result.probes[0], 0, -1, -1, 0);
}

static void test_file_in_the_way(void **state)
{
        const struct attach_case below_file = {
                .prepare = prepare_file_in_way,
                .entries = { { .target = LOG_TARGET, .fatal = true } },
                .n_entries = 1,
        };
        const struct attach_case file_at_target = {
                .prepare = prepare_file_in_way,
                .entries = { { .target = "/var/log", .fatal = true } },
                .n_entries = 1,
        };
        struct attach_result result;

        run_case(&below_file, &result);
        assert_true(result.r[0] == -ENOTDIR || result.r[0] == -EEXIST);
        assert_int_equal(result.failed[0], 0);
        assert_false(result.attached[0][0]);

        run_case(&file_at_target, &result);
        assert_true(result.r[0] == -ENOTDIR || result.r[0] == -EEXIST);
        assert_false(result.attached[0][0]);
}

static void test_replace_existing_no_stacking(void **state)
{
        const struct attach_case c = {
                .entries = { { .target = BUNDLE_TARGET, .fatal = true, .replace_existing = true,
                               .source = { SOURCE_A, SOURCE_B } } },
                .n_entries = 1,
                .rounds = 2,
                .probes = { BUNDLE_TARGET },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_int_equal(result.r[0], 0);
        assert_int_equal(result.r[1], 0);
        assert_true(result.attached[1][0]);
        /* Only the second round's tree is left at the target. */
        assert_probe(&result.probes[0], 1, 1, 0, 'b');
}

static void test_same_directory_kept(void **state)
{
        const struct attach_case c = {
                .entries = { { .target = LOG_TARGET, .fatal = true,
                               .source = { SOURCE_A, SOURCE_A } } },
                .n_entries = 1,
                .rounds = 2,
                .probes = { LOG_TARGET },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_int_equal(result.r[0], 0);
        assert_int_equal(result.r[1], 0);
        assert_int_equal(result.error[1][0], 0);
        assert_true(result.attached[0][0]);
        assert_false(result.attached[1][0]);
        assert_probe(&result.probes[0], 1, 0, 0, 'a');
}

static void test_other_directory_stacked(void **state)
{
        const struct attach_case c = {
                .entries = { { .target = LOG_TARGET, .fatal = true,
                               .source = { SOURCE_A, SOURCE_B } } },
                .n_entries = 1,
                .rounds = 2,
                .probes = { LOG_TARGET },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_int_equal(result.r[1], 0);
        assert_true(result.attached[1][0]);
        assert_probe(&result.probes[0], 2, 1, 0, 'b');
}

static void test_fatal_failure_undoes_earlier(void **state)
{
        const struct attach_case c = {
                .prepare = prepare_file_in_way,
                .entries = { { .target = BUNDLE_TARGET, .fatal = true, .replace_existing = true },
                             { .target = LOG_TARGET, .fatal = true, .source = { SOURCE_B } } },
                .n_entries = 2,
                .probes = { BUNDLE_TARGET },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_true(result.r[0] == -ENOTDIR || result.r[0] == -EEXIST);
        assert_int_equal(result.failed[0], 1);
        assert_int_equal(result.error[0][0], 0);
        assert_int_equal(result.error[0][1], result.r[0]);
        assert_false(result.attached[0][0]);
        assert_false(result.attached[0][1]);
        assert_probe(&result.probes[0], 0, -1, -1, 0);
}

static void test_fatal_failure_undoes_linked_target(void **state)
{
        const struct attach_case c = {
                .prepare = prepare_log_link_and_file,
                .entries = { { .target = LOG_TARGET, .fatal = true },
                             { .target = BUNDLE_TARGET, .fatal = true, .replace_existing = true,
                               .source = { SOURCE_B } } },
                .n_entries = 2,
                .probes = { "/data/ssm" },
        };
        struct attach_result result;

        /* The first entry lands on /data/ssm through the link, so the undo must
         * find it there too. */
        run_case(&c, &result);
        assert_true(result.r[0] == -ENOTDIR || result.r[0] == -EEXIST);
        assert_int_equal(result.failed[0], 1);
        assert_false(result.attached[0][0]);
        assert_probe(&result.probes[0], 0, -1, -1, 0);
}

static void test_best_effort_failure_continues(void **state)
{
        const struct attach_case c = {
                .prepare = prepare_file_in_way,
                .entries = { { .target = LOG_TARGET, .fatal = false },
                             { .target = BUNDLE_TARGET, .fatal = true, .replace_existing = true,
                               .source = { SOURCE_B } } },
                .n_entries = 2,
                .probes = { BUNDLE_TARGET },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_int_equal(result.r[0], 0);
        assert_int_equal(result.failed[0], SIZE_MAX);
        assert_true(result.error[0][0] == -ENOTDIR || result.error[0][0] == -EEXIST);
        assert_false(result.attached[0][0]);
        assert_true(result.attached[0][1]);
        assert_probe(&result.probes[0], 1, 0, 1, 'b');
}

static void test_shared_mount_exdev(void **state)
{
        const struct attach_case c = {
                .entries = { { .target = "/shared/agent", .fatal = true } },
                .n_entries = 1,
                .shared_dir = "shared",
                .probes = { "/shared/agent" },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_true(result.shared_id_listed);
        assert_int_equal(result.r[0], -EXDEV);
        assert_int_equal(result.failed[0], 0);
        assert_false(result.attached[0][0]);
        assert_probe(&result.probes[0], 0, -1, -1, 0);
}

static void test_root_target_rejected(void **state)
{
        const struct attach_case c = {
                .entries = { { .target = "/", .fatal = true, .replace_existing = true } },
                .n_entries = 1,
                .probes = { "/" },
        };
        struct attach_result result;

        run_case(&c, &result);
        assert_int_equal(result.r[0], -EBUSY);
        assert_false(result.attached[0][0]);
        /* The fake root alone. */
        assert_probe(&result.probes[0], 1, -1, -1, 0);
}

static void test_symlink_to_root_rejected(void **state)
{
        const struct attach_case c = {
                .prepare = prepare_link_to_root,
                .entries = { { .target = LOG_TARGET, .fatal = true } },
                .n_entries = 1,
                .probes = { "/" },
        };
        struct attach_result result;

        /* A link that resolves to the root must not put the tree over the
         * container's whole file system. */
        run_case(&c, &result);
        assert_true(result.r[0] < 0);
        assert_false(result.attached[0][0]);
        assert_probe(&result.probes[0], 1, -1, -1, 0);
}

static int group_setup(void **state)
{
        struct stat st;

        snprintf(scratch_dir, sizeof(scratch_dir), "/tmp/execvisor-unit-attach-XXXXXX");
        if (!mkdtemp(scratch_dir))
                return -1;
        snprintf(escape_name, sizeof(escape_name), "execvisor-unit-escape-%d", (int)getpid());
        host_etc_amazon_existed = lstat("/etc/amazon", &st) == 0;
        return 0;
}

static int group_teardown(void **state)
{
        return rmdir(scratch_dir);
}

/* Skip without root, or where mount namespaces or the new mount API are not available. */
static bool can_run(void)
{
        int status;
        pid_t pid;

        if (geteuid() != 0)
                return false;

        pid = fork();
        if (pid < 0)
                return false;
        if (pid == 0) {
                int fd;

                if (unshare(CLONE_NEWNS) < 0)
                        _exit(1);
                if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        _exit(1);
                fd = open_tree(AT_FDCWD, "/tmp", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                _exit(fd < 0 ? 1 : 0);
        }
        return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_attach_missing_directories, test_teardown),
                cmocka_unit_test_teardown(test_attach_odd_target_spelling, test_teardown),
                cmocka_unit_test_teardown(test_dotdot_symlink_dangling_inside, test_teardown),
                cmocka_unit_test_teardown(test_dotdot_symlink_existing_inside, test_teardown),
                cmocka_unit_test_teardown(test_relative_symlink_inside, test_teardown),
                cmocka_unit_test_teardown(test_absolute_symlink_to_etc, test_teardown),
                cmocka_unit_test_teardown(test_symlink_loop_eloop, test_teardown),
                cmocka_unit_test_teardown(test_file_in_the_way, test_teardown),
                cmocka_unit_test_teardown(test_replace_existing_no_stacking, test_teardown),
                cmocka_unit_test_teardown(test_same_directory_kept, test_teardown),
                cmocka_unit_test_teardown(test_other_directory_stacked, test_teardown),
                cmocka_unit_test_teardown(test_fatal_failure_undoes_earlier, test_teardown),
                cmocka_unit_test_teardown(test_fatal_failure_undoes_linked_target, test_teardown),
                cmocka_unit_test_teardown(test_best_effort_failure_continues, test_teardown),
                cmocka_unit_test_teardown(test_shared_mount_exdev, test_teardown),
                cmocka_unit_test_teardown(test_root_target_rejected, test_teardown),
                cmocka_unit_test_teardown(test_symlink_to_root_rejected, test_teardown),
        };

        if (!can_run()) {
                fprintf(stderr, "skipped: needs root, mount namespaces and open_tree()\n");
                return 77;
        }
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
