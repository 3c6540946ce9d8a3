/* opt_adamw8.c: 8-bit AdamW state: maps, quantisers and the torchao and bitsandbytes updates (see
 * opt_adamw8.h).
 *
 * As in opt_adamw.c, every line rounds to fp32 where the reference does, and -std=c11 keeps GCC
 * from contracting a*b+c into a fused multiply-add; the one fused operation is the explicit
 * fmaf() of the maps.
 *
 * Deliberately not here: allocation (opt_adamw_init lays the codes and scales out), the fp32
 * kinds, gradient clipping.
 */
#include "train/opt_adamw8.h"

#include "base/err.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* As in opt_adamw.c: below this many elements a tensor is updated by one thread. Results do not
 * depend on it (every block is computed on its own). */
#define OPT8_PAR_MIN 32768

int64_t opt8_blocks(int64_t n) {
    return (n + OPT8_BLOCK - 1) / OPT8_BLOCK;
}

/* `s` ends with the dotted component path `tail` ("embed_tokens.weight"), at a component start. */
static bool ends_with_component(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail) && (n == k || s[n - k - 1] == '.');
}

bool opt8_quantised(opt_kind kind, const char *name, int64_t n) {
    if (n < OPT8_MIN_SIZE) return false;
    switch (kind) {
    case OPT_ADAMW_TORCHAO_8BIT:
        return n % OPT8_BLOCK == 0;
    case OPT_ADAMW_BNB_8BIT:
        /* transformers registers optim_bits=32 for every nn.Embedding's weight (Gemma 4's scaled
         * word embeddings are nn.Embedding subclasses). */
        return !ends_with_component(name, "embed_tokens.weight") &&
               !ends_with_component(name, "embed_tokens_per_layer.weight");
    default:
        return false;
    }
}

/* ---- the maps ---- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* torch.linspace(0.1, 1, n) in fp32, as its CPU kernel computes it: the first half counts up from
 * the start, the second half down from the end (so both ends are exact). */
static void linspace(float *b, int n, bool fused) {
    const float start = 0.1f, end = 1.0f, step = (end - start) / (float)(n - 1);
    for (int j = 0; j < n; j++) {
        if (j < n / 2)
            b[j] = fused ? fmaf(step, (float)j, start) : start + step * (float)j;
        else
            b[j] = fused ? fmaf(-step, (float)(n - 1 - j), end) : end - step * (float)(n - 1 - j);
    }
}

void opt8_map_build(float q[OPT8_CODES], bool is_signed, bool fused) {
    float b[129];
    int k = 0;
    for (int i = 0; i < 7; i++) {
        int n = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
        const float scale = (float)pow(10.0, i - 6); /* Python's 10 ** (i - 6), then fp32 */
        linspace(b, n, fused);
        for (int j = 0; j + 1 < n; j++) {
            float mean = (b[j] + b[j + 1]) / 2.0f;
            q[k++] = scale * mean;
            if (is_signed) q[k++] = -(scale * mean);
        }
    }
    q[k++] = 0.0f;
    q[k++] = 1.0f;
    assert(k == OPT8_CODES);
    qsort(q, OPT8_CODES, sizeof *q, cmp_float);
}

/* ---- the quantisers ---- */

uint8_t opt8_code_torchao(const float q[OPT8_CODES], float x) {
    int c = 0;
    for (int bit = 128; bit; bit >>= 1)
        if (x >= q[c + bit]) c += bit;
    int up = c < 255 ? c + 1 : 255;
    float residual = x - q[c], half = (q[up] - q[c]) * 0.5f;
    return (uint8_t)(residual >= half ? up : c);
}

uint8_t opt8_code_bnb(const float q[OPT8_CODES], float x) {
    /* c = the number of midpoints below x */
    int lo = 0, hi = OPT8_CODES - 1;
    while (lo < hi) {
        int j = (lo + hi) / 2;
        if ((q[j] + q[j + 1]) * 0.5f < x)
            lo = j + 1;
        else
            hi = j;
    }
    if (lo < OPT8_CODES - 1 && x == (q[lo] + q[lo + 1]) * 0.5f && (lo & 1)) lo++;
    return (uint8_t)lo;
}

