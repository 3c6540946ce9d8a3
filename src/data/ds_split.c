/* ds_split.c: Hugging Face split specs (see ds_split.h). */
#include "data/ds_split.h"

#include "base/err.h"

#include <ctype.h>
#include <fenv.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_HELP                                                                                  \
    "Write a split name with an optional slice: train, train[:10%%], train[10:20], "               \
    "train[-5%%:], parts joined by +"

static bool word(char c) {
    return isalnum((unsigned char)c) || c == '_';
}

/* An integer as Python's int() reads the spec's `-?[\d_]+` (underscores between digits). */
static const char *read_int(const char *p, int64_t *v, bool *ok) {
    bool neg = *p == '-';
    if (neg) p++;
    int64_t x = 0;
    int digits = 0;
    char prev = 0;
    *ok = false;
    while (isdigit((unsigned char)*p) || *p == '_') {
        if (*p == '_') {
            if (!isdigit((unsigned char)prev) || !isdigit((unsigned char)p[1])) return p;
        } else {
            if (x > (INT64_MAX - 9) / 10) return p;
            x = x * 10 + (*p - '0');
            digits++;
        }
        prev = *p++;
    }
    *ok = digits > 0;
    *v = neg ? -x : x;
    return p;
}

static int parse_part(const char *s, size_t len, ds_split_part *part, const char *spec) {
    memset(part, 0, sizeof *part);
    char buf[256];
    if (len >= sizeof buf) return eft_fail("split \"%s\": too long. " SPEC_HELP ".", spec);
    memcpy(buf, s, len);
    buf[len] = 0;
    const char *p = buf;
    /* name: \w+(\.\w+)* */
    size_t n = 0;
    while (word(p[n]) || (p[n] == '.' && n > 0 && word(p[n + 1]))) n++;
    if (n == 0 || n >= sizeof part->name)
        return eft_fail("split \"%s\": \"%s\" does not start with a split name. " SPEC_HELP ".",
                        spec, buf);
    memcpy(part->name, p, n);
    p += n;
    bool from_pct = false, to_pct = false;
    if (*p == '[') {
        p++;
        bool ok = true;
        if (*p != ':') {
            p = read_int(p, &part->from, &ok);
            if (!ok) goto bad;
            part->has_from = true;
            if (*p == '%') from_pct = true, p++;
        }
        if (*p++ != ':') goto bad;
        if (*p != ']') {
            p = read_int(p, &part->to, &ok);
            if (!ok) goto bad;
            part->has_to = true;
            if (*p == '%') to_pct = true, p++;
        }
        if (*p++ != ']') goto bad;
    }
    part->pct = from_pct || to_pct;
    if (*p == '(') {
        const char *close = strchr(p, ')');
        if (!close || close[1]) goto bad;
        size_t rl = (size_t)(close - p - 1);
        if (rl == 7 && !strncmp(p + 1, "closest", 7))
            part->pct1 = false;
        else if (rl == 18 && !strncmp(p + 1, "pct1_dropremainder", 18))
            part->pct1 = true;
        else
            return eft_fail("split \"%s\": rounding must be closest or pct1_dropremainder.", spec);
        if (!part->pct)
            return eft_fail(
                "split \"%s\": a rounding can only follow a percent slice (train[:10%%]).", spec);
        p = close + 1;
    }
    if (*p) goto bad;
    if (part->pct &&
        ((part->has_from && llabs(part->from) > 100) || (part->has_to && llabs(part->to) > 100)))
        return eft_fail("split \"%s\": percent boundaries must be between -100 and 100.", spec);
    return 0;
bad:
    return eft_fail("split \"%s\": cannot read \"%s\". " SPEC_HELP ".", spec, buf);
}

int ds_split_parse(const char *spec, ds_split_spec *out) {
    memset(out, 0, sizeof *out);
    const char *p = spec;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        const char *plus = strchr(p, '+');
        const char *end = plus ? plus : p + strlen(p);
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
        out->parts = eft_realloc(out->parts, (size_t)(out->n + 1) * sizeof *out->parts);
        if (parse_part(p, (size_t)(e - p), &out->parts[out->n], spec)) {
            ds_split_free(out);
            return -1;
        }
        out->n++;
        if (!plus) return 0;
        p = plus + 1;
    }
}

void ds_split_free(ds_split_spec *s) {
    eft_free(s->parts);
    memset(s, 0, sizeof *s);
}

/* Python's int(round(x)) for the doubles that occur here: halves go to the even neighbour. */
static int64_t round_half_even(double x) {
    int mode = fegetround();
    fesetround(FE_TONEAREST);
    double r = nearbyint(x);
    fesetround(mode);
    return (int64_t)r;
}

int ds_split_range(const ds_split_part *p, int64_t n, int64_t *from, int64_t *to) {
    int64_t f = 0, t = n;
    if (p->pct) {
        if (p->pct1 && n < 100)
            return eft_fail("split %s: pct1_dropremainder rounding needs at least 100 rows; the "
                            "split has %lld. Use the default rounding.",
                            p->name, (long long)n);
        int64_t unit = p->pct1 ? (int64_t)trunc((double)n / 100.0) : 0;
        if (p->has_from)
            f = p->pct1 ? p->from * unit : round_half_even((double)(p->from * n) / 100.0);
        if (p->has_to) t = p->pct1 ? p->to * unit : round_half_even((double)(p->to * n) / 100.0);
    } else {
        if (p->has_from) f = p->from;
        if (p->has_to) t = p->to;
    }
    if (f < 0) f = EFT_MAX(n + f, 0);
    if (t < 0) t = EFT_MAX(n + t, 0);
    f = EFT_MIN(f, n);
    t = EFT_MIN(t, n);
    *from = f;
    *to = EFT_MAX(t, f);
    return 0;
}
