/*
 * live_matrix — the live reader against the server zoo (tests/zoo.h), fault
 * by fault, next to cv::VideoCapture: a compatibility matrix.
 *
 *   live_matrix [--servers rtsp,rtmp,hls,srt,mjpeg] [--clients all,latest,cv]
 *               [--faults feed,restart,crash,pause,size] [--up S] [--down S]
 *               [--recover S] [--hls-sequence-restarts] [--reconnect-min S]
 *
 * Every source stamps each picture with the time it made it and logs every
 * frame it made (tests/zoo.h "Stamps"): each client reads the stamp of each
 * frame it gets, so frames are counted by identity, not by rate.
 *
 * Schedule, per server: the server starts and streams for a few seconds;
 * the clients start (framepool ALL and LATEST: this program with --client;
 * OpenCV: bench/live_matrix_cv; each in its own process; RTSP over TCP and
 * over UDP); then each fault of that server (--faults: a subset) — the
 * stream stops for `down` s (3) and returns ("feed"), the server restarts
 * gracefully as its service manager does it ("restart": its stop signal,
 * tests/zoo.h), the server crashes (SIGKILL) and starts again ("crash"), the
 * server process is stopped for `down` s and continued ("pause"), the frame
 * size changes ("size"). The start is always run. A phase (the start or a
 * fault) lasts until every client got a frame made after the fault ended
 * (at most `recover` s, 40), then `up` s more (8). Clients of RTSP, RTMP and
 * HLS watch one server together; srt-live-transmit and the MJPEG camera
 * serve one client at a time, so each of their clients gets its own server.
 * Per phase and client (t_up: the end of the fault, or the client's start):
 *   first      s from t_up to the first frame handed over
 *   fresh      s from t_up to the first frame made after t_up (recovery)
 *   got/sent   frames made by the source in [t_up, end of phase) that the
 *              client delivered (at any time) / all the source made then
 *   from key   the same counted from the first keyframe the source made
 *              after t_up: what a decoder that joins, or lost data, can
 *              show at the earliest (the ALL criterion is judged on it)
 *   backlog    frames handed over after t_up that were made before it (an
 *              HLS playlist's earlier segments, frames a stopped server
 *              queued), not in got/sent; "+N dup" frames delivered twice
 *   q drops    framepool only: frames dropped because the client or its
 *              decoder fell behind (stats.dropped + packets_dropped; LATEST
 *              drops by design)
 *   conns      connections made in the phase
 *   age        ms from making to hand-over of the fresh frames (end to end:
 *              encoder, server, network, client), mean/max
 *   rd age     framepool only: ms from the packet's arrival at the reader
 *              (fp_image.wall_time) to hand-over, mean/max
 * and per client run the CPU time of its process per frame delivered. The
 * table (markdown) is printed on stdout. --reconnect-min sets the framepool
 * clients' live.reconnect_min (default: the library's, 0.5 s). FP_MATRIX_KEEP=1 keeps the
 * clients' output files (/tmp/fp_live_matrix_*) and prints which frames
 * each client missed.
 */
#define _GNU_SOURCE
#include "zoo.h"

#include <framepool.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void zoo_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "live_matrix: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double mono(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the framepool client (--client all|latest URL SECONDS [AV_OPTIONS]) ---- */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void client_event(const fp_live_event *ev, void *user)
{
    (void)user;
    if (getenv("FP_LIVE_VERBOSE"))
        fprintf(stderr, "[%.3f] live event %d: %s\n", mono(), ev->type, ev->message);
    if (ev->type == FP_LIVE_CONNECTED) {
        pthread_mutex_lock(&out_mu);
        printf("c %.6f\n", mono());
        pthread_mutex_unlock(&out_mu);
    }
}

/* Prints "s T" at start, "c T" per connection, "x T STAMP AGE_MS DROPPED" per
 * frame (T: CLOCK_MONOTONIC s; STAMP: zoo_stamp_read, -1 unread; AGE_MS: now
 * - wall_time; DROPPED: stats.dropped + stats.packets_dropped so far), line-buffered so that the
 * harness follows it live. */
