/* ds_prepare.c: the whole data preparation of a config, with its cache (see ds_prepare.h). */
#include "data/ds_prepare.h"

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/rng.h"
#include "data/ds_cache.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A permutation of n samples drawn from (seed, name). */
static int64_t *permutation(int64_t n, uint64_t seed, const char *name) {
    int64_t *idx = eft_malloc((size_t)EFT_MAX(n, 1) * sizeof *idx);
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    eft_rng r;
    eft_rng_seed(&r, seed, eft_rng_stream_of(name));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)eft_rng_below(&r, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
    return idx;
}

static void shuffle(ds_samples *s, uint64_t seed, const char *name) {
    int64_t *idx = permutation(s->n, seed, name);
    ds_samples tmp;
    ds_samples_gather(&tmp, s, idx, s->n);
    ds_samples_free(s);
    *s = tmp;
    eft_free(idx);
}

/* Axolotl's merge_datasets: parts[0..k) are consumed into out. */
static void merge(const eft_config *c, ds_samples *parts, int k, const char *what,
                  ds_samples *out) {
    uint64_t seed = (uint64_t)c->seed.v;
    char name[64];
    bool shuffle_merged = c->shuffle_merged_datasets.v;
    if (k == 1) {
        *out = parts[0];
        ds_samples_init(&parts[0]);
        snprintf(name, sizeof name, "%s.merged", what);
        if (shuffle_merged && !c->curriculum_sampling.v) shuffle(out, seed, name);
        return;
    }
    ds_samples_init(out);
    for (int i = 0; i < k; i++) {
        if (c->shuffle_before_merging_datasets.v) {
            /* Axolotl shuffles each with the same seed; each part gets its own stream here */
            snprintf(name, sizeof name, "%s.before_merging.%d", what, i);
            shuffle(&parts[i], seed, name);
        }
        ds_samples_append(out, &parts[i], 0, parts[i].n);
        ds_samples_free(&parts[i]);
    }
    snprintf(name, sizeof name, "%s.merged", what);
    if (shuffle_merged) shuffle(out, seed, name);
}

/* ---- dataset_exact_deduplication: later exact copies (same ids and labels) are dropped ---- */

static uint64_t sample_hash(const ds_samples *s, int64_t i) {
    eft_hash h;
    char hex[33];
    eft_hash_begin(&h);
    for (int64_t t = s->off[i]; t < s->off[i + 1]; t++) {
        int32_t v[2] = {s->ids[t], ds_label(s, t)};
        eft_hash_bytes(&h, v, sizeof v);
    }
    eft_hash_end_hex(&h, hex);
    uint64_t x = 0;
    for (int k = 0; k < 16; k++)
        x = x * 16 + (uint64_t)(hex[k] <= '9' ? hex[k] - '0' : hex[k] - 'a' + 10);
    return x;
}

static bool same_sample(const ds_samples *s, int64_t a, int64_t b) {
    if (ds_len(s, a) != ds_len(s, b)) return false;
    for (int64_t k = 0; k < ds_len(s, a); k++)
        if (s->ids[s->off[a] + k] != s->ids[s->off[b] + k] ||
            ds_label(s, s->off[a] + k) != ds_label(s, s->off[b] + k))
            return false;
    return true;
}

static int64_t dedup(ds_samples *s) {
    int64_t cap = 16;
    while (cap < 2 * s->n) cap *= 2;
    int64_t *slot = eft_malloc((size_t)cap * sizeof *slot);
    uint64_t *hs = eft_malloc((size_t)EFT_MAX(s->n, 1) * sizeof *hs);
    int64_t *keep = eft_malloc((size_t)EFT_MAX(s->n, 1) * sizeof *keep), kept = 0;
    for (int64_t i = 0; i < cap; i++) slot[i] = -1;
    for (int64_t i = 0; i < s->n; i++) {
        hs[i] = sample_hash(s, i);
        int64_t j = (int64_t)(hs[i] & (uint64_t)(cap - 1));
        bool dup = false;
        for (; slot[j] >= 0; j = (j + 1) & (cap - 1))
            if (hs[slot[j]] == hs[i] && same_sample(s, slot[j], i)) {
                dup = true;
                break;
            }
        if (dup) continue;
        slot[j] = i;
        keep[kept++] = i;
    }
    int64_t dropped = s->n - kept;
    if (dropped) {
        ds_samples tmp;
        ds_samples_gather(&tmp, s, keep, kept);
        ds_samples_free(s);
        *s = tmp;
    }
    eft_free(slot), eft_free(hs), eft_free(keep);
    return dropped;
}

