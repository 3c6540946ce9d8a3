/* test_linear.c: y = x W^T: finite differences of dx and dW, the accumulate flag, bf16 W (forward
 * blocks over rows, backward over columns) against the same values as real, dW NULL and dx NULL,
 * float vs double. */
#include "ops/check.h"

typedef struct lin_data {
    int T, in, out;
    double *x, *W, *y, *up;
    uint16_t *Wb; /* W rounded to bf16 */
} lin_data;

static void lin_init(lin_data *d, int T, int in, int out, uint64_t seed) {
    eft_rng r;
    eft_rng_seed(&r, seed, 5);
    *d = (lin_data){T, in, out, NULL, NULL, NULL, NULL, NULL};
    d->x = rand_vec(&r, (size_t)T * in, 1);
    d->W = rand_vec(&r, (size_t)out * in, 1 / sqrt(in));
    d->Wb = round_bf16(d->W, (size_t)out * in); /* W now holds bf16-representable values */
    d->y = zeros((size_t)T * out);
    d->up = rand_vec(&r, (size_t)T * out, 1);
}

static void lin_free(lin_data *d) {
    eft_free(d->x), eft_free(d->W), eft_free(d->y), eft_free(d->up), eft_free(d->Wb);
}

static double lin_loss(void *ctx) {
    lin_data *d = ctx;
    ops64_linear_forward(d->y, d->x, ops_w_real(d->W), d->T, d->in, d->out, false, NULL, 0);
    return dot(d->up, d->y, (size_t)d->T * d->out);
}

static const int SHAPES[][3] = {{5, 70, 130}, {3, 200, 40}, {1, 64, 64}, {17, 9, 300}};

static void test_gradients(void **state) {
    for (size_t s = 0; s < EFT_ARRAY_LEN(SHAPES); s++) {
        lin_data d;
        lin_init(&d, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], s);
        size_t nx = (size_t)d.T * d.in, nw = (size_t)d.out * d.in;
        double *dx = zeros(nx), *dW = zeros(nw);
        ops64_linear_backward(dx, dW, d.up, d.x, ops_w_real(d.W), d.T, d.in, d.out, NULL, 0);
        eft_rng r;
        eft_rng_seed(&r, 6, s);
        check_grad("dx", lin_loss, &d, d.x, dx, nx, 20, &r);
        check_grad("dW", lin_loss, &d, d.W, dW, nw, 20, &r);
        eft_free(dx), eft_free(dW);
        lin_free(&d);
    }
}

/* The bf16 paths give what the same values give as real (both twins); accumulate adds; dW NULL
 * leaves dx as it was; dx NULL leaves dW as it was. */
