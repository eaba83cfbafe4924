/* The server zoo (tests/zoo/): streaming servers set up the way people run
 * them, on 127.0.0.1, for the live reader's tests and bench/live_matrix.
 * Each server is a child process killed with the thread that started it
 * (PR_SET_PDEATHSIG) and by zoo_stop, and ends by itself after 240 s; a
 * missing program fails (zoo_fail) naming the Debian package to install
 * (scripts/setup). Plain C, no test framework: bench/live_matrix uses it.
 *
 *   rtsp   GStreamer RTSP (tests/rtsp_server.py): H.264 320x240 25 fps, 1 s
 *          GOP, RTP over UDP or TCP as the client asks, basic/digest auth,
 *          session timeout
 *   rtmp   nginx + libnginx-mod-rtmp, an ffmpeg publisher (H.264 768x432 10 fps,
 *          4 s GOP)
 *   hls    ffmpeg's hls muxer (2 s segments, sliding playlist of 5, old
 *          segments deleted, no end tag, media sequence numbers that go on
 *          across publisher runs) in the nginx prefix, served by that nginx
 *   srt    srt-live-transmit (listener) relaying an ffmpeg MPEG-TS stream
 *          (H.264 640x360 25 fps, 2 s GOP) that it receives over UDP; one
 *          caller at a time (a second one fails to connect)
 *   mjpeg  ffmpeg -f mpjpeg -listen 1 (tests/zoo/mjpeg_server.sh): multipart
 *          JPEG over HTTP, 640x360 10 fps, one client at a time
 *
 * Faults: zoo_feed_stop/zoo_feed_start (the stream stops and returns: the
 * publisher of rtmp/hls/srt), zoo_server_restart (a graceful restart, as a
 * service manager does it: the server's stop signal, then start again),
 * zoo_server_crash (SIGKILL, then start again), zoo_server_pause/resume
 * (SIGSTOP/SIGCONT of the server process itself), zoo_set_size (the source
 * changes its frame size).
 *
 * The stop signals of zoo_server_restart: nginx (rtmp, hls) SIGQUIT, a
 * graceful shutdown, then SIGTERM after 5 s and SIGKILL after 5 s more
 * (Debian's nginx.service: --retry QUIT/5, TimeoutStopSec=5); srt-live-transmit
 * SIGTERM (it closes its sockets: libsrt tells its peers the connection
 * ended); the RTSP server SIGTERM (tests/rtsp_server.py then closes every
 * client's connection and ends); the MJPEG camera SIGTERM to the script and
 * its ffmpeg. Whatever is still running 5 s after its signal gets SIGKILL.
 * An rtmp publisher is restarted as soon as the server listens again.
 *
 * Stamps (stamp_epoch_us set before zoo_start): every source draws into each
 * picture the time it made it, and logs every frame it made. The stamp is a
 * strip 320x16 at the top left: a white and a black 16x16 reference square,
 * then 18 squares, bit k white when bit k of the making time is set, in
 * centiseconds of CLOCK_REALTIME since stamp_epoch_us (wraps after 43 min).
 * The log: files made-N.log in z->dir, one per start of a source, one line
 * per frame made, "... pts_time:S" (S: seconds since the epoch) as FFmpeg's
 * metadata filter prints it. zoo_stamp_read reads a stamp back. The RTSP
 * server also logs what happens to it (listening, clients' requests, the
 * media's preparation, keyframes made; CLOCK_MONOTONIC seconds) to
 * rtsp-events.log in z->dir. With FP_ZOO_KEEP set in the environment,
 * zoo_stop leaves z->dir in place (and prints its path). */
#ifndef FP_ZOO_H
#define FP_ZOO_H

#include <sys/types.h>

typedef enum zoo_kind { ZOO_RTSP, ZOO_RTMP, ZOO_HLS, ZOO_SRT, ZOO_MJPEG } zoo_kind;

typedef struct zoo {
    zoo_kind kind;
    /* settings (zoo_init fills defaults; change before zoo_start) */
    int fps;
    char size[16];        /* "WxH" */
    double gop;           /* seconds between keyframes */
    const char *auth;     /* rtsp: NULL, "basic" or "digest" */
    const char *user;     /* rtsp auth: "user:pass" */
    int session_timeout;  /* rtsp: seconds (0: GStreamer's 60) */
    int hls_sequence_restarts; /* hls: each publisher run numbers its segments from 0
                                  (ffmpeg's default), not on from the last run */
    /* state */
    int port, port2;
    pid_t srv, feed;
    pid_t paused;         /* the process zoo_server_pause stopped */
    char dir[64];         /* temp prefix (nginx, hls) */
    char url[256];        /* what a client opens (no credentials) */
    const char *av_options; /* FFmpeg options a client needs (NULL: none) */
    int feeding;
    long long stamp_epoch_us; /* 0: no stamps (see above) */
    int runs;             /* sources started (made-N.log) */
} zoo;

