/* trn_ckpt.c: checkpoints, resume and the final output of a run.
 *
 * checkpoint-<step>/ holds everything a resume needs, so that it continues bit-exactly:
 *   adapter_model.safetensors + adapter_config.json   LoRA (PEFT's files), or
 *   model.safetensors                                 full fine-tuning: every fp32 master
 *   optimizer.safetensors                             AdamW's m and v per tensor (fp32, or
 *                                                     8-bit codes and scales), and its t
 *   trainer_state.json                                Hugging Face's, with log_history
 *   eft_state.json                                    the step, the loss accumulator and the
 *                                                     token counters, exactly
 * A checkpoint is written into a temporary folder and renamed into place, so a crash never
 * leaves a half-written checkpoint-<step>. The data order needs no state: the micro-batches of
 * epoch e are a function of (seed, e), and update k's are found from k (cadence.h).
 */
#include "train/trn_internal.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "peft/peft_io.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pieces of a checkpoint -------------------------------------------------------------- */

static int write_params(trn_run *r, const char *dir) {
    st_writer *w = st_writer_new();
    for (int i = 0; i < r->d.ts.n; i++) {
        const g4_param *p = &r->w.params[i];
        /* Every tensor (layer_scalar buffers too): the folder is a complete checkpoint. */
        if (p->f32) st_writer_add(w, p->t->name, ST_F32, p->t->ndim, p->t->shape, p->f32);
    }
    st_writer_meta(w, "format", "pt");
    char *path = eft_path_join(dir, "model.safetensors");
    int rc = st_writer_write(w, path);
    eft_free(path);
    st_writer_free(w);
    return rc;
}

/* Each tensor's state arrays as they are (opt_tensor_state: "<name>.exp_avg", ...), and its t. */
static int write_optimizer(trn_run *r, const char *dir) {
    st_writer *w = st_writer_new();
    int64_t *steps = eft_malloc((size_t)r->opt.n * sizeof *steps);
    for (int i = 0; i < r->opt.n; i++) {
        opt_tensor *t = &r->opt.t[i];
        opt_state_array s[OPT_STATE_ARRAYS];
        int64_t one = 1;
        for (int j = 0, n = opt_tensor_state(t, s); j < n; j++) {
            char *name = eft_asprintf("%s.%s", t->name, s[j].key);
            st_writer_add(w, name, s[j].u8 ? ST_U8 : ST_F32, 1, &s[j].n, s[j].data);
            eft_free(name);
        }
        steps[i] = t->t;
        char *name = eft_asprintf("%s.step", t->name);
        st_writer_add(w, name, ST_I64, 1, &one, &steps[i]);
        eft_free(name);
    }
    char *path = eft_path_join(dir, "optimizer.safetensors");
    int rc = st_writer_write(w, path);
    eft_free(path);
    eft_free(steps);
    st_writer_free(w);
    return rc;
}

/* A float as the shortest decimal that reads back to the same float. */
static void put_float(eft_buf *b, const char *key, float v) {
    eft_buf_printf(b, "  \"%s\": ", key);
    eft_buf_json_double(b, (double)v);
    eft_buf_puts(b, ",\n");
}

static int write_state(trn_run *r, const char *dir) {
    const cad_loss_log *l = &r->loss_log;
    eft_buf b = {0};
    eft_buf_puts(&b, "{\n");
    eft_buf_printf(&b, "  \"global_step\": %lld,\n", (long long)r->global_step);
    eft_buf_printf(&b, "  \"max_steps\": %lld,\n", (long long)r->plan_steps.T);
    eft_buf_printf(&b, "  \"micro_batches_per_epoch\": %lld,\n", (long long)r->train.n_mb);
    put_float(&b, "loss_acc", l->acc);
    eft_buf_printf(&b, "  \"loss_last_logged\": %lld,\n", (long long)l->last_logged);
    eft_buf_printf(&b, "  \"loss_first_step\": %lld,\n", (long long)l->first_step);
    eft_buf_puts(&b, "  \"loss_total\": ");
    eft_buf_json_double(&b, l->total);
    eft_buf_printf(&b, ",\n  \"loss_filtered\": %lld,\n", (long long)l->filtered);
    put_float(&b, "last_grad_norm", r->last_grad_norm);
    eft_buf_puts(&b, "  \"last_lr\": ");
    eft_buf_json_double(&b, r->last_lr);
    eft_buf_printf(&b, ",\n  \"tokens_seen\": %lld,\n  \"trainable_tokens\": %lld,\n",
                   (long long)r->tokens_seen, (long long)r->trained_tokens);
    eft_buf_printf(&b, "  \"seed\": %lld\n}\n", (long long)r->c->seed.v);
    char *path = eft_path_join(dir, "eft_state.json");
    int rc = eft_write_file_atomic(path, b.data, b.len);
    eft_free(path);
    eft_buf_free(&b);
    return rc;
}

