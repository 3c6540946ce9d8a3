/* cpu.h: what the CPU kernels share, and nothing else includes: the `real` type of the twin being
 * compiled, the GEMM, bf16 widening, scratch carving and the float exp/tanh.
 *
 * Each kernel file is compiled twice (see ops.h): real = float into libeft, real = double with
 * EFT_OPS_F64 into the test-only eft_ops_f64. Everything precision-dependent lives here, so the
 * kernels themselves are written once.
 */
#ifndef EFT_OPS_CPU_H
#define EFT_OPS_CPU_H

#include "ops/ops.h"

#include "base/err.h"
#include "base/half.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef ops_real real;

/* The one precision switch for BLAS. */
#ifdef EFT_OPS_F64
#define CBLAS_GEMM cblas_dgemm
#else
#define CBLAS_GEMM cblas_sgemm
#endif

/* C[M, N] = alpha op(A) op(B) + beta C, row-major; op = transpose when ta / tb. Inside an OpenMP
 * parallel region OpenBLAS runs it on the calling thread only. */
static inline void gemm(bool ta, bool tb, int M, int N, int K, real alpha, const real *A, int lda,
                        const real *B, int ldb, real beta, real *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    CBLAS_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
               K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Rows [row0, row0 + nrows) of a real or bf16 [*, ncols] weight as real: the weight itself when
 * it is already real, else its bf16 rows widened into buf [nrows, ncols]. (Tables and the LM
 * head are never NF4.) */
static inline const real *weight_rows(ops_weight w, size_t row0, size_t nrows, size_t ncols,
                                      real *buf) {
    if (w.dtype == OPS_W_REAL) return (const real *)w.data + row0 * ncols;
    assert(w.dtype == OPS_W_BF16 && buf);
    const uint16_t *src = (const uint16_t *)w.data + row0 * ncols;
    size_t n = nrows * ncols;
#pragma omp simd
    for (size_t i = 0; i < n; i++) buf[i] = (real)eft_bf16_to_f32(src[i]);
    return buf;
}

/* Element [r, c] of a real or bf16 weight, as real. */
static inline real weight_at(ops_weight w, size_t r, size_t c, size_t ncols) {
    if (w.dtype == OPS_W_REAL) return ((const real *)w.data)[r * ncols + c];
    assert(w.dtype == OPS_W_BF16);
    return (real)eft_bf16_to_f32(((const uint16_t *)w.data)[r * ncols + c]);
}

/* Scratch is carved in 64-byte-aligned pieces; per-thread regions of equal size. */
#define OPS_ALIGN 64
static inline size_t align_up(size_t n) {
    return (n + OPS_ALIGN - 1) & ~(size_t)(OPS_ALIGN - 1);
}
static inline size_t reals_bytes(size_t n) {
    return align_up(n * sizeof(real));
}

/* Takes `bytes` (already aligned) from *cursor. */
static inline void *carve(unsigned char **cursor, size_t bytes) {
    void *p = *cursor;
    *cursor += bytes;
    return p;
}

/* exp and tanh. The double twin uses libm (it is the reference). The float build uses branch-free
 * versions that GCC vectorises under `omp simd`: libm's expf/tanhf are scalar calls, and the
 * attention softmax and the loss's soft-cap evaluate one per logit, as many as the GEMM has
 * output elements. exp: Cody-Waite reduction x = n ln2 + r and a degree-7 polynomial for e^r,
 * within 1 ulp of the exact value on [-87, 88] (inputs are clamped there: e^-87 stands for 0 in
 * a softmax). tanh: 1 - 2 / (e^2|x| + 1), with the Taylor series below 0.3 where that form
 * cancels; absolute error below 8e-8, relative below 3e-7 (measured over [-20, 20]). */
/* Forced inline so that the loops calling them vectorise. */
#define OPS_INLINE static inline __attribute__((always_inline))
#ifdef EFT_OPS_F64
static inline real ops_exp(real x) {
    return exp(x);
}
static inline real ops_tanh(real x) {
    return tanh(x);
}
#else
OPS_INLINE float ops_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float t = fmaf(x, 1.44269504088896341f, 0x1.8p23f); /* n in the low mantissa bits */
    float n = t - 0x1.8p23f;
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p * r, r, r) + 1.0f;
    int32_t ti, si;
    memcpy(&ti, &t, 4);
    si = (int32_t)((uint32_t)ti << 23) + (127 << 23); /* 2^n: the bits above n vanish */
    float s;
    memcpy(&s, &si, 4);
    return p * s;
}
OPS_INLINE float ops_tanh(float x) {
    float a = fabsf(x), x2 = x * x;
    float big = 1.0f - 2.0f / (ops_exp(2.0f * a) + 1.0f);
    float poly = -1382.0f / 155925.0f;
    poly = fmaf(poly, x2, 62.0f / 2835.0f);
    poly = fmaf(poly, x2, -17.0f / 315.0f);
    poly = fmaf(poly, x2, 2.0f / 15.0f);
    poly = fmaf(poly, x2, -1.0f / 3.0f);
    float small = fmaf(a * x2, poly, a);
    return copysignf(a < 0.3f ? small : big, x);
}
#endif

#endif
