#include "supervisor/cli.h"

#include <getopt.h>
#include <stdarg.h>

#include "supervisor/log.h"
#include "supervisor/util.h"

/* getopt_long() values beside 'h'; the settings follow from OPTION_SETTING on. */
enum {
        OPTION_CONFIG = 0x100,
        OPTION_JSON,
        OPTION_SETTING = 0x200,
};

#define USAGE_WIDTH 79
#define HELP_INDENT 8

static const struct {
        const char *name;
        enum cli_verb verb;
        unsigned config_command; /* CONFIG_COMMAND_* bit, 0 for commands without options */
        const char *summary;
} verbs[] = {
        { "run", CLI_VERB_RUN, CONFIG_COMMAND_RUN,
          "Run the supervisor in the foreground until SIGTERM or SIGINT." },
        { "status", CLI_VERB_STATUS, CONFIG_COMMAND_STATUS,
          "Show the state of every agent from the running supervisor." },
        { "version", CLI_VERB_VERSION, 0, "Print the version of execvisor." },
        { "help", CLI_VERB_HELP, 0,
          "Show this help, or with a COMMAND the options of that command." },
};

static const char *verb_name(enum cli_verb verb)
{
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                if (verbs[i].verb == verb)
                        return verbs[i].name;
        return "?";
}

static int find_verb(const char *name, enum cli_verb *ret_verb)
{
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                if (streq(verbs[i].name, name)) {
                        *ret_verb = verbs[i].verb;
                        return 0;
                }
        return -EINVAL;
}

static unsigned verb_config_command(enum cli_verb verb)
{
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                if (verbs[i].verb == verb)
                        return verbs[i].config_command;
        return 0;
}

static int fail(char **ret_error, const char *format, ...) __attribute__((format(printf, 2, 3)));

static int fail(char **ret_error, const char *format, ...)
{
        va_list args;
        int r;

        va_start(args, format);
        r = vasprintf(ret_error, format, args);
        va_end(args);
        if (r < 0)
                abort();
        return -EINVAL;
}

/* An option value taken from argv, applied once the config file is loaded. */
struct pending_value {
        const struct config_setting *setting;
        const char *value;
};

struct parsed_options {
        struct pending_value *values;
        size_t n_values;
        const char *config_path;
        bool help;
        bool json;
};

static void parsed_options_done(struct parsed_options *options)
{
        free(options->values);
}

static struct option *build_long_options(unsigned command)
{
        struct option *long_options = xcalloc(config_n_settings + 4, sizeof(struct option));
        size_t n = 0;

        for (size_t i = 0; i < config_n_settings; i++) {
                const struct config_setting *setting = &config_settings[i];

                if (!(setting->commands & command))
                        continue;
                long_options[n++] = (struct option){
                        .name = setting->name,
                        .has_arg = setting->argument ? required_argument : no_argument,
                        .val = OPTION_SETTING + (int)i,
                };
        }

        long_options[n++] = (struct option){ "config", required_argument, NULL, OPTION_CONFIG };
        if (command == CONFIG_COMMAND_STATUS)
                long_options[n++] = (struct option){ "json", no_argument, NULL, OPTION_JSON };
        long_options[n++] = (struct option){ "help", no_argument, NULL, 'h' };
        return long_options;
}

static const char *option_name(int value, char *buffer, size_t size)
{
        if (value >= OPTION_SETTING && (size_t)(value - OPTION_SETTING) < config_n_settings)
                snprintf(buffer, size, "--%s", config_settings[value - OPTION_SETTING].name);
        else if (value == OPTION_CONFIG)
                snprintf(buffer, size, "--config");
        else if (value == OPTION_JSON)
                snprintf(buffer, size, "--json");
        else if (value == 'h')
                snprintf(buffer, size, "--help");
        else if (value > 0 && value < 0x100)
                snprintf(buffer, size, "-%c", value);
        else
                snprintf(buffer, size, "?");
        return buffer;
}

