/* pack.c: the epoch's bins and order (see pack.h).
 *
 * First-fit decreasing in O(n log n): lengths are bucket-sorted (longest first, ties in the
 * epoch's order), and "the first bin with room" is found in a max-tree over bins' free space in
 * which every not-yet-opened bin has full capacity, so the leftmost bin that fits is either an
 * open one or the next new one. A bin that holds bin_size samples gets free space -1.
 */
#include "data/pack.h"

#include "base/err.h"
#include "base/rng.h"

#include <string.h>

static int64_t pow2_at_least(int64_t n) {
    int64_t p = 1;
    while (p < n) p *= 2;
    return p;
}

/* Scratch layout: perm [n] | bin_of [n] | count/fill [n+1] | tree [2P] | len buckets [cap+2] */
static int64_t scratch_size(int64_t n, int64_t cap) {
    return 3 * n + 1 + 2 * pow2_at_least(EFT_MAX(n, 1)) + cap + 2;
}

static void shuffle(int64_t *v, int64_t n, uint64_t seed, const char *name, int epoch) {
    eft_rng r;
    eft_rng_seed(&r, seed, eft_rng_stream_of(name) + (uint64_t)epoch);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)eft_rng_below(&r, (uint64_t)i + 1);
        int64_t t = v[i];
        v[i] = v[j], v[j] = t;
    }
}

static void tree_set(int64_t *tree, int64_t P, int64_t leaf, int64_t v) {
    int64_t k = P + leaf;
    tree[k] = v;
    for (k /= 2; k >= 1; k /= 2) tree[k] = EFT_MAX(tree[2 * k], tree[2 * k + 1]);
}

/* The leftmost leaf with value >= need (one exists). */
static int64_t tree_first(const int64_t *tree, int64_t P, int64_t need) {
    int64_t k = 1;
    while (k < P) k = tree[2 * k] >= need ? 2 * k : 2 * k + 1;
    return k - P;
}

/* Bins for the samples in perm[0..n): bin_of[sample]; returns the bin count. */
static int64_t pack_bins(const pack_loader *L, const int64_t *perm, int64_t *bin_of, int64_t *tree,
                         int64_t *bucket, int64_t *counts, int64_t *sorted) {
    const ds_samples *s = L->s;
    int64_t n = s->n, cap = L->capacity, max_count = L->cfg.bin_size;
    int64_t n_bins = 0;
    if (L->cfg.sequential) { /* next-fit in order */
        int64_t room = -1, count = 0;
        for (int64_t k = 0; k < n; k++) {
            int64_t i = perm[k], len = ds_len(s, i);
            if (n_bins == 0 || len > room || count >= max_count) n_bins++, room = cap, count = 0;
            bin_of[i] = n_bins - 1;
            room -= len, count++;
        }
        return n_bins;
    }
    /* bucket sort by length, longest first, stable in perm's order */
    memset(bucket, 0, (size_t)(cap + 2) * sizeof *bucket);
    for (int64_t k = 0; k < n; k++) bucket[cap - ds_len(s, perm[k])]++;
    for (int64_t l = 0, at = 0; l <= cap; l++) {
        int64_t c = bucket[l];
        bucket[l] = at;
        at += c;
    }
    for (int64_t k = 0; k < n; k++) sorted[bucket[cap - ds_len(s, perm[k])]++] = perm[k];
    int64_t P = pow2_at_least(EFT_MAX(n, 1));
    for (int64_t k = 0; k < 2 * P; k++) tree[k] = cap;
    for (int64_t k = 0; k < n; k++) {
        int64_t i = sorted[k], len = ds_len(s, i);
        int64_t b = tree_first(tree, P, len);
        int64_t count = b < n_bins ? counts[b] + 1 : 1;
        if (b == n_bins) n_bins++;
        counts[b] = count;
        bin_of[i] = b;
        tree_set(tree, P, b, count >= max_count ? -1 : tree[P + b] - len);
    }
    return n_bins;
}

void pack_epoch(pack_loader *L, int epoch) {
    const ds_samples *s = L->s;
    int64_t n = s->n;
    int64_t *perm = L->scratch, *bin_of = perm + n, *fill = bin_of + n;
    int64_t *tree = fill + n + 1, *bucket = tree + 2 * pow2_at_least(EFT_MAX(n, 1));
    L->epoch = epoch;
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    if (!L->cfg.keep_order) shuffle(perm, n, L->cfg.seed, "pack.order", epoch);
    if (!L->cfg.packed) { /* each micro-batch is the next micro_batch_size samples */
        memcpy(L->order, perm, (size_t)n * sizeof *perm);
        L->epoch_bins = 0;
        return;
    }
    int64_t n_bins = pack_bins(L, perm, bin_of, tree, bucket, fill, L->order);
    L->epoch_bins = n_bins;
    /* group samples by bin, keeping their packing order (L->order holds the sorted list) */
    memset(fill, 0, (size_t)(n + 1) * sizeof *fill);
    for (int64_t i = 0; i < n; i++) fill[bin_of[i] + 1]++;
    for (int64_t b = 0; b < n_bins; b++) fill[b + 1] += fill[b];
    memcpy(L->bin_start, fill, (size_t)(n_bins + 1) * sizeof *fill);
    const int64_t *seq = L->cfg.sequential ? perm : L->order;
    for (int64_t k = 0; k < n; k++) tree[k] = seq[k]; /* the tree is free again: a copy */
    for (int64_t k = 0; k < n; k++) {
        int64_t i = tree[k];
        L->order[fill[bin_of[i]]++] = i;
    }
    for (int64_t b = 0; b < n_bins; b++) L->bin_perm[b] = b;
    if (!L->cfg.keep_order) shuffle(L->bin_perm, n_bins, L->cfg.seed, "pack.bins", epoch);
}

