/* test_pack.c: packing and the micro-batch loader: every sample exactly once per epoch, no bin
 * over capacity, position ids restarting at 0 in every document (so the model's document rule
 * finds exactly the samples), the first label of each packed document masked, the packing
 * efficiency, bins that change between epochs and not between runs of the same seed, the bin
 * size limit, multipack_real_batches, sequential packing, unpacked micro-batches, the eval
 * loader, and the step counts of training-math section 6.4. */
#include "support/test.h"

#include "base/err.h"
#include "base/rng.h"
#include "data/pack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* n samples with lengths from [lo, hi] (seeded); sample i's first id is i, later ids encode
 * (i, k), and token k is trained when k is odd. */
static void make_samples(ds_samples *s, int64_t n, int lo, int hi, uint64_t seed) {
    ds_samples_init(s);
    eft_rng r;
    eft_rng_seed(&r, seed, 1);
    int32_t ids[4096], labels[4096];
    for (int64_t i = 0; i < n; i++) {
        int len = lo + (int)eft_rng_below(&r, (uint64_t)(hi - lo + 1));
        for (int k = 0; k < len; k++) {
            ids[k] = k == 0 ? (int32_t)i : (int32_t)(100000 + i * 16 + k % 16);
            labels[k] = k % 2 ? ids[k] : -100;
        }
        ds_samples_add(s, ids, labels, len);
    }
}

typedef struct bufs {
    pack_batch b;
} bufs;

static void bufs_init(bufs *x, const pack_loader *L) {
    x->b.ids = malloc((size_t)L->max_tokens * sizeof(int32_t));
    x->b.labels = malloc((size_t)L->max_tokens * sizeof(int32_t));
    x->b.pos = malloc((size_t)L->max_tokens * sizeof(int32_t));
    x->b.row_start = malloc((size_t)(L->max_rows + 1) * sizeof(int32_t));
}
static void bufs_free(bufs *x) {
    free(x->b.ids), free(x->b.labels), free(x->b.pos), free(x->b.row_start);
}

/* Walks one epoch: checks every micro-batch and that samples appear once (seen[] counts);
 * records each sample's micro-batch in mb_of[] when given. Returns the tokens seen. */
static int64_t walk_epoch(const pack_loader *L, const ds_samples *s, int *seen, int64_t *mb_of) {
    bufs x;
    bufs_init(&x, L);
    int64_t tokens = 0;
    memset(seen, 0, (size_t)s->n * sizeof *seen);
    for (int64_t m = 0; m < L->n_mb; m++) {
        pack_batch *b = &x.b;
        pack_fill(L, m, b);
        assert_true(b->n <= L->max_tokens);
        assert_true(b->rows >= 1 && b->rows <= L->max_rows);
        assert_int_equal(b->row_start[0], 0);
        assert_int_equal(b->row_start[b->rows], b->n);
        int64_t trained = 0;
        int docs = 0;
        for (int r = 0; r < b->rows; r++) {
            int a = b->row_start[r], e = b->row_start[r + 1];
            if (L->cfg.packed)
                assert_true(e - a <= L->cfg.sequence_len *
                                         (L->cfg.real_batches ? 1 : L->cfg.micro_batch_size));
            for (int t = a; t < e;) {
                /* a document starts at the row start and wherever pos does not continue */
                assert_int_equal(b->pos[t], 0);
                int end = t + 1;
                while (end < e && b->pos[end] == b->pos[end - 1] + 1) end++;
                int64_t i = b->ids[t];
                assert_true(i >= 0 && i < s->n);
                assert_int_equal(end - t, ds_len(s, i)); /* the document is exactly sample i */
                seen[i]++;
                docs++;
                if (mb_of) mb_of[i] = m;
                for (int k = 0; k < end - t; k++) {
                    int64_t g = s->off[i] + k;
                    assert_int_equal(b->ids[t + k], s->ids[g]);
                    int32_t want = k == 0 && L->cfg.packed ? -100 : ds_label(s, g);
                    assert_int_equal(b->labels[t + k], want);
                    trained += b->labels[t + k] != -100;
                }
                t = end;
            }
        }
        assert_int_equal(docs, b->docs);
        assert_int_equal(trained, b->trained);
        tokens += b->n;
    }
    bufs_free(&x);
    return tokens;
}

