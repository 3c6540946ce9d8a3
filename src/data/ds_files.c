/* ds_files.c: a dataset entry's data files and their splits (see ds_files.h, ds_source.h).
 *
 * The split rules are datasets' default patterns (data_files.py), in their order of precedence:
 * the sharded name "data/{split}-NNNNN-of-NNNNN*", then a split keyword in a folder name, then
 * in a file name, a keyword being delimited by the start or end of the name or one of
 * "-._ 0-9" ("train.jsonl", "my_test-1.json" and "train/part.json" all name their split). The
 * first rule that matches any file decides for all of them; files it does not match are left
 * out, as datasets leaves them out.
 */
#include "data/ds_files.h"

#include "base/err.h"
#include "base/fs.h"

#include <dirent.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_OTHER, F_JSON, F_PARQUET, F_ARROW, F_CSV, F_TEXT } file_kind;

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcasecmp(s + n - k, suffix);
}

static file_kind kind_of(const char *path) {
    if (ends_with(path, ".jsonl") || ends_with(path, ".json")) return F_JSON;
    if (ends_with(path, ".parquet")) return F_PARQUET;
    if (ends_with(path, ".arrow")) return F_ARROW;
    if (ends_with(path, ".csv") || ends_with(path, ".tsv")) return F_CSV;
    if (ends_with(path, ".txt")) return F_TEXT;
    return F_OTHER;
}

int ds_check_format(const char *path) {
    switch (kind_of(path)) {
    case F_JSON:
        return 1;
    case F_PARQUET:
        return eft_fail(
            "%s: Parquet files are not supported yet: convert the dataset to JSON "
            "Lines, e.g. in Python: pandas.read_parquet(\"%s\").to_json(\"data.jsonl\", "
            "orient=\"records\", lines=True), and point path at the .jsonl file.",
            path, path);
    case F_ARROW:
        return eft_fail("%s: Arrow files are not supported yet: convert the dataset to JSON Lines "
                        "(datasets: Dataset.from_file(...).to_json(\"data.jsonl\")) and point path "
                        "at the .jsonl file.",
                        path);
    case F_CSV:
    case F_TEXT:
        return eft_fail("%s: %s files are not supported yet: convert the dataset to JSON Lines, "
                        "one object a line.",
                        path, kind_of(path) == F_CSV ? "CSV" : "text");
    default:
        return 0;
    }
}

/* ---- listing a folder ---- */

typedef struct list {
    char **v;
    int n;
} list;

static void push(list *l, char *s) {
    l->v = eft_realloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
    l->v[l->n++] = s;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Relative paths of the data files under base/rel, recursively. */
static void walk(const char *base, const char *rel, list *out) {
    char *dir = *rel ? eft_path_join(base, rel) : eft_strdup(base);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char *r = *rel ? eft_path_join(rel, e->d_name) : eft_strdup(e->d_name);
            char *full = eft_path_join(base, r);
            if (eft_is_dir(full))
                walk(base, r, out), eft_free(r);
            else if (kind_of(r) != F_OTHER)
                push(out, r);
            else
                eft_free(r);
            eft_free(full);
        }
        closedir(d);
    }
    eft_free(dir);
}

/* ---- split keywords ---- */

static const char *const split_names[] = {"train", "validation", "test"};
static const char *const keywords[3][5] = {
    {"train", "training", NULL},
    {"validation", "valid", "dev", "val", NULL},
    {"test", "testing", "eval", "evaluation", NULL},
};

static bool sep(char c) {
    return c && strchr("-._ 0123456789", c);
}

/* Whether name (one path component) holds keyword k delimited as the patterns say. A file name
 * needs a separator after the keyword ("train.jsonl"); a folder name may end with it. */
static bool has_keyword(const char *name, size_t len, const char *k, bool folder) {
    size_t kl = strlen(k);
    for (size_t i = 0; i + kl <= len; i++) {
        if (strncmp(name + i, k, kl)) continue;
        if (i > 0 && !sep(name[i - 1])) continue;
        if (i + kl == len ? folder : sep(name[i + kl])) return true;
    }
    return false;
}

/* The split a relative path's folders (folder true) or file name names, or -1. */
static int keyword_split(const char *rel, bool folder) {
    const char *slash = strrchr(rel, '/');
    for (int s = 0; s < 3; s++)
        for (int k = 0; keywords[s][k]; k++) {
            if (!folder) {
                const char *name = slash ? slash + 1 : rel;
                if (has_keyword(name, strlen(name), keywords[s][k], false)) return s;
                continue;
            }
            for (const char *p = rel; slash && p < slash;) {
                const char *e = strchr(p, '/');
                if (has_keyword(p, (size_t)(e - p), keywords[s][k], true)) return s;
                p = e + 1;
            }
        }
    return -1;
}

/* "data/{split}-00000-of-00001*": the split name into out, or false. */
static bool sharded_split(const char *rel, char *out, size_t cap) {
    if (strncmp(rel, "data/", 5)) return false;
    const char *p = rel + 5, *dash = strchr(p, '-');
    if (!dash || dash == p || (size_t)(dash - p) >= cap || strchr(p, '/')) return false;
    const char *q = dash + 1;
    for (int i = 0; i < 5; i++)
        if (q[i] < '0' || q[i] > '9') return false;
    if (strncmp(q + 5, "-of-", 4)) return false;
    for (int i = 0; i < 5; i++)
        if (q[9 + i] < '0' || q[9 + i] > '9') return false;
    memcpy(out, p, (size_t)(dash - p));
    out[dash - p] = 0;
    return true;
}