/* ---- the steps ---- */

static void stats_free(ds_prepared *p) {
    for (int i = 0; i < p->n_stats; i++) eft_free(p->stats[i].name);
    eft_free(p->stats);
    p->stats = NULL;
    p->n_stats = 0;
}

void ds_prepared_free(ds_prepared *p) {
    ds_samples_free(&p->train);
    ds_samples_free(&p->eval);
    stats_free(p);
    eft_free(p->cache_file);
    eft_unmap(&p->map);
    memset(p, 0, sizeof *p);
}

/* Builds every entry, merges, deduplicates and splits into p. */
static int build(const eft_config *c, const tok_tokenizer *t, ds_source *src, int n,
                 ds_prepared *p) {
    int n_train = c->datasets.n;
    ds_samples *parts = eft_calloc((size_t)n, sizeof *parts);
    p->stats = eft_calloc((size_t)n, sizeof *p->stats);
    p->n_stats = n;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        ds_stats *st = &p->stats[i];
        st->name = eft_strdup(src[i].what);
        st->test = i >= n_train;
        rc = ds_build_entry(c, t, &src[i], st->test, &parts[i], st);
        p->rows_tokenized += st->rows;
    }
    if (!rc) {
        merge(c, parts, n_train, "datasets", &p->train);
        if (n > n_train) merge(c, parts + n_train, n - n_train, "test_datasets", &p->eval);
    }
    for (int i = 0; i < n; i++) ds_samples_free(&parts[i]);
    eft_free(parts);
    if (rc) return -1;
    if (c->dataset_exact_deduplication.v) {
        int64_t a = dedup(&p->train), b = dedup(&p->eval);
        if (a || b)
            eft_info("dataset_exact_deduplication: dropped %lld duplicate training samples and "
                     "%lld duplicate eval samples.",
                     (long long)a, (long long)b);
    }
    if (p->train.n == 0)
        return eft_fail("%s: no training sample is left after filtering (see the counts above: "
                        "too long for sequence_len %lld, too short, or with no trained token). "
                        "Check the datasets' type and fields, sequence_len and "
                        "excess_length_strategy.",
                        c->path, (long long)c->sequence_len.v);
    if (c->test_datasets.n > 0 && p->eval.n == 0)
        return eft_fail("%s: test_datasets: no eval sample is left after filtering. Check their "
                        "type, fields and eval_sequence_len.",
                        c->path);
    double v = c->val_set_size.v;
    if (v > 0 && c->test_datasets.n == 0) {
        /* datasets' train_test_split(test_size=v, shuffle=False): the test part is the last
         * ceil(v * n) samples */
        int64_t n_all = p->train.n, n_test = (int64_t)ceil(v * (double)n_all);
        if (n_all - n_test <= 0) {
            char *at = cfg_pos_str(c->val_set_size.at);
            eft_fail("%s: val_set_size: %g of %lld samples leaves no training sample. Lower it, "
                     "or add data.",
                     at, v, (long long)n_all);
            eft_free(at);
            return -1;
        }
        ds_samples_free(&p->eval);
        ds_samples_append(&p->eval, &p->train, n_all - n_test, n_all);
        ds_samples tmp;
        ds_samples_init(&tmp);
        ds_samples_append(&tmp, &p->train, 0, n_all - n_test);
        ds_samples_free(&p->train);
        p->train = tmp;
    }
    return 0;
}

