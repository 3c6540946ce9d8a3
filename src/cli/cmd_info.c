/* cmd_info.c: `eft info --model DIR [flags]`: what a Gemma 4 checkpoint is and what training it
 * costs, from its config.json alone (no weights are read).
 *
 * Prints the model summary, the layer plan (one row per layer), parameter counts per group and
 * the memory plan of one run shape, with and without recompute. The run shape comes from
 * defaults (or a YAML config) and flags in run_shape_fill().
 */
#include "cli/cli.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "model/g4_desc.h"
#include "model/g4_memory.h"
#include "model/g4_plan.h"
#include "model/g4_report.h"
#include "io/config.h"
#include "train/run_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the command line asked for, before it becomes a run shape. */
typedef struct info_args {
    const char *model;
    const char *config_yaml;
    const char *seq_len, *micro_batch, *adapter, *lora_r, *targets, *optimizer, *threads;
    int load_in_4bit, recompute, quantize_experts; /* -1 unset, 0, 1 */
    bool tensors, help;
} info_args;

static const char *usage =
    "usage: eft info --model DIR [CONFIG.yaml] [FLAGS]\n"
    "  Reads DIR/config.json (no weights) and prints the model summary, the layer plan,\n"
    "  parameter counts and the memory plan of one run, with and without recompute.\n"
    "  The run is CONFIG.yaml's (sequence_len, micro_batch_size, adapter, lora_r, LoRA\n"
    "  targets, load_in_4bit, optimizer, gradient_checkpointing) when given, with the flags\n"
    "  below on top.\n"
    "  --sequence-len N            tokens per row (default 2048)\n"
    "  --micro-batch-size N        rows per micro-batch (default 1)\n"
    "  --load-in-4bit              NF4 base weights (QLoRA)\n"
    "  --quantize-moe-experts      with --load-in-4bit: NF4 experts too\n"
    "  --adapter lora|none         LoRA (default) or full fine-tuning\n"
    "  --lora-r N                  LoRA rank (default 16)\n"
    "  --lora-target-modules LIST  q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj\n"
    "                              (the default), and experts\n"
    "  --optimizer NAME            adamw_torch (default), adamw_torch_8bit or adamw_bnb_8bit\n"
    "  --gradient-checkpointing    mark the recompute column as the chosen one\n"
    "  --threads N                 threads for the per-thread scratch (default: all)\n"
    "  --tensors                   also list every tensor: name, shape, group\n"
    "  Flags take dashes or underscores (--sequence_len).\n";

/* ---- arguments ------------------------------------------------------------------------------ */

static int parse_int(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return eft_fail("%s: expected a whole number from %lld to %lld, found \"%s\".", flag,
                        (long long)lo, (long long)hi, v);
    *out = x;
    return 0;
}

/* A boolean flag: "--flag", "--flag=true|false", or "--flag true|false". */
static int bool_flag(int argc, char **argv, int *i, const char *flag, int *out) {
    size_t n = strlen(flag);
    const char *a = argv[*i];
    if (strncmp(a, flag, n) || (a[n] && a[n] != '=')) return 0;
    const char *v = a[n] == '=' ? a + n + 1 : NULL;
    if (!v && *i + 1 < argc && (!strcmp(argv[*i + 1], "true") || !strcmp(argv[*i + 1], "false")))
        v = argv[++*i];
    if (!v || !strcmp(v, "true"))
        *out = 1;
    else if (!strcmp(v, "false"))
        *out = 0;
    else
        return eft_fail("%s: expected true or false, found \"%s\".", flag, v);
    return 1;
}

/* Flags may use dashes or underscores (--sequence_len == --sequence-len). The copies are
 * owned by the caller (free each, then the array). */
static char **normalise_flags(int argc, char **argv) {
    char **out = eft_malloc((size_t)argc * sizeof *out);
    for (int i = 0; i < argc; i++) {
        out[i] = eft_strdup(argv[i]);
        if (strncmp(out[i], "--", 2)) continue;
        for (char *c = out[i] + 2; *c && *c != '='; c++)
            if (*c == '_') *c = '-';
    }
    return out;
}

