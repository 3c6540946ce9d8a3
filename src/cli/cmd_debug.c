/* cmd_debug.c: `eft debug loss --model DIR --input ROWS.jsonl [--adapter DIR] [--dump-grads F]
 * [--dump-logits F] [--recompute] [--load-in-4bit [--bnb-4bit-compute-dtype D]
 * [--quantize-moe-experts]]` and `eft debug init-adapter --model DIR --config CONFIG.yaml
 * --out DIR`.
 *
 * loss runs packed rows ({"input_ids", "labels", "position_ids"} per line; position ids restart
 * at 0 in every packed document) through the model and prints {"loss": L, "tokens": N}: L is the
 * mean cross-entropy over the labels that are not -100, after the shift (label t+1 scores logit
 * t), over all rows together. --dump-grads writes dL/d(parameter) for every base parameter under
 * its Hugging Face name; --dump-logits writes the soft-capped logits [N, V] of the rows laid end
 * to end. With --adapter (a PEFT LoRA folder) the base is frozen, the adapter runs in evaluation
 * mode (no dropout, like PEFT after model.eval()) and --dump-grads writes the gradients of its
 * lora_A / lora_B matrices under their names in adapter_model.safetensors. --load-in-4bit loads
 * the base as QLoRA does (its linear weights quantised to NF4, dequantised to bf16, or to fp32
 * with --bnb-4bit-compute-dtype float32; the 3-D expert tensors too with --quantize-moe-experts)
 * and adds the NF4 tensor count and bytes to the output.
 * This is the contract the golden tests against transformers, PEFT and bitsandbytes run through
 * (../shared/spec/design.md 5).
 *
 * init-adapter creates the adapter a run of CONFIG.yaml starts from (lora_r, lora_alpha, the
 * LoRA targets, peft_use_rslora, peft_init_lora_weights, seed) on the checkpoint DIR and saves it
 * as PEFT does; with peft_init_lora_weights: false its B is random, which is how the fixtures
 * proving that PEFT reads eft's adapters are made.
 */
#include "cli/cli.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/json.h"
#include "io/jsonl.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/g4_desc.h"
#include "model/g4_model.h"
#include "model/g4_plan.h"
#include "model/g4_weights.h"
#include "ops/ops.h"
#include "peft/lora.h"
#include "peft/lora_target.h"
#include "peft/nf4_load.h"
#include "peft/peft_io.h"

#include <stdio.h>
#include <string.h>

static const char *usage =
    "usage: eft debug loss --model DIR --input ROWS.jsonl [--adapter DIR]\n"
    "                      [--dump-grads OUT.safetensors] [--dump-logits OUT.safetensors]\n"
    "                      [--recompute] [--load-in-4bit [--bnb-4bit-compute-dtype D]\n"
    "                      [--quantize-moe-experts]]\n"
    "  ROWS.jsonl: one packed row per line, {\"input_ids\": [...], \"labels\": [...],\n"
    "  \"position_ids\": [...]} (labels -100 where not trained; position ids restart at 0 in\n"
    "  each packed document; they default to 0, 1, 2, ... when absent).\n"
    "  Prints {\"loss\": L, \"tokens\": N}: the mean cross-entropy over the trained labels.\n"
    "  --adapter DIR: a PEFT LoRA folder; the base is frozen and --dump-grads writes the\n"
    "  adapter's gradients under its tensor names.\n"
    "  --load-in-4bit: the base's linear weights in NF4 (QLoRA; frozen), dequantised to bf16\n"
    "  (D = bfloat16, the default) or to fp32 (D = float32); --quantize-moe-experts: the\n"
    "  MoE expert tensors too.\n"
    "usage: eft debug init-adapter --model DIR --config CONFIG.yaml --out DIR\n"
    "  Saves the LoRA adapter a run of CONFIG.yaml starts from, as PEFT saves one.\n";

typedef struct rows {
    int32_t *ids, *labels, *pos, *row_start; /* [N], [N], [N], [rows+1] */
    int n, rows, cap;
} rows;

