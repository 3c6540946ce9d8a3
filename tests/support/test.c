/* test.c: shared test helpers (see test.h). */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char *test_shared_or_skip(const char *rel) {
    char *p = eft_path_join(EFT_SHARED_DIR, rel);
    if (!eft_path_exists(p)) {
        print_message("skipped: %s is absent (the shared data folder is not beside the repo)\n", p);
        eft_free(p);
        skip();
    }
    return p;
}

char *test_tmpdir(const char *name) {
    char *dir = eft_asprintf("test-tmp/%s.%d", name, (int)getpid());
    eft_remove_tree(dir);
    assert_int_equal(eft_mkdirs(dir), 0);
    return dir;
}

void test_tmpdir_cleanup(char *dir) {
    eft_remove_tree(dir);
    eft_free(dir);
}

static char *slurp(const char *path) {
    char *s = eft_read_file(path, NULL);
    eft_err_clear();
    return s ? s : eft_strdup("");
}

int test_run_eft(const char *args, char **out, char **err) {
    char *o = eft_asprintf("test-tmp/out.%d", (int)getpid());
    char *e = eft_asprintf("test-tmp/err.%d", (int)getpid());
    eft_mkdirs("test-tmp");
    char *cmd = eft_asprintf("%s %s >%s 2>%s", EFT_BINARY, args, o, e);
    int status = system(cmd);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (out) *out = slurp(o);
    if (err) *err = slurp(e);
    unlink(o);
    unlink(e);
    eft_free(cmd);
    eft_free(o);
    eft_free(e);
    return code;
}

void test_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

void test_assert_close(double a, double b, double tol, const char *what, const char *file, int line) {
    double scale = fabs(b) > 1 ? fabs(b) : 1;
    if (!(fabs(a - b) <= tol * scale)) {
        print_error("%s:%d: %s = %.9g, expected %.9g (tolerance %g)\n", file, line, what, a, b, tol);
        _fail(file, line);
    }
}

void test_assert_contains(const char *s, const char *sub, const char *file, int line) {
    if (!s || !strstr(s, sub)) {
        print_error("%s:%d: expected to find \"%s\" in:\n%s\n", file, line, sub, s ? s : "(null)");
        _fail(file, line);
    }
}
