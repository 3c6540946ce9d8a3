/* test_embedding.c: scaled lookup (real and bf16 tables), the scatter-add backward with repeated
 * ids and padding_idx, finite differences, float vs double. */
#include "ops/check.h"

enum { T = 12, V = 10, H = 70 }; /* H spans two 64-column blocks of the backward */

static const int32_t IDS[T] = {3, 0, 3, 9, 1, 3, 0, 2, 9, 5, 5, 7}; /* 0 is the pad id */

typedef struct emb_data {
    double *table, *out, *up;
    double scale;
} emb_data;

static double emb_loss(void *ctx) {
    emb_data *d = ctx;
    ops64_embedding_forward(d->out, IDS, ops_w_real(d->table), T, V, H, d->scale);
    return dot(d->up, d->out, (size_t)T * H);
}

static void test_forward(void **state) {
    eft_rng r;
    eft_rng_seed(&r, 1, 6);
    double *table = rand_vec(&r, V * H, 1), *out = zeros(T * H), *outb = zeros(T * H);
    uint16_t *tb = round_bf16(table, V * H);
    double scale = eft_round_bf16(sqrtf(1536.0f)); /* 39.25, as Gemma's bf16(sqrt(H)) */
    ops64_embedding_forward(out, IDS, ops_w_real(table), T, V, H, scale);
    ops64_embedding_forward(outb, IDS, ops_w_bf16(tb), T, V, H, scale);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < H; c++) assert_true(out[t * H + c] == table[IDS[t] * H + c] * scale);
    assert_memory_equal(out, outb, T * H * sizeof(double));
    float *ft = to_f32(table, V * H), *fo = eft_calloc(T * H, 4), *fob = eft_calloc(T * H, 4);
    ops_embedding_forward(fo, IDS, ops_w_real(ft), T, V, H, (float)scale);
    ops_embedding_forward(fob, IDS, ops_w_bf16(tb), T, V, H, (float)scale);
    assert_memory_equal(fo, fob, T * H * 4);
    assert_rel_le_f32(fo, out, T * H, 1e-7); /* bf16 x bf16 products are exact in fp32 */
    eft_free(table), eft_free(out), eft_free(outb), eft_free(tb), eft_free(ft), eft_free(fo);
    eft_free(fob);
}

static void test_backward(void **state) {
    eft_rng r;
    eft_rng_seed(&r, 2, 6);
    emb_data d = {rand_vec(&r, V * H, 1), zeros(T * H), rand_vec(&r, T * H, 1), 39.25};
    double *dt = rand_vec(&r, V * H, 1), *dt0 = dup_vec(dt, V * H);
    ops64_embedding_backward(dt, d.up, IDS, T, V, H, d.scale, 0);
    for (int i = 0; i < V * H; i++) dt[i] -= dt0[i];
    for (int c = 0; c < H; c++) assert_true(dt[c] == 0); /* padding_idx: row 0 gets nothing */
    for (int c = 0; c < H; c++) assert_true(dt[4 * H + c] == 0); /* id 4 never appears */
    /* Every other row: finite differences (row 0's would be nonzero: it is the lookup that
     * sends it no gradient, by design). */
    size_t rows_from = H;
    check_grad("dtable", emb_loss, &d, d.table + rows_from, dt + rows_from, (V - 1) * H, 30, &r);
    /* Float twin. */
    float *fup = to_f32(d.up, T * H), *fdt = eft_calloc(V * H, 4);
    ops_embedding_backward(fdt, fup, IDS, T, V, H, (float)d.scale, 0);
    assert_rel_le_f32(fdt, dt, V * H, 1e-6);
    eft_free(fup), eft_free(fdt), eft_free(dt), eft_free(dt0);
    eft_free(d.table), eft_free(d.out), eft_free(d.up);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
