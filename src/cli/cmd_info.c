/* cmd_info.c: `eft info --model DIR [flags]`: what a Gemma 4 checkpoint is and what training it
 * costs, from its config.json alone (no weights are read).
 *
 * Prints the model summary, the layer plan (one row per layer), parameter counts per group and
 * the memory plan of one run shape, with and without recompute. The run shape comes from
 * defaults and flags in run_shape_fill(), the one place a YAML config will feed it once the
 * config loader exists; until then a CONFIG.yaml argument is refused with a clear message.
 */
#include "cli/cli.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "model/g4_config.h"
#include "model/g4_memory.h"
#include "model/g4_plan.h"

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
    "usage: eft info --model DIR [FLAGS]\n"
    "  Reads DIR/config.json (no weights) and prints the model summary, the layer plan,\n"
    "  parameter counts and the memory plan of one run, with and without recompute.\n"
    "  --sequence-len N            tokens per row (default 2048)\n"
    "  --micro-batch-size N        rows per micro-batch (default 1)\n"
    "  --load-in-4bit              NF4 base weights (QLoRA)\n"
    "  --quantize-moe-experts      with --load-in-4bit: NF4 experts too\n"
    "  --adapter lora|none         LoRA (default) or full fine-tuning\n"
    "  --lora-r N                  LoRA rank (default 16)\n"
    "  --lora-target-modules LIST  q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj\n"
    "                              (the default), and experts\n"
    "  --optimizer NAME            adamw_torch (default) or adamw_bnb_8bit\n"
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
    if (a->config_yaml)
        return eft_fail("info: %s: reading the run shape from a YAML config is not available in "
                        "this build yet; give it as flags (--sequence-len, --micro-batch-size, "
                        "--load-in-4bit, --adapter, --lora-r, --gradient-checkpointing).",
                        a->config_yaml);
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

/* The run shape: defaults, then the flags. The YAML config, once read, slots in here. */
static int run_shape_fill(const info_args *a, g4_run_shape *s) {
    g4_run_shape_default(s);
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
        if (!strcmp(o, "adamw_torch") || !strcmp(o, "adamw_torch_fused") || !strcmp(o, "adamw"))
            s->optim = G4_OPTIM_ADAMW;
        else if (!strcmp(o, "adamw_bnb_8bit") || !strcmp(o, "adamw_8bit") ||
                 !strcmp(o, "paged_adamw_8bit"))
            s->optim = G4_OPTIM_ADAMW_8BIT;
        else
            return eft_fail("--optimizer: \"%s\" is not supported; use adamw_torch (fp32 AdamW) "
                            "or adamw_bnb_8bit (8-bit AdamW).",
                            o);
    }
    if (a->targets && parse_targets(a->targets, &s->lora_targets)) return -1;
    if (a->load_in_4bit >= 0) s->weights = a->load_in_4bit ? G4_WEIGHTS_NF4 : G4_WEIGHTS_BF16;
    if (a->recompute >= 0) s->recompute = a->recompute;
    if (a->quantize_experts >= 0) s->quantize_moe_experts = a->quantize_experts;
    return 0;
}

/* ---- printing ------------------------------------------------------------------------------- */

/* 1234567 -> "1,234,567" (into buf). */
static const char *grouped(int64_t x, char *buf, size_t n) {
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", (long long)(x < 0 ? -x : x));
    size_t o = 0;
    if (x < 0 && o + 1 < n) buf[o++] = '-';
    for (int i = 0; i < len && o + 2 < n; i++) {
        buf[o++] = digits[i];
        if ((len - i - 1) % 3 == 0 && i < len - 1) buf[o++] = ',';
    }
    buf[o] = 0;
    return buf;
}

static double gib(int64_t b) {
    return (double)b / (1024.0 * 1024.0 * 1024.0);
}
static double mib(int64_t b) {
    return (double)b / (1024.0 * 1024.0);
}

