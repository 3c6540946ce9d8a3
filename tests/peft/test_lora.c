/* test_lora.c: adapters created as PEFT creates them (src/peft/lora.h), on the real E2B and
 * 26B-A4B tensor lists: Kaiming-uniform and Gaussian starts by their bounds and moments, B = 0,
 * bf16-representable values, streams that do not depend on the selection, the scale with and
 * without rsLoRA, PEFT's tensor names, one allocation, and the refusals. */
#include "support/bare_model.h"
#include "support/test.h"

#include "base/err.h"
#include "base/half.h"
#include "io/config.h"
#include "model/g4_weights.h"
#include "peft/lora.h"
#include "peft/lora_target.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef bare_model model;

static const lora_spec spec_default = {16, 32.0, false, 0.0, LORA_INIT_DEFAULT, true};

static bool bf16_exact(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return (u & 0xffffu) == 0;
}

typedef struct moments {
    double mean, var, maxabs;
    int64_t n;
} moments;

static moments moments_of(const float *v, int64_t n) {
    moments m = {0, 0, 0, n};
    for (int64_t i = 0; i < n; i++) m.mean += v[i], m.maxabs = fmax(m.maxabs, fabs(v[i]));
    m.mean /= (double)n;
    for (int64_t i = 0; i < n; i++) m.var += (v[i] - m.mean) * (v[i] - m.mean);
    m.var /= (double)(n - 1);
    return m;
}

/* The spec's worked example (training-math.md 7.4): the bound as torch computes it, which is
 * not 1/sqrt(in) in the last bit. */
static void test_kaiming_bound(void **state) {
    assert_true(lora_kaiming_bound(2560) == 0.019764235376052368);
    assert_true(lora_kaiming_bound(2560) != 1.0 / sqrt(2560.0));
    assert_true(fabs(lora_kaiming_bound(16) - 0.25) < 1e-16);
}

/* init true: A ~ U(-b, b) with b from the module's own fan_in, B = 0, all bf16 values. */
static void test_default_init(void **state) {
    model m;
    bare_model_variant(&m, "e2b");
    /* q_proj (in = H = 1536) and down_proj (in = I = 6144) of layer 0. */
    assert_int_equal(
        bare_model_select(&m, "model.language_model.layers.0.(self_attn.q|mlp.down)_proj"), 2);
    lora_adapter a;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &spec_default, 42), 0);
    assert_int_equal(a.n_modules, 2);
    for (int k = 0; k < a.n_modules; k++) {
        const lora_tensor *A = &a.tensors[2 * k], *B = &a.tensors[2 * k + 1];
        double b = lora_kaiming_bound(A->base->in);
        float bmax = eft_round_bf16((float)b); /* rounding to nearest is monotonic */
        moments mo = moments_of(A->data, A->numel);
        for (int64_t i = 0; i < A->numel; i++) {
            if (!(fabsf(A->data[i]) <= bmax))
                fail_msg("%s: |A| = %g > b = %g", A->name, A->data[i], b);
            if (!bf16_exact(A->data[i]))
                fail_msg("%s[%lld] is not a bf16 value", A->name, (long long)i);
        }
        assert_true(mo.maxabs > 0.99 * b);
        /* Mean: 5 standard errors; variance of U(-b, b) is b²/3, with a relative standard error
         * of sqrt(4/5)/sqrt(n) (0.6% here): 3% is five of them. */
        assert_true(fabs(mo.mean) < 5 * b / sqrt(3.0 * (double)mo.n));
        assert_true(fabs(mo.var / (b * b / 3) - 1) < 0.03);
        /* Uniform, not bell-shaped: ten equal bins each hold a tenth, within 5 sigma. */
        int64_t bins[10] = {0};
        for (int64_t i = 0; i < A->numel; i++) {
            int j = (int)((A->data[i] / b + 1) * 5);
            bins[j < 0 ? 0 : j > 9 ? 9 : j]++;
        }
        double expect = (double)mo.n / 10, sd = sqrt(expect * 0.9);
        for (int j = 0; j < 10; j++) assert_true(fabs((double)bins[j] - expect) < 5 * sd);
        for (int64_t i = 0; i < B->numel; i++) assert_true(B->data[i] == 0.0f);
    }
    lora_detach(&a);
    bare_model_free(&m);
}

