/* gelu.c: GELU with the tanh approximation, and GeGLU = gelu(gate) * up (ops.h; spec gemma4
 * §3.2, §3.3, the MLP and the per-layer-input gate).
 *
 * Evaluated through the identity 0.5 (1 + tanh u) = sigmoid(2u): gelu(x) = x / (1 + e^(-2u)) with
 * u = sqrt(2/pi) (x + 0.044715 x^3). Same function, one exp instead of a tanh, and no
 * cancellation in 1 + tanh u for negative x (where fp32 tanh near -1 loses most digits of gelu).
 * The derivative uses 1 - tanh^2 u = 4 s (1 - s) with s = sigmoid(2u).
 */
#include "ops/cpu/cpu.h"

#define GELU_PAR_MIN (1 << 15)
#define GELU_K       ((real)0.7978845608028654) /* sqrt(2 / pi) */
#define GELU_A       ((real)0.044715)

OPS_INLINE real gelu_sig(real x) { /* sigmoid(2u) */
    return 1 / (1 + ops_exp(-2 * GELU_K * (x + GELU_A * x * x * x)));
}

OPS_INLINE real gelu(real x) {
    return x * gelu_sig(x);
}

/* g'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 a x^2), t = tanh u = 2 s - 1. */
OPS_INLINE real gelu_grad(real x) {
    real s = gelu_sig(x);
    return s + 2 * x * s * (1 - s) * GELU_K * (1 + 3 * GELU_A * x * x);
}

void OPS(gelu_forward)(real *y, const real *x, size_t n) {
#pragma omp parallel for simd if (n > GELU_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = gelu(x[i]);
}

void OPS(gelu_backward)(real *dx, const real *dy, const real *x, size_t n) {
#pragma omp parallel for simd if (n > GELU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * gelu_grad(x[i]);
}

void OPS(geglu_forward)(real *h, const real *gate, const real *up, int N, int C, int ld) {
    assert(ld >= C);
#pragma omp parallel for if ((long)N * C > GELU_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const real *g = gate + (size_t)r * ld, *u = up + (size_t)r * ld;
        real *hr = h + (size_t)r * C;
#pragma omp simd
        for (int c = 0; c < C; c++) hr[c] = gelu(g[c]) * u[c];
    }
}

void OPS(geglu_backward)(real *dgate, real *dup, const real *dh, const real *gate, const real *up,
                         int N, int C, int ld) {
    assert(ld >= C);
#pragma omp parallel for if ((long)N * C > GELU_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const real *g = gate + (size_t)r * ld, *u = up + (size_t)r * ld;
        const real *d = dh + (size_t)r * C;
        real *dg = dgate + (size_t)r * ld, *du = dup + (size_t)r * ld;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            dg[c] += d[c] * u[c] * gelu_grad(g[c]);
            du[c] += d[c] * gelu(g[c]);
        }
    }
}
