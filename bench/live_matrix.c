/*
 * live_matrix — the live reader against the server zoo (tests/zoo.h), fault
 * by fault, next to cv::VideoCapture: a compatibility matrix.
 *
 *   live_matrix [--servers rtsp,rtmp,hls,srt,mjpeg] [--clients all,latest,cv]
 *               [--up S] [--down S] [--warm S]
 *
 * For each server and each client, a fresh server; the client runs in its
 * own process (framepool ALL and LATEST: this program with --client; OpenCV:
 * bench/live_matrix_cv) for the whole schedule: `warm` s to connect (default
 * 8), `up` s of streaming (6), then each fault of that server — the stream
 * stops for `down` s (3) and returns, the server restarts, the server
 * process is stopped for `down` s and continued, the frame size changes —
 * each followed by `up` s. Per phase (start or fault):
 *   first      time to the first frame: from the client's start, or from the
 *              end of the fault (recovery time); "-" when none came
 *   got/sent   frames delivered / frames the server sent while up in that
 *              phase (fps x seconds after the fault ended; for SIGSTOP from
 *              its start: the source's clock runs on and what it made goes
 *              out at SIGCONT)
 *   age        how much later than the freshest frame of the same connection
 *              and phase a frame was handed over (mean, max; ms; a jump of
 *              the frame times that real time does not explain starts
 *              over): the
 *              backlog a client builds (relative, so comparable between
 *              clients whatever the server's clock); n/a when the client
 *              gives no frame times
 *   conns      connections made in the phase
 * and per client run the CPU time (user + system of its process) per frame.
 * The table is printed on stdout.
 */
#define _GNU_SOURCE
#include "zoo.h"

#include <framepool.h>

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

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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
    if (ev->type == FP_LIVE_CONNECTED) {
        pthread_mutex_lock(&out_mu);
        printf("c %.6f\n", mono());
        pthread_mutex_unlock(&out_mu);
    }
}

