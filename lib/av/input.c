/*
 * The reader's input: files, memory, callbacks and URLs; the interrupt
 * callback and the deadline re-armed before every blocking libavformat call;
 * the mapping of their errors to framepool codes; reading packets.
 */
#define _POSIX_C_SOURCE 200809L
#include "input.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define IO_BUFFER_SIZE 65536

/* ---- errors of blocking libavformat calls -------------------------------------------------- */

int fp__averror_map(int e)
{
    if (e == AVERROR(ENOENT))
        return FP_ENOENT;
    if (e == AVERROR(ENOMEM))
        return FP_ENOMEM;
    if (e == AVERROR(EINVAL))
        return FP_EINVAL;
    if (e == AVERROR(ETIMEDOUT))
        return FP_ETIMEDOUT;
    if (e == AVERROR(EAGAIN))
        return FP_EAGAIN;
    if (e == AVERROR_INVALIDDATA || e == AVERROR_DEMUXER_NOT_FOUND ||
        e == AVERROR_DECODER_NOT_FOUND || e == AVERROR_PATCHWELCOME || e == AVERROR_BUG ||
        e == AVERROR(ENOSYS))
        return FP_EFORMAT;
    if (e == AVERROR_STREAM_NOT_FOUND)
        return FP_ENOSTREAM;
    if (e == AVERROR_PROTOCOL_NOT_FOUND || e == AVERROR_OPTION_NOT_FOUND)
        return FP_EINVAL; /* a URL (or option) FFmpeg cannot use */
    if (e == AVERROR_EXIT)
        return FP_ECANCELED;
    if (e == AVERROR_EOF || e == AVERROR(EIO) || e == AVERROR(EPIPE) || e == AVERROR(ECONNRESET) ||
        e == AVERROR(ECONNREFUSED) || e == AVERROR(EACCES) || e == AVERROR(EPERM) ||
        e == AVERROR(EHOSTUNREACH) || e == AVERROR(ENETUNREACH) || e == AVERROR(EISDIR))
        return FP_EIO;
    if (e == AVERROR_HTTP_NOT_FOUND)
        return FP_ENOENT;
    if (e == AVERROR_HTTP_UNAUTHORIZED || e == AVERROR_HTTP_FORBIDDEN)
        return FP_EIO; /* the message says "authentication failed" */
    if (e < 0 && e > -4096)
        return FP_EIO;
    return FP_EUNKNOWN;
}

/* Maps an error of a blocking libavformat call, telling an interrupt from a
 * deadline. */
int fp__input_error(fp__input *in, int e, const char *during, fp__err *err)
{
    char buf[AV_ERROR_MAX_STRING_SIZE];
    if (e == AVERROR_EXIT || atomic_load(&in->int_reason) != FP__INT_NONE) {
        int why = atomic_load(&in->int_reason);
        if (why == FP__INT_NONE) /* an earlier abort left its error behind */
            why = atomic_load(&in->last_reason);
        if (why == FP__INT_STALL)
            return fp__err_set(err, FP_ETIMEDOUT, "%s: no new frame within the stall limit",
                               during);
        if (why == FP__INT_TIMEOUT)
            return fp__err_set(err, FP_ETIMEDOUT,
                               "%s: no data within the deadline of %lld us (timeout_us)", during,
                               (long long)in->timeout_us);
        atomic_store(in->interrupted, 0); /* reported: consumed */
        atomic_store(&in->last_reason, FP__INT_NONE);
        return fp__err_set(err, FP_ECANCELED, "%s: interrupted (fp_reader_interrupt)", during);
    }
    av_strerror(e, buf, sizeof buf);
    /* RTSP and HTTP: 401 after FFmpeg answered the challenge with the URL's
     * credentials (or had none), 403 a refused user */
    if (e == AVERROR_HTTP_UNAUTHORIZED || e == AVERROR_HTTP_FORBIDDEN)
        return fp__err_set(err, fp__averror_map(e),
                           "%s: authentication failed: wrong or missing user and password "
                           "in the URL (%s)",
                           during, buf);
    return fp__err_set(err, fp__averror_map(e), "%s: %s", during, buf);
}

