/* sched.c: schedule factors lambda(k) (see sched.h).
 *
 * Each formula keeps the reference's order of double operations (transformers/optimization.py,
 * axolotl/utils/schedulers.py), so that lambda(k) is the same double, not merely close: the
 * learning rates agree to the last bit with the Python schedulers on the same libm.
 */
#include "train/sched.h"

#include "base/err.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    sched_kind kind;
    const char *kwargs; /* the lr_scheduler_kwargs it takes, space-separated */
} sched_names[] = {
    {"linear", SCHED_LINEAR, ""},
    {"cosine", SCHED_COSINE, "num_cycles"},
    {"constant", SCHED_CONSTANT, NULL}, /* NULL: kwargs ignored */
    {"constant_with_warmup", SCHED_CONSTANT_WITH_WARMUP, NULL},
    {"cosine_with_min_lr", SCHED_COSINE_WITH_MIN_LR, "num_cycles min_lr_rate min_lr"},
    {"polynomial", SCHED_POLYNOMIAL, "lr_end power"},
    {"cosine_with_restarts", SCHED_COSINE_WITH_RESTARTS, "num_cycles"},
};

static cfg_pos place(const eft_config *c, cfg_pos at) {
    return at.file ? at : (cfg_pos){c->path, 0, 0};
}

/* Whether `key` is one of the space-separated words of `list`. */
static bool takes(const char *list, const char *key) {
    size_t n = strlen(key);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ' ');
        size_t w = e ? (size_t)(e - p) : strlen(p);
        if (w == n && !memcmp(p, key, n)) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static int check_kwargs(const eft_config *c, const char *name, const char *list) {
    const cfg_map *kw = &c->lr_scheduler_kwargs;
    for (int i = 0; list && i < kw->n; i++)
        if (!takes(list, kw->items[i].key))
            return cfg_fail_at(kw->items[i].key_at, "lr_scheduler_kwargs",
                               "%s is not an argument of the %s schedule (it takes %s). Remove "
                               "it.",
                               kw->items[i].key, name, *list ? list : "none");
    return 0;
}

int sched_from_config(sched *s, const eft_config *c, int64_t W, int64_t T) {
    assert(W >= 0 && T >= 0);
    const char *name = c->lr_scheduler.v ? c->lr_scheduler.v : "cosine";
    size_t i = 0;
    while (i < EFT_ARRAY_LEN(sched_names) && strcmp(sched_names[i].name, name)) i++;
    if (i == EFT_ARRAY_LEN(sched_names))
        return cfg_fail_at(place(c, c->lr_scheduler.at), "lr_scheduler",
                           "%s is not supported yet. Use cosine, linear, constant, "
                           "constant_with_warmup, cosine_with_min_lr, polynomial or "
                           "cosine_with_restarts.",
                           name);
    const sched_kind kind = sched_names[i].kind;
    *s = (sched){.kind = kind,
                 .lr = c->learning_rate.v,
                 .W = W,
                 .T = T,
                 .num_cycles = kind == SCHED_COSINE_WITH_RESTARTS ? 1.0 : 0.5,
                 .lr_end = 1e-7,
                 .power = 1.0};
    /* Axolotl swaps in its own cosine when cosine_min_lr_ratio is set and non-zero; that one takes
     * no kwargs (num_cycles is silently unused, as in Axolotl). */
    if (s->kind == SCHED_COSINE && c->cosine_min_lr_ratio.set && c->cosine_min_lr_ratio.v != 0) {
        s->kind = SCHED_COSINE_MIN_RATIO;
        s->min_rate = c->cosine_min_lr_ratio.v;
        return 0;
    }
    if (check_kwargs(c, name, sched_names[i].kwargs)) return -1;
    if (!sched_names[i].kwargs) return 0;
    const cfg_map *kw = &c->lr_scheduler_kwargs;
    const char *what = "lr_scheduler_kwargs";
    if (cfg_map_float(kw, "num_cycles", &s->num_cycles, what) ||
        cfg_map_float(kw, "lr_end", &s->lr_end, what) ||
        cfg_map_float(kw, "power", &s->power, what))
        return -1;
    if (s->kind == SCHED_COSINE_WITH_MIN_LR) {
        const cfg_map_item *rate = cfg_map_find(kw, "min_lr_rate"),
                           *min = cfg_map_find(kw, "min_lr");
        if (!rate == !min)
            return cfg_fail_at(place(c, rate ? kw->at : c->lr_scheduler.at), "lr_scheduler",
                               "cosine_with_min_lr needs exactly one of min_lr_rate (a fraction "
                               "of learning_rate) or min_lr in lr_scheduler_kwargs%s.",
                               rate ? ", not both"
                                    : ", e.g. lr_scheduler_kwargs: {min_lr_rate: 0.1}");
        if (rate) {
            if (cfg_map_float(kw, "min_lr_rate", &s->min_rate, what)) return -1;
        } else {
            double min_lr = 0;
            if (cfg_map_float(kw, "min_lr", &min_lr, what)) return -1;
            if (s->lr == 0)
                return cfg_fail_at(min->key_at, "lr_scheduler_kwargs",
                                   "min_lr needs a learning_rate above 0 (it is divided by it); "
                                   "use min_lr_rate.");
            s->min_rate = min_lr / s->lr;
        }
    }
    if (s->kind == SCHED_POLYNOMIAL) {
        if (!(s->lr > s->lr_end))
            return cfg_fail_at(place(c, c->learning_rate.at), "learning_rate",
                               "the polynomial schedule decays to lr_end = %g, which must be below "
                               "learning_rate (%g).",
                               s->lr_end, s->lr);
        if (W == T)
            return cfg_fail_at(place(c, c->lr_scheduler.at), "lr_scheduler",
                               "polynomial decays over the %lld updates after warmup, but warmup "
                               "takes all %lld updates. Lower warmup_steps or warmup_ratio.",
                               (long long)(T - W), (long long)T);
    }
    return 0;
}