static int parse_args(int argc, char **argv, info_args *a) {
    memset(a, 0, sizeof *a);
    a->load_in_4bit = a->recompute = a->quantize_experts = -1;
    static const struct {
        const char *flag;
        size_t off;
    } valued[] = {
        {"--model", offsetof(info_args, model)},
        {"--sequence-len", offsetof(info_args, seq_len)},
        {"--micro-batch-size", offsetof(info_args, micro_batch)},
        {"--adapter", offsetof(info_args, adapter)},
        {"--lora-r", offsetof(info_args, lora_r)},
        {"--lora-target-modules", offsetof(info_args, targets)},
        {"--optimizer", offsetof(info_args, optimizer)},
        {"--threads", offsetof(info_args, threads)},
    };
    for (int i = 1; i < argc; i++) {
        int missing = 0, r;
        bool done = false;
        for (size_t k = 0; k < EFT_ARRAY_LEN(valued) && !done; k++) {
            const char *v = cli_flag_value(argc, argv, &i, valued[k].flag, &missing);
            if (missing) return -1;
            if (v) *(const char **)((char *)a + valued[k].off) = v, done = true;
        }
        if (done) continue;
        if ((r = bool_flag(argc, argv, &i, "--load-in-4bit", &a->load_in_4bit)) ||
            (r = bool_flag(argc, argv, &i, "--gradient-checkpointing", &a->recompute)) ||
            (r = bool_flag(argc, argv, &i, "--quantize-moe-experts", &a->quantize_experts))) {
            if (r < 0) return -1;
            continue;
        }
        if (!strcmp(argv[i], "--tensors")) {
            a->tensors = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            a->help = true;
            return 0;
        } else if (argv[i][0] == '-') {
            return eft_fail("info: unknown flag \"%s\". Run `eft help info`.", argv[i]);
        } else if (!a->config_yaml) {
            a->config_yaml = argv[i];
        } else {
            return eft_fail("info: one CONFIG.yaml at most, found \"%s\" and \"%s\".",
                            a->config_yaml, argv[i]);
        }
    }
    if (a->help) return 0;
    if (!a->model)
        return eft_fail("info: --model DIR is required: the checkpoint folder holding "
                        "config.json.");
    return 0;
}

static int parse_targets(const char *list, unsigned *out) {
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
        {"q_proj", G4_TARGET_Q},       {"k_proj", G4_TARGET_K},        {"v_proj", G4_TARGET_V},
        {"o_proj", G4_TARGET_O},       {"gate_proj", G4_TARGET_GATE},  {"up_proj", G4_TARGET_UP},
        {"down_proj", G4_TARGET_DOWN}, {"experts", G4_TARGET_EXPERTS},
    };
    *out = 0;
    char *copy = eft_strdup(list), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        size_t k = 0;
        while (k < EFT_ARRAY_LEN(names) && strcmp(names[k].name, t)) k++;
        if (k == EFT_ARRAY_LEN(names)) {
            rc = eft_fail("--lora-target-modules: unknown module \"%s\". Use q_proj, k_proj, "
                          "v_proj, o_proj, gate_proj, up_proj, down_proj or experts.",
                          t);
            break;
        }
        *out |= names[k].bit;
    }
    eft_free(copy);
    if (!rc && !*out) rc = eft_fail("--lora-target-modules: the list is empty.");
    return rc;
}

