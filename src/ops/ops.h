/* ops.h: eft's numeric primitives, forward and backward. This header is the contract; cpu/
 * implements it (and a CUDA backend will implement the same functions later).
 *
 * Every layer is a pair of plain functions, llm.c style: OPS(x_forward)(outputs, saved, inputs,
 * shapes) and OPS(x_backward)(input gradients, output gradient, what the forward saved, shapes).
 * Tensors are raw row-major pointers with the shape beside them; linear weights are [out, in] as
 * in Hugging Face checkpoints. T is the number of tokens of one packed row: the caller loops over
 * the rows of a micro-batch.
 *
 * Precision twin. The kernels are written once over `ops_real` and compiled twice: into libeft
 * with ops_real = float and names ops_* (what the model calls), and for the tests only with
 * ops_real = double and names ops64_* (EFT_OPS_F64 defined; CMake target eft_ops_f64), on which
 * the finite-difference checks run. OPS(name) expands to the name of the current twin, so the
 * declarations below read `OPS(rmsnorm_forward)` for ops_rmsnorm_forward / ops64_rmsnorm_forward.
 * A file may include this header twice, once without and once with EFT_OPS_F64, to see both.
 *
 * Conventions, shared by every op:
 *   - Backward ACCUMULATES into its input gradients (dx +=, dw +=), so residual streams and shared
 *     tensors (tied embeddings, k_eq_v, KV-shared donor layers) need no copies. The caller zeroes
 *     gradient buffers once. The one exception is RoPE, whose backward rotates in place.
 *   - A weight gradient pointer may be NULL: the weight is frozen and its gradient GEMM is skipped
 *     entirely (this is what makes LoRA cost ~4N rather than 6N FLOPs per token).
 *   - Ops allocate nothing. Those that need scratch have OPS(x_scratch_bytes)(shape..., nthreads)
 *     and take (void *scratch, size_t scratch_bytes); the caller carves it from an arena, sized
 *     for at least omp_get_max_threads() threads (asserted). Attention and loss scratch do not
 *     grow with T or V.
 *   - Threads: OpenMP over rows, heads or tiles; large GEMMs through OpenBLAS. A GEMM called from
 *     inside an op's own parallel region runs single-threaded (OpenBLAS's OpenMP build returns one
 *     thread when omp_in_parallel()). Reductions run in a fixed order with no float atomics: the
 *     same inputs and thread count give the same bits.
 *   - Inputs that break a precondition (shapes, ids out of range, a bad doc_start) are bugs of the
 *     caller and assert; no op can fail on valid input.
 */

/* Shared by both twins. */
#ifndef EFT_OPS_H_COMMON
#define EFT_OPS_H_COMMON

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/nf4.h"

/* A frozen weight as it arrives: ops_real values of the current twin, bf16, or NF4 (nf4.h). bf16
 * and NF4 are widened to ops_real in row blocks into the op's scratch while packed for the GEMM;
 * only the linear maps take NF4 (embedding tables and the LM head are never quantised). */
enum { OPS_W_REAL = 0, OPS_W_BF16 = 1, OPS_W_NF4 = 2 };
typedef struct ops_weight {
    int dtype;        /* OPS_W_REAL, OPS_W_BF16 or OPS_W_NF4 */
    const void *data; /* [rows, cols] row-major, of ops_real or uint16_t (bf16); or an ops_nf4 */
} ops_weight;

static inline ops_weight ops_w_real(const void *data) {
    return (ops_weight){OPS_W_REAL, data};
}
static inline ops_weight ops_w_bf16(const uint16_t *data) {
    return (ops_weight){OPS_W_BF16, data};
}
static inline ops_weight ops_w_nf4(const ops_nf4 *w) {
    return (ops_weight){OPS_W_NF4, w};
}

/* Label value that the loss skips (PyTorch's ignore_index). */
#define OPS_IGNORE_INDEX (-100)

/* Shape and mask of one attention call. Query i may attend to key j when
 *     j <= i  AND  j >= doc_start[i]  AND  (window == 0 OR j > i - window),
 * i.e. causal, inside its own packed document, and (sliding layers) among the `window` most
 * recent keys counting itself (Gemma's sliding_window). Because documents are contiguous, the
 * allowed keys of row i are one interval [lo_i, i] with lo_i non-decreasing in i. Padding at the
 * end of a packed row is simply one more document (its outputs carry no loss). */
