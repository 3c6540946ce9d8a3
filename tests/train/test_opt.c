/* test_opt.c: AdamW and gradient clipping against torch (tests/data_files/optim/adamw.safetensors,
 * made by tools/make_optim_reference.py), and their known answers and edge cases: the decay
 * groups by name, a first update at lr 0, a tensor without gradient, clipping, NaN, the
 * bitsandbytes decay order, OpenMP over a large tensor. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "train/opt_adamw.h"
#include "train/sched.h"

#include <math.h>
#include <string.h>

#define REF_FILE     EFT_SOURCE_DIR "/tests/data_files/optim/adamw.safetensors"
#define MOMENT_FLOOR 0.1
#define LORA_A                                                                                     \
    "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.default.weight"

static opt_hparams hp(opt_kind kind, double wd) {
    return (opt_hparams){
        .kind = kind, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = wd};
}

/* ---- decay groups ---- */

static void test_decay_groups(void **state) {
    const char *decayed[] = {
        LORA_A,
        "base_model.model.model.language_model.layers.3.mlp.down_proj.lora_B.default.weight",
        "model.language_model.embed_tokens.weight",
        "lm_head.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.normalizer.weight", /* `norm` must be a whole component */
        "model.norm_x.weight",
        "model.layers.0.enorm.weight",
    };
    const char *not_decayed[] = {
        "base_model.model.model.language_model.layers.0.input_layernorm.weight",
        "model.language_model.layers.0.post_attention_layernorm.weight",
        "model.language_model.layers.0.pre_feedforward_layernorm.weight",
        "model.language_model.layers.0.post_feedforward_layernorm.weight",
        "model.language_model.layers.0.self_attn.q_norm.weight",
        "model.language_model.layers.0.self_attn.k_norm.weight",
        "model.language_model.layers.0.per_layer_projection_norm.weight",
        "model.language_model.layers.0.post_per_layer_input_norm.weight",
        "model.language_model.norm.weight",
        "norm.weight",
        "model.layers.0.self_attn.q_proj.lora_B.default.bias", /* lora_bias: true */
        "model.layers.0.mlp.gate_proj.Bias",                   /* lowercased first */
        "model.LayerNorm.weight",
        "model.final_RMSNorm.weight",
        "model.x_norm",
    };
    for (size_t i = 0; i < EFT_ARRAY_LEN(decayed); i++)
        if (!opt_decays(decayed[i])) fail_msg("not decayed: %s", decayed[i]);
    for (size_t i = 0; i < EFT_ARRAY_LEN(not_decayed); i++)
        if (opt_decays(not_decayed[i])) fail_msg("decayed: %s", not_decayed[i]);

    /* the optimizer applies it: the norm weight's decay is 0, the LoRA weight's is the config's */
    float a[2] = {1, 1}, b[2] = {1, 1}, ga[2] = {0, 0}, gb[2] = {0, 0};
    opt_param p[2] = {{LORA_A, a, ga, 2}, {"model.layers.0.input_layernorm.weight", b, gb, 2}};
    opt_hparams h = hp(OPT_ADAMW_TORCH, 0.5);
    opt_adamw o;
    opt_adamw_init(&o, &h, p, 2);
    assert_true(o.t[0].weight_decay == 0.5 && o.t[1].weight_decay == 0);
    opt_adamw_step(&o, 0.1); /* zero gradients: only the decay moves the values */
    assert_true(a[0] == (float)(1.0 - 0.1 * 0.5));
    assert_true(b[0] == 1.0f);
    opt_adamw_free(&o);
}

/* ---- against torch ---- */

typedef struct ref {
    st_archive *a;
    cJSON *meta;
    int n, T;
    char *names[3];
    double lrs[16], norms[16];
} ref;

