/* bench_tokenizer.c: times eft's tokenizer on a JSONL corpus (built by bench_tokenizer.sh).
 *
 *   bench_tokenizer TOKENIZER CORPUS.jsonl [IDS_OUT.txt|""] [REPEAT]
 *
 * Prints the load time, then MB/s for tok_encode_batch on one thread, on all threads
 * (OMP_NUM_THREADS) with offsets, and on all threads without; each the median of REPEAT runs
 * (default 3), each run from a fresh load (a cold chunk cache). Writes the batch's ids, one line
 * of ids a document, for tokenizer_hf.py to compare. Reading the corpus is not timed, as on the
 * Python side.
 */
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "base/threads.h"
#include "io/json.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct corpus {
    char **text;
    size_t *len, n, bytes;
} corpus;

static int read_corpus(const char *path, corpus *c) {
    FILE *f = fopen(path, "r");
    if (!f) return eft_fail_errno(path, "Run bench/bench_tokenizer.sh, which makes it.");
    char *line = NULL;
    size_t cap = 0, ncap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        cJSON *o = eft_json_parse(line, (size_t)got, path);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (!cJSON_IsString(t)) return eft_fail("%s: line %zu has no \"text\"", path, c->n + 1);
        if (c->n == ncap) {
            ncap = ncap ? 2 * ncap : 1024;
            c->text = eft_realloc(c->text, ncap * sizeof *c->text);
            c->len = eft_realloc(c->len, ncap * sizeof *c->len);
        }
        c->len[c->n] = strlen(t->valuestring);
        c->text[c->n] = eft_strndup(t->valuestring, c->len[c->n]);
        c->bytes += c->len[c->n++];
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median time of `repeat` runs, each on a freshly loaded tokenizer (an empty chunk cache) and
 * fresh output lists, as a pipeline that tokenizes a dataset once would see it. */
static double time_encode(const char *tok_path, const corpus *c, tok_ids *outs, int repeat,
                          int threads, bool offsets) {
    double times[16];
    repeat = repeat < 1 ? 1 : repeat > 16 ? 16 : repeat;
    eft_threads_set(threads);
    for (int r = 0; r < repeat; r++) {
        tok_tokenizer *t = tok_load(tok_path);
        if (!t) return -1;
        for (size_t i = 0; i < c->n; i++) {
            tok_ids_free(&outs[i]);
            if (offsets) tok_encode_offsets(t, "", 0, false, &outs[i]);
        }
        double t0 = eft_now();
        if (tok_encode_batch(t, (const char *const *)c->text, c->len, c->n, true, outs)) return -1;
        times[r] = eft_now() - t0;
        tok_free(t);
    }
    qsort(times, (size_t)repeat, sizeof *times, cmp_double);
    return times[repeat / 2];
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER CORPUS.jsonl [IDS_OUT.txt] [REPEAT]\n", argv[0]);
        return 1;
    }
    int repeat = argc > 4 ? atoi(argv[4]) : 3, all = eft_threads();
    double t0 = eft_now();
    tok_tokenizer *t = tok_load(argv[1]);
    if (!t) goto fail;
    double load = eft_now() - t0;
    tok_free(t);
    corpus c = {0};
    if (read_corpus(argv[2], &c)) goto fail;
    tok_ids *outs = eft_calloc(c.n, sizeof *outs);
    double mb = (double)c.bytes / 1e6;
    printf("eft: load %.3f s; corpus %zu documents, %.1f MB\n", load, c.n, mb);
    double one = time_encode(argv[1], &c, outs, repeat, 1, false);
    double offs = time_encode(argv[1], &c, outs, repeat, all, true);
    double batch = time_encode(argv[1], &c, outs, repeat, all, false);
    if (one < 0 || offs < 0 || batch < 0) goto fail;
    size_t ntok = 0;
    for (size_t i = 0; i < c.n; i++) ntok += outs[i].n;
    printf("eft: 1 thread %.2f MB/s; %d threads %.2f MB/s with offsets; %d threads %.2f MB/s "
           "(%.2f M tokens/s)\n",
           mb / one, all, mb / offs, all, mb / batch, (double)ntok / batch / 1e6);
    if (argc > 3 && *argv[3]) {
        FILE *f = fopen(argv[3], "w");
        if (!f) {
            eft_fail_errno(argv[3], NULL);
            goto fail;
        }
        for (size_t i = 0; i < c.n; i++) {
            for (size_t k = 0; k < outs[i].n; k++) fprintf(f, k ? " %d" : "%d", outs[i].ids[k]);
            fputc('\n', f);
        }
        fclose(f);
    }
    return 0;
fail:
    fprintf(stderr, "bench_tokenizer: %s\n", eft_err_msg());
    return 1;
}
