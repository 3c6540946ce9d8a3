/* ds_source.c: the selected rows of a dataset entry (see ds_source.h). */
#include "data/ds_source.h"

#include "base/err.h"
#include "base/rng.h"
#include "data/ds_files.h"
#include "data/ds_split.h"
#include "io/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MODE_LINES, MODE_LIST, MODE_OBJECT };

static size_t skip_bom(const eft_mapped *m) {
    return m->size >= 3 && !memcmp(m->data, "\xEF\xBB\xBF", 3) ? 3 : 0;
}

static bool blank(const char *s, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (s[k] != ' ' && s[k] != '\t' && s[k] != '\r') return false;
    return true;
}

/* cJSON cuts a string at an escaped NUL; refuse the line instead of reading it short. */
static bool has_escaped_nul(const char *s, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++) {
        if (s[i] != '\\') continue;
        if (!memcmp(s + i, "\\u0000", 6)) return true;
        i++; /* skip the escaped character, so "\\\\u0000" is not read as an escape */
    }
    return false;
}

/* The file's list of rows when it is one JSON value (a list, or an object holding one list);
 * NULL with an error when it is neither. *parsed says whether the text was valid JSON. */
static cJSON *whole_file_list(const char *path, const eft_mapped *m, size_t at, cJSON **root,
                              bool *parsed) {
    const char *text = (const char *)m->data + at;
    size_t n = m->size - at;
    *parsed = false;
    if (has_escaped_nul(text, n)) {
        *parsed = true;
        eft_fail("%s: the file holds the character U+0000, which eft cannot read from JSON. Remove "
                 "it from the data.",
                 path);
        return NULL;
    }
    *root = eft_json_parse(text, n, path);
    if (!*root) return NULL;
    *parsed = true;
    if (cJSON_IsArray(*root)) return *root;
    if (cJSON_IsObject(*root) && cJSON_GetArraySize(*root) == 1 && cJSON_IsArray((*root)->child))
        return (*root)->child;
    eft_fail("%s: expected JSON Lines (one object a line), a list of row objects, or one object "
             "holding a list of rows, as datasets reads JSON.",
             path);
    cJSON_Delete(*root);
    *root = NULL;
    return NULL;
}

/* Decides how file i is read and counts its rows. Leaves s->map (lines) or s->root (list)
 * open for reading. */
static int open_file(ds_source *s, int i) {
    ds_file *f = &s->files[i];
    if (eft_map_file(&s->map, f->path)) return -1;
    size_t at = skip_bom(&s->map);
    while (at < s->map.size && strchr(" \t\r\n", s->map.data[at])) at++;
    s->cur = i, s->at = skip_bom(&s->map), s->line = 0, s->index = 0;
    s->root = s->list = NULL;
    s->mode = MODE_LINES;
    bool try_whole = at < s->map.size && s->map.data[at] == '[';
    if (!try_whole && at < s->map.size) {
        /* JSON Lines unless the first line does not parse and the whole file does */
        const char *line = (const char *)s->map.data + at;
        const char *nl = memchr(line, '\n', s->map.size - at);
        size_t len = nl ? (size_t)(nl - line) : s->map.size - at;
        cJSON *v = eft_json_parse(line, len, f->path);
        try_whole = !v && nl;
        cJSON_Delete(v);
        eft_err_clear();
    }
    if (try_whole) {
        cJSON *root = NULL;
        bool parsed;
        cJSON *list = whole_file_list(f->path, &s->map, skip_bom(&s->map), &root, &parsed);
        if (!list && (parsed || s->map.data[at] == '[')) return -1;
        if (list) {
            s->mode = list == root ? MODE_LIST : MODE_OBJECT;
            s->root = root, s->list = list;
            f->rows = cJSON_GetArraySize(list);
            return 0;
        }
        eft_err_clear(); /* not one JSON value: read it as lines, reporting the first bad one */
    }
    f->rows = 0;
    const char *base = (const char *)s->map.data;
    for (size_t p = s->at; p < s->map.size;) {
        const char *nl = memchr(base + p, '\n', s->map.size - p);
        size_t len = nl ? (size_t)(nl - (base + p)) : s->map.size - p;
        if (!blank(base + p, len)) f->rows++;
        p += len + 1;
    }
    return 0;
}

static void close_file(ds_source *s) {
    eft_unmap(&s->map);
    cJSON_Delete(s->root);
    s->root = s->list = NULL;
}

