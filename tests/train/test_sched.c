/* test_sched.c: learning-rate schedules against transformers' get_scheduler
 * (tests/data_files/optim/sched.json, made by tools/make_optim_reference.py), the worked example
 * of training-math.md 6.2, and the configuration errors. */
#include "support/test.h"

#include "base/buf.h"
#include "base/err.h"
#include "io/json.h"
#include "train/sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REF_FILE EFT_SOURCE_DIR "/tests/data_files/optim/sched.json"

static int load(eft_config *c, const char *text) {
    eft_err_clear();
    return cfg_load_string(c, text, "c.yaml");
}

/* A schedule from YAML text, or fails the test. */
static void make(sched *s, const char *yaml, int64_t W, int64_t T) {
    eft_config c;
    if (load(&c, yaml) || sched_from_config(s, &c, W, T)) fail_msg("%s\n%s", eft_err_msg(), yaml);
    cfg_free(&c);
}

/* sched_from_config fails with a message containing `want`. */
static void refused(const char *yaml, int64_t W, int64_t T, const char *want) {
    eft_config c;
    sched s;
    assert_int_equal(load(&c, yaml), 0);
    if (sched_from_config(&s, &c, W, T) == 0) fail_msg("accepted:\n%s", yaml);
    assert_contains(eft_err_msg(), want);
    cfg_free(&c);
    eft_err_clear();
}

static void test_transformers_reference(void **state) {
    cJSON *ref = eft_json_parse_file(REF_FILE);
    if (!ref) fail_msg("%s", eft_err_msg());
    const cJSON *cases = cJSON_GetObjectItem(ref, "cases");
    int n_cases = 0, n_rates = 0, n_exact = 0;
    double worst = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        eft_buf y = {0};
        eft_buf_printf(&y, "learning_rate: %.17g\nlr_scheduler: %s\n",
                       cJSON_GetObjectItem(cs, "lr")->valuedouble,
                       cJSON_GetObjectItem(cs, "lr_scheduler")->valuestring);
        const cJSON *ratio = cJSON_GetObjectItem(cs, "cosine_min_lr_ratio");
        if (ratio) eft_buf_printf(&y, "cosine_min_lr_ratio: %.17g\n", ratio->valuedouble);
        const cJSON *kw = cJSON_GetObjectItem(cs, "kwargs"), *it;
        if (cJSON_GetArraySize(kw)) {
            eft_buf_puts(&y, "lr_scheduler_kwargs:\n");
            cJSON_ArrayForEach(it, kw)
                eft_buf_printf(&y, "  %s: %.17g\n", it->string, it->valuedouble);
        }
        int W = cJSON_GetObjectItem(cs, "W")->valueint, T = cJSON_GetObjectItem(cs, "T")->valueint;
        char *yaml = eft_buf_take(&y);
        sched s;
        make(&s, yaml, W, T);
        const cJSON *lrs = cJSON_GetObjectItem(cs, "lrs");
        for (int k = 0; k < cJSON_GetArraySize(lrs); k++) {
            double want = cJSON_GetArrayItem(lrs, k)->valuedouble, got = sched_lr(&s, k);
            double rel = want == 0 ? fabs(got) : fabs(got - want) / fabs(want);
            if (rel > 1e-15)
                fail_msg("%sW=%d T=%d k=%d: %.17g, want %.17g", yaml, W, T, k, got, want);
            worst = fmax(worst, rel);
            n_exact += got == want;
            n_rates++;
        }
        eft_free(yaml);
        n_cases++;
    }
    assert_true(n_cases >= 100);
    print_message("%d schedules, %d rates: %d identical doubles, worst relative difference %.3g\n",
                  n_cases, n_rates, n_exact, worst);
    cJSON_Delete(ref);
}

/* training-math.md 6.2, the worked example: eta0 = 2e-4, T = 10, W = 2, the doubles as the
 * reference prints them. */
static void test_worked_example(void **state) {
    static const char *table[10][3] = {
        {"0.0", "0.0", "0.0"},
        {"0.0001", "0.0001", "0.0001"},
        {"0.0002", "0.0002", "0.0002"},
        {"0.0001923879532511287", "0.000175", "0.00019314915792601581"},
        {"0.00017071067811865476", "0.00015000000000000001", "0.00017363961030678927"},
        {"0.000138268343236509", "0.000125", "0.00014444150891285807"},
        {"0.0001", "0.0001", "0.00011000000000000002"},
        {"6.173165676349103e-05", "7.500000000000001e-05", "7.555849108714192e-05"},
        {"2.9289321881345254e-05", "5e-05", "4.6360389693210735e-05"},
        {"7.612046748871327e-06", "2.5e-05", "2.6850842073984196e-05"},
    };
    sched s[3];
    make(&s[0], "learning_rate: 2e-4\nlr_scheduler: cosine\n", 2, 10);
    make(&s[1], "learning_rate: 2e-4\nlr_scheduler: linear\n", 2, 10);
    make(&s[2],
         "learning_rate: 2e-4\nlr_scheduler: cosine_with_min_lr\nlr_scheduler_kwargs: "
         "{min_lr_rate: 0.1}\n",
         2, 10);
    for (int k = 0; k < 10; k++)
        for (int j = 0; j < 3; j++) {
            double want = strtod(table[k][j], NULL);
            if (sched_lr(&s[j], k) != want)
                fail_msg("schedule %d, k=%d: %.17g, want %s", j, k, sched_lr(&s[j], k),
                         table[k][j]);
        }
}