/* Turn what getopt_long() reported for a bad option into a message. */
static int fail_on_bad_option(int result, int argc, char **argv, enum cli_verb verb,
                              char **ret_error)
{
        const char *argument = optind > 0 && optind <= argc ? argv[optind - 1] : "";
        char quoted[256], name[128];

        if (result == ':')
                return fail(ret_error, "option %s of \"execvisor %s\" requires a value",
                            option_name(optopt, name, sizeof(name)), verb_name(verb));

        /* glibc sets optopt to the option's value when a known option got a
         * value that it does not take, and to 0 for an unknown name. */
        if (optopt >= 0x100)
                return fail(ret_error, "option %s of \"execvisor %s\" takes no value",
                            option_name(optopt, name, sizeof(name)), verb_name(verb));

        return fail(ret_error,
                    "unknown or ambiguous option %s for \"execvisor %s\". Run \"execvisor %s "
                    "--help\" for the list of options",
                    log_quote(argument, quoted, sizeof(quoted)), verb_name(verb), verb_name(verb));
}

/* Collect the options of one command from argv, which starts at the command
 * name. Values are only collected here; they are applied in parse_command()
 * once the config file is loaded, so that the command line wins. */
static int collect_options(int argc, char **argv, enum cli_verb verb,
                           struct parsed_options *options, char **ret_error)
{
        _cleanup_free_ struct option *long_options = NULL;
        unsigned command = verb_config_command(verb);
        int result;

        long_options = build_long_options(command);
        options->values = xcalloc((size_t)argc, sizeof(struct pending_value));

        /* optind = 0 makes glibc start a fresh scan, which cli_parse() needs
         * when it is called more than once. "+" stops at the first argument
         * that is not an option instead of reordering argv, and ":" reports a
         * missing value as ':'. */
        optind = 0;
        opterr = 0;
        while ((result = getopt_long(argc, argv, "+:h", long_options, NULL)) >= 0) {
                switch (result) {
                case 'h':
                        options->help = true;
                        break;

                case OPTION_CONFIG:
                        if (options->config_path)
                                return fail(ret_error, "option --config is given twice");
                        options->config_path = optarg;
                        break;

                case OPTION_JSON:
                        options->json = true;
                        break;

                case ':':
                case '?':
                        return fail_on_bad_option(result, argc, argv, verb, ret_error);

                default:
                        options->values[options->n_values++] = (struct pending_value){
                                .setting = &config_settings[result - OPTION_SETTING],
                                .value = optarg ? optarg : "true",
                        };
                        break;
                }
        }

        if (optind < argc) {
                char quoted[256];

                return fail(ret_error,
                            "unexpected argument %s: \"execvisor %s\" takes options only",
                            log_quote(argv[optind], quoted, sizeof(quoted)), verb_name(verb));
        }

        return 0;
}

/* Build the config of a command from its defaults, the config file and the
 * collected options, in that order. */
static int build_config(const struct parsed_options *options, unsigned command,
                        struct config *ret_config, char **ret_error)
{
        _cleanup_(config_free) struct config config = {};
        _cleanup_free_ bool *replaced = NULL;
        int r;

        config_init_defaults(&config);

        if (options->config_path) {
                r = config_load_file_for(&config, options->config_path, command, ret_error);
                if (r < 0)
                        return r;
        }

        replaced = xcalloc(config_n_settings, sizeof(bool));
        for (size_t i = 0; i < options->n_values; i++) {
                const struct config_setting *setting = options->values[i].setting;
                size_t index = (size_t)(setting - config_settings);
                _cleanup_free_ char *origin = xasprintf("--%s", setting->name);

                /* The first use of a repeatable option on the command line
                 * replaces the list from the file; later uses add to it. */
                if (config_setting_is_repeatable(setting) && !replaced[index]) {
                        config_clear_setting(&config, setting);
                        replaced[index] = true;
                }

                r = config_apply_setting(&config, setting, options->values[i].value, origin,
                                         ret_error);
                if (r < 0)
                        return r;
        }

