/* execvisor-test-agent: a stand-in for amazon-ssm-agent in the integration tests.
 *
 * The tests install this static binary under the SSM agent's names
 * (amazon-ssm-agent, ssm-agent-worker, ssm-session-worker), and the supervisor
 * starts it inside a container like the real agent. Its report of its own
 * process and files lets the tests check the launch (mounts, fds, environment,
 * ids, bundle ownership). The control file sets its lifecycle, so the tests
 * can check exit codes, crashes, signals, orphans and zombies.
 *
 * Control file: /etc/execvisor-test-agent.conf inside the container, optional,
 * one key=value a line; blank lines and lines starting with '#' are skipped,
 * unknown keys are ignored with a message on stderr, and an invalid value ends
 * the agent with exit code 2.
 *   exit-after=DURATION      exit after this long (500ms, 2s, 1m; no unit means
 *                            seconds); default: never
 *   exit-code=N              exit code when exit-after expires (0-255); default 0
 *   crash=0|1                raise SIGSEGV instead of exiting when exit-after expires
 *   ignore-sigterm=0|1       0: on SIGTERM, exit with code 0; 1: print a line
 *                            and keep running
 *   spawn-orphans=N          at start, leave N processes in their own sessions,
 *                            orphaned, that pause forever (at most 100); they
 *                            keep stdout and stderr open
 *   spawn-zombie-children=N  at start, fork N children that exit at once and are
 *                            never reaped (at most 100)
 *   report=0|1               write the report described below; default 1
 *   message=TEXT             the last line printed to stdout before exiting
 *
 * Report: with report=1, /var/log/amazon/ssm/test-agent-<pid>.report (pid as
 * seen inside the container), written to a temporary name and renamed so that
 * a reader never sees a partial file. Each section starts with "== name ==":
 * status, mountinfo, fds ("<fd> <link target>"), environ, cmdline, cwd, root,
 * ids, argv0, exe, bundle ("<path> <st_mode in octal> <uid> <gid>" for every
 * entry under the directory of argv[0], symlinks not followed), orphans and
 * zombies (one pid a line).
 *
 * For a trial outside a container, EXECVISOR_TEST_AGENT_CONF and
 * EXECVISOR_TEST_AGENT_REPORT_DIR replace the two paths.
 *
 * Lines on stdout, each flushed at once: "test-agent: started pid=<pid>",
 * "test-agent: orphan pid=<pid>", "test-agent: zombie pid=<pid>",
 * "test-agent: SIGTERM, exiting", "test-agent: SIGTERM, ignored", the message.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/util.h"

#define DEFAULT_CONFIG_PATH "/etc/execvisor-test-agent.conf"
#define DEFAULT_REPORT_DIR "/var/log/amazon/ssm"
#define MAX_SPAWNED 100
#define MAX_BUNDLE_DEPTH 4

struct config {
        long long exit_after_ms; /* -1: never */
        int exit_code;
        bool crash;
        bool ignore_sigterm;
        int spawn_orphans;
        int spawn_zombies;
        bool report;
        char *message;
};

struct spawned {
        pid_t orphans[MAX_SPAWNED];
        int n_orphans;
        pid_t zombies[MAX_SPAWNED];
        int n_zombies;
};

/* Print one line on stdout and flush it: stdout is a pipe, and the tests
 * wait for these lines. */