static int client_main(const char *mode, const char *url, double seconds, const char *av_options)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    fp_log_set_level(FP_LOG_QUIET);
    double start = mono();
    printf("s %.6f\n", start);
    fp_reader_options o = {0};
    o.live.mode = strcmp(mode, "latest") == 0 ? FP_LIVE_LATEST : FP_LIVE_ALL;
    o.live.on_event = client_event;
    o.av_options = av_options && *av_options ? av_options : NULL;
    o.timeout_us = 100000;
    const char *rmin = getenv("FP_MATRIX_RECONNECT_MIN"); /* --reconnect-min */
    if (rmin && *rmin)
        o.live.reconnect_min = atof(rmin);
    fp_reader *r = NULL;
    if (fp_reader_open(url, &o, &r) < 0) {
        fprintf(stderr, "live_matrix client: %s\n", fp_errmsg());
        return 1;
    }
    fp_image *img = NULL;
    while (mono() - start < seconds) {
        int rc = fp_reader_next(r, &img);
        if (rc > 0) {
            double t = mono(), age = clock_s(CLOCK_REALTIME) - img->wall_time;
            /* native output: plane 0 is the luma of every format these servers send */
            long stamp = zoo_stamp_read(img->data[0], img->stride[0], 1, img->width, img->height);
            fp_reader_stats st = {0};
            fp_reader_get_stats(r, &st);
            pthread_mutex_lock(&out_mu);
            printf("x %.6f %ld %.3f %llu\n", t, stamp, img->wall_time > 0 ? 1000 * age : -1.0,
                   (unsigned long long)(st.dropped + st.packets_dropped));
            pthread_mutex_unlock(&out_mu);
        } else if (rc == 0) {
            break;
        }
    }
    fp_unref(&img);
    fp_reader_close(&r);
    fflush(stdout);
    return 0;
}

/* ---- clients and what they printed ----------------------------------------------------------- */

enum { F_NONE, F_FEED, F_RESTART, F_CRASH, F_PAUSE, F_SIZE, F_COUNT };
static const char *fault_names[] = {"start", "stream stop 3s", "server restart", "server crash",
                                    "SIGSTOP 3s", "size change"};
/* --faults names */
static const char *fault_keys[] = {"start", "feed", "restart", "crash", "pause", "size"};

typedef struct line {
    char kind;       /* 'c' connected, 'x' frame */
    double t;        /* arrival, CLOCK_MONOTONIC */
    long stamp;      /* centiseconds since the epoch; -1 unread */
    double rd_age;   /* ms; <0 unknown */
    long dropped;    /* framepool: frames its queue dropped so far; -1 unknown */
} line;

typedef struct client {
    const char *name;  /* all, latest, cv */
    const char *transport; /* "tcp"/"udp" (RTSP) or "" */
    char out[160];
    FILE *f;
    pid_t pid;
    double start;
    line *l;
    int n, cap;
    double cpu;
    int fi;            /* index into the CPU table */
} client;

static double up_s = 8, down_s = 3, recover_s = 40;
static int hls_sequence_restarts; /* the HLS publisher numbers segments from 0 each run */
static unsigned fault_filter = ~0u; /* --faults */
static char self_path[4096];

static void start_client(client *c, const zoo *z, const char *av)
{
    c->pid = fork();
    if (c->pid < 0)
        zoo_fail("fork: %s", strerror(errno));
    if (c->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(fd, 1);
        if (!getenv("FP_LIVE_VERBOSE"))
            dup2(nul, 2);
        if (strcmp(c->name, "cv") == 0) {
            char cv[4200];
            snprintf(cv, sizeof cv, "%s_cv", self_path);
            if (av && *av) {
                /* "k=v:k=v" -> OpenCV's "k;v|k;v" */
                char opt[256];
                snprintf(opt, sizeof opt, "%s", av);
                for (char *q = opt; *q; q++)
                    *q = *q == '=' ? ';' : *q == ':' ? '|' : *q;
                setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", opt, 1);
            }
            execl(cv, cv, z->url, "3600", (char *)NULL);
        } else {
            execl(self_path, self_path, "--client", c->name, z->url, "3600", av ? av : "",
                  (char *)NULL);
        }
        _exit(127);
    }
    for (int i = 0; i < 100 && !c->f; i++) {
        c->f = fopen(c->out, "r");
        if (!c->f)
            sleep_s(0.01);
    }
    if (!c->f)
        zoo_fail("no client output %s", c->out);
}

