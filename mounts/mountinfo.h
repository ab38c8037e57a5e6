#pragma once

#include <stddef.h>
#include <stdint.h>

/* Collect the ids of the mounts that have shared propagation ("shared:N" among
 * the optional fields) from the text of a /proc/<pid>/mountinfo. A mount
 * attached below one of them would propagate to its peers, which may be the
 * host's own mounts. Malformed lines are -EBADMSG. */
int mountinfo_shared_ids(const char *text, uint64_t **ret_ids, size_t *ret_count);
