/* peft_io.c: adapter folders saved and loaded (see peft_io.h); adapter_config.json's text is
 * peft_config.c's. */
#include "peft/peft_io.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/safetensors.h"
#include "peft/lora_target.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- saving ------------------------------------------------------------------------------ */

/* Flushes a temporary to disk without renaming it, so that both files are complete before
 * either replaces its predecessor. */
static int flush_to_disk(eft_atomic *f) {
    if (fflush(f->f) != 0 || ferror(f->f) || (fsync(fileno(f->f)) != 0 && errno != EINVAL))
        return eft_fail_errno(f->tmp, "Writing failed (is the disk full?).");
    return 0;
}

int peft_save(const char *dir, const lora_adapter *a, const peft_config *pc) {
    if (eft_mkdirs(dir)) return -1;
    char *st_path = eft_path_join(dir, PEFT_WEIGHTS_NAME);
    char *cfg_path = eft_path_join(dir, PEFT_CONFIG_NAME);
    char *json = peft_config_json(pc);
    st_writer *wr = st_writer_new();
    for (int i = 0; i < a->n_tensors; i++) {
        const lora_tensor *t = &a->tensors[i];
        st_writer_add(wr, t->name, ST_F32, 2, t->shape, t->data);
    }
    st_writer_meta(wr, "format", "pt");

    eft_atomic st = {0}, cf = {0};
    size_t n = strlen(json);
    int rc = eft_atomic_open(&st, st_path);
    if (!rc) rc = eft_atomic_open(&cf, cfg_path);
    if (!rc) rc = st_writer_write_to(wr, st.f, st_path);
    if (!rc && fwrite(json, 1, n, cf.f) != n)
        rc = eft_fail_errno(cf.tmp, "Writing failed (is the disk full?).");
    if (!rc) rc = flush_to_disk(&st);
    if (!rc) rc = flush_to_disk(&cf);
    if (rc) {
        eft_atomic_abort(&st);
        eft_atomic_abort(&cf);
    } else {
        /* Both files are on disk; only the two renames are left. */
        rc = eft_atomic_commit(&st);
        if (rc)
            eft_atomic_abort(&cf);
        else
            rc = eft_atomic_commit(&cf);
    }
    if (rc) eft_err_context("saving the adapter to %s", dir);
    st_writer_free(wr);
    eft_free(json);
    eft_free(cfg_path);
    eft_free(st_path);
    return rc;
}

/* ---- loading ----------------------------------------------------------------------------- */

static const char prefix[] = "base_model.model.";

/* Splits a PEFT key "base_model.model.<module>.lora_A.weight" into the module path (copied into
 * module[LORA_NAME_MAX]) and which matrix; false for any other key. */
static bool split_key(const char *name, char *module, bool *is_b) {
    static const char *suffix[2] = {".lora_A.weight", ".lora_B.weight"};
    size_t n = strlen(name), lp = sizeof prefix - 1;
    for (int b = 0; b < 2; b++) {
        size_t ls = strlen(suffix[b]);
        if (n > lp + ls && n - lp - ls < LORA_NAME_MAX && !strncmp(name, prefix, lp) &&
            !strcmp(name + n - ls, suffix[b])) {
            memcpy(module, name + lp, n - lp - ls);
            module[n - lp - ls] = 0;
            *is_b = b;
            return true;
        }
    }
    return false;
}

/* A real module path of the model, for messages: the first q_proj. */
static const char *example_module(const g4_tensors *ts) {
    for (int i = 0; i < ts->n; i++)
        if (ts->t[i].linear == G4_LIN_Q) return ts->t[i].module;
    return "?";
}

static bool is_expert(const g4_tensor *t) {
    return t->linear == G4_LIN_EXPERTS_GATE_UP || t->linear == G4_LIN_EXPERTS_DOWN;
}

/* The weights an adapter file may cover: the linear maps and expert tensors lora_attach takes,
 * plus the LM head (so that a file adapting it gets lora_attach's message, not "unknown"). */
static bool wrappable(const g4_tensor *t) {
    return t->linear != G4_LIN_NONE;
}

