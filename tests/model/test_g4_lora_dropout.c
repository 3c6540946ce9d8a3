/* test_g4_lora_dropout.c: LoRA dropout. The mask is drawn again from (key, module, element) in
 * the backward, so the adapter gradients must be those of the loss with that same mask: checked
 * against finite differences; the mask must change with the key and vanish in evaluation; the
 * base path never sees it; recompute changes no bit. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/rng.h"
#include "model/g4_desc.h"
#include "model/g4_init.h"
#include "model/g4_model.h"
#include "model/g4_weights.h"
#include "peft/lora.h"

#include <math.h>
#include <string.h>

enum { T = 24 };

typedef struct fx {
    char *dir;
    g4_desc d;
    g4_weights w;
    lora_adapter a;
    int32_t ids[T], pos[T], target[T];
    g4_batch b;
} fx;

static void fx_open(fx *f, double dropout) {
    f->dir = test_tmpdir("lora-dropout");
    char *model = eft_path_join(f->dir, "model");
    assert_int_equal(g4_init_checkpoint(g4_preset_find("tiny-31b"), model, 3, false, 0), 0);
    assert_int_equal(g4_desc_load(&f->d, model), 0);
    assert_int_equal(g4_weights_load(&f->w, &f->d.plan, &f->d.ts, model, false), 0);
    bool *sel = eft_calloc((size_t)f->d.ts.n, sizeof *sel);
    for (int i = 0; i < f->d.ts.n; i++)
        sel[i] = f->d.ts.t[i].linear == G4_LIN_Q || f->d.ts.t[i].linear == G4_LIN_DOWN;
    /* A small scale keeps the loss near-quadratic in A and B, so that central differences with a
     * step fp32 can resolve are accurate (nn.Linear-style init makes B non-zero). */
    lora_spec spec = {
        .r = 4, .alpha = 0.25, .dropout = dropout, .init = LORA_INIT_LINEAR, .train = true};
    assert_int_equal(lora_attach(&f->a, &f->w, sel, &spec, 11), 0);
    eft_free(sel);
    for (int t = 0; t < T; t++) {
        f->ids[t] = 3 + (t * 37) % 120;
        f->pos[t] = t;
    }
    for (int t = 0; t < T; t++) f->target[t] = t + 1 < T ? f->ids[t + 1] : -100;
    f->b = (g4_batch){T, f->ids, f->pos, f->target, NULL, 1};
    eft_free(model);
}

static void fx_close(fx *f) {
    lora_detach(&f->a);
    g4_weights_free(&f->w);
    g4_desc_free(&f->d);
    test_tmpdir_cleanup(f->dir);
}

static double loss_of(g4_model *m, const g4_batch *b) {
    int64_t n;
    return g4_forward(m, b, &n);
}

static void gradient_check(double p) {
    fx f;
    fx_open(&f, p);
    g4_model m;
    g4_model_init(&m, &f.d.plan, &f.w, T, false);
    m.dropout_key = 1234;
    g4_weights_zero_grad(&f.w);
    loss_of(&m, &f.b);
    g4_backward(&m, &f.b, 1.0);
    /* Directional central differences: along a random direction u of each adapter tensor,
     * (L(x + h u) - L(x - h u)) / 2h must equal grad . u. A direction sums many elements' terms,
     * so the signal stands well above the fp32 noise of the loss. */
    eft_rng r;
    eft_rng_seed(&r, 5, 0);
    for (int which = 0; which < f.a.n_tensors; which++) {
        const lora_tensor *lt = &f.a.tensors[which];
        float *saved = eft_malloc((size_t)lt->numel * sizeof(float));
        float *u = eft_malloc((size_t)lt->numel * sizeof(float));
        memcpy(saved, lt->data, (size_t)lt->numel * sizeof(float));
        double an = 0;
        for (int64_t e = 0; e < lt->numel; e++) {
            u[e] = (float)eft_rng_normal(&r);
            an += (double)lt->grad[e] * u[e];
        }
        const float h = 5e-4f; /* the loss curves fast along some directions */
        for (int64_t e = 0; e < lt->numel; e++) lt->data[e] = saved[e] + h * u[e];
        double up = loss_of(&m, &f.b);
        for (int64_t e = 0; e < lt->numel; e++) lt->data[e] = saved[e] - h * u[e];
        double down = loss_of(&m, &f.b);
        memcpy(lt->data, saved, (size_t)lt->numel * sizeof(float));
        double fd = (up - down) / (2.0 * h);
        if (!(fabs(fd - an) <= 1e-2 * fabs(fd) + 5e-3))
            fail_msg("%s: backward %g along a random direction, finite difference %g", lt->name, an,
                     fd);
        eft_free(saved);
        eft_free(u);
    }
    g4_model_free(&m);
    fx_close(&f);
}

static void test_gradient_without_dropout(void **state) {
    gradient_check(0.0);
}
static void test_gradient_matches_masked_loss(void **state) {
    gradient_check(0.4);
}

static void test_mask_follows_key_and_mode(void **state) {
    fx f;
    fx_open(&f, 0.4);
    g4_model m;
    g4_model_init(&m, &f.d.plan, &f.w, T, false);
    m.dropout_key = 1;
    double a1 = loss_of(&m, &f.b), a2 = loss_of(&m, &f.b);
    assert_true(a1 == a2); /* the same key draws the same mask */
    m.dropout_key = 2;
    double b = loss_of(&m, &f.b);
    assert_true(a1 != b); /* another key, another mask */
    lora_set_train(&f.a, false);
    double e1 = loss_of(&m, &f.b);
    m.dropout_key = 3;
    assert_true(loss_of(&m, &f.b) == e1); /* evaluation: no mask at all */
    lora_set_train(&f.a, true);
    g4_model_free(&m);
    fx_close(&f);
}

static void test_recompute_same_bits(void **state) {
    fx f;
    fx_open(&f, 0.25);
    float *g[2];
    for (int pass = 0; pass < 2; pass++) {
        g4_model m;
        g4_model_init(&m, &f.d.plan, &f.w, T, pass == 1);
        m.dropout_key = 99;
        g4_weights_zero_grad(&f.w);
        loss_of(&m, &f.b);
        g4_backward(&m, &f.b, 1.0);
        const lora_tensor *lt = &f.a.tensors[0];
        g[pass] = eft_malloc((size_t)lt->numel * sizeof(float));
        memcpy(g[pass], lt->grad, (size_t)lt->numel * sizeof(float));
        g4_model_free(&m);
    }
    assert_memory_equal(g[0], g[1], (size_t)f.a.tensors[0].numel * sizeof(float));
    eft_free(g[0]);
    eft_free(g[1]);
    fx_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_without_dropout),
        cmocka_unit_test(test_gradient_matches_masked_loss),
        cmocka_unit_test(test_mask_follows_key_and_mode),
        cmocka_unit_test(test_recompute_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
