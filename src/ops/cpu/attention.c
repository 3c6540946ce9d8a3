/* attention.c: causal / sliding-window / packed-document attention with GQA, forward and backward,
 * without ever forming [T, T] (ops.h; spec gemma4 §4.4, §5, §7.6).
 *
 * The row is cut into query tiles of BQ rows and key tiles of BK keys. Row i may see the keys
 * [lo_i, i] with lo_i = max(doc_start[i], i - W + 1) non-decreasing, so query tile [i0, i1) needs
 * exactly the key tiles that meet [lo_{i0}, i1 - 1], and key tile [j0, j1) is needed by exactly
 * the query rows [j0, last i with lo_i < j1]: every other tile pair is skipped, and tiles wholly
 * inside every row's interval take a path without per-element masks.
 *
 * Forward, per (head, query tile): S = scale Q K^T for each key tile (BLAS), an online softmax
 * (running max m and sum l per row, rescaling the output rows when m grows), O += P V (BLAS);
 * finally O /= l and lse = m + log l.
 * Backward, recomputing P = exp(S - lse) from the saved lse, in two passes that write disjoint
 * rows: dq per (head, query tile) as dq += scale (P * (dO V^T - D)) K, then dk/dv per (kv head,
 * key tile) over the query heads of its group as dv += P^T dO, dk += scale (P * (dO V^T - D))^T Q,
 * with D_i = rowsum(dO * O) recomputed per tile. Seven GEMMs per tile pair instead of
 * FlashAttention-2's five, in exchange for no atomics and the same bits for any schedule.
 *
 * Heads and tiles are spread over threads with dynamic scheduling; each work item is computed
 * wholly by one thread in a fixed order, so scheduling never changes the result.
 */
#include "ops/cpu/cpu.h"

/* 64 x 512 reals (a D = 512 tile) is 128 KB: Q, K and V tiles plus BLAS's packed copies of them
 * stay within a 1 MB L2. */
#define BQ 64
#define BK 64

/* First key row i may attend to. */
static inline int row_lo(const ops_attn *a, int i) {
    int lo = a->doc_start ? a->doc_start[i] : 0;
    if (a->window > 0 && i - a->window + 1 > lo) lo = i - a->window + 1;
    return lo;
}

/* Key tiles [*kt0, *kt1) that meet some row of query tile qt. */
static void key_tiles(const ops_attn *a, int qt, int *kt0, int *kt1) {
    int i0 = qt * BQ, i1 = EFT_MIN(a->T, i0 + BQ);
    *kt0 = row_lo(a, i0) / BK;
    *kt1 = (i1 - 1) / BK + 1;
}

/* Query tiles [*qt0, *qt1) with some row that sees a key of key tile kt. */
static void query_tiles(const ops_attn *a, int kt, int *qt0, int *qt1) {
    int j0 = kt * BK, j1 = EFT_MIN(a->T, j0 + BK);
    int lo = j0, hi = a->T - 1; /* the last i with row_lo(i) < j1; row_lo(j0) <= j0 < j1 */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (row_lo(a, mid) < j1)
            lo = mid;
        else
            hi = mid - 1;
    }
    *qt0 = j0 / BQ;
    *qt1 = lo / BQ + 1;
}

static void check_shape(const ops_attn *a) {
    assert(a->T >= 0 && a->D > 0 && a->nKV > 0 && a->nH % a->nKV == 0 && a->window >= 0);
    if (!a->doc_start) return;
    for (int t = 0; t < a->T; t++) {
        int s = a->doc_start[t];
        assert(t == 0 ? s == 0 : (s == t || s == a->doc_start[t - 1]));
        (void)s;
    }
}

long OPS(attention_tiles)(const ops_attn *a) {
    check_shape(a);
    int nqt = (a->T + BQ - 1) / BQ, nkt = (a->T + BK - 1) / BK;
    long by_query = 0, by_key = 0;
    for (int qt = 0; qt < nqt; qt++) {
        int k0, k1;
        key_tiles(a, qt, &k0, &k1);
        by_query += k1 - k0;
    }
    for (int kt = 0; kt < nkt; kt++) {
        int q0, q1;
        query_tiles(a, kt, &q0, &q1);
        by_key += q1 - q0;
    }
    assert(by_query == by_key); /* the forward/dq and the dk/dv passes visit the same pairs */
    return by_query;
}

