/* test_g4_weights.c: binding a checkpoint to the model: roles, storage, and the checkpoints a
 * loader must accept (redundant K/V of shared layers, vision tensors, F16) or refuse with a clear
 * message (a missing tensor, a wrong shape, an unreadable dtype). */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/half.h"
#include "io/safetensors.h"
#include "model/g4_config.h"
#include "model/g4_init.h"
#include "model/g4_internal.h"
#include "model/g4_plan.h"
#include "model/g4_weights.h"

#include <string.h>

typedef struct fx {
    char *dir;
    g4_config cfg;
    g4_plan plan;
    g4_tensors ts;
} fx;

static void fx_open(fx *f, const char *preset, const char *name) {
    f->dir = test_tmpdir(name);
    char *model = eft_path_join(f->dir, "model");
    assert_int_equal(g4_init_checkpoint(g4_preset_find(preset), model, 5, false, 0), 0);
    char *cfg = eft_path_join(model, "config.json");
    assert_int_equal(g4_config_load(&f->cfg, cfg), 0);
    g4_plan_build(&f->plan, &f->cfg);
    g4_tensors_build(&f->plan, &f->ts);
    eft_free(cfg);
    eft_free(model);
}

static void fx_close(fx *f) {
    g4_tensors_free(&f->ts);
    g4_plan_free(&f->plan);
    g4_config_free(&f->cfg);
    test_tmpdir_cleanup(f->dir);
}

/* Rewrites the fixture's checkpoint: drops `drop` (may be NULL), reshapes nothing, and adds the
 * extra tensors named in `extra` (bf16 zeros of shape [2, 3]); `f16` stores every tensor as F16.
 * Returns the new file's path (owned). */
static char *rewrite(fx *f, const char *drop, const char *const *extra, int n_extra, bool f16,
                     const char *reshape) {
    char *src = eft_asprintf("%s/model/model.safetensors", f->dir);
    st_archive *a;
    assert_int_equal(st_open(&a, src), 0);
    st_writer *w = st_writer_new();
    size_t n = st_count(a);
    uint16_t **conv = eft_calloc(n, sizeof *conv);
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_at(a, i);
        if (drop && !strcmp(t->name, drop)) continue;
        int64_t shape[ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (reshape && !strcmp(t->name, reshape)) shape[0] += 1, shape[t->ndim - 1] -= 1;
        if (f16) {
            conv[i] = eft_malloc((size_t)t->numel * 2);
            for (int64_t k = 0; k < t->numel; k++) {
                uint16_t b;
                memcpy(&b, (const char *)t->data + 2 * k, 2);
                conv[i][k] = eft_f32_to_f16(eft_bf16_to_f32(b));
            }
            st_writer_add(w, t->name, ST_F16, t->ndim, shape, conv[i]);
        } else {
            st_writer_add(w, t->name, t->dtype, t->ndim, shape, t->data);
        }
    }
    static const uint16_t zeros[6] = {0};
    const int64_t shape[2] = {2, 3};
    for (int i = 0; i < n_extra; i++) st_writer_add(w, extra[i], ST_BF16, 2, shape, zeros);
    char *out = eft_asprintf("%s/model/rewritten.safetensors", f->dir);
    assert_int_equal(st_writer_write(w, out), 0);
    st_writer_free(w);
    for (size_t i = 0; i < n; i++) eft_free(conv[i]);
    eft_free(conv);
    st_close(a);
    eft_free(src);
    return out;
}

static void test_roles_and_storage(void **state) {
    fx f;
    fx_open(&f, "tiny-e2b", "weights-roles");
    char *model = eft_path_join(f.dir, "model");
    g4_weights w;
    assert_int_equal(g4_weights_load(&w, &f.plan, &f.ts, model, false), 0);
    /* Every role bound where the layer has the tensor, NULL where it has not. */
    for (int l = 0; l < f.plan.L; l++) {
        const g4_layer_params *L = &w.layers[l];
        assert_non_null(L->q);
        assert_non_null(L->o);
        assert_non_null(L->down);
        assert_non_null(L->ple_gate);
        assert_non_null(L->layer_scalar);
        assert_true((L->k == NULL) == f.plan.layers[l].kv_shared);
        assert_true((L->k_norm == NULL) == f.plan.layers[l].kv_shared);
    }
    assert_non_null(w.ple_table);
    assert_null(w.lm_head); /* tied */
    /* Frozen matrices stay bf16 views of the mapping; norms are widened to fp32. */
    assert_int_equal(w.layers[0].q->w.dtype, OPS_W_BF16);
    assert_null(w.layers[0].q->f32);
    assert_non_null(w.layers[0].input_norm->f32);
    assert_null(w.layers[0].q->grad);
    /* layer_scalar differs from 1 in the presets (U(0.5, 1.5)). */
    float s = g4_layer_scalar(&w, 0);
    assert_true(s >= 0.5f && s <= 1.5f && s != 1.0f);
    g4_weights_free(&w);
    /* Full fine-tuning: fp32 masters and zeroed gradients, except the layer_scalar buffer. */
    assert_int_equal(g4_weights_load(&w, &f.plan, &f.ts, model, true), 0);
    assert_int_equal(w.layers[3].q->w.dtype, OPS_W_REAL);
    assert_non_null(w.layers[3].q->grad);
    assert_true(w.layers[3].q->grad[7] == 0.0f);
    assert_null(w.layers[3].layer_scalar->grad);
    g4_weights_free(&w);
    eft_free(model);
    fx_close(&f);
}