/* ---- interrupt and deadlines --------------------------------------------------------------- */

static int interrupt_cb(void *opaque)
{
    fp__input *r = opaque;
    if (atomic_load_explicit(r->interrupted, memory_order_relaxed) ||
        (r->abort_flag && atomic_load_explicit(r->abort_flag, memory_order_relaxed)) ||
        atomic_load_explicit(&r->ra_quit, memory_order_relaxed)) {
        atomic_store(&r->int_reason, FP__INT_CANCEL);
        atomic_store(&r->last_reason, FP__INT_CANCEL);
        return 1;
    }
    if (atomic_load_explicit(&r->ra_on, memory_order_relaxed))
        return 0; /* the read-ahead's thread: the deadlines bound the queue's reader */
    int64_t dl = atomic_load_explicit(&r->deadline_us, memory_order_relaxed);
    int64_t sdl = atomic_load_explicit(&r->stall_deadline_us, memory_order_relaxed);
    if (!dl && !sdl)
        return 0;
    int64_t now = fp__now_us();
    if (dl && now > dl) {
        atomic_store(&r->int_reason, FP__INT_TIMEOUT);
        atomic_store(&r->last_reason, FP__INT_TIMEOUT);
        return 1;
    }
    if (sdl && now > sdl) {
        atomic_store(&r->int_reason, FP__INT_STALL);
        atomic_store(&r->last_reason, FP__INT_STALL);
        return 1;
    }
    return 0;
}

/* Before every blocking libavformat call. */
static void input_arm(fp__input *r)
{
    atomic_store(&r->int_reason, FP__INT_NONE);
    atomic_store(&r->deadline_us, r->timeout_us > 0 ? fp__now_us() + r->timeout_us : 0);
}

/* After a blocking call. An interrupt stays pending until it is reported
 * as FP_ECANCELED (a demuxer may swallow the abort of one read and return
 * buffered packets: the next read must abort too). */
static void input_disarm(fp__input *r)
{
    atomic_store(&r->deadline_us, 0);
}

void fp__input_set_stall_deadline(fp__input *in, int64_t until_us)
{
    atomic_store(&in->stall_deadline_us, until_us);
}

int fp__input_last_reason(const fp__input *in)
{
    return atomic_load(&in->last_reason);
}

int fp__input_seekable(const fp__input *in)
{
    return !in->avio || in->avio->seekable;
}

/* ---- custom inputs ------------------------------------------------------------------------- */

static int mem_read(void *opaque, uint8_t *buf, int size)
{
    fp__mem_input *m = opaque;
    size_t left = m->len - m->pos;
    if (left == 0)
        return AVERROR_EOF;
    size_t n = (size_t)size < left ? (size_t)size : left;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (int)n;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence)
{
    fp__mem_input *m = opaque;
    if (whence & AVSEEK_SIZE)
        return (int64_t)m->len;
    whence &= ~AVSEEK_FORCE;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t)m->pos
                   : whence == SEEK_END                        ? (int64_t)m->len
                                                                : -1;
    if (base < 0 || base + off < 0 || base + off > (int64_t)m->len)
        return AVERROR(EINVAL);
    m->pos = (size_t)(base + off);
    return (int64_t)m->pos;
}

static int io_read_cb(void *opaque, uint8_t *buf, int size)
{
    fp__input *r = opaque;
    if (interrupt_cb(r))
        return AVERROR_EXIT;
    int n = r->io_read(r->io_user, buf, size);
    if (n == 0)
        return AVERROR_EOF;
    return n < 0 ? AVERROR(EIO) : n;
}

static int64_t io_seek_cb(void *opaque, int64_t off, int whence)
{
    fp__input *r = opaque;
    if (whence & AVSEEK_SIZE)
        return r->io_seek(r->io_user, 0, FP_READER_SEEK_SIZE);
    int64_t p = r->io_seek(r->io_user, off, whence & ~AVSEEK_FORCE);
    return p < 0 ? AVERROR(EIO) : p;
}

