#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mounts/bundle.h"
#include "mounts/sha256.h"

/* Fixture: a fresh temporary directory, removed after each test. */
struct fixture {
        char root[64];
        char bundle[128];
        char views[128];
        char init[128];
};

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        return remove(path);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        strcpy(f->root, "/tmp/test-bundle-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        snprintf(f->bundle, sizeof(f->bundle), "%s/bundle", f->root);
        snprintf(f->views, sizeof(f->views), "%s/views", f->root);
        snprintf(f->init, sizeof(f->init), "%s/execvisor-init", f->root);
        assert_int_equal(mkdir(f->bundle, 0755), 0);

        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

static char *path_join(const char *a, const char *b)
{
        char *path;

        assert_true(asprintf(&path, "%s/%s", a, b) >= 0);
        return path;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

/* Reads a whole file; returns NULL when it cannot be opened. */
static char *read_text(const char *path, size_t *ret_size)
{
        FILE *file = fopen(path, "re");
        char *data;
        long size;

        if (!file)
                return NULL;
        assert_int_equal(fseek(file, 0, SEEK_END), 0);
        size = ftell(file);
        rewind(file);
        data = malloc((size_t)size + 1);
        assert_non_null(data);
        assert_int_equal(fread(data, 1, (size_t)size, file), (size_t)size);
        data[size] = '\0';
        fclose(file);
        if (ret_size)
                *ret_size = (size_t)size;
        return data;
}

/* Creates bin/<version>/ with the three binaries at the given modes; mode 0 leaves one out. */
static void make_version(struct fixture *f, const char *version, mode_t agent_mode,
                         mode_t agent_worker_mode, mode_t session_worker_mode)
{
        const char *names[] = {"amazon-ssm-agent", "ssm-agent-worker", "ssm-session-worker"};
        mode_t modes[] = {agent_mode, agent_worker_mode, session_worker_mode};
        char *bin = path_join(f->bundle, "bin");
        char *dir = path_join(bin, version);

        mkdir(bin, 0755);
        assert_int_equal(mkdir(dir, 0755), 0);
        for (size_t i = 0; i < 3; i++) {
                char *path;

                if (modes[i] == 0)
                        continue;
                path = path_join(dir, names[i]);
                write_file(path, "#!/bin/sh\nexit 0\n", modes[i]);
                free(path);
        }

        free(dir);
        free(bin);
}

static char *version_path(struct fixture *f, const char *version, const char *file)
{
        char *path;

        if (file)
                assert_true(asprintf(&path, "%s/bin/%s/%s", f->bundle, version, file) >= 0);
        else
                assert_true(asprintf(&path, "%s/bin/%s", f->bundle, version) >= 0);
        return path;
}

/* SHA-256 */

static void assert_sha256(const void *data, size_t size, const char *expected_hex)
{
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];

        sha256_buffer(data, size, digest);
        sha256_to_hex(digest, hex);
        assert_string_equal(hex, expected_hex);
}

static void test_sha256_known_vectors(void **state)
{
        /* Digests as sha256sum(1) prints them. */
        static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        char *million = malloc(1000000);
        struct sha256_ctx ctx;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];

        assert_sha256("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_sha256("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_sha256(two_blocks, strlen(two_blocks),
                      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

        assert_non_null(million);
        memset(million, 'a', 1000000);
        assert_sha256(million, 1000000,
                      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

        /* Uneven pieces must give the same digest as one buffer. */
        sha256_init(&ctx);
        for (size_t done = 0, step = 1; done < 1000000; step = step * 3 % 997 + 1) {
                size_t n = step < 1000000 - done ? step : 1000000 - done;

                sha256_update(&ctx, million + done, n);
                done += n;
        }
        sha256_final(&ctx, digest);
        sha256_to_hex(digest, hex);
        assert_string_equal(hex,
                            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

        free(million);
}

/* Version strings */

static void test_version_valid_names(void **state)
{
        char longest[BUNDLE_VERSION_SIZE];
        char too_long[BUNDLE_VERSION_SIZE + 1];

        assert_true(bundle_version_is_valid("3.2.582.0"));
        assert_true(bundle_version_is_valid("1"));
        assert_true(bundle_version_is_valid("0.0"));
        assert_true(bundle_version_is_valid("3.02.0"));
        assert_true(bundle_version_is_valid("99999999999999999999999.1"));

        memset(longest, '1', sizeof(longest) - 1);
        longest[sizeof(longest) - 1] = '\0';
        assert_true(bundle_version_is_valid(longest));
        memset(too_long, '1', sizeof(too_long) - 1);
        too_long[sizeof(too_long) - 1] = '\0';
        assert_false(bundle_version_is_valid(too_long));
}

static void test_version_invalid_names(void **state)
{
        const char *invalid[] = {
            "",     ".",  "..", "3.",     ".3",     "3..2",  "a.b",  "3.2-rc", "v3.2",     " 3.2",
            "3.2 ", "-1", "+1", "3.2.0/", "latest", "3.x.0", "0x10", "3.2\n",  "\xc3\xa9", "3,2",
        };

        for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
                if (bundle_version_is_valid(invalid[i]))
                        fail_msg("\"%s\" was accepted as a version", invalid[i]);
        }
}

static void assert_version_order(const char *older, const char *newer)
{
        if (bundle_compare_versions(older, newer) >= 0)
                fail_msg("expected %s < %s", older, newer);
        if (bundle_compare_versions(newer, older) <= 0)
                fail_msg("expected %s > %s", newer, older);
}

static void test_version_compare_numeric(void **state)
{
        assert_version_order("3.9.9", "3.10.0");
        assert_version_order("3.2.58.0", "3.2.582.0");
        assert_version_order("9", "10");
        assert_version_order("2.99.99.99", "3.0.0.0");
        assert_version_order("3.1.1511.0", "3.2.0.0");
        assert_version_order("99999999999999999998.9", "99999999999999999999.1");
        assert_version_order("0.0.0.1", "0.0.1");
        assert_int_equal(bundle_compare_versions("3.2.582.0", "3.2.582.0"), 0);
        assert_int_equal(bundle_compare_versions("0", "0.0.0"), 0);
}

static void test_version_compare_lengths(void **state)
{
        assert_version_order("3.2", "3.2.1");
        assert_version_order("3", "3.0.0.1");
        assert_version_order("3.2.0.0.0.1", "3.3");
        assert_int_equal(bundle_compare_versions("3.2", "3.2.0"), 0);
        assert_int_equal(bundle_compare_versions("3.2.0.0", "3.2"), 0);
        assert_int_equal(bundle_compare_versions("3.02", "3.2"), 0);
        assert_int_equal(bundle_compare_versions("03.0010", "3.10"), 0);
}

static void test_version_compare_invalid_terminates(void **state)
{
        /* The result for invalid strings is unspecified; the call must only return. */
        (void)bundle_compare_versions("a.b", "3.2");
        (void)bundle_compare_versions("latest", "");
        (void)bundle_compare_versions("..", "x");
}

/* Choosing a version */

static void test_find_newest_version(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *expected_dir;
        char *real_bundle;
        struct stat by_fd, by_path;

        make_version(f, "3.9.9", 0755, 0755, 0755);
        make_version(f, "3.10.0", 0755, 0755, 0755);
        make_version(f, "3.2.582.0", 0755, 0755, 0755);

        assert_int_equal(bundle_find_version(f->bundle, &version, &error), 0);
        assert_null(error);
        assert_string_equal(version.version, "3.10.0");
        assert_null(version.skipped);

        real_bundle = realpath(f->bundle, NULL);
        assert_true(asprintf(&expected_dir, "%s/bin/3.10.0", real_bundle) >= 0);
        assert_string_equal(version.dir, expected_dir);
        assert_true(version.dir[0] == '/');

        assert_true(version.dir_fd >= 0);
        assert_int_equal(fstat(version.dir_fd, &by_fd), 0);
        assert_int_equal(stat(expected_dir, &by_path), 0);
        assert_true(by_fd.st_ino == by_path.st_ino && by_fd.st_dev == by_path.st_dev);
        assert_true(fcntl(version.dir_fd, F_GETFD) & FD_CLOEXEC);

        bundle_version_done(&version);
        assert_int_equal(version.dir_fd, -1);
        assert_null(version.dir);
        bundle_version_done(&version);

        free(expected_dir);
        free(real_bundle);
}

static void test_find_falls_back_to_older(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *path, *latest;

        make_version(f, "3.3.0", 0755, 0755, 0);    /* session worker missing */
        make_version(f, "3.2.1", 0644, 0755, 0755); /* agent not executable */
        make_version(f, "3.2.0", 0755, 0, 0755);    /* worker replaced by a symlink */
        make_version(f, "3.1.9", 0755, 0755, 0755); /* the newest valid one */
        make_version(f, "3.1.0", 0755, 0755, 0755);
        path = version_path(f, "3.2.0", "ssm-agent-worker");
        assert_int_equal(symlink("/bin/true", path), 0);
        free(path);
        latest = version_path(f, "latest", NULL);
        assert_int_equal(mkdir(latest, 0755), 0);
        free(latest);

        assert_int_equal(bundle_find_version(f->bundle, &version, &error), 0);
        assert_null(error);
        assert_string_equal(version.version, "3.1.9");
        assert_non_null(version.skipped);
        assert_string_equal(version.skipped, "3.3.0: ssm-session-worker missing; "
                                             "3.2.1: amazon-ssm-agent not executable; "
                                             "3.2.0: ssm-agent-worker is a symbolic link; "
                                             "\"latest\": not a dotted version number");

        bundle_version_done(&version);
}

static void test_find_rejects_inside_symlinks(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *link_path, *target;

        /* Even links that stay inside the bundle are not followed. */
        make_version(f, "1.0.0", 0755, 0755, 0755);
        link_path = version_path(f, "2.0.0", NULL);
        assert_int_equal(symlink("1.0.0", link_path), 0);
        make_version(f, "1.5.0", 0755, 0755, 0755);
        target = version_path(f, "1.0.0", "ssm-session-worker");
        free(link_path);
        link_path = version_path(f, "1.5.0", "ssm-session-worker");
        assert_int_equal(unlink(link_path), 0);
        assert_int_equal(symlink(target, link_path), 0);

        assert_int_equal(bundle_find_version(f->bundle, &version, &error), 0);
        assert_string_equal(version.version, "1.0.0");
        assert_string_equal(version.skipped, "2.0.0: is a symbolic link; "
                                             "1.5.0: ssm-session-worker is a symbolic link");

        bundle_version_done(&version);
        free(target);
        free(link_path);
}

static void test_find_rejects_odd_file_types(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *path;

        make_version(f, "1.0.0", 0755, 0755, 0755);
        make_version(f, "5.0.0", 0755, 0755, 0755);
        path = version_path(f, "5.0.0", "amazon-ssm-agent");
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkdir(path, 0755), 0);
        free(path);
        path = version_path(f, "5.0.0", "ssm-agent-worker");
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkfifo(path, 0755), 0);
        free(path);
        path = version_path(f, "4.0.0", NULL);
        write_file(path, "not a directory\n", 0755);
        free(path);

        assert_int_equal(bundle_find_version(f->bundle, &version, &error), 0);
        assert_string_equal(version.version, "1.0.0");
        assert_string_equal(version.skipped, "5.0.0: amazon-ssm-agent is not a regular file, "
                                             "ssm-agent-worker is not a regular file; "
                                             "4.0.0: not a directory");

        bundle_version_done(&version);
}

static void test_find_accepts_any_execute_bit(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;

        make_version(f, "2.0.0", 0700, 0550, 0501);

        assert_int_equal(bundle_find_version(f->bundle, &version, &error), 0);
        assert_string_equal(version.version, "2.0.0");
        bundle_version_done(&version);
}

static void test_find_error_lists_reasons(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *expected;

        make_version(f, "3.2.1", 0644, 0755, 0755);
        make_version(f, "3.3.0", 0755, 0755, 0);
        make_version(f, "3.0.0", 0600, 0, 0755);

        assert_int_equal(bundle_find_version(f->bundle, &version, &error), -ENOEXEC);
        assert_non_null(error);
        assert_true(asprintf(&expected,
                             "no valid agent version in %s/bin: "
                             "3.3.0: ssm-session-worker missing; "
                             "3.2.1: amazon-ssm-agent not executable; "
                             "3.0.0: amazon-ssm-agent not executable, ssm-agent-worker missing. "
                             "Each bin/<version>/ needs amazon-ssm-agent, ssm-agent-worker and "
                             "ssm-session-worker as executable regular files",
                             f->bundle) >= 0);
        assert_string_equal(error, expected);

        /* Untouched on failure. */
        assert_int_equal(version.dir_fd, -1);
        assert_null(version.dir);
        assert_null(version.skipped);

        free(expected);
        free(error);
}

static void test_find_error_bounded(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *bin = path_join(f->bundle, "bin");
        const char *more;

        assert_int_equal(mkdir(bin, 0755), 0);
        for (int i = 0; i < 40; i++) {
                char name[32];
                char *path;

                snprintf(name, sizeof(name), "junk-%02d\n", i);
                path = path_join(bin, name);
                assert_int_equal(mkdir(path, 0755), 0);
                free(path);
        }

        assert_int_equal(bundle_find_version(f->bundle, &version, &error), -ENOEXEC);
        assert_non_null(error);
        /* Control characters in names are escaped, not copied into the message. */
        assert_null(strchr(error, '\n'));
        assert_non_null(strstr(error, "\\x0a\": not a dotted version number"));
        more = strstr(error, "; 24 more like these");
        assert_non_null(more);
        assert_true(strlen(error) < 1500);

        free(error);
        free(bin);
}

static void test_find_missing_bundle_dir(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *missing = path_join(f->root, "does-not-exist");
        char *expected;

        assert_int_equal(bundle_find_version(missing, &version, &error), -ENOENT);
        assert_true(asprintf(&expected, "bundle directory %s not found", missing) >= 0);
        assert_string_equal(error, expected);
        assert_int_equal(version.dir_fd, -1);

        free(expected);
        free(error);
        free(missing);
}

static void test_find_missing_bin_dir(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *expected;

        assert_int_equal(bundle_find_version(f->bundle, &version, &error), -ENOENT);
        assert_true(asprintf(&expected, "%s/bin not found; the bundle has no agent version",
                             f->bundle) >= 0);
        assert_string_equal(error, expected);

        free(expected);
        free(error);
}

static void test_find_empty_bin_dir(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *bin = path_join(f->bundle, "bin");

        assert_int_equal(mkdir(bin, 0755), 0);
        assert_int_equal(bundle_find_version(f->bundle, &version, &error), -ENOEXEC);
        assert_non_null(strstr(error, "the directory is empty"));

        /* A NULL ret_error is allowed. */
        assert_int_equal(bundle_find_version(f->bundle, &version, NULL), -ENOEXEC);

        free(error);
        free(bin);
}

static void test_find_bin_symlink_rejected(void **state)
{
        struct fixture *f = *state;
        struct bundle_version version = BUNDLE_VERSION_INIT;
        char *error = NULL;
        char *other = path_join(f->root, "other");
        char *other_bin = path_join(other, "bin");
        char *bin = path_join(f->bundle, "bin");
        char *saved = strdup(f->bundle);

        assert_int_equal(mkdir(other, 0755), 0);
        strcpy(f->bundle, other);
        make_version(f, "1.0.0", 0755, 0755, 0755);
        strcpy(f->bundle, saved);
        assert_int_equal(symlink(other_bin, bin), 0);

        assert_int_equal(bundle_find_version(f->bundle, &version, &error), -ELOOP);
        assert_non_null(strstr(error, "is a symbolic link"));

        free(error);
        free(saved);
        free(bin);
        free(other_bin);
        free(other);
}

/* Generated configuration */

static struct json_object *get_path(struct json_object *root, const char *section, const char *key)
{
        struct json_object *object, *value;

        assert_true(json_object_object_get_ex(root, section, &object));
        assert_true(json_object_object_get_ex(object, key, &value));
        return value;
}

static void test_agent_json_fields(void **state)
{
        unsigned limits[] = {1, 2, 7, 4294967295u};

        for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
                char *text = bundle_generate_agent_json(limits[i]);
                struct json_object *root = json_tokener_parse(text);
                struct json_object *value;

                assert_non_null(root);
                assert_true(text[strlen(text) - 1] == '\n');

                value = get_path(root, "Mgs", "SessionWorkersLimit");
                assert_true(json_object_is_type(value, json_type_int));
                assert_true(json_object_get_int64(value) == (int64_t)limits[i]);
                assert_int_equal(json_object_get_int64(get_path(root, "Mgs", "StopTimeoutMillis")),
                                 20000);
                assert_string_equal(json_object_get_string(get_path(root, "Mgs", "Region")), "");
                assert_string_equal(json_object_get_string(get_path(root, "Mgs", "Endpoint")), "");
                assert_string_equal(json_object_get_string(get_path(root, "Agent", "Region")), "");
                assert_string_equal(
                    json_object_get_string(get_path(root, "Agent", "OrchestrationRootDir")), "");
                value = get_path(root, "Agent", "ContainerMode");
                assert_true(json_object_is_type(value, json_type_boolean));
                assert_true(json_object_get_boolean(value));

                json_object_put(root);
                free(text);
        }
}