/* Reads what the client printed since the last call. */
static void poll_client(client *c)
{
    char buf[160];
    for (;;) {
        long pos = ftell(c->f);
        if (!fgets(buf, sizeof buf, c->f)) {
            clearerr(c->f);
            return;
        }
        if (!strchr(buf, '\n')) { /* a line still being written */
            fseek(c->f, pos, SEEK_SET);
            return;
        }
        char k = 0;
        double t = 0, age = -1;
        long stamp = -1, dropped = -1;
        if (sscanf(buf, "%c %lf %ld %lf %ld", &k, &t, &stamp, &age, &dropped) < 2)
            continue;
        if (k == 's') {
            c->start = t;
            continue;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 4096;
            c->l = realloc(c->l, (size_t)c->cap * sizeof *c->l);
            if (!c->l)
                zoo_fail("out of memory");
        }
        c->l[c->n++] = (line){k, t, k == 'x' ? stamp : -1, age, k == 'x' ? dropped : -1};
    }
}

static void stop_client(client *c)
{
    kill(c->pid, SIGKILL);
    struct rusage ru;
    int st;
    if (wait4(c->pid, &st, 0, &ru) == c->pid)
        c->cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec * 1e-6;
    poll_client(c);
    fclose(c->f);
    if (!getenv("FP_MATRIX_KEEP"))
        unlink(c->out);
}

/* ---- the source's log: every frame it made --------------------------------------------------- */

typedef struct made_frame {
    long stamp;
    int key; /* a keyframe: frame number a multiple of the source's GOP */
} made_frame;

static made_frame *made;
static int nmade, capmade;

static int cmp_made(const void *a, const void *b)
{
    long x = ((const made_frame *)a)->stamp, y = ((const made_frame *)b)->stamp;
    return (x > y) - (x < y);
}

/* Every frame the sources made (each log starts at frame 0, a keyframe;
 * the encoders make one every `gop` frames and no others). With
 * `partial_lost` (HLS), the frames of the segment a publisher was writing
 * when it was killed — from its last keyframe on, in every log but the
 * newest — were never published (the playlist lists a segment once it is
 * complete): they are left out, and counted in *lost. */
static void read_made(const char *dir, int gop, int partial_lost, int *lost)
{
    nmade = 0;
    *lost = 0;
    DIR *d = opendir(dir);
    if (!d)
        zoo_fail("no zoo directory %s", dir);
    struct dirent *e;
    int newest_file = -1, nfile = 0;
    long newest = -1;
    typedef struct span {
        int from, last_key, to;
    } span;
    span files[64];
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "made-", 5) != 0)
            continue;
        char path[512], buf[256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int from = nmade, last_key = -1;
        while (fgets(buf, sizeof buf, f)) {
            const char *p = strstr(buf, " pts:");
            if (!p || strncmp(p + 5, "NOPTS", 5) == 0)
                continue;
            long long us = atoll(p + 5);
            long frame = strncmp(buf, "frame:", 6) == 0 ? atol(buf + 6) : -1;
            if (nmade == capmade) {
                capmade = capmade ? 2 * capmade : 65536;
                made = realloc(made, (size_t)capmade * sizeof *made);
                if (!made)
                    zoo_fail("out of memory");
            }
            int key = frame >= 0 && frame % gop == 0;
            if (key)
                last_key = nmade;
            if (us > newest) {
                newest = us;
                newest_file = nfile;
            }
            made[nmade++] = (made_frame){(long)((us / 10000) & ((1L << 18) - 1)), key};
        }
        fclose(f);
        if (nfile < 64)
            files[nfile++] = (span){from, last_key, nmade};
    }
    closedir(d);
    if (partial_lost) {
        int w = 0;
        for (int fi = 0; fi < nfile; fi++) {
            int cut = fi == newest_file || files[fi].last_key < 0 ? files[fi].to
                                                                    : files[fi].last_key;
            for (int i = files[fi].from; i < files[fi].to; i++) {
                if (i < cut)
                    made[w++] = made[i];
                else
                    (*lost)++;
            }
        }
        nmade = w;
    }
    qsort(made, (size_t)nmade, sizeof *made, cmp_made);
}

/* ---- the schedule ---------------------------------------------------------------------------- */

typedef struct phase {
    int fault;
    double t_fault, t_up, t_end;
    long udp_drops; /* SRT: datagrams the kernel dropped at the relay's input, -1 n/a */
} phase;

/* The drops counter of the UDP socket bound to `port` (/proc/net/udp), -1. */
static long udp_drops(int port)
{
    FILE *f = fopen("/proc/net/udp", "r");
    if (!f)
        return -1;
    char buf[512], want[16];
    snprintf(want, sizeof want, ":%04X ", port);
    long drops = -1;
    while (fgets(buf, sizeof buf, f)) {
        char *p = strstr(buf, want);
        if (!p || p > buf + 32) /* the local address comes first */
            continue;
        char *last = strrchr(buf, ' ');
        while (last && last > buf && (last[1] == '\n' || last[1] == 0)) {
            *last = 0;
            last = strrchr(buf, ' ');
        }
        if (last)
            drops = atol(last + 1);
    }
    fclose(f);
    return drops;
}