static void test_variants(void **state) {
    sched s;
    /* constant ignores warmup (and kwargs, as get_scheduler does) */
    make(&s, "learning_rate: 0.5\nlr_scheduler: constant\nlr_scheduler_kwargs: {x: 1}\n", 5, 10);
    assert_true(sched_lr(&s, 0) == 0.5 && sched_lr(&s, 9) == 0.5);
    make(&s, "learning_rate: 0.5\nlr_scheduler: constant_with_warmup\n", 4, 10);
    assert_true(sched_lr(&s, 0) == 0 && sched_lr(&s, 2) == 0.25 && sched_lr(&s, 4) == 0.5);
    /* cosine_min_lr_ratio: 0 is the plain cosine; non-zero is Axolotl's, which ignores num_cycles
     */
    make(&s, "learning_rate: 1\ncosine_min_lr_ratio: 0\nlr_scheduler_kwargs: {num_cycles: 1}\n", 0,
         4);
    assert_int_equal(s.kind, SCHED_COSINE);
    assert_true(sched_lr(&s, 2) == 0.5 * (1 + cos(M_PI * 1 * 2.0 * 0.5)));
    make(&s, "learning_rate: 1\ncosine_min_lr_ratio: 0.2\nlr_scheduler_kwargs: {num_cycles: 1}\n",
         0, 4);
    assert_int_equal(s.kind, SCHED_COSINE_MIN_RATIO);
    assert_close(sched_lr(&s, 4), 0.2, 1e-15);
    assert_close(sched_lr(&s, 2), 0.6, 1e-15);
    assert_true(sched_lr(&s, 6) > 0.2); /* no clamp: it rises again past T, as Axolotl's does */
    /* cosine_min_lr_ratio has no effect on cosine_with_min_lr */
    make(&s,
         "learning_rate: 1\nlr_scheduler: cosine_with_min_lr\ncosine_min_lr_ratio: 0.5\n"
         "lr_scheduler_kwargs: {min_lr: 0.25}\n",
         0, 4);
    assert_true(s.min_rate == 0.25);
    /* W >= T: warmup never ends within the run; linear then clamps at 0 */
    make(&s, "learning_rate: 1\nlr_scheduler: linear\n", 8, 4);
    assert_true(sched_lr(&s, 3) == 3.0 / 8 && sched_lr(&s, 9) == 0);
    /* lambda(T) and beyond exist (computed after the last update) */
    make(&s, "learning_rate: 1\nlr_scheduler: polynomial\nlr_scheduler_kwargs: {lr_end: 0.1}\n", 1,
         5);
    assert_close(sched_lr(&s, 5), 0.1, 1e-15);
    assert_close(sched_lr(&s, 7), 0.1, 1e-15);
}

static void test_errors(void **state) {
    /* the loader refuses the schedules eft does not have, at the key */
    eft_config c;
    assert_int_equal(load(&c, "learning_rate: 0.1\nlr_scheduler: one_cycle\n"), -1);
    assert_contains(eft_err_msg(), "c.yaml:2:15: lr_scheduler");
    cfg_free(&c);
    /* and so does sched_from_config, for a config built another way */
    assert_int_equal(load(&c, "learning_rate: 0.1\nlr_scheduler: linear\n"), 0);
    const char *saved = c.lr_scheduler.v;
    sched s;
    const char *unsupported[] = {"rex", "inverse_sqrt", "reduce_lr_on_plateau",
                                 "warmup_stable_decay"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(unsupported); i++) {
        c.lr_scheduler.v = unsupported[i];
        assert_int_equal(sched_from_config(&s, &c, 1, 10), -1);
        assert_contains(eft_err_msg(), "c.yaml:2:15: lr_scheduler: ");
        assert_contains(eft_err_msg(), "is not supported yet. Use cosine, linear");
    }
    c.lr_scheduler.v = saved;
    cfg_free(&c);

    refused("learning_rate: 0.1\nlr_scheduler_kwargs: {num_cycles: 1, lr_end: 1e-5}\n", 0, 10,
            "c.yaml:2:38: lr_scheduler_kwargs: lr_end is not an argument of the cosine schedule "
            "(it takes num_cycles)");
    refused("learning_rate: 0.1\nlr_scheduler: linear\nlr_scheduler_kwargs:\n  power: 2\n", 0, 10,
            "c.yaml:4:3: lr_scheduler_kwargs: power is not an argument of the linear schedule "
            "(it takes none)");
    refused("learning_rate: 0.1\nlr_scheduler: cosine_with_min_lr\n", 0, 10,
            "c.yaml:2:15: lr_scheduler: cosine_with_min_lr needs exactly one of min_lr_rate");
    refused("learning_rate: 0.1\nlr_scheduler: cosine_with_min_lr\nlr_scheduler_kwargs: "
            "{min_lr_rate: 0.1, min_lr: 0.01}\n",
            0, 10, ", not both");
    refused(
        "learning_rate: 0\nlr_scheduler: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr: 0}\n", 0,
        10, "min_lr needs a learning_rate above 0");
    refused("learning_rate: 1e-7\nlr_scheduler: polynomial\n", 0, 10,
            "c.yaml:1:16: learning_rate: the polynomial schedule decays to lr_end = 1e-07");
    refused("learning_rate: 0.1\nlr_scheduler: polynomial\n", 10, 10,
            "warmup takes all 10 updates");
    refused("learning_rate: 0.1\nlr_scheduler: cosine\nlr_scheduler_kwargs: {num_cycles: many}\n",
            0, 10, "lr_scheduler_kwargs.num_cycles");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transformers_reference),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
