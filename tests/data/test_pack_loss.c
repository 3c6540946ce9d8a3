/* test_pack_loss.c: the loss of a packed micro-batch equals the losses of its documents run one
 * by one, on tiny random Gemma 4 models (KV sharing and PLE in tiny-e2b; k_eq_v in tiny-31b),
 * with documents longer than the sliding window. This is what packing must preserve: attention
 * stays inside each document (found from the position ids restarting), and the last token of a
 * document is never trained to predict the first token of the next (its first label is masked).
 * The same holds for an unpacked micro-batch of several rows. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/rng.h"
#include "base/threads.h"
#include "data/pack.h"
#include "model/g4_init.h"
#include "model/g4_model.h"

#include <stdlib.h>
#include <string.h>

typedef struct model {
    g4_config cfg;
    g4_plan plan;
    g4_tensors ts;
    g4_weights w;
    g4_model m;
} model;

static void model_open(model *x, const char *preset, const char *dir, int max_tokens) {
    const g4_preset *p = g4_preset_find(preset);
    assert_non_null(p);
    if (g4_init_checkpoint(p, dir, 7, true, 0)) fail_msg("%s", eft_err_msg());
    char *cfg = eft_path_join(dir, "config.json");
    if (g4_config_load(&x->cfg, cfg)) fail_msg("%s", eft_err_msg());
    eft_free(cfg);
    g4_plan_build(&x->plan, &x->cfg);
    g4_tensors_build(&x->plan, &x->ts);
    if (g4_weights_load(&x->w, &x->plan, &x->ts, dir, false)) fail_msg("%s", eft_err_msg());
    g4_model_init(&x->m, &x->plan, &x->w, max_tokens, false);
}

static void model_close(model *x) {
    g4_model_free(&x->m);
    g4_weights_free(&x->w);
    g4_tensors_free(&x->ts);
    g4_plan_free(&x->plan);
    g4_config_free(&x->cfg);
}

/* Loss sum and count of rows laid end to end (labels unshifted). */
static double run(model *x, const int32_t *ids, const int32_t *labels, const int32_t *pos,
                  const int32_t *row_start, int rows, int n, int64_t *count) {
    int32_t *target = malloc((size_t)n * sizeof *target);
    g4_batch_targets(target, labels, row_start, rows, n);
    g4_batch b = {n, ids, pos, target, row_start, rows};
    double sum = g4_forward(&x->m, &b, count);
    free(target);
    return sum;
}

/* Documents of 6..40 random tokens below the vocabulary, about half of them trained (the first
 * token always trained, so that a leak across documents would be counted). */
static void make_docs(ds_samples *s, int n, int vocab) {
    ds_samples_init(s);
    eft_rng r;
    eft_rng_seed(&r, 99, 0);
    int32_t ids[64], labels[64];
    for (int i = 0; i < n; i++) {
        int len = 6 + (int)eft_rng_below(&r, 35);
        for (int k = 0; k < len; k++) {
            ids[k] = (int32_t)eft_rng_below(&r, (uint64_t)vocab);
            labels[k] = k == 0 || eft_rng_below(&r, 2) ? ids[k] : -100;
        }
        ds_samples_add(s, ids, labels, len);
    }
}

