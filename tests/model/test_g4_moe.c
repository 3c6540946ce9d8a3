/* test_g4_moe.c: the mixture-of-experts layers of 26B-A4B (src/model/g4_moe.c).
 *
 * The golden test compares them with transformers; here their backward is checked against finite
 * differences of eft's own loss, tensor by tensor (router, per-expert scale, experts, the three
 * extra norms), with full fine-tuning and with LoRA on router.proj (all-linear LoRA wraps it, as
 * PEFT does). The loss is smooth only while no token changes its experts, so steps that flip
 * any top-k choice are made smaller (the routing is read back from the model's saved state).
 * The tensors checked are the last layer's: a change there leaves every earlier layer's bits as
 * they were, so the differences measure that layer and not the fp32 noise of the whole network
 * (an earlier layer's parameters move every later router too, and the tiny steps that keep
 * them leave the differences to that noise; the golden test covers every layer against
 * transformers). Recompute must change no bit, and the routing must really
 * vary: every expert gets tokens and tokens differ in their top-k.
 */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/rng.h"
#include "model/g4_desc.h"
#include "model/g4_init.h"
#include "model/g4_internal.h"
#include "model/g4_model.h"
#include "model/g4_weights.h"
#include "peft/lora.h"

#include <math.h>
#include <string.h>

enum { T = 32 };

typedef struct fx {
    char *dir;
    g4_desc d;
    g4_weights w;
    lora_adapter a;
    bool lora;
    int32_t ids[T], pos[T], target[T];
    g4_batch b;
} fx;

/* What the fixture trains: every weight, or LoRA on router.proj, or LoRA on the expert tensors
 * (PEFT's target_parameters). */
typedef enum { TRAIN_FULL, LORA_ROUTER, LORA_EXPERTS } train_mode;

static bool lora_selects(train_mode mode, const g4_tensor *t) {
    if (mode == LORA_ROUTER) return t->linear == G4_LIN_ROUTER;
    return t->linear == G4_LIN_EXPERTS_GATE_UP || t->linear == G4_LIN_EXPERTS_DOWN;
}

static void fx_open(fx *f, train_mode mode) {
    memset(f, 0, sizeof *f);
    f->dir = test_tmpdir("moe");
    char *model = eft_path_join(f->dir, "model");
    assert_int_equal(g4_init_checkpoint(g4_preset_find("tiny-26b-a4b"), model, 5, false, 0), 0);
    assert_int_equal(g4_desc_load(&f->d, model), 0);
    assert_int_equal(g4_weights_load(&f->w, &f->d.plan, &f->d.ts, model, mode == TRAIN_FULL), 0);
    if (mode != TRAIN_FULL) {
        bool *sel = eft_calloc((size_t)f->d.ts.n, sizeof *sel);
        for (int i = 0; i < f->d.ts.n; i++) sel[i] = lora_selects(mode, &f->d.ts.t[i]);
        lora_spec spec = {.r = 4, .alpha = 16, .init = LORA_INIT_LINEAR, .train = true};
        assert_int_equal(lora_attach(&f->a, &f->w, sel, &spec, 13), 0);
        eft_free(sel);
        f->lora = true;
    }
    for (int t = 0; t < T; t++) {
        f->ids[t] = 3 + (t * 53) % 120;
        f->pos[t] = t;
    }
    for (int t = 0; t < T; t++) f->target[t] = t + 1 < T ? f->ids[t + 1] : -100;
    f->b = (g4_batch){T, f->ids, f->pos, f->target, NULL, 1};
    eft_free(model);
}

static void fx_close(fx *f) {
    if (f->lora) lora_detach(&f->a);
    g4_weights_free(&f->w);
    g4_desc_free(&f->d);
    test_tmpdir_cleanup(f->dir);
}

static double loss_of(g4_model *m, const g4_batch *b) {
    int64_t n;
    return g4_forward(m, b, &n);
}