static void test_seelog_xml_shape(void **state)
{
        char *text = bundle_generate_seelog_xml();

        assert_non_null(strstr(text, "<seelog "));
        assert_non_null(strstr(text, "minlevel=\"info\""));
        assert_non_null(strstr(text, "filename=\"/var/log/amazon/ssm/amazon-ssm-agent.log\""));
        assert_non_null(strstr(text, "filename=\"/var/log/amazon/ssm/errors.log\""));
        assert_non_null(strstr(text, "<rollingfile type=\"size\""));
        assert_non_null(strstr(text, "<filter levels=\"error,critical\""));
        assert_non_null(strstr(text, "<console "));
        assert_int_equal(strcmp(text + strlen(text) - strlen("</seelog>\n"), "</seelog>\n"), 0);

        /* Every format an output names is defined. */
        assert_non_null(strstr(text, "<format id=\"brief\""));
        assert_non_null(strstr(text, "<format id=\"detailed\""));
        free(text);
}

/* The layer */

static void skip_unless_root(void)
{
        /* The layer is chowned to 0:0, which takes root. */
        if (geteuid() != 0)
                skip();
}

static void write_certs(struct fixture *f, const char *content)
{
        char *certs = path_join(f->bundle, "certs");
        char *file = path_join(certs, "tls-ca-bundle.pem");

        mkdir(certs, 0755);
        write_file(file, content, 0644);
        free(file);
        free(certs);
}

