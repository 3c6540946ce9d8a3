/* test_cadence_loss.c: the loss of an update in the two normalisation modes, the gradient scale
 * each micro-batch's backward receives, and the logged loss window with its NaN/Inf filter
 * (training-math.md 2). */
#include "support/test.h"

#include "train/cadence.h"

#include <math.h>

static void test_modes(void **state) {
    eft_config c;
    assert_int_equal(cfg_load_string(&c, "{}\n", "c.yaml"), 0);
    assert_int_equal(cad_loss_mode_of(&c), CAD_LOSS_TOKENS);
    cfg_free(&c);
    assert_int_equal(cfg_load_string(&c, "loss_normalization: micro_batch\n", "c.yaml"), 0);
    assert_int_equal(cad_loss_mode_of(&c), CAD_LOSS_MICRO_BATCH);
    cfg_free(&c);

    /* An update of two micro-batches with very different token counts: S = (10, 2) over
     * n = (5, 1) shifted targets, c = (6, 1) unshifted labels (the first row starts with a
     * trainable token). */
    const float S[2] = {10, 2};
    const int64_t n[2] = {5, 1}, cnt[2] = {6, 1}, N = 7, n_mb = 2;
    float a = 0, b = 0;
    for (int i = 0; i < 2; i++) {
        a += cad_loss_value(CAD_LOSS_TOKENS, S[i], cnt[i], N, n_mb);
        b += cad_loss_value(CAD_LOSS_MICRO_BATCH, S[i], n[i], N, n_mb);
        /* the value is S_i times the gradient scale: d loss_i / d l_t */
        assert_close(cad_loss_value(CAD_LOSS_TOKENS, S[i], cnt[i], N, n_mb),
                     S[i] * cad_loss_grad_scale(CAD_LOSS_TOKENS, cnt[i], N, n_mb), 1e-7);
        assert_close(cad_loss_value(CAD_LOSS_MICRO_BATCH, S[i], n[i], N, n_mb),
                     S[i] * cad_loss_grad_scale(CAD_LOSS_MICRO_BATCH, n[i], N, n_mb), 1e-7);
    }
    assert_close(a, 12.0 / 7, 1e-7);        /* mode A: (sum S) / N, unshifted N */
    assert_close(b, (2.0 + 2.0) / 2, 1e-7); /* mode B: the mean of the micro-batch means */
    assert_true(cad_loss_grad_scale(CAD_LOSS_TOKENS, 5, 7, 2) == 1.0f / 7);
    assert_true(cad_loss_grad_scale(CAD_LOSS_MICRO_BATCH, 5, 7, 2) == (1.0f / 2) / 5);
    /* a short last update (n_mb = 1) divides by 1, not by G */
    assert_true(cad_loss_value(CAD_LOSS_MICRO_BATCH, 6, 3, 3, 1) == 2.0f);
    /* equal token counts: the modes agree */
    assert_close(cad_loss_value(CAD_LOSS_TOKENS, 8, 4, 8, 2) +
                     cad_loss_value(CAD_LOSS_TOKENS, 4, 4, 8, 2),
                 cad_loss_value(CAD_LOSS_MICRO_BATCH, 8, 4, 8, 2) +
                     cad_loss_value(CAD_LOSS_MICRO_BATCH, 4, 4, 8, 2),
                 1e-7);
    /* no targets in mode B: 0/0, as the reference */
    assert_true(isnan(cad_loss_value(CAD_LOSS_MICRO_BATCH, 0, 0, 0, 1)));
}

static void test_log_window(void **state) {
    cad_loss_log l;
    cad_loss_log_init(&l, 0);
    /* updates 1 and 2, two micro-batches each; logging_steps 2 */
    cad_loss_log_add(&l, 1.0f, 0), cad_loss_log_add(&l, 0.5f, 0);
    cad_loss_log_add(&l, 2.0f, 1), cad_loss_log_add(&l, 0.5f, 1);
    assert_true(cad_loss_log_take(&l, 2) == 4.0 / 2);
    assert_true(l.acc == 0 && l.last_logged == 2);
    /* update 3: a NaN micro-batch adds acc / (1 + global_step - last_logged) instead */
    cad_loss_log_add(&l, 3.0f, 2);
    cad_loss_log_add(&l, NAN, 2);
    assert_true(l.acc == 3.0f + 3.0f / 1);
    /* update 4: an infinite one, two updates into the window */
    cad_loss_log_add(&l, 1.0f, 3);
    cad_loss_log_add(&l, -INFINITY, 3);
    assert_true(l.acc == 7.0f + 7.0f / 2);
    assert_int_equal(l.filtered, 2);
    assert_true(cad_loss_log_take(&l, 4) == 10.5 / 2);
    /* update 5 is never logged as loss; it only enters train_loss */
    cad_loss_log_add(&l, 0.25f, 4);
    assert_close(cad_loss_log_train_loss(&l, 5), (4.0 + 10.5 + 0.25) / 5, 1e-12);
    /* the accumulator is fp32: 1e8 + 1 stays 1e8, as in the reference's fp32 tensor */
    cad_loss_log_init(&l, 0);
    cad_loss_log_add(&l, 1e8f, 0);
    cad_loss_log_add(&l, 1.0f, 0);
    assert_true(cad_loss_log_take(&l, 1) == 1e8);
    /* after a resume, train_loss counts this run's updates only */
    cad_loss_log_init(&l, 100);
    cad_loss_log_add(&l, 2.0f, 100);
    cad_loss_log_add(&l, 4.0f, 101);
    assert_true(cad_loss_log_take(&l, 102) == 3.0);
    assert_true(cad_loss_log_train_loss(&l, 102) == 3.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_log_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
