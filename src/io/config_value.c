/* config_value.c: one YAML value -> one typed field, as Axolotl types it.
 *
 * Axolotl hands PyYAML's values to pydantic in lax mode, so a key accepts more than its YAML type:
 * a bool key takes `yes`, "on", "t", 1 and 0; an int key takes 16, 16.0 and "16"; a float key
 * takes 0.0002, "2e-4" and 2; a string key takes only strings. eft follows that, with one
 * deliberate difference: a boolean is not accepted as a number (pydantic reads `lora_r: true` as
 * 1, which is never what was meant). Errors name the place, the key, what was expected and what
 * was found. This file knows types, not keys: the table says which key has which type.
 */
#include "io/config_schema.h"

#include "base/buf.h"
#include "base/err.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- positions and located errors ---- */

cfg_pos cfg_node_pos(const cfg_ctx *cx, const ydoc_node *n) {
    if (!cx->at.line || !n) return cx->at; /* the command line has no lines */
    return (cfg_pos){cx->at.file, n->line, n->col};
}

char *cfg_pos_str(cfg_pos at) {
    if (!at.file) return eft_strdup("(default)");
    if (!at.line) return eft_strdup(at.file);
    return eft_asprintf("%s:%d:%d", at.file, at.line, at.col);
}

int cfg_fail_at(cfg_pos at, const char *key, const char *fmt, ...) {
    char msg[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *where = cfg_pos_str(at);
    eft_fail("%s: %s: %s", where, key, msg);
    eft_free(where);
    return -1;
}

/* "expected <what>, found <node>. <hint>" at the node. */
static int type_error(const cfg_ctx *cx, const ydoc_node *v, const char *what, const char *hint) {
    char *found = ydoc_describe(v);
    cfg_fail_at(cfg_node_pos(cx, v), cx->key, "expected %s, found %s.%s%s", what, found,
                hint ? " " : "", hint ? hint : "");
    eft_free(found);
    return -1;
}

void cfg_errs_note(cfg_errs *e, const char *key, cfg_pos at) {
    if (e->n++ == 0) {
        eft_buf_puts(&e->first, eft_err_msg());
        return;
    }
    eft_buf_puts(&e->also, e->also.len ? ", " : " Also: ");
    char *where = at.line ? eft_asprintf("%d:%d", at.line, at.col) : eft_strdup("command line");
    eft_buf_printf(&e->also, "%s (%s)", key, where);
    eft_free(where);
}

int cfg_errs_finish(cfg_errs *e) {
    int rc = 0;
    if (e->n) {
        if (e->also.len) eft_buf_putc(&e->also, '.');
        rc = eft_fail("%s%s", e->first.data, e->also.len ? e->also.data : "");
    }
    eft_buf_free(&e->first);
    eft_buf_free(&e->also);
    e->n = 0;
    return rc;
}

/* ---- scalars, with pydantic's lax conversions ---- */

static bool is_scalar(const ydoc_node *v) {
    return v->kind == YDOC_SCALAR;
}

/* Python's bool-from-string set, any case. */
static int lax_bool_text(const char *s) {
    static const char *yes[] = {"true", "1", "yes", "on", "t", "y"};
    static const char *no[] = {"false", "0", "no", "off", "f", "n"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(yes); i++) {
        if (!strcasecmp(s, yes[i])) return 1;
        if (!strcasecmp(s, no[i])) return 0;
    }
    return -1;
}

/* 1 / 0 for a value pydantic reads as a bool, -1 otherwise. */
static int lax_bool(const ydoc_node *v) {
    if (!is_scalar(v)) return -1;
    bool b;
    int64_t i;
    double f;
    switch (ydoc_resolve(v, &b, &i, &f)) {
    case YDOC_BOOL:
        return b;
    case YDOC_INT:
        return i == 0 || i == 1 ? (int)i : -1;
    case YDOC_FLOAT:
        return f == 0.0 || f == 1.0 ? (int)f : -1;
    case YDOC_STR:
        return lax_bool_text(v->text);
    default:
        return -1;
    }
}

int cfg_read_bool(const ydoc_node *v, bool *out, const cfg_ctx *cx) {
    int b = lax_bool(v);
    if (b < 0) return type_error(cx, v, "a boolean (true or false)", NULL);
    *out = b;
    return 0;
}

/* Python int() of a string as pydantic takes it: optional sign, digits with single '_' between
 * them, and (pydantic's addition) a fraction of zeros: "16", " 1_000 ", "16.0". */
static bool parse_int_text(const char *s, int64_t *out) {
    while (isspace((unsigned char)*s)) s++;
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!isdigit((unsigned char)*p)) return false;
    char digits[32];
    size_t n = 0;
    for (; isdigit((unsigned char)*p) || *p == '_'; p++) {
        if (*p == '_') {
            if (!isdigit((unsigned char)p[-1]) || !isdigit((unsigned char)p[1])) return false;
            continue;
        }
        if (n + 2 >= sizeof digits) return false;
        digits[n++] = *p;
    }
    digits[n] = 0;
    if (*p == '.')
        for (p++; *p == '0'; p++) {
        }
    while (isspace((unsigned char)*p)) p++;
    if (*p) return false;
    errno = 0;
    long long v = strtoll(digits, NULL, 10);
    if (errno) return false;
    *out = *s == '-' ? -v : v;
    return true;
}

