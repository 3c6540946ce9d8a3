/* safetensors.h: Hugging Face safetensors files, read through mmap and written atomically.
 *
 * The format: 8 bytes of little-endian u64 N, then N bytes of UTF-8 JSON, then the data. The JSON
 * maps tensor names to {"dtype": "BF16", "shape": [2, 3], "data_offsets": [begin, end]} (byte
 * offsets relative to the first byte after the header), plus an optional
 * "__metadata__": {string: string}. A sharded checkpoint is a folder with
 * model.safetensors.index.json, {"metadata": {...}, "weight_map": {tensor: shard file}}.
 *
 * Files are untrusted: everything below is checked before a tensor view is handed out, and each
 * violation is one user error (EFT_ERR_USER) naming the file, the tensor where there is one, what
 * is wrong and what to do. The rules are those of the Rust `safetensors` crate (which Python's
 * safe_open uses), plus a few stricter ones marked (+):
 *   - the file holds at least 8 bytes; N <= 100,000,000 (the crate's limit) and 8 + N <= size;
 *   - the header is strict UTF-8 (no overlong forms, surrogates or code points > U+10FFFF) and
 *     valid JSON (checked byte by byte before cJSON, which is lax about escapes and numbers:
 *     no raw control characters in strings, only valid escapes and numbers); (+) no "\u0000",
 *     since names are C strings; nesting at most 128 deep (serde_json's limit; cJSON's is 1000);
 *   - the JSON is one object, followed only by JSON white space (the writer pads with spaces);
 *   - (+) no name appears twice (serde would keep the last; cJSON keeps both), and no field
 *     appears twice within an entry;
 *   - "__metadata__", when present and not null, is an object whose values are all strings;
 *   - every other entry is an object with "dtype" ((+) one of st_dtype's names), "shape" (a
 *     list of (+) at most ST_MAX_DIMS whole numbers >= 0) and "data_offsets" (two whole numbers,
 *     begin <= end); other fields are ignored, as in the crate. (+) Whole numbers are below 2^53
 *     (exact in a double). The one laxer rule: cJSON reads "2.0" or "2e0" as the whole number 2,
 *     which the crate would refuse;
 *   - the element count and byte size do not overflow 64 bits, and end - begin equals the byte
 *     size (elements * dtype size);
 *   - sorted by (begin, end), the ranges tile the data exactly: the first begins at 0, each
 *     begins where the previous ended (no gap, no overlap), the last ends at the end of the file.
 *     The order of entries in the JSON does not matter. Zero-size tensors ([n, n]) are valid.
 *
 * Not here: sharded writing, slicing, dtypes eft does not train with (F64, F8_*, ...: reading
 * one is an error naming the tensor), big-endian hosts.
 */
#ifndef EFT_IO_SAFETENSORS_H
#define EFT_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Element types, in the order of the Rust crate's Dtype enum (increasing alignment). The writer
 * relies on this order; to add a type, insert it at its place in that order and add its row to
 * the table in safetensors.c. */
typedef enum st_dtype {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_F32,
    ST_I64,
    ST_DTYPE_COUNT
} st_dtype;

const char *st_dtype_name(st_dtype d); /* "BF16" */
size_t st_dtype_size(st_dtype d);      /* bytes per element */
/* The dtype spelled `name` ("F32"), or -1 when eft does not read it. */
int st_dtype_from_name(const char *name);

#define ST_MAX_DIMS 8

/* One tensor of an open archive. Everything it points to belongs to the archive and lives until
 * st_close(). `data` points into the mapped file: nbytes bytes, read-only, aligned to the dtype's
 * size only when the writer aligned it (safetensors writers do; a hostile file need not), so read
 * it with memcpy or st_to_f32(). */
typedef struct st_tensor {
    const char *name;
    st_dtype dtype;
    int ndim;                   /* 0 (a scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS]; /* shape[0..ndim) */
    int64_t numel;              /* product of the shape (1 for a scalar, 0 if any dim is 0) */
    size_t nbytes;              /* numel * st_dtype_size(dtype) */
    const void *data;           /* [shape], row-major, little-endian */
    int shard;                  /* index of the file that holds it (0 for a single file) */
    const char *file;           /* that file's path, for messages */
} st_tensor;

/* A "__metadata__" entry. */
typedef struct st_meta {
    const char *key, *value;
} st_meta;

