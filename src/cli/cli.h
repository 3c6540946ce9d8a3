/* cli.h: the eft subcommands. Each lives in its own cmd_<name>.c, parses its own flags, and
 * returns 0 on success or -1 with the error recorded (base/err.h); main() prints the message and
 * exits 1 (user error) or 2 (internal). The binary is thin: the work happens in libeft. */
#ifndef EFT_CLI_H
#define EFT_CLI_H

typedef struct eft_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
    const char *usage;                 /* one line: "eft NAME ARGS" */
    const char *summary;               /* one line of what it does */
} eft_command;

extern const eft_command eft_commands[];
extern const int eft_ncommands;

/* The commands, one per cmd_<name>.c. */
int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_inference(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_init_model(int argc, char **argv);
int cmd_debug(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_config_schema(int argc, char **argv);
int cmd_merge_lora(int argc, char **argv);

/* Small shared helpers for flag parsing: "--flag value" or "--flag=value". Returns the value
 * when argv[*i] is the flag (advancing *i past a separate value), NULL otherwise. A flag missing
 * its value is a user error, recorded, with *missing set. */
const char *cli_flag_value(int argc, char **argv, int *i, const char *flag, int *missing);

#endif
