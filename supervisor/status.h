#pragma once

/* The status subcommand: a client of the running supervisor's endpoint. */

#include <stdbool.h>

#include "supervisor/config.h"

/* Print the state of every agent that the supervisor found through
 * config->listen reports, as a table or, with json, as JSON. Returns the
 * process exit code. */
int status_main(const struct config *config, bool json);
