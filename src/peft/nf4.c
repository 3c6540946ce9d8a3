/* nf4.c: NF4 quantisation with double quantisation, as bitsandbytes does it (see nf4.h). */
#include "peft/nf4.h"

#include "base/err.h"
#include "base/half.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- The dynamic map ------------------------------------------------------------------------ */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void nf4_dynamic_map(float map[256]) {
    /* 10^(i - 6) as the double Python's 10 ** (i - 6) is, then fp32 as torch multiplies it. */
    static const double pow10[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
    int k = 0;
    for (int i = 0; i < 7; i++) {
        int n = (1 << i) + 1;
        float b[65], step = (1.0f - 0.1f) / (float)(n - 1), scale = (float)pow10[i];
        for (int j = 0; j < n; j++)
            b[j] = j < n / 2 ? fmaf(step, (float)j, 0.1f) : fmaf(-step, (float)(n - 1 - j), 1.0f);
        for (int j = 0; j + 1 < n; j++) {
            float mean = (b[j] + b[j + 1]) / 2.0f;
            map[k++] = scale * mean;
            map[k++] = -scale * mean;
        }
    }
    map[k++] = 0.0f;
    map[k++] = 1.0f;
    assert(k == 256);
    qsort(map, 256, sizeof *map, cmp_float);
}

static float shared_map[256];
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;
static void build_shared(void) {
    nf4_dynamic_map(shared_map);
}

const float *nf4_map(void) {
    pthread_once(&shared_once, build_shared);
    return shared_map;
}

/* ---- Step 1: 4-bit codes per block of 64 ----------------------------------------------------- */

static void load_block(float *v, const void *x, st_dtype dtype, int64_t start, int n) {
    const unsigned char *p = (const unsigned char *)x + (size_t)start * st_dtype_size(dtype);
    uint16_t h[OPS_NF4_BLOCK];
    if (dtype == ST_F32) {
        memcpy(v, p, (size_t)n * 4);
        return;
    }
    memcpy(h, p, (size_t)n * 2);
    if (dtype == ST_BF16)
        for (int i = 0; i < n; i++) v[i] = eft_bf16_to_f32(h[i]);
    else {
        assert(dtype == ST_F16);
        for (int i = 0; i < n; i++) v[i] = eft_f16_to_f32(h[i]);
    }
}

void nf4_quantize_blocks(uint8_t *codes, float *absmax, const void *x, st_dtype dtype, int64_t n) {
    float mid[15]; /* midpoints of neighbouring NF4 entries */
    for (int k = 0; k < 15; k++) mid[k] = (ops_nf4_codebook[k] + ops_nf4_codebook[k + 1]) / 2.0f;
    const float tiny = (float)1e-38; /* torch's clamp(min=1e-38) */
    int64_t blocks = ops_nf4_blocks(n);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t b = 0; b < blocks; b++) {
        int64_t start = b * OPS_NF4_BLOCK;
        int len = (int)EFT_MIN((int64_t)OPS_NF4_BLOCK, n - start);
        assert(len > 0 && len <= OPS_NF4_BLOCK);
        float v[OPS_NF4_BLOCK], amax = 0.0f;
        load_block(v, x, dtype, start, len);
#pragma omp simd reduction(max : amax)
        for (int i = 0; i < len; i++) amax = fabsf(v[i]) > amax ? fabsf(v[i]) : amax;
        bool full = len == OPS_NF4_BLOCK;
        float clamped = fmaxf(amax, tiny), recip = 1.0f / clamped;
        absmax[b] = full ? amax : clamped;
        uint8_t q[OPS_NF4_BLOCK + 1];
        if (full)
            for (int i = 0; i < len; i++) v[i] *= recip;
        else
            for (int i = 0; i < len; i++) v[i] /= clamped;
#pragma omp simd
        for (int i = 0; i < len; i++) {
            float s = v[i];
            s = s < -1.0f ? -1.0f : s > 1.0f ? 1.0f : s;
            /* the number of midpoints strictly below s (written out: GCC vectorises it so) */
            q[i] = (uint8_t)((s > mid[0]) + (s > mid[1]) + (s > mid[2]) + (s > mid[3]) +
                             (s > mid[4]) + (s > mid[5]) + (s > mid[6]) + (s > mid[7]) +
                             (s > mid[8]) + (s > mid[9]) + (s > mid[10]) + (s > mid[11]) +
                             (s > mid[12]) + (s > mid[13]) + (s > mid[14]));
        }
        q[len] = 7; /* an odd count pads with 0.0, whose index is 7 */
        uint8_t *out = codes + start / 2;
        for (int j = 0; j < (len + 1) / 2; j++) out[j] = (uint8_t)(q[2 * j] << 4 | q[2 * j + 1]);
    }
}