static void ref_open(ref *r) {
    memset(r, 0, sizeof *r);
    if (st_open(&r->a, REF_FILE)) fail_msg("%s", eft_err_msg());
    const char *m = st_meta_get(r->a, 0, "reference");
    assert_non_null(m);
    r->meta = eft_json_parse(m, strlen(m), "reference");
    assert_non_null(r->meta);
    const cJSON *names = cJSON_GetObjectItem(r->meta, "names");
    r->n = cJSON_GetArraySize(names);
    assert_int_equal(r->n, 3);
    for (int i = 0; i < r->n; i++) r->names[i] = cJSON_GetArrayItem(names, i)->valuestring;
    int64_t T;
    assert_int_equal(eft_json_int(r->meta, "updates", &T, "reference"), 0);
    r->T = (int)T;
    assert_true(r->T <= 16);
    for (int k = 0; k < r->T; k++) {
        r->lrs[k] = cJSON_GetArrayItem(cJSON_GetObjectItem(r->meta, "lrs"), k)->valuedouble;
        r->norms[k] = cJSON_GetArrayItem(cJSON_GetObjectItem(r->meta, "norms"), k)->valuedouble;
    }
}

static void ref_close(ref *r) {
    cJSON_Delete(r->meta);
    st_close(r->a);
}

/* The tensor `name` as floats (owned), or NULL when absent. */
static float *ref_tensor(const ref *r, const char *name, int64_t *n) {
    const st_tensor *t = st_find(r->a, name);
    if (!t) return NULL;
    float *x = eft_malloc((size_t)t->numel * sizeof *x);
    if (st_to_f32(t, x, (size_t)t->numel)) fail_msg("%s", eft_err_msg());
    *n = t->numel;
    return x;
}

/* Largest |a - b| / max(|b|, floor) and the largest distance in ulps. The floor is a fraction
 * `floor_frac` of the tensor's largest |b|: a moment that crosses zero is the difference of two
 * larger terms, and its error is a few ulps of those terms, not of the small result. */
typedef struct diff {
    double rel;
    int64_t ulps;
} diff;

static int64_t ulp_distance(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

static void compare(diff *d, const float *a, const float *b, int64_t n, double floor_frac) {
    double big = 0;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) {
        double rel = fabs((double)a[i] - b[i]) / fmax(fabs(b[i]), floor_frac * big);
        if (big == 0) rel = fabs(a[i]);
        d->rel = fmax(d->rel, rel);
        int64_t u = ulp_distance(a[i], b[i]);
        if (u > d->ulps) d->ulps = u;
    }
}

/* Replays the reference run with eft's schedule and `kind`, comparing values and moments with
 * torch's `variant` after every update. The gradients are clipped by eft (own_clip) or are those
 * torch clipped, which isolates the optimizer's arithmetic. */
