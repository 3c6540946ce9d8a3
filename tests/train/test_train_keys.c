/* test_train_keys.c: the adapter, optimizer and schedule keys of `eft train`, each with a test that
 * fails if eft ignored the key: small runs that change one key and check what it must change.
 *
 *   lora_r, lora_target_modules (regex, list), lora_target_linear
 *                        the saved adapter: adapter_config.json and the tensors' names and sizes
 *   lora_alpha, peft_use_rslora
 *                        alpha 8 without rsLoRA and alpha 4 with it give the same scale (2 at
 *                        r = 4), hence the same adapter bytes, and alpha 4 without it another one
 *   lora_dropout         refused (not supported yet), with a message naming the key
 *   lora_model_dir       continued training keeps the adapter file's target_modules
 *   optimizer, adam_beta1, adam_beta2, adam_epsilon, weight_decay, max_grad_norm,
 *   learning_rate        one update from the committed adapter0 with checkpoint-1 saved: its
 *                        AdamW state and values must be exactly what the formula of each
 *                        optimizer gives for those hyper-parameters (training-math.md 3, 4)
 *   lr_scheduler (every kind), lr_scheduler_kwargs, cosine_min_lr_ratio, warmup_steps,
 *   warmup_ratio         the learning_rate logged at every step against the formulas of
 *                        training-math.md 6.2, written out again here
 *   seed                 the same seed gives the same bytes; another seed another data order and
 *                        another adapter
 */
#include "tt.h"

#include <stdio.h>

static const char *base_keys = "sequence_len: 64\n"
                               "sample_packing: false\n"
                               "curriculum_sampling: true\n"
                               "adapter: lora\n"
                               "lora_r: 2\n"
                               "lora_alpha: 4\n"
                               "lora_target_linear: true\n"
                               "micro_batch_size: 1\n"
                               "gradient_accumulation_steps: 1\n"
                               "num_epochs: 1\n"
                               "learning_rate: 0.01\n"
                               "lr_scheduler: constant\n"
                               "logging_steps: 1\n"
                               "seed: 7\n";

typedef struct kt {
    tt_env e;
    char *cfg; /* base_keys */
} kt;

static void kt_init(kt *t, const char *name) {
    tt_env_init(&t->e, name, 3);
    t->cfg = tt_config(&t->e, "base", base_keys);
}

static void kt_free(kt *t) {
    eft_free(t->cfg);
    tt_env_free(&t->e);
}

/* eft train base.yaml --output_dir DIR/name ARGS: the exit status, stderr in *err (owned). */
static int run_rc(kt *t, const char *name, const char *args, char **err) {
    char *a = eft_asprintf("--output_dir %s/%s %s", t->e.dir, name, args);
    int rc = tt_train(t->cfg, a, err);
    eft_free(a);
    return rc;
}

static void run(kt *t, const char *name, const char *args) {
    char *a = eft_asprintf("--output_dir %s/%s %s", t->e.dir, name, args);
    tt_train_ok(t->cfg, a);
    eft_free(a);
}

static cJSON *adapter_config(kt *t, const char *name) {
    char *p = tt_file(&t->e, name, "adapter_config.json");
    cJSON *j = tt_json(p);
    eft_free(p);
    return j;
}

static void adapter(kt *t, const char *name, tt_tensors *out) {
    char *p = tt_file(&t->e, name, "adapter_model.safetensors");
    tt_tensors_read(out, p);
    eft_free(p);
}

static bool same_adapter(kt *t, const char *a, const char *b) {
    char *pa = tt_file(&t->e, a, "adapter_model.safetensors");
    char *pb = tt_file(&t->e, b, "adapter_model.safetensors");
    bool same = tt_same_file(pa, pb);
    eft_free(pa), eft_free(pb);
    return same;
}

static int64_t numel_of(const tt_tensors *t, const char *name) {
    int i = tt_find(t, name);
    if (i < 0) fail_msg("the adapter has no %s", name);
    return t->numel[i];
}

#define Q0 "base_model.model.model.language_model.layers.0.self_attn.q_proj"

/* tiny-31b: 6 layers with q, k, o, gate, up, down; the five sliding layers also have v (the
 * global one shares k as v): 41 linear maps. q_proj of layer 0 is [48, 16]. */
