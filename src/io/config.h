/* config.h: an Axolotl YAML config as a typed, validated struct.
 *
 * eft reads the same YAML files as Axolotl. Every key Axolotl knows is in eft's schema table
 * (config_schema*.c) with one of three statuses:
 *   supported  eft uses the value; it lands in the field of eft_config named like the key;
 *   no_effect  the key only tunes PyTorch/GPU stacks (plugins, liger_*, torch_compile, ...): it is
 *              accepted and reported once, in one line (cfg_report_no_effect);
 *   not_yet    eft does not implement it yet: setting it is an error naming the key and its place,
 *              saying what to do. A not_yet key left empty or set to false is harmless.
 * Keys that are not in the table get a warning with the nearest known key ("did you mean"), or an
 * error under `strict: true`.
 *
 * Values are typed as Axolotl types them (pydantic's lax mode over PyYAML's YAML 1.1): `yes` and
 * `on` are booleans, `2e-4` is a string that a float key reads as 0.0002, `"16"` is an integer for
 * an integer key, and a number or a boolean given to a string key is an error (quote it).
 *
 * The order of calls for a command that runs a config (`eft train CONFIG --key value ...`):
 *
 *     eft_config c;
 *     if (cfg_load(&c, path)                           // parse, type, statuses, defaults
 *         || cfg_apply_overrides(&c, &argc, argv, own) // --key value from the command line
 *         || cfg_validate(&c)                          // rules across keys
 *         || cfg_resolve_paths(&c)) {                  // base_model, datasets: local or HF cache
 *         cfg_free(&c);
 *         return -1;
 *     }
 *     cfg_report_no_effect(&c);
 *     ...
 *     cfg_free(&c);
 *
 * Every value remembers where it came from (file:line:col, or the command line), so a later layer
 * that finds a problem with a value can say where it was set: cfg_fail_at().
 */
#ifndef EFT_IO_CONFIG_H
#define EFT_IO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where a value was set. file is the config's path as given, or "command line" (line 0). */
typedef struct cfg_pos {
    const char *file;
    int line, col;
} cfg_pos;

/* One value struct per type. `set` says the user gave the key (in the file or on the command
 * line); an unset field holds eft's default (documented in `eft config-schema`) and `at` is zero.
 * Strings belong to the config (freed by cfg_free). */
typedef struct cfg_bool {
    bool set, v;
    cfg_pos at;
} cfg_bool;
typedef struct cfg_int {
    bool set;
    int64_t v;
    cfg_pos at;
} cfg_int;
typedef struct cfg_float {
    bool set;
    double v;
    cfg_pos at;
} cfg_float;
/* Strings, and keys with a fixed set of values (optimizer, lr_scheduler, bf16, ...): v holds the
 * canonical value; a boolean given to a key such as bf16 or gradient_checkpointing is stored as
 * "true" or "false". NULL when unset with no default. */
typedef struct cfg_str {
    bool set;
    const char *v;
    cfg_pos at;
} cfg_str;
/* A list of strings (eot_tokens), or a string-or-list key (lora_target_modules): single_string
 * records that one string was written rather than a list. For lora_target_modules that means a
 * regex that PEFT full-matches against module paths; a list means name suffixes. */
typedef struct cfg_strlist {
    bool set, single_string;
    int n;
    char **v;      /* [n] */
    cfg_pos *v_at; /* [n]: where each item was written */
    cfg_pos at;
} cfg_strlist;

/* A scalar kept as written, for the values of a generic mapping. */
typedef enum cfg_scalar_type {
    CFG_S_NULL,
    CFG_S_BOOL,
    CFG_S_INT,
    CFG_S_FLOAT,
    CFG_S_STR
} cfg_scalar_type;
typedef struct cfg_scalar {
    char *text;
    cfg_scalar_type type; /* as YAML 1.1 resolved it: `true` is CFG_S_BOOL, `"true"` CFG_S_STR */
    cfg_pos at;
} cfg_scalar;
/* One key of a mapping: a scalar value (is_list false, n == 1) or a list of scalars. */
typedef struct cfg_map_item {
    char *key;
    cfg_pos key_at;
    bool is_list;
    int n;
    cfg_scalar *v; /* [n] */
} cfg_map_item;
/* A mapping with scalar or list-of-scalar values: bnb_config_kwargs, lr_scheduler_kwargs,
 * chat_template_kwargs, special_tokens, message_property_mappings, roles, ... */
typedef struct cfg_map {
    bool set;
    int n;
    cfg_map_item *items; /* [n], in file order */
    cfg_pos at;
} cfg_map;

/* The custom instruct template of a dataset whose `type:` is a mapping (Axolotl's user-defined
 * prompter: format strings with {instruction} and {input} placeholders). */
