/* ds_source.h: the rows of one `datasets:` entry, read from local JSON Lines and JSON files.
 *
 * What the entry names, as Hugging Face `datasets` reads it:
 *   - a file: its rows are the split "train";
 *   - a folder (a local one, or a Hub dataset's snapshot folder found by cfg_resolve_paths): its
 *     data files, in sorted path order, assigned to splits by datasets' rules: sharded names
 *     (data/train-00000-of-00001.jsonl), then split keywords in folder names, then in file
 *     names (train, training / validation, valid, dev, val / test, testing, eval, evaluation),
 *     else every file is "train". Hidden files (".name") are skipped;
 *   - data_files (a path, glob or list, looked up inside the folder, else as given): those
 *     files, all in the split "train".
 * Then `split` (ds_split.h) slices the rows, and `shards`/`shards_idx` keep one contiguous
 * shard of a seeded permutation (Axolotl shuffles before sharding; eft's permutation comes from
 * its own RNG, so the rows of a shard differ from Axolotl's).
 *
 * A file is JSON Lines (one object a line; blank lines skipped; a leading UTF-8 BOM ignored)
 * unless it starts with "[" (a list of row objects, or of strings read as {"text": s}) or is
 * one JSON object holding a single list of row objects. Parquet, Arrow and CSV files are
 * refused with a message that says how to convert them. Every line of the split's files is
 * parsed, selected or not, so a malformed line is an error wherever it is (datasets reads them
 * all too); rows are type-checked by the formats, which know their fields.
 *
 * Not here: what the columns mean (ds_format.h), tokenization, caching.
 */
#ifndef EFT_DATA_DS_SOURCE_H
#define EFT_DATA_DS_SOURCE_H

#include "base/fs.h"
#include "io/config.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ds_file {
    char *path;    /* as opened (owned) */
    int64_t rows;  /* rows in the file */
    int64_t first; /* global index of its first row within the split */
} ds_file;

/* One selected row: the caller owns v (cJSON_Delete). */
typedef struct ds_row {
    cJSON *v;
    int file;     /* index into ds_source.files */
    int64_t line; /* 1-based line (JSON Lines) or element number (a JSON list) */
    int64_t pos;  /* the row's place in the selected order: 0 .. n_selected-1 */
    bool listed;  /* from a JSON list (line is then the element number) */
} ds_row;

typedef struct ds_source {
    const cfg_dataset *d;
    char *what; /* "datasets[0] (data.jsonl)": names the entry in messages (owned) */
    ds_file *files;
    int n_files;
    int64_t n_rows;     /* rows of the split's files */
    int64_t n_selected; /* rows the split slice and shard keep */
    int64_t *pos_of;    /* [n_rows] place in the selection, or -1 */
    /* reading state */
    int cur;             /* file being read */
    int mode;            /* of the current file: lines, list, object */
    eft_mapped map;      /* current file, lines mode */
    size_t at;           /* byte offset of the next line */
    int64_t line, index; /* last line read; rows read of the current file */
    cJSON *root, *list;  /* list and object modes */
} ds_source;

/* Finds the entry's files (d->local_path must be set by cfg_resolve_paths), picks the split
 * (d->split, else default_split when the data has it, else its only split) and counts the rows.
 * `what` names the entry ("datasets[0]"). Errors name the entry, the file and what to do. */
int ds_source_open(ds_source *s, const cfg_dataset *d, const char *what, const char *default_split,
                   uint64_t seed);
/* The next selected row in file order: 1 with *row filled, 0 at the end, -1 on error (a
 * malformed line: "file:line:col: ..."). */
int ds_source_next(ds_source *s, ds_row *row);
/* Frees what ds_source_open made, whether it succeeded or not. */
void ds_source_close(ds_source *s);

/* "data.jsonl:12" or "data.json: row 12" for messages (owned by the caller). */
char *ds_row_where(const ds_source *s, const ds_row *row);

#endif