        r = config_finalize(&config, ret_error);
        if (r < 0)
                return r;

        *ret_config = config;
        config = (struct config){};
        return 0;
}

static int parse_command(int argc, char **argv, enum cli_verb verb,
                         struct cli_command *ret_command, struct config *ret_config,
                         char **ret_error)
{
        _cleanup_(parsed_options_done) struct parsed_options options = {};
        struct config config;
        int r;

        r = collect_options(argc, argv, verb, &options, ret_error);
        if (r < 0)
                return r;

        /* Help needs no config, so a broken config file does not hide it. */
        if (options.help) {
                config_init_defaults(ret_config);
                *ret_command = (struct cli_command){ .verb = CLI_VERB_HELP, .help_topic = verb };
                return 0;
        }

        r = build_config(&options, verb_config_command(verb), &config, ret_error);
        if (r < 0)
                return r;

        *ret_config = config;
        *ret_command = (struct cli_command){ .verb = verb, .json = options.json };
        return 0;
}

/* "help [COMMAND]", "version", and "COMMAND --help" for commands without options. */
static int parse_simple_command(int argc, char **argv, enum cli_verb verb,
                                struct cli_command *ret_command, struct config *ret_config,
                                char **ret_error)
{
        struct cli_command command = { .verb = verb, .help_topic = CLI_VERB_HELP };
        char quoted[256];

        if (verb == CLI_VERB_HELP && argc == 3 && !streq(argv[2], "--help") &&
            !streq(argv[2], "-h")) {
                if (find_verb(argv[2], &command.help_topic) < 0)
                        return fail(ret_error,
                                    "unknown command %s. The commands are run, status, "
                                    "version and help",
                                    log_quote(argv[2], quoted, sizeof(quoted)));
        } else if (argc == 3 && (streq(argv[2], "--help") || streq(argv[2], "-h"))) {
                command = (struct cli_command){ .verb = CLI_VERB_HELP, .help_topic = verb };
        } else if (argc > 2) {
                return fail(ret_error, "unexpected argument %s for \"execvisor %s\"",
                            log_quote(argv[argc > 3 && verb == CLI_VERB_HELP ? 3 : 2], quoted,
                                      sizeof(quoted)),
                            verb_name(verb));
        }

        config_init_defaults(ret_config);
        *ret_command = command;
        return 0;
}

int cli_parse(int argc, char **argv, struct cli_command *ret_command, struct config *ret_config,
              char **ret_error)
{
        const char *name;
        enum cli_verb verb;
        char quoted[256];

        if (argc < 2)
                return fail(ret_error, "missing command. The commands are run, status, version "
                                       "and help; run \"execvisor help\" for more");

        name = argv[1];
        if (streq(name, "--help") || streq(name, "-h"))
                name = "help";
        else if (streq(name, "--version"))
                name = "version";

        if (find_verb(name, &verb) < 0)
                return fail(ret_error,
                            "unknown command %s. The commands are run, status, version and "
                            "help; run \"execvisor help\" for more",
                            log_quote(name, quoted, sizeof(quoted)));

        if (verb_config_command(verb) == 0)
                return parse_simple_command(argc, argv, verb, ret_command, ret_config,
                                            ret_error);

        return parse_command(argc - 1, argv + 1, verb, ret_command, ret_config, ret_error);
}

/* Write text to out in lines of at most USAGE_WIDTH columns, each indented by
 * indent spaces. Words longer than a line stay whole. */
static void print_wrapped(FILE *out, const char *text, size_t indent)
{
        size_t column = 0;

        while (*text) {
                size_t word_length = strcspn(text, " ");

                if (column > indent && column + 1 + word_length > USAGE_WIDTH) {
                        fputc('\n', out);
                        column = 0;
                }
                if (column == 0) {
                        fprintf(out, "%*s", (int)indent, "");
                        column = indent;
                } else {
                        fputc(' ', out);
                        column++;
                }

                fwrite(text, 1, word_length, out);
                column += word_length;
                text += word_length;
                text += strspn(text, " ");
        }

        if (column > 0)
                fputc('\n', out);
}