/* A model over the fixture's weights with the gradients of one forward and backward. */
static void model_with_grads(g4_model *m, fx *f, bool recompute) {
    g4_model_init(m, &f->d.plan, &f->w, T, recompute);
    g4_weights_zero_grad(&f->w);
    loss_of(m, &f->b);
    g4_backward(m, &f->b, 1.0);
}

/* Every layer's top-k choices of the last forward, [L][T*K]. */
static void routing(const g4_model *m, int32_t *out) {
    const g4_state *s = m->state;
    int K = m->plan->cfg->top_k_experts;
    for (int l = 0; l < m->plan->L; l++)
        memcpy(out + (size_t)l * T * K, s->layers[l].topk_idx, (size_t)T * K * sizeof(int32_t));
}

/* Central difference along a random direction u of data[numel] against grad . u. */
static void check_direction(g4_model *m, const g4_batch *b, const char *name, float *data,
                            const float *grad, int64_t numel, eft_rng *r) {
    size_t nr = (size_t)m->plan->L * T * m->plan->cfg->top_k_experts;
    int32_t *base = eft_malloc(nr * sizeof(int32_t)), *moved = eft_malloc(nr * sizeof(int32_t));
    double loss = fabs(loss_of(m, b));
    routing(m, base);
    float *saved = eft_malloc((size_t)numel * sizeof(float));
    float *u = eft_malloc((size_t)numel * sizeof(float));
    memcpy(saved, data, (size_t)numel * sizeof(float));
    /* u = the gradient's direction + a random one, each of rms 1: the first part makes the
     * directional derivative large against the loss's rounding noise (it checks the gradient's
     * size), the second checks its components. */
    double an = 0, un = 0, wn = 0, gn = 0;
    for (int64_t e = 0; e < numel; e++) gn += (double)grad[e] * grad[e];
    double galign = gn > 0 ? sqrt((double)numel / gn) : 0;
    for (int64_t e = 0; e < numel; e++) {
        u[e] = (float)(grad[e] * galign + eft_rng_normal(r));
        an += (double)grad[e] * u[e];
        un += (double)u[e] * u[e];
        wn += (double)saved[e] * saved[e];
    }
    /* Steps of 1% of the tensor's size (rms) first, smaller while one flips a top-k choice.
     * The loss carries fp32 rounding of a few ulps (~2e-6 at a loss of 5) into both ends, so
     * an absolute term of that over 2h joins the 2% relative tolerance. */
    double rms = fmax(sqrt(wn / (double)numel), 1e-2), noise = 4 * loss * 1.2e-7;
    for (double step = 1e-2 * rms;; step /= 4) {
        if (step < 1e-5 * rms) fail_msg("%s: every step tried flips some token's experts", name);
        const float h = (float)(step / sqrt(un / (double)numel));
        bool kept = true;
        for (int64_t e = 0; e < numel; e++) data[e] = saved[e] + h * u[e];
        double up = loss_of(m, b);
        routing(m, moved);
        kept &= !memcmp(base, moved, nr * sizeof(int32_t));
        for (int64_t e = 0; e < numel; e++) data[e] = saved[e] - h * u[e];
        double down = loss_of(m, b);
        routing(m, moved);
        kept &= !memcmp(base, moved, nr * sizeof(int32_t));
        memcpy(data, saved, (size_t)numel * sizeof(float));
        if (!kept) continue;
        double fd = (up - down) / (2.0 * h);
        if (!(fabs(fd - an) <= 2e-2 * fabs(fd) + noise / h))
            fail_msg("%s: backward %g along a random direction, finite difference %g (step %g)",
                     name, an, fd, step);
        break;
    }
    eft_free(saved);
    eft_free(u);
    eft_free(base);
    eft_free(moved);
}

static bool is_moe_tensor(const g4_tensor *t) {
    return t->group == G4_GROUP_MOE_ROUTER || t->group == G4_GROUP_MOE_EXPERTS ||
           strstr(t->name, "feedforward_layernorm_1") || strstr(t->name, "feedforward_layernorm_2");
}

