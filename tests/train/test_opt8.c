/* test_opt8.c: 8-bit AdamW (training-math.md 5). torchao's AdamW8bit against a run of it
 * (tests/data_files/optim/adamw8.safetensors, made by tools/make_optim8_reference.py): the maps
 * entry by entry, then values, codes, scales and moments after every update of a 10-update run
 * with weight decay and a first update at lr 0. bitsandbytes' kernel cannot run here (CUDA only),
 * so its arithmetic is checked against the spec's formulas with hand-computed cases: decay after
 * the step, scales not clamped, the sign fix, the NaN reset, the partial last block, ties to
 * even. Then the quantisers against brute force, a resume from saved state arrays, and the
 * state's size against the memory plan's. */
#include "support/test.h"

#include "base/err.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/g4_config.h"
#include "model/g4_init.h"
#include "model/g4_memory.h"
#include "model/g4_plan.h"
#include "train/opt_adamw.h"
#include "train/opt_adamw8.h"
#include "train/sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REF_FILE EFT_SOURCE_DIR "/tests/data_files/optim/adamw8.safetensors"
#define LORA_A                                                                                     \
    "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.default.weight"

static opt_hparams hp(opt_kind kind, double wd) {
    return (opt_hparams){
        .kind = kind, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = wd};
}

/* ---- the reference file ---- */

static st_archive *ref_open(cJSON **meta) {
    st_archive *a;
    if (st_open(&a, REF_FILE)) fail_msg("%s", eft_err_msg());
    const char *m = st_meta_get(a, 0, "reference");
    assert_non_null(m);
    *meta = eft_json_parse(m, strlen(m), "reference");
    assert_non_null(*meta);
    return a;
}

/* The tensor `name` as floats into x[n] (n checked). */
static void ref_f32(st_archive *a, const char *name, float *x, int64_t n) {
    const st_tensor *t;
    if (st_get(a, name, &t) || st_to_f32(t, x, (size_t)n)) fail_msg("%s", eft_err_msg());
}

static const uint8_t *ref_u8(st_archive *a, const char *name, int64_t n) {
    const st_tensor *t;
    if (st_get(a, name, &t)) fail_msg("%s", eft_err_msg());
    assert_true(t->dtype == ST_U8 && t->numel == n);
    return t->data;
}

/* The generator of make_optim8_reference.py: splitmix64 of (stream, update, tensor, element),
 * 24 random bits as a value in [-1, 1), times 2^-shift; exact in fp32. */
static uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float gen(uint64_t stream, int k, int p, int64_t i, int shift) {
    uint64_t h = splitmix64(stream << 56 | (uint64_t)k << 48 | (uint64_t)p << 40 | (uint64_t)i);
    return ldexpf((float)((int64_t)(h >> 40) - (1 << 23)), -23 - shift);
}

static float ref_grad(int k, int p, int64_t i) {
    if (p == 0 && k <= 1 && i >= 3 * 256 && i < 4 * 256) return 0; /* a zero block */
    return gen(2, k, p, i, (int)((i / 256 + k) % 6));
}

static int64_t ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

/* ---- the maps ---- */

static void test_maps(void **state) {
    cJSON *meta;
    st_archive *a = ref_open(&meta);
    const char *cap = cJSON_GetObjectItem(meta, "cpu_capability")->valuestring;
    print_message("reference maps built with torch's %s kernels\n", cap);
    for (int s = 0; s < 2; s++) {
        float fused[256], plain[256], want_fused[256], want_plain[256];
        opt8_map_build(fused, s == 0, true);
        opt8_map_build(plain, s == 0, false);
        ref_f32(a, s == 0 ? "qmap.signed" : "qmap.unsigned", want_fused, 256);
        ref_f32(a, s == 0 ? "qmap.signed.default" : "qmap.unsigned.default", want_plain, 256);
        /* AVX2 and AVX-512 torch builds each point with one fused multiply-add; the portable
         * kernels with the spec's formula. */
        assert_true(strcmp(cap, "AVX2") == 0 || strcmp(cap, "AVX512") == 0);
        assert_memory_equal(fused, want_fused, sizeof fused);
        assert_memory_equal(plain, want_plain, sizeof plain);
        int differ = 0, two = 0;
        for (int j = 0; j < 256; j++) {
            assert_true(ulps(fused[j], plain[j]) <= 2); /* a point's ulp, through a mean */
            differ += fused[j] != plain[j];
            two += ulps(fused[j], plain[j]) == 2;
            if (j) assert_true(fused[j] > fused[j - 1]); /* sorted, no duplicate */
        }
        print_message("%s map: %d of 256 entries differ between the two (%d by two ulps)\n",
                      s == 0 ? "signed" : "unsigned", differ, two);
        assert_int_equal(differ, s == 0 ? 42 : 31);
    }
    /* The spec's anchors (training-math.md 5.2), the same in both. */
    float q[256], u[256];
    opt8_map_build(q, true, true);
    opt8_map_build(u, false, true);
    assert_true(q[0] == -0x1.fc6666p-1f && q[127] == 0 && q[255] == 1);
    assert_true(q[126] == -0x1.27476ep-21f && q[128] == 0x1.27476ep-21f);
    for (int j = 1; j <= 127; j++) assert_true(q[127 - j] == -q[127 + j]);
    assert_true(u[0] == 0 && u[1] == 0x1.5cf754p-22f && u[254] == 0x1.fe3334p-1f && u[255] == 1);
    /* eft's optimizer starts with the fused maps */
    opt_adamw o;
    opt_hparams h = hp(OPT_ADAMW_TORCHAO_8BIT, 0);
    opt_adamw_init(&o, &h, NULL, 0);
    assert_memory_equal(o.map_m, q, sizeof q);
    assert_memory_equal(o.map_v, u, sizeof u);
    opt_adamw_free(&o);
    cJSON_Delete(meta);
    st_close(a);
}