static void __attribute__((format(printf, 1, 2))) say(const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        vprintf(format, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static const char *getenv_or(const char *name, const char *fallback)
{
        const char *value = getenv(name);

        return value && *value ? value : fallback;
}

static char *strip(char *s)
{
        char *end;

        while (*s == ' ' || *s == '\t')
                s++;

        end = s + strlen(s);
        while (end > s && strchr(" \t\r\n", end[-1]))
                end--;
        *end = '\0';

        return s;
}

static int parse_int(const char *s, long min, long max, int *ret)
{
        char *end;
        long n;

        errno = 0;
        n = strtol(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || n < min || n > max)
                return -EINVAL;

        *ret = (int)n;
        return 0;
}

static int parse_bool(const char *s, bool *ret)
{
        if (!streq(s, "0") && !streq(s, "1"))
                return -EINVAL;

        *ret = streq(s, "1");
        return 0;
}

/* Parse "500ms", "2s", "1m" or a plain number of seconds. */
static int parse_duration_ms(const char *s, long long *ret_ms)
{
        long long n, unit_ms;
        char *end;

        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno != 0 || end == s || n < 0)
                return -EINVAL;

        if (streq(end, "ms"))
                unit_ms = 1;
        else if (streq(end, "s") || streq(end, ""))
                unit_ms = 1000;
        else if (streq(end, "m"))
                unit_ms = 60 * 1000;
        else
                return -EINVAL;

        if (n > LLONG_MAX / unit_ms)
                return -ERANGE;

        *ret_ms = n * unit_ms;
        return 0;
}

static int apply_setting(struct config *config, const char *key, const char *value)
{
        if (streq(key, "exit-after"))
                return parse_duration_ms(value, &config->exit_after_ms);
        if (streq(key, "exit-code"))
                return parse_int(value, 0, 255, &config->exit_code);
        if (streq(key, "crash"))
                return parse_bool(value, &config->crash);
        if (streq(key, "ignore-sigterm"))
                return parse_bool(value, &config->ignore_sigterm);
        if (streq(key, "spawn-orphans"))
                return parse_int(value, 0, MAX_SPAWNED, &config->spawn_orphans);
        if (streq(key, "spawn-zombie-children"))
                return parse_int(value, 0, MAX_SPAWNED, &config->spawn_zombies);
        if (streq(key, "report"))
                return parse_bool(value, &config->report);
        if (streq(key, "message")) {
                free(config->message);
                config->message = strdup(value);
                return config->message ? 0 : -ENOMEM;
        }

        return -ENOENT;
}

/* Read the control file into config. A missing file leaves the defaults. An
 * invalid value ends the agent, because a test that set it would otherwise
 * check the wrong behaviour. */
static void load_config(const char *path, struct config *config)
{
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t line_size = 0;
        unsigned line_number = 0;

        f = fopen(path, "re");
        if (!f) {
                if (errno != ENOENT)
                        fprintf(stderr, "test-agent: failed to open %s: %m, using the defaults\n",
                                path);
                return;
        }

        while (getline(&line, &line_size, f) >= 0) {
                char *key, *value, *equals;
                int r;

                line_number++;

                key = strip(line);
                if (*key == '\0' || *key == '#')
                        continue;

                equals = strchr(key, '=');
                if (!equals) {
                        fprintf(stderr, "test-agent: %s:%u: missing '=', ignoring the line\n", path,
                                line_number);
                        continue;
                }
                *equals = '\0';
                key = strip(key);
                value = strip(equals + 1);

                r = apply_setting(config, key, value);
                if (r == -ENOENT) {
                        fprintf(stderr, "test-agent: %s:%u: unknown key '%s', ignoring it\n", path,
                                line_number, key);
                } else if (r < 0) {
                        fprintf(stderr, "test-agent: %s:%u: invalid value '%s' for %s\n", path,
                                line_number, value, key);
                        exit(2);
                }
        }
}

/* Leave one process in its own session whose parent has exited, so that it is
 * reparented to the nearest subreaper. Returns its pid, or a negative errno
 * (-EPIPE when the middle process died before reporting). */
static pid_t spawn_orphan(const sigset_t *original_mask)
{
        _cleanup_close_ int read_fd = -1;
        int pipe_fds[2];
        pid_t middle, orphan = 0;
        ssize_t n;

        if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                return -errno;
        read_fd = pipe_fds[0];

        middle = fork();
        if (middle < 0) {
                int r = -errno;

                close(pipe_fds[1]);
                return r;
        }

        if (middle == 0) {
                close(pipe_fds[0]);

                orphan = fork();
                if (orphan < 0) {
                        orphan = -errno;
                        n = write(pipe_fds[1], &orphan, sizeof(orphan));
                        _exit(1);
                }
                if (orphan == 0) {
                        sigprocmask(SIG_SETMASK, original_mask, NULL);
                        setsid();

                        orphan = getpid();
                        n = write(pipe_fds[1], &orphan, sizeof(orphan));
                        close(pipe_fds[1]);

                        for (;;)
                                pause();
                }
                _exit(0);
        }

        close(pipe_fds[1]);

        /* Either the orphan writes its pid, or the middle process writes the
         * negative errno of its failed fork. */
        n = read(read_fd, &orphan, sizeof(orphan));
        waitpid(middle, NULL, 0);

        return n == sizeof(orphan) ? orphan : -EPIPE;
}

static void spawn_children(const struct config *config, const sigset_t *original_mask,
                           struct spawned *spawned)
{
        for (int i = 0; i < config->spawn_orphans; i++) {
                pid_t pid = spawn_orphan(original_mask);

                if (pid < 0) {
                        fprintf(stderr, "test-agent: failed to spawn an orphan: %s\n",
                                strerror(-pid));
                        continue;
                }
                spawned->orphans[spawned->n_orphans++] = pid;
                say("test-agent: orphan pid=%d", pid);
        }

        /* These children are never waited for, so they stay zombies until this
         * process exits and its subreaper reaps them. */
        for (int i = 0; i < config->spawn_zombies; i++) {
                pid_t pid = fork();

                if (pid == 0)
                        _exit(0);
                if (pid < 0) {
                        fprintf(stderr, "test-agent: failed to fork a zombie child: %m\n");
                        continue;
                }
                spawned->zombies[spawned->n_zombies++] = pid;
                say("test-agent: zombie pid=%d", pid);
        }
}

static void section(FILE *out, const char *name)
{
        fprintf(out, "== %s ==\n", name);
}

static void report_file(FILE *out, const char *path, char nul_replacement)
{
        _cleanup_fclose_ FILE *f = NULL;
        bool ends_with_newline = true;
        int c;

        f = fopen(path, "re");
        if (!f) {
                fprintf(out, "(failed to open %s: %m)\n", path);
                return;
        }

        while ((c = getc(f)) != EOF) {
                if (c == '\0')
                        c = nul_replacement;
                putc(c, out);
                ends_with_newline = c == '\n';
        }

        if (!ends_with_newline)
                putc('\n', out);
}

static void report_link(FILE *out, int dirfd, const char *path)
{
        char target[PATH_MAX];
        ssize_t n;

        n = readlinkat(dirfd, path, target, sizeof(target) - 1);
        if (n < 0) {
                fprintf(out, "(failed to read link %s: %m)\n", path);
                return;
        }
        target[n] = '\0';
        fprintf(out, "%s\n", target);
}

static void report_fds(FILE *out)
{
        DIR *dir;
        struct dirent *entry;

        dir = opendir("/proc/self/fd");
        if (!dir) {
                fprintf(out, "(failed to open /proc/self/fd: %m)\n");
                return;
        }

        while ((entry = readdir(dir))) {
                if (entry->d_name[0] == '.' || atoi(entry->d_name) == dirfd(dir))
                        continue;

                fprintf(out, "%s ", entry->d_name);
                report_link(out, dirfd(dir), entry->d_name);
        }

        closedir(dir);
}

static void report_ids(FILE *out)
{
        gid_t groups[NGROUPS_MAX];
        int n;

        fprintf(out, "uid=%u euid=%u gid=%u egid=%u groups=", getuid(), geteuid(), getgid(),
                getegid());

        n = getgroups(NGROUPS_MAX, groups);
        for (int i = 0; i < n; i++)
                fprintf(out, "%s%u", i > 0 ? "," : "", groups[i]);
        fputc('\n', out);
}

static int compare_names(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dot_entries(const struct dirent *entry)
{
        return !streq(entry->d_name, ".") && !streq(entry->d_name, "..");
}

/* List dir recursively, sorted by name, with paths relative to the bundle. */
static void report_tree(FILE *out, const char *dir, const char *prefix, int depth)
{
        struct dirent **entries;
        int n;

        n = scandir(dir, &entries, skip_dot_entries, compare_names);
        if (n < 0) {
                fprintf(out, "(failed to list %s: %m)\n", dir);
                return;
        }

        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *relative = NULL;
                struct stat st;

                if (asprintf(&path, "%s/%s", dir, entries[i]->d_name) < 0 ||
                    asprintf(&relative, "%s%s", prefix, entries[i]->d_name) < 0)
                        abort();

                if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        fprintf(out, "%s (stat failed: %m)\n", relative);
                } else {
                        fprintf(out, "%s %06o %u %u\n", relative, st.st_mode, st.st_uid, st.st_gid);

                        if (S_ISDIR(st.st_mode) && depth < MAX_BUNDLE_DEPTH) {
                                _cleanup_free_ char *sub_prefix = NULL;

                                if (asprintf(&sub_prefix, "%s/", relative) < 0)
                                        abort();
                                report_tree(out, path, sub_prefix, depth + 1);
                        }
                }

                free(entries[i]);
        }

        free(entries);
}

