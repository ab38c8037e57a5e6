#include "mounts/bundle.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "mounts/sha256.h"
#include "supervisor/log.h"
#include "supervisor/util.h"

/* Size limits for files copied into a layer. A CA bundle is a few hundred KiB and the static
 * init far less than a MiB, so a larger file is the wrong file. */
#define CERTS_MAX_SIZE (16u * 1024u * 1024u)
#define INIT_MAX_SIZE (64u * 1024u * 1024u)

/* Entries named in one message, so that a bin/ full of junk cannot make a huge log line. */
#define MAX_LISTED_REASONS 16

/* Temporary layer directories are named TEMP_PREFIX<hash>-<pid>-<attempt>. One whose last change
 * is older than STALE_TEMP_AGE_SEC was left by a build that crashed: a build takes
 * milliseconds. */
#define TEMP_PREFIX ".tmp-"
#define STALE_TEMP_AGE_SEC (60 * 60)
#define MAX_TEMP_ATTEMPTS 100

/* Bumping this renames every layer, for when the layout changes but the content would not. */
#define LAYER_FORMAT_TAG "execvisor-layer-1"

static const char *const required_binaries[] = {
    BUNDLE_AGENT_BINARY,
    BUNDLE_AGENT_WORKER_BINARY,
    BUNDLE_SESSION_WORKER_BINARY,
};

static void closedirp(DIR **dir)
{
        if (*dir)
                closedir(*dir);
}

static void json_object_putp(struct json_object **object)
{
        if (*object)
                json_object_put(*object);
}

#define _cleanup_closedir_ _cleanup_(closedirp)
#define _cleanup_json_ _cleanup_(json_object_putp)

/* Stores a formatted message in *ret_error when ret_error is not NULL, and returns r. */
static int set_error(char **ret_error, int r, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static int set_error(char **ret_error, int r, const char *format, ...)
{
        va_list args;
        char *message;

        if (!ret_error)
                return r;

        va_start(args, format);
        if (vasprintf(&message, format, args) < 0)
                abort(); /* out of memory, as in xasprintf() */
        va_end(args);

        *ret_error = message;
        return r;
}

/* "entry: reason; entry: reason" with at most MAX_LISTED_REASONS entries named. */
struct reason_list {
        char *text;
        size_t listed;
        size_t omitted;
};

static void reason_list_done(struct reason_list *list)
{
        free(list->text);
        list->text = NULL;
}

static void reason_list_add(struct reason_list *list, const char *entry, const char *reason)
{
        char *text;

        if (list->listed == MAX_LISTED_REASONS) {
                list->omitted++;
                return;
        }

        if (list->text)
                text = xasprintf("%s; %s: %s", list->text, entry, reason);
        else
                text = xasprintf("%s: %s", entry, reason);
        free(list->text);
        list->text = text;
        list->listed++;
}

/* Joins both lists, with a count of what was left out. Returns NULL when both are empty. */
static char *reason_list_join(const struct reason_list *first, const struct reason_list *second)
{
        const struct reason_list *lists[] = {first, second};
        char *text = NULL;

        for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
                char *joined;

                if (!lists[i]->text)
                        continue;
                if (lists[i]->omitted > 0)
                        joined = xasprintf("%s%s%s; %zu more like these", text ? text : "",
                                           text ? "; " : "", lists[i]->text, lists[i]->omitted);
                else
                        joined =
                            xasprintf("%s%s%s", text ? text : "", text ? "; " : "", lists[i]->text);
                free(text);
                text = joined;
        }
        return text;
}

/* Opens the directory name under parent_fd without following a symlink. Returns -ELOOP for a
 * symlink: with O_DIRECTORY, O_NOFOLLOW alone reports one as ENOTDIR. */
static int open_dir_no_symlink(int parent_fd, const char *name)
{
        struct stat st;
        int fd, r;

        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
                return fd;

        r = negative_errno();
        if (r == -ENOTDIR && fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode))
                return -ELOOP;
        return r;
}

/* Walks path one component at a time, without following a symlink: the fallback for kernels
 * or seccomp filters without openat2(). Only for this file's fixed relative paths, which hold
 * no "..". */
static int open_components_no_symlink(int parent_fd, const char *path, int flags)
{
        _cleanup_free_ char *component = NULL;
        _cleanup_close_ int dir_fd = -1;
        const char *slash = strchr(path, '/');
        int fd;

        if (!slash) {
                fd = openat(parent_fd, path, flags | O_NOFOLLOW | O_CLOEXEC);
                return fd < 0 ? negative_errno() : fd;
        }

        component = xasprintf("%.*s", (int)(slash - path), path);
        dir_fd = open_dir_no_symlink(parent_fd, component);
        if (dir_fd < 0)
                return dir_fd;
        return open_components_no_symlink(dir_fd, slash + 1, flags);
}

