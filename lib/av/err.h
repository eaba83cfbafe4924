/*
 * Private to lib/av: the error value the reader's stages return. A stage
 * fills it (code and message, without the "open 'x.mp4': " prefix) and
 * returns the code; the engine (engine.c), the one orchestrator, records it
 * into the reader's message.
 */
#ifndef FRAMEPOOL_AV_ERR_H
#define FRAMEPOOL_AV_ERR_H

#include "framepool/base.h"

#include <stdarg.h>
#include <stdio.h>

typedef struct fp__err {
    int code;
    char msg[512];
} fp__err;

/* Sets *e to `code` and the formatted message. Returns code. */
__attribute__((format(printf, 3, 4))) static inline int fp__err_set(fp__err *e, int code,
                                                                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

/* Writes "<what>: <msg>" to dst[cap] (truncated at cap). */
static inline void fp__err_join(char *dst, size_t cap, const char *what, const char *msg)
{
    int n = snprintf(dst, cap, "%s: ", what);
    if (n < 0 || (size_t)n >= cap)
        n = 0;
    snprintf(dst + n, cap - (size_t)n, "%s", msg);
}

/* FP_EHELD with its one message: the caller holds `held` frames of `max`. */
static inline int fp__err_held(fp__err *e, unsigned held, unsigned max)
{
    return fp__err_set(e, FP_EHELD,
                       "the caller holds %u frames, the max_held bound of %u; release frames "
                       "(fp_unref) before asking for more, or raise fp_reader_options.max_held",
                       held, max);
}

/* Why the decoder pool refused a buffer (fp__bridge.exhausted). */
enum { FP__EXHAUSTED_CAP = 1, FP__EXHAUSTED_BUDGET = 2 };

/* FP_ELIMIT with its one message: the shared budget (fp_reader_options.budget)
 * of `max` bytes, `used` of them in use, could not hold a `need`-byte buffer
 * for `what` ("the decoder", "the conversion"). */
static inline int fp__err_budget(fp__err *e, const char *what, unsigned long long max,
                                 unsigned long long used, unsigned long long need)
{
    return fp__err_set(e, FP_ELIMIT,
                       "the shared budget is full: %llu of its %llu bytes are in use and %s "
                       "needed a %llu-byte buffer; raise the budget's max_bytes, open "
                       "fewer readers on it, release frames sooner, or read smaller frames "
                       "(a decoder's buffers are the source's size, a conversion's the "
                       "output's)",
                       used, max, what, need);
}

#endif
