/* st_index.c: sharded checkpoints: model.safetensors.index.json and the shards it names.
 *
 * The index is trusted no more than the shards: its weight_map must be an object of plain file
 * names (no folders, so an index cannot point outside its own folder), and it must agree exactly
 * with what the shards hold. The index's "metadata" ({"total_size": ...}) is not read.
 */
#include "io/st_internal.h"

#include "base/err.h"
#include "io/json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool plain_file_name(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* The folder of a path ("." when it has none), owned by the caller. */
static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return eft_strdup(".");
    return eft_strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/* Every entry of the weight_map is in the shard it names, and every shard tensor is in the map.
 * shard_names[s] is the file name of shard s. */
static int check_agreement(const st_archive *a, const char *index_path, const char **names,
                           const char **shards, size_t n, const char **shard_names) {
    bool *listed = eft_calloc(a->n_tensors, sizeof *listed);
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        const st_tensor *t = st_find(a, names[i]);
        if (!t)
            r = eft_fail("%s: tensor \"%.200s\" is listed for %s, which does not hold it. The "
                         "checkpoint is incomplete; download it again.",
                         index_path, names[i], shards[i]);
        else if (strcmp(shard_names[t->shard], shards[i]) != 0)
            r = eft_fail("%s: tensor \"%.200s\" is listed for %s but is in %s. The checkpoint is "
                         "inconsistent; download it again.",
                         index_path, names[i], shards[i], shard_names[t->shard]);
        else
            listed[t - a->tensors] = true;
    }
    for (size_t i = 0; i < a->n_tensors && r == 0; i++)
        if (!listed[i])
            r = eft_fail("%s: tensor \"%.200s\" of %s is not in the weight_map. The checkpoint is "
                         "inconsistent; download it again.",
                         index_path, a->tensors[i].name, a->tensors[i].file);
    eft_free(listed);
    return r;
}

/* Maps and parses each distinct shard (sorted by name), then checks them against the map. */
static int open_shards(st_archive *a, const char *index_path, const char **names,
                       const char **shards, size_t n) {
    const char **uniq = eft_malloc(n * sizeof *uniq);
    memcpy(uniq, shards, n * sizeof *uniq);
    qsort(uniq, n, sizeof *uniq, st_cmp_str);
    size_t n_uniq = 0;
    for (size_t i = 0; i < n; i++)
        if (n_uniq == 0 || strcmp(uniq[n_uniq - 1], uniq[i]) != 0) uniq[n_uniq++] = uniq[i];
    char *dir = folder_of(index_path);
    int r = 0;
    for (size_t s = 0; s < n_uniq && r == 0; s++) {
        char *path = eft_path_join(dir, uniq[s]);
        int shard = st_archive_add_shard(a, path);
        eft_free(path);
        st_shard *sh = &a->shards[shard];
        r = eft_map_file(&sh->map, sh->path);
        if (r != 0)
            eft_err_context("%s: shard %s", index_path, uniq[s]);
        else
            r = st_parse_header(a, shard, sh->map.data, sh->map.size);
    }
    if (r == 0) r = st_archive_finish(a);
    if (r == 0) r = check_agreement(a, index_path, names, shards, n, uniq);
    eft_free(dir);
    eft_free(uniq);
    return r;
}

int st_open_index(st_archive *a, const char *index_path) {
    eft_free(a->path); /* messages about the whole checkpoint name the index */
    a->path = eft_strdup(index_path);
    cJSON *root = eft_json_parse_file(index_path);
    if (!root) return -1;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int r = 0;
    if (!cJSON_IsObject(root) || !cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return eft_fail("%s: expected {\"weight_map\": {tensor: shard file}}, the index of a "
                        "sharded safetensors checkpoint.",
                        index_path);
    }
    size_t n = (size_t)cJSON_GetArraySize(map), i = 0;
    const char **names = eft_malloc(n * sizeof *names), **shards = eft_malloc(n * sizeof *shards);
    for (const cJSON *e = map->child; e && r == 0; e = e->next, i++) {
        names[i] = e->string;
        shards[i] = cJSON_IsString(e) ? e->valuestring : NULL;
        if (!shards[i] || !plain_file_name(shards[i]))
            r = eft_fail("%s: weight_map: tensor \"%.200s\" must name a shard file beside the "
                         "index, found %s%.200s%s.",
                         index_path, e->string, shards[i] ? "\"" : "",
                         shards[i] ? shards[i] : "something else", shards[i] ? "\"" : "");
    }
    if (r == 0 && n == 0)
        r = eft_fail("%s: the weight_map is empty. The checkpoint is incomplete.", index_path);
    long dup = r == 0 ? st_find_duplicate(names, n) : -1;
    if (dup >= 0)
        r = eft_fail("%s: weight_map: tensor \"%.200s\" appears twice. The index is corrupt.",
                     index_path, names[dup]);
    if (r == 0) r = open_shards(a, index_path, names, shards, n);
    eft_free(names);
    eft_free(shards);
    cJSON_Delete(root);
    return r;
}
