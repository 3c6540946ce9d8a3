/* lora.c: creating, initialising and freeing LoRA adapter sets (see lora.h). */
#include "peft/lora.h"

#include "base/err.h"
#include "base/half.h"
#include "base/rng.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

float lora_scale(double alpha, int r, bool rslora) {
    return (float)(rslora ? alpha / sqrt((double)r) : alpha / (double)r);
}

/* torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5)), step by step in double: the gain of
 * leaky_relu with slope a, std = gain / sqrt(fan_in), bound = sqrt(3) * std. (a * a is
 * 5.000000000000001 in double, which is why the result can differ from 1/sqrt(fan_in) in the
 * last bit.) */
double lora_kaiming_bound(int64_t fan_in) {
    double a = sqrt(5.0);
    double gain = sqrt(2.0 / (1.0 + a * a));
    double std = gain / sqrt((double)fan_in);
    return sqrt(3.0) * std;
}

/* Which linear maps take an adapter: nn.Linear modules the model's forward runs through an
 * adapter (g4_linear.c). NULL when `t` may be adapted, else why not. */
static const char *refusal(const g4_tensor *t) {
    switch (t->linear) {
    case G4_LIN_Q:
    case G4_LIN_K:
    case G4_LIN_V:
    case G4_LIN_O:
    case G4_LIN_GATE:
    case G4_LIN_UP:
    case G4_LIN_DOWN:
    case G4_LIN_PLE_GATE:
    case G4_LIN_PLE_PROJ:
    case G4_LIN_PLE_MODEL_PROJ:
    case G4_LIN_ROUTER:
    case G4_LIN_EXPERTS_GATE_UP:
    case G4_LIN_EXPERTS_DOWN:
        return NULL;
    case G4_LIN_LM_HEAD:
        return "LoRA on the LM head is not supported (the head is fused with the loss); leave it "
               "out of lora_target_modules";
    default:
        return "it is not a linear map";
    }
}

/* Floats of one buffer, rounded up to a 64-byte multiple so that every matrix starts aligned. */
static size_t padded(int64_t n) {
    return ((size_t)n + 15) & ~(size_t)15;
}

/* Kaiming-uniform with bound b, then bf16 rounding (lora.h). */
static void fill_uniform(float *v, int64_t n, double b, eft_rng *rng) {
    for (int64_t i = 0; i < n; i++)
        v[i] = eft_round_bf16((float)(b * (2.0 * eft_rng_uniform(rng) - 1.0)));
}

static void fill_normal(float *v, int64_t n, double std, eft_rng *rng) {
    for (int64_t i = 0; i < n; i++) v[i] = eft_round_bf16((float)(std * eft_rng_normal(rng)));
}

/* One module's start values. Its stream depends on the seed and its path only. */
static void init_module(g4_lora *L, const g4_tensor *t, lora_init init, uint64_t seed) {
    if (init == LORA_INIT_EMPTY) return;
    eft_rng rng;
    eft_rng_seed(&rng, seed, eft_rng_stream_of(t->module));
    /* An expert tensor's A and B are PEFT's nn.Linear(in, r*E) and nn.Linear(r*E, out). */
    int64_t rows = (int64_t)L->r * t->count, na = rows * t->in, nb = t->out * rows;
    if (init == LORA_INIT_GAUSSIAN)
        fill_normal(L->A, na, 1.0 / (double)L->r, &rng);
    else
        fill_uniform(L->A, na, lora_kaiming_bound(t->in), &rng);
    if (init == LORA_INIT_LINEAR) fill_uniform(L->B, nb, lora_kaiming_bound(rows), &rng);
    /* Otherwise B stays 0 (the block is zeroed): the adapted model starts as the base model. */
}