static pack_config packed_config(int64_t seq, int64_t mbs, uint64_t seed) {
    pack_config pc = {0};
    pc.packed = true;
    pc.sequence_len = seq;
    pc.micro_batch_size = mbs;
    pc.bin_size = 200;
    pc.seed = seed;
    pc.epochs = 1;
    return pc;
}

static void test_packed_invariants(void **state) {
    ds_samples s;
    make_samples(&s, 600, 2, 300, 11);
    pack_config pc = packed_config(512, 2, 42);
    pack_loader L;
    assert_int_equal(pack_loader_init(&L, &s, &pc), 0);
    assert_int_equal(L.capacity, 1024);
    assert_int_equal(L.max_rows, 1);
    int *seen = malloc((size_t)s.n * sizeof *seen);
    int64_t bins0 = L.n_mb;
    /* first-fit decreasing is within a few bins of the bound ceil(tokens / capacity) */
    int64_t bound = (s.n_tokens + L.capacity - 1) / L.capacity;
    assert_true(bins0 >= bound && bins0 <= bound + 2);
    assert_close(L.efficiency, (double)s.n_tokens / ((double)bins0 * 1024.0), 1e-12);
    assert_true(L.efficiency > 0.97);
    print_message("600 samples of 2..300 tokens in %lld bins of 1024: efficiency %.4f\n",
                  (long long)bins0, L.efficiency);
    for (int e = 0; e < 3; e++) {
        pack_epoch(&L, e);
        assert_int_equal(L.epoch_bins, bins0); /* the same count every epoch */
        assert_int_equal(walk_epoch(&L, &s, seen, NULL), s.n_tokens);
        for (int64_t i = 0; i < s.n; i++) assert_int_equal(seen[i], 1);
    }
    free(seen);
    pack_loader_free(&L);
    ds_samples_free(&s);
}

/* Which samples share a micro-batch with sample 0..n, as a signature of the packing. */
static void bins_of(const ds_samples *s, const pack_config *pc, int epoch, int64_t *mb_of) {
    pack_loader L;
    assert_int_equal(pack_loader_init(&L, s, pc), 0);
    pack_epoch(&L, epoch);
    int *seen = malloc((size_t)s->n * sizeof *seen);
    walk_epoch(&L, s, seen, mb_of);
    free(seen);
    pack_loader_free(&L);
}

static bool same_grouping(const int64_t *a, const int64_t *b, int64_t n) {
    /* the same partition into bins, whatever the bins' order */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++)
            if ((a[i] == a[j]) != (b[i] == b[j])) return false;
    return true;
}

static void test_epochs_and_seeds(void **state) {
    ds_samples s;
    make_samples(&s, 200, 2, 60, 5); /* repeated lengths, as real data has */
    pack_config pc = packed_config(128, 1, 42);
    int64_t *e0 = malloc(200 * sizeof *e0), *e1 = malloc(200 * sizeof *e1);
    int64_t *again = malloc(200 * sizeof *again), *other = malloc(200 * sizeof *other);
    bins_of(&s, &pc, 0, e0);
    bins_of(&s, &pc, 1, e1);
    bins_of(&s, &pc, 0, again);
    assert_false(same_grouping(e0, e1, 200));         /* epochs differ */
    assert_memory_equal(e0, again, 200 * sizeof *e0); /* deterministic for a seed */
    pack_config pc2 = packed_config(128, 1, 43);
    bins_of(&s, &pc2, 0, other);
    assert_false(same_grouping(e0, other, 200)); /* and differ for another seed */
    free(e0), free(e1), free(again), free(other);
    ds_samples_free(&s);
}

