/* cmd_merge_lora.c: `eft merge-lora CONFIG.yaml [--key value ...]`.
 *
 * Bakes the adapter of lora_model_dir (default: output_dir, where `eft train` put it) into
 * base_model and writes output_dir/merged/, a Hugging Face checkpoint that transformers loads
 * and llama.cpp's convert_hf_to_gguf.py converts (peft/lora_merge.h). As Axolotl's merge-lora.
 *
 * A QLoRA run (load_in_4bit, or adapter: qlora) trained its adapter against NF4 weights, so each
 * adapted tensor that was NF4 in training goes through the NF4 round trip (nf4_roundtrip) before
 * its delta is added. Which tensors were NF4 is training's own rule, g4_nf4_quantized with the
 * config's quantize_moe_experts, so the merge sees what training saw (peft/lora_merge.h says
 * where this differs from Axolotl's merger).
 */
#include "cli/cli.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/config.h"
#include "model/g4_desc.h"
#include "model/g4_weights.h"
#include "model/g4_memory.h"
#include "peft/lora_merge.h"
#include "peft/nf4.h"
#include "peft/peft_io.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: eft merge-lora CONFIG.yaml [--key value ...]\n"
    "  Writes output_dir/merged/: base_model with the adapter of lora_model_dir (default\n"
    "  output_dir) added into its weights, every other tensor and file copied.\n";

/* The folder of a checkpoint path (itself, or the folder of a .safetensors or index file). */
static char *checkpoint_dir(const char *path) {
    if (eft_is_dir(path)) return eft_strdup(path);
    const char *s = strrchr(path, '/');
    return s ? eft_asprintf("%.*s", (int)(s - path), path) : eft_strdup(".");
}

/* The NF4 round trip of a QLoRA run: on the adapted tensors its training held in NF4. */
static void roundtrip(float *w, int64_t n, void *ctx) {
    (void)ctx;
    nf4_roundtrip(w, n);
}
static bool was_nf4(const g4_tensor *t, void *ctx) {
    const eft_config *c = ctx;
    return g4_nf4_quantized(t, c->quantize_moe_experts.v);
}

/* The merge options of the run: the NF4 round trip when it was QLoRA, else none (NULL). */
static int qlora_opts(const eft_config *c, lora_merge_opts *o, const lora_merge_opts **out) {
    *out = NULL;
    if (!c->load_in_4bit.v && !(c->adapter.v && !strcmp(c->adapter.v, "qlora"))) return 0;
    bool dq = true;
    if (cfg_map_bool(&c->bnb_config_kwargs, "bnb_4bit_use_double_quant", &dq, "bnb_config_kwargs"))
        return -1;
    if (!dq)
        return cfg_fail_at(
            cfg_map_find(&c->bnb_config_kwargs, "bnb_4bit_use_double_quant")->v[0].at,
            "bnb_config_kwargs.bnb_4bit_use_double_quant",
            "false is not supported by this build of eft: its NF4 round trip uses "
            "double quantisation (Axolotl's default), as its QLoRA training does. "
            "Remove the key or set it to true.");
    *o = (lora_merge_opts){roundtrip, was_nf4, (void *)c};
    *out = o;
    return 0;
}

static int merge(const eft_config *c) {
    const char *adapter_dir =
        c->lora_model_dir.v && *c->lora_model_dir.v ? c->lora_model_dir.v : c->output_dir.v;
    if (!adapter_dir || !*adapter_dir)
        return eft_fail("%s: merge-lora needs the adapter: set lora_model_dir (or output_dir, "
                        "where eft train saved it).",
                        c->path);
    lora_merge_opts qlora;
    const lora_merge_opts *opts;
    if (qlora_opts(c, &qlora, &opts)) return -1;
    g4_desc d;
    if (g4_desc_load(&d, c->model_config_path)) return -1;
    g4_weights w = {0};
    lora_adapter a = {0};
    peft_config pc = {0};
    char *out = eft_path_join(c->output_dir.v ? c->output_dir.v : ".", "merged");
    char *base = checkpoint_dir(c->base_model_path);
    int rc = g4_weights_load(&w, &d.plan, &d.ts, c->base_model_path, false);
    if (!rc) rc = peft_load(adapter_dir, &w, false, &a, &pc);
    lora_merge_stats st;
    if (!rc) rc = lora_merge(&w, &a, base, out, opts, &st);
    if (!rc)
        printf("merged %s into %s: %d tensors with the adapter (%d through the NF4 round trip; "
               "largest |dW|/|W| %.3g), %d copied, %d shard%s and %d other files; written to %s\n",
               adapter_dir, base, st.merged, st.roundtrips, st.max_rel, st.copied, st.shards,
               st.shards == 1 ? "" : "s", st.files, out);
    if (a.block) lora_detach(&a);
    peft_config_free(&pc);
    if (w.params) g4_weights_free(&w);
    g4_desc_free(&d);
    eft_free(base);
    eft_free(out);
    return rc;
}

int cmd_merge_lora(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s", usage);
            return 0;
        }
    if (argc < 2 || argv[1][0] == '-')
        return eft_fail("merge-lora: the first argument must be the config file. %s", usage);
    eft_config c;
    int rc = cfg_load(&c, argv[1]);
    if (!rc) rc = cfg_apply_overrides(&c, &argc, argv, NULL);
    for (int i = 2; i < argc && !rc; i++)
        rc = eft_fail("merge-lora: unexpected argument \"%s\". %s", argv[i], usage);
    if (!rc) rc = cfg_validate(&c) || cfg_resolve_model_paths(&c);
    if (!rc) rc = merge(&c);
    cfg_free(&c);
    return rc ? -1 : 0;
}