/* Opens path below parent_fd without following a symlink in any component. Returns -ELOOP when
 * a component is a symlink. */
static int open_beneath(int parent_fd, const char *path, int flags)
{
        struct open_how how = {
            .flags = (uint64_t)(flags | O_CLOEXEC),
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
        };
        long fd;

        fd = syscall(SYS_openat2, parent_fd, path, &how, sizeof(how));
        if (fd >= 0)
                return (int)fd;

        /* ENOSYS: no openat2(); EPERM: a seccomp filter that does not know it; EINVAL: a kernel
         * without one of the resolve flags. */
        if (errno == ENOSYS || errno == EPERM || errno == EINVAL)
                return open_components_no_symlink(parent_fd, path, flags);
        return negative_errno();
}

/* Reads the regular file open at fd, of at most max_size bytes. Returns -EBADFD for anything
 * but a regular file, -EFBIG when it is too large and -EAGAIN when it grew while being read. */
static int read_regular_file(int fd, size_t max_size, char **ret_data, size_t *ret_size)
{
        _cleanup_free_ char *data = NULL;
        struct stat st;
        size_t expected, size;
        ssize_t n;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t)st.st_size > max_size)
                return -EFBIG;

        /* Ask for one byte more than fstat() reported, to notice a file that grows. */
        expected = (size_t)st.st_size;
        data = xmalloc(expected + 1);
        n = read_full(fd, data, expected + 1);
        if (n < 0)
                return (int)n;
        size = (size_t)n;
        if (size != expected)
                return -EAGAIN;

        *ret_data = TAKE_PTR(data);
        *ret_size = size;
        return 0;
}

static const char *read_error_text(int r)
{
        switch (r) {
        case -EBADFD:
                return "not a regular file";
        case -EFBIG:
                return "file too large";
        case -EAGAIN:
                return "file changed while it was read";
        default:
                return strerror(-r);
        }
}

/* Versions */

static const char *version_name_problem(const char *name)
{
        const char *p = name;

        for (;;) {
                size_t digits = strspn(p, "0123456789");

                if (digits == 0)
                        return "not a dotted version number";
                p += digits;
                if (*p == '\0')
                        break;
                if (*p != '.')
                        return "not a dotted version number";
                p++;
        }

        if (p - name >= BUNDLE_VERSION_SIZE)
                return "version number too long";
        return NULL;
}

bool bundle_version_is_valid(const char *name)
{
        return version_name_problem(name) == NULL;
}

/* Returns the significant digits of the group at *p (leading zeros skipped), stores their count
 * and moves *p to the next group. At the end of the string it returns an empty group, which
 * compares as 0. Stray characters are skipped so that invalid input still terminates. */
static const char *next_version_group(const char **p, size_t *ret_digits)
{
        const char *start = *p, *end;

        while (*start == '0')
                start++;
        *ret_digits = strspn(start, "0123456789");

        end = start + *ret_digits;
        while (*end != '\0' && *end != '.')
                end++;
        if (*end == '.')
                end++;
        *p = end;
        return start;
}

int bundle_compare_versions(const char *a, const char *b)
{
        while (*a != '\0' || *b != '\0') {
                size_t a_digits, b_digits;
                const char *a_group = next_version_group(&a, &a_digits);
                const char *b_group = next_version_group(&b, &b_digits);
                int r;

                /* Without leading zeros, the longer run of digits is the larger number. */
                if (a_digits != b_digits)
                        return a_digits < b_digits ? -1 : 1;

                r = memcmp(a_group, b_group, a_digits);
                if (r != 0)
                        return r < 0 ? -1 : 1;
        }
        return 0;
}

struct candidate {
        char name[BUNDLE_VERSION_SIZE];
};

/* Equal versions spelled differently ("3.2" and "3.2.0") are ordered by name, so the choice
 * does not depend on the order of readdir(). */
static int compare_newest_first(const void *x, const void *y)
{
        const struct candidate *a = x, *b = y;
        int r = bundle_compare_versions(b->name, a->name);

        return r != 0 ? r : strcmp(b->name, a->name);
}

/* Lists the entries of bin/ that are version numbers, newest first, and adds every other entry
 * to ignored. */