int ds_prepare(const eft_config *c, const tok_tokenizer *t, ds_prepared *out) {
    memset(out, 0, sizeof *out);
    ds_samples_init(&out->train);
    ds_samples_init(&out->eval);
    int n_train = c->datasets.n, n = n_train + c->test_datasets.n;
    ds_source *src = eft_calloc((size_t)EFT_MAX(n, 1), sizeof *src);
    ds_source **srcp = eft_calloc((size_t)EFT_MAX(n, 1), sizeof *srcp);
    int rc = 0, opened = 0;
    for (int i = 0; i < n && !rc; i++, opened++) {
        bool test = i >= n_train;
        const cfg_dataset *d = test ? &c->test_datasets.v[i - n_train] : &c->datasets.v[i];
        char what[48];
        snprintf(what, sizeof what, "%s[%d]", test ? "test_datasets" : "datasets",
                 test ? i - n_train : i);
        rc = ds_source_open(&src[i], d, what, test ? "test" : "train", (uint64_t)c->seed.v);
        srcp[i] = &src[i];
    }
    if (!rc) rc = ds_cache_key(c, srcp, n, out->key);
    if (!rc) {
        const char *dir =
            c->dataset_prepared_path.v ? c->dataset_prepared_path.v : "last_run_prepared";
        char *sub = eft_path_join(dir, out->key);
        out->cache_file = eft_path_join(sub, "prepared.eft");
        eft_free(sub);
        if (ds_cache_load(out->cache_file, out->key, out) == 1) {
            for (int i = 0; i < opened; i++) ds_source_close(&src[i]);
            eft_free(src), eft_free(srcp);
            return 0;
        }
        stats_free(out);
        rc = build(c, t, src, n, out);
    }
    for (int i = 0; i < opened; i++) ds_source_close(&src[i]);
    eft_free(src), eft_free(srcp);
    if (!rc) rc = ds_cache_save(out->cache_file, out->key, out);
    if (rc) {
        char *keep = out->cache_file;
        out->cache_file = NULL;
        ds_prepared_free(out);
        eft_free(keep);
    }
    return rc;
}

/* ---- the report ---- */

static void entry_line(const ds_stats *s) {
    char extra[512] = "";
    size_t k = 0;
#define ADD(cond, ...)                                                                             \
    if (cond) k += (size_t)snprintf(extra + k, sizeof extra - k, __VA_ARGS__)
    ADD(s->too_long, "%s%lld longer than %lld", k ? ", " : "", (long long)s->too_long,
        (long long)s->max_len);
    ADD(s->too_short, "%s%lld shorter than min_sample_len", k ? ", " : "", (long long)s->too_short);
    ADD(s->untrained, "%s%lld with no trained token", k ? ", " : "", (long long)s->untrained);
    char skipped[128] = "";
    if (s->skipped[DS_SKIP_EMPTY_TEXT])
        snprintf(skipped, sizeof skipped, "; skipped %lld rows with %s",
                 (long long)s->skipped[DS_SKIP_EMPTY_TEXT], ds_skip_names[DS_SKIP_EMPTY_TEXT]);
    char trunc[64] = "";
    if (s->truncated) snprintf(trunc, sizeof trunc, "; truncated %lld", (long long)s->truncated);
    eft_info("%s: %lld rows -> %lld samples, kept %lld (%lld tokens, %lld trained); dropped %s%s%s",
             s->name, (long long)s->rows, (long long)s->made, (long long)s->samples,
             (long long)s->tokens, (long long)s->trained, k ? extra : "none", trunc, skipped);
#undef ADD
}

void ds_report(const ds_prepared *p) {
    for (int i = 0; i < p->n_stats; i++) entry_line(&p->stats[i]);
    eft_info("train: %lld samples, %lld tokens, %lld trained; eval: %lld samples, %lld tokens, "
             "%lld trained",
             (long long)p->train.n, (long long)p->train.n_tokens,
             (long long)ds_samples_trained(&p->train), (long long)p->eval.n,
             (long long)p->eval.n_tokens, (long long)ds_samples_trained(&p->eval));
    eft_info("prepared data: %s (%s)", p->cache_file ? p->cache_file : "(not cached)",
             p->from_cache ? "reused: nothing tokenized" : "written");
}
