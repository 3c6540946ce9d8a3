/* lora_merge.c: an adapter baked into its base checkpoint (see lora_merge.h). */
#include "peft/lora_merge.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/half.h"
#include "io/safetensors.h"

#include <cblas.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- one tensor ---------------------------------------------------------------------------- */

static int widen(float *dst, const st_tensor *t) {
    return st_to_f32(t, dst, (size_t)t->numel);
}

/* dst = values rounded to the tensor's dtype (bf16: round to nearest even). */
static void narrow(void *dst, const float *src, st_dtype dtype, size_t n) {
    if (dtype == ST_BF16) {
        eft_f32_to_bf16_n(dst, src, n);
    } else if (dtype == ST_F16) {
        uint16_t *h = dst;
        for (size_t i = 0; i < n; i++) h[i] = eft_f32_to_f16(src[i]);
    } else {
        memcpy(dst, src, n * sizeof(float));
    }
}

/* Rounds values in place to what the dtype can hold. */
static void round_to(float *v, st_dtype dtype, size_t n) {
    if (dtype == ST_BF16)
        for (size_t i = 0; i < n; i++) v[i] = eft_round_bf16(v[i]);
    else if (dtype == ST_F16)
        for (size_t i = 0; i < n; i++) v[i] = eft_f16_to_f32(eft_f32_to_f16(v[i]));
}

/* d [out, in] = B_e A_e of map e (0 for a plain linear map; an expert tensor's B is strided,
 * peft/lora.h). b [out, r] is scratch. */
static void product(float *d, const g4_lora *L, const g4_tensor *t, int e, float *b) {
    int64_t out = t->out, in = t->in, E = t->count;
    int r = L->r;
    const float *B = L->B;
    if (E > 1) {
        for (int64_t o = 0; o < out; o++)
            for (int j = 0; j < r; j++) b[o * r + j] = L->B[(o * r + j) * E + e];
        B = b;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, r, 1.0f, B, r,
                L->A + (size_t)e * r * (size_t)in, (int)in, 0.0f, d, (int)in);
}

/* The merged values of base tensor `bt` (adapter on parameter p) into dst, in bt's dtype.
 * Returns |delta| / |W| (L2), or -1 with an error. */
static double merge_one(void *dst, const st_tensor *bt, const g4_param *p, const lora_merge_opts *o,
                        lora_merge_stats *st) {
    const g4_tensor *t = p->t;
    const g4_lora *L = p->lora;
    size_t n = (size_t)bt->numel, per = (size_t)t->out * (size_t)t->in;
    float *w = eft_malloc(n * sizeof(float));
    float *d = eft_malloc(per * sizeof(float));
    float *b = eft_malloc((size_t)t->out * (size_t)L->r * sizeof(float));
    double rel = -1;
    if (widen(w, bt)) goto done;
    if (o && o->roundtrip && o->wants && o->wants(t, o->ctx)) {
        o->roundtrip(w, (int64_t)n, o->ctx);
        round_to(w, bt->dtype, n); /* Axolotl hands the round trip back in the base's dtype */
        st->roundtrips++;
    }
    double dn = 0, wn = 0;
    for (int e = 0; e < t->count; e++) {
        product(d, L, t, e, b);
        float *we = w + (size_t)e * per;
        for (size_t i = 0; i < per; i++) {
            float delta = d[i] * L->scale; /* PEFT: (B @ A) * scaling, then added */
            wn += (double)we[i] * we[i];
            dn += (double)delta * delta;
            we[i] = we[i] + delta;
        }
    }
    narrow(dst, w, bt->dtype, n);
    rel = wn > 0 ? sqrt(dn / wn) : 0;
done:
    eft_free(b);
    eft_free(d);
    eft_free(w);
    return rel;
}

/* ---- shards -------------------------------------------------------------------------------- */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The adapted parameter whose checkpoint tensor is bt, or NULL. */
static const g4_param *adapted(const lora_adapter *a, const st_tensor *const *bts,
                               const st_tensor *bt) {
    for (int k = 0; k < a->n_modules; k++)
        if (bts[k] == bt) return a->params[k];
    return NULL;
}

