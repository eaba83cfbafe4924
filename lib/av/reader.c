/*
 * fp_reader: the frame iterator over FFmpeg (demux, decode, convert).
 *
 * The decode loop pulls first (avcodec_receive_frame before reading more),
 * keeps a packet the decoder refused with EAGAIN and resends it, drains
 * exactly once at the end of input, counts rejected packets against an error
 * budget, checks size and format on every frame, drops skipped frames before
 * any conversion, and re-arms the interrupt deadline before every blocking
 * libavformat call.
 */
#define _POSIX_C_SOURCE 200809L
#include "avpriv.h"
#include "framepool/reader.h"

#include <ctype.h>
#include <libavformat/avformat.h>
#include <libavutil/cpu.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define IO_BUFFER_SIZE 65536

enum { INT_NONE = 0, INT_CANCEL = 1, INT_TIMEOUT = 2 };
/* States of the convert-ahead worker (guarded by ahead_mu). */
enum { AHEAD_IDLE = 0, AHEAD_WORK, AHEAD_DONE, AHEAD_QUIT };

typedef struct mem_input {
    const uint8_t *data;
    size_t len, pos;
} mem_input;

struct fp_reader {
    fp_reader_options opt;
    char errmsg[512];
    char what[160];              /* "open 'x.mp4'" for messages */
    int failed_open;             /* the open failed: only errmsg/close work */
    /* interrupt */
    _Atomic int interrupted;
    _Atomic int int_reason;
    _Atomic int last_reason;     /* cause of the last abort (kept across arm()) */
    _Atomic int64_t deadline_us;
    /* FFmpeg */
    AVFormatContext *ic;
    AVIOContext *avio;           /* custom input (memory or callbacks), owned */
    mem_input mem;
    fp_reader_read_fn io_read;
    fp_reader_seek_fn io_seek;
    void *io_user;
    AVStream *st;
    int vs;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    struct SwsContext *sws;
    fp__bridge *bridge;
    fp_pool *out_pool;           /* conversion output pool */
    /* state */
    int pkt_pending;             /* pkt holds a packet the decoder has not taken */
    int demux_eof, drain_sent, done;
    int64_t start_pts;           /* stream start time in time base (0 if unknown) */
    int64_t skip_until;          /* precise seek/start: drop frames with pts < this */
    int64_t end_pts;             /* INT64_MAX: no end */
    int64_t next_index;          /* index of the next decoded frame */
    int index_from_time;         /* after a seek: estimate indices from timestamps */
    double fps;
    int cur_w, cur_h, cur_fmt;   /* size/format of the last decoded frame */
    int out_w, out_h;            /* current output size (converted) */
    fp_pixfmt out_fmt;
    unsigned max_held, decoder_need;
    int threads, zero_copy;
    const char *site_file, *site_func;
    int site_line;
    /* converting ahead: the reader's own thread converts job_src into job_dst
     * while the caller's thread decodes the next frame */
    int ahead;                   /* converting ahead is in effect */
    int ahead_started;           /* the thread, mutex and condition exist */
    int ahead_failed;            /* the thread could not start: convert on the caller's */
    pthread_t ahead_th;
    pthread_mutex_t ahead_mu;
    pthread_cond_t ahead_cv;
    int ahead_state;             /* AHEAD_*, guarded by ahead_mu */
    int job_busy;                /* a job was posted and its image not yet collected */
    AVFrame *job_src;            /* the decoded frame being converted (the reader's ref) */
    fp_image *job_dst;           /* +1: its pooled output, metadata already set; the worker
                                    uses r->sws, which only changes once it is collected */
    int pending_rc;              /* error met decoding ahead: returned by the next call */
    char pending_msg[512];
    /* statistics */
    uint64_t packets, decoded, delivered, skipped, corrupt, decode_errors, size_changes, wrapped;
};

static void reader_finalize(void *obj);
static const fp_type reader_type = {"fp_reader", reader_finalize};

/* ---- messages and errors ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static int fail(fp_reader *r, int code, const char *fmt,
                                                      ...)
{
    int n = snprintf(r->errmsg, sizeof r->errmsg, "%s: ", r->what);
    if (n < 0 || (size_t)n >= sizeof r->errmsg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg + n, sizeof r->errmsg - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

static int map_averror(int e)
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
    if (e == AVERROR_EXIT)
        return FP_ECANCELED;
    if (e == AVERROR_EOF || e == AVERROR(EIO) || e == AVERROR(EPIPE) || e == AVERROR(ECONNRESET) ||
        e == AVERROR(ECONNREFUSED) || e == AVERROR(EACCES) || e == AVERROR(EPERM) ||
        e == AVERROR(EHOSTUNREACH) || e == AVERROR(ENETUNREACH) || e == AVERROR(EISDIR))
        return FP_EIO;
    if (e == AVERROR_HTTP_NOT_FOUND)
        return FP_ENOENT;
    if (e < 0 && e > -4096)
        return FP_EIO;
    return FP_EUNKNOWN;
}

/* Maps an error of a blocking libavformat call, telling an interrupt from a
 * deadline. */
static int lavf_error(fp_reader *r, int e, const char *during)
{
    char buf[AV_ERROR_MAX_STRING_SIZE];
    if (e == AVERROR_EXIT || atomic_load(&r->int_reason) != INT_NONE) {
        int why = atomic_load(&r->int_reason);
        if (why == INT_NONE) /* an earlier abort left its error behind */
            why = atomic_load(&r->last_reason);
        if (why == INT_TIMEOUT)
            return fail(r, FP_ETIMEDOUT, "%s: no data within the deadline of %lld us (timeout_us)",
                        during, (long long)r->opt.timeout_us);
        atomic_store(&r->interrupted, 0); /* reported: consumed */
        atomic_store(&r->last_reason, INT_NONE);
        return fail(r, FP_ECANCELED, "%s: interrupted (fp_reader_interrupt)", during);
    }
    av_strerror(e, buf, sizeof buf);
    return fail(r, map_averror(e), "%s: %s", during, buf);
}

/* ---- interrupt and deadlines ---------------------------------------------------------- */

static int interrupt_cb(void *opaque)
{
    fp_reader *r = opaque;
    if (atomic_load_explicit(&r->interrupted, memory_order_relaxed)) {
        atomic_store(&r->int_reason, INT_CANCEL);
        atomic_store(&r->last_reason, INT_CANCEL);
        return 1;
    }
    int64_t dl = atomic_load_explicit(&r->deadline_us, memory_order_relaxed);
    if (dl && fp__now_us() > dl) {
        atomic_store(&r->int_reason, INT_TIMEOUT);
        atomic_store(&r->last_reason, INT_TIMEOUT);
        return 1;
    }
    return 0;
}

