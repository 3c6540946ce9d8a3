/* trn_loop.c: the training steps (training-math.md section 1), evaluation, logging and the
 * progress line. */
#include "train/trn_internal.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* Set by SIGINT/SIGTERM: the update in flight finishes, a checkpoint is written, the run ends. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static double peak_memory_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0); /* ru_maxrss is in KiB on Linux */
}

/* Evaluation: the token mean of the loss over every eval micro-batch. Unlike the Trainer's mean
 * of per-batch means, it does not depend on batching or packing, so eval_loss is the same with
 * and without sample packing. */
int trn_eval_loader(trn_run *r, pack_loader *L, double *loss, int64_t *tokens) {
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < L->n_mb; i++) {
        g4_batch b;
        trn_fill(r, L, i, &b);
        int64_t n;
        sum += g4_forward(&r->model, &b, &n);
        count += n;
    }
    *tokens = count;
    *loss = count ? sum / (double)count : NAN;
    return 0;
}

static int evaluate(trn_run *r, int64_t step, double epoch) {
    if (!r->have_eval) return 0;
    if (r->lora) lora_set_train(&r->adapter, false);
    double t0 = eft_now(), loss;
    int64_t tokens;
    trn_eval_loader(r, &r->eval, &loss, &tokens);
    met_entry e = {0};
    met_add_int(&e, "step", step);
    met_add(&e, "epoch", epoch);
    met_add(&e, "eval_loss", loss);
    met_add_int(&e, "eval_tokens", tokens);
    met_add(&e, "eval_runtime", eft_now() - t0);
    if (met_write(&r->metrics, &e)) return -1;
    eft_info("step %lld: eval_loss %.4f over %lld tokens (%.1f s)", (long long)step, loss,
             (long long)tokens, eft_now() - t0);
    return 0;
}

/* The micro-batches of update k, run forward and backward; returns the update's loss sum and
 * fills the logging accumulator. A non-finite micro-batch loss stops the run. */
static int run_update(trn_run *r, int64_t k) {
    const cad_plan *p = &r->plan_steps;
    int64_t e = cad_epoch_index(p, k), j0 = cad_first_micro_batch(p, k);
    int64_t n_mb = cad_micro_batches(p, k);
    if (e != r->loaded_epoch) {
        pack_epoch(&r->train, (int)e);
        r->loaded_epoch = (int)e;
    }
    /* Mode A divides by the trained tokens of the whole update: count them first. */
    int64_t update_count = 0;
    for (int64_t i = 0; i < n_mb; i++) {
        pack_fill(&r->train, j0 + i, &r->buf.pb);
        update_count += r->buf.pb.trained;
    }
    for (int64_t i = 0; i < n_mb; i++) {
        g4_batch b;
        trn_fill(r, &r->train, j0 + i, &b);
        /* LoRA dropout masks: a function of the seed and of the micro-batch's place in the run. */
        uint64_t where[3] = {(uint64_t)r->c->seed.v, (uint64_t)e, (uint64_t)(j0 + i)};
        r->model.dropout_key = eft_hash64(where, sizeof where);
        int64_t count;
        double sum = g4_forward(&r->model, &b, &count);
        float scale = cad_loss_grad_scale(r->loss_mode, count, update_count, n_mb);
        float loss_i = cad_loss_value(r->loss_mode, (float)sum, count, update_count, n_mb);
        if (!isfinite(sum)) {
            const char *what = isnan(sum) ? "NaN" : "infinite";
            if (!r->last_checkpoint)
                return eft_fail("training diverged at step %lld: the loss of micro-batch %lld is "
                                "%s, before any checkpoint was written. Lower learning_rate (or "
                                "raise warmup) and start again.",
                                (long long)k + 1, (long long)i, what);
            return eft_fail("training diverged at step %lld: the loss of micro-batch %lld is %s. "
                            "The last checkpoint is %s: lower learning_rate (or raise warmup) and "
                            "resume from it (--resume_from_checkpoint).",
                            (long long)k + 1, (long long)i, what, r->last_checkpoint);
        }
        if (count) g4_backward(&r->model, &b, scale);
        cad_loss_log_add(&r->loss_log, loss_i, r->global_step);
        r->tokens_seen += b.N;
        r->trained_tokens += r->buf.pb.trained;
        r->window_trained += r->buf.pb.trained;
    }
    return 0;
}

