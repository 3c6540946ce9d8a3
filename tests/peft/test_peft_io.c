/* test_peft_io.c: PEFT adapter folders (src/peft/peft_io.h): a bit-exact round trip, the file
 * names, tensor names and config keys PEFT reads, target_modules kept as configured, a failed
 * save that leaves the old adapter in place, and the user errors of a bad folder. The tiny
 * presets' tensor lists stand in for a model: saving and loading touch names and shapes only.
 * (That PEFT itself loads what eft writes is test_peft_io_compat.c's job.) */
#include "support/bare_model.h"
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/half.h"
#include "io/config.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/g4_weights.h"
#include "peft/lora.h"
#include "peft/lora_target.h"
#include "peft/peft_io.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef bare_model model;

static int attached(const model *m) {
    int n = 0;
    for (int i = 0; i < m->d.ts.n; i++) n += m->w.params[i].lora != NULL;
    return n;
}

static const char *attn_mlp_regex = "model.language_model.layers.[\\d]+.(_checkpoint_wrapped_"
                                    "module.)?(mlp|self_attn).(up|down|gate|q|k|v|o)_proj";

/* An adapter with random A and B (init false) on every attention and MLP projection. */
static void make_adapter(model *m, lora_adapter *a, uint64_t seed) {
    assert_true(bare_model_select(m, attn_mlp_regex) > 0);
    lora_spec s = {4, 8.0, true, 0.05, LORA_INIT_LINEAR, true};
    assert_int_equal(lora_attach(a, &m->w, m->sel, &s, seed), 0);
}

static peft_config regex_config(void) {
    peft_config pc = {.r = 4,
                      .alpha = 8.0,
                      .dropout = 0.05,
                      .rslora = true,
                      .init = LORA_INIT_LINEAR,
                      .base_model = eft_strdup("google/gemma-4-31B"),
                      .target_regex = eft_strdup(attn_mlp_regex)};
    return pc;
}

static char *file_in(const char *dir, const char *name) {
    return eft_path_join(dir, name);
}

static char *slurp(const char *dir, const char *name) {
    char *p = file_in(dir, name);
    char *s = eft_read_file(p, NULL);
    assert_non_null(s);
    eft_free(p);
    return s;
}

static void save_ok(const char *dir, const lora_adapter *a, const peft_config *pc) {
    if (peft_save(dir, a, pc)) fail_msg("peft_save: %s", eft_err_msg());
}

/* Files compare equal byte for byte. */
static void assert_same_file(const char *d1, const char *d2, const char *name) {
    char *p1 = file_in(d1, name), *p2 = file_in(d2, name);
    size_t n1, n2;
    char *s1 = eft_read_file(p1, &n1), *s2 = eft_read_file(p2, &n2);
    assert_non_null(s1);
    assert_non_null(s2);
    if (n1 != n2 || memcmp(s1, s2, n1)) fail_msg("%s and %s differ", p1, p2);
    eft_free(s1), eft_free(s2), eft_free(p1), eft_free(p2);
}

static void test_round_trip(void **state) {
    model m1, m2;
    bare_model_preset(&m1, "tiny-31b", false);
    bare_model_preset(&m2, "tiny-31b", false);
    lora_adapter a, b;
    make_adapter(&m1, &a, 9);
    peft_config pc = regex_config(), pc2;
    char *dir = test_tmpdir("peft_round_trip"), *dir2 = eft_path_join(dir, "again");
    save_ok(dir, &a, &pc);
    if (peft_load(dir, &m2.w, true, &b, &pc2)) fail_msg("%s", eft_err_msg());
    /* Every value, bit for bit, on the same modules, with the same scale. */
    assert_int_equal(b.n_tensors, a.n_tensors);
    assert_int_equal(attached(&m2), a.n_modules);
    for (int i = 0; i < a.n_tensors; i++) {
        const lora_tensor *x = &a.tensors[i], *y = lora_find(&b, x->name);
        assert_non_null(y);
        assert_int_equal(y->numel, x->numel);
        assert_memory_equal(y->data, x->data, (size_t)x->numel * sizeof(float));
        assert_non_null(y->grad);
    }
    assert_true(b.scale == a.scale && b.scale == lora_scale(8, 4, true));
    assert_true(b.mods[0].dropout == 0.05f);
    assert_true(pc2.r == 4 && pc2.alpha == 8 && pc2.dropout == 0.05 && pc2.rslora);
    assert_int_equal(pc2.init, LORA_INIT_LINEAR);
    assert_string_equal(pc2.target_regex, attn_mlp_regex);
    assert_string_equal(pc2.base_model, "google/gemma-4-31B");
    /* Saving what was loaded writes the same two files. */
    save_ok(dir2, &b, &pc2);
    assert_same_file(dir, dir2, PEFT_WEIGHTS_NAME);
    assert_same_file(dir, dir2, PEFT_CONFIG_NAME);
    lora_detach(&b);
    assert_int_equal(attached(&m2), 0);
    peft_config_free(&pc2);
    peft_config_free(&pc);
    lora_detach(&a);
    eft_free(dir2);
    test_tmpdir_cleanup(dir);
    bare_model_free(&m1);
    bare_model_free(&m2);
}

