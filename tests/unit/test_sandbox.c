/* The agent's seccomp filter, loaded for real in forked children, and the
 * capability helpers checked against /proc. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/sandbox.h"
#include "supervisor/util.h"

/* Each call fails harmlessly (bad fd, NULL pointer, missing path) should the
 * filter let it through, and returns errno, or 0 on success. */
static int errno_of(long result)
{
        return result < 0 ? errno : 0;
}

static int call_unshare_newuser(void)
{
        return errno_of(unshare(CLONE_NEWUSER));
}

static int call_unshare_newns(void)
{
        return errno_of(unshare(CLONE_NEWNS));
}

static int call_mount(void)
{
        return errno_of(mount("none", "/nonexistent/execvisor-unit", "tmpfs", 0, NULL));
}

static int call_umount2(void)
{
        return errno_of(umount2("/nonexistent/execvisor-unit", MNT_DETACH));
}

static int call_keyctl(void)
{
        /* KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3), without creating it. */
        return errno_of(syscall(SYS_keyctl, 0, -3, 0, 0, 0));
}

static int call_add_key(void)
{
        return errno_of(syscall(SYS_add_key, NULL, NULL, NULL, 0, 0));
}

static int call_ptrace(void)
{
        return errno_of(syscall(SYS_ptrace, PTRACE_PEEKUSER, 0, NULL, NULL));
}

static int call_bpf(void)
{
        return errno_of(syscall(SYS_bpf, -1, NULL, 0));
}

static int call_init_module(void)
{
        return errno_of(syscall(SYS_init_module, NULL, 0, NULL));
}

static int call_finit_module(void)
{
        return errno_of(syscall(SYS_finit_module, -1, "", 0));
}

static int call_setns(void)
{
        return errno_of(setns(-1, 0));
}

static int call_open_tree(void)
{
        return errno_of(syscall(SYS_open_tree, -1, NULL, 0));
}

static int call_move_mount(void)
{
        return errno_of(syscall(SYS_move_mount, -1, NULL, -1, NULL, 0));
}

static int call_fsopen(void)
{
        return errno_of(syscall(SYS_fsopen, NULL, 0));
}

static int call_pivot_root(void)
{
        return errno_of(syscall(SYS_pivot_root, NULL, NULL));
}

static int call_perf_event_open(void)
{
        return errno_of(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
}

static int call_userfaultfd(void)
{
        return errno_of(syscall(SYS_userfaultfd, ~0));
}

static int call_open_by_handle_at(void)
{
        return errno_of(syscall(SYS_open_by_handle_at, -1, NULL, 0));
}

static int call_process_vm_readv(void)
{
        return errno_of(syscall(SYS_process_vm_readv, -1, NULL, 0, NULL, 0, 0));
}

static int call_clone_newuser(void)
{
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);

        if (pid == 0)
                _exit(0);
        if (pid > 0)
                waitpid((pid_t)pid, NULL, 0);
        return errno_of(pid);
}

static int call_clone_newnet(void)
{
        long pid = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, 0);

        if (pid == 0)
                _exit(0);
        if (pid > 0)
                waitpid((pid_t)pid, NULL, 0);
        return errno_of(pid);
}

static int call_clone_newpid_in_other_flags(void)
{
        long pid = syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWUTS | CLONE_FILES | SIGCHLD, NULL,
                           NULL, NULL, 0);

        if (pid == 0)
                _exit(0);
        if (pid > 0)
                waitpid((pid_t)pid, NULL, 0);
        return errno_of(pid);
}

struct denied_call {
        const char *name;
        int (*call)(void);
};

static const struct denied_call denied_calls[] = {
        { "unshare(CLONE_NEWUSER)", call_unshare_newuser },
        { "unshare(CLONE_NEWNS)", call_unshare_newns },
        { "mount", call_mount },
        { "umount2", call_umount2 },
        { "keyctl", call_keyctl },
        { "add_key", call_add_key },
        { "ptrace", call_ptrace },
        { "bpf", call_bpf },
        { "init_module", call_init_module },
        { "finit_module", call_finit_module },
        { "setns", call_setns },
        { "open_tree", call_open_tree },
        { "move_mount", call_move_mount },
        { "fsopen", call_fsopen },
        { "pivot_root", call_pivot_root },
        { "perf_event_open", call_perf_event_open },
        { "userfaultfd", call_userfaultfd },
        { "open_by_handle_at", call_open_by_handle_at },
        { "process_vm_readv", call_process_vm_readv },
        { "clone(CLONE_NEWUSER)", call_clone_newuser },
        { "clone(CLONE_NEWNET)", call_clone_newnet },
        { "clone(CLONE_NEWPID|CLONE_NEWUTS|CLONE_FILES)", call_clone_newpid_in_other_flags },
};

