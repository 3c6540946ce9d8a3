/* bare_model.c: see bare_model.h. */
#include "support/bare_model.h"

#include "support/test.h"
#include "support/variant.h"

#include "base/err.h"
#include "model/g4_init.h"
#include "peft/lora_target.h"

#include <string.h>

static void bind(bare_model *m) {
    m->w.plan = &m->d.plan;
    m->w.ts = &m->d.ts;
    m->w.params = eft_calloc((size_t)m->d.ts.n, sizeof *m->w.params);
    for (int i = 0; i < m->d.ts.n; i++) m->w.params[i].t = &m->d.ts.t[i];
    m->sel = eft_calloc((size_t)m->d.ts.n, sizeof *m->sel);
}

void bare_model_variant(bare_model *m, const char *variant) {
    memset(m, 0, sizeof *m);
    variant_load(&m->d, variant);
    bind(m);
}

void bare_model_preset(bare_model *m, const char *preset, bool text_only) {
    memset(m, 0, sizeof *m);
    char *json = g4_preset_config_json(g4_preset_find(preset), text_only, 0);
    if (g4_desc_parse(&m->d, json, "config.json")) fail_msg("%s", eft_err_msg());
    eft_free(json);
    bind(m);
}

void bare_model_free(bare_model *m) {
    eft_free(m->sel);
    eft_free(m->w.params);
    g4_desc_free(&m->d);
}

int bare_model_select(bare_model *m, const char *regex) {
    int n = 0;
    for (int i = 0; i < m->d.ts.n; i++) {
        const char *path = m->d.ts.t[i].module;
        m->sel[i] = path[0] && lora_match_regex(regex, path) == 1;
        n += m->sel[i];
    }
    return n;
}
