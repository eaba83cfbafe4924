/* The server zoo (tests/zoo/): streaming servers set up the way people run
 * them, on 127.0.0.1, for the live reader's tests and bench/live_matrix.
 * Each server is a child process killed with the thread that started it
 * (PR_SET_PDEATHSIG) and by zoo_stop, and ends by itself after 240 s; a
 * missing program fails (zoo_fail) naming the Debian package to install
 * (scripts/setup). Plain C, no test framework: bench/live_matrix uses it.
 *
 *   rtsp   GStreamer RTSP (tests/rtsp_server.py): H.264, RTP over UDP or TCP
 *          as the client asks, optional GOP, basic/digest auth, session timeout
 *   rtmp   nginx + libnginx-mod-rtmp, an ffmpeg publisher (H.264 768x432 10 fps,
 *          4 s GOP)
 *   hls    ffmpeg's hls muxer (2 s segments, sliding playlist of 5) in the
 *          nginx prefix, served by that nginx over HTTP
 *   srt    srt-live-transmit (listener) relaying an ffmpeg MPEG-TS stream
 *          (H.264 640x360 25 fps, 2 s GOP) that it receives over UDP
 *   mjpeg  ffmpeg -f mpjpeg -listen 1: multipart JPEG over HTTP, 10 fps
 *
 * Faults: zoo_feed_stop/zoo_feed_start (the stream stops and returns: the
 * publisher of rtmp/hls/srt), zoo_server_restart, zoo_server_pause/resume
 * (SIGSTOP/SIGCONT of the server process itself), zoo_set_size (the source
 * changes its frame size). */
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
    /* state */
    int port, port2;
    pid_t srv, feed;
    pid_t paused;         /* the process zoo_server_pause stopped */
    char dir[64];         /* temp prefix (nginx, hls) */
    char url[256];        /* what a client opens (no credentials) */
    const char *av_options; /* FFmpeg options a client needs (NULL: none) */
    int feeding;
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
void zoo_server_restart(zoo *z);
void zoo_server_pause(zoo *z);
void zoo_server_resume(zoo *z);
/* Restarts the source with frames of `size` ("WxH"). */
void zoo_set_size(zoo *z, const char *size);
/* Writes the URL with credentials `userpass` ("u:p") into out. */
void zoo_url_with(const zoo *z, const char *userpass, char *out, size_t cap);

#endif