static void assert_layer_entry(const char *layer, const char *name, mode_t type, mode_t mode)
{
        char *path = path_join(layer, name);
        struct stat st;

        assert_int_equal(lstat(path, &st), 0);
        assert_true((st.st_mode & S_IFMT) == type);
        assert_int_equal(st.st_mode & 07777, mode);
        assert_int_equal(st.st_uid, 0);
        assert_int_equal(st.st_gid, 0);
        free(path);
}

static void assert_layer_file_text(const char *layer, const char *name, const char *expected)
{
        char *path = path_join(layer, name);
        char *text = read_text(path, NULL);

        assert_non_null(text);
        assert_string_equal(text, expected);
        free(text);
        free(path);
}

static size_t count_entries(const char *dir_path)
{
        DIR *dir = opendir(dir_path);
        struct dirent *entry;
        size_t count = 0;

        assert_non_null(dir);
        while ((entry = readdir(dir)))
                if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
                        count++;
        closedir(dir);
        return count;
}

static void test_layer_contents(void **state)
{
        struct fixture *f = *state;
        char *layer = NULL, *error = NULL;
        char *real_views, *agent_json, *seelog_xml, *json_path, *json_text;
        struct json_object *root;
        bool has_certs = false;
        const char *name;

        skip_unless_root();
        write_certs(f, "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n");
        write_file(f->init, "\177ELF pretend init\n", 0700);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &layer, &has_certs, &error), 0);
        assert_null(error);
        assert_true(has_certs);

        /* <realpath of views>/<64 hex digits> */
        real_views = realpath(f->views, NULL);
        assert_non_null(real_views);
        assert_memory_equal(layer, real_views, strlen(real_views));
        name = layer + strlen(real_views) + 1;
        assert_int_equal(strlen(name), 64);
        assert_int_equal(strspn(name, "0123456789abcdef"), 64);

        assert_layer_entry(layer, ".", S_IFDIR, 0755);
        assert_layer_entry(layer, "configuration", S_IFDIR, 0755);
        assert_layer_entry(layer, "certs", S_IFDIR, 0755);
        assert_layer_entry(layer, "configuration/amazon-ssm-agent.json", S_IFREG, 0644);
        assert_layer_entry(layer, "configuration/seelog.xml", S_IFREG, 0644);
        assert_layer_entry(layer, "certs/amazon-ssm-agent.crt", S_IFREG, 0644);
        assert_layer_entry(layer, "execvisor-init", S_IFREG, 0755);
        assert_int_equal(count_entries(layer), 3);

        agent_json = bundle_generate_agent_json(2);
        seelog_xml = bundle_generate_seelog_xml();
        assert_layer_file_text(layer, "configuration/amazon-ssm-agent.json", agent_json);
        assert_layer_file_text(layer, "configuration/seelog.xml", seelog_xml);
        assert_layer_file_text(layer, "certs/amazon-ssm-agent.crt",
                               "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n");
        assert_layer_file_text(layer, "execvisor-init", "\177ELF pretend init\n");

        json_path = path_join(layer, "configuration/amazon-ssm-agent.json");
        json_text = read_text(json_path, NULL);
        root = json_tokener_parse(json_text);
        assert_non_null(root);
        assert_int_equal(json_object_get_int64(get_path(root, "Mgs", "SessionWorkersLimit")), 2);
        json_object_put(root);

        /* Only the layer is left in views/: the temporary directory was renamed away. */
        assert_int_equal(count_entries(f->views), 1);

        free(json_text);
        free(json_path);
        free(agent_json);
        free(seelog_xml);
        free(real_views);
        free(layer);
}

