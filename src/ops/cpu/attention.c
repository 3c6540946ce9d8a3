/* attention.c: causal / sliding-window / packed-document attention with GQA, forward and backward,
 * without ever forming [T, T] (ops.h; spec gemma4 §4.4, §5, §7.6).
 *
 * The row is cut into query tiles of BQ rows and key tiles of BK keys. Row i may see the keys
 * [lo_i, i] with lo_i = max(doc_start[i], i - W + 1) non-decreasing, so query tile [i0, i1) needs
 * exactly the key tiles that meet [lo_{i0}, i1 - 1], and key tile [j0, j1) is needed by exactly
 * the query rows [j0, last i with lo_i < j1]: every other tile pair is skipped, and tiles wholly
 * inside every row's interval take a path without per-element masks.
 *
 * A block is hs query heads of one KV group over one query tile, stacked into hs * BQ rows that
 * share their key and value tiles: the GEMMs are taller, and BLAS packs each K/V tile once per
 * block rather than once per head. Query-side tiles are copied into contiguous scratch first (the
 * rows of one head are nH * D apart, a power of two that makes BLAS's packing slow).
 *
 * Forward, per block: S = scale Q K^T for each key tile (BLAS), an online softmax (running max m
 * and sum l per row, rescaling the output rows when m grows), O += P V (BLAS); finally O /= l and
 * lse = m + log l.
 * Backward, recomputing P = exp(S - lse) from the saved lse, in two passes that write disjoint
 * rows: dq per block as dq += scale (P * (dO V^T - D)) K, and dk/dv per (kv head, key tile) over
 * the blocks of its group as dv += P^T dO, dk += scale (P * (dO V^T - D))^T Q, with
 * D_i = rowsum(dO * O) recomputed while the dO tile is copied. Seven GEMMs per tile pair instead
 * of FlashAttention-2's five, in exchange for no atomics and the same bits for any schedule.
 *
 * Blocks and key tiles are spread over threads with dynamic scheduling; each work item is computed
 * wholly by one thread in a fixed order, so scheduling never changes the result.
 */
#include "ops/cpu/cpu.h"

/* 64 x 512 reals (a D = 512 tile) is 128 KB: the K and V tiles, a block's Q and O and BLAS's
 * packed copies stay near a 1 MB L2. */
#define BQ 64
#define BK 64

/* Rows of a block (heads x BQ) at most: 256, or 128 for D >= 512 (the Q and O copies are then
 * 256 KB each). */
static int block_rows_max(int D) {
    return D >= 512 ? 2 * BQ : 4 * BQ;
}

/* Heads per block: the largest divisor of the group size that fits block_rows_max. */
static int block_heads(const ops_attn *a) {
    int rep = a->nH / a->nKV, hs = EFT_MIN(rep, block_rows_max(a->D) / BQ);
    while (rep % hs) hs--;
    return hs;
}
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

/* One thread's scratch; R = block_rows_max(D). */
typedef struct tile_bufs {
    real *S;     /* [R, BK] logits, then probabilities */
    real *dS;    /* [R, BK] dP, then dS */
    real *m, *l; /* [R] running max and sum (forward) */
    real *Di;    /* [R] rowsum(dO * O) (backward) */
    real *Qc;    /* [R, D] the block's query rows, contiguous */
    real *Xc;    /* [R, D] forward: the output accumulator; backward: the dO rows */
    real *Ac;    /* [R, D] the dq pass's accumulator */
} tile_bufs;

static size_t per_thread_bytes(int D) {
    size_t R = block_rows_max(D);
    return 2 * reals_bytes(R * BK) + 3 * reals_bytes(R) + 3 * reals_bytes(R * D);
}

size_t OPS(attention_scratch_bytes)(int D, int nthreads) {
    return (size_t)nthreads * per_thread_bytes(D);
}

