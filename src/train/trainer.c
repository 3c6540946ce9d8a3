/* trainer.c: `eft train` and `eft evaluate` from a checked config (see trainer.h). */
#include "train/trainer.h"

#include "base/err.h"
#include "base/log.h"
#include "train/trn_internal.h"

#include <math.h>
#include <stdio.h>

static void describe(const trn_run *r) {
    const cad_plan *p = &r->plan_steps;
    eft_info("run: %lld updates (%lld micro-batches of up to %lld tokens per epoch, %lld per "
             "update), warmup %lld, %s; %d trainable tensors, %s",
             (long long)p->T, (long long)p->M, (long long)r->train.max_tokens, (long long)p->G,
             (long long)p->W, r->model.recompute ? "gradient checkpointing" : "no recompute",
             r->n_params, r->lora ? "LoRA" : "full fine-tuning");
}

int trn_train(const eft_config *c) {
    trn_run r;
    double t0 = eft_now();
    int rc = trn_setup(&r, c, true);
    if (!rc) rc = trn_presave(&r);
    int resumed = rc ? 0 : trn_resume(&r);
    if (resumed < 0) rc = -1;
    if (!rc && !resumed) rc = met_open(&r.metrics, c->output_dir.v, NULL, 0);
    if (!rc) {
        describe(&r);
        rc = trn_loop(&r);
    }
    if (!rc && r.global_step >= r.plan_steps.T) {
        rc = trn_save_final(&r);
        if (!rc) {
            double train_loss = cad_loss_log_train_loss(&r.loss_log, r.global_step);
            double dt = eft_now() - t0;
            eft_info("done: %lld steps, train_loss %.4f, %.1f s, %.0f trained tokens/s; output in "
                     "%s",
                     (long long)r.global_step, train_loss, dt,
                     dt > 0 ? (double)r.trained_tokens / dt : 0.0, c->output_dir.v);
        }
    }
    trn_teardown(&r);
    return rc;
}

int trn_evaluate(const eft_config *c) {
    trn_run r;
    int rc = trn_setup(&r, c, false);
    double eval_loss = NAN, train_loss = NAN;
    int64_t eval_tokens = 0, train_tokens = 0;
    if (!rc && r.have_eval) rc = trn_eval_loader(&r, &r.eval, &eval_loss, &eval_tokens);
    if (!rc && r.train.s) rc = trn_eval_loader(&r, &r.train, &train_loss, &train_tokens);
    if (!rc) {
        printf("{\"eval_loss\": ");
        if (isnan(eval_loss))
            printf("null");
        else
            printf("%.9g", eval_loss);
        printf(", \"eval_tokens\": %lld, \"train_loss\": ", (long long)eval_tokens);
        if (isnan(train_loss))
            printf("null");
        else
            printf("%.9g", train_loss);
        printf(", \"train_tokens\": %lld}\n", (long long)train_tokens);
    }
    trn_teardown(&r);
    return rc;
}