static void replay(opt_kind kind, const char *variant, bool own_clip, double tol_value,
                   double tol_moment, diff out[3], double *norm_rel) {
    ref r;
    ref_open(&r);
    float *val[3], *grad[3];
    opt_param p[3];
    for (int i = 0; i < r.n; i++) {
        char name[64];
        int64_t n;
        snprintf(name, sizeof name, "init.%d", i);
        val[i] = ref_tensor(&r, name, &n);
        grad[i] = eft_calloc((size_t)n, sizeof(float));
        p[i] = (opt_param){r.names[i], val[i], grad[i], n};
        bool decays = cJSON_IsTrue(cJSON_GetArrayItem(cJSON_GetObjectItem(r.meta, "decays"), i));
        assert_int_equal(opt_decays(r.names[i]), decays); /* the same groups as the Trainer's */
    }
    opt_hparams h = hp(kind, 0.1);
    opt_adamw o;
    opt_adamw_init(&o, &h, p, r.n);

    eft_config c;
    assert_int_equal(cfg_load_string(&c, "learning_rate: 0.01\nlr_scheduler: cosine\n", "c.yaml"),
                     0);
    sched s;
    assert_int_equal(sched_from_config(&s, &c, 2, r.T), 0);
    memset(out, 0, 3 * sizeof *out);
    *norm_rel = 0;
    for (int k = 0; k < r.T; k++) {
        for (int i = 0; i < r.n; i++) {
            char name[64];
            int64_t n;
            snprintf(name, sizeof name, "grad.%d.%d", k, i);
            float *g = ref_tensor(&r, name, &n);
            o.t[i].grad = g ? grad[i] : NULL; /* update 4 of tensor 1 has none */
            if (g) memcpy(grad[i], g, (size_t)n * sizeof(float));
            eft_free(g);
        }
        float norm;
        assert_int_equal(opt_clip_grad_norm(&o, own_clip ? 1.0 : 0.0, &norm), 0);
        assert_close(norm, r.norms[k], 1e-6);
        *norm_rel = fmax(*norm_rel, fabs(norm - r.norms[k]) / r.norms[k]);
        for (int i = 0; i < r.n && !own_clip; i++) {
            char name[64];
            int64_t n;
            snprintf(name, sizeof name, "clipped.%d.%d", k, i);
            float *g = ref_tensor(&r, name, &n);
            if (g) memcpy(grad[i], g, (size_t)n * sizeof(float));
            eft_free(g);
        }
        double lr = sched_lr(&s, k);
        assert_true(lr == r.lrs[k]); /* the same double */
        opt_adamw_step(&o, lr);
        for (int i = 0; i < r.n; i++) {
            const char *what[3] = {"value", "m", "v"};
            const float *mine[3] = {o.t[i].value, o.t[i].m, o.t[i].v};
            for (int q = 0; q < 3; q++) {
                char name[64];
                int64_t n;
                snprintf(name, sizeof name, "%s.%d.%d.%s", variant, k, i, what[q]);
                float *want = ref_tensor(&r, name, &n);
                assert_non_null(want);
                assert_int_equal(n, o.t[i].n);
                diff d = {0};
                compare(&d, mine[q], want, n, q == 0 ? 0 : MOMENT_FLOOR);
                double tol = q == 0 ? tol_value : tol_moment;
                if (d.rel > tol)
                    fail_msg("%s update %d tensor %d %s: relative error %.3g > %.3g", variant, k, i,
                             what[q], d.rel, tol);
                out[q].rel = fmax(out[q].rel, d.rel);
                out[q].ulps = EFT_MAX(out[q].ulps, d.ulps);
                eft_free(want);
            }
        }
    }
    assert_int_equal(o.t[0].t, r.T);
    assert_int_equal(o.t[1].t, r.T - 1); /* skipped once */
    opt_adamw_free(&o);
    cfg_free(&c);
    for (int i = 0; i < r.n; i++) eft_free(val[i]), eft_free(grad[i]);
    ref_close(&r);
}

/* Values within 1e-6 relative of torch's after every update, moments too (relative to at least
 * a tenth of the tensor's largest moment). With eft's own clipping the moments get 3e-6: eft sums
 * the norm in double, torch in fp32, so the clipping factors differ in the last bits, and a
 * moment that cancels to a tenth of its terms shows that tenfold. */
static void test_torch_reference(void **state) {
    const struct {
        opt_kind kind;
        const char *variant;
    } runs[] = {{OPT_ADAMW_TORCH, "foreach"},
                {OPT_ADAMW_TORCH, "single"},
                {OPT_ADAMW_TORCH_FUSED, "fused"},
                {OPT_ADAMW_TORCH_FUSED, "foreach"}};
    for (size_t i = 0; i < EFT_ARRAY_LEN(runs); i++)
        for (int own = 0; own < 2; own++) {
            diff d[3];
            double norm_rel;
            replay(runs[i].kind, runs[i].variant, own, 1e-6, own ? 3e-6 : 1e-6, d, &norm_rel);
            print_message("%-17s vs torch %-7s (%s clip): value %.2g (%lld ulp), m %.2g (%lld "
                          "ulp), v %.2g (%lld ulp); norm %.2g\n",
                          runs[i].kind == OPT_ADAMW_TORCH ? "adamw_torch" : "adamw_torch_fused",
                          runs[i].variant, own ? "eft's" : "torch's", d[0].rel,
                          (long long)d[0].ulps, d[1].rel, (long long)d[1].ulps, d[2].rel,
                          (long long)d[2].ulps, norm_rel);
        }
}

/* ---- known answers and edge cases ---- */

/* The first update with warmup runs at lr 0: values stay, t, m, v advance; the second update
 * then uses t = 2. Checked against the formula in double. */
