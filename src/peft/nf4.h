/* nf4.h: quantising a weight to NF4 with double quantisation, bit for bit as bitsandbytes' CPU
 * quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4") makes it
 * (axolotl-compat.md 4.1; bitsandbytes 0.50, checked by tests/peft/test_nf4.c against
 * tools/make_nf4_reference.py). The result is the ops_nf4 the kernels read (ops/nf4.h).
 *
 * The steps, and where the reference's arithmetic is pinned down:
 *   1. Blocks of 64 consecutive values of the flattened tensor (read as fp32 from bf16, f16 or
 *      f32). absmax_b = max |w|. A full block is scaled by its reciprocal, w * (1 / absmax_b)
 *      (the reciprocal of max(absmax_b, 1e-38), the stored absmax unclamped); the last, partial
 *      block is divided, w / max(absmax_b, 1e-38), and stores the clamped value. The scaled
 *      value, clamped to [-1, 1], gets the index of the number of midpoints between neighbouring
 *      NF4 entries (fp32 (a + b) / 2) that lie strictly below it: the nearest entry, ties to the
 *      lower one. Two indices per byte, the even element in the high nibble; an odd count pads
 *      with the index of 0.0 (7).
 *   2. offset = mean of the absmax values. The reference takes torch's float32 mean, whose last
 *      bit depends on the summation order (vector width, thread count, CPU or CUDA); eft takes the
 *      correctly rounded mean (double sum, one rounding), which is within 2 ulp of those.
 *   3. c_b = absmax_b - offset (fp32), in groups of 256: absmax2_g = max |c_b| (0 gives index 0
 *      for the whole group); x = c_b * (1 / absmax2_g) clamped to [-1, 1]. The index is chosen as
 *      bitsandbytes' CPU kernel chooses it: x goes to one of 65536 points of a uniform grid on
 *      [-1, 1], k = trunc((x + 1) / 2 * 65535 + 0.5) (fp32, unfused), and the index is the number
 *      of midpoints of neighbouring map entries below the grid point -1 + 2k / 65535. This is the
 *      nearest map entry except within half a grid step (1.5e-5) of a midpoint, which happens
 *      only near zero, where the map is finer than the grid: bitsandbytes' CUDA kernel takes the
 *      exact nearest entry and differs there (about 0.2% of the absmax codes of a large tensor,
 *      each by one map step, a change of the block's scale below 1e-5 relative).
 *   4. The map is bitsandbytes' signed dynamic map, create_dynamic_map(signed=True), built in fp32
 *      as torch builds it: linspace(0.1, 1, 2^i + 1) for i = 0..6, with torch's CPU linspace
 *      computing start + step * j as one fused multiply-add (j < n / 2; end - step * (n - 1 - j)
 *      above), the means of neighbours times fp32(10^(i - 6)), both signs, then 0 and 1, sorted.
 *
 * Not here: which model weights are quantised and the loading (nf4_load.h); dequantisation
 * (ops_nf4_dequantize).
 */
#ifndef EFT_PEFT_NF4_H
#define EFT_PEFT_NF4_H

#include "io/safetensors.h"
#include "ops/ops.h"

#include <stdbool.h>
#include <stdint.h>

/* bitsandbytes' signed 8-bit dynamic map, ascending, into map[256]. */
void nf4_dynamic_map(float map[256]);
/* The same map, built once per process (thread-safe); every tensor nf4_quantize makes points to
 * it. */
const float *nf4_map(void);

/* Step 1 over n values x[n] of type dtype (ST_BF16, ST_F16 or ST_F32; x need not be aligned):
 * codes[(n + 1) / 2] and absmax[ops_nf4_blocks(n)]. */
void nf4_quantize_blocks(uint8_t *codes, float *absmax, const void *x, st_dtype dtype, int64_t n);
/* Step 2: the correctly rounded mean of absmax[blocks]. */
float nf4_mean(const float *absmax, int64_t blocks);
/* Step 3: qabsmax[blocks] and absmax2[ceil(blocks / 256)] of absmax[blocks] - offset. */
void nf4_quantize_absmax(uint8_t *qabsmax, float *absmax2, const float *absmax, int64_t blocks,
                         float offset, const float map[256]);

/* The whole quantisation of x[n]. Returns one eft_malloc block that holds the ops_nf4 and its
 * arrays: owned by the caller, freed with eft_free. round_bf16: dequantise to bf16-rounded values
 * (bnb_4bit_compute_dtype bfloat16, Axolotl's QLoRA) or to the exact fp32 product (float32).
 * Scratch: the n / 64 first-stage absmax values. */
ops_nf4 *nf4_quantize(const void *x, st_dtype dtype, int64_t n, bool round_bf16);

/* QLoRA's NF4 round trip at merge time (axolotl-compat.md 4.3, Axolotl's _simulate_nf4_roundtrip
 * before it casts back): w[n] is replaced in place by nf4_quantize of its fp32 values (the whole
 * array flattened, blocksize 64, double quantisation) dequantised to the exact fp32 product, as
 * bitsandbytes' dequantize_4bit to float32 gives it. Scratch: the NF4 tensor (about n / 2 bytes).
 */
void nf4_roundtrip(float *w, int64_t n);

/* Bytes of an NF4 tensor's arrays (codes, qabsmax, absmax2): what the memory plan counts
 * (g4_nf4_bytes). The header, the offset and the shared map are not counted. */
int64_t nf4_bytes(const ops_nf4 *q);

#endif
