/* g4_tensors.c: the names, shapes and groups of every Gemma 4 text-model tensor, and the
 * parameter counts derived from them (g4_plan.h).
 *
 * The list mirrors the modules transformers builds (Gemma4TextModel, Gemma4TextDecoderLayer,
 * Gemma4TextAttention, Gemma4TextMLP, Gemma4TextRouter, Gemma4TextExperts) and the checkpoint
 * table of ../shared/spec/gemma4.md section 8. Weights are [out, in] as in nn.Linear.
 */
#include "model/g4_plan.h"

#include "base/err.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *g4_group_name(g4_group g) {
    static const char *names[G4_NGROUPS] = {
        "embed", "ple", "attention", "mlp", "norms", "moe_router", "moe_experts", "buffers",
    };
    return g < G4_NGROUPS ? names[g] : "?";
}

const char *g4_linear_name(g4_linear k) {
    static const char *names[G4_NLIN] = {
        "",
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
        "experts.gate_up_proj",
        "experts.down_proj",
        "per_layer_input_gate",
        "per_layer_projection",
        "per_layer_model_projection",
        "router.proj",
        "lm_head",
    };
    return k < G4_NLIN ? names[k] : "?";
}

typedef struct builder {
    const g4_plan *p;
    g4_tensors *ts;
    int cap;
} builder;

/* Appends one tensor. `suffix` is printf-style, after the weight prefix (or from the top level
 * for lm_head). The shape is given as ndim values. */
static g4_tensor *add(builder *b, int layer, g4_group group, int ndim, const int64_t *shape,
                      bool top_level, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static g4_tensor *add(builder *b, int layer, g4_group group, int ndim, const int64_t *shape,
                      bool top_level, const char *fmt, ...) {
    if (b->ts->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->ts->t = eft_realloc(b->ts->t, (size_t)b->cap * sizeof *b->ts->t);
    }
    g4_tensor *t = &b->ts->t[b->ts->n++];
    memset(t, 0, sizeof *t);
    char suffix[G4_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(suffix, sizeof suffix, fmt, ap);
    va_end(ap);
    int n = snprintf(t->name, sizeof t->name, "%s%s", top_level ? "" : b->p->cfg->weight_prefix,
                     suffix);
    assert(n > 0 && n < (int)sizeof t->name);
    (void)n;
    t->layer = layer;
    t->group = group;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    return t;
}

/* Marks a tensor as a linear map: [out, in] (per expert for 3D expert weights). */
static void linear(g4_tensor *t, g4_linear kind) {
    t->linear = kind;
    t->count = t->ndim == 3 ? t->shape[0] : 1;
    t->out = t->shape[t->ndim - 2];
    t->in = t->shape[t->ndim - 1];
    snprintf(t->module, sizeof t->module, "%s", t->name);
    /* nn.Linear modules own a ".weight"; expert tensors are parameters of their own. */
    size_t n = strlen(t->module);
    if (t->ndim == 2 && n > 7 && !strcmp(t->module + n - 7, ".weight")) t->module[n - 7] = 0;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...)  ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* A tensor of layer l (or -1), in group g, with the given shape and name. */
#define ADD(l, g, shp, ...) add(b, (l), (g), NDIM shp, SHAPE shp, false, __VA_ARGS__)

static void add_layer(builder *b, const g4_layer *y) {
    const g4_plan *p = b->p;
    const g4_config *c = p->cfg;
    int l = y->index;
    int64_t H = p->H, D = y->head_dim, q = p->nH * D, kv = (int64_t)y->n_kv * D;
    int64_t I = y->mlp_width;

    ADD(l, G4_GROUP_NORMS, (H), "layers.%d.input_layernorm.weight", l);
    linear(ADD(l, G4_GROUP_ATTENTION, (q, H), "layers.%d.self_attn.q_proj.weight", l), G4_LIN_Q);
    ADD(l, G4_GROUP_NORMS, (D), "layers.%d.self_attn.q_norm.weight", l);
    if (!y->kv_shared) {
        linear(ADD(l, G4_GROUP_ATTENTION, (kv, H), "layers.%d.self_attn.k_proj.weight", l),
               G4_LIN_K);
        if (!y->k_eq_v)
            linear(ADD(l, G4_GROUP_ATTENTION, (kv, H), "layers.%d.self_attn.v_proj.weight", l),
                   G4_LIN_V);
        ADD(l, G4_GROUP_NORMS, (D), "layers.%d.self_attn.k_norm.weight", l);
    }
    linear(ADD(l, G4_GROUP_ATTENTION, (H, q), "layers.%d.self_attn.o_proj.weight", l), G4_LIN_O);
    ADD(l, G4_GROUP_NORMS, (H), "layers.%d.post_attention_layernorm.weight", l);

    ADD(l, G4_GROUP_NORMS, (H), "layers.%d.pre_feedforward_layernorm.weight", l);
    linear(ADD(l, G4_GROUP_MLP, (I, H), "layers.%d.mlp.gate_proj.weight", l), G4_LIN_GATE);
    linear(ADD(l, G4_GROUP_MLP, (I, H), "layers.%d.mlp.up_proj.weight", l), G4_LIN_UP);
    linear(ADD(l, G4_GROUP_MLP, (H, I), "layers.%d.mlp.down_proj.weight", l), G4_LIN_DOWN);
    if (y->moe) {
        int64_t E = c->num_experts, Ie = c->moe_intermediate_size;
        ADD(l, G4_GROUP_NORMS, (H), "layers.%d.post_feedforward_layernorm_1.weight", l);
        linear(ADD(l, G4_GROUP_MOE_ROUTER, (E, H), "layers.%d.router.proj.weight", l),
               G4_LIN_ROUTER);
        ADD(l, G4_GROUP_MOE_ROUTER, (H), "layers.%d.router.scale", l);
        ADD(l, G4_GROUP_MOE_ROUTER, (E), "layers.%d.router.per_expert_scale", l);
        ADD(l, G4_GROUP_NORMS, (H), "layers.%d.pre_feedforward_layernorm_2.weight", l);
        linear(ADD(l, G4_GROUP_MOE_EXPERTS, (E, 2 * Ie, H), "layers.%d.experts.gate_up_proj", l),
               G4_LIN_EXPERTS_GATE_UP);
        linear(ADD(l, G4_GROUP_MOE_EXPERTS, (E, H, Ie), "layers.%d.experts.down_proj", l),
               G4_LIN_EXPERTS_DOWN);
        ADD(l, G4_GROUP_NORMS, (H), "layers.%d.post_feedforward_layernorm_2.weight", l);
    }
    ADD(l, G4_GROUP_NORMS, (H), "layers.%d.post_feedforward_layernorm.weight", l);
    if (y->ple) {
        linear(ADD(l, G4_GROUP_PLE, (p->P, H), "layers.%d.per_layer_input_gate.weight", l),
               G4_LIN_PLE_GATE);
        linear(ADD(l, G4_GROUP_PLE, (H, p->P), "layers.%d.per_layer_projection.weight", l),
               G4_LIN_PLE_PROJ);
        ADD(l, G4_GROUP_NORMS, (H), "layers.%d.post_per_layer_input_norm.weight", l);
    }
    ADD(l, G4_GROUP_BUFFER, (1), "layers.%d.layer_scalar", l);
}

void g4_tensors_build(const g4_plan *p, g4_tensors *out) {
    memset(out, 0, sizeof *out);
    builder bb = {p, out, 0}, *b = &bb;
    const g4_config *c = p->cfg;
    int64_t H = p->H;

    ADD(-1, G4_GROUP_EMBED, (p->V, H), "embed_tokens.weight");
    if (p->P) {
        int64_t LP = (int64_t)p->L * p->P;
        ADD(-1, G4_GROUP_PLE, (c->vocab_size_per_layer_input, LP), "embed_tokens_per_layer.weight");
        linear(ADD(-1, G4_GROUP_PLE, (LP, H), "per_layer_model_projection.weight"),
               G4_LIN_PLE_MODEL_PROJ);
        ADD(-1, G4_GROUP_NORMS, (p->P), "per_layer_projection_norm.weight");
    }
    for (int l = 0; l < p->L; l++) add_layer(b, &p->layers[l]);
    ADD(-1, G4_GROUP_NORMS, (H), "norm.weight");
    if (!c->tie_word_embeddings)
        linear(add(b, -1, G4_GROUP_EMBED, 2, SHAPE(p->V, H), true, "lm_head.weight"),
               G4_LIN_LM_HEAD);
}

void g4_tensors_free(g4_tensors *ts) {
    eft_free(ts->t);
    ts->t = NULL;
    ts->n = 0;
}

const g4_tensor *g4_tensors_find(const g4_tensors *ts, const char *name) {
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->t[i].name, name)) return &ts->t[i];
    return NULL;
}