/* ---- the quantisers against their definitions, by brute force ---- */

static int brute_torchao(const float *q, float x) {
    int c = 0;
    for (int j = 0; j < 256; j++)
        if (q[j] <= x) c = j;
    int up = c < 255 ? c + 1 : 255;
    return x - q[c] >= (q[up] - q[c]) * 0.5f ? up : c;
}

static int brute_bnb(const float *q, float x) {
    int c = 0;
    for (int j = 0; j < 255; j++) {
        float mid = (q[j] + q[j + 1]) * 0.5f;
        if (x > mid) c = j + 1;
        if (x == mid) c = (j % 2 == 0) ? j : j + 1;
    }
    return c;
}

static void test_quantisers(void **state) {
    for (int s = 0; s < 2; s++) {
        float q[256];
        opt8_map_build(q, s == 0, true);
        int checked = 0, ties_differ = 0;
        for (int j = 0; j < 255; j++) {
            float mid = (q[j] + q[j + 1]) * 0.5f;
            float xs[] = {q[j],
                          nextafterf(q[j], 2),
                          mid,
                          nextafterf(mid, -2),
                          nextafterf(mid, 2),
                          q[j] + (q[j + 1] - q[j]) * 0.5f,
                          (q[j] * 3 + q[j + 1]) / 4};
            for (size_t i = 0; i < EFT_ARRAY_LEN(xs); i++, checked++) {
                assert_int_equal(opt8_code_torchao(q, xs[i]), brute_torchao(q, xs[i]));
                assert_int_equal(opt8_code_bnb(q, xs[i]), brute_bnb(q, xs[i]));
            }
            /* On a midpoint both agree is exact, torchao rounds up, bitsandbytes to even. */
            if (mid - q[j] == (q[j + 1] - q[j]) * 0.5f) {
                assert_int_equal(opt8_code_torchao(q, mid), j + 1);
                assert_int_equal(opt8_code_bnb(q, mid), j % 2 ? j + 1 : j);
                ties_differ += j % 2 == 0;
            }
        }
        assert_true(checked > 1700 && ties_differ > 50);
        /* outside the map, and NaN */
        assert_int_equal(opt8_code_torchao(q, -3), 0);
        assert_int_equal(opt8_code_bnb(q, -3), 0);
        assert_int_equal(opt8_code_torchao(q, 3), 255);
        assert_int_equal(opt8_code_bnb(q, 3), 255);
        assert_int_equal(opt8_code_torchao(q, NAN), 0);
    }
}

/* ---- torchao against its own run ---- */

typedef struct stats {
    double value_rel;     /* largest relative difference of a value */
    int64_t value_same;   /* values equal to the bit */
    int64_t values;       /* values compared */
    int64_t codes_differ; /* codes one step off (on a rounding boundary) */
    int64_t codes;        /* codes compared */
    double scale_rel;     /* largest relative difference of a block scale */
    double moment_steps;  /* largest moment difference, in quantisation steps */
} stats;

/* The distance between q[c] and its neighbours, the larger one: one quantisation step. */
static float step_at(const float *q, int c) {
    float lo = c > 0 ? q[c] - q[c - 1] : 0, hi = c < 255 ? q[c + 1] - q[c] : 0;
    return fmaxf(lo, hi);
}

