/* st_internal.h: what the safetensors files of src/io share; not part of the API.
 *
 * An archive is a list of shards (one for a single file) and the tensors of all of them. The
 * header parser (st_header.c) appends a shard's tensors and metadata; the archive code
 * (safetensors.c, st_index.c) sorts them by name, refuses names held twice and builds the hash
 * table that st_find reads.
 */
#ifndef EFT_IO_ST_INTERNAL_H
#define EFT_IO_ST_INTERNAL_H

#include "base/fs.h"
#include "io/safetensors.h"

#include <stdint.h>

typedef struct st_shard {
    char *path;     /* the file's path (or st_parse's name), owned; used in messages */
    eft_mapped map; /* the mapped file; empty when the bytes are the caller's */
    st_meta *meta;  /* [n_meta] "__metadata__" entries, strings owned */
    size_t n_meta;
} st_shard;

struct st_archive {
    char *path;       /* what was opened, owned; used in messages */
    st_shard *shards; /* [n_shards] */
    int n_shards;
    st_tensor *tensors; /* [n_tensors], sorted by name once complete; names owned */
    size_t n_tensors, cap_tensors;
    uint32_t *slots; /* [n_slots] open-addressing table: tensor index + 1, 0 when empty */
    size_t n_slots;
};

/* A new empty archive (path copied), and a shard added to it (path copied; returns its index). */
st_archive *st_archive_new(const char *path);
int st_archive_add_shard(st_archive *a, const char *path);

/* Parses and validates bytes[0..n) as shard `shard`, appending its tensors (in file order) and
 * its metadata. Returns -1 with a user error naming the shard's file on any broken rule. */
int st_parse_header(st_archive *a, int shard, const unsigned char *bytes, size_t n);

/* Sorts the tensors by name, refuses a name held by two shards and builds the lookup table. */
int st_archive_finish(st_archive *a);

/* Reads a sharded checkpoint's index and its shards into a (st_index.c). */
int st_open_index(st_archive *a, const char *index_path);

/* Offset of the first byte of s[0..n) that is not part of strict UTF-8, or n when all are. */
size_t st_utf8_check(const unsigned char *s, size_t n);
/* The header text s[0..n) (file offset 8): strict UTF-8, valid escapes and no "\u0000" in
 * strings, no raw control characters, nesting at most 128 deep. -1 with a user error naming
 * `file` and the byte's offset in the file. */
int st_check_text(const char *file, const unsigned char *s, size_t n);

/* The index of a name that occurs twice in names[0..n), or -1 (sorts a copy; O(n log n)). */
long st_find_duplicate(const char *const *names, size_t n);
/* qsort comparator for an array of C strings. */
int st_cmp_str(const void *x, const void *y);

#endif