/* init gaussian: A ~ N(0, std 1/r), B = 0. */
static void test_gaussian_init(void **state) {
    model m;
    bare_model_variant(&m, "e2b");
    assert_int_equal(bare_model_select(&m, "model.language_model.layers.[01].self_attn.q_proj"), 2);
    lora_spec s = spec_default;
    s.r = 8, s.init = LORA_INIT_GAUSSIAN;
    lora_adapter a;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 7), 0);
    const lora_tensor *A = &a.tensors[0];
    moments mo = moments_of(A->data, A->numel);
    double var = 1.0 / 64;
    assert_true(fabs(mo.mean) < 5 * sqrt(var / (double)mo.n));
    assert_true(fabs(mo.var / var - 1) < 0.05); /* relative SE sqrt(2/n) = 1% */
    /* Beyond two standard deviations: 4.55% for a normal, none for a uniform of that variance. */
    int64_t tail = 0;
    for (int64_t i = 0; i < A->numel; i++) {
        tail += fabs(A->data[i]) > 2.0 / 8;
        assert_true(bf16_exact(A->data[i]));
    }
    assert_true(fabs((double)tail / (double)mo.n - 0.0455) < 0.006);
    for (int k = 1; k < a.n_tensors; k += 2)
        for (int64_t i = 0; i < a.tensors[k].numel; i++) assert_true(a.tensors[k].data[i] == 0.0f);
    lora_detach(&a);
    bare_model_free(&m);
}

/* init false: nn.Linear's own initialisation of B, Kaiming-uniform on fan_in r: non-zero. */
static void test_linear_init(void **state) {
    model m;
    bare_model_variant(&m, "e2b");
    assert_int_equal(bare_model_select(&m, "model.language_model.layers.0.mlp.up_proj"), 1);
    lora_spec s = spec_default;
    s.init = LORA_INIT_LINEAR;
    lora_adapter a;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 1), 0);
    const lora_tensor *B = &a.tensors[1];
    moments mo = moments_of(B->data, B->numel);
    assert_true(mo.maxabs <= 0.25 && mo.maxabs > 0.24); /* bound(16) = 1/4 */
    assert_true(fabs(mo.var / (0.0625 / 3) - 1) < 0.05);
    lora_detach(&a);
    bare_model_free(&m);
}

/* A module's values depend on the seed and its path only. */
static void test_streams(void **state) {
    model m1, m2;
    bare_model_variant(&m1, "e2b");
    bare_model_variant(&m2, "e2b");
    assert_int_equal(
        bare_model_select(&m1, "model.language_model.layers.[0-3].self_attn.(q|k|v)_proj"), 12);
    assert_int_equal(bare_model_select(&m2, "model.language_model.layers.2.self_attn.v_proj"), 1);
    lora_adapter a1, a2, a3;
    assert_int_equal(lora_attach(&a1, &m1.w, m1.sel, &spec_default, 42), 0);
    assert_int_equal(lora_attach(&a2, &m2.w, m2.sel, &spec_default, 42), 0);
    const char *v2 =
        "base_model.model.model.language_model.layers.2.self_attn.v_proj.lora_A.weight";
    const lora_tensor *t1 = lora_find(&a1, v2), *t2 = lora_find(&a2, v2);
    assert_non_null(t1);
    assert_non_null(t2);
    assert_int_equal(t1->numel, t2->numel);
    assert_memory_equal(t1->data, t2->data, (size_t)t1->numel * sizeof(float));
    /* Different modules, and a different seed, give different values. */
    const lora_tensor *k2 = lora_find(&a1, "base_model.model.model.language_model.layers.2."
                                           "self_attn.k_proj.lora_A.weight");
    assert_non_null(k2);
    assert_true(memcmp(k2->data, t1->data, 64 * sizeof(float)) != 0);
    lora_detach(&a2);
    assert_int_equal(lora_attach(&a3, &m2.w, m2.sel, &spec_default, 43), 0);
    assert_true(memcmp(a3.tensors[0].data, t1->data, 64 * sizeof(float)) != 0);
    lora_detach(&a3);
    lora_detach(&a1);
    bare_model_free(&m1);
    bare_model_free(&m2);
}

