/* yaml_doc.c: libyaml events -> a located node tree, and PyYAML's scalar resolution (see
 * yaml_doc.h). The tree is built with an explicit stack, so a deeply nested file cannot overflow
 * the C stack; nesting beyond YDOC_MAX_DEPTH is refused. */
#include "io/yaml_doc.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"

#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YDOC_MAX_DEPTH 128
/* Aliases are expanded into copies; this bounds what a file of a few lines can expand to. */
#define YDOC_MAX_NODES 1000000

/* ---- nodes ---- */

static ydoc_node *node_new(ydoc_kind kind, yaml_mark_t m) {
    ydoc_node *n = eft_calloc(1, sizeof *n);
    n->kind = kind;
    n->line = (int)m.line + 1;
    n->col = (int)m.column + 1;
    return n;
}

static int item_count(const ydoc_node *n);

static void node_free(ydoc_node *n) {
    if (!n) return;
    for (int i = 0; i < item_count(n); i++) node_free(n->items[i]);
    eft_free(n->items);
    eft_free(n->text);
    eft_free(n->tag);
    eft_free(n);
}

/* Items in use: 2n for a mapping, plus 1 while a key waits for its value. */
static int item_count(const ydoc_node *n) {
    return n->kind == YDOC_MAP ? 2 * n->n + n->pending : n->n;
}

static void push_item(ydoc_node *parent, ydoc_node *child) {
    int k = item_count(parent);
    parent->items = eft_realloc(parent->items, (size_t)(k + 1) * sizeof *parent->items);
    parent->items[k] = child;
    if (parent->kind == YDOC_SEQ)
        parent->n++;
    else if ((parent->pending = !parent->pending) == 0)
        parent->n++;
}

static ydoc_node *node_copy(const ydoc_node *s) {
    ydoc_node *n = eft_calloc(1, sizeof *n);
    *n = *s;
    n->text = s->text ? eft_strndup(s->text, s->len) : NULL;
    n->tag = s->tag ? eft_strdup(s->tag) : NULL;
    int k = item_count(s);
    n->items = k ? eft_malloc((size_t)k * sizeof *n->items) : NULL;
    for (int i = 0; i < k; i++) n->items[i] = node_copy(s->items[i]);
    return n;
}

static bool is_key(const ydoc_node *k, const char *s, size_t len) {
    return k->kind == YDOC_SCALAR && k->len == len && !memcmp(k->text, s, len);
}

static bool is_merge_key(const ydoc_node *k) {
    return k->kind == YDOC_SCALAR && k->plain && is_key(k, "<<", 2);
}

const ydoc_node *ydoc_map_get(const ydoc_node *map, const char *key, const ydoc_node **key_out) {
    if (!map || map->kind != YDOC_MAP) return NULL;
    for (int i = 0; i < map->n; i++)
        if (is_key(map->items[2 * i], key, strlen(key))) {
            if (key_out) *key_out = map->items[2 * i];
            return map->items[2 * i + 1];
        }
    return NULL;
}

/* ---- building ---- */

typedef struct anchor {
    char *name;
    ydoc_node *node;
} anchor;

typedef struct builder {
    const char *name;
    ydoc_node *stack[YDOC_MAX_DEPTH];
    int depth;
    ydoc_node *root;
    int ndocs;
    anchor *anchors;
    int nanchors;
    long nodes; /* nodes in the tree so far, copies included */
} builder;

/* Nodes in the tree under n, counting no further than `stop`. */
static long count_nodes(const ydoc_node *n, long stop) {
    long c = 1;
    for (int i = 0; i < item_count(n) && c <= stop; i++) c += count_nodes(n->items[i], stop - c);
    return c;
}

static int fail_at(const builder *b, int line, int col, const char *what) {
    return eft_fail("%s:%d:%d: %s", b->name, line, col, what);
}

/* Checks a finished mapping for duplicate keys, then applies its merge keys: the pairs of the
 * merged mapping(s) are appended unless the mapping already has that key (explicit keys win, and
 * among several merged mappings the earlier one wins, as in PyYAML). */