static void test_layer_reused(void **state)
{
        struct fixture *f = *state;
        char *first = NULL, *second = NULL, *error = NULL;
        bool has_certs = false;
        struct stat before, after;

        skip_unless_root();
        write_certs(f, "certs\n");
        write_file(f->init, "init\n", 0755);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &first, &has_certs, &error), 0);
        assert_int_equal(stat(first, &before), 0);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &second, &has_certs, &error), 0);
        assert_string_equal(first, second);
        assert_int_equal(stat(second, &after), 0);
        /* The same directory, not a rebuilt one. */
        assert_true(before.st_ino == after.st_ino);
        assert_int_equal(count_entries(f->views), 1);

        free(first);
        free(second);
}

static void test_layer_name_follows_content(void **state)
{
        struct fixture *f = *state;
        char *limit_2 = NULL, *limit_3 = NULL, *new_init = NULL, *new_certs = NULL;
        char *error = NULL;
        bool has_certs = false;

        skip_unless_root();
        write_certs(f, "certs\n");
        write_file(f->init, "init\n", 0755);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &limit_2, &has_certs, &error), 0);
        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 3, &limit_3, &has_certs, &error), 0);
        assert_string_not_equal(limit_2, limit_3);

        write_file(f->init, "init, version 2\n", 0755);
        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &new_init, &has_certs, &error),
            0);
        assert_string_not_equal(new_init, limit_2);

        write_certs(f, "other certs\n");
        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &new_certs, &has_certs, &error),
            0);
        assert_string_not_equal(new_certs, new_init);
        assert_string_not_equal(new_certs, limit_2);

        /* Older layers stay: running containers may still use them. */
        assert_int_equal(count_entries(f->views), 4);
        assert_layer_file_text(limit_3, "execvisor-init", "init\n");
        assert_layer_file_text(new_certs, "certs/amazon-ssm-agent.crt", "other certs\n");

        free(limit_2);
        free(limit_3);
        free(new_init);
        free(new_certs);
}

