/* opt_adamw.c: AdamW steps and gradient clipping over flat fp32 tensors (see opt_adamw.h).
 *
 * Each kind's element kernel spells out where the reference rounds: a `(float)` marks a value that
 * the reference holds in fp32, a double expression one that it evaluates in double. The code is
 * built with -std=c11, under which GCC contracts no a*b+c into a fused multiply-add, so each line
 * rounds exactly where it says.
 *
 * Deliberately not here: the 8-bit state's arithmetic (opt_adamw8.c), the schedule, the decision
 * to stop on a non-finite norm (the trainer's).
 */
#include "train/opt_adamw.h"

#include "train/opt_adamw8.h"

#include "base/err.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* Tensors with fewer elements are updated by one thread: below this the OpenMP fork costs more
 * than the update. Results do not depend on it (every element is computed on its own). */
#define OPT_PAR_MIN 32768

static const struct {
    const char *name;
    opt_kind kind;
} opt_names[] = {
    {"adamw_torch", OPT_ADAMW_TORCH},             /* torch */
    {"adamw_torch_fused", OPT_ADAMW_TORCH_FUSED}, /* torch */
    {"paged_adamw_32bit", OPT_ADAMW_BNB32},       /* bitsandbytes */
    {"adamw_torch_8bit", OPT_ADAMW_TORCHAO_8BIT}, /* torchao */
    {"ao_adamw_8bit", OPT_ADAMW_TORCHAO_8BIT},    /* torchao, the deprecated name */
    {"adamw_bnb_8bit", OPT_ADAMW_BNB_8BIT},       /* bitsandbytes */
    {"adamw_8bit", OPT_ADAMW_BNB_8BIT},           /* bitsandbytes */
    {"paged_adamw_8bit", OPT_ADAMW_BNB_8BIT},     /* bitsandbytes; paging changes no number */
};

int opt_kind_from_name(const char *name) {
    for (size_t i = 0; name && i < EFT_ARRAY_LEN(opt_names); i++)
        if (!strcmp(opt_names[i].name, name)) return (int)opt_names[i].kind;
    return -1;
}

int opt_hparams_from_config(const eft_config *c, opt_hparams *h) {
    int kind = opt_kind_from_name(c->optimizer.v);
    if (kind < 0) {
        cfg_pos at = c->optimizer.at.file ? c->optimizer.at : (cfg_pos){c->path, 0, 0};
        return cfg_fail_at(at, "optimizer",
                           "%s is not an optimizer eft has. Use adamw_torch_fused, adamw_torch, "
                           "paged_adamw_32bit, adamw_torch_8bit or adamw_bnb_8bit.",
                           c->optimizer.v ? c->optimizer.v : "(none)");
    }
    *h = (opt_hparams){.kind = (opt_kind)kind,
                       .beta1 = c->adam_beta1.v,
                       .beta2 = c->adam_beta2.v,
                       .eps = c->adam_epsilon.v,
                       .weight_decay = c->weight_decay.v};
    return 0;
}

/* ---- the decay groups ---- */

/* `word` occurs in s[0..n) with a component boundary before it (when `start`) and after it. */
static bool has_component(const char *s, size_t n, const char *word, bool start) {
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++) {
        if (memcmp(s + i, word, w)) continue;
        bool before = !start || i == 0 || s[i - 1] == '.';
        bool after = i + w == n || s[i + w] == '.';
        if (before && after) return true;
    }
    return false;
}

