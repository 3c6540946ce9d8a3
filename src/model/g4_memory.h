/* g4_memory.h: how many bytes a training run of a Gemma 4 model needs, before step 0.
 *
 * Given the layer plan, the tensor list and a run shape (sequence length, micro-batch rows,
 * weight storage, adapter, optimizer, recompute), the plan sizes each part the CPU backend
 * allocates: base weights, LoRA adapter, gradients, optimizer state, activations kept for the
 * backward, and scratch. Activations are listed tensor by tensor (g4_layer_saved,
 * g4_model_saved): that list is the contract the forward/backward implementation keeps, and the
 * arena peak of a real step is checked against it.
 *
 * Nothing here is quadratic in T: attention works in tiles with an online softmax (no [T, T]),
 * and the loss runs the LM head over vocabulary tiles and token chunks (no [T, V]).
 *
 * What it does not do: allocate anything, or read a YAML config (the caller fills the run shape:
 * g4_run_shape_default, then flags or config keys).
 */
#ifndef EFT_MODEL_G4_MEMORY_H
#define EFT_MODEL_G4_MEMORY_H

#include "model/g4_plan.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    G4_WEIGHTS_BF16, /* frozen weights as in the checkpoint */
    G4_WEIGHTS_NF4,  /* nn.Linear weights in NF4 with double quantisation (QLoRA) */
} g4_weight_format;

typedef enum {
    G4_TRAIN_LORA, /* frozen base + fp32 LoRA adapter */
    G4_TRAIN_FULL, /* every parameter trained: fp32 master weights (adapter: none) */
} g4_train_mode;

/* The optimizer's state (training-math.md 5): fp32 moments, or, for the tensors an 8-bit AdamW
 * quantises, per moment one byte per element and one fp32 scale per 256 elements. bitsandbytes
 * quantises the tensors of 4096 elements or more (its Trainer keeps embeddings in 32 bits),
 * torchao those that are also a multiple of 256. */
typedef enum {
    G4_OPTIM_ADAMW,              /* fp32 moments: 8 bytes per trained parameter */
    G4_OPTIM_ADAMW_8BIT,         /* bitsandbytes' 8-bit AdamW */
    G4_OPTIM_ADAMW_8BIT_TORCHAO, /* torchao's AdamW8bit */
} g4_optim;

/* LoRA targets: bits of g4_run_shape.lora_targets. Only these kinds are targeted; the PLE
 * projections, the router and an untied lm_head never are. */
enum {
    G4_TARGET_Q = 1u << 0,
    G4_TARGET_K = 1u << 1,
    G4_TARGET_V = 1u << 2,
    G4_TARGET_O = 1u << 3,
    G4_TARGET_GATE = 1u << 4,
    G4_TARGET_UP = 1u << 5,
    G4_TARGET_DOWN = 1u << 6,
    G4_TARGET_EXPERTS = 1u << 7, /* experts.gate_up_proj and experts.down_proj, per expert */
    G4_TARGET_LINEAR = 0x7f,     /* q, k, v, o, gate, up, down */
};

/* The target bit of a linear kind, 0 when the kind is never a LoRA target. */
unsigned g4_target_bit(g4_linear k);

/* Tiles the plan assumes of the kernels (change them together with the kernels). */
enum {
    G4_MEM_ATTN_TILE = 64,             /* attention: query and key tile rows */
    G4_MEM_LOSS_TOKENS = 256,          /* fused loss: tokens per chunk */
    G4_MEM_LOSS_VOCAB_TILE = 4096,     /* fused loss: vocabulary entries per tile */
    G4_MEM_GEMM_SLAB_BYTES = 32 << 20, /* a frozen weight is widened to fp32 in slabs this big */
    G4_MEM_OPTIM_8BIT_BLOCK = 256,     /* 8-bit AdamW: elements per fp32 scale */
    G4_MEM_OPTIM_8BIT_MIN = 4096,      /* 8-bit AdamW: smaller tensors keep fp32 moments */
};

