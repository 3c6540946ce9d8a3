/* test_cadence.c: step counts, warmup, epochs and the log/eval/save flags, against
 * transformers.Trainer runs (tests/data_files/optim/trainer.json, made by
 * tools/make_optim_reference.py) and the examples of training-math.md 6.3, 6.4 and 9.1. */
#include "support/test.h"

#include "base/buf.h"
#include "base/err.h"
#include "io/json.h"
#include "train/cadence.h"
#include "train/sched.h"

#include <math.h>
#include <string.h>

#define REF_FILE EFT_SOURCE_DIR "/tests/data_files/optim/trainer.json"

/* A plan for YAML text and a data set of `rows` rows (M = ceil(rows / micro_batch_size), or
 * `packed_m` micro-batches when it is non-zero), or fails the test. */
static cad_plan plan_full(const char *yaml, int64_t rows, int64_t packed_m, int64_t tokens) {
    eft_config c;
    eft_err_clear();
    if (cfg_load_string(&c, yaml, "c.yaml")) fail_msg("%s\n%s", eft_err_msg(), yaml);
    int64_t B = c.micro_batch_size.v;
    cad_data d = {rows, packed_m ? packed_m : (rows + B - 1) / B, tokens};
    cad_plan p;
    if (cad_plan_make(&p, &c, &d)) fail_msg("%s\n%s", eft_err_msg(), yaml);
    cfg_free(&c);
    return p;
}

static cad_plan plan(const char *yaml, int64_t rows) {
    return plan_full(yaml, rows, 0, 0);
}

/* Global steps 1..T at which `flag` holds, as a string "34 68 100". */
static char *steps_where(const cad_plan *p, bool (*flag)(const cad_plan *, int64_t)) {
    eft_buf b = {0};
    eft_buf_puts(&b, "");
    for (int64_t s = 1; s <= p->T; s++)
        if (flag(p, s)) eft_buf_printf(&b, "%s%lld", b.len ? " " : "", (long long)s);
    return eft_buf_take(&b);
}

static void assert_steps(const cad_plan *p, bool (*flag)(const cad_plan *, int64_t),
                         const char *want) {
    char *got = steps_where(p, flag);
    if (strcmp(got, want)) fail_msg("steps \"%s\", want \"%s\"", got, want);
    eft_free(got);
}

/* ---- training-math.md 6.3: warmup ---- */

static int64_t warmup(const char *yaml, int64_t total, int64_t T) {
    eft_config c;
    assert_int_equal(cfg_load_string(&c, yaml, "c.yaml"), 0);
    int64_t w = cad_warmup(&c, total, T);
    cfg_free(&c);
    return w;
}

static void test_warmup(void **state) {
    assert_int_equal(warmup("warmup_ratio: 0.1\n", 10, 10), 2);     /* 0.1 x 10 -> 1 -> 2 */
    assert_int_equal(warmup("warmup_ratio: 0.29\n", 100, 100), 28); /* 28.999... -> 28 */
    assert_int_equal(warmup("warmup_ratio: 0.5\n", 7, 7), 3);
    assert_int_equal(warmup("warmup_ratio: 0\n", 1000, 1000), 0);
    assert_int_equal(warmup("{}\n", 100, 100), 3); /* min(trunc(0.03 total), 100) */
    assert_int_equal(warmup("{}\n", 40, 40), 2);   /* 1.2 -> 1 -> 2 */
    assert_int_equal(warmup("{}\n", 33, 33), 0);
    assert_int_equal(warmup("{}\n", 100000, 100000), 100);
    assert_int_equal(warmup("{}\n", 1000, 3000), 30); /* from the capped estimate, not T */
    assert_int_equal(warmup("warmup_steps: 1\n", 100, 100), 2);
    assert_int_equal(warmup("warmup_steps: 0\n", 1000, 1000), 0);
    assert_int_equal(warmup("warmup_steps: 250\n", 100, 100), 250); /* may exceed T */
    /* no estimate: Axolotl hands the ratio over, the Trainer takes ceil(T x ratio) */
    assert_int_equal(warmup("{}\n", 0, 50), 2);
    assert_int_equal(warmup("warmup_ratio: 0.5\n", 0, 9), 5);
    assert_int_equal(warmup("warmup_ratio: 1.0\n", 0, 9), 2); /* 1.0 == 1 -> 2, never read as T */
}

/* ---- training-math.md 6.4: the number of updates, and where each sits ---- */

