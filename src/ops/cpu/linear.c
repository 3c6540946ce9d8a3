/* linear.c: y = x W^T and its backward (ops.h), for every projection of the model and LoRA's A
 * and B.
 *
 * A real W goes straight to BLAS (multi-threaded inside OpenBLAS). A bf16 W is never widened
 * whole: the forward splits W's rows (y's columns) into blocks and the backward splits W's columns
 * (dx's columns) into blocks; each thread widens one block into its own scratch and runs a
 * single-threaded GEMM on it. Blocks own disjoint output columns, so no two threads write the same
 * element and the result does not depend on scheduling. dW never needs W, so it is one BLAS call
 * for either dtype.
 */
#include "ops/cpu/cpu.h"

/* Rows (forward) or columns (backward) of W widened at a time: 64 x 5376 reals is 1.4 MB, the
 * size of an L2 and a half; smaller blocks make BLAS re-pack x more often. */
#define LIN_BLOCK 64

size_t OPS(linear_scratch_bytes)(int in, int out, int dtype, int nthreads) {
    if (dtype == OPS_W_REAL) return 0;
    return (size_t)nthreads * reals_bytes((size_t)LIN_BLOCK * EFT_MAX(in, out));
}

void OPS(linear_forward)(real *y, const real *x, ops_weight W, int T, int in, int out,
                         bool accumulate, void *scratch, size_t scratch_bytes) {
    assert(T >= 0 && in > 0 && out > 0);
    real beta = accumulate ? 1 : 0;
    if (W.dtype == OPS_W_REAL) {
        gemm(false, true, T, out, in, 1, x, in, W.data, in, beta, y, out);
        return;
    }
    int nt = omp_get_max_threads();
    assert(scratch_bytes >= OPS(linear_scratch_bytes)(in, out, W.dtype, nt));
    size_t per_thread = reals_bytes((size_t)LIN_BLOCK * EFT_MAX(in, out));
    int nblocks = (out + LIN_BLOCK - 1) / LIN_BLOCK;
#pragma omp parallel num_threads(nt)
    {
        real *buf = (real *)((unsigned char *)scratch + per_thread * omp_get_thread_num());
#pragma omp for schedule(dynamic)
        for (int b = 0; b < nblocks; b++) {
            int o0 = b * LIN_BLOCK, no = EFT_MIN(LIN_BLOCK, out - o0);
            const real *Wb = weight_rows(W, o0, no, in, buf); /* [no, in] */
            gemm(false, true, T, no, in, 1, x, in, Wb, in, beta, y + o0, out);
        }
    }
}

/* buf [out, nc] = W[:, c0 : c0 + nc] widened. */
static void widen_cols(real *buf, const uint16_t *W, int in, int out, int c0, int nc) {
    for (int o = 0; o < out; o++) {
        const uint16_t *src = W + (size_t)o * in + c0;
        real *dst = buf + (size_t)o * nc;
#pragma omp simd
        for (int c = 0; c < nc; c++) dst[c] = (real)eft_bf16_to_f32(src[c]);
    }
}

void OPS(linear_backward)(real *dx, real *dW, const real *dy, const real *x, ops_weight W, int T,
                          int in, int out, void *scratch, size_t scratch_bytes) {
    assert(T >= 0 && in > 0 && out > 0);
    if (dW) gemm(true, false, out, in, T, 1, dy, out, x, in, 1, dW, in);
    if (!dx) return;
    if (W.dtype == OPS_W_REAL) {
        gemm(false, false, T, in, out, 1, dy, out, W.data, in, 1, dx, in);
        return;
    }
    assert(W.dtype == OPS_W_BF16);
    int nt = omp_get_max_threads();
    assert(scratch_bytes >= OPS(linear_scratch_bytes)(in, out, W.dtype, nt));
    size_t per_thread = reals_bytes((size_t)LIN_BLOCK * EFT_MAX(in, out));
    int nblocks = (in + LIN_BLOCK - 1) / LIN_BLOCK;
#pragma omp parallel num_threads(nt)
    {
        real *buf = (real *)((unsigned char *)scratch + per_thread * omp_get_thread_num());
#pragma omp for schedule(dynamic)
        for (int b = 0; b < nblocks; b++) {
            int c0 = b * LIN_BLOCK, nc = EFT_MIN(LIN_BLOCK, in - c0);
            widen_cols(buf, W.data, in, out, c0, nc); /* [out, nc] */
            gemm(false, false, T, nc, out, 1, dy, out, buf, nc, 1, dx + c0, in);
        }
    }
}
