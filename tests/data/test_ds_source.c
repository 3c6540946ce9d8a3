/* test_ds_source.c: which rows a dataset entry yields: JSON Lines (blank lines, a BOM), JSON
 * lists and objects holding a list, folders split by datasets' naming rules, data_files globs,
 * split slices over several files, shards, and the errors: a malformed line (file:line:col), a
 * row that is not an object, an empty dataset, an unreadable file, Parquet and save_to_disk
 * folders, a missing split. Rows carry a field "i"; the tests read back the order of i. */
#include "data/ds_test.h"

#include "data/ds_source.h"

#include <stdlib.h>
#include <unistd.h>

static int setup(void **state) {
    *state = ds_fx_open("ds_source");
    return 0;
}

/* Opens the entry `{path: <dir>/<rel>, <entry>}` (of test_datasets when test) and writes the i
 * fields of its rows, comma-separated, into got. Returns 0 or -1 (error recorded). */
static int rows_of(ds_fx *f, const char *rel, const char *entry, bool test, char *got, size_t cap) {
    char *path = eft_path_join(f->dir, rel);
    char *yaml =
        eft_asprintf("datasets: [{path: %s, type: completion%s%s}]\n%s", path, *entry ? ", " : "",
                     entry, test ? "test_datasets: [{path: x}]\n" : "");
    if (test) { /* the test entry is the one under test: swap it in */
        eft_free(yaml);
        yaml = eft_asprintf("datasets: [{path: %s, type: completion}]\ntest_datasets: [{path: %s, "
                            "type: completion%s%s}]\n",
                            path, path, *entry ? ", " : "", entry);
    }
    eft_config c;
    got[0] = 0;
    int rc = ds_test_config_rc(&c, f->model, yaml);
    ds_source s;
    if (!rc) {
        const cfg_dataset *d = test ? &c.test_datasets.v[0] : &c.datasets.v[0];
        rc = ds_source_open(&s, d, test ? "test_datasets[0]" : "datasets[0]",
                            test ? "test" : "train", 7);
        ds_row row;
        int r;
        size_t k = 0;
        while (!rc && (r = ds_source_next(&s, &row)) != 0) {
            if (r < 0) {
                rc = -1;
                break;
            }
            const cJSON *i = cJSON_GetObjectItem(row.v, "i");
            k += (size_t)snprintf(got + k, cap - k, "%s%d", k ? "," : "",
                                  i ? (int)i->valuedouble : -1);
            cJSON_Delete(row.v);
        }
        ds_source_close(&s);
    }
    cfg_free(&c);
    eft_free(yaml);
    eft_free(path);
    return rc;
}

#define ROWS(rel, entry, want)                                                                     \
    do {                                                                                           \
        char got_[4096];                                                                           \
        if (rows_of(f, rel, entry, false, got_, sizeof got_)) fail_msg("%s", eft_err_msg());       \
        assert_string_equal(got_, want);                                                           \
    } while (0)

#define FAILS(rel, entry, msg)                                                                     \
    do {                                                                                           \
        char got_[4096];                                                                           \
        eft_err_clear();                                                                           \
        assert_int_equal(rows_of(f, rel, entry, false, got_, sizeof got_), -1);                    \
        assert_contains(eft_err_msg(), msg);                                                       \
    } while (0)

static void test_file_kinds(void **state) {
    ds_fx *f = *state;
    eft_free(
        ds_test_file(f->dir, "a.jsonl", "\xEF\xBB\xBF{\"i\": 0}\n\n  \n{\"i\": 1}\r\n{\"i\": 2}"));
    ROWS("a.jsonl", "", "0,1,2");
    eft_free(ds_test_file(f->dir, "b.json", "[{\"i\": 3}, {\"i\": 4}]"));
    ROWS("b.json", "", "3,4");
    eft_free(ds_test_file(f->dir, "c.json", "{\"data\": [\n {\"i\": 5},\n {\"i\": 6}\n]}\n"));
    ROWS("c.json", "", "5,6");
    eft_free(ds_test_file(f->dir, "d.json", "[\"x\", \"y\"]")); /* strings read as {"text"} */
    ROWS("d.json", "", "-1,-1");
    eft_free(ds_test_file(f->dir, "e.json", "{\"i\": 7}\n{\"i\": 8}\n")); /* .json holding lines */
    ROWS("e.json", "", "7,8");
}

static void test_slices_and_shards(void **state) {
    ds_fx *f = *state;
    char text[512] = "";
    for (int i = 0; i < 10; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "{\"i\": %d}\n", i);
    eft_free(ds_test_file(f->dir, "ten/part1.jsonl", text));
    eft_free(ds_test_file(f->dir, "ten/part2.jsonl", "{\"i\": 10}\n{\"i\": 11}\n"));
    ROWS("ten", "", "0,1,2,3,4,5,6,7,8,9,10,11");   /* sorted file order, no split names: train */
    ROWS("ten", "split: \"train[:25%]\"", "0,1,2"); /* 3.0 */
    ROWS("ten", "split: \"train[-2:]\"", "10,11");  /* across the file boundary */
    ROWS("ten", "split: \"train[9:11]\"", "9,10");
    ROWS("ten", "split: \"train[:2]+train[-1:]\"", "0,1,11");
    /* shards: a contiguous shard of a seeded permutation; the shards cover every row once */
    char got[3][256];
    int seen[12] = {0};
    for (int k = 0; k < 3; k++) {
        char entry[64];
        snprintf(entry, sizeof entry, "shards: 3, shards_idx: %d", k);
        if (rows_of(f, "ten", entry, false, got[k], sizeof got[k])) fail_msg("%s", eft_err_msg());
        int n = 0;
        for (char *p = got[k]; *p; p++)
            if (*p == ',') n++;
        assert_int_equal(n + 1, 4);
        for (char *p = got[k]; *p;) {
            seen[strtol(p, &p, 10)]++;
            if (*p == ',') p++;
        }
    }
    for (int i = 0; i < 12; i++) assert_int_equal(seen[i], 1);
    assert_string_not_equal(got[0], "0,1,2,3"); /* permuted before sharding */
    FAILS("ten", "split: \"train[12:]\"", "keeps no row of the 12");
    FAILS("ten", "split: \"test\"", "no split \"test\" in the data (it has: train)");
    FAILS("ten", "split: \"train[:10%]+test[:1]\"", "joins different splits");
}