static void test_scale(void **state) {
    assert_true(lora_scale(32, 16, false) == 2.0f);
    assert_true(lora_scale(32, 16, true) == 8.0f);
    assert_true(lora_scale(16, 8, true) == (float)(16.0 / sqrt(8.0)));
    assert_true(lora_scale(16, 8, true) != lora_scale(16, 8, false));
    model m;
    bare_model_variant(&m, "e2b");
    bare_model_select(&m, "model.language_model.layers.[0-9]+.mlp.gate_proj");
    lora_spec s = spec_default;
    s.rslora = true, s.alpha = 16, s.r = 4;
    lora_adapter a;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 0), 0);
    assert_int_equal(a.n_modules, 35);
    for (int k = 0; k < a.n_modules; k++) {
        assert_true(a.mods[k].scale == 8.0f);
        assert_int_equal(a.mods[k].r, 4);
    }
    lora_detach(&a);
    bare_model_free(&m);
}

/* PEFT's names and shapes, hung on the right parameters, in one block; detach unhooks. */
static void test_layout(void **state) {
    model m;
    bare_model_variant(&m, "e2b");
    /* Layer 20 is KV-shared: it has no k_proj, so two modules. */
    assert_int_equal(bare_model_select(&m, "model.language_model.layers.20.self_attn.(q|k|o)_proj|"
                                           "model.language_model.per_layer_model_projection"),
                     3);
    lora_adapter a;
    lora_spec s = spec_default;
    s.dropout = 0.1;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 3), 0);
    assert_int_equal(a.n_tensors, 6);
    static const char *names[] = {
        "base_model.model.model.language_model.per_layer_model_projection.lora_A.weight",
        "base_model.model.model.language_model.per_layer_model_projection.lora_B.weight",
        "base_model.model.model.language_model.layers.20.self_attn.q_proj.lora_A.weight",
        "base_model.model.model.language_model.layers.20.self_attn.q_proj.lora_B.weight",
        "base_model.model.model.language_model.layers.20.self_attn.o_proj.lora_A.weight",
        "base_model.model.model.language_model.layers.20.self_attn.o_proj.lora_B.weight",
    };
    const char *lo = (const char *)a.block, *hi = lo + a.block_bytes;
    size_t floats = 0;
    for (int i = 0; i < 6; i++) {
        const lora_tensor *t = &a.tensors[i];
        assert_string_equal(t->name, names[i]);
        bool is_b = i % 2;
        assert_int_equal(t->shape[0], is_b ? t->base->out : 16);
        assert_int_equal(t->shape[1], is_b ? 16 : t->base->in);
        assert_non_null(t->grad);
        assert_true((const char *)t->data >= lo && (const char *)(t->data + t->numel) <= hi);
        assert_true((const char *)t->grad >= lo && (const char *)(t->grad + t->numel) <= hi);
        assert_true(((uintptr_t)t->data & 63) == 0);
        floats += 2 * (size_t)t->numel;
    }
    assert_true(a.block_bytes >= floats * sizeof(float));
    /* per_layer_model_projection: [L * P, H] = [35 * 256, 1536]. */
    assert_int_equal(a.tensors[1].shape[0], 35 * 256);
    int hung = 0;
    for (int i = 0; i < m.d.ts.n; i++) {
        g4_lora *L = m.w.params[i].lora;
        assert_true((L != NULL) == m.sel[i]);
        if (L) hung++, assert_true(L->dropout == 0.1f);
    }
    assert_int_equal(hung, 3);
    lora_set_train(&a, false);
    assert_true(a.mods[0].dropout == 0.0f);
    lora_set_train(&a, true);
    assert_true(a.mods[2].dropout == 0.1f);
    lora_detach(&a);
    for (int i = 0; i < m.d.ts.n; i++) assert_null(m.w.params[i].lora);

    /* Not trained: no gradients; nothing selected: an empty set. */
    s.train = false;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 3), 0);
    assert_null(a.tensors[0].grad);
    assert_null(a.mods[0].dA);
    lora_detach(&a);
    memset(m.sel, 0, (size_t)m.d.ts.n);
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 3), 0);
    assert_int_equal(a.n_tensors, 0);
    lora_detach(&a);
    bare_model_free(&m);
}

