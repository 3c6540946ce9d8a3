/* arena.c: bump allocation from one block (see arena.h). */
#include "base/arena.h"

#include "base/err.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64

void eft_arena_init(eft_arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    a->cap = (cap + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    a->base = eft_malloc_aligned(a->cap);
}

void eft_arena_init_measure(eft_arena *a) {
    memset(a, 0, sizeof *a);
    a->measure = true;
}

void *eft_arena_alloc(eft_arena *a, size_t bytes) {
    size_t size = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    size_t at = a->used;
    a->used += size;
    if (a->used > a->peak) a->peak = a->used;
    if (a->measure) return NULL;
    if (a->used > a->cap) {
        fprintf(stderr, "eft: internal error: arena of %zu bytes asked for %zu more at %zu; "
                        "the memory plan is wrong. Please report this.\n", a->cap, bytes, at);
        abort();
    }
    return a->base + at;
}

void *eft_arena_calloc(eft_arena *a, size_t bytes) {
    void *p = eft_arena_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void eft_arena_reset(eft_arena *a, size_t mark) {
    assert(mark <= a->used);
    a->used = mark;
}

void eft_arena_free(eft_arena *a) {
    eft_free_aligned(a->base);
    memset(a, 0, sizeof *a);
}