static int log_step(trn_run *r, int64_t s, double epoch) {
    double now = eft_now(), dt = now - r->window_t0;
    double loss = cad_loss_log_take(&r->loss_log, s);
    met_entry e = {0};
    met_add_int(&e, "step", s);
    met_add(&e, "epoch", epoch);
    met_add(&e, "loss", loss);
    met_add(&e, "grad_norm", r->last_grad_norm);
    met_add(&e, "learning_rate", r->last_lr);
    met_add(&e, "tokens_per_second", dt > 0 ? (double)r->window_trained / dt : 0);
    met_add(&e, "peak_memory_gb", peak_memory_gb());
    met_add_int(&e, "trainable_tokens", r->trained_tokens);
    r->window_t0 = now;
    r->window_trained = 0;
    r->last_loss = loss;
    return met_write(&r->metrics, &e);
}

static void progress(trn_run *r, eft_progress *bar, int64_t s, double t_start, int64_t s_start) {
    double el = eft_now() - t_start;
    double rate = el > 0 ? (double)(s - s_start) / el : 0;
    double eta = rate > 0 ? (double)(r->plan_steps.T - s) / rate : 0;
    double tps = el > 0 ? (double)(r->trained_tokens - r->tokens_at_start) / el : 0;
    char suffix[256];
    snprintf(suffix, sizeof suffix,
             "loss %.4f  lr %.3g  grad_norm %.3g  %.0f tok/s  ETA %dm%02ds  mem %.2f GB",
             r->last_loss, r->last_lr, r->last_grad_norm, tps, (int)eta / 60, (int)eta % 60,
             peak_memory_gb());
    eft_progress_update(bar, s, suffix);
}

int trn_loop(trn_run *r) {
    const cad_plan *p = &r->plan_steps;
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_requested = 0;
    int rc = 0;
    int64_t s_start = r->global_step;
    r->tokens_at_start = r->trained_tokens;
    r->last_loss = NAN;
    if (p->eval_on_start && r->global_step == 0) rc = evaluate(r, 0, 0.0);
    eft_progress bar;
    eft_progress_begin(&bar, "train", p->T);
    double t_start = eft_now();
    r->window_t0 = t_start;
    for (int64_t k = r->global_step; k < p->T && !rc; k++) {
        if (r->lora) lora_set_train(&r->adapter, true);
        if ((rc = run_update(r, k))) break;
        float norm;
        if (opt_clip_grad_norm(&r->opt, r->c->max_grad_norm.v, &norm)) {
            rc = -1;
            if (r->last_checkpoint)
                eft_err_context("training diverged at step %lld; the last checkpoint is %s "
                                "(--resume_from_checkpoint)",
                                (long long)k + 1, r->last_checkpoint);
            else
                eft_err_context("training diverged at step %lld, before any checkpoint was "
                                "written",
                                (long long)k + 1);
            break;
        }
        r->last_grad_norm = norm;
        r->last_lr = opt_adamw_lr(&r->opt, r->sched.lr, sched_lambda(&r->sched, k));
        opt_adamw_step(&r->opt, r->last_lr);
        g4_weights_zero_grad(&r->w);
        int64_t s = k + 1;
        r->global_step = s;
        double epoch = cad_epoch(p, k);
        if (cad_should_log(p, s) && (rc = log_step(r, s, epoch))) break;
        if (cad_should_eval(p, s) && (rc = evaluate(r, s, epoch))) break;
        if ((cad_should_save(p, s) || stop_requested) && (rc = trn_save_checkpoint(r))) break;
        /* On a terminal the line redraws every update; in a log, one line per logging step. */
        if (bar.tty || cad_should_log(p, s) || s == p->T) progress(r, &bar, s, t_start, s_start);
        if (stop_requested) {
            eft_progress_end(&bar);
            eft_info("stopped by a signal after step %lld; resume with --resume_from_checkpoint "
                     "%s",
                     (long long)s, r->last_checkpoint);
            break;
        }
    }
    eft_progress_end(&bar);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}