static int list_candidates(DIR *bin, struct reason_list *ignored, struct candidate **ret_candidates,
                           size_t *ret_count)
{
        _cleanup_free_ struct candidate *candidates = NULL;
        size_t count = 0, allocated = 0;

        for (;;) {
                struct dirent *entry;
                const char *problem;

                errno = 0;
                entry = readdir(bin);
                if (!entry) {
                        if (errno != 0)
                                return negative_errno();
                        break;
                }
                if (streq(entry->d_name, ".") || streq(entry->d_name, ".."))
                        continue;

                problem = version_name_problem(entry->d_name);
                if (problem) {
                        char quoted[96];

                        reason_list_add(ignored, log_quote(entry->d_name, quoted, sizeof(quoted)),
                                        problem);
                        continue;
                }

                if (count == allocated) {
                        struct candidate *grown;

                        allocated = allocated ? 2 * allocated : 8;
                        grown = reallocarray(candidates, allocated, sizeof(*candidates));
                        if (!grown)
                                return -ENOMEM;
                        candidates = grown;
                }
                strcpy(candidates[count++].name, entry->d_name);
        }

        if (count > 0)
                qsort(candidates, count, sizeof(*candidates), compare_newest_first);
        *ret_candidates = TAKE_PTR(candidates);
        *ret_count = count;
        return 0;
}

/* Returns NULL when the binary is usable, otherwise why not (formatted into buffer). */
static const char *binary_problem(int version_fd, const char *name, char *buffer, size_t size)
{
        _cleanup_close_ int fd = -1;
        struct stat st;

        /* With O_PATH, O_NOFOLLOW opens a symlink itself instead of failing, so fstat() can
         * tell a symlink from a missing file. */
        fd = openat(version_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        snprintf(buffer, size, "%s missing", name);
                else
                        snprintf(buffer, size, "%s cannot be opened (%s)", name, strerror(errno));
                return buffer;
        }

        if (fstat(fd, &st) < 0)
                snprintf(buffer, size, "%s cannot be inspected (%s)", name, strerror(errno));
        else if (S_ISLNK(st.st_mode))
                snprintf(buffer, size, "%s is a symbolic link", name);
        else if (!S_ISREG(st.st_mode))
                snprintf(buffer, size, "%s is not a regular file", name);
        else if ((st.st_mode & 0111) == 0)
                snprintf(buffer, size, "%s not executable", name);
        else
                return NULL;
        return buffer;
}

/* Opens bin/<name> and checks its binaries. Returns the directory's fd when the version is
 * usable, otherwise -ENOEXEC with the reasons in *ret_problem (malloc'ed). */
static int open_version(int bin_fd, const char *name, char **ret_problem)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *problems = NULL;

        fd = open_dir_no_symlink(bin_fd, name);
        if (fd < 0) {
                if (fd == -ELOOP)
                        *ret_problem = xstrdup("is a symbolic link");
                else if (fd == -ENOTDIR)
                        *ret_problem = xstrdup("not a directory");
                else
                        *ret_problem = xasprintf("cannot be opened (%s)", strerror(-fd));
                return -ENOEXEC;
        }

        for (size_t i = 0; i < ARRAY_SIZE(required_binaries); i++) {
                char buffer[128];
                const char *problem =
                    binary_problem(fd, required_binaries[i], buffer, sizeof(buffer));
                char *joined;

                if (!problem)
                        continue;
                joined = problems ? xasprintf("%s, %s", problems, problem) : xstrdup(problem);
                free(problems);
                problems = joined;
        }

        if (problems) {
                *ret_problem = TAKE_PTR(problems);
                return -ENOEXEC;
        }
        return TAKE_FD(fd);
}

/* Open the bundle's root directory, with a message naming it on failure. */
static int open_bundle_dir(const char *bundle_dir, char **ret_error)
{
        int fd = open(bundle_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd >= 0)
                return fd;
        if (errno == ENOENT)
                return set_error(ret_error, -ENOENT, "bundle directory %s not found", bundle_dir);
        return set_error(ret_error, negative_errno(), "cannot open bundle directory %s: %s", bundle_dir,
                         strerror(errno));
}