/* Before every blocking libavformat call. */
static void arm(fp_reader *r)
{
    atomic_store(&r->int_reason, INT_NONE);
    atomic_store(&r->deadline_us, r->opt.timeout_us > 0 ? fp__now_us() + r->opt.timeout_us : 0);
}

/* After a blocking call. An interrupt stays pending until it is reported
 * as FP_ECANCELED (a demuxer may swallow the abort of one read and return
 * buffered packets: the next read must abort too). */
static void disarm(fp_reader *r)
{
    atomic_store(&r->deadline_us, 0);
}

void fp_reader_interrupt(fp_reader *r)
{
    if (r)
        atomic_store(&r->interrupted, 1);
}

/* ---- custom inputs ---------------------------------------------------------------------- */

static int mem_read(void *opaque, uint8_t *buf, int size)
{
    mem_input *m = opaque;
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
    mem_input *m = opaque;
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
    fp_reader *r = opaque;
    if (interrupt_cb(r))
        return AVERROR_EXIT;
    int n = r->io_read(r->io_user, buf, size);
    if (n == 0)
        return AVERROR_EOF;
    return n < 0 ? AVERROR(EIO) : n;
}

static int64_t io_seek_cb(void *opaque, int64_t off, int whence)
{
    fp_reader *r = opaque;
    if (whence & AVSEEK_SIZE)
        return r->io_seek(r->io_user, 0, FP_READER_SEEK_SIZE);
    int64_t p = r->io_seek(r->io_user, off, whence & ~AVSEEK_FORCE);
    return p < 0 ? AVERROR(EIO) : p;
}

/* ---- open -------------------------------------------------------------------------------- */

