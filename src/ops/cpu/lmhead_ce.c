/* lmhead_ce.c: the tied LM head, the final soft-cap and cross-entropy fused over vocabulary tiles
 * and token chunks, so that [T, V] logits never exist (ops.h; spec gemma4 §4.5, §7.7, §7.8).
 *
 * Training forward and backward: vocab tiles of VT rows of E are the outer loop, widened from
 * bf16 once per pass into shared scratch; token chunks of TC rows are the inner loop, split over
 * threads. Each chunk computes its logit tile Z = h E_tile^T with one GEMM, then:
 *   forward   per row, the tile's log-sum-exp of the capped logits, merged into lse[t];
 *   backward  dz = grad_scale (exp(c - lse) - onehot) (1 - tanh^2), then dh[chunk] += dz E_tile
 *             (the chunk's own rows: no other thread writes them) and, when dE is wanted,
 *             partial[thread] += dz^T h[chunk]; after the tile the partials are added into
 *             dE[tile] in thread order. Chunks go to threads statically, so a fixed thread count
 *             gives fixed bits.
 * The target logit of the forward's nll is one dot product per token, after the sweep.
 * Eval: token chunks outer (parallel), vocab tiles inner, each thread widening what it needs: no
 * buffer of size T at all.
 *
 * A chunk's rows are trimmed to its first and last trained token; chunks with none are skipped.
 */
#include "ops/cpu/cpu.h"

#define VT     256 /* vocab rows per tile: 256 x 5376 reals is 5.5 MB, shared by all threads */
#define TC_MAX 256 /* tokens per chunk at most: a 256 x 256 logit tile is 256 KB, in L2 */

/* Tokens per chunk: the largest of 256, 128, 64 that still gives every thread two chunks. BLAS
 * re-packs both operands on every call, which costs in proportion to 1/TC + 1/VT of the GEMM:
 * 64-row chunks run the logit GEMM ~25% slower than 256-row ones. Small rows favour threads. */
static int chunk_rows(int T, int nthreads) {
    int tc = TC_MAX;
    while (tc > 64 && (T + tc - 1) / tc < 2 * nthreads) tc /= 2;
    return tc;
}

static void check_targets(const int32_t *target, int T, int V) {
    for (int t = 0; t < T; t++) {
        assert(target[t] == OPS_IGNORE_INDEX || (target[t] >= 0 && target[t] < V));
        (void)target;
        (void)V;
    }
}

/* Narrows [*t0, *t1) to its first and last trained token; false if there is none. */
static bool trim_chunk(const int32_t *target, int *t0, int *t1) {
    while (*t0 < *t1 && target[*t0] == OPS_IGNORE_INDEX) ++*t0;
    while (*t1 > *t0 && target[*t1 - 1] == OPS_IGNORE_INDEX) --*t1;
    return *t0 < *t1;
}

/* Soft-caps a row of logits in place; returns its log-sum-exp. */
static real cap_row_lse(real *z, int n, real cap) {
    if (cap > 0) {
        real inv = 1 / cap;
#pragma omp simd
        for (int j = 0; j < n; j++) z[j] = cap * ops_tanh(z[j] * inv);
    }
    real m = z[0];
#pragma omp simd reduction(max : m)
    for (int j = 0; j < n; j++) m = z[j] > m ? z[j] : m;
    real s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) s += ops_exp(z[j] - m);
    return m + (real)log(s);
}

/* log(e^a + e^b), with a = -inf meaning "nothing yet". */
static inline real log_add_exp(real a, real b) {
    if (a == -INFINITY) return b;
    real hi = a > b ? a : b, lo = a > b ? b : a;
    return hi + (real)log1p(exp(lo - hi));
}

/* cap * tanh(h . E[row] / cap). Eight fixed partial sums rather than `omp simd`, so that the
 * order of the additions, and so the bits, are the same whether E is bf16 or real. */
