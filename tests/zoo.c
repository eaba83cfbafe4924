/* The server zoo: see zoo.h. */
#define _GNU_SOURCE
#include "zoo.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#define ZOO_SECONDS "240" /* every server and feed ends by itself after this */

const char *zoo_name(zoo_kind kind)
{
    static const char *names[] = {"rtsp", "rtmp", "hls", "srt", "mjpeg"};
    return names[kind];
}

void zoo_init(zoo *z, zoo_kind kind)
{
    memset(z, 0, sizeof *z);
    z->kind = kind;
    switch (kind) {
    case ZOO_RTSP:
        z->fps = 25;
        snprintf(z->size, sizeof z->size, "320x240");
        z->gop = 1;
        break;
    case ZOO_RTMP:
        z->fps = 10;
        snprintf(z->size, sizeof z->size, "768x432");
        z->gop = 4;
        break;
    case ZOO_HLS:
        z->fps = 10;
        snprintf(z->size, sizeof z->size, "640x360");
        z->gop = 2;
        break;
    case ZOO_SRT:
        z->fps = 25;
        snprintf(z->size, sizeof z->size, "640x360");
        z->gop = 2;
        break;
    case ZOO_MJPEG:
        z->fps = 10;
        snprintf(z->size, sizeof z->size, "640x360");
        z->gop = 0.1;
        break;
    }
}

static void reap_server(zoo *z);
static pid_t child_of(pid_t pid);

/* ---- process helpers (no test framework: bench/live_matrix uses this file) ---- */