static int check_options(fp_reader *r, const fp_reader_options *o)
{
    if (o->format < FP_PIX_NONE || o->format >= FP_PIX_COUNT_ || o->format == FP_PIX_OTHER)
        return fail(r, FP_EINVAL, "invalid output format %d (use FP_PIX_NONE for native)",
                    (int)o->format);
    if (o->format != FP_PIX_NONE && fp__pixfmt_to_av(o->format) == AV_PIX_FMT_NONE)
        return fail(r, FP_EINVAL, "output format %s is not supported", fp_pixfmt_name(o->format));
    if (o->width < 0 || o->height < 0 || o->width > FP_MAX_DIMENSION ||
        o->height > FP_MAX_DIMENSION)
        return fail(r, FP_EINVAL, "invalid output size %dx%d (0..%d)", o->width, o->height,
                    FP_MAX_DIMENSION);
    if (o->every < 0 || o->threads < 0 || o->threads > 64)
        return fail(r, FP_EINVAL, "invalid every (%d) or threads (%d)", o->every, o->threads);
    if (!(o->start >= 0) || !(o->end >= 0) || (o->end > 0 && o->end <= o->start))
        return fail(r, FP_EINVAL, "invalid range start=%g end=%g (need 0 <= start < end)",
                    o->start, o->end);
    if (o->max_held > 4096)
        return fail(r, FP_EINVAL, "max_held %u is absurd (at most 4096)", o->max_held);
    if (o->timeout_us < 0)
        return fail(r, FP_EINVAL, "negative timeout_us");
    if (o->stream_set && o->stream < 0)
        return fail(r, FP_EINVAL, "negative stream index %d", o->stream);
    if (o->convert_ahead < 0 || o->convert_ahead > 1)
        return fail(r, FP_EINVAL, "invalid convert_ahead %d (0 off, the default; 1 on)",
                    o->convert_ahead);
    return FP_OK;
}

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
static int precheck_file(fp_reader *r, const char *url)
{
    const char *path = strncmp(url, "file:", 5) == 0 ? url + 5 : url;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fail(r, FP_ENOENT, "no such file");
        return fail(r, errno == EACCES ? FP_EIO : FP_EIO, "cannot access the file: %s",
                    strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return fail(r, FP_EINVAL, "is a directory, not a media file");
    if (S_ISREG(sb.st_mode) && sb.st_size == 0)
        return fail(r, FP_EFORMAT, "the file is empty (0 bytes), not a media file");
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

/* Buffers the decoder may hold at once: its reference frames plus the
 * reordering delay, plus one frame per frame thread. */
static unsigned decoder_need(const AVCodecContext *dec)
{
    unsigned base;
    switch (dec->codec_id) {
    case AV_CODEC_ID_H264:
        base = 36; /* FFmpeg's picture array (H264_MAX_PICTURE_COUNT): a valid stream
                      holds at most a 16-picture DPB plus the current one, a damaged
                      one can make the decoder keep up to this many */
        break;
    case AV_CODEC_ID_HEVC:
        base = 32; /* FFmpeg's DPB array, likewise (valid streams: 16 + 1) */
        break;
    case AV_CODEC_ID_VVC:
        base = 17; /* a 16-picture DPB plus the current one */
        break;
    case AV_CODEC_ID_VP9:
    case AV_CODEC_ID_AV1:
        base = 10; /* 8 reference slots, current, one shown-existing */
        break;
    case AV_CODEC_ID_VP8:
        base = 5;
        break;
    case AV_CODEC_ID_MJPEG:
    case AV_CODEC_ID_PNG:
    case AV_CODEC_ID_RAWVIDEO:
        base = 2;
        break;
    default:
        base = 4; /* MPEG-1/2/4 and alike: two references, current, one B */
        break;
    }
    unsigned threads = (dec->active_thread_type & FF_THREAD_FRAME) && dec->thread_count > 1
                           ? (unsigned)dec->thread_count
                           : 0;
    return base + threads + 1 + (unsigned)(dec->has_b_frames > 0 ? dec->has_b_frames : 0);
}

static int count_streams(AVFormatContext *ic, enum AVMediaType t)
{
    int n = 0;
    for (unsigned i = 0; i < ic->nb_streams; i++)
        n += ic->streams[i]->codecpar->codec_type == t;
    return n;
}

static int open_decoder(fp_reader *r)
{
    AVFormatContext *ic = r->ic;
    const AVCodec *codec = NULL;
    int vs;
    if (r->opt.stream_set) {
        vs = r->opt.stream;
        if ((unsigned)vs >= ic->nb_streams)
            return fail(r, FP_ENOSTREAM, "no stream %d (the input has %u streams)", vs,
                        ic->nb_streams);
        if (ic->streams[vs]->codecpar->codec_type != AVMEDIA_TYPE_VIDEO)
            return fail(r, FP_ENOSTREAM, "stream %d is %s, not video", vs,
                        av_get_media_type_string(ic->streams[vs]->codecpar->codec_type));
        codec = avcodec_find_decoder(ic->streams[vs]->codecpar->codec_id);
    } else {
        vs = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        if (vs < 0)
            return fail(r, FP_ENOSTREAM,
                        "no video stream (the input has %d audio, %d subtitle, %u streams in all)",
                        count_streams(ic, AVMEDIA_TYPE_AUDIO),
                        count_streams(ic, AVMEDIA_TYPE_SUBTITLE), ic->nb_streams);
        codec = avcodec_find_decoder(ic->streams[vs]->codecpar->codec_id);
    }
    AVStream *st = ic->streams[vs];
    AVCodecParameters *par = st->codecpar;
    if (!codec) {
        char tag[AV_FOURCC_MAX_STRING_SIZE];
        av_fourcc_make_string(tag, par->codec_tag);
        return fail(r, FP_EFORMAT, "unsupported codec '%s' (tag %s) in video stream %d",
                    par->codec_id != AV_CODEC_ID_NONE ? avcodec_get_name(par->codec_id)
                                                      : "unknown",
                    tag, vs);
    }
    if (par->width > FP_MAX_DIMENSION || par->height > FP_MAX_DIMENSION || par->width < 0 ||
        par->height < 0)
        return fail(r, FP_EFORMAT, "absurd dimensions %dx%d (framepool's limit is %d per side)",
                    par->width, par->height, FP_MAX_DIMENSION);
    for (unsigned i = 0; i < ic->nb_streams; i++)
        if ((int)i != vs)
            ic->streams[i]->discard = AVDISCARD_ALL; /* other streams cost nothing */
    r->vs = vs;
    r->st = st;

    AVCodecContext *dec = avcodec_alloc_context3(codec);
    if (!dec)
        return fail(r, FP_ENOMEM, "out of memory (decoder)");
    r->dec = dec;
    int e = avcodec_parameters_to_context(dec, par);
    if (e < 0)
        return lavf_error(r, e, "decoder parameters");
    dec->pkt_timebase = st->time_base;
    /* threads 0: one per CPU as cv::VideoCapture does, not FFmpeg's CPUs + 1:
     * each frame thread keeps pictures and per-picture tables of its own
     * (720p on 2 cores: peak RssAnon 42 -> 38 MiB; docs/bench-history.md). */
    dec->thread_count = r->opt.threads ? r->opt.threads : FFMAX(1, FFMIN(av_cpu_count(), 16));
    dec->max_pixels = (int64_t)FP_MAX_DIMENSION * FP_MAX_DIMENSION;
    r->max_held = r->opt.max_held ? r->opt.max_held : FP_READER_DEFAULT_MAX_HELD;
    r->zero_copy = (codec->capabilities & AV_CODEC_CAP_DR1) != 0;
    char name[64];
    snprintf(name, sizeof name, "reader %s", codec->name);
    /* The pool cap is set once the decoder tells its thread count; the
     * bridge is created now because avcodec_open2 may already allocate. */
    r->bridge = fp__bridge_new(64, name);
    if (!r->bridge)
        return fail(r, FP_ENOMEM, "out of memory (bridge)");
    fp__bridge_set_site(r->bridge, r->site_file, r->site_line, r->site_func);
    if (r->zero_copy) {
        dec->opaque = r->bridge;
        dec->get_buffer2 = fp__bridge_get_buffer2;
#if FF_API_THREAD_SAFE_CALLBACKS
        /* FFmpeg 5.x still asks: the callback is thread-safe (bridge mutex). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        dec->thread_safe_callbacks = 1;
#pragma GCC diagnostic pop
#endif
    }
    e = avcodec_open2(dec, codec, NULL);
    if (e < 0)
        return lavf_error(r, e, "opening the decoder");
    r->threads = dec->thread_count;
    r->decoder_need = decoder_need(dec);
    int native = r->opt.format == FP_PIX_NONE && !r->opt.width && !r->opt.height;
    r->ahead = !native && r->opt.convert_ahead;
    /* Converting, the reader holds the frame it converts, and converting
     * ahead also the next one it decoded meanwhile. */
    pthread_mutex_lock(&r->bridge->mu);
    r->bridge->pool_max = r->decoder_need + (native ? r->max_held + 1 : r->ahead ? 2 : 1);
    pthread_mutex_unlock(&r->bridge->mu);

    r->start_pts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    r->fps = 0;
    AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    if (fr.num > 0 && fr.den > 0)
        r->fps = av_q2d(fr);
    r->skip_until = INT64_MIN;
    r->end_pts = INT64_MAX;
    if (r->opt.end > 0)
        r->end_pts = r->start_pts + av_rescale_q((int64_t)(r->opt.end * AV_TIME_BASE),
                                                 AV_TIME_BASE_Q, st->time_base);
    r->cur_fmt = AV_PIX_FMT_NONE;
    r->out_fmt = r->opt.format;
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->pkt || !r->frame)
        return fail(r, FP_ENOMEM, "out of memory (packet/frame)");
    return FP_OK;
}

static int reader_begin(fp_reader **out, const fp_reader_options *opts, const char *what,
                        const char *file, int line, const char *func)
{
    *out = NULL;
    fp_reader *r = fp__obj_new(&reader_type, sizeof(fp_reader), sizeof(fp_reader), NULL, file,
                               line, func);
    if (!r)
        return FP_ENOMEM;
    if (opts)
        r->opt = *opts;
    r->vs = -1;
    r->site_file = file;
    r->site_line = line;
    r->site_func = func;
    snprintf(r->what, sizeof r->what, "%s", what);
    *out = r;
    int rc = check_options(r, &r->opt);
    return rc;
}

static int reader_finish_open(fp_reader *r, const char *url)
{
    AVFormatContext *ic = r->ic;
    ic->interrupt_callback.callback = interrupt_cb;
    ic->interrupt_callback.opaque = r;
    arm(r);
    int e = avformat_open_input(&r->ic, url, NULL, NULL);
    disarm(r);
    if (e < 0) {
        r->ic = NULL; /* freed by avformat_open_input on failure */
        if (e == AVERROR_INVALIDDATA && !r->avio && is_local_path(url) && looks_like_text(url))
            return fail(r, FP_EFORMAT, "looks like a text file, not a media file");
        if (e == AVERROR_INVALIDDATA || e == AVERROR_EOF)
            return fail(r, FP_EFORMAT, "not a media file (no demuxer recognises it)");
        if (!r->avio && is_local_path(url) && (e == AVERROR(EIO) || e == AVERROR(EINVAL))) {
            char buf[AV_ERROR_MAX_STRING_SIZE];
            av_strerror(e, buf, sizeof buf);
            return fail(r, FP_EFORMAT, "cannot open: the file is damaged or truncated (%s)", buf);
        }
        return lavf_error(r, e, "cannot open");
    }
    arm(r);
    e = avformat_find_stream_info(r->ic, NULL);
    disarm(r);
    if (e == AVERROR_EOF || e == AVERROR_INVALIDDATA)
        return fail(r, FP_EFORMAT, "cannot read stream information: the input ends or is "
                                   "damaged before its streams are known (truncated?)");
    if (e < 0)
        return lavf_error(r, e, "cannot read stream information");
    int rc = open_decoder(r);
    if (rc)
        return rc;
    if (r->opt.start > 0) {
        rc = fp_reader_seek(r, r->opt.start, FP_SEEK_PRECISE);
        if (rc)
            return rc;
    }
    return FP_OK;
}

static int open_failed(fp_reader *r, int rc)
{
    /* Keep the reader as a holder of the message; release FFmpeg state now. */
    r->failed_open = 1;
    reader_finalize(r);
    return rc;
}

int fp_reader_open_at(const char *url, const fp_reader_options *opts, fp_reader **out,
                      const char *file, int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    char what[160];
    snprintf(what, sizeof what, "open '%s'", url ? url : "(null)");
    int rc = reader_begin(out, opts, what, file, line, func);
    fp_reader *r = *out;
    if (!r)
        return rc;
    if (rc)
        return open_failed(r, rc);
    if (!url || !*url)
        return open_failed(r, fail(r, FP_EINVAL, "empty file name"));
    if (is_local_path(url) && (rc = precheck_file(r, url)) != 0)
        return open_failed(r, rc);
    r->ic = avformat_alloc_context();
    if (!r->ic)
        return open_failed(r, fail(r, FP_ENOMEM, "out of memory"));
    rc = reader_finish_open(r, url);
    return rc ? open_failed(r, rc) : FP_OK;
}

static int open_custom(fp_reader *r, int seekable,
                       int (*rd)(void *, uint8_t *, int), int64_t (*sk)(void *, int64_t, int),
                       void *opaque)
{
    r->ic = avformat_alloc_context();
    uint8_t *buf = av_malloc(IO_BUFFER_SIZE);
    if (!r->ic || !buf) {
        av_free(buf);
        return fail(r, FP_ENOMEM, "out of memory");
    }
    r->avio = avio_alloc_context(buf, IO_BUFFER_SIZE, 0, opaque, rd, NULL, seekable ? sk : NULL);
    if (!r->avio) {
        av_free(buf);
        return fail(r, FP_ENOMEM, "out of memory");
    }
    r->ic->pb = r->avio;
    r->ic->flags |= AVFMT_FLAG_CUSTOM_IO;
    return reader_finish_open(r, "");
}

int fp_reader_open_memory_at(const void *buf, size_t len, const fp_reader_options *opts,
                             fp_reader **out, const char *file, int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    int rc = reader_begin(out, opts, "open memory input", file, line, func);
    fp_reader *r = *out;
    if (!r)
        return rc;
    if (rc)
        return open_failed(r, rc);
    if (!buf && len)
        return open_failed(r, fail(r, FP_EINVAL, "NULL buffer"));
    if (len == 0)
        return open_failed(r, fail(r, FP_EFORMAT, "the buffer is empty (0 bytes)"));
    r->mem.data = buf;
    r->mem.len = len;
    rc = open_custom(r, 1, mem_read, mem_seek, &r->mem);
    return rc ? open_failed(r, rc) : FP_OK;
}

int fp_reader_open_io_at(fp_reader_read_fn read, fp_reader_seek_fn seek, void *user,
                         const fp_reader_options *opts, fp_reader **out, const char *file,
                         int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    int rc = reader_begin(out, opts, "open custom input", file, line, func);
    fp_reader *r = *out;
    if (!r)
        return rc;
    if (rc)
        return open_failed(r, rc);
    if (!read)
        return open_failed(r, fail(r, FP_EINVAL, "no read callback"));
    r->io_read = read;
    r->io_seek = seek;
    r->io_user = user;
    rc = open_custom(r, seek != NULL, io_read_cb, io_seek_cb, r);
    return rc ? open_failed(r, rc) : FP_OK;
}

/* ---- close ---------------------------------------------------------------------------------- */

static void ahead_stop(fp_reader *r);

static void reader_finalize(void *obj)
{
    fp_reader *r = obj;
    ahead_stop(r);
    sws_freeContext(r->sws);
    r->sws = NULL;
    av_packet_free(&r->pkt);
    av_frame_free(&r->frame);
    /* Frees the decoder's own references to pool buffers; buffers callers
     * hold keep their pools alive. */
    avcodec_free_context(&r->dec);
    if (r->ic)
        avformat_close_input(&r->ic);
    if (r->avio) {
        av_freep(&r->avio->buffer);
        avio_context_free(&r->avio);
    }
    fp_unref(&r->bridge);
    fp_unref(&r->out_pool);
}

void fp_reader_close(fp_reader **pr)
{
    if (pr)
        fp_unref(pr);
}

const char *fp_reader_errmsg(const fp_reader *r)
{
    return r ? r->errmsg : "no reader";
}

/* ---- the decode loop --------------------------------------------------------------------- */

static unsigned frames_held(fp_reader *r)
{
    unsigned held = 0;
    fp__bridge_counts(r->bridge, &held, NULL);
    if (r->out_pool) {
        fp_pool_stats s;
        fp_pool_get_stats(r->out_pool, &s);
        held += (unsigned)s.outstanding - (r->job_busy ? 1u : 0u);
    }
    return held;
}

static int over_budget(const fp_reader *r)
{
    return r->decode_errors > FP_READER_ERROR_BUDGET_MIN &&
           r->decode_errors * 3 > r->packets * 2;
}

static int decode_error(fp_reader *r, int e, const char *during)
{
    r->decode_errors++;
    if (atomic_exchange(&r->bridge->exhausted, 0)) {
        r->done = 1;
        return fail(r, FP_ELIMIT,
                    "the decoder needed more than the %u buffers its pool allows "
                    "(decoder need %u + max_held %u); raise max_held",
                    r->bridge->pool_max, r->decoder_need, r->max_held);
    }
    if (e == AVERROR(ENOMEM)) {
        r->done = 1;
        return fail(r, FP_ENOMEM, "out of memory while decoding");
    }
    if (over_budget(r)) {
        char buf[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(e, buf, sizeof buf);
        r->done = 1;
        return fail(r, FP_EDECODE,
                    "too many decode errors: %llu of %llu packets rejected (last while %s: %s)",
                    (unsigned long long)r->decode_errors, (unsigned long long)r->packets, during,
                    buf);
    }
    return FP_OK;
}

/* Reads the next packet of the video stream into r->pkt. Returns 1 with a
 * packet, 0 at the end of input, or a negative error. */
static int read_packet(fp_reader *r)
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
        arm(r);
        int e = av_read_frame(r->ic, r->pkt);
        disarm(r);
        if (e == AVERROR_EXIT || (e < 0 && atomic_load(&r->int_reason) != INT_NONE))
            return lavf_error(r, e, "reading");
        if (e == AVERROR_EOF)
            return 0;
        if (e == AVERROR(EAGAIN))
            continue;
        if (e < 0) {
            int ioe = r->ic->pb ? r->ic->pb->error : 0;
            if (ioe < 0 && ioe != AVERROR_EOF && ioe != AVERROR_EXIT)
                return lavf_error(r, ioe, "reading"); /* the input failed (e.g. a read callback) */
            if (r->ic->pb && (avio_feof(r->ic->pb) || ioe == AVERROR_EOF))
                return 0; /* a truncated file: what was there has been read */
            if (e == AVERROR_INVALIDDATA) {
                int rc = decode_error(r, e, "demuxing");
                if (rc)
                    return rc;
                continue;
            }
            return lavf_error(r, e, "reading");
        }
        if (r->pkt->stream_index != r->vs) {
            av_packet_unref(r->pkt);
            continue;
        }
        return 1;
    }
}

static int64_t frame_pts(const AVFrame *f)
{
    return f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
}

static int compute_out_size(fp_reader *r, int w, int h)
{
    int ow = r->opt.width, oh = r->opt.height;
    if (!ow && !oh) {
        ow = w;
        oh = h;
    } else if (!ow) {
        ow = (int)((int64_t)oh * w * 2 / h + 1) / 2;
    } else if (!oh) {
        oh = (int)((int64_t)ow * h * 2 / w + 1) / 2;
    }
    if (ow < 1)
        ow = 1;
    if (oh < 1)
        oh = 1;
    if (ow > FP_MAX_DIMENSION || oh > FP_MAX_DIMENSION)
        return fail(r, FP_EINVAL, "output size %dx%d exceeds %d", ow, oh, FP_MAX_DIMENSION);
    r->out_w = ow;
    r->out_h = oh;
    return FP_OK;
}

/* A new size or format: new output geometry, new pool generation. */
static int on_geometry(fp_reader *r, const AVFrame *f)
{
    if (f->width > FP_MAX_DIMENSION || f->height > FP_MAX_DIMENSION || f->width <= 0 ||
        f->height <= 0)
        return fail(r, FP_EFORMAT, "absurd frame dimensions %dx%d (limit %d)", f->width,
                    f->height, FP_MAX_DIMENSION);
    if (r->cur_fmt != AV_PIX_FMT_NONE)
        r->size_changes++;
    r->cur_w = f->width;
    r->cur_h = f->height;
    r->cur_fmt = f->format;
    int native = r->opt.format == FP_PIX_NONE && !r->opt.width && !r->opt.height;
    if (native)
        return FP_OK;
    if (r->opt.format == FP_PIX_NONE) {
        /* resize in the native format: only formats framepool can lay out */
        r->out_fmt = fp__pixfmt_from_av(f->format);
        if (r->out_fmt == FP_PIX_OTHER)
            r->out_fmt = FP_PIX_YUV420P;
    }
    int rc = compute_out_size(r, f->width, f->height);
    if (rc)
        return rc;
    fp_pool_config cfg = {0};
    char name[96];
    snprintf(name, sizeof name, "reader %s %dx%d", fp_pixfmt_name(r->out_fmt), r->out_w,
             r->out_h);
    cfg.name = name;
    cfg.format = r->out_fmt;
    cfg.av_format = fp__pixfmt_to_av(r->out_fmt);
    cfg.width = r->out_w;
    cfg.height = r->out_h;
    /* the caller's max_held, and the frame converted ahead */
    cfg.max_buffers = r->max_held + (r->ahead ? 1u : 0u);
    if (r->opt.prefill) {
        cfg.min_buffers = cfg.max_buffers;
        cfg.prefault = 1;
    }
    if (r->out_pool) {
        fp_pool_stats s;
        fp_pool_get_stats(r->out_pool, &s);
        fp_layout cur, want;
        fp_pool_layout(r->out_pool, &cur);
        fp_layout_compute(cfg.format, cfg.width, cfg.height, 64, 0, &want);
        if (memcmp(&cur, &want, sizeof cur) == 0)
            return FP_OK;
        rc = fp_pool_reconfigure(r->out_pool, &cfg);
    } else {
        rc = fp_pool_new_at(&cfg, &r->out_pool, __FILE__, __LINE__, __func__);
    }
    if (rc)
        return fail(r, rc, "cannot create the output pool: %s", fp_pool_errmsg());
    atomic_fetch_or(&fp__hdr(r->out_pool)->flags, FP__OBJ_INTERNAL);
    return FP_OK;
}

static int src_format_for_sws(int f, int *full_range)
{
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full_range = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full_range = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full_range = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full_range = 1; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full_range = 1; return AV_PIX_FMT_YUV411P;
    default: return f;
    }
}