/* ---- Steps 2 and 3: the absmax, quantised to 8 bits in groups of 256 ------------------------- */

float nf4_mean(const float *absmax, int64_t blocks) {
    assert(blocks > 0);
    double sum = 0;
    for (int64_t b = 0; b < blocks; b++) sum += absmax[b];
    return (float)(sum / (double)blocks);
}

/* The map index bitsandbytes' CPU kernel gives x in [-1, 1]: x snapped to a 65536-point grid,
 * then the number of midpoints of the map below that grid point (binary search). */
static uint8_t grid_index(float x, const float mid[255]) {
    float t = (x + 1.0f) * 0.5f;
    t = t * 65535.0f;
    t = t + 0.5f;
    int k = (int)t;
    float point = -1.0f + (2.0f * (float)k) / 65535.0f;
    int lo = 0, hi = 255; /* the answer is in [lo, hi] */
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (mid[m] < point)
            lo = m + 1;
        else
            hi = m;
    }
    return (uint8_t)lo;
}

void nf4_quantize_absmax(uint8_t *qabsmax, float *absmax2, const float *absmax, int64_t blocks,
                         float offset, const float map[256]) {
    float mid[255];
    for (int j = 0; j < 255; j++) mid[j] = 0.5f * (map[j] + map[j + 1]);
    for (int64_t g = 0; g * OPS_NF4_GROUP < blocks; g++) {
        int64_t b0 = g * OPS_NF4_GROUP, b1 = EFT_MIN(b0 + OPS_NF4_GROUP, blocks);
        float amax = 0.0f;
        for (int64_t b = b0; b < b1; b++) amax = fmaxf(amax, fabsf(absmax[b] - offset));
        absmax2[g] = amax;
        float recip = 1.0f / amax;
        for (int64_t b = b0; b < b1; b++) {
            if (amax == 0.0f) {
                qabsmax[b] = 0;
                continue;
            }
            float x = (absmax[b] - offset) * recip;
            qabsmax[b] = grid_index(x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x, mid);
        }
    }
}

/* ---- The whole tensor ------------------------------------------------------------------------ */

static size_t align8(size_t n) {
    return (n + 7) & ~(size_t)7;
}

ops_nf4 *nf4_quantize(const void *x, st_dtype dtype, int64_t n, bool round_bf16) {
    assert(n > 0);
    int64_t blocks = ops_nf4_blocks(n), groups = ops_nf4_groups(n);
    size_t head = align8(sizeof(ops_nf4)), a2 = (size_t)groups * sizeof(float);
    size_t bytes = head + a2 + (size_t)blocks + (size_t)(n + 1) / 2;
    unsigned char *mem = eft_malloc(bytes);
    ops_nf4 *q = (ops_nf4 *)mem;
    float *absmax2 = (float *)(mem + head);
    uint8_t *qabsmax = mem + head + a2, *codes = qabsmax + blocks;

    float *absmax = eft_malloc((size_t)blocks * sizeof(float));
    nf4_quantize_blocks(codes, absmax, x, dtype, n);
    float offset = nf4_mean(absmax, blocks);
    nf4_quantize_absmax(qabsmax, absmax2, absmax, blocks, offset, nf4_map());
    eft_free(absmax);

    *q = (ops_nf4){.n = n,
                   .codes = codes,
                   .qabsmax = qabsmax,
                   .absmax2 = absmax2,
                   .map = nf4_map(),
                   .offset = offset,
                   .round_bf16 = round_bf16};
    return q;
}

void nf4_roundtrip(float *w, int64_t n) {
    ops_nf4 *q = nf4_quantize(w, ST_F32, n, false);
    /* w is only written here: the codes and scales are q's own. Chunks of whole blocks. */
    const int64_t chunk = (int64_t)OPS_NF4_BLOCK << 10;
#pragma omp parallel for schedule(static) if (n > chunk)
    for (int64_t c = 0; c < n; c += chunk) ops_nf4_dequantize(w + c, q, c, EFT_MIN(chunk, n - c));
    eft_free(q);
}

int64_t nf4_bytes(const ops_nf4 *q) {
    assert(q->first == 0); /* a whole tensor, not a view */
    return (q->n + 1) / 2 + ops_nf4_blocks(q->n) + 4 * ops_nf4_groups(q->n);
}
