#include "supervisor/environment.h"

#include "supervisor/util.h"

/* Longer values are dropped rather than cut, so that no variable arrives altered. */
#define VALUE_MAX (32 * 1024)

static const char *const allowed[] = {
        "PATH",
        "ECS_CONTAINER_METADATA_URI",
        "ECS_CONTAINER_METADATA_URI_V4",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
};

static bool is_allowed(const char *entry)
{
        const char *equals = strchr(entry, '=');

        if (!equals || strlen(equals + 1) > VALUE_MAX)
                return false;
        for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
                if (strlen(allowed[i]) == (size_t)(equals - entry) &&
                    strncmp(entry, allowed[i], (size_t)(equals - entry)) == 0)
                        return true;
        return false;
}

static bool contains_name(char **env, size_t count, const char *entry)
{
        size_t length = (size_t)(strchr(entry, '=') - entry) + 1;

        for (size_t i = 0; i < count; i++)
                if (strncmp(env[i], entry, length) == 0)
                        return true;
        return false;
}

char **agent_environment(char *const *container_env, size_t count)
{
        char **env = xcalloc(ARRAY_SIZE(allowed) + 2, sizeof(char *));
        size_t n = 0;

        /* Docker lists each name once; the first wins should one repeat. */
        for (size_t i = 0; i < count && container_env && container_env[i]; i++)
                if (is_allowed(container_env[i]) && !contains_name(env, n, container_env[i]))
                        env[n++] = xstrdup(container_env[i]);

        if (!contains_name(env, n, "PATH="))
                env[n++] = xstrdup("PATH=" AGENT_DEFAULT_PATH);

        env[n] = NULL;
        return env;
}

void environment_free(char **env)
{
        if (!env)
                return;
        for (char **p = env; *p; p++)
                free(*p);
        free(env);
}
