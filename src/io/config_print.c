/* config_print.c: the effective config as YAML (cfg_print), for `eft train --dry-run` and for
 * the record a run leaves in output_dir. Every supported key is written with its value, and a
 * comment saying where the value came from (the file's line, the command line, or the default),
 * so that what eft will do is visible before it does it. The text reads back with cfg_load. */
#include "io/config.h"

#include "base/buf.h"
#include "base/err.h"
#include "io/config_schema.h"

#include <string.h>

static void put_str(eft_buf *b, const char *s) {
    if (s)
        eft_buf_json_str(b, s); /* a JSON string is a valid double-quoted YAML scalar */
    else
        eft_buf_puts(b, "null");
}

static void put_scalar(eft_buf *b, const cfg_scalar *s) {
    if (s->type == CFG_S_STR)
        eft_buf_json_str(b, s->text);
    else
        eft_buf_puts(b, s->type == CFG_S_NULL ? "null" : s->text);
}

static void put_double(eft_buf *b, double v) {
    eft_buf_json_double(b, v);
}

/* One value, in flow style. Returns false when there is nothing to write (unset, no default). */
static bool put_value(eft_buf *b, const cfg_key *k, const void *field) {
    switch (k->type) {
    case CFG_T_BOOL: {
        const cfg_bool *x = field;
        if (!x->set && !k->def) return false;
        eft_buf_puts(b, x->v ? "true" : "false");
        return true;
    }
    case CFG_T_INT: {
        const cfg_int *x = field;
        if (!x->set && !k->def) return false;
        eft_buf_printf(b, "%lld", (long long)x->v);
        return true;
    }
    case CFG_T_FLOAT:
    case CFG_T_STEPS: {
        const cfg_float *x = field;
        if (!x->set && !k->def) return false;
        put_double(b, x->v);
        return true;
    }
    case CFG_T_STR:
    case CFG_T_ENUM:
    case CFG_T_DS_TYPE: {
        const cfg_str *s = field;
        if (!s->v) return false;
        put_str(b, s->v);
        return true;
    }
    case CFG_T_BOOL_ENUM: {
        const cfg_str *s = field;
        if (!s->v) return false;
        eft_buf_puts(b, s->v); /* true, false, or a plain word (auto) */
        return true;
    }
    case CFG_T_STR_LIST:
    case CFG_T_STR_OR_LIST: {
        const cfg_strlist *l = field;
        if (!l->set && !k->def) return false;
        if (l->single_string) {
            put_str(b, l->v[0]);
            return true;
        }
        eft_buf_putc(b, '[');
        for (int i = 0; i < l->n; i++) {
            if (i) eft_buf_puts(b, ", ");
            put_str(b, l->v[i]);
        }
        eft_buf_putc(b, ']');
        return true;
    }
    case CFG_T_MAP: {
        const cfg_map *m = field;
        if (!m->set) return false;
        eft_buf_putc(b, '{');
        for (int i = 0; i < m->n; i++) {
            const cfg_map_item *it = &m->items[i];
            if (i) eft_buf_puts(b, ", ");
            eft_buf_json_str(b, it->key);
            eft_buf_puts(b, ": ");
            if (it->is_list) eft_buf_putc(b, '[');
            for (int j = 0; j < it->n; j++) {
                if (j) eft_buf_puts(b, ", ");
                put_scalar(b, &it->v[j]);
            }
            if (it->is_list) eft_buf_putc(b, ']');
        }
        eft_buf_putc(b, '}');
        return true;
    }
    default:
        return false;
    }
}

static const cfg_pos *pos_of(const cfg_key *k, const void *field) {
    switch (k->type) {
    case CFG_T_BOOL:
        return &((const cfg_bool *)field)->at;
    case CFG_T_INT:
        return &((const cfg_int *)field)->at;
    case CFG_T_FLOAT:
    case CFG_T_STEPS:
        return &((const cfg_float *)field)->at;
    case CFG_T_STR_LIST:
    case CFG_T_STR_OR_LIST:
        return &((const cfg_strlist *)field)->at;
    case CFG_T_MAP:
        return &((const cfg_map *)field)->at;
    default:
        return &((const cfg_str *)field)->at;
    }
}

static void put_origin(eft_buf *b, const cfg_key *k, const void *field) {
    const bool set = *(const bool *)field;
    const cfg_pos *at = pos_of(k, field);
    if (!set)
        eft_buf_puts(b, "  # default");
    else if (!at->line)
        eft_buf_printf(b, "  # %s", at->file);
    else
        eft_buf_printf(b, "  # line %d", at->line);
}

static void put_group(eft_buf *b, const cfg_group *g, const void *base, const char *indent,
                      bool *first_of_item) {
    for (int i = 0; i < g->n; i++) {
        const cfg_key *k = &g->keys[i];
        if (k->status != CFG_SUPPORTED || k->alias_of || k->type == CFG_T_DATASETS) continue;
        const void *field = (const char *)base + k->off;
        eft_buf tmp = {0};
        if (put_value(&tmp, k, field)) {
            const char *lead = indent;
            if (first_of_item && *first_of_item) {
                lead = "  - ";
                *first_of_item = false;
            }
            eft_buf_printf(b, "%s%s: %s", lead, k->name, tmp.data);
            put_origin(b, k, field);
            eft_buf_putc(b, '\n');
        } else if (k->def_doc && !first_of_item) {
            /* Unset, decided later from other keys or the data: say how. */
            eft_buf_printf(b, "%s# %s: unset (default: %s)\n", indent, k->name, k->def_doc);
        }
        eft_buf_free(&tmp);
    }
}

static void put_datasets(eft_buf *b, const char *name, const cfg_datasets *ds) {
    if (!ds->set) return;
    eft_buf_printf(b, "%s:%s\n", name, ds->n ? "" : " []");
    for (int i = 0; i < ds->n; i++) {
        const cfg_dataset *d = &ds->v[i];
        bool first = true;
        const bool custom = d->type.v && !strcmp(d->type.v, "user_defined");
        for (int j = 0; j < cfg_dataset_group.n; j++) {
            const cfg_key *k = &cfg_dataset_group.keys[j];
            if (custom && k->type == CFG_T_DS_TYPE) {
                eft_buf_printf(b, "%stype:\n", first ? "  - " : "    ");
                first = false;
                put_group(b, &cfg_dataset_type_group, &d->custom, "      ", NULL);
                continue;
            }
            const cfg_group one = {NULL, NULL, k, 1};
            put_group(b, &one, d, "    ", &first);
        }
        if (first) eft_buf_puts(b, "  - {}\n");
    }
}

void cfg_print(FILE *f, const eft_config *c) {
    eft_buf b = {0};
    eft_buf_printf(&b, "# effective config of %s (eft %s)\n", c->path ? c->path : "(none)",
                   EFT_VERSION);
    int ng;
    const cfg_group *groups = cfg_top_groups(&ng);
    for (int g = 0; g < ng; g++) {
        size_t mark = b.len;
        eft_buf_printf(&b, "\n# %s\n", groups[g].title);
        size_t body = b.len;
        put_group(&b, &groups[g], c, "", NULL);
        for (int i = 0; i < groups[g].n; i++) {
            const cfg_key *k = &groups[g].keys[i];
            if (k->type == CFG_T_DATASETS && k->status == CFG_SUPPORTED)
                put_datasets(&b, k->name, (const cfg_datasets *)((const char *)c + k->off));
        }
        if (b.len == body) { /* nothing in this group: drop its title */
            b.len = mark;
            b.data[mark] = 0;
        }
    }
    fputs(b.data, f);
    eft_buf_free(&b);
}
