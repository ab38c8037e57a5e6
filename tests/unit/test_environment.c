#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/environment.h"

/* The allowlist limit on a value, in bytes, without the name and '='. */
#define VALUE_LIMIT (32 * 1024)

static size_t count_entries(char **env)
{
        size_t n = 0;

        while (env[n])
                n++;
        return n;
}

/* The entry of env whose name is name, or NULL. */
static const char *find_entry(char **env, const char *name)
{
        size_t length = strlen(name);

        for (char **p = env; *p; p++)
                if (strncmp(*p, name, length) == 0 && (*p)[length] == '=')
                        return *p;
        return NULL;
}

static void test_allowed_variables_pass(void **state)
{
        char *const input[] = {
                "PATH=/opt/bin:/usr/bin",
                "ECS_CONTAINER_METADATA_URI=http://169.254.170.2/v3/abc",
                "ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/abc",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/xyz",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:51679/creds",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN=Basic abc",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/run/token",
                "http_proxy=http://proxy:3128",
                "https_proxy=http://proxy:3129",
                "no_proxy=localhost,169.254.170.2",
                "HTTP_PROXY=http://PROXY:3128",
                "HTTPS_PROXY=http://PROXY:3129",
                "NO_PROXY=LOCALHOST",
        };
        char **env = agent_environment(input, sizeof(input) / sizeof(input[0]));

        assert_non_null(env);
        assert_int_equal(count_entries(env), sizeof(input) / sizeof(input[0]));
        for (size_t i = 0; i < sizeof(input) / sizeof(input[0]); i++)
                assert_string_equal(env[i], input[i]);
        environment_free(env);
}

static void test_secrets_and_loader_dropped(void **state)
{
        char *const input[] = {
                "AWS_ACCESS_KEY_ID=AKIAEXAMPLE",
                "AWS_SECRET_ACCESS_KEY=secret",
                "AWS_SESSION_TOKEN=token",
                "LD_PRELOAD=/tmp/evil.so",
                "LD_LIBRARY_PATH=/tmp",
                "FOO=bar",
                "HOME=/root",
                "PATH=/usr/bin",
        };
        char **env = agent_environment(input, sizeof(input) / sizeof(input[0]));

        assert_int_equal(count_entries(env), 1);
        assert_string_equal(env[0], "PATH=/usr/bin");
        assert_null(find_entry(env, "AWS_ACCESS_KEY_ID"));
        assert_null(find_entry(env, "AWS_SECRET_ACCESS_KEY"));
        assert_null(find_entry(env, "LD_PRELOAD"));
        assert_null(find_entry(env, "FOO"));
        environment_free(env);
}

static void test_names_match_exactly(void **state)
{
        char *const input[] = {
                "PATHX=/x",
                "PAT=/x",
                "path=/x",
                "Http_Proxy=http://mixed:1",
                "ECS_CONTAINER_METADATA_URI_V5=http://x",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URIX=/y",
                "XPATH=/x",
                "=PATH=/x",
        };
        char **env = agent_environment(input, sizeof(input) / sizeof(input[0]));

        /* None of them is allowed, so only the default PATH remains. */
        assert_int_equal(count_entries(env), 1);
        assert_string_equal(env[0], "PATH=" AGENT_DEFAULT_PATH);
        environment_free(env);
}

static void test_default_path_when_missing(void **state)
{
        char *const input[] = { "HTTPS_PROXY=http://proxy:1", "FOO=bar" };
        char **env = agent_environment(input, 2);

        assert_int_equal(count_entries(env), 2);
        assert_string_equal(env[0], "HTTPS_PROXY=http://proxy:1");
        assert_string_equal(env[1], "PATH=" AGENT_DEFAULT_PATH);
        environment_free(env);
}

static void test_duplicate_first_wins(void **state)
{
        char *const input[] = {
                "PATH=/first",
                "http_proxy=http://one:1",
                "PATH=/second",
                "http_proxy=http://two:2",
                "HTTP_PROXY=http://upper:3",
        };
        char **env = agent_environment(input, sizeof(input) / sizeof(input[0]));

        assert_int_equal(count_entries(env), 3);
        assert_string_equal(find_entry(env, "PATH"), "PATH=/first");
        assert_string_equal(find_entry(env, "http_proxy"), "http_proxy=http://one:1");
        /* Upper and lower case are different variables, so both stay. */
        assert_string_equal(find_entry(env, "HTTP_PROXY"), "HTTP_PROXY=http://upper:3");
        environment_free(env);
}