static void test_updates(void **state) {
    /* N_rows = 5, B = 1, G = 2, E = 2: T = 5, U = 3; epoch 1 has updates of 2, 2, 1
     * micro-batches, epoch 2 stops after 2 updates */
    cad_plan p = plan("micro_batch_size: 1\ngradient_accumulation_steps: 2\nnum_epochs: 2\n", 5);
    assert_int_equal(p.T, 5);
    assert_int_equal(p.U, 3);
    assert_int_equal(p.M, 5);
    assert_int_equal(p.epochs, 2);
    const int64_t n_mb[5] = {2, 2, 1, 2, 2}, first[5] = {0, 2, 4, 0, 2}, epoch[5] = {0, 0, 0, 1, 1};
    const double frac[5] = {0.4, 0.8, 1.0, 1.4, 1.8};
    for (int k = 0; k < 5; k++) {
        assert_int_equal(cad_micro_batches(&p, k), n_mb[k]);
        assert_int_equal(cad_first_micro_batch(&p, k), first[k]);
        assert_int_equal(cad_epoch_index(&p, k), epoch[k]);
        assert_true(cad_epoch(&p, k) == frac[k]);
        assert_int_equal(cad_epoch_ends(&p, k), k == 2 || k == 4);
    }
    /* batch_size sets the accumulation; the estimate is ceil(rows x E / (B x G)) */
    p = plan("micro_batch_size: 2\nbatch_size: 8\nnum_epochs: 1.5\n", 21);
    assert_int_equal(p.G, 4);
    assert_int_equal(p.T, 4); /* ceil(31.5 / 8) */
    assert_int_equal(p.M, 11);
    assert_int_equal(p.U, 3);
    assert_int_equal(cad_micro_batches(&p, 2), 3);
    assert_int_equal(p.epochs, 2);
    /* max_steps wins; warmup and logging come from min(estimate, max_steps) */
    p = plan("max_steps: 30\n", 100);
    assert_true(p.T == 30 && p.estimate == 30 && p.W == 0);
    p = plan("max_steps: 300\n", 100);
    assert_true(p.T == 300 && p.estimate == 100 && p.W == 3 && p.epochs == 3);
    /* packing: floor(max(1, L div G) x E), from the sampler's L micro-batches per epoch */
    const char *packed = "sample_packing: true\nmicro_batch_size: 2\ngradient_accumulation_steps: "
                         "4\nnum_epochs: 1.5\n";
    p = plan_full(packed, 37, 10, 0);
    assert_true(p.T == 3 && p.M == 10 && p.U == 3);
    /* ... or (floor(0.99 tokens / eff / sequence_len div (B x G)) - 1) x E, rounded up */
    eft_buf y = {0};
    eft_buf_printf(&y, "%ssample_packing_eff_est: 0.9\nsequence_len: 512\n", packed);
    char *eff = eft_buf_take(&y);
    p = plan_full(eff, 37, 10, 100000); /* 214.8 / 8 -> 26 -> 25 x 1.5 = 37.5 */
    assert_int_equal(p.T, 38);
    eft_free(eff);
    /* an estimate of 0 (L div G = 0 x 0.5): the Trainer counts epochs itself, ceil(E x U), and
     * reads the default warmup ratio 0.03 as ceil(T x 0.03) */
    p = plan_full("sample_packing: true\ngradient_accumulation_steps: 4\nnum_epochs: 0.5\n", 3, 1,
                  0);
    assert_true(p.estimate == 0 && p.T == 1 && p.W == 1 && p.logging_steps == 500);
    /* logging_steps default: max(min(trunc(0.005 total), 10), 1) */
    assert_int_equal(plan("{}\n", 100).logging_steps, 1);
    assert_int_equal(plan("{}\n", 1000).logging_steps, 5);
    assert_int_equal(plan("{}\n", 5000).logging_steps, 10);
    assert_int_equal(plan("logging_steps: 7\n", 5000).logging_steps, 7);
}

static void test_no_data(void **state) {
    eft_config c;
    assert_int_equal(cfg_load_string(&c, "micro_batch_size: 2\n", "c.yaml"), 0);
    cad_data d = {0, 0, 0};
    cad_plan p;
    assert_int_equal(cad_plan_make(&p, &c, &d), -1);
    assert_contains(eft_err_msg(), "c.yaml: the training data has no rows left");
    cfg_free(&c);
    eft_err_clear();
}

/* ---- training-math.md 9.1 and Axolotl's strategy rules ---- */

#define EVAL_DATA "val_set_size: 0.1\n"