/* One thread's scratch. */
typedef struct tile_bufs {
    real *S;     /* [BQ, BK] logits, then probabilities */
    real *dS;    /* [BQ, BK] dP, then dS */
    real *m, *l; /* [BQ] running max and sum (forward) */
    real *Di;    /* [BQ] rowsum(dO * O) (backward) */
    real *Qc;    /* [BQ, D] the query tile, made contiguous */
    real *Xc;    /* [BQ, D] forward: the output accumulator; backward: the dO tile */
} tile_bufs;

static size_t per_thread_bytes(int D) {
    return 2 * reals_bytes(BQ * BK) + 3 * reals_bytes(BQ) + 2 * reals_bytes((size_t)BQ * D);
}

size_t OPS(attention_scratch_bytes)(int D, int nthreads) {
    return (size_t)nthreads * per_thread_bytes(D);
}

static tile_bufs thread_bufs(void *scratch, int D) {
    unsigned char *p = (unsigned char *)scratch + per_thread_bytes(D) * omp_get_thread_num();
    tile_bufs b;
    b.S = carve(&p, reals_bytes(BQ * BK));
    b.dS = carve(&p, reals_bytes(BQ * BK));
    b.m = carve(&p, reals_bytes(BQ));
    b.l = carve(&p, reals_bytes(BQ));
    b.Di = carve(&p, reals_bytes(BQ));
    b.Qc = carve(&p, reals_bytes((size_t)BQ * D));
    b.Xc = carve(&p, reals_bytes((size_t)BQ * D));
    return b;
}

/* dst [nq, D] = the nq rows of src, `ld` apart. Query-side tiles are copied once per use: the rows
 * of one head are nH * D apart in q (a power of two), which makes BLAS's packing of them slow. */
static void pack_rows(real *dst, const real *src, int nq, int D, int ld) {
    for (int r = 0; r < nq; r++)
        memcpy(dst + (size_t)r * D, src + (size_t)r * ld, D * sizeof(real));
}

/* The keys of tile [j0, j1) that row i sees, as columns [*c0, *c1) of the tile (maybe empty). */
static inline void row_cols(const ops_attn *a, int i, int j0, int j1, bool full, int *c0, int *c1) {
    if (full) {
        *c0 = 0;
        *c1 = j1 - j0;
        return;
    }
    *c0 = EFT_MAX(row_lo(a, i), j0) - j0;
    *c1 = EFT_MIN(i + 1, j1) - j0;
}

/* Whether every row of [i0, i1) sees every key of [j0, j1). */
static inline bool tile_full(const ops_attn *a, int i0, int i1, int j0, int j1) {
    return j1 - 1 <= i0 && j0 >= row_lo(a, i1 - 1);
}

/* ---- forward ---- */

