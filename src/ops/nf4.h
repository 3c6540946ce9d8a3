/* nf4.h: the NF4 weight format the kernels read (QLoRA's 4-bit frozen base), and its
 * dequantisation. Included by ops.h; the quantiser that makes these tensors, bit for bit as
 * bitsandbytes does, is src/peft/nf4.h.
 *
 * The layout is bitsandbytes' QuantState for quant_type "nf4", blocksize 64, double quantisation
 * (compress_statistics) with groups of 256 (axolotl-compat.md 4.1). The weight [rows, cols] is
 * flattened row-major and cut into blocks of 64 consecutive values (the last may be shorter;
 * blocks run across row ends). Element i is
 *
 *     absmax_b = map[qabsmax[b]] * absmax2[b / 256] + offset          b = i / 64, fp32, unfused
 *     w_i      = NF4[code_i] * absmax_b                                fp32
 *
 * with code_i the high nibble of codes[i / 2] for even i and the low nibble for odd i, and then,
 * when round_bf16 is set, rounded to bf16 (nearest, ties to even). These are bitsandbytes'
 * dequantize_4bit to float32 and to bfloat16 exactly: the same operations in the same order
 * (no fused multiply-add).
 *
 * A view (ops_nf4_view) is part of a quantised tensor: one expert's [out, in] map of a 3-D expert
 * tensor [E, out, in], which Axolotl quantises whole (flattened, as above). It keeps the whole
 * tensor's arrays and says where its element 0 sits in them (`first`), so its blocks, their absmax
 * and the group of 256 each block's absmax belongs to are the whole tensor's: element i of the
 * view is element first + i above. A view may start and end inside a block (blocks run across
 * expert ends when out * in is not a multiple of 64; Gemma 4's are).
 *
 * Which of the two eft uses is bnb_4bit_compute_dtype's choice (src/peft/nf4.h): bitsandbytes
 * dequantises to the compute dtype for the forward GEMM and to the checkpoint's dtype for the
 * input gradient, both bf16 in Axolotl's QLoRA, so round_bf16 is what "faithful to QLoRA" means;
 * the unrounded product is what an fp32 reference computes.
 *
 * Not here: quantisation, the dynamic map's values (the tensor points to its map, as QuantState
 * does), anything about which model weights are NF4.
 */
#ifndef EFT_OPS_NF4_H
#define EFT_OPS_NF4_H

#include "base/half.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    OPS_NF4_BLOCK = 64,  /* values per absmax */
    OPS_NF4_GROUP = 256, /* absmax values per second-level scale */
};

/* The 16 NF4 values (bitsandbytes' get_4bit_type("nf4")), as fp32. */
extern const float ops_nf4_codebook[16];

/* The arrays are those of the quantised storage: a whole tensor's, shared by its views. Block b,
 * group g and element j below are positions in that storage; the tensor's element i is the
 * storage's element first + i. */
typedef struct ops_nf4 {
    int64_t n;     /* values of this tensor: rows * cols */
    int64_t first; /* the storage element that is this tensor's element 0: 0 for a whole tensor */
    const uint8_t *codes;   /* [(j + 1) / 2] two 4-bit codebook indices per byte, even j high */
    const uint8_t *qabsmax; /* [blocks] index into map of (absmax_b - offset) / absmax2 */
    const float *absmax2;   /* [groups] max |absmax_b - offset| over each group of 256 blocks */
    const float *map;       /* [256] the signed dynamic map the absmax was quantised with */
    float offset;           /* mean of the absmax values of the whole storage */
    bool round_bf16;        /* dequantised values are rounded to bf16 */
} ops_nf4;

static inline int64_t ops_nf4_blocks(int64_t n) {
    return (n + OPS_NF4_BLOCK - 1) / OPS_NF4_BLOCK;
}
static inline int64_t ops_nf4_groups(int64_t n) {
    return (ops_nf4_blocks(n) + OPS_NF4_GROUP - 1) / OPS_NF4_GROUP;
}

/* Elements [first, first + n) of w as a tensor of its own (see the top of this file): expert x's
 * map of a 3-D expert tensor is ops_nf4_view(w, x * out * in, out * in). */
static inline ops_nf4 ops_nf4_view(const ops_nf4 *w, int64_t first, int64_t n) {
    ops_nf4 v = *w;
    v.first = w->first + first;
    v.n = n;
    return v;
}

/* absmax of storage block b, dequantised: one multiply, then one add, in fp32 (two statements,
 * so that no compiler fuses them: clang contracts only within one expression, GCC not at all in
 * ISO C). */
static inline float ops_nf4_absmax(const ops_nf4 *w, int64_t b) {
    float scaled = w->map[w->qabsmax[b]] * w->absmax2[b / OPS_NF4_GROUP];
    return scaled + w->offset;
}

/* The 4-bit code of storage element j. */
static inline unsigned ops_nf4_code(const ops_nf4 *w, int64_t j) {
    uint8_t byte = w->codes[j >> 1];
    return (j & 1) ? (byte & 15u) : (byte >> 4);
}

/* The 16 values a code takes in storage block b: NF4[k] * absmax_b (bf16-rounded when
 * round_bf16). Element j of the block is t[ops_nf4_code(w, j)]: the same arithmetic as the
 * formula above, done once per block instead of once per element. */
static inline void ops_nf4_table(float t[16], const ops_nf4 *w, int64_t b) {
    float absmax = ops_nf4_absmax(w, b);
    for (int k = 0; k < 16; k++) {
        float v = ops_nf4_codebook[k] * absmax;
        t[k] = w->round_bf16 ? eft_round_bf16(v) : v;
    }
}

/* Dequantises the tensor's elements [start, start + count) into out[count] (fp32; bf16-rounded
 * values when w->round_bf16). */
void ops_nf4_dequantize(float *out, const ops_nf4 *w, int64_t start, int64_t count);

#endif
