#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mounts/safe_name.h"
#include "mounts/sha256.h"

/* The suffix safe_file_name() appends: "-" and the first 8 hex digits of the SHA-256 of the
 * name without its leading '/'. */
static void expected_suffix(const char *name, char ret_suffix[10])
{
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];

        sha256_buffer(name, strlen(name), digest);
        sha256_to_hex(digest, hex);
        ret_suffix[0] = '-';
        memcpy(ret_suffix + 1, hex, 8);
        ret_suffix[9] = '\0';
}

static void assert_safe(const char *result)
{
        size_t length = strlen(result);

        assert_true(length > 0);
        assert_true(length <= SAFE_FILE_NAME_MAX);
        assert_string_not_equal(result, ".");
        assert_string_not_equal(result, "..");
        assert_true(result[0] != '-');
        assert_true(result[0] != '.');
        for (size_t i = 0; i < length; i++) {
                char c = result[i];
                int allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';

                assert_true(allowed);
        }
}

/* Checks that safe_file_name(name) is base followed by the suffix of hashed_name. */
static void assert_changed(const char *name, const char *hashed_name, const char *base)
{
        char *result = safe_file_name(name);
        char suffix[10];
        char *expected;

        expected_suffix(hashed_name, suffix);
        expected = malloc(strlen(base) + sizeof(suffix));
        assert_non_null(expected);
        strcpy(expected, base);
        strcat(expected, suffix);

        assert_safe(result);
        assert_string_equal(result, expected);
        free(expected);
        free(result);
}

static void assert_unchanged(const char *name, const char *expected)
{
        char *result = safe_file_name(name);

        assert_safe(result);
        assert_string_equal(result, expected);
        free(result);
}

static void test_normal_names_unchanged(void **state)
{
        assert_unchanged("web", "web");
        assert_unchanged("my-app_1.2", "my-app_1.2");
        assert_unchanged("A", "A");
        assert_unchanged("ecs-task-web-1-abcdef0123456789", "ecs-task-web-1-abcdef0123456789");
        /* Uppercase hex is not the suffix pattern, so this stays as is. */
        assert_unchanged("web-0123ABCD", "web-0123ABCD");
}

static void test_docker_leading_slash_dropped(void **state)
{
        assert_unchanged("/web", "web");
        assert_unchanged("/my-app_1.2", "my-app_1.2");
        /* Only one slash is Docker's; the second is part of the name. */
        assert_changed("//web", "/web", "_web");
}

static void test_leading_hyphens_dropped(void **state)
{
        char *one = safe_file_name("-web");
        char *two = safe_file_name("--web");

        assert_changed("--web", "--web", "web");
        assert_changed("/-web", "-web", "web");
        assert_string_not_equal(one, two);

        free(one);
        free(two);
}

static void test_leading_dots_dropped(void **state)
{
        assert_changed(".hidden", ".hidden", "hidden");
        assert_changed("-.-x", "-.-x", "x");
        /* Dots after the first byte are kept. */
        assert_unchanged("a..b", "a..b");
}

static void test_dot_names_replaced(void **state)
{
        char *dot = safe_file_name(".");
        char *dot_dot = safe_file_name("..");

        assert_changed(".", ".", "container");
        assert_changed("..", "..", "container");
        assert_changed("/..", "..", "container");
        assert_string_not_equal(dot, dot_dot);

        free(dot);
        free(dot_dot);
}

static void test_empty_name_replaced(void **state)
{
        assert_changed("", "", "container");
        assert_changed("/", "", "container");
        assert_changed("---", "---", "container");
}

static void test_slash_inside_replaced(void **state)
{
        char *result = safe_file_name("/a/b/../c");

        assert_null(strchr(result, '/'));
        assert_changed("/a/b/../c", "a/b/../c", "a_b_.._c");
        assert_changed("a/b", "a/b", "a_b");
        free(result);
}