bool opt_decays(const char *name) {
    size_t n = strlen(name);
    char *low = eft_malloc(n + 1);
    for (size_t i = 0; i <= n; i++)
        low[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
    bool excluded = strstr(low, "bias") || strstr(low, "layernorm") || strstr(low, "rmsnorm") ||
                    has_component(low, n, "norm", true) || has_component(low, n, "_norm", false);
    eft_free(low);
    return !excluded;
}

/* ---- state ---- */

int64_t opt_adamw_state_bytes(opt_kind kind, const char *name, int64_t n) {
    if (!opt8_quantised(kind, name, n)) return 2 * n * (int64_t)sizeof(float);
    return 2 * n + 2 * opt8_blocks(n) * (int64_t)sizeof(float);
}

void opt_adamw_init(opt_adamw *o, const opt_hparams *h, const opt_param *p, int n) {
    assert(n >= 0);
    o->h = *h;
    o->n = n;
    o->t = eft_calloc((size_t)(n ? n : 1), sizeof *o->t);
    opt8_map_build(o->map_m, true, true);
    opt8_map_build(o->map_v, false, true);
    /* The block: every fp32 array (moments, scales), then every code array. */
    int64_t floats = 0, codes = 0;
    for (int i = 0; i < n; i++) {
        assert(p[i].n >= 0 && p[i].value);
        if (opt8_quantised(h->kind, p[i].name, p[i].n))
            floats += 2 * opt8_blocks(p[i].n), codes += 2 * p[i].n;
        else
            floats += 2 * p[i].n;
    }
    size_t bytes = (size_t)(floats * (int64_t)sizeof(float) + codes);
    o->state = eft_malloc_aligned(bytes ? bytes : 64);
    memset(o->state, 0, bytes);
    float *next = o->state;
    uint8_t *next_code = (uint8_t *)(next + floats);
    for (int i = 0; i < n; i++) {
        opt_tensor *t = &o->t[i];
        *t = (opt_tensor){.name = p[i].name,
                          .value = p[i].value,
                          .grad = p[i].grad,
                          .n = p[i].n,
                          .weight_decay = opt_decays(p[i].name) ? h->weight_decay : 0.0};
        if (opt8_quantised(h->kind, p[i].name, p[i].n)) {
            int64_t nb = opt8_blocks(p[i].n);
            t->m_absmax = next, next += nb;
            t->v_absmax = next, next += nb;
            t->m_code = next_code, next_code += p[i].n;
            t->v_code = next_code, next_code += p[i].n;
        } else {
            t->m = next, next += p[i].n;
            t->v = next, next += p[i].n;
        }
    }
}

void opt_adamw_free(opt_adamw *o) {
    eft_free(o->t);
    eft_free_aligned(o->state);
    memset(o, 0, sizeof *o);
}

void opt_adamw_moments(const opt_adamw *o, int i, float *m, float *v) {
    assert(i >= 0 && i < o->n);
    const opt_tensor *t = &o->t[i];
    if (!t->m_code) {
        memcpy(m, t->m, (size_t)t->n * sizeof *m);
        memcpy(v, t->v, (size_t)t->n * sizeof *v);
        return;
    }
    for (int64_t e = 0; e < t->n; e++) {
        m[e] = o->map_m[t->m_code[e]] * t->m_absmax[e / OPT8_BLOCK];
        v[e] = o->map_v[t->v_code[e]] * t->v_absmax[e / OPT8_BLOCK];
    }
}

int opt_tensor_state(opt_tensor *t, opt_state_array out[OPT_STATE_ARRAYS]) {
    if (!t->m_code) {
        out[0] = (opt_state_array){"exp_avg", false, t->m, t->n};
        out[1] = (opt_state_array){"exp_avg_sq", false, t->v, t->n};
        return 2;
    }
    int64_t nb = opt8_blocks(t->n);
    out[0] = (opt_state_array){"exp_avg.codes", true, t->m_code, t->n};
    out[1] = (opt_state_array){"exp_avg.absmax", false, t->m_absmax, nb};
    out[2] = (opt_state_array){"exp_avg_sq.codes", true, t->v_code, t->n};
    out[3] = (opt_state_array){"exp_avg_sq.absmax", false, t->v_absmax, nb};
    return 4;
}

double opt_adamw_lr(const opt_adamw *o, double eta0, double lambda) {
    if (o->h.kind == OPT_ADAMW_TORCHAO_8BIT) return (float)((float)eta0 * (float)lambda);
    return eta0 * lambda;
}

/* ---- the element kernels ---- */

/* torch's foreach path (torch/optim/adam.py, _multi_tensor_adam): one fp32 tensor operation per
 * line, each with its double scalar rounded to fp32. The last line associates as CUDA's
 * _foreach_addcdiv does, p + step * (m / den); torch's CPU kernels compute (step * m) / den and
 * may contract multiply-adds, so CPU torch differs from this by a few ulps (test_opt.c). */
static void step_torch(const opt_tensor *t, const opt_hparams *h, double lr) {
    const double bc1 = 1.0 - pow(h->beta1, (double)t->t);
    const double bc2 = 1.0 - pow(h->beta2, (double)t->t);
    const float decay = (float)(1.0 - lr * t->weight_decay);
    const float w1 = (float)(1.0 - h->beta1); /* lerp weight, < 0.5 */
    const float b2 = (float)h->beta2, c2 = (float)(1.0 - h->beta2);
    const float bc2_sqrt = (float)sqrt(bc2), eps = (float)h->eps;
    const float step = (float)(-(lr / bc1));
    const bool decayed = t->weight_decay != 0;
    float *p = t->value, *m = t->m, *v = t->v;
    const float *g = t->grad;
#pragma omp parallel for schedule(static) if (t->n >= OPT_PAR_MIN)
    for (int64_t i = 0; i < t->n; i++) {
        float pi = decayed ? p[i] * decay : p[i];
        float mi = m[i] + w1 * (g[i] - m[i]);
        float vi = v[i] * b2;
        vi = vi + c2 * (g[i] * g[i]);
        float den = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi + step * (mi / den);
        m[i] = mi, v[i] = vi;
    }
}

/* torch's fused kernel (aten fused_adam_utils.cuh, ADAMW mode): fp32 loads widened where they
 * meet a double hyper-parameter, the result rounded when stored. */
static void step_torch_fused(const opt_tensor *t, const opt_hparams *h, double lr) {
    const float bc1 = (float)(1.0 - pow(h->beta1, (double)t->t));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(h->beta2, (double)t->t));
    const float step = (float)(lr / (double)bc1);
    const double lr_wd = lr * t->weight_decay, b1 = h->beta1, b2 = h->beta2, eps = h->eps;
    const bool decayed = t->weight_decay != 0;
    float *p = t->value, *m = t->m, *v = t->v;
    const float *g = t->grad;
#pragma omp parallel for schedule(static) if (t->n >= OPT_PAR_MIN)
    for (int64_t i = 0; i < t->n; i++) {
        float pi = p[i];
        if (decayed) pi = (float)((double)pi - lr_wd * (double)pi);
        const double gi = g[i];
        float mi = (float)(b1 * (double)m[i] + (1.0 - b1) * gi);
        float vi = (float)(b2 * (double)v[i] + (1.0 - b2) * gi * gi);
        float den = (float)((double)(sqrtf(vi) / bc2_sqrt) + eps);
        p[i] = pi - step * mi / den;
        m[i] = mi, v[i] = vi;
    }
}

