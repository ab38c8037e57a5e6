#include "supervisor/agent_output.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "supervisor/log.h"
#include "supervisor/util.h"

static int open_output_log(struct supervised *s)
{
        int log_dir_fd = s->supervisor->log_dir_fd;
        _cleanup_close_ int dir_fd = -1;
        _cleanup_free_ char *name = xasprintf("%s.log", s->log_name);

        if (mkdirat(log_dir_fd, AGENT_OUTPUT_DIR, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        dir_fd = openat(log_dir_fd, AGENT_OUTPUT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir_fd < 0)
                return negative_errno();

        int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
        return fd < 0 ? negative_errno() : fd;
}

/* Keep the size bound: the full file becomes <name>.log.1, replacing the older one. */
static void rotate_if_full(struct supervised *s)
{
        _cleanup_close_ int dir_fd = -1;
        _cleanup_free_ char *name = NULL, *old_name = NULL;
        struct stat st;

        if (fstat(s->output_log_fd, &st) < 0 || st.st_size < AGENT_OUTPUT_MAX_SIZE)
                return;

        dir_fd = openat(s->supervisor->log_dir_fd, AGENT_OUTPUT_DIR,
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir_fd < 0)
                return;
        name = xasprintf("%s.log", s->log_name);
        old_name = xasprintf("%s.log.1", s->log_name);
        (void)renameat(dir_fd, name, dir_fd, old_name);

        s->output_log_fd = safe_close(s->output_log_fd);
        s->output_log_fd = open_output_log(s);
}

/* Keep the last complete line, with control characters replaced. */
static void remember_lines(struct supervised *s, const char *data, size_t size)
{
        char *last = s->container->agent.last_output_line;

        for (size_t i = 0; i < size; i++) {
                unsigned char c = (unsigned char)data[i];

                if (c == '\n') {
                        if (s->partial_length > 0) {
                                memcpy(last, s->partial_line, s->partial_length);
                                last[s->partial_length] = '\0';
                        }
                        s->partial_length = 0;
                        continue;
                }
                if (s->partial_length + 1 >= sizeof(s->partial_line))
                        continue; /* the rest of a long line is dropped */
                s->partial_line[s->partial_length++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        }
}

void agent_output_drain(struct supervised *s)
{
        char buffer[16384];

        if (s->output_source.fd < 0)
                return;

        /* Bounded per call, so that a chatty agent cannot starve the loop. */
        for (int round = 0; round < 16; round++) {
                ssize_t n = read(s->output_source.fd, buffer, sizeof(buffer));

                if (n <= 0)
                        return;
                remember_lines(s, buffer, (size_t)n);
                if (s->output_log_fd >= 0) {
                        (void)write_all(s->output_log_fd, buffer, (size_t)n);
                        rotate_if_full(s);
                }
        }
}

static void on_output(struct loop_source *source, uint32_t events)
{
        struct supervised *s = container_of(source, struct supervised, output_source);

        agent_output_drain(s);
        /* EOF or an error with nothing to read: every writer is gone. */
        if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN))
                agent_output_detach(s);
}

void agent_output_attach(struct supervised *s, int pipe_fd)
{
        int r;

        agent_output_detach(s);
        (void)fcntl(pipe_fd, F_SETFL, O_NONBLOCK);
        s->output_source = (struct loop_source){ .fd = pipe_fd, .dispatch = on_output };
        s->partial_length = 0;

        r = open_output_log(s);
        if (r < 0)
                log_warning("container %.12s: cannot open the agent's output log under %s/%s: %s",
                            s->container->id, s->supervisor->config->log_dir, AGENT_OUTPUT_DIR,
                            strerror(-r));
        s->output_log_fd = r < 0 ? -1 : r;

        r = loop_add(s->supervisor->loop, &s->output_source, EPOLLIN);
        if (r < 0) {
                log_warning("container %.12s: cannot watch the agent's output: %s", s->container->id,
                            strerror(-r));
                agent_output_detach(s);
        }
}

void agent_output_detach(struct supervised *s)
{
        if (s->output_source.fd >= 0) {
                loop_remove(s->supervisor->loop, &s->output_source);
                s->output_source.fd = safe_close(s->output_source.fd);
        }
        s->output_log_fd = safe_close(s->output_log_fd);
}