void lora_peft_module(char *out, const g4_tensor *t, bool nested) {
    const char *m = t->module;
    if (t->linear != G4_LIN_EXPERTS_GATE_UP && t->linear != G4_LIN_EXPERTS_DOWN) {
        snprintf(out, LORA_MODULE_MAX, "%s", m);
        return;
    }
    const char *dot = strrchr(m, '.'); /* "….experts.gate_up_proj": the module is "….experts" */
    int n = dot ? (int)(dot - m) : (int)strlen(m);
    snprintf(out, LORA_MODULE_MAX, "%.*s%s", n, m, nested ? ".base_layer" : "");
}

/* Whether expert tensor i is gate_up_proj with its layer's down_proj selected too: PEFT then
 * nests gate_up_proj's wrapper inside down_proj's. */
static bool nested_expert(const g4_tensors *ts, const bool *selected, int i) {
    const g4_tensor *t = &ts->t[i];
    if (t->linear != G4_LIN_EXPERTS_GATE_UP) return false;
    for (int j = 0; j < ts->n; j++)
        if (selected[j] && ts->t[j].linear == G4_LIN_EXPERTS_DOWN && ts->t[j].layer == t->layer)
            return true;
    return false;
}

static void set_tensor(lora_tensor *lt, const g4_tensor *t, bool nested, bool is_b, float *data,
                       float *grad, int r) {
    char module[LORA_MODULE_MAX];
    lora_peft_module(module, t, nested);
    snprintf(lt->name, sizeof lt->name, "base_model.model.%s.%s.weight", module,
             is_b ? "lora_B" : "lora_A");
    int64_t rows = (int64_t)r * t->count; /* r * E for an expert tensor */
    lt->shape[0] = is_b ? t->out : rows;
    lt->shape[1] = is_b ? rows : t->in;
    lt->numel = lt->shape[0] * lt->shape[1];
    lt->data = data;
    lt->grad = grad;
    lt->base = t;
}

int lora_attach(lora_adapter *a, g4_weights *w, const bool *selected, const lora_spec *spec,
                uint64_t seed) {
    memset(a, 0, sizeof *a);
    const g4_tensors *ts = w->ts;
    if (spec->r < 1)
        return eft_fail("lora_r is %d; LoRA needs a rank of at least 1. Set lora_r: 16, say.",
                        spec->r);
    if (!(spec->dropout >= 0.0 && spec->dropout < 1.0))
        return eft_fail("lora_dropout is %g; it must be in [0, 1).", spec->dropout);

    /* Check every selection and size the block before anything is allocated or hung. */
    size_t floats = 0;
    int n = 0;
    for (int i = 0; i < ts->n; i++) {
        if (!selected[i]) continue;
        const g4_tensor *t = &ts->t[i];
        const char *why = refusal(t);
        if (why) return eft_fail("%s: %s.", t->name, why);
        if (t->count > 1 && spec->dropout > 0)
            return eft_fail("%s: lora_dropout is %g, but PEFT cannot apply dropout to LoRA on "
                            "expert tensors (it refuses the config). Set lora_dropout: 0 with "
                            "lora_target_parameters.",
                            t->name, spec->dropout);
        assert(!w->params[i].lora && "a parameter takes one adapter");
        int64_t rows = (int64_t)spec->r * t->count;
        size_t per = padded(rows * t->in) + padded(t->out * rows);
        floats += spec->train ? 2 * per : per;
        n++;
    }

    a->spec = *spec;
    a->scale = lora_scale(spec->alpha, spec->r, spec->rslora);
    a->n_modules = n;
    a->n_tensors = 2 * n;
    a->mods = eft_calloc((size_t)EFT_MAX(n, 1), sizeof *a->mods);
    a->params = eft_calloc((size_t)EFT_MAX(n, 1), sizeof *a->params);
    a->tensors = eft_calloc((size_t)EFT_MAX(2 * n, 1), sizeof *a->tensors);
    a->block_bytes = floats * sizeof(float);
    a->block = eft_malloc_aligned(EFT_MAX(a->block_bytes, 64));
    memset(a->block, 0, a->block_bytes);

    float *next = a->block;
    int k = 0;
    for (int i = 0; i < ts->n; i++) {
        if (!selected[i]) continue;
        const g4_tensor *t = &ts->t[i];
        g4_lora *L = &a->mods[k];
        int64_t rows = (int64_t)spec->r * t->count, na = rows * t->in, nb = t->out * rows;
        L->r = spec->r;
        L->scale = a->scale;
        L->dropout = (float)spec->dropout;
        L->A = next, next += padded(na);
        L->B = next, next += padded(nb);
        if (spec->train) {
            L->dA = next, next += padded(na);
            L->dB = next, next += padded(nb);
        }
        init_module(L, t, spec->init, seed);
        bool nested = nested_expert(ts, selected, i);
        set_tensor(&a->tensors[2 * k], t, nested, false, L->A, L->dA, spec->r);
        set_tensor(&a->tensors[2 * k + 1], t, nested, true, L->B, L->dB, spec->r);
        a->params[k] = &w->params[i];
        w->params[i].lora = L;
        k++;
    }
    assert(k == n && (size_t)(next - a->block) == floats);
    return 0;
}