static void test_folder_splits(void **state) {
    ds_fx *f = *state;
    eft_free(ds_test_file(f->dir, "named/train.jsonl", "{\"i\": 1}\n"));
    eft_free(ds_test_file(f->dir, "named/my_test-0.jsonl", "{\"i\": 2}\n"));
    eft_free(ds_test_file(f->dir, "named/valid.json", "[{\"i\": 3}]"));
    eft_free(ds_test_file(f->dir, "named/README.md", "not data\n"));
    eft_free(ds_test_file(f->dir, "named/.hidden.jsonl", "{\"i\": 99}\n"));
    ROWS("named", "", "1");
    ROWS("named", "split: validation", "3");
    char got[64];
    if (rows_of(f, "named", "", true, got, sizeof got)) fail_msg("%s", eft_err_msg());
    assert_string_equal(got, "2"); /* test_datasets read the test split by default */
    /* split names in folder names win over file names */
    eft_free(ds_test_file(f->dir, "dirs/train/a_test.jsonl", "{\"i\": 4}\n"));
    eft_free(ds_test_file(f->dir, "dirs/eval/b.jsonl", "{\"i\": 5}\n"));
    ROWS("dirs", "", "4");
    ROWS("dirs", "split: test", "5");
    /* the Hub's sharded layout (parquet elsewhere in the folder is not this split's) */
    eft_free(ds_test_file(f->dir, "hub/data/train-00000-of-00002.jsonl", "{\"i\": 6}\n"));
    eft_free(ds_test_file(f->dir, "hub/data/train-00001-of-00002.jsonl", "{\"i\": 7}\n"));
    eft_free(ds_test_file(f->dir, "hub/data/test-00000-of-00001.parquet", "PAR1"));
    ROWS("hub", "", "6,7");
    FAILS("hub", "split: test", "Parquet files are not supported yet");
    /* data_files: inside the folder, globs allowed, all in "train" */
    ROWS("ten", "data_files: [\"part2.jsonl\", \"part1*\"]", "10,11,0,1,2,3,4,5,6,7,8,9");
    FAILS("ten", "data_files: nothing.jsonl", "data_files: \"nothing.jsonl\" matches no file");
}

static void test_errors(void **state) {
    ds_fx *f = *state;
    eft_free(ds_test_file(f->dir, "bad.jsonl", "{\"i\": 0}\n\n{\"i\": 1,, }\n"));
    FAILS("bad.jsonl", "", "bad.jsonl:3:10: invalid JSON on this line");
    eft_free(ds_test_file(f->dir, "arr.jsonl", "{\"i\": 0}\n[1, 2]\n"));
    FAILS("arr.jsonl", "", "arr.jsonl:2: expected a JSON object");
    eft_free(ds_test_file(f->dir, "empty.jsonl", "\n\n"));
    FAILS("empty.jsonl", "", "no rows: the data is empty");
    eft_free(ds_test_file(f->dir, "nul.jsonl", "{\"text\": \"a\\u0000b\"}\n"));
    FAILS("nul.jsonl", "", "nul.jsonl:1: the line holds the character U+0000");
    eft_free(ds_test_file(f->dir, "obj.json", "{\"a\": 1,\n \"b\": 2}\n"));
    FAILS("obj.json", "", "obj.json: expected JSON Lines (one object a line), a list of row");
    eft_free(ds_test_file(f->dir, "list.json", "[{\"i\": 1},\n {\"i\": ]\n"));
    FAILS("list.json", "", "list.json:2:");
    eft_free(ds_test_file(f->dir, "data.parquet", "PAR1"));
    FAILS("data.parquet", "", "data.parquet: Parquet files are not supported yet: convert");
    eft_free(ds_test_file(f->dir, "saved/state.json", "{}"));
    eft_free(ds_test_file(f->dir, "saved/data-00000-of-00001.arrow", "x"));
    FAILS("saved", "", "save_to_disk (Arrow) is not supported yet");
    eft_free(ds_test_file(f->dir, "nodata/README.md", "x"));
    FAILS("nodata", "", "the folder holds no data file");
    /* an unreadable file: a link to nothing */
    eft_free(ds_test_file(f->dir, "broken/a.jsonl", "{\"i\": 1}\n"));
    char *link = eft_path_join(f->dir, "broken/b.jsonl");
    assert_int_equal(symlink("/nonexistent/eft-test", link), 0);
    FAILS("broken", "", "datasets[0]");
    assert_contains(eft_err_msg(), "b.jsonl: No such file or directory");
    eft_free(link);
    FAILS("a.jsonl.missing", "", "no such file or folder"); /* cfg_resolve_paths says it */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_kinds),
        cmocka_unit_test(test_slices_and_shards),
        cmocka_unit_test(test_folder_splits),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, ds_fx_teardown);
}