typedef struct ops_attn {
    int T;                    /* tokens of the packed row */
    int nH, nKV;              /* query heads, key/value heads; nH % nKV == 0 (GQA) */
    int D;                    /* head dim (any; Gemma 4: 256 sliding, 512 full) */
    int window;               /* sliding window W > 0, or 0 for none */
    double scale;             /* logit scale (Gemma 4: 1.0, the q/k norms set the scale) */
    const int32_t *doc_start; /* [T] first token of token t's document; NULL: one document.
                               * Non-decreasing, doc_start[t] <= t, equal to t or to
                               * doc_start[t-1] (asserted). */
} ops_attn;

#endif /* EFT_OPS_H_COMMON */

/* Per twin: declared once for float (ops_*) and once for double (ops64_*). */
#ifdef EFT_OPS_F64
#ifndef EFT_OPS_H_F64
#define EFT_OPS_H_F64
#define EFT_OPS_DECLARE
#endif
#else
#ifndef EFT_OPS_H_F32
#define EFT_OPS_H_F32
#define EFT_OPS_DECLARE
#endif
#endif

#ifdef EFT_OPS_DECLARE
#undef EFT_OPS_DECLARE
#undef OPS
#undef ops_real
#ifdef EFT_OPS_F64
#define ops_real  double
#define OPS(name) ops64_##name
#else
#define ops_real  float
#define OPS(name) ops_##name
#endif

/* ---- RMSNorm (spec gemma4 §3.1, §7.1) ------------------------------------------------------
 * y = x * rstd * w with rstd = pow(mean(x^2) + eps, -0.5) per row; w == NULL: no scale (v_norm).
 * The multiplier is w itself, NOT 1 + w (Gemma 4 differs from Gemma 3 here). Per-head q/k/v
 * norms are the same op with N = T * heads and C = D. y may equal x; rstd is saved for the
 * backward, which also needs x.
 * Backward: dx += rstd * (g - n * mean(g * n)) with g = dy * w and n = x * rstd; dw += sum over
 * rows of dy * n (dw NULL: skipped; w NULL implies dw NULL). dx must not alias dy. */
void OPS(rmsnorm_forward)(ops_real *y,       /* [N, C] */
                          ops_real *rstd,    /* [N] */
                          const ops_real *x, /* [N, C] */
                          const ops_real *w, /* [C] or NULL */
                          int N, int C, ops_real eps);
void OPS(rmsnorm_backward)(ops_real *dx,         /* [N, C] += */
                           ops_real *dw,         /* [C] += or NULL */
                           const ops_real *dy,   /* [N, C] */
                           const ops_real *x,    /* [N, C] */
                           const ops_real *w,    /* [C] or NULL */
                           const ops_real *rstd, /* [N] */
                           int N, int C);

/* ---- RoPE, rotate-half pairing (i, i + D/2) (spec gemma4 §3.4) -----------------------------
 * The table: cos/sin[t, i] of the angle pos[t] * inv_freq[i]. inv_freq comes from the model (fp32
 * as in Hugging Face: default 1/theta^(2i/D) for all pairs; proportional the same exponent over
 * the full D for the first n_rot pairs and 0 after, which makes those pairs pass through). The
 * angle is the fp32 product pos * inv_freq, exactly as transformers forms it (also in an fp64
 * model); its cos/sin are computed in double and rounded to ops_real. A more exact angle would
 * move every q and k by ~1e-7 against the reference. (In bf16 training transformers then rounds
 * cos/sin to bf16; eft keeps them in fp32.) */
void OPS(rope_table)(ops_real *cos_,        /* [T, half] */
                     ops_real *sin_,        /* [T, half] */
                     const int32_t *pos,    /* [T] position ids (restart per document) */
                     const float *inv_freq, /* [half] */
                     int T, int half);
/* In place on x [T, nh, D] with D = 2 * half:
 *   y[i] = x[i] c - x[i+half] s,  y[i+half] = x[i+half] c + x[i] s.
 * The backward applies the transposed rotation to dx IN PLACE (it does not accumulate): add every
 * gradient that reaches the rotated tensor (KV-shared layers, k_eq_v) into dx first. */
void OPS(rope_forward)(ops_real *x, const ops_real *cos_, const ops_real *sin_, int T, int nh,
                       int D);
void OPS(rope_backward)(ops_real *dx, const ops_real *cos_, const ops_real *sin_, int T, int nh,
                        int D);

/* ---- GELU (tanh approximation) and GeGLU (spec gemma4 §3.2, §3.3) --------------------------
 * gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). y may equal x. */
