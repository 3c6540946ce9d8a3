/* log.c: leveled messages and the progress line (see log.h). */
#include "base/log.h"

#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = -1;
/* A progress line is drawn on the terminal without its newline: a message first ends it. */
static bool progress_open;

static int level_from_env(void) {
    const char *e = getenv("EFT_LOG");
    if (!e) return EFT_LOG_INFO;
    if (!strcmp(e, "debug")) return EFT_LOG_DEBUG;
    if (!strcmp(e, "warn")) return EFT_LOG_WARN;
    if (!strcmp(e, "quiet")) return EFT_LOG_QUIET;
    return EFT_LOG_INFO;
}

void eft_log_set_level(int level) { log_level = level; }

int eft_log_level(void) {
    if (log_level < 0) log_level = level_from_env();
    return log_level;
}

static void vlog(int level, const char *prefix, const char *fmt, va_list ap) {
    if (level < eft_log_level()) return;
    if (progress_open) {
        fputc('\n', stdout);
        progress_open = false;
    }
    fflush(stdout); /* keep stdout and stderr in order when both go to one file */
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void eft_debug(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(EFT_LOG_DEBUG, "debug: ", fmt, ap);
    va_end(ap);
}

void eft_info(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(EFT_LOG_INFO, "", fmt, ap);
    va_end(ap);
}

void eft_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(EFT_LOG_WARN, "warning: ", fmt, ap);
    va_end(ap);
}

/* The texts already warned about; a short list is enough for a run's notices. */
static char **once_seen;
static int once_n;

void eft_warn_once(const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (int i = 0; i < once_n; i++)
        if (!strcmp(once_seen[i], buf)) return;
    once_seen = eft_realloc(once_seen, sizeof *once_seen * (size_t)(once_n + 1));
    once_seen[once_n++] = eft_strdup(buf);
    eft_warn("%s", buf);
}

double eft_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void eft_progress_begin(eft_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->tty = isatty(STDOUT_FILENO) && !getenv("EFT_NO_TTY");
    p->t_start = eft_now();
    p->t_last_draw = -1;
}

void eft_progress_update(eft_progress *p, int64_t done, const char *suffix) {
    double now = eft_now();
    bool final = done >= p->total;
    if (p->tty && !final && p->t_last_draw >= 0 && now - p->t_last_draw < 0.1) return;
    p->t_last_draw = now;
    char line[512];
    int n;
    if (p->tty) {
        enum { BAR = 24 };
        char bar[BAR + 1];
        int fill = p->total > 0 ? (int)(BAR * done / p->total) : 0;
        for (int i = 0; i < BAR; i++) bar[i] = i < fill ? '#' : '.';
        bar[BAR] = 0;
        n = snprintf(line, sizeof line, "\r%s [%s] %lld/%lld %s", p->label, bar, (long long)done,
                     (long long)p->total, suffix ? suffix : "");
        int pad = p->last_len > n ? p->last_len - n : 0;
        fprintf(stdout, "%s%*s", line, pad, "");
        p->last_len = n;
        progress_open = true;
    } else {
        fprintf(stdout, "%s %lld/%lld %s\n", p->label, (long long)done, (long long)p->total,
                suffix ? suffix : "");
    }
    fflush(stdout);
}

void eft_progress_end(eft_progress *p) {
    if (p->tty && p->last_len > 0 && progress_open) fputc('\n', stdout);
    progress_open = false;
    fflush(stdout);
    p->last_len = 0;
}
