#include "supervisor/endpoint.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "supervisor/container.h"
#include "supervisor/endpoint_docs.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "supervisor/util.h"

#define ENDPOINT_CONNECTION_LIMIT 256U
#define ENDPOINT_CONNECTION_TIMEOUT_SEC 10U
#define ENDPOINT_ALLOWED_METHODS "GET, HEAD"
#define ENDPOINT_JSON_TYPE "application/json"

/* A listener logs at most this many warnings per window, so that a local
 * client cannot flood the log. The rest are counted and reported when the
 * next window opens. */
#define ENDPOINT_LOG_BURST 10U
#define ENDPOINT_LOG_WINDOW_USEC (10ULL * 1000000ULL)

struct endpoint;

struct listener {
        struct endpoint *endpoint;
        char *address; /* as configured, for messages */
        struct MHD_Daemon *daemon;

        /* MHD's epoll fd in our loop, and a timer for MHD's own timeouts,
         * because MHD must run again within the time MHD_get_timeout()
         * returns even when no socket is ready. */
        struct loop_source source;
        struct loop_timer timer;

        /* Only unix sockets can tell who the peer is. */
        bool check_peer;
        /* The socket file, removed at exit if it is still the one we bound. */
        char *socket_path;
        dev_t socket_device;
        ino_t socket_inode;

        unsigned long long log_window_start_usec;
        unsigned log_count;
        unsigned log_suppressed;
};

struct endpoint {
        struct loop *loop;
        struct listener **listeners;
        size_t n_listeners;
};

/* One response, built in full before it is handed to MHD. */
struct reply {
        unsigned status;
        const char *content_type;
        char *body; /* malloc()ed; MHD frees it with the response */
        bool allow_header;
};

static bool listener_may_log(struct listener *listener)
{
        unsigned long long now = now_monotonic_usec();

        if (now - listener->log_window_start_usec >= ENDPOINT_LOG_WINDOW_USEC) {
                if (listener->log_suppressed > 0)
                        log_warning("endpoint %s: %u more warnings suppressed", listener->address,
                                    listener->log_suppressed);
                listener->log_window_start_usec = now;
                listener->log_count = 0;
                listener->log_suppressed = 0;
        }

        if (listener->log_count >= ENDPOINT_LOG_BURST) {
                listener->log_suppressed++;
                return false;
        }
        listener->log_count++;
        return true;
}

__attribute__((format(printf, 2, 0))) static void log_mhd_message(void *userdata,
                                                                  const char *format, va_list args)
{
        struct listener *listener = userdata;
        char message[512], quoted[600];
        size_t length;

        vsnprintf(message, sizeof(message), format, args);
        length = strlen(message);
        while (length > 0 && message[length - 1] == '\n')
                message[--length] = '\0';

        /* Some messages quote what a client sent. */
        if (listener_may_log(listener))
                log_warning("endpoint %s: libmicrohttpd: %s", listener->address,
                            log_quote(message, quoted, sizeof(quoted)));
}

