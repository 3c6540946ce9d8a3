/* test_hub.c: finding models and datasets: the cache folder from the environment, a fake
 * Hugging Face cache built in a temporary folder (refs/main, revisions, commits), local paths
 * winning, and the error that says how to fetch what is missing. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/config.h"
#include "io/hub.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAIN_SHA "0123456789abcdef0123456789abcdef01234567"
#define DEV_SHA  "89abcdef0123456789abcdef0123456789abcdef"

/* The environment variables hub_cache_dir reads, cleared for each test and restored after. */
static const char *env_names[] = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME",
                                  "XDG_CACHE_HOME", "HOME"};
static char *saved_env[5];

static int save_env(void **state) {
    for (int i = 0; i < 5; i++) {
        const char *v = getenv(env_names[i]);
        saved_env[i] = v ? eft_strdup(v) : NULL;
        if (i < 4) unsetenv(env_names[i]);
    }
    return 0;
}

static int restore_env(void **state) {
    for (int i = 0; i < 5; i++) {
        if (saved_env[i])
            setenv(env_names[i], saved_env[i], 1);
        else
            unsetenv(env_names[i]);
        eft_free(saved_env[i]);
        saved_env[i] = NULL;
    }
    return 0;
}

/* dir/rel, created with its parents, holding text when given (a file) or nothing (a folder). */
static char *make(const char *dir, const char *rel, const char *text) {
    char *p = eft_path_join(dir, rel);
    if (text) {
        char *parent = eft_strdup(p);
        *strrchr(parent, '/') = 0;
        assert_int_equal(eft_mkdirs(parent), 0);
        eft_free(parent);
        test_write_file(p, text);
    } else {
        assert_int_equal(eft_mkdirs(p), 0);
    }
    return p;
}

/* A cache with google/gemma-4-31B at main and dev, and one dataset. Returns the cache folder. */
static char *fake_cache(const char *tmp) {
    char *hub = eft_path_join(tmp, "hub");
    const char *files[][2] = {
        {"models--google--gemma-4-31B/refs/main", MAIN_SHA "\n"},
        {"models--google--gemma-4-31B/refs/dev", DEV_SHA},
        {"models--google--gemma-4-31B/snapshots/" MAIN_SHA "/config.json", "{}"},
        {"models--google--gemma-4-31B/snapshots/" DEV_SHA "/config.json", "{}"},
        {"datasets--mlabonne--FineTome-100k/refs/main", MAIN_SHA},
        {"datasets--mlabonne--FineTome-100k/snapshots/" MAIN_SHA "/data/train.parquet", "x"},
    };
    for (size_t i = 0; i < EFT_ARRAY_LEN(files); i++) eft_free(make(hub, files[i][0], files[i][1]));
    return hub;
}

static void test_cache_dir_from_env(void **state) {
    setenv("HOME", "/home/someone", 1);
    char *d = hub_cache_dir();
    assert_string_equal(d, "/home/someone/.cache/huggingface/hub");
    eft_free(d);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    d = hub_cache_dir();
    assert_string_equal(d, "/xdg/huggingface/hub");
    eft_free(d);
    setenv("HF_HOME", "~/hf", 1);
    d = hub_cache_dir();
    assert_string_equal(d, "/home/someone/hf/hub");
    eft_free(d);
    setenv("HUGGINGFACE_HUB_CACHE", "/old", 1);
    d = hub_cache_dir();
    assert_string_equal(d, "/old");
    eft_free(d);
    setenv("HF_HUB_CACHE", "/cache/hub", 1);
    d = hub_cache_dir();
    assert_string_equal(d, "/cache/hub");
    eft_free(d);
}

static void test_repo_ids(void **state) {
    const char *good[] = {"google/gemma-4-31B", "gpt2", "mlabonne/FineTome-100k", "a_b/c.d"};
    const char *bad[] = {"a/b/c", "./data.jsonl", "/abs/path", "a--b/c",  "org/na..me",
                         "org/",  "/name",        "org/name.", "~/model", "data.jsonl "};
    for (size_t i = 0; i < EFT_ARRAY_LEN(good); i++)
        if (!hub_is_repo_id(good[i])) fail_msg("%s should be a repo id", good[i]);
    for (size_t i = 0; i < EFT_ARRAY_LEN(bad); i++)
        if (hub_is_repo_id(bad[i])) fail_msg("%s should not be a repo id", bad[i]);
}