static void report_bundle(FILE *out, const char *argv0)
{
        _cleanup_free_ char *dir = NULL;
        char *slash;

        dir = strdup(argv0);
        if (!dir)
                abort();

        slash = strrchr(dir, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == dir)
                dir[1] = '\0';
        else
                *slash = '\0';

        report_tree(out, dir, "", 1);
}

static void report_pids(FILE *out, const pid_t *pids, int n)
{
        for (int i = 0; i < n; i++)
                fprintf(out, "%d\n", pids[i]);
}

/* Build the whole report in memory, so that no fd of its own shows up in the
 * fds section. */
static int build_report(const char *argv0, const struct spawned *spawned, char **ret_data,
                        size_t *ret_size)
{
        char *data = NULL;
        size_t size = 0;
        FILE *out;

        out = open_memstream(&data, &size);
        if (!out)
                return -errno;

        section(out, "status");
        report_file(out, "/proc/self/status", '\n');
        section(out, "mountinfo");
        report_file(out, "/proc/self/mountinfo", '\n');
        section(out, "fds");
        report_fds(out);
        section(out, "environ");
        for (char **e = environ; *e; e++)
                fprintf(out, "%s\n", *e);
        section(out, "cmdline");
        report_file(out, "/proc/self/cmdline", '\n');
        section(out, "cwd");
        report_link(out, AT_FDCWD, "/proc/self/cwd");
        section(out, "root");
        report_link(out, AT_FDCWD, "/proc/self/root");
        section(out, "ids");
        report_ids(out);
        section(out, "argv0");
        fprintf(out, "%s\n", argv0);
        section(out, "exe");
        report_link(out, AT_FDCWD, "/proc/self/exe");
        section(out, "bundle");
        report_bundle(out, argv0);
        section(out, "orphans");
        report_pids(out, spawned->orphans, spawned->n_orphans);
        section(out, "zombies");
        report_pids(out, spawned->zombies, spawned->n_zombies);

        if (fclose(out) != 0) {
                free(data);
                return -ENOMEM;
        }

        *ret_data = data;
        *ret_size = size;
        return 0;
}

