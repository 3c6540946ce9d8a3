/* ds_build.c: one dataset entry from rows to filtered samples (ds_build_entry).
 *
 * Rows are read in batches on the calling thread and formatted on all threads, each row into
 * its own slot; the slots are then appended in row order, so the result does not depend on the
 * thread count. A bad row's error is the first one in file order, as a serial run would give.
 * Samples are put in the order the split and shards selected rows (the file order unless shards
 * permuted it), then filtered.
 */
#include "data/ds_filter.h"
#include "data/ds_prepare.h"

#include "base/err.h"
#include "base/threads.h"

#include <stdlib.h>
#include <string.h>

#define BATCH_ROWS 1024

typedef struct slot {
    ds_row row;
    ds_samples out;
    ds_skip skip;
    char *error; /* owned */
} slot;

/* Where each built sample came from, for messages and for putting samples in selected order. */
typedef struct origin {
    int64_t pos; /* the row's place in the selection */
    int64_t line;
    int32_t file;
    bool listed;
} origin;

static int cmp_origin_pos(const void *a, const void *b, void *ctx) {
    const origin *o = ctx;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (o[x].pos != o[y].pos) return o[x].pos < o[y].pos ? -1 : 1;
    return x < y ? -1 : x > y; /* a row's pieces stay in order */
}

static void format_batch(const ds_format *f, const ds_source *src, slot *s, int n) {
#pragma omp parallel for schedule(dynamic, 4) num_threads(eft_threads())
    for (int i = 0; i < n; i++) {
        ds_samples_clear(&s[i].out);
        ds_at at = {src, &s[i].row};
        if (ds_format_row(f, s[i].row.v, &at, &s[i].out, &s[i].skip)) {
            s[i].error = eft_strdup(eft_err_msg());
            eft_err_clear();
        }
    }
}

static int read_all(const ds_format *f, ds_source *src, ds_samples *acc, origin **orig,
                    ds_stats *st) {
    slot *s = eft_calloc(BATCH_ROWS, sizeof *s);
    for (int i = 0; i < BATCH_ROWS; i++) ds_samples_init(&s[i].out);
    int64_t cap = 0;
    int rc = 0;
    for (;;) {
        int n = 0, got = 0;
        while (n < BATCH_ROWS && (got = ds_source_next(src, &s[n].row)) == 1) n++;
        if (got < 0) rc = -1;
        if (!rc) format_batch(f, src, s, n);
        for (int i = 0; i < n; i++) {
            if (!rc && s[i].error) rc = eft_fail("%s", s[i].error);
            if (!rc) {
                st->rows++;
                st->skipped[s[i].skip]++;
                if (acc->n + s[i].out.n > cap) {
                    cap = EFT_MAX(acc->n + s[i].out.n, 2 * cap + 1024);
                    *orig = eft_realloc(*orig, (size_t)cap * sizeof **orig);
                }
                for (int64_t k = 0; k < s[i].out.n; k++)
                    (*orig)[acc->n + k] = (origin){s[i].row.pos, s[i].row.line,
                                                   (int32_t)s[i].row.file, s[i].row.listed};
                ds_samples_append(acc, &s[i].out, 0, s[i].out.n);
            }
            eft_free(s[i].error);
            s[i].error = NULL;
            cJSON_Delete(s[i].row.v);
            s[i].row.v = NULL;
        }
        if (rc || got == 0) break;
    }
    for (int i = 0; i < BATCH_ROWS; i++) ds_samples_free(&s[i].out);
    eft_free(s);
    st->made = acc->n;
    return rc;
}

static void count_kept(const ds_samples *s, ds_stats *st) {
    st->samples = s->n;
    st->tokens = s->n_tokens;
    st->trained = ds_samples_trained(s);
}

static ds_excess excess_of(const eft_config *c) {
    const char *e = c->excess_length_strategy.v ? c->excess_length_strategy.v : "drop";
    return !strcmp(e, "truncate") ? DS_EXCESS_TRUNCATE
           : !strcmp(e, "raise")  ? DS_EXCESS_RAISE
                                  : DS_EXCESS_DROP;
}

int ds_build_entry(const eft_config *c, const tok_tokenizer *t, ds_source *src, bool test,
                   ds_samples *out, ds_stats *st) {
    ds_samples_init(out);
    int64_t seq = test && c->eval_sequence_len.set ? c->eval_sequence_len.v : c->sequence_len.v;
    st->max_len = seq;
    ds_format f;
    if (ds_format_init(&f, c, src->d, src->what, t, seq)) {
        ds_format_free(&f);
        return -1;
    }
    ds_samples acc;
    ds_samples_init(&acc);
    origin *orig = NULL;
    int rc = read_all(&f, src, &acc, &orig, st);
    ds_format_free(&f);

    /* put the samples in the order the selection gave their rows */
    bool sorted = true;
    for (int64_t i = 1; i < acc.n && sorted; i++) sorted = orig[i - 1].pos <= orig[i].pos;
    if (!rc && !sorted) {
        int64_t *idx = eft_malloc((size_t)acc.n * sizeof *idx);
        for (int64_t i = 0; i < acc.n; i++) idx[i] = i;
        qsort_r(idx, (size_t)acc.n, sizeof *idx, cmp_origin_pos, orig);
        ds_samples tmp;
        ds_samples_gather(&tmp, &acc, idx, acc.n);
        origin *o2 = eft_malloc((size_t)acc.n * sizeof *o2);
        for (int64_t i = 0; i < acc.n; i++) o2[i] = orig[idx[i]];
        ds_samples_free(&acc);
        acc = tmp;
        eft_free(orig);
        orig = o2;
        eft_free(idx);
    }

    if (!rc) {
        ds_filter_counts fc = {0};
        int64_t bad = -1;
        if (ds_filter(&acc, seq, c->min_sample_len.v, excess_of(c), out, &fc, NULL, &bad)) {
            const origin *o = &orig[bad];
            const char *path = src->files[o->file].path;
            const char *key =
                test && c->eval_sequence_len.set ? "eval_sequence_len" : "sequence_len";
            rc = eft_fail("%s%s%lld: a sample of %lld tokens is longer than %s (%lld), and "
                          "excess_length_strategy is raise. Shorten the row, raise %s, or set "
                          "excess_length_strategy to drop or truncate.",
                          path, o->listed ? ": row " : ":", (long long)o->line,
                          (long long)ds_len(&acc, bad), key, (long long)seq, key);
        }
        st->too_short = fc.too_short, st->too_long = fc.too_long;
        st->truncated = fc.truncated, st->untrained = fc.untrained;
        count_kept(out, st);
    }
    ds_samples_free(&acc);
    eft_free(orig);
    if (rc) ds_samples_free(out);
    return rc;
}