static void rows_push(rows *r, int32_t id, int32_t label, int32_t pos) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 1024;
        r->ids = eft_realloc(r->ids, (size_t)r->cap * sizeof(int32_t));
        r->labels = eft_realloc(r->labels, (size_t)r->cap * sizeof(int32_t));
        r->pos = eft_realloc(r->pos, (size_t)r->cap * sizeof(int32_t));
    }
    r->ids[r->n] = id, r->labels[r->n] = label, r->pos[r->n] = pos;
    r->n++;
}

/* One integer array field of a row, checked against [lo, hi] (or -100 when allow_ignore). */
static int int_array(const cJSON *row, const char *key, const char *where, int64_t lo, int64_t hi,
                     bool allow_ignore, const cJSON **out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(row, key);
    *out = a;
    if (!a) return 0;
    if (!cJSON_IsArray(a)) return eft_fail("%s: \"%s\" must be a list of integers.", where, key);
    int i = 0;
    for (const cJSON *v = a->child; v; v = v->next, i++) {
        if (!eft_json_is_integer(v))
            return eft_fail("%s: %s[%d] is not an integer.", where, key, i);
        int64_t x = (int64_t)v->valuedouble;
        if ((x < lo || x > hi) && !(allow_ignore && x == OPS_IGNORE_INDEX))
            return eft_fail("%s: %s[%d] = %lld is outside [%lld, %lld]%s.", where, key, i,
                            (long long)x, (long long)lo, (long long)hi,
                            allow_ignore ? " (or -100)" : "");
    }
    return 0;
}

static int read_rows(const char *path, int64_t V, rows *r) {
    eft_jsonl in;
    if (eft_jsonl_open(&in, path)) return -1;
    r->row_start = eft_malloc(sizeof(int32_t));
    r->row_start[0] = 0;
    cJSON *row;
    int rc = 0;
    while (!rc && (row = eft_jsonl_next(&in))) {
        char where[1100];
        snprintf(where, sizeof where, "%s:%d", path, in.line);
        const cJSON *ids, *labels, *pos;
        rc = int_array(row, "input_ids", where, 0, V - 1, false, &ids) ||
             int_array(row, "labels", where, 0, V - 1, true, &labels) ||
             int_array(row, "position_ids", where, 0, 1 << 30, false, &pos);
        int n = ids ? cJSON_GetArraySize(ids) : 0;
        if (!rc && n == 0) rc = eft_fail("%s: \"input_ids\" is missing or empty.", where);
        if (!rc && !labels) rc = eft_fail("%s: \"labels\" is missing.", where);
        if (!rc && (cJSON_GetArraySize(labels) != n || (pos && cJSON_GetArraySize(pos) != n)))
            rc = eft_fail("%s: input_ids, labels and position_ids must have the same length.",
                          where);
        if (!rc) {
            const cJSON *a = ids->child, *b = labels->child, *c = pos ? pos->child : NULL;
            for (int t = 0; t < n; t++, a = a->next, b = b->next, c = c ? c->next : NULL)
                rows_push(r, (int32_t)a->valuedouble, (int32_t)b->valuedouble,
                          c ? (int32_t)c->valuedouble : t);
            r->row_start = eft_realloc(r->row_start, (size_t)(r->rows + 2) * sizeof(int32_t));
            r->row_start[++r->rows] = r->n;
        }
        cJSON_Delete(row);
    }
    if (!rc && eft_err_code()) rc = -1; /* a syntax error ended the loop */
    if (!rc && r->rows == 0) rc = eft_fail("%s: no rows. Write one JSON object per line.", path);
    eft_jsonl_close(&in);
    return rc;
}

/* The gradients of the adapter when there is one (PEFT's names), else of every trained base
 * parameter (Hugging Face names). */
static int dump_grads(const g4_weights *w, const lora_adapter *a, const char *path) {
    st_writer *wr = st_writer_new();
    for (int i = 0; a && i < a->n_tensors; i++) {
        const lora_tensor *t = &a->tensors[i];
        st_writer_add(wr, t->name, ST_F32, 2, t->shape, t->grad);
    }
    for (int i = 0; !a && i < w->ts->n; i++) {
        const g4_param *p = &w->params[i];
        if (p->grad) st_writer_add(wr, p->t->name, ST_F32, p->t->ndim, p->t->shape, p->grad);
    }
    st_writer_meta(wr, "format", "pt");
    int rc = st_writer_write(wr, path);
    st_writer_free(wr);
    return rc;
}