/* bitsandbytes' 32-bit kernel (csrc/kernels.cu, kOptimizer32bit2State, ADAM): hyper-parameters
 * and arithmetic in fp32, eps scaled by sqrt(bc2), decay after the step. */
static void step_bnb32(const opt_tensor *t, const opt_hparams *h, double lr) {
    const float b1 = (float)h->beta1, b2 = (float)h->beta2, eps = (float)h->eps;
    const float lrf = (float)lr, wd = (float)t->weight_decay;
    const float c1 = 1.0f - powf(b1, (float)t->t);
    const float c2 = sqrtf(1.0f - powf(b2, (float)t->t));
    const float step = -lrf * c2 / c1;
    const float decay = 1.0f - lrf * wd;
    float *p = t->value, *m = t->m, *v = t->v;
    const float *g = t->grad;
#pragma omp parallel for schedule(static) if (t->n >= OPT_PAR_MIN)
    for (int64_t i = 0; i < t->n; i++) {
        float mi = m[i] * b1 + (1.0f - b1) * g[i];
        float vi = v[i] * b2 + (1.0f - b2) * (g[i] * g[i]);
        float pi = p[i] + step * (mi / (sqrtf(vi) + eps * c2));
        if (wd > 0.0f) pi = pi * decay;
        p[i] = pi, m[i] = mi, v[i] = vi;
    }
}

void opt_adamw_step(opt_adamw *o, double lr) {
    for (int i = 0; i < o->n; i++) {
        opt_tensor *t = &o->t[i];
        if (!t->grad) continue;
        t->t++;
        switch (o->h.kind) {
        case OPT_ADAMW_TORCH:
            step_torch(t, &o->h, lr);
            break;
        case OPT_ADAMW_TORCH_FUSED:
            step_torch_fused(t, &o->h, lr);
            break;
        case OPT_ADAMW_BNB32:
            step_bnb32(t, &o->h, lr);
            break;
        case OPT_ADAMW_TORCHAO_8BIT:
            opt8_step_torchao(t, &o->h, lr, o->map_m, o->map_v);
            break;
        case OPT_ADAMW_BNB_8BIT: /* its small tensors: bitsandbytes' 32-bit kernel */
            if (t->m_code)
                opt8_step_bnb(t, &o->h, lr, o->map_m, o->map_v);
            else
                step_bnb32(t, &o->h, lr);
            break;
        }
    }
}

/* ---- gradient norm and clipping ---- */

static double sum_squares(const float *g, int64_t n) {
    double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n >= OPT_PAR_MIN)
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

int opt_clip_grad_norm(opt_adamw *o, double max_norm, float *norm) {
    double total = 0;
    const char *bad = NULL;
    for (int i = 0; i < o->n; i++) {
        const opt_tensor *t = &o->t[i];
        if (!t->grad) continue;
        double s = sum_squares(t->grad, t->n);
        if (!isfinite(s) && !bad) bad = t->name;
        total += s;
    }
    *norm = (float)sqrt(total);
    if (bad)
        return eft_fail("the gradient norm is %s: tensor %s has a non-finite gradient. The loss "
                        "or the gradients overflowed; lower learning_rate, check the data of this "
                        "step, or resume from the last checkpoint.",
                        isnan(*norm) ? "NaN" : "infinite", bad);
    if (max_norm <= 0) return 0;
    /* torch: max_norm / (norm + 1e-6) is Tensor.__rtruediv__, a reciprocal then a product. */
    float coef = (1.0f / (*norm + 1e-6f)) * (float)max_norm;
    if (coef >= 1.0f) return 0; /* the reference multiplies by 1.0: a no-op */
    for (int i = 0; i < o->n; i++) {
        opt_tensor *t = &o->t[i];
        if (!t->grad) continue;
        float *g = t->grad;
#pragma omp parallel for schedule(static) if (t->n >= OPT_PAR_MIN)
        for (int64_t j = 0; j < t->n; j++) g[j] *= coef;
    }
    return 0;
}
