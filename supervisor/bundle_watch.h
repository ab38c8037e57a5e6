#pragma once

/* Watching the bundle directory with inotify, so that containers left
 * without an agent because no usable bundle was installed get one as soon as
 * it is, without polling and without a restart of the supervisor. */

#include "supervisor/supervisor.h"

struct bundle_watch;

int bundle_watch_start(struct supervisor *supervisor, struct bundle_watch **ret_watch);
void bundle_watch_free(struct bundle_watch *watch);
