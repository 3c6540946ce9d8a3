/* bench_ops.c: micro-benchmark of the two big kernels against naive versions that form the whole
 * [T, T] or [T, V] matrix (with large BLAS GEMMs, so "naive" means memory, not slow loops).
 *
 *   bench_ops [threads]
 *
 * Attention fwd+bwd at T = 1024, nH = 8, nKV = 2, D = 256 (sliding W = 512 and full) and D = 512
 * (full); the fused LM head + soft-cap + CE at T = 1024, H = 1024, V = 32768 with a bf16 and an
 * fp32 E (dE skipped and computed). Prints the best of 3 runs, in wall-clock time and in CPU time
 * of the whole process (all threads; on a shared machine it is the steadier of the two), and the
 * memory each way needs beyond inputs and gradients.
 */
#include "base/err.h"
#include "base/half.h"
#include "base/log.h"
#include "base/rng.h"
#include "base/threads.h"
#include "ops/ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPS 3

/* CPU seconds of the whole process, all threads together. */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Best-of wall and CPU times of one phase. */
typedef struct timing {
    double wall, cpu;
} timing;

static void timing_add(timing *t, double wall, double cpu) {
    if (wall < t->wall) t->wall = wall;
    if (cpu < t->cpu) t->cpu = cpu;
}

static float *rand_f32(eft_rng *r, size_t n, double scale) {
    float *x = eft_malloc_aligned(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * eft_rng_normal(r));
    return x;
}

static float *zeros_f32(size_t n) {
    float *x = eft_malloc_aligned(n * sizeof(float));
    memset(x, 0, n * sizeof(float));
    return x;
}

/* ---- naive attention: P [nH, T, T] formed and kept for the backward ---- */

static bool allowed(int i, int j, int W) {
    return j <= i && (W == 0 || j > i - W);
}

static void naive_attn_fwd(float *o, float *P, const float *q, const float *k, const float *v,
                           int T, int nH, int nKV, int D, int W) {
    int rep = nH / nKV;
#pragma omp parallel for
    for (int h = 0; h < nH; h++) {
        int g = h / rep;
        float *S = P + (size_t)h * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1, q + h * D, nH * D,
                    k + g * D, nKV * D, 0, S, T);
        for (int i = 0; i < T; i++) {
            float *s = S + (size_t)i * T, m = -INFINITY, sum = 0;
            for (int j = 0; j < T; j++)
                if (allowed(i, j, W)) m = fmaxf(m, s[j]);
            for (int j = 0; j < T; j++) sum += s[j] = allowed(i, j, W) ? expf(s[j] - m) : 0;
            for (int j = 0; j < T; j++) s[j] /= sum;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1, S, T, v + g * D, nKV * D,
                    0, o + h * D, nH * D);
    }
}