typedef struct row {
    const char *server, *transport, *fault, *client;
    double gop, fps;
    double first, fresh; /* s, <0: none */
    int got, sent, got_key, sent_key, backlog, dups, unread, conns;
    long qdrops;         /* framepool: frames its queue dropped in the phase, -1 n/a */
    double age_mean, age_max, rd_mean, rd_max; /* ms, <0: none */
    double cpu_ms;       /* of the whole client run */
} row;

static row rows[1024];
static int nrows;

static double epoch_mono; /* CLOCK_MONOTONIC of the stamp epoch */
static char notes[8192];  /* printed after the table */

static double made_at(long stamp)
{
    return epoch_mono + stamp / 100.0;
}

static unsigned faults_of(zoo_kind k)
{
    switch (k) {
    case ZOO_RTSP:
    case ZOO_MJPEG:
        return 1u << F_RESTART | 1u << F_CRASH | 1u << F_PAUSE | 1u << F_SIZE;
    default:
        return 1u << F_FEED | 1u << F_RESTART | 1u << F_CRASH | 1u << F_PAUSE | 1u << F_SIZE;
    }
}

/* Whether every client handed over a frame made after `t_up`. */
static int all_fresh(client *cs, int nc, double t_up)
{
    for (int i = 0; i < nc; i++) {
        poll_client(&cs[i]);
        int ok = 0;
        for (int j = cs[i].n - 1; j >= 0 && !ok && cs[i].l[j].t >= t_up; j--)
            ok = cs[i].l[j].kind == 'x' && cs[i].l[j].stamp >= 0 &&
                 made_at(cs[i].l[j].stamp) >= t_up;
        if (!ok)
            return 0;
    }
    return 1;
}

static void hold_phase(client *cs, int nc, phase *p)
{
    p->t_up = mono();
    while (mono() - p->t_up < recover_s && !all_fresh(cs, nc, p->t_up))
        sleep_s(0.1);
    sleep_s(up_s);
    p->t_end = mono();
}

static int has_stamp(const char *seen, long s)
{
    return s >= 0 && s < (1L << 18) && seen[s];
}