#define N_DENIED ARRAY_SIZE(denied_calls)

/* What a child saw with (or without) the filter. Errors are errno values, 0 for success. */
struct sandbox_result {
        int load_error; /* of prctl() or seccomp(), or 0 when the filter is in place */
        int denied[N_DENIED];
        int clone3_plain;
        int clone3_newuser;
        bool getpid_works;
        bool fork_works;
        bool pipe_io_works;
        bool unix_socket_works;
        bool inet_socket_works;
        bool thread_works;
        /* -1 when 32-bit calls are not available, -2 when the caller was killed */
        int i386_unshare;
        int x32_unshare;  /* -1 when not on x86_64 */
};

static int call_clone3(uint64_t flags)
{
        struct clone_args args = { .flags = flags, .exit_signal = SIGCHLD };
        long pid = syscall(SYS_clone3, &args, sizeof(args));

        if (pid == 0)
                _exit(0);
        if (pid > 0)
                waitpid((pid_t)pid, NULL, 0);
        return errno_of(pid);
}

static bool fork_works(void)
{
        int status;
        pid_t pid = fork();

        if (pid == 0)
                _exit(7);
        if (pid < 0)
                return false;
        return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7;
}

static bool pipe_io_works(void)
{
        int fds[2];
        char buffer[5] = "";
        bool ok;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return false;
        ok = write(fds[1], "ping", 4) == 4 && read(fds[0], buffer, 4) == 4 &&
             memcmp(buffer, "ping", 4) == 0;
        close(fds[0]);
        close(fds[1]);
        return ok;
}

static bool socket_works(int family)
{
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return false;
        close(fd);
        return true;
}

static void *thread_main(void *argument)
{
        return argument;
}

/* glibc 2.36 creates threads with clone3 and falls back to clone on ENOSYS,
 * which is why the filter returns ENOSYS for clone3. */
static bool thread_works(void)
{
        pthread_t thread;
        void *returned = NULL;
        int value = 0;

        if (pthread_create(&thread, NULL, thread_main, &value) != 0)
                return false;
        return pthread_join(thread, &returned) == 0 && returned == &value;
}

#if defined(__x86_64__)
/* Make a system call through the 32-bit entry point and return the raw result. */
static long int80(long number, long argument)
{
        long result;

        __asm__ volatile("int $0x80"
                         : "=a"(result)
                         : "a"(number), "b"(argument)
                         : "memory", "r8", "r9", "r10", "r11");
        return result;
}

#define I386_NR_GETPID 20
#define I386_NR_UNSHARE 310
#define X32_SYSCALL_BIT 0x40000000L

/* unshare(CLONE_NEWUSER) through the i386 entry, in a grandchild so that a
 * kernel without 32-bit support cannot spoil the other probes. */
static int i386_unshare(void)
{
        int status;
        pid_t pid = fork();

        if (pid == 0) {
                long result;

                if (int80(I386_NR_GETPID, 0) != getpid())
                        _exit(255);
                result = int80(I386_NR_UNSHARE, CLONE_NEWUSER);
                _exit(result < 0 ? (int)-result : 0);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid)
                return -1;
        if (WIFSIGNALED(status))
                return -2;
        if (WEXITSTATUS(status) == 255)
                return -1;
        return WEXITSTATUS(status);
}

static int x32_unshare(void)
{
        return errno_of(syscall(__NR_unshare | X32_SYSCALL_BIT, CLONE_NEWUSER));
}
#else
static int i386_unshare(void)
{
        return -1;
}

static int x32_unshare(void)
{
        return -1;
}
#endif

static void probe_calls(struct sandbox_result *result)
{
        for (size_t i = 0; i < N_DENIED; i++)
                result->denied[i] = denied_calls[i].call();

        result->clone3_plain = call_clone3(0);
        result->clone3_newuser = call_clone3(CLONE_NEWUSER);
        result->getpid_works = getpid() > 0 && syscall(SYS_getpid) == getpid();
        result->fork_works = fork_works();
        result->pipe_io_works = pipe_io_works();
        result->unix_socket_works = socket_works(AF_UNIX);
        result->inet_socket_works = socket_works(AF_INET);
        result->thread_works = thread_works();
        result->i386_unshare = i386_unshare();
        result->x32_unshare = x32_unshare();
}

