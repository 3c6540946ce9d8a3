/* test_g4_memory.c: the memory plan: recompute, NF4 sizes, linear scaling in T, LoRA adapter
 * bytes computed by hand from the spec's shapes, optimizer state, and the activation lists. */
#include "support/test.h"
#include "support/variant.h"

#include "base/err.h"
#include "model/g4_config.h"
#include "model/g4_memory.h"
#include "model/g4_plan.h"

#include <string.h>

static const char *variants[] = {"e2b", "e4b", "12b", "26b-a4b", "31b"};

static g4_run_shape shape(int64_t T) {
    g4_run_shape s;
    g4_run_shape_default(&s);
    s.seq_len = T;
    s.threads = 4; /* fixed, so the numbers do not depend on the machine */
    return s;
}

static void plan_ok(const g4_desc *v, const g4_run_shape *s, g4_memory *m) {
    if (g4_memory_plan(&v->plan, &v->ts, s, m)) fail_msg("%s", eft_err_msg());
    assert_int_equal(m->total,
                     m->weights + m->adapter + m->grads + m->optim + m->activations + m->scratch);
}

static void test_recompute_reduces_activations(void **state) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(variants); i++) {
        g4_desc v;
        variant_load(&v, variants[i]);
        g4_run_shape s = shape(2048);
        g4_memory without, with;
        plan_ok(&v, &s, &without);
        s.recompute = true;
        plan_ok(&v, &s, &with);
        print_message("%-8s activations %.2f GiB, with recompute %.2f GiB\n", variants[i],
                      without.activations / 1073741824.0, with.activations / 1073741824.0);
        assert_true(with.activations < without.activations);
        assert_true(with.act_replay > 0);
        assert_int_equal(without.act_replay, 0);
        /* Recompute keeps h_in [N, H] per layer, plus the donors' K and V. */
        int64_t kept = 4 * 2048 * v.plan.H * v.plan.L;
        for (int l = 0; l < v.plan.L; l++)
            if (v.plan.layers[l].stores_kv)
                kept += 2 * 4 * 2048 * v.plan.layers[l].n_kv * v.plan.layers[l].head_dim;
        assert_int_equal(with.act_layers, kept);
        /* Nothing else moves. */
        assert_int_equal(with.weights, without.weights);
        assert_int_equal(with.scratch, without.scratch);
        g4_desc_free(&v);
    }
}

/* NF4 with double quantisation is about 4.127 bits per weight, for nn.Linear weights only. */
static void test_nf4_weights(void **state) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(variants); i++) {
        g4_desc v;
        variant_load(&v, variants[i]);
        g4_param_counts n;
        g4_count_params(&v.plan, &v.ts, &n);
        g4_run_shape s = shape(1024);
        g4_memory bf16, nf4;
        plan_ok(&v, &s, &bf16);
        s.weights = G4_WEIGHTS_NF4;
        plan_ok(&v, &s, &nf4);
        assert_int_equal(bf16.weights, 2 * (n.total + n.group[G4_GROUP_BUFFER]));
        assert_int_equal(bf16.weights_nf4, 0);
        assert_close((double)nf4.weights_nf4 / (2.0 * n.linear), 4.127 / 16, 0.001);
        /* Embeddings, norms, buffers and (without quantize_moe_experts) experts stay bf16. */
        assert_int_equal(nf4.weights - nf4.weights_nf4, bf16.weights - 2 * n.linear);
        if (n.group[G4_GROUP_MOE_EXPERTS]) {
            s.quantize_moe_experts = true;
            g4_memory q;
            plan_ok(&v, &s, &q);
            assert_close((double)q.weights_nf4 / (2.0 * (n.linear + n.group[G4_GROUP_MOE_EXPERTS])),
                         4.127 / 16, 0.001);
        }
        g4_desc_free(&v);
    }
    assert_int_equal(g4_nf4_bytes(64 * 256), 64 * 256 / 2 + 256 + 4);
}

/* No [T, T] and no [T, V]: every activation is linear in T, scratch does not grow with T but
 * for the backward working set, which is linear too. */