/* trainer_state.json as the Hugging Face Trainer writes it (training-math.md 8.3): keys sorted,
 * two-space indent. */
static int write_trainer_state(trn_run *r, const char *dir) {
    const cad_plan *p = &r->plan_steps;
    eft_buf b = {0};
    eft_buf_puts(&b, "{\n  \"best_global_step\": null,\n  \"best_metric\": null,\n"
                     "  \"best_model_checkpoint\": null,\n  \"epoch\": ");
    double epoch = r->global_step ? cad_epoch(p, r->global_step - 1) : 0.0;
    eft_buf_json_double(&b, epoch);
    eft_buf_printf(&b,
                   ",\n  \"eval_steps\": %lld,\n  \"global_step\": %lld,\n"
                   "  \"is_hyper_param_search\": false,\n  \"is_local_process_zero\": true,\n"
                   "  \"is_world_process_zero\": true,\n  \"log_history\": [",
                   (long long)p->eval_steps, (long long)r->global_step);
    for (int i = 0; i < r->metrics.n; i++) {
        const met_entry *e = &r->metrics.e[i];
        eft_buf_puts(&b, i ? ",\n    {" : "\n    {");
        for (int j = 0; j < e->n; j++) {
            eft_buf_printf(&b, "%s\n      ", j ? "," : "");
            eft_buf_json_str(&b, e->f[j].key);
            eft_buf_puts(&b, ": ");
            if (e->f[j].is_int)
                eft_buf_printf(&b, "%lld", (long long)e->f[j].i);
            else
                eft_buf_json_double(&b, e->f[j].v);
        }
        eft_buf_puts(&b, "\n    }");
    }
    eft_buf_printf(&b,
                   "%s],\n  \"logging_steps\": %lld,\n  \"max_steps\": %lld,\n"
                   "  \"num_input_tokens_seen\": %lld,\n  \"num_train_epochs\": %lld,\n"
                   "  \"save_steps\": %lld,\n  \"stateful_callbacks\": {\n"
                   "    \"TrainerControl\": {\n      \"args\": {\n"
                   "        \"should_epoch_stop\": false,\n        \"should_evaluate\": false,\n"
                   "        \"should_log\": false,\n        \"should_save\": true,\n"
                   "        \"should_training_stop\": %s\n      },\n      \"attributes\": {}\n"
                   "    }\n  },\n  \"total_flos\": 0,\n  \"train_batch_size\": %lld,\n"
                   "  \"trial_name\": null,\n  \"trial_params\": null\n}\n",
                   r->metrics.n ? "\n  " : "", (long long)p->logging_steps, (long long)p->T,
                   (long long)r->tokens_seen, (long long)p->epochs, (long long)p->save_steps,
                   r->global_step >= p->T ? "true" : "false", (long long)p->B);
    char *path = eft_path_join(dir, "trainer_state.json");
    int rc = eft_write_file_atomic(path, b.data, b.len);
    eft_free(path);
    eft_buf_free(&b);
    return rc;
}

