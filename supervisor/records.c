#include "supervisor/records.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/pidfd.h>
#include <sys/stat.h>

#include "supervisor/docker_parse.h"
#include "supervisor/inject.h"
#include "supervisor/log.h"
#include "supervisor/util.h"

#define RECORD_MAX_SIZE (1024 * 1024)
#define RECORD_SUFFIX ".json"

static void put_string(json_object *o, const char *key, const char *value)
{
        json_object_object_add(o, key, json_object_new_string(value ? value : ""));
}

static void put_u64(json_object *o, const char *key, uint64_t value)
{
        json_object_object_add(o, key, json_object_new_uint64(value));
}

static json_object *record_to_json(const struct supervised *s)
{
        const struct container *c = s->container;
        const struct agent_status *agent = &c->agent;
        json_object *o = json_object_new_object();

        put_string(o, "Id", c->id);
        put_string(o, "Name", c->name);
        put_string(o, "Image", c->image);
        json_object_object_add(o, "Labels", c->labels ? json_object_get(c->labels) : json_object_new_object());
        put_u64(o, "CreatedUsec", c->created_usec);
        put_u64(o, "StartedUsec", c->started_usec);
        json_object_object_add(o, "Running", json_object_new_boolean(c->running));
        put_string(o, "Uuid", s->uuid);
        put_string(o, "State", agent_state_to_string(agent->state));
        put_string(o, "Reason", agent->reason);
        put_u64(o, "LastStartedUsec", agent->last_started_usec);
        put_u64(o, "RestartCount", agent->restart_count);
        put_u64(o, "AgentPid", (uint64_t)agent->pid);
        put_string(o, "Version", agent->version);
        put_u64(o, "Sequence", c->sequence);
        put_u64(o, "StoppedUsec", s->stopped_usec);
        put_u64(o, "InitPid", (uint64_t)s->init_pid);
        put_u64(o, "InitStartTicks", s->init_start_ticks);
        put_u64(o, "AgentInitPid", (uint64_t)s->agent_init_pid);
        put_u64(o, "AgentInitStartTicks", s->agent_init_start_ticks);
        return o;
}

static int write_atomically(int dir_fd, const char *name, const char *text)
{
        _cleanup_free_ char *temporary = xasprintf(".%s.tmp", name);
        _cleanup_close_ int fd = -1;
        int r;

        fd = openat(dir_fd, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();

        r = write_all(fd, text, strlen(text));
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(dir_fd, temporary, dir_fd, name) < 0)
                r = negative_errno();
        if (r < 0)
                (void)unlinkat(dir_fd, temporary, 0);
        return r;
}