/* The run shape: the YAML config's (or the defaults), then the flags on top. */
static int run_shape_fill(const info_args *a, const g4_plan *p, const g4_tensors *ts,
                          g4_run_shape *s) {
    g4_run_shape_default(s);
    if (a->config_yaml) {
        eft_config c;
        int rc = cfg_load(&c, a->config_yaml) || cfg_validate(&c) || trn_run_shape(&c, p, ts, s);
        cfg_free(&c);
        if (rc) return -1;
    }
    int64_t v;
    if (a->seq_len) {
        if (parse_int("--sequence-len", a->seq_len, 1, 1 << 24, &v)) return -1;
        s->seq_len = v;
    }
    if (a->micro_batch) {
        if (parse_int("--micro-batch-size", a->micro_batch, 1, 1 << 16, &v)) return -1;
        s->micro_batch = v;
    }
    if (a->lora_r) {
        if (parse_int("--lora-r", a->lora_r, 1, 1 << 16, &v)) return -1;
        s->lora_r = (int)v;
    }
    if (a->threads) {
        if (parse_int("--threads", a->threads, 1, 4096, &v)) return -1;
        s->threads = (int)v;
    }
    if (a->adapter) {
        if (!strcmp(a->adapter, "lora") || !strcmp(a->adapter, "qlora"))
            s->train = G4_TRAIN_LORA;
        else if (!strcmp(a->adapter, "none"))
            s->train = G4_TRAIN_FULL;
        else
            return eft_fail("--adapter: \"%s\" is not supported; use lora, or none for full "
                            "fine-tuning.",
                            a->adapter);
        if (!strcmp(a->adapter, "qlora") && a->load_in_4bit < 0) s->weights = G4_WEIGHTS_NF4;
    }
    if (a->optimizer) {
        const char *o = a->optimizer;
        if (!strcmp(o, "adamw_torch") || !strcmp(o, "adamw_torch_fused") || !strcmp(o, "adamw") ||
            !strcmp(o, "paged_adamw_32bit"))
            s->optim = G4_OPTIM_ADAMW;
        else if (!strcmp(o, "adamw_torch_8bit") || !strcmp(o, "ao_adamw_8bit"))
            s->optim = G4_OPTIM_ADAMW_8BIT_TORCHAO;
        else if (!strcmp(o, "adamw_bnb_8bit") || !strcmp(o, "adamw_8bit") ||
                 !strcmp(o, "paged_adamw_8bit"))
            s->optim = G4_OPTIM_ADAMW_8BIT;
        else
            return eft_fail("--optimizer: \"%s\" is not supported; use adamw_torch (fp32 AdamW), "
                            "adamw_torch_8bit or adamw_bnb_8bit (8-bit AdamW).",
                            o);
    }
    if (a->targets && parse_targets(a->targets, &s->lora_targets)) return -1;
    if (a->load_in_4bit >= 0) s->weights = a->load_in_4bit ? G4_WEIGHTS_NF4 : G4_WEIGHTS_BF16;
    if (a->recompute >= 0) s->recompute = a->recompute;
    if (a->quantize_experts >= 0) s->quantize_moe_experts = a->quantize_experts;
    return 0;
}

/* ---- the command ---------------------------------------------------------------------------- */

static int info_run(const info_args *a) {
    if (!eft_is_dir(a->model))
        return eft_fail("%s: no such folder. Pass --model the checkpoint folder holding "
                        "config.json.",
                        a->model);
    char *path = eft_path_join(a->model, "config.json");
    if (!eft_is_file(path)) {
        eft_fail("%s: not found. --model must be a Hugging Face checkpoint folder holding "
                 "config.json.",
                 path);
        eft_free(path);
        return -1;
    }
    g4_desc d;
    int rc = g4_desc_load(&d, path);
    eft_free(path);
    if (rc) return -1;
    const g4_plan *plan = &d.plan;
    const g4_tensors *ts = &d.ts;

    g4_run_shape shape;
    g4_param_counts counts;
    g4_memory without, with;
    g4_count_params(plan, ts, &counts);
    rc = run_shape_fill(a, plan, ts, &shape);
    if (!rc) {
        g4_run_shape s0 = shape, s1 = shape;
        s0.recompute = false;
        s1.recompute = true;
        rc = g4_memory_plan(plan, ts, &s0, &without) || g4_memory_plan(plan, ts, &s1, &with) ? -1
                                                                                             : 0;
    }
    if (!rc) {
        g4_report_summary(stdout, a->model, plan);
        g4_report_layers(stdout, plan, &shape);
        g4_report_params(stdout, plan, &counts);
        g4_report_memory(stdout, &shape, &without, &with);
        if (a->tensors) g4_report_tensors(stdout, ts);
    }
    g4_desc_free(&d);
    return rc;
}

int cmd_info(int argc, char **argv) {
    char **args = normalise_flags(argc, argv);
    info_args a;
    int rc = parse_args(argc, args, &a);
    if (!rc && a.help)
        printf("%s", usage);
    else if (!rc)
        rc = info_run(&a);
    for (int i = 0; i < argc; i++) eft_free(args[i]);
    eft_free(args);
    return rc;
}