typedef struct st_archive st_archive;

/* Opens a checkpoint: a .safetensors file; a folder holding model.safetensors or (when that is
 * absent, as in transformers) model.safetensors.index.json; or an index file itself (a path
 * ending in ".json"). For an index, every shard it names is mapped and checked, every tensor of
 * the weight_map must be in the shard it names, and no shard may hold a tensor that is in
 * another shard or missing from the index. Shard names must be plain file names in the index's
 * folder. On success *out is owned by the caller (st_close) and returns 0; on failure returns -1
 * with a user error and *out is NULL. */
int st_open(st_archive **out, const char *path);

/* Parses one safetensors file already in memory, bytes[0..n). The bytes are borrowed: they must
 * outlive the archive, which points into them. `name` is used in messages (copied). Same
 * contract as st_open otherwise; never reads outside bytes[0..n). */
int st_parse(st_archive **out, const void *bytes, size_t n, const char *name);

/* Unmaps the files and frees the archive. NULL is fine. */
void st_close(st_archive *a);

/* The tensors, sorted by name (strcmp order), over all shards: st_at(a, 0 .. st_count(a)-1). */
size_t st_count(const st_archive *a);
const st_tensor *st_at(const st_archive *a, size_t i);

/* Lookup by name through a hash table. st_find returns NULL when absent and records nothing;
 * st_get records a user error naming the checkpoint and the tensor and returns -1. */
const st_tensor *st_find(const st_archive *a, const char *name);
int st_get(const st_archive *a, const char *name, const st_tensor **out);

/* The files of the archive: one, or the shards sorted by file name. */
int st_shard_count(const st_archive *a);
const char *st_shard_path(const st_archive *a, int shard);

/* A shard's "__metadata__" entries, in file order (*count set; NULL and 0 when it has none), and
 * one value by key (NULL when absent). A sharded checkpoint's index "metadata" is not read. */
const st_meta *st_metadata(const st_archive *a, int shard, size_t *count);
const char *st_meta_get(const st_archive *a, int shard, const char *key);

/* Says the tensor's bytes will not be read again: the whole pages inside it leave the process's
 * resident memory (a mapped file's pages are read again from the file if they are touched). For
 * loaders that convert a tensor and keep only the result (NF4). Does nothing for st_parse's
 * borrowed bytes. */
void st_release(const st_archive *a, const st_tensor *t);
/* Widens a BF16, F16 or F32 tensor into dst[0..n), which the caller owns; n must equal numel.
 * Returns -1 with a user error naming the tensor for any other dtype or a different n. */
int st_to_f32(const st_tensor *t, float *dst, size_t n);

/* Writing: collect tensors and metadata, then write one file.
 *
 * Tensors are written in the order the Rust crate (and so safetensors.torch.save_file) uses:
 * by dtype, most aligned first (I64, F32, I32, BF16, F16, I8, U8, BOOL), then by name in byte
 * order; the header is compact JSON in the same order, "__metadata__" first, padded with spaces
 * to a multiple of 8 bytes. With at most one metadata key the file is byte-identical to
 * save_file's (Python writes several keys in hash order; eft writes them in the order added). */
typedef struct st_writer st_writer;

st_writer *st_writer_new(void); /* owned by the caller: st_writer_free */
void st_writer_free(st_writer *w);

/* Adds a tensor. `name` and `shape[0..ndim)` are copied; `data` ([shape], nbytes = numel *
 * dtype size, may be NULL when that is 0) is borrowed and must stay valid until the write.
 * Preconditions (asserted): a known dtype, 0 <= ndim <= ST_MAX_DIMS, dims >= 0. */
void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                   const void *data);
/* Sets a metadata entry (both copied); setting a key again replaces its value in place. */
void st_writer_meta(st_writer *w, const char *key, const char *value);

/* Writes the file to `path` through a temporary and a rename (eft_atomic_*): on any failure the
 * previous file at `path`, if any, is untouched and the temporary is removed. Returns 0, or -1
 * with an error: internal when the tensors are inconsistent (a name added twice, a name that is
 * not UTF-8 or is "__metadata__", a byte size that overflows), user when the disk refuses. */
int st_writer_write(st_writer *w, const char *path);
/* The same bytes to an open stream (not closed); `name` is used in messages. */
int st_writer_write_to(st_writer *w, FILE *f, const char *name);

#endif
