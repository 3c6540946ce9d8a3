/* test_lmhead_ce.c: the fused LM head + soft-cap + cross-entropy against a naive [T, V]
 * reference built here, finite differences, bf16 weights, frozen vs trained E, scratch, float vs
 * double, determinism. */
#include "ops/check.h"

#define IGN OPS_IGNORE_INDEX

/* ---- the reference: the whole [T, V] logit matrix, in double ---- */

static double capped(double z, double cap) {
    return cap > 0 ? cap * tanh(z / cap) : z;
}

/* Returns sum of nll; fills lse [T] and nll [T] for trained rows, dh/dE += the gradient of
 * gs * sum(nll) when they are not NULL. */
static double naive_ce(double *lse, double *nll, double *dh, double *dE, int64_t *count,
                       const double *h, const double *E, const int32_t *target, int T, int H, int V,
                       double cap, double gs) {
    double *c = eft_malloc(V * sizeof(double)), *z = eft_malloc(V * sizeof(double)), sum = 0;
    *count = 0;
    for (int t = 0; t < T; t++) {
        if (target[t] == IGN) continue;
        double m = -INFINITY, s = 0;
        for (int j = 0; j < V; j++) {
            z[j] = dot(h + (size_t)t * H, E + (size_t)j * H, H);
            c[j] = capped(z[j], cap);
            m = fmax(m, c[j]);
        }
        for (int j = 0; j < V; j++) s += exp(c[j] - m);
        double l = m + log(s);
        lse[t] = l;
        nll[t] = l - c[target[t]];
        sum += nll[t];
        ++*count;
        for (int j = 0; j < V && dh; j++) {
            double th = cap > 0 ? tanh(z[j] / cap) : 0;
            double dz = gs * (exp(c[j] - l) - (j == target[t])) * (1 - th * th);
            for (int k = 0; k < H; k++) {
                dh[(size_t)t * H + k] += dz * E[(size_t)j * H + k];
                if (dE) dE[(size_t)j * H + k] += dz * h[(size_t)t * H + k];
            }
        }
    }
    eft_free(c);
    eft_free(z);
    return sum;
}

/* ---- cases ---- */

typedef struct ce_case {
    const char *name;
    int T, H, V;
    double cap, hstd;
    bool bf16;
    int ignore_from, ignore_to; /* a run of ignored targets (a prompt, or a whole document) */
} ce_case;

static const ce_case CASES[] = {
    /* Soft-cap on, logits large enough to bend it; one chunk, two vocab tiles (V % 256 != 0). */
    {"cap_small", 50, 24, 300, 30.0, 4.0, false, 10, 20},
    /* No cap; three token chunks with the middle one wholly ignored; three vocab tiles. */
    {"nocap_chunks", 150, 40, 600, 0.0, 1.0, false, 64, 128},
    /* bf16 E (widening path), T and V not multiples of the tiles. */
    {"bf16_cap", 70, 32, 513, 30.0, 4.0, true, 0, 5},
    /* Every target ignored. */
    {"all_ignored", 20, 16, 100, 30.0, 1.0, false, 0, 20},
    /* Long enough for 256-token chunks (the last one partial), a long ignored run, bf16 E. */
    {"long_chunks", 1100, 16, 300, 30.0, 3.0, true, 500, 700},
};

typedef struct ce_data {
    const ce_case *c;
    double *h, *E;   /* [T, H], [V, H] (E rounded to bf16 values when c->bf16) */
    uint16_t *Eb;    /* [V, H] bf16, when c->bf16 */
    int32_t *target; /* [T] */
    double *lse;
    double gs;
    void *scratch;
    size_t scratch_bytes;
} ce_data;

static ops_weight ce_weight(const ce_data *d) {
    return d->c->bf16 ? ops_w_bf16(d->Eb) : ops_w_real(d->E);
}

static void ce_init(ce_data *d, const ce_case *c, uint64_t seed) {
    eft_rng r;
    eft_rng_seed(&r, seed, 2);
    memset(d, 0, sizeof *d);
    d->c = c;
    d->h = rand_vec(&r, (size_t)c->T * c->H, c->hstd);
    d->E = rand_vec(&r, (size_t)c->V * c->H, 3.0 / sqrt(c->H));
    if (c->bf16) d->Eb = round_bf16(d->E, (size_t)c->V * c->H);
    d->target = eft_malloc(c->T * sizeof(int32_t));
    for (int t = 0; t < c->T; t++) {
        bool ign = (t >= c->ignore_from && t < c->ignore_to) || eft_rng_below(&r, 7) == 0;
        d->target[t] = ign ? IGN : (int32_t)eft_rng_below(&r, c->V);
    }
    d->lse = zeros(c->T);
    d->gs = 0.37;
    d->scratch_bytes =
        ops64_lmhead_ce_scratch_bytes(c->H, ce_weight(d).dtype, true, omp_get_max_threads());
    d->scratch = scratch_exact(d->scratch_bytes);
}