static int write_model(trn_run *r, const char *dir) {
    if (!r->lora) return write_params(r, dir);
    if (r->from_adapter_file) return peft_save(dir, &r->adapter, &r->adapter_file);
    peft_config pc;
    peft_config_from_run(&pc, r->c, &r->adapter);
    int rc = peft_save(dir, &r->adapter, &pc);
    peft_config_free(&pc);
    return rc;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

/* The step of a "checkpoint-<n>" folder name, or -1. */
static long long checkpoint_step(const char *name) {
    if (strncmp(name, "checkpoint-", 11)) return -1;
    char *end;
    long long s = strtoll(name + 11, &end, 10);
    return *end || end == name + 11 ? -1 : s;
}

/* Steps of the checkpoint folders under dir, sorted ascending (owned), count in *n. */
static long long *list_checkpoints(const char *dir, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    long long *v = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long s = checkpoint_step(e->d_name);
        if (s < 0) continue;
        char *p = eft_path_join(dir, e->d_name);
        bool ok = eft_is_dir(p);
        eft_free(p);
        if (!ok) continue;
        if (*n == cap) v = eft_realloc(v, (size_t)(cap = cap ? 2 * cap : 8) * sizeof *v);
        v[(*n)++] = s;
    }
    closedir(d);
    for (int i = 1; i < *n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            long long t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    return v;
}

static int prune(trn_run *r) {
    int64_t limit = r->c->save_total_limit.v;
    if (limit <= 0) return 0;
    int n;
    long long *steps = list_checkpoints(r->c->output_dir.v, &n);
    int rc = 0;
    for (int i = 0; i + limit < n && !rc; i++) {
        if (steps[i] == r->global_step) continue;
        char *name = eft_asprintf("%s/checkpoint-%lld", r->c->output_dir.v, steps[i]);
        rc = eft_remove_tree(name);
        eft_free(name);
    }
    eft_free(steps);
    return rc;
}

int trn_save_checkpoint(trn_run *r) {
    const char *out = r->c->output_dir.v;
    char *final = eft_asprintf("%s/checkpoint-%lld", out, (long long)r->global_step);
    char *tmp = eft_asprintf("%s/.checkpoint-%lld.tmp", out, (long long)r->global_step);
    int rc = eft_remove_tree(tmp) || eft_mkdirs(tmp) || write_model(r, tmp) ||
             write_optimizer(r, tmp) || write_trainer_state(r, tmp) || write_state(r, tmp);
    if (!rc && eft_path_exists(final)) rc = eft_remove_tree(final);
    if (!rc && rename(tmp, final) != 0)
        rc = eft_fail_errno(final, "Could not move the checkpoint into place.");
    if (rc) eft_remove_tree(tmp);
    if (!rc) {
        eft_free(r->last_checkpoint);
        r->last_checkpoint = final;
        final = NULL;
        rc = prune(r);
    }
    eft_free(final);
    eft_free(tmp);
    return rc;
}

/* ---- resume ---------------------------------------------------------------------------- */

static int read_tensor_f32(st_archive *a, const char *name, float *dst, int64_t n,
                           const char *where) {
    const st_tensor *t;
    if (st_get(a, name, &t)) return -1;
    if (t->numel != n)
        return eft_fail("%s: %s has %lld values, the run has %lld: the checkpoint is from "
                        "another model or config.",
                        where, name, (long long)t->numel, (long long)n);
    return st_to_f32(t, dst, (size_t)n);
}

static int restore_model(trn_run *r, const char *dir) {
    char *path = eft_path_join(dir, r->lora ? PEFT_WEIGHTS_NAME : "model.safetensors");
    st_archive *a;
    int rc = st_open(&a, path);
    if (!rc && r->lora) {
        for (int i = 0; i < r->adapter.n_tensors && !rc; i++) {
            lora_tensor *t = &r->adapter.tensors[i];
            rc = read_tensor_f32(a, t->name, t->data, t->numel, path);
        }
        if (!rc && st_count(a) != (size_t)r->adapter.n_tensors)
            rc = eft_fail("%s: holds %zu tensors, the run's adapter has %d: lora_target_modules "
                          "or lora_r changed since the checkpoint.",
                          path, st_count(a), r->adapter.n_tensors);
    } else if (!rc) {
        for (int i = 0; i < r->d.ts.n && !rc; i++) {
            g4_param *p = &r->w.params[i];
            if (p->f32 && p->grad) rc = read_tensor_f32(a, p->t->name, p->f32, p->t->numel, path);
        }
    }
    st_close(a);
    eft_free(path);
    return rc;
}

/* The arrays write_optimizer wrote, byte for byte: each must have the dtype and size of this run's
 * (the same optimizer kind and tensors). */
static int restore_optimizer(trn_run *r, const char *dir) {
    char *path = eft_path_join(dir, "optimizer.safetensors");
    st_archive *a;
    int rc = st_open(&a, path);
    for (int i = 0; i < r->opt.n && !rc; i++) {
        opt_tensor *t = &r->opt.t[i];
        opt_state_array s[OPT_STATE_ARRAYS];
        for (int j = 0, n = opt_tensor_state(t, s); j < n && !rc; j++) {
            char *name = eft_asprintf("%s.%s", t->name, s[j].key);
            const st_tensor *st = st_find(a, name);
            if (!st || st->dtype != (s[j].u8 ? ST_U8 : ST_F32) || st->numel != s[j].n)
                rc = eft_fail("%s: %s is %s, not the %lld %s values this run's optimizer (%s) "
                              "keeps: the checkpoint was written with another optimizer, model or "
                              "config. Resume with the settings it was made with.",
                              path, name, st ? "another shape" : "missing", (long long)s[j].n,
                              s[j].u8 ? "U8" : "F32", r->c->optimizer.v);
            if (!rc) memcpy(s[j].data, st->data, (size_t)s[j].n * (s[j].u8 ? 1 : sizeof(float)));
            eft_free(name);
        }
        char *name = eft_asprintf("%s.step", t->name);
        const st_tensor *st;
        if (!rc) rc = st_get(a, name, &st);
        if (!rc && (st->dtype != ST_I64 || st->numel != 1))
            rc = eft_fail("%s: %s must be one I64.", path, name);
        if (!rc) memcpy(&t->t, st->data, sizeof t->t);
        eft_free(name);
    }
    st_close(a);
    eft_free(path);
    return rc;
}

/* Log entries of trainer_state.json's log_history up to the resumed step, with their keys
 * interned (the entries keep static key strings). */
static const char *const known_keys[] = {"step",           "epoch",
                                         "loss",           "grad_norm",
                                         "learning_rate",  "tokens_per_second",
                                         "peak_memory_gb", "trainable_tokens",
                                         "eval_loss",      "eval_tokens",
                                         "eval_runtime"};

static int restore_history(trn_run *r, const char *dir, met_entry **out, int *n) {
    char *path = eft_path_join(dir, "trainer_state.json");
    cJSON *root = eft_json_parse_file(path);
    eft_free(path);
    if (!root) return -1;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "log_history");
    *n = 0;
    *out = eft_calloc((size_t)EFT_MAX(1, cJSON_GetArraySize(h)), sizeof **out);
    for (const cJSON *e = h ? h->child : NULL; e; e = e->next) {
        met_entry m = {0};
        for (const cJSON *f = e->child; f; f = f->next) {
            for (size_t k = 0; k < EFT_ARRAY_LEN(known_keys); k++) {
                if (strcmp(f->string, known_keys[k]) || !cJSON_IsNumber(f)) continue;
                bool integer = !strcmp(f->string, "step") || !strcmp(f->string, "eval_tokens") ||
                               !strcmp(f->string, "trainable_tokens");
                if (integer)
                    met_add_int(&m, known_keys[k], (int64_t)f->valuedouble);
                else
                    met_add(&m, known_keys[k], f->valuedouble);
            }
        }
        const met_field *s = met_get(&m, "step");
        if (s && s->i <= r->global_step) (*out)[(*n)++] = m;
    }
    cJSON_Delete(root);
    return 0;
}