/* The split to read: the one `split` names, else default_split, else the only one. */
static const ds_split_files *choose_split(const ds_found *f, const char *name, bool named,
                                          const ds_source *s) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->splits[i].name, name)) return &f->splits[i];
    if (!named && f->n == 1) return &f->splits[0];
    char have[256] = "";
    for (int i = 0; i < f->n; i++)
        snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", i ? ", " : "",
                 f->splits[i].name);
    char *at = cfg_pos_str(named && s->d->split.set ? s->d->split.at : s->d->at);
    eft_fail("%s: %s: no split \"%s\" in the data (it has: %s). %s", at, s->what, name, have,
             named ? "Name one of those in split:." : "Set split: to one of those.");
    eft_free(at);
    return NULL;
}

/* Marks the rows that the spec and the shards keep, in their order. */
static int select_rows(ds_source *s, const ds_split_spec *spec, uint64_t seed) {
    int64_t cap = 0, n = 0;
    int64_t *sel = NULL;
    for (int p = 0; p < spec->n; p++) {
        int64_t from, to;
        if (ds_split_range(&spec->parts[p], s->n_rows, &from, &to)) {
            eft_err_context("%s", s->what);
            eft_free(sel);
            return -1;
        }
        if (n + (to - from) > cap) {
            cap = EFT_MAX(n + (to - from), 2 * cap);
            sel = eft_realloc(sel, (size_t)EFT_MAX(cap, 1) * sizeof *sel);
        }
        for (int64_t r = from; r < to; r++) sel[n++] = r;
    }
    const cfg_dataset *d = s->d;
    if (d->shards.set && d->shards.v > 1) {
        /* Axolotl: dataset.shuffle(seed).shard(shards, shards_idx), a contiguous shard */
        eft_rng r;
        eft_rng_seed(&r, seed, eft_rng_stream_of("datasets.shards"));
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)eft_rng_below(&r, (uint64_t)i + 1);
            int64_t t = sel[i];
            sel[i] = sel[j], sel[j] = t;
        }
        int64_t k = d->shards.v, idx = d->shards_idx.v, div = n / k, mod = n % k;
        int64_t start = div * idx + EFT_MIN(idx, mod);
        int64_t len = div + (idx < mod ? 1 : 0);
        memmove(sel, sel + start, (size_t)len * sizeof *sel);
        n = len;
    }
    s->pos_of = eft_malloc((size_t)EFT_MAX(s->n_rows, 1) * sizeof *s->pos_of);
    for (int64_t r = 0; r < s->n_rows; r++) s->pos_of[r] = -1;
    for (int64_t i = 0; i < n; i++) s->pos_of[sel[i]] = i;
    s->n_selected = n;
    eft_free(sel);
    return 0;
}

int ds_source_open(ds_source *s, const cfg_dataset *d, const char *what, const char *default_split,
                   uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->d = d;
    s->what = eft_asprintf("%s (%s)", what, d->path.v ? d->path.v : "?");
    s->cur = -1;
    if (d->name.set) {
        char *at = cfg_pos_str(d->name.at);
        eft_fail("%s: %s: name: dataset configurations are not supported yet. Remove name and "
                 "pick the files with data_files.",
                 at, s->what);
        eft_free(at);
        return -1;
    }
    ds_found found;
    if (ds_find_files(d, s->what, &found)) return -1;
    ds_split_spec spec = {0};
    const char *split = d->split.set ? d->split.v : default_split;
    int rc = ds_split_parse(split, &spec);
    if (rc) {
        char *at = cfg_pos_str(d->split.at);
        eft_err_context("%s: %s", at, s->what);
        eft_free(at);
    }
    for (int p = 1; !rc && p < spec.n; p++)
        if (strcmp(spec.parts[p].name, spec.parts[0].name)) {
            /* eft reads one split per entry */
            char *at = cfg_pos_str(d->split.at);
            rc = eft_fail("%s: %s: split \"%s\" joins different splits (%s and %s), which eft "
                          "does not read yet. Use one datasets entry per split.",
                          at, s->what, split, spec.parts[0].name, spec.parts[p].name);
            eft_free(at);
        }
    const ds_split_files *sf =
        rc ? NULL : choose_split(&found, spec.parts[0].name, d->split.set, s);
    if (!sf) rc = -1;
    for (int i = 0; !rc && i < sf->n; i++)
        if (ds_check_format(sf->paths[i]) < 0) rc = -1;
    if (!rc) {
        s->files = eft_calloc((size_t)sf->n, sizeof *s->files);
        s->n_files = sf->n;
        for (int i = 0; i < sf->n; i++) s->files[i].path = eft_strdup(sf->paths[i]);
        /* a spec that names the split the data lacks but is its only one reads that one */
        for (int p = 0; p < spec.n; p++)
            snprintf(spec.parts[p].name, sizeof spec.parts[p].name, "%s", sf->name);
    }
    for (int i = 0; !rc && i < s->n_files; i++) {
        s->files[i].first = s->n_rows;
        if (open_file(s, i)) {
            eft_err_context("%s", s->what);
            rc = -1;
        }
        close_file(s);
        if (!rc) s->n_rows += s->files[i].rows;
    }
    if (!rc && s->n_rows == 0)
        rc = eft_fail("%s: %s: no rows: the data is empty. Add rows, or remove the entry.",
                      s->n_files == 1 ? s->files[0].path : d->local_path, s->what);
    if (!rc) rc = select_rows(s, &spec, seed);
    if (!rc && s->n_selected == 0) {
        char *at = cfg_pos_str(d->split.set ? d->split.at : d->at);
        rc =
            eft_fail("%s: %s: split \"%s\"%s keeps no row of the %lld there are. Widen the "
                     "slice.",
                     at, s->what, split, d->shards.set ? " with shards" : "", (long long)s->n_rows);
        eft_free(at);
    }
    ds_split_free(&spec);
    ds_found_free(&found);
    s->cur = -1;
    return rc;
}