/* Python float() of a string: decimal or exponent form with '_' between digits, "inf", "nan".
 * Hexadecimal (which strtod would take) is refused, as Python does. */
static bool parse_float_text(const char *s, double *out) {
    char buf[64];
    size_t n = 0;
    while (isspace((unsigned char)*s)) s++;
    for (const char *p = s; *p; p++) {
        if (*p == '_') {
            if (p == s || !isdigit((unsigned char)p[-1]) || !isdigit((unsigned char)p[1]))
                return false;
            continue;
        }
        if (*p == 'x' || *p == 'X' || n + 1 >= sizeof buf) return false;
        buf[n++] = *p;
    }
    while (n && isspace((unsigned char)buf[n - 1])) n--;
    buf[n] = 0;
    if (!n) return false;
    char *end;
    double v = strtod(buf, &end);
    if (*end) return false;
    *out = v;
    return true;
}

int cfg_read_int(const ydoc_node *v, int64_t *out, const cfg_ctx *cx) {
    const char *hint = "Write a whole number.";
    if (!is_scalar(v)) return type_error(cx, v, "an integer", hint);
    int64_t i;
    double f;
    switch (ydoc_resolve(v, NULL, &i, &f)) {
    case YDOC_INT:
        *out = i;
        return 0;
    case YDOC_FLOAT:
        if (isfinite(f) && f == floor(f) && fabs(f) < 9.2e18) {
            *out = (int64_t)f;
            return 0;
        }
        break;
    case YDOC_STR:
        if (parse_int_text(v->text, out)) return 0;
        break;
    default:
        break;
    }
    return type_error(cx, v, "an integer", hint);
}

int cfg_read_float(const ydoc_node *v, double *out, const cfg_ctx *cx) {
    const char *hint = "Write a number such as 0.0002 or 2e-4.";
    if (!is_scalar(v)) return type_error(cx, v, "a number", hint);
    int64_t i;
    double f;
    switch (ydoc_resolve(v, NULL, &i, &f)) {
    case YDOC_INT:
        f = (double)i;
        break;
    case YDOC_FLOAT:
        break;
    case YDOC_STR:
        if (parse_float_text(v->text, &f)) break;
        return type_error(cx, v, "a number", hint);
    default:
        return type_error(cx, v, "a number", hint);
    }
    if (!isfinite(f)) return type_error(cx, v, "a finite number", hint);
    *out = f;
    return 0;
}

/* A string key takes only strings; on the command line any scalar is taken as its text. */
static int read_str(const ydoc_node *v, char **out, const cfg_ctx *cx) {
    if (!is_scalar(v)) return type_error(cx, v, "a string", NULL);
    ydoc_type t = ydoc_resolve(v, NULL, NULL, NULL);
    if (t != YDOC_STR && !(cx->cli && t != YDOC_NULL)) {
        char *hint = eft_asprintf("Quote it if you mean the text: \"%s\".", v->text);
        type_error(cx, v, "a string", t == YDOC_NULL ? NULL : hint);
        eft_free(hint);
        return -1;
    }
    *out = eft_strndup(v->text, v->len);
    return 0;
}

/* ---- enums ---- */