static void assert_json_str(const cJSON *o, const char *key, const char *want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || strcmp(v->valuestring, want))
        fail_msg("adapter_config.json: %s is not \"%s\"", key, want);
}

static void assert_json_num(const cJSON *o, const char *key, double want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != want)
        fail_msg("adapter_config.json: %s is not %g", key, want);
}

static void assert_json_kind(const cJSON *o, const char *key, int type) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || (v->type & 0xff) != type) fail_msg("adapter_config.json: %s has the wrong type", key);
}

/* What PEFT's loader reads: file names, tensor names and dtypes, metadata, config keys. */
static void test_file_layout(void **state) {
    model m;
    bare_model_preset(&m, "tiny-31b", false);
    lora_adapter a;
    make_adapter(&m, &a, 1);
    peft_config pc = regex_config();
    char *dir = test_tmpdir("peft_layout");
    save_ok(dir, &a, &pc);

    char *st_path = file_in(dir, "adapter_model.safetensors");
    st_archive *ar;
    assert_int_equal(st_open(&ar, st_path), 0);
    assert_string_equal(st_meta_get(ar, 0, "format"), "pt");
    assert_int_equal((int)st_count(ar), a.n_tensors);
    /* 6 layers x (q, k, o, gate, up, down) + v on the 5 sliding ones (layer 5, the full one, is
     * k_eq_v: no v_proj). */
    assert_int_equal(a.n_modules, 6 * 6 + 5);
    const st_tensor *t = st_find(ar, "base_model.model.model.language_model.layers.5.self_attn."
                                     "q_proj.lora_B.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->shape[0], 8 * 12); /* full layer: nH x global head dim */
    assert_int_equal(t->shape[1], 4);
    assert_null(st_find(ar, "base_model.model.model.language_model.layers.5.self_attn.v_proj."
                            "lora_A.weight"));
    for (size_t i = 0; i < st_count(ar); i++) assert_null(strstr(st_at(ar, i)->name, "default"));
    st_close(ar);
    eft_free(st_path);

    char *text = slurp(dir, "adapter_config.json");
    /* json.dumps(indent=2, sort_keys=True): the first key, two spaces in. */
    assert_true(!strncmp(text, "{\n  \"alora_invocation_tokens\": null,\n", 37));
    /* The regex verbatim: the backslash escaped once, as Python writes it. */
    assert_contains(text, "\"target_modules\": \"model.language_model.layers.[\\\\d]+.");
    cJSON *o = eft_json_parse(text, strlen(text), "adapter_config.json");
    assert_non_null(o);
    assert_json_str(o, "peft_type", "LORA");
    assert_json_str(o, "task_type", "CAUSAL_LM");
    assert_json_str(o, "base_model_name_or_path", "google/gemma-4-31B");
    assert_json_str(o, "bias", "none");
    assert_json_str(o, "target_modules", attn_mlp_regex);
    assert_json_num(o, "r", 4);
    assert_json_num(o, "lora_alpha", 8);
    assert_json_num(o, "lora_dropout", 0.05);
    assert_json_kind(o, "fan_in_fan_out", cJSON_False);
    assert_json_kind(o, "inference_mode", cJSON_True);
    assert_json_kind(o, "init_lora_weights", cJSON_False);
    assert_json_kind(o, "use_rslora", cJSON_True);
    assert_json_kind(o, "use_dora", cJSON_False);
    assert_json_kind(o, "modules_to_save", cJSON_NULL);
    assert_json_kind(o, "target_parameters", cJSON_NULL);
    assert_json_kind(o, "rank_pattern", cJSON_Object);
    assert_json_kind(o, "alpha_pattern", cJSON_Object);
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "rank_pattern")->child);
    /* Keys in byte order, as sort_keys writes them. */
    int n = 0;
    for (const cJSON *k = o->child; k && k->next; k = k->next, n++)
        if (strcmp(k->string, k->next->string) >= 0)
            fail_msg("%s before %s", k->string, k->next->string);
    assert_int_equal(n + 1, 37); /* LoraConfig.to_dict() of PEFT 0.19.1, peft_version left out */
    cJSON_Delete(o);
    eft_free(text);

    /* A list is written as a list, and "int-valued" alpha as an int. */
    peft_config_free(&pc);
    pc = (peft_config){.r = 16, .alpha = 32.0, .init = LORA_INIT_DEFAULT};
    static const char *items[] = {"q_proj", "v_proj"};
    pc.target_list = (char **)items, pc.n_targets = 2;
    char *json = peft_config_json(&pc);
    assert_contains(json, "\"target_modules\": [\n    \"q_proj\",\n    \"v_proj\"\n  ],\n");
    assert_contains(json, "\"lora_alpha\": 32,\n");
    assert_contains(json, "\"lora_dropout\": 0.0,\n");
    assert_contains(json, "\"init_lora_weights\": true,\n");
    assert_contains(json, "\"base_model_name_or_path\": null,\n");
    eft_free(json);
    lora_detach(&a);
    test_tmpdir_cleanup(dir);
    bare_model_free(&m);
}

