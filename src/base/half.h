/* half.h: bfloat16 and IEEE half conversions.
 *
 * bf16 is the top 16 bits of an fp32. fp32 -> bf16 rounds to nearest, ties to even, as PyTorch
 * does; NaN stays a quiet NaN. The bulk versions convert arrays (the CPU backend widens frozen
 * bf16 weights to fp32 tile by tile).
 */
#ifndef EFT_BASE_HALF_H
#define EFT_BASE_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline float eft_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t eft_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* fp32 rounded to the nearest bf16 value, kept as fp32. */
static inline float eft_round_bf16(float f) { return eft_bf16_to_f32(eft_f32_to_bf16(f)); }

float eft_f16_to_f32(uint16_t h);
uint16_t eft_f32_to_f16(float f);

void eft_bf16_to_f32_n(float *dst, const uint16_t *src, size_t n);
void eft_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n);
void eft_f16_to_f32_n(float *dst, const uint16_t *src, size_t n);

#endif
