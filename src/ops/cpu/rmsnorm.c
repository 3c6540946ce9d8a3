/* rmsnorm.c: RMSNorm over the last dim, with or without a scale (ops.h; spec gemma4 §3.1, §7.1).
 *
 * Rows are independent and split over threads. The weight gradient is a sum over rows; it is
 * computed in a second pass split over columns, so each dw element is summed by one thread in row
 * order: no per-thread partials, and the same bits for any thread count.
 */
#include "ops/cpu/cpu.h"

/* Rows per parallel chunk below which threads cost more than they save. */
#define RMS_PAR_MIN (1 << 15)
/* Columns per thread in the weight-gradient pass. */
#define RMS_DW_COLS 64

void OPS(rmsnorm_forward)(real *y, real *rstd, const real *x, const real *w, int N, int C,
                          real eps) {
    assert(N >= 0 && C > 0);
#pragma omp parallel for if ((long)N * C > RMS_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *xr = x + (size_t)n * C;
        real *yr = y + (size_t)n * C;
        real ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
        /* Hugging Face uses pow(., -0.5), not rsqrt; so do we. */
        real r = pow(ss / C + eps, -0.5);
        rstd[n] = r;
        if (w) {
#pragma omp simd
            for (int c = 0; c < C; c++) yr[c] = xr[c] * r * w[c];
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) yr[c] = xr[c] * r;
        }
    }
}

void OPS(rmsnorm_backward)(real *dx, real *dw, const real *dy, const real *x, const real *w,
                           const real *rstd, int N, int C) {
    assert(N >= 0 && C > 0 && (w || !dw));
#pragma omp parallel for if ((long)N * C > RMS_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *xr = x + (size_t)n * C, *dyr = dy + (size_t)n * C;
        real *dxr = dx + (size_t)n * C;
        real r = rstd[n];
        /* dx = r (g - n mean(g n)) with g = dy w, n = x r; mean(g n) = r mean(g x). */
        real gx = 0;
        if (w) {
#pragma omp simd reduction(+ : gx)
            for (int c = 0; c < C; c++) gx += dyr[c] * w[c] * xr[c];
        } else {
#pragma omp simd reduction(+ : gx)
            for (int c = 0; c < C; c++) gx += dyr[c] * xr[c];
        }
        real k = r * r * r * gx / C;
        if (w) {
#pragma omp simd
            for (int c = 0; c < C; c++) dxr[c] += r * dyr[c] * w[c] - k * xr[c];
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) dxr[c] += r * dyr[c] - k * xr[c];
        }
    }
    if (!dw) return;
    int nblocks = (C + RMS_DW_COLS - 1) / RMS_DW_COLS;
#pragma omp parallel for if ((long)N * C > RMS_PAR_MIN)
    for (int b = 0; b < nblocks; b++) {
        int c0 = b * RMS_DW_COLS, c1 = EFT_MIN(C, c0 + RMS_DW_COLS);
        real acc[RMS_DW_COLS] = {0};
        for (int n = 0; n < N; n++) {
            const real *xr = x + (size_t)n * C, *dyr = dy + (size_t)n * C;
            real r = rstd[n];
#pragma omp simd
            for (int c = c0; c < c1; c++) acc[c - c0] += dyr[c] * xr[c] * r;
        }
        for (int c = c0; c < c1; c++) dw[c] += acc[c - c0];
    }
}