/* Whether adapter_config.json selects tensor t: target_modules for a linear layer,
 * target_parameters for an expert tensor. -1 on a bad regex. */
static int targeted(const peft_config *pc, const g4_tensor *t) {
    if (is_expert(t))
        return lora_match_suffix((const char *const *)pc->target_params, pc->n_target_params,
                                 t->module);
    if (pc->target_regex) return lora_match_regex(pc->target_regex, t->module);
    return lora_match_suffix((const char *const *)pc->target_list, pc->n_targets, t->module);
}

/* The module path of every wrappable tensor as PEFT names it under this config (experts'
 * nesting follows target_parameters), [ts->n][LORA_MODULE_MAX]; "" for the others. */
static char (*peft_paths(const g4_tensors *ts, const peft_config *pc))[LORA_MODULE_MAX] {
    char(*paths)[LORA_MODULE_MAX] = eft_calloc((size_t)EFT_MAX(ts->n, 1), sizeof *paths);
    for (int i = 0; i < ts->n; i++) {
        const g4_tensor *t = &ts->t[i];
        if (!wrappable(t)) continue;
        bool nested = false;
        if (t->linear == G4_LIN_EXPERTS_GATE_UP)
            for (int j = 0; j < ts->n; j++)
                nested |= ts->t[j].linear == G4_LIN_EXPERTS_DOWN && ts->t[j].layer == t->layer &&
                          targeted(pc, &ts->t[j]) == 1;
        lora_peft_module(paths[i], t, nested);
    }
    return paths;
}

static int find_module(const g4_tensors *ts, char (*paths)[LORA_MODULE_MAX], const char *module) {
    for (int i = 0; i < ts->n; i++)
        if (paths[i][0] && !strcmp(paths[i], module)) return i;
    return -1;
}

/* Checks every tensor of the file against the model and the config; marks the modules it has
 * in sel[], with which matrices in seen[] (bit 0: A, bit 1: B). */
static int check_tensors(const st_archive *ar, const g4_tensors *ts, const peft_config *pc,
                         char (*paths)[LORA_MODULE_MAX], const char *file, bool *sel,
                         unsigned char *seen) {
    char module[LORA_NAME_MAX];
    for (size_t k = 0; k < st_count(ar); k++) {
        const st_tensor *t = st_at(ar, k);
        bool is_b;
        if (!split_key(t->name, module, &is_b))
            return eft_fail("%s: tensor \"%s\" is not a LoRA matrix eft reads (expected "
                            "base_model.model.<module path>.lora_A.weight or .lora_B.weight; "
                            "DoRA, embedding adapters and saved modules are not supported).",
                            file, t->name);
        int i = find_module(ts, paths, module);
        if (i < 0)
            return eft_fail("%s: tensor \"%s\" adapts %s, which this model does not have%s "
                            "(module paths here look like %s). Was the adapter trained on a "
                            "different base model or layout (text-only versus the multimodal "
                            "wrapper)?",
                            file, t->name, module,
                            strstr(module, "experts") ? ", or not under this target_parameters"
                                                      : "",
                            example_module(ts));
        const g4_tensor *g = &ts->t[i];
        int ok = targeted(pc, g);
        if (ok < 0) return -1;
        if (!ok)
            return eft_fail("%s: tensor \"%s\" adapts %s, which %s in %s does not select; PEFT "
                            "would not load it. The adapter's files disagree.",
                            file, t->name, g->module,
                            is_expert(g) ? "target_parameters" : "target_modules",
                            PEFT_CONFIG_NAME);
        if (t->dtype != ST_F32 && t->dtype != ST_BF16 && t->dtype != ST_F16)
            return eft_fail("%s: tensor \"%s\" is %s; adapter weights must be F32, BF16 or F16.",
                            file, t->name, st_dtype_name(t->dtype));
        int64_t rows = (int64_t)pc->r * g->count; /* r * E for an expert tensor */
        int64_t want0 = is_b ? g->out : rows, want1 = is_b ? rows : g->in;
        if (t->ndim != 2 || t->shape[0] != want0 || t->shape[1] != want1)
            return eft_fail("%s: tensor \"%s\" has shape %s%lld, %lld], expected [%lld, %lld] (r "
                            "= %d from %s; %s is [%lld, %lld]%s in this model). Was the adapter "
                            "trained on a different base model?",
                            file, t->name, t->ndim == 2 ? "[" : "(not 2-D) [",
                            (long long)(t->ndim > 0 ? t->shape[0] : 0),
                            (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)want0,
                            (long long)want1, pc->r, PEFT_CONFIG_NAME, g->module, (long long)g->out,
                            (long long)g->in, g->count > 1 ? " per expert" : "");
        sel[i] = true;
        seen[i] |= is_b ? 2 : 1;
    }
    return 0;
}