/* Sets up the scaler for `f` and takes the output image from the pool: the
 * part of a conversion that can fail. The pixels are written by scale(). */
static int convert_prepare(fp_reader *r, const AVFrame *f, fp_image **out, const char *file,
                           int line, const char *func)
{
    int full = f->color_range == AVCOL_RANGE_JPEG;
    int sfmt = src_format_for_sws(f->format, &full);
    int dfmt = fp__pixfmt_to_av(r->out_fmt);
    int flags = r->opt.sws_flags ? r->opt.sws_flags : SWS_BILINEAR;
    struct SwsContext *c = sws_getCachedContext(r->sws, f->width, f->height, sfmt, r->out_w,
                                                r->out_h, dfmt, flags, NULL, NULL, NULL);
    if (!c) {
        r->sws = NULL;
        return fail(r, FP_EFORMAT, "cannot convert %s %dx%d to %s %dx%d",
                    av_get_pix_fmt_name(f->format), f->width, f->height,
                    fp_pixfmt_name(r->out_fmt), r->out_w, r->out_h);
    }
    r->sws = c;
    {
        int *inv, *tab, srange, drange, bri, con, sat;
        /* YUV output keeps the source range (framepool images carry no
         * range tag), as ffmpeg's scale filter does; RGB/gray expand it. */
        const AVPixFmtDescriptor *dd = av_pix_fmt_desc_get(dfmt);
        int dfull = dd && !(dd->flags & AV_PIX_FMT_FLAG_RGB) && dd->nb_components >= 3 ? full
                                                                                      : -1;
        if (sws_getColorspaceDetails(c, &inv, &srange, &tab, &drange, &bri, &con, &sat) >= 0 &&
            (srange != full || (dfull >= 0 && drange != dfull))) {
            const int *coefs = sws_getCoefficients(SWS_CS_DEFAULT);
            sws_setColorspaceDetails(c, coefs, full, tab, dfull >= 0 ? dfull : drange, bri, con,
                                     sat);
        }
    }
    fp_image *img = NULL;
    int rc = fp_pool_acquire_at(r->out_pool, 0, &img, file, line, func);
    if (rc)
        return fail(r, rc, "%s", fp_pool_errmsg());
    img->av_format = dfmt;
    *out = img;
    return FP_OK;
}