/* ---- local files --------------------------------------------------------------------------- */

static int is_local_path(const char *url)
{
    if (strncmp(url, "file:", 5) == 0)
        return 1;
    const char *p = url;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    return !(p > url + 1 && *p == ':'); /* "C:" style is not an issue on Linux */
}

/* Checks a local file before FFmpeg sees it, for precise messages. */
static int precheck_file(const char *url, fp__err *err)
{
    const char *path = strncmp(url, "file:", 5) == 0 ? url + 5 : url;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fp__err_set(err, FP_ENOENT, "no such file");
        /* framepool has no code of its own for EACCES/EPERM (FP_EIO, as
         * fp__averror_map gives FFmpeg's); strerror names the cause */
        return fp__err_set(err, FP_EIO, "cannot access the file: %s", strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return fp__err_set(err, FP_EINVAL, "is a directory, not a media file");
    if (S_ISREG(sb.st_mode) && sb.st_size == 0)
        return fp__err_set(err, FP_EFORMAT, "the file is empty (0 bytes), not a media file");
    return FP_OK;
}

/* After "invalid data": say whether the input looks like text. */
static int looks_like_text(const char *url)
{
    const char *path = strncmp(url, "file:", 5) == 0 ? url + 5 : url;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isprint(buf[i]) || isspace(buf[i]) || buf[i] >= 0x80))
            return 0;
    return 1;
}

/* ---- FFmpeg options (fp_reader_options.av_options) ------------------------------------------ */

/* Copies one token of "key=value:key=value" up to an unescaped `stop` (or
 * ':' / the end) into out[cap], resolving '\' escapes; advances *sp. */
static int parse_token(const char **sp, char stop, char *out, size_t cap)
{
    const char *p = *sp;
    size_t n = 0;
    while (*p && *p != ':' && *p != stop) {
        if (*p == '\\' && p[1])
            p++;
        if (n + 1 >= cap)
            return -1;
        out[n++] = *p++;
    }
    out[n] = 0;
    *sp = p;
    return 0;
}

/* Parses opts.av_options into *d. Returns 0 or FP_EINVAL (message set). */
static int parse_av_options(const char *p, AVDictionary **d, fp__err *err)
{
    if (!p)
        return FP_OK;
    char key[128], val[1024];
    while (*p) {
        if (*p == ':') {
            p++;
            continue;
        }
        if (parse_token(&p, '=', key, sizeof key) || *p != '=' || !key[0])
            return fp__err_set(err, FP_EINVAL,
                               "av_options: expected key=value pairs separated by ':' "
                               "near \"%.40s\"", p);
        p++;
        if (parse_token(&p, 0, val, sizeof val))
            return fp__err_set(err, FP_EINVAL, "av_options: value of '%s' too long", key);
        if (av_dict_set(d, key, val, 0) < 0)
            return fp__err_set(err, FP_ENOMEM, "out of memory");
    }
    return FP_OK;
}

/* ---- open ---------------------------------------------------------------------------------- */

