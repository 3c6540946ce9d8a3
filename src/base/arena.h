/* arena.h: one block of memory handed out front to back.
 *
 * The training step allocates nothing: every buffer a step needs is sized by the plan before
 * step 0 and taken from an arena. An arena is one 64-byte-aligned allocation; eft_arena_alloc()
 * hands out 64-byte-aligned pieces and never fails at run time: asking for more than the plan
 * sized is a bug in the plan, and asserts. Marks let a phase (one layer's backward) take scratch
 * and give it all back at once. peak records the high-water mark, which the memory plan checks.
 *
 * A measuring arena (eft_arena_init_measure) hands out nothing and only adds up sizes, so the
 * same code that carves the buffers can also size them.
 */
#ifndef EFT_BASE_ARENA_H
#define EFT_BASE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct eft_arena {
    unsigned char *base; /* NULL in a measuring arena */
    size_t cap, used, peak;
    bool measure;
} eft_arena;

void eft_arena_init(eft_arena *a, size_t cap);
void eft_arena_init_measure(eft_arena *a);
/* 64-byte-aligned, uninitialised; NULL only in a measuring arena. */
void *eft_arena_alloc(eft_arena *a, size_t bytes);
/* Same, zero-filled. */
void *eft_arena_calloc(eft_arena *a, size_t bytes);
static inline size_t eft_arena_mark(const eft_arena *a) { return a->used; }
void eft_arena_reset(eft_arena *a, size_t mark);
void eft_arena_free(eft_arena *a);

#endif
