/* rope.c: rotary position embedding, rotate-half pairing (ops.h; spec gemma4 §3.4, §7.3).
 *
 * The table is built once per packed row and layer type, then applied in place to q and k of
 * every head. Frequencies are the model's business (default or proportional); pairs whose
 * inv_freq is 0 get cos 1, sin 0 and pass through unchanged.
 */
#include "ops/cpu/cpu.h"

#define ROPE_PAR_MIN (1 << 15)

void OPS(rope_table)(real *cos_, real *sin_, const int32_t *pos, const float *inv_freq, int T,
                     int half) {
    assert(T >= 0 && half > 0);
#pragma omp parallel for if ((long)T * half > ROPE_PAR_MIN)
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            /* The angle as transformers forms it, position_ids.float() * inv_freq in fp32 (even
             * when the model runs in fp64): a more exact angle would be a different RoPE.
             * cos/sin of that angle are then taken in double and rounded. */
            float ang = (float)pos[t] * inv_freq[i];
            cos_[(size_t)t * half + i] = (real)cos(ang);
            sin_[(size_t)t * half + i] = (real)sin(ang);
        }
    }
}

/* y = R x with R the rotation by (c, s) on each pair, or R^T when `transpose` (the backward). */
static void rope_apply(real *x, const real *cos_, const real *sin_, int T, int nh, int D,
                       bool transpose) {
    assert(D % 2 == 0);
    int half = D / 2;
    real sign = transpose ? -1 : 1;
#pragma omp parallel for if ((long)T * nh * D > ROPE_PAR_MIN)
    for (int t = 0; t < T; t++) {
        const real *c = cos_ + (size_t)t * half, *s = sin_ + (size_t)t * half;
        for (int h = 0; h < nh; h++) {
            real *a = x + ((size_t)t * nh + h) * D, *b = a + half;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                real si = sign * s[i];
                real ai = a[i], bi = b[i];
                a[i] = ai * c[i] - bi * si;
                b[i] = bi * c[i] + ai * si;
            }
        }
    }
}

void OPS(rope_forward)(real *x, const real *cos_, const real *sin_, int T, int nh, int D) {
    rope_apply(x, cos_, sin_, T, nh, D, false);
}

void OPS(rope_backward)(real *dx, const real *cos_, const real *sin_, int T, int nh, int D) {
    rope_apply(dx, cos_, sin_, T, nh, D, true);
}
