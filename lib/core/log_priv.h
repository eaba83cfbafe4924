/*
 * Private to framepool (core and lib/av): the log hook of framepool/base.h
 * ("Logging"), log.c. Not installed.
 */
#ifndef FRAMEPOOL_LOG_PRIV_H
#define FRAMEPOOL_LOG_PRIV_H

#include "framepool/base.h"

/* Whether a line of `level` would be passed on (cheap: one atomic load). */
int fp__log_enabled(int level);

/* Logs a printf-style message from `source` (NULL: "framepool") at `level`.
 * The text must hold no credentials (URLs go through fp__url_redact first).
 * Each line of it (split at '\n', trailing newlines dropped, empty lines
 * skipped) goes to the hook; nothing when the level is above the current
 * one. Truncated at 4 KiB. Must not be called while holding a lock the
 * application's hook may need — any of framepool's locks. */
void fp__log(int level, const char *source, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same for a text already made (lib/av's FFmpeg lines, already
 * redacted). */
void fp__log_text(int level, const char *source, const char *text);

/* lib/av registers a function called (under the log lock) with the new
 * level whenever fp_log_set_level changes it, and once now: it keeps
 * FFmpeg's level in step. */
void fp__log_on_level(void (*fn)(int level));

/* fork (diag_env.c's pthread_atfork handlers): 0 takes the log lock (after
 * every other lock of the library), 1 releases it in the parent, 2 in the
 * child, where the hook calls of other threads are forgotten. */
void fp__log_atfork(int phase);

#endif
