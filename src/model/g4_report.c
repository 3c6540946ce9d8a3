/* g4_report.c: the human-readable reports of a plan: summary, layer table, parameter counts,
 * memory plan, tensor list. Used by `eft info` and `eft train --dry-run`. */
#include "model/g4_report.h"

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>
#include <stdio.h>

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

void g4_report_summary(FILE *f, const char *dir, const g4_plan *p) {
    const g4_config *c = p->cfg;
    const char *v = variant_name(c);
    fprintf(f, "model       %s\n", dir);
    fprintf(f, "            model_type %s (%s); text weights under \"%s\"\n", c->model_type,
            c->wrapper ? "multimodal wrapper" : "text only", c->weight_prefix);
    if (c->wrapper)
        fprintf(f, "            vision tower: %s, audio tower: %s (not used for text training)\n",
                c->has_vision ? "yes" : "no", c->has_audio ? "yes" : "no");
    if (v)
        fprintf(f, "variant     Gemma 4 %s-shaped (hidden size and depth match the release)\n", v);
    else
        fprintf(f, "variant     custom Gemma 4 shape\n");
    fprintf(f, "text model  H=%lld L=%d heads=%lld vocab=%lld max_positions=%lld eps=%g\n",
            (long long)p->H, p->L, (long long)p->nH, (long long)p->V,
            (long long)c->max_position_embeddings, c->rms_norm_eps);
    for (int k = 0; k < G4_NATTN_KINDS; k++) {
        int n = 0, first = -1;
        for (int l = 0; l < p->L; l++)
            if (p->layers[l].kind == (g4_attn_kind)k) n++, first = first < 0 ? l : first;
        if (!n) continue;
        const g4_layer *y = &p->layers[first];
        fprintf(f, "%-11s %-7s x%-3d D=%d nKV=%d%s", k ? "" : "attention", k ? "full" : "sliding",
                n, y->head_dim, y->n_kv, y->k_eq_v ? " k_eq_v" : "");
        if (y->window) fprintf(f, " W=%d", y->window);
        fprintf(f, "  RoPE %s theta=%g, %d of %d pairs rotate\n",
                y->rope_type == G4_ROPE_DEFAULT ? "default" : "proportional", y->rope_theta,
                y->rope_pairs, y->head_dim / 2);
    }
    fprintf(f, "MLP         gelu_pytorch_tanh, I=%lld", (long long)c->intermediate_size);
    if (c->use_double_wide_mlp && c->num_kv_shared_layers)
        fprintf(f, " (%lld on KV-shared layers)", (long long)(2 * c->intermediate_size));
    fprintf(f, "\n");
    if (c->num_kv_shared_layers) {
        fprintf(f, "KV sharing  layers %d-%d reuse K/V:", p->first_kv_shared, p->L - 1);
        const char *sep = " ";
        for (int l = 0; l < p->L; l++)
            if (p->layers[l].stores_kv) {
                fprintf(f, "%s%s layers read layer %d", sep,
                        p->layers[l].kind == G4_ATTN_FULL ? "full" : "sliding", l);
                sep = ", ";
            }
        fprintf(f, "\n");
    } else {
        fprintf(f, "KV sharing  none\n");
    }
    if (p->P)
        fprintf(f, "PLE         P=%lld, table [%lld, %lld]\n", (long long)p->P,
                (long long)c->vocab_size_per_layer_input, (long long)(p->L * p->P));
    else
        fprintf(f, "PLE         none\n");
    if (c->enable_moe_block)
        fprintf(f,
                "MoE         %d experts, top %d, I_e=%lld, beside the dense MLP in every layer\n",
                c->num_experts, c->top_k_experts, (long long)c->moe_intermediate_size);
    else
        fprintf(f, "MoE         none\n");
    fprintf(f, "head        embedding scale bf16(sqrt(H)) = %g; LM head %s; logit softcap %s",
            p->embed_scale, c->tie_word_embeddings ? "tied" : "untied",
            c->final_logit_softcapping > 0 ? "" : "none");
    if (c->final_logit_softcapping > 0) fprintf(f, "%g", c->final_logit_softcapping);
    fprintf(f, "\n\n");
}