void OPS(gelu_forward)(ops_real *y, const ops_real *x, size_t n);
void OPS(gelu_backward)(ops_real *dx, const ops_real *dy, const ops_real *x, size_t n); /* dx += */
/* h = gelu(gate) * up over N rows of C. gate and up rows are `ld` apart: ld = C for separate
 * [N, C] buffers, ld = 2C for one fused [N, 2C] gate|up buffer (up = gate + C). h is [N, C]. The
 * backward's dgate/dup use the same row stride ld (and accumulate). */
void OPS(geglu_forward)(ops_real *h, const ops_real *gate, const ops_real *up, int N, int C,
                        int ld);
void OPS(geglu_backward)(ops_real *dgate, ops_real *dup, const ops_real *dh, const ops_real *gate,
                         const ops_real *up, int N, int C, int ld);

/* ---- Linear: y = x W^T, no bias --------------------------------------------------------------
 * accumulate: y += x W^T (LoRA adds its branch onto the base output) instead of y =.
 * Backward: dx += dy W (dx NULL: skipped), dW += dy^T x (dW NULL: frozen, skipped; dW is always
 * ops_real). A real W is one BLAS call; a bf16 or NF4 W is widened (NF4: dequantised as
 * ops_nf4_dequantize does, then widened) in blocks of rows (forward) or columns (backward dx)
 * into the scratch, so scratch never holds more than a block. An NF4 W is frozen (dW NULL). */
size_t OPS(linear_scratch_bytes)(int in, int out, int dtype, int nthreads);
void OPS(linear_forward)(ops_real *y,       /* [T, out] */
                         const ops_real *x, /* [T, in] */
                         ops_weight W,      /* [out, in] */
                         int T, int in, int out, bool accumulate, void *scratch,
                         size_t scratch_bytes);
void OPS(linear_backward)(ops_real *dx,       /* [T, in] += or NULL */
                          ops_real *dW,       /* [out, in] += or NULL */
                          const ops_real *dy, /* [T, out] */
                          const ops_real *x,  /* [T, in] (read only when dW) */
                          ops_weight W,       /* [out, in] (read only when dx) */
                          int T, int in, int out, void *scratch, size_t scratch_bytes);

/* ---- Embedding (spec gemma4 §3.5) --------------------------------------------------------------
 * out[t] = table[ids[t]] * scale (Gemma: scale = bf16(sqrt(H)), applied in ops_real).
 * Backward: dtable[ids[t]] += scale * dout[t] for every t with ids[t] != pad_id (padding_idx:
 * the pad row gets no gradient from the lookup; a tied LM head still updates it). */
void OPS(embedding_forward)(ops_real *out,      /* [T, H] */
                            const int32_t *ids, /* [T] in [0, V) */
                            ops_weight table,   /* [V, H] */
                            int T, int V, int H, ops_real scale);
void OPS(embedding_backward)(ops_real *dtable,     /* [V, H] += */
                             const ops_real *dout, /* [T, H] */
                             const int32_t *ids,   /* [T] */
                             int T, int V, int H, ops_real scale, int32_t pad_id);

/* ---- Attention (spec gemma4 §4.4, §5, §7.6) ----------------------------------------------------
 * o[i, h] = sum_j softmax_j(scale * q[i, h] . k[j, g]) v[j, g] over the allowed keys j of row i
 * (ops_attn above), with g = h / (nH / nKV). lse[h, i] is the log-sum-exp of row i's logits,
 * saved for the backward. Flash-style: query tiles x key tiles with an online softmax; [T, T] is
 * never formed and tiles the mask removes entirely are never visited. Every row has at least
 * its diagonal key (asserted).
 * Backward: D_i = rowsum(dout * o); dq, dk, dv +=. dq is computed in a pass parallel over
 * (query heads, query tile) and dk/dv in a pass parallel over (kv head, key tile), each
 * recomputing the probabilities, so no two threads ever write the same gradient row.
 * Scratch depends on D and the thread count only (about 0.9 MB per thread at D = 256 or 512). */
size_t OPS(attention_scratch_bytes)(int D, int nthreads);
void OPS(attention_forward)(ops_real *o,       /* [T, nH, D] */
                            ops_real *lse,     /* [nH, T] */
                            const ops_real *q, /* [T, nH, D] */
                            const ops_real *k, /* [T, nKV, D] */
                            const ops_real *v, /* [T, nKV, D] */
                            const ops_attn *a, void *scratch, size_t scratch_bytes);
void OPS(attention_backward)(ops_real *dq,         /* [T, nH, D] += */
                             ops_real *dk,         /* [T, nKV, D] += */
                             ops_real *dv,         /* [T, nKV, D] += */
                             const ops_real *dout, /* [T, nH, D] */
                             const ops_real *q,    /* [T, nH, D] */
                             const ops_real *k,    /* [T, nKV, D] */
                             const ops_real *v,    /* [T, nKV, D] */
                             const ops_real *o,    /* [T, nH, D] */
                             const ops_real *lse,  /* [nH, T] */
                             const ops_attn *a, void *scratch, size_t scratch_bytes);
