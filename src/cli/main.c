/* main.c: eft's entry point: finds the subcommand, runs it, prints the one error line. */
#include "cli/cli.h"

#include "base/err.h"
#include "base/log.h"

#include <stdio.h>
#include <string.h>

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv) {
    printf("eft %s\n", EFT_VERSION);
    return 0;
}

/* The public command-line contract (../shared/spec/design.md section 5): keep in step with
 * README.md. Commands not built yet are absent, not stubbed. */

const eft_command eft_commands[] = {
    {"help", cmd_help, "eft help [COMMAND]", "show the commands, or one command's usage"},
    {"version", cmd_version, "eft version", "print eft's version"},
    {"train", cmd_train, "eft train CONFIG.yaml [--dry-run] [--key value ...]",
     "fine-tune a model from an Axolotl config (--dry-run: check everything, then stop)"},
    {"preprocess", cmd_preprocess, "eft preprocess CONFIG.yaml [--dump FILE.jsonl] [--debug]",
     "tokenise, label, split and cache the datasets; print the counts"},
    {"evaluate", cmd_evaluate, "eft evaluate CONFIG.yaml [--key value ...]",
     "loss on the eval and train splits, with lora_model_dir's adapter when set"},
    {"merge-lora", cmd_merge_lora, "eft merge-lora CONFIG.yaml [--key value ...]",
     "write output_dir/merged/: base_model with lora_model_dir's adapter baked in"},
    {"inference", cmd_inference, "eft inference CONFIG.yaml [--prompt TEXT | --chat]",
     "generate with base_model (and lora_model_dir's adapter): --prompt, or lines of stdin"},
    {"info", cmd_info, "eft info --model DIR [CONFIG.yaml] [FLAGS] (eft info --help)",
     "layer plan, parameter counts and memory plan"},
    {"init-model", cmd_init_model, "eft init-model --preset NAME --out DIR [--seed N]",
     "write a random tiny Gemma 4 checkpoint (eft init-model --list)"},
    {"debug", cmd_debug,
     "eft debug loss --model DIR [--adapter DIR] --input ROWS.jsonl [--dump-grads F]; "
     "eft debug init-adapter --model DIR --config CONFIG.yaml --out DIR",
     "loss, gradients and logits of packed rows (checks against transformers); a fresh adapter"},
    {"config-schema", cmd_config_schema, "eft config-schema [--json]",
     "list the config keys: type, default, status, meaning"},
    {"tokenize", cmd_tokenize, "eft tokenize --tokenizer PATH [--no-special]",
     "JSONL {\"text\"} lines on stdin to {\"ids\"} lines on stdout"},
};
const int eft_ncommands = (int)EFT_ARRAY_LEN(eft_commands);

static const eft_command *find(const char *name) {
    for (int i = 0; i < eft_ncommands; i++)
        if (!strcmp(eft_commands[i].name, name)) return &eft_commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv) {
    if (argc > 1) {
        const eft_command *c = find(argv[1]);
        if (!c) return eft_fail("help: no command \"%s\". Run `eft help` for the list.", argv[1]);
        printf("usage: %s\n  %s\n", c->usage, c->summary);
        return 0;
    }
    printf("eft %s: fine-tune Gemma 4 from Axolotl YAML configs, in C.\n\nusage: eft COMMAND "
           "[ARGS]\n\ncommands:\n",
           EFT_VERSION);
    for (int i = 0; i < eft_ncommands; i++)
        printf("  %-14s %s\n", eft_commands[i].name, eft_commands[i].summary);
    printf("\n`eft help COMMAND` shows a command's usage. Exit status: 0 success, 1 user error "
           "(bad config, data or path), 2 internal error.\n");
    return 0;
}

const char *cli_flag_value(int argc, char **argv, int *i, const char *flag, int *missing) {
    size_t n = strlen(flag);
    const char *a = argv[*i];
    if (strncmp(a, flag, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] != 0) return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        eft_fail("%s needs a value", flag);
        return NULL;
    }
    return argv[++*i];
}

int main(int argc, char **argv) {
    if (argc < 2) {
        cmd_help(1, argv);
        return 1;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) name = "help";
    if (!strcmp(name, "--version")) name = "version";
    const eft_command *c = find(name);
    if (!c) {
        fprintf(stderr, "eft: error: no command \"%s\". Run `eft help` for the list.\n", name);
        return 1;
    }
    if (c->run(argc - 1, argv + 1) == 0) return 0;
    int code = eft_err_code() == EFT_OK ? EFT_ERR_INTERNAL : eft_err_code();
    const char *msg = *eft_err_msg() ? eft_err_msg() : "failed without a message (a bug in eft)";
    fprintf(stderr, "eft: %s%s\n", code == EFT_ERR_INTERNAL ? "internal error: " : "error: ", msg);
    return code;
}
