/* test_cpu_math.c: the float build's vectorised exp and tanh (src/ops/cpu/cpu.h) hold the error
 * bounds their comment promises, against libm in double. */
#include "support/test.h"

#include "ops/cpu/cpu.h" /* the float twin's internals: real = float */

#include <math.h>

static void test_exp(void **state) {
    double worst = 0;
    for (float x = -87.0f; x <= 88.0f; x += 1e-3f) {
        double e = exp((double)x), ulp = nextafterf((float)e, INFINITY) - (float)e;
        worst = fmax(worst, fabs(ops_exp(x) - e) / ulp);
    }
    assert_true(worst <= 1.0);
    assert_true(ops_exp(0.0f) == 1.0f);
    assert_true(ops_exp(-1000.0f) < 1e-37f); /* clamped: stands for 0 */
    assert_true(isfinite(ops_exp(1000.0f)));
}

static void test_tanh(void **state) {
    double worst_abs = 0, worst_rel = 0;
    for (float x = -20.0f; x <= 20.0f; x += 1e-4f) {
        double t = tanh((double)x), err = fabs(ops_tanh(x) - t);
        worst_abs = fmax(worst_abs, err);
        if (t != 0) worst_rel = fmax(worst_rel, err / fabs(t));
    }
    float tiny[] = {1e-30f, -1e-10f, 1e-5f, 0.2999f, 0.3001f};
    for (size_t i = 0; i < EFT_ARRAY_LEN(tiny); i++) {
        double t = tanh((double)tiny[i]);
        worst_rel = fmax(worst_rel, fabs(ops_tanh(tiny[i]) - t) / fabs(t));
    }
    assert_true(worst_abs < 8e-8);
    assert_true(worst_rel < 3e-7);
    assert_true(ops_tanh(100.0f) == 1.0f && ops_tanh(-100.0f) == -1.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_tanh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
