/* test_attention.c: tiled attention against a naive O(T^2) reference built here, finite
 * differences of its backward, tile skipping, scratch, float vs double, determinism. */
#include "ops/check.h"

/* ---- the reference: every (i, j) pair, in double ---- */

static bool allowed(const ops_attn *a, int i, int j) {
    if (j > i) return false;
    if (a->doc_start && j < a->doc_start[i]) return false;
    if (a->window > 0 && j <= i - a->window) return false;
    return true;
}

/* p [T] = softmax over row i's allowed keys for head h; returns the log-sum-exp. */
static double naive_probs(double *p, const double *q, const double *k, const ops_attn *a, int h,
                          int i) {
    int D = a->D, g = h / (a->nH / a->nKV);
    const double *qi = q + ((size_t)i * a->nH + h) * D;
    double m = -INFINITY;
    for (int j = 0; j < a->T; j++) {
        p[j] = -INFINITY;
        if (!allowed(a, i, j)) continue;
        p[j] = a->scale * dot(qi, k + ((size_t)j * a->nKV + g) * D, D);
        m = fmax(m, p[j]);
    }
    double s = 0;
    for (int j = 0; j < a->T; j++) s += p[j] == -INFINITY ? 0 : exp(p[j] - m);
    for (int j = 0; j < a->T; j++) p[j] = p[j] == -INFINITY ? 0 : exp(p[j] - m) / s;
    return m + log(s);
}

static void naive_forward(double *o, double *lse, const double *q, const double *k, const double *v,
                          const ops_attn *a) {
    int D = a->D;
    double *p = eft_malloc(a->T * sizeof(double));
    for (int h = 0; h < a->nH; h++) {
        int g = h / (a->nH / a->nKV);
        for (int i = 0; i < a->T; i++) {
            lse[(size_t)h * a->T + i] = naive_probs(p, q, k, a, h, i);
            double *oi = o + ((size_t)i * a->nH + h) * D;
            memset(oi, 0, D * sizeof(double));
            for (int j = 0; j < a->T; j++)
                for (int d = 0; d < D; d++) oi[d] += p[j] * v[((size_t)j * a->nKV + g) * D + d];
        }
    }
    eft_free(p);
}

static void naive_backward(double *dq, double *dk, double *dv, const double *dout, const double *q,
                           const double *k, const double *v, const ops_attn *a) {
    int D = a->D, T = a->T;
    double *p = eft_malloc(T * sizeof(double)), *dp = eft_malloc(T * sizeof(double));
    for (int h = 0; h < a->nH; h++) {
        int g = h / (a->nH / a->nKV);
        for (int i = 0; i < T; i++) {
            naive_probs(p, q, k, a, h, i);
            const double *doi = dout + ((size_t)i * a->nH + h) * D;
            const double *qi = q + ((size_t)i * a->nH + h) * D;
            double *dqi = dq + ((size_t)i * a->nH + h) * D;
            double di = 0;
            for (int j = 0; j < T; j++) {
                dp[j] = dot(doi, v + ((size_t)j * a->nKV + g) * D, D);
                di += p[j] * dp[j];
            }
            for (int j = 0; j < T; j++) {
                if (p[j] == 0) continue;
                double ds = p[j] * (dp[j] - di) * a->scale;
                size_t kj = ((size_t)j * a->nKV + g) * D;
                for (int d = 0; d < D; d++) {
                    dqi[d] += ds * k[kj + d];
                    dk[kj + d] += ds * qi[d];
                    dv[kj + d] += p[j] * doi[d];
                }
            }
        }
    }
    eft_free(p);
    eft_free(dp);
}

/* ---- cases ---- */

typedef struct att_case {
    const char *name;
    int T, nH, nKV, D, window;
    double scale;
    int doc_len[6]; /* lengths of the packed documents, 0-terminated; none: one document */
} att_case;

