/* g4_desc.c: config.json + plan + tensor list in one step (see g4_desc.h). */
#include "model/g4_desc.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/json.h"

#include <string.h>

static void build(g4_desc *d) {
    g4_plan_build(&d->plan, &d->cfg);
    g4_tensors_build(&d->plan, &d->ts);
}

int g4_desc_load(g4_desc *d, const char *path) {
    memset(d, 0, sizeof *d);
    char *file = eft_is_dir(path) ? eft_path_join(path, "config.json") : eft_strdup(path);
    int rc = g4_config_load(&d->cfg, file);
    eft_free(file);
    if (rc) return -1;
    build(d);
    return 0;
}

int g4_desc_parse(g4_desc *d, const char *json, const char *name) {
    memset(d, 0, sizeof *d);
    cJSON *root = eft_json_parse(json, strlen(json), name);
    if (!root) return -1;
    int rc = g4_config_parse(&d->cfg, root, name);
    cJSON_Delete(root);
    if (rc) return -1;
    build(d);
    return 0;
}

void g4_desc_free(g4_desc *d) {
    if (!d->plan.layers) return;
    g4_tensors_free(&d->ts);
    g4_plan_free(&d->plan);
    g4_config_free(&d->cfg);
    memset(d, 0, sizeof *d);
}