static void test_lora_shape(void **state) {
    kt t;
    kt_init(&t, "keys_lora");
    run(&t, "r2", "--max_steps 2");
    run(&t, "r3", "--max_steps 2 --lora_r 3");
    run(&t, "regex",
        "--max_steps 2 --lora_target_linear false --lora_target_modules "
        "'model.language_model.layers.[01].self_attn.(q|v)_proj'");
    run(&t, "list",
        "--max_steps 2 --lora_target_linear false --lora_target_modules "
        "'[o_proj, down_proj]'");

    tt_tensors a;
    cJSON *c = adapter_config(&t, "r2");
    assert_int_equal(cJSON_GetObjectItem(c, "r")->valueint, 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "target_modules")), 41);
    cJSON_Delete(c);
    adapter(&t, "r2", &a);
    assert_int_equal(a.n, 82);
    assert_int_equal(numel_of(&a, Q0 ".lora_A.weight"), 2 * 16);
    assert_int_equal(numel_of(&a, Q0 ".lora_B.weight"), 48 * 2);
    tt_tensors_free(&a);

    c = adapter_config(&t, "r3");
    assert_int_equal(cJSON_GetObjectItem(c, "r")->valueint, 3);
    cJSON_Delete(c);
    adapter(&t, "r3", &a);
    assert_int_equal(numel_of(&a, Q0 ".lora_A.weight"), 3 * 16);
    assert_int_equal(numel_of(&a, Q0 ".lora_B.weight"), 48 * 3);
    tt_tensors_free(&a);

    c = adapter_config(&t, "regex");
    assert_string_equal(cJSON_GetObjectItem(c, "target_modules")->valuestring,
                        "model.language_model.layers.[01].self_attn.(q|v)_proj");
    cJSON_Delete(c);
    adapter(&t, "regex", &a);
    assert_int_equal(a.n, 8); /* q and v of layers 0 and 1 */
    assert_true(tt_find(&a, Q0 ".lora_A.weight") >= 0);
    assert_true(tt_find(&a, "base_model.model.model.language_model.layers.1.self_attn.v_proj."
                            "lora_B.weight") >= 0);
    tt_tensors_free(&a);

    c = adapter_config(&t, "list");
    const cJSON *tm = cJSON_GetObjectItem(c, "target_modules");
    assert_int_equal(cJSON_GetArraySize(tm), 2);
    assert_string_equal(cJSON_GetArrayItem(tm, 0)->valuestring, "o_proj");
    assert_string_equal(cJSON_GetArrayItem(tm, 1)->valuestring, "down_proj");
    cJSON_Delete(c);
    adapter(&t, "list", &a);
    assert_int_equal(a.n, 2 * 12); /* o and down of 6 layers */
    for (int i = 0; i < a.n; i++)
        assert_true(strstr(a.names[i], "o_proj.lora_") || strstr(a.names[i], "down_proj.lora_"));
    tt_tensors_free(&a);
    kt_free(&t);
}

static void test_lora_scale(void **state) {
    kt t;
    kt_init(&t, "keys_scale");
    run(&t, "a4", "--max_steps 3 --lora_r 4 --lora_alpha 4");
    run(&t, "a8", "--max_steps 3 --lora_r 4 --lora_alpha 8");
    run(&t, "rs4", "--max_steps 3 --lora_r 4 --lora_alpha 4 --peft_use_rslora true");
    assert_true(same_adapter(&t, "a8", "rs4")); /* 8 / 4 = 4 / sqrt(4) */
    assert_false(same_adapter(&t, "a4", "a8"));
    cJSON *c = adapter_config(&t, "rs4");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(c, "use_rslora")));
    assert_int_equal(cJSON_GetObjectItem(c, "lora_alpha")->valueint, 4);
    cJSON_Delete(c);
    c = adapter_config(&t, "a8");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(c, "use_rslora")));
    assert_int_equal(cJSON_GetObjectItem(c, "lora_alpha")->valueint, 8);
    cJSON_Delete(c);

    /* lora_dropout: the masks change the trained adapter, and are drawn again the same way. */
    run(&t, "d1", "--max_steps 3 --lora_r 4 --lora_alpha 4 --lora_dropout 0.3");
    run(&t, "d2", "--max_steps 3 --lora_r 4 --lora_alpha 4 --lora_dropout 0.3");
    assert_false(same_adapter(&t, "a4", "d1"));
    assert_true(same_adapter(&t, "d1", "d2"));
    c = adapter_config(&t, "d1");
    assert_true(cJSON_GetObjectItem(c, "lora_dropout")->valuedouble == 0.3);
    cJSON_Delete(c);
    kt_free(&t);
}

/* Continuing from lora_model_dir keeps the file's target_modules, whatever the config names,
 * and eft reads back what it saved. */