static void reply_json(struct reply *reply, unsigned status, json_object *document)
{
        const char *text = json_object_to_json_string_ext(
            document, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        reply->status = status;
        reply->content_type = ENDPOINT_JSON_TYPE;
        reply->body = xasprintf("%s\n", text);
        json_object_put(document);
}

__attribute__((format(printf, 3, 4))) static void reply_error(struct reply *reply, unsigned status,
                                                              const char *format, ...)
{
        _cleanup_free_ char *message = NULL;
        va_list args;

        va_start(args, format);
        if (vasprintf(&message, format, args) < 0)
                message = NULL;
        va_end(args);

        reply_json(reply, status,
                   endpoint_error_document(status, message ? message : "internal error"));
}

static bool is_container_id(const char *text, size_t length)
{
        if (length == 0 || length > CONTAINER_ID_MAX)
                return false;
        for (size_t i = 0; i < length; i++)
                if (text[i] == '\0' || !strchr("0123456789abcdef", text[i]))
                        return false;
        return true;
}

/* GET /v4/<id> and GET /v4/<id>/task. path is what follows "/v4/". */
static void route_v4(struct reply *reply, const char *path)
{
        const char *slash = strchr(path, '/');
        size_t id_length = slash ? (size_t)(slash - path) : strlen(path);
        char id[CONTAINER_ID_MAX + 1];
        struct container *container;
        int r;

        if (slash && !streq(slash, "/task")) {
                reply_error(reply, MHD_HTTP_NOT_FOUND, "no such resource");
                return;
        }
        if (!is_container_id(path, id_length)) {
                reply_error(reply, MHD_HTTP_NOT_FOUND,
                            "invalid container id: expected 1 to %d lowercase hex digits",
                            CONTAINER_ID_MAX);
                return;
        }
        memcpy(id, path, id_length);
        id[id_length] = '\0';

        r = container_find(id, &container);
        if (r == -EEXIST) {
                reply_error(
                    reply, MHD_HTTP_CONFLICT,
                    "container id prefix %s matches more than one container; give more digits", id);
                return;
        }
        if (r < 0) {
                reply_error(reply, MHD_HTTP_NOT_FOUND, "no supervised container has id %s", id);
                return;
        }

        if (slash)
                reply_json(reply, MHD_HTTP_OK, endpoint_task_document(container, container_list()));
        else
                reply_json(reply, MHD_HTTP_OK, endpoint_container_document(container));
}

static void route_metrics(struct reply *reply)
{
        char *text = metrics_render();

        if (!text) {
                reply_error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
                return;
        }
        reply->status = MHD_HTTP_OK;
        reply->content_type = METRICS_CONTENT_TYPE;
        reply->body = text;
}

static bool is_read_method(const char *method)
{
        return streq(method, MHD_HTTP_METHOD_GET) || streq(method, MHD_HTTP_METHOD_HEAD);
}

static void route(struct reply *reply, const char *url, const char *method)
{
        bool known = streq(url, "/metrics") || streq(url, "/v1/agents") || startswith(url, "/v4/");

        if (!known) {
                reply_error(reply, MHD_HTTP_NOT_FOUND, "no such resource");
                return;
        }
        if (!is_read_method(method)) {
                reply_error(reply, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "method not allowed: use " ENDPOINT_ALLOWED_METHODS);
                reply->allow_header = true;
                return;
        }

        if (streq(url, "/metrics"))
                route_metrics(reply);
        else if (streq(url, "/v1/agents"))
                reply_json(reply, MHD_HTTP_OK, endpoint_agents_document(container_list()));
        else
                route_v4(reply, url + strlen("/v4/"));
}

/* Only root and the supervisor's own user may read the endpoint, because the
 * documents name every container of the host and the agents' pids. */
static bool peer_allowed(struct listener *listener, struct MHD_Connection *connection,
                         struct reply *reply)
{
        const union MHD_ConnectionInfo *info;
        struct ucred credentials;
        socklen_t length = sizeof(credentials);
        uid_t own_uid = geteuid();

        info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info ||
            getsockopt(info->connect_fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0) {
                const char *reason = info ? strerror(errno) : "libmicrohttpd returned no socket";

                if (listener_may_log(listener))
                        log_warning("endpoint %s: failed to read the credentials of a client: %s",
                                    listener->address, reason);
                reply_error(reply, MHD_HTTP_FORBIDDEN, "cannot verify the client's credentials");
                return false;
        }

        if (credentials.uid == 0 || credentials.uid == own_uid)
                return true;

        if (listener_may_log(listener))
                log_warning("endpoint %s: rejected a request from uid %u (pid %d)",
                            listener->address, (unsigned)credentials.uid, (int)credentials.pid);
        if (own_uid == 0)
                reply_error(reply, MHD_HTTP_FORBIDDEN,
                            "uid %u may not read this endpoint; only root may",
                            (unsigned)credentials.uid);
        else
                reply_error(reply, MHD_HTTP_FORBIDDEN,
                            "uid %u may not read this endpoint; only root and uid %u may",
                            (unsigned)credentials.uid, (unsigned)own_uid);
        return false;
}

static enum MHD_Result send_reply(struct MHD_Connection *connection, struct reply *reply)
{
        struct MHD_Response *response;
        enum MHD_Result result;

        response = MHD_create_response_from_buffer_with_free_callback(strlen(reply->body),
                                                                      reply->body, free);
        if (!response) {
                free(reply->body);
                return MHD_NO;
        }
        reply->body = NULL;

        if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type) !=
                MHD_YES ||
            MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") !=
                MHD_YES ||
            (reply->allow_header && MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW,
                                                            ENDPOINT_ALLOWED_METHODS) != MHD_YES)) {
                MHD_destroy_response(response);
                return MHD_NO;
        }

        result = MHD_queue_response(connection, reply->status, response);
        MHD_destroy_response(response);
        return result;
}