static void test_eval_cadence(void **state) {
    /* T = 100, evals_per_epoch 3: eval_steps 1/3 -> ceil(33.3) = 34: steps 34 and 68, and 100,
     * the end of the run (transformers >= 5.14 evaluates there when T is not a multiple) */
    cad_plan p = plan(EVAL_DATA "evals_per_epoch: 3\n", 100);
    assert_true(p.eval_strategy == CAD_STEPS && p.eval_steps == 34 && p.eval_on_start);
    assert_steps(&p, cad_should_eval, "34 68 100");
    p = plan(EVAL_DATA "evals_per_epoch: 4\n", 100);
    assert_steps(&p, cad_should_eval, "25 50 75 100");
    p = plan(EVAL_DATA "evals_per_epoch: 2\nnum_epochs: 2\n", 10); /* f = 0.25: ceil(5) */
    assert_steps(&p, cad_should_eval, "5 10 15 20");
    /* f >= 1: no eval_steps; without eval_strategy no evaluation at all, not even at step 0 */
    p = plan(EVAL_DATA "evals_per_epoch: 1\n", 100);
    assert_true(p.eval_strategy == CAD_NO && !p.eval_on_start);
    assert_steps(&p, cad_should_eval, "");
    /* ... with eval_strategy: steps the Trainer falls back to eval_steps = logging_steps */
    p = plan(EVAL_DATA "evals_per_epoch: 1\neval_strategy: steps\nlogging_steps: 30\n", 100);
    assert_true(p.eval_strategy == CAD_STEPS && p.eval_steps == 30 && p.eval_on_start);
    assert_steps(&p, cad_should_eval, "30 60 90 100");
    /* no eval data: nothing, whatever the keys */
    p = plan("evals_per_epoch: 3\n", 100);
    assert_true(p.eval_strategy == CAD_NO && !p.eval_on_start);
    /* explicit eval_steps, whole or fraction */
    p = plan(EVAL_DATA "eval_steps: 40\n", 100);
    assert_steps(&p, cad_should_eval, "40 80 100");
    p = plan(EVAL_DATA "eval_steps: 0.5\n", 9);
    assert_true(p.eval_steps == 5);
    assert_steps(&p, cad_should_eval, "5 9");
    /* eval_strategy epoch: every epoch end, and the end of a last partial epoch */
    p = plan(EVAL_DATA "eval_strategy: epoch\nnum_epochs: 2.5\n", 4);
    assert_true(p.T == 10 && p.U == 4 && p.eval_on_start);
    assert_steps(&p, cad_should_eval, "4 8 10");
    /* eval_strategy no with eval data: Axolotl still asks for the step-0 evaluation */
    p = plan(EVAL_DATA "eval_strategy: \"no\"\n", 10);
    assert_true(p.eval_strategy == CAD_NO && p.eval_on_start);
    assert_steps(&p, cad_should_eval, "");
}

static void test_save_cadence(void **state) {
    cad_plan p = plan("{}\n", 10); /* default: every epoch end */
    assert_true(p.save_strategy == CAD_EPOCH && p.save_steps == 500);
    assert_steps(&p, cad_should_save, "10");
    p = plan("saves_per_epoch: 2\n", 10); /* f = 0.5: every 5, and the end */
    assert_true(p.save_strategy == CAD_STEPS && p.save_steps == 5);
    assert_steps(&p, cad_should_save, "5 10");
    p = plan("saves_per_epoch: 3\n", 10); /* ceil(3.33) = 4 */
    assert_steps(&p, cad_should_save, "4 8 10");
    p = plan("saves_per_epoch: 1\nnum_epochs: 2\n", 3); /* f = 0.5 < 1: every ceil(3) steps */
    assert_steps(&p, cad_should_save, "3 6");
    p = plan("saves_per_epoch: 1\n", 10); /* f = 1: ignored, the epoch default applies */
    assert_true(p.save_strategy == CAD_EPOCH);
    p = plan("save_steps: 4\nsave_first_step: true\n", 10);
    assert_steps(&p, cad_should_save, "1 4 8 10");
    p = plan("save_strategy: \"no\"\n", 10);
    assert_steps(&p, cad_should_save, "");
    p = plan("save_strategy: steps\n", 1200); /* TrainingArguments' default 500 */
    assert_steps(&p, cad_should_save, "500 1000 1200");
    p = plan("logging_steps: 4\n", 10);
    assert_steps(&p, cad_should_log, "4 8");
}