static void test_resolve_from_cache(void **state) {
    char *tmp = test_tmpdir("hub");
    char *hub = fake_cache(tmp);
    setenv("HF_HUB_CACHE", hub, 1);
    char *want_main = eft_asprintf("%s/models--google--gemma-4-31B/snapshots/" MAIN_SHA, hub);
    char *want_dev = eft_asprintf("%s/models--google--gemma-4-31B/snapshots/" DEV_SHA, hub);

    char *p = hub_resolve(HUB_MODEL, "google/gemma-4-31B", NULL, "base_model", "c.yaml:1:13");
    assert_non_null(p);
    assert_string_equal(p, want_main);
    eft_free(p);
    p = hub_resolve(HUB_MODEL, "google/gemma-4-31B", "dev", "base_model", "c.yaml:1:13");
    assert_string_equal(p, want_dev);
    eft_free(p);
    p = hub_resolve(HUB_MODEL, "google/gemma-4-31B", DEV_SHA, "base_model", "c.yaml:1:13");
    assert_string_equal(p, want_dev);
    eft_free(p);
    p = hub_resolve(HUB_DATASET, "mlabonne/FineTome-100k", NULL, "datasets[0].path", "c.yaml:3:11");
    assert_non_null(p);
    assert_contains(p, "/datasets--mlabonne--FineTome-100k/snapshots/" MAIN_SHA);
    eft_free(p);

    /* A branch that was never downloaded. */
    assert_null(hub_resolve(HUB_MODEL, "google/gemma-4-31B", "v2", "base_model", "c.yaml:1:13"));
    assert_contains(eft_err_msg(), "refs/v2 is missing");
    assert_contains(eft_err_msg(), "huggingface-cli download google/gemma-4-31B --revision v2");

    /* The same id as a model is not the dataset. */
    assert_null(
        hub_resolve(HUB_MODEL, "mlabonne/FineTome-100k", NULL, "base_model", "c.yaml:1:13"));

    eft_free(want_main);
    eft_free(want_dev);
    eft_free(hub);
    test_tmpdir_cleanup(tmp);
    eft_err_clear();
}

static void test_missing_messages(void **state) {
    char *tmp = test_tmpdir("hub-missing");
    char *hub = fake_cache(tmp);
    setenv("HF_HUB_CACHE", hub, 1);
    eft_err_clear();
    assert_null(hub_resolve(HUB_MODEL, "google/gemma-4-E4B", NULL, "base_model", "c.yaml:1:13"));
    char *want = eft_asprintf("c.yaml:1:13: base_model: \"google/gemma-4-E4B\" is not a local file "
                              "or folder, and the model is not in the Hugging Face cache (looked "
                              "in %s/models--google--gemma-4-E4B). Fetch it with `huggingface-cli "
                              "download google/gemma-4-E4B`, or set base_model to the folder of a "
                              "local copy.",
                              hub);
    assert_string_equal(eft_err_msg(), want);
    eft_free(want);

    assert_null(hub_resolve(HUB_DATASET, "someone/chats", NULL, "datasets[0].path", "c.yaml:3:11"));
    assert_contains(eft_err_msg(), "datasets[0].path: \"someone/chats\" is not a local file or "
                                   "folder, and the dataset is not in the Hugging Face cache");
    assert_contains(eft_err_msg(),
                    "`huggingface-cli download someone/chats --repo-type dataset`, "
                    "or set datasets[0].path to the file or folder of a local copy.");

    assert_null(
        hub_resolve(HUB_DATASET, "data/sub/train.jsonl", NULL, "datasets[0].path", "c.yaml:3:11"));
    assert_contains(eft_err_msg(), "c.yaml:3:11: datasets[0].path: no such file or folder: "
                                   "data/sub/train.jsonl (relative paths are read from the current "
                                   "folder");
    assert_null(hub_resolve(HUB_DATASET, "s3://bucket/train.jsonl", NULL, "datasets[0].path", "x"));
    assert_contains(eft_err_msg(), "is a remote location, which is not supported yet by eft");

    /* refs/main gone: one snapshot is still unambiguous; two are not. */
    char *refs = eft_path_join(hub, "models--google--gemma-4-31B/refs");
    assert_int_equal(eft_remove_tree(refs), 0);
    assert_null(hub_resolve(HUB_MODEL, "google/gemma-4-31B", NULL, "base_model", "c.yaml:1:13"));
    assert_contains(eft_err_msg(), "the repository is in the cache but ");
    assert_contains(eft_err_msg(), "refs/main is missing");
    char *dev = eft_path_join(hub, "models--google--gemma-4-31B/snapshots/" DEV_SHA);
    assert_int_equal(eft_remove_tree(dev), 0);
    char *p = hub_resolve(HUB_MODEL, "google/gemma-4-31B", NULL, "base_model", "c.yaml:1:13");
    assert_non_null(p);
    assert_contains(p, MAIN_SHA);
    eft_free(p);
    /* A ref whose snapshot is gone. */
    char *ds_snap = eft_path_join(hub, "datasets--mlabonne--FineTome-100k/snapshots/" MAIN_SHA);
    assert_int_equal(eft_remove_tree(ds_snap), 0);
    assert_null(hub_resolve(HUB_DATASET, "mlabonne/FineTome-100k", NULL, "datasets[0].path", "x"));
    assert_contains(eft_err_msg(), "its snapshot");
    assert_contains(eft_err_msg(), "is missing");

    eft_free(ds_snap);
    eft_free(dev);
    eft_free(refs);
    eft_free(hub);
    test_tmpdir_cleanup(tmp);
    eft_err_clear();
}

