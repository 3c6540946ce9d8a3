/* tok_scratch.c: each thread's working buffers and chunk cache, per tokenizer.
 *
 * tok_encode has no state argument, yet a thread that encodes many texts should keep its buffers
 * and its cache. So each (thread, tokenizer) pair gets one tok_scratch, owned by the tokenizer
 * (freed by tok_free) and found through a thread-local (serial, scratch) pair. Serials are never
 * reused, so a thread-local pointer left over from a freed tokenizer is never followed. The
 * registry is searched under a mutex only when a thread meets a tokenizer it did not use last.
 * A scratch belongs to one live thread; a new thread that inherits a dead one's pthread_t takes
 * over its scratch, which is then unused.
 */
#include "text/tok_internal.h"

#include "base/err.h"

#include <pthread.h>
#include <string.h>

struct tok_scratch_registry {
    pthread_mutex_t lock;
    struct tok_scratch_owner {
        pthread_t thread;
        tok_scratch *scratch;
    } * owner;
    size_t n, cap;
};

static _Thread_local struct {
    uint64_t serial;
    tok_scratch *scratch;
} last_used;

tok_scratch *tok_scratch_get(const tok_tokenizer *t) {
    if (last_used.serial == t->serial) return last_used.scratch;
    tok_scratch_registry *r = t->scratch; /* made by tok_scratch_init at load */
    pthread_t me = pthread_self();
    tok_scratch *s = NULL;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n && !s; i++)
        if (pthread_equal(r->owner[i].thread, me)) s = r->owner[i].scratch;
    if (!s) {
        s = eft_calloc(1, sizeof *s);
        s->cache = tok_cache_new();
        tok_scratch_reserve_tokens(s, 256); /* never NULL, even for a word that gives none */
        if (r->n == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 4;
            r->owner = eft_realloc(r->owner, r->cap * sizeof *r->owner);
        }
        r->owner[r->n++] = (struct tok_scratch_owner){me, s};
    }
    pthread_mutex_unlock(&r->lock);
    last_used.serial = t->serial;
    last_used.scratch = s;
    return s;
}

void tok_scratch_init(tok_tokenizer *t) {
    t->scratch = eft_calloc(1, sizeof *t->scratch);
    pthread_mutex_init(&t->scratch->lock, NULL);
}

static void scratch_free(tok_scratch *s) {
    eft_free(s->norm);
    eft_free(s->norm2);
    eft_free(s->ostart);
    eft_free(s->oend);
    eft_free(s->ostart2);
    eft_free(s->oend2);
    eft_free(s->words);
    eft_free(s->words2);
    eft_free(s->tid);
    eft_free(s->tlen);
    eft_free(s->cid);
    eft_free(s->clen);
    eft_free(s->cut);
    eft_free(s->first);
    eft_free(s->hash);
    eft_free(s->sym);
    eft_free(s->heap_key);
    eft_free(s->heap_new);
    tok_cache_free(s->cache);
    eft_free(s);
}

void tok_scratch_free_all(tok_tokenizer *t) {
    tok_scratch_registry *r = t->scratch;
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) scratch_free(r->owner[i].scratch);
    eft_free(r->owner);
    pthread_mutex_destroy(&r->lock);
    eft_free(r);
    t->scratch = NULL;
}

static size_t grown(size_t cap, size_t need) {
    size_t c = cap ? cap : 256;
    while (c < need) c *= 2;
    return c;
}

void tok_scratch_reserve_norm(tok_scratch *s, size_t n) {
    if (n + 1 <= s->norm_cap) return;
    size_t c = grown(s->norm_cap, n + 1);
    s->norm = eft_realloc(s->norm, c);
    s->norm2 = eft_realloc(s->norm2, c);
    s->ostart = eft_realloc(s->ostart, c * sizeof *s->ostart);
    s->oend = eft_realloc(s->oend, c * sizeof *s->oend);
    s->ostart2 = eft_realloc(s->ostart2, c * sizeof *s->ostart2);
    s->oend2 = eft_realloc(s->oend2, c * sizeof *s->oend2);
    s->norm_cap = c;
}

void tok_scratch_reserve_words(tok_scratch *s, size_t n) {
    if (n <= s->words_cap) return;
    size_t c = grown(s->words_cap, n);
    s->words = eft_realloc(s->words, 2 * c * sizeof *s->words);
    s->words2 = eft_realloc(s->words2, 2 * c * sizeof *s->words2);
    s->words_cap = c;
}

void tok_scratch_reserve_tokens(tok_scratch *s, size_t n) {
    if (n <= s->tok_cap) return;
    size_t c = grown(s->tok_cap, n);
    s->tid = eft_realloc(s->tid, c * sizeof *s->tid);
    s->tlen = eft_realloc(s->tlen, c * sizeof *s->tlen);
    s->tok_cap = c;
}

void tok_scratch_reserve_chars(tok_scratch *s, size_t n) {
    if (n <= s->chars_cap) return;
    size_t c = grown(s->chars_cap, n);
    s->cid = eft_realloc(s->cid, c * sizeof *s->cid);
    s->clen = eft_realloc(s->clen, c * sizeof *s->clen);
    s->cut = eft_realloc(s->cut, (c + 1) * sizeof *s->cut);
    s->first = eft_realloc(s->first, (c + 1) * sizeof *s->first);
    s->hash = eft_realloc(s->hash, (c + 1) * sizeof *s->hash);
    s->chars_cap = c;
}