static void test_bin_size_and_real_batches(void **state) {
    ds_samples s;
    make_samples(&s, 300, 2, 40, 9);
    pack_config pc = packed_config(256, 1, 1);
    pc.bin_size = 3;
    pack_loader L;
    assert_int_equal(pack_loader_init(&L, &s, &pc), 0);
    int *seen = malloc((size_t)s.n * sizeof *seen);
    bufs x;
    bufs_init(&x, &L);
    for (int64_t m = 0; m < L.n_mb; m++) {
        pack_fill(&L, m, &x.b);
        assert_true(x.b.docs <= 3);
    }
    assert_true(L.n_mb >= 100);
    walk_epoch(&L, &s, seen, NULL);
    for (int64_t i = 0; i < s.n; i++) assert_int_equal(seen[i], 1);
    bufs_free(&x);
    pack_loader_free(&L);

    /* multipack_real_batches: micro_batch_size bins of sequence_len, one row each; the last
     * incomplete micro-batch is dropped */
    pc = packed_config(100, 3, 1);
    pc.real_batches = true;
    assert_int_equal(pack_loader_init(&L, &s, &pc), 0);
    assert_int_equal(L.capacity, 100);
    assert_int_equal(L.max_rows, 3);
    assert_int_equal(L.n_mb, L.epoch_bins / 3);
    walk_epoch(&L, &s, seen, NULL);
    int64_t once = 0;
    for (int64_t i = 0; i < s.n; i++) {
        assert_true(seen[i] <= 1);
        once += seen[i];
    }
    assert_true(once < s.n || L.epoch_bins % 3 == 0);
    bufs_init(&x, &L);
    pack_fill(&L, 0, &x.b);
    assert_int_equal(x.b.rows, 3);
    bufs_free(&x);
    pack_loader_free(&L);

    /* sequential packing: next-fit, documents in the epoch's order within a bin */
    pc = packed_config(100, 1, 1);
    pc.sequential = pc.keep_order = true;
    assert_int_equal(pack_loader_init(&L, &s, &pc), 0);
    bufs_init(&x, &L);
    int64_t last = -1;
    for (int64_t m = 0; m < L.n_mb; m++) {
        pack_fill(&L, m, &x.b);
        for (int t = 0; t < x.b.n; t++)
            if (x.b.pos[t] == 0) {
                assert_true(x.b.ids[t] == last + 1); /* dataset order kept */
                last = x.b.ids[t];
            }
    }
    assert_int_equal(last, s.n - 1);
    bufs_free(&x);
    pack_loader_free(&L);
    free(seen);
    ds_samples_free(&s);
}

static void test_unpacked(void **state) {
    ds_samples s;
    make_samples(&s, 10, 3, 9, 2);
    pack_config pc = {0};
    pc.sequence_len = 16;
    pc.micro_batch_size = 4;
    pc.seed = 3;
    pc.epochs = 1;
    pack_loader L;
    assert_int_equal(pack_loader_init(&L, &s, &pc), 0);
    assert_int_equal(L.n_mb, 3); /* ceil(10 / 4), the last one short */
    assert_int_equal(L.max_rows, 4);
    int64_t longest4 = 0;
    {
        int64_t len[10];
        for (int i = 0; i < 10; i++) len[i] = ds_len(&s, i);
        for (int k = 0; k < 4; k++) {
            int best = 0;
            for (int i = 1; i < 10; i++)
                if (len[i] > len[best]) best = i;
            longest4 += len[best];
            len[best] = -1;
        }
    }
    assert_int_equal(L.max_tokens, longest4);
    int seen[10];
    int64_t mb0[10], mb1[10];
    pack_epoch(&L, 0);
    walk_epoch(&L, &s, seen, mb0);
    for (int i = 0; i < 10; i++) assert_int_equal(seen[i], 1);
    bufs x;
    bufs_init(&x, &L);
    pack_fill(&L, 2, &x.b);
    assert_int_equal(x.b.rows, 2);
    pack_fill(&L, 0, &x.b);
    assert_int_equal(x.b.rows, 4);
    bufs_free(&x);
    pack_epoch(&L, 1);
    walk_epoch(&L, &s, seen, mb1);
    assert_memory_not_equal(mb0, mb1, sizeof mb0); /* reshuffled each epoch */
    pack_loader_free(&L);

    /* curriculum_sampling: dataset order */
    pc.keep_order = true;
    assert_int_equal(pack_loader_init(&L, &s, &pc), 0);
    walk_epoch(&L, &s, seen, mb0);
    for (int i = 0; i < 10; i++) assert_int_equal(mb0[i], i / 4);
    pack_loader_free(&L);
    ds_samples_free(&s);
}

static void load_config(eft_config *c, const char *yaml) {
    if (cfg_load_string(c, yaml, "pack.yaml")) fail_msg("%s", eft_err_msg());
}