static void test_first_update_at_lr0(void **state) {
    for (int kind = OPT_ADAMW_TORCH; kind <= OPT_ADAMW_BNB32; kind++) {
        float x[2] = {0.75f, -2.0f}, g[2] = {0.5f, -0.25f};
        opt_param p = {LORA_A, x, g, 2};
        opt_hparams h = hp((opt_kind)kind, 0.01);
        opt_adamw o;
        opt_adamw_init(&o, &h, &p, 1);
        opt_adamw_step(&o, 0.0);
        assert_true(x[0] == 0.75f && x[1] == -2.0f);
        assert_int_equal(o.t[0].t, 1);
        assert_close(o.t[0].m[0], 0.1 * 0.5, 1e-7);
        assert_close(o.t[0].v[1], 0.001 * 0.0625, 1e-6);
        opt_adamw_step(&o, 1e-3);
        assert_int_equal(o.t[0].t, 2);
        for (int i = 0; i < 2; i++) {
            double gi = g[i], m = 0.1 * gi * 0.9 + 0.1 * gi,
                   v = 0.001 * gi * gi * 0.999 + 0.001 * gi * gi;
            double step = 1e-3 / (1 - 0.81) * m / (sqrt(v) / sqrt(1 - 0.999 * 0.999) + 1e-8);
            double pi = i ? -2.0 : 0.75;
            double want = kind == OPT_ADAMW_BNB32 ? (pi - step) * (1 - 1e-3 * 0.01)
                                                  : pi * (1 - 1e-3 * 0.01) - step;
            assert_close(x[i], want, 2e-7);
        }
        opt_adamw_free(&o);
    }
}

/* The decay order (training-math.md 5.3): torch decays before the step, p (1 - lr wd) - step,
 * bitsandbytes after it, (p - step)(1 - lr wd). The spec's example (lr 1e-3, wd 0.01) differs by
 * 1e-8, below fp32's resolution at 1; lr 0.1 and wd 0.5 make it 0.85 against 0.855. */
static void test_decay_order(void **state) {
    for (int kind = OPT_ADAMW_TORCH; kind <= OPT_ADAMW_BNB32; kind++) {
        float x = 1, g = 0.5f;
        opt_param p = {LORA_A, &x, &g, 1};
        opt_hparams h = hp((opt_kind)kind, 0.5);
        opt_adamw o;
        opt_adamw_init(&o, &h, &p, 1);
        opt_adamw_step(&o, 0.1);
        double step = 0.1 * 0.5 / (0.5 + 1e-8); /* the first update: m^ = g, v^ = g^2 */
        double want = kind == OPT_ADAMW_BNB32 ? (1 - step) * (1 - 0.05) : 1 * (1 - 0.05) - step;
        assert_close(x, want, 1e-7);
        opt_adamw_free(&o);
    }
}

/* eps is added after the bias correction of sqrt(v): with a gradient of the size of eps the
 * first step is lr g / (|g| + eps), not lr g / (|g| + eps / sqrt(1 - beta2)), 16 times smaller. */
static void test_eps_placement(void **state) {
    for (int kind = OPT_ADAMW_TORCH; kind <= OPT_ADAMW_BNB32; kind++) {
        float x = 1, g = 1e-8f;
        opt_param p = {LORA_A, &x, &g, 1};
        opt_hparams h = hp((opt_kind)kind, 0);
        opt_adamw o;
        opt_adamw_init(&o, &h, &p, 1);
        opt_adamw_step(&o, 1e-3);
        assert_close(1 - x, 1e-3 * 1e-8 / ((double)g + 1e-8), 1e-3); /* 5e-4, to 1e-7 abs */
        opt_adamw_free(&o);
    }
}