/* Fork a child that loads program (unless NULL), probes the calls and sends the results. */
static void run_sandboxed(const struct sock_fprog *program, struct sandbox_result *ret)
{
        int pipe_fds[2];
        int status;
        ssize_t n;
        pid_t pid;

        assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct sandbox_result result = {};

                close(pipe_fds[0]);
                if (program) {
                        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
                            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, program) < 0)
                                result.load_error = errno;
                }
                if (result.load_error == 0)
                        probe_calls(&result);
                (void)write_all(pipe_fds[1], &result, sizeof(result));
                _exit(0);
        }

        close(pipe_fds[1]);
        n = read(pipe_fds[0], ret, sizeof(*ret));
        close(pipe_fds[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(n, sizeof(*ret));
}

static void test_filter_builds(void **state)
{
        struct sock_fprog program = {};

        assert_int_equal(seccomp_build_agent_filter(&program), 0);
        assert_non_null(program.filter);
        assert_true(program.len > 0);
        assert_true(program.len <= BPF_MAXINSNS);
        /* The last instruction of a seccomp program returns. */
        assert_int_equal(BPF_CLASS(program.filter[program.len - 1].code), BPF_RET);
        free(program.filter);
}

static void test_filter_denies_with_eperm(void **state)
{
        struct sock_fprog program = {};
        struct sandbox_result result;

        assert_int_equal(seccomp_build_agent_filter(&program), 0);
        run_sandboxed(&program, &result);
        free(program.filter);

        assert_int_equal(result.load_error, 0);
        for (size_t i = 0; i < N_DENIED; i++) {
                if (result.denied[i] != EPERM)
                        print_error("%s: expected EPERM, got %s\n", denied_calls[i].name,
                                    result.denied[i] ? strerror(result.denied[i]) : "success");
                assert_int_equal(result.denied[i], EPERM);
        }
}

static void test_filter_clone3_enosys(void **state)
{
        struct sock_fprog program = {};
        struct sandbox_result result;

        assert_int_equal(seccomp_build_agent_filter(&program), 0);
        run_sandboxed(&program, &result);
        free(program.filter);

        assert_int_equal(result.load_error, 0);
        assert_int_equal(result.clone3_plain, ENOSYS);
        assert_int_equal(result.clone3_newuser, ENOSYS);
}

static void test_filter_allows_ordinary_calls(void **state)
{
        struct sock_fprog program = {};
        struct sandbox_result result;

        assert_int_equal(seccomp_build_agent_filter(&program), 0);
        run_sandboxed(&program, &result);
        free(program.filter);

        assert_int_equal(result.load_error, 0);
        assert_true(result.getpid_works);
        assert_true(result.fork_works);
        assert_true(result.pipe_io_works);
        assert_true(result.unix_socket_works);
        assert_true(result.inet_socket_works);
        assert_true(result.thread_works);
}

static void test_filter_covers_compat_calls(void **state)
{
        struct sock_fprog program = {};
        struct sandbox_result result;

        /* Whether this kernel runs 32-bit calls at all is seen without the filter. */
        run_sandboxed(NULL, &result);
        if (result.i386_unshare == -1)
                skip();

        assert_int_equal(seccomp_build_agent_filter(&program), 0);
        run_sandboxed(&program, &result);
        free(program.filter);

        assert_int_equal(result.load_error, 0);
        assert_int_equal(result.i386_unshare, EPERM);
        assert_int_equal(result.x32_unshare, EPERM);
}

/* Without the filter the same probes behave differently, so the checks above can fail. */
static void test_probes_succeed_unfiltered(void **state)
{
        struct sandbox_result result;

        run_sandboxed(NULL, &result);
        assert_int_equal(result.load_error, 0);
        assert_int_equal(result.denied[0], 0); /* unshare(CLONE_NEWUSER) */
        assert_int_equal(result.denied[2], ENOENT); /* mount on a missing path */
        assert_int_equal(result.clone3_plain, 0);
        assert_true(result.thread_works);
}

static void test_parse_capability_list_names(void **state)
{
        uint64_t set = 0;

        assert_int_equal(parse_capability_list("cap_chown,cap_kill", &set), 0);
        assert_int_equal(set, (UINT64_C(1) << 0) | (UINT64_C(1) << 5));

        assert_int_equal(parse_capability_list("cap_net_bind_service", &set), 0);
        assert_int_equal(set, UINT64_C(1) << 10);

        assert_int_equal(parse_capability_list("cap_chown, cap_kill,,cap_chown", &set), 0);
        assert_int_equal(set, (UINT64_C(1) << 0) | (UINT64_C(1) << 5));

        assert_int_equal(parse_capability_list("cap_sys_admin", &set), 0);
        assert_int_equal(set, UINT64_C(1) << 21);
}

static void test_parse_capability_list_all(void **state)
{
        int last = last_capability();
        uint64_t set = 0;

        assert_true(last > 0);
        assert_true(last < 64);
        assert_int_equal(parse_capability_list("all", &set), 0);
        assert_int_equal(set, (UINT64_C(1) << (last + 1)) - 1);
}

static void test_parse_capability_list_invalid(void **state)
{
        uint64_t set = 0xabcdef;

        assert_int_equal(parse_capability_list("cap_nonsense", &set), -EINVAL);
        assert_int_equal(parse_capability_list("cap_chown,cap_nonsense", &set), -EINVAL);
        assert_int_equal(parse_capability_list("chown;kill", &set), -EINVAL);
        /* Numbers beyond a 64-bit set cannot be stored in it. */
        assert_int_equal(parse_capability_list("64", &set), -EINVAL);
        assert_int_equal(parse_capability_list("99", &set), -EINVAL);
        /* The result stays untouched on failure. */
        assert_int_equal(set, 0xabcdef);
}

/* CapBnd of /proc/self/status, read with sscanf. */
static uint64_t status_bounding_set(void)
{
        FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        uint64_t set = 0;
        bool found = false;

        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "CapBnd: %" SCNx64, &set) == 1)
                        found = true;
        fclose(f);
        assert_true(found);
        return set;
}