static void forward_item(real *o, real *lse, const real *q, const real *k, const real *v,
                         const ops_attn *a, int h, int qt, tile_bufs b) {
    int T = a->T, D = a->D, ldq = a->nH * D, ldk = a->nKV * D;
    int g = h / (a->nH / a->nKV);
    int i0 = qt * BQ, i1 = EFT_MIN(T, i0 + BQ), nq = i1 - i0;
    real *Q = b.Qc, *O = b.Xc; /* [nq, D] */
    pack_rows(Q, q + ((size_t)i0 * a->nH + h) * D, nq, D, ldq);
    memset(O, 0, (size_t)nq * D * sizeof(real));
    for (int r = 0; r < nq; r++) {
        b.m[r] = -INFINITY;
        b.l[r] = 0;
    }
    int kt0, kt1;
    key_tiles(a, qt, &kt0, &kt1);
    for (int kt = kt0; kt < kt1; kt++) {
        int j0 = kt * BK, j1 = EFT_MIN(T, j0 + BK), nk = j1 - j0;
        const real *K = k + ((size_t)j0 * a->nKV + g) * D, *V = v + ((size_t)j0 * a->nKV + g) * D;
        gemm(false, true, nq, nk, D, (real)a->scale, Q, D, K, ldk, 0, b.S, BK);
        bool full = tile_full(a, i0, i1, j0, j1);
        for (int r = 0; r < nq; r++) {
            real *s = b.S + (size_t)r * BK;
            int c0, c1;
            row_cols(a, i0 + r, j0, j1, full, &c0, &c1);
            if (c0 >= c1) { /* no key of this tile for this row */
                memset(s, 0, nk * sizeof(real));
                continue;
            }
            real mt = s[c0];
#pragma omp simd reduction(max : mt)
            for (int c = c0; c < c1; c++) mt = s[c] > mt ? s[c] : mt;
            real m_new = mt > b.m[r] ? mt : b.m[r];
            real sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int c = 0; c < nk; c++) {
                real p = (c >= c0 && c < c1) ? ops_exp(s[c] - m_new) : 0;
                s[c] = p;
                sum += p;
            }
            if (m_new != b.m[r]) {
                /* alpha is 0 on the row's first tile: O and l are still 0. */
                real alpha = b.m[r] == -INFINITY ? 0 : ops_exp(b.m[r] - m_new);
                real *orow = O + (size_t)r * D;
#pragma omp simd
                for (int d = 0; d < D; d++) orow[d] *= alpha;
                b.l[r] *= alpha;
                b.m[r] = m_new;
            }
            b.l[r] += sum;
        }
        gemm(false, false, nq, D, nk, 1, b.S, BK, V, ldk, 1, O, D);
    }
    for (int r = 0; r < nq; r++) {
        assert(b.l[r] > 0); /* the diagonal is always allowed */
        real inv = 1 / b.l[r];
        const real *orow = O + (size_t)r * D;
        real *out = o + ((size_t)(i0 + r) * a->nH + h) * D;
#pragma omp simd
        for (int d = 0; d < D; d++) out[d] = orow[d] * inv;
        lse[(size_t)h * T + i0 + r] = b.m[r] + log(b.l[r]);
    }
}

void OPS(attention_forward)(real *o, real *lse, const real *q, const real *k, const real *v,
                            const ops_attn *a, void *scratch, size_t scratch_bytes) {
    check_shape(a);
    int nt = omp_get_max_threads();
    assert(scratch_bytes >= OPS(attention_scratch_bytes)(a->D, nt));
    int nqt = (a->T + BQ - 1) / BQ, items = nqt * a->nH;
#pragma omp parallel num_threads(nt)
    {
        tile_bufs b = thread_bufs(scratch, a->D);
        /* Late query tiles see the most keys: hand them out first. */
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < items; it++)
            forward_item(o, lse, q, k, v, a, it % a->nH, nqt - 1 - it / a->nH, b);
    }
}

/* ---- backward ---- */

/* Packs the query-side tiles of (head, query tile) at offset `off` of q, dout and o: Qc = Q,
 * Xc = dO, and Di[r] = dO[r] . O[r]. */
static void pack_query_side(tile_bufs b, const real *q, const real *dout, const real *o, size_t off,
                            int nq, int D, int ld) {
    pack_rows(b.Qc, q + off, nq, D, ld);
    for (int r = 0; r < nq; r++) {
        const real *x = dout + off + (size_t)r * ld, *y = o + off + (size_t)r * ld;
        real *dst = b.Xc + (size_t)r * D, s = 0;
#pragma omp simd reduction(+ : s)
        for (int d = 0; d < D; d++) {
            dst[d] = x[d];
            s += x[d] * y[d];
        }
        b.Di[r] = s;
    }
}

/* On entry S = scale Q K^T and dS = dO V^T for one tile pair; on exit S = P (0 where masked) and
 * dS = P * (dO V^T - D). */
static void tile_probs_grads(const ops_attn *a, const real *lse_h, const real *Di, int i0, int nq,
                             int j0, int nk, tile_bufs b) {
    bool full = tile_full(a, i0, i0 + nq, j0, j0 + nk);
    for (int r = 0; r < nq; r++) {
        real *s = b.S + (size_t)r * BK, *ds = b.dS + (size_t)r * BK;
        int c0, c1;
        row_cols(a, i0 + r, j0, j0 + nk, full, &c0, &c1);
        real lse_i = lse_h[i0 + r], di = Di[r];
#pragma omp simd
        for (int c = 0; c < nk; c++) {
            real p = (c >= c0 && c < c1) ? ops_exp(s[c] - lse_i) : 0;
            s[c] = p;
            ds[c] = p * (ds[c] - di);
        }
    }
}