static int input_finish_open(fp__input *r, const char *url, fp__err *err)
{
    AVFormatContext *ic = r->ic;
    ic->interrupt_callback.callback = interrupt_cb;
    ic->interrupt_callback.opaque = r;
    AVDictionary *dict = NULL;
    int prc = parse_av_options(r->av_options, &dict, err);
    if (prc) {
        av_dict_free(&dict);
        avformat_free_context(r->ic);
        r->ic = NULL;
        return prc;
    }
    input_arm(r);
    int e = avformat_open_input(&r->ic, url, NULL, &dict);
    input_disarm(r);
    if (e >= 0 && dict) {
        /* what no protocol or demuxer took: a misspelt option must not pass silently */
        const AVDictionaryEntry *t = av_dict_get(dict, "", NULL, AV_DICT_IGNORE_SUFFIX);
        int rc = fp__err_set(err, FP_EINVAL, "unknown FFmpeg option '%s' in av_options",
                             t ? t->key : "?");
        av_dict_free(&dict);
        return rc;
    }
    av_dict_free(&dict);
    if (e < 0) {
        r->ic = NULL; /* freed by avformat_open_input on failure */
        if (e == AVERROR_INVALIDDATA && !r->avio && is_local_path(url) && looks_like_text(url))
            return fp__err_set(err, FP_EFORMAT, "looks like a text file, not a media file");
        if (e == AVERROR_INVALIDDATA || e == AVERROR_EOF)
            return fp__err_set(err, FP_EFORMAT, "not a media file (no demuxer recognises it)");
        if (!r->avio && is_local_path(url) && (e == AVERROR(EIO) || e == AVERROR(EINVAL))) {
            char buf[AV_ERROR_MAX_STRING_SIZE];
            av_strerror(e, buf, sizeof buf);
            return fp__err_set(err, FP_EFORMAT,
                               "cannot open: the file is damaged or truncated (%s)", buf);
        }
        return fp__input_error(r, e, "cannot open", err);
    }
    input_arm(r);
    e = avformat_find_stream_info(r->ic, NULL);
    input_disarm(r);
    if (e == AVERROR_EOF || e == AVERROR_INVALIDDATA)
        return fp__err_set(err, FP_EFORMAT,
                           "cannot read stream information: the input ends or is "
                           "damaged before its streams are known (truncated?)");
    if (e < 0)
        return fp__input_error(r, e, "cannot read stream information", err);
    return FP_OK;
}

void fp__input_init(fp__input *in, const fp_reader_options *o, _Atomic int *interrupted,
                    _Atomic int *abort_flag)
{
    in->timeout_us = o->timeout_us;
    in->av_options = o->av_options;
    in->loop = o->loop;
    in->cache_bound = o->loop_cache == 0 ? FP_LOOP_CACHE_DEFAULT
                      : o->loop_cache < 0 ? 0
                                          : o->loop_cache;
    in->interrupted = interrupted;
    in->abort_flag = abort_flag;
    in->vs = -1;
    in->loop_left = o->loop;
    in->pass_end = INT64_MIN;
    in->first_dts = AV_NOPTS_VALUE;
}

int fp__input_open_url(fp__input *r, const char *url, fp__err *err)
{
    int rc;
    if (!url || !*url)
        return fp__err_set(err, FP_EINVAL, "empty file name");
    if (is_local_path(url) && (rc = precheck_file(url, err)) != 0)
        return rc;
    r->ic = avformat_alloc_context();
    if (!r->ic)
        return fp__err_set(err, FP_ENOMEM, "out of memory");
    return input_finish_open(r, url, err);
}

static int open_custom(fp__input *r, int seekable,
                       int (*rd)(void *, uint8_t *, int), int64_t (*sk)(void *, int64_t, int),
                       void *opaque, fp__err *err)
{
    r->ic = avformat_alloc_context();
    uint8_t *buf = av_malloc(IO_BUFFER_SIZE);
    if (!r->ic || !buf) {
        av_free(buf);
        return fp__err_set(err, FP_ENOMEM, "out of memory");
    }
    r->avio = avio_alloc_context(buf, IO_BUFFER_SIZE, 0, opaque, rd, NULL, seekable ? sk : NULL);
    if (!r->avio) {
        av_free(buf);
        return fp__err_set(err, FP_ENOMEM, "out of memory");
    }
    r->ic->pb = r->avio;
    r->ic->flags |= AVFMT_FLAG_CUSTOM_IO;
    return input_finish_open(r, "", err);
}

int fp__input_open_memory(fp__input *r, const void *buf, size_t len, fp__err *err)
{
    if (!buf && len)
        return fp__err_set(err, FP_EINVAL, "NULL buffer");
    if (len == 0)
        return fp__err_set(err, FP_EFORMAT, "the buffer is empty (0 bytes)");
    r->mem.data = buf;
    r->mem.len = len;
    return open_custom(r, 1, mem_read, mem_seek, &r->mem, err);
}