static void test_long_name_truncated(void **state)
{
        char name[301];
        char base[92];
        char *result;

        memset(name, 'a', 300);
        name[300] = '\0';
        memset(base, 'a', 91);
        base[91] = '\0';

        result = safe_file_name(name);
        assert_int_equal(strlen(result), SAFE_FILE_NAME_MAX);
        free(result);
        assert_changed(name, name, base);

        /* Two long names that differ only after the cut stay distinct. */
        name[299] = 'b';
        result = safe_file_name(name);
        assert_int_equal(strlen(result), SAFE_FILE_NAME_MAX);
        assert_memory_equal(result, base, 91);
        assert_changed(name, name, base);
        free(result);
}

static void test_length_limit_boundary(void **state)
{
        char name[SAFE_FILE_NAME_MAX + 2];
        char base[SAFE_FILE_NAME_MAX - 8];

        memset(name, 'x', SAFE_FILE_NAME_MAX);
        name[SAFE_FILE_NAME_MAX] = '\0';
        assert_unchanged(name, name);

        name[SAFE_FILE_NAME_MAX] = 'y';
        name[SAFE_FILE_NAME_MAX + 1] = '\0';
        memset(base, 'x', sizeof(base) - 1);
        base[sizeof(base) - 1] = '\0';
        assert_changed(name, name, base);
}

static void test_non_ascii_replaced(void **state)
{
        /* "café" and "日本" in UTF-8: every byte of a multibyte character becomes '_'. */
        assert_changed("caf\xc3\xa9", "caf\xc3\xa9", "caf__");
        assert_changed("/\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac", "______");
        assert_changed("tab\there", "tab\there", "tab_here");
        assert_changed("new\nline", "new\nline", "new_line");
}

static void test_colliding_names_distinct(void **state)
{
        const char *names[] = {"a b", "a?b", "a_b-", "a:b", "a\xc3"};
        char *results[5];

        for (size_t i = 0; i < 5; i++) {
                results[i] = safe_file_name(names[i]);
                assert_safe(results[i]);
        }

        assert_memory_equal(results[0], "a_b-", 4);
        assert_memory_equal(results[1], "a_b-", 4);
        assert_memory_equal(results[3], "a_b-", 4);
        for (size_t i = 0; i < 5; i++)
                for (size_t j = i + 1; j < 5; j++)
                        assert_string_not_equal(results[i], results[j]);

        for (size_t i = 0; i < 5; i++)
                free(results[i]);
}

static void test_suffix_pattern_not_forgeable(void **state)
{
        char *changed = safe_file_name("a b");
        char *forged;

        /* A container literally named like another name's result must not get that result. */
        forged = safe_file_name(changed);
        assert_string_not_equal(forged, changed);
        assert_changed(changed, changed, changed);

        free(forged);
        free(changed);
}

static void test_random_names_safe(void **state)
{
        unsigned seed = 12345;

        for (int round = 0; round < 2000; round++) {
                char name[160];
                size_t length;
                char *first, *second;

                seed = seed * 1103515245u + 12345u;
                length = (seed >> 16) % sizeof(name);
                for (size_t i = 0; i < length; i++) {
                        seed = seed * 1103515245u + 12345u;
                        name[i] = (char)(((seed >> 16) % 255) + 1);
                }
                name[length] = '\0';

                first = safe_file_name(name);
                second = safe_file_name(name);
                assert_safe(first);
                assert_string_equal(first, second);
                free(first);
                free(second);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_normal_names_unchanged),
            cmocka_unit_test(test_docker_leading_slash_dropped),
            cmocka_unit_test(test_leading_hyphens_dropped),
            cmocka_unit_test(test_leading_dots_dropped),
            cmocka_unit_test(test_dot_names_replaced),
            cmocka_unit_test(test_empty_name_replaced),
            cmocka_unit_test(test_slash_inside_replaced),
            cmocka_unit_test(test_long_name_truncated),
            cmocka_unit_test(test_length_limit_boundary),
            cmocka_unit_test(test_non_ascii_replaced),
            cmocka_unit_test(test_colliding_names_distinct),
            cmocka_unit_test(test_suffix_pattern_not_forgeable),
            cmocka_unit_test(test_random_names_safe),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