static void analyse(client *c, const zoo *z, const phase *ph, int nph)
{
    int frames = 0;
    for (int i = 0; i < c->n; i++)
        frames += c->l[i].kind == 'x';
    double cpu_ms = frames ? 1000 * c->cpu / frames : NAN;
    /* stamps this client delivered, and how often */
    static char seen[1 << 18];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < c->n; i++)
        if (c->l[i].kind == 'x' && c->l[i].stamp >= 0 && seen[c->l[i].stamp] < 100)
            seen[c->l[i].stamp]++;
    for (int p = 0; p < nph; p++) {
        row *r = &rows[nrows++];
        memset(r, 0, sizeof *r);
        r->server = zoo_name(z->kind);
        r->transport = c->transport;
        r->fault = fault_names[ph[p].fault];
        r->client = c->name;
        r->gop = z->gop;
        r->fps = z->fps;
        r->cpu_ms = cpu_ms;
        r->first = r->fresh = -1;
        r->age_mean = r->age_max = r->rd_mean = r->rd_max = -1;
        double t_up = p == 0 ? c->start : ph[p].t_up, t_end = ph[p].t_end;
        double age_sum = 0, rd_sum = 0;
        int age_n = 0, rd_n = 0;
        long drop0 = -1, drop1 = -1; /* stats.dropped before and at the end of the phase */
        for (int i = 0; i < c->n; i++) {
            const line *l = &c->l[i];
            if (l->kind != 'x' || l->dropped < 0)
                continue;
            if (l->t < t_up)
                drop0 = l->dropped;
            else if (l->t < t_end)
                drop1 = l->dropped;
        }
        r->qdrops = drop1 < 0 ? -1 : drop1 - (drop0 < 0 ? 0 : drop0);
        static char counted[1 << 18];
        memset(counted, 0, sizeof counted);
        for (int i = 0; i < c->n; i++) {
            const line *l = &c->l[i];
            if (l->t < (p == 0 ? c->start : ph[p].t_fault) || l->t >= t_end)
                continue;
            if (l->kind == 'c') {
                r->conns++;
                continue;
            }
            if (l->t < t_up)
                continue;
            if (r->first < 0)
                r->first = l->t - t_up;
            if (l->stamp < 0) {
                r->unread++;
                continue;
            }
            double m = made_at(l->stamp);
            if (counted[l->stamp]++) {
                r->dups++;
                continue;
            }
            if (m < t_up) {
                r->backlog++;
                continue;
            }
            if (r->fresh < 0)
                r->fresh = l->t - t_up;
            age_sum += l->t - m;
            age_n++;
            r->age_max = fmax(r->age_max, 1000 * (l->t - m));
            if (l->rd_age >= 0) {
                rd_sum += l->rd_age;
                rd_n++;
                r->rd_max = fmax(r->rd_max, l->rd_age);
            }
        }
        if (age_n)
            r->age_mean = 1000 * age_sum / age_n;
        if (rd_n)
            r->rd_mean = rd_sum / rd_n;
        /* "from key" counts from the first keyframe made after t_up: what a
         * decoder that joins (or lost data) can show at the earliest */
        double key = INFINITY;
        for (int i = 0; i < nmade && key == INFINITY; i++)
            if (made[i].key && made_at(made[i].stamp) >= t_up)
                key = made_at(made[i].stamp);
        int verbose = getenv("FP_MATRIX_KEEP") != NULL, run0 = -1;
        if (verbose) {
            /* the timeline of the phase, in s after t_up: the fault, the
             * keyframes the source made, this client's connections (framepool:
             * with its first frame) and first frame */
            char tl[512];
            int n = snprintf(tl, sizeof tl, "fault at %+.2f; keyframes at",
                             (p == 0 ? c->start : ph[p].t_fault) - t_up);
            int nk = 0;
            for (int i = 0; i < nmade && nk < 3; i++) {
                double m = made_at(made[i].stamp);
                if (made[i].key && m >= t_up - z->gop && m < t_end && n < (int)sizeof tl) {
                    n += snprintf(tl + n, sizeof tl - n, " %+.2f", m - t_up);
                    nk += m >= t_up;
                }
            }
            for (int i = 0; i < c->n && n < (int)sizeof tl; i++) {
                const line *l = &c->l[i];
                if (l->t >= (p == 0 ? c->start : ph[p].t_fault) && l->t < t_end &&
                    l->kind == 'c')
                    n += snprintf(tl + n, sizeof tl - n, "; connected %+.2f", l->t - t_up);
            }
            for (int i = 0; i < c->n && n < (int)sizeof tl; i++) {
                const line *l = &c->l[i];
                if (l->kind == 'x' && l->t >= t_up && l->t < t_end && l->stamp >= 0 &&
                    made_at(l->stamp) >= t_up) {
                    n += snprintf(tl + n, sizeof tl - n,
                                  "; first fresh frame made %+.2f, handed over %+.2f",
                                  made_at(l->stamp) - t_up, l->t - t_up);
                    break;
                }
            }
            fprintf(stderr, "live_matrix: %s %s %s%s: t_up %.3f (mono); %s\n", zoo_name(z->kind),
                    fault_names[ph[p].fault], c->name, c->transport, t_up, tl);
        }
        for (int i = 0; i < nmade; i++) {
            double m = made_at(made[i].stamp);
            if (m < t_up || m >= t_end)
                continue;
            r->sent++;
            int got = has_stamp(seen, made[i].stamp);
            r->got += got;
            if (m >= key) {
                r->sent_key++;
                r->got_key += got;
            }
            /* FP_MATRIX_KEEP: the runs of frames made but not delivered */
            if (verbose && !got && run0 < 0)
                run0 = i;
            if (verbose && run0 >= 0 && (got || i + 1 == nmade || made_at(made[i + 1].stamp) >= t_end)) {
                int last = got ? i - 1 : i;
                fprintf(stderr, "live_matrix: %s %s %s%s: missed %d frames made at +%.2f..+%.2f s "
                                "after t_up\n", zoo_name(z->kind), fault_names[ph[p].fault],
                        c->name, c->transport, last - run0 + 1, made_at(made[run0].stamp) - t_up,
                        made_at(made[last].stamp) - t_up);
                run0 = -1;
            }
        }
    }
}

/* RTSP: what the server's event log (tests/rtsp_server.py --events) says
 * about each phase that restarted it — when it listened, when the shared
 * media made its first frame (a keyframe: the media is prepared for the
 * first client's DESCRIBE), the clients' PLAYs, the next keyframe — as a
 * note under the table (s after t_up). */