static enum MHD_Result respond(struct listener *listener, struct MHD_Connection *connection,
                               const char *method, const char *url, struct reply *reply)
{
        if (log_get_max_level() >= LOG_DEBUG) {
                char quoted_method[64], quoted_url[256];

                log_debug("endpoint %s: %s %s: %u", listener->address,
                          log_quote(method, quoted_method, sizeof(quoted_method)),
                          log_quote(url, quoted_url, sizeof(quoted_url)), reply->status);
        }

        return send_reply(connection, reply);
}

/* MHD calls this once when the request headers are in, then once per piece
 * of the body and once more at its end. GET and HEAD get their response at
 * the end, which lets MHD keep the connection open for the next request. A
 * rejected peer or another method gets it at once, and MHD then closes the
 * connection without reading the body. */
static enum MHD_Result handle_request(void *userdata, struct MHD_Connection *connection,
                                      const char *url, const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **request_context)
{
        struct listener *listener = userdata;
        struct reply reply = {0};
        bool first_call = !*request_context;

        *request_context = listener;

        if (first_call && listener->check_peer && !peer_allowed(listener, connection, &reply))
                return respond(listener, connection, method, url, &reply);
        if (first_call && is_read_method(method))
                return MHD_YES;
        if (*upload_data_size != 0) {
                /* A body sent with GET has no meaning here. */
                *upload_data_size = 0;
                return MHD_YES;
        }

        route(&reply, url, method);
        return respond(listener, connection, method, url, &reply);
}

static void listener_schedule(struct listener *listener)
{
        MHD_UNSIGNED_LONG_LONG timeout_msec;
        unsigned long long delay_usec = 0;
        int r;

        if (MHD_get_timeout(listener->daemon, &timeout_msec) == MHD_YES) {
                /* 0 means "run again now", and the timer takes at least 1 µs. */
                if (timeout_msec > ENDPOINT_CONNECTION_TIMEOUT_SEC * 1000ULL)
                        timeout_msec = ENDPOINT_CONNECTION_TIMEOUT_SEC * 1000ULL;
                delay_usec = timeout_msec == 0 ? 1 : timeout_msec * 1000ULL;
        }

        r = loop_timer_arm(&listener->timer, delay_usec);
        if (r < 0)
                log_error("endpoint %s: failed to arm the timer of libmicrohttpd: %s",
                          listener->address, strerror(-r));
}

static void listener_run(struct listener *listener)
{
        if (MHD_run(listener->daemon) != MHD_YES && listener_may_log(listener))
                log_warning("endpoint %s: libmicrohttpd failed to process its sockets, ignoring",
                            listener->address);
        listener_schedule(listener);
}

static void listener_dispatch(struct loop_source *source, uint32_t events)
{
        listener_run((struct listener *)((char *)source - offsetof(struct listener, source)));
}

static void listener_timer_fire(struct loop_timer *timer)
{
        listener_run((struct listener *)((char *)timer - offsetof(struct listener, timer)));
}