static void test_paths(void **state) {
    int nt = omp_get_max_threads();
    for (size_t s = 0; s < EFT_ARRAY_LEN(SHAPES); s++) {
        lin_data d;
        lin_init(&d, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], 10 + s);
        int T = d.T, in = d.in, out = d.out;
        size_t nx = (size_t)T * in, nw = (size_t)out * in, ny = (size_t)T * out;
        size_t bytes = ops64_linear_scratch_bytes(in, out, OPS_W_BF16, nt);
        assert_int_equal(ops64_linear_scratch_bytes(in, out, OPS_W_REAL, nt), 0);
        void *sc = scratch_exact(bytes);
        double *y_r = zeros(ny), *y_b = zeros(ny);
        ops64_linear_forward(y_r, d.x, ops_w_real(d.W), T, in, out, false, NULL, 0);
        ops64_linear_forward(y_b, d.x, ops_w_bf16(d.Wb), T, in, out, false, sc, bytes);
        assert_rel_le(y_b, y_r, ny, 1e-14);
        /* accumulate: y += x W^T on top of what is there */
        eft_rng r;
        eft_rng_seed(&r, 7, s);
        double *y_a = rand_vec(&r, ny, 1), *want = dup_vec(y_a, ny);
        for (size_t i = 0; i < ny; i++) want[i] += y_r[i];
        ops64_linear_forward(y_a, d.x, ops_w_bf16(d.Wb), T, in, out, true, sc, bytes);
        assert_rel_le(y_a, want, ny, 1e-14);
        /* The backward adds: every path starts from the same random gradients. */
        double *dx0 = rand_vec(&r, nx, 1), *dW0 = rand_vec(&r, nw, 1);
        double *dx_r = dup_vec(dx0, nx), *dx_b = dup_vec(dx0, nx), *dx_n = dup_vec(dx0, nx);
        double *dW_r = dup_vec(dW0, nw), *dW_x = dup_vec(dW0, nw);
        double *dx_z = zeros(nx), *dW_z = zeros(nw);
        ops64_linear_backward(dx_r, dW_r, d.up, d.x, ops_w_real(d.W), T, in, out, NULL, 0);
        ops64_linear_backward(dx_z, dW_z, d.up, d.x, ops_w_real(d.W), T, in, out, NULL, 0);
        for (size_t i = 0; i < nx; i++) dx_z[i] += dx0[i];
        for (size_t i = 0; i < nw; i++) dW_z[i] += dW0[i];
        assert_rel_le(dx_r, dx_z, nx, 1e-14);
        assert_rel_le(dW_r, dW_z, nw, 1e-14);
        ops64_linear_backward(dx_b, NULL, d.up, d.x, ops_w_bf16(d.Wb), T, in, out, sc, bytes);
        assert_rel_le(dx_b, dx_r, nx, 1e-14);
        ops64_linear_backward(dx_n, NULL, d.up, d.x, ops_w_real(d.W), T, in, out, NULL, 0);
        assert_memory_equal(dx_n, dx_r, nx * sizeof(double));
        ops64_linear_backward(NULL, dW_x, d.up, d.x, ops_w_bf16(d.Wb), T, in, out, sc, bytes);
        assert_memory_equal(dW_x, dW_r, nw * sizeof(double));
        /* float twin: bf16 against real */
        float *x = to_f32(d.x, nx), *W = to_f32(d.W, nw), *up = to_f32(d.up, ny);
        float *fy_r = eft_calloc(ny, 4), *fy_b = eft_calloc(ny, 4);
        float *fdx_r = eft_calloc(nx, 4), *fdx_b = eft_calloc(nx, 4);
        size_t fbytes = ops_linear_scratch_bytes(in, out, OPS_W_BF16, nt);
        void *fsc = scratch_exact(fbytes);
        ops_linear_forward(fy_r, x, ops_w_real(W), T, in, out, false, NULL, 0);
        ops_linear_forward(fy_b, x, ops_w_bf16(d.Wb), T, in, out, false, fsc, fbytes);
        ops_linear_backward(fdx_r, NULL, up, x, ops_w_real(W), T, in, out, NULL, 0);
        ops_linear_backward(fdx_b, NULL, up, x, ops_w_bf16(d.Wb), T, in, out, fsc, fbytes);
        double *fy_rd = zeros(ny), *fdx_rd = zeros(nx);
        for (size_t i = 0; i < ny; i++) fy_rd[i] = fy_r[i];
        for (size_t i = 0; i < nx; i++) fdx_rd[i] = fdx_r[i];
        assert_rel_le_f32(fy_b, fy_rd, ny, 1e-6);
        assert_rel_le_f32(fdx_b, fdx_rd, nx, 1e-6);
        /* float vs double */
        assert_rel_le_f32(fy_r, y_r, ny, 1e-5);
        for (size_t i = 0; i < nx; i++) dx_z[i] -= dx0[i]; /* the double gradient alone */
        assert_rel_le_f32(fdx_r, dx_z, nx, 1e-5);
        eft_free(x), eft_free(W), eft_free(up), eft_free(fy_r), eft_free(fy_b), eft_free(fdx_r);
        eft_free(fdx_b), eft_free(fsc), eft_free(fy_rd), eft_free(fdx_rd);
        eft_free(dx0), eft_free(dW0), eft_free(dx_z), eft_free(dW_z);
        eft_free(sc), eft_free(y_r), eft_free(y_b), eft_free(y_a), eft_free(want);
        eft_free(dx_r), eft_free(dx_b), eft_free(dx_n), eft_free(dW_r), eft_free(dW_x);
        lin_free(&d);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
