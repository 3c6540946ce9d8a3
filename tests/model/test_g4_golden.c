/* test_g4_golden.c: eft's Gemma 4 against Hugging Face transformers, without Python.
 *
 * tools/make_golden.sh wrote tests/data_files/golden/<preset>.safetensors from transformers
 * (fp32, eager attention): the loss, the logits and every parameter's gradient for the packed
 * rows of rows.jsonl (three rows; documents of 9, 1 and 14 tokens; a document with every label
 * ignored; sequences longer than the sliding windows). Here eft rebuilds the same checkpoints
 * (`eft init-model`, same seed), runs the same rows through `eft debug loss`, and compares:
 * loss relative error <= 1e-5, logits max absolute error <= 1e-4, each gradient tensor's
 * relative L2 error <= 1e-4. Gradient checkpointing must change no bit.
 *
 * Each fixture's seed is recorded in its file: make_golden.py keeps only draws for which
 * transformers' own fp32 gradients are within 2e-5 of fp64, so that the tolerance measures eft.
 */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *golden_dir(void) {
    return eft_path_join(EFT_SOURCE_DIR, "tests/data_files/golden");
}

static double parse_loss(const char *out, long *tokens) {
    const char *l = strstr(out, "\"loss\": ");
    const char *t = strstr(out, "\"tokens\": ");
    assert_non_null(l);
    assert_non_null(t);
    *tokens = strtol(t + 10, NULL, 10);
    return strtod(l + 8, NULL);
}

static const st_tensor *get(st_archive *a, const char *name) {
    const st_tensor *t = st_find(a, name);
    if (!t) fail_msg("tensor %s missing", name);
    return t;
}

/* A float tensor widened to double (owned). */
static double *as_f64(const st_tensor *t) {
    double *v = eft_malloc((size_t)t->numel * sizeof(double));
    float *f = eft_malloc((size_t)t->numel * sizeof(float));
    assert_int_equal(st_to_f32(t, f, (size_t)t->numel), 0);
    for (int64_t i = 0; i < t->numel; i++) v[i] = f[i];
    eft_free(f);
    return v;
}

/* Runs one golden comparison: preset, extra init-model flags, golden file stem. The seed of the
 * checkpoint is the one tools/make_golden.py recorded in the file. */