static int client_main(const char *mode, const char *url, double seconds, const char *av_options)
{
    fp_log_set_level(FP_LOG_QUIET);
    double start = mono();
    printf("s %.6f\n", start);
    fp_reader_options o = {0};
    o.live.mode = strcmp(mode, "latest") == 0 ? FP_LIVE_LATEST : FP_LIVE_ALL;
    o.live.on_event = client_event;
    o.av_options = av_options && *av_options ? av_options : NULL;
    o.timeout_us = 100000;
    fp_reader *r = NULL;
    if (fp_reader_open(url, &o, &r) < 0) {
        fprintf(stderr, "live_matrix client: %s\n", fp_errmsg());
        return 1;
    }
    fp_image *img = NULL;
    while (mono() - start < seconds) {
        int rc = fp_reader_next(r, &img);
        if (rc > 0) {
            pthread_mutex_lock(&out_mu);
            printf("x %.6f %.6f\n", mono(), img->time);
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

/* ---- the schedule ---------------------------------------------------------------------------- */

enum { F_NONE, F_FEED, F_RESTART, F_PAUSE, F_SIZE, F_COUNT };
static const char *fault_names[] = {"start", "stream stop 3s", "server restart", "SIGSTOP 3s",
                                    "size change"};

typedef struct phase {
    int fault;
    double t_fault, t_up, t_end;
} phase;

static double up_s = 6, down_s = 3, warm_s = 8;
static char self_path[4096];

static unsigned faults_of(zoo_kind k)
{
    switch (k) {
    case ZOO_RTSP:
    case ZOO_MJPEG:
        return 1u << F_RESTART | 1u << F_PAUSE | 1u << F_SIZE;
    default:
        return 1u << F_FEED | 1u << F_RESTART | 1u << F_PAUSE | 1u << F_SIZE;
    }
}

static pid_t start_client(const char *client, const zoo *z, double seconds, const char *out,
                          const char *av)
{
    char secs[32];
    snprintf(secs, sizeof secs, "%.1f", seconds);
    pid_t p = fork();
    if (p < 0)
        zoo_fail("fork: %s", strerror(errno));
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(fd, 1);
        if (!getenv("FP_LIVE_VERBOSE"))
            dup2(nul, 2);
        if (strcmp(client, "cv") == 0) {
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
            execl(cv, cv, z->url, secs, (char *)NULL);
        } else {
            execl(self_path, self_path, "--client", client, z->url, secs, av ? av : "",
                  (char *)NULL);
        }
        _exit(127);
    }
    return p;
}

typedef struct row {
    const char *server, *fault, *client;
    double first;      /* s, <0: none */
    double got, sent;
    double age_mean, age_max;
    int conns;
    int recovered;
    int no_pts;
} row;

static row rows[512];
static int nrows;
static double cpu_per_frame[16][3];

/* Reads the client's lines and fills one row per phase. */
static void analyse(const char *out, const char *server, const char *client, const phase *ph,
                    int nph, int fps, double cpu, int si, int ci)
{
    FILE *f = fopen(out, "r");
    if (!f)
        zoo_fail("no client output %s", out);
    enum { MAXL = 200000 };
    static char kind[MAXL];
    static double t[MAXL], pts[MAXL];
    int n = 0;
    char line[128];
    double start = 0;
    while (n < MAXL && fgets(line, sizeof line, f)) {
        double a = 0, b = 0;
        char k = 0;
        if (sscanf(line, "%c %lf %lf", &k, &a, &b) < 2)
            continue;
        if (k == 's') {
            start = a;
            continue;
        }
        kind[n] = k;
        t[n] = a;
        pts[n] = b;
        n++;
    }
    fclose(f);
    double frames_total = 0;
    for (int i = 0; i < n; i++)
        frames_total += kind[i] == 'x';
    cpu_per_frame[si][ci] = frames_total > 0 ? 1000 * cpu / frames_total : NAN;

    for (int p = 0; p < nph; p++) {
        row *r = &rows[nrows++];
        memset(r, 0, sizeof *r);
        r->server = server;
        r->fault = fault_names[ph[p].fault];
        r->client = client;
        double from = p == 0 ? start : ph[p].t_up;
        r->first = -1;
        /* a stopped server's source clock runs on: what it makes while stopped
         * goes out when it continues */
        r->sent = fps * (ph[p].t_end - (ph[p].fault == F_PAUSE ? ph[p].t_fault : ph[p].t_up));
        /* the freshest frame of each connection within the phase */
        double ref = INFINITY, sum = 0;
        int seg_start = 0;
        /* two passes per segment: reference, then ages */
        int i = 0;
        while (i < n && t[i] < ph[p].t_fault)
            i++;
        int lo = i;
        while (i < n && t[i] < ph[p].t_end)
            i++;
        int hi = i;
        int count = 0;
        for (int a = lo; a < hi; a = seg_start) {
            /* a segment: one connection, and no jump of the frame times that
             * real time does not explain (a publisher that started over) */
            int b = a + 1, last = kind[a] == 'x' ? a : -1;
            for (; b < hi && kind[b] != 'c'; b++) {
                if (kind[b] != 'x')
                    continue;
                if (last >= 0) {
                    double dp = pts[b] - pts[last], dt = t[b] - t[last];
                    if (dp < 0 || dp > dt + 1)
                        break;
                }
                last = b;
            }
            ref = INFINITY;
            double pmin = INFINITY, pmax = -INFINITY;
            for (int j = a; j < b; j++)
                if (kind[j] == 'x' && t[j] >= ph[p].t_up) {
                    if (t[j] - pts[j] < ref)
                        ref = t[j] - pts[j];
                    pmin = fmin(pmin, pts[j]);
                    pmax = fmax(pmax, pts[j]);
                }
            if (pmax - pmin <= 0 && pmax > -INFINITY)
                r->no_pts = 1; /* the client gives no frame times (cv on MJPEG) */
            for (int j = a; j < b; j++) {
                if (kind[j] == 'c' && t[j] >= ph[p].t_fault) {
                    r->conns++;
                    continue;
                }
                if (kind[j] == 'x' && p == 0 && r->first < 0)
                    r->first = t[j] - from; /* the start: from the client's start */
                if (kind[j] != 'x' || t[j] < ph[p].t_up)
                    continue;
                if (r->first < 0)
                    r->first = t[j] - from;
                double age = (t[j] - pts[j]) - ref;
                sum += age;
                if (age > r->age_max)
                    r->age_max = age;
                count++;
            }
            seg_start = b > a ? b : a + 1;
        }
        r->got = count;
        r->recovered = count > 0;
        r->age_mean = count ? sum / count : 0;
    }
}

static void run_one(zoo_kind kind, const char *client, int si, int ci)
{
    zoo z;
    zoo_init(&z, kind);
    zoo_start(&z);
    unsigned faults = faults_of(kind);
    int nf = 0;
    for (int f = 1; f < F_COUNT; f++)
        nf += (faults >> f) & 1;
    double total = warm_s + up_s + nf * (down_s + up_s) + 5;
    char out[128];
    snprintf(out, sizeof out, "/tmp/fp_live_matrix_%d_%s_%s.txt", (int)getpid(), zoo_name(kind),
             client);
    const char *av = kind == ZOO_RTSP ? "rtsp_transport=tcp" : NULL;
    struct rusage ru0;
    getrusage(RUSAGE_CHILDREN, &ru0);
    double t0 = mono();
    pid_t c = start_client(client, &z, total, out, av);
    phase ph[F_COUNT];
    int nph = 0;
    ph[nph++] = (phase){F_NONE, t0, t0, 0};
    sleep_s(warm_s + up_s);
    ph[0].t_end = mono();
    ph[0].t_up = t0 + warm_s; /* the rate counts once the client had time to connect */
    for (int f = 1; f < F_COUNT; f++) {
        if (!((faults >> f) & 1))
            continue;
        phase *p = &ph[nph++];
        p->fault = f;
        p->t_fault = mono();
        switch (f) {
        case F_FEED:
            zoo_feed_stop(&z);
            sleep_s(down_s);
            zoo_feed_start(&z);
            break;
        case F_RESTART:
            zoo_server_restart(&z);
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
        p->t_up = mono();
        sleep_s(up_s);
        p->t_end = mono();
    }
    /* the client ends by itself at `total`; give it a little more */
    int st = 0;
    pid_t w = 0;
    for (int i = 0; i < 200 && (w = waitpid(c, &st, WNOHANG)) == 0; i++)
        sleep_s(0.1);
    if (w == 0) {
        kill(c, SIGKILL);
        waitpid(c, &st, 0);
    }
    struct rusage ru1;
    getrusage(RUSAGE_CHILDREN, &ru1);
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1e-6 +
                 (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e-6;
    zoo_stop(&z); /* servers are reaped with waitpid(pid): not in RUSAGE_CHILDREN before */
    analyse(out, zoo_name(kind), client, ph, nph, z.fps, cpu, si, ci);
    if (!getenv("FP_MATRIX_KEEP"))
        unlink(out);
}

static void print_table(const char **servers, int ns, const char **clients, int nc)
{
    printf("\n| server | fault | client | first frame (s) | got/sent | conns | age mean/max (ms) |\n");
    printf("|---|---|---|---:|---:|---:|---:|\n");
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        char first[32];
        if (r->first < 0)
            snprintf(first, sizeof first, "-");
        else
            snprintf(first, sizeof first, "%.2f", r->first);
        char age[48];
        if (r->no_pts)
            snprintf(age, sizeof age, "n/a");
        else
            snprintf(age, sizeof age, "%.0f / %.0f", 1000 * r->age_mean, 1000 * r->age_max);
        printf("| %s | %s | %s | %s | %.0f/%.0f (%.0f%%) | %d | %s |\n", r->server, r->fault,
               r->client, first, r->got, r->sent, r->sent > 0 ? 100 * r->got / r->sent : 0,
               r->conns, age);
    }
    printf("\nCPU per frame (ms, client process, whole run):\n\n| server |");
    for (int c = 0; c < nc; c++)
        printf(" %s |", clients[c]);
    printf("\n|---|");
    for (int c = 0; c < nc; c++)
        printf("---:|");
    printf("\n");
    for (int s = 0; s < ns; s++) {
        printf("| %s |", servers[s]);
        for (int c = 0; c < nc; c++)
            printf(" %.2f |", cpu_per_frame[s][c]);
        printf("\n");
    }
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
        else if (!strcmp(argv[i], "--warm") && i + 1 < argc)
            warm_s = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: live_matrix [--servers LIST] [--clients all,latest,cv] "
                            "[--up S] [--down S] [--warm S]\n");
            return 2;
        }
    }
    ssize_t k = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (k <= 0)
        zoo_fail("readlink /proc/self/exe: %s", strerror(errno));
    self_path[k] = 0;
    const char *servers[16], *clients[3];
    int ns = split(servers_s, servers, 16), nc = split(clients_s, clients, 3);
    static const char *kinds[] = {"rtsp", "rtmp", "hls", "srt", "mjpeg"};
    for (int s = 0; s < ns; s++) {
        int kind = -1;
        for (int j = 0; j < 5; j++)
            if (!strcmp(servers[s], kinds[j]))
                kind = j;
        if (kind < 0)
            zoo_fail("unknown server '%s' (rtsp, rtmp, hls, srt, mjpeg)", servers[s]);
        for (int c = 0; c < nc; c++) {
            fprintf(stderr, "live_matrix: %s with %s...\n", servers[s], clients[c]);
            run_one((zoo_kind)kind, clients[c], s, c);
        }
    }
    print_table(servers, ns, clients, nc);
    return 0;
}