static int make_directories(const char *path)
{
        _cleanup_free_ char *copy = xstrdup(path);
        struct stat st;

        for (char *p = copy + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(copy, 0700) < 0 && errno != EEXIST)
                        return negative_errno();
                *p = '/';
        }
        if (mkdir(copy, 0700) < 0 && errno != EEXIST)
                return negative_errno();

        if (stat(copy, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        return 0;
}

/* Remove a socket file left by an earlier run, which would make bind() fail
 * with EADDRINUSE. Nothing else is removed, because a file of another type
 * may be the operator's and a socket where a process still accepts
 * connections belongs to a running supervisor. */
static int remove_stale_socket(const struct listener *listener, const struct sockaddr_un *address)
{
        _cleanup_close_ int fd = -1;
        const char *path = address->sun_path;
        struct stat st;
        int r;

        if (lstat(path, &st) < 0) {
                if (errno == ENOENT)
                        return 0;
                r = negative_errno();
                log_error("endpoint %s: cannot check the existing %s: %s", listener->address, path,
                          strerror(-r));
                return r;
        }
        if (!S_ISSOCK(st.st_mode)) {
                log_error(
                    "endpoint %s: %s exists and is not a socket; remove it or listen elsewhere",
                    listener->address, path);
                return -EEXIST;
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                r = negative_errno();
                log_error("endpoint %s: failed to create a socket: %s", listener->address,
                          strerror(-r));
                return r;
        }
        if (connect(fd, (const struct sockaddr *)address, sizeof(*address)) == 0 ||
            errno == EAGAIN) {
                log_error("endpoint %s: another process is listening on %s; is a supervisor "
                          "already running?",
                          listener->address, path);
                return -EADDRINUSE;
        }
        if (errno != ECONNREFUSED) {
                r = negative_errno();
                log_error("endpoint %s: cannot check whether %s is in use: %s", listener->address,
                          path, strerror(-r));
                return r;
        }

        if (unlink(path) < 0 && errno != ENOENT) {
                r = negative_errno();
                log_error("endpoint %s: failed to remove the stale socket %s: %s",
                          listener->address, path, strerror(-r));
                return r;
        }
        log_info("endpoint %s: removed the stale socket %s", listener->address, path);
        return 0;
}

static int open_unix_socket(struct listener *listener, const char *path, int *ret_fd)
{
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *directory = NULL;
        struct stat st;
        mode_t saved_umask;
        int r;

        if (path[0] != '/' || strlen(path) >= sizeof(address.sun_path)) {
                log_error(
                    "endpoint %s: the socket path must be absolute and shorter than %zu bytes",
                    listener->address, sizeof(address.sun_path));
                return -EINVAL;
        }
        strcpy(address.sun_path, path);

        directory = xstrdup(path);
        *strrchr(directory, '/') = '\0';
        if (directory[0] != '\0') {
                r = make_directories(directory);
                if (r < 0) {
                        log_error("endpoint %s: failed to create the directory %s: %s",
                                  listener->address, directory, strerror(-r));
                        return r;
                }
        }

        r = remove_stale_socket(listener, &address);
        if (r < 0)
                return r;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                r = negative_errno();
                log_error("endpoint %s: failed to create a socket: %s", listener->address,
                          strerror(-r));
                return r;
        }

        /* The umask keeps the file private from the moment bind() creates it,
         * and chmod() then sets the mode whatever the umask was. */
        saved_umask = umask(0177);
        r = bind(fd, (const struct sockaddr *)&address, sizeof(address));
        umask(saved_umask);
        if (r < 0) {
                r = negative_errno();
                log_error("endpoint %s: failed to bind %s: %s", listener->address, path,
                          strerror(-r));
                return r;
        }

        if (lstat(path, &st) < 0) {
                r = negative_errno();
                log_error("endpoint %s: failed to read the status of %s: %s", listener->address,
                          path, strerror(-r));
                return r;
        }
        listener->socket_path = xstrdup(path);
        listener->socket_device = st.st_dev;
        listener->socket_inode = st.st_ino;

        if (chmod(path, 0600) < 0) {
                r = negative_errno();
                log_error("endpoint %s: failed to set the mode of %s: %s", listener->address, path,
                          strerror(-r));
                return r;
        }

        if (listen(fd, SOMAXCONN) < 0) {
                r = negative_errno();
                log_error("endpoint %s: failed to listen on %s: %s", listener->address, path,
                          strerror(-r));
                return r;
        }

        listener->check_peer = true;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int parse_port(const char *text, uint16_t *ret_port)
{
        char *end;
        unsigned long port;

        if (text[0] < '0' || text[0] > '9')
                return -EINVAL;
        errno = 0;
        port = strtoul(text, &end, 10);
        if (errno != 0 || *end != '\0' || port > 65535)
                return -EINVAL;
        *ret_port = (uint16_t)port;
        return 0;
}

/* Parse "127.x.y.z:PORT" or "[::1]:PORT" into a loopback socket address.
 * Anything else is rejected, the config parser's check notwithstanding,
 * because a TCP listener cannot check its peers: only loopback keeps the
 * documents on this host. */
static int parse_loopback_address(const char *host_port, struct sockaddr_storage *ret_address,
                                  socklen_t *ret_length)
{
        struct sockaddr_storage address = {0};
        char host[INET6_ADDRSTRLEN];
        const char *host_start = host_port, *host_end, *port_text;
        size_t host_length;
        uint16_t port;

        if (host_port[0] == '[') {
                host_start = host_port + 1;
                host_end = strchr(host_start, ']');
                if (!host_end || host_end[1] != ':')
                        return -EINVAL;
                port_text = host_end + 2;
        } else {
                host_end = strrchr(host_port, ':');
                if (!host_end)
                        return -EINVAL;
                port_text = host_end + 1;
        }

        host_length = (size_t)(host_end - host_start);
        if (host_length == 0 || host_length >= sizeof(host) || parse_port(port_text, &port) < 0)
                return -EINVAL;
        memcpy(host, host_start, host_length);
        host[host_length] = '\0';

        if (host_port[0] == '[') {
                struct sockaddr_in6 *ipv6 = (struct sockaddr_in6 *)&address;

                ipv6->sin6_family = AF_INET6;
                ipv6->sin6_port = htons(port);
                if (inet_pton(AF_INET6, host, &ipv6->sin6_addr) != 1 ||
                    !IN6_IS_ADDR_LOOPBACK(&ipv6->sin6_addr))
                        return -EINVAL;
                *ret_length = sizeof(*ipv6);
        } else {
                struct sockaddr_in *ipv4 = (struct sockaddr_in *)&address;

                ipv4->sin_family = AF_INET;
                ipv4->sin_port = htons(port);
                if (inet_pton(AF_INET, host, &ipv4->sin_addr) != 1 ||
                    (ntohl(ipv4->sin_addr.s_addr) >> 24) != IN_LOOPBACKNET)
                        return -EINVAL;
                *ret_length = sizeof(*ipv4);
        }

        *ret_address = address;
        return 0;
}

static int open_tcp_socket(struct listener *listener, const char *host_port, int *ret_fd)
{
        struct sockaddr_storage address;
        socklen_t length;
        _cleanup_close_ int fd = -1;
        char bound[INET6_ADDRSTRLEN];
        uint16_t port;
        int enable = 1, r;

        if (parse_loopback_address(host_port, &address, &length) < 0) {
                log_error("endpoint %s: invalid TCP address: expected tcp:127.0.0.1:PORT or "
                          "tcp:[::1]:PORT (loopback only)",
                          listener->address);
                return -EINVAL;
        }

        fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                r = negative_errno();
                log_error("endpoint %s: failed to create a socket: %s", listener->address,
                          strerror(-r));
                return r;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &enable, sizeof(enable)) < 0 ||
            bind(fd, (const struct sockaddr *)&address, length) < 0 || listen(fd, SOMAXCONN) < 0 ||
            getsockname(fd, (struct sockaddr *)&address, &length) < 0) {
                r = negative_errno();
                log_error("endpoint %s: failed to listen: %s", listener->address, strerror(-r));
                return r;
        }

        if (address.ss_family == AF_INET6) {
                struct sockaddr_in6 *ipv6 = (struct sockaddr_in6 *)&address;

                inet_ntop(AF_INET6, &ipv6->sin6_addr, bound, sizeof(bound));
                port = ntohs(ipv6->sin6_port);
        } else {
                struct sockaddr_in *ipv4 = (struct sockaddr_in *)&address;

                inet_ntop(AF_INET, &ipv4->sin_addr, bound, sizeof(bound));
                port = ntohs(ipv4->sin_port);
        }
        log_warning("endpoint %s: listening on %s port %u without checking the client's user: "
                    "every process of this host and every container in the host's network "
                    "namespace can read it",
                    listener->address, bound, (unsigned)port);

        *ret_fd = TAKE_FD(fd);
        return 0;
}

