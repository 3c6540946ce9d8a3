/* g4_weights.c: binding a checkpoint's tensors to the model's roles (see g4_weights.h). */
#include "model/g4_weights.h"

#include "base/err.h"
#include "base/half.h"
#include "base/log.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Layer tensors by the name that follows "layers.<l>.". */
static const struct {
    const char *suffix;
    size_t off;
} layer_roles[] = {
    {"input_layernorm.weight", offsetof(g4_layer_params, input_norm)},
    {"post_attention_layernorm.weight", offsetof(g4_layer_params, post_attn_norm)},
    {"pre_feedforward_layernorm.weight", offsetof(g4_layer_params, pre_ffw_norm)},
    {"post_feedforward_layernorm.weight", offsetof(g4_layer_params, post_ffw_norm)},
    {"self_attn.q_proj.weight", offsetof(g4_layer_params, q)},
    {"self_attn.k_proj.weight", offsetof(g4_layer_params, k)},
    {"self_attn.v_proj.weight", offsetof(g4_layer_params, v)},
    {"self_attn.o_proj.weight", offsetof(g4_layer_params, o)},
    {"self_attn.q_norm.weight", offsetof(g4_layer_params, q_norm)},
    {"self_attn.k_norm.weight", offsetof(g4_layer_params, k_norm)},
    {"mlp.gate_proj.weight", offsetof(g4_layer_params, gate)},
    {"mlp.up_proj.weight", offsetof(g4_layer_params, up)},
    {"mlp.down_proj.weight", offsetof(g4_layer_params, down)},
    {"per_layer_input_gate.weight", offsetof(g4_layer_params, ple_gate)},
    {"per_layer_projection.weight", offsetof(g4_layer_params, ple_proj)},
    {"post_per_layer_input_norm.weight", offsetof(g4_layer_params, post_ple_norm)},
    {"layer_scalar", offsetof(g4_layer_params, layer_scalar)},
    {"router.proj.weight", offsetof(g4_layer_params, router_proj)},
    {"router.scale", offsetof(g4_layer_params, router_scale)},
    {"router.per_expert_scale", offsetof(g4_layer_params, per_expert_scale)},
    {"experts.gate_up_proj", offsetof(g4_layer_params, experts_gate_up)},
    {"experts.down_proj", offsetof(g4_layer_params, experts_down)},
    {"pre_feedforward_layernorm_2.weight", offsetof(g4_layer_params, pre_ffw_norm_2)},
    {"post_feedforward_layernorm_1.weight", offsetof(g4_layer_params, post_ffw_norm_1)},
    {"post_feedforward_layernorm_2.weight", offsetof(g4_layer_params, post_ffw_norm_2)},
};

/* Model-level tensors by the name that follows the weight prefix. */
static const struct {
    const char *name;
    size_t off;
} model_roles[] = {
    {"embed_tokens.weight", offsetof(g4_weights, embed)},
    {"norm.weight", offsetof(g4_weights, final_norm)},
    {"embed_tokens_per_layer.weight", offsetof(g4_weights, ple_table)},
    {"per_layer_model_projection.weight", offsetof(g4_weights, ple_model_proj)},
    {"per_layer_projection_norm.weight", offsetof(g4_weights, ple_proj_norm)},
};

/* Points each role at its parameter. */
static void bind_roles(g4_weights *w) {
    const g4_plan *p = w->plan;
    const char *prefix = p->cfg->weight_prefix;
    size_t lp = strlen(prefix);
    w->layers = eft_calloc((size_t)p->L, sizeof *w->layers);
    for (int i = 0; i < w->ts->n; i++) {
        g4_param *par = &w->params[i];
        const g4_tensor *t = par->t;
        if (t->linear == G4_LIN_LM_HEAD) {
            w->lm_head = par;
            continue;
        }
        const char *rel = strncmp(t->name, prefix, lp) ? t->name : t->name + lp;
        if (t->layer < 0) {
            for (size_t k = 0; k < EFT_ARRAY_LEN(model_roles); k++)
                if (!strcmp(rel, model_roles[k].name))
                    *(g4_param **)((char *)w + model_roles[k].off) = par;
            continue;
        }
        const char *s = strchr(rel + strlen("layers."), '.');
        if (!s) continue;
        s++;
        for (size_t k = 0; k < EFT_ARRAY_LEN(layer_roles); k++)
            if (!strcmp(s, layer_roles[k].suffix))
                *(g4_param **)((char *)&w->layers[t->layer] + layer_roles[k].off) = par;
    }
}

/* Small tensors that scale activations: always fp32 (norms, layer_scalar, the router's scales). */
static bool always_f32(const g4_tensor *t) {
    return t->group == G4_GROUP_NORMS || t->group == G4_GROUP_BUFFER ||
           (t->group == G4_GROUP_MOE_ROUTER && t->linear == G4_LIN_NONE);
}