/* The next row of the current file (selected or not): 1, 0 at its end, -1 on error. */
static int next_in_file(ds_source *s, cJSON **v) {
    ds_file *f = &s->files[s->cur];
    if (s->mode != MODE_LINES) {
        if (!s->list->child) return 0;
        cJSON *item = cJSON_DetachItemViaPointer(s->list, s->list->child);
        s->line = ++s->index;
        if (cJSON_IsString(item)) { /* a list of strings: each is {"text": s} */
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "text", item);
            item = o;
        }
        *v = item;
        return 1;
    }
    const char *base = (const char *)s->map.data;
    while (s->at < s->map.size) {
        const char *line = base + s->at;
        const char *nl = memchr(line, '\n', s->map.size - s->at);
        size_t len = nl ? (size_t)(nl - line) : s->map.size - s->at;
        s->at += len + (nl ? 1 : 0);
        s->line++;
        if (blank(line, len)) continue;
        s->index++;
        if (has_escaped_nul(line, len))
            return eft_fail("%s:%lld: the line holds the character U+0000, which eft cannot read "
                            "from JSON. Remove it from the data.",
                            f->path, (long long)s->line);
        *v = eft_json_parse(line, len, "line");
        if (!*v) {
            const char *msg = eft_err_msg(), *col = strstr(msg, ":1:");
            int c = col ? atoi(col + 3) : 0;
            return eft_fail("%s:%lld:%d: invalid JSON on this line. Each line of a JSON Lines "
                            "file must be one complete JSON object (one row).",
                            f->path, (long long)s->line, c);
        }
        return 1;
    }
    return 0;
}

int ds_source_next(ds_source *s, ds_row *row) {
    for (;;) {
        if (s->cur < 0 || (s->cur < s->n_files && s->index >= s->files[s->cur].rows)) {
            if (s->cur >= 0) close_file(s);
            if (++s->cur >= s->n_files) return 0;
            if (open_file(s, s->cur)) return -1;
            continue;
        }
        if (s->cur >= s->n_files) return 0;
        cJSON *v = NULL;
        int rc = next_in_file(s, &v);
        if (rc <= 0) {
            if (rc < 0) return -1;
            s->index = s->files[s->cur].rows; /* counted rows all read: next file */
            continue;
        }
        int64_t g = s->files[s->cur].first + s->index - 1;
        if (s->pos_of[g] < 0) {
            cJSON_Delete(v);
            continue;
        }
        row->v = v, row->file = s->cur, row->line = s->line, row->pos = s->pos_of[g];
        row->listed = s->mode != MODE_LINES;
        if (!cJSON_IsObject(v)) {
            char *where = ds_row_where(s, row);
            eft_fail("%s: expected a JSON object (one row with named fields), found %s.", where,
                     cJSON_IsArray(v)    ? "a list"
                     : cJSON_IsString(v) ? "a string"
                                         : "a scalar");
            eft_free(where);
            cJSON_Delete(v);
            return -1;
        }
        return 1;
    }
}

void ds_source_close(ds_source *s) {
    if (s->cur >= 0 && s->cur < s->n_files) close_file(s);
    for (int i = 0; i < s->n_files; i++) eft_free(s->files[i].path);
    eft_free(s->files);
    eft_free(s->pos_of);
    eft_free(s->what);
    memset(s, 0, sizeof *s);
}

char *ds_row_where(const ds_source *s, const ds_row *row) {
    const ds_file *f = &s->files[row->file];
    return !row->listed ? eft_asprintf("%s:%lld", f->path, (long long)row->line)
                        : eft_asprintf("%s: row %lld", f->path, (long long)row->line);
}