void lora_detach(lora_adapter *a) {
    for (int k = 0; k < a->n_modules; k++) {
        assert(a->params[k]->lora == &a->mods[k]);
        a->params[k]->lora = NULL;
    }
    eft_free(a->mods);
    eft_free(a->params);
    eft_free(a->tensors);
    eft_free_aligned(a->block);
    memset(a, 0, sizeof *a);
}

void lora_set_train(lora_adapter *a, bool train) {
    for (int k = 0; k < a->n_modules; k++)
        a->mods[k].dropout = train ? (float)a->spec.dropout : 0.0f;
}

const lora_tensor *lora_find(const lora_adapter *a, const char *name) {
    for (int i = 0; i < a->n_tensors; i++)
        if (!strcmp(a->tensors[i].name, name)) return &a->tensors[i];
    return NULL;
}

int lora_spec_from_config(lora_spec *s, const eft_config *c) {
    memset(s, 0, sizeof *s);
    const char *file = c->path ? c->path : "config";
    if (!c->lora_r.set || c->lora_r.v < 1 || c->lora_r.v > (1 << 20))
        return eft_fail("%s: lora_r: %s. Set the LoRA rank, e.g. lora_r: 16.", file,
                        c->lora_r.set ? "out of range" : "missing");
    if (!c->lora_alpha.set)
        return eft_fail("%s: lora_alpha: missing. Set it, e.g. lora_alpha: 32 (scale alpha/r).",
                        file);
    if (c->lora_rank_pattern.set && c->lora_rank_pattern.n)
        return cfg_fail_at(c->lora_rank_pattern.at, "lora_rank_pattern",
                           "per-module ranks are not supported by this build of eft yet; remove "
                           "the key (every module gets lora_r).");
    if (c->lora_alpha_pattern.set && c->lora_alpha_pattern.n)
        return cfg_fail_at(c->lora_alpha_pattern.at, "lora_alpha_pattern",
                           "per-module alphas are not supported by this build of eft yet; remove "
                           "the key (every module gets lora_alpha).");
    s->r = (int)c->lora_r.v;
    s->alpha = (double)c->lora_alpha.v;
    s->rslora = c->peft_use_rslora.v;
    s->dropout = c->lora_dropout.v;
    s->train = true;
    const char *init = c->peft_init_lora_weights.v;
    if (!init || !strcmp(init, "true"))
        s->init = LORA_INIT_DEFAULT;
    else if (!strcmp(init, "gaussian"))
        s->init = LORA_INIT_GAUSSIAN;
    else if (!strcmp(init, "false"))
        s->init = LORA_INIT_LINEAR;
    else
        return cfg_fail_at(c->peft_init_lora_weights.at, "peft_init_lora_weights",
                           "\"%s\" is not supported; use true, false or gaussian.", init);
    return 0;
}