int fp__input_open_io(fp__input *r, fp_reader_read_fn read, fp_reader_seek_fn seek, void *user,
                      fp__err *err)
{
    if (!read)
        return fp__err_set(err, FP_EINVAL, "no read callback");
    r->io_read = read;
    r->io_seek = seek;
    r->io_user = user;
    return open_custom(r, seek != NULL, io_read_cb, io_seek_cb, r, err);
}

void fp__input_set_stream(fp__input *r, int vs, int64_t start_pts, double fps)
{
    r->vs = vs;
    r->tb = r->ic->streams[vs]->time_base;
    r->start_pts = start_pts;
    r->fps = fps;
    /* options.loop_cache: keep the first pass only when the whole input fits
     * the bound (what was kept until an input outgrew it would stay behind in
     * the heap); an input of unknown size is never kept */
    if (r->loop && r->cache_bound > 0 && r->ic->pb) {
        int64_t size = avio_size(r->ic->pb);
        if (size >= 0 && size <= r->cache_bound)
            r->lc_state = FP__LC_FILLING;
    }
}

static void cache_free(fp__input *r);

void fp__input_close(fp__input *r)
{
    fp__readahead_stop(r);
    cache_free(r);
    if (r->ic)
        avformat_close_input(&r->ic);
    if (r->avio) {
        av_freep(&r->avio->buffer);
        avio_context_free(&r->avio);
    }
}

/* ---- reading packets ----------------------------------------------------------------------- */

int fp__input_demux(fp__input *r, AVPacket *pkt, int *rejected, fp__err *err)
{
    for (;;) {
        /* An interrupt or deadline leaves AVERROR_EXIT sticky in the I/O
         * context (a demuxer may even have returned buffered packets after
         * it): clear it so that the reader stays usable after FP_ECANCELED or
         * FP_ETIMEDOUT, and so that a new failure gets its own cause. */
        if (r->ic->pb && r->ic->pb->error == AVERROR_EXIT) {
            r->ic->pb->error = 0;
            r->ic->pb->eof_reached = 0;
        }
        input_arm(r);
        int e = av_read_frame(r->ic, pkt);
        input_disarm(r);
        if (e == AVERROR_EXIT || (e < 0 && atomic_load(&r->int_reason) != FP__INT_NONE))
            return fp__input_error(r, e, "reading", err);
        if (e == AVERROR_EOF)
            return 0;
        if (e == AVERROR(EAGAIN))
            continue;
        if (e < 0) {
            int ioe = r->ic->pb ? r->ic->pb->error : 0;
            if (ioe < 0 && ioe != AVERROR_EOF && ioe != AVERROR_EXIT)
                return fp__input_error(r, ioe, "reading",
                                       err); /* the input failed (e.g. a read callback) */
            if (r->ic->pb && (avio_feof(r->ic->pb) || ioe == AVERROR_EOF))
                return 0; /* a truncated file: what was there has been read */
            if (e == AVERROR_INVALIDDATA) {
                *rejected = e; /* counted against the error budget by the engine */
                return FP__INPUT_REJECTED;
            }
            return fp__input_error(r, e, "reading", err);
        }
        if (pkt->stream_index != r->vs) {
            av_packet_unref(pkt);
            continue;
        }
        return 1;
    }
}

/* ---- options.loop_cache: one pass kept in memory --------------------------------------------- */

static void cache_clear(fp__input *r)
{
    for (size_t i = 0; i < r->lc_n; i++)
        av_packet_free(&r->lc_pkts[i]);
    r->lc_n = 0;
    r->lc_bytes = 0;
    r->lc_replay = 0;
}

static void cache_free(fp__input *r)
{
    cache_clear(r);
    av_freep(&r->lc_pkts);
    r->lc_cap = 0;
}

/* Keeps a reference to the packet just demuxed (its own timestamps). A pass
 * over the bound, or an allocation that fails, ends the caching for good:
 * every pass then rewinds the input, as without the cache. */