/* Defined by the program using the zoo (a test: ck_abort_msg; a benchmark:
 * print and exit): called when a server cannot be set up. Must not return. */
void zoo_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

void zoo_init(zoo *z, zoo_kind kind);
const char *zoo_name(zoo_kind kind);
/* Starts the server and its feed; returns when the server listens (the
 * stream may still be starting). */
void zoo_start(zoo *z);
void zoo_stop(zoo *z);
void zoo_feed_stop(zoo *z);
void zoo_feed_start(zoo *z);
/* The server stops gracefully (its stop signal, above) and starts again;
 * returns when it listens. */
void zoo_server_restart(zoo *z);
/* The server is SIGKILLed (a crash) and starts again; returns when it listens. */
void zoo_server_crash(zoo *z);
void zoo_server_pause(zoo *z);
void zoo_server_resume(zoo *z);
/* Restarts the source with frames of `size` ("WxH"). */
void zoo_set_size(zoo *z, const char *size);
/* Waits until something listens on TCP `port` of 127.0.0.1, at most `seconds`;
 * zoo_fail names `what` when nothing did. */
void zoo_wait_tcp(int port, const char *what, double seconds);

/* TCP states of /proc/net/tcp, as bits for zoo_port_in_state. */
#define ZOO_TCP_ESTABLISHED (1u << 0x01)
#define ZOO_TCP_LISTEN (1u << 0x0A)
/* Whether /proc/net/tcp shows a socket on local port `port` (on 127.0.0.1
 * only, when `loopback_only`) in one of `states`. Reading it connects to
 * nothing, so a server that takes one client keeps it for the reader under
 * test. zoo_fail when the file cannot be read. */
int zoo_port_in_state(int port, int loopback_only, unsigned states);

/* Whether the shell command `cmd` succeeds (its output discarded). */
int zoo_have_program(const char *cmd);

/* Starts argv (argv[0] searched in PATH) with stdin on /dev/null and stdout
 * and stderr appended to the file `out` (created), or with out NULL on
 * /dev/null (stderr only unless FP_LIVE_VERBOSE is set); the child gets
 * SIGKILL when the calling thread ends. Returns its PID; a failed fork
 * goes to zoo_fail. */
pid_t zoo_spawn(char *const argv[], const char *out);

/* An argv under construction: zoo_argv_add copies the string into `store`. */
typedef struct zoo_argv {
    const char *v[96];
    int n;
    char store[8192];
    size_t used;
} zoo_argv;
void zoo_argv_add(zoo_argv *a, const char *s);

/* The ffmpeg publisher every zoo and livesrv source uses: a lavfi test
 * pattern in real time, encoded as cameras and OBS do. */
typedef struct zoo_publisher {
    const char *src;      /* lavfi source (NULL: "testsrc2"), e.g. "color=c=red" */
    const char *size;     /* "WxH" */
    int fps;
    const char *seconds;  /* -t */
    const char *codec;    /* "libx264": a fixed keyframe interval `gop`, no B-frames;
                             "mpeg2video": `gop`, low delay, packets flushed;
                             anything else (mjpeg): -q:v 6 */
    double gop;           /* seconds between keyframes */
    const char *bsf;      /* optional bitstream filter */
    const char *const *extra; /* more output options, NULL-terminated (NULL: none) */
    long long stamp_epoch_us; /* non-zero: draw stamps and log to `made_log` (zoo.h) */
    const char *made_log;
    const char *fmt;      /* output format */
    int listen;           /* -listen 1 (an HTTP server for one client) */
    const char *out;
} zoo_publisher;
/* Appends the whole ffmpeg command line of `p` to `a` (NULL-terminated). */
void zoo_publisher_argv(zoo_argv *a, const zoo_publisher *p);

/* The making time of the picture stamped at `p` (a plane of 8-bit samples,
 * `step` bytes between pixels of a row, rows `stride` apart, w x h; a luma
 * plane or one channel of a packed RGB picture), in centiseconds since the
 * zoo's stamp epoch; -1 when the picture carries no readable stamp. */
static inline long zoo_stamp_read(const unsigned char *p, int stride, int step, int w, int h)
{
    if (w < 320 || h < 16)
        return -1;
    int mean[20];
    for (int i = 0; i < 20; i++) {
        int sum = 0;
        for (int y = 4; y < 12; y++)
            for (int x = 16 * i + 4; x < 16 * i + 12; x++)
                sum += p[y * stride + x * step];
        mean[i] = sum / 64;
    }
    int white = mean[0], black = mean[1];
    if (white < 160 || black > 96)
        return -1;
    long v = 0;
    for (int k = 0; k < 18; k++)
        if (mean[2 + k] > (white + black) / 2)
            v |= 1L << k;
    return v;
}

/* Writes the URL with credentials `userpass` ("u:p") into out. */
void zoo_url_with(const zoo *z, const char *userpass, char *out, size_t cap);

#endif