/* Every module needs A and B, and every module the config selects needs tensors. */
static int check_coverage(const g4_tensors *ts, const peft_config *pc,
                          char (*paths)[LORA_MODULE_MAX], const char *file, const bool *sel,
                          const unsigned char *seen) {
    for (int i = 0; i < ts->n; i++) {
        const g4_tensor *g = &ts->t[i];
        if (sel[i] && seen[i] != 3)
            return eft_fail("%s: %s has %s but no %s. Both matrices of each module are needed; "
                            "the file may be truncated or edited.",
                            file, paths[i], seen[i] == 1 ? "lora_A" : "lora_B",
                            seen[i] == 1 ? "lora_B" : "lora_A");
        if (sel[i] || !wrappable(g)) continue;
        int ok = targeted(pc, g);
        if (ok < 0) return -1;
        if (ok)
            return eft_fail("%s: %s in %s selects %s, but the file has no "
                            "base_model.model.%s.lora_A.weight (PEFT would start that module "
                            "from scratch). The adapter's files disagree.",
                            file, is_expert(g) ? "target_parameters" : "target_modules",
                            PEFT_CONFIG_NAME, g->module, paths[i]);
    }
    return 0;
}

int peft_load(const char *dir, g4_weights *w, bool train, lora_adapter *a, peft_config *pc) {
    memset(a, 0, sizeof *a);
    if (peft_read_config(dir, pc)) return -1;
    char *file = eft_path_join(dir, PEFT_WEIGHTS_NAME);
    const g4_tensors *ts = w->ts;
    bool *sel = eft_calloc((size_t)EFT_MAX(ts->n, 1), sizeof *sel);
    unsigned char *seen = eft_calloc((size_t)EFT_MAX(ts->n, 1), 1);
    st_archive *ar = NULL;
    int rc = 0;
    if (!eft_is_file(file)) {
        char *bin = eft_path_join(dir, "adapter_model.bin");
        rc = eft_fail("%s: not found%s.", file,
                      eft_is_file(bin) ? "; the folder has adapter_model.bin (a pickle), which "
                                         "eft does not read. Save the adapter with "
                                         "safe_serialization=True"
                                       : ". Check the adapter folder");
        eft_free(bin);
    }
    if (!rc) rc = st_open(&ar, file);
    char(*paths)[LORA_MODULE_MAX] = rc ? NULL : peft_paths(ts, pc);
    if (!rc) rc = check_tensors(ar, ts, pc, paths, file, sel, seen);
    if (!rc) rc = check_coverage(ts, pc, paths, file, sel, seen);
    eft_free(paths);
    lora_spec spec = {pc->r, pc->alpha, pc->rslora, pc->dropout, LORA_INIT_EMPTY, train};
    if (!rc) rc = lora_attach(a, w, sel, &spec, 0);
    for (int i = 0; !rc && i < a->n_tensors; i++) {
        lora_tensor *t = &a->tensors[i];
        rc = st_to_f32(st_find(ar, t->name), t->data, (size_t)t->numel);
    }
    if (rc && a->block) lora_detach(a);
    if (rc) peft_config_free(pc);
    st_close(ar);
    eft_free(seen);
    eft_free(sel);
    eft_free(file);
    return rc;
}