typedef struct cfg_dataset_type {
    cfg_str system_prompt, system_format, field_system, field_instruction, field_input,
        field_output, format, no_input_format;
} cfg_dataset_type;

/* One entry of `datasets:` or `test_datasets:`. */
typedef struct cfg_dataset {
    cfg_pos at; /* the entry's "- " */
    cfg_str path, split, name, revision, ds_type;
    /* "chat_template", "alpaca", "completion", "input_output"; unset for pre-tokenized data;
     * "user_defined" when the YAML gives a mapping, whose fields are in `custom`. */
    cfg_str type;
    cfg_dataset_type custom;
    cfg_strlist data_files;
    cfg_int shards, shards_idx;
    cfg_str chat_template;
    cfg_str field_messages; /* default "messages" */
    cfg_map message_property_mappings;
    cfg_str message_field_role, message_field_content; /* older spelling of the mappings */
    cfg_map roles;
    cfg_strlist roles_to_train; /* default [assistant] */
    cfg_str train_on_eos;       /* all|turn|last|none, default turn */
    cfg_str train_on_eot;       /* unset: follows train_on_eos */
    cfg_str message_field_training, message_field_training_detail;
    cfg_str field_tools, field_thinking, template_thinking_key;
    cfg_bool drop_system_message;
    cfg_str field; /* completion text column, default "text" */
    /* Set by cfg_resolve_paths: the local file or folder of `path` (for a Hub dataset, its
     * snapshot folder, within which data_files are found). Owned. */
    char *local_path;
} cfg_dataset;

typedef struct cfg_datasets {
    bool set;
    int n;
    cfg_dataset *v; /* [n] */
    cfg_pos at;
} cfg_datasets;

/* The supported keys. Each field is named like its key; see `eft config-schema` (or the table in
 * config_schema*.c) for the meaning and default of each. */
typedef struct eft_config {
    char *path; /* the config file as given */

    /* model loading */
    cfg_str base_model, base_model_config, tokenizer_config, revision_of_model;
    cfg_bool strict;
    /* datasets and prompts */
    cfg_datasets datasets, test_datasets;
    cfg_float val_set_size;
    cfg_str dataset_prepared_path;
    cfg_bool shuffle_merged_datasets, shuffle_before_merging_datasets, dataset_exact_deduplication;
    cfg_int seed;
    cfg_str chat_template;
    cfg_map chat_template_kwargs, special_tokens;
    cfg_strlist eot_tokens;
    cfg_bool train_on_inputs;
    /* sequence length and packing */
    cfg_int sequence_len, eval_sequence_len, min_sample_len, pad_to_multiple_of;
    cfg_str excess_length_strategy;
    cfg_bool sample_packing, eval_sample_packing, pad_to_sequence_len;
    cfg_int sample_packing_group_size, sample_packing_bin_size;
    cfg_bool sample_packing_sequentially, curriculum_sampling, multipack_real_batches;
    cfg_float sample_packing_eff_est;
    /* adapter */
    cfg_str adapter;
    cfg_int lora_r, lora_alpha;
    cfg_float lora_dropout;
    cfg_strlist lora_target_modules, lora_target_parameters;
    cfg_bool lora_target_linear;
    cfg_map lora_rank_pattern, lora_alpha_pattern;
    cfg_str lora_model_dir;
    cfg_bool peft_use_rslora, peft_autocast_adapter_dtype;
    cfg_str peft_init_lora_weights;
    /* quantization */
    cfg_bool load_in_4bit, quantize_moe_experts;
    cfg_map bnb_config_kwargs;
    /* training */
    cfg_int micro_batch_size, gradient_accumulation_steps, batch_size, eval_batch_size, max_steps;
    cfg_float num_epochs, learning_rate;
    cfg_str optimizer, lr_scheduler;
    cfg_float adam_beta1, adam_beta2, adam_epsilon, weight_decay, max_grad_norm;
    cfg_map lr_scheduler_kwargs;
    cfg_float cosine_min_lr_ratio, warmup_ratio;
    cfg_int warmup_steps;
    cfg_str loss_normalization; /* eft's own: tokens (mode A) | micro_batch (mode B) */
    /* precision and memory */
    cfg_str bf16, gradient_checkpointing, activation_offloading;
    /* eval, saving and output */
    cfg_str output_dir, eval_strategy, save_strategy, resume_from_checkpoint;
    cfg_int evals_per_epoch, saves_per_epoch, save_total_limit;
    cfg_float eval_steps, save_steps; /* an integer >= 1, or a fraction of the total in (0, 1) */
    cfg_bool save_first_step, save_only_model, save_safetensors, auto_resume_from_checkpoints;
    cfg_map dynamic_checkpoint;
    /* logging */
    cfg_int logging_steps, loss_watchdog_patience;
    cfg_float loss_watchdog_threshold;
    cfg_bool include_tkps, include_tokens_per_second;

    /* Filled by cfg_resolve_paths (owned): where the weights, config.json and the tokenizer are
     * read from (the last two default to base_model_path). */
    char *base_model_path, *model_config_path, *tokenizer_path;

    /* Keys present that have no effect in eft, in file order, each once (owned). */
    char **no_effect;
    int n_no_effect;
    /* Warnings printed while loading (unknown keys), kept for callers and tests (owned). */
    char **warnings;
    int n_warnings;
} eft_config;

