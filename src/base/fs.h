/* fs.h: files and paths, with user errors that name the path.
 *
 * Every write that leaves a file behind goes through eft_atomic_*: the data is written to
 * "<path>.tmp.<pid>", flushed to disk and renamed over <path>, so a crash or Ctrl-C never leaves
 * a half-written checkpoint, adapter or cache where a complete one used to be.
 */
#ifndef EFT_BASE_FS_H
#define EFT_BASE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* A file mapped read-only. data is NULL for an empty file. */
typedef struct eft_mapped {
    const unsigned char *data;
    size_t size;
} eft_mapped;

int eft_map_file(eft_mapped *m, const char *path);
void eft_unmap(eft_mapped *m);

/* Reads a whole file into a NUL-terminated buffer (owned by the caller; eft_free). */
char *eft_read_file(const char *path, size_t *size_out);

/* Atomic write: open a temporary beside `path`, write through the FILE*, then commit or abort. */
typedef struct eft_atomic {
    FILE *f;
    char *path, *tmp;
} eft_atomic;

int eft_atomic_open(eft_atomic *a, const char *path);
/* Flushes, fsyncs, closes and renames into place. On failure removes the temporary. */
int eft_atomic_commit(eft_atomic *a);
void eft_atomic_abort(eft_atomic *a);
/* Whole buffer to a file, atomically. */
int eft_write_file_atomic(const char *path, const void *data, size_t n);

bool eft_path_exists(const char *path);
bool eft_is_dir(const char *path);
bool eft_is_file(const char *path);
/* "a" + "b" -> "a/b" (owned by the caller). */
char *eft_path_join(const char *a, const char *b);
/* Creates a folder and its parents (like mkdir -p). */
int eft_mkdirs(const char *path);
/* Removes a folder and everything in it (for save_total_limit). Missing is fine. */
int eft_remove_tree(const char *path);
/* Expands a leading "~/" with $HOME (owned by the caller). */
char *eft_expand_user(const char *path);

#endif
