/* ds_files.h: which files hold a dataset entry's rows, and in which split (the lookup rules are
 * described in ds_source.h). Used by ds_source.c only. */
#ifndef EFT_DATA_DS_FILES_H
#define EFT_DATA_DS_FILES_H

#include "io/config.h"

typedef struct ds_split_files {
    char *name;   /* "train" (owned) */
    char **paths; /* [n], sorted (owned) */
    int n;
} ds_split_files;

typedef struct ds_found {
    ds_split_files *splits; /* [n] in the order train, validation, test, then others */
    int n;
} ds_found;

/* Lists the entry's data files by split. `what` names the entry in errors. A folder without
 * any JSON, JSON Lines, Parquet, Arrow or CSV file, or data_files that match nothing, are
 * errors; unsupported formats are refused later, when their split is chosen. */
int ds_find_files(const cfg_dataset *d, const char *what, ds_found *out);
void ds_found_free(ds_found *f);

/* Whether a path names a file eft reads rows from (.json, .jsonl), and a one-line refusal
 * (recorded, returns -1) for the data formats it does not read yet. 0 for other files. */
int ds_check_format(const char *path);

#endif
