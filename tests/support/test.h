/* test.h: what eft's tests share, on top of cmocka.
 *
 * Every test file is one executable: `#include "support/test.h"`, write static void tests taking
 * `void **state`, and list them in main() with cmocka_unit_test(). Paths: EFT_SOURCE_DIR is the
 * repository, EFT_SHARED_DIR the shared data folder beside it (tests that need it call
 * test_shared_or_skip(), which skips with a message when it is absent).
 */
#ifndef EFT_TEST_H
#define EFT_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Returns EFT_SHARED_DIR/rel (owned by the caller), or skips the test when it is missing. */
char *test_shared_or_skip(const char *rel);
/* A fresh empty folder under the build tree, removed by test_tmpdir_cleanup (owned string). */
char *test_tmpdir(const char *name);
void test_tmpdir_cleanup(char *dir);
/* Runs the eft binary with a shell-quoted argument string; captures stdout and stderr
 * (owned; may be NULL if not wanted) and returns the exit status. */
int test_run_eft(const char *args, char **out, char **err);
/* Writes a text file (creating nothing else). */
void test_write_file(const char *path, const char *text);
/* Asserts |a-b| <= tol*max(1,|b|) with a message naming what differs. */
#define assert_close(a, b, tol) test_assert_close((double)(a), (double)(b), (tol), #a, __FILE__, __LINE__)
void test_assert_close(double a, double b, double tol, const char *what, const char *file, int line);
/* Asserts the string contains the substring, printing both when it does not. */
#define assert_contains(s, sub) test_assert_contains((s), (sub), __FILE__, __LINE__)
void test_assert_contains(const char *s, const char *sub, const char *file, int line);

#endif