/* ---- torchao ---- */

/* torchao's single_param_adam, with its scalars: lr an fp32 tensor, the bias corrections fp32
 * from an fp32 step count, the Python floats beta and eps rounded to fp32 where they meet it. */
typedef struct ao_consts {
    float lr, lr_wd, w1, w2, bc1, bc2_sqrt, eps;
    bool decayed;
} ao_consts;

static ao_consts ao_consts_of(const opt_tensor *t, const opt_hparams *h, double lr) {
    const float lrf = (float)lr, tf = (float)t->t;
    return (ao_consts){.lr = lrf,
                       .lr_wd = lrf * (float)t->weight_decay,
                       .w1 = (float)(1.0 - h->beta1),
                       .w2 = (float)(1.0 - h->beta2),
                       .bc1 = 1.0f - powf((float)h->beta1, tf),
                       .bc2_sqrt = sqrtf(1.0f - powf((float)h->beta2, tf)),
                       .eps = (float)h->eps,
                       .decayed = t->weight_decay != 0};
}

/* One element: the decay, the lerps of both moments (weights below 0.5: a + w (b - a)), the
 * step with the fresh moments. */
static inline void ao_element(const ao_consts *k, float *p, float g, float *m, float *v) {
    float pi = *p;
    if (k->decayed) pi = pi - k->lr_wd * pi;
    float mi = *m + k->w1 * (g - *m);
    float vi = *v + k->w2 * (g * g - *v);
    float den = sqrtf(vi) / k->bc2_sqrt + k->eps;
    *p = pi - k->lr * (mi / k->bc1) / den;
    *m = mi, *v = vi;
}

/* scale_tensor: the block's largest |x|, at least 1e-12; NaN when any x is (torch.amax and clip
 * propagate it). */
static float ao_scale(const float *x, int n) {
    float s = 0;
    for (int e = 0; e < n; e++) {
        float a = fabsf(x[e]);
        if (a > s || a != a) s = a;
        if (s != s) break;
    }
    return s < 1e-12f ? 1e-12f : s;
}

static void ao_block(const ao_consts *k, float *p, const float *g, uint8_t *cm, uint8_t *cv,
                     float *am, float *av, const float *qm, const float *qv) {
    float m[OPT8_BLOCK], v[OPT8_BLOCK]; /* the fresh moments, before re-quantising */
    for (int e = 0; e < OPT8_BLOCK; e++) {
        m[e] = qm[cm[e]] * *am, v[e] = qv[cv[e]] * *av;
        ao_element(k, &p[e], g[e], &m[e], &v[e]);
    }
    *am = ao_scale(m, OPT8_BLOCK), *av = ao_scale(v, OPT8_BLOCK);
    for (int e = 0; e < OPT8_BLOCK; e++) {
        cm[e] = opt8_code_torchao(qm, m[e] / *am);
        cv[e] = opt8_code_torchao(qv, v[e] / *av);
    }
}

void opt8_step_torchao(const opt_tensor *t, const opt_hparams *h, double lr,
                       const float qm[OPT8_CODES], const float qv[OPT8_CODES]) {
    const ao_consts k = ao_consts_of(t, h, lr);
    float *p = t->value;
    const float *g = t->grad;
    if (!t->m_code) {
        float *m = t->m, *v = t->v;
#pragma omp parallel for schedule(static) if (t->n >= OPT8_PAR_MIN)
        for (int64_t i = 0; i < t->n; i++) ao_element(&k, &p[i], g[i], &m[i], &v[i]);
        return;
    }
    assert(t->n % OPT8_BLOCK == 0);
    const int64_t nb = t->n / OPT8_BLOCK;
#pragma omp parallel for schedule(static) if (t->n >= OPT8_PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t o = b * OPT8_BLOCK;
        ao_block(&k, p + o, g + o, t->m_code + o, t->v_code + o, &t->m_absmax[b], &t->v_absmax[b],
                 qm, qv);
    }
}