static void test_linear_in_T(void **state) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(variants); i++) {
        g4_desc v;
        variant_load(&v, variants[i]);
        for (int rc = 0; rc < 2; rc++) {
            g4_run_shape s1 = shape(1024), s4 = shape(4096);
            s1.recompute = s4.recompute = rc;
            g4_memory a, b;
            plan_ok(&v, &s1, &a);
            plan_ok(&v, &s4, &b);
            assert_int_equal(b.activations, 4 * a.activations);
            assert_int_equal(b.scratch_grad, 4 * a.scratch_grad);
            assert_int_equal(b.scratch_attn, a.scratch_attn);
            assert_int_equal(b.scratch_loss, a.scratch_loss);
            assert_int_equal(b.weights, a.weights);
            /* Micro-batch rows count like tokens. */
            g4_run_shape s2 = s1;
            s2.micro_batch = 4;
            g4_memory c;
            plan_ok(&v, &s2, &c);
            assert_int_equal(c.activations, b.activations);
        }
        g4_desc_free(&v);
    }
}

/* E2B LoRA r=16 on q,k,v,o,gate,up,down, by hand from spec 2.3 and 8: H=1536; sliding q/o
 * [2048,1536]/[1536,2048], full [4096,1536]/[1536,4096]; k/v [256,1536] sliding, [512,1536] full,
 * only on layers 0-14 (12 sliding, 3 full: 4, 9, 14); MLP [6144,1536] on 0-14 and [12288,1536]
 * on the 20 shared layers. A module [out, in] holds r*(in + out) parameters. */
static void test_lora_bytes_by_hand(void **state) {
    const int64_t r = 16, H = 1536;
    int64_t params = 0;
    params += 28 * 2 * r * (H + 2048);  /* q, o of the 28 sliding layers */
    params += 7 * 2 * r * (H + 4096);   /* q, o of the 7 full layers */
    params += 12 * 2 * r * (H + 256);   /* k, v of the 12 sliding layers before 15 */
    params += 3 * 2 * r * (H + 512);    /* k, v of full layers 4, 9, 14 */
    params += 15 * 3 * r * (H + 6144);  /* gate, up, down of layers 0-14 */
    params += 20 * 3 * r * (H + 12288); /* double-wide MLP of layers 15-34 */
    assert_int_equal(params, 24158208);

    g4_desc v;
    variant_load(&v, "e2b");
    g4_run_shape s = shape(2048);
    g4_memory m;
    plan_ok(&v, &s, &m);
    assert_int_equal(m.trainable, params);
    assert_int_equal(m.adapter, 4 * params);
    assert_int_equal(m.grads, 4 * params);
    assert_int_equal(m.optim, 8 * params);

    /* Only q and v: the v of the 12B's full layers is absent (k_eq_v). */
    g4_desc_free(&v);
    variant_load(&v, "12b");
    s.lora_targets = G4_TARGET_Q | G4_TARGET_V;
    s.lora_r = 8;
    plan_ok(&v, &s, &m);
    /* 40 sliding q [4096,3840], 8 full q [8192,3840], 40 sliding v [2048,3840]. */
    int64_t want = 40 * 8 * (3840 + 4096) + 8 * 8 * (3840 + 8192) + 40 * 8 * (3840 + 2048);
    assert_int_equal(m.trainable, want);
    g4_desc_free(&v);

    /* Experts: r*(in + out) per expert, for gate_up [1408, 2816] and down [2816, 704]. */
    variant_load(&v, "26b-a4b");
    s.lora_targets = G4_TARGET_EXPERTS;
    s.lora_r = 4;
    plan_ok(&v, &s, &m);
    assert_int_equal(m.trainable, 30 * 128 * 4 * ((2816 + 1408) + (704 + 2816)));
    g4_desc_free(&v);
}