static void naive_attn_bwd(float *dq, float *dk, float *dv, float *dP, const float *dout,
                           const float *P, const float *q, const float *k, const float *v, int T,
                           int nH, int nKV, int D) {
    int rep = nH / nKV;
    /* dk/dv sum over the heads of a group: one thread per kv head keeps it race-free. */
#pragma omp parallel for
    for (int g = 0; g < nKV; g++) {
        for (int h = g * rep; h < (g + 1) * rep; h++) {
            const float *Ph = P + (size_t)h * T * T;
            float *dS = dP + (size_t)h * T * T;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1, Ph, T, dout + h * D,
                        nH * D, 1, dv + g * D, nKV * D);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1, dout + h * D, nH * D,
                        v + g * D, nKV * D, 0, dS, T);
            for (int i = 0; i < T; i++) {
                const float *p = Ph + (size_t)i * T;
                float *ds = dS + (size_t)i * T, di = 0;
                for (int j = 0; j < T; j++) di += p[j] * ds[j];
                for (int j = 0; j < T; j++) ds[j] = p[j] * (ds[j] - di);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1, dS, T, k + g * D,
                        nKV * D, 1, dq + h * D, nH * D);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1, dS, T, q + h * D,
                        nH * D, 1, dk + g * D, nKV * D);
        }
    }
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void bench_attention(int T, int nH, int nKV, int D, int W) {
    eft_rng r;
    eft_rng_seed(&r, 1, D + W);
    size_t nq = (size_t)T * nH * D, nk = (size_t)T * nKV * D;
    double s = 1.5 * pow(D, -0.25);
    float *q = rand_f32(&r, nq, s), *k = rand_f32(&r, nk, s), *v = rand_f32(&r, nk, 1);
    float *dout = rand_f32(&r, nq, 1), *o = zeros_f32(nq), *lse = zeros_f32((size_t)nH * T);
    float *dq = zeros_f32(nq), *dk = zeros_f32(nk), *dv = zeros_f32(nk);
    ops_attn a = {T, nH, nKV, D, W, 1.0, NULL};
    size_t bytes = ops_attention_scratch_bytes(D, omp_get_max_threads());
    void *scratch = eft_malloc_aligned(bytes);
    timing tf = {1e9, 1e9}, tb = tf, nf = tf, nb = tf;
    for (int rep = 0; rep < REPS; rep++) {
        double t0 = eft_now(), c0 = cpu_now();
        ops_attention_forward(o, lse, q, k, v, &a, scratch, bytes);
        double t1 = eft_now(), c1 = cpu_now();
        ops_attention_backward(dq, dk, dv, dout, q, k, v, o, lse, &a, scratch, bytes);
        double t2 = eft_now(), c2 = cpu_now();
        timing_add(&tf, t1 - t0, c1 - c0), timing_add(&tb, t2 - t1, c2 - c1);
    }
    size_t pbytes = (size_t)nH * T * T * sizeof(float);
    float *P = eft_malloc_aligned(pbytes), *dP = eft_malloc_aligned(pbytes);
    float *o2 = zeros_f32(nq), *dq2 = zeros_f32(nq), *dk2 = zeros_f32(nk), *dv2 = zeros_f32(nk);
    for (int rep = 0; rep < REPS; rep++) {
        double t0 = eft_now(), c0 = cpu_now();
        naive_attn_fwd(o2, P, q, k, v, T, nH, nKV, D, W);
        double t1 = eft_now(), c1 = cpu_now();
        naive_attn_bwd(dq2, dk2, dv2, dP, dout, P, q, k, v, T, nH, nKV, D);
        double t2 = eft_now(), c2 = cpu_now();
        timing_add(&nf, t1 - t0, c1 - c0), timing_add(&nb, t2 - t1, c2 - c1);
    }
    long pairs = 0; /* allowed (i, j) pairs: the useful work */
    for (int i = 0; i < T; i++) pairs += W ? (i + 1 < W ? i + 1 : W) : i + 1;
    double fwd_flop = 4.0 * D * nH * pairs, bwd_flop = 2.5 * fwd_flop; /* 5 GEMMs vs 2 */
    printf("attention T=%d nH=%d nKV=%d D=%d W=%d: tiles/head %ld of %d\n", T, nH, nKV, D, W,
           ops_attention_tiles(&a), ((T + 63) / 64) * ((T + 63) / 64));
    printf("  tiled  fwd %7.1f ms (cpu %7.1f)  bwd %7.1f ms (cpu %7.1f)  useful GFLOP per cpu-s "
           "%.1f / %.1f  extra memory %.2f MB (scratch + lse)\n",
           tf.wall * 1e3, tf.cpu * 1e3, tb.wall * 1e3, tb.cpu * 1e3, fwd_flop / tf.cpu * 1e-9,
           bwd_flop / tb.cpu * 1e-9, (bytes + (double)nH * T * 4) / 1e6);
    printf("  naive  fwd %7.1f ms (cpu %7.1f)  bwd %7.1f ms (cpu %7.1f)  extra memory %.2f MB "
           "(P and dP [nH, T, T])\n",
           nf.wall * 1e3, nf.cpu * 1e3, nb.wall * 1e3, nb.cpu * 1e3, 2.0 * pbytes / 1e6);
    /* Both ran REPS times into their accumulating gradients: compare the same multiples. */
    printf("  max |diff| o %.2g  dq %.2g  dk %.2g  dv %.2g\n", max_abs_diff(o, o2, nq),
           max_abs_diff(dq, dq2, nq), max_abs_diff(dk, dk2, nk), max_abs_diff(dv, dv2, nk));
    eft_free_aligned(q), eft_free_aligned(k), eft_free_aligned(v), eft_free_aligned(dout);
    eft_free_aligned(o), eft_free_aligned(lse), eft_free_aligned(dq), eft_free_aligned(dk);
    eft_free_aligned(dv), eft_free_aligned(scratch), eft_free_aligned(P), eft_free_aligned(dP);
    eft_free_aligned(o2), eft_free_aligned(dq2), eft_free_aligned(dk2), eft_free_aligned(dv2);
}

/* ---- naive loss: the [T, V] logits formed, soft-capped and turned into dz in place ---- */

static double naive_ce(float *dh, float *dE, float *Z, const float *h, const float *E,
                       const int32_t *target, int T, int H, int V, float cap, float gs) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, V, H, 1, h, H, E, H, 0, Z, V);
    double sum = 0;
#pragma omp parallel for reduction(+ : sum)
    for (int t = 0; t < T; t++) {
        float *z = Z + (size_t)t * V, m = -INFINITY, s = 0;
        for (int j = 0; j < V; j++) m = fmaxf(m, z[j] = cap * tanhf(z[j] / cap));
        for (int j = 0; j < V; j++) s += expf(z[j] - m);
        float lse = m + logf(s);
        sum += lse - z[target[t]];
        for (int j = 0; j < V; j++) {
            float th = z[j] / cap;
            z[j] = gs * (expf(z[j] - lse) - (j == target[t])) * (1 - th * th);
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, H, V, 1, Z, V, E, H, 1, dh, H);
    if (dE) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, H, T, 1, Z, V, h, H, 1, dE, H);
    return sum;
}

