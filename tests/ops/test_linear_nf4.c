/* test_linear_nf4.c: y = x W^T and dx = dy W with an NF4 W (ops/nf4.h). The kernels must widen
 * exactly what ops_nf4_dequantize gives: with the whole weight in one slab, the NF4 path equals the
 * real path on the dequantised values bit for bit, in both twins, in both rounding modes (fp32
 * product and bf16), for shapes whose rows do not line up with the 64-value blocks and an odd
 * count; accumulate adds; a weight of several slabs (forward rows, backward columns) matches
 * dequantise-then-GEMM; the float twin agrees with the double one; and a view of part of a tensor
 * (one expert's map of a 3-D expert tensor, ops_nf4_view) is that part of the whole tensor: the
 * same values and GEMMs, with the whole tensor's blocks and absmax groups, also where a view starts
 * inside a block or in a later group. The NF4 tensors are random
 * (codes, 8-bit absmax, scales, a sorted map): the kernels do not care how they were made. */
#include "ops/check.h"

typedef struct nf4_rand {
    ops_nf4 q;
    uint8_t *codes, *qabsmax;
    float *absmax2, map[256];
} nf4_rand;

static void nf4_rand_init(nf4_rand *w, int64_t n, bool round_bf16, eft_rng *r) {
    int64_t blocks = ops_nf4_blocks(n), groups = ops_nf4_groups(n);
    w->codes = eft_malloc((size_t)(n + 1) / 2);
    w->qabsmax = eft_malloc((size_t)blocks);
    w->absmax2 = eft_malloc((size_t)groups * sizeof(float));
    for (int64_t i = 0; i < (n + 1) / 2; i++) w->codes[i] = (uint8_t)eft_rng_below(r, 256);
    for (int64_t b = 0; b < blocks; b++) w->qabsmax[b] = (uint8_t)eft_rng_below(r, 256);
    for (int64_t g = 0; g < groups; g++) w->absmax2[g] = 0.01f + 0.04f * (float)eft_rng_uniform(r);
    for (int k = 0; k < 256; k++) w->map[k] = -1.0f + 2.0f * (float)k / 255.0f;
    w->q = (ops_nf4){.n = n,
                     .codes = w->codes,
                     .qabsmax = w->qabsmax,
                     .absmax2 = w->absmax2,
                     .map = w->map,
                     .offset = 0.06f,
                     .round_bf16 = round_bf16};
}

static void nf4_rand_free(nf4_rand *w) {
    eft_free(w->codes), eft_free(w->qabsmax), eft_free(w->absmax2);
}

static float *dequantized(const ops_nf4 *q) {
    float *W = eft_malloc((size_t)q->n * sizeof(float));
    ops_nf4_dequantize(W, q, 0, q->n);
    return W;
}

static const int SHAPES[][3] = {{5, 70, 130}, {3, 200, 40}, {1, 64, 64}, {17, 9, 300}, {2, 33, 7}};