static void test_lora_model_dir(void **state) {
    kt t;
    kt_init(&t, "keys_lora_dir");
    run(&t, "cont",
        "--max_steps 2 --lora_model_dir " TT_FIXTURES "/adapter0 "
        "--lora_target_linear false --lora_target_modules '[q_proj]'");
    cJSON *got = adapter_config(&t, "cont");
    cJSON *want = tt_json(TT_FIXTURES "/adapter0/adapter_config.json");
    assert_true(cJSON_Compare(cJSON_GetObjectItem(got, "target_modules"),
                              cJSON_GetObjectItem(want, "target_modules"), true));
    assert_int_equal(cJSON_GetObjectItem(got, "r")->valueint, 4);
    cJSON_Delete(got), cJSON_Delete(want);
    char *dir = tt_path(&t.e, "cont");
    char *args = eft_asprintf("--max_steps 1 --lora_model_dir %s", dir);
    run(&t, "again", args);
    eft_free(args), eft_free(dir);
    kt_free(&t);
}

/* ---- the optimizer: one update, checked against its formula ---- */

typedef struct hp {
    double lr, b1, b2, eps, wd, max_norm;
} hp;

/* Checks checkpoint-1 of run `name` (one update from adapter0, constant rate): AdamW's step
 * counts, moments and new values for hyper-parameters h; decay_after: bitsandbytes' order. */
static void check_first_update(kt *t, const char *name, const hp *h, bool decay_after) {
    cJSON *m = tt_metrics(&t->e, name);
    double norm = tt_get(m, "loss", 0, "grad_norm");
    assert_true(tt_get(m, "loss", 0, "learning_rate") == h->lr);
    cJSON_Delete(m);
    char *pp = tt_file(&t->e, name, "checkpoint-1/adapter_model.safetensors");
    char *po = tt_file(&t->e, name, "checkpoint-1/optimizer.safetensors");
    tt_tensors p0, p1, opt;
    tt_tensors_read(&p0, TT_FIXTURES "/adapter0/adapter_model.safetensors");
    tt_tensors_read(&p1, pp);
    tt_tensors_read(&opt, po);
    assert_int_equal(p0.n, p1.n);
    assert_int_equal(opt.n, 3 * p0.n);
    const double bc1 = 1 - h->b1, bc2 = 1 - h->b2; /* t = 1 */
    double m_sq = 0, worst = 0, worst_other = 0;
    for (int i = 0; i < p0.n; i++) {
        char *nm = eft_asprintf("%s.exp_avg", p0.names[i]);
        char *nv = eft_asprintf("%s.exp_avg_sq", p0.names[i]);
        char *ns = eft_asprintf("%s.step", p0.names[i]);
        int im = tt_find(&opt, nm), iv = tt_find(&opt, nv), is = tt_find(&opt, ns);
        int j = tt_find(&p1, p0.names[i]);
        assert_true(im >= 0 && iv >= 0 && is >= 0 && j >= 0);
        eft_free(nm), eft_free(nv), eft_free(ns);
        const float *m1 = opt.v[im], *v1 = opt.v[iv], *a = p0.v[i], *b = p1.v[j];
        assert_true(opt.v[is][0] == 1.0f); /* the I64 step count, read as a float */
        double err = 0, err_other = 0, moved = 0;
        for (int64_t k = 0; k < p0.numel[i]; k++) {
            m_sq += (double)m1[k] * m1[k];
            /* m = (1 - b1) g and v = (1 - b2) g^2, so m^2 / v = (1 - b1)^2 / (1 - b2) */
            if (v1[k] > 1e-20) assert_close((double)m1[k] * m1[k] / v1[k], bc1 * bc1 / bc2, 1e-5);
            double s = h->lr / bc1 * m1[k] / (sqrt(v1[k]) / sqrt(bc2) + h->eps);
            double before = a[k] * (1 - h->lr * h->wd) - s;  /* torch: decay, then step */
            double after = (a[k] - s) * (1 - h->lr * h->wd); /* bitsandbytes */
            double want = decay_after ? after : before, other = decay_after ? before : after;
            err += (b[k] - want) * (b[k] - want);
            err_other += (b[k] - other) * (b[k] - other);
            moved += (want - a[k]) * (want - a[k]);
        }
        worst = fmax(worst, sqrt(err / moved));
        worst_other = fmax(worst_other, sqrt(err_other / moved));
    }
    /* The clipped gradient's norm: max_norm when the update clipped, else the logged norm. */
    double clipped = h->max_norm > 0 && norm > h->max_norm ? h->max_norm : norm;
    assert_close(sqrt(m_sq) / bc1, clipped, 1e-5);
    print_message("%s: values within %.2g of the formula's move (%.2g from the other decay "
                  "order)\n",
                  name, worst, worst_other);
    assert_true(worst < 2e-5);
    assert_true(worst_other > 1e-3); /* the orders differ by lr x wd = 2e-3 of the move */
    tt_tensors_free(&p0), tt_tensors_free(&p1), tt_tensors_free(&opt);
    eft_free(pp), eft_free(po);
}

