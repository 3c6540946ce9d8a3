/* test_elementwise.c: residual add, accumulate, the layer scalar forward and backward, copy and
 * zero: known answers on arrays large enough to take the threaded path, and the scalar's
 * gradient by finite differences. */
#include "ops/check.h"

enum { N = 200000 }; /* above the threading threshold */

typedef struct sc_data {
    double *x, *y, *up, s;
} sc_data;

static double sc_loss(void *ctx) {
    sc_data *d = ctx;
    ops64_scale_forward(d->y, d->x, d->s, 50);
    return dot(d->up, d->y, 50);
}

static void test_known_answers(void **state) {
    float *a = eft_malloc(N * 4), *b = eft_malloc(N * 4), *y = eft_malloc(N * 4);
    for (int i = 0; i < N; i++) a[i] = (float)i, b[i] = 0.5f * (float)(i % 7);
    ops_add(y, a, b, N);
    for (int i = 0; i < N; i++) assert_true(y[i] == a[i] + b[i]);
    ops_acc(y, b, N); /* y = a + 2b */
    for (int i = 0; i < N; i++) assert_true(y[i] == a[i] + 2 * b[i]);
    ops_scale_forward(y, y, 0.25f, N); /* in place */
    for (int i = 0; i < N; i++) assert_true(y[i] == 0.25f * (a[i] + 2 * b[i]));
    ops_copy(y, b, N);
    assert_memory_equal(y, b, N * 4);
    ops_scale_backward(y, a, 2.0f, N); /* y = b + 2a */
    for (int i = 0; i < N; i++) assert_true(y[i] == b[i] + 2 * a[i]);
    ops_zero(y, N);
    for (int i = 0; i < N; i++) assert_true(y[i] == 0);
    eft_free(a), eft_free(b), eft_free(y);
}

static void test_scale_gradient(void **state) {
    eft_rng r;
    eft_rng_seed(&r, 1, 7);
    sc_data d = {rand_vec(&r, 50, 1), zeros(50), rand_vec(&r, 50, 1), 0.7};
    double *dx = zeros(50);
    ops64_scale_backward(dx, d.up, d.s, 50);
    check_grad("dx", sc_loss, &d, d.x, dx, 50, 10, &r);
    eft_free(d.x), eft_free(d.y), eft_free(d.up), eft_free(dx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_scale_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