static int write_shard(const g4_weights *w, const lora_adapter *a, const st_tensor *const *bts,
                       int s, const char *dir, const lora_merge_opts *o, lora_merge_stats *st) {
    const st_archive *ar = w->archive;
    st_writer *wr = st_writer_new();
    size_t n = st_count(ar), nbuf = 0;
    void **bufs = eft_calloc(EFT_MAX(n, 1), sizeof *bufs);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const st_tensor *bt = st_at(ar, i);
        if (bt->shard != s) continue;
        const g4_param *p = adapted(a, bts, bt);
        const void *data = bt->data;
        if (p) {
            void *m = bufs[nbuf++] = eft_malloc(EFT_MAX(bt->nbytes, 1));
            double rel = merge_one(m, bt, p, o, st);
            if (rel < 0) rc = -1;
            st->max_rel = fmax(st->max_rel, rel);
            st->merged++;
            data = m;
        } else {
            st->copied++;
        }
        st_writer_add(wr, bt->name, bt->dtype, bt->ndim, bt->shape, data);
    }
    size_t nm = 0;
    const st_meta *meta = st_metadata(ar, s, &nm);
    for (size_t i = 0; i < nm; i++) st_writer_meta(wr, meta[i].key, meta[i].value);
    char *path = eft_path_join(dir, base_name(st_shard_path(ar, s)));
    if (!rc) rc = st_writer_write(wr, path);
    st->shards += !rc;
    eft_free(path);
    for (size_t i = 0; i < nbuf; i++) eft_free(bufs[i]);
    eft_free(bufs);
    st_writer_free(wr);
    return rc;
}

/* ---- other files --------------------------------------------------------------------------- */

/* Weight files in any format: never copied (the merged shards replace the safetensors ones). */
static bool weight_file(const char *name) {
    static const char *ext[] = {".safetensors", ".bin",  ".gguf", ".pt",
                                ".pth",         ".ckpt", ".h5",   ".msgpack"};
    size_t n = strlen(name);
    for (size_t i = 0; i < EFT_ARRAY_LEN(ext); i++) {
        size_t m = strlen(ext[i]);
        if (n > m && !strcmp(name + n - m, ext[i])) return true;
    }
    return false;
}

static int copy_file(const char *from, const char *to) {
    size_t n;
    char *data = eft_read_file(from, &n);
    if (!data) return -1;
    int rc = eft_write_file_atomic(to, data, n);
    eft_free(data);
    return rc;
}

/* Copies the regular files of `dir` (symbolic links followed, as in a Hugging Face cache
 * snapshot) that are not weights and not hidden. */
static int copy_files(const char *dir, const char *out, lora_merge_stats *st) {
    DIR *d = opendir(dir);
    if (!d) return eft_fail_errno(dir, "Cannot list the base model's folder.");
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (e->d_name[0] == '.' || weight_file(e->d_name)) continue;
        char *from = eft_path_join(dir, e->d_name);
        struct stat sb;
        if (stat(from, &sb) == 0 && S_ISREG(sb.st_mode)) {
            char *to = eft_path_join(out, e->d_name);
            rc = copy_file(from, to);
            st->files += !rc;
            eft_free(to);
        }
        eft_free(from);
    }
    closedir(d);
    return rc;
}

/* ---- the folder ---------------------------------------------------------------------------- */

int lora_merge(const g4_weights *w, const lora_adapter *a, const char *base_dir, const char *out,
               const lora_merge_opts *o, lora_merge_stats *st) {
    memset(st, 0, sizeof *st);
    const st_archive *ar = w->archive;
    const st_tensor **bts = eft_calloc((size_t)EFT_MAX(a->n_modules, 1), sizeof *bts);
    int rc = 0;
    for (int k = 0; k < a->n_modules && !rc; k++) {
        bts[k] = st_find(ar, a->params[k]->t->name);
        if (!bts[k])
            rc = eft_fail("%s: the checkpoint has no tensor %s for the adapter's %s.", base_dir,
                          a->params[k]->t->name, a->tensors[2 * k].name);
    }
    char *tmp = eft_asprintf("%s.tmp-%ld", out, (long)getpid());
    char *old = eft_asprintf("%s.old-%ld", out, (long)getpid());
    if (!rc) rc = eft_remove_tree(tmp) || eft_mkdirs(tmp);
    if (!rc) rc = copy_files(base_dir, tmp, st);
    for (int s = 0; s < st_shard_count(ar) && !rc; s++) rc = write_shard(w, a, bts, s, tmp, o, st);
    /* Into place: the old folder moves aside first, and goes only once the new one is in. */
    bool had = !rc && eft_path_exists(out);
    if (had && rename(out, old) != 0) rc = eft_fail_errno(out, "Cannot move the old folder aside.");
    if (!rc && rename(tmp, out) != 0) {
        rc = eft_fail_errno(out, "Cannot rename the merged folder into place.");
        if (had) rename(old, out);
    }
    if (!rc && had) eft_remove_tree(old);
    if (rc) {
        eft_err_context("merging the adapter into %s", out);
        eft_remove_tree(tmp);
    }
    eft_free(old);
    eft_free(tmp);
    eft_free(bts);
    return rc ? -1 : 0;
}