#define ZOO_CHECK(cond, ...)                                                                    \
    do {                                                                                        \
        if (!(cond))                                                                            \
            zoo_fail(__VA_ARGS__);                                                              \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int free_port(int type)
{
    int s = socket(AF_INET, type, 0);
    ZOO_CHECK(s >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ZOO_CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", strerror(errno));
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    return ntohs(a.sin_port);
}

int zoo_have_program(const char *cmd)
{
    char buf[1024];
    ZOO_CHECK((size_t)snprintf(buf, sizeof buf, "%s >/dev/null 2>&1", cmd) < sizeof buf,
              "zoo_have_program: a command of %zu bytes", strlen(cmd));
    return system(buf) == 0;
}

pid_t zoo_spawn(char *const argv[], const char *out)
{
    pid_t p = fork();
    ZOO_CHECK(p >= 0, "fork: %s", strerror(errno));
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open("/dev/null", O_RDWR);
        dup2(fd, 0);
        if (out) {
            int log = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (log < 0)
                _exit(127);
            dup2(log, 1);
            dup2(log, 2);
        } else {
            dup2(fd, 1);
            if (!getenv("FP_LIVE_VERBOSE"))
                dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return p;
}

static void reap(pid_t *p)
{
    if (*p > 0) {
        kill(*p, SIGCONT);
        kill(*p, SIGKILL);
        waitpid(*p, NULL, 0);
    }
    *p = 0;
}

static void need(const char *cmd, const char *package)
{
    ZOO_CHECK(zoo_have_program(cmd), "this needs %s (Debian package %s; scripts/setup)", cmd,
              package);
}

/* Whether a TCP connect to 127.0.0.1:port succeeds now. */
static int tcp_connects(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ZOO_CHECK(s >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

void zoo_wait_tcp(int port, const char *what, double seconds)
{
    double t0 = now_s();
    while (!tcp_connects(port)) {
        ZOO_CHECK(now_s() - t0 < seconds, "%s never listened on port %d (waited %.0f s)", what,
                  port, seconds);
        usleep(20000);
    }
}

static void wait_tcp(int port, const char *what)
{
    zoo_wait_tcp(port, what, 30);
}

int zoo_port_in_state(int port, int loopback_only, unsigned states)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    ZOO_CHECK(f, "/proc/net/tcp: %s", strerror(errno));
    char line[256];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned addr = 0, lport = 0, st = 0;
        if (sscanf(line, " %*d: %x:%x %*x:%*x %x", &addr, &lport, &st) == 3)
            found = (int)lport == port && st < 32 && (states & (1u << st)) &&
                    (!loopback_only || addr == 0x0100007Fu); /* 127.0.0.1 as the kernel prints it */
    }
    fclose(f);
    return found;
}

/* Waits up to 30 s for a one-client server to serve on `port`: listening,
 * or already serving a client (a reader that reconnects every few tens of
 * milliseconds may be that client before the listener is ever seen); when
 * it never does, the failure shows the end of its output `log` ("" = none). */
static void wait_serving(int port, const char *what, const char *log)
{
    double t0 = now_s();
    while (now_s() - t0 < 30) {
        if (zoo_port_in_state(port, 0, ZOO_TCP_LISTEN | ZOO_TCP_ESTABLISHED))
            return;
        usleep(5000);
    }
    char tail[700] = "(its output is not kept)";
    FILE *f = log[0] ? fopen(log, "r") : NULL;
    if (f) {
        fseek(f, 0, SEEK_END);
        long end = ftell(f);
        fseek(f, end > (long)sizeof tail - 1 ? end - (long)sizeof tail + 1 : 0, SEEK_SET);
        size_t n = fread(tail, 1, sizeof tail - 1, f);
        tail[n] = 0;
        fclose(f);
    }
    zoo_fail("%s never listened on port %d (waited 30 s); the end of its output %s:\n%s", what,
             port, log, tail);
}

static void sleep_s(double s)
{
    usleep((useconds_t)(s * 1e6));
}

static pid_t spawn_argv(const char **argv)
{
    return zoo_spawn((char *const *)argv, NULL);
}

void zoo_argv_add(zoo_argv *a, const char *s)
{
    size_t len = strlen(s) + 1;
    ZOO_CHECK(a->n + 1 < (int)(sizeof a->v / sizeof a->v[0]) && a->used + len <= sizeof a->store,
              "zoo_argv: too long at '%.40s'", s);
    char *dst = a->store + a->used;
    memcpy(dst, s, len);
    a->used += len;
    a->v[a->n++] = dst;
    a->v[a->n] = NULL;
}

static void argv_addf(zoo_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void argv_addf(zoo_argv *a, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ZOO_CHECK(n >= 0 && (size_t)n < sizeof buf, "zoo_argv: an argument of %d bytes", n);
    zoo_argv_add(a, buf);
}

/* The stamp (zoo.h): the making time in the frame's pts (CLOCK_REALTIME
 * microseconds since the epoch, via setpts' RTCTIME), logged by the metadata
 * filter and drawn as bits; then the pts go back to the frame count. */
static void stamp_filter(char *out, size_t cap, long long epoch_us, const char *log)
{
    size_t n = (size_t)snprintf(out, cap,
                                "settb=AVTB,setpts=RTCTIME-%lld,metadata=mode=add:key=fp:value=1,"
                                "metadata=mode=print:key=fp:direct=1:file=%s,"
                                "drawbox=x=0:y=0:w=320:h=16:color=black:t=fill,"
                                "drawbox=x=0:y=0:w=16:h=16:color=white:t=fill",
                                epoch_us, log);
    for (int k = 0; k < 18 && n < cap; k++)
        n += (size_t)snprintf(out + n, cap - n,
                              ",drawbox=x=%d:y=0:w=16:h=16:color=white:t=fill:"
                              "enable='mod(floor(t*100/%ld),2)'",
                              32 + 16 * k, 1L << k);
    if (n < cap)
        n += (size_t)snprintf(out + n, cap - n, ",setpts=N/FRAME_RATE/TB");
    ZOO_CHECK(n < cap, "stamp filter longer than %zu bytes", cap);
}

void zoo_publisher_argv(zoo_argv *a, const zoo_publisher *p)
{
    const char *src = p->src ? p->src : "testsrc2";
    int gop = (int)(p->gop * p->fps + 0.5);
    if (gop < 1)
        gop = 1;
    zoo_argv_add(a, "ffmpeg");
    zoo_argv_add(a, "-nostdin");
    zoo_argv_add(a, "-hide_banner");
    zoo_argv_add(a, "-loglevel");
    zoo_argv_add(a, "error");
    zoo_argv_add(a, "-re");
    zoo_argv_add(a, "-f");
    zoo_argv_add(a, "lavfi");
    zoo_argv_add(a, "-i");
    argv_addf(a, "%s%ssize=%s:rate=%d", src, strchr(src, '=') ? ":" : "=", p->size, p->fps);
    zoo_argv_add(a, "-t");
    zoo_argv_add(a, p->seconds);
    if (p->stamp_epoch_us) {
        char vf[4096];
        stamp_filter(vf, sizeof vf, p->stamp_epoch_us, p->made_log);
        zoo_argv_add(a, "-vf");
        zoo_argv_add(a, vf);
    }
    zoo_argv_add(a, "-c:v");
    zoo_argv_add(a, p->codec);
    if (strcmp(p->codec, "libx264") == 0) {
        /* what a camera or OBS sends: a fixed keyframe interval, no B-frames */
        zoo_argv_add(a, "-preset");
        zoo_argv_add(a, "ultrafast");
        zoo_argv_add(a, "-tune");
        zoo_argv_add(a, "zerolatency");
        zoo_argv_add(a, "-pix_fmt");
        zoo_argv_add(a, "yuv420p");
        zoo_argv_add(a, "-g");
        argv_addf(a, "%d", gop);
        zoo_argv_add(a, "-keyint_min");
        argv_addf(a, "%d", gop);
        zoo_argv_add(a, "-sc_threshold");
        zoo_argv_add(a, "0");
    } else if (strcmp(p->codec, "mpeg2video") == 0) {
        zoo_argv_add(a, "-g");
        argv_addf(a, "%d", gop);
        zoo_argv_add(a, "-q:v");
        zoo_argv_add(a, "4");
        /* every packet on the wire at once, no one-frame decoder delay: what a camera does */
        zoo_argv_add(a, "-flags");
        zoo_argv_add(a, "+low_delay");
        zoo_argv_add(a, "-flush_packets");
        zoo_argv_add(a, "1");
    } else {
        zoo_argv_add(a, "-q:v");
        zoo_argv_add(a, "6");
    }
    if (p->bsf) {
        zoo_argv_add(a, "-bsf:v");
        zoo_argv_add(a, p->bsf);
    }
    for (const char *const *e = p->extra; e && *e; e++)
        zoo_argv_add(a, *e);
    zoo_argv_add(a, "-f");
    zoo_argv_add(a, p->fmt);
    if (p->listen) {
        zoo_argv_add(a, "-listen");
        zoo_argv_add(a, "1");
    }
    zoo_argv_add(a, p->out);
}

/* The publisher of zoo `z` (its size, rate, GOP and stamps). */
static zoo_publisher publisher_of(zoo *z, const char *codec, const char *fmt, const char *out,
                                  const char *const *extra, char *log, size_t logcap)
{
    zoo_publisher p = {.size = z->size, .fps = z->fps, .seconds = ZOO_SECONDS, .codec = codec,
                       .gop = z->gop, .extra = extra, .fmt = fmt, .out = out};
    if (z->stamp_epoch_us) {
        snprintf(log, logcap, "%s/made-%d.log", z->dir, z->runs++);
        p.stamp_epoch_us = z->stamp_epoch_us;
        p.made_log = log;
    }
    return p;
}

/* ffmpeg encoding a test pattern in real time to `out` in format `fmt`. */
static pid_t ffmpeg_feed(zoo *z, const char *codec, const char *fmt, const char *out,
                         const char *const *extra)
{
    char log[128];
    zoo_publisher p = publisher_of(z, codec, fmt, out, extra, log, sizeof log);
    zoo_argv *a = calloc(1, sizeof *a); /* large: not on a test thread's stack */
    ZOO_CHECK(a, "out of memory");
    zoo_publisher_argv(a, &p);
    pid_t pid = zoo_spawn((char *const *)a->v, NULL);
    free(a);
    return pid;
}

static void server_start(zoo *z)
{
    char p1[16], p2[16];
    snprintf(p1, sizeof p1, "%d", z->port);
    snprintf(p2, sizeof p2, "%d", z->port2);
    switch (z->kind) {
    case ZOO_RTSP: {
        char fps[16], gop[16], st[16], epoch[32], log[128], events[128];
        snprintf(fps, sizeof fps, "%d", z->fps);
        snprintf(gop, sizeof gop, "%g", z->gop);
        snprintf(st, sizeof st, "%d", z->session_timeout);
        const char *argv[24] = {"/usr/bin/python3", FP_SOURCE_DIR "/tests/rtsp_server.py", p1,
                                z->size, ZOO_SECONDS, "--fps", fps, "--gop", gop,
                                "--session-timeout", st};
        int n = 11;
        if (z->auth) {
            argv[n++] = "--auth";
            argv[n++] = z->auth;
            argv[n++] = "--user";
            argv[n++] = z->user ? z->user : "admin:secret";
        }
        if (z->stamp_epoch_us) {
            snprintf(epoch, sizeof epoch, "%lld", z->stamp_epoch_us);
            snprintf(log, sizeof log, "%s/made-%d.log", z->dir, z->runs++);
            argv[n++] = "--stamp-epoch";
            argv[n++] = epoch;
            argv[n++] = "--made-log";
            argv[n++] = log;
            snprintf(events, sizeof events, "%s/rtsp-events.log", z->dir);
            argv[n++] = "--events";
            argv[n++] = events;
        }
        argv[n] = NULL;
        z->srv = spawn_argv(argv);
        wait_tcp(z->port, "the RTSP server");
        break;
    }
    case ZOO_RTMP:
    case ZOO_HLS: {
        const char *argv[] = {"/bin/sh", FP_SOURCE_DIR "/tests/zoo/nginx_rtmp.sh", z->dir,
                              z->kind == ZOO_RTMP ? p1 : p2, z->kind == ZOO_RTMP ? p2 : p1,
                              NULL};
        z->srv = spawn_argv(argv);
        wait_tcp(z->port, "nginx");
        break;
    }
    case ZOO_SRT: {
        char in[64], out[64];
        snprintf(in, sizeof in, "udp://:%d", z->port2);
        snprintf(out, sizeof out, "srt://:%d", z->port);
        const char *argv[] = {"srt-live-transmit", "-q", "-t:" ZOO_SECONDS, in, out, NULL};
        z->srv = spawn_argv(argv);
        sleep_s(0.3); /* SRT listens on UDP: nothing to connect to in advance */
        break;
    }
    case ZOO_MJPEG: {
        /* the script runs the publisher once per client; @RUN@ in its
         * arguments becomes the run's number (one made log each) */
        char out[96], log[128];
        snprintf(out, sizeof out, "http://127.0.0.1:%d/cam.mjpg", z->port);
        zoo_publisher p = publisher_of(z, "mjpeg", "mpjpeg", out, NULL, log, sizeof log);
        if (z->stamp_epoch_us)
            snprintf(log, sizeof log, "%s/made-%d-@RUN@.log", z->dir, z->runs - 1);
        p.listen = 1;
        zoo_argv *a = calloc(1, sizeof *a);
        ZOO_CHECK(a, "out of memory");
        zoo_argv_add(a, "/bin/sh");
        zoo_argv_add(a, FP_SOURCE_DIR "/tests/zoo/mjpeg_server.sh");
        zoo_argv_add(a, ZOO_SECONDS);
        zoo_publisher_argv(a, &p);
        /* its output is kept (in the zoo's directory, when it has one): a run
         * that cannot serve says why there */
        char out_log[160] = "";
        if (z->dir[0])
            snprintf(out_log, sizeof out_log, "%s/mjpeg-server.log", z->dir);
        z->srv = zoo_spawn((char *const *)a->v, out_log[0] ? out_log : NULL);
        free(a);
        wait_serving(z->port, "the MJPEG server", out_log);
        break;
    }
    }
}

/* A live HLS publisher as streaming servers run it across publisher
 * restarts: 2 s segments, a sliding playlist of 5 whose old segments are
 * deleted, never an end tag, the wall clock of each segment, and media
 * sequence numbers that go on from the last run (the epoch second) so that
 * a player polling the playlist sees newer segments, not a sequence that
 * started over. */
static const char *const hls_options[] = {
    "-hls_time", "2", "-hls_list_size", "5", "-hls_flags",
    "delete_segments+omit_endlist+program_date_time+discont_start",
    "-hls_start_number_source", "epoch", NULL};
static const char *const hls_options_restart[] = {"-hls_time", "2", "-hls_list_size", "5",
                                                  "-hls_flags", "delete_segments", NULL};

void zoo_feed_start(zoo *z)
{
    char out[256];
    switch (z->kind) {
    case ZOO_RTMP:
        snprintf(out, sizeof out, "rtmp://127.0.0.1:%d/live/cam", z->port);
        z->feed = ffmpeg_feed(z, "libx264", "flv", out, NULL);
        break;
    case ZOO_HLS:
        snprintf(out, sizeof out, "%s/hls/live.m3u8", z->dir);
        z->feed = ffmpeg_feed(z, "libx264", "hls", out,
                              z->hls_sequence_restarts ? hls_options_restart : hls_options);
        break;
    case ZOO_SRT:
        snprintf(out, sizeof out, "udp://127.0.0.1:%d?pkt_size=1316", z->port2);
        z->feed = ffmpeg_feed(z, "libx264", "mpegts", out, NULL);
        break;
    default:
        return; /* the server makes its own stream */
    }
    z->feeding = 1;
}

void zoo_feed_stop(zoo *z)
{
    reap(&z->feed);
    z->feeding = 0;
}

void zoo_start(zoo *z)
{
    switch (z->kind) {
    case ZOO_RTSP:
        need("/usr/bin/python3 -c 'import gi; gi.require_version(\"GstRtspServer\", \"1.0\")'",
             "python3-gi, gir1.2-gst-rtsp-server-1.0");
        break;
    case ZOO_RTMP:
    case ZOO_HLS:
        need("nginx -v", "nginx");
        need("test -f /usr/lib/nginx/modules/ngx_rtmp_module.so", "libnginx-mod-rtmp");
        break;
    case ZOO_SRT:
        need("srt-live-transmit -version", "srt-tools");
        break;
    case ZOO_MJPEG:
        break;
    }
    need("ffmpeg -version", "ffmpeg");
    z->port = free_port(z->kind == ZOO_SRT ? SOCK_DGRAM : SOCK_STREAM);
    z->port2 = free_port(z->kind == ZOO_SRT ? SOCK_DGRAM : SOCK_STREAM);
    if (z->kind == ZOO_RTMP || z->kind == ZOO_HLS || z->stamp_epoch_us) {
        snprintf(z->dir, sizeof z->dir, "/tmp/fp_zoo_XXXXXX");
        ZOO_CHECK(mkdtemp(z->dir), "mkdtemp: %s", strerror(errno));
    }
    switch (z->kind) {
    case ZOO_RTSP:
        snprintf(z->url, sizeof z->url, "rtsp://127.0.0.1:%d/test", z->port);
        break;
    case ZOO_RTMP:
        snprintf(z->url, sizeof z->url, "rtmp://127.0.0.1:%d/live/cam", z->port);
        break;
    case ZOO_HLS:
        snprintf(z->url, sizeof z->url, "http://127.0.0.1:%d/hls/live.m3u8", z->port);
        break;
    case ZOO_SRT:
        snprintf(z->url, sizeof z->url, "srt://127.0.0.1:%d?mode=caller", z->port);
        break;
    case ZOO_MJPEG:
        snprintf(z->url, sizeof z->url, "http://127.0.0.1:%d/cam.mjpg", z->port);
        break;
    }
    server_start(z);
    zoo_feed_start(z);
}

void zoo_stop(zoo *z)
{
    reap(&z->feed);
    reap_server(z);
    if (z->dir[0] && getenv("FP_ZOO_KEEP")) {
        fprintf(stderr, "zoo: kept %s (FP_ZOO_KEEP)\n", z->dir);
    } else if (z->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", z->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "zoo: could not remove %s\n", z->dir);
    }
    z->dir[0] = 0;
}

/* Waits at most `seconds` for `pid` to end; 1 when it did (and was reaped). */
static int wait_exit(pid_t pid, double seconds)
{
    double t0 = now_s();
    for (;;) {
        pid_t w = waitpid(pid, NULL, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD))
            return 1;
        if (now_s() - t0 >= seconds)
            return 0;
        usleep(10000);
    }
}

/* Stops the server as its service manager does (zoo.h): the stop signal,
 * then, if it is still running after the manager's timeout, SIGTERM (nginx)
 * and SIGKILL. */
static void stop_server_gracefully(zoo *z)
{
    if (z->srv <= 0)
        return;
    kill(z->srv, SIGCONT);
    if (z->kind == ZOO_MJPEG) {
        /* systemd signals the whole unit: the script (no next run) and its ffmpeg */
        pid_t c = child_of(z->srv);
        kill(z->srv, SIGTERM);
        if (c > 0)
            kill(c, SIGTERM);
    } else {
        kill(z->srv, z->kind == ZOO_RTMP || z->kind == ZOO_HLS ? SIGQUIT : SIGTERM);
    }
    int gone = wait_exit(z->srv, 5);
    if (!gone && (z->kind == ZOO_RTMP || z->kind == ZOO_HLS)) {
        kill(z->srv, SIGTERM); /* nginx.service: QUIT/5, then SIGTERM (fast shutdown) */
        gone = wait_exit(z->srv, 5);
    }
    if (!gone)
        reap_server(z);
    z->srv = 0;
}

static void restart_with(zoo *z, int graceful)
{
    int fed = z->feeding;
    if (graceful)
        stop_server_gracefully(z);
    else
        reap_server(z);
    if (z->kind == ZOO_RTMP)
        zoo_feed_stop(z); /* its publisher lost the connection: it ends, then comes back */
    server_start(z);
    if (fed && !z->feed)
        zoo_feed_start(z);
}

void zoo_server_restart(zoo *z)
{
    restart_with(z, 1);
}

void zoo_server_crash(zoo *z)
{
    restart_with(z, 0);
}

/* The first child of `pid` (from /proc), or 0. */
static pid_t child_of(pid_t pid)
{
    char path[64], buf[64] = "";
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = 0;
    fclose(f);
    return (pid_t)atoi(buf);
}

/* The process that serves: the MJPEG script's current ffmpeg, or the server. */
static pid_t serving(const zoo *z)
{
    if (z->kind == ZOO_MJPEG) {
        pid_t c = child_of(z->srv);
        return c > 0 ? c : z->srv;
    }
    return z->srv;
}

static void reap_server(zoo *z)
{
    if (z->kind == ZOO_MJPEG && z->srv > 0) {
        kill(z->srv, SIGSTOP); /* no next run while its ffmpeg goes */
        pid_t c = child_of(z->srv);
        if (c > 0) {
            kill(c, SIGCONT);
            kill(c, SIGKILL);
        }
    }
    reap(&z->srv);
}

void zoo_server_pause(zoo *z)
{
    ZOO_CHECK(z->srv > 0, "no server to pause");
    z->paused = serving(z);
    kill(z->paused, SIGSTOP);
}

void zoo_server_resume(zoo *z)
{
    ZOO_CHECK(z->paused > 0, "no paused server");
    kill(z->paused, SIGCONT);
    z->paused = 0;
}

void zoo_set_size(zoo *z, const char *size)
{
    snprintf(z->size, sizeof z->size, "%s", size);
    if (z->kind == ZOO_RTSP || z->kind == ZOO_MJPEG) {
        reap_server(z);
        server_start(z);
    } else {
        zoo_feed_stop(z);
        zoo_feed_start(z);
    }
}

void zoo_url_with(const zoo *z, const char *userpass, char *out, size_t cap)
{
    const char *rest = strstr(z->url, "://");
    ZOO_CHECK(rest, "no scheme in %s", z->url);
    snprintf(out, cap, "%.*s://%s@%s", (int)(rest - z->url), z->url, userpass, rest + 3);
}