static void rtsp_notes(const zoo *z, const phase *ph, int nph)
{
    char path[160];
    snprintf(path, sizeof path, "%s/rtsp-events.log", z->dir);
    for (int p = 0; p < nph; p++) {
        int f = ph[p].fault;
        if (f != F_RESTART && f != F_CRASH && f != F_SIZE)
            continue;
        FILE *in = fopen(path, "r");
        if (!in)
            return;
        char buf[256], plays[256] = "";
        double listen = NAN, key0 = NAN, key1 = NAN;
        int nplay = 0, pl = 0;
        while (fgets(buf, sizeof buf, in)) {
            double t = atof(buf);
            if (t < ph[p].t_fault || t >= ph[p].t_end)
                continue;
            if (strstr(buf, " listening") && isnan(listen))
                listen = t;
            else if (strstr(buf, "keyframe made (frame 0)") && isnan(key0))
                key0 = t;
            else if (strstr(buf, "keyframe made") && !isnan(key0) && isnan(key1))
                key1 = t;
            else if (strstr(buf, " play") && isnan(key1) && pl < (int)sizeof plays - 16) {
                pl += snprintf(plays + pl, sizeof plays - pl, "%s%+.2f", nplay ? ", " : "",
                               t - ph[p].t_up);
                nplay++;
            }
        }
        fclose(in);
        size_t n = strlen(notes);
        snprintf(notes + n, sizeof notes - n,
                 "- rtsp, %s (s after t_up, server's event log): listening %+.2f; the shared "
                 "media's first frame, a keyframe, made %+.2f; PLAYs before the next keyframe: "
                 "%s; the next keyframe %+.2f\n",
                 fault_names[f], listen - ph[p].t_up, key0 - ph[p].t_up, nplay ? plays : "none",
                 key1 - ph[p].t_up);
    }
}

static void run_group(zoo_kind kind, client *cs, int nc)
{
    zoo z;
    zoo_init(&z, kind);
    z.hls_sequence_restarts = hls_sequence_restarts;
    double rt = clock_s(CLOCK_REALTIME), mt = mono();
    z.stamp_epoch_us = (long long)(rt * 1e6);
    epoch_mono = mt - (rt - (double)z.stamp_epoch_us / 1e6);
    zoo_start(&z);
    /* the source streams before anyone watches (HLS: a playlist of a few segments) */
    sleep_s(kind == ZOO_HLS ? 7 : 2);
    for (int i = 0; i < nc; i++) {
        snprintf(cs[i].out, sizeof cs[i].out, "/tmp/fp_live_matrix_%d_%s_%s%s.txt", (int)getpid(),
                 zoo_name(kind), cs[i].name, cs[i].transport);
        char av[64] = "";
        if (kind == ZOO_RTSP)
            snprintf(av, sizeof av, "rtsp_transport=%s", cs[i].transport);
        start_client(&cs[i], &z, av);
    }
    unsigned faults = faults_of(kind) & fault_filter;
    phase ph[F_COUNT];
    int nph = 0;
    ph[nph].fault = F_NONE;
    ph[nph].t_fault = mono();
    hold_phase(cs, nc, &ph[nph++]);
    for (int f = 1; f < F_COUNT; f++) {
        if (!((faults >> f) & 1))
            continue;
        phase *p = &ph[nph++];
        p->fault = f;
        p->t_fault = mono();
        long d0 = kind == ZOO_SRT ? udp_drops(z.port2) : -1;
        switch (f) {
        case F_FEED:
            zoo_feed_stop(&z);
            sleep_s(down_s);
            zoo_feed_start(&z);
            break;
        case F_RESTART:
            zoo_server_restart(&z);
            break;
        case F_CRASH:
            zoo_server_crash(&z);
            break;
        case F_PAUSE:
            zoo_server_pause(&z);
            sleep_s(down_s);
            zoo_server_resume(&z);
            break;
        case F_SIZE:
            zoo_set_size(&z, "480x272");
            break;
        }
        hold_phase(cs, nc, p);
        long d1 = kind == ZOO_SRT ? udp_drops(z.port2) : -1;
        p->udp_drops = d0 >= 0 && d1 >= 0 && f != F_RESTART && f != F_CRASH ? d1 - d0 : -1;
        if (p->udp_drops >= 0) {
            size_t n = strlen(notes);
            snprintf(notes + n, sizeof notes - n,
                     "- srt, %s, client %s: %ld datagrams (1316 B) dropped by the kernel at "
                     "srt-live-transmit's UDP input during the phase\n",
                     fault_names[f], cs[0].name, p->udp_drops);
        }
    }
    /* frames made at the end of the last phase are still on their way (an
     * HLS segment is fetched once written): they count in got/sent */
    sleep_s(kind == ZOO_HLS ? 8 : 2);
    for (int i = 0; i < nc; i++)
        stop_client(&cs[i]);
    int gop = (int)(z.gop * z.fps + 0.5), lost = 0;
    read_made(z.dir, gop < 1 ? 1 : gop, kind == ZOO_HLS, &lost);
    if (lost) {
        size_t n = strlen(notes);
        snprintf(notes + n, sizeof notes - n,
                 "- hls: %d frames made in segments the publisher never finished (it was "
                 "killed at a fault) are not counted as sent\n",
                 lost);
    }
    if (nmade == 0)
        zoo_fail("%s: the source logged no frame (%s)", zoo_name(kind), z.dir);
    if (kind == ZOO_RTSP)
        rtsp_notes(&z, ph, nph);
    for (int i = 0; i < nc; i++) {
        analyse(&cs[i], &z, ph, nph);
        free(cs[i].l);
        cs[i].l = NULL;
        cs[i].n = cs[i].cap = 0;
    }
    zoo_stop(&z);
}

