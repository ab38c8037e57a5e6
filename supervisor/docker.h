#pragma once

/* Docker Engine client: follows container events over the engine's unix
 * socket and keeps the supervisor's view of running containers in step with
 * the engine, across restarts of the engine.
 *
 * After each connect the client calls on_sync with every running container,
 * then reports container events in the order the engine sent them. When the
 * engine goes away, the client calls on_disconnected once and reconnects with
 * exponential backoff (250 ms doubling to 30 s, with jitter). The next
 * on_sync then covers everything missed meanwhile.
 *
 * Callbacks run from the event loop. A container_info passed to a callback is
 * valid only during the call. Callbacks may call docker_inspect() and
 * docker_inspect_cancel(), but not docker_client_free(). */

#include <stdbool.h>
#include <stddef.h>

#include "supervisor/docker_parse.h"

struct loop;
struct http_multi;
struct docker_client;

#define DOCKER_SOCKET_DEFAULT "/var/run/docker.sock"

struct docker_callbacks {
        /* Every container whose init runs (running, not restarting, with a
         * pid) when the engine listed them. A container the caller tracks
         * that is missing here has gone while the client was disconnected. */
        void (*on_sync)(void *userdata, const struct container_info *const *infos, size_t count);
        /* A container started, and its init still ran when it was inspected.
         * Usually not called for a start already reported by on_sync, but the
         * caller must tolerate a second on_started for a container it
         * handles: the engine replays recent events after a reconnect. */
        void (*on_started)(void *userdata, const struct container_info *info);
        /* exit_code is -1 when the engine did not send one. */
        void (*on_died)(void *userdata, const char *id, int exit_code);
        void (*on_destroyed)(void *userdata, const char *id);
        /* The connection failed or could not be made. Called once per outage:
         * retries are only logged. */
        void (*on_disconnected)(void *userdata, const char *reason);
};

/* socket NULL means DOCKER_SOCKET_DEFAULT. The ids passed to on_died and
 * on_destroyed may name containers the caller never saw, and the caller
 * should ignore those. */
int docker_client_new(struct loop *loop, struct http_multi *http, const char *socket,
                      const struct docker_callbacks *callbacks, void *userdata,
                      struct docker_client **ret_client);
/* Connect in the background. Failures arrive through on_disconnected. */
int docker_client_start(struct docker_client *client);
/* Cancel all requests without calling any callback, then free. */
void docker_client_free(struct docker_client *client);

/* True from the end of a synchronization until the connection fails. */
bool docker_client_is_connected(const struct docker_client *client);

/* Inspect one container by id or name. callback gets 0 and the info, or
 * -ENOENT when no such container exists, -ETIMEDOUT, -ECONNREFUSED when the
 * engine cannot be reached, -EBADMSG for an invalid document, -EIO for any
 * other failure. Returns -EINVAL for an invalid id or name. */
int docker_inspect(struct docker_client *client, const char *id,
                   void (*callback)(void *userdata, int error, const struct container_info *info),
                   void *userdata);
/* Cancel every pending docker_inspect() started with userdata; their
 * callbacks are not called. */
void docker_inspect_cancel(struct docker_client *client, void *userdata);
