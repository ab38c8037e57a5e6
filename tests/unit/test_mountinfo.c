#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mounts/mountinfo.h"
#include "supervisor/util.h"

/* Parse text and check that it yields exactly the ids in expected, in order. */
static void assert_shared_ids(const char *text, const uint64_t *expected, size_t n_expected)
{
        uint64_t *ids = NULL;
        size_t count = 12345;

        assert_int_equal(mountinfo_shared_ids(text, &ids, &count), 0);
        assert_int_equal(count, n_expected);
        for (size_t i = 0; i < n_expected; i++)
                assert_int_equal(ids[i], expected[i]);
        free(ids);
}

static void assert_malformed(const char *text)
{
        uint64_t sentinel = 7;
        uint64_t *ids = &sentinel;
        size_t count = 12345;
        int r = mountinfo_shared_ids(text, &ids, &count);

        if (r >= 0) {
                free(ids);
                fail_msg("malformed text accepted: \"%s\"", text);
        }
        assert_int_equal(r, -EBADMSG);
        /* The out-parameters stay as they were. */
        assert_ptr_equal(ids, &sentinel);
        assert_int_equal(count, 12345);
}

static void test_shared_and_private_lines(void **state)
{
        const char *text =
                "22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
                "23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw\n"
                "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n"
                "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n";
        const uint64_t expected[] = { 22, 27 };

        assert_shared_ids(text, expected, 2);
}

static void test_master_and_propagate_from_only(void **state)
{
        const char *text =
                "40 27 0:40 / /mnt/a rw,relatime master:3 - tmpfs tmpfs rw\n"
                "41 27 0:41 / /mnt/b rw,relatime master:3 propagate_from:1 - tmpfs tmpfs rw\n"
                "42 27 0:42 / /mnt/c rw,relatime unbindable - tmpfs tmpfs rw\n";

        /* A slave receives propagation but sends none, so it is not shared. */
        assert_shared_ids(text, NULL, 0);
}

static void test_several_optional_fields(void **state)
{
        const char *text =
                "50 27 0:50 / /mnt/peer rw,relatime shared:7 master:3 - tmpfs tmpfs rw\n"
                "51 27 0:51 / /mnt/slave rw,relatime master:3 shared:8 - tmpfs tmpfs rw\n"
                "52 27 0:52 / /mnt/all rw master:4 propagate_from:2 shared:9 - tmpfs tmpfs rw\n"
                "53 27 0:53 / /mnt/none rw master:4 propagate_from:2 - tmpfs tmpfs rw\n";
        const uint64_t expected[] = { 50, 51, 52 };

        assert_shared_ids(text, expected, 3);
}

static void test_shared_outside_optional_fields(void **state)
{
        const char *text =
                /* "shared:" in the mount options, the root and the super options
                 * is not a propagation tag. */
                "60 27 0:60 /shared:1 /mnt/x rw,relatime - tmpfs shared:2 rw,shared:3\n"
                "61 27 0:61 / /shared:4 rw - tmpfs tmpfs rw\n"
                "62 27 0:62 / /mnt/y shared:5,rw - tmpfs tmpfs rw\n"
                /* "shared:" without a peer group number is no tag either. */
                "63 27 0:63 / /mnt/z rw shared: - tmpfs tmpfs rw\n";

        assert_shared_ids(text, NULL, 0);
}

static void test_escaped_paths(void **state)
{
        const char *text =
                "70 27 0:70 / /mnt/with\\040space rw,relatime shared:20 - tmpfs tmpfs rw\n"
                "71 27 0:71 /dir\\040-\\040x /mnt/dash\\040-\\040name rw shared:21 - ext4 "
                "/dev/sda\\0401 rw\n"
                "72 27 0:72 / /mnt/tab\\011and\\012newline\\134 rw - tmpfs tmpfs rw\n";
        const uint64_t expected[] = { 70, 71 };

        assert_shared_ids(text, expected, 2);
}

static void test_newlines_and_empty_text(void **state)
{
        const uint64_t expected[] = { 80 };
        const uint64_t both[] = { 80, 81 };

        assert_shared_ids("", NULL, 0);
        assert_shared_ids("\n", NULL, 0);
        assert_shared_ids("80 1 0:80 / /a rw shared:1 - tmpfs tmpfs rw", expected, 1);
        assert_shared_ids("80 1 0:80 / /a rw shared:1 - tmpfs tmpfs rw\n", expected, 1);
        assert_shared_ids("80 1 0:80 / /a rw shared:1 - tmpfs tmpfs rw\n\n", expected, 1);
        assert_shared_ids("80 1 0:80 / /a rw shared:1 - tmpfs tmpfs rw\n"
                          "81 1 0:81 / /b rw shared:2 - tmpfs tmpfs rw",
                          both, 2);
        assert_shared_ids("\n80 1 0:80 / /a rw shared:1 - tmpfs tmpfs rw\n\n"
                          "81 1 0:81 / /b rw shared:2 - tmpfs tmpfs rw\n",
                          both, 2);
}