bool g4_tensor_redundant(const g4_plan *p, const char *name) {
    if (p->cfg->tie_word_embeddings && !strcmp(name, "lm_head.weight")) return true;
    size_t n = strlen(p->cfg->weight_prefix);
    if (strncmp(name, p->cfg->weight_prefix, n)) return false;
    const char *s = name + n;
    if (strncmp(s, "layers.", 7)) return false;
    char *end;
    long l = strtol(s + 7, &end, 10);
    if (end == s + 7 || l < 0 || l >= p->L || !p->layers[l].kv_shared) return false;
    static const char *kv[] = {".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
                               ".self_attn.k_norm.weight", ".self_attn.v_norm.weight"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(kv); i++)
        if (!strcmp(end, kv[i])) return true;
    return false;
}

void g4_count_params(const g4_plan *p, const g4_tensors *ts, g4_param_counts *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < ts->n; i++) {
        const g4_tensor *t = &ts->t[i];
        out->group[t->group] += t->numel;
        if (t->group != G4_GROUP_BUFFER) out->total += t->numel;
        if (t->linear != G4_LIN_NONE && t->group != G4_GROUP_MOE_EXPERTS) out->linear += t->numel;
    }
    int64_t experts = out->group[G4_GROUP_MOE_EXPERTS];
    out->active = out->total - experts;
    if (experts) {
        const g4_config *c = p->cfg;
        /* Every expert has the same size, so K/E of them is exact. */
        assert(experts % c->num_experts == 0);
        out->active += experts / c->num_experts * c->top_k_experts;
    }
}