static int32_t *make_doc_start(const att_case *c) {
    if (!c->doc_len[0]) return NULL;
    int32_t *ds = eft_malloc(c->T * sizeof(int32_t));
    int t = 0;
    for (int d = 0; d < 6 && c->doc_len[d]; d++)
        for (int n = 0, s = t; n < c->doc_len[d]; n++) ds[t++] = s;
    assert_int_equal(t, c->T);
    return ds;
}

/* Inputs of one case, in double, plus the loss context for finite differences. */
typedef struct att_data {
    ops_attn a;
    int32_t *doc_start;
    size_t nq, nk;
    double *q, *k, *v, *up; /* up: the upstream gradient dL/do */
    double *o, *lse;
    void *scratch;
    size_t scratch_bytes;
} att_data;

static void att_init(att_data *d, const att_case *c, uint64_t seed) {
    eft_rng r;
    eft_rng_seed(&r, seed, 1);
    memset(d, 0, sizeof *d);
    d->doc_start = make_doc_start(c);
    d->a = (ops_attn){c->T, c->nH, c->nKV, c->D, c->window, c->scale, d->doc_start};
    d->nq = (size_t)c->T * c->nH * c->D;
    d->nk = (size_t)c->T * c->nKV * c->D;
    /* Entries of std D^-1/4 give logits of std about 1.5^2 at scale 1: peaked but not one-hot. */
    double s = 1.5 * pow(c->D, -0.25);
    d->q = rand_vec(&r, d->nq, s);
    d->k = rand_vec(&r, d->nk, s);
    d->v = rand_vec(&r, d->nk, 1.0);
    d->up = rand_vec(&r, d->nq, 1.0);
    d->o = zeros(d->nq);
    d->lse = zeros((size_t)c->nH * c->T);
    d->scratch_bytes = ops64_attention_scratch_bytes(c->D, omp_get_max_threads());
    d->scratch = scratch_exact(d->scratch_bytes);
}

static void att_free(att_data *d) {
    eft_free(d->doc_start);
    eft_free(d->q);
    eft_free(d->k);
    eft_free(d->v);
    eft_free(d->up);
    eft_free(d->o);
    eft_free(d->lse);
    eft_free(d->scratch);
}

static double att_loss(void *ctx) {
    att_data *d = ctx;
    ops64_attention_forward(d->o, d->lse, d->q, d->k, d->v, &d->a, d->scratch, d->scratch_bytes);
    return dot(d->up, d->o, d->nq);
}

static const att_case CASES[] = {
    /* Gemma 4 full layer shape (D = 512, GQA 8:2), small T: runs under ASan too. */
    {"d512_gqa4", 40, 8, 2, 512, 0, 1.0, {0}},
    /* D = 256 sliding, window shorter than T, T not a multiple of the 64-row tiles. */
    {"d256_window", 100, 2, 1, 256, 37, 1.0, {0}},
    /* Multi-query (nKV = 1), packed documents with a 1-token one, window shorter than a doc. */
    {"mqa_docs_window", 150, 4, 1, 24, 29, 1.0, {70, 1, 50, 29, 0}},
    /* Window longer than T, documents starting mid-tile, another scale. */
    {"docs_longwindow", 141, 3, 3, 8, 500, 0.37, {64, 1, 1, 75, 0}},
    /* Several query tiles of one long document; the window starts query tile 2 at key 63, the
     * last key of a tile. */
    {"window_tile_edge", 200, 2, 1, 16, 66, 1.0, {0}},
    /* Six query heads per KV head: blocks of three heads. */
    {"rep6", 90, 6, 1, 8, 0, 1.0, {30, 60, 0}},
    /* A document boundary at 63: the next query tiles start their keys one before a tile edge. */
    {"doc_tile_edge", 200, 2, 1, 16, 0, 1.0, {63, 137, 0}},
};