static void check_golden(const char *preset, const char *flags, const char *stem) {
    char *gdir = golden_dir();
    char *tmp = test_tmpdir(stem);
    char *ref_path = eft_asprintf("%s/%s.safetensors", gdir, stem);
    st_archive *ref;
    assert_int_equal(st_open(&ref, ref_path), 0);
    const char *seed = st_meta_get(ref, 0, "seed");
    assert_non_null(seed);
    char *cmd = eft_asprintf("init-model --preset %s --out %s/model --seed %s %s", preset, tmp,
                             seed, flags);
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);

    char *out = NULL, *err = NULL;
    cmd = eft_asprintf("debug loss --model %s/model --input %s/rows.jsonl --dump-grads "
                       "%s/grads.safetensors --dump-logits %s/logits.safetensors",
                       tmp, gdir, tmp, tmp);
    int rc = test_run_eft(cmd, &out, &err);
    if (rc) fail_msg("eft debug loss failed: %s", err);
    eft_free(cmd);
    long tokens;
    double loss = parse_loss(out, &tokens);
    eft_free(out);
    eft_free(err);

    char *grads_path = eft_asprintf("%s/grads.safetensors", tmp);
    char *logits_path = eft_asprintf("%s/logits.safetensors", tmp);
    st_archive *grads, *logits;
    assert_int_equal(st_open(&grads, grads_path), 0);
    assert_int_equal(st_open(&logits, logits_path), 0);

    float ref_loss;
    int64_t ref_tokens;
    assert_int_equal(st_to_f32(get(ref, "loss"), &ref_loss, 1), 0);
    memcpy(&ref_tokens, get(ref, "tokens")->data, sizeof ref_tokens);
    assert_int_equal(tokens, ref_tokens);
    if (!(fabs(loss - ref_loss) <= 1e-5 * fabs(ref_loss)))
        fail_msg("%s: loss %.9g, transformers %.9g", stem, loss, (double)ref_loss);

    /* Logits: reference [R, Tmax, V] (rows zero-padded), eft [N, V] (rows end to end). */
    const st_tensor *rl = get(ref, "logits"), *el = get(logits, "logits");
    const st_tensor *lens = get(ref, "row_lengths");
    int64_t R = rl->shape[0], Tm = rl->shape[1], V = rl->shape[2];
    assert_int_equal(el->shape[1], V);
    assert_int_equal(lens->numel, R);
    double *rv = as_f64(rl), *ev = as_f64(el), worst = 0;
    int64_t off = 0;
    for (int64_t r = 0; r < R; r++) {
        int64_t len;
        memcpy(&len, (const char *)lens->data + 8 * r, sizeof len);
        for (int64_t t = 0; t < len; t++)
            for (int64_t v = 0; v < V; v++)
                worst = fmax(worst, fabs(ev[(off + t) * V + v] - rv[(r * Tm + t) * V + v]));
        off += len;
    }
    assert_int_equal(off, el->shape[0]);
    if (!(worst <= 1e-4)) fail_msg("%s: logits differ by %g", stem, worst);
    eft_free(rv);
    eft_free(ev);

    /* Every gradient transformers has, eft has, and no other. */
    int n_ref = 0;
    for (size_t i = 0; i < st_count(ref); i++) {
        const st_tensor *r = st_at(ref, i);
        if (strncmp(r->name, "grad.", 5)) continue;
        n_ref++;
        const st_tensor *e = st_find(grads, r->name + 5);
        if (!e) fail_msg("%s: eft has no gradient for %s", stem, r->name + 5);
        assert_int_equal(e->numel, r->numel);
        double *a = as_f64(e), *b = as_f64(r), num = 0, den = 0;
        for (int64_t k = 0; k < r->numel; k++)
            num += (a[k] - b[k]) * (a[k] - b[k]), den += b[k] * b[k];
        double rel = sqrt(num) / fmax(sqrt(den), 1e-30);
        if (!(rel <= 1e-4))
            fail_msg("%s: gradient of %s: relative L2 error %g", stem, e->name, rel);
        eft_free(a);
        eft_free(b);
    }
    assert_int_equal((int)st_count(grads), n_ref);
    st_close(ref);
    st_close(logits);

    /* Recompute (gradient checkpointing) changes no bit of the gradients. */
    cmd = eft_asprintf("debug loss --model %s/model --input %s/rows.jsonl --recompute "
                       "--dump-grads %s/grads_rc.safetensors",
                       tmp, gdir, tmp);
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);
    char *rc_path = eft_asprintf("%s/grads_rc.safetensors", tmp);
    st_archive *rcg;
    assert_int_equal(st_open(&rcg, rc_path), 0);
    assert_int_equal(st_count(rcg), st_count(grads));
    for (size_t i = 0; i < st_count(grads); i++) {
        const st_tensor *a = st_at(grads, i), *b = st_at(rcg, i);
        assert_string_equal(a->name, b->name);
        if (memcmp(a->data, b->data, a->nbytes))
            fail_msg("%s: recompute changed the gradient of %s", stem, a->name);
    }
    st_close(rcg);
    st_close(grads);
    eft_free(rc_path);
    eft_free(ref_path);
    eft_free(grads_path);
    eft_free(logits_path);
    eft_free(gdir);
    test_tmpdir_cleanup(tmp);
}

static void test_e2b(void **state) {
    check_golden("tiny-e2b", "", "tiny-e2b");
}
static void test_e2b_text(void **state) {
    check_golden("tiny-e2b", "--text-only", "tiny-e2b-text");
}
static void test_e4b(void **state) {
    check_golden("tiny-e4b", "", "tiny-e4b");
}
static void test_12b(void **state) {
    check_golden("tiny-12b", "", "tiny-12b");
}
static void test_31b(void **state) {
    check_golden("tiny-31b", "", "tiny-31b");
}
static void test_31b_text(void **state) {
    check_golden("tiny-31b", "--text-only", "tiny-31b-text");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2b), cmocka_unit_test(test_e2b_text),
        cmocka_unit_test(test_e4b), cmocka_unit_test(test_12b),
        cmocka_unit_test(test_31b), cmocka_unit_test(test_31b_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