static void ce_free(ce_data *d) {
    eft_free(d->h), eft_free(d->E), eft_free(d->Eb), eft_free(d->target), eft_free(d->lse);
    eft_free(d->scratch);
}

static double ce_forward(ce_data *d, int64_t *count) {
    const ce_case *c = d->c;
    return ops64_lmhead_ce_forward(d->lse, count, d->h, ce_weight(d), d->target, c->T, c->H, c->V,
                                   c->cap, d->scratch, d->scratch_bytes);
}

static void ce_backward(ce_data *d, double *dh, double *dE) {
    const ce_case *c = d->c;
    ops64_lmhead_ce_backward(dh, dE, d->h, ce_weight(d), d->target, d->lse, c->T, c->H, c->V,
                             c->cap, d->gs, d->scratch, d->scratch_bytes);
}

/* L = gs * sum(nll); E is read as double (the loss of the bf16 case is the same function). */
static double ce_loss(void *ctx) {
    ce_data *d = ctx;
    const ce_case *c = d->c;
    int64_t n;
    return d->gs * ops64_lmhead_ce_forward(d->lse, &n, d->h, ops_w_real(d->E), d->target, c->T,
                                           c->H, c->V, c->cap, d->scratch, d->scratch_bytes);
}

static void test_forward_and_eval_match_reference(void **state) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(CASES); i++) {
        const ce_case *c = &CASES[i];
        ce_data d;
        ce_init(&d, c, 10 + i);
        int64_t n, rn, en;
        double sum = ce_forward(&d, &n);
        double *lse = zeros(c->T), *nll = zeros(c->T), *enll = zeros(c->T);
        double want =
            naive_ce(lse, nll, NULL, NULL, &rn, d.h, d.E, d.target, c->T, c->H, c->V, c->cap, 0);
        assert_int_equal(n, rn);
        assert_close(sum, want, 1e-12);
        for (int t = 0; t < c->T; t++)
            if (d.target[t] != IGN) assert_close(d.lse[t], lse[t], 1e-12);
        size_t eb =
            ops64_lmhead_ce_eval_scratch_bytes(c->H, ce_weight(&d).dtype, omp_get_max_threads());
        void *es = scratch_exact(eb);
        double esum = ops64_lmhead_ce_eval(enll, &en, d.h, ce_weight(&d), d.target, c->T, c->H,
                                           c->V, c->cap, es, eb);
        assert_int_equal(en, rn);
        assert_close(esum, want, 1e-12);
        for (int t = 0; t < c->T; t++)
            if (d.target[t] != IGN) assert_close(enll[t], nll[t], 1e-12);
        if (!strcmp(c->name, "all_ignored")) assert_true(n == 0 && sum == 0 && esum == 0);
        eft_free(lse), eft_free(nll), eft_free(enll), eft_free(es);
        ce_free(&d);
    }
}

static void test_backward_matches_reference_and_accumulates(void **state) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(CASES); i++) {
        const ce_case *c = &CASES[i];
        ce_data d;
        ce_init(&d, c, 20 + i);
        int64_t n;
        ce_forward(&d, &n);
        eft_rng r;
        eft_rng_seed(&r, 21, i);
        size_t nh = (size_t)c->T * c->H, ne = (size_t)c->V * c->H;
        double *dh = rand_vec(&r, nh, 1), *dE = rand_vec(&r, ne, 1);
        double *rh = dup_vec(dh, nh), *rE = dup_vec(dE, ne);
        double *lse = zeros(c->T), *nll = zeros(c->T);
        ce_backward(&d, dh, dE);
        naive_ce(lse, nll, rh, rE, &n, d.h, d.E, d.target, c->T, c->H, c->V, c->cap, d.gs);
        assert_rel_le(dh, rh, nh, 1e-12);
        assert_rel_le(dE, rE, ne, 1e-12);
        eft_free(dh), eft_free(dE), eft_free(rh), eft_free(rE), eft_free(lse), eft_free(nll);
        ce_free(&d);
    }
}

