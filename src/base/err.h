/* err.h: eft's one error channel, and its checked allocation.
 *
 * A function that can fail on bad input records one message with eft_fail() and returns -1 (or
 * NULL); its caller passes the failure up unchanged, adding context only where it knows more (a
 * file name) through eft_err_context(). The CLI prints eft_err_msg() on one line and exits with
 * eft_err_code(): 1 for a user error (a bad config, a broken file, a missing path), 2 for an
 * internal failure. A user error names the file, the place in it, what is wrong and what to do:
 *
 *     config.yaml:12:15: lora_r: expected an integer, found "sixteen". Write a whole number.
 *
 * Broken invariants of eft itself are assert()s, not errors. Out of memory is handled here, once:
 * eft_malloc() and friends never return NULL; they print what they needed and exit 2.
 *
 * The record is thread-local, so worker threads can fail independently; the one that matters is
 * the calling thread's.
 */
#ifndef EFT_BASE_ERR_H
#define EFT_BASE_ERR_H

#include <stddef.h>

enum { EFT_OK = 0, EFT_ERR_USER = 1, EFT_ERR_INTERNAL = 2 };

/* Records a user error (exit status 1). Returns -1 so that `return eft_fail(...)` reads well. */
int eft_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Records an internal failure (exit status 2): eft did something it should not have. */
int eft_fail_internal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Records a user error from errno, as "<what>: <strerror>. <hint>". */
int eft_fail_errno(const char *what, const char *hint);
/* Prepends "<context>: " to the current message, e.g. the file a parser was reading. */
void eft_err_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *eft_err_msg(void); /* "" when no error is recorded */
int eft_err_code(void);        /* EFT_OK, EFT_ERR_USER or EFT_ERR_INTERNAL */
void eft_err_clear(void);

/* Checked allocation: never NULL (exit 2 with the size on failure). eft_free(NULL) is fine. */
void *eft_malloc(size_t n);
void *eft_calloc(size_t count, size_t size);
void *eft_realloc(void *p, size_t n);
char *eft_strdup(const char *s);
char *eft_strndup(const char *s, size_t n);
char *eft_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void eft_free(void *p);
/* 64-byte aligned, for tensors; free with eft_free_aligned. */
void *eft_malloc_aligned(size_t n);
void eft_free_aligned(void *p);

#define EFT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define EFT_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define EFT_MAX(a, b)    ((a) > (b) ? (a) : (b))

#endif
