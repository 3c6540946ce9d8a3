/* check.h: what the ops tests share: both precision twins of ops.h, random tensors, exact-size
 * scratch, comparisons, and the finite-difference gradient check.
 *
 * Gradient checks run on the double twin (ops64_*). The loss is L = sum(upstream * output), so
 * the analytic gradient is the op's backward fed with `upstream`. check_grad() compares it with
 * central differences at sampled elements (plus any the test names: tile edges, first
 * and last tokens) and along one random direction through all elements, which catches a wrong
 * gradient anywhere that is not tiny.
 */
#ifndef EFT_TESTS_OPS_CHECK_H
#define EFT_TESTS_OPS_CHECK_H

#include "support/test.h"

#include "ops/ops.h" /* ops_*: float */
#define EFT_OPS_F64
#include "ops/ops.h" /* ops64_*: double */
#undef EFT_OPS_F64

#include "base/err.h"
#include "base/half.h"
#include "base/rng.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The step: at 1e-6 the rounding noise of a loss summed over 1e5 outputs (~1e-11) already shows
 * at the 1e-6 level; at 1e-5 the truncation error (eps^2 f"'/6) is still far below it. */
#define FD_EPS 1e-5

/* n normal values times `scale` (owned; eft_free). */
static inline double *rand_vec(eft_rng *r, size_t n, double scale) {
    double *x = eft_malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = scale * eft_rng_normal(r);
    return x;
}

static inline double *zeros(size_t n) {
    return eft_calloc(n ? n : 1, sizeof(double));
}

static inline double *dup_vec(const double *x, size_t n) {
    double *y = eft_malloc((n ? n : 1) * sizeof(double));
    memcpy(y, x, n * sizeof(double));
    return y;
}

/* The float copy of a double tensor (owned). */
static inline float *to_f32(const double *x, size_t n) {
    float *y = eft_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

/* Rounds every value to bf16 in place and returns the bf16 copy (owned). */
static inline uint16_t *round_bf16(double *x, size_t n) {
    uint16_t *b = eft_malloc((n ? n : 1) * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        b[i] = eft_f32_to_bf16((float)x[i]);
        x[i] = eft_bf16_to_f32(b[i]);
    }
    return b;
}

/* Scratch of exactly `bytes` (owned; eft_free), so that AddressSanitizer sees an overrun. */
static inline void *scratch_exact(size_t bytes) {
    return eft_malloc(bytes ? bytes : 1);
}

static inline double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* max |a - b| / max(|b|_inf, floor). */
static inline double rel_diff(const double *a, const double *b, size_t n, double floor_) {
    double m = floor_, d = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(b[i]));
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs(a[i] - b[i]));
    return d / m;
}

static inline double rel_diff_f32(const float *a, const double *b, size_t n, double floor_) {
    double m = floor_, d = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(b[i]));
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d / m;
}

#define assert_rel_le(a, b, n, tol)                                                                \
    do {                                                                                           \
        double rd_ = rel_diff((a), (b), (n), 1e-300);                                              \
        if (!(rd_ <= (tol)))                                                                       \
            fail_msg("%s vs %s: relative difference %.3g > %g", #a, #b, rd_, (double)(tol));       \
    } while (0)

#define assert_rel_le_f32(a, b, n, tol)                                                            \
    do {                                                                                           \
        double rd_ = rel_diff_f32((a), (b), (n), 1e-300);                                          \
        if (!(rd_ <= (tol)))                                                                       \
            fail_msg("%s vs %s: relative difference %.3g > %g", #a, #b, rd_, (double)(tol));       \
    } while (0)

/* The loss L(x) recomputed by the op's double forward, for the current contents of the inputs. */
typedef double (*loss_fn)(void *ctx);

/* Checks grad = dL/dx for x [n] against central differences: at `samples` random elements, at
 * the `nextra` elements listed in `extra`, and along one random unit direction. An element
 * passes when |fd - grad| <= tol (|grad| + rms(grad)); the direction when the two directional
 * derivatives differ by at most tol |grad|_2. x is restored. The many forward calls run on one
 * thread: on a loaded machine every parallel region can wait a time slice for its second thread. */
static inline void check_grad_at(const char *what, loss_fn loss, void *ctx, double *x,
                                 const double *grad, size_t n, int samples, const size_t *extra,
                                 int nextra, double tol, eft_rng *r) {
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    double gss = 0;
    for (size_t i = 0; i < n; i++) gss += grad[i] * grad[i];
    double rms = sqrt(gss / (double)(n ? n : 1)), gnorm = sqrt(gss);
    for (int s = 0; s < samples + nextra; s++) {
        size_t i = s < samples ? (size_t)eft_rng_below(r, n) : extra[s - samples];
        if (i >= n) continue;
        double x0 = x[i];
        x[i] = x0 + FD_EPS;
        double lp = loss(ctx);
        x[i] = x0 - FD_EPS;
        double lm = loss(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2 * FD_EPS);
        if (!(fabs(fd - grad[i]) <= tol * (fabs(grad[i]) + rms)))
            fail_msg("%s[%zu]: backward %.12g, finite differences %.12g (rms %.3g)", what, i,
                     grad[i], fd, rms);
    }
    double *u = rand_vec(r, n, 1.0), un = sqrt(dot(u, u, n));
    for (size_t i = 0; i < n; i++) u[i] /= un;
    double *x0 = dup_vec(x, n);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] + FD_EPS * u[i];
    double lp = loss(ctx);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] - FD_EPS * u[i];
    double lm = loss(ctx);
    memcpy(x, x0, n * sizeof(double));
    double fd = (lp - lm) / (2 * FD_EPS), an = dot(grad, u, n);
    if (!(fabs(fd - an) <= tol * (gnorm + 1e-300)))
        fail_msg("%s: directional derivative %.12g, finite differences %.12g (|grad| %.3g)", what,
                 an, fd, gnorm);
    eft_free(u);
    eft_free(x0);
    omp_set_num_threads(threads);
}

static inline void check_grad(const char *what, loss_fn loss, void *ctx, double *x,
                              const double *grad, size_t n, int samples, eft_rng *r) {
    check_grad_at(what, loss, ctx, x, grad, n, samples, NULL, 0, 1e-6, r);
}

#endif
