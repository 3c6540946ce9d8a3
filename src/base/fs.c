/* fs.c: mapped files, atomic writes and paths (see fs.h). */
#include "base/fs.h"

#include "base/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int eft_map_file(eft_mapped *m, const char *path) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return eft_fail_errno(path, "Check the path.");
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return eft_fail_errno(path, NULL);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return eft_fail("%s: is a folder, expected a file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return eft_fail_errno(path, "The file could not be mapped into memory.");
        }
        m->data = p;
        m->size = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void eft_unmap(eft_mapped *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

char *eft_read_file(const char *path, size_t *size_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        eft_fail_errno(path, "Check the path.");
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = eft_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = eft_realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        eft_free(buf);
        eft_fail("%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (size_out) *size_out = n;
    return buf;
}

int eft_atomic_open(eft_atomic *a, const char *path) {
    a->path = eft_strdup(path);
    a->tmp = eft_asprintf("%s.tmp.%d", path, (int)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int r = eft_fail_errno(a->tmp, "Check that the folder exists and is writable.");
        eft_free(a->path);
        eft_free(a->tmp);
        a->path = a->tmp = NULL;
        return r;
    }
    return 0;
}

int eft_atomic_commit(eft_atomic *a) {
    int bad = fflush(a->f) != 0 || ferror(a->f);
    if (!bad) bad = fsync(fileno(a->f)) != 0 && errno != EINVAL;
    bad |= fclose(a->f) != 0;
    a->f = NULL;
    int r = 0;
    if (bad) {
        r = eft_fail_errno(a->tmp, "Writing failed (is the disk full?).");
        unlink(a->tmp);
    } else if (rename(a->tmp, a->path) != 0) {
        r = eft_fail_errno(a->path, "Could not move the finished file into place.");
        unlink(a->tmp);
    }
    eft_free(a->path);
    eft_free(a->tmp);
    a->path = a->tmp = NULL;
    return r;
}

void eft_atomic_abort(eft_atomic *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    eft_free(a->path);
    eft_free(a->tmp);
    memset(a, 0, sizeof *a);
}

int eft_write_file_atomic(const char *path, const void *data, size_t n) {
    eft_atomic a;
    if (eft_atomic_open(&a, path) != 0) return -1;
    if (n && fwrite(data, 1, n, a.f) != n) {
        int r = eft_fail_errno(a.tmp, "Writing failed (is the disk full?).");
        eft_atomic_abort(&a);
        return r;
    }
    return eft_atomic_commit(&a);
}

bool eft_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool eft_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool eft_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *eft_path_join(const char *a, const char *b) {
    size_t la = strlen(a);
    if (la == 0) return eft_strdup(b);
    return eft_asprintf("%s%s%s", a, a[la - 1] == '/' ? "" : "/", b);
}

int eft_mkdirs(const char *path) {
    char *p = eft_strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int r = eft_fail_errno(p, "Could not create the folder.");
            eft_free(p);
            return r;
        }
        *s = '/';
    }
    int r = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) r = eft_fail_errno(p, "Could not create the folder.");
    else if (!eft_is_dir(p)) r = eft_fail("%s: exists and is not a folder", p);
    eft_free(p);
    return r;
}

int eft_remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT) return 0;
        if (errno == ENOTDIR) return unlink(path) == 0 ? 0 : eft_fail_errno(path, NULL);
        return eft_fail_errno(path, NULL);
    }
    struct dirent *e;
    int r = 0;
    while (r == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *child = eft_path_join(path, e->d_name);
        if (eft_is_dir(child)) r = eft_remove_tree(child);
        else if (unlink(child) != 0) r = eft_fail_errno(child, NULL);
        eft_free(child);
    }
    closedir(d);
    if (r == 0 && rmdir(path) != 0) r = eft_fail_errno(path, NULL);
    return r;
}

char *eft_expand_user(const char *path) {
    const char *home = getenv("HOME");
    if (path[0] == '~' && path[1] == '/' && home) return eft_asprintf("%s%s", home, path + 1);
    return eft_strdup(path);
}
