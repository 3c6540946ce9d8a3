/* g4_linear.c: a linear map of the model with its optional LoRA adapter, forward and backward.
 *
 *   y = x Wᵀ + s (x Aᵀ) Bᵀ          (PEFT: result + lora_B(lora_A(x)) * scaling)
 *
 * x Aᵀ is saved by the forward ([N, r], cheap) for the backward's dB. The product is taken as
 * ((s xa) Bᵀ), one GEMM adding into y; PEFT multiplies by s after the B GEMM, which differs only
 * by rounding.
 *
 * Dropout (lora_dropout p > 0, training only) applies to the adapter's input alone, as PEFT
 * does: xa = (x ⊙ mask / (1 - p)) Aᵀ, the base path sees x. The mask is not stored: element
 * (t, i) of module j is kept when a hash of (the model's dropout_key, j, t, i) is at least
 * p · 2^64, so the backward (and a recompute) draws exactly the forward's mask again.
 */
#include "model/g4_internal.h"

#include <assert.h>
#include <string.h>

static inline uint64_t mix(uint64_t z) { /* splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* dst = src ⊙ mask / (1 - p) for the mask of module `mod` under `key` ([N, in]). */
static void apply_dropout(float *dst, const float *src, int N, int in, float p, uint64_t key,
                          uint64_t mod) {
    uint64_t threshold = (uint64_t)((double)p * 18446744073709551616.0);
    float scale = 1.0f / (1.0f - p);
    uint64_t base = mix(key ^ mix(mod + 0x9e3779b97f4a7c15ULL));
#pragma omp parallel for if ((size_t)N * in > (1u << 15))
    for (int t = 0; t < N; t++) {
        uint64_t row = mix(base + (uint64_t)t * 0xd1b54a32d192ed03ULL);
        for (int i = 0; i < in; i++) {
            bool keep = mix(row + (uint64_t)i * 0x9e3779b97f4a7c15ULL) >= threshold;
            size_t k = (size_t)t * in + i;
            dst[k] = keep ? src[k] * scale : 0.0f;
        }
    }
}

static uint64_t module_id(const g4_model *m, const g4_param *p) {
    return (uint64_t)(p - m->w->params);
}

static void scale_copy(float *dst, const float *src, float s, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = s * src[i];
}

void g4_lin_forward(g4_model *m, const g4_param *p, float *y, const float *x, int N, float *xa,
                    float *lora_tmp) {
    g4_state *s = m->state;
    const g4_tensor *t = p->t;
    int in = (int)t->in, out = (int)t->out;
    ops_linear_forward(y, x, p->w, N, in, out, false, s->kernel, s->kernel_bytes);
    const g4_lora *L = p->lora;
    if (!L) return;
    assert(xa && lora_tmp);
    const float *xin = x;
    if (L->dropout > 0) {
        assert(s->drop_x);
        apply_dropout(s->drop_x, x, N, in, L->dropout, m->dropout_key, module_id(m, p));
        xin = s->drop_x;
    }
    ops_linear_forward(xa, xin, ops_w_real(L->A), N, in, L->r, false, s->kernel, s->kernel_bytes);
    scale_copy(lora_tmp, xa, L->scale, (size_t)N * (size_t)L->r);
    ops_linear_forward(y, lora_tmp, ops_w_real(L->B), N, L->r, out, true, s->kernel,
                       s->kernel_bytes);
}

void g4_lin_backward(g4_model *m, const g4_param *p, float *dx, const float *dy, const float *x,
                     int N, const float *xa, float *lora_x, float *lora_d) {
    g4_state *s = m->state;
    const g4_tensor *t = p->t;
    int in = (int)t->in, out = (int)t->out;
    if (dx || p->grad)
        ops_linear_backward(dx, p->grad, dy, x, p->w, N, in, out, s->kernel, s->kernel_bytes);
    const g4_lora *L = p->lora;
    if (!L || (!dx && !L->dA)) return;
    size_t nr = (size_t)N * (size_t)L->r;
    /* y += (s xa) Bᵀ: dB += dyᵀ (s xa), d(s xa) = dy B. */
    scale_copy(lora_x, xa, L->scale, nr);
    memset(lora_d, 0, nr * sizeof(float));
    ops_linear_backward(lora_d, L->dB, dy, lora_x, ops_w_real(L->B), N, L->r, out, s->kernel,
                        s->kernel_bytes);
    /* xa = x Aᵀ: dA += dxaᵀ x, dx += dxa A, with dxa = s d(s xa). */
    for (size_t i = 0; i < nr; i++) lora_d[i] *= L->scale;
    if (L->dropout <= 0) {
        ops_linear_backward(dx, L->dA, lora_d, x, ops_w_real(L->A), N, in, L->r, s->kernel,
                            s->kernel_bytes);
        return;
    }
    /* With dropout xa = x_d Aᵀ: dA += dxaᵀ x_d, and dx += (dxa A) ⊙ mask / (1 - p). */
    uint64_t mod = module_id(m, p);
    apply_dropout(s->drop_x, x, N, in, L->dropout, m->dropout_key, mod);
    if (L->dA)
        ops_linear_backward(NULL, L->dA, lora_d, s->drop_x, ops_w_real(L->A), N, in, L->r,
                            s->kernel, s->kernel_bytes);
    if (!dx) return;
    memset(s->drop_dx, 0, (size_t)N * in * sizeof(float));
    ops_linear_backward(s->drop_dx, NULL, lora_d, NULL, ops_w_real(L->A), N, in, L->r, s->kernel,
                        s->kernel_bytes);
    apply_dropout(s->drop_dx, s->drop_dx, N, in, L->dropout, m->dropout_key, mod);
    ops_acc(dx, s->drop_dx, (size_t)N * in);
}