static void bench_loss(int T, int H, int V, bool bf16, bool with_dE) {
    eft_rng r;
    eft_rng_seed(&r, 2, V);
    float *h = rand_f32(&r, (size_t)T * H, 1), *E = rand_f32(&r, (size_t)V * H, 3 / sqrt(H));
    uint16_t *Eb = eft_malloc((size_t)V * H * 2);
    eft_f32_to_bf16_n(Eb, E, (size_t)V * H);
    eft_bf16_to_f32_n(E, Eb, (size_t)V * H); /* same values both ways */
    int32_t *target = eft_malloc(T * sizeof(int32_t));
    for (int t = 0; t < T; t++) target[t] = (int32_t)eft_rng_below(&r, V);
    float *lse = zeros_f32(T), *dh = zeros_f32((size_t)T * H);
    float *dE = with_dE ? zeros_f32((size_t)V * H) : NULL;
    ops_weight w = bf16 ? ops_w_bf16(Eb) : ops_w_real(E);
    size_t bytes = ops_lmhead_ce_scratch_bytes(H, w.dtype, with_dE, omp_get_max_threads());
    void *scratch = eft_malloc_aligned(bytes);
    timing tf = {1e9, 1e9}, tb = tf, tn = tf;
    double loss = 0, nloss = 0;
    for (int rep = 0; rep < REPS; rep++) {
        int64_t n;
        double t0 = eft_now(), c0 = cpu_now();
        loss = ops_lmhead_ce_forward(lse, &n, h, w, target, T, H, V, 30.0, scratch, bytes);
        double t1 = eft_now(), c1 = cpu_now();
        ops_lmhead_ce_backward(dh, dE, h, w, target, lse, T, H, V, 30.0, 1.0 / n, scratch, bytes);
        double t2 = eft_now(), c2 = cpu_now();
        timing_add(&tf, t1 - t0, c1 - c0), timing_add(&tb, t2 - t1, c2 - c1);
    }
    size_t zbytes = (size_t)T * V * sizeof(float);
    float *Z = eft_malloc_aligned(zbytes), *dh2 = zeros_f32((size_t)T * H);
    float *dE2 = with_dE ? zeros_f32((size_t)V * H) : NULL;
    for (int rep = 0; rep < REPS; rep++) {
        double t0 = eft_now(), c0 = cpu_now();
        nloss = naive_ce(dh2, dE2, Z, h, E, target, T, H, V, 30.0f, 1.0f / T);
        timing_add(&tn, eft_now() - t0, cpu_now() - c0);
    }
    double flop = 2.0 * T * H * V * (with_dE ? 4 : 3);
    printf("loss T=%d H=%d V=%d E=%s dE=%s\n", T, H, V, bf16 ? "bf16" : "fp32",
           with_dE ? "yes" : "no");
    printf("  fused  fwd %7.1f ms (cpu %7.1f)  bwd %7.1f ms (cpu %7.1f)  GEMM GFLOP per cpu-s "
           "%.1f  extra memory %.2f MB (scratch + lse)\n",
           tf.wall * 1e3, tf.cpu * 1e3, tb.wall * 1e3, tb.cpu * 1e3,
           flop / (tf.cpu + tb.cpu) * 1e-9, (bytes + T * 4.0) / 1e6);
    printf("  naive  fwd+bwd %7.1f ms (cpu %7.1f)  fp32 E  extra memory %.2f MB (logits [T, V])\n",
           tn.wall * 1e3, tn.cpu * 1e3, zbytes / 1e6);
    printf("  mean loss fused %.6f naive %.6f  max |diff| dh %.2g\n", loss / T, nloss / T,
           max_abs_diff(dh, dh2, (size_t)T * H));
    eft_free_aligned(h), eft_free_aligned(E), eft_free(Eb), eft_free(target);
    eft_free_aligned(lse), eft_free_aligned(dh), eft_free_aligned(dE);
    eft_free_aligned(scratch), eft_free_aligned(Z), eft_free_aligned(dh2);
    eft_free_aligned(dE2);
}

int main(int argc, char **argv) {
    eft_threads_set(argc > 1 ? atoi(argv[1]) : 0);
    printf("threads %d; OpenBLAS %s (%s)\n", eft_threads(), openblas_get_config(),
           openblas_get_corename());
    bench_attention(1024, 8, 2, 256, 512);
    bench_attention(1024, 8, 2, 256, 0);
    bench_attention(1024, 8, 2, 512, 0);
    bench_loss(1024, 1024, 32768, true, false);
    bench_loss(1024, 1024, 32768, true, true);
    bench_loss(1024, 1024, 32768, false, true);
    return 0;
}