static void scale(struct SwsContext *c, const AVFrame *f, fp_image *img)
{
    sws_scale(c, (const uint8_t *const *)f->data, f->linesize, 0, f->height, img->data,
              img->stride);
}

/* ---- converting ahead on the reader's own thread ------------------------------------------ */

static void *ahead_main(void *arg)
{
    fp_reader *r = arg;
    pthread_mutex_lock(&r->ahead_mu);
    for (;;) {
        while (r->ahead_state == AHEAD_IDLE || r->ahead_state == AHEAD_DONE)
            pthread_cond_wait(&r->ahead_cv, &r->ahead_mu);
        if (r->ahead_state == AHEAD_QUIT)
            break;
        pthread_mutex_unlock(&r->ahead_mu);
        scale(r->sws, r->job_src, r->job_dst);
        pthread_mutex_lock(&r->ahead_mu);
        r->ahead_state = AHEAD_DONE;
        pthread_cond_broadcast(&r->ahead_cv);
    }
    pthread_mutex_unlock(&r->ahead_mu);
    return NULL;
}

/* Starts the worker on first use. Returns 1 when it runs, 0 when conversion
 * has to stay on the caller's thread. */
static int ahead_start(fp_reader *r)
{
    if (r->ahead_started)
        return 1;
    if (r->ahead_failed)
        return 0;
    r->job_src = av_frame_alloc();
    if (!r->job_src || pthread_mutex_init(&r->ahead_mu, NULL) != 0)
        goto fail_frame;
    if (pthread_cond_init(&r->ahead_cv, NULL) != 0)
        goto fail_mutex;
    /* The worker takes no signals: a program's handlers (and FP_DIAG=signal's
     * sigwait thread) keep seeing them where they expect. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r->ahead_state = AHEAD_IDLE;
    int e = pthread_create(&r->ahead_th, NULL, ahead_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0)
        goto fail_cond;
    r->ahead_started = 1;
    return 1;
fail_cond:
    pthread_cond_destroy(&r->ahead_cv);
fail_mutex:
    pthread_mutex_destroy(&r->ahead_mu);
fail_frame:
    av_frame_free(&r->job_src);
    r->ahead_failed = 1;
    return 0;
}

/* Waits for the job in flight and returns its image (+1), or NULL if none. */
static fp_image *ahead_collect(fp_reader *r)
{
    if (!r->job_busy)
        return NULL;
    pthread_mutex_lock(&r->ahead_mu);
    while (r->ahead_state != AHEAD_DONE)
        pthread_cond_wait(&r->ahead_cv, &r->ahead_mu);
    r->ahead_state = AHEAD_IDLE;
    pthread_mutex_unlock(&r->ahead_mu);
    av_frame_unref(r->job_src);
    fp_image *img = r->job_dst;
    r->job_dst = NULL;
    r->job_busy = 0;
    return img;
}

/* Makes `img`, collected from the worker, the job in flight again. */
static void ahead_putback(fp_reader *r, fp_image *img)
{
    pthread_mutex_lock(&r->ahead_mu);
    r->ahead_state = AHEAD_DONE;
    pthread_mutex_unlock(&r->ahead_mu);
    r->job_dst = img;
    r->job_busy = 1;
}

/* Drops the frame in flight and any error kept from decoding ahead (seek). */
static void ahead_discard(fp_reader *r)
{
    fp_image *img = ahead_collect(r);
    fp_unref(&img);
    r->pending_rc = 0;
}

static void ahead_stop(fp_reader *r)
{
    if (!r->ahead_started)
        return;
    ahead_discard(r);
    pthread_mutex_lock(&r->ahead_mu);
    r->ahead_state = AHEAD_QUIT;
    pthread_cond_broadcast(&r->ahead_cv);
    pthread_mutex_unlock(&r->ahead_mu);
    pthread_join(r->ahead_th, NULL);
    pthread_cond_destroy(&r->ahead_cv);
    pthread_mutex_destroy(&r->ahead_mu);
    av_frame_free(&r->job_src);
    r->ahead_started = 0;
}

/* Hands `f` (its reference moves to the job) and `img` (+1, metadata set) to
 * the worker. */
static void ahead_post(fp_reader *r, AVFrame *f, fp_image *img)
{
    av_frame_move_ref(r->job_src, f);
    r->job_dst = img;
    r->job_busy = 1;
    pthread_mutex_lock(&r->ahead_mu);
    r->ahead_state = AHEAD_WORK;
    pthread_cond_broadcast(&r->ahead_cv);
    pthread_mutex_unlock(&r->ahead_mu);
}

/* Turns the decoded frame `f` into an image. Natively or converting on the
 * caller's thread, stores it (+1) in *out. Converting ahead, hands `f` to the
 * worker and stores in *out the image of the job before it (+1), or NULL
 * when there was none. */
static int deliver(fp_reader *r, AVFrame *f, int64_t pts, int64_t index, fp_image **out,
                   const char *file, int line, const char *func)
{
    fp_image *img = NULL, *prev = NULL;
    int native = r->opt.format == FP_PIX_NONE && !r->opt.width && !r->opt.height;
    int ahead = !native && r->ahead && ahead_start(r);
    int rc;
    if (native) {
        img = fp__bridge_take(r->bridge, f);
        if (img) {
            /* The decoder's crop and the frame's own pointers. */
            img->width = f->width;
            img->height = f->height;
            img->format = fp__pixfmt_from_av(f->format);
            img->av_format = f->format;
            for (int p = 0; p < 4; p++) {
                img->data[p] = f->data[p];
                img->stride[p] = f->data[p] ? f->linesize[p] : 0;
            }
        } else {
            rc = fp__bridge_wrap(r->bridge, f, fp__pixfmt_from_av(f->format), &img, file, line,
                                 func);
            if (rc)
                return fail(r, rc, "cannot wrap the decoded frame");
            r->wrapped++;
        }
    } else {
        /* The worker must be done with the scaler before it is set up again
         * (a size change replaces it). */
        prev = ahead ? ahead_collect(r) : NULL;
        rc = convert_prepare(r, f, &img, file, line, func);
        if (rc) {
            if (prev)
                ahead_putback(r, prev); /* still delivered, before this error */
            return rc;
        }
    }
    img->index = index;
    img->pts = pts == AV_NOPTS_VALUE ? INT64_MIN : pts;
    img->time = pts == AV_NOPTS_VALUE ? NAN : (double)(pts - r->start_pts) * av_q2d(r->st->time_base);
    img->flags = (img->flags & FP_IMAGE_READONLY) | (f->key_frame ? FP_IMAGE_KEY : 0) |
                 ((f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags ? FP_IMAGE_CORRUPT
                                                                              : 0);
    if (ahead) {
        ahead_post(r, f, img);
        *out = prev;
        return FP_OK;
    }
    if (!native)
        scale(r->sws, f, img);
    *out = img;
    return FP_OK;
}

/* Decides what to do with a decoded frame: 1 deliver, 0 skip, -1 end. */
static int frame_wanted(fp_reader *r, int64_t pts, int64_t *index)
{
    if (r->index_from_time && pts != AV_NOPTS_VALUE && r->fps > 0) {
        double t = (double)(pts - r->start_pts) * av_q2d(r->st->time_base);
        r->next_index = llround(t * r->fps);
        r->index_from_time = 0;
    }
    *index = r->next_index++;
    if (pts != AV_NOPTS_VALUE && pts >= r->end_pts)
        return -1;
    if (r->skip_until != INT64_MIN) {
        if (pts != AV_NOPTS_VALUE && pts < r->skip_until)
            return 0;
        r->skip_until = INT64_MIN;
    }
    if (r->opt.every > 1 && *index % r->opt.every)
        return 0;
    return 1;
}

/* Decodes up to the next frame to deliver and passes it to deliver().
 * Returns 1 (see deliver() for *img), 0 at the end, or a negative error. */
static int decode_one(fp_reader *r, fp_image **img, const char *file, int line,
                      const char *func)
{
    AVFrame *f = r->frame;
    for (;;) {
        int e = avcodec_receive_frame(r->dec, f);
        if (e == 0) {
            r->decoded++;
            if (f->width != r->cur_w || f->height != r->cur_h || f->format != r->cur_fmt) {
                int rc = on_geometry(r, f);
                if (rc) {
                    av_frame_unref(f);
                    /* Not committed: a seek revives the reader, and its next
                     * frame must set up the output again, not find no pool. */
                    r->cur_fmt = AV_PIX_FMT_NONE;
                    r->done = 1;
                    return rc;
                }
            }
            int corrupt = (f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags;
            int64_t pts = frame_pts(f), index;
            int want = frame_wanted(r, pts, &index);
            if (want <= 0) {
                av_frame_unref(f);
                if (want < 0) {
                    r->done = 1;
                    return 0;
                }
                r->skipped++;
                r->corrupt += corrupt;
                continue;
            }
            int rc = deliver(r, f, pts, index, img, file, line, func);
            av_frame_unref(f);
            if (rc) {
                r->done = 1;
                return rc;
            }
            r->corrupt += corrupt;
            return 1;
        }
        if (e == AVERROR_EOF) {
            r->done = 1;
            return 0;
        }
        if (e != AVERROR(EAGAIN)) {
            int rc = decode_error(r, e, "decoding");
            if (rc)
                return rc;
            continue;
        }
        if (r->drain_sent) { /* nothing more will come */
            r->done = 1;
            return 0;
        }
        if (!r->pkt_pending) {
            if (!r->demux_eof) {
                int rc = read_packet(r);
                if (rc < 0) {
                    if (rc != FP_ECANCELED && rc != FP_ETIMEDOUT)
                        r->done = 1;
                    return rc;
                }
                if (rc == 0)
                    r->demux_eof = 1;
                else
                    r->pkt_pending = 1;
            }
            if (r->demux_eof) {
                e = avcodec_send_packet(r->dec, NULL);
                r->drain_sent = 1;
                if (e < 0 && e != AVERROR_EOF) {
                    int rc = decode_error(r, e, "draining");
                    if (rc)
                        return rc;
                }
                continue;
            }
            r->packets++;
        }
        e = avcodec_send_packet(r->dec, r->pkt);
        if (e == AVERROR(EAGAIN))
            continue; /* keep the packet; receive first, then resend it */
        r->pkt_pending = 0;
        av_packet_unref(r->pkt);
        if (e < 0 && e != AVERROR_EOF) {
            int rc = decode_error(r, e, "sending a packet");
            if (rc)
                return rc;
        }
    }
}


int fp_reader_next_at(fp_reader *r, fp_image **img, const char *file, int line,
                      const char *func)
{
    if (img)
        fp_unref(img);
    if (!r || !img)
        return FP_EINVAL;
    if (r->failed_open)
        return FP_EINVAL;
    if (!r->job_busy) {
        if (r->pending_rc) { /* met while decoding ahead of the last frame delivered */
            int rc = r->pending_rc;
            r->pending_rc = 0;
            memcpy(r->errmsg, r->pending_msg, sizeof r->errmsg);
            return rc;
        }
        if (r->done)
            return 0;
    }
    r->errmsg[0] = 0;
    snprintf(r->what, sizeof r->what, "read");
    if (atomic_exchange(&r->interrupted, 0))
        return fail(r, FP_ECANCELED, "interrupted (fp_reader_interrupt)");
    unsigned held = frames_held(r);
    if (held >= r->max_held)
        return fail(r, FP_ELIMIT,
                    "the caller holds %u frames, the max_held bound of %u; release frames "
                    "(fp_unref) before asking for more, or raise fp_reader_options.max_held",
                    held, r->max_held);
    if (r->site_file != file || r->site_line != line) {
        r->site_file = file;
        r->site_line = line;
        r->site_func = func;
        fp__bridge_set_site(r->bridge, file, line, func);
    }
    for (;;) {
        int rc = r->done ? 0 : decode_one(r, img, file, line, func);
        if (rc > 0 && !*img)
            continue; /* the first frame went to the worker: decode the next meanwhile */
        if (rc <= 0 && r->job_busy) {
            /* The frame in flight comes first; the end or the error is the
             * next call's answer. */
            if (rc < 0) {
                r->pending_rc = rc;
                memcpy(r->pending_msg, r->errmsg, sizeof r->pending_msg);
                r->errmsg[0] = 0;
            }
            *img = ahead_collect(r);
            rc = 1;
        }
        if (rc > 0) {
            r->delivered++;
            fp_frame_tick();
        }
        return rc;
    }
}

/* ---- seek, info, stats -------------------------------------------------------------------- */

int fp_reader_seek(fp_reader *r, double seconds, int flags)
{
    if (!r || r->failed_open || !r->dec)
        return FP_EINVAL;
    snprintf(r->what, sizeof r->what, "seek to %.3f s", seconds);
    if (!(seconds >= 0))
        return fail(r, FP_EINVAL, "negative or invalid time");
    if (r->avio && !r->avio->seekable)
        return fail(r, FP_EIO, "the input cannot seek (no seek callback)");
    AVRational tb = r->st->time_base;
    int64_t ts = r->start_pts + av_rescale_q((int64_t)llround(seconds * AV_TIME_BASE),
                                             AV_TIME_BASE_Q, tb);
    arm(r);
    int e = avformat_seek_file(r->ic, r->vs, INT64_MIN, ts, ts, 0);
    if (e < 0 && atomic_load(&r->int_reason) == INT_NONE)
        e = av_seek_frame(r->ic, r->vs, ts, AVSEEK_FLAG_BACKWARD);
    disarm(r);
    if (e < 0)
        return lavf_error(r, e, "cannot seek");
    ahead_discard(r);
    avcodec_flush_buffers(r->dec);
    av_packet_unref(r->pkt);
    r->pkt_pending = 0;
    r->demux_eof = r->drain_sent = r->done = 0;
    r->skip_until = (flags & FP_SEEK_PRECISE) ? ts : INT64_MIN;
    /* a seek before `start` still honours it */
    if (r->opt.start > 0) {
        int64_t s = r->start_pts + av_rescale_q((int64_t)llround(r->opt.start * AV_TIME_BASE),
                                                AV_TIME_BASE_Q, tb);
        if (r->skip_until == INT64_MIN || r->skip_until < s)
            r->skip_until = s;
    }
    r->index_from_time = 1;
    r->errmsg[0] = 0;
    return FP_OK;
}

int fp_reader_info_get(const fp_reader *r, fp_reader_info *out)
{
    if (!out)
        return FP_EINVAL;
    memset(out, 0, sizeof *out);
    if (!r || r->failed_open || !r->dec)
        return FP_EINVAL;
    const AVCodecContext *d = r->dec;
    int fmt = r->cur_fmt != AV_PIX_FMT_NONE ? r->cur_fmt : d->pix_fmt;
    out->width = r->cur_fmt != AV_PIX_FMT_NONE ? r->cur_w : d->width;
    out->height = r->cur_fmt != AV_PIX_FMT_NONE ? r->cur_h : d->height;
    out->av_format = fmt;
    out->native_format = fmt == AV_PIX_FMT_NONE ? FP_PIX_NONE : fp__pixfmt_from_av(fmt);
    out->av_format_name = av_get_pix_fmt_name(fmt);
    if (!out->av_format_name)
        out->av_format_name = "none";
    int native = r->opt.format == FP_PIX_NONE && !r->opt.width && !r->opt.height;
    if (native || !r->out_w) {
        fp_reader *rw = (fp_reader *)r;
        out->out_width = out->width;
        out->out_height = out->height;
        out->out_format = native ? out->native_format : r->opt.format;
        if (!native && out->width > 0 && compute_out_size(rw, out->width, out->height) == 0) {
            out->out_width = rw->out_w;
            out->out_height = rw->out_h;
            rw->out_w = 0;
            rw->out_h = 0;
        }
    } else {
        out->out_width = r->out_w;
        out->out_height = r->out_h;
        out->out_format = r->out_fmt;
    }
    out->fps = r->fps;
    AVRational fr = r->st->avg_frame_rate.num ? r->st->avg_frame_rate : r->st->r_frame_rate;
    out->fps_num = fr.num > 0 && fr.den > 0 ? fr.num : 0;
    out->fps_den = fr.num > 0 && fr.den > 0 ? fr.den : 1;
    AVRational tb = r->st->time_base;
    if (r->st->duration != AV_NOPTS_VALUE)
        out->duration = (double)r->st->duration * av_q2d(tb);
    else if (r->ic->duration != AV_NOPTS_VALUE)
        out->duration = (double)r->ic->duration / AV_TIME_BASE;
    if (r->st->nb_frames > 0)
        out->frame_count = r->st->nb_frames;
    else if (out->duration > 0 && r->fps > 0)
        out->frame_count = llround(out->duration * r->fps);
    else
        out->frame_count = -1;
    AVRational sar = av_guess_sample_aspect_ratio(r->ic, r->st, NULL);
    out->sar_num = sar.num > 0 ? sar.num : 0;
    out->sar_den = sar.num > 0 ? sar.den : 1;
    out->time_base_num = tb.num;
    out->time_base_den = tb.den;
    out->stream_index = r->vs;
    out->codec = d->codec ? d->codec->name : avcodec_get_name(d->codec_id);
    out->container = r->ic->iformat ? r->ic->iformat->name : "";
    out->threads = r->threads;
    out->zero_copy = r->zero_copy;
    out->decoder_buffers = r->decoder_need;
    out->max_held = r->max_held;
    out->pool_max_buffers = r->bridge->pool_max;
    out->out_pool_max_buffers = native ? 0 : r->max_held + (r->ahead ? 1u : 0u);
    out->convert_ahead = r->ahead && !r->ahead_failed;
    return FP_OK;
}

int fp_reader_stats_get(fp_reader *r, fp_reader_stats *out)
{
    if (!out)
        return FP_EINVAL;
    memset(out, 0, sizeof *out);
    if (!r || r->failed_open || !r->dec)
        return FP_EINVAL;
    out->packets = r->packets;
    out->decoded = r->decoded;
    out->delivered = r->delivered;
    out->skipped = r->skipped;
    out->corrupt = r->corrupt;
    out->decode_errors = r->decode_errors;
    out->size_changes = r->size_changes;
    out->wrapped = r->wrapped;
    unsigned held = 0, dec_only = 0;
    fp__bridge_counts(r->bridge, &held, &dec_only);
    out->decoder_held = dec_only;
    pthread_mutex_lock(&r->bridge->mu);
    fp_pool_get_stats(r->bridge->pool, &out->pool);
    pthread_mutex_unlock(&r->bridge->mu);
    if (r->out_pool) {
        fp_pool_get_stats(r->out_pool, &out->out_pool);
        held += (unsigned)out->out_pool.outstanding - (r->job_busy ? 1u : 0u);
    }
    out->held = held;
    return FP_OK;
}