static real capped_target_logit(const real *h, ops_weight E, int row, int H, real cap) {
    real acc[8] = {0};
    int c = 0;
    for (; c + 8 <= H; c += 8)
        for (int k = 0; k < 8; k++) acc[k] += h[c + k] * weight_at(E, row, c + k, H);
    for (; c < H; c++) acc[0] += h[c] * weight_at(E, row, c, H);
    real z = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    return cap > 0 ? cap * (real)tanh(z / cap) : z;
}

/* Scratch layout: [E tile, if bf16] [per thread: Z tile, dE partial if wanted] [used flags]. */
static size_t etile_bytes(int H, int dtype) {
    return dtype == OPS_W_BF16 ? reals_bytes((size_t)VT * H) : 0;
}
static size_t thread_bytes(int H, bool with_dE) {
    return reals_bytes((size_t)TC_MAX * VT) + (with_dE ? reals_bytes((size_t)VT * H) : 0);
}

size_t OPS(lmhead_ce_scratch_bytes)(int H, int dtype, bool with_dE, int nthreads) {
    return etile_bytes(H, dtype) + (size_t)nthreads * thread_bytes(H, with_dE) +
           align_up((size_t)nthreads * sizeof(int));
}

/* Widens rows [v0, v0 + nv) of E into etile, split over the team; returns the tile. */
static const real *team_widen(ops_weight E, int v0, int nv, int H, real *etile) {
    if (E.dtype == OPS_W_REAL) return (const real *)E.data + (size_t)v0 * H;
#pragma omp for schedule(static)
    for (int r = 0; r < nv; r++) weight_rows(E, (size_t)v0 + r, 1, H, etile + (size_t)r * H);
    return etile; /* the loop's implicit barrier makes the whole tile visible */
}

double OPS(lmhead_ce_forward)(real *lse, int64_t *count, const real *h, ops_weight E,
                              const int32_t *target, int T, int H, int V, double cap, void *scratch,
                              size_t scratch_bytes) {
    assert(T >= 0 && H > 0 && V > 0 && cap >= 0);
    check_targets(target, T, V);
    int nt = omp_get_max_threads();
    assert(scratch_bytes >= OPS(lmhead_ce_scratch_bytes)(H, E.dtype, false, nt));
    for (int t = 0; t < T; t++)
        if (target[t] != OPS_IGNORE_INDEX) lse[t] = -INFINITY;
    int tc = chunk_rows(T, nt), nchunks = (T + tc - 1) / tc;
    real *etile = scratch;
    unsigned char *threads = (unsigned char *)scratch + etile_bytes(H, E.dtype);
#pragma omp parallel num_threads(nt)
    {
        real *Z = (real *)(threads + thread_bytes(H, false) * omp_get_thread_num()); /* [TC, VT] */
        for (int v0 = 0; v0 < V; v0 += VT) {
            int nv = EFT_MIN(VT, V - v0);
            const real *Et = team_widen(E, v0, nv, H, etile); /* [nv, H] */
#pragma omp for schedule(dynamic)
            for (int ch = 0; ch < nchunks; ch++) {
                int t0 = ch * tc, t1 = EFT_MIN(T, t0 + tc);
                if (!trim_chunk(target, &t0, &t1)) continue;
                gemm(false, true, t1 - t0, nv, H, 1, h + (size_t)t0 * H, H, Et, H, 0, Z, VT);
                for (int t = t0; t < t1; t++) {
                    if (target[t] == OPS_IGNORE_INDEX) continue;
                    real tile_lse = cap_row_lse(Z + (size_t)(t - t0) * VT, nv, (real)cap);
                    lse[t] = log_add_exp(lse[t], tile_lse);
                }
            }
        }
    }
    double sum = 0;
    int64_t n = 0;
    for (int t = 0; t < T; t++) {
        if (target[t] == OPS_IGNORE_INDEX) continue;
        sum += (double)lse[t] - capped_target_logit(h + (size_t)t * H, E, target[t], H, (real)cap);
        n++;
    }
    *count = n;
    return sum;
}