static int read_choice(const cfg_key *k, const ydoc_node *v, const char *text, char **out,
                       const cfg_ctx *cx) {
    const cfg_choice *c = cfg_choice_find(k->choices, text);
    if (!c) {
        char *ok = cfg_choices_list(k->choices, CFG_SUPPORTED);
        cfg_fail_at(cfg_node_pos(cx, v), cx->key, "unknown value \"%s\"; expected %s%s.", text,
                    k->type == CFG_T_BOOL_ENUM ? "true, false or " : "one of: ", ok);
        eft_free(ok);
        return -1;
    }
    if (c->status == CFG_NOT_YET) {
        char *ok = cfg_choices_list(k->choices, CFG_SUPPORTED);
        cfg_fail_at(cfg_node_pos(cx, v), cx->key, "%s is not supported yet by eft; %s.", text,
                    c->hint ? c->hint : ok);
        eft_free(ok);
        return -1;
    }
    *out = eft_strdup(c->canonical ? c->canonical : text);
    return 0;
}

static int read_enum(const cfg_key *k, const ydoc_node *v, cfg_str *f, const cfg_ctx *cx) {
    char *s;
    if (read_str(v, &s, cx)) return -1;
    char *canon = NULL;
    int rc = read_choice(k, v, s, &canon, cx);
    eft_free(s);
    if (f)
        f->v = canon;
    else
        eft_free(canon);
    return rc;
}

/* true/false (stored as "true"/"false") or one of the choices (bf16: auto). */
static int read_bool_enum(const cfg_key *k, const ydoc_node *v, cfg_str *f, const cfg_ctx *cx) {
    char *canon = NULL;
    int rc = 0;
    if (is_scalar(v) && ydoc_resolve(v, NULL, NULL, NULL) == YDOC_STR &&
        cfg_choice_find(k->choices, v->text)) {
        rc = read_choice(k, v, v->text, &canon, cx);
    } else {
        int b = lax_bool(v);
        if (b >= 0)
            canon = eft_strdup(b ? "true" : "false");
        else if (is_scalar(v))
            rc = read_choice(k, v, v->text, &canon, cx);
        else
            rc = type_error(cx, v, "true, false or a value name", NULL);
    }
    if (f)
        f->v = canon;
    else
        eft_free(canon);
    return rc;
}

/* ---- lists and mappings ---- */

static int read_strlist(const cfg_key *k, const ydoc_node *v, cfg_strlist *f, const cfg_ctx *cx) {
    cfg_strlist tmp = {0}, *l = f ? f : &tmp;
    if (is_scalar(v) && k->type == CFG_T_STR_OR_LIST) {
        char *s;
        if (read_str(v, &s, cx)) return -1;
        l->single_string = true;
        l->n = 1;
        l->v = eft_malloc(sizeof *l->v);
        l->v_at = eft_malloc(sizeof *l->v_at);
        l->v[0] = s;
        l->v_at[0] = cfg_node_pos(cx, v);
    } else if (v->kind == YDOC_SEQ) {
        l->v = eft_calloc((size_t)v->n, sizeof *l->v);
        l->v_at = eft_calloc((size_t)v->n, sizeof *l->v_at);
        for (int i = 0; i < v->n; i++) {
            if (read_str(v->items[i], &l->v[l->n], cx)) break;
            l->v_at[l->n++] = cfg_node_pos(cx, v->items[i]);
        }
        if (l->n < v->n) {
            cfg_value_free(k, l);
            return -1;
        }
    } else {
        return type_error(
            cx, v,
            k->type == CFG_T_STR_OR_LIST ? "a string or a list of strings" : "a list of strings",
            k->type == CFG_T_STR_LIST ? "Write it as [a, b] or as \"- a\" lines." : NULL);
    }
    if (!f) cfg_value_free(k, &tmp);
    return 0;
}

static cfg_scalar_type scalar_type(const ydoc_node *s) {
    switch (ydoc_resolve(s, NULL, NULL, NULL)) {
    case YDOC_NULL:
        return CFG_S_NULL;
    case YDOC_BOOL:
        return CFG_S_BOOL;
    case YDOC_INT:
        return CFG_S_INT;
    case YDOC_FLOAT:
        return CFG_S_FLOAT;
    default:
        return CFG_S_STR;
    }
}

static cfg_scalar scalar_of(const ydoc_node *s, const cfg_ctx *cx) {
    return (cfg_scalar){eft_strndup(s->text, s->len), scalar_type(s), cfg_node_pos(cx, s)};
}