void g4_report_layers(FILE *f, const g4_plan *p, const g4_run_shape *s) {
    fprintf(f,
            "layer plan (KV: own = computes its K/V, lends = later layers read it too, <-N = "
            "reads layer N's;\n            act = MiB kept for the backward without recompute, "
            "T=%lld x %lld rows)\n",
            (long long)s->seq_len, (long long)s->micro_batch);
    fprintf(f, "  layer kind       D  nKV  k=v  rep  window  rope      MLP  KV      PLE  MoE     "
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
        fprintf(f, "  %5d %-7s %4d %4d  %-3s %4d  %6d  %-7s %6lld  %-6s  %-3s  %-3s %7.1f\n", l,
                y->kind == G4_ATTN_FULL ? "full" : "sliding", y->head_dim, y->n_kv,
                y->k_eq_v ? "yes" : "-", y->n_rep, y->window, rope, (long long)y->mlp_width, kv,
                y->ple ? "yes" : "-", y->moe ? "yes" : "-", mib(g4_layer_kept_bytes(p, &full, l)));
    }
    fprintf(f, "\n");
}

void g4_report_params(FILE *f, const g4_plan *p, const g4_param_counts *n) {
    char b[40];
    fprintf(f, "parameters\n");
    for (int g = 0; g < G4_GROUP_BUFFER; g++) {
        if (!n->group[g]) continue;
        fprintf(f, "  %-22s %18s", g4_group_name((g4_group)g), grouped(n->group[g], b, sizeof b));
        if (g == G4_GROUP_PLE) {
            char t[40];
            fprintf(f, "  (table %s)",
                    grouped(p->cfg->vocab_size_per_layer_input * p->L * p->P, t, sizeof t));
        }
        fprintf(f, "\n");
    }
    fprintf(f, "  %-22s %18s  (%.2f B)\n", "total", grouped(n->total, b, sizeof b), n->total / 1e9);
    if (n->active != n->total)
        fprintf(f, "  %-22s %18s  (%.2f B: all but the experts, plus %d of %d experts)\n",
                "active per token", grouped(n->active, b, sizeof b), n->active / 1e9,
                p->cfg->top_k_experts, p->cfg->num_experts);
    fprintf(f, "  %-22s %18s  (in nn.Linear modules: what load_in_4bit quantises)\n",
            "linear weights", grouped(n->linear, b, sizeof b));
    fprintf(f, "  %-22s %18s  (layer_scalar buffers, not parameters)\n\n", "buffers",
            grouped(n->group[G4_GROUP_BUFFER], b, sizeof b));
}

void g4_report_describe_shape(const g4_run_shape *s, eft_buf *o) {
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

void g4_report_memory(FILE *f, const g4_run_shape *s, const g4_memory *m, const g4_memory *r) {
    eft_buf d = {0};
    g4_report_describe_shape(s, &d);
    fprintf(f, "memory plan (%s)\n", d.data);
    eft_buf_free(&d);
    fprintf(f, "  %-34s %13s %13s\n", "", s->recompute ? "no recompute" : "no recompute *",
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
        fprintf(f, "  %-34s %9.2f GiB %9.2f GiB\n", rows[i].name, gib(a), gib(b));
    }
    fprintf(f, "  (trained parameters: %lld; * marks the mode chosen by gradient_checkpointing)\n",
            (long long)m->trainable);
}

void g4_report_tensors(FILE *f, const g4_tensors *ts) {
    fprintf(f, "\ntensors (%d)\n", ts->n);
    for (int i = 0; i < ts->n; i++) {
        const g4_tensor *t = &ts->t[i];
        char shape[64];
        int o = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->ndim; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", d ? ", " : "",
                          (long long)t->shape[d]);
        snprintf(shape + o, sizeof shape - (size_t)o, "]");
        fprintf(f, "  %-66s %-22s %-11s %s\n", t->name, shape, g4_group_name(t->group),
                t->linear ? g4_linear_name(t->linear) : "");
    }
}