static int config_of(const char *yaml, eft_config *c) {
    char *text = eft_asprintf("base_model: google/gemma-4-E2B\ndatasets:\n  - path: d.jsonl\n"
                              "adapter: lora\nlora_r: 4\nlora_alpha: 8\nlearning_rate: 1e-4\n%s",
                              yaml);
    int rc = cfg_load_string(c, text, "t.yaml");
    eft_free(text);
    return rc;
}

/* target_modules as the run's config wrote it; exact module paths for lora_target_linear. */
static void test_config_from_run(void **state) {
    model m;
    bare_model_preset(&m, "tiny-e2b", false);
    eft_config c;
    lora_adapter a;
    peft_config pc;
    lora_spec s;
    const char *yaml[] = {
        "lora_target_modules: 'model.language_model.layers.[\\d]+.self_attn.(q|v)_proj'\n",
        "lora_target_modules: [q_proj, v_proj]\n",
        "lora_target_linear: true\npeft_init_lora_weights: gaussian\n",
    };
    for (int k = 0; k < 3; k++) {
        assert_int_equal(config_of(yaml[k], &c), 0);
        assert_int_equal(lora_spec_from_config(&s, &c), 0);
        assert_true(lora_select(&c, &m.d.ts, m.sel) > 0);
        assert_int_equal(lora_attach(&a, &m.w, m.sel, &s, 0), 0);
        peft_config_from_run(&pc, &c, &a);
        assert_string_equal(pc.base_model, "google/gemma-4-E2B");
        assert_true(pc.r == 4 && pc.alpha == 8);
        if (k == 0) {
            assert_string_equal(pc.target_regex,
                                "model.language_model.layers.[\\d]+.self_attn.(q|v)_proj");
        } else if (k == 1) {
            assert_null(pc.target_regex);
            assert_int_equal(pc.n_targets, 2);
            assert_string_equal(pc.target_list[1], "v_proj");
        } else {
            /* Every module with an adapter, by its path: PLE linears included. */
            assert_int_equal(pc.init, LORA_INIT_GAUSSIAN);
            assert_int_equal(pc.n_targets, a.n_modules);
            for (int i = 0; i < a.n_modules; i++)
                assert_string_equal(pc.target_list[i], a.tensors[2 * i].base->module);
            assert_string_equal(pc.target_list[0],
                                "model.language_model.per_layer_model_projection");
        }
        peft_config_free(&pc);
        lora_detach(&a);
        cfg_free(&c);
    }
    bare_model_free(&m);
}

