#pragma once

#include "supervisor/config.h"

/* Run the supervisor until SIGTERM or SIGINT. Returns the process exit code. */
int daemon_run(const struct config *config);