static tile_bufs thread_bufs(void *scratch, int D) {
    unsigned char *p = (unsigned char *)scratch + per_thread_bytes(D) * omp_get_thread_num();
    size_t R = block_rows_max(D);
    tile_bufs b;
    b.S = carve(&p, reals_bytes(R * BK));
    b.dS = carve(&p, reals_bytes(R * BK));
    b.m = carve(&p, reals_bytes(R));
    b.l = carve(&p, reals_bytes(R));
    b.Di = carve(&p, reals_bytes(R));
    b.Qc = carve(&p, reals_bytes(R * D));
    b.Xc = carve(&p, reals_bytes(R * D));
    b.Ac = carve(&p, reals_bytes(R * D));
    return b;
}

/* A block: heads [h0, h0 + hs) of KV head g over query rows [i0, i0 + nq). Stacked row R is head
 * h0 + R / nq, token i0 + R % nq. */
typedef struct block {
    int g, h0, hs, i0, nq;
} block;

static block make_block(const ops_attn *a, int g, int sub, int qt) {
    int hs = block_heads(a);
    block bl = {g, g * (a->nH / a->nKV) + sub * hs, hs, qt * BQ, 0};
    bl.nq = EFT_MIN(a->T, bl.i0 + BQ) - bl.i0;
    return bl;
}

/* Offset in q / o / dout of stacked row R's first element. */
static inline size_t qrow(const ops_attn *a, block bl, int R) {
    return ((size_t)(bl.i0 + R % bl.nq) * a->nH + bl.h0 + R / bl.nq) * a->D;
}

/* The keys of tile [j0, j1) that token i sees, as columns [*c0, *c1) of the tile (maybe empty). */
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

/* Qc = the block's query rows; with dout and o, also Xc = its dO rows and Di = rowsum(dO * O). */
static void pack_block(tile_bufs b, const ops_attn *a, block bl, const real *q, const real *dout,
                       const real *o) {
    int D = a->D;
    for (int R = 0; R < bl.hs * bl.nq; R++) {
        size_t off = qrow(a, bl, R);
        memcpy(b.Qc + (size_t)R * D, q + off, D * sizeof(real));
        if (!dout) continue;
        const real *x = dout + off, *y = o + off;
        real *dst = b.Xc + (size_t)R * D, s = 0;
#pragma omp simd reduction(+ : s)
        for (int d = 0; d < D; d++) {
            dst[d] = x[d];
            s += x[d] * y[d];
        }
        b.Di[R] = s;
    }
}

/* ---- forward ---- */