/* A save that fails while writing either file leaves the previous adapter as it was. */
static void test_atomic_save(void **state) {
    model m;
    bare_model_preset(&m, "tiny-31b", false);
    lora_adapter a1;
    make_adapter(&m, &a1, 1);
    peft_config pc = regex_config();
    char *dir = test_tmpdir("peft_atomic"), *ref = eft_path_join(dir, "ref"),
         *out = eft_path_join(dir, "out");
    save_ok(ref, &a1, &pc);
    save_ok(out, &a1, &pc);
    /* Other values, saved over it, into a folder where one temporary cannot be created. */
    lora_detach(&a1);
    lora_adapter a2;
    make_adapter(&m, &a2, 2);
    const char *names[] = {PEFT_CONFIG_NAME, PEFT_WEIGHTS_NAME};
    for (int k = 0; k < 2; k++) {
        char *blocker = eft_asprintf("%s/%s.tmp.%d", out, names[k], (int)getpid());
        assert_int_equal(mkdir(blocker, 0755), 0);
        assert_int_equal(peft_save(out, &a2, &pc), -1);
        assert_contains(eft_err_msg(), "saving the adapter to");
        eft_err_clear();
        assert_same_file(ref, out, PEFT_WEIGHTS_NAME);
        assert_same_file(ref, out, PEFT_CONFIG_NAME);
        char *other = eft_asprintf("%s/%s.tmp.%d", out, names[1 - k], (int)getpid());
        assert_false(eft_path_exists(other)); /* the other temporary was removed */
        eft_free(other);
        rmdir(blocker);
        eft_free(blocker);
    }
    /* Unblocked, the save goes through. */
    save_ok(out, &a2, &pc);
    char *p1 = file_in(ref, PEFT_WEIGHTS_NAME), *p2 = file_in(out, PEFT_WEIGHTS_NAME);
    size_t n1, n2;
    char *s1 = eft_read_file(p1, &n1), *s2 = eft_read_file(p2, &n2);
    assert_true(n1 == n2 && memcmp(s1, s2, n1) != 0);
    eft_free(s1), eft_free(s2), eft_free(p1), eft_free(p2);
    lora_detach(&a2);
    peft_config_free(&pc);
    eft_free(ref), eft_free(out);
    test_tmpdir_cleanup(dir);
    bare_model_free(&m);
}

/* ---- bad folders ---- */

/* One tensor of a hand-made adapter file. */
typedef struct tdesc {
    const char *module; /* after "base_model.model." */
    char which;         /* 'A' or 'B' */
    int64_t rows, cols;
    st_dtype dtype;
} tdesc;

static const char *q0 = "model.language_model.layers.0.self_attn.q_proj";
static const char *k0 = "model.language_model.layers.0.self_attn.k_proj";

/* Writes dir/adapter_config.json (when cfg_json) and dir/adapter_model.safetensors. */
static void write_folder(const char *dir, const char *cfg_json, const tdesc *t, int n) {
    eft_mkdirs(dir);
    if (cfg_json) {
        char *p = file_in(dir, PEFT_CONFIG_NAME);
        test_write_file(p, cfg_json);
        eft_free(p);
    }
    st_writer *w = st_writer_new();
    static float zeros[4096];
    char names[8][LORA_NAME_MAX];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], LORA_NAME_MAX, "base_model.model.%s.lora_%c.weight", t[i].module,
                 t[i].which);
        int64_t shape[2] = {t[i].rows, t[i].cols};
        assert_true(t[i].rows * t[i].cols * 4 <= (int64_t)sizeof zeros);
        st_writer_add(w, names[i], t[i].dtype, 2, shape, zeros);
    }
    st_writer_meta(w, "format", "pt");
    char *p = file_in(dir, PEFT_WEIGHTS_NAME);
    assert_int_equal(st_writer_write(w, p), 0);
    eft_free(p);
    st_writer_free(w);
}

static const char *cfg_qk = "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, "
                            "\"target_modules\": \"model.language_model.layers.0.self_attn."
                            "(q|k)_proj\"}";

