/*
 * Private to lib/av: FFmpeg's log lines through framepool's log hook
 * (framepool/base.h, "Logging").
 */
#ifndef FRAMEPOOL_AV_AVLOG_H
#define FRAMEPOOL_AV_AVLOG_H

/* Installs framepool's av_log callback, once per process (later calls do
 * nothing): FFmpeg's lines, reassembled from their pieces per thread, with
 * every URL redacted, go to fp__log with FFmpeg's component as the source;
 * FFmpeg's level follows fp_log_set_level. Thread-safe. */
void fp__avlog_install(void);

#endif