static int open_bin_dir(const char *bundle_dir, DIR **ret_bin, char **ret_error)
{
        _cleanup_close_ int bundle_fd = -1, bin_fd = -1;
        DIR *bin;
        int r;

        bundle_fd = open_bundle_dir(bundle_dir, ret_error);
        if (bundle_fd < 0)
                return bundle_fd;

        r = open_dir_no_symlink(bundle_fd, BUNDLE_BIN_DIR);
        if (r < 0) {
                if (r == -ENOENT)
                        return set_error(ret_error, -ENOENT,
                                         "%s/" BUNDLE_BIN_DIR " not found; the bundle has no "
                                         "agent version",
                                         bundle_dir);
                if (r == -ELOOP)
                        return set_error(ret_error, -ELOOP,
                                         "%s/" BUNDLE_BIN_DIR " is a symbolic link; it must be "
                                         "a directory inside the bundle",
                                         bundle_dir);
                return set_error(ret_error, r, "cannot open %s/" BUNDLE_BIN_DIR ": %s", bundle_dir,
                                 strerror(-r));
        }
        bin_fd = r;

        bin = fdopendir(bin_fd);
        if (!bin)
                return set_error(ret_error, negative_errno(),
                                 "cannot read %s/" BUNDLE_BIN_DIR ": %s", bundle_dir,
                                 strerror(errno));
        TAKE_FD(bin_fd);

        *ret_bin = bin;
        return 0;
}

static int no_valid_version_error(const char *bundle_dir, const struct reason_list *rejected,
                                  const struct reason_list *ignored, char **ret_error)
{
        _cleanup_free_ char *reasons = reason_list_join(rejected, ignored);

        if (!reasons)
                return set_error(ret_error, -ENOEXEC,
                                 "no agent version in %s/" BUNDLE_BIN_DIR
                                 "; the directory is empty",
                                 bundle_dir);

        return set_error(ret_error, -ENOEXEC,
                         "no valid agent version in %s/" BUNDLE_BIN_DIR ": %s. Each "
                         "bin/<version>/ needs " BUNDLE_AGENT_BINARY ", " BUNDLE_AGENT_WORKER_BINARY
                         " and " BUNDLE_SESSION_WORKER_BINARY " as executable regular files",
                         bundle_dir, reasons);
}

int bundle_find_version(const char *bundle_dir, struct bundle_version *ret_version,
                        char **ret_error)
{
        _cleanup_closedir_ DIR *bin = NULL;
        _cleanup_free_ struct candidate *candidates = NULL;
        _cleanup_free_ char *bundle_path = NULL;
        _cleanup_(reason_list_done) struct reason_list rejected = {};
        _cleanup_(reason_list_done) struct reason_list ignored = {};
        _cleanup_close_ int version_fd = -1;
        size_t count, chosen;
        int r;

        r = open_bin_dir(bundle_dir, &bin, ret_error);
        if (r < 0)
                return r;

        r = list_candidates(bin, &ignored, &candidates, &count);
        if (r < 0)
                return set_error(ret_error, r, "cannot read %s/" BUNDLE_BIN_DIR ": %s", bundle_dir,
                                 strerror(-r));

        for (chosen = 0; chosen < count; chosen++) {
                _cleanup_free_ char *problem = NULL;

                version_fd = open_version(dirfd(bin), candidates[chosen].name, &problem);
                if (version_fd >= 0)
                        break;
                reason_list_add(&rejected, candidates[chosen].name, problem);
        }
        if (chosen == count)
                return no_valid_version_error(bundle_dir, &rejected, &ignored, ret_error);

        bundle_path = realpath(bundle_dir, NULL);
        if (!bundle_path)
                return set_error(ret_error, negative_errno(),
                                 "cannot resolve bundle directory %s: %s", bundle_dir,
                                 strerror(errno));

        strcpy(ret_version->version, candidates[chosen].name);
        ret_version->dir =
            xasprintf("%s/" BUNDLE_BIN_DIR "/%s", bundle_path, candidates[chosen].name);
        ret_version->dir_fd = TAKE_FD(version_fd);
        ret_version->skipped = reason_list_join(&rejected, &ignored);
        return 0;
}

void bundle_version_done(struct bundle_version *version)
{
        free(version->dir);
        version->dir = NULL;
        free(version->skipped);
        version->skipped = NULL;
        version->dir_fd = safe_close(version->dir_fd);
        version->version[0] = '\0';
}

/* Generated configuration */

/* json-c returns NULL or fails to add only when out of memory, which ends the supervisor as
 * xmalloc() does. */
static void json_add(struct json_object *object, const char *key, struct json_object *value)
{
        if (!value || json_object_object_add(object, key, value) < 0)
                abort();
}

static struct json_object *json_new_object(void)
{
        struct json_object *object = json_object_new_object();

        if (!object)
                abort();
        return object;
}

