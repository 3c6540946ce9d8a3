/* embedding.c: scaled token embedding lookup and its scatter-add backward (ops.h; spec gemma4
 * §3.5, §7.8, §7.10).
 *
 * The backward splits the hidden dim over threads, and each thread walks the tokens in order: a
 * row used by several tokens is summed in token order by one thread, with no atomics.
 */
#include "ops/cpu/cpu.h"

#define EMB_PAR_MIN (1 << 14)
#define EMB_COLS    64 /* hidden columns per thread in the backward */

void OPS(embedding_forward)(real *out, const int32_t *ids, ops_weight table, int T, int V, int H,
                            real scale) {
    assert(T >= 0 && V > 0 && H > 0);
#pragma omp parallel for if ((long)T * H > EMB_PAR_MIN)
    for (int t = 0; t < T; t++) {
        assert(ids[t] >= 0 && ids[t] < V);
        real *o = out + (size_t)t * H;
        const real *row = weight_rows(table, (size_t)ids[t], 1, H, o); /* widened into o */
#pragma omp simd
        for (int c = 0; c < H; c++) o[c] = row[c] * scale;
    }
}

void OPS(embedding_backward)(real *dtable, const real *dout, const int32_t *ids, int T, int V,
                             int H, real scale, int32_t pad_id) {
    assert(T >= 0 && V > 0 && H > 0);
    int nblocks = (H + EMB_COLS - 1) / EMB_COLS;
#pragma omp parallel for if ((long)T * H > EMB_PAR_MIN)
    for (int b = 0; b < nblocks; b++) {
        int c0 = b * EMB_COLS, c1 = EFT_MIN(H, c0 + EMB_COLS);
        for (int t = 0; t < T; t++) {
            assert(ids[t] >= 0 && ids[t] < V);
            if (ids[t] == pad_id) continue;
            real *d = dtable + (size_t)ids[t] * H;
            const real *g = dout + (size_t)t * H;
#pragma omp simd
            for (int c = c0; c < c1; c++) d[c] += scale * g[c];
        }
    }
}
