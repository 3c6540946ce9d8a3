/* peft_io.h: PEFT LoRA adapter folders, read and written as PEFT 0.19+ reads and writes them.
 *
 * A folder holds two files (../shared/spec/axolotl-compat.md section 3.3):
 *   adapter_model.safetensors  every module's "base_model.model.<module path>.lora_A.weight"
 *                              [r, in] and "...lora_B.weight" [out, r], no adapter name in the
 *                              key, "__metadata__": {"format": "pt"}; eft writes F32 and reads
 *                              F32, BF16 or F16;
 *   adapter_config.json        LoraConfig's fields as PEFT 0.19.1 writes them (every key, sorted,
 *                              indented by two): peft_type "LORA", r, lora_alpha, target_modules,
 *                              ..., the keys eft does not use at their defaults.
 * Saving writes both files through temporaries, flushes both to disk and only then renames them
 * into place, so a failure while writing leaves an existing adapter untouched.
 *
 * Loading checks the folder against the model and is strict, because a silently different
 * adapter is worse than an error: peft_type must be LORA; features that change the arithmetic
 * (DoRA, rank_pattern, modules_to_save, bias, ...) are refused by name; every tensor must be an
 * A or B of a module the model has, with the shape r and the module give; each module needs
 * both; and the modules with tensors must be exactly those the config's target_modules selects
 * by PEFT's rules (lora_target.h). Every error names the file, the tensor or key, and what to do.
 *
 * MoE expert adapters (target_parameters) are read and written in PEFT's ParamWrapper layout
 * (lora.h): tensors named by the experts module, with ".base_layer" for the inner of two.
 *
 * Not here: creating and initialising adapters (lora.h), the optimizer state of a checkpoint
 * (src/train).
 */
#ifndef EFT_PEFT_PEFT_IO_H
#define EFT_PEFT_PEFT_IO_H

#include "io/config.h"
#include "model/g4_weights.h"
#include "peft/lora.h"

#include <stdbool.h>

#define PEFT_CONFIG_NAME  "adapter_config.json"
#define PEFT_WEIGHTS_NAME "adapter_model.safetensors"

/* What adapter_config.json says that eft uses. */
typedef struct peft_config {
    int r;
    double alpha;
    double dropout;
    bool rslora;
    lora_init init;   /* DEFAULT (true), LINEAR (false) or GAUSSIAN */
    char *base_model; /* base_model_name_or_path, or NULL (null) */
    /* target_modules: one regex PEFT full-matches against module paths (kept verbatim), or a
     * list of names matched as path suffixes. Exactly one of the two is set. */
    char *target_regex;
    char **target_list; /* [n_targets] */
    int n_targets;
    /* target_parameters: MoE expert tensors, matched as path suffixes ("experts.gate_up_proj");
     * none when n_target_params is 0 (written as null). */
    char **target_params; /* [n_target_params] */
    int n_target_params;
} peft_config;

void peft_config_free(peft_config *pc);

/* adapter_config.json's text for *pc (owned by the caller). */
char *peft_config_json(const peft_config *pc);

/* The adapter_config.json of a run: r, alpha, rsLoRA, dropout and init from the adapter's
 * spec, base_model from the config, target_modules as the config wrote it (a regex string
 * verbatim, or the list) and target_parameters as lora_target_parameters lists them. With
 * lora_target_linear (or target_modules "all-linear") the list is the exact module paths that
 * got adapters (expert tensors excepted: they are parameters): PEFT would expand those names to
 * every linear layer of the full checkpoint, vision and audio towers included, which eft never
 * trains. */
void peft_config_from_run(peft_config *pc, const eft_config *c, const lora_adapter *a);

/* Writes dir/adapter_model.safetensors and dir/adapter_config.json (the folder is created).
 * Returns 0, or -1 with an error; on failure an adapter already in dir is left as it was. */
int peft_save(const char *dir, const lora_adapter *a, const peft_config *pc);

/* Reads and checks dir/adapter_config.json into *pc (freed by peft_config_free, also on
 * failure). Absent keys take PEFT's defaults (r 8, lora_alpha 8, lora_dropout 0, use_rslora
 * false, init_lora_weights true); a missing target_modules is an error. */
int peft_read_config(const char *dir, peft_config *pc);

/* Reads the adapter folder `dir` onto the model: its config into *pc, and one adapter per module
 * it has tensors for, hung on w's parameters, into *a (lora_attach with the file's r, alpha,
 * rsLoRA and dropout; dA and dB when `train`). The values are the file's, widened to fp32. On
 * failure nothing is attached and *pc is freed. */
int peft_load(const char *dir, g4_weights *w, bool train, lora_adapter *a, peft_config *pc);

#endif
