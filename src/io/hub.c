/* hub.c: local paths and the Hugging Face cache (see hub.h). */
#include "io/hub.h"

#include "base/err.h"
#include "base/fs.h"

#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

char *hub_cache_dir(void) {
    const char *v = env("HF_HUB_CACHE");
    if (!v) v = env("HUGGINGFACE_HUB_CACHE"); /* older name, still read by huggingface_hub */
    if (v) return eft_expand_user(v);
    char *home;
    if ((v = env("HF_HOME"))) {
        home = eft_expand_user(v);
    } else {
        const char *xdg = env("XDG_CACHE_HOME");
        char *base = xdg ? eft_expand_user(xdg) : eft_expand_user("~/.cache");
        home = eft_path_join(base, "huggingface");
        eft_free(base);
    }
    char *hub = eft_path_join(home, "hub");
    eft_free(home);
    return hub;
}

static bool word_char(char ch) {
    return isalnum((unsigned char)ch) || ch == '_';
}

/* One part of a repo id, by huggingface_hub's rules: [A-Za-z0-9_.-]{1,96}, no "--" or "..",
 * and a word character at both ends. */
static bool id_part_ok(const char *s, size_t n) {
    if (n == 0 || n > 96) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!word_char(ch) && ch != '-' && ch != '.') return false;
        if (i && (ch == '-' || ch == '.') && s[i - 1] == ch) return false;
    }
    return word_char(s[0]) && word_char(s[n - 1]);
}

bool hub_is_repo_id(const char *id) {
    const char *slash = strchr(id, '/');
    if (!slash) return id_part_ok(id, strlen(id));
    if (strchr(slash + 1, '/')) return false;
    return id_part_ok(id, (size_t)(slash - id)) && id_part_ok(slash + 1, strlen(slash + 1));
}

static bool is_commit(const char *rev) {
    if (strlen(rev) != 40) return false;
    for (const char *p = rev; *p; p++)
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p)) return false;
    return true;
}

/* The only folder under snapshots/, or NULL when there are none or several (owned). */
static char *only_snapshot(const char *snaps) {
    DIR *d = opendir(snaps);
    if (!d) return NULL;
    char *one = NULL;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n++ == 0) one = eft_strdup(e->d_name);
    }
    closedir(d);
    if (n == 1) return one;
    eft_free(one);
    return NULL;
}

/* The snapshot folder of repo folder `repo` at `rev`, or NULL with *why set (owned strings). */
static char *find_snapshot(const char *repo, const char *rev, char **why) {
    char *snaps = eft_path_join(repo, "snapshots");
    char *commit = NULL;
    if (rev && is_commit(rev)) {
        commit = eft_strdup(rev);
    } else {
        char *refs = eft_path_join(repo, "refs");
        char *ref = eft_path_join(refs, rev ? rev : "main");
        eft_free(refs);
        if (eft_is_file(ref)) {
            commit = eft_read_file(ref, NULL);
            if (commit) commit[strcspn(commit, " \t\r\n")] = 0;
        } else if (!rev) {
            /* No refs/main, but one snapshot: the copy is unambiguous (a download by commit). */
            commit = only_snapshot(snaps);
        }
        eft_err_clear();
        if (!commit) *why = eft_asprintf("the repository is in the cache but %s is missing", ref);
        eft_free(ref);
    }
    char *path = NULL;
    if (commit) {
        path = eft_path_join(snaps, commit);
        if (!eft_is_dir(path)) {
            *why =
                eft_asprintf("the repository is in the cache but its snapshot %s is missing", path);
            eft_free(path);
            path = NULL;
        }
    }
    eft_free(commit);
    eft_free(snaps);
    return path;
}

char *hub_resolve(hub_kind kind, const char *name, const char *revision, const char *key,
                  const char *where) {
    char *local = eft_expand_user(name);
    if (eft_path_exists(local)) return local;
    bool ds = kind == HUB_DATASET;
    const char *what = ds ? "dataset" : "model";
    if (strstr(name, "://")) {
        eft_free(local);
        eft_fail("%s: %s: \"%s\" is a remote location, which is not supported yet by eft. "
                 "Download the %s and set %s to the local copy.",
                 where, key, name, what, key);
        return NULL;
    }
    if (!hub_is_repo_id(name)) {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, ".");
        eft_fail("%s: %s: no such file or folder: %s (relative paths are read from the current "
                 "folder, %s). Check the path.",
                 where, key, local, cwd);
        eft_free(local);
        return NULL;
    }
    char *cache = hub_cache_dir();
    /* "org/name" -> "models--org--name" */
    const char *slash = strchr(name, '/');
    char *folder = slash ? eft_asprintf("%s--%.*s--%s", ds ? "datasets" : "models",
                                        (int)(slash - name), name, slash + 1)
                         : eft_asprintf("%s--%s", ds ? "datasets" : "models", name);
    char *repo = eft_path_join(cache, folder);
    char *why = NULL, *snap = eft_is_dir(repo) ? find_snapshot(repo, revision, &why) : NULL;
    if (!snap) {
        char *rev = revision && strcmp(revision, "main") ? eft_asprintf(" --revision %s", revision)
                                                         : eft_strdup("");
        eft_fail("%s: %s: \"%s\" is not a local file or folder, and the %s is not in the Hugging "
                 "Face cache (%s%s). Fetch it with `huggingface-cli download %s%s%s`, or set %s "
                 "to the %s of a local copy.",
                 where, key, name, what, why ? why : "looked in ", why ? "" : repo, name,
                 ds ? " --repo-type dataset" : "", rev, key, ds ? "file or folder" : "folder");
        eft_free(rev);
    }
    eft_free(why);
    eft_free(repo);
    eft_free(folder);
    eft_free(cache);
    eft_free(local);
    return snap;
}