static void cache_add(fp__input *r, const AVPacket *k)
{
    int64_t bytes = (int64_t)sizeof(AVPacket) + (k->buf ? (int64_t)k->buf->size : k->size);
    for (int i = 0; i < k->side_data_elems; i++)
        bytes += (int64_t)k->side_data[i].size;
    if (r->lc_bytes + bytes > r->cache_bound)
        goto give_up;
    if (r->lc_n == r->lc_cap) {
        size_t cap = r->lc_cap ? r->lc_cap * 2 : 256;
        AVPacket **a = av_realloc_array(r->lc_pkts, cap, sizeof *a);
        if (!a)
            goto give_up;
        r->lc_pkts = a;
        r->lc_cap = cap;
    }
    AVPacket *c = av_packet_alloc();
    if (!c || av_packet_ref(c, k) < 0) {
        av_packet_free(&c);
        goto give_up;
    }
    r->lc_pkts[r->lc_n++] = c;
    r->lc_bytes += bytes;
    return;
give_up:
    cache_free(r);
    r->lc_state = FP__LC_NEVER;
}

/* Reads the next packet of the video stream into `pkt`: from the kept pass
 * while replaying it, else from the demuxer (keeping it while a pass is being
 * kept). Then, for options.loop, shifts it by the passes already played. */
/* Records when the packet with `pts` arrived (CLOCK_REALTIME s) and the
 * packets dropped before it. */
static void stamp_arrival(fp__input *r, int64_t pts, double wall, unsigned gap)
{
    r->wall_last = wall;
    unsigned n = sizeof r->wall_ring / sizeof r->wall_ring[0];
    r->wall_ring[r->wall_pos % n].pts = pts;
    r->wall_ring[r->wall_pos % n].wall = wall;
    r->wall_ring[r->wall_pos % n].gap = gap;
    r->wall_pos++;
}