static void test_optimizers_and_full_finetune(void **state) {
    g4_desc v;
    variant_load(&v, "31b");
    g4_param_counts n;
    g4_count_params(&v.plan, &v.ts, &n);
    g4_run_shape s = shape(2048);
    g4_memory fp32, q8, full;
    plan_ok(&v, &s, &fp32);
    s.optim = G4_OPTIM_ADAMW_8BIT;
    plan_ok(&v, &s, &q8);
    assert_true(q8.optim < fp32.optim / 3);
    assert_true(q8.optim > fp32.optim / 4);
    /* Every LoRA tensor of the 31B (r 16 times 5376, 8192, 21504, ...) has at least 4096
     * elements and a multiple of 256: all 8-bit, 1 byte + 4 / 256 per moment, for both. */
    assert_int_equal(q8.optim, 2 * q8.trainable + q8.trainable / 32);
    g4_memory ao;
    s.optim = G4_OPTIM_ADAMW_8BIT_TORCHAO;
    plan_ok(&v, &s, &ao);
    assert_int_equal(ao.optim, q8.optim);

    s.optim = G4_OPTIM_ADAMW;
    s.train = G4_TRAIN_FULL;
    plan_ok(&v, &s, &full);
    assert_int_equal(full.trainable, n.total);
    assert_int_equal(full.adapter, 0);
    assert_int_equal(full.weights, 4 * n.total + 2 * n.group[G4_GROUP_BUFFER]);
    assert_int_equal(full.grads, 4 * n.total);
    assert_int_equal(full.optim, 8 * n.total);

    /* Runs that cannot train. */
    s.weights = G4_WEIGHTS_NF4;
    eft_err_clear();
    assert_int_equal(g4_memory_plan(&v.plan, &v.ts, &s, &full), -1);
    assert_contains(eft_err_msg(), "load_in_4bit needs adapter: lora");
    s = shape(0);
    assert_int_equal(g4_memory_plan(&v.plan, &v.ts, &s, &full), -1);
    assert_contains(eft_err_msg(), "sequence_len");
    s = shape(16);
    s.lora_targets = G4_TARGET_EXPERTS; /* the 31B has no experts */
    assert_int_equal(g4_memory_plan(&v.plan, &v.ts, &s, &full), -1);
    assert_contains(eft_err_msg(), "matches no module");
    eft_err_clear();
    g4_desc_free(&v);
}

static bool has_saved(const g4_saved *v, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i].name, name)) return true;
    return false;
}

/* The activation list follows the layer's structure. */
static void test_saved_lists(void **state) {
    g4_desc v;
    variant_load(&v, "e2b");
    g4_run_shape s = shape(100);
    g4_saved a[G4_SAVED_MAX];
    int n = g4_layer_saved(&v.plan, &s, 14, a); /* full, computes and lends K/V */
    assert_true(has_saved(a, n, "k") && has_saved(a, n, "v_raw") && has_saved(a, n, "ple_gated"));
    assert_true(has_saved(a, n, "lora_xa.k_proj"));
    for (int i = 0; i < n; i++)
        if (!strcmp(a[i].name, "lse")) assert_int_equal(a[i].elems, 8 * 100); /* [nH, N] */
    n = g4_layer_saved(&v.plan, &s, 20, a);                                   /* KV-shared */
    assert_false(has_saved(a, n, "k") || has_saved(a, n, "k_raw"));
    assert_false(has_saved(a, n, "lora_xa.k_proj"));
    for (int i = 0; i < n; i++)
        if (!strcmp(a[i].name, "gate")) assert_int_equal(a[i].elems, 100 * 12288);
    /* With recompute, donors keep their K/V on top of h_in. */
    s.recompute = true;
    assert_int_equal(g4_layer_kept_bytes(&v.plan, &s, 12), 4 * 100 * 1536);
    assert_int_equal(g4_layer_kept_bytes(&v.plan, &s, 13), 4 * 100 * 1536 + 2 * 4 * 100 * 256);
    assert_int_equal(g4_layer_kept_bytes(&v.plan, &s, 14), 4 * 100 * 1536 + 2 * 4 * 100 * 512);
    n = g4_model_saved(&v.plan, &s, a);
    assert_true(has_saved(a, n, "ple"));
    g4_desc_free(&v);

    variant_load(&v, "26b-a4b");
    s.recompute = false;
    n = g4_layer_saved(&v.plan, &s, 5, a); /* full, k_eq_v, MoE */
    assert_true(has_saved(a, n, "k_raw") && !has_saved(a, n, "v_raw"));
    assert_true(has_saved(a, n, "topk_idx") && has_saved(a, n, "expert_gate_up"));
    for (int i = 0; i < n; i++)
        if (!strcmp(a[i].name, "expert_gate_up")) assert_int_equal(a[i].elems, 100 * 8 * 1408);
    n = g4_model_saved(&v.plan, &s, a);
    assert_false(has_saved(a, n, "ple"));
    g4_desc_free(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recompute_reduces_activations),
        cmocka_unit_test(test_nf4_weights),
        cmocka_unit_test(test_linear_in_T),
        cmocka_unit_test(test_lora_bytes_by_hand),
        cmocka_unit_test(test_optimizers_and_full_finetune),
        cmocka_unit_test(test_saved_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
