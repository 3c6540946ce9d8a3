/* bare_model.h: a model's tensor list with a g4_weights whose parameters have no values, for
 * code that reads only each parameter's tensor and hangs adapters on it (lora_attach, adapter
 * files, target selection). */
#ifndef EFT_TESTS_BARE_MODEL_H
#define EFT_TESTS_BARE_MODEL_H

#include "model/g4_desc.h"
#include "model/g4_weights.h"

#include <stdbool.h>

typedef struct bare_model {
    g4_desc d;
    g4_weights w; /* params[i].t only */
    bool *sel;    /* [d.ts.n] a selection for the test to fill */
} bare_model;

/* From tests/data_files/gemma4/<variant>/config.json (a released model's shape). */
void bare_model_variant(bare_model *m, const char *variant);
/* From an `eft init-model` preset's config. */
void bare_model_preset(bare_model *m, const char *preset, bool text_only);
void bare_model_free(bare_model *m);
/* Selects exactly the modules whose path full-matches `regex`; returns how many. */
int bare_model_select(bare_model *m, const char *regex);

#endif