/* The released sizes, to name what a config resembles. */
static const char *variant_name(const g4_config *c) {
    static const struct {
        int64_t H;
        int L;
        const char *name;
    } known[] = {
        {1536, 35, "E2B"},     {2560, 42, "E4B"}, {3840, 48, "12B"},
        {2816, 30, "26B-A4B"}, {5376, 60, "31B"},
    };
    for (size_t i = 0; i < EFT_ARRAY_LEN(known); i++)
        if (known[i].H == c->hidden_size && known[i].L == c->num_hidden_layers)
            return known[i].name;
    return NULL;
}

static void print_summary(const char *dir, const g4_plan *p) {
    const g4_config *c = p->cfg;
    const char *v = variant_name(c);
    printf("model       %s\n", dir);
    printf("            model_type %s (%s); text weights under \"%s\"\n", c->model_type,
           c->wrapper ? "multimodal wrapper" : "text only", c->weight_prefix);
    if (c->wrapper)
        printf("            vision tower: %s, audio tower: %s (not used for text training)\n",
               c->has_vision ? "yes" : "no", c->has_audio ? "yes" : "no");
    if (v)
        printf("variant     Gemma 4 %s-shaped (hidden size and depth match the release)\n", v);
    else
        printf("variant     custom Gemma 4 shape\n");
    printf("text model  H=%lld L=%d heads=%lld vocab=%lld max_positions=%lld eps=%g\n",
           (long long)p->H, p->L, (long long)p->nH, (long long)p->V,
           (long long)c->max_position_embeddings, c->rms_norm_eps);
    for (int k = 0; k < G4_NATTN_KINDS; k++) {
        int n = 0, first = -1;
        for (int l = 0; l < p->L; l++)
            if (p->layers[l].kind == (g4_attn_kind)k) n++, first = first < 0 ? l : first;
        if (!n) continue;
        const g4_layer *y = &p->layers[first];
        printf("%-11s %-7s x%-3d D=%d nKV=%d%s", k ? "" : "attention", k ? "full" : "sliding", n,
               y->head_dim, y->n_kv, y->k_eq_v ? " k_eq_v" : "");
        if (y->window) printf(" W=%d", y->window);
        printf("  RoPE %s theta=%g, %d of %d pairs rotate\n",
               y->rope_type == G4_ROPE_DEFAULT ? "default" : "proportional", y->rope_theta,
               y->rope_pairs, y->head_dim / 2);
    }
    printf("MLP         gelu_pytorch_tanh, I=%lld", (long long)c->intermediate_size);
    if (c->use_double_wide_mlp && c->num_kv_shared_layers)
        printf(" (%lld on KV-shared layers)", (long long)(2 * c->intermediate_size));
    printf("\n");
    if (c->num_kv_shared_layers) {
        printf("KV sharing  layers %d-%d reuse K/V:", p->first_kv_shared, p->L - 1);
        const char *sep = " ";
        for (int l = 0; l < p->L; l++)
            if (p->layers[l].stores_kv) {
                printf("%s%s layers read layer %d", sep,
                       p->layers[l].kind == G4_ATTN_FULL ? "full" : "sliding", l);
                sep = ", ";
            }
        printf("\n");
    } else {
        printf("KV sharing  none\n");
    }
    if (p->P)
        printf("PLE         P=%lld, table [%lld, %lld]\n", (long long)p->P,
               (long long)c->vocab_size_per_layer_input, (long long)(p->L * p->P));
    else
        printf("PLE         none\n");
    if (c->enable_moe_block)
        printf("MoE         %d experts, top %d, I_e=%lld, beside the dense MLP in every layer\n",
               c->num_experts, c->top_k_experts, (long long)c->moe_intermediate_size);
    else
        printf("MoE         none\n");
    printf("head        embedding scale bf16(sqrt(H)) = %g; LM head %s; logit softcap %s",
           p->embed_scale, c->tie_word_embeddings ? "tied" : "untied",
           c->final_logit_softcapping > 0 ? "" : "none");
    if (c->final_logit_softcapping > 0) printf("%g", c->final_logit_softcapping);
    printf("\n\n");
}