static void forward_block(real *o, real *lse, const real *q, const real *k, const real *v,
                          const ops_attn *a, block bl, tile_bufs b) {
    int T = a->T, D = a->D, ldk = a->nKV * D, rows = bl.hs * bl.nq;
    pack_block(b, a, bl, q, NULL, NULL);
    real *O = b.Xc; /* [rows, D] */
    memset(O, 0, (size_t)rows * D * sizeof(real));
    for (int R = 0; R < rows; R++) {
        b.m[R] = -INFINITY;
        b.l[R] = 0;
    }
    int kt0, kt1;
    key_tiles(a, bl.i0 / BQ, &kt0, &kt1);
    for (int kt = kt0; kt < kt1; kt++) {
        int j0 = kt * BK, j1 = EFT_MIN(T, j0 + BK), nk = j1 - j0;
        const real *K = k + ((size_t)j0 * a->nKV + bl.g) * D;
        const real *V = v + ((size_t)j0 * a->nKV + bl.g) * D;
        gemm(false, true, rows, nk, D, (real)a->scale, b.Qc, D, K, ldk, 0, b.S, BK);
        bool full = tile_full(a, bl.i0, bl.i0 + bl.nq, j0, j1);
        for (int R = 0; R < rows; R++) {
            real *s = b.S + (size_t)R * BK;
            int c0, c1;
            row_cols(a, bl.i0 + R % bl.nq, j0, j1, full, &c0, &c1);
            if (c0 >= c1) { /* no key of this tile for this row */
                memset(s, 0, nk * sizeof(real));
                continue;
            }
            real mt = s[c0];
#pragma omp simd reduction(max : mt)
            for (int c = c0; c < c1; c++) mt = s[c] > mt ? s[c] : mt;
            real m_new = mt > b.m[R] ? mt : b.m[R];
            real sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int c = 0; c < nk; c++) {
                real p = (c >= c0 && c < c1) ? ops_exp(s[c] - m_new) : 0;
                s[c] = p;
                sum += p;
            }
            if (m_new != b.m[R]) {
                /* alpha is 0 on the row's first tile: O and l are still 0. */
                real alpha = b.m[R] == -INFINITY ? 0 : ops_exp(b.m[R] - m_new);
                real *orow = O + (size_t)R * D;
#pragma omp simd
                for (int d = 0; d < D; d++) orow[d] *= alpha;
                b.l[R] *= alpha;
                b.m[R] = m_new;
            }
            b.l[R] += sum;
        }
        gemm(false, false, rows, D, nk, 1, b.S, BK, V, ldk, 1, O, D);
    }
    for (int R = 0; R < rows; R++) {
        /* The diagonal is always allowed, so l > 0; with non-finite scores (a diverged run) l is
         * NaN, which must reach the loss, where the trainer stops the run with a message. */
        assert(!(b.l[R] <= 0));
        real inv = 1 / b.l[R];
        const real *orow = O + (size_t)R * D;
        real *out = o + qrow(a, bl, R);
#pragma omp simd
        for (int d = 0; d < D; d++) out[d] = orow[d] * inv;
        lse[(size_t)(bl.h0 + R / bl.nq) * T + bl.i0 + R % bl.nq] = b.m[R] + log(b.l[R]);
    }
}

void OPS(attention_forward)(real *o, real *lse, const real *q, const real *k, const real *v,
                            const ops_attn *a, void *scratch, size_t scratch_bytes) {
    check_shape(a);
    int nt = omp_get_max_threads();
    assert(scratch_bytes >= OPS(attention_scratch_bytes)(a->D, nt));
    int nqt = (a->T + BQ - 1) / BQ, nsub = a->nH / a->nKV / block_heads(a);
    int per_tile = a->nKV * nsub, items = nqt * per_tile;
#pragma omp parallel num_threads(nt)
    {
        tile_bufs b = thread_bufs(scratch, a->D);
        /* Late query tiles see the most keys: hand them out first. */
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < items; it++) {
            int w = it % per_tile;
            block bl = make_block(a, w / nsub, w % nsub, nqt - 1 - it / per_tile);
            forward_block(o, lse, q, k, v, a, bl, b);
        }
    }
}

/* ---- backward ---- */

/* On entry S = scale Q K^T and dS = dO V^T for a block and a key tile; on exit S = P (0 where
 * masked) and dS = P * (dO V^T - D). */
static void tile_probs_grads(const ops_attn *a, block bl, const real *lse, int j0, int nk,
                             tile_bufs b) {
    bool full = tile_full(a, bl.i0, bl.i0 + bl.nq, j0, j0 + nk);
    for (int R = 0; R < bl.hs * bl.nq; R++) {
        real *s = b.S + (size_t)R * BK, *ds = b.dS + (size_t)R * BK;
        int i = bl.i0 + R % bl.nq, c0, c1;
        row_cols(a, i, j0, j0 + nk, full, &c0, &c1);
        real lse_i = lse[(size_t)(bl.h0 + R / bl.nq) * a->T + i], di = b.Di[R];
#pragma omp simd
        for (int c = 0; c < nk; c++) {
            real p = (c >= c0 && c < c1) ? ops_exp(s[c] - lse_i) : 0;
            s[c] = p;
            ds[c] = p * (ds[c] - di);
        }
    }
}

