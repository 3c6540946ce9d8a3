/* g4_linear.c: a linear map of the model with its optional LoRA adapter, forward and backward.
 *
 *   y = x Wᵀ + s (x Aᵀ) Bᵀ          (PEFT: result + lora_B(lora_A(x)) * scaling)
 *
 * x Aᵀ is saved by the forward ([N, r], cheap) for the backward's dB. The product is taken as
 * ((s xa) Bᵀ), one GEMM adding into y; PEFT multiplies by s after the B GEMM, which differs only
 * by rounding. Dropout on the adapter input is not built yet: trn_check_buildable refuses
 * lora_dropout > 0 until it is.
 */
#include "model/g4_internal.h"

#include <assert.h>
#include <string.h>

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
    assert(xa && lora_tmp && L->dropout == 0.0f);
    ops_linear_forward(xa, x, ops_w_real(L->A), N, in, L->r, false, s->kernel, s->kernel_bytes);
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
    ops_linear_backward(dx, L->dA, lora_d, x, ops_w_real(L->A), N, in, L->r, s->kernel,
                        s->kernel_bytes);
}
