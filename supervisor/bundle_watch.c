#include "supervisor/bundle_watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/epoll.h>
#include <sys/inotify.h>

#include "mounts/bundle.h"
#include "supervisor/log.h"
#include "supervisor/util.h"

/* A bundle is usually laid out in several steps (directory, then binaries);
 * the retry waits for this long after the last change. */
#define SETTLE_USEC (500ULL * 1000ULL)
#define EVENT_MASK                                                                                 \
        (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

struct bundle_watch {
        struct supervisor *supervisor;
        struct loop_source source;
        struct loop_timer settle_timer;
};

/* Watch the nearest existing ancestor of the bundle directory (for a bundle
 * installed later), the directory, bin/ and every version in it. Watches of
 * directories that do not exist yet are added by the next rescan; inotify
 * keeps the others. */
static void add_watches(struct bundle_watch *watch)
{
        const char *bundle_dir = watch->supervisor->config->bundle_dir;
        _cleanup_free_ char *ancestor = xstrdup(bundle_dir);
        _cleanup_free_ char *bin = xasprintf("%s/%s", bundle_dir, BUNDLE_BIN_DIR);
        DIR *dir;
        struct dirent *entry;

        do
                dirname(ancestor);
        while (inotify_add_watch(watch->source.fd, ancestor, IN_CREATE | IN_MOVED_TO) < 0 &&
               errno == ENOENT && !streq(ancestor, "/"));
        (void)inotify_add_watch(watch->source.fd, bundle_dir, EVENT_MASK);
        (void)inotify_add_watch(watch->source.fd, bin, EVENT_MASK);

        dir = opendir(bin);
        if (!dir)
                return;
        while ((entry = readdir(dir))) {
                _cleanup_free_ char *version = NULL;

                if (entry->d_name[0] == '.' || entry->d_type != DT_DIR)
                        continue;
                version = xasprintf("%s/%s", bin, entry->d_name);
                (void)inotify_add_watch(watch->source.fd, version, EVENT_MASK);
        }
        closedir(dir);
}

/* Retry every running container whose agent stopped for want of a bundle. */
static void on_settled(struct loop_timer *timer)
{
        struct bundle_watch *watch = container_of(timer, struct bundle_watch, settle_timer);

        add_watches(watch);
        for (struct container *c = container_list(); c; c = c->next) {
                struct supervised *s = c->private;

                if (!s->bundle_failed || !c->running || s->init_pidfd < 0 ||
                    c->agent.state != AGENT_STOPPED)
                        continue;
                s->bundle_failed = false;
                supervised_log(LOG_INFO, s, "the agent bundle changed; starting the agent again");
                agent_start(s);
        }
}

static void on_inotify(struct loop_source *source, uint32_t events)
{
        struct bundle_watch *watch = container_of(source, struct bundle_watch, source);
        char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

        /* The events themselves do not matter, only that something changed. */
        while (read(source->fd, buffer, sizeof(buffer)) > 0)
                ;
        (void)loop_timer_arm(&watch->settle_timer, SETTLE_USEC);
}

int bundle_watch_start(struct supervisor *supervisor, struct bundle_watch **ret_watch)
{
        struct bundle_watch *watch = xcalloc(1, sizeof(*watch));
        int r;

        watch->supervisor = supervisor;
        watch->settle_timer.source.fd = -1;
        watch->source = (struct loop_source){ .dispatch = on_inotify };
        watch->source.fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (watch->source.fd < 0) {
                r = negative_errno();
                free(watch);
                return r;
        }

        r = loop_add(supervisor->loop, &watch->source, EPOLLIN);
        if (r >= 0)
                r = loop_timer_init(supervisor->loop, &watch->settle_timer, on_settled);
        if (r < 0) {
                bundle_watch_free(watch);
                return r;
        }

        add_watches(watch);
        *ret_watch = watch;
        return 0;
}

void bundle_watch_free(struct bundle_watch *watch)
{
        if (!watch)
                return;
        loop_timer_release(watch->supervisor->loop, &watch->settle_timer);
        loop_remove(watch->supervisor->loop, &watch->source);
        safe_close(watch->source.fd);
        free(watch);
}
