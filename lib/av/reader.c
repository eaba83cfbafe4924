/*
 * fp_reader, the public reader: a handle that exists before its source is
 * open (fp_reader_new, so that fp_reader_interrupt can end an open blocked
 * in the network), the checks of the options, and every fp_reader_* call
 * dispatched to the source type behind it (source.h): the file/stream
 * engine (engine.c) or the live reader (live.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "engine.h"
#include "live.h"
#include "source.h"

#include "avlog.h"
#include "avpriv.h"

#include <libavutil/pixfmt.h>
#include <stdio.h>
#include <string.h>

enum { R_NEW, R_OPENING, R_OPEN, R_FAILED };

struct fp_reader {
    _Atomic int state;           /* R_*: ops and src are set before R_OPEN is stored */
    _Atomic int interrupted;     /* fp_reader_interrupt: set by any thread, consumed
                                    when reported as FP_ECANCELED */
    const fp__source_ops *ops;
    void *src;
    char errmsg[512];            /* before the open, and a failed open's message */
    const char *file, *func;     /* fp_reader_new's caller */
    int line;
};

static void reader_finalize(void *obj)
{
    fp_reader *r = obj;
    if (r->ops)
        r->ops->close(r->src);
    r->ops = NULL;
    r->src = NULL;
}
static const fp_type reader_type = {"fp_reader", reader_finalize};

/* ---- options ------------------------------------------------------------------------------- */

static int check_options(const fp_reader_options *o, fp__err *err)
{
    if (o->format < FP_PIX_NONE || o->format >= FP_PIX_COUNT_ || o->format == FP_PIX_OTHER)
        return fp__err_set(
            err, FP_EINVAL, "invalid output format %d (use FP_PIX_NONE for native)", (int)o->format);
    if (o->format != FP_PIX_NONE && fp__pixfmt_to_av(o->format) == AV_PIX_FMT_NONE)
        return fp__err_set(err, FP_EINVAL, "output format %s is not supported",
                               fp_pixfmt_name(o->format));
    if (o->width < 0 || o->height < 0 || o->width > FP_MAX_DIMENSION ||
        o->height > FP_MAX_DIMENSION)
        return fp__err_set(err, FP_EINVAL, "invalid output size %dx%d (0..%d)", o->width,
                               o->height, FP_MAX_DIMENSION);
    if (o->every < 0 || o->threads < 0 || o->threads > 64)
        return fp__err_set(err, FP_EINVAL, "invalid every (%d) or threads (%d)", o->every,
                               o->threads);
    if (!(o->start >= 0) || !(o->end >= 0) || (o->end > 0 && o->end <= o->start))
        return fp__err_set(err, FP_EINVAL,
                               "invalid range start=%g end=%g (need 0 <= start < end)", o->start,
                               o->end);
    if (o->max_held > 4096)
        return fp__err_set(err, FP_EINVAL, "max_held %u is absurd (at most 4096)", o->max_held);
    if (o->timeout_us < 0)
        return fp__err_set(err, FP_EINVAL, "negative timeout_us");
    if (o->stream_set && o->stream < 0)
        return fp__err_set(err, FP_EINVAL, "negative stream index %d", o->stream);
    if (o->convert_ahead < 0 || o->convert_ahead > 1)
        return fp__err_set(err, FP_EINVAL, "invalid convert_ahead %d (0 off, the default; 1 on)",
                               o->convert_ahead);
    if (o->loop < -1)
        return fp__err_set(err, FP_EINVAL, "invalid loop %d (0 once, N more times, -1 forever)",
                               o->loop);
    if (o->loop_cache < -1)
        return fp__err_set(err, FP_EINVAL,
                               "invalid loop_cache %lld (0 the default, N bytes, -1 never)",
                               (long long)o->loop_cache);
    if (o->loop && (o->start > 0 || o->end > 0))
        return fp__err_set(err, FP_EINVAL, "loop does not combine with start/end");
    if (o->loop && o->live.mode != FP_LIVE_OFF)
        return fp__err_set(err, FP_EINVAL, "a live source cannot loop");
    return fp__live_check(o, err);
}

/* ---- open and close ------------------------------------------------------------------------ */

int fp_reader_new_at(fp_reader **out, const char *file, int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    fp__avlog_install(); /* FFmpeg's lines through framepool's log hook, redacted */
    *out = fp__obj_new(&reader_type, sizeof(fp_reader), sizeof(fp_reader), NULL, file, line,
                       func);
    if (!*out)
        return FP_ENOMEM;
    (*out)->file = file;
    (*out)->line = line;
    (*out)->func = func;
    return FP_OK;
}

/* A failed open: the reader keeps the message. */
static int open_failed(fp_reader *r, int rc, const char *msg)
{
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
    fp_errmsg_set("%s", r->errmsg); /* the thread channel (fp_errmsg) too */
    atomic_store(&r->state, R_FAILED);
    return rc;
}