/* Turns a chunk's logit tile into dz in place (rows with an ignored target become 0). */
static void tile_dz(real *Z, const int32_t *target, const real *lse, int t0, int t1, int v0, int nv,
                    real cap, real gs) {
    for (int t = t0; t < t1; t++) {
        real *z = Z + (size_t)(t - t0) * VT;
        if (target[t] == OPS_IGNORE_INDEX) {
            memset(z, 0, nv * sizeof(real));
            continue;
        }
        real l = lse[t];
        int jt = target[t] - v0; /* the one-hot column, if it is in this tile */
        real dcap_t = 1;         /* d c / d z at the target */
        if (cap > 0) {
            real inv = 1 / cap;
            if (jt >= 0 && jt < nv) {
                real th = ops_tanh(z[jt] * inv);
                dcap_t = 1 - th * th;
            }
#pragma omp simd
            for (int j = 0; j < nv; j++) {
                real th = ops_tanh(z[j] * inv);
                z[j] = gs * ops_exp(cap * th - l) * (1 - th * th);
            }
        } else {
#pragma omp simd
            for (int j = 0; j < nv; j++) z[j] = gs * ops_exp(z[j] - l);
        }
        if (jt >= 0 && jt < nv) z[jt] -= gs * dcap_t;
    }
}

void OPS(lmhead_ce_backward)(real *dh, real *dE, const real *h, ops_weight E, const int32_t *target,
                             const real *lse, int T, int H, int V, double cap, double grad_scale,
                             void *scratch, size_t scratch_bytes) {
    assert(T >= 0 && H > 0 && V > 0 && cap >= 0);
    check_targets(target, T, V);
    int nt = omp_get_max_threads();
    bool with_dE = dE != NULL;
    assert(scratch_bytes >= OPS(lmhead_ce_scratch_bytes)(H, E.dtype, with_dE, nt));
    int tc = chunk_rows(T, nt), nchunks = (T + tc - 1) / tc;
    real *etile = scratch;
    unsigned char *threads = (unsigned char *)scratch + etile_bytes(H, E.dtype);
    size_t tb = thread_bytes(H, with_dE);
    int *used = (int *)(threads + (size_t)nt * tb); /* [nt]: thread wrote its dE partial */
#pragma omp parallel num_threads(nt)
    {
        int me = omp_get_thread_num(), team = omp_get_num_threads();
        real *Z = (real *)(threads + tb * me); /* [TC, VT] */
        real *part =
            with_dE ? (real *)(threads + tb * me + reals_bytes((size_t)TC_MAX * VT)) : NULL;
        for (int v0 = 0; v0 < V; v0 += VT) {
            int nv = EFT_MIN(VT, V - v0);
            const real *Et = team_widen(E, v0, nv, H, etile); /* [nv, H] */
            used[me] = 0;
#pragma omp for schedule(static)
            for (int ch = 0; ch < nchunks; ch++) {
                int t0 = ch * tc, t1 = EFT_MIN(T, t0 + tc);
                if (!trim_chunk(target, &t0, &t1)) continue;
                const real *hc = h + (size_t)t0 * H;
                gemm(false, true, t1 - t0, nv, H, 1, hc, H, Et, H, 0, Z, VT);
                tile_dz(Z, target, lse, t0, t1, v0, nv, (real)cap, (real)grad_scale);
                gemm(false, false, t1 - t0, H, nv, 1, Z, VT, Et, H, 1, dh + (size_t)t0 * H, H);
                if (with_dE) {
                    gemm(true, false, nv, H, t1 - t0, 1, Z, VT, hc, H, used[me], part, H);
                    used[me] = 1;
                }
            }
            if (with_dE) {
                /* The loop's barrier has passed: every partial of this tile is complete. */
#pragma omp for schedule(static)
                for (int r = 0; r < nv; r++) {
                    real *d = dE + ((size_t)v0 + r) * H;
                    for (int th = 0; th < team; th++) {
                        if (!used[th]) continue;
                        const real *p =
                            (const real *)(threads + tb * th + reals_bytes((size_t)TC_MAX * VT)) +
                            (size_t)r * H;
#pragma omp simd
                        for (int c = 0; c < H; c++) d[c] += p[c];
                    }
                }
            }
        }
    }
}

