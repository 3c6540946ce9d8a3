/* config_schema.h: the schema table behind config.h (private to src/io/config*.c).
 *
 * One cfg_key per Axolotl key: its type, status, default, one line of meaning and, for supported
 * keys, the offset of its field in eft_config (or cfg_dataset). The loader, the overrides, the
 * defaults, cfg_free and `eft config-schema` are all driven by these tables, so a key is added in
 * one place. The tables live in config_keys_*.c, grouped as in ../shared/spec/axolotl-compat.md
 * section 2.
 */
#ifndef EFT_IO_CONFIG_SCHEMA_H
#define EFT_IO_CONFIG_SCHEMA_H

#include "base/buf.h"
#include "base/err.h"
#include "io/config.h"
#include "io/yaml_doc.h"

#include <stddef.h>

typedef enum cfg_status { CFG_SUPPORTED, CFG_NO_EFFECT, CFG_NOT_YET } cfg_status;

typedef enum cfg_type {
    CFG_T_BOOL,        /* cfg_bool */
    CFG_T_INT,         /* cfg_int */
    CFG_T_FLOAT,       /* cfg_float, finite */
    CFG_T_STR,         /* cfg_str */
    CFG_T_ENUM,        /* cfg_str holding one of `choices` */
    CFG_T_BOOL_ENUM,   /* cfg_str: "true", "false" or one of `choices` (bf16: auto) */
    CFG_T_STEPS,       /* cfg_float: an integer >= 1 or a fraction in (0, 1) */
    CFG_T_STR_LIST,    /* cfg_strlist from a list of strings */
    CFG_T_STR_OR_LIST, /* cfg_strlist from one string (single_string) or a list */
    CFG_T_MAP,         /* cfg_map: scalar or list-of-scalar values */
    CFG_T_DATASETS,    /* cfg_datasets: a list of dataset mappings */
    CFG_T_DS_TYPE,     /* a dataset's type: an ENUM string, or a mapping (cfg_dataset_type) */
    CFG_T_ANY          /* any YAML value, not stored (compound keys eft does not use) */
} cfg_type;

/* One accepted value of an ENUM / BOOL_ENUM key. A name with '*' is a pattern (fnmatch). A
 * value that is an alias is stored as `canonical`. */
typedef struct cfg_choice {
    const char *name;
    cfg_status status;
    const char *canonical; /* NULL: the name itself */
    const char *hint;      /* not_yet: what to use instead; pattern: how to show it */
} cfg_choice;

enum {
    CFG_F_EMPTY_NO_EFFECT = 1, /* not_yet key: left empty it counts as no_effect (wandb_project) */
    CFG_F_POSITIVE = 2,        /* int/float: must be > 0 */
    CFG_F_NONNEG = 4,          /* int/float: must be >= 0 */
};

#define CFG_NO_FIELD ((size_t)-1)

typedef struct cfg_key {
    const char *name;
    cfg_type type;
    cfg_status status;
    size_t off;          /* the field (supported keys), else CFG_NO_FIELD */
    const char *def;     /* default as YAML text, applied by cfg_init; NULL: none */
    const char *def_doc; /* the default in words where it is derived ("follows sample_packing") */
    const char *meaning; /* one line */
    const cfg_choice *choices; /* ENUM, BOOL_ENUM, DS_TYPE: {NULL}-terminated */
    const char *hint;          /* not_yet: what to do instead */
    const char *alias_of;      /* another spelling of this key (same field) */
    const char *type_doc;      /* CFG_T_ANY: the type in words ("dict", "list[int]") */
    unsigned flags;
} cfg_key;

typedef struct cfg_group {
    const char *id, *title;
    const cfg_key *keys;
    int n;
} cfg_group;

/* Supported key stored in eft_config field `n` (named like the key). */
#define CFG_SUP(n, t, d, m, ...)                                                                   \
    {                                                                                              \
        .name = #n, .type = t, .status = CFG_SUPPORTED, .off = offsetof(eft_config, n), .def = d,  \
        .meaning = m, __VA_ARGS__                                                                  \
    }
/* Supported key of a dataset entry (cfg_dataset). */
#define CFG_DS(n, t, d, m, ...)                                                                    \
    {                                                                                              \
        .name = #n, .type = t, .status = CFG_SUPPORTED, .off = offsetof(cfg_dataset, n), .def = d, \
        .meaning = m, __VA_ARGS__                                                                  \
    }
#define CFG_NOEFF(n, t, m, ...)                                                                    \
    {                                                                                              \
        .name = #n, .type = t, .status = CFG_NO_EFFECT, .off = CFG_NO_FIELD, .meaning = m,         \
        __VA_ARGS__                                                                                \
    }