/* Token indices worth checking by hand: tile edges and the ends. */
static int edge_elems(size_t *out, int T, int heads, int D) {
    int toks[] = {0, 1, 63, 64, 65, 127, 128, T - 2, T - 1}, n = 0;
    for (size_t t = 0; t < EFT_ARRAY_LEN(toks); t++) {
        if (toks[t] < 0 || toks[t] >= T) continue;
        out[n++] = ((size_t)toks[t] * heads) * D;                     /* first head, dim 0 */
        out[n++] = ((size_t)toks[t] * heads + heads - 1) * D + D - 1; /* last head, last dim */
    }
    return n;
}

static void test_forward_matches_reference(void **state) {
    for (size_t c = 0; c < EFT_ARRAY_LEN(CASES); c++) {
        att_data d;
        att_init(&d, &CASES[c], 100 + c);
        att_loss(&d);
        double *o = zeros(d.nq), *lse = zeros((size_t)d.a.nH * d.a.T);
        naive_forward(o, lse, d.q, d.k, d.v, &d.a);
        assert_rel_le(d.o, o, d.nq, 1e-12);
        assert_rel_le(d.lse, lse, (size_t)d.a.nH * d.a.T, 1e-12);
        eft_free(o);
        eft_free(lse);
        att_free(&d);
    }
}

static void test_backward_matches_reference_and_accumulates(void **state) {
    for (size_t c = 0; c < EFT_ARRAY_LEN(CASES); c++) {
        att_data d;
        att_init(&d, &CASES[c], 200 + c);
        att_loss(&d);
        eft_rng r;
        eft_rng_seed(&r, 7, c);
        /* Start the gradients from random values: the op must add to them. */
        double *dq = rand_vec(&r, d.nq, 1), *dk = rand_vec(&r, d.nk, 1),
               *dv = rand_vec(&r, d.nk, 1);
        double *rq = dup_vec(dq, d.nq), *rk = dup_vec(dk, d.nk), *rv = dup_vec(dv, d.nk);
        ops64_attention_backward(dq, dk, dv, d.up, d.q, d.k, d.v, d.o, d.lse, &d.a, d.scratch,
                                 d.scratch_bytes);
        naive_backward(rq, rk, rv, d.up, d.q, d.k, d.v, &d.a);
        assert_rel_le(dq, rq, d.nq, 1e-12);
        assert_rel_le(dk, rk, d.nk, 1e-12);
        assert_rel_le(dv, rv, d.nk, 1e-12);
        eft_free(dq), eft_free(dk), eft_free(dv), eft_free(rq), eft_free(rk), eft_free(rv);
        att_free(&d);
    }
}

static void test_backward_finite_differences(void **state) {
    for (size_t c = 0; c < EFT_ARRAY_LEN(CASES); c++) {
        const att_case *ac = &CASES[c];
        att_data d;
        att_init(&d, ac, 300 + c);
        att_loss(&d);
        double *dq = zeros(d.nq), *dk = zeros(d.nk), *dv = zeros(d.nk);
        ops64_attention_backward(dq, dk, dv, d.up, d.q, d.k, d.v, d.o, d.lse, &d.a, d.scratch,
                                 d.scratch_bytes);
        eft_rng r;
        eft_rng_seed(&r, 8, c);
        size_t eq[32], ek[32];
        int nq = edge_elems(eq, ac->T, ac->nH, ac->D), nk = edge_elems(ek, ac->T, ac->nKV, ac->D);
        check_grad_at("dq", att_loss, &d, d.q, dq, d.nq, 12, eq, nq, 1e-6, &r);
        check_grad_at("dk", att_loss, &d, d.k, dk, d.nk, 12, ek, nk, 1e-6, &r);
        check_grad_at("dv", att_loss, &d, d.v, dv, d.nk, 12, ek, nk, 1e-6, &r);
        eft_free(dq), eft_free(dk), eft_free(dv);
        att_free(&d);
    }
}

