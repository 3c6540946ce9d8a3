/* trn_setup.c: building a run from its config: tokenizer, data, model, adapter, loaders,
 * optimizer and the step plan, all sized and allocated here, before step 0. */
#include "train/trn_internal.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "peft/lora_target.h"
#include "train/run_config.h"
#include "train/run_weights.h"

#include <string.h>

static bool truthy(const cfg_str *s) {
    return s->v && strcmp(s->v, "false") != 0;
}

static int load_model(trn_run *r) {
    if (g4_desc_load(&r->d, r->c->model_config_path)) return -1;
    r->have_desc = true;
    return trn_check_buildable(r->c, &r->d.plan);
}

static int load_tokenizer(trn_run *r) {
    r->tok = tok_load(r->c->tokenizer_path);
    if (!r->tok) return -1;
    if (tok_vocab_size(r->tok) > r->d.plan.V)
        return eft_fail("%s: the tokenizer has %d ids, more than the model's vocabulary (%lld): "
                        "tokenizer and model do not belong together. Check tokenizer_config and "
                        "base_model.",
                        r->c->tokenizer_path, tok_vocab_size(r->tok), (long long)r->d.plan.V);
    return 0;
}

/* LoRA from lora_model_dir, or new adapters on the modules the config targets. */
static int attach_adapter(trn_run *r, bool train) {
    const eft_config *c = r->c;
    if (c->lora_model_dir.set && c->lora_model_dir.v && *c->lora_model_dir.v) {
        peft_config *pc = &r->adapter_file;
        if (peft_load(c->lora_model_dir.v, &r->w, train, &r->adapter, pc)) return -1;
        r->from_adapter_file = true;
        /* Training keeps the adapter's own dropout (as PEFT does); evaluation turns it off. */
        lora_set_train(&r->adapter, train);
        return 0;
    }
    lora_spec spec;
    if (lora_spec_from_config(&spec, c)) return -1;
    spec.train = train;
    bool *sel = eft_calloc((size_t)r->d.ts.n, sizeof *sel);
    int rc = lora_select(c, &r->d.ts, sel) < 0 ? -1 : 0;
    if (!rc) rc = lora_attach(&r->adapter, &r->w, sel, &spec, (uint64_t)c->seed.v);
    if (!rc) lora_set_train(&r->adapter, train);
    eft_free(sel);
    return rc;
}

/* The tensors the optimizer updates: the adapters' A and B, or every parameter. */
static void collect_params(trn_run *r) {
    if (r->lora) {
        r->params = eft_calloc((size_t)r->adapter.n_tensors, sizeof *r->params);
        for (int i = 0; i < r->adapter.n_tensors; i++) {
            const lora_tensor *t = &r->adapter.tensors[i];
            r->params[r->n_params++] = (opt_param){t->name, t->data, t->grad, t->numel};
        }
        return;
    }
    r->params = eft_calloc((size_t)r->d.ts.n, sizeof *r->params);
    for (int i = 0; i < r->d.ts.n; i++) {
        g4_param *p = &r->w.params[i];
        if (p->grad)
            r->params[r->n_params++] = (opt_param){p->t->name, p->f32, p->grad, p->t->numel};
    }
}

static void alloc_buffers(trn_run *r) {
    int64_t tokens = r->train.max_tokens, rows = r->train.max_rows;
    if (r->have_eval) {
        tokens = EFT_MAX(tokens, r->eval.max_tokens);
        rows = EFT_MAX(rows, r->eval.max_rows);
    }
    pack_batch *b = &r->buf.pb;
    b->ids = eft_malloc((size_t)tokens * sizeof(int32_t));
    b->labels = eft_malloc((size_t)tokens * sizeof(int32_t));
    b->pos = eft_malloc((size_t)tokens * sizeof(int32_t));
    b->row_start = eft_malloc((size_t)(rows + 1) * sizeof(int32_t));
    r->buf.target = eft_malloc((size_t)tokens * sizeof(int32_t));
    g4_model_init(&r->model, &r->d.plan, &r->w, (int)tokens, truthy(&r->c->gradient_checkpointing));
}

int trn_setup(trn_run *r, const eft_config *c, bool for_training) {
    memset(r, 0, sizeof *r);
    r->c = c;
    r->loaded_epoch = -1;
    r->lora = c->adapter.v && *c->adapter.v;
    if (load_model(r) || load_tokenizer(r)) return -1;
    if (ds_prepare(c, r->tok, &r->data)) return -1;
    ds_report(&r->data);
    if (for_training && r->data.train.n == 0)
        return eft_fail("%s: no training samples are left after preprocessing (see the counts "
                        "above): check the datasets, sequence_len and the label settings.",
                        c->path);
    if (trn_weights_load(&r->w, c, &r->d.plan, &r->d.ts, for_training && !r->lora)) return -1;
    if (r->lora && attach_adapter(r, for_training)) return -1;

    pack_config pc;
    pack_config_train(&pc, c);
    if (r->data.train.n && pack_loader_init(&r->train, &r->data.train, &pc)) return -1;
    if (r->data.eval.n) {
        pack_config_eval(&pc, c);
        if (pack_loader_init(&r->eval, &r->data.eval, &pc)) return -1;
        r->have_eval = true;
    }
    alloc_buffers(r);
    r->built = true;
    if (!for_training) return 0;

    collect_params(r);
    opt_hparams h;
    if (opt_hparams_from_config(c, &h)) return -1;
    opt_adamw_init(&r->opt, &h, r->params, r->n_params);
    cad_data d = {r->data.train.n, r->train.n_mb, r->data.train.n_tokens};
    if (cad_plan_make(&r->plan_steps, c, &d)) return -1;
    if (sched_from_config(&r->sched, c, r->plan_steps.W, r->plan_steps.T)) return -1;
    r->loss_mode = cad_loss_mode_of(c);
    cad_loss_log_init(&r->loss_log, 0);
    return 0;
}

void trn_teardown(trn_run *r) {
    met_close(&r->metrics);
    opt_adamw_free(&r->opt);
    eft_free(r->params);
    if (r->built) g4_model_free(&r->model);
    eft_free(r->buf.pb.ids), eft_free(r->buf.pb.labels), eft_free(r->buf.pb.pos);
    eft_free(r->buf.pb.row_start), eft_free(r->buf.target);
    if (r->train.s) pack_loader_free(&r->train);
    if (r->have_eval) pack_loader_free(&r->eval);
    lora_detach(&r->adapter);
    if (r->from_adapter_file) peft_config_free(&r->adapter_file);
    if (r->w.params) g4_weights_free(&r->w);
    ds_prepared_free(&r->data);
    if (r->have_desc) g4_desc_free(&r->d);
    tok_free(r->tok);
    eft_free(r->last_checkpoint);
    memset(r, 0, sizeof *r);
}

void trn_fill(trn_run *r, const pack_loader *L, int64_t i, g4_batch *b) {
    pack_batch *pb = &r->buf.pb;
    pack_fill(L, i, pb);
    g4_batch_targets(r->buf.target, pb->labels, pb->row_start, pb->rows, pb->n);
    *b = (g4_batch){pb->n, pb->ids, pb->pos, r->buf.target, pb->row_start, pb->rows};
}