char *bundle_generate_agent_json(unsigned session_workers_limit)
{
        _cleanup_json_ struct json_object *root = json_new_object();
        struct json_object *agent = json_new_object();
        struct json_object *message_gateway = json_new_object();
        const char *text;

        /* The same keys and values as the ECS agent writes for ECS Exec (amazon-ecs-agent,
         * agent/engine/execcmd). Empty regions and endpoints make the SSM agent find them
         * itself, and ContainerMode marks it as running inside a container. */
        json_add(agent, "Region", json_object_new_string(""));
        json_add(agent, "OrchestrationRootDir", json_object_new_string(""));
        json_add(agent, "ContainerMode", json_object_new_boolean(true));
        json_add(root, "Agent", agent);

        json_add(message_gateway, "Region", json_object_new_string(""));
        json_add(message_gateway, "Endpoint", json_object_new_string(""));
        json_add(message_gateway, "StopTimeoutMillis", json_object_new_int64(20000));
        json_add(message_gateway, "SessionWorkersLimit",
                 json_object_new_int64((int64_t)session_workers_limit));
        json_add(root, "Mgs", message_gateway);

        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                abort();
        return xasprintf("%s\n", text);
}

char *bundle_generate_seelog_xml(void)
{
        /* In adaptive mode seelog waits 2 ms to 100 ms (the values are nanoseconds) between
         * writes, less as its queue fills towards 500 messages. Sizes and roll counts are those
         * ECS uses: 40 MB for the full log and 10 MB for errors, with one old file each, so the
         * agent's logs take at most about 100 MB per container. The console copy reaches the
         * supervisor through the agent's stdout. */
        return xstrdup(
            "<!-- Written by execvisor: logging of the SSM agent (seelog). -->\n"
            "<seelog type=\"adaptive\" mininterval=\"2000000\" maxinterval=\"100000000\""
            " critmsgcount=\"500\" minlevel=\"info\">\n"
            "    <outputs formatid=\"brief\">\n"
            "        <console formatid=\"brief\"/>\n"
            "        <rollingfile type=\"size\" maxsize=\"40000000\" maxrolls=\"1\"\n"
            "                     filename=\"" BUNDLE_AGENT_LOG_DIR "/amazon-ssm-agent.log\"/>\n"
            "        <filter levels=\"error,critical\" formatid=\"detailed\">\n"
            "            <rollingfile type=\"size\" maxsize=\"10000000\" maxrolls=\"1\"\n"
            "                         filename=\"" BUNDLE_AGENT_LOG_DIR "/errors.log\"/>\n"
            "        </filter>\n"
            "    </outputs>\n"
            "    <formats>\n"
            "        <format id=\"brief\" format=\"%Date %Time %LEVEL %Msg%n\"/>\n"
            "        <format id=\"detailed\""
            " format=\"%Date %Time %LEVEL [%FuncShort @ %File.%Line] %Msg%n\"/>\n"
            "    </formats>\n"
            "</seelog>\n");
}

/* The layer */

struct layer_file {
        const char *path;
        mode_t mode;
        const char *data;
        size_t size;
};

/* Everything a layer contains, for hashing, writing and checking it. */
struct layer {
        struct layer_file files[4];
        size_t n_files;
        bool has_certs;
        char name[SHA256_HEX_SIZE];
};

static void layer_add_file(struct layer *layer, const char *path, mode_t mode, const char *data,
                           size_t size)
{
        layer->files[layer->n_files++] = (struct layer_file){
            .path = path,
            .mode = mode,
            .data = data,
            .size = size,
        };
}

/* Names the layer by the hash of its content. Each file adds its path, mode and size before its
 * bytes, so two different layers never feed the same bytes to the hash. */
static void layer_compute_name(struct layer *layer)
{
        struct sha256_ctx ctx;
        uint8_t digest[SHA256_DIGEST_SIZE];

        sha256_init(&ctx);
        sha256_update(&ctx, LAYER_FORMAT_TAG, sizeof(LAYER_FORMAT_TAG));
        for (size_t i = 0; i < layer->n_files; i++) {
                const struct layer_file *file = &layer->files[i];
                char header[256];
                int length;

                length = snprintf(header, sizeof(header), "%s%c%o%c%zu%c", file->path, '\0',
                                  (unsigned)file->mode, '\0', file->size, '\0');
                sha256_update(&ctx, header, (size_t)length);
                sha256_update(&ctx, file->data, file->size);
        }
        sha256_final(&ctx, digest);
        sha256_to_hex(digest, layer->name);
}