static void test_local_paths_win(void **state) {
    char *tmp = test_tmpdir("hub-local");
    char *hub = fake_cache(tmp);
    setenv("HF_HUB_CACHE", hub, 1);
    /* A local folder spelled like a Hub id that is also in the cache: the local one wins. */
    char *abs_hub = realpath(hub, NULL), cwd[4096];
    setenv("HF_HUB_CACHE", abs_hub, 1);
    char *local = make(tmp, "google/gemma-4-31B", NULL);
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tmp), 0);
    char *p = hub_resolve(HUB_MODEL, "google/gemma-4-31B", NULL, "base_model", "c.yaml:1:13");
    assert_int_equal(chdir(cwd), 0);
    assert_string_equal(p, "google/gemma-4-31B");
    eft_free(p);
    free(abs_hub);
    /* ~ is the home folder. */
    setenv("HOME", tmp, 1);
    char *file = make(tmp, "data/train.jsonl", "{}\n");
    p = hub_resolve(HUB_DATASET, "~/data/train.jsonl", NULL, "datasets[0].path", "x");
    assert_string_equal(p, file);
    eft_free(p);
    eft_free(file);
    eft_free(local);
    eft_free(hub);
    test_tmpdir_cleanup(tmp);
}

/* cfg_resolve_paths on a whole config: base_model from the cache, a local dataset, and the
 * tokenizer following base_model. */
static void test_config_paths(void **state) {
    char *tmp = test_tmpdir("hub-config");
    char *hub = fake_cache(tmp);
    setenv("HF_HUB_CACHE", hub, 1);
    char *data = make(tmp, "train.jsonl", "{}\n");
    char *text = eft_asprintf("base_model: google/gemma-4-31B\nlearning_rate: 1e-4\n"
                              "datasets:\n  - path: %s\n    type: completion\n"
                              "  - path: mlabonne/FineTome-100k\n",
                              data);
    eft_config c;
    assert_int_equal(cfg_load_string(&c, text, "c.yaml"), 0);
    if (cfg_resolve_paths(&c)) fail_msg("%s", eft_err_msg());
    assert_contains(c.base_model_path, "models--google--gemma-4-31B/snapshots/" MAIN_SHA);
    assert_string_equal(c.tokenizer_path, c.base_model_path);
    assert_string_equal(c.model_config_path, c.base_model_path);
    assert_string_equal(c.datasets.v[0].local_path, data);
    assert_contains(c.datasets.v[1].local_path, "datasets--mlabonne--FineTome-100k");
    /* The dev revision applies to base_model. */
    assert_int_equal(cfg_apply_override(&c, "revision_of_model", "dev"), 0);
    assert_int_equal(cfg_resolve_paths(&c), 0);
    assert_contains(c.base_model_path, DEV_SHA);
    cfg_free(&c);
    eft_free(text);

    assert_int_equal(cfg_load_string(&c, "base_model: google/gemma-4-E2B\n", "c.yaml"), 0);
    assert_int_equal(cfg_resolve_paths(&c), -1);
    assert_contains(eft_err_msg(),
                    "c.yaml:1:13: base_model: \"google/gemma-4-E2B\" is not a local");
    cfg_free(&c);

    eft_free(data);
    eft_free(hub);
    test_tmpdir_cleanup(tmp);
    eft_err_clear();
}

int main(void) {
    eft_log_set_level(EFT_LOG_QUIET);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_dir_from_env, save_env, restore_env),
        cmocka_unit_test(test_repo_ids),
        cmocka_unit_test_setup_teardown(test_resolve_from_cache, save_env, restore_env),
        cmocka_unit_test_setup_teardown(test_missing_messages, save_env, restore_env),
        cmocka_unit_test_setup_teardown(test_local_paths_win, save_env, restore_env),
        cmocka_unit_test_setup_teardown(test_config_paths, save_env, restore_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
