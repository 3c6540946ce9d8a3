/* elementwise.c: residual add, the layer scalar, copies (ops.h). Memory-bound loops; threads only
 * when the arrays are large enough to pay for them. */
#include "ops/cpu/cpu.h"

#define EW_PAR_MIN (1 << 16)

void OPS(add)(real *y, const real *a, const real *b, size_t n) {
#pragma omp parallel for simd if (n > EW_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void OPS(acc)(real *y, const real *x, size_t n) {
#pragma omp parallel for simd if (n > EW_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void OPS(scale_forward)(real *y, const real *x, real s, size_t n) {
#pragma omp parallel for simd if (n > EW_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = s * x[i];
}

void OPS(scale_backward)(real *dx, const real *dy, real s, size_t n) {
#pragma omp parallel for simd if (n > EW_PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += s * dy[i];
}

void OPS(copy)(real *dst, const real *src, size_t n) {
    if (dst != src && n) memmove(dst, src, n * sizeof(real));
}

void OPS(zero)(real *x, size_t n) {
    if (n) memset(x, 0, n * sizeof(real));
}