/* Expert tensors, as PEFT's ParamWrapper names and shapes them: one wrapper per parameter on
 * the experts module, gate_up_proj's nested under "base_layer" when down_proj is adapted too;
 * A [r*E, in], B [out, r*E]. */
static void test_expert_layout(void **state) {
    model m;
    bare_model_variant(&m, "26b-a4b");
    int64_t E = m.d.cfg.num_experts, H = m.d.plan.H, Ie = m.d.cfg.moe_intermediate_size;
    assert_int_equal(
        bare_model_select(&m, "model.language_model.layers.3.experts.(gate_up|down)_proj"), 2);
    lora_adapter a;
    lora_spec s = spec_default;
    s.r = 2;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 1), 0);
    assert_int_equal(a.n_tensors, 4);
    const char *pre = "base_model.model.model.language_model.layers.3.experts";
    char *want = eft_asprintf("%s.base_layer.lora_A.weight", pre);
    assert_string_equal(a.tensors[0].name, want); /* gate_up_proj, inside */
    eft_free(want);
    want = eft_asprintf("%s.lora_B.weight", pre);
    assert_string_equal(a.tensors[3].name, want); /* down_proj, outside */
    eft_free(want);
    assert_int_equal(a.tensors[0].shape[0], 2 * E), assert_int_equal(a.tensors[0].shape[1], H);
    assert_int_equal(a.tensors[1].shape[0], 2 * Ie), assert_int_equal(a.tensors[1].shape[1], 2 * E);
    assert_int_equal(a.tensors[2].shape[0], 2 * E), assert_int_equal(a.tensors[2].shape[1], Ie);
    assert_int_equal(a.tensors[3].shape[0], H), assert_int_equal(a.tensors[3].shape[1], 2 * E);
    /* A is Kaiming-uniform on fan_in = in, B starts at zero. */
    double bound = lora_kaiming_bound(H), amax = 0;
    for (int64_t i = 0; i < a.tensors[0].numel; i++)
        amax = fmax(amax, fabs((double)a.tensors[0].data[i]));
    assert_true(amax > 0.9 * bound && amax <= bound * (1 + 1e-2));
    for (int64_t i = 0; i < a.tensors[1].numel; i++) assert_true(a.tensors[1].data[i] == 0.0f);
    lora_detach(&a);
    /* gate_up_proj alone: no nesting. */
    assert_int_equal(bare_model_select(&m, "model.language_model.layers.3.experts.gate_up_proj"),
                     1);
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 1), 0);
    want = eft_asprintf("%s.lora_A.weight", pre);
    assert_string_equal(a.tensors[0].name, want);
    eft_free(want);
    lora_detach(&a);
    bare_model_free(&m);
}