/* Codes and scales of one 8-bit moment against the reference; moments compared dequantised. */
static void compare_q8(stats *st, const uint8_t *code, const float *scale, const uint8_t *want,
                       const float *want_scale, const float *q, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++)
        st->scale_rel = fmax(st->scale_rel, fabs((double)scale[b] - want_scale[b]) /
                                                fmax(fabs(want_scale[b]), 1e-30));
    for (int64_t e = 0; e < n; e++, st->codes++) {
        if (code[e] == want[e]) continue;
        assert_true(abs((int)code[e] - (int)want[e]) == 1); /* a boundary: one step, never more */
        st->codes_differ++;
        float s = want_scale[e / 256];
        double d = fabs((double)q[code[e]] * scale[e / 256] - (double)q[want[e]] * s);
        st->moment_steps = fmax(st->moment_steps, d / (step_at(q, want[e]) * s));
    }
}

static void compare_values(stats *st, const float *x, const float *want, int64_t n) {
    double big = 0;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        /* relative, to at least a thousandth of the tensor's largest value (a value that crosses
         * zero carries the error of the larger terms it is the difference of) */
        double rel = fabs((double)x[i] - want[i]) / fmax(fabs(want[i]), 1e-3 * big);
        st->value_rel = fmax(st->value_rel, rel);
        st->value_same += x[i] == want[i];
        st->values++;
    }
}