typedef struct g4_run_shape {
    int64_t seq_len;     /* T: tokens per row */
    int64_t micro_batch; /* rows per micro-batch */
    g4_weight_format weights;
    bool quantize_moe_experts; /* with NF4: quantise the expert tensors too */
    g4_train_mode train;
    int lora_r;
    unsigned lora_targets; /* G4_TARGET_* bits */
    g4_optim optim;
    bool recompute; /* gradient checkpointing: keep only each layer's input */
    int threads;    /* for the per-thread scratch */
} g4_run_shape;

/* T 2048, one row, bf16 weights, LoRA r=16 on q,k,v,o,gate,up,down, fp32 AdamW, no recompute,
 * eft_threads() threads. */
void g4_run_shape_default(g4_run_shape *s);

/* One tensor the forward keeps for the backward: fp32 values, or int32 indices; 4 bytes each. */
typedef struct g4_saved {
    const char *name;  /* static string */
    const char *shape; /* static string; N = micro_batch * T tokens */
    int64_t elems;
} g4_saved;

enum { G4_SAVED_MAX = 48 };

/* The tensors layer l keeps without recompute; out has room for G4_SAVED_MAX. Returns the count. */
int g4_layer_saved(const g4_plan *p, const g4_run_shape *s, int l, g4_saved *out);
/* The model-level tensors kept in either mode (inputs, PLE inputs, final norm). */
int g4_model_saved(const g4_plan *p, const g4_run_shape *s, g4_saved *out);
int64_t g4_saved_bytes(const g4_saved *v, int n);
/* Bytes layer l keeps from its forward to its backward under s (s->recompute decides). */
int64_t g4_layer_kept_bytes(const g4_plan *p, const g4_run_shape *s, int l);

/* Bytes of n weights in NF4 with double quantisation: 4 bits each, an 8-bit scale per block
 * of 64, an fp32 scale per 256 blocks: about 4.127 bits per weight. */
int64_t g4_nf4_bytes(int64_t n);

/* Whether load_in_4bit holds tensor t in NF4: the weights of nn.Linear modules, which is what
 * bitsandbytes swaps for Linear4bit (attention and MLP projections, the PLE linears, the router's
 * projection); the 3-D expert tensors only with quantize_moe_experts (each quantised whole, as
 * Axolotl's parametrization does); never the embeddings, the norms, the layer scalars or an
 * untied lm_head (transformers keeps the output head). The memory plan, the loader
 * (src/peft/nf4_load.h) and merge-lora's NF4 round trip (src/cli/cmd_merge_lora.c) all ask this. */
bool g4_nf4_quantized(const g4_tensor *t, bool quantize_moe_experts);

typedef struct g4_memory {
    int64_t weights;      /* base weights as held: bf16/NF4 (LoRA) or fp32 masters (full) */
    int64_t weights_nf4;  /* of which NF4 */
    int64_t trainable;    /* trained parameters: LoRA A and B, or every parameter */
    int64_t adapter;      /* LoRA parameters, fp32 (0 for full fine-tuning) */
    int64_t grads;        /* fp32 gradient accumulators of the trained parameters */
    int64_t optim;        /* optimizer moments */
    int64_t act_model;    /* model-level tensors kept for the backward */
    int64_t act_layers;   /* per-layer tensors kept from forward to backward, summed */
    int64_t act_replay;   /* recompute only: one layer's re-made set during its backward */
    int64_t activations;  /* act_model + act_layers + act_replay */
    int64_t scratch_attn; /* attention tiles, all threads */
    int64_t scratch_loss; /* fused LM head + CE tiles, all threads */
    int64_t scratch_gemm; /* frozen-weight slabs widened to fp32, all threads */
    int64_t scratch_grad; /* backward working set: residual gradients, one layer's activation
                             gradients, donor K/V and PLE gradient accumulators */
    int64_t scratch;
    int64_t total;
} g4_memory;

/* Sizes a run. A run shape that cannot train (NF4 with full fine-tuning, LoRA with rank 0 or
 * no target present in the model, T < 1) is a user error. */
int g4_memory_plan(const g4_plan *p, const g4_tensors *ts, const g4_run_shape *s, g4_memory *m);

#endif