/* Reads the CA bundle into *ret_certs, or stores NULL when the bundle has none. */
static int read_certs(const char *bundle_dir, char **ret_certs, size_t *ret_size, char **ret_error)
{
        _cleanup_close_ int bundle_fd = -1, fd = -1;
        int r;

        bundle_fd = open_bundle_dir(bundle_dir, ret_error);
        if (bundle_fd < 0)
                return bundle_fd;

        /* The copy ends up in every container, so a symlink to some other host file must not
         * be followed. */
        fd = open_beneath(bundle_fd, BUNDLE_CERTS_FILE, O_RDONLY | O_NOCTTY | O_NONBLOCK);
        if (fd == -ENOENT) {
                *ret_certs = NULL;
                *ret_size = 0;
                return 0;
        }
        if (fd == -ELOOP)
                return set_error(ret_error, fd,
                                 "%s/" BUNDLE_CERTS_FILE " is or is under a symbolic link; copy "
                                 "the CA bundle into the bundle directory instead",
                                 bundle_dir);
        if (fd < 0)
                return set_error(ret_error, fd, "cannot open %s/" BUNDLE_CERTS_FILE ": %s",
                                 bundle_dir, strerror(-fd));

        r = read_regular_file(fd, CERTS_MAX_SIZE, ret_certs, ret_size);
        if (r < 0)
                return set_error(ret_error, r, "cannot read %s/" BUNDLE_CERTS_FILE ": %s",
                                 bundle_dir, read_error_text(r));
        return 0;
}

static int read_init(const char *init_path, char **ret_init, size_t *ret_size, char **ret_error)
{
        _cleanup_close_ int fd = -1;
        int r;

        fd = open(init_path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return set_error(ret_error, negative_errno(), "cannot open init binary %s: %s",
                                 init_path, strerror(errno));

        r = read_regular_file(fd, INIT_MAX_SIZE, ret_init, ret_size);
        if (r < 0)
                return set_error(ret_error, r, "cannot read init binary %s: %s", init_path,
                                 read_error_text(r));
        return 0;
}

static int remove_tree_at(int parent_fd, const char *name)
{
        _cleanup_closedir_ DIR *dir = NULL;
        int fd, r = 0;

        /* unlinkat() without AT_REMOVEDIR fails with EISDIR on a directory. */
        if (unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR)
                return negative_errno();

        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        dir = fdopendir(fd);
        if (!dir) {
                r = negative_errno();
                safe_close(fd);
                return r;
        }

        for (;;) {
                struct dirent *entry;
                int q;

                errno = 0;
                entry = readdir(dir);
                if (!entry) {
                        if (errno != 0 && r == 0)
                                r = negative_errno();
                        break;
                }
                if (streq(entry->d_name, ".") || streq(entry->d_name, ".."))
                        continue;
                q = remove_tree_at(dirfd(dir), entry->d_name);
                if (q < 0 && r == 0)
                        r = q;
        }

        if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && r == 0)
                r = negative_errno();
        return r;
}

/* Removes temporary layers left by crashed builds. Failures are ignored because leftovers
 * only cost disk space. */