static void test_matches_dequantized(void **state) {
    int nt = omp_get_max_threads();
    for (size_t s = 0; s < EFT_ARRAY_LEN(SHAPES); s++)
        for (int round = 0; round < 2; round++) {
            int T = SHAPES[s][0], in = SHAPES[s][1], out = SHAPES[s][2];
            size_t nx = (size_t)T * in, ny = (size_t)T * out, nw = (size_t)in * out;
            eft_rng r;
            eft_rng_seed(&r, 31, s * 2 + round);
            nf4_rand w;
            nf4_rand_init(&w, (int64_t)nw, round, &r);
            float *Wf = dequantized(&w.q);
            if (round)
                for (size_t i = 0; i < nw; i++) assert_true(eft_round_bf16(Wf[i]) == Wf[i]);
            double *Wd = zeros(nw), *xd = rand_vec(&r, nx, 1), *upd = rand_vec(&r, ny, 1);
            for (size_t i = 0; i < nw; i++) Wd[i] = Wf[i];
            float *x = to_f32(xd, nx), *up = to_f32(upd, ny);

            /* float twin: NF4 against the dequantised values as real, bit for bit */
            size_t fb = ops_linear_scratch_bytes(in, out, OPS_W_NF4, nt);
            assert_int_equal(fb, ops_linear_scratch_bytes(in, out, OPS_W_BF16, nt));
            void *fsc = scratch_exact(fb);
            float *y_r = eft_calloc(ny, 4), *y_q = eft_calloc(ny, 4);
            float *dx_r = eft_calloc(nx, 4), *dx_q = eft_calloc(nx, 4);
            ops_linear_forward(y_r, x, ops_w_real(Wf), T, in, out, false, NULL, 0);
            ops_linear_forward(y_q, x, ops_w_nf4(&w.q), T, in, out, false, fsc, fb);
            assert_memory_equal(y_q, y_r, ny * sizeof(float));
            ops_linear_backward(dx_r, NULL, up, NULL, ops_w_real(Wf), T, in, out, NULL, 0);
            ops_linear_backward(dx_q, NULL, up, NULL, ops_w_nf4(&w.q), T, in, out, fsc, fb);
            assert_memory_equal(dx_q, dx_r, nx * sizeof(float));
            /* accumulate: y += x W^T */
            float *y_a = eft_malloc(ny * 4);
            for (size_t i = 0; i < ny; i++) y_a[i] = up[i];
            ops_linear_forward(y_a, x, ops_w_nf4(&w.q), T, in, out, true, fsc, fb);
            for (size_t i = 0; i < ny; i++) assert_close(y_a[i], up[i] + y_r[i], 1e-6);

            /* double twin: the same fp32 values widened, bit for bit */
            size_t db = ops64_linear_scratch_bytes(in, out, OPS_W_NF4, nt);
            void *dsc = scratch_exact(db);
            double *yd_r = zeros(ny), *yd_q = zeros(ny), *dxd_r = zeros(nx), *dxd_q = zeros(nx);
            ops64_linear_forward(yd_r, xd, ops_w_real(Wd), T, in, out, false, NULL, 0);
            ops64_linear_forward(yd_q, xd, ops_w_nf4(&w.q), T, in, out, false, dsc, db);
            assert_memory_equal(yd_q, yd_r, ny * sizeof(double));
            ops64_linear_backward(dxd_r, NULL, upd, NULL, ops_w_real(Wd), T, in, out, NULL, 0);
            ops64_linear_backward(dxd_q, NULL, upd, NULL, ops_w_nf4(&w.q), T, in, out, dsc, db);
            assert_memory_equal(dxd_q, dxd_r, nx * sizeof(double));
            /* float vs double (x rounded to float on the float side) */
            double *xr = zeros(nx), *ur = zeros(ny), *yd2 = zeros(ny), *dxd2 = zeros(nx);
            for (size_t i = 0; i < nx; i++) xr[i] = x[i];
            for (size_t i = 0; i < ny; i++) ur[i] = up[i];
            ops64_linear_forward(yd2, xr, ops_w_nf4(&w.q), T, in, out, false, dsc, db);
            ops64_linear_backward(dxd2, NULL, ur, NULL, ops_w_nf4(&w.q), T, in, out, dsc, db);
            assert_rel_le_f32(y_q, yd2, ny, 1e-5);
            assert_rel_le_f32(dx_q, dxd2, nx, 1e-5);

            eft_free(xr), eft_free(ur), eft_free(yd2), eft_free(dxd2);
            eft_free(yd_r), eft_free(yd_q), eft_free(dxd_r), eft_free(dxd_q), eft_free(dsc);
            eft_free(y_a), eft_free(y_r), eft_free(y_q), eft_free(dx_r), eft_free(dx_q);
            eft_free(fsc), eft_free(x), eft_free(up), eft_free(xd), eft_free(upd), eft_free(Wd);
            eft_free(Wf);
            nf4_rand_free(&w);
        }
}

/* A weight larger than one 32 MiB slab: two slabs of rows forward, two of columns backward. */
static void test_slabs(void **state) {
    const int T = 3, in = 4096, out = 2100;
    size_t nx = (size_t)T * in, ny = (size_t)T * out, nw = (size_t)in * out;
    assert_true(nw * sizeof(float) > ((size_t)32 << 20));
    eft_rng r;
    eft_rng_seed(&r, 41, 0);
    nf4_rand w;
    nf4_rand_init(&w, (int64_t)nw, true, &r);
    float *Wf = dequantized(&w.q);
    double *xd = rand_vec(&r, nx, 1), *upd = rand_vec(&r, ny, 1);
    float *x = to_f32(xd, nx), *up = to_f32(upd, ny);
    int nt = omp_get_max_threads();
    size_t fb = ops_linear_scratch_bytes(in, out, OPS_W_NF4, nt);
    assert_true(fb < nw * sizeof(float));
    void *sc = scratch_exact(fb);
    float *y_r = eft_calloc(ny, 4), *y_q = eft_calloc(ny, 4);
    float *dx_r = eft_calloc(nx, 4), *dx_q = eft_calloc(nx, 4);
    ops_linear_forward(y_r, x, ops_w_real(Wf), T, in, out, false, NULL, 0);
    ops_linear_forward(y_q, x, ops_w_nf4(&w.q), T, in, out, false, sc, fb);
    ops_linear_backward(dx_r, NULL, up, NULL, ops_w_real(Wf), T, in, out, NULL, 0);
    ops_linear_backward(dx_q, NULL, up, NULL, ops_w_nf4(&w.q), T, in, out, sc, fb);
    double *yr = zeros(ny), *dxr = zeros(nx);
    for (size_t i = 0; i < ny; i++) yr[i] = y_r[i];
    for (size_t i = 0; i < nx; i++) dxr[i] = dx_r[i];
    assert_rel_le_f32(y_q, yr, ny, 1e-6);
    assert_rel_le_f32(dx_q, dxr, nx, 1e-6);
    eft_free(yr), eft_free(dxr), eft_free(y_r), eft_free(y_q), eft_free(dx_r), eft_free(dx_q);
    eft_free(sc), eft_free(x), eft_free(up), eft_free(xd), eft_free(upd), eft_free(Wf);
    nf4_rand_free(&w);
}