/* S = scale Q K^T, dS = dO V^T, then both through tile_probs_grads, for key tile kt. */
static void block_tile_grads(const ops_attn *a, block bl, const real *k, const real *v,
                             const real *lse, int kt, tile_bufs b) {
    int D = a->D, ldk = a->nKV * D, rows = bl.hs * bl.nq;
    int j0 = kt * BK, nk = EFT_MIN(a->T, j0 + BK) - j0;
    size_t koff = ((size_t)j0 * a->nKV + bl.g) * D;
    gemm(false, true, rows, nk, D, (real)a->scale, b.Qc, D, k + koff, ldk, 0, b.S, BK);
    gemm(false, true, rows, nk, D, 1, b.Xc, D, v + koff, ldk, 0, b.dS, BK);
    tile_probs_grads(a, bl, lse, j0, nk, b);
}

static void dq_block(real *dq, const real *dout, const real *q, const real *k, const real *v,
                     const real *o, const real *lse, const ops_attn *a, block bl, tile_bufs b) {
    int D = a->D, ldk = a->nKV * D, rows = bl.hs * bl.nq;
    pack_block(b, a, bl, q, dout, o);
    int kt0, kt1;
    key_tiles(a, bl.i0 / BQ, &kt0, &kt1);
    for (int kt = kt0; kt < kt1; kt++) {
        int j0 = kt * BK, nk = EFT_MIN(a->T, j0 + BK) - j0;
        block_tile_grads(a, bl, k, v, lse, kt, b);
        const real *K = k + ((size_t)j0 * a->nKV + bl.g) * D;
        gemm(false, false, rows, D, nk, (real)a->scale, b.dS, BK, K, ldk, kt > kt0, b.Ac, D);
    }
    for (int R = 0; R < rows; R++) {
        real *dst = dq + qrow(a, bl, R);
        const real *src = b.Ac + (size_t)R * D;
#pragma omp simd
        for (int d = 0; d < D; d++) dst[d] += src[d];
    }
}

static void dkdv_item(real *dk, real *dv, const real *dout, const real *q, const real *k,
                      const real *v, const real *o, const real *lse, const ops_attn *a, int g,
                      int kt, tile_bufs b) {
    int D = a->D, ldk = a->nKV * D, nsub = a->nH / a->nKV / block_heads(a);
    int j0 = kt * BK, nk = EFT_MIN(a->T, j0 + BK) - j0;
    size_t koff = ((size_t)j0 * a->nKV + g) * D;
    int qt0, qt1;
    query_tiles(a, kt, &qt0, &qt1);
    for (int sub = 0; sub < nsub; sub++) {
        for (int qt = qt0; qt < qt1; qt++) {
            block bl = make_block(a, g, sub, qt);
            int rows = bl.hs * bl.nq;
            pack_block(b, a, bl, q, dout, o);
            block_tile_grads(a, bl, k, v, lse, kt, b);
            gemm(true, false, nk, D, rows, 1, b.S, BK, b.Xc, D, 1, dv + koff, ldk);
            gemm(true, false, nk, D, rows, (real)a->scale, b.dS, BK, b.Qc, D, 1, dk + koff, ldk);
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
    int nsub = a->nH / a->nKV / block_heads(a), per_tile = a->nKV * nsub;
    int qitems = nqt * per_tile, kitems = nkt * a->nKV;
#pragma omp parallel num_threads(nt)
    {
        tile_bufs b = thread_bufs(scratch, a->D);
#pragma omp for schedule(dynamic, 1) nowait
        for (int it = 0; it < qitems; it++) {
            int w = it % per_tile;
            block bl = make_block(a, w / nsub, w % nsub, nqt - 1 - it / per_tile);
            dq_block(dq, dout, q, k, v, o, lse, a, bl, b);
        }
        /* Early key tiles are seen by the most queries: hand them out first. */
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < kitems; it++)
            dkdv_item(dk, dv, dout, q, k, v, o, lse, a, it % a->nKV, it / a->nKV, b);
    }
}
