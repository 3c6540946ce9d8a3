/* trn_internal.h: the state of a training run, shared by the trainer's files only:
 * trn_setup.c (building it), trn_loop.c (the steps, evaluation, logging) and trn_ckpt.c
 * (checkpoints, resume, the final output). */
#ifndef EFT_TRAIN_TRN_INTERNAL_H
#define EFT_TRAIN_TRN_INTERNAL_H

#include "data/ds_prepare.h"
#include "data/pack.h"
#include "io/config.h"
#include "model/g4_desc.h"
#include "model/g4_model.h"
#include "model/g4_weights.h"
#include "peft/lora.h"
#include "peft/peft_io.h"
#include "text/tokenizer.h"
#include "train/cadence.h"
#include "train/metrics.h"
#include "train/opt_adamw.h"
#include "train/sched.h"

#include <stdbool.h>
#include <stdint.h>

/* One micro-batch's buffers, sized once from the loaders. */
typedef struct trn_buffers {
    pack_batch pb;   /* ids, labels, pos, row_start */
    int32_t *target; /* [max_tokens] labels shifted within each row */
} trn_buffers;

typedef struct trn_run {
    const eft_config *c;
    bool lora; /* adapter: lora/qlora; else full fine-tuning */
    tok_tokenizer *tok;
    ds_prepared data;
    g4_desc d; /* config.json, layer plan, tensor list */
    bool have_desc;
    g4_weights w;
    lora_adapter adapter;
    /* The adapter_config.json of lora_model_dir when the adapter came from there: checkpoints and
     * the final output keep its target_modules (and the rest) rather than the run config's, which
     * may name other modules than the file's tensors adapt. */
    peft_config adapter_file;
    bool from_adapter_file;
    g4_model model;
    pack_loader train, eval;
    bool have_eval;
    trn_buffers buf;
    opt_param *params; /* [n_params] what the optimizer updates */
    int n_params;
    opt_adamw opt;
    cad_plan plan_steps;
    sched sched;
    cad_loss_mode loss_mode;
    cad_loss_log loss_log;
    met_log metrics;
    /* Progress. */
    int64_t global_step; /* updates done */
    int loaded_epoch;    /* epoch the train loader is packed for, -1 before the first */
    int64_t tokens_seen, trained_tokens; /* cumulative, all micro-batches */
    double window_t0;                    /* wall time at the last log */
    int64_t window_trained;              /* trained tokens since the last log */
    int64_t tokens_at_start;             /* trained_tokens when this process started training */
    float last_grad_norm;
    double last_lr;
    double last_loss;      /* of the last training log entry (NaN before the first) */
    char *last_checkpoint; /* path of the newest checkpoint written or resumed from (owned) */
    bool built;            /* every part above was made (free what exists otherwise) */
} trn_run;

/* trn_setup.c */
int trn_setup(trn_run *r, const eft_config *c, bool for_training);
void trn_teardown(trn_run *r);
/* Fills micro-batch i of the current epoch of loader L into r->buf and a model batch. */
void trn_fill(trn_run *r, const pack_loader *L, int64_t i, g4_batch *b);

/* trn_loop.c */
int trn_loop(trn_run *r);
/* The token-mean loss over a loader's micro-batches (eval mode): sum and count. */
int trn_eval_loader(trn_run *r, pack_loader *L, double *loss, int64_t *tokens);

/* trn_ckpt.c */
/* Writes checkpoint-<global_step> (and prunes to save_total_limit). */
int trn_save_checkpoint(trn_run *r);
/* Finds the checkpoint to resume from (resume_from_checkpoint, or the newest under output_dir
 * with auto_resume_from_checkpoints) and restores from it; 0 with nothing done when none. */
int trn_resume(trn_run *r);
/* The final output in output_dir: adapter (or weights), config and tokenizer files. */
int trn_save_final(trn_run *r);
/* Copies config.json and the tokenizer files into output_dir at the start of a run. */
int trn_presave(trn_run *r);

#endif
