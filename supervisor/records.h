#pragma once

/* State files: one JSON document per supervised container in
 * <state-dir>/containers/<id>.json, rewritten atomically (write, fsync,
 * rename) after every event, so that a restarted supervisor keeps the
 * states, restart counts and sequence numbers, and re-adopts running agents
 * instead of starting second ones. */

#include <stdbool.h>

#include "supervisor/supervisor.h"

/* Create the records directory and register the observer that writes the files. */
int records_init(struct supervisor *supervisor);

/* Load the records of an earlier run. Torn or corrupt files are reported and
 * skipped. The containers are listed as they were, until Docker's container
 * list shows which still run. */
void records_load(struct supervisor *supervisor);

/* After the container's init is pinned: if the stored record names an agent
 * that still runs in this container (same pid and start time, same mount
 * namespace as the init, execvisor-init from this container's bundle view),
 * watch it as RUNNING and return true. */
bool records_try_adopt(struct supervisor *supervisor, struct supervised *s);