static void test_entries_without_equals_dropped(void **state)
{
        char *const input[] = { "PATH", "http_proxy", "NO_PROXY=", "" };
        char **env = agent_environment(input, sizeof(input) / sizeof(input[0]));

        /* "PATH" without '=' sets nothing, so the default applies. An empty
         * value is still a value. */
        assert_int_equal(count_entries(env), 2);
        assert_string_equal(env[0], "NO_PROXY=");
        assert_string_equal(env[1], "PATH=" AGENT_DEFAULT_PATH);
        environment_free(env);
}

/* "NAME=" followed by length copies of 'x'. */
static char *make_entry(const char *name, size_t length)
{
        size_t name_length = strlen(name);
        char *entry = malloc(name_length + 1 + length + 1);

        assert_non_null(entry);
        memcpy(entry, name, name_length);
        entry[name_length] = '=';
        memset(entry + name_length + 1, 'x', length);
        entry[name_length + 1 + length] = '\0';
        return entry;
}

static void test_long_values_dropped(void **state)
{
        char *at_limit = make_entry("https_proxy", VALUE_LIMIT);
        char *over_limit = make_entry("http_proxy", VALUE_LIMIT + 1);
        char *long_path = make_entry("PATH", 1024 * 1024);
        char *const input[] = { at_limit, over_limit, long_path };
        char **env = agent_environment(input, 3);

        assert_int_equal(count_entries(env), 2);
        assert_string_equal(find_entry(env, "https_proxy"), at_limit);
        assert_null(find_entry(env, "http_proxy"));
        /* The oversized PATH is dropped whole, not cut, and the default takes its place. */
        assert_string_equal(find_entry(env, "PATH"), "PATH=" AGENT_DEFAULT_PATH);
        environment_free(env);
        free(at_limit);
        free(over_limit);
        free(long_path);
}

static void test_null_and_empty_input(void **state)
{
        char *const empty[] = { NULL };
        char **env;

        env = agent_environment(NULL, 0);
        assert_non_null(env);
        assert_int_equal(count_entries(env), 1);
        assert_string_equal(env[0], "PATH=" AGENT_DEFAULT_PATH);
        environment_free(env);

        /* A count larger than the array must not read past a NULL pointer. */
        env = agent_environment(NULL, 5);
        assert_int_equal(count_entries(env), 1);
        environment_free(env);

        env = agent_environment(empty, 0);
        assert_int_equal(count_entries(env), 1);
        environment_free(env);
}

static void test_count_limits_input(void **state)
{
        char *const input[] = { "PATH=/usr/bin", "NO_PROXY=a", NULL, "HTTP_PROXY=b" };
        char **env;

        /* Only the first count entries are read. */
        env = agent_environment(input, 1);
        assert_int_equal(count_entries(env), 1);
        assert_string_equal(env[0], "PATH=/usr/bin");
        environment_free(env);

        /* A NULL entry ends the list early. */
        env = agent_environment(input, 4);
        assert_int_equal(count_entries(env), 2);
        assert_null(find_entry(env, "HTTP_PROXY"));
        environment_free(env);
}

static void test_result_independent_of_input(void **state)
{
        char path[] = "PATH=/usr/bin";
        char *const input[] = { path };
        char **env = agent_environment(input, 1);

        /* The result contains copies, so a change to the input does not show. */
        path[5] = '!';
        assert_string_equal(env[0], "PATH=/usr/bin");
        environment_free(env);

        environment_free(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_allowed_variables_pass),
                cmocka_unit_test(test_secrets_and_loader_dropped),
                cmocka_unit_test(test_names_match_exactly),
                cmocka_unit_test(test_default_path_when_missing),
                cmocka_unit_test(test_duplicate_first_wins),
                cmocka_unit_test(test_entries_without_equals_dropped),
                cmocka_unit_test(test_long_values_dropped),
                cmocka_unit_test(test_null_and_empty_input),
                cmocka_unit_test(test_count_limits_input),
                cmocka_unit_test(test_result_independent_of_input),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