static ds_split_files *split_named(ds_found *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->splits[i].name, name)) return &f->splits[i];
    f->splits = eft_realloc(f->splits, (size_t)(f->n + 1) * sizeof *f->splits);
    ds_split_files *s = &f->splits[f->n++];
    s->name = eft_strdup(name);
    s->paths = NULL;
    s->n = 0;
    return s;
}

static void add_path(ds_found *f, const char *split, char *path) {
    ds_split_files *s = split_named(f, split);
    s->paths = eft_realloc(s->paths, (size_t)(s->n + 1) * sizeof *s->paths);
    s->paths[s->n++] = path;
}

/* Assigns the relative paths rel[] (sorted) of folder base to splits. */
static void assign_splits(const char *base, const list *rel, ds_found *f) {
    char name[64];
    bool any = false;
    for (int i = 0; i < rel->n && !any; i++) any = sharded_split(rel->v[i], name, sizeof name);
    if (any) {
        for (int i = 0; i < rel->n; i++)
            if (sharded_split(rel->v[i], name, sizeof name))
                add_path(f, name, eft_path_join(base, rel->v[i]));
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        bool folder = pass == 0;
        for (int i = 0; i < rel->n && !any; i++) any = keyword_split(rel->v[i], folder) >= 0;
        if (!any) continue;
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < rel->n; i++)
                if (keyword_split(rel->v[i], folder) == s)
                    add_path(f, split_names[s], eft_path_join(base, rel->v[i]));
        return;
    }
    for (int i = 0; i < rel->n; i++) add_path(f, "train", eft_path_join(base, rel->v[i]));
}

/* ---- data_files ---- */

static int glob_into(const char *pattern, list *out) {
    glob_t g;
    int rc = glob(pattern, GLOB_NOSORT, NULL, &g);
    int n = 0;
    if (rc == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (!eft_is_dir(g.gl_pathv[i])) push(out, eft_strdup(g.gl_pathv[i])), n++;
    globfree(&g);
    return n;
}

static int find_data_files(const cfg_dataset *d, const char *what, ds_found *f) {
    const char *base = d->local_path;
    bool folder = eft_is_dir(base);
    for (int i = 0; i < d->data_files.n; i++) {
        const char *pat = d->data_files.v[i];
        list got = {0};
        char *inside = folder && pat[0] != '/' ? eft_path_join(base, pat) : NULL;
        if (!inside || glob_into(inside, &got) == 0) glob_into(pat, &got);
        if (got.n == 0) {
            char *at = cfg_pos_str(d->data_files.v_at[i].file ? d->data_files.v_at[i] : d->at);
            eft_fail("%s: %s: data_files: \"%s\" matches no file%s%s%s. Check the name.", at, what,
                     pat, inside ? " (looked in " : "", inside ? base : "",
                     inside ? " and here)" : "");
            eft_free(at);
            eft_free(inside);
            eft_free(got.v);
            return -1;
        }
        qsort(got.v, (size_t)got.n, sizeof *got.v, cmp_str);
        for (int k = 0; k < got.n; k++) add_path(f, "train", got.v[k]);
        eft_free(got.v);
        eft_free(inside);
    }
    return 0;
}

int ds_find_files(const cfg_dataset *d, const char *what, ds_found *out) {
    memset(out, 0, sizeof *out);
    const char *base = d->local_path;
    if (d->data_files.n > 0) return find_data_files(d, what, out);
    if (!eft_is_dir(base)) {
        add_path(out, "train", eft_strdup(base));
        return 0;
    }
    static const char *const saved[] = {"state.json", "dataset_dict.json"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(saved); i++) {
        char *p = eft_path_join(base, saved[i]);
        bool is_saved = eft_is_file(p);
        eft_free(p);
        if (is_saved)
            return eft_fail(
                "%s: %s: a folder written by datasets' save_to_disk (Arrow) is not "
                "supported yet. Export it to JSON Lines (Dataset.to_json(\"data.jsonl\")) "
                "and point path at that file.",
                base, what);
    }
    list rel = {0};
    walk(base, "", &rel);
    if (rel.n == 0) {
        eft_free(rel.v);
        return eft_fail("%s: %s: the folder holds no data file (.jsonl or .json). Put the rows in "
                        "a JSON Lines file, or name the files with data_files.",
                        base, what);
    }
    qsort(rel.v, (size_t)rel.n, sizeof *rel.v, cmp_str);
    assign_splits(base, &rel, out);
    for (int i = 0; i < rel.n; i++) eft_free(rel.v[i]);
    eft_free(rel.v);
    return 0;
}

void ds_found_free(ds_found *f) {
    for (int i = 0; i < f->n; i++) {
        for (int k = 0; k < f->splits[i].n; k++) eft_free(f->splits[i].paths[k]);
        eft_free(f->splits[i].paths);
        eft_free(f->splits[i].name);
    }
    eft_free(f->splits);
    memset(f, 0, sizeof *f);
}
