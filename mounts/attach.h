#pragma once

/* Attaching detached mount trees inside a container's mount namespace.
 *
 * Runs in the joiner: a child of the supervisor, forked from a process that may
 * have threads, that has joined the container's namespaces and changed root to
 * the container's root. It has the host's privilege, so every path is
 * resolved from the container's root fd without leaving it or following magic
 * links, and the code makes raw system calls only: no malloc, no stdio. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MOUNT_PATH_MAX 256

struct mount_entry {
        const char *target; /* absolute path inside the container */
        int tree_fd;        /* the detached tree to attach */
        mode_t mkdir_mode;  /* for missing directories on the way */
        bool fatal;         /* a failure aborts the launch and undoes earlier entries */
        /* Whatever is mounted at the target is detached first. Set where the
         * target's name is unique to the container. Without it, a mount of the
         * same directory already there is kept, and any other is stacked on. */
        bool replace_existing;

        /* Filled in by mount_table_attach(). */
        bool attached;
        int error;
};

/* Attach each entry's tree at its target under root_fd, in order, so that a
 * restarted agent finds its mounts without stacking them. Targets on a mount in
 * shared_ids (shared propagation) are refused with -EXDEV. On a fatal failure
 * the entries attached so far are detached again and the negative errno is
 * returned with *ret_failed set to the index of the entry. */
int mount_table_attach(int root_fd, struct mount_entry *entries, size_t count,
                       const uint64_t *shared_ids, size_t n_shared, size_t *ret_failed);
