/*
 * Private to lib/av: the file/stream engine, the one orchestrator of the
 * reader's stages (input, decoder, convert, ahead). It runs open, next,
 * seek, info, stats and close, and records the errors the stages return
 * into its message. Two users: the public reader (reader.c, through
 * fp__engine_ops) and the live reader (live.c), which opens, reads and
 * closes connections through the interface below and never sees the
 * engine's fields.
 */
#ifndef FRAMEPOOL_AV_ENGINE_H
#define FRAMEPOOL_AV_ENGINE_H

#include "err.h"
#include "input.h" /* fp__backlog */
#include "framepool/reader.h"
#include "source.h"

#include <stdatomic.h>
#include <stdint.h>

typedef struct fp__engine fp__engine;

/* What to open. */
typedef struct fp__engine_input {
    enum { FP__IN_URL, FP__IN_MEMORY, FP__IN_IO } kind;
    const char *url;
    const void *buf;
    size_t len;
    fp_reader_read_fn read;
    fp_reader_seek_fn seek;
    void *user;
} fp__engine_input;

/* Opens an engine over `in` with the options `o` (checked by the caller).
 * Returns 0 with *out (a source for fp__engine_ops), or an error whose whole
 * message ("<ctx->what>: ...") is in *err. */
int fp__engine_open(const fp__engine_input *in, const fp_reader_options *o,
                    const fp__source_ctx *ctx, fp__engine **out, fp__err *err);

/* The engine's decoder bridge (white-box tests). */
struct fp__bridge *fp__engine_bridge(fp__engine *e);

/* ---- connections: the live reader's interface ----------------------------------------------
 * A connection is an engine that is opened (the open phase, bounded by its
 * own deadline) and then streamed (each read bounded by the deadline the
 * caller gives it); every blocking call aborts when *abort_flag is set. A
 * buffer or output frame the pools cannot give (a full shared budget) is a
 * lost frame (stats.budget_drops), not an error. */

/* Why a connection ended, or why a read returned what it did. */
typedef enum fp__conn_end {
    FP__CONN_STREAMING = 0, /* a frame came and the connection goes on */
    FP__CONN_EOF,           /* the source ended the stream */
    FP__CONN_STALLED,       /* the read deadline passed (with a frame: that frame was the
                               last the demuxer had; the connection ends after it) */
    FP__CONN_ABORTED,       /* *abort_flag was set */
    FP__CONN_HELD,          /* the caller's bound (FP_EHELD): read again later */
    FP__CONN_FAILED,        /* any other error: the connection's message says why */
} fp__conn_end;

/* How to open a connection. */
typedef struct fp__conn_config {
    const char *what;            /* "open '<url without credentials>'": its messages' prefix */
    _Atomic int *abort_flag;     /* non-zero aborts every blocking call (borrowed) */
    int64_t open_deadline_us;    /* CLOCK_MONOTONIC time the open phase ends (0 = none) */
    size_t buffer_bytes;         /* the read-ahead's bound (packets waiting to be decoded) */
    int latest;                  /* the read-ahead skips to a newer queued keyframe */
    _Atomic uint64_t *drops_sink; /* NULL, or where the connection's budget_drops total is
                                    stored as soon as it changes (borrowed) */
    fp__backlog *backlog;        /* NULL, or the read-ahead's counts (borrowed; see input.h) */
} fp__conn_config;

/* Opens a connection to `url`: the open phase aborts at open_deadline_us with
 * FP_ETIMEDOUT; then a read-ahead thread drains the demuxer (input.h) and
 * each read takes the packets it queued. Returns 0 with *out, or an error
 * whose whole message ("<what>: ...") is in *err. */
int fp__conn_open(const char *url, const fp_reader_options *o, const fp__conn_config *cc,
                  const char *file, int line, const char *func, fp__engine **out, fp__err *err);
/* Reads the next frame (as fp_reader_next: +1 in *img) within the
 * CLOCK_MONOTONIC deadline `deadline_us` (0 = none). A frame lost inside the
 * read because a shared budget is full (budget_drops) shows that the source
 * is still sending: when rearm_us > 0 it moves the deadline to that moment
 * plus rearm_us (the stall limit), so a caller holding frames does not make
 * a healthy connection look stalled. Returns 1, 0 at the end, or a negative
 * error; *why says which case it is (see fp__conn_end). */
int fp__conn_read(fp__engine *c, fp_image **img, int64_t deadline_us, int64_t rearm_us,
                  fp__conn_end *why, const char *file, int line, const char *func);
/* The connection's last message, its stream, its statistics. */
const char *fp__conn_errmsg(const fp__engine *c);
int fp__conn_info(const fp__engine *c, fp_reader_info *out);
int fp__conn_stats(fp__engine *c, fp_reader_stats *out);
/* Closes the connection and sets *c to NULL (NULL-safe). */
void fp__conn_close(fp__engine **c);

#endif