static void test_torchao_reference(void **state) {
    cJSON *meta;
    st_archive *a = ref_open(&meta);
    const cJSON *names = cJSON_GetObjectItem(meta, "names");
    const int np = cJSON_GetArraySize(names);
    assert_int_equal(np, 3);
    int64_t T;
    assert_int_equal(eft_json_int(meta, "updates", &T, "reference"), 0);
    float *val[3], *grad[3];
    int64_t n[3];
    opt_param p[3];
    for (int i = 0; i < np; i++) {
        const cJSON *shape = cJSON_GetArrayItem(cJSON_GetObjectItem(meta, "shapes"), i);
        n[i] = 1;
        for (int d = 0; d < cJSON_GetArraySize(shape); d++)
            n[i] *= (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble;
        val[i] = eft_malloc((size_t)n[i] * sizeof(float));
        grad[i] = eft_malloc((size_t)n[i] * sizeof(float));
        for (int64_t e = 0; e < n[i]; e++) val[i][e] = gen(1, 0, i, e, 1);
        const char *name = cJSON_GetArrayItem(names, i)->valuestring;
        p[i] = (opt_param){name, val[i], grad[i], n[i]};
        bool decays = cJSON_IsTrue(cJSON_GetArrayItem(cJSON_GetObjectItem(meta, "decays"), i));
        assert_int_equal(opt_decays(name), decays);
    }
    opt_hparams h = hp(OPT_ADAMW_TORCHAO_8BIT, 0.1);
    opt_adamw o;
    opt_adamw_init(&o, &h, p, np);
    /* the reference's own tables, the same as eft's on this kind of machine (test_maps) */
    ref_f32(a, "qmap.signed", o.map_m, 256);
    ref_f32(a, "qmap.unsigned", o.map_v, 256);
    assert_non_null(o.t[0].m_code); /* 4096 elements: 8-bit */
    assert_true(!o.t[1].m_code && !o.t[2].m_code);

    eft_config c;
    assert_int_equal(cfg_load_string(&c, "learning_rate: 0.01\nlr_scheduler: cosine\n", "c.yaml"),
                     0);
    sched s;
    assert_int_equal(sched_from_config(&s, &c, 2, T), 0);
    stats st = {0};
    float *m = eft_malloc((size_t)n[0] * sizeof(float)), *v = eft_malloc((size_t)n[0] * 4);
    float *want = eft_malloc((size_t)n[0] * sizeof(float));
    for (int k = 0; k < T; k++) {
        for (int i = 0; i < np; i++) {
            bool missing = k == 4 && i == 1;
            o.t[i].grad = missing ? NULL : grad[i];
            for (int64_t e = 0; e < n[i]; e++) grad[i][e] = ref_grad(k, i, e);
        }
        double lr = opt_adamw_lr(&o, s.lr, sched_lambda(&s, k));
        double want_lr = cJSON_GetArrayItem(cJSON_GetObjectItem(meta, "lrs"), k)->valuedouble;
        assert_true(lr == want_lr); /* the fp32 tensor's value, to the bit */
        opt_adamw_step(&o, lr);
        for (int i = 0; i < np; i++) {
            char key[64];
            snprintf(key, sizeof key, "ao.%d.%d.value", k, i);
            ref_f32(a, key, want, n[i]);
            stats one = {0};
            compare_values(&one, val[i], want, n[i]);
            if (one.value_rel > 1e-6)
                fail_msg("update %d tensor %d: values differ by %.3g relative", k, i,
                         one.value_rel);
            st.value_rel = fmax(st.value_rel, one.value_rel);
            st.value_same += one.value_same, st.values += one.values;
            if (o.t[i].m_code) {
                float sm[16], sv[16];
                snprintf(key, sizeof key, "ao.%d.%d.m.scale", k, i);
                ref_f32(a, key, sm, n[i] / 256);
                snprintf(key, sizeof key, "ao.%d.%d.v.scale", k, i);
                ref_f32(a, key, sv, n[i] / 256);
                snprintf(key, sizeof key, "ao.%d.%d.m.codes", k, i);
                compare_q8(&st, o.t[i].m_code, o.t[i].m_absmax, ref_u8(a, key, n[i]), sm, o.map_m,
                           n[i]);
                snprintf(key, sizeof key, "ao.%d.%d.v.codes", k, i);
                compare_q8(&st, o.t[i].v_code, o.t[i].v_absmax, ref_u8(a, key, n[i]), sv, o.map_v,
                           n[i]);
                continue;
            }
            for (int q = 0; q < 2; q++) { /* fp32 state: as close as the values */
                snprintf(key, sizeof key, "ao.%d.%d.%s", k, i, q ? "v" : "m");
                ref_f32(a, key, want, n[i]);
                stats ms = {0};
                compare_values(&ms, q ? o.t[i].v : o.t[i].m, want, n[i]);
                assert_true(ms.value_rel <= 1e-6);
            }
        }
    }
    assert_true(o.t[0].t == T && o.t[1].t == T - 1 && o.t[2].t == T);
    /* torchao's own dequantisation of its last state is map[code] * scale, one fp32 product, as
     * eft's opt_adamw_moments computes it */
    for (int q = 0; q < 2; q++) {
        char key[64];
        float scale[16];
        const float *map = q ? o.map_v : o.map_m;
        snprintf(key, sizeof key, "ao.%d.0.%s.dequant", (int)T - 1, q ? "v" : "m");
        ref_f32(a, key, want, n[0]);
        snprintf(key, sizeof key, "ao.%d.0.%s.scale", (int)T - 1, q ? "v" : "m");
        ref_f32(a, key, scale, n[0] / 256);
        snprintf(key, sizeof key, "ao.%d.0.%s.codes", (int)T - 1, q ? "v" : "m");
        const uint8_t *code = ref_u8(a, key, n[0]);
        for (int64_t e = 0; e < n[0]; e++) m[e] = map[code[e]] * scale[e / 256];
        assert_memory_equal(m, want, (size_t)n[0] * sizeof(float));
    }
    print_message("torchao AdamW8bit, %d updates: values %.2g relative (%lld of %lld to the "
                  "bit), codes %lld of %lld one step off, scales %.2g, moments %.2g steps\n",
                  (int)T, st.value_rel, (long long)st.value_same, (long long)st.values,
                  (long long)st.codes_differ, (long long)st.codes, st.scale_rel, st.moment_steps);
    assert_true(st.codes_differ * 1000 <= st.codes); /* boundary cases: at most 0.1% */
    assert_true(st.scale_rel <= 1e-6 && st.moment_steps <= 1.0 + 1e-6);
    opt_adamw_free(&o);
    cfg_free(&c);
    for (int i = 0; i < np; i++) eft_free(val[i]), eft_free(grad[i]);
    eft_free(m), eft_free(v), eft_free(want);
    cJSON_Delete(meta);
    st_close(a);
}

/* ---- which tensors are quantised, and the state's size ---- */

static void test_quantised_and_bytes(void **state) {
    const opt_kind ao = OPT_ADAMW_TORCHAO_8BIT, bnb = OPT_ADAMW_BNB_8BIT;
    assert_false(opt8_quantised(ao, LORA_A, 4095));
    assert_true(opt8_quantised(ao, LORA_A, 4096));
    assert_false(opt8_quantised(ao, LORA_A, 4100)); /* not a multiple of 256: fp32 for torchao */
    assert_true(opt8_quantised(bnb, LORA_A, 4100)); /* bitsandbytes: a partial last block */
    assert_false(opt8_quantised(bnb, LORA_A, 4095));
    assert_false(opt8_quantised(OPT_ADAMW_TORCH_FUSED, LORA_A, 1 << 20));
    assert_false(opt8_quantised(bnb, "model.language_model.embed_tokens.weight", 1 << 20));
    assert_false(opt8_quantised(bnb, "model.language_model.embed_tokens_per_layer.weight", 8192));
    assert_true(opt8_quantised(ao, "model.language_model.embed_tokens.weight", 1 << 20));
    assert_true(opt8_quantised(bnb, "model.language_model.my_embed_tokens.weight", 8192));
    assert_int_equal(opt_adamw_state_bytes(ao, LORA_A, 4096), 2 * 4096 + 2 * 16 * 4);
    assert_int_equal(opt_adamw_state_bytes(ao, LORA_A, 4100), 8 * 4100);
    assert_int_equal(opt_adamw_state_bytes(bnb, LORA_A, 4100), 2 * 4100 + 2 * 17 * 4);
    assert_int_equal(opt_adamw_state_bytes(bnb, LORA_A, 100), 800);
    /* ... and that is what the optimizer keeps: the bytes of its state arrays */
    static float x[4096 + 4100 + 100];
    for (int kind = OPT_ADAMW_TORCH; kind <= OPT_ADAMW_BNB_8BIT; kind++) {
        opt_param p[3] = {{LORA_A, x, NULL, 4096}, {LORA_A, x, NULL, 4100}, {LORA_A, x, NULL, 100}};
        opt_hparams h = hp((opt_kind)kind, 0);
        opt_adamw o;
        opt_adamw_init(&o, &h, p, 3);
        for (int i = 0; i < 3; i++) {
            opt_state_array sa[OPT_STATE_ARRAYS];
            int64_t bytes = 0;
            for (int j = 0, na = opt_tensor_state(&o.t[i], sa); j < na; j++)
                bytes += sa[j].n * (sa[j].u8 ? 1 : 4);
            assert_int_equal(bytes, opt_adamw_state_bytes((opt_kind)kind, LORA_A, p[i].n));
        }
        opt_adamw_free(&o);
    }

    /* The memory plan's optimizer figure is the sum over the adapter's tensors, LoRA A [r, in]
     * and B [out, r] of every targeted linear map: a 31B-shaped tiny model with r = 136 has
     * tensors of each kind (2176: fp32; 6528: 8-bit for bitsandbytes only; 13056: both). */
    const g4_preset *pre = g4_preset_find("tiny-31b");
    char *json = g4_preset_config_json(pre, true, 384);
    cJSON *root = eft_json_parse(json, strlen(json), "config.json");
    g4_config mc;
    assert_int_equal(g4_config_parse(&mc, root, "config.json"), 0);
    g4_plan plan;
    g4_tensors ts;
    g4_plan_build(&plan, &mc);
    g4_tensors_build(&plan, &ts);
    const struct {
        opt_kind kind;
        g4_optim optim;
    } kinds[] = {{OPT_ADAMW_TORCH_FUSED, G4_OPTIM_ADAMW},
                 {ao, G4_OPTIM_ADAMW_8BIT_TORCHAO},
                 {bnb, G4_OPTIM_ADAMW_8BIT}};
    int64_t bytes[3];
    for (size_t k = 0; k < EFT_ARRAY_LEN(kinds); k++) {
        g4_run_shape rs;
        g4_run_shape_default(&rs);
        rs.seq_len = 64, rs.micro_batch = 1, rs.lora_r = 136, rs.threads = 1;
        rs.lora_targets = G4_TARGET_LINEAR;
        rs.optim = kinds[k].optim;
        g4_memory mem;
        assert_int_equal(g4_memory_plan(&plan, &ts, &rs, &mem), 0);
        int64_t want = 0;
        for (int i = 0; i < ts.n; i++) {
            const g4_tensor *t = &ts.t[i];
            if (!(g4_target_bit(t->linear) & rs.lora_targets)) continue;
            want += opt_adamw_state_bytes(kinds[k].kind, LORA_A, rs.lora_r * t->in) +
                    opt_adamw_state_bytes(kinds[k].kind, LORA_A, t->out * rs.lora_r);
        }
        assert_int_equal(mem.optim, want);
        bytes[k] = want;
    }
    assert_true(bytes[2] < bytes[1] && bytes[1] < bytes[0]);
    g4_tensors_free(&ts);
    g4_plan_free(&plan);
    g4_config_free(&mc);
    cJSON_Delete(root);
    eft_free(json);
}

/* ---- bitsandbytes, against the spec's formulas ---- */

enum { NQ = 4096 };

/* A bitsandbytes 8-bit optimizer over one tensor of n elements. */
static void bnb_init(opt_adamw *o, float *x, float *g, int64_t n, double wd) {
    opt_param p = {LORA_A, x, g, n};
    opt_hparams h = hp(OPT_ADAMW_BNB_8BIT, wd);
    opt_adamw_init(o, &h, &p, 1);
    assert_non_null(o->t[0].m_code);
}

/* The first update from zero state, computed in double: m = 0.1 g, v = 0.001 g^2, the step
 * lr (m / c1) / (sqrt(v) / c2 + eps) with c1 = 0.1, c2 = sqrt(0.001); bitsandbytes decays after
 * it, torchao before. */
static double first_update(double x, double g, double lr, double wd, bool decay_after) {
    double m = 0.1 * g, v = 0.001 * g * g, c2 = sqrt(1 - 0.999);
    double step = lr * (m / 0.1) / (sqrt(v) / c2 + 1e-8);
    return decay_after ? (x - step) * (1 - lr * wd) : x * (1 - lr * wd) - step;
}

static void test_bnb_update(void **state) {
    static float x[NQ], g[NQ], xa[NQ];
    for (int i = 0; i < NQ; i++) x[i] = xa[i] = 1.0f + (float)(i % 7) / 8, g[i] = 0.5f;
    for (int i = 256; i < 512; i++) g[i] = 0; /* block 1: all zero */
    g[1000] = -1e-9f;                         /* rounds to the zero code: the sign fix */
    g[1001] = 1e-9f;                          /* rounds to the zero code, stays there */
    g[1002] = -0.25f;
    opt_adamw o, oa;
    bnb_init(&o, x, g, NQ, 0.5);
    opt_param pa = {LORA_A, xa, g, NQ};
    opt_hparams ha = hp(OPT_ADAMW_TORCHAO_8BIT, 0.5);
    opt_adamw_init(&oa, &ha, &pa, 1);
    opt_adamw_step(&o, 0.1);
    opt_adamw_step(&oa, 0.1);
    const opt_tensor *t = &o.t[0];
    for (int i = 0; i < NQ; i += 97) {
        double x0 = 1.0 + (double)(i % 7) / 8;
        assert_close(x[i], first_update(x0, g[i], 0.1, 0.5, true), 2e-7);
        /* torchao's bias corrections are fp32: 1 - 0.999f is 1.3e-5 off 0.001 */
        assert_close(xa[i], first_update(x0, g[i], 0.1, 0.5, false), 1e-6);
    }
    /* the decay order shows: (1 - 0.05)(1.5 - 0.1) against 1.5 (1 - 0.05) - 0.1 */
    assert_close(x[4], 1.33, 1e-6);
    assert_close(xa[4], 1.325, 1e-6);
    /* block 1 had zero gradients: decayed only, and its scales stay 0 (torchao clamps to 1e-12) */
    assert_close(x[300], (1.0 + 6.0 / 8) * 0.95, 1e-7);
    assert_true(t->m_absmax[1] == 0 && t->v_absmax[1] == 0);
    assert_true(oa.t[0].m_absmax[1] == 1e-12f && oa.t[0].v_absmax[1] == 1e-12f);
    /* absmax: the block's largest |m| and |v|, to the fp32 bit */
    const float m0 = (1.0f - 0.9f) * 0.5f, v0 = ((1.0f - 0.999f) * 0.5f) * 0.5f;
    assert_true(t->m_absmax[0] == m0 && t->v_absmax[0] == v0);
    assert_true(t->m_code[0] == 255 && t->v_code[0] == 255);
    /* the sign fix: a tiny negative m takes code 126, just below 0; torchao keeps 127 (0) */
    assert_int_equal(t->m_code[1000], 126);
    assert_int_equal(oa.t[0].m_code[1000], 127);
    assert_int_equal(t->m_code[1001], 127);
    float m[NQ], v[NQ];
    opt_adamw_moments(&o, 0, m, v);
    assert_true(m[1000] < 0 && m[1000] == o.map_m[126] * t->m_absmax[3]);
    assert_true(fabs(m[1002] + 0.025) < 0.01 * 0.025); /* within a quantisation step of 0.1 g */
    assert_true(fabs(v[1002] - 0.001 * 0.0625) < 0.01 * 0.001 * 0.0625);
    opt_adamw_free(&o);
    opt_adamw_free(&oa);
}

/* A NaN or infinite gradient resets that element's moments and leaves its value; the others go
 * on as usual. */
static void test_bnb_nonfinite(void **state) {
    static float x[NQ], g[NQ];
    for (int i = 0; i < NQ; i++) x[i] = 1, g[i] = (i % 2) ? 0.5f : -0.5f;
    opt_adamw o;
    bnb_init(&o, x, g, NQ, 0.0);
    opt_adamw_step(&o, 1e-3);
    float before = x[10], other = x[12];
    g[10] = NAN, g[11] = INFINITY;
    opt_adamw_step(&o, 1e-3);
    assert_true(x[10] == before);
    assert_true(x[12] != other);
    float m[NQ], v[NQ];
    opt_adamw_moments(&o, 0, m, v);
    assert_true(m[10] == 0 && v[10] == 0 && m[11] == 0 && v[11] == 0);
    assert_true(m[12] != 0 && v[12] != 0);
    assert_true(isfinite(o.t[0].m_absmax[0]) && isfinite(o.t[0].v_absmax[0]));
    opt_adamw_free(&o);
}

/* The first warmup update runs at lr 0: values stay, t and the moments advance. Then a tensor
 * whose last block is partial: 4100 elements, 17 blocks, the last of 4. Its padding lanes enter
 * the maximum with m = 0.9 * q[128] * absmax (code 128 dequantised, then decayed). */
static void test_bnb_lr0_and_partial_block(void **state) {
    enum { N = 4100 };
    static float x[N], g[N], x0[N];
    for (int i = 0; i < N; i++) x[i] = x0[i] = (float)i / N, g[i] = 0.25f;
    opt_adamw o;
    bnb_init(&o, x, g, N, 0.1);
    opt_tensor *t = &o.t[0];
    opt_adamw_step(&o, 0.0);
    assert_memory_equal(x, x0, sizeof x);
    assert_int_equal(t->t, 1);
    assert_true(t->m_absmax[16] == (1.0f - 0.9f) * 0.25f);
    opt_adamw_step(&o, 1e-3);
    /* the second update, in double: m = 0.19 g, v = 0.001999 g^2, c1 = 0.19, c2^2 = 0.001999 */
    double m = 0.19 * 0.25, v = (0.001 * 0.999 + 0.001) * 0.0625;
    double step = 1e-3 * (m / 0.19) / (sqrt(v) / sqrt(1 - 0.999 * 0.999) + 1e-8);
    for (int i = 4096; i < N; i++) assert_close(x[i], (x0[i] - step) * (1 - 1e-4), 3e-7);
    /* the last block's moments all 0 (code 127), its scale 1; a zero gradient keeps m = 0 */
    for (int i = 4096; i < N; i++) t->m_code[i] = 127, g[i] = 0;
    t->m_absmax[16] = 1.0f;
    opt_adamw_step(&o, 1e-3);
    assert_true(t->m_absmax[16] == fabsf((o.map_m[128] * 1.0f) * 0.9f));
    float mm[N], vv[N];
    opt_adamw_moments(&o, 0, mm, vv);
    for (int i = 4096; i < N; i++) assert_true(mm[i] == 0);
    opt_adamw_free(&o);
}

/* ---- resume ---- */

/* Saving every state array and t, then restoring them into a fresh optimizer, continues to the
 * bit, for both 8-bit kinds and their fp32 fallbacks. */
static void test_resume(void **state) {
    enum { NA = 4096, NB = 4100, NC = 96 };
    for (int kind = OPT_ADAMW_TORCHAO_8BIT; kind <= OPT_ADAMW_BNB_8BIT; kind++) {
        static float x1[NA + NB + NC], x2[NA + NB + NC], g[NA + NB + NC];
        for (int i = 0; i < NA + NB + NC; i++) x1[i] = x2[i] = gen(3, 0, 0, i, 0);
        const int64_t n[3] = {NA, NB, NC}, off[3] = {0, NA, NA + NB};
        opt_param p1[3], p2[3];
        for (int i = 0; i < 3; i++) {
            p1[i] = (opt_param){LORA_A, x1 + off[i], g + off[i], n[i]};
            p2[i] = (opt_param){LORA_A, x2 + off[i], g + off[i], n[i]};
        }
        opt_hparams h = hp((opt_kind)kind, 0.01);
        opt_adamw a, b;
        opt_adamw_init(&a, &h, p1, 3);
        for (int k = 0; k < 5; k++) {
            if (k == 3) { /* "checkpoint": b starts from a's state arrays */
                opt_adamw_init(&b, &h, p2, 3);
                memcpy(x2, x1, sizeof x1);
                for (int i = 0; i < 3; i++) {
                    opt_state_array sa[OPT_STATE_ARRAYS], sb[OPT_STATE_ARRAYS];
                    int na = opt_tensor_state(&a.t[i], sa), nb = opt_tensor_state(&b.t[i], sb);
                    assert_int_equal(na, nb);
                    assert_int_equal(na, a.t[i].m_code ? 4 : 2);
                    for (int j = 0; j < na; j++) {
                        assert_string_equal(sa[j].key, sb[j].key);
                        assert_true(sa[j].u8 == sb[j].u8 && sa[j].n == sb[j].n);
                        memcpy(sb[j].data, sa[j].data, (size_t)sa[j].n * (sa[j].u8 ? 1 : 4));
                    }
                    b.t[i].t = a.t[i].t;
                }
            }
            for (int i = 0; i < NA + NB + NC; i++) g[i] = gen(4, k, 0, i, k % 3);
            opt_adamw_step(&a, 1e-3);
            if (k >= 3) opt_adamw_step(&b, 1e-3);
        }
        assert_memory_equal(x1, x2, sizeof x1);
        for (int i = 0; i < 3; i++) {
            static float ma[NB], va[NB], mb[NB], vb[NB];
            opt_adamw_moments(&a, i, ma, va);
            opt_adamw_moments(&b, i, mb, vb);
            assert_memory_equal(ma, mb, (size_t)n[i] * 4);
            assert_memory_equal(va, vb, (size_t)n[i] * 4);
        }
        /* which state each tensor got: torchao keeps 4100 in fp32, bitsandbytes does not */
        assert_true(a.t[0].m_code && !a.t[2].m_code);
        assert_true(kind == OPT_ADAMW_BNB_8BIT ? a.t[1].m_code != NULL : a.t[1].m_code == NULL);
        opt_adamw_free(&a);
        opt_adamw_free(&b);
    }
}

/* A tensor above the OpenMP threshold gives the bits of the same blocks as small tensors. */
static void test_large_tensor(void **state) {
    enum { N = 65536, PARTS = 16 };
    float *big = eft_malloc(N * 4), *small = eft_malloc(N * 4), *g = eft_malloc(N * 4);
    for (int kind = OPT_ADAMW_TORCHAO_8BIT; kind <= OPT_ADAMW_BNB_8BIT; kind++) {
        for (int i = 0; i < N; i++) big[i] = small[i] = gen(5, 0, 0, i, 0);
        opt_param pb = {LORA_A, big, g, N}, ps[PARTS];
        for (int j = 0; j < PARTS; j++)
            ps[j] = (opt_param){LORA_A, small + j * (N / PARTS), g + j * (N / PARTS), N / PARTS};
        opt_hparams h = hp((opt_kind)kind, 0.1);
        opt_adamw ob, os;
        opt_adamw_init(&ob, &h, &pb, 1);
        opt_adamw_init(&os, &h, ps, PARTS);
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < N; i++) g[i] = gen(6, k, 0, i, i % 5);
            opt_adamw_step(&ob, 1e-3 * (k + 1));
            opt_adamw_step(&os, 1e-3 * (k + 1));
        }
        assert_memory_equal(big, small, N * 4);
        for (int j = 0; j < PARTS; j++)
            assert_memory_equal(ob.t[0].m_code + j * (N / PARTS), os.t[j].m_code, N / PARTS);
        opt_adamw_free(&ob);
        opt_adamw_free(&os);
    }
    eft_free(big), eft_free(small), eft_free(g);
}

/* torchao's learning rate is an fp32 tensor that the scheduler multiplies in fp32. */
static void test_lr(void **state) {
    opt_adamw o;
    opt_hparams h = hp(OPT_ADAMW_TORCHAO_8BIT, 0);
    opt_adamw_init(&o, &h, NULL, 0);
    assert_true(opt_adamw_lr(&o, 2e-4, 1.0) == 0.00019999999494757503); /* the logged value */
    assert_true(opt_adamw_lr(&o, 1e-2, 0.5) == (double)(0.01f * 0.5f));
    o.h.kind = OPT_ADAMW_BNB_8BIT;
    assert_true(opt_adamw_lr(&o, 2e-4, 1.0) == 2e-4);
    assert_true(opt_adamw_lr(&o, 1e-2, 0.3) == 1e-2 * 0.3);
    opt_adamw_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_quantisers),
        cmocka_unit_test(test_torchao_reference),
        cmocka_unit_test(test_quantised_and_bytes),
        cmocka_unit_test(test_bnb_update),
        cmocka_unit_test(test_bnb_nonfinite),
        cmocka_unit_test(test_bnb_lr0_and_partial_block),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_large_tensor),
        cmocka_unit_test(test_lr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
