#pragma once

/* A temporary directory for one test program, made by setup_temp_dir() and
 * removed with its content by teardown_temp_dir(), which also returns to the
 * directory the program started in. Define TEMP_DIR_TEMPLATE before including,
 * e.g. "/tmp/execvisor-test-cli.XXXXXX". Include after <cmocka.h>. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor/util.h"

static char temp_dir[] = TEMP_DIR_TEMPLATE;
static char *original_cwd;

static inline int setup_temp_dir(void **state)
{
        (void)state;
        original_cwd = getcwd(NULL, 0);
        if (!original_cwd || !mkdtemp(temp_dir))
                return -1;
        return 0;
}

static inline int teardown_temp_dir(void **state)
{
        char *command;
        int r;

        (void)state;
        if (original_cwd && chdir(original_cwd) < 0)
                return -1;
        free(original_cwd);

        command = xasprintf("rm -rf -- '%s'", temp_dir);
        r = system(command);
        free(command);
        return r == 0 ? 0 : -1;
}

/* Write content to a new file in the temporary directory and return its path. */
static inline char *write_temp_file(const char *name, const char *content)
{
        char *path = xasprintf("%s/%s", temp_dir, name);
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        assert_int_equal(fputs(content, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        return path;
}

static inline void assert_contains(const char *haystack, const char *needle)
{
        if (!haystack || !strstr(haystack, needle))
                fail_msg("\"%s\" not found in \"%.300s\"", needle, haystack ? haystack : "(null)");
}