static int bind_tensor(g4_param *par, const st_archive *a, const st_tensor *st, bool train,
                       const g4_load_convert *cv) {
    const g4_tensor *t = par->t;
    bool shape_ok = st->ndim == t->ndim;
    for (int d = 0; shape_ok && d < t->ndim; d++) shape_ok = st->shape[d] == t->shape[d];
    if (!shape_ok) {
        char want[64], got[64];
        int a = 0, b = 0;
        for (int d = 0; d < t->ndim; d++)
            a += snprintf(want + a, sizeof want - (size_t)a, "%s%lld", d ? ", " : "",
                          (long long)t->shape[d]);
        for (int d = 0; d < st->ndim && b < 48; d++)
            b += snprintf(got + b, sizeof got - (size_t)b, "%s%lld", d ? ", " : "",
                          (long long)st->shape[d]);
        return eft_fail("%s: tensor %s has shape [%s], but config.json gives [%s]. The weights "
                        "and config.json are from different models.",
                        st->file, t->name, got, want);
    }
    if (st->dtype != ST_BF16 && st->dtype != ST_F16 && st->dtype != ST_F32)
        return eft_fail("%s: tensor %s is %s; eft reads BF16, F16 and F32 weights.", st->file,
                        t->name, st_dtype_name(st->dtype));
    if (cv && !train) {
        int took = cv->convert(par, a, st, cv->ctx);
        if (took) return took < 0 ? -1 : 0;
    }
    bool aligned = ((uintptr_t)st->data % st_dtype_size(st->dtype)) == 0;
    if (!train && !always_f32(t) && aligned && st->dtype == ST_BF16) {
        par->w = ops_w_bf16(st->data);
        return 0;
    }
    if (!train && !always_f32(t) && aligned && st->dtype == ST_F32) {
        par->w = ops_w_real(st->data);
        return 0;
    }
    par->f32 = eft_malloc_aligned((size_t)t->numel * sizeof(float));
    if (st_to_f32(st, par->f32, (size_t)t->numel)) return -1;
    par->w = ops_w_real(par->f32);
    return 0;
}

static void init_params(g4_weights *w, const g4_plan *p, const g4_tensors *ts) {
    memset(w, 0, sizeof *w);
    w->plan = p;
    w->ts = ts;
    w->params = eft_calloc((size_t)ts->n, sizeof *w->params);
    for (int i = 0; i < ts->n; i++) w->params[i].t = &ts->t[i];
}

static void give_grads(g4_weights *w) {
    for (int i = 0; i < w->ts->n; i++) {
        g4_param *par = &w->params[i];
        if (par->t->group == G4_GROUP_BUFFER) continue; /* layer_scalar is not trained */
        par->grad = eft_malloc_aligned((size_t)par->t->numel * sizeof(float));
        memset(par->grad, 0, (size_t)par->t->numel * sizeof(float));
    }
}

int g4_weights_load(g4_weights *w, const g4_plan *p, const g4_tensors *ts, const char *path,
                    bool train_all) {
    return g4_weights_load_convert(w, p, ts, path, train_all, NULL);
}

int g4_weights_load_convert(g4_weights *w, const g4_plan *p, const g4_tensors *ts, const char *path,
                            bool train_all, const g4_load_convert *cv) {
    init_params(w, p, ts);
    if (st_open(&w->archive, path)) {
        g4_weights_free(w);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < ts->n && !rc; i++) {
        const st_tensor *st;
        if (st_get(w->archive, ts->t[i].name, &st)) {
            eft_err_context("the checkpoint at %s lacks a tensor config.json asks for (is it a "
                            "Gemma 4 checkpoint of this size?)",
                            path);
            rc = -1;
            break;
        }
        rc = bind_tensor(&w->params[i], w->archive, st,
                         train_all && ts->t[i].group != G4_GROUP_BUFFER, cv);
    }
    if (!rc) {
        /* Text-model tensors the plan does not know are worth a word (towers are expected). */
        size_t lp = strlen(p->cfg->weight_prefix), unknown = 0;
        const char *first = NULL;
        for (size_t i = 0; i < st_count(w->archive); i++) {
            const char *name = st_at(w->archive, i)->name;
            if (strncmp(name, p->cfg->weight_prefix, lp) || g4_tensors_find(ts, name) ||
                g4_tensor_redundant(p, name))
                continue;
            if (!first) first = name;
            unknown++;
        }
        if (unknown)
            eft_warn("%s: %zu tensor(s) under %s are not part of the Gemma 4 text model and are "
                     "ignored (first: %s)",
                     path, unknown, p->cfg->weight_prefix, first);
    }
    if (rc) {
        g4_weights_free(w);
        return -1;
    }
    bind_roles(w);
    if (train_all) give_grads(w);
    return 0;
}

void g4_weights_alloc(g4_weights *w, const g4_plan *p, const g4_tensors *ts, bool train_all,
                      void (*init)(const g4_param *p, float *out, void *ctx), void *ctx) {
    init_params(w, p, ts);
    for (int i = 0; i < ts->n; i++) {
        g4_param *par = &w->params[i];
        par->f32 = eft_malloc_aligned((size_t)par->t->numel * sizeof(float));
        init(par, par->f32, ctx);
        par->w = ops_w_real(par->f32);
    }
    bind_roles(w);
    if (train_all) give_grads(w);
}

void g4_weights_free(g4_weights *w) {
    if (w->params)
        for (int i = 0; i < w->ts->n; i++) {
            eft_free_aligned(w->params[i].f32);
            eft_free(w->params[i].owned);
            eft_free_aligned(w->params[i].grad);
        }
    eft_free(w->params);
    eft_free(w->layers);
    st_close(w->archive);
    memset(w, 0, sizeof *w);
}

float g4_layer_scalar(const g4_weights *w, int l) {
    const g4_param *s = w->layers[l].layer_scalar;
    return s ? s->f32[0] : 1.0f;
}

void g4_weights_zero_grad(g4_weights *w) {
    for (int i = 0; i < w->ts->n; i++) {
        g4_param *par = &w->params[i];
        if (par->grad) memset(par->grad, 0, (size_t)par->t->numel * sizeof(float));
        if (par->lora && par->lora->dA) {
            memset(par->lora->dA, 0, (size_t)par->lora->r * (size_t)par->t->in * sizeof(float));
            memset(par->lora->dB, 0, (size_t)par->t->out * (size_t)par->lora->r * sizeof(float));
        }
    }
}