static void test_layer_without_certs(void **state)
{
        struct fixture *f = *state;
        char *without = NULL, *with = NULL, *error = NULL;
        bool has_certs = true;
        char *certs_dir;
        struct stat st;

        skip_unless_root();
        write_file(f->init, "init\n", 0755);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &without, &has_certs, &error), 0);
        assert_false(has_certs);
        certs_dir = path_join(without, "certs");
        assert_int_equal(lstat(certs_dir, &st), -1);
        assert_int_equal(errno, ENOENT);
        assert_layer_entry(without, "configuration/amazon-ssm-agent.json", S_IFREG, 0644);
        assert_layer_entry(without, "execvisor-init", S_IFREG, 0755);

        write_certs(f, "certs\n");
        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &with, &has_certs, &error), 0);
        assert_true(has_certs);
        assert_string_not_equal(with, without);

        free(certs_dir);
        free(with);
        free(without);
}

static void test_layer_certs_symlink_rejected(void **state)
{
        struct fixture *f = *state;
        char *layer = NULL, *error = NULL;
        bool has_certs = false;
        char *certs = path_join(f->bundle, "certs");
        char *file = path_join(certs, "tls-ca-bundle.pem");

        skip_unless_root();
        write_file(f->init, "init\n", 0755);
        assert_int_equal(mkdir(certs, 0755), 0);
        assert_int_equal(symlink("/etc/hostname", file), 0);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &layer, &has_certs, &error),
            -ELOOP);
        assert_non_null(strstr(error, "tls-ca-bundle.pem is or is under a symbolic link"));
        assert_null(layer);

        free(error);
        free(file);
        free(certs);
}