static void test_step_errors(void **state) {
    eft_config c;
    cad_data d = {10, 10, 0};
    cad_plan p;
    /* a whole-number interval above 1 must be whole (TrainingArguments refuses 2.5) */
    if (cfg_load_string(&c, EVAL_DATA "eval_steps: 2.5\n", "c.yaml") == 0) {
        assert_int_equal(cad_plan_make(&p, &c, &d), -1);
        assert_contains(eft_err_msg(), "c.yaml:2:13: eval_steps: 2.5 is neither a whole number");
    } else {
        assert_contains(eft_err_msg(), "eval_steps");
    }
    cfg_free(&c);
    eft_err_clear();
}

/* ---- against transformers.Trainer ---- */

static char *case_yaml(const cJSON *config) {
    eft_buf b = {0};
    eft_buf_puts(&b, "learning_rate: 0.01\n");
    const cJSON *it;
    cJSON_ArrayForEach(it, config) {
        if (cJSON_IsString(it))
            eft_buf_printf(&b, "%s: \"%s\"\n", it->string, it->valuestring);
        else
            eft_buf_printf(&b, "%s: %.17g\n", it->string, it->valuedouble);
    }
    return eft_buf_take(&b);
}

static int64_t num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    assert_non_null(v);
    return (int64_t)v->valuedouble;
}

static void test_trainer_reference(void **state) {
    cJSON *ref = eft_json_parse_file(REF_FILE);
    if (!ref) fail_msg("%s", eft_err_msg());
    const cJSON *cs;
    int n = 0;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(ref, "cases")) {
        char *yaml = case_yaml(cJSON_GetObjectItem(cs, "config"));
        cad_plan p = plan(yaml, num(cs, "rows"));
        const cJSON *st = cJSON_GetObjectItem(cs, "state");
        assert_int_equal(p.T, num(st, "max_steps"));
        assert_int_equal(p.epochs, num(st, "num_train_epochs"));
        assert_int_equal(p.logging_steps, num(st, "logging_steps"));
        assert_int_equal(p.eval_steps, num(st, "eval_steps"));
        assert_int_equal(p.save_steps, num(st, "save_steps"));
        const cJSON *u;
        int64_t k = 0;
        cJSON_ArrayForEach(u, cJSON_GetObjectItem(cs, "updates")) {
            assert_int_equal(num(u, "step"), k + 1);
            assert_int_equal(cad_micro_batches(&p, k), num(u, "micro_batches"));
            if (cad_epoch(&p, k) != cJSON_GetObjectItem(u, "epoch")->valuedouble)
                fail_msg("%supdate %lld: epoch %.17g, want %.17g", yaml, (long long)k,
                         cad_epoch(&p, k), cJSON_GetObjectItem(u, "epoch")->valuedouble);
            k++;
        }
        assert_int_equal(k, p.T);

        /* logs, with the rate of the update they follow */
        eft_config c;
        assert_int_equal(cfg_load_string(&c, yaml, "c.yaml"), 0);
        sched s;
        assert_int_equal(sched_from_config(&s, &c, p.W, p.T), 0);
        cfg_free(&c);
        eft_buf want = {0};
        eft_buf_puts(&want, "");
        const cJSON *l;
        cJSON_ArrayForEach(l, cJSON_GetObjectItem(cs, "logs")) {
            int64_t step = num(l, "step");
            eft_buf_printf(&want, "%s%lld", want.len ? " " : "", (long long)step);
            assert_true(sched_lr(&s, step - 1) ==
                        cJSON_GetObjectItem(l, "learning_rate")->valuedouble);
        }
        assert_steps(&p, cad_should_log, want.data);

        /* evaluations (0 is the one before the first update) and checkpoints */
        eft_buf_clear(&want);
        eft_buf_puts(&want, "");
        bool at_start = false;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(cs, "evals")) {
            if (e->valueint == 0) {
                at_start = true;
                continue;
            }
            eft_buf_printf(&want, "%s%d", want.len ? " " : "", e->valueint);
        }
        assert_int_equal(p.eval_on_start, at_start);
        assert_steps(&p, cad_should_eval, want.data);
        eft_buf_clear(&want);
        eft_buf_puts(&want, "");
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(cs, "saves"))
            eft_buf_printf(&want, "%s%d", want.len ? " " : "", e->valueint);
        assert_steps(&p, cad_should_save, want.data);
        eft_buf_free(&want);
        eft_free(yaml);
        n++;
    }
    assert_true(n >= 6);
    cJSON_Delete(ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warmup),
        cmocka_unit_test(test_updates),
        cmocka_unit_test(test_no_data),
        cmocka_unit_test(test_eval_cadence),
        cmocka_unit_test(test_save_cadence),
        cmocka_unit_test(test_step_errors),
        cmocka_unit_test(test_trainer_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
