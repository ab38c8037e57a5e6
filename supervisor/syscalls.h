#pragma once

/* Raw system calls that glibc 2.36 does not wrap. Each is a single syscall,
 * so all are safe in a child forked from a process that may have threads. */

#include <linux/openat2.h>
#include <linux/sched.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int sys_openat2(int dirfd, const char *path, const struct open_how *how)
{
        return (int)syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
}

static inline long sys_clone3(struct clone_args *args)
{
        return syscall(SYS_clone3, args, sizeof(*args));
}

static inline int sys_execveat(int fd, const char *path, char *const argv[], char *const envp[],
                               int flags)
{
        return (int)syscall(SYS_execveat, fd, path, argv, envp, flags);
}

static inline int sys_seccomp(unsigned operation, unsigned flags, void *args)
{
        return (int)syscall(SYS_seccomp, operation, flags, args);
}

static inline long sys_keyctl_join_session(void)
{
        /* KEYCTL_JOIN_SESSION_KEYRING with a NULL name: a fresh anonymous keyring. */
        return syscall(SYS_keyctl, 1, 0L, 0L, 0L, 0L);
}