static void test_backward_finite_differences(void **state) {
    for (size_t i = 0; i < 3; i++) { /* the all-ignored case has a zero gradient */
        const ce_case *c = &CASES[i];
        ce_data d;
        ce_init(&d, c, 30 + i);
        int64_t n;
        ce_forward(&d, &n);
        size_t nh = (size_t)c->T * c->H, ne = (size_t)c->V * c->H;
        double *dh = zeros(nh), *dE = zeros(ne);
        ce_backward(&d, dh, dE);
        eft_rng r;
        eft_rng_seed(&r, 31, i);
        /* The last vocab row sits in the partial last tile; the last token in the last chunk. */
        size_t eh[] = {0, nh - 1, (size_t)63 * c->H, (size_t)64 * c->H};
        size_t ee[] = {0, ne - 1, (size_t)255 * c->H, (size_t)256 * c->H + 1};
        check_grad_at("dh", ce_loss, &d, d.h, dh, nh, 16, eh, 4, 1e-6, &r);
        check_grad_at("dE", ce_loss, &d, d.E, dE, ne, 16, ee, 4, 1e-6, &r);
        eft_free(dh), eft_free(dE);
        ce_free(&d);
    }
}

/* bf16 E through the widening path gives exactly what the same values give as ops_real, in both
 * twins; and a frozen E (dE NULL) changes nothing in dh. */
static void test_bf16_and_frozen_paths(void **state) {
    const ce_case *c = &CASES[2];
    ce_data d;
    ce_init(&d, c, 40);
    size_t nh = (size_t)c->T * c->H, ne = (size_t)c->V * c->H;
    int nt = omp_get_max_threads();
    /* double twin */
    double *lse_r = zeros(c->T), *dh_r = zeros(nh), *dE_r = zeros(ne), *dh_f = zeros(nh);
    int64_t n1, n2;
    double s_b = ce_forward(&d, &n1); /* bf16 */
    double s_r = ops64_lmhead_ce_forward(lse_r, &n2, d.h, ops_w_real(d.E), d.target, c->T, c->H,
                                         c->V, c->cap, d.scratch, d.scratch_bytes);
    assert_true(s_b == s_r && n1 == n2);
    assert_memory_equal(lse_r, d.lse, c->T * sizeof(double));
    double *dh_b = zeros(nh), *dE_b = zeros(ne);
    ce_backward(&d, dh_b, dE_b);
    ops64_lmhead_ce_backward(dh_r, dE_r, d.h, ops_w_real(d.E), d.target, d.lse, c->T, c->H, c->V,
                             c->cap, d.gs, d.scratch, d.scratch_bytes);
    assert_memory_equal(dh_b, dh_r, nh * sizeof(double));
    assert_memory_equal(dE_b, dE_r, ne * sizeof(double));
    ce_backward(&d, dh_f, NULL);
    assert_memory_equal(dh_f, dh_b, nh * sizeof(double));
    /* float twin */
    float *h = to_f32(d.h, nh), *E = to_f32(d.E, ne), *lse = to_f32(d.lse, c->T);
    float *fh_b = eft_calloc(nh, 4), *fh_r = eft_calloc(nh, 4), *fh_f = eft_calloc(nh, 4);
    float *fE_b = eft_calloc(ne, 4), *fE_r = eft_calloc(ne, 4);
    size_t bytes = ops_lmhead_ce_scratch_bytes(c->H, OPS_W_BF16, true, nt);
    void *s = scratch_exact(bytes);
    double f_b = ops_lmhead_ce_forward(lse, &n1, h, ops_w_bf16(d.Eb), d.target, c->T, c->H, c->V,
                                       c->cap, s, bytes);
    double f_r = ops_lmhead_ce_forward(lse, &n2, h, ops_w_real(E), d.target, c->T, c->H, c->V,
                                       c->cap, s, bytes);
    assert_true(f_b == f_r);
    ops_lmhead_ce_backward(fh_b, fE_b, h, ops_w_bf16(d.Eb), d.target, lse, c->T, c->H, c->V, c->cap,
                           d.gs, s, bytes);
    ops_lmhead_ce_backward(fh_r, fE_r, h, ops_w_real(E), d.target, lse, c->T, c->H, c->V, c->cap,
                           d.gs, s, bytes);
    ops_lmhead_ce_backward(fh_f, NULL, h, ops_w_bf16(d.Eb), d.target, lse, c->T, c->H, c->V, c->cap,
                           d.gs, s, bytes);
    assert_memory_equal(fh_b, fh_r, nh * 4);
    assert_memory_equal(fE_b, fE_r, ne * 4);
    assert_memory_equal(fh_f, fh_b, nh * 4);
    eft_free(lse_r), eft_free(dh_r), eft_free(dE_r), eft_free(dh_f), eft_free(dh_b);
    eft_free(dE_b), eft_free(h), eft_free(E), eft_free(lse), eft_free(fh_b), eft_free(fh_r);
    eft_free(fh_f), eft_free(fE_b), eft_free(fE_r), eft_free(s);
    ce_free(&d);
}