static void dq_item(real *dq, const real *dout, const real *q, const real *k, const real *v,
                    const real *o, const real *lse, const ops_attn *a, int h, int qt, tile_bufs b) {
    int T = a->T, D = a->D, ldq = a->nH * D, ldk = a->nKV * D;
    int g = h / (a->nH / a->nKV);
    int i0 = qt * BQ, nq = EFT_MIN(T, i0 + BQ) - i0;
    size_t qoff = ((size_t)i0 * a->nH + h) * D;
    pack_query_side(b, q, dout, o, qoff, nq, D, ldq);
    int kt0, kt1;
    key_tiles(a, qt, &kt0, &kt1);
    for (int kt = kt0; kt < kt1; kt++) {
        int j0 = kt * BK, nk = EFT_MIN(T, j0 + BK) - j0;
        size_t koff = ((size_t)j0 * a->nKV + g) * D;
        gemm(false, true, nq, nk, D, (real)a->scale, b.Qc, D, k + koff, ldk, 0, b.S, BK);
        gemm(false, true, nq, nk, D, 1, b.Xc, D, v + koff, ldk, 0, b.dS, BK);
        tile_probs_grads(a, lse + (size_t)h * T, b.Di, i0, nq, j0, nk, b);
        gemm(false, false, nq, D, nk, (real)a->scale, b.dS, BK, k + koff, ldk, 1, dq + qoff, ldq);
    }
}

static void dkdv_item(real *dk, real *dv, const real *dout, const real *q, const real *k,
                      const real *v, const real *o, const real *lse, const ops_attn *a, int g,
                      int kt, tile_bufs b) {
    int T = a->T, D = a->D, ldq = a->nH * D, ldk = a->nKV * D, rep = a->nH / a->nKV;
    int j0 = kt * BK, nk = EFT_MIN(T, j0 + BK) - j0;
    size_t koff = ((size_t)j0 * a->nKV + g) * D;
    int qt0, qt1;
    query_tiles(a, kt, &qt0, &qt1);
    for (int h = g * rep; h < (g + 1) * rep; h++) {
        for (int qt = qt0; qt < qt1; qt++) {
            int i0 = qt * BQ, nq = EFT_MIN(T, i0 + BQ) - i0;
            size_t qoff = ((size_t)i0 * a->nH + h) * D;
            pack_query_side(b, q, dout, o, qoff, nq, D, ldq);
            gemm(false, true, nq, nk, D, (real)a->scale, b.Qc, D, k + koff, ldk, 0, b.S, BK);
            gemm(false, true, nq, nk, D, 1, b.Xc, D, v + koff, ldk, 0, b.dS, BK);
            tile_probs_grads(a, lse + (size_t)h * T, b.Di, i0, nq, j0, nk, b);
            gemm(true, false, nk, D, nq, 1, b.S, BK, b.Xc, D, 1, dv + koff, ldk);
            gemm(true, false, nk, D, nq, (real)a->scale, b.dS, BK, b.Qc, D, 1, dk + koff, ldk);
        }
    }
}

void OPS(attention_backward)(real *dq, real *dk, real *dv, const real *dout, const real *q,
                             const real *k, const real *v, const real *o, const real *lse,
                             const ops_attn *a, void *scratch, size_t scratch_bytes) {
    check_shape(a);
    int nt = omp_get_max_threads();
    assert(scratch_bytes >= OPS(attention_scratch_bytes)(a->D, nt));
    int nqt = (a->T + BQ - 1) / BQ, nkt = (a->T + BK - 1) / BK;
    int qitems = nqt * a->nH, kitems = nkt * a->nKV;
#pragma omp parallel num_threads(nt)
    {
        tile_bufs b = thread_bufs(scratch, a->D);
#pragma omp for schedule(dynamic, 1) nowait
        for (int it = 0; it < qitems; it++)
            dq_item(dq, dout, q, k, v, o, lse, a, it % a->nH, nqt - 1 - it / a->nH, b);
            /* Early key tiles are seen by the most queries: hand them out first. */
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < kitems; it++)
            dkdv_item(dk, dv, dout, q, k, v, o, lse, a, it % a->nKV, it / a->nKV, b);
    }
}