static void test_refusals(void **state) {
    model m;
    bare_model_variant(&m, "26b-a4b");
    lora_adapter a;
    /* Expert tensors take LoRA (PEFT's target_parameters), but not with dropout. */
    assert_int_equal(bare_model_select(&m, "model.language_model.layers.0.experts.gate_up_proj"),
                     1);
    lora_spec drop = spec_default;
    drop.dropout = 0.1;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &drop, 0), -1);
    assert_contains(eft_err_msg(), "model.language_model.layers.0.experts.gate_up_proj: "
                                   "lora_dropout is 0.1, but PEFT cannot apply dropout");
    eft_err_clear();
    /* Nothing was hung by a refused attach. */
    for (int i = 0; i < m.d.ts.n; i++) assert_null(m.w.params[i].lora);
    /* The router is an nn.Linear: all-linear LoRA wraps it in PEFT, and so here. */
    assert_int_equal(bare_model_select(&m, "model.language_model.layers.0.router.proj"), 1);
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &spec_default, 0), 0);
    assert_int_equal(a.n_tensors, 2);
    assert_string_equal(a.tensors[0].name,
                        "base_model.model.model.language_model.layers.0.router.proj.lora_A.weight");
    lora_detach(&a);
    bare_model_select(&m, "model.language_model.layers.0.self_attn.q_proj");
    lora_spec s = spec_default;
    s.r = 0;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 0), -1);
    assert_contains(eft_err_msg(), "lora_r is 0");
    eft_err_clear();
    s.r = 8, s.dropout = 1.0;
    assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 0), -1);
    assert_contains(eft_err_msg(), "lora_dropout");
    eft_err_clear();
    bare_model_free(&m);
}

static int spec_of(const char *yaml, lora_spec *s) {
    char *text = eft_asprintf("base_model: x\ndatasets:\n  - path: d.jsonl\nadapter: lora\n"
                              "learning_rate: 1e-4\n%s",
                              yaml);
    eft_config c;
    int rc = cfg_load_string(&c, text, "t.yaml");
    if (rc) fail_msg("%s", eft_err_msg());
    rc = lora_spec_from_config(s, &c);
    cfg_free(&c);
    eft_free(text);
    return rc;
}

static void test_spec_from_config(void **state) {
    lora_spec s;
    assert_int_equal(spec_of("lora_r: 16\nlora_alpha: 32\nlora_dropout: 0.05\n", &s), 0);
    assert_int_equal(s.r, 16);
    assert_true(s.alpha == 32 && !s.rslora && s.dropout == 0.05 && s.train);
    assert_int_equal(s.init, LORA_INIT_DEFAULT);
    assert_int_equal(spec_of("lora_r: 8\nlora_alpha: 16\npeft_use_rslora: true\n"
                             "peft_init_lora_weights: gaussian\n",
                             &s),
                     0);
    assert_true(s.rslora);
    assert_int_equal(s.init, LORA_INIT_GAUSSIAN);
    assert_int_equal(spec_of("lora_r: 8\nlora_alpha: 16\npeft_init_lora_weights: false\n", &s), 0);
    assert_int_equal(s.init, LORA_INIT_LINEAR);
    assert_int_equal(spec_of("lora_r: 8\n", &s), -1);
    assert_contains(eft_err_msg(), "lora_alpha: missing");
    eft_err_clear();
    assert_int_equal(spec_of("lora_r: 8\nlora_alpha: 16\nlora_rank_pattern:\n  q_proj: 4\n", &s),
                     -1);
    assert_contains(eft_err_msg(), "t.yaml:");
    assert_contains(eft_err_msg(), "lora_rank_pattern: per-module ranks are not supported");
    eft_err_clear();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kaiming_bound), cmocka_unit_test(test_default_init),
        cmocka_unit_test(test_gaussian_init), cmocka_unit_test(test_linear_init),
        cmocka_unit_test(test_streams),       cmocka_unit_test(test_scale),
        cmocka_unit_test(test_layout),        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_expert_layout), cmocka_unit_test(test_spec_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