static void test_large_ids_and_many_lines(void **state)
{
        size_t n_lines = 1000;
        size_t size = n_lines * 80 + 1;
        char *text = malloc(size);
        uint64_t *expected = calloc(n_lines, sizeof(uint64_t));
        size_t length = 0, n_expected = 0;

        assert_non_null(text);
        assert_non_null(expected);
        text[0] = '\0';
        for (size_t i = 0; i < n_lines; i++) {
                uint64_t id = UINT64_C(4000000000) + i;
                bool shared = i % 3 == 0;

                length += (size_t)snprintf(text + length, size - length,
                                           "%llu 27 0:1 / /m/%zu rw %s - tmpfs tmpfs rw\n",
                                           (unsigned long long)id, i,
                                           shared ? "shared:5" : "master:5");
                if (shared)
                        expected[n_expected++] = id;
        }
        assert_true(length < size - 1);

        assert_shared_ids(text, expected, n_expected);
        free(expected);
        free(text);
}

static void test_malformed_lines(void **state)
{
        const char *good = "90 27 0:90 / /ok rw shared:1 - tmpfs tmpfs rw\n";
        char *text;

        /* No " - " separator. */
        assert_malformed("90 27 0:90 / /a rw shared:1 tmpfs tmpfs rw\n");
        /* Fewer than six fields before the separator. */
        assert_malformed("90 27 0:90 / /a - tmpfs tmpfs rw\n");
        assert_malformed("90 - tmpfs tmpfs rw\n");
        /* Not a mount id. */
        assert_malformed("x 27 0:90 / /a rw shared:1 - tmpfs tmpfs rw\n");
        assert_malformed("90x 27 0:90 / /a rw shared:1 - tmpfs tmpfs rw\n");
        assert_malformed("99999999999999999999999 27 0:90 / /a rw shared:1 - tmpfs tmpfs rw\n");
        /* A single word. */
        assert_malformed("garbage\n");

        /* One bad line spoils the whole text, wherever it is. */
        text = xasprintf("%s%s", good, "garbage\n");
        assert_malformed(text);
        free(text);
        text = xasprintf("%s%s", "garbage\n", good);
        assert_malformed(text);
        free(text);
}

static void test_signed_mount_id_malformed(void **state)
{
        /* Mount ids are unsigned decimal numbers. strtoull() would accept a
         * sign and wrap "-1" to UINT64_MAX. */
        assert_malformed("-1 27 0:90 / /a rw shared:1 - tmpfs tmpfs rw\n");
        assert_malformed("+5 27 0:90 / /a rw shared:1 - tmpfs tmpfs rw\n");
        assert_malformed(" 5 27 0:90 / /a rw shared:1 - tmpfs tmpfs rw\n");
}

static void test_line_ends_after_separator(void **state)
{
        /* The kernel always writes the file system type, source and super
         * options after the separator. */
        assert_malformed("90 27 0:90 / /a rw shared:1 - \n");
        assert_malformed("90 27 0:90 / /a rw shared:1 - tmpfs\n");
}

/* The ids whose optional fields carry "shared:N", found with sscanf and
 * strtok as an independent reading of the same text. */
static size_t shared_ids_by_hand(char *text, uint64_t *ids, size_t capacity)
{
        size_t count = 0;
        char *line_save = NULL;

        for (char *line = strtok_r(text, "\n", &line_save); line;
             line = strtok_r(NULL, "\n", &line_save)) {
                char *field_save = NULL;
                unsigned long long id = 0;
                int field = 0;
                bool shared = false;

                assert_int_equal(sscanf(line, "%llu", &id), 1);
                for (char *word = strtok_r(line, " ", &field_save); word;
                     word = strtok_r(NULL, " ", &field_save), field++) {
                        if (streq(word, "-"))
                                break;
                        if (field >= 6 && startswith(word, "shared:"))
                                shared = true;
                }
                if (shared) {
                        assert_true(count < capacity);
                        ids[count++] = id;
                }
        }
        return count;
}

static void test_real_proc_self_mountinfo(void **state)
{
        char *text = NULL;
        size_t size = 0;
        uint64_t *ids = NULL;
        size_t count = 0;
        uint64_t expected[4096];
        size_t n_expected;

        assert_int_equal(read_file_at(AT_FDCWD, "/proc/self/mountinfo", 16 * 1024 * 1024, &text,
                                      &size),
                         0);
        assert_true(size > 0);

        assert_int_equal(mountinfo_shared_ids(text, &ids, &count), 0);

        n_expected = shared_ids_by_hand(text, expected, ARRAY_SIZE(expected));
        assert_int_equal(count, n_expected);
        for (size_t i = 0; i < count; i++)
                assert_int_equal(ids[i], expected[i]);

        free(ids);
        free(text);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_shared_and_private_lines),
                cmocka_unit_test(test_master_and_propagate_from_only),
                cmocka_unit_test(test_several_optional_fields),
                cmocka_unit_test(test_shared_outside_optional_fields),
                cmocka_unit_test(test_escaped_paths),
                cmocka_unit_test(test_newlines_and_empty_text),
                cmocka_unit_test(test_large_ids_and_many_lines),
                cmocka_unit_test(test_malformed_lines),
                cmocka_unit_test(test_signed_mount_id_malformed),
                cmocka_unit_test(test_line_ends_after_separator),
                cmocka_unit_test(test_real_proc_self_mountinfo),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