static int dump_logits(g4_model *m, const g4_batch *b, int64_t V, const char *path) {
    float *logits = eft_malloc((size_t)b->N * (size_t)V * sizeof(float));
    g4_logits(m, b, logits);
    st_writer *wr = st_writer_new();
    int64_t shape[2] = {b->N, V};
    st_writer_add(wr, "logits", ST_F32, 2, shape, logits);
    int rc = st_writer_write(wr, path);
    st_writer_free(wr);
    eft_free(logits);
    return rc;
}

typedef struct loss_args {
    const char *model, *input, *adapter, *grads, *logits;
    const char *compute_dtype; /* with load_in_4bit: "bfloat16" (NULL) or "float32" */
    bool recompute, load_in_4bit, quantize_moe_experts;
} loss_args;

static int run_loss(const loss_args *a) {
    g4_desc d;
    if (g4_desc_load(&d, a->model)) return -1;
    rows r = {0};
    g4_weights w = {0};
    lora_adapter ad = {0};
    peft_config pc = {0};
    bool grads = a->grads != NULL;
    int rc = read_rows(a->input, d.plan.V, &r);
    /* With an adapter only the adapter is trained: the base stays frozen (no fp32 masters). */
    if (!rc && a->load_in_4bit && grads && !a->adapter)
        rc = eft_fail("debug loss: --load-in-4bit freezes the base (its weights are NF4): "
                      "--dump-grads needs --adapter DIR.");
    nf4_options nf4 = {!a->compute_dtype || strcmp(a->compute_dtype, "float32"),
                       a->quantize_moe_experts};
    if (!rc)
        rc = a->load_in_4bit ? nf4_weights_load(&w, &d.plan, &d.ts, a->model, &nf4)
                             : g4_weights_load(&w, &d.plan, &d.ts, a->model, grads && !a->adapter);
    if (!rc && a->adapter) {
        rc = peft_load(a->adapter, &w, grads, &ad, &pc);
        if (rc) g4_weights_free(&w);
        lora_set_train(&ad, false);
    }
    if (!rc) {
        int32_t *target = eft_malloc((size_t)r.n * sizeof(int32_t));
        g4_batch_targets(target, r.labels, r.row_start, r.rows, r.n);
        g4_batch b = {r.n, r.ids, r.pos, target, r.row_start, r.rows};
        g4_model m;
        g4_model_init(&m, &d.plan, &w, r.n, a->recompute);
        int64_t count = 0;
        double sum = g4_forward(&m, &b, &count);
        double loss = count ? sum / (double)count : 0.0;
        if (grads && count) g4_backward(&m, &b, 1.0 / (double)count);
        printf("{\"loss\": %.9g, \"tokens\": %lld", loss, (long long)count);
        if (a->load_in_4bit) {
            int k;
            int64_t bytes = nf4_weights_bytes(&w, &k);
            printf(", \"nf4_tensors\": %d, \"nf4_bytes\": %lld", k, (long long)bytes);
        }
        printf("}\n");
        if (grads) rc = dump_grads(&w, a->adapter ? &ad : NULL, a->grads);
        if (!rc && a->logits) rc = dump_logits(&m, &b, d.plan.V, a->logits);
        g4_model_free(&m);
        eft_free(target);
        lora_detach(&ad);
        peft_config_free(&pc);
        g4_weights_free(&w);
    }
    eft_free(r.ids), eft_free(r.labels), eft_free(r.pos), eft_free(r.row_start);
    g4_desc_free(&d);
    return rc;
}

typedef struct init_args {
    const char *model, *config, *out;
} init_args;