/* Every micro-batch of the loader against its documents one by one. */
static void check_loader(model *x, const ds_samples *s, const pack_config *pc) {
    pack_loader L;
    assert_int_equal(pack_loader_init(&L, s, pc), 0);
    pack_batch b;
    b.ids = malloc((size_t)L.max_tokens * sizeof(int32_t));
    b.labels = malloc((size_t)L.max_tokens * sizeof(int32_t));
    b.pos = malloc((size_t)L.max_tokens * sizeof(int32_t));
    b.row_start = malloc((size_t)(L.max_rows + 1) * sizeof(int32_t));
    int32_t one_row[2];
    int checked_multi = 0;
    for (int64_t mb = 0; mb < L.n_mb; mb++) {
        pack_fill(&L, mb, &b);
        int64_t count = 0;
        double sum = run(x, b.ids, b.labels, b.pos, b.row_start, b.rows, b.n, &count);
        /* the documents alone: each from its position-0 start to the next */
        double sum1 = 0;
        int64_t count1 = 0;
        for (int t = 0; t < b.n;) {
            int end = t + 1;
            while (end < b.n && b.pos[end] != 0) end++;
            one_row[0] = 0, one_row[1] = end - t;
            int64_t c = 0;
            sum1 += run(x, b.ids + t, b.labels + t, b.pos + t, one_row, 1, end - t, &c);
            count1 += c;
            t = end;
        }
        if (b.docs > 1) checked_multi++;
        assert_int_equal(count, count1);
        assert_close(sum, sum1, 1e-5);
        /* the packed batch trains exactly the shifted labels of its documents */
        assert_int_equal(count, b.trained - (pc->packed ? 0 : b.rows));
    }
    assert_true(checked_multi > 0);
    free(b.ids), free(b.labels), free(b.pos), free(b.row_start);
    pack_loader_free(&L);
}

static void check_preset(const char *preset) {
    char *dir = test_tmpdir(preset);
    model x;
    model_open(&x, preset, dir, 256);
    ds_samples s;
    make_docs(&s, 24, x.plan.V);
    pack_config pc = {0};
    pc.packed = true;
    pc.sequence_len = 64;
    pc.micro_batch_size = 2; /* bins of 128 tokens, one row */
    pc.bin_size = 200;
    pc.seed = 1;
    pc.epochs = 1;
    check_loader(&x, &s, &pc);
    pc.real_batches = true; /* rows of 64, two a micro-batch */
    check_loader(&x, &s, &pc);
    pc.packed = pc.real_batches = false;
    pc.micro_batch_size = 3; /* three documents, three rows */
    check_loader(&x, &s, &pc);
    ds_samples_free(&s);
    model_close(&x);
    test_tmpdir_cleanup(dir);
}

static void test_tiny_e2b(void **state) {
    check_preset("tiny-e2b");
}

static void test_tiny_31b(void **state) {
    check_preset("tiny-31b");
}

/* Without the first-label mask, the packed row would train one more target per extra
 * document: the last token of each document predicting the next one's first token. */
static void test_mask_is_needed(void **state) {
    char *dir = test_tmpdir("pack_mask");
    model x;
    model_open(&x, "tiny-e4b", dir, 128);
    int32_t ids[20], labels[20], pos[20], rs[2] = {0, 20};
    for (int k = 0; k < 20; k++) {
        ids[k] = (int32_t)(k * 7 % x.plan.V);
        labels[k] = ids[k];
        pos[k] = k < 12 ? k : k - 12; /* documents of 12 and 8 tokens */
    }
    int64_t leaky = 0, masked = 0;
    double s_leaky = run(&x, ids, labels, pos, rs, 1, 20, &leaky);
    labels[12] = -100;
    double s_masked = run(&x, ids, labels, pos, rs, 1, 20, &masked);
    assert_int_equal(leaky, masked + 1);
    assert_true(s_leaky > s_masked);
    int32_t r1[2] = {0, 12}, r2[2] = {0, 8};
    int64_t c1, c2;
    double a = run(&x, ids, labels, pos, r1, 1, 12, &c1);
    double b = run(&x, ids + 12, labels + 12, pos + 12, r2, 1, 8, &c2);
    assert_int_equal(masked, c1 + c2);
    assert_close(s_masked, a + b, 1e-5);
    model_close(&x);
    test_tmpdir_cleanup(dir);
}

int main(void) {
    /* tiny shapes: one thread is fastest, and spinning threads crawl on a busy machine */
    eft_threads_set(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_e2b),
        cmocka_unit_test(test_tiny_31b),
        cmocka_unit_test(test_mask_is_needed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
