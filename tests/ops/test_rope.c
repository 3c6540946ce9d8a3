/* test_rope.c: the cos/sin table for default and proportional frequencies, the rotation (a known
 * answer, pass-through pairs), its backward by finite differences and as the inverse rotation,
 * float vs double. */
#include "ops/check.h"

/* Hugging Face's frequencies, in fp32: default 1/theta^(2i/D) for all pairs; proportional only
 * the first n_rot pairs, with the exponent over the full D, the rest 0. */
static void inv_freq(float *f, int D, double theta, int n_rot) {
    for (int i = 0; i < D / 2; i++) f[i] = i < n_rot ? (float)(1.0 / pow(theta, 2.0 * i / D)) : 0;
}

static void test_table(void **state) {
    enum { D = 256, T = 3 };
    float f[D / 2];
    inv_freq(f, D, 10000.0, D / 2);
    int32_t pos[T] = {0, 1, 5000};
    double c[T * D / 2], s[T * D / 2];
    ops64_rope_table(c, s, pos, f, T, D / 2);
    for (int i = 0; i < D / 2; i++) {
        assert_true(c[i] == 1 && s[i] == 0); /* position 0 */
        assert_close(c[D / 2 + i], cos((double)f[i]), 1e-15);
        /* The angle is the fp32 product, as transformers forms it: at position 5000 it differs
         * from the exact angle by up to ~2e-4, and the table must follow fp32. */
        assert_close(s[2 * (D / 2) + i], sin((double)(5000.0f * f[i])), 1e-15);
    }
}

static void test_known_rotation(void **state) {
    /* D = 4: pairs (0, 2) and (1, 3), angles 1 * (pi/2) and 1 * 0. */
    float f[2] = {(float)(M_PI / 2), 0};
    int32_t pos[1] = {1};
    double c[2], s[2], x[4] = {1, 2, 3, 4};
    ops64_rope_table(c, s, pos, f, 1, 2);
    ops64_rope_forward(x, c, s, 1, 1, 4);
    /* pair 0 rotated by ~90 degrees: (1, 3) -> (-3, 1); pair 1 unchanged. */
    assert_close(x[0], -3, 1e-6); /* (float)(pi/2) is not quite pi/2 */
    assert_close(x[2], 1, 1e-6);
    assert_true(x[1] == 2 && x[3] == 4);
}

static void test_proportional_pass_through(void **state) {
    /* Gemma 4 full layers: D = 512, theta 1e6, 64 of 256 pairs rotate. */
    enum { D = 512, T = 4, NH = 2 };
    float f[D / 2];
    inv_freq(f, D, 1e6, 64);
    int32_t pos[T] = {0, 7, 100, 3000};
    double *c = zeros(T * D / 2), *s = zeros(T * D / 2);
    ops64_rope_table(c, s, pos, f, T, D / 2);
    eft_rng r;
    eft_rng_seed(&r, 1, 4);
    double *x = rand_vec(&r, T * NH * D, 1), *y = dup_vec(x, T * NH * D);
    ops64_rope_forward(y, c, s, T, NH, D);
    for (int t = 1; t < T; t++)
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < D; d++) {
                size_t i = ((size_t)t * NH + h) * D + d;
                bool rotates = d % (D / 2) < 64;
                if (rotates)
                    assert_true(y[i] != x[i]);
                else
                    assert_true(y[i] == x[i]); /* dims 64-255 and 320-511 pass through */
            }
    eft_free(c), eft_free(s), eft_free(x), eft_free(y);
}

typedef struct rope_data {
    int T, nh, D;
    double *c, *s, *x, *y, *up;
} rope_data;

static double rope_loss(void *ctx) {
    rope_data *d = ctx;
    size_t n = (size_t)d->T * d->nh * d->D;
    memcpy(d->y, d->x, n * sizeof(double));
    ops64_rope_forward(d->y, d->c, d->s, d->T, d->nh, d->D);
    return dot(d->up, d->y, n);
}

static void test_backward(void **state) {
    enum { T = 9, NH = 3, D = 24 };
    size_t n = (size_t)T * NH * D;
    float f[D / 2];
    inv_freq(f, D, 10000.0, D / 2);
    int32_t pos[T] = {0, 1, 2, 3, 0, 1, 2, 0, 100}; /* packed: positions restart */
    rope_data d = {T, NH, D, zeros(T * D / 2), zeros(T * D / 2), NULL, zeros(n), NULL};
    eft_rng r;
    eft_rng_seed(&r, 2, 4);
    d.x = rand_vec(&r, n, 1);
    d.up = rand_vec(&r, n, 1);
    ops64_rope_table(d.c, d.s, pos, f, T, D / 2);
    double *g = dup_vec(d.up, n);
    ops64_rope_backward(g, d.c, d.s, T, NH, D); /* in place: the gradient w.r.t. x */
    check_grad("dx", rope_loss, &d, d.x, g, n, 30, &r);
    /* The backward is the inverse rotation: forward then backward gives x back. */
    double *z = dup_vec(d.x, n);
    ops64_rope_forward(z, d.c, d.s, T, NH, D);
    ops64_rope_backward(z, d.c, d.s, T, NH, D);
    assert_rel_le(z, d.x, n, 1e-15);
    /* Float twin on the same input. */
    float *fc = eft_calloc(T * D / 2, 4), *fs = eft_calloc(T * D / 2, 4), *fx = to_f32(d.x, n);
    ops_rope_table(fc, fs, pos, f, T, D / 2);
    ops_rope_forward(fx, fc, fs, T, NH, D);
    rope_loss(&d);
    assert_rel_le_f32(fx, d.y, n, 1e-6);
    eft_free(fc), eft_free(fs), eft_free(fx), eft_free(z), eft_free(g);
    eft_free(d.c), eft_free(d.s), eft_free(d.x), eft_free(d.y), eft_free(d.up);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_known_rotation),
        cmocka_unit_test(test_proportional_pass_through),
        cmocka_unit_test(test_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