static void print_option(FILE *out, const char *name, const char *argument, const char *help,
                         const char *default_text)
{
        _cleanup_free_ char *text = NULL;

        fprintf(out, "  --%s%s%s\n", name, argument ? " " : "", argument ? argument : "");

        text = default_text ? xasprintf("%s Default: %s.", help, default_text) : xstrdup(help);
        print_wrapped(out, text, HELP_INDENT);
}

static void print_settings(FILE *out, unsigned command)
{
        for (size_t i = 0; i < config_n_settings; i++) {
                const struct config_setting *setting = &config_settings[i];

                if (setting->commands & command)
                        print_option(out, setting->name, setting->argument, setting->help,
                                     setting->default_text);
        }
}

static void print_common_options(FILE *out, unsigned command)
{
        print_option(out, "config", "FILE",
                     command == CONFIG_COMMAND_RUN
                             ? "JSON file with settings, as described above."
                             : "JSON file with settings, as for \"execvisor run\". The settings "
                               "that only the daemon uses are ignored.",
                     NULL);
        print_option(out, "help", NULL, "Show this help and exit.", NULL);
}

static void print_run_usage(FILE *out)
{
        fputs("Usage: execvisor run [OPTIONS]\n\n", out);
        print_wrapped(out,
                      "Watch the Docker engine for containers, inject the agent bundle into each "
                      "selected container, start the agent there, restart it when it exits, and "
                      "report its state.",
                      0);
        fputc('\n', out);
        print_wrapped(out,
                      "Every option can also be set in the JSON file that --config names. The key "
                      "is the option's name without the leading dashes, a repeatable option "
                      "takes an array, and a flag takes true or false. Options on the command "
                      "line override the file. For example:",
                      0);
        fputs("    {\"select-label\": [\"team=web\"], \"all\": false, \"restart-backoff-min\": "
              "\"2s\"}\n",
              out);
        fputc('\n', out);
        print_wrapped(out,
                      "A DURATION is a whole number with a unit (ms, s, m, h or d), such as 250ms, "
                      "5m or 1m30s; only 0 may go without a unit. A SIZE is a number of bytes, "
                      "optionally with K, M, G or T (powers of 1024), such as 4096 or 64M.",
                      0);
        fputs("\nOptions:\n", out);
        print_settings(out, CONFIG_COMMAND_RUN);
        print_common_options(out, CONFIG_COMMAND_RUN);
}

static void print_status_usage(FILE *out)
{
        fputs("Usage: execvisor status [OPTIONS]\n\n", out);
        print_wrapped(out,
                      "Show the state of every agent, as the running supervisor reports it on "
                      "its endpoint.",
                      0);
        fputs("\nOptions:\n", out);
        print_settings(out, CONFIG_COMMAND_STATUS);
        print_option(out, "json", NULL, "Print the status as JSON instead of a table.", NULL);
        print_common_options(out, CONFIG_COMMAND_STATUS);
}

static void print_overview(FILE *out)
{
        fputs("Usage: execvisor COMMAND [OPTIONS]\n\n", out);
        print_wrapped(out,
                      "Inject an agent into running Docker containers, keep it running and report "
                      "its health.",
                      0);
        fputs("\nCommands:\n", out);
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                fprintf(out, "  %-9s %s\n", verbs[i].name, verbs[i].summary);
        fputs("\nRun \"execvisor COMMAND --help\" for the options of a command.\n", out);
}

void cli_print_usage(FILE *out, enum cli_verb topic)
{
        switch (topic) {
        case CLI_VERB_RUN:
                print_run_usage(out);
                break;
        case CLI_VERB_STATUS:
                print_status_usage(out);
                break;
        case CLI_VERB_VERSION:
                fputs("Usage: execvisor version\n\nPrint the version of execvisor.\n", out);
                break;
        case CLI_VERB_HELP:
                print_overview(out);
                break;
        }
}
