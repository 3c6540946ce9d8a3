/* config_paths.c: the files a config names, found on this machine (cfg_resolve_paths; the
 * lookup rules are hub.c's). Kept apart from loading so that `eft config-schema` and tests of
 * typing need no model on disk. */
#include "io/config.h"

#include "base/err.h"
#include "io/hub.h"

#include <string.h>

static char *resolve(hub_kind kind, const cfg_str *s, const char *revision, const char *key) {
    char *where = cfg_pos_str(s->at);
    char *path = hub_resolve(kind, s->v, revision, key, where);
    eft_free(where);
    return path;
}

static bool same_repo(const eft_config *c, const cfg_str *s) {
    return !strcmp(s->v, c->base_model.v);
}

static int resolve_datasets(cfg_datasets *ds, const char *what) {
    for (int i = 0; i < ds->n; i++) {
        cfg_dataset *d = &ds->v[i];
        if (!d->path.set) continue; /* cfg_validate reports it */
        char *key = eft_asprintf("%s[%d].path", what, i);
        eft_free(d->local_path);
        d->local_path = resolve(HUB_DATASET, &d->path, d->revision.v, key);
        eft_free(key);
        if (!d->local_path) return -1;
    }
    return 0;
}

int cfg_resolve_model_paths(eft_config *c) {
    if (!c->base_model.set)
        return eft_fail("%s: base_model is missing. Set it to a local model folder or a Hugging "
                        "Face id.",
                        c->path);
    const char *rev = c->revision_of_model.v;
    eft_free(c->base_model_path);
    eft_free(c->model_config_path);
    eft_free(c->tokenizer_path);
    c->model_config_path = c->tokenizer_path = NULL;
    c->base_model_path = resolve(HUB_MODEL, &c->base_model, rev, "base_model");
    if (!c->base_model_path) return -1;
    /* The revision is base_model's: it applies to another repo only when that is the same one. */
    const cfg_str *mc = &c->base_model_config, *tk = &c->tokenizer_config;
    c->model_config_path =
        mc->set ? resolve(HUB_MODEL, mc, same_repo(c, mc) ? rev : NULL, "base_model_config")
                : eft_strdup(c->base_model_path);
    if (!c->model_config_path) return -1;
    c->tokenizer_path =
        tk->set ? resolve(HUB_MODEL, tk, same_repo(c, tk) ? rev : NULL, "tokenizer_config")
                : eft_strdup(c->base_model_path);
    if (!c->tokenizer_path) return -1;
    return 0;
}

int cfg_resolve_paths(eft_config *c) {
    return cfg_resolve_model_paths(c) || resolve_datasets(&c->datasets, "datasets") ||
                   resolve_datasets(&c->test_datasets, "test_datasets")
               ? -1
               : 0;
}