static void test_full_gradients(void **state) {
    fx f;
    fx_open(&f, TRAIN_FULL);
    g4_model m;
    model_with_grads(&m, &f, false);
    eft_rng r;
    eft_rng_seed(&r, 9, 0);
    int checked = 0;
    for (int i = 0; i < f.d.ts.n; i++) {
        g4_param *p = &f.w.params[i];
        if (!is_moe_tensor(p->t) || p->t->layer != f.d.plan.L - 1) continue;
        assert_non_null(p->grad);
        check_direction(&m, &f.b, p->t->name, p->f32, p->grad, p->t->numel, &r);
        checked++;
    }
    assert_int_equal(checked, 8); /* proj, scale, per_expert_scale, 2 experts, 3 norms */
    g4_model_free(&m);
    fx_close(&f);
}

/* Checks the adapter tensors of the last layer. */
static void check_adapter(train_mode mode, int tensors_per_layer) {
    fx f;
    fx_open(&f, mode);
    assert_int_equal(f.a.n_tensors, tensors_per_layer * f.d.plan.L);
    g4_model m;
    model_with_grads(&m, &f, false);
    eft_rng r;
    eft_rng_seed(&r, 10, 0);
    for (int i = 0; i < f.a.n_tensors; i++) {
        const lora_tensor *lt = &f.a.tensors[i];
        if (lt->base->layer == f.d.plan.L - 1)
            check_direction(&m, &f.b, lt->name, lt->data, lt->grad, lt->numel, &r);
    }
    g4_model_free(&m);
    fx_close(&f);
}

static void test_router_lora_gradients(void **state) {
    check_adapter(LORA_ROUTER, 2); /* A and B of every router.proj */
}

/* Expert LoRA: one A [r*E, in] and B [out, r*E] per expert tensor, expert e's B in the strided
 * columns j*E + e: a wrong gather or scatter would fail here (the layout itself against PEFT is
 * the golden test's). */
static void test_expert_lora_gradients(void **state) {
    check_adapter(LORA_EXPERTS, 4);
}

static void test_recompute_same_bits(void **state) {
    fx f;
    fx_open(&f, TRAIN_FULL);
    const g4_param *p = f.w.layers[0].experts_gate_up;
    float *g[2];
    for (int pass = 0; pass < 2; pass++) {
        g4_model m;
        model_with_grads(&m, &f, pass == 1);
        g[pass] = eft_malloc((size_t)p->t->numel * sizeof(float));
        memcpy(g[pass], p->grad, (size_t)p->t->numel * sizeof(float));
        g4_model_free(&m);
    }
    assert_memory_equal(g[0], g[1], (size_t)p->t->numel * sizeof(float));
    eft_free(g[0]);
    eft_free(g[1]);
    fx_close(&f);
}

/* The tiny model's routing is not degenerate: every expert of layer 0 receives a gradient (it
 * was chosen by some token) and not all tokens pick the same experts. */
static void test_routing_spreads(void **state) {
    fx f;
    fx_open(&f, TRAIN_FULL);
    g4_model m;
    model_with_grads(&m, &f, false);
    const g4_param *down = f.w.layers[0].experts_down;
    int E = f.d.cfg.num_experts;
    int64_t per = down->t->numel / E;
    int used = 0;
    for (int x = 0; x < E; x++) {
        double n = 0;
        for (int64_t e = 0; e < per; e++) n += fabs(down->grad[x * per + e]);
        used += n > 0;
    }
    assert_true(used >= E / 2);
    assert_true(used < E || f.d.cfg.top_k_experts * T >= E);
    g4_model_free(&m);
    fx_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_gradients),        cmocka_unit_test(test_router_lora_gradients),
        cmocka_unit_test(test_expert_lora_gradients), cmocka_unit_test(test_recompute_same_bits),
        cmocka_unit_test(test_routing_spreads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