/* ---- the table ------------------------------------------------------------------------------- */

static void pct(char *out, size_t cap, int a, int b)
{
    if (b > 0)
        snprintf(out, cap, "%d/%d (%.0f%%)", a, b, 100.0 * a / b);
    else
        snprintf(out, cap, "%d/0", a);
}

static void print_table(void)
{
    printf("\n| server | fault | client | GOP (s) | first / fresh (s) | got/sent | from key "
           "| backlog | q drops | conns | age mean/max (ms) | rd age mean/max (ms) | misses |\n");
    printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        char first[48], got[48], after[48], backlog[48], age[48], rd[48], miss[128] = "";
        if (r->first >= 0 && r->fresh >= 0)
            snprintf(first, sizeof first, "%.2f / %.2f", r->first, r->fresh);
        else if (r->first >= 0)
            snprintf(first, sizeof first, "%.2f / -", r->first);
        else
            snprintf(first, sizeof first, "- / -");
        pct(got, sizeof got, r->got, r->sent);
        pct(after, sizeof after, r->got_key, r->sent_key);
        snprintf(backlog, sizeof backlog, "%d", r->backlog);
        if (r->dups)
            snprintf(backlog + strlen(backlog), sizeof backlog - strlen(backlog), " +%d dup",
                     r->dups);
        if (r->unread)
            snprintf(backlog + strlen(backlog), sizeof backlog - strlen(backlog), " +%d unread",
                     r->unread);
        char qd[24] = "n/a";
        if (r->qdrops >= 0)
            snprintf(qd, sizeof qd, "%ld", r->qdrops);
        if (r->age_mean >= 0)
            snprintf(age, sizeof age, "%.0f / %.0f", r->age_mean, r->age_max);
        else
            snprintf(age, sizeof age, "-");
        if (r->rd_mean >= 0)
            snprintf(rd, sizeof rd, "%.0f / %.0f", r->rd_mean, r->rd_max);
        else
            snprintf(rd, sizeof rd, strcmp(r->client, "cv") == 0 ? "n/a" : "-");
        /* the criteria: recovery; ALL >= 95% of what was made while
         * up; the first frame within a keyframe interval + 0.5 s; LATEST's
         * reader age within a frame interval + the decode time (the
         * client's CPU per frame) */
        int fp = strcmp(r->client, "cv") != 0;
        if (r->fresh < 0)
            strcat(miss, "no recovery; ");
        if (fp && strcmp(r->client, "all") == 0 && r->sent_key > 0 &&
            r->got_key < 0.95 * r->sent_key)
            strcat(miss, "<95%; ");
        if (fp && !strcmp(r->fault, "start") && (r->first < 0 || r->first > r->gop + 0.5))
            strcat(miss, "first > GOP+0.5; ");
        if (fp && !strcmp(r->client, "latest") && r->rd_mean >= 0 &&
            r->rd_mean > 1000 / r->fps + (isnan(r->cpu_ms) ? 0 : r->cpu_ms))
            strcat(miss, "age; ");
        size_t ml = strlen(miss);
        if (ml >= 2)
            miss[ml - 2] = 0;
        char who[32];
        snprintf(who, sizeof who, "%s%s%s", r->client, *r->transport ? " " : "",
                 r->transport);
        printf("| %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %d | %s | %s | %s |\n",
               r->server, r->fault, who, r->gop, first, got, after, backlog, qd, r->conns, age, rd,
               !fp ? "" : *miss ? miss : "ok");
    }
    if (notes[0])
        printf("\n%s", notes);
    printf("\nCPU per frame (ms, client process, whole run):\n\n| server | client | ms |\n"
           "|---|---|---:|\n");
    for (int i = 0; i < nrows; i++)
        if (!strcmp(rows[i].fault, "start"))
            printf("| %s | %s%s%s | %.2f |\n", rows[i].server, rows[i].client,
                   *rows[i].transport ? " " : "", rows[i].transport, rows[i].cpu_ms);
}

