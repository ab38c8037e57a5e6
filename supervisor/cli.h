#pragma once

/* The command line: "execvisor COMMAND [OPTIONS]", parsed into a command and
 * a finished struct config, and the usage text of each command. */

#include <stdbool.h>
#include <stdio.h>

#include "supervisor/config.h"

enum cli_verb {
        CLI_VERB_RUN,
        CLI_VERB_STATUS,
        CLI_VERB_VERSION,
        CLI_VERB_HELP,
};

struct cli_command {
        enum cli_verb verb;
        /* With CLI_VERB_HELP, the command whose usage to print. CLI_VERB_HELP
         * itself means the overview of all commands. */
        enum cli_verb help_topic;
        bool json; /* status --json */
};

/* Parse argv (argv[0] is the program name) into ret_command and ret_config.
 * For run and status, the config starts from the defaults and takes the file
 * given by --config, then the options, which override the file. A repeatable
 * option given on the command line replaces the file's list. Last,
 * config_finalize() completes the config. For help and version the config
 * contains the defaults. The caller frees ret_config with config_free().
 *
 * Never exits and prints nothing. Returns 0 on success; on failure returns a
 * negative errno, leaves ret_command and ret_config untouched and stores a
 * message without a trailing newline in *ret_error, which the caller frees. */
int cli_parse(int argc, char **argv, struct cli_command *ret_command, struct config *ret_config,
              char **ret_error);

/* Write the usage text of topic (CLI_VERB_HELP for the overview) to out. */
void cli_print_usage(FILE *out, enum cli_verb topic);