static void test_read_bounding_set_self(void **state)
{
        int fd = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
        uint64_t set = 0;

        assert_true(fd >= 0);
        assert_int_equal(read_bounding_set(fd, &set), 0);
        assert_int_equal(set, status_bounding_set());
        close(fd);
}

static void test_read_bounding_set_dropped(void **state)
{
        int pipe_fds[2];
        int status;
        pid_t pid;
        uint64_t set = 0;
        char path[64];
        int fd;

        /* A child that drops CAP_SYS_MODULE from its bounding set and waits. */
        assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char byte;

                close(pipe_fds[1]);
                if (prctl(PR_CAPBSET_DROP, 16, 0, 0, 0) < 0)
                        _exit(1);
                kill(getpid(), SIGSTOP);
                (void)read(pipe_fds[0], &byte, 1);
                _exit(0);
        }
        close(pipe_fds[0]);
        assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
        assert_true(WIFSTOPPED(status));

        snprintf(path, sizeof(path), "/proc/%d", (int)pid);
        fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(read_bounding_set(fd, &set), 0);
        assert_int_equal(set, status_bounding_set() & ~(UINT64_C(1) << 16));
        close(fd);

        kill(pid, SIGCONT);
        close(pipe_fds[1]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
}

static void test_read_bounding_set_missing(void **state)
{
        int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        uint64_t set = 42;

        assert_true(fd >= 0);
        /* "/" has no file "status". */
        assert_int_equal(read_bounding_set(fd, &set), -ENOENT);
        assert_int_equal(set, 42);
        close(fd);
}

static void test_last_capability_kernel(void **state)
{
        FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
        int expected = -1;

        assert_non_null(f);
        assert_int_equal(fscanf(f, "%d", &expected), 1);
        fclose(f);
        assert_int_equal(last_capability(), expected);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_filter_builds),
                cmocka_unit_test(test_filter_denies_with_eperm),
                cmocka_unit_test(test_filter_clone3_enosys),
                cmocka_unit_test(test_filter_allows_ordinary_calls),
                cmocka_unit_test(test_filter_covers_compat_calls),
                cmocka_unit_test(test_probes_succeed_unfiltered),
                cmocka_unit_test(test_parse_capability_list_names),
                cmocka_unit_test(test_parse_capability_list_all),
                cmocka_unit_test(test_parse_capability_list_invalid),
                cmocka_unit_test(test_read_bounding_set_self),
                cmocka_unit_test(test_read_bounding_set_dropped),
                cmocka_unit_test(test_read_bounding_set_missing),
                cmocka_unit_test(test_last_capability_kernel),
        };

        /* The unfiltered probes and the bounding set drop need root. */
        if (geteuid() != 0) {
                fprintf(stderr, "skipped: needs root\n");
                return 77;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
