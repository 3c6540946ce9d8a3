/* config.c: loading a config file into eft_config, with the statuses of the schema table
 * (see config.h). Typing is config_value.c's; the rules across keys are config_validate.c's;
 * command-line overrides are config_override.c's. */
#include "io/config.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/config_schema.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- defaults and freeing, driven by the table ---- */

static void each_field(const cfg_group *groups, int ng, void *base,
                       void (*fn)(const cfg_key *, void *)) {
    for (int g = 0; g < ng; g++)
        for (int i = 0; i < groups[g].n; i++) {
            const cfg_key *k = &groups[g].keys[i];
            if (k->off != CFG_NO_FIELD && !k->alias_of) fn(k, (char *)base + k->off);
        }
}

void cfg_init(eft_config *c) {
    memset(c, 0, sizeof *c);
    int ng;
    const cfg_group *groups = cfg_top_groups(&ng);
    each_field(groups, ng, c, cfg_value_default);
}

static void dataset_init(cfg_dataset *d) {
    memset(d, 0, sizeof *d);
    each_field(&cfg_dataset_group, 1, d, cfg_value_default);
}

void cfg_datasets_free(cfg_datasets *ds) {
    for (int i = 0; i < ds->n; i++) {
        each_field(&cfg_dataset_group, 1, &ds->v[i], cfg_value_free);
        each_field(&cfg_dataset_type_group, 1, &ds->v[i].custom, cfg_value_free);
        eft_free(ds->v[i].local_path);
    }
    eft_free(ds->v);
    memset(ds, 0, sizeof *ds);
}

static void free_strings(char **v, int n) {
    for (int i = 0; i < n; i++) eft_free(v[i]);
    eft_free(v);
}

void cfg_free(eft_config *c) {
    int ng;
    const cfg_group *groups = cfg_top_groups(&ng);
    each_field(groups, ng, c, cfg_value_free);
    eft_free(c->path);
    eft_free(c->base_model_path);
    eft_free(c->model_config_path);
    eft_free(c->tokenizer_path);
    free_strings(c->no_effect, c->n_no_effect);
    free_strings(c->warnings, c->n_warnings);
    memset(c, 0, sizeof *c);
}

/* ---- notes kept in the config ---- */

static void add_unique(char ***list, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*list)[i], s)) return;
    *list = eft_realloc(*list, (size_t)(*n + 1) * sizeof **list);
    (*list)[(*n)++] = eft_strdup(s);
}

static void warn(eft_config *c, char *msg /* taken */) {
    eft_warn("%s", msg);
    c->warnings = eft_realloc(c->warnings, (size_t)(c->n_warnings + 1) * sizeof *c->warnings);
    c->warnings[c->n_warnings++] = msg;
}

/* An unknown key: a warning (or under strict an error) with the nearest known key. */
static void unknown_key(const cfg_ctx *cx, const cfg_group *groups, int ng, const char *name,
                        cfg_pos at, const char *in_what) {
    const char *near = cfg_key_suggest(groups, ng, name);
    char *where = cfg_pos_str(at);
    char *msg;
    if (near)
        msg = eft_asprintf("%s: unknown key \"%s\"%s; did you mean \"%s\"?", where, name, in_what,
                           near);
    else
        msg = eft_asprintf("%s: unknown key \"%s\"%s; eft ignores it (`eft config-schema` lists "
                           "the keys).",
                           where, name, in_what);
    eft_free(where);
    if (cx->cfg->strict.v) {
        eft_fail("%s (strict: true makes this an error; fix or remove the key)", msg);
        cfg_errs_note(cx->errs, name, at);
        eft_free(msg);
        return;
    }
    warn(cx->cfg, msg);
}

/* ---- one key ---- */

/* Applies the value of key k (found at key_at) to the struct at base, by the key's status.
 * Problems are noted in cx->errs; returns -1 when there was one. */
static int apply_key(const cfg_ctx *cx, const cfg_group *groups, int ng, const cfg_key *k,
                     void *base, const ydoc_node *v, cfg_pos key_at, bool replace) {
    if (k->status == CFG_NOT_YET) {
        if (cfg_value_is_inert(k, v)) {
            if (k->flags & CFG_F_EMPTY_NO_EFFECT)
                add_unique(&cx->cfg->no_effect, &cx->cfg->n_no_effect, k->name);
            return 0;
        }
        cfg_fail_at(key_at, cx->key, "not supported yet by eft. %s", k->hint);
        cfg_errs_note(cx->errs, cx->key, key_at);
        return -1;
    }
    bool null = v->kind == YDOC_SCALAR && ydoc_resolve(v, NULL, NULL, NULL) == YDOC_NULL;
    if (k->status == CFG_NO_EFFECT) {
        if (!null && cfg_value_read(k, v, NULL, cx)) {
            cfg_errs_note(cx->errs, cx->key, cfg_node_pos(cx, v));
            return -1;
        }
        add_unique(&cx->cfg->no_effect, &cx->cfg->n_no_effect, k->name);
        return 0;
    }
    const cfg_key *t = cfg_key_target(groups, ng, k);
    void *field = (char *)base + t->off;
    if (*(bool *)field && !replace) {
        /* The same field through two spellings (model_revision and revision_of_model). */
        cfg_fail_at(key_at, cx->key, "given twice (also as %s). Keep one.",
                    k->alias_of ? k->alias_of : "another spelling of the same key");
        cfg_errs_note(cx->errs, cx->key, key_at);
        return -1;
    }
    cfg_value_free(t, field);
    if (null) {
        cfg_value_default(t, field); /* empty: the default applies */
        return 0;
    }
    if (cfg_value_read(t, v, field, cx) == 0) return 0;
    cfg_errs_note(cx->errs, cx->key, cfg_node_pos(cx, v));
    cfg_value_default(t, field);
    return -1;
}