/* Views: E maps of [out, in] in one tensor quantised whole. {64, 128} puts each map on 128 whole
 * blocks, so maps 2.. start in later groups of 256 blocks (a view that restarted the group count
 * would read the wrong absmax2); {33, 70} makes maps start and end inside blocks. */
static void test_views(void **state) {
    static const int VIEWS[][3] = {{5, 64, 128}, {7, 33, 70}};
    const int T = 4;
    int nt = omp_get_max_threads();
    for (size_t s = 0; s < EFT_ARRAY_LEN(VIEWS); s++) {
        int E = VIEWS[s][0], out = VIEWS[s][1], in = VIEWS[s][2];
        size_t per = (size_t)out * in, nx = (size_t)T * in, ny = (size_t)T * out;
        eft_rng r;
        eft_rng_seed(&r, 43, s);
        nf4_rand w;
        nf4_rand_init(&w, (int64_t)per * E, true, &r);
        if (s == 0) assert_true(ops_nf4_groups(w.q.n) >= 3);
        float *whole = dequantized(&w.q);
        double *xd = rand_vec(&r, nx, 1), *upd = rand_vec(&r, ny, 1);
        float *x = to_f32(xd, nx), *up = to_f32(upd, ny);
        size_t fb = ops_linear_scratch_bytes(in, out, OPS_W_NF4, nt);
        void *sc = scratch_exact(fb);
        float *v = eft_malloc(per * 4), *y_r = eft_calloc(ny, 4), *y_q = eft_calloc(ny, 4);
        float *dx_r = eft_calloc(nx, 4), *dx_q = eft_calloc(nx, 4);
        for (int e = 0; e < E; e++) {
            ops_nf4 q = ops_nf4_view(&w.q, (int64_t)(e * per), (int64_t)per);
            const float *slice = whole + e * per;
            ops_nf4_dequantize(v, &q, 0, q.n);
            assert_memory_equal(v, slice, per * 4);
            ops_nf4_dequantize(v, &q, 37, 100); /* a part of the view */
            assert_memory_equal(v, slice + 37, 100 * 4);
            ops_linear_forward(y_r, x, ops_w_real(slice), T, in, out, false, NULL, 0);
            ops_linear_forward(y_q, x, ops_w_nf4(&q), T, in, out, false, sc, fb);
            assert_memory_equal(y_q, y_r, ny * 4);
            memset(dx_r, 0, nx * 4), memset(dx_q, 0, nx * 4);
            ops_linear_backward(dx_r, NULL, up, NULL, ops_w_real(slice), T, in, out, NULL, 0);
            ops_linear_backward(dx_q, NULL, up, NULL, ops_w_nf4(&q), T, in, out, sc, fb);
            assert_memory_equal(dx_q, dx_r, nx * 4);
        }
        /* A view of a view is the view of the sum of the offsets. */
        ops_nf4 a = ops_nf4_view(&w.q, (int64_t)per, (int64_t)per * 2);
        ops_nf4 b = ops_nf4_view(&a, (int64_t)per, (int64_t)per);
        ops_nf4_dequantize(v, &b, 0, b.n);
        assert_memory_equal(v, whole + 2 * per, per * 4);
        eft_free(v), eft_free(y_r), eft_free(y_q), eft_free(dx_r), eft_free(dx_q), eft_free(sc);
        eft_free(x), eft_free(up), eft_free(xd), eft_free(upd), eft_free(whole);
        nf4_rand_free(&w);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_dequantized),
        cmocka_unit_test(test_slabs),
        cmocka_unit_test(test_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