/* Scratch depends on neither T nor V; the exact size suffices at 4x both. */
static void test_scratch_independent_of_T_and_V(void **state) {
    int nt = omp_get_max_threads();
    size_t want = ops64_lmhead_ce_scratch_bytes(24, OPS_W_BF16, true, nt);
    for (int f = 1; f <= 4; f *= 4) {
        ce_case c = {"scale", 70 * f, 24, 300 * f, 30.0, 2.0, true, 0, 0};
        ce_data d;
        ce_init(&d, &c, 50 + f);
        assert_int_equal(d.scratch_bytes, want);
        int64_t n;
        ce_forward(&d, &n);
        double *dh = zeros((size_t)c.T * c.H), *dE = zeros((size_t)c.V * c.H);
        ce_backward(&d, dh, dE);
        eft_free(dh), eft_free(dE);
        ce_free(&d);
    }
}

static void test_float_matches_double(void **state) {
    for (size_t i = 0; i < 3; i++) {
        const ce_case *c = &CASES[i];
        ce_data d;
        ce_init(&d, c, 60 + i);
        size_t nh = (size_t)c->T * c->H, ne = (size_t)c->V * c->H;
        int64_t n;
        double sum = ce_forward(&d, &n);
        double *dh = zeros(nh), *dE = zeros(ne);
        ce_backward(&d, dh, dE);
        float *h = to_f32(d.h, nh), *E = to_f32(d.E, ne), *lse = eft_calloc(c->T, 4);
        float *fh = eft_calloc(nh, 4), *fE = eft_calloc(ne, 4);
        ops_weight w = c->bf16 ? ops_w_bf16(d.Eb) : ops_w_real(E);
        size_t bytes = ops_lmhead_ce_scratch_bytes(c->H, w.dtype, true, omp_get_max_threads());
        void *s = scratch_exact(bytes);
        double fsum =
            ops_lmhead_ce_forward(lse, &n, h, w, d.target, c->T, c->H, c->V, c->cap, s, bytes);
        assert_close(fsum, sum, 1e-5);
        ops_lmhead_ce_backward(fh, fE, h, w, d.target, lse, c->T, c->H, c->V, c->cap, d.gs, s,
                               bytes);
        assert_rel_le_f32(fh, dh, nh, 1e-5);
        assert_rel_le_f32(fE, dE, ne, 1e-5);
        eft_free(h), eft_free(E), eft_free(lse), eft_free(fh), eft_free(fE), eft_free(s);
        eft_free(dh), eft_free(dE);
        ce_free(&d);
    }
}

static void test_deterministic(void **state) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    ce_case c = {"det", 300, 48, 1000, 30.0, 3.0, true, 100, 140};
    ce_data d;
    ce_init(&d, &c, 70);
    size_t nh = (size_t)c.T * c.H, ne = (size_t)c.V * c.H;
    float *h = to_f32(d.h, nh), *lse = eft_calloc(c.T, 4);
    size_t bytes = ops_lmhead_ce_scratch_bytes(c.H, OPS_W_BF16, true, 2);
    void *s = scratch_exact(bytes);
    float *dh[2], *dE[2];
    double sum[2];
    for (int run = 0; run < 2; run++) {
        int64_t n;
        dh[run] = eft_calloc(nh, 4), dE[run] = eft_calloc(ne, 4);
        sum[run] = ops_lmhead_ce_forward(lse, &n, h, ops_w_bf16(d.Eb), d.target, c.T, c.H, c.V,
                                         c.cap, s, bytes);
        ops_lmhead_ce_backward(dh[run], dE[run], h, ops_w_bf16(d.Eb), d.target, lse, c.T, c.H, c.V,
                               c.cap, 1.0 / n, s, bytes);
    }
    assert_true(sum[0] == sum[1]);
    assert_memory_equal(dh[0], dh[1], nh * 4);
    assert_memory_equal(dE[0], dE[1], ne * 4);
    for (int run = 0; run < 2; run++) eft_free(dh[run]), eft_free(dE[run]);
    eft_free(h), eft_free(lse), eft_free(s);
    ce_free(&d);
    omp_set_num_threads(saved);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_and_eval_match_reference),
        cmocka_unit_test(test_backward_matches_reference_and_accumulates),
        cmocka_unit_test(test_backward_finite_differences),
        cmocka_unit_test(test_bf16_and_frozen_paths),
        cmocka_unit_test(test_scratch_independent_of_T_and_V),
        cmocka_unit_test(test_float_matches_double),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
