/* hash.c: XXH3 wrappers (see hash.h). */
#include "base/hash.h"

#include "base/err.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>

void eft_hash_begin(eft_hash *h) {
    h->state = XXH3_createState();
    if (!h->state) eft_malloc((size_t)-1); /* reports out of memory */
    XXH3_128bits_reset(h->state);
}

void eft_hash_bytes(eft_hash *h, const void *p, size_t n) { XXH3_128bits_update(h->state, p, n); }

void eft_hash_u64(eft_hash *h, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    eft_hash_bytes(h, b, 8);
}

void eft_hash_str(eft_hash *h, const char *s) {
    size_t n = s ? strlen(s) : (size_t)-1;
    eft_hash_u64(h, (uint64_t)n);
    if (s) eft_hash_bytes(h, s, n);
}

void eft_hash_end_hex(eft_hash *h, char hex[33]) {
    XXH128_hash_t d = XXH3_128bits_digest(h->state);
    snprintf(hex, 33, "%016llx%016llx", (unsigned long long)d.high64, (unsigned long long)d.low64);
    XXH3_freeState(h->state);
    h->state = NULL;
}

uint64_t eft_hash64(const void *p, size_t n) { return XXH3_64bits(p, n); }
