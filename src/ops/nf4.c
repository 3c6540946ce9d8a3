/* nf4.c: the NF4 codebook and the reference dequantisation (nf4.h). Compiled once, into libeft:
 * both precision twins of the kernels widen from these fp32 values. */
#include "ops/nf4.h"

#include <assert.h>

/* bitsandbytes' table: quantiles of N(0, 1) scaled to [-1, 1], 7 negative, zero, 8 positive. */
const float ops_nf4_codebook[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

void ops_nf4_dequantize(float *out, const ops_nf4 *w, int64_t start, int64_t count) {
    assert(start >= 0 && count >= 0 && start + count <= w->n);
    int64_t j = w->first + start, end = j + count; /* storage positions */
    while (j < end) {
        int64_t b = j / OPS_NF4_BLOCK, stop = (b + 1) * OPS_NF4_BLOCK;
        if (stop > end) stop = end;
        float t[16];
        ops_nf4_table(t, w, b);
        for (; j < stop; j++) *out++ = t[ops_nf4_code(w, j)];
    }
}