/* ---- datasets ---- */

static int read_custom_type(const ydoc_node *v, cfg_dataset *d, const cfg_ctx *cx) {
    const cfg_group *g = &cfg_dataset_type_group;
    for (int i = 0; i < v->n; i++) {
        const ydoc_node *key = v->items[2 * i];
        const cfg_key *k = cfg_key_find(g, 1, key->text);
        char *name = eft_asprintf("%s.%s", cx->key, key->text);
        cfg_ctx sub = *cx;
        sub.key = name;
        if (!k)
            unknown_key(&sub, g, 1, key->text, cfg_node_pos(cx, key), " in a custom type");
        else
            apply_key(&sub, g, 1, k, &d->custom, v->items[2 * i + 1], cfg_node_pos(cx, key), false);
        eft_free(name);
    }
    d->type.set = true;
    d->type.v = eft_strdup("user_defined");
    d->type.at = cfg_node_pos(cx, v);
    return 0;
}

static void read_dataset(const ydoc_node *m, cfg_dataset *d, const cfg_ctx *cx) {
    const cfg_group *g = &cfg_dataset_group;
    for (int i = 0; i < m->n; i++) {
        const ydoc_node *key = m->items[2 * i], *val = m->items[2 * i + 1];
        const cfg_key *k = cfg_key_find(g, 1, key->text);
        char *name = eft_asprintf("%s.%s", cx->key, key->text);
        cfg_ctx sub = *cx;
        sub.key = name;
        cfg_pos at = cfg_node_pos(cx, key);
        if (!k)
            unknown_key(&sub, g, 1, key->text, at, " in a dataset");
        else if (k->type == CFG_T_DS_TYPE && val->kind == YDOC_MAP)
            read_custom_type(val, d, &sub);
        else
            apply_key(&sub, g, 1, k, d, val, at, false);
        eft_free(name);
    }
}

int cfg_datasets_read(const ydoc_node *v, cfg_datasets *ds, const cfg_ctx *cx) {
    if (v->kind != YDOC_SEQ) {
        char *found = ydoc_describe(v);
        cfg_fail_at(cfg_node_pos(cx, v), cx->key,
                    "expected a list of datasets (lines starting with \"- path: \"), found %s.",
                    found);
        eft_free(found);
        return -1;
    }
    ds->v = eft_calloc((size_t)(v->n ? v->n : 1), sizeof *ds->v);
    for (int i = 0; i < v->n; i++) {
        const ydoc_node *m = v->items[i];
        cfg_dataset *d = &ds->v[ds->n++];
        dataset_init(d);
        d->at = cfg_node_pos(cx, m);
        char *name = eft_asprintf("%s[%d]", cx->key, i);
        cfg_ctx sub = *cx;
        sub.key = name;
        if (m->kind != YDOC_MAP) {
            char *found = ydoc_describe(m);
            cfg_fail_at(d->at, name, "expected a mapping (path:, type:, ...), found %s.", found);
            cfg_errs_note(cx->errs, name, d->at);
            eft_free(found);
        } else {
            read_dataset(m, d, &sub);
        }
        eft_free(name);
    }
    return 0;
}

/* ---- the top level ---- */

int cfg_apply_node(eft_config *c, const char *name, const ydoc_node *v, cfg_pos key_at,
                   const cfg_ctx *cx, bool replace) {
    int ng;
    const cfg_group *groups = cfg_top_groups(&ng);
    const cfg_key *k = cfg_key_find(groups, ng, name);
    assert(k);
    return apply_key(cx, groups, ng, k, c, v, key_at, replace);
}

