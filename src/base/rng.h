/* rng.h: seeded, reproducible random numbers.
 *
 * xoshiro256** seeded through splitmix64 from (seed, stream): the same pair always gives the same
 * sequence, on every machine, and different streams are independent. Give each consumer its own
 * stream (one per tensor to initialise, one per dataset shuffle) so that adding a consumer never
 * shifts the numbers another one sees. The state is a plain struct: a checkpoint saves it as is.
 */
#ifndef EFT_BASE_RNG_H
#define EFT_BASE_RNG_H

#include <stdint.h>

typedef struct eft_rng {
    uint64_t s[4];
} eft_rng;

void eft_rng_seed(eft_rng *r, uint64_t seed, uint64_t stream);
uint64_t eft_rng_u64(eft_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double eft_rng_uniform(eft_rng *r);
/* Uniform integer in [0, n), without modulo bias. n > 0. */
uint64_t eft_rng_below(eft_rng *r, uint64_t n);
/* Standard normal (Box-Muller on two uniforms; no cached second value, so the state alone
 * determines what comes next). */
double eft_rng_normal(eft_rng *r);
/* Fisher-Yates shuffle of n indices. */
void eft_rng_shuffle_u32(eft_rng *r, uint32_t *v, uint64_t n);
/* A 64-bit hash of a string, for deriving stream numbers from names. */
uint64_t eft_rng_stream_of(const char *name);

#endif