static void remove_stale_temp_dirs(int views_fd)
{
        _cleanup_closedir_ DIR *dir = NULL;
        time_t now = time(NULL);
        int fd;

        fd = openat(views_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        dir = fdopendir(fd);
        if (!dir) {
                safe_close(fd);
                return;
        }

        for (struct dirent *entry; (entry = readdir(dir));) {
                struct stat st;

                if (!startswith(entry->d_name, TEMP_PREFIX))
                        continue;
                if (fstatat(views_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (now - st.st_mtime > STALE_TEMP_AGE_SEC)
                        (void)remove_tree_at(views_fd, entry->d_name);
        }
}

/* Returns 0 when the file in the layer has the expected owner, mode and bytes, -EUCLEAN when it
 * differs, or another negative errno when it cannot be read. */
static int check_layer_file(int layer_fd, const struct layer_file *file)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        struct stat st;
        size_t size;
        int r;

        fd = open_beneath(layer_fd, file->path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
        if (fd == -ENOENT || fd == -ELOOP || fd == -ENOTDIR)
                return -EUCLEAN;
        if (fd < 0)
                return fd;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != file->mode || st.st_uid != 0 ||
            st.st_gid != 0 || (uint64_t)st.st_size != file->size)
                return -EUCLEAN;

        r = read_regular_file(fd, file->size, &data, &size);
        if (r == -EFBIG || r == -EAGAIN)
                return -EUCLEAN;
        if (r < 0)
                return r;
        if (memcmp(data, file->data, size) != 0)
                return -EUCLEAN;
        return 0;
}

/* Returns 0 when views_fd/<layer name> is the complete layer, -ENOENT when nothing has that
 * name, -EUCLEAN when something else has it, or another negative errno when it cannot be read. */
static int check_layer(int views_fd, const struct layer *layer)
{
        const char *dirs[] = {".", "configuration", layer->has_certs ? "certs" : NULL};
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = open_dir_no_symlink(views_fd, layer->name);
        if (fd == -ENOTDIR || fd == -ELOOP)
                return -EUCLEAN;
        if (fd < 0)
                return fd;

        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                if (!dirs[i])
                        continue;
                if (fstatat(fd, dirs[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return errno == ENOENT ? -EUCLEAN : negative_errno();
                if (!S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0755 || st.st_uid != 0 ||
                    st.st_gid != 0)
                        return -EUCLEAN;
        }

        for (size_t i = 0; i < layer->n_files; i++) {
                int r = check_layer_file(fd, &layer->files[i]);

                if (r < 0)
                        return r;
        }

        if (!layer->has_certs) {
                if (fstatat(fd, "certs", &st, AT_SYMLINK_NOFOLLOW) == 0)
                        return -EUCLEAN;
                if (errno != ENOENT)
                        return negative_errno();
        }
        return 0;
}

/* Gives an inode its final owner and mode, then flushes it. chown() comes first because it
 * clears set-id bits. The SSM agent ignores configuration not owned by 0:0 or writable by group
 * or others. */
static int seal_inode(int fd, mode_t mode)
{
        if (fchown(fd, 0, 0) < 0)
                return negative_errno();
        if (fchmod(fd, mode) < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

static int write_layer_file(int layer_fd, const struct layer_file *file)
{
        _cleanup_close_ int fd = -1;
        int r;

        fd = openat(layer_fd, file->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
        if (fd < 0)
                return negative_errno();

        r = write_all(fd, file->data, file->size);
        if (r < 0)
                return r;

        return seal_inode(fd, file->mode);
}

static int seal_dir_at(int parent_fd, const char *name)
{
        _cleanup_close_ int fd = -1;

        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return seal_inode(fd, 0755);
}

/* Writes the layer's directories and files into the empty directory layer_fd. */
static int fill_layer(int layer_fd, const struct layer *layer)
{
        const char *dirs[] = {"configuration", layer->has_certs ? "certs" : NULL};
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
                if (dirs[i] && mkdirat(layer_fd, dirs[i], 0700) < 0)
                        return negative_errno();

        for (size_t i = 0; i < layer->n_files; i++) {
                r = write_layer_file(layer_fd, &layer->files[i]);
                if (r < 0)
                        return r;
        }

        /* A directory's fsync() makes its entries durable, so each one is flushed after its
         * files are written. */
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                if (!dirs[i])
                        continue;
                r = seal_dir_at(layer_fd, dirs[i]);
                if (r < 0)
                        return r;
        }
        return seal_inode(layer_fd, 0755);
}

/* Builds the layer in a new temporary directory under views_fd and stores that directory's
 * name. On failure the temporary directory is removed. */
static int build_temp_layer(int views_fd, const struct layer *layer, char **ret_temp_name)
{
        _cleanup_free_ char *temp_name = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        /* mode 0700 until the layer is complete, so nothing reads a partial one. */
        for (unsigned attempt = 0;; attempt++) {
                temp_name = xasprintf(TEMP_PREFIX "%s-%d-%u", layer->name, (int)getpid(), attempt);
                if (mkdirat(views_fd, temp_name, 0700) == 0)
                        break;
                if (errno != EEXIST || attempt + 1 == MAX_TEMP_ATTEMPTS)
                        return negative_errno();
                free(temp_name);
                temp_name = NULL;
        }

        fd = openat(views_fd, temp_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                r = negative_errno();
        else
                r = fill_layer(fd, layer);
        if (r < 0) {
                (void)remove_tree_at(views_fd, temp_name);
                return r;
        }

        *ret_temp_name = TAKE_PTR(temp_name);
        return 0;
}

/* Moves the built layer from temp_name to its final name. When another process installed the
 * same layer first, ours is dropped. When something else has the final name, such as a
 * damaged layer, the two are exchanged atomically and the old one is removed. Either way
 * temp_name is gone on return. */
static int install_layer(int views_fd, const char *temp_name, const struct layer *layer)
{
        int r;

        if (renameat2(views_fd, temp_name, views_fd, layer->name, RENAME_NOREPLACE) == 0)
                goto done;
        r = negative_errno();
        if (r != -EEXIST)
                goto fail;

        r = check_layer(views_fd, layer);
        if (r == 0) {
                (void)remove_tree_at(views_fd, temp_name);
                return 0;
        }
        if (r != -EUCLEAN)
                goto fail;

        /* FIXME: containers that have the damaged layer mounted see it emptied once it is
         * removed below. Their agents fail until they are injected again. */
        if (renameat2(views_fd, temp_name, views_fd, layer->name, RENAME_EXCHANGE) < 0) {
                r = negative_errno();
                goto fail;
        }
        (void)remove_tree_at(views_fd, temp_name);

done:
        if (fsync(views_fd) < 0)
                return negative_errno();
        return 0;

fail:
        (void)remove_tree_at(views_fd, temp_name);
        return r;
}

static int open_views_dir(const char *views_dir, char **ret_error)
{
        int fd;

        if (mkdir(views_dir, 0755) < 0 && errno != EEXIST)
                return set_error(ret_error, negative_errno(), "cannot create %s: %s", views_dir,
                                 strerror(errno));

        fd = open(views_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return set_error(ret_error, negative_errno(), "cannot open %s: %s", views_dir,
                                 strerror(errno));
        return fd;
}

/* Makes sure views_fd contains the complete layer under its name. */
static int ensure_layer(int views_fd, const char *views_dir, const struct layer *layer,
                        char **ret_error)
{
        _cleanup_free_ char *temp_name = NULL;
        int r;

        r = check_layer(views_fd, layer);
        if (r == 0)
                return 0;
        if (r != -ENOENT && r != -EUCLEAN)
                return set_error(ret_error, r, "cannot check layer %s/%s: %s", views_dir,
                                 layer->name, strerror(-r));

        remove_stale_temp_dirs(views_fd);

        r = build_temp_layer(views_fd, layer, &temp_name);
        if (r < 0)
                return set_error(ret_error, r, "cannot write layer %s/%s: %s", views_dir,
                                 layer->name, strerror(-r));

        r = install_layer(views_fd, temp_name, layer);
        if (r < 0)
                return set_error(ret_error, r, "cannot move layer into place as %s/%s: %s",
                                 views_dir, layer->name, strerror(-r));
        return 0;
}

int bundle_prepare_layer(const char *bundle_dir, const char *views_dir, const char *init_path,
                         unsigned session_workers_limit, char **ret_layer_dir, bool *ret_has_certs,
                         char **ret_error)
{
        _cleanup_free_ char *agent_json = NULL, *seelog_xml = NULL, *certs = NULL, *init = NULL;
        _cleanup_free_ char *views_path = NULL;
        _cleanup_close_ int views_fd = -1;
        struct layer layer = {};
        size_t certs_size = 0, init_size = 0;
        int r;

        if (session_workers_limit == 0)
                return set_error(ret_error, -EINVAL,
                                 "invalid session workers limit 0; the SSM agent needs at least 1");

        r = read_certs(bundle_dir, &certs, &certs_size, ret_error);
        if (r < 0)
                return r;

        r = read_init(init_path, &init, &init_size, ret_error);
        if (r < 0)
                return r;

        agent_json = bundle_generate_agent_json(session_workers_limit);
        seelog_xml = bundle_generate_seelog_xml();

        layer_add_file(&layer, BUNDLE_LAYER_AGENT_CONFIG, 0644, agent_json, strlen(agent_json));
        layer_add_file(&layer, BUNDLE_LAYER_LOG_CONFIG, 0644, seelog_xml, strlen(seelog_xml));
        if (certs) {
                layer_add_file(&layer, BUNDLE_LAYER_CERTS, 0644, certs, certs_size);
                layer.has_certs = true;
        }
        layer_add_file(&layer, BUNDLE_LAYER_INIT, 0755, init, init_size);
        layer_compute_name(&layer);

        views_fd = open_views_dir(views_dir, ret_error);
        if (views_fd < 0)
                return views_fd;

        r = ensure_layer(views_fd, views_dir, &layer, ret_error);
        if (r < 0)
                return r;

        views_path = realpath(views_dir, NULL);
        if (!views_path)
                return set_error(ret_error, negative_errno(), "cannot resolve %s: %s", views_dir,
                                 strerror(errno));

        *ret_layer_dir = xasprintf("%s/%s", views_path, layer.name);
        *ret_has_certs = layer.has_certs;
        return 0;
}