static int restore_state(trn_run *r, const char *dir) {
    char *path = eft_path_join(dir, "eft_state.json");
    cJSON *root = eft_json_parse_file(path);
    int rc = root ? 0 : -1;
    int64_t T = 0, M = 0, last = 0, first = 0, filtered = 0;
    double acc = 0, total = 0, gn = 0;
    rc = rc || eft_json_int(root, "global_step", &r->global_step, path) ||
         eft_json_int(root, "max_steps", &T, path) ||
         eft_json_int(root, "micro_batches_per_epoch", &M, path) ||
         eft_json_num(root, "loss_acc", &acc, path) ||
         eft_json_int(root, "loss_last_logged", &last, path) ||
         eft_json_int(root, "loss_first_step", &first, path) ||
         eft_json_num(root, "loss_total", &total, path) ||
         eft_json_int(root, "loss_filtered", &filtered, path) ||
         eft_json_num(root, "last_grad_norm", &gn, path) ||
         eft_json_num(root, "last_lr", &r->last_lr, path) ||
         eft_json_int(root, "tokens_seen", &r->tokens_seen, path) ||
         eft_json_int(root, "trainable_tokens", &r->trained_tokens, path);
    if (!rc && (T != r->plan_steps.T || M != r->train.n_mb))
        rc = eft_fail("%s: the checkpoint was made for a run of %lld steps over %lld "
                      "micro-batches per epoch; this config gives %lld and %lld. Resume with the "
                      "config (and data) the checkpoint was made with.",
                      path, (long long)T, (long long)M, (long long)r->plan_steps.T,
                      (long long)r->train.n_mb);
    if (!rc) {
        r->loss_log = (cad_loss_log){(float)acc, last, first, total, filtered};
        r->last_grad_norm = (float)gn;
    }
    cJSON_Delete(root);
    eft_free(path);
    return rc;
}