/* The adapter of a run: targets and spec from the config, values from its seed. */
static int save_new_adapter(const eft_config *c, const g4_desc *d, g4_weights *w, const char *out) {
    lora_spec spec;
    if (lora_spec_from_config(&spec, c)) return -1;
    bool *sel = eft_calloc((size_t)d->ts.n, sizeof *sel);
    lora_adapter ad;
    int rc = lora_select(c, &d->ts, sel) < 0 ? -1 : 0;
    if (!rc) rc = lora_attach(&ad, w, sel, &spec, (uint64_t)c->seed.v);
    eft_free(sel);
    if (rc) return -1;
    peft_config pc;
    peft_config_from_run(&pc, c, &ad);
    rc = peft_save(out, &ad, &pc);
    if (!rc)
        printf("wrote %s/%s and %s/%s (%d modules, r=%d)\n", out, PEFT_WEIGHTS_NAME, out,
               PEFT_CONFIG_NAME, ad.n_modules, spec.r);
    peft_config_free(&pc);
    lora_detach(&ad);
    return rc;
}

static int run_init_adapter(const init_args *a) {
    eft_config c;
    int rc = cfg_load(&c, a->config);
    if (!rc && (!c.adapter.v || strcmp(c.adapter.v, "lora")))
        rc = eft_fail("%s: init-adapter needs adapter: lora.", a->config);
    g4_desc d;
    if (!rc) rc = g4_desc_load(&d, a->model);
    if (!rc) {
        g4_weights w = {0};
        rc = g4_weights_load(&w, &d.plan, &d.ts, a->model, false);
        if (!rc) rc = save_new_adapter(&c, &d, &w, a->out);
        g4_weights_free(&w);
        g4_desc_free(&d);
    }
    cfg_free(&c);
    return rc;
}

static int cmd_init_adapter(int argc, char **argv) {
    init_args a = {0};
    for (int i = 2; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = cli_flag_value(argc, argv, &i, "--model", &missing)))
            a.model = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--config", &missing)))
            a.config = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--out", &missing)))
            a.out = v;
        else if (missing)
            return -1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s", usage);
            return 0;
        } else
            return eft_fail("debug init-adapter: unknown argument \"%s\". Run `eft debug loss "
                            "--help`.",
                            argv[i]);
    }
    if (!a.model || !a.config || !a.out)
        return eft_fail("debug init-adapter: --model DIR, --config CONFIG.yaml and --out DIR are "
                        "required.");
    return run_init_adapter(&a);
}

int cmd_debug(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "init-adapter")) return cmd_init_adapter(argc, argv);
    if (argc < 2 || strcmp(argv[1], "loss"))
        return eft_fail("debug: expected a subcommand: `eft debug loss ...` or `eft debug "
                        "init-adapter ...` (see `eft debug loss --help`).");
    loss_args a = {0};
    for (int i = 2; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = cli_flag_value(argc, argv, &i, "--model", &missing)))
            a.model = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--input", &missing)))
            a.input = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--adapter", &missing)))
            a.adapter = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--dump-grads", &missing)))
            a.grads = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--dump-logits", &missing)))
            a.logits = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--bnb-4bit-compute-dtype", &missing)))
            a.compute_dtype = v;
        else if (missing)
            return -1;
        else if (!strcmp(argv[i], "--recompute"))
            a.recompute = true;
        else if (!strcmp(argv[i], "--load-in-4bit"))
            a.load_in_4bit = true;
        else if (!strcmp(argv[i], "--quantize-moe-experts"))
            a.quantize_moe_experts = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s", usage);
            return 0;
        } else
            return eft_fail("debug loss: unknown argument \"%s\". Run `eft debug loss --help`.",
                            argv[i]);
    }
    if (!a.model || !a.input)
        return eft_fail("debug loss: --model DIR and --input ROWS.jsonl are required. Run `eft "
                        "debug loss --help`.");
    if (a.compute_dtype && strcmp(a.compute_dtype, "float32") &&
        strcmp(a.compute_dtype, "bfloat16"))
        return eft_fail("debug loss: --bnb-4bit-compute-dtype %s: expected bfloat16 or float32.",
                        a.compute_dtype);
    if ((a.compute_dtype || a.quantize_moe_experts) && !a.load_in_4bit)
        return eft_fail("debug loss: --%s needs --load-in-4bit.",
                        a.compute_dtype ? "bnb-4bit-compute-dtype" : "quantize-moe-experts");
    return run_loss(&a);
}