/* Eval scratch: [per thread: E tile if bf16, Z tile, running lse and target logit of a chunk]
 * [per-thread sums and counts]. */
static size_t eval_thread_bytes(int H, int dtype) {
    return etile_bytes(H, dtype) + reals_bytes((size_t)TC_MAX * VT) + 2 * reals_bytes(TC_MAX);
}

size_t OPS(lmhead_ce_eval_scratch_bytes)(int H, int dtype, int nthreads) {
    return (size_t)nthreads * eval_thread_bytes(H, dtype) +
           align_up((size_t)nthreads * sizeof(double)) +
           align_up((size_t)nthreads * sizeof(int64_t));
}

double OPS(lmhead_ce_eval)(real *nll, int64_t *count, const real *h, ops_weight E,
                           const int32_t *target, int T, int H, int V, double cap, void *scratch,
                           size_t scratch_bytes) {
    assert(T >= 0 && H > 0 && V > 0 && cap >= 0);
    check_targets(target, T, V);
    int nt = omp_get_max_threads();
    assert(scratch_bytes >= OPS(lmhead_ce_eval_scratch_bytes)(H, E.dtype, nt));
    int tc = chunk_rows(T, nt), nchunks = (T + tc - 1) / tc;
    size_t tb = eval_thread_bytes(H, E.dtype);
    double *sums = (double *)((unsigned char *)scratch + (size_t)nt * tb);
    int64_t *counts = (int64_t *)((unsigned char *)sums + align_up((size_t)nt * sizeof(double)));
    int team = 1;
#pragma omp parallel num_threads(nt)
    {
        int me = omp_get_thread_num();
#pragma omp single
        team = omp_get_num_threads();
        unsigned char *p = (unsigned char *)scratch + tb * me;
        real *etile = carve(&p, etile_bytes(H, E.dtype));
        real *Z = carve(&p, reals_bytes((size_t)TC_MAX * VT)); /* [TC, VT] */
        real *run = carve(&p, reals_bytes(TC_MAX));            /* [TC] running lse */
        real *ct = carve(&p, reals_bytes(TC_MAX));             /* [TC] capped target logit */
        double sum = 0;
        int64_t n = 0;
#pragma omp for schedule(static)
        for (int ch = 0; ch < nchunks; ch++) {
            int t0 = ch * tc, t1 = EFT_MIN(T, t0 + tc);
            if (!trim_chunk(target, &t0, &t1)) continue;
            for (int r = 0; r < t1 - t0; r++) run[r] = -INFINITY;
            for (int v0 = 0; v0 < V; v0 += VT) {
                int nv = EFT_MIN(VT, V - v0);
                const real *Et = weight_rows(E, v0, nv, H, etile);
                gemm(false, true, t1 - t0, nv, H, 1, h + (size_t)t0 * H, H, Et, H, 0, Z, VT);
                for (int t = t0; t < t1; t++) {
                    if (target[t] == OPS_IGNORE_INDEX) continue;
                    real *z = Z + (size_t)(t - t0) * VT;
                    real tile_lse = cap_row_lse(z, nv, (real)cap); /* caps z in place */
                    run[t - t0] = log_add_exp(run[t - t0], tile_lse);
                    int jt = target[t] - v0;
                    if (jt >= 0 && jt < nv) ct[t - t0] = z[jt];
                }
            }
            for (int t = t0; t < t1; t++) {
                if (target[t] == OPS_IGNORE_INDEX) continue;
                real l = run[t - t0] - ct[t - t0];
                if (nll) nll[t] = l;
                sum += l;
                n++;
            }
        }
        sums[me] = sum;
        counts[me] = n;
    }
    double total = 0;
    int64_t n = 0;
    for (int th = 0; th < team; th++) {
        total += sums[th];
        n += counts[th];
    }
    *count = n;
    return total;
}