/* A packed row gives, row for row, what each document gives alone. */
static void test_packed_equals_separate(void **state) {
    const att_case *c = &CASES[2]; /* documents 70, 1, 50, 29 */
    att_data d;
    att_init(&d, c, 400);
    att_loss(&d);
    int t0 = 0;
    for (int doc = 0; c->doc_len[doc]; doc++) {
        int n = c->doc_len[doc];
        ops_attn a1 = d.a;
        a1.T = n;
        a1.doc_start = NULL;
        size_t off = (size_t)t0 * c->nH * c->D, koff = (size_t)t0 * c->nKV * c->D;
        double *o = zeros((size_t)n * c->nH * c->D), *lse = zeros((size_t)n * c->nH);
        ops64_attention_forward(o, lse, d.q + off, d.k + koff, d.v + koff, &a1, d.scratch,
                                d.scratch_bytes);
        assert_rel_le(o, d.o + off, (size_t)n * c->nH * c->D, 1e-12);
        for (int h = 0; h < c->nH; h++)
            assert_rel_le(lse + (size_t)h * n, d.lse + (size_t)h * c->T + t0, (size_t)n, 1e-12);
        eft_free(o);
        eft_free(lse);
        t0 += n;
    }
    att_free(&d);
}

/* Masked-out tiles are not visited, and the result is still the reference's. */
static void test_tile_skipping(void **state) {
    /* 256 tokens = 4 query x 4 key tiles of 64; causal visits 4 + 3 + 2 + 1 pairs. */
    att_case causal = {"causal", 256, 2, 1, 8, 0, 1.0, {0}};
    att_case docs = {"docs", 256, 2, 1, 8, 0, 1.0, {100, 100, 56, 0}};
    att_case win = {"docs_window", 256, 2, 1, 8, 32, 1.0, {100, 100, 56, 0}};
    att_case longrow = {"long_window", 1024, 1, 1, 8, 128, 1.0, {0}};
    att_case longcausal = {"long_causal", 1024, 1, 1, 8, 0, 1.0, {0}};
    const att_case *cases[] = {&causal, &docs, &win, &longrow, &longcausal};
    long want[] = {10, 8, 7, 45, 136};
    for (size_t c = 0; c < EFT_ARRAY_LEN(cases); c++) {
        att_data d;
        att_init(&d, cases[c], 500 + c);
        assert_int_equal(ops64_attention_tiles(&d.a), want[c]);
        assert_int_equal(ops_attention_tiles(&d.a), want[c]);
        att_loss(&d);
        double *o = zeros(d.nq), *lse = zeros((size_t)d.a.nH * d.a.T);
        naive_forward(o, lse, d.q, d.k, d.v, &d.a);
        assert_rel_le(d.o, o, d.nq, 1e-12);
        eft_free(o);
        eft_free(lse);
        att_free(&d);
    }
}

/* Scratch does not depend on T; the exact size suffices at 4x the tokens (ASan would see an
 * overrun). */
static void test_scratch_independent_of_T(void **state) {
    int nt = omp_get_max_threads();
    assert_true(ops_attention_scratch_bytes(512, nt) > 0);
    for (int T = 100; T <= 400; T *= 4) {
        att_case c = {"scratch", T, 2, 1, 40, 0, 1.0, {0}};
        att_data d;
        att_init(&d, &c, 600 + T);
        assert_int_equal(d.scratch_bytes, ops64_attention_scratch_bytes(40, nt));
        att_loss(&d);
        double *dq = zeros(d.nq), *dk = zeros(d.nk), *dv = zeros(d.nk);
        ops64_attention_backward(dq, dk, dv, d.up, d.q, d.k, d.v, d.o, d.lse, &d.a, d.scratch,
                                 d.scratch_bytes);
        eft_free(dq), eft_free(dk), eft_free(dv);
        att_free(&d);
    }
}