int trn_resume(trn_run *r) {
    const eft_config *c = r->c;
    char *dir = NULL;
    if (c->resume_from_checkpoint.set && c->resume_from_checkpoint.v &&
        *c->resume_from_checkpoint.v) {
        dir = eft_strdup(c->resume_from_checkpoint.v);
        if (!eft_is_dir(dir)) {
            int rc = cfg_fail_at(c->resume_from_checkpoint.at, "resume_from_checkpoint",
                                 "%s is not a folder. Give a checkpoint-<step> folder of an "
                                 "earlier run.",
                                 dir);
            eft_free(dir);
            return rc;
        }
    } else if (c->auto_resume_from_checkpoints.v) {
        int n;
        long long *steps = list_checkpoints(c->output_dir.v, &n);
        if (n) dir = eft_asprintf("%s/checkpoint-%lld", c->output_dir.v, steps[n - 1]);
        eft_free(steps);
    }
    if (!dir) return 0;
    met_entry *history = NULL;
    int n_history = 0;
    int rc = restore_state(r, dir) || restore_model(r, dir) || restore_optimizer(r, dir) ||
             restore_history(r, dir, &history, &n_history);
    if (!rc) rc = met_open(&r->metrics, c->output_dir.v, history, n_history);
    eft_free(history);
    if (rc) {
        eft_err_context("resuming from %s", dir);
        eft_free(dir);
        return -1;
    }
    eft_info("resuming from %s at step %lld of %lld", dir, (long long)r->global_step,
             (long long)r->plan_steps.T);
    eft_free(r->last_checkpoint);
    r->last_checkpoint = dir;
    return 1;
}

/* ---- output_dir ------------------------------------------------------------------------ */

static int copy_file(const char *src, const char *dst) {
    size_t n;
    char *data = eft_read_file(src, &n);
    if (!data) return -1;
    int rc = eft_write_file_atomic(dst, data, n);
    eft_free(data);
    return rc;
}

int trn_presave(trn_run *r) {
    const eft_config *c = r->c;
    const char *out = c->output_dir.v;
    if (eft_mkdirs(out)) return -1;
    static const char *tok_files[] = {"tokenizer.json", "tokenizer_config.json",
                                      "special_tokens_map.json", "chat_template.jinja"};
    int rc = 0;
    for (size_t i = 0; i < EFT_ARRAY_LEN(tok_files) && !rc; i++) {
        const char *tdir = eft_is_dir(c->tokenizer_path) ? c->tokenizer_path : NULL;
        if (!tdir) break;
        char *src = eft_path_join(tdir, tok_files[i]), *dst = eft_path_join(out, tok_files[i]);
        if (eft_is_file(src)) rc = copy_file(src, dst);
        eft_free(src), eft_free(dst);
    }
    char *cfg_src = eft_is_dir(c->model_config_path)
                        ? eft_path_join(c->model_config_path, "config.json")
                        : eft_strdup(c->model_config_path);
    char *cfg_dst = eft_path_join(out, "config.json");
    if (!rc) rc = copy_file(cfg_src, cfg_dst);
    eft_free(cfg_src), eft_free(cfg_dst);
    return rc;
}

int trn_save_final(trn_run *r) {
    return write_model(r, r->c->output_dir.v);
}