static int finish_map(builder *b, ydoc_node *m) {
    for (int i = 0; i < m->n; i++) {
        const ydoc_node *k = m->items[2 * i];
        if (k->kind != YDOC_SCALAR)
            return fail_at(b, k->line, k->col,
                           "a mapping key must be a plain value, not a list or a mapping");
        if (is_merge_key(k)) continue;
        for (int j = 0; j < i; j++) {
            const ydoc_node *o = m->items[2 * j];
            if (!is_key(o, k->text, k->len)) continue;
            return eft_fail("%s:%d:%d: duplicate key \"%s\" (first written at line %d, column "
                            "%d). Keep only one of them.",
                            b->name, k->line, k->col, k->text, o->line, o->col);
        }
    }
    for (int i = 0; i < m->n; i++) {
        if (!is_merge_key(m->items[2 * i])) continue;
        ydoc_node *v = m->items[2 * i + 1];
        int nsrc = v->kind == YDOC_SEQ ? v->n : 1;
        for (int s = 0; s < nsrc; s++) {
            const ydoc_node *src = v->kind == YDOC_SEQ ? v->items[s] : v;
            if (src->kind != YDOC_MAP)
                return fail_at(b, src->line, src->col,
                               "a merge key (<<) needs a mapping or a list of mappings");
            for (int j = 0; j < src->n; j++) {
                const ydoc_node *k = src->items[2 * j];
                if (ydoc_map_get(m, k->text, NULL)) continue;
                push_item(m, node_copy(k));
                push_item(m, node_copy(src->items[2 * j + 1]));
            }
        }
    }
    /* Drop the merge pairs themselves. */
    int w = 0, k = item_count(m);
    for (int r = 0; r < k; r += 2) {
        if (is_merge_key(m->items[r])) {
            node_free(m->items[r]);
            node_free(m->items[r + 1]);
            continue;
        }
        m->items[w++] = m->items[r];
        m->items[w++] = m->items[r + 1];
    }
    m->n = w / 2;
    return 0;
}

static int add_node(builder *b, ydoc_node *n, const yaml_char_t *anchor_name) {
    if (anchor_name) {
        b->anchors = eft_realloc(b->anchors, (size_t)(b->nanchors + 1) * sizeof *b->anchors);
        b->anchors[b->nanchors++] = (anchor){eft_strdup((const char *)anchor_name), n};
    }
    if (b->depth == 0) {
        if (b->root) {
            int line = n->line, col = n->col;
            node_free(n);
            return fail_at(b, line, col, "more than one value at the top of the document");
        }
        b->root = n;
        return 0;
    }
    push_item(b->stack[b->depth - 1], n);
    return 0;
}

static int open_container(builder *b, ydoc_node *n, const yaml_char_t *anchor_name) {
    if (b->depth == YDOC_MAX_DEPTH) {
        int line = n->line, col = n->col;
        node_free(n);
        return fail_at(b, line, col, "nested too deeply (more than 128 levels)");
    }
    if (add_node(b, n, anchor_name)) return -1;
    b->stack[b->depth++] = n;
    return 0;
}

static int on_alias(builder *b, const yaml_event_t *ev) {
    const char *name = (const char *)ev->data.alias.anchor;
    const ydoc_node *target = NULL;
    for (int i = b->nanchors - 1; i >= 0 && !target; i--)
        if (!strcmp(b->anchors[i].name, name)) target = b->anchors[i].node;
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (!target) {
        char *msg = eft_asprintf("alias *%s names no anchor (&%s) written before it", name, name);
        fail_at(b, line, col, msg);
        eft_free(msg);
        return -1;
    }
    for (int i = 0; i < b->depth; i++)
        if (b->stack[i] == target)
            return fail_at(b, line, col, "an alias inside the value it refers to (recursive)");
    long size = count_nodes(target, YDOC_MAX_NODES);
    if (b->nodes + size > YDOC_MAX_NODES)
        return fail_at(b, line, col, "aliases expand to more than a million values");
    b->nodes += size;
    return add_node(b, node_copy(target), NULL);
}

static int on_event(builder *b, const yaml_event_t *ev) {
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->ndocs > 1)
            return fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                           "a second YAML document (---); a config is one document");
        return 0;
    case YAML_SCALAR_EVENT: {
        b->nodes++;
        ydoc_node *n = node_new(YDOC_SCALAR, ev->start_mark);
        n->text = eft_strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->len = ev->data.scalar.length;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (ev->data.scalar.tag) n->tag = eft_strdup((const char *)ev->data.scalar.tag);
        return add_node(b, n, ev->data.scalar.anchor);
    }
    case YAML_SEQUENCE_START_EVENT:
        b->nodes++;
        return open_container(b, node_new(YDOC_SEQ, ev->start_mark),
                              ev->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        b->nodes++;
        return open_container(b, node_new(YDOC_MAP, ev->start_mark), ev->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
        b->depth--;
        return 0;
    case YAML_MAPPING_END_EVENT:
        return finish_map(b, b->stack[--b->depth]);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    default:
        return 0;
    }
}

