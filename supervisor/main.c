#include <stdio.h>
#include <stdlib.h>

#include "supervisor/cli.h"
#include "supervisor/config.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/status.h"
#include "supervisor/util.h"

/* Exit code for a bad command line or config, as from most Unix tools. */
#define EXIT_USAGE 2

/* Flush stdout and report a write error, such as a full disk, in the message
 * and the exit code. */
static int finish_stdout(void)
{
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "execvisor: failed to write to stdout: %m\n");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

int main(int argc, char *argv[])
{
        _cleanup_(config_free) struct config config = {};
        _cleanup_free_ char *error = NULL;
        struct cli_command command;
        int r;

        r = cli_parse(argc, argv, &command, &config, &error);
        if (r < 0) {
                fprintf(stderr, "execvisor: %s\n", error);
                return EXIT_USAGE;
        }

        switch (command.verb) {
        case CLI_VERB_HELP:
                cli_print_usage(stdout, command.help_topic);
                return finish_stdout();

        case CLI_VERB_VERSION:
                printf("execvisor %s\n", EXECVISOR_VERSION);
                return finish_stdout();

        case CLI_VERB_STATUS:
                log_set_max_level(config.log_level);
                return status_main(&config, command.json);

        case CLI_VERB_RUN:
                log_set_max_level(config.log_level);
                return daemon_run(&config);
        }

        return EXIT_FAILURE;
}
