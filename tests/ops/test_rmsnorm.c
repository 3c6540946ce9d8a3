/* test_rmsnorm.c: RMSNorm with and without a scale: a known answer, finite differences of dx and
 * dw, accumulation, dw NULL, float vs double. */
#include "ops/check.h"

typedef struct rms_data {
    int N, C;
    bool scaled;
    double *x, *w, *y, *rstd, *up;
} rms_data;

static void rms_init(rms_data *d, int N, int C, bool scaled, uint64_t seed) {
    eft_rng r;
    eft_rng_seed(&r, seed, 3);
    *d = (rms_data){N, C, scaled, NULL, NULL, NULL, NULL, NULL};
    d->x = rand_vec(&r, (size_t)N * C, 2.0);
    d->w = scaled ? rand_vec(&r, C, 1.0) : NULL;
    d->y = zeros((size_t)N * C);
    d->rstd = zeros(N);
    d->up = rand_vec(&r, (size_t)N * C, 1.0);
}

static void rms_free(rms_data *d) {
    eft_free(d->x), eft_free(d->w), eft_free(d->y), eft_free(d->rstd), eft_free(d->up);
}

static double rms_loss(void *ctx) {
    rms_data *d = ctx;
    ops64_rmsnorm_forward(d->y, d->rstd, d->x, d->w, d->N, d->C, 1e-6);
    return dot(d->up, d->y, (size_t)d->N * d->C);
}

static void test_known_answer(void **state) {
    /* x = (3, 4): mean(x^2) = 12.5; the multiplier is w itself (Gemma 4), not 1 + w. */
    double x[2] = {3, 4}, w[2] = {1, 0}, y[2], rstd[1];
    ops64_rmsnorm_forward(y, rstd, x, w, 1, 2, 0.0);
    assert_close(rstd[0], 1 / sqrt(12.5), 1e-15);
    assert_close(y[0], 3 / sqrt(12.5), 1e-15);
    assert_true(y[1] == 0);
    float xf[2] = {3, 4}, yf[2], rf[1];
    ops_rmsnorm_forward(yf, rf, xf, NULL, 1, 2, 0.5f); /* eps counts: mean 12.5 + 0.5 */
    assert_close(yf[1], 4 / sqrt(13.0), 1e-7);
}

static void test_gradients(void **state) {
    struct {
        int N, C;
        bool scaled;
    } shapes[] = {{5, 7, true}, {80, 512, true}, {12, 256, false}, {3, 2, true}};
    for (size_t s = 0; s < EFT_ARRAY_LEN(shapes); s++) {
        rms_data d;
        rms_init(&d, shapes[s].N, shapes[s].C, shapes[s].scaled, 10 + s);
        size_t n = (size_t)d.N * d.C;
        rms_loss(&d);
        eft_rng r;
        eft_rng_seed(&r, 11, s);
        double *dx = rand_vec(&r, n, 1), *dw = d.w ? rand_vec(&r, d.C, 1) : NULL;
        double *dx0 = dup_vec(dx, n), *dw0 = d.w ? dup_vec(dw, d.C) : NULL;
        ops64_rmsnorm_backward(dx, dw, d.up, d.x, d.w, d.rstd, d.N, d.C);
        for (size_t i = 0; i < n; i++) dx[i] -= dx0[i]; /* what the op added */
        check_grad("dx", rms_loss, &d, d.x, dx, n, 20, &r);
        if (d.w) {
            for (int c = 0; c < d.C; c++) dw[c] -= dw0[c];
            check_grad("dw", rms_loss, &d, d.w, dw, d.C, 20, &r);
            /* dw NULL (frozen scale) gives the same dx (up to the rounding of dx0 + dx - dx0). */
            double *dx2 = zeros(n);
            ops64_rmsnorm_backward(dx2, NULL, d.up, d.x, d.w, d.rstd, d.N, d.C);
            assert_rel_le(dx2, dx, n, 1e-13);
            eft_free(dx2);
        }
        eft_free(dx), eft_free(dw), eft_free(dx0), eft_free(dw0);
        rms_free(&d);
    }
}

static void test_float_matches_double(void **state) {
    for (int scaled = 0; scaled < 2; scaled++) {
        rms_data d;
        rms_init(&d, 80, 512, scaled, 20 + scaled);
        size_t n = (size_t)d.N * d.C;
        rms_loss(&d);
        double *dx = zeros(n), *dw = zeros(d.C);
        ops64_rmsnorm_backward(dx, scaled ? dw : NULL, d.up, d.x, d.w, d.rstd, d.N, d.C);
        float *x = to_f32(d.x, n), *w = scaled ? to_f32(d.w, d.C) : NULL, *up = to_f32(d.up, n);
        float *y = eft_calloc(n, 4), *rstd = eft_calloc(d.N, 4);
        float *fdx = eft_calloc(n, 4), *fdw = eft_calloc(d.C, 4);
        ops_rmsnorm_forward(y, rstd, x, w, d.N, d.C, 1e-6f);
        ops_rmsnorm_backward(fdx, scaled ? fdw : NULL, up, x, w, rstd, d.N, d.C);
        assert_rel_le_f32(y, d.y, n, 1e-6);
        assert_rel_le_f32(rstd, d.rstd, d.N, 1e-6);
        assert_rel_le_f32(fdx, dx, n, 1e-5);
        if (scaled) assert_rel_le_f32(fdw, dw, d.C, 1e-5);
        eft_free(x), eft_free(w), eft_free(up), eft_free(y), eft_free(rstd), eft_free(fdx);
        eft_free(fdw), eft_free(dx), eft_free(dw);
        rms_free(&d);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_float_matches_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