static int read_map(const cfg_key *k, const ydoc_node *v, cfg_map *f, const cfg_ctx *cx) {
    if (v->kind != YDOC_MAP) return type_error(cx, v, "a mapping (key: value lines)", NULL);
    cfg_map tmp = {0}, *m = f ? f : &tmp;
    m->items = eft_calloc((size_t)v->n, sizeof *m->items);
    for (int i = 0; i < v->n; i++) {
        const ydoc_node *key = v->items[2 * i], *val = v->items[2 * i + 1];
        cfg_map_item *it = &m->items[m->n];
        if (val->kind == YDOC_MAP) {
            char *name = eft_asprintf("%s.%s", cx->key, key->text);
            cfg_ctx sub = *cx;
            sub.key = name;
            type_error(&sub, val, "a value or a list of values", NULL);
            eft_free(name);
            cfg_value_free(k, m);
            return -1;
        }
        it->key = eft_strndup(key->text, key->len);
        it->key_at = cfg_node_pos(cx, key);
        it->is_list = val->kind == YDOC_SEQ;
        it->n = it->is_list ? val->n : 1;
        it->v = eft_calloc((size_t)(it->n ? it->n : 1), sizeof *it->v);
        m->n++;
        for (int j = 0; j < it->n; j++) {
            const ydoc_node *s = it->is_list ? val->items[j] : val;
            if (s->kind != YDOC_SCALAR) {
                char *name = eft_asprintf("%s.%s", cx->key, it->key);
                cfg_ctx sub = *cx;
                sub.key = name;
                type_error(&sub, s, "a plain value in the list", NULL);
                eft_free(name);
                it->n = j;
                cfg_value_free(k, m);
                return -1;
            }
            it->v[j] = scalar_of(s, cx);
        }
    }
    if (!f) cfg_value_free(k, &tmp);
    return 0;
}

/* ---- dispatch ---- */

static int check_range(const cfg_key *k, const ydoc_node *v, double x, const cfg_ctx *cx) {
    if ((k->flags & CFG_F_POSITIVE) && !(x > 0))
        return cfg_fail_at(cfg_node_pos(cx, v), cx->key, "must be %s, found %s.",
                           k->type == CFG_T_INT ? "at least 1" : "greater than 0", v->text);
    if ((k->flags & CFG_F_NONNEG) && x < 0)
        return cfg_fail_at(cfg_node_pos(cx, v), cx->key, "must be 0 or more, found %s.", v->text);
    return 0;
}

int cfg_value_read(const cfg_key *k, const ydoc_node *v, void *field, const cfg_ctx *cx) {
    int rc = 0;
    switch (k->type) {
    case CFG_T_BOOL: {
        bool b = false;
        if ((rc = cfg_read_bool(v, &b, cx)) == 0 && field) ((cfg_bool *)field)->v = b;
        break;
    }
    case CFG_T_INT: {
        int64_t i = 0;
        if ((rc = cfg_read_int(v, &i, cx)) == 0) rc = check_range(k, v, (double)i, cx);
        if (rc == 0 && field) ((cfg_int *)field)->v = i;
        break;
    }
    case CFG_T_FLOAT:
    case CFG_T_STEPS: {
        double x = 0;
        if ((rc = cfg_read_float(v, &x, cx)) == 0) rc = check_range(k, v, x, cx);
        if (rc == 0 && k->type == CFG_T_STEPS && (x <= 0 || (x >= 1 && x != floor(x))))
            rc = type_error(cx, v, "a whole number of steps >= 1 or a fraction in (0, 1)", NULL);
        if (rc == 0 && field) ((cfg_float *)field)->v = x;
        break;
    }
    case CFG_T_STR: {
        char *s;
        if ((rc = read_str(v, &s, cx)) == 0) {
            if (field)
                ((cfg_str *)field)->v = s;
            else
                eft_free(s);
        }
        break;
    }
    case CFG_T_ENUM:
    case CFG_T_DS_TYPE:
        rc = read_enum(k, v, field, cx);
        break;
    case CFG_T_BOOL_ENUM:
        rc = read_bool_enum(k, v, field, cx);
        break;
    case CFG_T_STR_LIST:
    case CFG_T_STR_OR_LIST:
        rc = read_strlist(k, v, field, cx);
        break;
    case CFG_T_MAP:
        rc = read_map(k, v, field, cx);
        break;
    case CFG_T_DATASETS: {
        cfg_datasets tmp = {0};
        rc = cfg_datasets_read(v, field ? field : &tmp, cx);
        cfg_datasets_free(&tmp);
        break;
    }
    case CFG_T_ANY:
        break;
    }
    if (rc == 0 && field) {
        /* Every value struct starts with `bool set` and ends with `cfg_pos at`. */
        *(bool *)field = true;
        cfg_pos at = cfg_node_pos(cx, v);
        switch (k->type) {
        case CFG_T_BOOL:
            ((cfg_bool *)field)->at = at;
            break;
        case CFG_T_INT:
            ((cfg_int *)field)->at = at;
            break;
        case CFG_T_FLOAT:
        case CFG_T_STEPS:
            ((cfg_float *)field)->at = at;
            break;
        case CFG_T_STR_LIST:
        case CFG_T_STR_OR_LIST:
            ((cfg_strlist *)field)->at = at;
            break;
        case CFG_T_MAP:
            ((cfg_map *)field)->at = at;
            break;
        case CFG_T_DATASETS:
            ((cfg_datasets *)field)->at = at;
            break;
        case CFG_T_ANY:
            break;
        default:
            ((cfg_str *)field)->at = at;
            break;
        }
    }
    return rc;
}

