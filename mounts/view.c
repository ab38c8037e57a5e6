#include "mounts/view.h"

#include <fcntl.h>
#include <sys/mount.h>

#include "supervisor/util.h"

/* overlayfs separates lower directories with ':' and options with ','; paths
 * holding them (or the escape character) are refused instead of escaped. */
static bool valid_overlay_path(const char *path)
{
        return path[0] == '/' && !strpbrk(path, ":,\\");
}

int bundle_view_create(const char *layer_dir, const char *version_dir, int *ret_tree_fd)
{
        _cleanup_close_ int fs_fd = -1;
        _cleanup_free_ char *lower = NULL;
        int tree_fd;

        if (!valid_overlay_path(layer_dir) || !valid_overlay_path(version_dir))
                return -EINVAL;

        fs_fd = fsopen("overlay", FSOPEN_CLOEXEC);
        if (fs_fd < 0)
                return negative_errno();

        /* The generated layer (configuration, certificate, init) sits above
         * the version's binaries. */
        lower = xasprintf("%s:%s", layer_dir, version_dir);
        if (fsconfig(fs_fd, FSCONFIG_SET_STRING, "lowerdir", lower, 0) < 0)
                return negative_errno();
        if (fsconfig(fs_fd, FSCONFIG_SET_STRING, "source", "execvisor-bundle", 0) < 0)
                return negative_errno();
        if (fsconfig(fs_fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return negative_errno();

        tree_fd = fsmount(fs_fd, FSMOUNT_CLOEXEC,
                          MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (tree_fd < 0)
                return negative_errno();

        *ret_tree_fd = tree_fd;
        return 0;
}

int host_dir_clone(int dir_fd, const char *name, int *ret_tree_fd)
{
        struct mount_attr attr = {
                .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                .propagation = MS_PRIVATE,
        };
        _cleanup_close_ int tree_fd = -1;

        tree_fd = open_tree(dir_fd, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
        if (tree_fd < 0)
                return negative_errno();

        if (mount_setattr(tree_fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
                return negative_errno();

        *ret_tree_fd = TAKE_FD(tree_fd);
        return 0;
}
