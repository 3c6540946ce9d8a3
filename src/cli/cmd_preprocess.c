/* cmd_preprocess.c: `eft preprocess CONFIG.yaml [--dump FILE.jsonl] [--debug] [--key value ...]`.
 *
 * Tokenises, labels, filters, merges, splits and caches the config's datasets (ds_prepare.h),
 * then prints what it did: per dataset the rows, samples, tokens, trained tokens and every drop
 * and skip with its reason; the train and eval totals; the cache file; and how training would
 * batch them: micro-batches per epoch, packing efficiency, optimizer steps. --dump writes every
 * sample before packing (training samples, then eval samples) as {"input_ids", "labels"} lines;
 * --debug prints the first samples' tokens with their labels. Unlike Axolotl's preprocess it
 * does not download the model: eft reads only local files.
 */
#include "cli/cli.h"

#include "base/err.h"
#include "base/log.h"
#include "data/ds_prepare.h"
#include "data/ds_show.h"
#include "data/pack.h"
#include "io/config.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage =
    "usage: eft preprocess CONFIG.yaml [--dump FILE.jsonl] [--debug] [--debug-num-examples N]\n"
    "                      [--key value ...]\n"
    "  Tokenises, labels, splits and caches the datasets (under dataset_prepared_path, default\n"
    "  ./last_run_prepared), and prints the counts. Config keys may be overridden as --key value.\n"
    "  --dump FILE         write each sample before packing, training then eval, one JSON object\n"
    "                      a line: {\"input_ids\": [...], \"labels\": [...]} (-100: not trained)\n"
    "  --debug             print the first samples' tokens as text(label, id)\n"
    "  --debug-num-examples N  how many samples --debug prints (default 3)\n";

/* How training would batch the samples: one info line for train, one for eval. */
static int report_batches(const eft_config *c, const ds_prepared *p) {
    pack_config pc;
    pack_loader L;
    pack_config_train(&pc, c);
    if (pack_loader_init(&L, &p->train, &pc)) return -1;
    pack_steps st;
    pack_steps_compute(&L, c, &st);
    if (pc.packed)
        eft_info("packing: %lld samples into %lld bins of %lld tokens, efficiency %.2f%%",
                 (long long)p->train.n, (long long)L.epoch_bins, (long long)L.capacity,
                 100.0 * L.efficiency);
    eft_info("steps: %lld micro-batches per epoch (%lld tokens at most), gradient accumulation "
             "%lld -> %lld updates per epoch; %lld optimizer steps%s",
             (long long)st.micro_batches, (long long)L.max_tokens, (long long)st.accumulation,
             (long long)st.updates_per_epoch, (long long)st.total,
             c->max_steps.set && c->max_steps.v > 0 ? " (max_steps)" : "");
    pack_loader_free(&L);
    if (p->eval.n > 0) {
        pack_config_eval(&pc, c);
        if (pack_loader_init(&L, &p->eval, &pc)) return -1;
        eft_info("eval: %lld micro-batches%s", (long long)L.n_mb, pc.packed ? " (packed)" : "");
        pack_loader_free(&L);
    }
    return 0;
}

int cmd_preprocess(int argc, char **argv) {
    const char *dump = NULL, *config = NULL;
    bool debug = false;
    long examples = 3;
    static const char *const keep[] = {"dump=", "debug", "debug-num-examples=", "help", NULL};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
    /* the config comes first, as for eft train; overrides and flags follow */
    if (argc > 1 && argv[1][0] != '-') config = argv[1];
    if (!config) return eft_fail("preprocess: expected a config file first.\n%s", usage);
    eft_config c;
    if (cfg_load(&c, config) || cfg_apply_overrides(&c, &argc, argv, keep)) {
        cfg_free(&c);
        return -1;
    }
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = cli_flag_value(argc, argv, &i, "--dump", &missing)))
            dump = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--debug-num-examples", &missing))) {
            char *end;
            examples = strtol(v, &end, 10);
            if (*end || examples < 0) {
                cfg_free(&c);
                return eft_fail("--debug-num-examples: expected a whole number, found \"%s\".", v);
            }
        } else if (missing) {
            cfg_free(&c);
            return -1;
        } else if (!strcmp(argv[i], "--debug"))
            debug = true;
        else if (argv[i] != config) {
            cfg_free(&c);
            return eft_fail("preprocess: unexpected argument \"%s\".\n%s", argv[i], usage);
        }
    }
    if (cfg_validate(&c) || cfg_resolve_paths(&c)) {
        cfg_free(&c);
        return -1;
    }
    cfg_report_no_effect(&c);
    tok_tokenizer *t = tok_load(c.tokenizer_path);
    if (!t) {
        cfg_free(&c);
        return -1;
    }
    ds_prepared p;
    double t0 = eft_now();
    int rc = ds_prepare(&c, t, &p);
    bool prepared = rc == 0;
    if (!rc) {
        ds_report(&p);
        eft_info("prepared in %.2f s", eft_now() - t0);
        rc = report_batches(&c, &p);
    }
    if (!rc && dump) {
        const ds_samples *sets[2] = {&p.train, &p.eval};
        rc = ds_dump_jsonl(dump, sets, 2);
        if (!rc) eft_info("wrote %lld samples to %s", (long long)(p.train.n + p.eval.n), dump);
    }
    if (!rc && debug) {
        bool color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
        printf("tokens as text(label, id); label -100: not trained%s\n",
               color ? " (green: trained)" : "");
        ds_debug_print(stdout, t, &p.train, examples, color);
    }
    if (prepared) ds_prepared_free(&p);
    tok_free(t);
    cfg_free(&c);
    return rc;
}
