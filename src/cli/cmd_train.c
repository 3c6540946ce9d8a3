/* cmd_train.c: `eft train CONFIG.yaml [--dry-run] [--print-config] [--key value ...]`.
 *
 * Reads the Axolotl config, applies command-line overrides, and checks everything that can be
 * checked before training: the config's types and rules, that base_model, the tokenizer and the
 * datasets are on this machine, the model's config.json and layer plan, the features this build
 * has, the memory plan, and that the checkpoint holds every tensor with the right shape. --dry-run
 * stops there with exit 0 (or 1 at the first problem).
 */
#include "cli/cli.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/config.h"
#include "model/g4_desc.h"
#include "model/g4_memory.h"
#include "model/g4_plan.h"
#include "model/g4_report.h"
#include "model/g4_weights.h"
#include "train/run_config.h"
#include "train/trainer.h"

#include <stdio.h>
#include <string.h>

static const char *usage =
    "usage: eft train CONFIG.yaml [--dry-run] [--print-config] [--key value ...]\n"
    "       eft evaluate CONFIG.yaml [--key value ...]\n"
    "  Fine-tunes base_model on the config's datasets. Any config key can be overridden on the\n"
    "  command line as --key value or --key=value (dashes or underscores).\n"
    "  --dry-run       check the config, the files it names, the model plan and the memory\n"
    "                  plan, then stop (exit 0 when a run could start, 1 otherwise)\n"
    "  --print-config  print the effective config (every key, and where its value came from)\n";

static int check_tokenizer(const eft_config *c) {
    char *tok = eft_is_dir(c->tokenizer_path) ? eft_path_join(c->tokenizer_path, "tokenizer.json")
                                              : eft_strdup(c->tokenizer_path);
    int rc = 0;
    if (!eft_is_file(tok))
        rc = eft_fail("%s: not found. The tokenizer is read from %s (tokenizer_config, else "
                      "base_model): point tokenizer_config at a folder holding tokenizer.json.",
                      tok, c->tokenizer_config.set ? "tokenizer_config" : "base_model");
    eft_free(tok);
    return rc;
}

typedef struct train_run {
    eft_config cfg;
    g4_desc d;
    bool have_cfg;
} train_run;

static void run_free(train_run *r) {
    g4_desc_free(&r->d);
    if (r->have_cfg) cfg_free(&r->cfg);
}

/* Config, overrides, rules, paths: everything the YAML alone can tell. */
static int load_config(train_run *r, int *argc, char **argv, bool *dry, bool *print) {
    if (*argc < 2 || argv[1][0] == '-')
        return eft_fail("train: the first argument must be the config file. %s", usage);
    const char *path = argv[1];
    r->have_cfg = true; /* cfg_free is due even when cfg_load fails */
    if (cfg_load(&r->cfg, path)) return -1;
    static const char *const keep[] = {"dry-run", "print-config", "help", NULL};
    if (cfg_apply_overrides(&r->cfg, argc, argv, keep)) return -1;
    for (int i = 2; i < *argc; i++) {
        if (!strcmp(argv[i], "--dry-run") || !strcmp(argv[i], "--dry_run"))
            *dry = true;
        else if (!strcmp(argv[i], "--print-config") || !strcmp(argv[i], "--print_config"))
            *print = true;
        else
            return eft_fail("train: unexpected argument \"%s\". %s", argv[i], usage);
    }
    if (*print) cfg_print(stdout, &r->cfg);
    if (cfg_validate(&r->cfg) || cfg_resolve_paths(&r->cfg)) return -1;
    cfg_report_no_effect(&r->cfg);
    return 0;
}

/* config.json, the layer plan and the tensor list. */
static int load_model_plan(train_run *r) {
    return g4_desc_load(&r->d, r->cfg.model_config_path);
}

/* Every tensor the plan needs is in the checkpoint with the right shape and a readable dtype.
 * Frozen bf16 weights are only mapped, not read, so this costs little even for 31B. */
static int check_weights(train_run *r) {
    g4_weights w;
    if (g4_weights_load(&w, &r->d.plan, &r->d.ts, r->cfg.base_model_path, false)) return -1;
    int64_t bytes = 0;
    for (int i = 0; i < r->d.ts.n; i++)
        bytes += r->d.ts.t[i].numel * (w.params[i].w.dtype == OPS_W_BF16 ? 2 : 4);
    printf("weights     %d tensors of %s bound (%.2f GiB)\n", r->d.ts.n, r->cfg.base_model_path,
           (double)bytes / (1024.0 * 1024.0 * 1024.0));
    g4_weights_free(&w);
    return 0;
}

static int dry_run_report(train_run *r) {
    g4_run_shape shape;
    if (trn_run_shape(&r->cfg, &r->d.plan, &r->d.ts, &shape)) return -1;
    g4_param_counts counts;
    g4_count_params(&r->d.plan, &r->d.ts, &counts);
    g4_memory without, with;
    g4_run_shape s0 = shape, s1 = shape;
    s0.recompute = false;
    s1.recompute = true;
    if (g4_memory_plan(&r->d.plan, &r->d.ts, &s0, &without) ||
        g4_memory_plan(&r->d.plan, &r->d.ts, &s1, &with))
        return -1;
    g4_report_summary(stdout, r->cfg.base_model_path, &r->d.plan);
    g4_report_params(stdout, &r->d.plan, &counts);
    g4_report_memory(stdout, &shape, &without, &with);
    return 0;
}

int cmd_train(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s", usage);
            return 0;
        }
    train_run r = {0};
    bool dry = false, print = false;
    int rc = load_config(&r, &argc, argv, &dry, &print);
    if (!rc) rc = check_tokenizer(&r.cfg);
    if (!rc) rc = load_model_plan(&r);
    if (!rc) rc = trn_check_buildable(&r.cfg, &r.d.plan);
    if (!rc && dry) rc = dry_run_report(&r);
    if (!rc && dry) rc = check_weights(&r);
    if (!rc && dry) printf("\ndry run: %s checks out; a training run could start.\n", r.cfg.path);
    if (!rc && !dry) rc = trn_train(&r.cfg);
    run_free(&r);
    return rc;
}

/* `eft evaluate CONFIG.yaml`: the loss on the eval and train splits (trainer.h). */
int cmd_evaluate(int argc, char **argv) {
    train_run r = {0};
    bool dry = false, print = false;
    int rc = load_config(&r, &argc, argv, &dry, &print);
    if (!rc) rc = check_tokenizer(&r.cfg);
    if (!rc) rc = trn_evaluate(&r.cfg);
    run_free(&r);
    return rc;
}
