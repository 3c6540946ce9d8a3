/* config_override.c: `--key value` on the command line, as Axolotl's CLI takes them.
 *
 * Any key of the schema can be overridden; dashes and underscores are the same
 * (--learning-rate, --learning_rate). The value is typed like a YAML value: numbers and booleans
 * as YAML 1.1 reads them, a flow sequence for a list key ([q_proj, v_proj]), a flow mapping for
 * a mapping key. A string key takes the text as it is (no quoting needed for `--output-dir 123`,
 * and a regex full of YAML punctuation stays intact). An empty value resets the key to its
 * default. Errors read "command line: --lora-r: expected an integer, found ...".
 */
#include "io/config.h"

#include "base/err.h"
#include "io/config_schema.h"

#include <string.h>
#include <strings.h>

static const cfg_pos cli_pos = {"command line", 0, 0};

/* "--lora-r" or "lora-r" -> "lora_r" (owned). */
static char *key_name(const char *flag) {
    while (*flag == '-') flag++;
    char *s = eft_strdup(flag);
    for (char *p = s; *p; p++)
        if (*p == '-') *p = '_';
    return s;
}

/* "lora_r" -> "--lora-r" (owned). */
static char *flag_name(const char *key) {
    char *s = eft_asprintf("--%s", key);
    for (char *p = s + 2; *p; p++)
        if (*p == '_') *p = '-';
    return s;
}

static bool takes_text(const cfg_key *k) {
    return k->type == CFG_T_STR || k->type == CFG_T_ENUM || k->type == CFG_T_DS_TYPE;
}

static bool takes_bool(const cfg_key *k) {
    return k->type == CFG_T_BOOL || k->type == CFG_T_BOOL_ENUM;
}

static int unknown(const char *name) {
    int ng;
    const cfg_group *groups = cfg_top_groups(&ng);
    const char *near = cfg_key_suggest(groups, ng, name);
    char *flag = flag_name(name);
    char *near_flag = near ? flag_name(near) : NULL;
    if (near_flag)
        eft_fail("command line: %s: unknown key; did you mean %s?", flag, near_flag);
    else
        eft_fail("command line: %s: unknown key. `eft config-schema` lists the keys.", flag);
    eft_free(flag);
    eft_free(near_flag);
    return -1;
}

int cfg_apply_override(eft_config *c, const char *key, const char *value) {
    int ng;
    const cfg_group *groups = cfg_top_groups(&ng);
    char *name = key_name(key);
    const cfg_key *k = cfg_key_find(groups, ng, name);
    if (!k) {
        unknown(name);
        eft_free(name);
        return -1;
    }
    char *flag = flag_name(name);
    ydoc d = {0};
    ydoc_node text = {.kind = YDOC_SCALAR, .text = (char *)value, .len = strlen(value)};
    const ydoc_node *v = &text;
    bool as_text = takes_text(k) ||
                   ((k->type == CFG_T_STR_OR_LIST || k->type == CFG_T_STR_LIST) && value[0] != '[');
    if (!value[0]) {
        text.plain = true; /* empty: null, the default */
    } else if (!as_text) {
        char *where = eft_asprintf("command line: %s", flag);
        int rc = ydoc_parse_value(&d, value, strlen(value), where);
        eft_free(where);
        if (rc) {
            eft_free(flag);
            eft_free(name);
            return -1;
        }
        if (d.root)
            v = d.root;
        else
            text.plain = true;
    }
    /* A bare string for a list-of-strings key is a list of one. */
    ydoc_node one, *items[1] = {&text};
    if (as_text && k->type == CFG_T_STR_LIST && value[0]) {
        one = (ydoc_node){.kind = YDOC_SEQ, .n = 1, .items = items};
        v = &one;
    }
    cfg_errs errs = {0};
    cfg_ctx cx = {.at = cli_pos, .key = flag, .cfg = c, .errs = &errs, .cli = true};
    cfg_apply_node(c, cfg_key_target(groups, ng, k)->name, v, cli_pos, &cx, true);
    int rc = cfg_errs_finish(&errs);
    ydoc_free(&d);
    eft_free(flag);
    eft_free(name);
    return rc;
}

/* The command's own flag matching argv[i] ("dry-run", or "dump=" for one with a value): 1 alone,
 * 2 with a separate value, 0 when it is not one of them. */
static int own_flag(const char *name, bool has_eq, const char *const *keep) {
    for (; keep && *keep; keep++) {
        size_t n = strlen(*keep);
        bool with_value = n && (*keep)[n - 1] == '=';
        char *k = key_name(*keep);
        if (with_value) k[n - 1] = 0;
        bool same = !strcmp(k, name);
        eft_free(k);
        if (same) return with_value && !has_eq ? 2 : 1;
    }
    return 0;
}

/* Would `next` be read as the value of boolean flag k? (Else `--flag` alone means true.) */
static bool bool_value(const cfg_key *k, const char *next) {
    static const char *words[] = {"true", "false", "yes", "no", "on", "off",
                                  "1",    "0",     "t",   "f",  "y",  "n"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(words); i++)
        if (!strcasecmp(next, words[i])) return true;
    return k->choices && cfg_choice_find(k->choices, next);
}

int cfg_apply_overrides(eft_config *c, int *argc, char **argv, const char *const *keep) {
    int ng;
    const cfg_group *groups = cfg_top_groups(&ng);
    int w = 1, n = *argc;
    for (int i = 1; i < n; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            while (i < n) argv[w++] = argv[i++]; /* the rest is not ours */
            break;
        }
        if (strncmp(a, "--", 2) != 0) {
            argv[w++] = argv[i]; /* positional */
            continue;
        }
        const char *eq = strchr(a, '=');
        char *raw = eq ? eft_strndup(a, (size_t)(eq - a)) : eft_strdup(a);
        char *name = key_name(raw);
        eft_free(raw);
        int own = own_flag(name, eq != NULL, keep);
        if (own) {
            argv[w++] = argv[i];
            if (own == 2 && i + 1 < n) argv[w++] = argv[++i];
            eft_free(name);
            continue;
        }
        const cfg_key *k = cfg_key_find(groups, ng, name);
        const char *value = eq ? eq + 1 : NULL;
        if (!k && !strncmp(name, "no_", 3)) {
            const cfg_key *pos = cfg_key_find(groups, ng, name + 3);
            if (pos && takes_bool(pos) && !eq) {
                memmove(name, name + 3, strlen(name + 3) + 1);
                k = pos;
                value = "false";
            }
        }
        if (!k) {
            unknown(name);
            eft_free(name);
            return -1;
        }
        if (!value) {
            if (takes_bool(k) && (i + 1 >= n || !bool_value(k, argv[i + 1]))) {
                value = "true";
            } else if (i + 1 < n) {
                value = argv[++i];
            } else {
                char *flag = flag_name(name);
                eft_fail("command line: %s needs a value (%s VALUE or %s=VALUE).", flag, flag,
                         flag);
                eft_free(flag);
                eft_free(name);
                return -1;
            }
        }
        int rc = cfg_apply_override(c, name, value);
        eft_free(name);
        if (rc) return -1;
    }
    if (w < n) argv[w] = NULL;
    *argc = w;
    return 0;
}
