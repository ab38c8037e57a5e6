#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "supervisor/config.h"

/* True if a container with these labels gets an agent: every label rule
 * matches (a rule without a value matches any value), or --all is set. */
bool container_is_selected(const struct config *config, json_object *labels);