static void test_tolerated_extras(void **state) {
    fx f;
    fx_open(&f, "tiny-e2b", "weights-extras");
    /* Google's uploads carry K/V tensors for the KV-shared layers (5-9 here), and the towers. */
    const char *extra[] = {"model.language_model.layers.7.self_attn.k_proj.weight",
                           "model.language_model.layers.7.self_attn.v_proj.weight",
                           "model.language_model.layers.7.self_attn.k_norm.weight",
                           "model.vision_tower.encoder.layers.0.mlp.up_proj.linear.weight",
                           "model.audio_tower.output_proj.weight"};
    char *path = rewrite(&f, NULL, extra, 5, false, NULL);
    g4_weights w;
    assert_int_equal(g4_weights_load(&w, &f.plan, &f.ts, path, false), 0);
    g4_weights_free(&w);
    eft_free(path);
    /* F16 weights are widened to fp32 and give the same model (values are bf16 -> f16 exact
     * for these small magnitudes up to rounding: check binding, not values). */
    path = rewrite(&f, NULL, NULL, 0, true, NULL);
    assert_int_equal(g4_weights_load(&w, &f.plan, &f.ts, path, false), 0);
    assert_int_equal(w.layers[0].q->w.dtype, OPS_W_REAL);
    assert_non_null(w.layers[0].q->f32);
    g4_weights_free(&w);
    eft_free(path);
    fx_close(&f);
}

static void test_refused(void **state) {
    fx f;
    fx_open(&f, "tiny-31b", "weights-refused");
    g4_weights w;
    const char *victim = "model.language_model.layers.2.mlp.up_proj.weight";
    char *path = rewrite(&f, victim, NULL, 0, false, NULL);
    assert_int_equal(g4_weights_load(&w, &f.plan, &f.ts, path, false), -1);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), victim);
    assert_contains(eft_err_msg(), "rewritten.safetensors");
    eft_err_clear();
    eft_free(path);
    path = rewrite(&f, NULL, NULL, 0, false, victim);
    assert_int_equal(g4_weights_load(&w, &f.plan, &f.ts, path, false), -1);
    assert_contains(eft_err_msg(), "has shape [25, 15], but config.json gives [24, 16]");
    eft_err_clear();
    eft_free(path);
    char *none = eft_path_join(f.dir, "nowhere");
    assert_int_equal(g4_weights_load(&w, &f.plan, &f.ts, none, false), -1);
    assert_contains(eft_err_msg(), "nowhere");
    eft_err_clear();
    eft_free(none);
    fx_close(&f);
}

/* Activation memory grows linearly with the tokens of a batch, and the kernels' scratch (the
 * attention and loss tiles among it) not at all. */
static void test_memory_linear_in_tokens(void **state) {
    fx f;
    fx_open(&f, "tiny-31b", "weights-memory");
    char *model = eft_path_join(f.dir, "model");
    g4_weights w;
    assert_int_equal(g4_weights_load(&w, &f.plan, &f.ts, model, false), 0);
    g4_model a, b, c;
    g4_model_init(&a, &f.plan, &w, 256, false);
    g4_model_init(&b, &f.plan, &w, 512, false);
    g4_model_init(&c, &f.plan, &w, 1024, false);
    int64_t d1 = (int64_t)(b.acts.cap - a.acts.cap), d2 = (int64_t)(c.acts.cap - b.acts.cap);
    /* Twice as many tokens: twice the increment (up to 64-byte alignment per buffer). */
    assert_true(d2 >= 2 * d1 - 64 * 200 && d2 <= 2 * d1 + 64 * 200);
    assert_int_equal(g4_kernel_scratch_bytes(&a), g4_kernel_scratch_bytes(&c));
    g4_model_free(&a);
    g4_model_free(&b);
    g4_model_free(&c);
    g4_weights_free(&w);
    eft_free(model);
    fx_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_and_storage),
        cmocka_unit_test(test_tolerated_extras),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_memory_linear_in_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
