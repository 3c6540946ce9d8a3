/* test_gelu.c: GELU-tanh and GeGLU: known values against the tanh formula, finite differences
 * (separate and fused gate|up buffers), float vs double over a wide range. */
#include "ops/check.h"

static double gelu_ref(double x) {
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

static void test_known_values(void **state) {
    double x[] = {0, 1, -1, 3, -3, 0.001, -12, 50, -50};
    enum { N = EFT_ARRAY_LEN(x) };
    double y[N];
    float xf[N], yf[N];
    ops64_gelu_forward(y, x, N);
    for (int i = 0; i < N; i++) xf[i] = (float)x[i];
    ops_gelu_forward(yf, xf, N);
    for (int i = 0; i < N; i++) {
        assert_close(y[i], gelu_ref(x[i]), 1e-14);
        assert_true(fabs(yf[i] - gelu_ref(x[i])) <= 1e-6 * fmax(fabs(gelu_ref(x[i])), 1e-30) ||
                    fabs(yf[i] - gelu_ref(x[i])) < 1e-37);
    }
    assert_close(y[1], 0.8411919906082768, 1e-15); /* gelu_tanh(1) */
}

typedef struct glu_data {
    int N, C, ld;
    double *gate, *up, *h, *dh; /* gate and up: [N, ld] (views into one buffer when fused) */
    double *buf;
} glu_data;

static double glu_loss(void *ctx) {
    glu_data *d = ctx;
    ops64_geglu_forward(d->h, d->gate, d->up, d->N, d->C, d->ld);
    return dot(d->dh, d->h, (size_t)d->N * d->C);
}

static double gelu_loss(void *ctx) {
    glu_data *d = ctx;
    size_t n = (size_t)d->N * d->C;
    ops64_gelu_forward(d->h, d->gate, n);
    return dot(d->dh, d->h, n);
}

static void test_gradients(void **state) {
    for (int fused = 0; fused < 2; fused++) {
        enum { N = 7, C = 33 };
        eft_rng r;
        eft_rng_seed(&r, 3, fused);
        glu_data d = {N, C, fused ? 2 * C : C, NULL, NULL, zeros(N * C), NULL, NULL};
        d.buf = rand_vec(&r, 2 * N * C, 2.0);
        d.gate = d.buf;
        d.up = fused ? d.buf + C : d.buf + N * C;
        d.dh = rand_vec(&r, N * C, 1);
        /* One gradient buffer laid out like the inputs; accumulation starts from random values. */
        double *g = rand_vec(&r, 2 * N * C, 1), *g0 = dup_vec(g, 2 * N * C);
        double *dgate = g, *dup = fused ? g + C : g + N * C;
        ops64_geglu_backward(dgate, dup, d.dh, d.gate, d.up, N, C, d.ld);
        for (int i = 0; i < 2 * N * C; i++) g[i] -= g0[i];
        check_grad("d(gate|up)", glu_loss, &d, d.buf, g, 2 * N * C, 40, &r);
        /* Plain GELU on the gate buffer. */
        if (!fused) {
            double *dx = zeros(N * C);
            ops64_gelu_backward(dx, d.dh, d.gate, N * C);
            check_grad("gelu dx", gelu_loss, &d, d.gate, dx, N * C, 40, &r);
            eft_free(dx);
        }
        eft_free(g), eft_free(g0), eft_free(d.buf), eft_free(d.h), eft_free(d.dh);
    }
}

static void test_float_matches_double(void **state) {
    enum { N = 64, C = 1000 };
    size_t n = (size_t)N * C;
    eft_rng r;
    eft_rng_seed(&r, 4, 4);
    double *gate = rand_vec(&r, n, 4.0), *up = rand_vec(&r, n, 1), *dh = rand_vec(&r, n, 1);
    gate[0] = -40, gate[1] = 40, gate[2] = 1e-4, gate[3] = -9; /* clamps and tails */
    double *h = zeros(n), *dg = zeros(n), *du = zeros(n);
    ops64_geglu_forward(h, gate, up, N, C, C);
    ops64_geglu_backward(dg, du, dh, gate, up, N, C, C);
    float *fg = to_f32(gate, n), *fu = to_f32(up, n), *fdh = to_f32(dh, n);
    float *fh = eft_calloc(n, 4), *fdg = eft_calloc(n, 4), *fdu = eft_calloc(n, 4);
    ops_geglu_forward(fh, fg, fu, N, C, C);
    ops_geglu_backward(fdg, fdu, fdh, fg, fu, N, C, C);
    assert_rel_le_f32(fh, h, n, 1e-6);
    assert_rel_le_f32(fdg, dg, n, 2e-6);
    assert_rel_le_f32(fdu, du, n, 1e-6);
    eft_free(gate), eft_free(up), eft_free(dh), eft_free(h), eft_free(dg), eft_free(du);
    eft_free(fg), eft_free(fu), eft_free(fdh), eft_free(fh), eft_free(fdg), eft_free(fdu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_float_matches_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