static void print_layers(const g4_plan *p, const g4_run_shape *s) {
    printf("layer plan (KV: own = computes its K/V, lends = later layers read it too, <-N = "
           "reads layer N's;\n            act = MiB kept for the backward without recompute, "
           "T=%lld x %lld rows)\n",
           (long long)s->seq_len, (long long)s->micro_batch);
    printf("  layer kind       D  nKV  k=v  rep  window  rope      MLP  KV      PLE  MoE     "
           "act\n");
    g4_run_shape full = *s;
    full.recompute = false;
    for (int l = 0; l < p->L; l++) {
        const g4_layer *y = &p->layers[l];
        char kv[16], rope[16];
        if (y->kv_shared)
            snprintf(kv, sizeof kv, "<-%d", y->kv_donor);
        else
            snprintf(kv, sizeof kv, "%s", y->stores_kv ? "lends" : "own");
        snprintf(rope, sizeof rope, "%d/%d", y->rope_pairs, y->head_dim / 2);
        printf("  %5d %-7s %4d %4d  %-3s %4d  %6d  %-7s %6lld  %-6s  %-3s  %-3s %7.1f\n", l,
               y->kind == G4_ATTN_FULL ? "full" : "sliding", y->head_dim, y->n_kv,
               y->k_eq_v ? "yes" : "-", y->n_rep, y->window, rope, (long long)y->mlp_width, kv,
               y->ple ? "yes" : "-", y->moe ? "yes" : "-", mib(g4_layer_kept_bytes(p, &full, l)));
    }
    printf("\n");
}

static void print_params(const g4_plan *p, const g4_param_counts *n) {
    char b[40];
    printf("parameters\n");
    for (int g = 0; g < G4_GROUP_BUFFER; g++) {
        if (!n->group[g]) continue;
        printf("  %-22s %18s", g4_group_name((g4_group)g), grouped(n->group[g], b, sizeof b));
        if (g == G4_GROUP_PLE) {
            char t[40];
            printf("  (table %s)",
                   grouped(p->cfg->vocab_size_per_layer_input * p->L * p->P, t, sizeof t));
        }
        printf("\n");
    }
    printf("  %-22s %18s  (%.2f B)\n", "total", grouped(n->total, b, sizeof b), n->total / 1e9);
    if (n->active != n->total)
        printf("  %-22s %18s  (%.2f B: all but the experts, plus %d of %d experts)\n",
               "active per token", grouped(n->active, b, sizeof b), n->active / 1e9,
               p->cfg->top_k_experts, p->cfg->num_experts);
    printf("  %-22s %18s  (in nn.Linear modules: what load_in_4bit quantises)\n", "linear weights",
           grouped(n->linear, b, sizeof b));
    printf("  %-22s %18s  (layer_scalar buffers, not parameters)\n\n", "buffers",
           grouped(n->group[G4_GROUP_BUFFER], b, sizeof b));
}

static void describe_shape(const g4_run_shape *s, eft_buf *o) {
    eft_buf_printf(o, "T=%lld, micro batch %lld, weights %s", (long long)s->seq_len,
                   (long long)s->micro_batch, s->weights == G4_WEIGHTS_NF4 ? "NF4" : "bf16");
    if (s->weights == G4_WEIGHTS_NF4 && s->quantize_moe_experts) eft_buf_puts(o, " (experts too)");
    if (s->train == G4_TRAIN_FULL) {
        eft_buf_puts(o, ", full fine-tuning (fp32 masters)");
    } else {
        eft_buf_printf(o, ", LoRA r=%d on", s->lora_r);
        static const char *names[] = {"q", "k", "v", "o", "gate", "up", "down", "experts"};
        const char *sep = " ";
        for (int i = 0; i < 8; i++)
            if (s->lora_targets & (1u << i)) eft_buf_printf(o, "%s%s", sep, names[i]), sep = ",";
    }
    eft_buf_printf(o, ", %s, %d threads", s->optim == G4_OPTIM_ADAMW ? "AdamW fp32" : "AdamW 8-bit",
                   s->threads);
}