/* q_proj [48, 16] and k_proj [24, 16] of layer 0 of tiny-31b, r = 2. */
static const tdesc good[] = {
    {"model.language_model.layers.0.self_attn.q_proj", 'A', 2, 16, ST_F32},
    {"model.language_model.layers.0.self_attn.q_proj", 'B', 48, 2, ST_F32},
    {"model.language_model.layers.0.self_attn.k_proj", 'A', 2, 16, ST_F32},
    {"model.language_model.layers.0.self_attn.k_proj", 'B', 24, 2, ST_F32},
};

/* Loads `dir` onto a fresh tiny-31b; expects failure with `want` in the message and nothing
 * attached. */
static void expect_error(const char *dir, const char *want) {
    model m;
    bare_model_preset(&m, "tiny-31b", false);
    lora_adapter a;
    peft_config pc;
    if (peft_load(dir, &m.w, false, &a, &pc) == 0)
        fail_msg("%s: loaded, expected \"%s\"", dir, want);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), want);
    eft_err_clear();
    assert_int_equal(attached(&m), 0);
    bare_model_free(&m);
}

static void test_errors(void **state) {
    char *root = test_tmpdir("peft_errors");
    char *d = eft_path_join(root, "x");
    tdesc t[4];

    /* The good folder loads, with PEFT's defaults for what it leaves out. */
    write_folder(d, cfg_qk, good, 4);
    model m;
    bare_model_preset(&m, "tiny-31b", false);
    lora_adapter a;
    peft_config pc;
    if (peft_load(d, &m.w, false, &a, &pc)) fail_msg("%s", eft_err_msg());
    assert_int_equal(a.n_modules, 2);
    assert_true(a.scale == 2.0f && !pc.rslora && pc.dropout == 0 && pc.init == LORA_INIT_DEFAULT);
    assert_null(a.tensors[0].grad);
    lora_detach(&a);
    peft_config_free(&pc);
    bare_model_free(&m);

    eft_remove_tree(d);
    write_folder(d, NULL, good, 4);
    expect_error(d, "x/adapter_config.json: not found");

    eft_remove_tree(d);
    write_folder(d, "{\"peft_type\": \"LOHA\", \"r\": 2, \"target_modules\": [\"q_proj\"]}", good,
                 4);
    expect_error(d, "x/adapter_config.json: peft_type is \"LOHA\"; eft reads LoRA adapters");

    eft_remove_tree(d);
    write_folder(d,
                 "{\"peft_type\": \"LORA\", \"r\": 2, \"use_dora\": true, "
                 "\"target_modules\": [\"q_proj\"]}",
                 good, 4);
    expect_error(d, "\"use_dora\" is set: DoRA");

    eft_remove_tree(d);
    write_folder(d, "{\"peft_type\": \"LORA\", \"r\": 2}", good, 4);
    expect_error(d, "target_modules is missing");

    /* Shape: k_proj's A with the wrong input width. */
    memcpy(t, good, sizeof good);
    t[2].cols = 17;
    eft_remove_tree(d);
    write_folder(d, cfg_qk, t, 4);
    expect_error(d,
                 "x/adapter_model.safetensors: tensor \"base_model.model.model.language_model."
                 "layers.0.self_attn.k_proj.lora_A.weight\" has shape [2, 17], expected [2, 16]");

    /* r in the config disagrees with the tensors. */
    eft_remove_tree(d);
    write_folder(d, "{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": [\"q_proj\"]}", good,
                 2);
    expect_error(d, "expected [4, 16] (r = 4 from adapter_config.json");

    /* A module the model lacks. */
    memcpy(t, good, sizeof good);
    t[2].module = t[3].module = "model.language_model.layers.9.self_attn.k_proj";
    eft_remove_tree(d);
    write_folder(d,
                 "{\"peft_type\": \"LORA\", \"r\": 2, \"target_modules\": [\"q_proj\", "
                 "\"k_proj\"]}",
                 t, 4);
    expect_error(d, "adapts model.language_model.layers.9.self_attn.k_proj, which this model "
                    "does not have");

    /* Missing B. */
    eft_remove_tree(d);
    write_folder(d, cfg_qk, good, 3);
    expect_error(d, "model.language_model.layers.0.self_attn.k_proj has lora_A but no lora_B");

    /* Unsupported dtype. */
    memcpy(t, good, sizeof good);
    t[1].dtype = ST_I32;
    eft_remove_tree(d);
    write_folder(d, cfg_qk, t, 4);
    expect_error(d, "is I32; adapter weights must be F32, BF16 or F16");

    /* The config targets k_proj, the file has no tensors for it. */
    eft_remove_tree(d);
    write_folder(d, cfg_qk, good, 2);
    expect_error(d, "selects model.language_model.layers.0.self_attn.k_proj, but the file has no");

    /* The file adapts a module the config does not target. */
    eft_remove_tree(d);
    write_folder(d, "{\"peft_type\": \"LORA\", \"r\": 2, \"target_modules\": [\"k_proj\"]}", good,
                 4);
    expect_error(d, "which target_modules in adapter_config.json does not select");

    /* Not a LoRA key at all. */
    memcpy(t, good, sizeof good);
    t[1].which = 'M'; /* "lora_M": stands for DoRA's magnitude vectors and other extras */
    eft_remove_tree(d);
    write_folder(d, cfg_qk, t, 2);
    expect_error(d, "is not a LoRA matrix eft reads");

    /* A pickle instead of safetensors. */
    eft_remove_tree(d);
    write_folder(d, cfg_qk, good, 4);
    char *st = file_in(d, PEFT_WEIGHTS_NAME), *bin = file_in(d, "adapter_model.bin");
    assert_int_equal(rename(st, bin), 0);
    expect_error(d, "adapter_model.bin (a pickle), which eft does not read");
    eft_free(st), eft_free(bin);

    eft_free(d);
    test_tmpdir_cleanup(root);
}

/* BF16 and F16 files load, widened exactly. */
static void test_half_dtypes(void **state) {
    char *dir = test_tmpdir("peft_bf16");
    eft_mkdirs(dir);
    char *p = file_in(dir, PEFT_CONFIG_NAME);
    test_write_file(p, cfg_qk);
    eft_free(p);
    uint16_t qa[2 * 16], qb[48 * 2], ka[2 * 16], kb[24 * 2];
    uint16_t *bufs[4] = {qa, qb, ka, kb};
    size_t lens[4] = {32, 96, 32, 48};
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < lens[k]; i++)
            bufs[k][i] = k < 2 ? eft_f32_to_bf16(0.01f * (float)(i + 1) * (k + 1))
                               : eft_f32_to_f16(-0.02f * (float)(i + 1));
    st_writer *w = st_writer_new();
    const char *mods[2] = {q0, k0};
    for (int k = 0; k < 4; k++) {
        char name[LORA_NAME_MAX];
        snprintf(name, sizeof name, "base_model.model.%s.lora_%c.weight", mods[k / 2],
                 k % 2 ? 'B' : 'A');
        int64_t shape[2] = {k % 2 ? (int64_t)lens[k] / 2 : 2, k % 2 ? 2 : 16};
        st_writer_add(w, name, k < 2 ? ST_BF16 : ST_F16, 2, shape, bufs[k]);
    }
    p = file_in(dir, PEFT_WEIGHTS_NAME);
    assert_int_equal(st_writer_write(w, p), 0);
    st_writer_free(w);
    eft_free(p);
    model m;
    bare_model_preset(&m, "tiny-31b", false);
    lora_adapter a;
    peft_config pc;
    if (peft_load(dir, &m.w, true, &a, &pc)) fail_msg("%s", eft_err_msg());
    for (int k = 0; k < 4; k++) {
        /* Tensor-list order: q (A, B), then k (A, B). */
        const lora_tensor *t = &a.tensors[k];
        for (size_t i = 0; i < lens[k]; i++) {
            float want = k < 2 ? eft_bf16_to_f32(bufs[k][i]) : eft_f16_to_f32(bufs[k][i]);
            assert_true(t->data[i] == want);
        }
    }
    lora_detach(&a);
    peft_config_free(&pc);
    bare_model_free(&m);
    test_tmpdir_cleanup(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_file_layout),
        cmocka_unit_test(test_config_from_run), cmocka_unit_test(test_atomic_save),
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_half_dtypes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