bool cfg_value_is_inert(const cfg_key *k, const ydoc_node *v) {
    if (v->kind != YDOC_SCALAR) return v->n == 0;
    ydoc_type t = ydoc_resolve(v, NULL, NULL, NULL);
    if (t == YDOC_NULL || (t == YDOC_STR && v->len == 0)) return true;
    if (k->type == CFG_T_BOOL || k->type == CFG_T_BOOL_ENUM) return lax_bool(v) == 0;
    return false;
}

/* ---- defaults and freeing ---- */

static size_t field_size(const cfg_key *k) {
    switch (k->type) {
    case CFG_T_BOOL:
        return sizeof(cfg_bool);
    case CFG_T_INT:
        return sizeof(cfg_int);
    case CFG_T_FLOAT:
    case CFG_T_STEPS:
        return sizeof(cfg_float);
    case CFG_T_STR_LIST:
    case CFG_T_STR_OR_LIST:
        return sizeof(cfg_strlist);
    case CFG_T_MAP:
        return sizeof(cfg_map);
    case CFG_T_DATASETS:
        return sizeof(cfg_datasets);
    case CFG_T_ANY:
        return 0;
    default:
        return sizeof(cfg_str);
    }
}

void cfg_value_free(const cfg_key *k, void *field) {
    switch (k->type) {
    case CFG_T_STR:
    case CFG_T_ENUM:
    case CFG_T_BOOL_ENUM:
    case CFG_T_DS_TYPE:
        eft_free((char *)((cfg_str *)field)->v);
        break;
    case CFG_T_STR_LIST:
    case CFG_T_STR_OR_LIST: {
        cfg_strlist *l = field;
        for (int i = 0; i < l->n; i++) eft_free(l->v[i]);
        eft_free(l->v);
        eft_free(l->v_at);
        break;
    }
    case CFG_T_MAP: {
        cfg_map *m = field;
        for (int i = 0; i < m->n; i++) {
            for (int j = 0; j < m->items[i].n; j++) eft_free(m->items[i].v[j].text);
            eft_free(m->items[i].v);
            eft_free(m->items[i].key);
        }
        eft_free(m->items);
        break;
    }
    case CFG_T_DATASETS:
        cfg_datasets_free(field);
        break;
    default:
        break;
    }
    memset(field, 0, field_size(k));
}

void cfg_value_default(const cfg_key *k, void *field) {
    memset(field, 0, field_size(k));
    if (!k->def) return;
    ydoc d;
    cfg_errs errs = {0};
    cfg_ctx cx = {.key = k->name, .errs = &errs};
    int rc = ydoc_parse(&d, k->def, strlen(k->def), "default");
    assert(rc == 0 && d.root);
    rc = cfg_value_read(k, d.root, field, &cx);
    assert(rc == 0); /* a default in the table that does not read is a bug in the table */
    (void)rc;
    ydoc_free(&d);
    cfg_errs_finish(&errs);
    /* A default is not "set", and has no place. */
    *(bool *)field = false;
    if (k->type == CFG_T_STR_LIST || k->type == CFG_T_STR_OR_LIST) {
        cfg_strlist *l = field;
        memset(l->v_at, 0, (size_t)l->n * sizeof *l->v_at);
    }
}