static void test_missing_gradient(void **state) {
    float a[3] = {1, 2, 3}, b[3] = {1, 2, 3}, ga[3] = {0.1f, 0.2f, 0.3f}, gb[3] = {1, 1, 1};
    opt_param p[2] = {{"a.weight", a, ga, 3}, {"b.weight", b, gb, 3}};
    opt_hparams h = hp(OPT_ADAMW_TORCH_FUSED, 0.1);
    opt_adamw o;
    opt_adamw_init(&o, &h, p, 2);
    o.t[1].grad = NULL;
    opt_adamw_step(&o, 1e-2);
    assert_int_equal(o.t[0].t, 1);
    assert_int_equal(o.t[1].t, 0);
    assert_true(b[0] == 1 && b[2] == 3 && o.t[1].m[0] == 0 && o.t[1].v[0] == 0);
    assert_true(a[0] != 1);
    float norm;
    assert_int_equal(opt_clip_grad_norm(&o, 0.0, &norm), 0); /* b is not counted */
    assert_close(norm, sqrt(0.01 + 0.04 + 0.09), 1e-7);
    o.t[1].grad = gb;
    opt_adamw_step(&o, 1e-2);
    assert_int_equal(o.t[1].t, 1); /* its first update: bias corrections with t = 1 */
    assert_close(b[0], 1 * (1 - 1e-3) - 1e-2, 1e-6);
    opt_adamw_free(&o);
    assert_int_equal(opt_adamw_state_bytes(OPT_ADAMW_TORCH_FUSED, "a.weight", 1000), 8000);
}

static void test_clip(void **state) {
    float g1[2] = {3, 0}, g2[1] = {4}, x1[2] = {0}, x2[1] = {0};
    opt_param p[2] = {{"a", x1, g1, 2}, {"b", x2, g2, 1}};
    opt_hparams h = hp(OPT_ADAMW_TORCH, 0);
    opt_adamw o;
    opt_adamw_init(&o, &h, p, 2);
    float norm;
    /* under the limit: gradients untouched, to the bit */
    assert_int_equal(opt_clip_grad_norm(&o, 10.0, &norm), 0);
    assert_true(norm == 5.0f && g1[0] == 3 && g2[0] == 4);
    /* no clipping at max_grad_norm 0, the norm is still reported */
    assert_int_equal(opt_clip_grad_norm(&o, 0.0, &norm), 0);
    assert_true(norm == 5.0f && g1[0] == 3);
    /* over it: every gradient times max / (norm + 1e-6), in fp32 as torch */
    assert_int_equal(opt_clip_grad_norm(&o, 1.0, &norm), 0);
    assert_true(norm == 5.0f); /* pre-clip */
    float coef = (1.0f / (5.0f + 1e-6f)) * 1.0f;
    assert_true(g1[0] == 3 * coef && g2[0] == 4 * coef && g1[1] == 0);
    assert_close(g1[0], 0.6, 1e-6);
    assert_int_equal(opt_clip_grad_norm(&o, 1.0, &norm), 0);
    assert_close(norm, 1.0, 1e-6);
    /* NaN and Inf: an error naming the tensor, and nothing scaled */
    g2[0] = NAN;
    g1[0] = 30;
    assert_int_equal(opt_clip_grad_norm(&o, 1.0, &norm), -1);
    assert_true(isnan(norm));
    assert_contains(eft_err_msg(), "the gradient norm is NaN: tensor b has a non-finite gradient");
    assert_true(g1[0] == 30);
    g2[0] = INFINITY;
    assert_int_equal(opt_clip_grad_norm(&o, 1.0, &norm), -1);
    assert_true(isinf(norm));
    assert_contains(eft_err_msg(), "the gradient norm is infinite: tensor b");
    eft_err_clear();
    opt_adamw_free(&o);
}

/* A tensor above the OpenMP threshold gives the same bits as the same elements in small tensors
 * (updated by one thread each). */
