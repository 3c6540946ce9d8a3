/* log.h: messages to the user on stderr, and a progress line on stdout.
 *
 * Levels: debug < info < warn. The level comes from EFT_LOG (debug|info|warn|quiet) or
 * eft_log_set_level(); the default is info. Warnings start with "warning: "; eft_warn_once()
 * prints a given message once per process (for notices such as keys that have no effect).
 *
 * The progress line redraws itself in place when stdout is a terminal, and is a plain line per
 * update otherwise (logs, CI), so that nothing is lost when output goes to a file.
 */
#ifndef EFT_BASE_LOG_H
#define EFT_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum { EFT_LOG_DEBUG = 0, EFT_LOG_INFO = 1, EFT_LOG_WARN = 2, EFT_LOG_QUIET = 3 };

void eft_log_set_level(int level);
int eft_log_level(void);
void eft_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void eft_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void eft_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the warning once per process: later calls with the same text are dropped. */
void eft_warn_once(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A progress line: "label [#####.....] done/total  suffix". */
typedef struct eft_progress {
    const char *label;
    int64_t total;
    double t_start, t_last_draw;
    bool tty;
    int last_len;
} eft_progress;

void eft_progress_begin(eft_progress *p, const char *label, int64_t total);
/* Draws the line for `done` units with the caller's suffix (loss, rate, ...). On a terminal
 * redraws are limited to about 10 per second; the final update is always drawn. */
void eft_progress_update(eft_progress *p, int64_t done, const char *suffix);
void eft_progress_end(eft_progress *p);

/* Wall-clock seconds from a monotonic clock. */
double eft_now(void);

#endif
