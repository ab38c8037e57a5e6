#include "supervisor/container.h"

#include "supervisor/util.h"

struct observer {
        container_observer_fn fn;
        void *userdata;
};

static struct container *containers;
static struct observer observers[8];
static size_t n_observers;

struct container *container_list(void)
{
        return containers;
}

void container_register(struct container *container)
{
        container->next = containers;
        containers = container;
}

void container_unregister(struct container *container)
{
        for (struct container **p = &containers; *p; p = &(*p)->next)
                if (*p == container) {
                        *p = container->next;
                        container->next = NULL;
                        return;
                }
}

int container_find(const char *id_or_prefix, struct container **ret_container)
{
        struct container *found = NULL;
        size_t length = strlen(id_or_prefix);

        if (length == 0 || length > CONTAINER_ID_MAX)
                return -ENOENT;

        for (struct container *c = containers; c; c = c->next) {
                if (strncmp(c->id, id_or_prefix, length) != 0)
                        continue;
                if (c->id[length] == '\0') {
                        found = c; /* a full id wins over prefixes of others */
                        break;
                }
                if (found)
                        return -EEXIST;
                found = c;
        }
        if (!found)
                return -ENOENT;

        *ret_container = found;
        return 0;
}

void container_add_observer(container_observer_fn fn, void *userdata)
{
        /* The observers are the daemon's own modules, a fixed few. */
        if (n_observers == ARRAY_SIZE(observers))
                abort();
        observers[n_observers++] = (struct observer){ fn, userdata };
}

void container_notify(const struct container *container, enum container_event event)
{
        for (size_t i = 0; i < n_observers; i++)
                observers[i].fn(container, event, observers[i].userdata);
}
