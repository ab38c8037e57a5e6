#pragma once

/* The task metadata endpoint: HTTP/1.1 served by libmicrohttpd inside the
 * supervisor's event loop, with no threads of its own.
 *
 *   GET /v4/<id>        container document, ECS task metadata v4 style
 *   GET /v4/<id>/task   task document: the containers sharing the task ARN
 *   GET /v1/agents      agent status of every supervised container
 *   GET /metrics        Prometheus text
 *
 * <id> is a container id or a unique prefix of one. HEAD works as GET; other
 * methods get 405. On a unix socket only uid 0 and the supervisor's own uid
 * are served (SO_PEERCRED). A TCP listener on loopback cannot check its
 * peers, so every local process can read it. */

#include "supervisor/config.h"
#include "supervisor/loop.h"

struct endpoint;

/* Listen on every address of config->listen ("unix:PATH", "tcp:127.x.y.z:PORT"
 * or "tcp:[::1]:PORT"), or on unix:<state-dir>/tmde.sock when there is none,
 * and serve from loop. A stale socket file left by an earlier run is
 * replaced, but not a socket where another process still listens. Logs the
 * reason of a failure and returns a negative errno. */
int endpoint_start(struct loop *loop, const struct config *config, struct endpoint **ret_endpoint);

/* Close every connection and listener and remove the socket files this
 * endpoint created. */
void endpoint_free(struct endpoint *endpoint);