static int load_doc(eft_config *c, const ydoc *d) {
    const char *file = c->path;
    if (!d->root)
        return eft_fail("%s: the file is empty; a config is a YAML mapping of keys such as "
                        "base_model:, datasets: and learning_rate:.",
                        file);
    if (d->root->kind != YDOC_MAP) {
        char *found = ydoc_describe(d->root);
        eft_fail("%s:%d:%d: a config must be a mapping of keys (key: value lines), found %s.", file,
                 d->root->line, d->root->col, found);
        eft_free(found);
        return -1;
    }
    int ng;
    const cfg_group *groups = cfg_top_groups(&ng);
    cfg_errs errs = {0};
    cfg_ctx cx = {.at = {file, 1, 1}, .cfg = c, .errs = &errs};

    /* strict first: it decides whether the unknown keys before it are errors. */
    const ydoc_node *strict_key, *strict = ydoc_map_get(d->root, "strict", &strict_key);
    if (strict) {
        cx.key = "strict";
        apply_key(&cx, groups, ng, cfg_key_find(groups, ng, "strict"), c, strict,
                  cfg_node_pos(&cx, strict_key), false);
    }
    for (int i = 0; i < d->root->n; i++) {
        const ydoc_node *key = d->root->items[2 * i], *val = d->root->items[2 * i + 1];
        if (key == strict_key && strict) continue;
        cfg_pos at = cfg_node_pos(&cx, key);
        cx.key = key->text;
        const cfg_key *k = cfg_key_find(groups, ng, key->text);
        if (!k)
            unknown_key(&cx, groups, ng, key->text, at, "");
        else
            apply_key(&cx, groups, ng, k, c, val, at, false);
    }
    return cfg_errs_finish(&errs);
}

int cfg_load_string(eft_config *c, const char *text, const char *name) {
    cfg_init(c);
    c->path = eft_strdup(name);
    ydoc d;
    if (ydoc_parse(&d, text, strlen(text), c->path)) return -1;
    int rc = load_doc(c, &d);
    ydoc_free(&d);
    return rc;
}

int cfg_load(eft_config *c, const char *path) {
    cfg_init(c);
    c->path = eft_strdup(path);
    if (!eft_path_exists(path))
        return eft_fail("%s: no such file. Give the path of a YAML config (Axolotl's format).",
                        path);
    ydoc d;
    if (ydoc_parse_file(&d, c->path)) return -1;
    int rc = load_doc(c, &d);
    ydoc_free(&d);
    return rc;
}

/* ---- reporting ---- */

char *cfg_no_effect_list(const eft_config *c) {
    if (!c->n_no_effect) return NULL;
    eft_buf b = {0};
    for (int i = 0; i < c->n_no_effect; i++) {
        if (i) eft_buf_puts(&b, ", ");
        eft_buf_puts(&b, c->no_effect[i]);
    }
    return eft_buf_take(&b);
}

void cfg_report_no_effect(const eft_config *c) {
    char *list = cfg_no_effect_list(c);
    if (!list) return;
    eft_info("%s: no effect in eft: %s (they tune PyTorch/GPU stacks; eft ignores them)",
             c->path ? c->path : "config", list);
    eft_free(list);
}

/* ---- typed reads of mapping values ---- */

const cfg_map_item *cfg_map_find(const cfg_map *m, const char *key) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->items[i].key, key)) return &m->items[i];
    return NULL;
}

/* The item as a YAML node again, so that the same typing rules apply. */
static const cfg_map_item *map_scalar(const cfg_map *m, const char *key, const char *what,
                                      ydoc_node *node, cfg_ctx *cx, char **name) {
    const cfg_map_item *it = cfg_map_find(m, key);
    if (!it) return NULL;
    *name = eft_asprintf("%s.%s", what, key);
    *cx = (cfg_ctx){.at = it->v[0].at, .key = *name};
    memset(node, 0, sizeof *node);
    node->kind = it->is_list ? YDOC_SEQ : YDOC_SCALAR;
    node->line = it->v[0].at.line;
    node->col = it->v[0].at.col;
    node->n = it->is_list ? it->n : 0;
    if (!it->is_list) {
        node->text = it->v[0].text;
        node->len = strlen(it->v[0].text);
        node->plain = it->v[0].type != CFG_S_STR;
    }
    return it;
}

#define MAP_GETTER(fn, T, reader)                                                                  \
    int fn(const cfg_map *m, const char *key, T *out, const char *what) {                          \
        ydoc_node node;                                                                            \
        cfg_ctx cx;                                                                                \
        char *name = NULL;                                                                         \
        const cfg_map_item *it = map_scalar(m, key, what, &node, &cx, &name);                      \
        if (!it || it->v[0].type == CFG_S_NULL) {                                                  \
            eft_free(name);                                                                        \
            return 0;                                                                              \
        }                                                                                          \
        int rc = reader(&node, out, &cx);                                                          \
        eft_free(name);                                                                            \
        return rc;                                                                                 \
    }

MAP_GETTER(cfg_map_bool, bool, cfg_read_bool)
MAP_GETTER(cfg_map_int, int64_t, cfg_read_int)
MAP_GETTER(cfg_map_float, double, cfg_read_float)

int cfg_map_str(const cfg_map *m, const char *key, const char **out, const char *what) {
    const cfg_map_item *it = cfg_map_find(m, key);
    if (!it || (!it->is_list && it->v[0].type == CFG_S_NULL)) return 0;
    if (it->is_list || it->v[0].type != CFG_S_STR) {
        char *name = eft_asprintf("%s.%s", what, key);
        cfg_fail_at(it->key_at, name, "expected a string, found %s.",
                    it->is_list ? "a list" : it->v[0].text);
        eft_free(name);
        return -1;
    }
    *out = it->v[0].text;
    return 0;
}
