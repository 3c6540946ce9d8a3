/* rng.c: xoshiro256** with splitmix64 seeding (see rng.h). */
#include "base/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void eft_rng_seed(eft_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t eft_rng_u64(eft_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double eft_rng_uniform(eft_rng *r) { return (double)(eft_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t eft_rng_below(eft_rng *r, uint64_t n) {
    uint64_t limit = -n % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = eft_rng_u64(r);
        if (x >= limit) return x % n;
    }
}

double eft_rng_normal(eft_rng *r) {
    double u1 = 1.0 - eft_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = eft_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void eft_rng_shuffle_u32(eft_rng *r, uint32_t *v, uint64_t n) {
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = eft_rng_below(r, i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

uint64_t eft_rng_stream_of(const char *name) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}