void pack_config_train(pack_config *pc, const eft_config *c) {
    memset(pc, 0, sizeof *pc);
    pc->packed = c->sample_packing.v;
    pc->real_batches = c->multipack_real_batches.v;
    pc->sequential = c->sample_packing_sequentially.v || c->curriculum_sampling.v;
    pc->keep_order = c->curriculum_sampling.v;
    pc->sequence_len = c->sequence_len.v;
    pc->micro_batch_size = c->micro_batch_size.v;
    pc->bin_size = c->sample_packing_bin_size.v;
    pc->seed = (uint64_t)c->seed.v;
    double e = c->num_epochs.v > 0 ? c->num_epochs.v : 1;
    pc->epochs = (int)EFT_MIN(1000.0, e + 0.999999);
}

void pack_config_eval(pack_config *pc, const eft_config *c) {
    pack_config_train(pc, c);
    pc->packed = c->eval_sample_packing.set ? c->eval_sample_packing.v : c->sample_packing.v;
    pc->sequential = false;
    pc->keep_order = true;
    pc->sequence_len = c->eval_sequence_len.set ? c->eval_sequence_len.v : c->sequence_len.v;
    if (!pc->packed)
        pc->micro_batch_size =
            c->eval_batch_size.set ? c->eval_batch_size.v : c->micro_batch_size.v;
    pc->drop_last = c->sample_packing.v && !pc->packed;
    pc->epochs = 1;
}

static int64_t micro_batches(const pack_loader *L) {
    const pack_config *pc = &L->cfg;
    if (!pc->packed) {
        int64_t b = pc->micro_batch_size, n = L->s->n;
        return pc->drop_last ? n / b : (n + b - 1) / b;
    }
    return pc->real_batches ? L->epoch_bins / pc->micro_batch_size : L->epoch_bins;
}

int pack_loader_init(pack_loader *L, const ds_samples *s, const pack_config *pc) {
    memset(L, 0, sizeof *L);
    L->s = s;
    L->cfg = *pc;
    if (L->cfg.bin_size <= 0) L->cfg.bin_size = INT64_MAX;
    int64_t n = s->n, B = pc->micro_batch_size;
    L->capacity = pc->packed && !pc->real_batches ? B * pc->sequence_len : pc->sequence_len;
    int64_t longest = 0;
    for (int64_t i = 0; i < n; i++) longest = EFT_MAX(longest, ds_len(s, i));
    if (pc->packed && longest > L->capacity)
        return eft_fail("a sample of %lld tokens does not fit a packed bin of %lld tokens (the "
                        "length filters should have removed it).",
                        (long long)longest, (long long)L->capacity);
    L->order = eft_malloc((size_t)EFT_MAX(n, 1) * sizeof *L->order);
    L->bin_start = eft_malloc((size_t)(n + 1) * sizeof *L->bin_start);
    L->bin_perm = eft_malloc((size_t)EFT_MAX(n, 1) * sizeof *L->bin_perm);
    L->n_scratch = scratch_size(n, pc->packed ? L->capacity : 0);
    L->scratch = eft_malloc((size_t)L->n_scratch * sizeof *L->scratch);
    if (pc->packed) {
        L->max_tokens = pc->real_batches ? B * pc->sequence_len : L->capacity;
        L->max_rows = pc->real_batches ? B : 1;
    } else { /* the B longest samples bound any micro-batch */
        int64_t *len = L->scratch;
        for (int64_t i = 0; i < n; i++) len[i] = ds_len(s, i);
        int64_t sum = 0;
        for (int64_t k = 0; k < EFT_MIN(B, n); k++) { /* partial selection, B is small */
            int64_t best = k;
            for (int64_t j = k + 1; j < n; j++)
                if (len[j] > len[best]) best = j;
            int64_t t = len[k];
            len[k] = len[best], len[best] = t;
            sum += len[k];
        }
        L->max_tokens = sum;
        L->max_rows = B;
    }
    /* the micro-batch count: fixed by the first epochs when packing varies with the order */
    int epochs = pc->packed && pc->sequential && !pc->keep_order ? EFT_MAX(pc->epochs, 1) : 1;
    int64_t m = INT64_MAX;
    for (int e = epochs - 1; e >= 0; e--) { /* ends on epoch 0 */
        pack_epoch(L, e);
        m = EFT_MIN(m, micro_batches(L));
    }
    L->n_mb = m;
    L->efficiency = pc->packed && L->epoch_bins
                        ? (double)s->n_tokens / ((double)L->epoch_bins * (double)L->capacity)
                        : 1.0;
    return 0;
}

void pack_loader_free(pack_loader *L) {
    eft_free(L->order), eft_free(L->bin_start), eft_free(L->bin_perm), eft_free(L->scratch);
    memset(L, 0, sizeof *L);
}