/* The float build on the same inputs agrees with the double build to float precision. */
static void test_float_matches_double(void **state) {
    for (size_t c = 0; c < EFT_ARRAY_LEN(CASES); c++) {
        att_data d;
        att_init(&d, &CASES[c], 700 + c);
        att_loss(&d);
        double *dq = zeros(d.nq), *dk = zeros(d.nk), *dv = zeros(d.nk);
        ops64_attention_backward(dq, dk, dv, d.up, d.q, d.k, d.v, d.o, d.lse, &d.a, d.scratch,
                                 d.scratch_bytes);
        float *q = to_f32(d.q, d.nq), *k = to_f32(d.k, d.nk), *v = to_f32(d.v, d.nk);
        float *up = to_f32(d.up, d.nq), *o = to_f32(d.o, d.nq);
        float *lse = to_f32(d.lse, (size_t)d.a.nH * d.a.T);
        float *fq = eft_calloc(d.nq, 4), *fk = eft_calloc(d.nk, 4), *fv = eft_calloc(d.nk, 4);
        size_t bytes = ops_attention_scratch_bytes(d.a.D, omp_get_max_threads());
        void *scratch = scratch_exact(bytes);
        ops_attention_forward(o, lse, q, k, v, &d.a, scratch, bytes);
        assert_rel_le_f32(o, d.o, d.nq, 1e-5);
        assert_rel_le_f32(lse, d.lse, (size_t)d.a.nH * d.a.T, 1e-5);
        ops_attention_backward(fq, fk, fv, up, q, k, v, o, lse, &d.a, scratch, bytes);
        assert_rel_le_f32(fq, dq, d.nq, 1e-5);
        assert_rel_le_f32(fk, dk, d.nk, 1e-5);
        assert_rel_le_f32(fv, dv, d.nk, 1e-5);
        eft_free(q), eft_free(k), eft_free(v), eft_free(up), eft_free(o), eft_free(lse);
        eft_free(fq), eft_free(fk), eft_free(fv), eft_free(scratch);
        eft_free(dq), eft_free(dk), eft_free(dv);
        att_free(&d);
    }
}

/* Two runs with two threads give the same bits. */
static void test_deterministic(void **state) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    att_case c = {"det", 300, 4, 2, 64, 100, 1.0, {120, 1, 179, 0}};
    att_data d;
    att_init(&d, &c, 800);
    float *q = to_f32(d.q, d.nq), *k = to_f32(d.k, d.nk), *v = to_f32(d.v, d.nk);
    float *up = to_f32(d.up, d.nq);
    size_t bytes = ops_attention_scratch_bytes(c.D, 2);
    void *scratch = scratch_exact(bytes);
    float *out[2][5];
    for (int run = 0; run < 2; run++) {
        float *o = eft_calloc(d.nq, 4), *lse = eft_calloc((size_t)c.nH * c.T, 4);
        float *dq = eft_calloc(d.nq, 4), *dk = eft_calloc(d.nk, 4), *dv = eft_calloc(d.nk, 4);
        ops_attention_forward(o, lse, q, k, v, &d.a, scratch, bytes);
        ops_attention_backward(dq, dk, dv, up, q, k, v, o, lse, &d.a, scratch, bytes);
        out[run][0] = o, out[run][1] = lse, out[run][2] = dq, out[run][3] = dk, out[run][4] = dv;
    }
    size_t sizes[5] = {d.nq, (size_t)c.nH * c.T, d.nq, d.nk, d.nk};
    for (int i = 0; i < 5; i++) {
        assert_memory_equal(out[0][i], out[1][i], sizes[i] * sizeof(float));
        eft_free(out[0][i]);
        eft_free(out[1][i]);
    }
    eft_free(q), eft_free(k), eft_free(v), eft_free(up), eft_free(scratch);
    att_free(&d);
    omp_set_num_threads(saved);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_reference),
        cmocka_unit_test(test_backward_matches_reference_and_accumulates),
        cmocka_unit_test(test_backward_finite_differences),
        cmocka_unit_test(test_packed_equals_separate),
        cmocka_unit_test(test_tile_skipping),
        cmocka_unit_test(test_scratch_independent_of_T),
        cmocka_unit_test(test_float_matches_double),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