/* Opens the source `in` described by `what` on the new reader `r`. */
static int open_source(fp_reader *r, const fp__engine_input *in, const fp_reader_options *opts,
                       const char *what)
{
    if (!r)
        return FP_EINVAL;
    int st = R_NEW;
    if (!atomic_compare_exchange_strong(&r->state, &st, R_OPENING))
        return FP_EINVAL; /* opened before: the reader keeps its source (or message) */
    fp_reader_options o = {0};
    if (opts)
        o = *opts;
    fp__err err = {0};
    char msg[sizeof err.msg];
    int rc = check_options(&o, &err);
    if (!rc && atomic_exchange(&r->interrupted, 0))
        rc = fp__err_set(&err, FP_ECANCELED, "interrupted (fp_reader_interrupt)");
    if (rc) {
        fp__err_join(msg, sizeof msg, what, err.msg);
        return open_failed(r, rc, msg);
    }
    fp__source_ctx ctx = {.what = what, .interrupted = &r->interrupted, .file = r->file,
                          .line = r->line, .func = r->func};
    const fp__source_ops *ops;
    void *src = NULL;
    if (o.live.mode != FP_LIVE_OFF && in->kind == FP__IN_URL) {
        ops = &fp__live_ops;
        rc = fp__live_open(in->url, &o, &ctx, &src, &err);
    } else {
        ops = &fp__engine_ops;
        fp__engine *e = NULL;
        rc = fp__engine_open(in, &o, &ctx, &e, &err);
        src = e;
    }
    if (rc)
        return open_failed(r, rc, err.msg);
    r->ops = ops;
    r->src = src;
    atomic_store(&r->state, R_OPEN);
    return FP_OK;
}

/* "open '<url without credentials>'" */
static void open_what(const char *url, char *what, size_t cap)
{
    char shown[152];
    fp__url_redact(url, shown, sizeof shown); /* messages never show credentials */
    snprintf(what, cap, "open '%s'", shown);
}

int fp_reader_open_url(fp_reader *r, const char *url, const fp_reader_options *opts)
{
    char what[160];
    open_what(url, what, sizeof what);
    fp__engine_input in = {.kind = FP__IN_URL, .url = url};
    return open_source(r, &in, opts, what);
}

int fp_reader_open_at(const char *url, const fp_reader_options *opts, fp_reader **out,
                      const char *file, int line, const char *func)
{
    int rc = fp_reader_new_at(out, file, line, func);
    return rc ? rc : fp_reader_open_url(*out, url, opts);
}

int fp_reader_open_memory_at(const void *buf, size_t len, const fp_reader_options *opts,
                             fp_reader **out, const char *file, int line, const char *func)
{
    int rc = fp_reader_new_at(out, file, line, func);
    if (rc)
        return rc;
    fp__engine_input in = {.kind = FP__IN_MEMORY, .buf = buf, .len = len};
    return open_source(*out, &in, opts, "open memory input");
}

int fp_reader_open_io_at(fp_reader_read_fn read, fp_reader_seek_fn seek, void *user,
                         const fp_reader_options *opts, fp_reader **out, const char *file,
                         int line, const char *func)
{
    int rc = fp_reader_new_at(out, file, line, func);
    if (rc)
        return rc;
    fp__engine_input in = {.kind = FP__IN_IO, .read = read, .seek = seek, .user = user};
    return open_source(*out, &in, opts, "open custom input");
}

void fp_reader_close(fp_reader **pr)
{
    if (pr)
        fp_unref(pr);
}

/* ---- the calls on an open reader ----------------------------------------------------------- */

static int is_open(const fp_reader *r)
{
    return r && atomic_load(&((fp_reader *)r)->state) == R_OPEN;
}

const char *fp_reader_errmsg(const fp_reader *r)
{
    if (!r)
        return "no reader";
    return is_open(r) ? r->ops->errmsg(r->src) : r->errmsg;
}

int fp_reader_next_at(fp_reader *r, fp_image **img, const char *file, int line,
                      const char *func)
{
    if (img) /* rebinding: recorded at the caller's line (FP_DIAG=refs) */
        fp_unref_at(img, file, line, func);
    if (!img || !is_open(r))
        return FP_EINVAL;
    return r->ops->next(r->src, img, file, line, func);
}

int fp_reader_seek(fp_reader *r, double seconds, int flags)
{
    if (!is_open(r))
        return FP_EINVAL;
    return r->ops->seek(r->src, seconds, flags);
}

int fp_reader_info_get(const fp_reader *r, fp_reader_info *out)
{
    if (!out)
        return FP_EINVAL;
    memset(out, 0, sizeof *out);
    if (!is_open(r))
        return FP_EINVAL;
    return r->ops->info(r->src, out);
}

int fp_reader_get_stats(fp_reader *r, fp_reader_stats *out)
{
    if (!out)
        return FP_EINVAL;
    memset(out, 0, sizeof *out);
    if (!is_open(r))
        return FP_EINVAL;
    return r->ops->stats(r->src, out);
}

void fp_reader_interrupt(fp_reader *r)
{
    if (!r)
        return;
    atomic_store(&r->interrupted, 1);
    if (atomic_load(&r->state) == R_OPEN && r->ops->interrupt)
        r->ops->interrupt(r->src);
}

void *fp__reader_source(fp_reader *r)
{
    return is_open(r) ? r->src : NULL;
}
