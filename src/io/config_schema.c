/* config_schema.c: lookups over the key tables (by name, by likeness for "did you mean") and the
 * printed schema of `eft config-schema`. The tables themselves are in config_keys_*.c. */
#include "io/config_schema.h"

#include "base/buf.h"
#include "base/err.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <pthread.h>
#include <string.h>

static cfg_group all_groups[32];
static int n_all_groups;
static pthread_once_t groups_once = PTHREAD_ONCE_INIT;

static void gather_groups(void) {
    assert(cfg_n_model_groups + cfg_n_train_groups <= (int)EFT_ARRAY_LEN(all_groups));
    for (int i = 0; i < cfg_n_model_groups; i++) all_groups[n_all_groups++] = cfg_model_groups[i];
    for (int i = 0; i < cfg_n_train_groups; i++) all_groups[n_all_groups++] = cfg_train_groups[i];
}

const cfg_group *cfg_top_groups(int *ngroups) {
    pthread_once(&groups_once, gather_groups);
    *ngroups = n_all_groups;
    return all_groups;
}

const cfg_key *cfg_key_find(const cfg_group *groups, int ngroups, const char *name) {
    for (int g = 0; g < ngroups; g++)
        for (int i = 0; i < groups[g].n; i++)
            if (!strcmp(groups[g].keys[i].name, name)) return &groups[g].keys[i];
    return NULL;
}

const cfg_key *cfg_key_target(const cfg_group *groups, int ngroups, const cfg_key *k) {
    if (!k->alias_of) return k;
    const cfg_key *t = cfg_key_find(groups, ngroups, k->alias_of);
    assert(t && !t->alias_of);
    return t;
}

/* Levenshtein distance, with '-' and '_' counted as equal (a YAML key written with dashes). */
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 64 || nb > 64) return 99;
    int row[65];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            char ca = a[i - 1] == '-' ? '_' : a[i - 1], cb = b[j - 1] == '-' ? '_' : b[j - 1];
            int best = diag + (ca != cb);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = row[j];
            row[j] = best;
        }
    }
    return row[nb];
}

const char *cfg_key_suggest(const cfg_group *groups, int ngroups, const char *name) {
    size_t len = strlen(name);
    int limit = len <= 4 ? 1 : len <= 12 ? 2 : 3, best = limit + 1;
    const char *pick = NULL;
    for (int g = 0; g < ngroups; g++)
        for (int i = 0; i < groups[g].n; i++) {
            int d = edit_distance(name, groups[g].keys[i].name);
            if (d < best) best = d, pick = groups[g].keys[i].name;
        }
    return pick;
}

const cfg_choice *cfg_choice_find(const cfg_choice *choices, const char *v) {
    for (const cfg_choice *c = choices; c->name; c++) {
        if (strchr(c->name, '*') ? fnmatch(c->name, v, 0) == 0 : !strcmp(c->name, v)) return c;
    }
    return NULL;
}

char *cfg_choices_list(const cfg_choice *choices, cfg_status status) {
    eft_buf b = {0};
    for (const cfg_choice *c = choices; c->name; c++) {
        if (c->status != status || c->canonical) continue;
        if (b.len) eft_buf_puts(&b, ", ");
        eft_buf_puts(&b, strchr(c->name, '*') && c->hint ? c->hint : c->name);
    }
    return eft_buf_take(&b);
}

char *cfg_type_words(const cfg_key *k) {
    switch (k->type) {
    case CFG_T_BOOL:
        return eft_strdup("bool");
    case CFG_T_INT:
        return eft_strdup("int");
    case CFG_T_FLOAT:
        return eft_strdup("float");
    case CFG_T_STR:
        return eft_strdup("str");
    case CFG_T_ENUM:
        return eft_strdup("enum");
    case CFG_T_BOOL_ENUM: {
        eft_buf b = {0};
        eft_buf_puts(&b, "bool");
        for (const cfg_choice *c = k->choices; c->name; c++)
            if (c->status == CFG_SUPPORTED && !strchr(c->name, '*'))
                eft_buf_printf(&b, "|%s", c->name);
        return eft_buf_take(&b);
    }
    case CFG_T_STEPS:
        return eft_strdup("int|fraction");
    case CFG_T_STR_LIST:
        return eft_strdup("list[str]");
    case CFG_T_STR_OR_LIST:
        return eft_strdup("str|list[str]");
    case CFG_T_MAP:
        return eft_strdup("dict");
    case CFG_T_DATASETS:
        return eft_strdup("list[dataset]");
    case CFG_T_DS_TYPE:
        return eft_strdup("str|dict");
    case CFG_T_ANY:
        return eft_strdup(k->type_doc ? k->type_doc : "any");
    }
    return eft_strdup("?");
}

