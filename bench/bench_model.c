/* bench_model.c: forward + backward tokens per second of a Gemma 4 checkpoint on the CPU.
 *
 *   bench_model MODEL_DIR [T] [ITERS] [full|frozen] [recompute]
 *
 * One row of T random tokens (one document), the mean loss over all of them. "full" trains every
 * parameter (fp32 masters, every weight gradient); "frozen" keeps the bf16 base frozen and runs
 * the backward for the activation gradients only: the cost of LoRA training without the
 * adapters' small GEMMs. Prints one JSON line. bench/bench_model.sh runs it beside PyTorch.
 */
#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/rng.h"
#include "base/threads.h"
#include "model/g4_desc.h"
#include "model/g4_model.h"
#include "model/g4_plan.h"
#include "model/g4_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_model MODEL_DIR [T] [ITERS] [full|frozen] [recompute]\n");
        return 1;
    }
    int T = argc > 2 ? atoi(argv[2]) : 1024, iters = argc > 3 ? atoi(argv[3]) : 3;
    bool full = argc > 4 && !strcmp(argv[4], "full");
    bool recompute = argc > 5 && !strcmp(argv[5], "recompute");
    eft_threads_set(0);
    g4_desc d;
    g4_weights w;
    if (g4_desc_load(&d, argv[1])) goto fail;
    const g4_plan *plan = &d.plan;
    if (g4_weights_load(&w, &d.plan, &d.ts, argv[1], full)) goto fail;
    int32_t *ids = eft_malloc((size_t)T * 4), *pos = eft_malloc((size_t)T * 4);
    int32_t *target = eft_malloc((size_t)T * 4);
    eft_rng r;
    eft_rng_seed(&r, 1, 0);
    for (int t = 0; t < T; t++) {
        ids[t] = (int32_t)eft_rng_below(&r, (uint64_t)plan->V);
        pos[t] = t;
    }
    for (int t = 0; t < T; t++) target[t] = t + 1 < T ? ids[t + 1] : -100;
    g4_batch b = {T, ids, pos, target, NULL, 1};
    g4_model m;
    g4_model_init(&m, &d.plan, &w, T, recompute);
    double best = 1e30, fwd_best = 1e30, loss = 0;
    for (int i = 0; i < iters + 1; i++) { /* the first run warms up and is not counted */
        int64_t count;
        double t0 = eft_now();
        double sum = g4_forward(&m, &b, &count);
        double t1 = eft_now();
        g4_backward(&m, &b, 1.0 / (double)count);
        double t2 = eft_now();
        loss = sum / (double)count;
        if (i > 0 && t2 - t0 < best) best = t2 - t0, fwd_best = t1 - t0;
    }
    printf("{\"impl\": \"eft\", \"mode\": \"%s%s\", \"T\": %d, \"threads\": %d, \"loss\": %.6f, "
           "\"fwd_s\": %.3f, \"fwd_bwd_s\": %.3f, \"tokens_per_s\": %.1f, \"arena_mib\": %.1f}\n",
           full ? "full" : "frozen", recompute ? "+recompute" : "", T, eft_threads(), loss,
           fwd_best, best, T / best, g4_model_bytes(&m) / 1048576.0);
    g4_model_free(&m);
    g4_weights_free(&w);
    return 0;
fail:
    fprintf(stderr, "bench_model: %s\n", eft_err_msg());
    return 1;
}
