/*
 * FFmpeg's log lines through framepool's hook (avlog.h).
 *
 * FFmpeg logs a line in pieces (av_log calls without a trailing newline);
 * each thread keeps its unfinished line until the newline comes, so that a
 * URL is redacted whole. The buffer is the thread's own (freed when the
 * thread ends), grown as needed up to LINE_MAX; a longer line is cut at a
 * white space before the limit, so no cut URL is shown.
 */
#define _POSIX_C_SOURCE 200809L
#include "avlog.h"

#include "log_priv.h"
#include "redact.h"

#include <libavutil/log.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_ 65536
#define SOURCE_MAX 32

typedef struct pending {
    char *buf;
    size_t len, cap;
    int level;
    int cut; /* the line reached LINE_MAX_: the rest is dropped */
    char source[SOURCE_MAX];
} pending;

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static pthread_key_t pending_key;
static int have_key;

static void pending_free(void *p)
{
    pending *q = p;
    if (q) {
        free(q->buf);
        free(q);
    }
}

static pending *get_pending(void)
{
    if (!have_key)
        return NULL;
    pending *q = pthread_getspecific(pending_key);
    if (q)
        return q;
    q = calloc(1, sizeof *q);
    if (q && pthread_setspecific(pending_key, q) != 0) {
        free(q);
        q = NULL;
    }
    return q;
}

/* Appends s[n] to the thread's line; past LINE_MAX_ the line is cut at its
 * last white space and the rest dropped. Returns 0, or -1 without memory. */
static int append(pending *q, const char *s, size_t n)
{
    if (q->cut)
        return 0;
    if (q->len + n + 1 > q->cap) {
        size_t cap = q->cap ? q->cap : 512;
        while (cap < q->len + n + 1 && cap < LINE_MAX_)
            cap *= 2;
        if (cap > LINE_MAX_)
            cap = LINE_MAX_;
        if (cap != q->cap) {
            char *b = realloc(q->buf, cap);
            if (!b)
                return -1;
            q->buf = b;
            q->cap = cap;
        }
    }
    if (q->len + n + 1 > q->cap) {
        n = q->cap - 1 - q->len;
        q->cut = 1;
    }
    memcpy(q->buf + q->len, s, n);
    q->len += n;
    q->buf[q->len] = '\0';
    if (q->cut) {
        while (q->len > 0 && q->buf[q->len - 1] != ' ' && q->buf[q->len - 1] != '\t')
            q->len--;
        q->buf[q->len] = '\0';
    }
    return 0;
}

/* Redacts and logs one finished line (buf[len], without its newline). */
static void flush_line(int level, const char *source, const char *line, int cut)
{
    char small[1024];
    size_t need = fp__redact_text(line, small, sizeof small);
    char *out = small;
    if (need >= sizeof small) {
        out = malloc(need + 1);
        if (!out)
            return; /* no memory: the line is lost rather than shown unredacted */
        fp__redact_text(line, out, need + 1);
    }
    if (cut)
        fp__log(level, source, "%s[line cut]", out);
    else
        fp__log_text(level, source, out);
    if (out != small)
        free(out);
}

static void av_callback(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level >= 0)
        level &= 0xff; /* FFmpeg may add colour bits above */
    if (!fp__log_enabled(level) || !fmt)
        return;
    pending *q = get_pending();
    if (!q)
        return;

    /* the piece, without FFmpeg's "[name @ 0x...] " prefix: the source says it */
    char small[1024];
    int pp = 0;
    va_list vl2;
    va_copy(vl2, vl);
    int n = av_log_format_line2(avcl, level, fmt, vl, small, sizeof small, &pp);
    char *piece = small;
    if (n >= (int)sizeof small) {
        piece = malloc((size_t)n + 1);
        pp = 0;
        if (piece)
            n = av_log_format_line2(avcl, level, fmt, vl2, piece, n + 1, &pp);
    }
    va_end(vl2);
    if (!piece || n < 0) {
        q->len = 0;
        q->cut = 0; /* the broken line is dropped whole */
        if (piece && piece != small)
            free(piece);
        return;
    }

    if (q->len == 0 && !q->cut) {
        /* the first piece of a line names its source and level */
        const char *name = NULL;
        if (avcl) {
            const AVClass *avc = *(const AVClass *const *)avcl;
            if (avc && avc->item_name)
                name = avc->item_name(avcl);
        }
        if (!name || !*name || strcmp(name, "NULL") == 0) /* a context before its format */
            name = "ffmpeg";
        size_t k = strlen(name);
        if (k >= SOURCE_MAX)
            k = SOURCE_MAX - 1;
        memcpy(q->source, name, k);
        q->source[k] = '\0';
        q->level = level;
    }
    const char *p = piece;
    size_t left = (size_t)n;
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        size_t k = nl ? (size_t)(nl - p) : left;
        if (append(q, p, k) != 0) {
            q->len = 0;
            q->cut = 0;
            break;
        }
        if (!nl)
            break;
        if (q->len > 0 || q->cut)
            flush_line(q->level, q->source, q->buf ? q->buf : "", q->cut);
        q->len = 0;
        q->cut = 0;
        if (q->buf)
            q->buf[0] = '\0';
        p = nl + 1;
        left -= k + 1;
    }
    if (piece != small)
        free(piece);
}

static void set_av_level(int level)
{
    av_log_set_level(level);
}

static void install(void)
{
    have_key = pthread_key_create(&pending_key, pending_free) == 0;
    fp__log_on_level(set_av_level);
    av_log_set_callback(av_callback);
}

void fp__avlog_install(void)
{
    pthread_once(&install_once, install);
}