/* Python's max(0.0, x) (0.0 unless x > 0, so never -0.0 or NaN) and x % 1.0 (never negative). */
static double py_max0(double x) {
    return x > 0.0 ? x : 0.0;
}
static double py_mod1(double x) {
    double r = fmod(x, 1.0);
    return r < 0 ? r + 1.0 : r;
}

double sched_lambda(const sched *s, int64_t k) {
    assert(k >= 0);
    if (s->kind == SCHED_CONSTANT) return 1.0;
    if (k < s->W) return (double)k / (double)EFT_MAX(1, s->W);
    const double after = (double)(k - s->W), span = (double)EFT_MAX(1, s->T - s->W);
    const double p = after / span;
    switch (s->kind) {
    case SCHED_LINEAR:
        return py_max0((double)(s->T - k) / span);
    case SCHED_COSINE:
        return py_max0(0.5 * (1.0 + cos(M_PI * s->num_cycles * 2.0 * p)));
    case SCHED_COSINE_MIN_RATIO:
        return (1 - s->min_rate) * (0.5 * (1.0 + cos(M_PI * p))) + s->min_rate;
    case SCHED_CONSTANT:
    case SCHED_CONSTANT_WITH_WARMUP:
        return 1.0;
    case SCHED_COSINE_WITH_MIN_LR: {
        double f = 0.5 * (1.0 + cos(M_PI * s->num_cycles * 2.0 * p));
        return py_max0(f * (1 - s->min_rate) + s->min_rate);
    }
    case SCHED_POLYNOMIAL: {
        if (k > s->T) return s->lr_end / s->lr;
        double remaining = 1 - after / (double)(s->T - s->W);
        return ((s->lr - s->lr_end) * pow(remaining, s->power) + s->lr_end) / s->lr;
    }
    case SCHED_COSINE_WITH_RESTARTS:
        if (p >= 1.0) return 0.0;
        return py_max0(0.5 * (1.0 + cos(M_PI * py_mod1(s->num_cycles * p))));
    }
    return 1.0;
}

double sched_lr(const sched *s, int64_t k) {
    return s->lr * sched_lambda(s, k);
}