static void test_optimizer(void **state) {
    kt t;
    kt_init(&t, "keys_optim");
    const char *one = "--max_steps 1 --save_steps 1 --lora_model_dir " TT_FIXTURES "/adapter0 "
                      "--adam_beta1 0.8 --adam_beta2 0.95 --adam_epsilon 0.001 "
                      "--weight_decay 0.2";
    const hp h = {0.01, 0.8, 0.95, 1e-3, 0.2, 1.0}, h0 = {0.01, 0.8, 0.95, 1e-3, 0.2, 0};
    char *args = eft_asprintf("%s --optimizer adamw_torch_fused --max_grad_norm 1.0", one);
    run(&t, "fused", args);
    eft_free(args);
    args = eft_asprintf("%s --optimizer adamw_torch --max_grad_norm 0", one);
    run(&t, "torch", args);
    eft_free(args);
    args = eft_asprintf("%s --optimizer paged_adamw_32bit --max_grad_norm 1.0", one);
    run(&t, "bnb32", args);
    eft_free(args);
    cJSON *m = tt_metrics(&t.e, "fused");
    assert_true(tt_get(m, "loss", 0, "grad_norm") > 1.5); /* so max_grad_norm 1.0 clips */
    cJSON_Delete(m);
    check_first_update(&t, "fused", &h, false);
    check_first_update(&t, "torch", &h0, false);
    check_first_update(&t, "bnb32", &h, true);

    /* Same formula, different rounding: adamw_torch and adamw_torch_fused part in the last bits. */
    run(&t, "fused4", "--max_steps 4 --optimizer adamw_torch_fused --weight_decay 0.1");
    run(&t, "torch4", "--max_steps 4 --optimizer adamw_torch --weight_decay 0.1");
    assert_false(same_adapter(&t, "fused4", "torch4"));
    tt_tensors a, b;
    adapter(&t, "fused4", &a);
    adapter(&t, "torch4", &b);
    for (int i = 0; i < a.n; i++) {
        double norm = 0;
        for (int64_t k = 0; k < b.numel[i]; k++) norm += (double)b.v[i][k] * b.v[i][k];
        assert_true(tt_dist(a.v[i], b.v[i], a.numel[i]) <= 1e-4 * sqrt(norm));
    }
    tt_tensors_free(&a), tt_tensors_free(&b);

    /* The 8-bit names train (their arithmetic is test_opt8's); the run records which. */
    const char *eight[] = {"adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit", "adamw_torch_8bit"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(eight); i++) {
        char *err = NULL;
        args = eft_asprintf("--max_steps 1 --optimizer %s", eight[i]);
        if (run_rc(&t, "eight", args, &err)) fail_msg("--optimizer %s: %s", eight[i], err);
        eft_free(err), eft_free(args);
    }
    kt_free(&t);
}

/* ---- schedules ---- */

/* training-math.md 6.2, lambda(k) for T updates with W of warmup. */
typedef enum { LINEAR, COSINE, CONSTANT, CONSTANT_WARMUP, MIN_LR, POLY, RESTARTS, MIN_RATIO } kind;

static double lambda(kind s, int k, int W, int T) {
    const double pi = 3.14159265358979323846;
    if (s == CONSTANT) return 1;
    if (k < W) return (double)k / (W > 1 ? W : 1);
    double p = (double)(k - W) / (T - W > 1 ? T - W : 1), f = 0.5 * (1 + cos(pi * p));
    switch (s) {
    case LINEAR:
        return fmax(0, (double)(T - k) / (T - W > 1 ? T - W : 1));
    case COSINE:
        return fmax(0, f);
    case CONSTANT_WARMUP:
        return 1;
    case MIN_LR: /* min_lr_rate 0.1 */
        return fmax(0, f * 0.9 + 0.1);
    case POLY: { /* lr_end 1e-4, power 2, learning_rate 0.01 */
        double r = 1 - (double)(k - W) / (T - W);
        return ((0.01 - 1e-4) * r * r + 1e-4) / 0.01;
    }
    case RESTARTS: /* num_cycles 2 */
        return p >= 1 ? 0 : fmax(0, 0.5 * (1 + cos(pi * fmod(2 * p, 1.0))));
    case MIN_RATIO: /* cosine_min_lr_ratio 0.2, no clamp */
        return 0.8 * f + 0.2;
    case CONSTANT:
        break;
    }
    return NAN;
}

