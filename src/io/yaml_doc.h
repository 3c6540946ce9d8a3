/* yaml_doc.h: a YAML file as a small tree of nodes that remember where they were written.
 *
 * libyaml does the parsing; this builds the tree the config loader walks: scalars, sequences and
 * mappings, each with the 1-based line:column of its first character, so that every later error
 * can point at the place. Scalars are resolved as PyYAML's SafeLoader resolves them (YAML 1.1:
 * `yes`/`on` are booleans, `0x1f` and `1_000` are integers, `2e-4` is a *string* because a YAML
 * 1.1 float needs a dot), because that is what Axolotl sees.
 *
 * What it adds to libyaml: duplicate keys are an error (PyYAML silently keeps the last one),
 * aliases are expanded into copies, merge keys (`<<: *base`) are applied, and an empty document
 * is reported as such. It does not know what any key means: see config.h.
 */
#ifndef EFT_IO_YAML_DOC_H
#define EFT_IO_YAML_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ydoc_kind { YDOC_SCALAR, YDOC_SEQ, YDOC_MAP } ydoc_kind;

/* What a scalar means under YAML 1.1 (PyYAML's resolver). A quoted scalar, a block scalar
 * (| or >) and a scalar tagged !!str are always YDOC_STR. */
typedef enum ydoc_type { YDOC_NULL, YDOC_BOOL, YDOC_INT, YDOC_FLOAT, YDOC_STR } ydoc_type;

typedef struct ydoc_node {
    ydoc_kind kind;
    int line, col; /* 1-based position of the node's first character */
    /* YDOC_SCALAR */
    char *text; /* NUL-terminated; may hold NULs inside (len says how long) */
    size_t len;
    bool plain; /* written without quotes or block indicators */
    char *tag;  /* explicit tag ("tag:yaml.org,2002:int", "!"), or NULL */
    /* YDOC_SEQ: items[0..n); YDOC_MAP: items[2i] is key i, items[2i+1] its value */
    int n;
    struct ydoc_node **items;
    bool pending; /* internal to the builder: a key waits for its value */
} ydoc_node;

typedef struct ydoc {
    ydoc_node *root; /* NULL for an empty document (only comments or nothing) */
} ydoc;

/* Parses text[0..n). `name` is used in error messages ("config.yaml:3:7: ..."). On failure the
 * error is recorded and d->root is NULL. An empty document is not a failure here (root NULL). */
int ydoc_parse(ydoc *d, const char *text, size_t n, const char *name);
/* The same for one value given on the command line: a syntax error reads
 * "<name>: cannot read "<text>" as a YAML value: <problem>." */
int ydoc_parse_value(ydoc *d, const char *text, size_t n, const char *name);
/* Reads and parses a file; a missing file is an error naming the path. */
int ydoc_parse_file(ydoc *d, const char *path);
void ydoc_free(ydoc *d);

/* The scalar's meaning under YAML 1.1. For YDOC_BOOL, YDOC_INT and YDOC_FLOAT the value is
 * stored in *b, *i or *f (any may be NULL). An integer outside int64 resolves as YDOC_FLOAT. */
ydoc_type ydoc_resolve(const ydoc_node *s, bool *b, int64_t *i, double *f);

/* The value of a mapping's key, or NULL; `key_out` (optional) gets the key node. */
const ydoc_node *ydoc_map_get(const ydoc_node *map, const char *key, const ydoc_node **key_out);

/* "a mapping", "a list", "null", "true", "a number (1.5)", or the quoted text of a string:
 * how an error message shows what it found (owned by the caller). */
char *ydoc_describe(const ydoc_node *n);

#endif