/* (query tile, key tile) pairs that one head visits, per pass: the same enumeration the kernels
 * use; exposed so tests can prove that masked tiles are skipped. */
long OPS(attention_tiles)(const ops_attn *a);

/* ---- Fused LM head + soft-cap + cross-entropy (spec gemma4 §4.5, §7.7-8)
 * ------------------------- z = h E^T, c = cap * tanh(z / cap) (cap == 0: c = z), nll_t = lse_t -
 * c[t, target_t] for every target_t != OPS_IGNORE_INDEX (targets are already shifted: target[t] =
 * label[t+1]). Computed over vocabulary tiles and token chunks; [T, V] is never formed. E may be a
 * bf16 frozen tied embedding (widened one vocab tile at a time) or ops_real.
 *
 * Forward: returns sum of nll_t over trained tokens (in double, summed in token order), sets
 * *count to their number, and saves lse [T] (rows with an ignored target are left untouched).
 * Backward: with grad_scale = dL/dnll_t (e.g. 1/N for the mean), recomputes each logit tile and
 * forms dz = grad_scale * (softmax - onehot) * (1 - tanh^2(z / cap)); dh += dz E and, unless dE is
 * NULL (frozen tied embedding), dE += dz^T h. Vocab tiles are the outer loop (each E tile is
 * widened once per pass), token chunks the inner, parallel one; dE partials are per thread and
 * reduced in thread order.
 * Rows with an ignored target cost nothing only at chunk granularity: a caller with many ignored
 * tokens (prompts) may gather the trained rows of h first and scatter dh back.
 * Scratch (independent of T and V): a widened 256 x H tile of E when it is bf16, and per thread a
 * 256 x 256 logit tile plus, with dE, a 256 x H partial of dE. */
size_t OPS(lmhead_ce_scratch_bytes)(int H, int dtype, bool with_dE, int nthreads);
double OPS(lmhead_ce_forward)(ops_real *lse,                     /* [T] */
                              int64_t *count, const ops_real *h, /* [T, H] */
                              ops_weight E,                      /* [V, H] */
                              const int32_t *target, /* [T] in [0, V) or OPS_IGNORE_INDEX */
                              int T, int H, int V, double cap, void *scratch, size_t scratch_bytes);
void OPS(lmhead_ce_backward)(ops_real *dh,          /* [T, H] += */
                             ops_real *dE,          /* [V, H] += or NULL */
                             const ops_real *h,     /* [T, H] */
                             ops_weight E,          /* [V, H] */
                             const int32_t *target, /* [T] */
                             const ops_real *lse,   /* [T] from the forward */
                             int T, int H, int V, double cap, double grad_scale, void *scratch,
                             size_t scratch_bytes);
/* Eval-only forward: the same sum and count, with token chunks as the outer (parallel) loop so
 * that nothing of size T is needed. nll [T] (may be NULL) receives each trained token's loss;
 * ignored rows are left untouched. Each thread widens the E tiles it needs itself. */
size_t OPS(lmhead_ce_eval_scratch_bytes)(int H, int dtype, int nthreads);
double OPS(lmhead_ce_eval)(ops_real *nll,                     /* [T] or NULL */
                           int64_t *count, const ops_real *h, /* [T, H] */
                           ops_weight E,                      /* [V, H] */
                           const int32_t *target,             /* [T] */
                           int T, int H, int V, double cap, void *scratch, size_t scratch_bytes);

/* ---- Elementwise helpers ------------------------------------------------------------------------
 * Residual add and its backward (dy flows unchanged to both inputs: acc), the layer_scalar
 * (y = s x, a constant: dx += s dy), copies and zeroing. Outputs may alias inputs. */
void OPS(add)(ops_real *y, const ops_real *a, const ops_real *b, size_t n);       /* y = a + b */
void OPS(acc)(ops_real *y, const ops_real *x, size_t n);                          /* y += x */
void OPS(scale_forward)(ops_real *y, const ops_real *x, ops_real s, size_t n);    /* y = s x */
void OPS(scale_backward)(ops_real *dx, const ops_real *dy, ops_real s, size_t n); /* dx += s dy */
void OPS(copy)(ops_real *dst, const ops_real *src, size_t n);
void OPS(zero)(ops_real *x, size_t n);

#endif /* EFT_OPS_DECLARE */