static void check_rates(kt *t, const char *name, kind s, int W, int T) {
    cJSON *m = tt_metrics(&t->e, name);
    assert_int_equal(tt_count(m, "loss"), T);
    for (int k = 0; k < T; k++) {
        double got = tt_get(m, "loss", k, "learning_rate"), want = 0.01 * lambda(s, k, W, T);
        if (!(fabs(got - want) <= 1e-12 * fabs(want)))
            fail_msg("%s: step %d: learning_rate %.17g, want %.17g", name, k + 1, got, want);
    }
    cJSON_Delete(m);
}

static void test_schedules(void **state) {
    kt t;
    kt_init(&t, "keys_sched");
    static const struct {
        const char *name, *args;
        kind s;
        int W;
    } runs[] = {
        {"linear", "--lr_scheduler linear --warmup_steps 3", LINEAR, 3},
        {"cosine", "--lr_scheduler cosine --warmup_steps 3", COSINE, 3},
        {"constant", "--lr_scheduler constant --warmup_steps 3", CONSTANT, 3},
        {"cww", "--lr_scheduler constant_with_warmup --warmup_steps 3", CONSTANT_WARMUP, 3},
        {"min_lr",
         "--lr_scheduler cosine_with_min_lr --warmup_steps 3 "
         "--lr_scheduler_kwargs '{min_lr_rate: 0.1}'",
         MIN_LR, 3},
        {"poly",
         "--lr_scheduler polynomial --warmup_steps 3 "
         "--lr_scheduler_kwargs '{lr_end: 0.0001, power: 2}'",
         POLY, 3},
        {"restarts",
         "--lr_scheduler cosine_with_restarts --warmup_steps 3 "
         "--lr_scheduler_kwargs '{num_cycles: 2}'",
         RESTARTS, 3},
        {"ratio", "--lr_scheduler cosine --warmup_steps 3 --cosine_min_lr_ratio 0.2", MIN_RATIO, 3},
        /* warmup_ratio of Axolotl's total (min(20 rows, max_steps 8) = 8): trunc(0.25 x 8) = 2 */
        {"wratio", "--lr_scheduler constant_with_warmup --warmup_ratio 0.25", CONSTANT_WARMUP, 2},
        /* no warmup key: min(trunc(0.03 x 8), 100) = 0 */
        {"nowarm", "--lr_scheduler linear", LINEAR, 0},
    };
    for (size_t i = 0; i < EFT_ARRAY_LEN(runs); i++) {
        char *args = eft_asprintf("--max_steps 8 %s", runs[i].args);
        run(&t, runs[i].name, args);
        eft_free(args);
        check_rates(&t, runs[i].name, runs[i].s, runs[i].W, 8);
    }
    kt_free(&t);
}

/* ---- seed ---- */

static void test_seed(void **state) {
    kt t;
    kt_init(&t, "keys_seed");
    const char *shuffled = "--max_steps 6 --curriculum_sampling false";
    char *a1 = eft_asprintf("%s --seed 1", shuffled), *a2 = eft_asprintf("%s --seed 2", shuffled);
    run(&t, "s1", a1);
    run(&t, "s1b", a1);
    run(&t, "s2", a2);
    eft_free(a1), eft_free(a2);
    assert_true(same_adapter(&t, "s1", "s1b"));
    assert_false(same_adapter(&t, "s1", "s2"));
    /* The data order follows the seed: the cumulative trained tokens part somewhere. */
    cJSON *m1 = tt_metrics(&t.e, "s1"), *m2 = tt_metrics(&t.e, "s2");
    bool differ = false;
    for (int k = 0; k < 6; k++)
        differ |=
            tt_get(m1, "loss", k, "trainable_tokens") != tt_get(m2, "loss", k, "trainable_tokens");
    assert_true(differ);
    cJSON_Delete(m1), cJSON_Delete(m2);
    kt_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora_shape),     cmocka_unit_test(test_lora_scale),
        cmocka_unit_test(test_lora_model_dir), cmocka_unit_test(test_optimizer),
        cmocka_unit_test(test_schedules),      cmocka_unit_test(test_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
