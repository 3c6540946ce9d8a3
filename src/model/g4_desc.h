/* g4_desc.h: what a checkpoint is, before any weight is read: its config.json, the layer plan
 * and the tensor list, loaded together (every command that opens a model starts here).
 *
 * The plan borrows the config, so a g4_desc must stay where it was loaded (do not copy it).
 */
#ifndef EFT_MODEL_G4_DESC_H
#define EFT_MODEL_G4_DESC_H

#include "model/g4_config.h"
#include "model/g4_plan.h"

typedef struct g4_desc {
    g4_config cfg;
    g4_plan plan;
    g4_tensors ts;
} g4_desc;

/* path: a checkpoint folder (its config.json is read) or a config.json file. On failure nothing
 * needs freeing. */
int g4_desc_load(g4_desc *d, const char *path);
/* From config.json text in memory; `name` stands for the file in messages. */
int g4_desc_parse(g4_desc *d, const char *json, const char *name);
void g4_desc_free(g4_desc *d);

#endif