int fp__input_read_packet(fp__input *r, AVPacket *pkt, fp__err *err)
{
    if (r->lc_replay) {
        if (r->lc_pos == r->lc_n)
            return 0;
        if (av_packet_ref(pkt, r->lc_pkts[r->lc_pos]) < 0)
            return fp__err_set(err, FP_ENOMEM, "out of memory replaying a kept packet");
        r->lc_pos++;
    } else if (r->ra) {
        double wall;
        unsigned gap = 0;
        int rc = fp__readahead_pop(r, pkt, &wall, &gap, err);
        if (rc != 1)
            return rc;
        stamp_arrival(r, pkt->pts, wall, gap);
        return 1;
    } else {
        int rc = fp__input_demux(r, pkt, &r->rejected, err);
        if (rc == 0 && r->lc_state == FP__LC_FILLING && r->lc_n)
            r->lc_state = FP__LC_FULL; /* the whole pass is kept */
        if (rc != 1)
            return rc;
        if (r->lc_state == FP__LC_FILLING)
            cache_add(r, pkt);
    }
    if (r->loop) {
        AVPacket *k = pkt;
        if (r->first_dts == AV_NOPTS_VALUE)
            r->first_dts = k->dts != AV_NOPTS_VALUE ? k->dts : k->pts;
        /* containers without pts (AVI) time their frames by dts */
        int64_t t = k->pts != AV_NOPTS_VALUE ? k->pts : k->dts;
        if (t != AV_NOPTS_VALUE) {
            int64_t d = k->duration > 0 ? k->duration
                        : r->fps > 0    ? av_rescale_q(1, av_inv_q(av_d2q(r->fps, 1000000)),
                                                       r->tb)
                                        : 1;
            if (t + d > r->pass_end)
                r->pass_end = t + d;
        }
        if (k->pts != AV_NOPTS_VALUE)
            k->pts += r->loop_off;
        if (k->dts != AV_NOPTS_VALUE)
            k->dts += r->loop_off;
        r->pass_packets++;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    stamp_arrival(r, pkt->pts, (double)ts.tv_sec + ts.tv_nsec * 1e-9, 0);
    return 1;
}

unsigned fp__input_take_gap(fp__input *r, int64_t pts)
{
    unsigned n = sizeof r->wall_ring / sizeof r->wall_ring[0];
    if (pts != AV_NOPTS_VALUE)
        for (unsigned i = 0; i < n && i < r->wall_pos; i++) {
            unsigned k = (r->wall_pos - 1 - i) % n;
            if (r->wall_ring[k].pts == pts) {
                unsigned g = r->wall_ring[k].gap;
                r->wall_ring[k].gap = 0;
                return g;
            }
        }
    return 0;
}

double fp__input_wall_time(const fp__input *r, int64_t pts)
{
    unsigned n = sizeof r->wall_ring / sizeof r->wall_ring[0];
    if (pts != AV_NOPTS_VALUE)
        for (unsigned i = 0; i < n && i < r->wall_pos; i++) {
            unsigned k = (r->wall_pos - 1 - i) % n;
            if (r->wall_ring[k].pts == pts)
                return r->wall_ring[k].wall;
        }
    return r->wall_last;
}

int fp__input_seek(fp__input *r, int64_t ts, const char *during, fp__err *err)
{
    input_arm(r);
    int e = avformat_seek_file(r->ic, r->vs, INT64_MIN, ts, ts, 0);
    if (e < 0 && atomic_load(&r->int_reason) == FP__INT_NONE)
        e = av_seek_frame(r->ic, r->vs, ts, AVSEEK_FLAG_BACKWARD);
    input_disarm(r);
    return e < 0 ? fp__input_error(r, e, during, err) : FP_OK;
}

int fp__input_loops_left(const fp__input *r)
{
    return r->loop_left != 0;
}

void fp__input_stop_loop(fp__input *r)
{
    r->loop_left = 0;
}

int fp__input_rewind(fp__input *r, fp__err *err)
{
    if (!r->pass_packets)
        return fp__err_set(err, FP_EIO, "cannot loop: a pass of the input had no packet");
    if (r->avio && !r->avio->seekable)
        return fp__err_set(err, FP_EIO, "cannot loop: the input cannot seek (no seek callback)");
    /* the first packet: MPEG-TS finds it by dts (seeking to the start_time, a pts,
     * lands a packet or a GOP later); containers with an index by pts, and a
     * target before their first sample gives that sample */
    if (r->lc_state == FP__LC_FULL) {
        /* the whole pass is kept: play it again without touching the input
         * (a rewind makes the demuxer close its parser and open a new one) */
        r->lc_replay = 1;
        r->lc_pos = 0;
        r->loops_replayed++;
    } else {
        int64_t ts = r->start_pts;
        if (r->first_dts != AV_NOPTS_VALUE && r->first_dts < ts)
            ts = r->first_dts;
        int rc = fp__input_seek(r, ts, "rewinding to loop", err);
        if (rc)
            return rc;
        if (r->lc_state == FP__LC_IDLE) /* a seek dropped a part-kept pass: keep this one */
            r->lc_state = FP__LC_FILLING;
    }
    /* the next pass starts where this one ended; a pass without timestamps
     * leaves the offset as it was */
    if (r->pass_end != INT64_MIN)
        r->loop_off += r->pass_end - r->start_pts;
    r->pass_end = INT64_MIN;
    r->pass_packets = 0;
    r->loops++;
    if (r->loop_left > 0)
        r->loop_left--;
    return FP_OK;
}

void fp__input_loop_reset(fp__input *r)
{
    /* the demuxer was sought: it gives the rest of this pass; a part-kept pass
     * is dropped (the next rewind keeps a whole one), a whole one is kept */
    r->lc_replay = 0;
    if (r->lc_state == FP__LC_FILLING) {
        cache_clear(r);
        r->lc_state = FP__LC_IDLE;
    }
    r->loop_off = 0;
    r->pass_end = INT64_MIN;
    r->pass_packets = 0;
}