static int open_records_dir(const struct supervisor *supervisor)
{
        int fd = open(supervisor->records_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        return fd < 0 ? negative_errno() : fd;
}

static void store(const struct container *c, enum container_event event, void *userdata)
{
        struct supervisor *supervisor = userdata;
        _cleanup_free_ char *name = xasprintf("%s" RECORD_SUFFIX, c->id);
        _cleanup_close_ int dir_fd = open_records_dir(supervisor);
        json_object *o;
        int r;

        if (dir_fd < 0) {
                log_error("cannot open %s: %s; the state of container %.12s is not saved",
                          supervisor->records_dir, strerror(-dir_fd), c->id);
                return;
        }

        if (event == CONTAINER_EVENT_FORGOTTEN) {
                if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
                        log_warning("cannot remove %s/%s: %m", supervisor->records_dir, name);
                return;
        }

        o = record_to_json(c->private);
        r = write_atomically(dir_fd, name, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        if (r < 0)
                log_error("cannot write %s/%s: %s; the state of container %.12s is not saved",
                          supervisor->records_dir, name, strerror(-r), c->id);
}

int records_init(struct supervisor *supervisor)
{
        if (mkdir(supervisor->records_dir, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        container_add_observer(store, supervisor);
        return 0;
}

static bool get_string(json_object *o, const char *key, const char **ret)
{
        json_object *value;

        if (!json_object_object_get_ex(o, key, &value) || !json_object_is_type(value, json_type_string))
                return false;
        *ret = json_object_get_string(value);
        return true;
}

static bool get_u64(json_object *o, const char *key, uint64_t *ret)
{
        json_object *value;

        if (!json_object_object_get_ex(o, key, &value) || !json_object_is_type(value, json_type_int))
                return false;
        *ret = json_object_get_uint64(value);
        return true;
}

static int parse_state(const char *text, enum agent_state *ret)
{
        for (enum agent_state state = AGENT_PENDING; state <= AGENT_STOPPED; state++)
                if (streq(text, agent_state_to_string(state))) {
                        *ret = state;
                        return 0;
                }
        return -EINVAL;
}

/* Fill a new record from a state file; returns the key at fault on failure. */
static const char *load_record(struct supervisor *supervisor, json_object *o)
{
        const char *id, *name, *image, *uuid, *state_text, *reason, *version;
        uint64_t created, started, last_started, restarts, agent_pid, sequence, stopped;
        uint64_t init_pid, init_ticks, agent_init_pid, agent_init_ticks;
        json_object *labels, *running;
        enum agent_state state;
        struct supervised *s;

        if (!get_string(o, "Id", &id) || !docker_id_is_valid(id))
                return "Id";
        if (!get_string(o, "Name", &name))
                return "Name";
        if (!get_string(o, "Image", &image))
                return "Image";
        if (!json_object_object_get_ex(o, "Labels", &labels) || !json_object_is_type(labels, json_type_object))
                return "Labels";
        if (!json_object_object_get_ex(o, "Running", &running) || !json_object_is_type(running, json_type_boolean))
                return "Running";
        if (!get_string(o, "Uuid", &uuid) || strlen(uuid) != 36 || strspn(uuid, "0123456789abcdef-") != 36)
                return "Uuid";
        if (!get_string(o, "State", &state_text) || parse_state(state_text, &state) < 0)
                return "State";
        if (!get_string(o, "Reason", &reason))
                return "Reason";
        if (!get_string(o, "Version", &version))
                return "Version";
        if (!get_u64(o, "CreatedUsec", &created) || !get_u64(o, "StartedUsec", &started) ||
            !get_u64(o, "LastStartedUsec", &last_started) || !get_u64(o, "RestartCount", &restarts) ||
            !get_u64(o, "AgentPid", &agent_pid) || !get_u64(o, "Sequence", &sequence) ||
            !get_u64(o, "StoppedUsec", &stopped) || !get_u64(o, "InitPid", &init_pid) ||
            !get_u64(o, "InitStartTicks", &init_ticks) || !get_u64(o, "AgentInitPid", &agent_init_pid) ||
            !get_u64(o, "AgentInitStartTicks", &agent_init_ticks))
                return "a number field";
        if (agent_pid > INT32_MAX || init_pid > INT32_MAX || agent_init_pid > INT32_MAX ||
            restarts > UINT32_MAX)
                return "a pid or count out of range";

        s = supervised_new(supervisor, id);
        s->container->name = xstrdup(name);
        s->container->image = xstrdup(image);
        s->container->labels = json_object_get(labels);
        s->container->created_usec = created;
        s->container->started_usec = started;
        s->container->running = json_object_get_boolean(running);
        s->container->sequence = sequence;
        memcpy(s->uuid, uuid, sizeof(s->uuid));
        s->container->agent.state = state;
        snprintf(s->container->agent.reason, sizeof(s->container->agent.reason), "%s", reason);
        snprintf(s->container->agent.version, sizeof(s->container->agent.version), "%s", version);
        s->container->agent.last_started_usec = last_started;
        s->container->agent.restart_count = (unsigned)restarts;
        s->container->agent.pid = (pid_t)agent_pid;
        s->stopped_usec = stopped;
        s->stored.init_pid = (pid_t)init_pid;
        s->stored.init_start_ticks = init_ticks;
        s->stored.agent_init_pid = (pid_t)agent_init_pid;
        s->stored.agent_init_start_ticks = agent_init_ticks;

        if (state == AGENT_STOPPED && !s->container->running) {
                uint64_t now = now_realtime_usec();
                uint64_t age = now > stopped ? now - stopped : 0;
                uint64_t forget = supervisor->config->forget_after_usec;

                supervise_forget_later(s, age < forget ? forget - age : 1);
        }
        return NULL;
}

void records_load(struct supervisor *supervisor)
{
        _cleanup_close_ int dir_fd = open_records_dir(supervisor);
        DIR *dir;
        struct dirent *entry;

        if (dir_fd < 0)
                return;
        dir = fdopendir(TAKE_FD(dir_fd));
        if (!dir)
                return;

        while ((entry = readdir(dir))) {
                size_t length = strlen(entry->d_name);
                _cleanup_free_ char *text = NULL;
                const char *fault;
                json_object *o;
                int r;

                if (entry->d_name[0] == '.' || length <= strlen(RECORD_SUFFIX) ||
                    !streq(entry->d_name + length - strlen(RECORD_SUFFIX), RECORD_SUFFIX))
                        continue;

                r = read_file_at(dirfd(dir), entry->d_name, RECORD_MAX_SIZE, &text, NULL);
                if (r < 0) {
                        log_warning("skipping state file %s/%s: %s", supervisor->records_dir,
                                    entry->d_name, strerror(-r));
                        continue;
                }
                o = json_tokener_parse(text);
                if (!o || !json_object_is_type(o, json_type_object)) {
                        log_warning("skipping state file %s/%s: not a JSON object (torn or corrupt)",
                                    supervisor->records_dir, entry->d_name);
                        json_object_put(o);
                        continue;
                }

                fault = load_record(supervisor, o);
                if (fault)
                        log_warning("skipping state file %s/%s: %s is missing or invalid",
                                    supervisor->records_dir, entry->d_name, fault);
                json_object_put(o);
        }
        closedir(dir);
}

/* Convert a process start time in clock ticks since boot to CLOCK_REALTIME
 * microseconds, through the boot time in /proc/stat; 0 when unknown. */
static uint64_t ticks_to_realtime_usec(uint64_t ticks)
{
        _cleanup_free_ char *stat = NULL;
        const char *line;
        uint64_t boot_seconds;
        long ticks_per_second = sysconf(_SC_CLK_TCK);

        if (ticks_per_second <= 0 || read_file_at(AT_FDCWD, "/proc/stat", 1024 * 1024, &stat, NULL) < 0)
                return 0;
        line = strstr(stat, "\nbtime ");
        if (!line || sscanf(line + strlen("\nbtime "), "%" SCNu64, &boot_seconds) != 1)
                return 0;
        return boot_seconds * 1000000ULL + ticks * 1000000ULL / (uint64_t)ticks_per_second;
}

static bool same_namespace(int proc_a, int proc_b, const char *name)
{
        struct stat a, b;

        return fstatat(proc_a, name, &a, 0) == 0 && fstatat(proc_b, name, &b, 0) == 0 &&
               a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* Check that the recorded execvisor-init is alive, started at the recorded
 * time, shares the container init's namespaces and runs from this
 * container's bundle view. */
static int check_adoptable(struct supervised *s, int *ret_pidfd)
{
        _cleanup_free_ char *path = xasprintf("/proc/%d", (int)s->stored.agent_init_pid);
        _cleanup_free_ char *expected = xasprintf("/ecs-execute-command-%s/execvisor-init", s->uuid);
        _cleanup_close_ int pidfd = -1, proc_fd = -1;
        char exe[4096];
        uint64_t ticks;
        ssize_t n;

        pidfd = pidfd_open(s->stored.agent_init_pid, 0);
        if (pidfd < 0)
                return -ESRCH;
        proc_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0 || read_process_start_ticks(proc_fd, &ticks) < 0 ||
            ticks != s->stored.agent_init_start_ticks)
                return -ESRCH;

        if (!same_namespace(proc_fd, s->init_proc_fd, "ns/mnt") ||
            !same_namespace(proc_fd, s->init_proc_fd, "ns/pid") ||
            !same_namespace(proc_fd, s->init_proc_fd, "ns/net"))
                return -EPERM;

        n = readlinkat(proc_fd, "exe", exe, sizeof(exe) - 1);
        if (n < 0)
                return -EPERM;
        exe[n] = '\0';
        if (!streq(exe, expected))
                return -EPERM;

        /* Alive after the checks: they were made on this process. */
        if (!pidfd_running(pidfd))
                return -ESRCH;

        *ret_pidfd = TAKE_FD(pidfd);
        return 0;
}

/* An agent may run in the container with no record of it: its state file
 * was torn or removed. Look for its execvisor-init in the agent's cgroup and
 * take its uuid from the path it runs from, so that the checks of a recorded
 * agent apply to it. Returns true when one was found. */
static bool find_unrecorded_agent(struct supervised *s)
{
        static const char prefix[] = "/ecs-execute-command-";
        static const char suffix[] = "/execvisor-init";
        struct agent_cgroups cgroups;
        _cleanup_free_ pid_t *pids = NULL;
        size_t count = 0;
        bool found = false;

        if (agent_cgroups_open(s->init_proc_fd, s->container->id, &cgroups) < 0)
                return false;
        if (agent_cgroups_list(&cgroups, &pids, &count) < 0)
                count = 0;

        for (size_t i = 0; i < count && !found; i++) {
                _cleanup_free_ char *path = xasprintf("/proc/%d", (int)pids[i]);
                _cleanup_close_ int proc_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                char exe[256];
                uint64_t ticks;
                ssize_t n;

                if (proc_fd < 0)
                        continue;
                n = readlinkat(proc_fd, "exe", exe, sizeof(exe) - 1);
                if (n < 0)
                        continue;
                exe[n] = '\0';
                if ((size_t)n != strlen(prefix) + 36 + strlen(suffix) || !startswith(exe, prefix) ||
                    !streq(exe + strlen(prefix) + 36, suffix) ||
                    read_process_start_ticks(proc_fd, &ticks) < 0)
                        continue;

                memcpy(s->uuid, exe + strlen(prefix), 36);
                s->uuid[36] = '\0';
                s->stored.init_pid = s->init_pid;
                s->stored.init_start_ticks = s->init_start_ticks;
                s->stored.agent_init_pid = pids[i];
                s->stored.agent_init_start_ticks = ticks;
                found = true;
        }

        /* Processes of an agent that cannot be adopted would run beside the
         * new one. */
        if (!found && count > 0) {
                log_warning("container %.12s: ending %zu processes left in the agent's cgroup by an earlier agent",
                            s->container->id, count);
                (void)agent_cgroups_kill(&cgroups);
        }
        agent_cgroups_release(&cgroups);
        return found;
}

bool records_try_adopt(struct supervisor *supervisor, struct supervised *s)
{
        struct agent_status *agent = &s->container->agent;
        int pidfd = -1;
        int r;

        if (s->stored.agent_init_pid <= 0 || s->stored.init_pid != s->init_pid ||
            s->stored.init_start_ticks != s->init_start_ticks) {
                s->stored.agent_init_pid = 0;
                if (!find_unrecorded_agent(s))
                        return false;
                log_warning("container %.12s: found a running agent (pid %d) with no valid state file; adopting it",
                            s->container->id, (int)s->stored.agent_init_pid);
        }

        r = check_adoptable(s, &pidfd);
        if (r < 0) {
                log_info("container %.12s: the agent recorded as pid %d no longer runs there; starting a new one",
                         s->container->id, (int)s->stored.agent_init_pid);
                s->stored.agent_init_pid = 0;
                return false;
        }

        r = agent_cgroups_open(s->init_proc_fd, s->container->id, &s->cgroups);
        if (r < 0)
                log_warning("container %.12s: cannot open the adopted agent's cgroup: %s", s->container->id,
                            strerror(-r));

        s->agent_init_start_ticks = s->stored.agent_init_start_ticks;
        r = supervise_watch_agent(s, s->stored.agent_init_pid, pidfd, true);
        s->stored.agent_init_pid = 0;
        if (r < 0) {
                safe_close(pidfd);
                return false;
        }

        agent->state = AGENT_RUNNING;
        agent->reason[0] = '\0';
        s->needs_injection = false;
        if (agent->last_started_usec == 0)
                agent->last_started_usec = ticks_to_realtime_usec(s->agent_init_start_ticks);
        supervised_log(LOG_INFO, s, "adopted the running agent (pid %d, restarts %u)", (int)agent->pid,
                       agent->restart_count);
        s->container->sequence++;
        container_notify(s->container, CONTAINER_EVENT_ADOPTED);
        return true;
}
