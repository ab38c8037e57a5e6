#pragma once

/* Detached mount trees, made on the host before anything of a container is
 * joined, for the joiner to attach inside the container. */

/* Make a detached overlay of layer_dir over version_dir with no upper
 * directory, mounted read-only, nosuid and nodev. An overlay without an upper
 * layer refuses a remount read-write, so a container root with CAP_SYS_ADMIN
 * that remounts its view still cannot write into the shared bundle. */
int bundle_view_create(const char *layer_dir, const char *version_dir, int *ret_tree_fd);

/* Clone the host directory dir_fd/name as a detached bind mount that is
 * nosuid, nodev, noexec and private. */
int host_dir_clone(int dir_fd, const char *name, int *ret_tree_fd);