static const char *status_word(cfg_status s) {
    return s == CFG_SUPPORTED ? "supported" : s == CFG_NO_EFFECT ? "no_effect" : "not_yet";
}

static const char *default_words(const cfg_key *k) {
    return k->def ? k->def : k->def_doc ? k->def_doc : NULL;
}

/* ---- text ---- */

static void print_key_text(FILE *f, const cfg_key *k) {
    char *type = cfg_type_words(k);
    const char *def = default_words(k);
    fprintf(f, "  %-34s %-16s %-10s %s", k->name, type, status_word(k->status), k->meaning);
    if (def) fprintf(f, " Default: %s.", def);
    if (k->status == CFG_NOT_YET && k->hint) fprintf(f, " (%s)", k->hint);
    fputc('\n', f);
    if (k->choices && k->type != CFG_T_BOOL_ENUM) {
        char *ok = cfg_choices_list(k->choices, CFG_SUPPORTED);
        char *later = cfg_choices_list(k->choices, CFG_NOT_YET);
        fprintf(f, "  %-34s values: %s%s%s\n", "", ok, *later ? "; not yet: " : "", later);
        eft_free(ok);
        eft_free(later);
    }
    eft_free(type);
}

static void print_group_text(FILE *f, const cfg_group *g) {
    fprintf(f, "\n%s\n", g->title);
    for (int i = 0; i < g->n; i++) print_key_text(f, &g->keys[i]);
}

/* ---- JSON ---- */

static cJSON *key_json(const cfg_key *k) {
    cJSON *o = cJSON_CreateObject();
    char *type = cfg_type_words(k);
    cJSON_AddStringToObject(o, "name", k->name);
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "status", status_word(k->status));
    const char *def = default_words(k);
    if (def)
        cJSON_AddStringToObject(o, "default", def);
    else
        cJSON_AddNullToObject(o, "default");
    cJSON_AddStringToObject(o, "meaning", k->meaning);
    if (k->alias_of) cJSON_AddStringToObject(o, "alias_of", k->alias_of);
    if (k->status == CFG_NOT_YET && k->hint) cJSON_AddStringToObject(o, "hint", k->hint);
    if (k->choices) {
        cJSON *ok = cJSON_AddArrayToObject(o, "values");
        cJSON *later = cJSON_AddArrayToObject(o, "not_yet_values");
        for (const cfg_choice *c = k->choices; c->name; c++)
            cJSON_AddItemToArray(c->status == CFG_NOT_YET ? later : ok,
                                 cJSON_CreateString(c->name));
    }
    eft_free(type);
    return o;
}

static cJSON *group_json(const cfg_group *g) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", g->id);
    cJSON_AddStringToObject(o, "title", g->title);
    cJSON *keys = cJSON_AddArrayToObject(o, "keys");
    for (int i = 0; i < g->n; i++) cJSON_AddItemToArray(keys, key_json(&g->keys[i]));
    return o;
}

void cfg_schema_print(FILE *f, bool json) {
    int ng;
    const cfg_group *groups = cfg_top_groups(&ng);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "schema", "eft config (Axolotl-compatible YAML)");
        cJSON *arr = cJSON_AddArrayToObject(root, "groups");
        for (int g = 0; g < ng; g++) cJSON_AddItemToArray(arr, group_json(&groups[g]));
        cJSON_AddItemToObject(root, "dataset", group_json(&cfg_dataset_group));
        cJSON_AddItemToObject(root, "dataset_type", group_json(&cfg_dataset_type_group));
        char *s = cJSON_Print(root);
        fprintf(f, "%s\n", s);
        cJSON_free(s);
        cJSON_Delete(root);
        return;
    }
    fprintf(f,
            "eft config keys: the Axolotl YAML keys, with what eft does with each.\n"
            "Status: supported = eft uses the value; no_effect = accepted and ignored (it tunes "
            "PyTorch/GPU stacks);\nnot_yet = an error when set (false or empty is fine). Any key "
            "can be given on the command line as --key value.\n");
    for (int g = 0; g < ng; g++) print_group_text(f, &groups[g]);
    print_group_text(f, &cfg_dataset_group);
    print_group_text(f, &cfg_dataset_type_group);
}