static void test_layer_invalid_input(void **state)
{
        struct fixture *f = *state;
        char *layer = NULL, *error = NULL;
        bool has_certs = false;
        char *missing = path_join(f->root, "missing");
        char *expected;

        skip_unless_root();
        write_file(f->init, "init\n", 0755);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 0, &layer, &has_certs, &error),
            -EINVAL);
        assert_non_null(strstr(error, "invalid session workers limit 0"));
        assert_null(layer);
        free(error);
        error = NULL;

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, missing, 2, &layer, &has_certs, &error),
            -ENOENT);
        assert_true(
            asprintf(&expected, "cannot open init binary %s: %s", missing, strerror(ENOENT)) >= 0);
        assert_string_equal(error, expected);
        free(expected);
        free(error);
        error = NULL;

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->root, 2, &layer, &has_certs, &error),
            -EBADFD);
        assert_non_null(strstr(error, "not a regular file"));
        free(error);
        error = NULL;

        assert_int_equal(
            bundle_prepare_layer(missing, f->views, f->init, 2, &layer, &has_certs, &error),
            -ENOENT);
        assert_non_null(strstr(error, "not found"));
        assert_null(layer);
        assert_false(has_certs);

        free(error);
        free(missing);
}

static void test_layer_damaged_replaced(void **state)
{
        struct fixture *f = *state;
        char *first = NULL, *second = NULL, *error = NULL;
        bool has_certs = false;
        char *json_path, *init_path;
        struct stat before, after;

        skip_unless_root();
        write_file(f->init, "init\n", 0755);
        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &first, &has_certs, &error), 0);
        assert_int_equal(stat(first, &before), 0);

        json_path = path_join(first, "configuration/amazon-ssm-agent.json");
        write_file(json_path, "{\"Mgs\": {\"SessionWorkersLimit\": 1000}}\n", 0644);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &second, &has_certs, &error), 0);
        assert_string_equal(first, second);
        assert_int_equal(stat(second, &after), 0);
        assert_true(before.st_ino != after.st_ino);
        {
                char *expected = bundle_generate_agent_json(2);

                assert_layer_file_text(second, "configuration/amazon-ssm-agent.json", expected);
                free(expected);
        }
        /* The damaged copy is gone, and no temporary directory is left. */
        assert_int_equal(count_entries(f->views), 1);

        /* A wrong mode counts as damage too. */
        assert_int_equal(chmod(json_path, 0666), 0);
        free(second);
        second = NULL;
        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &second, &has_certs, &error), 0);
        assert_layer_entry(second, "configuration/amazon-ssm-agent.json", S_IFREG, 0644);

        /* So do changed bytes with the size, owner and mode unchanged. */
        init_path = path_join(second, "execvisor-init");
        write_file(init_path, "INIT\n", 0755);
        free(second);
        second = NULL;
        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &second, &has_certs, &error), 0);
        assert_layer_file_text(second, "execvisor-init", "init\n");
        assert_int_equal(count_entries(f->views), 1);

        /* And a directory mode that is not 0755. */
        assert_int_equal(chmod(second, 0700), 0);
        free(second);
        second = NULL;
        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &second, &has_certs, &error), 0);
        assert_layer_entry(second, ".", S_IFDIR, 0755);
        assert_int_equal(count_entries(f->views), 1);

        free(init_path);
        free(json_path);
        free(first);
        free(second);
}