#define CFG_NOTYET(n, t, m, h, ...)                                                                \
    {                                                                                              \
        .name = #n, .type = t, .status = CFG_NOT_YET, .off = CFG_NO_FIELD, .meaning = m,           \
        .hint = h, __VA_ARGS__                                                                     \
    }

/* The tables (config_keys_*.c). */
extern const cfg_group cfg_model_groups[];
extern const int cfg_n_model_groups;
extern const cfg_group cfg_train_groups[];
extern const int cfg_n_train_groups;
/* All top-level groups, in the order `eft config-schema` prints them. */
const cfg_group *cfg_top_groups(int *ngroups);
extern const cfg_group cfg_dataset_group;      /* keys of one datasets: entry */
extern const cfg_group cfg_dataset_type_group; /* keys of a user-defined type: mapping */

/* Lookup by exact name among the groups; NULL when absent. */
const cfg_key *cfg_key_find(const cfg_group *groups, int ngroups, const char *name);
/* The key an alias stands for (the key itself when it is not an alias). */
const cfg_key *cfg_key_target(const cfg_group *groups, int ngroups, const cfg_key *k);
/* The nearest known key by edit distance, when close enough to be a likely typo; else NULL. */
const char *cfg_key_suggest(const cfg_group *groups, int ngroups, const char *name);
/* The choice matching v, or NULL. */
const cfg_choice *cfg_choice_find(const cfg_choice *choices, const char *v);
/* "a, b, c" of the supported choices (owned by caller). */
char *cfg_choices_list(const cfg_choice *choices, cfg_status status);
/* The type in words: "int", "bool | auto | full", "str | list[str]" (owned by caller). */
char *cfg_type_words(const cfg_key *k);

/* ---- reading values (config_value.c) ---- */

/* Problems found while reading: the first one's message, then the places of the others, so
 * that one run of eft names every key to fix ("... Also: skip_prepare_dataset (7:1)."). */
typedef struct cfg_errs {
    eft_buf first, also;
    int n;
} cfg_errs;
/* Notes the error just recorded (eft_err_msg) for the value of `key` at `at`. */
void cfg_errs_note(cfg_errs *e, const char *key, cfg_pos at);
/* 0 when nothing was noted; else records the combined message and returns -1. Frees e. */
int cfg_errs_finish(cfg_errs *e);

/* Where a value is read: its position and the name errors show for it ("lora_r",
 * "datasets[0].type", "--lora-r"). cli: the value came from the command line, where a number
 * given to a string key is taken as its text. */
typedef struct cfg_ctx {
    cfg_pos at;
    const char *key;
    eft_config *cfg;
    cfg_errs *errs;
    bool cli;
} cfg_ctx;

/* Reads node `v` for key `k` into `field` (NULL: check the type only). Returns 0, or -1 with a
 * located error. Enum values are checked against their choices; a not_yet choice is an error. */
int cfg_value_read(const cfg_key *k, const ydoc_node *v, void *field, const cfg_ctx *cx);
/* True when the node is empty: null, "", [], {}, or false for a boolean key. */
bool cfg_value_is_inert(const cfg_key *k, const ydoc_node *v);
/* Sets a field to the key's default (or to zero when it has none). */
void cfg_value_default(const cfg_key *k, void *field);
/* Frees what a field owns and zeroes it. */
void cfg_value_free(const cfg_key *k, void *field);
/* Position of a node of the config's file. */
cfg_pos cfg_node_pos(const cfg_ctx *cx, const ydoc_node *n);
/* Reads a scalar as a boolean / integer / finite float with pydantic's lax rules; on a type
 * mismatch returns -1 with the error recorded against cx. */
int cfg_read_bool(const ydoc_node *v, bool *out, const cfg_ctx *cx);
int cfg_read_int(const ydoc_node *v, int64_t *out, const cfg_ctx *cx);
int cfg_read_float(const ydoc_node *v, double *out, const cfg_ctx *cx);

/* Applies the top-level key `name` (exactly as in the table) with value v, by its status
 * (config.c). replace: a value already set is replaced (an override) rather than an error. */
int cfg_apply_node(eft_config *c, const char *name, const ydoc_node *v, cfg_pos key_at,
                   const cfg_ctx *cx, bool replace);

/* Loads a dataset list node into ds (config.c, shared with the value reader). */
int cfg_datasets_read(const ydoc_node *v, cfg_datasets *ds, const cfg_ctx *cx);
void cfg_datasets_free(cfg_datasets *ds);

#endif
