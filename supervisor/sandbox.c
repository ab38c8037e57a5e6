#include "supervisor/sandbox.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "supervisor/util.h"

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}

int read_bounding_set(int proc_pid_fd, uint64_t *ret_set)
{
        _cleanup_free_ char *status = NULL;
        const char *line;
        uint64_t set;
        int r;

        r = read_file_at(proc_pid_fd, "status", 64 * 1024, &status, NULL);
        if (r < 0)
                return r;

        line = strstr(status, "\nCapBnd:");
        if (!line || sscanf(line + strlen("\nCapBnd:"), "%" SCNx64, &set) != 1)
                return -EBADMSG;

        *ret_set = set;
        return 0;
}

int last_capability(void)
{
        _cleanup_free_ char *text = NULL;

        /* The file exists since Linux 3.2; libcap's CAP_LAST_CAP is the
         * highest that the library, not the kernel, defines. */
        if (read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", 32, &text, NULL) < 0)
                return CAP_LAST_CAP;
        return atoi(text);
}

int parse_capability_list(const char *text, uint64_t *ret_set)
{
        _cleanup_free_ char *copy = xstrdup(text);
        char *saveptr = NULL;
        uint64_t set = 0;

        if (streq(text, "all")) {
                int last = last_capability();

                *ret_set = last >= 63 ? UINT64_MAX : (1ULL << (last + 1)) - 1;
                return 0;
        }

        for (char *name = strtok_r(copy, ", ", &saveptr); name; name = strtok_r(NULL, ", ", &saveptr)) {
                cap_value_t value;

                if (cap_from_name(name, &value) < 0 || value > last_capability())
                        return -EINVAL;
                set |= 1ULL << value;
        }

        *ret_set = set;
        return 0;
}

static int deny(scmp_filter_ctx ctx, const char *name)
{
        int number = seccomp_syscall_resolve_name(name);

        /* A call this architecture does not have needs no rule. */
        if (number == __NR_SCMP_ERROR)
                return 0;
        return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), number, 0);
}

static int add_rules(scmp_filter_ctx ctx)
{
        static const char *const denied[] = {
                "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
                "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
                "get_kernel_syms", "init_module", "ioperm", "iopl", "kexec_file_load",
                "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr",
                "move_mount", "name_to_handle_at", "nfsservctl", "open_by_handle_at",
                "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
                "process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd",
                "reboot", "request_key", "setns", "settimeofday", "stime", "swapoff",
                "swapon", "_sysctl", "umount", "umount2", "unshare", "uselib", "userfaultfd",
                "ustat", "vm86", "vm86old",
        };
        const uint64_t namespace_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                                         CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                         CLONE_NEWCGROUP;
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
                r = deny(ctx, denied[i]);
                if (r < 0)
                        return r;
        }

        /* clone's flags are an argument that a filter can read: a call with any
         * namespace flag is denied. clone3 passes its flags in memory, which a
         * filter cannot read, so it gets ENOSYS and libc falls back to clone. */
        for (int bit = 0; bit < 64; bit++) {
                uint64_t flag = 1ULL << bit;

                if (!(namespace_flags & flag))
                        continue;
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                     SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
                if (r < 0)
                        return r;
        }
        return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

/* libseccomp 2.5 exports only to an fd; a memfd brings the program back into
 * memory. */
static int export_program(scmp_filter_ctx ctx, struct sock_fprog *ret_program)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ struct sock_filter *filter = NULL;
        struct stat st;
        int r;

        fd = memfd_create("execvisor-seccomp", MFD_CLOEXEC);
        if (fd < 0)
                return negative_errno();

        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_size == 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
            st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -EBADMSG;

        filter = xmalloc((size_t)st.st_size);
        if (pread(fd, filter, (size_t)st.st_size, 0) != st.st_size)
                return -EIO;

        ret_program->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
        ret_program->filter = TAKE_PTR(filter);
        return 0;
}

int seccomp_build_agent_filter(struct sock_fprog *ret_program)
{
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        int r;

        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;

        /* The filter travels as data into a child that has already dropped
         * privilege; no_new_privs is set there, not by libseccomp. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r < 0)
                return r;

        /* 32-bit calls of an x86_64 kernel are filtered too, so that they
         * are no way around the rules. */
        if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
                r = seccomp_arch_add(ctx, SCMP_ARCH_X86);
                if (r < 0 && r != -EEXIST)
                        return r;
                r = seccomp_arch_add(ctx, SCMP_ARCH_X32);
                if (r < 0 && r != -EEXIST)
                        return r;
        }

        r = add_rules(ctx);
        if (r < 0)
                return r;

        return export_program(ctx, ret_program);
}