static void test_layer_empty_dir_replaced(void **state)
{
        struct fixture *f = *state;
        char *first = NULL, *second = NULL, *error = NULL;
        bool has_certs = false;
        char *init_path;

        skip_unless_root();
        write_file(f->init, "init\n", 0755);
        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &first, &has_certs, &error), 0);

        /* Replace the layer with an empty directory under the same name. */
        assert_int_equal(nftw(first, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
        assert_int_equal(mkdir(first, 0755), 0);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &second, &has_certs, &error), 0);
        assert_string_equal(first, second);
        init_path = path_join(second, "execvisor-init");
        assert_int_equal(access(init_path, X_OK), 0);

        free(init_path);
        free(first);
        free(second);
}

static void test_layer_stale_temp_removed(void **state)
{
        struct fixture *f = *state;
        char *layer = NULL, *error = NULL;
        bool has_certs = false;
        char *stale = path_join(f->views, ".tmp-crashed-1-0");
        char *stale_file = path_join(stale, "execvisor-init");
        char *fresh = path_join(f->views, ".tmp-running-2-0");
        struct timespec old[2] = {{.tv_sec = time(NULL) - 2 * 60 * 60},
                                  {.tv_sec = time(NULL) - 2 * 60 * 60}};
        struct stat st;

        skip_unless_root();
        write_file(f->init, "init\n", 0755);
        assert_int_equal(mkdir(f->views, 0755), 0);
        assert_int_equal(mkdir(stale, 0700), 0);
        write_file(stale_file, "half", 0600);
        assert_int_equal(utimensat(AT_FDCWD, stale, old, 0), 0);
        assert_int_equal(mkdir(fresh, 0700), 0);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &layer, &has_certs, &error), 0);
        assert_int_equal(lstat(stale, &st), -1);
        assert_int_equal(lstat(fresh, &st), 0);
        assert_int_equal(count_entries(f->views), 2);

        free(layer);
        free(fresh);
        free(stale_file);
        free(stale);
}