static int write_all_fd(int fd, const char *data, size_t size)
{
        while (size > 0) {
                ssize_t n = write(fd, data, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                data += n;
                size -= (size_t)n;
        }
        return 0;
}

/* Write the report into dir as test-agent-<pid>.report, through a temporary
 * name that the tests' pattern does not match. */
static int write_report(const char *dir, const char *data, size_t size)
{
        _cleanup_close_ int dir_fd = -1, fd = -1;
        char name[64], temporary_name[80];
        int r;

        snprintf(name, sizeof(name), "test-agent-%d.report", getpid());
        snprintf(temporary_name, sizeof(temporary_name), ".%s.tmp", name);

        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return -errno;

        fd = openat(dir_fd, temporary_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;

        r = write_all_fd(fd, data, size);
        if (r == 0 && close(TAKE_FD(fd)) < 0)
                r = -errno;
        if (r == 0 && renameat(dir_fd, temporary_name, dir_fd, name) < 0)
                r = -errno;

        if (r < 0)
                unlinkat(dir_fd, temporary_name, 0);
        return r;
}

static void report(const char *argv0, const struct spawned *spawned)
{
        const char *dir = getenv_or("EXECVISOR_TEST_AGENT_REPORT_DIR", DEFAULT_REPORT_DIR);
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r;

        r = build_report(argv0, spawned, &data, &size);
        if (r >= 0)
                r = write_report(dir, data, size);
        if (r < 0)
                fprintf(stderr,
                        "test-agent: failed to write the report in %s: %s, continuing without it\n",
                        dir, strerror(-r));
}

static _Noreturn void finish(const struct config *config, int exit_code)
{
        if (config->message)
                say("%s", config->message);

        if (config->crash) {
                struct rlimit no_core = {0, 0};
                sigset_t segv;

                /* A core file would land in the container's working directory. */
                setrlimit(RLIMIT_CORE, &no_core);
                prctl(PR_SET_DUMPABLE, 0);

                signal(SIGSEGV, SIG_DFL);
                sigemptyset(&segv);
                sigaddset(&segv, SIGSEGV);
                sigprocmask(SIG_UNBLOCK, &segv, NULL);
                raise(SIGSEGV);
        }

        exit(exit_code);
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for SIGTERM or for exit-after to expire. Other signals keep their
 * default actions, so SIGINT or SIGKILL end the agent as they would end any
 * program. */
static _Noreturn void wait_for_end(const struct config *config, long long start_ms)
{
        sigset_t sigterm;

        sigemptyset(&sigterm);
        sigaddset(&sigterm, SIGTERM);

        for (;;) {
                int sig;

                if (config->exit_after_ms < 0) {
                        sig = sigwaitinfo(&sigterm, NULL);
                } else {
                        long long remaining = start_ms + config->exit_after_ms - now_ms();
                        struct timespec timeout;

                        if (remaining <= 0)
                                finish(config, config->exit_code);

                        timeout.tv_sec = remaining / 1000;
                        timeout.tv_nsec = (remaining % 1000) * 1000000;
                        sig = sigtimedwait(&sigterm, NULL, &timeout);
                }

                if (sig != SIGTERM)
                        continue;

                if (config->ignore_sigterm) {
                        say("test-agent: SIGTERM, ignored");
                        continue;
                }

                say("test-agent: SIGTERM, exiting");
                if (config->message)
                        say("%s", config->message);
                exit(0);
        }
}

int main(int argc, char **argv)
{
        struct config config = {.exit_after_ms = -1, .report = true};
        struct spawned spawned = {0};
        sigset_t sigterm, original_mask;
        long long start_ms = now_ms();
        const char *argv0 = argc > 0 ? argv[0] : "";

        /* SIGTERM is taken with sigwaitinfo(); blocking it first means one that
         * arrives while the report is written is not lost. */
        sigemptyset(&sigterm);
        sigaddset(&sigterm, SIGTERM);
        sigprocmask(SIG_BLOCK, &sigterm, &original_mask);

        load_config(getenv_or("EXECVISOR_TEST_AGENT_CONF", DEFAULT_CONFIG_PATH), &config);

        say("test-agent: started pid=%d", getpid());

        spawn_children(&config, &original_mask, &spawned);

        if (config.report)
                report(argv0, &spawned);

        wait_for_end(&config, start_ms);
}