static void listener_free(struct endpoint *endpoint, struct listener *listener)
{
        struct stat st;

        if (!listener)
                return;

        loop_timer_release(endpoint->loop, &listener->timer);
        if (listener->source.fd >= 0)
                loop_remove(endpoint->loop, &listener->source);
        /* Closes the listening socket, every connection and the epoll fd. */
        if (listener->daemon)
                MHD_stop_daemon(listener->daemon);

        if (listener->socket_path && lstat(listener->socket_path, &st) == 0 &&
            st.st_dev == listener->socket_device && st.st_ino == listener->socket_inode)
                (void)unlink(listener->socket_path);

        free(listener->socket_path);
        free(listener->address);
        free(listener);
}

static int listener_start(struct endpoint *endpoint, const char *address)
{
        struct listener *listener = xcalloc(1, sizeof(*listener));
        const union MHD_DaemonInfo *info;
        int fd = -1, r;

        listener->endpoint = endpoint;
        listener->address = xstrdup(address);
        listener->source.fd = -1;
        listener->source.dispatch = listener_dispatch;
        listener->timer.source.fd = -1;
        endpoint->listeners[endpoint->n_listeners++] = listener;

        if (startswith(address, "unix:"))
                r = open_unix_socket(listener, address + strlen("unix:"), &fd);
        else if (startswith(address, "tcp:"))
                r = open_tcp_socket(listener, address + strlen("tcp:"), &fd);
        else {
                log_error("endpoint %s: invalid listen address: expected unix:PATH, "
                          "tcp:127.0.0.1:PORT or tcp:[::1]:PORT",
                          address);
                r = -EINVAL;
        }
        if (r < 0)
                return r;

        /* MHD_USE_EPOLL without MHD_USE_INTERNAL_POLLING_THREAD: MHD starts no
         * thread and does its work only inside MHD_run(). */
        listener->daemon = MHD_start_daemon(
            MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle_request, listener,
            MHD_OPTION_EXTERNAL_LOGGER, log_mhd_message, listener, MHD_OPTION_LISTEN_SOCKET, fd,
            MHD_OPTION_CONNECTION_LIMIT, ENDPOINT_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
            ENDPOINT_CONNECTION_TIMEOUT_SEC, MHD_OPTION_END);
        if (!listener->daemon) {
                /* libmicrohttpd 0.9.75 leaves a passed socket open when it
                 * fails to start, and closes it only in MHD_stop_daemon(). */
                safe_close(fd);
                log_error("endpoint %s: failed to start libmicrohttpd", address);
                return -EIO;
        }

        info = MHD_get_daemon_info(listener->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info) {
                log_error("endpoint %s: libmicrohttpd has no epoll fd", address);
                return -EIO;
        }
        listener->source.fd = info->epoll_fd;
        r = loop_add(endpoint->loop, &listener->source, EPOLLIN);
        if (r < 0) {
                listener->source.fd = -1;
                log_error("endpoint %s: failed to watch libmicrohttpd's epoll fd: %s", address,
                          strerror(-r));
                return r;
        }

        r = loop_timer_init(endpoint->loop, &listener->timer, listener_timer_fire);
        if (r < 0) {
                log_error("endpoint %s: failed to create a timer: %s", address, strerror(-r));
                return r;
        }
        listener_schedule(listener);

        log_info("endpoint: listening on %s", address);
        return 0;
}

