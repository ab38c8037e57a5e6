#include "mounts/attach.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/syscalls.h"

/* Symlinks followed while resolving one target, as the kernel's own limit. */
#define MAX_SYMLINKS 40

struct walk {
        char current[MOUNT_PATH_MAX];   /* resolved so far, relative to the root */
        char remaining[MOUNT_PATH_MAX]; /* still to walk */
};

static int open_in_root(int root_fd, const char *path)
{
        struct open_how how = {
                .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        int fd = sys_openat2(root_fd, *path ? path : ".", &how);

        return fd < 0 ? -errno : fd;
}

/* Join a and b with '/' into out; -ENAMETOOLONG if it does not fit. */
static int join_path(char *out, size_t size, const char *a, const char *b)
{
        size_t length_a = strlen(a), length_b = strlen(b);
        size_t needed = length_a + (length_a && length_b ? 1 : 0) + length_b + 1;
        char buffer[MOUNT_PATH_MAX];

        if (needed > size || needed > sizeof(buffer))
                return -ENAMETOOLONG;

        /* a or b may alias out. */
        memcpy(buffer, a, length_a);
        if (length_a && length_b)
                buffer[length_a++] = '/';
        memcpy(buffer + length_a, b, length_b);
        buffer[length_a + length_b] = '\0';
        memcpy(out, buffer, length_a + length_b + 1);
        return 0;
}

/* Take the first component off walk->remaining into component. */
static void next_component(struct walk *walk, char *component, size_t size)
{
        char *p = walk->remaining;
        size_t length;

        while (*p == '/')
                p++;
        length = strcspn(p, "/");
        if (length >= size)
                length = size - 1;
        memcpy(component, p, length);
        component[length] = '\0';
        p += length;
        while (*p == '/')
                p++;
        memmove(walk->remaining, p, strlen(p) + 1);
}

/* Open component below the directory at path `current` without following
 * any link. */
static int open_component(int parent_fd, const char *component)
{
        struct open_how how = {
                .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd = sys_openat2(parent_fd, component, &how);

        return fd < 0 ? -errno : fd;
}

/* Drop the last component of path; the root stays the root. */
static void pop_component(char *path)
{
        char *slash = strrchr(path, '/');

        if (slash)
                *slash = '\0';
        else
                path[0] = '\0';
}

/* Take one component of the walk: splice a symlink's target into what is
 * left to walk, or make the directory if it is missing and step into it. */
static int walk_component(int root_fd, struct walk *walk, const char *component, mode_t mode,
                          int *symlinks)
{
        char link[MOUNT_PATH_MAX];
        int parent_fd, fd;
        ssize_t n;
        int r = 0;

        parent_fd = open_in_root(root_fd, walk->current);
        if (parent_fd < 0)
                return parent_fd;

        n = readlinkat(parent_fd, component, link, sizeof(link) - 1);
        if (n >= 0) {
                link[n] = '\0';
                close(parent_fd);
                if (++*symlinks > MAX_SYMLINKS)
                        return -ELOOP;
                /* An absolute target starts again at the container's root. */
                if (link[0] == '/')
                        walk->current[0] = '\0';
                return join_path(walk->remaining, sizeof(walk->remaining), link, walk->remaining);
        }

        if (errno == ENOENT && mode == 0)
                r = -ENOENT;
        else if (errno == ENOENT && mkdirat(parent_fd, component, mode) < 0 && errno != EEXIST)
                r = -errno;
        if (r == 0) {
                fd = open_component(parent_fd, component);
                if (fd < 0)
                        r = fd;
                else
                        close(fd);
        }
        close(parent_fd);
        if (r < 0)
                return r;

        return join_path(walk->current, sizeof(walk->current), walk->current, component);
}

/* Resolve target below root_fd, making missing directories with mode (none
 * when mode is 0), and return an
 * O_PATH fd of it and its path relative to the root. Links are followed by
 * hand, so the returned path has no symlink and no "..": every later use of
 * it (the undo, the check) names the same directory. */
static int resolve_target(int root_fd, const char *target, mode_t mode, char *ret_path,
                          int *ret_fd)
{
        struct walk walk = { .current = "" };
        int symlinks = 0;
        int r;

        if (strlen(target) >= sizeof(walk.remaining))
                return -ENAMETOOLONG;
        memcpy(walk.remaining, target, strlen(target) + 1);

        while (walk.remaining[0]) {
                char component[MOUNT_PATH_MAX];

                next_component(&walk, component, sizeof(component));
                if (!component[0] || strcmp(component, ".") == 0)
                        continue;
                if (strcmp(component, "..") == 0) {
                        pop_component(walk.current);
                        continue;
                }

                r = walk_component(root_fd, &walk, component, mode, &symlinks);
                if (r < 0)
                        return r;
        }

        /* Never mount over the container's root itself. */
        if (walk.current[0] == '\0')
                return -EBUSY;

        r = open_in_root(root_fd, walk.current);
        if (r < 0)
                return r;

        memcpy(ret_path, walk.current, sizeof(walk.current));
        *ret_fd = r;
        return 0;
}

static bool id_in(uint64_t id, const uint64_t *ids, size_t count)
{
        for (size_t i = 0; i < count; i++)
                if (ids[i] == id)
                        return true;
        return false;
}

/* Detach whatever is mounted at path (relative to the root we are chrooted
 * to). Used only on targets that resolve_target() walked. */
static int detach_path(const char *path)
{
        char absolute[MOUNT_PATH_MAX + 1] = "/";
        int r;

        r = join_path(absolute + 1, sizeof(absolute) - 1, "", path);
        if (r < 0)
                return r;
        if (umount2(absolute, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                return -errno;
        return 0;
}

static bool same_inode(const struct statx *a, const struct statx *b)
{
        return a->stx_dev_major == b->stx_dev_major && a->stx_dev_minor == b->stx_dev_minor &&
               a->stx_ino == b->stx_ino;
}

/* Prepare the target of entry: returns 1 when the same directory is already
 * mounted there, 0 when the tree is to be attached. Earlier views at a
 * replace_existing target are detached. */
static int clear_target(const struct mount_entry *entry, const char *path, int *target_fd,
                        int root_fd, const struct statx *tree_stx)
{
        for (int round = 0; round < 8; round++) {
                struct statx stx;

                if (statx(*target_fd, "", AT_EMPTY_PATH, STATX_INO, &stx) < 0)
                        return -errno;
                if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) ||
                    !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
                        return 0;
                if (!entry->replace_existing)
                        return same_inode(&stx, tree_stx) ? 1 : 0;

                if (detach_path(path) < 0)
                        return -EBUSY;
                close(*target_fd);
                *target_fd = open_in_root(root_fd, path);
                if (*target_fd < 0)
                        return *target_fd;
        }
        return -EBUSY;
}

static int attach_one(int root_fd, struct mount_entry *entry, const uint64_t *shared_ids,
                      size_t n_shared)
{
        char path[MOUNT_PATH_MAX];
        struct statx target_stx, tree_stx, check_stx;
        int target_fd = -1;
        int r;

        r = resolve_target(root_fd, entry->target, entry->mkdir_mode, path, &target_fd);
        if (r < 0)
                return r;

        if (statx(entry->tree_fd, "", AT_EMPTY_PATH, STATX_MNT_ID | STATX_INO, &tree_stx) < 0) {
                r = -errno;
                goto out;
        }

        r = clear_target(entry, path, &target_fd, root_fd, &tree_stx);
        if (r != 0)
                goto out; /* an error, or the directory is mounted there already */

        if (statx(target_fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &target_stx) < 0) {
                r = -errno;
                goto out;
        }
        if (id_in(target_stx.stx_mnt_id, shared_ids, n_shared)) {
                r = -EXDEV;
                goto out;
        }

        if (move_mount(entry->tree_fd, "", target_fd, "",
                       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
                r = -errno;
                goto out;
        }
        entry->attached = true;

        /* The target as seen now must be the tree we attached. */
        close(target_fd);
        target_fd = open_in_root(root_fd, path);
        if (target_fd < 0) {
                r = target_fd;
                goto out;
        }
        if (statx(target_fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &check_stx) < 0)
                r = -errno;
        else if (check_stx.stx_mnt_id != tree_stx.stx_mnt_id)
                r = -EXDEV;

out:
        if (target_fd >= 0)
                close(target_fd);
        return r > 0 ? 0 : r;
}

int mount_table_attach(int root_fd, struct mount_entry *entries, size_t count,
                       const uint64_t *shared_ids, size_t n_shared, size_t *ret_failed)
{
        for (size_t i = 0; i < count; i++) {
                struct mount_entry *entry = &entries[i];
                int r = attach_one(root_fd, entry, shared_ids, n_shared);

                entry->error = r;
                if (r >= 0 || !entry->fatal)
                        continue;

                for (size_t j = 0; j <= i; j++)
                        if (entries[j].attached) {
                                char path[MOUNT_PATH_MAX];
                                int fd;

                                if (resolve_target(root_fd, entries[j].target, 0, path, &fd) < 0)
                                        continue;
                                close(fd);
                                if (detach_path(path) == 0)
                                        entries[j].attached = false;
                        }
                *ret_failed = i;
                return r;
        }
        return 0;
}
