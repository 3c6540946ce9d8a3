/* cmd_init_model.c: `eft init-model --preset NAME --out DIR [--seed N] [--text-only]
 * [--vocab-size N]`: a random Gemma 4 checkpoint of one of the tiny presets, in the Hugging Face
 * layout (config.json + model.safetensors) that transformers loads. `--list` names the presets. */
#include "cli/cli.h"

#include "base/err.h"
#include "model/g4_init.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: eft init-model --preset NAME --out DIR [--seed N] [--text-only] [--vocab-size N]\n"
    "       eft init-model --list\n"
    "  Writes a random Gemma 4 checkpoint (config.json + model.safetensors, bf16) shaped like\n"
    "  a released size. Default: the multimodal wrapper layout of the releases (weights under\n"
    "  model.language_model., no vision or audio tower); --text-only writes a gemma4_text\n"
    "  checkpoint (weights under model.). --vocab-size matches the vocabulary to a tokenizer.\n";

static int parse_num(const char *flag, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return eft_fail("init-model: %s expects a whole number from %lld to %lld, found \"%s\".",
                        flag, lo, hi, v);
    *out = x;
    return 0;
}

int cmd_init_model(int argc, char **argv) {
    const char *preset = NULL, *out = NULL, *seed_s = NULL, *vocab_s = NULL;
    bool text_only = false;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = cli_flag_value(argc, argv, &i, "--preset", &missing)))
            preset = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--out", &missing)))
            out = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--seed", &missing)))
            seed_s = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--vocab-size", &missing)))
            vocab_s = v;
        else if (missing)
            return -1;
        else if (!strcmp(argv[i], "--text-only"))
            text_only = true;
        else if (!strcmp(argv[i], "--list")) {
            for (const g4_preset *p = g4_presets; p->name; p++)
                printf("%-14s mirrors %-8s H=%d L=%d heads=%d/%d D=%d/%d vocab=%d%s%s%s\n", p->name,
                       p->mirrors, p->hidden, p->layers, p->heads, p->kv_heads, p->head_dim,
                       p->global_head_dim, p->vocab, p->ple_dim ? " PLE" : "",
                       p->kv_shared ? " kv-sharing" : "", p->experts ? " MoE" : "");
            return 0;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s", usage);
            return 0;
        } else
            return eft_fail("init-model: unknown argument \"%s\". Run `eft init-model --help`.",
                            argv[i]);
    }
    if (!preset || !out)
        return eft_fail("init-model: --preset NAME and --out DIR are required (`eft init-model "
                        "--list` shows the presets).");
    const g4_preset *p = g4_preset_find(preset);
    if (!p)
        return eft_fail("init-model: no preset \"%s\". `eft init-model --list` shows the presets.",
                        preset);
    long long seed = 0, vocab = 0;
    if (seed_s && parse_num("--seed", seed_s, 0, (long long)1 << 62, &seed)) return -1;
    if (vocab_s && parse_num("--vocab-size", vocab_s, 8, 1 << 20, &vocab)) return -1;
    if (g4_init_checkpoint(p, out, (uint64_t)seed, text_only, (int)vocab)) return -1;
    printf("wrote %s/config.json and %s/model.safetensors (%s, seed %lld)\n", out, out, p->name,
           seed);
    return 0;
}