/* ---- bitsandbytes ---- */

/* kOptimizerStatic8bit2StateBlockwise (csrc/kernels.cu, ADAM): fp32 scalars, a parameter step
 * sz * m / (sqrt(v) + c2 eps) with sz = -lr c2 / c1, the decay after it. */
typedef struct bnb_consts {
    float b1, b2, sz, c2_eps, decay;
    bool decayed;
} bnb_consts;

static void bnb_block(const bnb_consts *k, float *p, const float *g, uint8_t *cm, uint8_t *cv,
                      float *am, float *av, int n, const float *qm, const float *qv) {
    float m[OPT8_BLOCK], v[OPT8_BLOCK];
    float max_m = 0, max_v = 0;
    for (int e = 0; e < n; e++) {
        if (!isfinite(g[e])) { /* the element's state restarts; its value stays */
            m[e] = 0, v[e] = 0;
            continue;
        }
        float mi = qm[cm[e]] * *am, vi = qv[cv[e]] * *av;
        mi = mi * k->b1;
        mi += (1.0f - k->b1) * g[e];
        vi = vi * k->b2;
        vi += (1.0f - k->b2) * g[e] * g[e];
        float pi = p[e] + k->sz * (mi / (sqrtf(vi) + k->c2_eps));
        if (k->decayed) pi = pi * k->decay;
        p[e] = pi, m[e] = mi, v[e] = vi;
        max_m = fmaxf(max_m, fabsf(mi)), max_v = fmaxf(max_v, fabsf(vi));
    }
    /* The lanes past the end of a partial last block load code 128 for m (and 0 for v) and a zero
     * gradient, and take part in the maximum. */
    if (n < OPT8_BLOCK) max_m = fmaxf(max_m, fabsf((qm[128] * *am) * k->b1));
    *am = max_m, *av = max_v;
    for (int e = 0; e < n; e++) {
        /* A block of zeros keeps absmax 0: its codes dequantise to 0 whatever they are; eft
         * quantises the zeros themselves rather than 0 / 0. */
        float xm = max_m > 0 ? m[e] / max_m : m[e], xv = max_v > 0 ? v[e] / max_v : v[e];
        int c = opt8_code_bnb(qm, xm);
        /* The sign fix: a negative m that rounds to the zero code takes the code below it. */
        if (!signbit(qm[c]) != !signbit(m[e])) c += m[e] > 0 ? 1 : -1;
        cm[e] = (uint8_t)c;
        cv[e] = opt8_code_bnb(qv, xv);
    }
}

void opt8_step_bnb(const opt_tensor *t, const opt_hparams *h, double lr, const float qm[OPT8_CODES],
                   const float qv[OPT8_CODES]) {
    assert(t->m_code);
    const float b1 = (float)h->beta1, b2 = (float)h->beta2, lrf = (float)lr;
    const float c1 = 1.0f - powf(b1, (float)t->t), c2 = sqrtf(1.0f - powf(b2, (float)t->t));
    const bnb_consts k = {.b1 = b1,
                          .b2 = b2,
                          .sz = -lrf * c2 / c1,
                          .c2_eps = c2 * (float)h->eps,
                          .decay = 1.0f - lrf * (float)t->weight_decay,
                          .decayed = t->weight_decay > 0};
    const int64_t nb = opt8_blocks(t->n);
    float *p = t->value;
    const float *g = t->grad;
#pragma omp parallel for schedule(static) if (t->n >= OPT8_PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t o = b * OPT8_BLOCK;
        const int n = (int)EFT_MIN((int64_t)OPT8_BLOCK, t->n - o);
        bnb_block(&k, p + o, g + o, t->m_code + o, t->v_code + o, &t->m_absmax[b], &t->v_absmax[b],
                  n, qm, qv);
    }
}
