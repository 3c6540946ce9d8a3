/* g4_model.h: the Gemma 4 text model's forward and backward on the CPU, with the fused loss.
 *
 * A batch is N tokens: the rows of a micro-batch laid end to end, each row a pack of documents.
 * Position ids restart at 0 in every document; a document starts at every row start and wherever
 * pos[t] != pos[t-1] + 1 (the rule transformers uses to find packed documents), so attention
 * never crosses a document or a row. Targets are already shifted: target[t] is the label of
 * token t+1 of the same row, -100 at a row's last token (g4_batch_targets does this).
 *
 * g4_forward runs the embeddings, the layers and the fused LM-head cross-entropy, keeping what
 * the backward needs in the model's activation arena (sized once by g4_model_init for at most
 * max_tokens tokens; nothing is allocated per step). It returns the summed loss over trained
 * tokens and their count. g4_backward then adds d(grad_scale * summed loss)/d(parameter) into
 * every trained parameter's gradient (g4_param.grad, g4_lora.dA/dB): grad_scale is 1/N for the
 * mean over N tokens, or whatever the training loop's normalisation asks.
 *
 * With recompute (gradient checkpointing), the forward keeps only each layer's input (and the
 * K/V of donor layers, which later layers read); the backward re-runs each layer's forward just
 * before its backward. The arithmetic is the same code in the same order, so the gradients are
 * bit-identical to a run without recompute.
 *
 * Not here: MoE layers (refused before a model is built), which parameters are trained (the
 * caller gives gradients to g4_weights), the optimizer.
 */
#ifndef EFT_MODEL_G4_MODEL_H
#define EFT_MODEL_G4_MODEL_H

#include "base/arena.h"
#include "model/g4_plan.h"
#include "model/g4_weights.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct g4_batch {
    int N;                    /* tokens */
    const int32_t *ids;       /* [N] token ids */
    const int32_t *pos;       /* [N] position ids, restarting per document */
    const int32_t *target;    /* [N] shifted labels, -100 = not trained */
    const int32_t *row_start; /* [rows+1] offsets of the rows in the N tokens; NULL = one row */
    int rows;
} g4_batch;

/* target[t] = labels[t+1] within each row, -100 at each row's last token. */
void g4_batch_targets(int32_t *target, const int32_t *labels, const int32_t *row_start, int rows,
                      int N);

typedef struct g4_layer_acts g4_layer_acts; /* g4_internal.h */

typedef struct g4_model {
    const g4_plan *plan;
    g4_weights *w;
    bool recompute;
    int max_tokens;
    /* What the forward keeps, sized for max_tokens by a measuring pass over the same layout
     * code (g4_acts.c). */
    eft_arena acts;
    /* Scratch of one layer's forward or backward: gradients of its activations, kernel scratch.
     * Reset after every layer. */
    eft_arena scratch;
    void *state; /* g4_internal.h: the carved buffers (owned) */
    /* LoRA dropout: the masks of a forward (and of its backward and recompute) are a function of
     * this key, the module and the element, so they are drawn again instead of stored. The
     * trainer sets a new key for every micro-batch (a function of the seed and the micro-batch's
     * place in the run, so a resumed run draws the same masks). */
    uint64_t dropout_key;
} g4_model;

/* Sizes and allocates the activation and scratch arenas for batches of up to max_tokens tokens.
 * The weights (and any adapters hung on them) must be final: adapter buffers are sized too. */
void g4_model_init(g4_model *m, const g4_plan *p, g4_weights *w, int max_tokens, bool recompute);
void g4_model_free(g4_model *m);

/* Bytes the model's arenas hold (activations + scratch), for the memory report. */
int64_t g4_model_bytes(const g4_model *m);

/* Forward and fused loss. Returns the sum of the cross-entropy over tokens whose target is not
 * -100, and their number in *count. */
double g4_forward(g4_model *m, const g4_batch *b, int64_t *count);
/* Backward of grad_scale * (the summed loss of the last g4_forward, same batch). */
void g4_backward(g4_model *m, const g4_batch *b, double grad_scale);

/* The soft-capped logits of every token, [N, V], after a g4_forward of the same batch: for
 * `eft debug loss --dump-logits` and tests (this is the only place [N, V] is ever formed). */
void g4_logits(g4_model *m, const g4_batch *b, float *out);
/* The soft-capped logits [V] of one token (usually a row's last, for generation), after a
 * g4_forward of the batch. */
void g4_token_logits(g4_model *m, int t, float *out);

#endif
