/* hash.h: content hashes (XXH3, 128 bits) for cache keys and file fingerprints.
 *
 * Used where a stale cache would be a silent bug: the prepared-dataset cache key is the hash of
 * everything that changes tokens or labels. Not cryptographic.
 */
#ifndef EFT_BASE_HASH_H
#define EFT_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct eft_hash {
    void *state; /* XXH3_state_t, owned */
} eft_hash;

void eft_hash_begin(eft_hash *h);
void eft_hash_bytes(eft_hash *h, const void *p, size_t n);
/* Adds a string with its length, so ("ab","c") and ("a","bc") differ. */
void eft_hash_str(eft_hash *h, const char *s);
void eft_hash_u64(eft_hash *h, uint64_t v);
/* Writes 32 lowercase hex digits and a NUL into hex[33]; frees the state. */
void eft_hash_end_hex(eft_hash *h, char hex[33]);
uint64_t eft_hash64(const void *p, size_t n);

#endif