static void test_large_tensor(void **state) {
    enum { N = 100000, PARTS = 50 };
    float *big = eft_malloc(N * sizeof(float)), *small = eft_malloc(N * sizeof(float));
    float *gbig = eft_malloc(N * sizeof(float)), *gsmall = eft_malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) {
        big[i] = small[i] = sinf((float)i);
        gbig[i] = gsmall[i] = cosf((float)i * 0.37f) * 3;
    }
    for (int kind = OPT_ADAMW_TORCH; kind <= OPT_ADAMW_BNB32; kind++) {
        opt_param pb = {LORA_A, big, gbig, N}, ps[PARTS];
        for (int j = 0; j < PARTS; j++)
            ps[j] =
                (opt_param){LORA_A, small + j * (N / PARTS), gsmall + j * (N / PARTS), N / PARTS};
        opt_hparams h = hp((opt_kind)kind, 0.1);
        opt_adamw ob, os;
        opt_adamw_init(&ob, &h, &pb, 1);
        opt_adamw_init(&os, &h, ps, PARTS);
        for (int k = 0; k < 3; k++) {
            float nb, ns;
            assert_int_equal(opt_clip_grad_norm(&ob, 100.0, &nb), 0);
            assert_int_equal(opt_clip_grad_norm(&os, 100.0, &ns), 0);
            assert_close(nb, ns, 1e-6); /* sums in another order */
            memcpy(gbig, gsmall, N * sizeof(float));
            opt_adamw_step(&ob, 1e-3 * (k + 1));
            opt_adamw_step(&os, 1e-3 * (k + 1));
        }
        assert_memory_equal(big, small, N * sizeof(float));
        opt_adamw_free(&ob);
        opt_adamw_free(&os);
    }
    eft_free(big), eft_free(small), eft_free(gbig), eft_free(gsmall);
}

static void test_hparams_from_config(void **state) {
    eft_config c;
    opt_hparams h;
    assert_int_equal(cfg_load_string(&c, "learning_rate: 0.1\n", "c.yaml"), 0);
    assert_int_equal(opt_hparams_from_config(&c, &h), 0);
    assert_int_equal(h.kind, OPT_ADAMW_TORCH_FUSED); /* Axolotl's default */
    assert_true(h.beta1 == 0.9 && h.beta2 == 0.999 && h.eps == 1e-8 && h.weight_decay == 0);
    cfg_free(&c);
    assert_int_equal(cfg_load_string(&c,
                                     "optimizer: adamw_torch\nadam_beta2: 0.95\nweight_decay: "
                                     "0.01\nadam_epsilon: 1e-6\n",
                                     "c.yaml"),
                     0);
    assert_int_equal(opt_hparams_from_config(&c, &h), 0);
    assert_true(h.kind == OPT_ADAMW_TORCH && h.beta2 == 0.95 && h.weight_decay == 0.01 &&
                h.eps == 1e-6);
    cfg_free(&c);
    assert_int_equal(cfg_load_string(&c, "optimizer: paged_adamw_32bit\n", "c.yaml"), 0);
    assert_int_equal(opt_hparams_from_config(&c, &h), 0);
    assert_int_equal(h.kind, OPT_ADAMW_BNB32);
    cfg_free(&c);
    const struct {
        const char *name;
        opt_kind kind;
    } eight[] = {{"adamw_bnb_8bit", OPT_ADAMW_BNB_8BIT},
                 {"adamw_8bit", OPT_ADAMW_BNB_8BIT},
                 {"paged_adamw_8bit", OPT_ADAMW_BNB_8BIT},
                 {"adamw_torch_8bit", OPT_ADAMW_TORCHAO_8BIT},
                 {"ao_adamw_8bit", OPT_ADAMW_TORCHAO_8BIT}}; /* the config's alias */
    for (size_t i = 0; i < EFT_ARRAY_LEN(eight); i++) {
        char *text = eft_asprintf("optimizer: %s\n", eight[i].name);
        assert_int_equal(cfg_load_string(&c, text, "c.yaml"), 0);
        assert_int_equal(opt_hparams_from_config(&c, &h), 0);
        assert_int_equal(h.kind, eight[i].kind);
        cfg_free(&c);
        eft_free(text);
    }
    eft_err_clear();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decay_groups),
        cmocka_unit_test(test_torch_reference),
        cmocka_unit_test(test_first_update_at_lr0),
        cmocka_unit_test(test_decay_order),
        cmocka_unit_test(test_eps_placement),
        cmocka_unit_test(test_missing_gradient),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_large_tensor),
        cmocka_unit_test(test_hparams_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
