/* opt_adamw8.h: the 8-bit state of bitsandbytes' and torchao's 8-bit AdamW (training-math.md 5):
 * the dynamic maps, the two quantisers and the two updates, on the tensors of an opt_adamw.
 *
 * The trainer does not call this file: opt_adamw_init/step (opt_adamw.h) dispatch to it for the
 * kinds OPT_ADAMW_TORCHAO_8BIT and OPT_ADAMW_BNB_8BIT. It is public for the tests.
 *
 * State of a quantised tensor of n elements, per moment: a code per element (uint8, an index
 * into the map: signed for m, unsigned for v) and an fp32 scale ("absmax") per block of 256
 * consecutive elements of the flattened tensor; the moment of element e is
 * map[code[e]] * absmax[e / 256], one fp32 product. All zeros at the start (both moments 0).
 *
 *                     torchao AdamW8bit (0.17)           bitsandbytes AdamW 8-bit (0.49)
 *   quantised when    n >= 4096 and n % 256 == 0         n >= 4096 (last block may be partial)
 *   otherwise         fp32 m, v, the same update         fp32 m, v, its 32-bit kernel (BNB32)
 *   scale             max(max |x|, 1e-12)                max |x| (may be 0)
 *   rounding          nearest, ties up                   nearest, ties to the even code; then
 *                                                         a negative m never takes the 0 code
 *   weight decay      before the Adam step               after it
 *   NaN/Inf gradient  propagates                         the element's m, v reset, no update
 *   learning rate     an fp32 tensor (opt_adamw_lr)      fp32 in the kernel
 * Both update the parameter with the fresh fp32 moments, then re-quantise them.
 *
 * The maps. Both libraries build them with torch.linspace on the host CPU, whose arithmetic
 * depends on the CPU kernels torch picks: with AVX2 or AVX-512 (any x86-64 host of the last
 * decade, so every reference run on a GPU server) each point is one fused multiply-add,
 * fma(step, j, 0.1f); with torch's portable kernels (ATEN_CPU_CAPABILITY=default) it is the
 * spec's unfused formula. 42 entries of the signed map and 31 of the unsigned differ between the
 * two, by one ulp or (6 of them) two. eft builds the fused maps: test_opt8.c checks both variants bit for bit
 * against torchao's tables from either kind of kernel (tests/data_files/optim/adamw8.safetensors).
 *
 * Rounding that eft cannot reproduce: bitsandbytes' CUDA kernel runs with fast math (__powf, a
 * reciprocal division before the rounding), and torchao's kernel is whatever torch.compile
 * generates for the GPU (FMA contraction). eft computes each line in IEEE fp32 as written, which
 * matches torchao's compiled CPU kernel bit for bit and either GPU kernel to a few ulps, with a
 * code one step off where a value sits on a rounding boundary.
 */
#ifndef EFT_TRAIN_OPT_ADAMW8_H
#define EFT_TRAIN_OPT_ADAMW8_H

#include "train/opt_adamw.h"

#include <stdbool.h>
#include <stdint.h>

enum {
    OPT8_BLOCK = 256,     /* elements per fp32 scale */
    OPT8_MIN_SIZE = 4096, /* smaller tensors keep fp32 moments (bitsandbytes' min_8bit_size) */
    OPT8_CODES = 256,     /* entries of a map */
};

/* The blocks of a tensor of n elements: ceil(n / 256). */
int64_t opt8_blocks(int64_t n);

/* Whether `kind` keeps 8-bit moments for the tensor `name` of n elements: never for the fp32
 * kinds; torchao when n >= 4096 and n % 256 == 0; bitsandbytes when n >= 4096, except for the
 * weight of an embedding (`embed_tokens.weight`, `embed_tokens_per_layer.weight`), which the
 * Trainer overrides to 32-bit state. */
bool opt8_quantised(opt_kind kind, const char *name, int64_t n);

/* The dynamic map (training-math.md 5.2), sorted: signed (for m, in [-1, 1], no -1 entry) or
 * unsigned (for v, in [0, 1]). For i = 0..6, the means of consecutive points of
 * linspace(0.1, 1, n_i) (n_i = 2^i + 1 signed, 2^(i+1) + 1 unsigned) times (float)10^(i-6), with
 * their negatives when signed, then 0 and 1. `fused`: the linspace points are fused multiply-adds
 * (torch's AVX2/AVX-512 kernels; eft's choice); else the spec's unfused formula. */
void opt8_map_build(float q[OPT8_CODES], bool is_signed, bool fused);

/* torchao's quantiser: c = the largest index with q[c] <= x (0 when x < q[0] or x is NaN), then
 * c + 1 (at most 255) when x - q[c] >= (q[c+1] - q[c]) * 0.5f, in fp32. */
uint8_t opt8_code_torchao(const float q[OPT8_CODES], float x);
/* bitsandbytes' quantiser: the nearest entry by the fp32 midpoints (q[j] + q[j+1]) * 0.5f; at a
 * midpoint, the even one of j and j + 1. Without the sign fix (opt8_step_bnb applies it). */
uint8_t opt8_code_bnb(const float q[OPT8_CODES], float x);

/* One update of tensor t, whose t->t is already advanced, with learning rate lr, as torchao
 * does it: on the 8-bit state when t has one (t->m_code), else on fp32 t->m, t->v. qm, qv: the
 * signed and unsigned maps. Allocates nothing. */
void opt8_step_torchao(const opt_tensor *t, const opt_hparams *h, double lr,
                       const float qm[OPT8_CODES], const float qv[OPT8_CODES]);
/* The same for bitsandbytes' blockwise 8-bit kernel; t must have 8-bit state (its fp32 fallback
 * is opt_adamw.c's BNB32 kernel). */
void opt8_step_bnb(const opt_tensor *t, const opt_hparams *h, double lr, const float qm[OPT8_CODES],
                   const float qv[OPT8_CODES]);

#endif
