/* linear.c: y = x W^T and its backward (ops.h), for every projection of the model and LoRA's A
 * and B.
 *
 * A real W goes straight to BLAS (multi-threaded inside OpenBLAS). A bf16 or NF4 W is widened to
 * real one slab at a time into the caller's scratch (all threads widen it together), and each slab
 * is one multi-threaded BLAS call: the forward takes slabs of W's rows (y's columns), the backward
 * slabs of W's columns (dx's columns). A weight that fits the slab budget is widened whole and
 * costs one GEMM like a real one; bigger ones (31B's MLP is 460 MB in fp32) take a few slabs of
 * at least a few hundred rows, so BLAS packs x or dy only a few times. Slabs own disjoint output
 * columns and BLAS is deterministic for a fixed thread count, so the result does not depend on
 * scheduling. dW never needs W, so it is one BLAS call for either dtype.
 */
#include "ops/cpu/cpu.h"

/* The widened slab: 32 MiB of reals, or the whole weight when smaller. */
#define LIN_SLAB_BYTES ((size_t)32 << 20)

static size_t slab_reals(int in, int out) {
    size_t whole = (size_t)in * (size_t)out, budget = LIN_SLAB_BYTES / sizeof(real);
    size_t line = (size_t)EFT_MAX(in, out); /* a slab holds at least one row or column */
    return EFT_MAX(EFT_MIN(whole, budget), line);
}

size_t OPS(linear_scratch_bytes)(int in, int out, int dtype, int nthreads) {
    (void)nthreads; /* one slab, widened by all threads together */
    if (dtype == OPS_W_REAL) return 0;
    return reals_bytes(slab_reals(in, out));
}

/* dst[0, n) = elements [start, start + n) of the flattened W, widened to real. */
static void widen(real *dst, ops_weight W, size_t start, size_t n) {
    if (W.dtype == OPS_W_BF16) {
        const uint16_t *s = (const uint16_t *)W.data + start;
#pragma omp simd
        for (size_t c = 0; c < n; c++) dst[c] = (real)eft_bf16_to_f32(s[c]);
        return;
    }
    assert(W.dtype == OPS_W_NF4);
    const ops_nf4 *q = W.data;
    int64_t i = q->first + (int64_t)start, end = i + (int64_t)n; /* storage positions */
    while (i < end) {
        int64_t b = i / OPS_NF4_BLOCK, stop = EFT_MIN((b + 1) * OPS_NF4_BLOCK, end);
        float t[16];
        ops_nf4_table(t, q, b);
        if ((i & 1) && i < stop) *dst++ = (real)t[ops_nf4_code(q, i++)];
        const uint8_t *c = q->codes + (i >> 1);
        int64_t pairs = (stop - i) >> 1;
        for (int64_t j = 0; j < pairs; j++) { /* two values per byte, the even one high */
            dst[2 * j] = (real)t[c[j] >> 4];
            dst[2 * j + 1] = (real)t[c[j] & 15];
        }
        dst += 2 * pairs, i += 2 * pairs;
        if (i < stop) *dst++ = (real)t[ops_nf4_code(q, i++)];
    }
}

void OPS(linear_forward)(real *y, const real *x, ops_weight W, int T, int in, int out,
                         bool accumulate, void *scratch, size_t scratch_bytes) {
    assert(T >= 0 && in > 0 && out > 0);
    real beta = accumulate ? 1 : 0;
    if (W.dtype == OPS_W_REAL) {
        gemm(false, true, T, out, in, 1, x, in, W.data, in, beta, y, out);
        return;
    }
    assert(W.dtype != OPS_W_NF4 || ((const ops_nf4 *)W.data)->n == (int64_t)in * out);
    assert(scratch_bytes >= OPS(linear_scratch_bytes)(in, out, W.dtype, 1));
    real *buf = scratch;
    int rows = (int)(slab_reals(in, out) / (size_t)in);
    for (int o0 = 0; o0 < out; o0 += rows) {
        int no = EFT_MIN(rows, out - o0);
#pragma omp parallel for if ((size_t)no * in > (1u << 16))
        for (int o = 0; o < no; o++)
            widen(buf + (size_t)o * in, W, (size_t)(o0 + o) * in, (size_t)in);
        gemm(false, true, T, no, in, 1, x, in, buf, in, beta, y + o0, out);
    }
}

void OPS(linear_backward)(real *dx, real *dW, const real *dy, const real *x, ops_weight W, int T,
                          int in, int out, void *scratch, size_t scratch_bytes) {
    assert(T >= 0 && in > 0 && out > 0);
    assert(!dW || W.dtype != OPS_W_NF4); /* NF4 weights are frozen */
    if (dW) gemm(true, false, out, in, T, 1, dy, out, x, in, 1, dW, in);
    if (!dx) return;
    if (W.dtype == OPS_W_REAL) {
        gemm(false, false, T, in, out, 1, dy, out, W.data, in, 1, dx, in);
        return;
    }
    assert(W.dtype != OPS_W_NF4 || ((const ops_nf4 *)W.data)->n == (int64_t)in * out);
    assert(scratch_bytes >= OPS(linear_scratch_bytes)(in, out, W.dtype, 1));
    real *buf = scratch;
    int cols = (int)(slab_reals(in, out) / (size_t)out);
    for (int c0 = 0; c0 < in; c0 += cols) {
        int nc = EFT_MIN(cols, in - c0);
        /* buf [out, nc] = W[:, c0 : c0 + nc] widened. */
#pragma omp parallel for if ((size_t)out * nc > (1u << 16))
        for (int o = 0; o < out; o++)
            widen(buf + (size_t)o * nc, W, (size_t)o * in + c0, (size_t)nc);
        gemm(false, false, T, nc, out, 1, dy, out, buf, nc, 1, dx + c0, in);
    }
}