static void print_memory(const g4_run_shape *s, const g4_memory *m, const g4_memory *r) {
    eft_buf d = {0};
    describe_shape(s, &d);
    printf("memory plan (%s)\n", d.data);
    eft_buf_free(&d);
    printf("  %-34s %13s %13s\n", "", s->recompute ? "no recompute" : "no recompute *",
           s->recompute ? "recompute *" : "recompute");
    const struct {
        const char *name;
        size_t off;
    } rows[] = {
        {"weights", offsetof(g4_memory, weights)},
        {"  of which NF4", offsetof(g4_memory, weights_nf4)},
        {"LoRA adapter (fp32)", offsetof(g4_memory, adapter)},
        {"gradients (fp32)", offsetof(g4_memory, grads)},
        {"optimizer state", offsetof(g4_memory, optim)},
        {"activations", offsetof(g4_memory, activations)},
        {"  model-level tensors", offsetof(g4_memory, act_model)},
        {"  kept per layer, summed", offsetof(g4_memory, act_layers)},
        {"  one layer re-made (recompute)", offsetof(g4_memory, act_replay)},
        {"scratch", offsetof(g4_memory, scratch)},
        {"  attention tiles", offsetof(g4_memory, scratch_attn)},
        {"  fused loss tiles", offsetof(g4_memory, scratch_loss)},
        {"  weight slabs (bf16/NF4 -> fp32)", offsetof(g4_memory, scratch_gemm)},
        {"  backward working set", offsetof(g4_memory, scratch_grad)},
        {"total", offsetof(g4_memory, total)},
    };
    for (size_t i = 0; i < EFT_ARRAY_LEN(rows); i++) {
        int64_t a = *(const int64_t *)((const char *)m + rows[i].off);
        int64_t b = *(const int64_t *)((const char *)r + rows[i].off);
        if (!a && !b) continue;
        printf("  %-34s %9.2f GiB %9.2f GiB\n", rows[i].name, gib(a), gib(b));
    }
    printf("  (trained parameters: %lld; * marks the mode chosen by --gradient-checkpointing)\n",
           (long long)m->trainable);
}

static void print_tensors(const g4_tensors *ts) {
    printf("\ntensors (%d)\n", ts->n);
    for (int i = 0; i < ts->n; i++) {
        const g4_tensor *t = &ts->t[i];
        char shape[64];
        int o = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->ndim; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", d ? ", " : "",
                          (long long)t->shape[d]);
        snprintf(shape + o, sizeof shape - (size_t)o, "]");
        printf("  %-66s %-22s %-11s %s\n", t->name, shape, g4_group_name(t->group),
               t->linear ? g4_linear_name(t->linear) : "");
    }
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
    g4_config cfg;
    int rc = g4_config_load(&cfg, path);
    eft_free(path);
    if (rc) return -1;

    g4_run_shape shape;
    g4_plan plan;
    g4_tensors ts;
    g4_param_counts counts;
    g4_memory without, with;
    g4_plan_build(&plan, &cfg);
    g4_tensors_build(&plan, &ts);
    g4_count_params(&plan, &ts, &counts);
    rc = run_shape_fill(a, &shape);
    if (!rc) {
        g4_run_shape s0 = shape, s1 = shape;
        s0.recompute = false;
        s1.recompute = true;
        rc = g4_memory_plan(&plan, &ts, &s0, &without) || g4_memory_plan(&plan, &ts, &s1, &with)
                 ? -1
                 : 0;
    }
    if (!rc) {
        print_summary(a->model, &plan);
        print_layers(&plan, &shape);
        print_params(&plan, &counts);
        print_memory(&shape, &without, &with);
        if (a->tensors) print_tensors(&ts);
    }
    g4_tensors_free(&ts);
    g4_plan_free(&plan);
    g4_config_free(&cfg);
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
