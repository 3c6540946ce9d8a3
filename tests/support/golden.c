/* golden.c: the comparison behind every golden test (see golden.h). */
#include "support/golden.h"
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static double rel_l2(const st_tensor *e, const st_tensor *r) {
    assert_int_equal(e->numel, r->numel);
    double *a = as_f64(e), *b = as_f64(r), num = 0, den = 0;
    for (int64_t k = 0; k < r->numel; k++) num += (a[k] - b[k]) * (a[k] - b[k]), den += b[k] * b[k];
    eft_free(a);
    eft_free(b);
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

/* Logits: reference [R, Tmax, V] (rows zero-padded), eft [N, V] (rows end to end). */
static void check_logits(st_archive *ref, st_archive *logits, const char *stem) {
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
}

/* Every gradient the reference has, eft has under the same name, and no other. */
static void check_grads(st_archive *ref, st_archive *grads, const char *stem) {
    int n_ref = 0;
    for (size_t i = 0; i < st_count(ref); i++) {
        const st_tensor *r = st_at(ref, i);
        if (strncmp(r->name, "grad.", 5)) continue;
        n_ref++;
        const st_tensor *e = st_find(grads, r->name + 5);
        if (!e) fail_msg("%s: eft has no gradient for %s", stem, r->name + 5);
        double rel = rel_l2(e, r);
        if (!(rel <= 1e-4))
            fail_msg("%s: gradient of %s: relative L2 error %g", stem, e->name, rel);
    }
    assert_true(n_ref > 0);
    assert_int_equal((int)st_count(grads), n_ref);
}

static void check_same_bits(st_archive *a, st_archive *b, const char *stem) {
    assert_int_equal(st_count(a), st_count(b));
    for (size_t i = 0; i < st_count(a); i++) {
        const st_tensor *x = st_at(a, i), *y = st_at(b, i);
        assert_string_equal(x->name, y->name);
        if (memcmp(x->data, y->data, x->nbytes))
            fail_msg("%s: recompute changed the gradient of %s", stem, x->name);
    }
}

void golden_check(const char *preset, const char *init_flags, const char *stem,
                  const char *adapter) {
    golden_check_flags(preset, init_flags, stem, adapter, "");
}

void golden_check_flags(const char *preset, const char *init_flags, const char *stem,
                        const char *adapter, const char *loss_flags) {
    char *gdir = eft_path_join(EFT_SOURCE_DIR, "tests/data_files/golden");
    char *tmp = test_tmpdir(stem);
    char *ref_path = eft_asprintf("%s/%s.safetensors", gdir, stem);
    st_archive *ref;
    assert_int_equal(st_open(&ref, ref_path), 0);
    const char *seed = st_meta_get(ref, 0, "seed");
    assert_non_null(seed);
    char *cmd = eft_asprintf("init-model --preset %s --out %s/model --seed %s %s", preset, tmp,
                             seed, init_flags);
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);

    char *with = adapter ? eft_asprintf("--adapter %s/%s", gdir, adapter) : eft_strdup("");
    char *out = NULL, *err = NULL;
    cmd = eft_asprintf("debug loss --model %s/model %s %s --input %s/rows.jsonl --dump-grads "
                       "%s/grads.safetensors --dump-logits %s/logits.safetensors",
                       tmp, with, loss_flags, gdir, tmp, tmp);
    if (test_run_eft(cmd, &out, &err)) fail_msg("eft debug loss failed: %s", err);
    eft_free(cmd);
    long tokens;
    double loss = parse_loss(out, &tokens);
    const char *nf4 = st_meta_get(ref, 0, "nf4_modules");
    if (nf4) {
        char *want = eft_asprintf("\"nf4_tensors\": %s,", nf4);
        assert_contains(out, want);
        eft_free(want);
    }
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
    check_logits(ref, logits, stem);
    check_grads(ref, grads, stem);
    st_close(ref);
    st_close(logits);

    cmd = eft_asprintf("debug loss --model %s/model %s %s --input %s/rows.jsonl --recompute "
                       "--dump-grads %s/grads_rc.safetensors",
                       tmp, with, loss_flags, gdir, tmp);
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);
    char *rc_path = eft_asprintf("%s/grads_rc.safetensors", tmp);
    st_archive *rcg;
    assert_int_equal(st_open(&rcg, rc_path), 0);
    check_same_bits(grads, rcg, stem);
    st_close(rcg);
    st_close(grads);
    eft_free(rc_path);
    eft_free(with);
    eft_free(ref_path);
    eft_free(grads_path);
    eft_free(logits_path);
    eft_free(gdir);
    test_tmpdir_cleanup(tmp);
}