/* Sets every field to its default (nothing set). cfg_load does this itself. */
void cfg_init(eft_config *c);
/* Reads, types and checks the YAML file at path into c. On failure c holds nothing that needs
 * freeing beyond cfg_free (which is always safe after cfg_load). The error names the file, line
 * and column. Unknown keys are warned about (eft_warn) and kept in c->warnings. */
int cfg_load(eft_config *c, const char *path);
/* Same, from text in memory; `name` stands for the file in messages. */
int cfg_load_string(eft_config *c, const char *text, const char *name);
void cfg_free(eft_config *c);

/* One override, as from `--key value`: key may use dashes or underscores; value is read as a YAML
 * scalar, or as a YAML flow sequence for list keys ("[q_proj, v_proj]"). Errors say "command
 * line: --key: ...". An unknown key is an error with the nearest known key. */
int cfg_apply_override(eft_config *c, const char *key, const char *value);
/* Consumes config overrides from argv[1..*argc): `--key value`, `--key=value`, and for keys that
 * take a boolean also `--key` alone (true) and `--no-key` (false), as Axolotl's CLI accepts.
 * `keep` lists the command's own flags, which are left in place: "dry-run" for a flag alone,
 * "dump=" for a flag followed by a value (NULL-terminated; may be NULL). Positional arguments
 * are left in place too. argv is compacted in place and *argc updated to what is left. */
int cfg_apply_overrides(eft_config *c, int *argc, char **argv, const char *const *keep);

/* Rules across keys (qlora needs load_in_4bit, warmup_steps with warmup_ratio, ...): the first
 * broken rule is the error, naming the place of the key at fault. */
int cfg_validate(const eft_config *c);

/* Resolves base_model (and tokenizer_config, base_model_config) and each dataset's path to a
 * local file or folder: a local path wins, else the Hugging Face cache (hub.h). */
int cfg_resolve_paths(eft_config *c);
/* The same for the model's paths only, for commands that read no dataset (inference,
 * merge-lora). */
int cfg_resolve_model_paths(eft_config *c);

/* Prints the one line "<file>: no effect in eft: plugins, liger_rms_norm, ..." (eft_info), if any
 * key without effect was given. */
void cfg_report_no_effect(const eft_config *c);
/* The same line's list ("plugins, liger_rms_norm, ...") or NULL when empty (owned by caller). */
char *cfg_no_effect_list(const eft_config *c);

/* Records an error about a value at its place: "<file>:<line>:<col>: <key>: <message>", or
 * "command line: --<key>: <message>" for an override. For layers that check values later (a
 * lora_target_modules regex that matches nothing). Returns -1. */
int cfg_fail_at(cfg_pos at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "file:12:3" or "command line" (owned by caller). */
char *cfg_pos_str(cfg_pos at);

/* Typed reads of a mapping's values, with the same typing as top-level keys. Each returns 0 when
 * the key is absent (leaving *out unchanged) or read, -1 with a located error when the value has
 * the wrong type. `what` names the mapping in errors ("bnb_config_kwargs"). */
const cfg_map_item *cfg_map_find(const cfg_map *m, const char *key);
int cfg_map_bool(const cfg_map *m, const char *key, bool *out, const char *what);
int cfg_map_int(const cfg_map *m, const char *key, int64_t *out, const char *what);
int cfg_map_float(const cfg_map *m, const char *key, double *out, const char *what);
/* The string stays owned by the map. */
int cfg_map_str(const cfg_map *m, const char *key, const char **out, const char *what);

/* The effective config as YAML: every supported key with its value and, in a comment, where it
 * came from (line N, command line, default). For `eft train --dry-run`; reads back with
 * cfg_load. */
void cfg_print(FILE *f, const eft_config *c);

/* `eft config-schema`: every key with type, default, status and meaning, grouped; or as JSON. */
void cfg_schema_print(FILE *f, bool json);

#endif