static void test_layer_views_dir_created(void **state)
{
        struct fixture *f = *state;
        char *layer = NULL, *error = NULL;
        bool has_certs = false;
        char *nested = path_join(f->root, "no-parent/views");

        skip_unless_root();
        write_file(f->init, "init\n", 0755);

        assert_int_equal(
            bundle_prepare_layer(f->bundle, f->views, f->init, 2, &layer, &has_certs, &error), 0);
        assert_layer_entry(f->views, ".", S_IFDIR, 0755);
        free(layer);
        layer = NULL;

        /* Only the last component is created. */
        assert_int_equal(
            bundle_prepare_layer(f->bundle, nested, f->init, 2, &layer, &has_certs, &error),
            -ENOENT);
        assert_non_null(strstr(error, "cannot create"));
        assert_null(layer);

        free(error);
        free(nested);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sha256_known_vectors),
            cmocka_unit_test(test_version_valid_names),
            cmocka_unit_test(test_version_invalid_names),
            cmocka_unit_test(test_version_compare_numeric),
            cmocka_unit_test(test_version_compare_lengths),
            cmocka_unit_test(test_version_compare_invalid_terminates),
            cmocka_unit_test_setup_teardown(test_find_newest_version, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_falls_back_to_older, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_rejects_inside_symlinks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_rejects_odd_file_types, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_accepts_any_execute_bit, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_error_lists_reasons, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_error_bounded, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_missing_bundle_dir, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_missing_bin_dir, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_empty_bin_dir, setup, teardown),
            cmocka_unit_test_setup_teardown(test_find_bin_symlink_rejected, setup, teardown),
            cmocka_unit_test(test_agent_json_fields),
            cmocka_unit_test(test_seelog_xml_shape),
            cmocka_unit_test_setup_teardown(test_layer_contents, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_reused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_name_follows_content, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_without_certs, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_certs_symlink_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_invalid_input, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_damaged_replaced, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_empty_dir_replaced, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_stale_temp_removed, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_views_dir_created, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