int endpoint_start(struct loop *loop, const struct config *config, struct endpoint **ret_endpoint)
{
        struct endpoint *endpoint = xcalloc(1, sizeof(*endpoint));
        size_t n = config->n_listen > 0 ? config->n_listen : 1;
        int r = 0;

        endpoint->loop = loop;
        endpoint->listeners = xcalloc(n, sizeof(*endpoint->listeners));

        if (config->n_listen == 0) {
                _cleanup_free_ char *address = xasprintf(
                    "unix:%s/%s", config->state_dir ? config->state_dir : CONFIG_DEFAULT_STATE_DIR,
                    CONFIG_DEFAULT_LISTEN_SOCKET_NAME);

                r = listener_start(endpoint, address);
        }
        for (size_t i = 0; i < config->n_listen && r >= 0; i++)
                r = listener_start(endpoint, config->listen[i]);

        if (r < 0) {
                endpoint_free(endpoint);
                return r;
        }
        *ret_endpoint = endpoint;
        return 0;
}

void endpoint_free(struct endpoint *endpoint)
{
        if (!endpoint)
                return;
        for (size_t i = 0; i < endpoint->n_listeners; i++)
                listener_free(endpoint, endpoint->listeners[i]);
        free(endpoint->listeners);
        free(endpoint);
}