/* value: the text is one value from the command line, not a file: errors name no line. */
static int parse(ydoc *d, const char *text, size_t n, const char *name, bool value) {
    d->root = NULL;
    builder b = {.name = name};
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return eft_fail_internal("libyaml: cannot start a parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, n);
    int rc = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_mark_t m = p.problem_mark;
            if (value) {
                rc =
                    eft_fail("%s: cannot read \"%.*s\" as a YAML value: %s. Quote it, e.g. "
                             "'[a, b]' for a list.",
                             name, (int)(n > 80 ? 80 : n), text, p.problem ? p.problem : "invalid");
                break;
            }
            rc = eft_fail("%s:%d:%d: YAML syntax error: %s%s%s. Fix the line (an unquoted "
                          "value with \": \" or a tab in the indentation are common causes).",
                          name, (int)m.line + 1, (int)m.column + 1,
                          p.problem ? p.problem : "invalid YAML", p.context ? " " : "",
                          p.context ? p.context : "");
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    for (int i = 0; i < b.nanchors; i++) eft_free(b.anchors[i].name);
    eft_free(b.anchors);
    if (rc) {
        node_free(b.root);
        return -1;
    }
    d->root = b.root;
    return 0;
}

int ydoc_parse(ydoc *d, const char *text, size_t n, const char *name) {
    return parse(d, text, n, name, false);
}

int ydoc_parse_value(ydoc *d, const char *text, size_t n, const char *name) {
    return parse(d, text, n, name, true);
}

int ydoc_parse_file(ydoc *d, const char *path) {
    d->root = NULL;
    if (eft_is_dir(path))
        return eft_fail("%s is a folder; give the path of a YAML config file", path);
    size_t n;
    char *text = eft_read_file(path, &n);
    if (!text) return -1;
    int rc = ydoc_parse(d, text, n, path);
    eft_free(text);
    return rc;
}

void ydoc_free(ydoc *d) {
    node_free(d->root);
    d->root = NULL;
}

/* ---- YAML 1.1 scalar resolution, as PyYAML's Resolver/SafeConstructor ---- */

static regex_t re_bool, re_int, re_float;
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

static void compile_resolvers(void) {
    /* The patterns of PyYAML's resolver.py, unchanged. */
    int rc = regcomp(
        &re_bool, "^(yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        REG_EXTENDED | REG_NOSUB);
    rc |= regcomp(&re_int,
                  "^([-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|"
                  "[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+)$",
                  REG_EXTENDED | REG_NOSUB);
    rc |= regcomp(&re_float,
                  "^([-+]?[0-9][0-9_]*\\.[0-9_]*([eE][-+][0-9]+)?|\\.[0-9][0-9_]*([eE][-+][0-9]+)?|"
                  "[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(inf|Inf|INF)|"
                  "\\.(nan|NaN|NAN))$",
                  REG_EXTENDED | REG_NOSUB);
    if (rc) abort(); /* fixed patterns: cannot fail */
}

static bool matches(const regex_t *re, const char *s) {
    return regexec(re, s, 0, NULL, 0) == 0;
}

/* The text with '_' removed and, for base 60, its value: "1:30" -> 90. */
static char *strip_underscores(const char *s) {
    char *o = eft_malloc(strlen(s) + 1), *w = o;
    for (; *s; s++)
        if (*s != '_') *w++ = *s;
    *w = 0;
    return o;
}

static double base60(const char *s) {
    double v = 0;
    const char *p = s;
    for (;;) {
        char *end;
        double part = strtod(p, &end);
        if (*end == ':') {
            v = v * 60 + part;
            p = end + 1;
        } else {
            return v * 60 + part;
        }
    }
}

static bool resolve_int(const char *text, int64_t *out) {
    char *s = strip_underscores(text);
    const char *p = s;
    int sign = 1;
    if (*p == '-' || *p == '+') sign = *p++ == '-' ? -1 : 1;
    bool ok = true;
    long double v;
    if (strchr(p, ':')) {
        v = base60(p);
    } else {
        int base = 10;
        if (!strncmp(p, "0b", 2))
            base = 2, p += 2;
        else if (!strncmp(p, "0x", 2))
            base = 16, p += 2;
        else if (p[0] == '0' && p[1])
            base = 8, p += 1;
        v = 0;
        for (; *p; p++) {
            int d = *p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10;
            v = v * base + d;
        }
    }
    v *= sign;
    if (v > 9223372036854775807.0L || v < -9223372036854775808.0L)
        ok = false;
    else
        *out = (int64_t)v;
    eft_free(s);
    return ok;
}

static double resolve_float(const char *text) {
    char *s = strip_underscores(text);
    double v;
    const char *p = s + (*s == '-' || *s == '+');
    double sign = *s == '-' ? -1 : 1;
    if ((p[0] == '.') && (p[1] | 0x20) == 'i')
        v = sign * INFINITY;
    else if ((p[0] == '.') && (p[1] | 0x20) == 'n')
        v = NAN;
    else if (strchr(p, ':'))
        v = sign * base60(p);
    else
        v = strtod(s, NULL);
    eft_free(s);
    return v;
}

static bool tagged(const ydoc_node *s, const char *type) {
    return s->tag && !strncmp(s->tag, "tag:yaml.org,2002:", 18) && !strcmp(s->tag + 18, type);
}

ydoc_type ydoc_resolve(const ydoc_node *s, bool *b, int64_t *i, double *f) {
    pthread_once(&re_once, compile_resolvers);
    if (s->kind != YDOC_SCALAR) return YDOC_STR;
    const char *t = s->text;
    bool explicit_type =
        tagged(s, "null") || tagged(s, "bool") || tagged(s, "int") || tagged(s, "float");
    /* Quoted and block scalars, and other tags (!!str, "!"), are strings. */
    if (s->tag ? !explicit_type : !s->plain) return YDOC_STR;
    if (s->len != strlen(t)) return YDOC_STR;
    if ((!s->tag || tagged(s, "null")) &&
        (!*t || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL")))
        return YDOC_NULL;
    if ((!s->tag || tagged(s, "bool")) && matches(&re_bool, t)) {
        if (b)
            *b = strchr("yYtT", t[0]) || !strcmp(t, "on") || !strcmp(t, "On") || !strcmp(t, "ON");
        return YDOC_BOOL;
    }
    if (tagged(s, "float")) { /* !!float 3, !!float 1e3: PyYAML constructs float(text) */
        int64_t v;
        double x;
        if (matches(&re_int, t) && resolve_int(t, &v)) {
            x = (double)v;
        } else if (matches(&re_float, t)) {
            x = resolve_float(t);
        } else {
            char *end;
            x = strtod(t, &end);
            if (end == t || *end) return YDOC_STR;
        }
        if (f) *f = x;
        return YDOC_FLOAT;
    }
    if ((!s->tag || tagged(s, "int")) && matches(&re_int, t)) {
        int64_t v;
        if (resolve_int(t, &v)) {
            if (i) *i = v;
            return YDOC_INT;
        }
        if (f) *f = resolve_float(t);
        return YDOC_FLOAT;
    }
    if (!s->tag && matches(&re_float, t)) {
        if (f) *f = resolve_float(t);
        return YDOC_FLOAT;
    }
    return YDOC_STR;
}

char *ydoc_describe(const ydoc_node *n) {
    if (n->kind == YDOC_SEQ) return eft_strdup(n->n ? "a list" : "an empty list");
    if (n->kind == YDOC_MAP) return eft_strdup(n->n ? "a mapping" : "an empty mapping");
    switch (ydoc_resolve(n, NULL, NULL, NULL)) {
    case YDOC_NULL:
        return eft_strdup("nothing (null)");
    case YDOC_BOOL:
        return eft_asprintf("%s (a boolean)", n->text);
    case YDOC_INT:
    case YDOC_FLOAT:
        return eft_asprintf("%s (a number)", n->text);
    default: {
        eft_buf b = {0};
        if (n->len > 60) {
            char *cut = eft_strndup(n->text, 57);
            eft_buf_json_str(&b, cut);
            eft_buf_puts(&b, "...");
            eft_free(cut);
        } else {
            eft_buf_json_str(&b, n->text);
        }
        return eft_buf_take(&b);
    }
    }
}