static void test_eval_loader(void **state) {
    ds_samples s;
    make_samples(&s, 10, 3, 9, 2);
    eft_config c;
    pack_config pc;
    pack_loader L;
    load_config(&c, "micro_batch_size: 4\neval_batch_size: 3\nsequence_len: 16\n");
    pack_config_eval(&pc, &c);
    assert_int_equal(pack_loader_init(&L, &s, &pc), 0);
    assert_int_equal(L.n_mb, 4); /* ceil(10 / 3), in order */
    int seen[10];
    int64_t mb[10];
    walk_epoch(&L, &s, seen, mb);
    for (int i = 0; i < 10; i++) assert_int_equal(mb[i], i / 3);
    pack_loader_free(&L);
    cfg_free(&c);
    /* packed training, unpacked eval: the short last batch is dropped */
    load_config(&c, "micro_batch_size: 4\nsample_packing: true\neval_sample_packing: false\n"
                    "sequence_len: 16\n");
    pack_config_eval(&pc, &c);
    assert_int_equal(pack_loader_init(&L, &s, &pc), 0);
    assert_int_equal(L.n_mb, 2);
    pack_loader_free(&L);
    cfg_free(&c);
    /* eval packs with training by default, in order (no shuffle) */
    load_config(&c, "micro_batch_size: 2\nsample_packing: true\nsequence_len: 16\n");
    pack_config_eval(&pc, &c);
    assert_true(pc.packed && pc.keep_order);
    assert_int_equal(pack_loader_init(&L, &s, &pc), 0);
    assert_int_equal(L.capacity, 32);
    walk_epoch(&L, &s, seen, NULL);
    for (int i = 0; i < 10; i++) assert_int_equal(seen[i], 1);
    pack_loader_free(&L);
    cfg_free(&c);
    ds_samples_free(&s);
}

static void steps(const ds_samples *s, const char *yaml, pack_steps *out, int64_t *mb) {
    eft_config c;
    load_config(&c, yaml);
    pack_config pc;
    pack_config_train(&pc, &c);
    pack_loader L;
    assert_int_equal(pack_loader_init(&L, s, &pc), 0);
    pack_steps_compute(&L, &c, out);
    if (mb) *mb = L.n_mb;
    pack_loader_free(&L);
    cfg_free(&c);
}

static void test_steps(void **state) {
    ds_samples s;
    make_samples(&s, 5, 3, 9, 2);
    pack_steps st;
    /* training-math 6.4's example: N = 5, B = 1, G = 2, E = 2 -> T = 5, U = 3 */
    steps(&s, "micro_batch_size: 1\ngradient_accumulation_steps: 2\nnum_epochs: 2\n", &st, NULL);
    assert_int_equal(st.micro_batches, 5);
    assert_int_equal(st.updates_per_epoch, 3);
    assert_int_equal(st.estimate, 5);
    assert_int_equal(st.total, 5);
    steps(&s, "micro_batch_size: 2\nbatch_size: 4\nnum_epochs: 1.5\nmax_steps: 10\n", &st, NULL);
    assert_int_equal(st.accumulation, 2);
    assert_int_equal(st.estimate, 2); /* ceil(5 * 1.5 / 4) */
    assert_int_equal(st.total, 10);   /* max_steps wins */
    assert_int_equal(st.warmup_base, 2);
    ds_samples_free(&s);

    make_samples(&s, 400, 10, 200, 4);
    int64_t m;
    steps(&s,
          "sample_packing: true\nsequence_len: 256\nmicro_batch_size: 1\n"
          "gradient_accumulation_steps: 4\nnum_epochs: 1.5\n",
          &st, &m);
    assert_int_equal(st.micro_batches, m);
    assert_int_equal(st.estimate, (int64_t)((double)(m / 4) * 1.5)); /* floor(max(1, M div G) E) */
    assert_int_equal(st.updates_per_epoch, (m + 3) / 4);
    steps(&s,
          "sample_packing: true\nsequence_len: 256\nmicro_batch_size: 2\n"
          "gradient_accumulation_steps: 2\nsample_packing_eff_est: 0.9\n",
          &st, NULL);
    double x = 0.99 * (double)s.n_tokens / 0.9 / 256.0;
    assert_int_equal(st.estimate, (int64_t)(floor(x / 4.0) - 1));
    ds_samples_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_invariants),
        cmocka_unit_test(test_epochs_and_seeds),
        cmocka_unit_test(test_bin_size_and_real_batches),
        cmocka_unit_test(test_unpacked),
        cmocka_unit_test(test_eval_loader),
        cmocka_unit_test(test_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