static int split(char *list, const char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(list, ","); tok && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--client") == 0)
        return client_main(argv[2], argv[3], atof(argv[4]), argc > 5 ? argv[5] : NULL);
    char servers_s[128] = "rtsp,rtmp,hls,srt,mjpeg", clients_s[64] = "all,latest,cv";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--servers") && i + 1 < argc)
            snprintf(servers_s, sizeof servers_s, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
            snprintf(clients_s, sizeof clients_s, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--up") && i + 1 < argc)
            up_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--down") && i + 1 < argc)
            down_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--recover") && i + 1 < argc)
            recover_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--hls-sequence-restarts"))
            hls_sequence_restarts = 1;
        else if (!strcmp(argv[i], "--reconnect-min") && i + 1 < argc)
            setenv("FP_MATRIX_RECONNECT_MIN", argv[++i], 1); /* the clients inherit it */
        else if (!strcmp(argv[i], "--faults") && i + 1 < argc) {
            char list[128];
            const char *fl[F_COUNT];
            snprintf(list, sizeof list, "%s", argv[++i]);
            int nf = split(list, fl, F_COUNT);
            fault_filter = 0;
            for (int j = 0; j < nf; j++) {
                int f = -1;
                for (int k2 = 0; k2 < F_COUNT; k2++)
                    if (!strcmp(fl[j], fault_keys[k2]))
                        f = k2;
                if (f < 0)
                    zoo_fail("unknown fault '%s' (feed, restart, crash, pause, size)", fl[j]);
                fault_filter |= 1u << f;
            }
        }
        else {
            fprintf(stderr, "usage: live_matrix [--servers LIST] [--clients all,latest,cv] "
                            "[--faults feed,restart,crash,pause,size] [--up S] [--down S] [--recover S] "
                            "[--hls-sequence-restarts] [--reconnect-min S]\n");
            return 2;
        }
    }
    ssize_t k = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (k <= 0)
        zoo_fail("readlink /proc/self/exe: %s", strerror(errno));
    self_path[k] = 0;
    const char *servers[16], *names[3];
    int ns = split(servers_s, servers, 16), nn = split(clients_s, names, 3);
    static const char *kinds[] = {"rtsp", "rtmp", "hls", "srt", "mjpeg"};
    double t0 = mono();
    for (int s = 0; s < ns; s++) {
        int kind = -1;
        for (int j = 0; j < 5; j++)
            if (!strcmp(servers[s], kinds[j]))
                kind = j;
        if (kind < 0)
            zoo_fail("unknown server '%s' (rtsp, rtmp, hls, srt, mjpeg)", servers[s]);
        client cs[8];
        int nc = 0;
        memset(cs, 0, sizeof cs);
        if (kind == ZOO_RTSP) {
            for (int tr = 0; tr < 2; tr++)
                for (int c = 0; c < nn; c++)
                    cs[nc++] = (client){.name = names[c], .transport = tr ? "udp" : "tcp"};
        } else {
            for (int c = 0; c < nn; c++)
                cs[nc++] = (client){.name = names[c], .transport = ""};
        }
        if (kind == ZOO_SRT || kind == ZOO_MJPEG) {
            /* one client at a time: each gets its own server */
            for (int c = 0; c < nc; c++) {
                fprintf(stderr, "live_matrix: %s with %s (%.0f s)...\n", servers[s], cs[c].name,
                        mono() - t0);
                run_group((zoo_kind)kind, &cs[c], 1);
            }
        } else {
            fprintf(stderr, "live_matrix: %s with %d clients (%.0f s)...\n", servers[s], nc,
                    mono() - t0);
            run_group((zoo_kind)kind, cs, nc);
        }
    }
    fprintf(stderr, "live_matrix: done in %.1f min\n", (mono() - t0) / 60);
    print_table();
    return 0;
}
