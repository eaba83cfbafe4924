/* The log hook (framepool/base.h, "Logging"): levels, the default stderr
 * printer, switching hooks while lines are logged, and FFmpeg's own lines
 * routed through it — with a password that must appear in nothing framepool
 * or FFmpeg prints: fp_reader_errmsg, fp_errmsg, live events, the "gave up"
 * message, the hook's lines and stderr (fd 2 captured). */
#define _GNU_SOURCE
#include "livesrv.h"
#include "zoo.h"
#include "log_priv.h" /* fp__log */
#include "testutil.h"

#include <framepool/reader.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLACK (UNDER_SANITIZER ? 3.0 : 1.0)
#define SECRET "Zq9-SECRET"
/* "user:Zq9-SECRET" in base64, as HTTP Basic authentication sends it */
#define SECRET_B64 "dXNlcjpacTktU0VDUkVU"

/* ---- collected lines ---------------------------------------------------------------------- */

#define MAX_LINES 4096
typedef struct lines {
    pthread_mutex_t mu;
    int n, total;
    int level[MAX_LINES];
    char source[MAX_LINES][32];
    char *text[MAX_LINES];
} lines;

static lines got = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void collect(int level, const char *source, const char *line, void *user)
{
    lines *l = user;
    ck_assert_ptr_nonnull(source);
    ck_assert_ptr_nonnull(line);
    ck_assert_msg(!strchr(line, '\n'), "a line with a newline: '%s'", line);
    pthread_mutex_lock(&l->mu);
    l->total++;
    if (l->n < MAX_LINES) {
        int i = l->n++;
        l->level[i] = level;
        snprintf(l->source[i], sizeof l->source[i], "%s", source);
        l->text[i] = strdup(line);
    }
    pthread_mutex_unlock(&l->mu);
    if (getenv("FP_LOG_VERBOSE"))
        fprintf(stderr, "log %d [%s] %s\n", level, source, line);
}

static void lines_clear(lines *l)
{
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n; i++)
        free(l->text[i]);
    l->n = l->total = 0;
    pthread_mutex_unlock(&l->mu);
}

/* The index of the first line containing `s` (from `source` unless NULL), or -1. */
static int lines_find(lines *l, const char *source, const char *s)
{
    int k = -1;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n && k < 0; i++)
        if (strstr(l->text[i], s) && (!source || strcmp(l->source[i], source) == 0))
            k = i;
    pthread_mutex_unlock(&l->mu);
    return k;
}

static void lines_assert_clean(lines *l, const char *what)
{
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n; i++) {
        ck_assert_msg(!strstr(l->text[i], SECRET) && !strstr(l->text[i], SECRET_B64),
                      "%s: the hook got the password: [%s] %s", what, l->source[i], l->text[i]);
        ck_assert_msg(!strstr(l->source[i], SECRET), "%s: source '%s'", what, l->source[i]);
    }
    pthread_mutex_unlock(&l->mu);
}

/* ---- stderr, captured at the descriptor ---------------------------------------------------- */

typedef struct capture {
    int saved;
    char path[64];
} capture;

static void capture_begin(capture *c)
{
    fflush(stderr);
    snprintf(c->path, sizeof c->path, "/tmp/fp_test_log_XXXXXX");
    int fd = mkstemp(c->path);
    ck_assert_int_ge(fd, 0);
    c->saved = dup(2);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    close(fd);
}

/* Restores stderr; returns what was written to it (malloc'd). */
static char *capture_end(capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *f = fopen(c->path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    size_t got_n = fread(buf, 1, (size_t)n, f);
    buf[got_n] = '\0';
    fclose(f);
    unlink(c->path);
    return buf;
}

static void text_assert_clean(const char *text, const char *what)
{
    const char *p = strstr(text, SECRET);
    if (!p)
        p = strstr(text, SECRET_B64);
    if (p) {
        const char *b = p - 120 > text ? p - 120 : text;
        ck_abort_msg("%s shows the password: ...%.240s", what, b);
    }
}

/* ---- the API -------------------------------------------------------------------------------- */

START_TEST(levels_and_hook)
{
    ck_assert_int_eq(fp_log_get_level(), FP_LOG_WARNING);
    fp_log_set_callback(collect, &got);
    fp__log(FP_LOG_WARNING, NULL, "one %d", 1);
    fp__log(FP_LOG_INFO, "x", "dropped at the default level");
    fp__log(FP_LOG_ERROR, "rtsp", "two\nthree\n\n");
    ck_assert_int_eq(got.n, 3);
    ck_assert_str_eq(got.text[0], "one 1");
    ck_assert_str_eq(got.source[0], "framepool");
    ck_assert_int_eq(got.level[0], FP_LOG_WARNING);
    ck_assert_str_eq(got.text[1], "two");
    ck_assert_str_eq(got.text[2], "three");
    ck_assert_str_eq(got.source[2], "rtsp");
    ck_assert_int_eq(got.level[2], FP_LOG_ERROR);

    fp_log_set_level(FP_LOG_DEBUG);
    ck_assert_int_eq(fp_log_get_level(), FP_LOG_DEBUG);
    fp__log(FP_LOG_DEBUG, NULL, "debug");
    ck_assert_int_eq(got.n, 4);
    fp_log_set_level(FP_LOG_QUIET);
    fp__log(FP_LOG_ERROR, NULL, "quiet");
    fp__log(0, NULL, "even a panic");
    ck_assert_int_eq(got.n, 4);
    fp_log_set_level(FP_LOG_WARNING);
    fp_log_set_callback(NULL, NULL);
    lines_clear(&got);
}
END_TEST

START_TEST(default_prints_to_stderr)
{
    capture c;
    capture_begin(&c);
    fp__log(FP_LOG_ERROR, "tcp", "refused\nagain");
    fp__log(FP_LOG_DEBUG, NULL, "not shown");
    fp_log_set_callback(collect, &got);
    fp__log(FP_LOG_ERROR, NULL, "to the hook");
    fp_log_set_callback(NULL, NULL);
    fp__log(FP_LOG_ERROR, NULL, "back");
    char *text = capture_end(&c);
    ck_assert_msg(strcmp(text, "framepool [tcp] refused\nframepool [tcp] again\n"
                               "framepool [framepool] back\n") == 0,
                  "stderr: '%s'", text);
    free(text);
    ck_assert_int_eq(got.n, 1);
    lines_clear(&got);
}
END_TEST

/* fp_log_set_callback returns only after the old hook's calls returned. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, release, switched;
} gate;
static gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static lines before = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Blocks on the line "slow" until released; keeps the others in `before`. */
static void slow_hook(int level, const char *source, const char *line, void *user)
{
    (void)user;
    if (strcmp(line, "slow") != 0) {
        collect(level, source, line, &before);
        return;
    }
    pthread_mutex_lock(&g.mu);
    g.entered = 1;
    pthread_cond_broadcast(&g.cv);
    while (!g.release)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
}

static void *logger(void *arg)
{
    (void)arg;
    fp__log(FP_LOG_ERROR, NULL, "slow");
    return NULL;
}

static void *switcher(void *arg)
{
    (void)arg;
    fp_log_set_callback(collect, &got);
    pthread_mutex_lock(&g.mu);
    g.switched = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    return NULL;
}

START_TEST(switch_waits_for_old_calls)
{
    fp_log_set_callback(slow_hook, NULL);
    pthread_t a, b;
    pthread_create(&a, NULL, logger, NULL);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    pthread_create(&b, NULL, switcher, NULL);
    /* new lines go to the new hook at once, while the old call is still under way */
    for (int i = 0; i < 1000 && lines_find(&got, NULL, "new") < 0; i++) {
        fp__log(FP_LOG_ERROR, NULL, "new");
        usleep(1000);
    }
    usleep(50000);
    pthread_mutex_lock(&g.mu);
    ck_assert_msg(!g.switched, "fp_log_set_callback returned while the old hook ran");
    g.release = 1;
    pthread_cond_broadcast(&g.cv);
    while (!g.switched)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    fp_log_set_callback(NULL, NULL);
    lines_clear(&got);
    lines_clear(&before);
}
END_TEST

/* ---- fork ----------------------------------------------------------------------------------- */

static atomic_int fork_stop;

static void quiet_hook(int level, const char *source, const char *line, void *user)
{
    (void)level;
    (void)source;
    (void)line;
    atomic_fetch_add((atomic_int *)user, 1);
}

static void *busy_logger(void *arg)
{
    (void)arg;
    while (!atomic_load(&fork_stop))
        fp__log(FP_LOG_ERROR, NULL, "busy line");
    return NULL;
}

/* Waits for `pid` at most `seconds`; returns its exit status, or -1 after
 * killing a child that never ended. */
static int wait_child_bounded(pid_t pid, double seconds)
{
    for (double t = 0; t < seconds; t += 0.005) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* obj.h promises that a child forked at any moment can use framepool: two
 * threads pass lines to the hook without pause while the main thread
 * forks; each child logs a line and switches the hook (which waits for the
 * old hook's calls: those of threads the child does not have must not
 * count). Without the log lock among the locks taken around fork, a child
 * forked while a thread held it hung at its first line. */
START_TEST(a_child_forked_while_threads_log_can_log)
{
    atomic_int calls = 0;
    fp_log_set_callback(quiet_hook, &calls);
    atomic_store(&fork_stop, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, busy_logger, NULL), 0);
    int hung = 0, failed = 0, forked = 0;
    for (int i = 0; i < 40 && !hung && !failed; i++, forked++) {
        while (atomic_load(&calls) < 50 * (i + 1)) /* the threads are logging */
            sched_yield();
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            atomic_int mine = 0;
            fp__log(FP_LOG_ERROR, NULL, "child line");
            fp_log_set_callback(quiet_hook, &mine);
            fp__log(FP_LOG_ERROR, NULL, "child line 2");
            _exit(atomic_load(&mine) == 1 ? 0 : 3);
        }
        int rc = wait_child_bounded(pid, 10.0 * SLACK);
        hung += rc == -1;
        failed += rc != 0 && rc != -1;
    }
    atomic_store(&fork_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    fp_log_set_callback(NULL, NULL);
    ck_assert_msg(!hung && !failed,
                  "child %d forked while threads logged %s", forked,
                  hung ? "hung (killed after 10 s): it could not log" : "could not switch the hook");
}
END_TEST

/* ---- a password through every path ---------------------------------------------------------- */

/* Every form FFmpeg takes credentials from, on a port nobody listens on. */
static void refused_opens(int port)
{
    static const char *forms[] = {"rtsp://user:%s@127.0.0.1:%d/x", "rtsp:/user:%s@127.0.0.1:%d/x",
                                  "rtsp:user:%s@127.0.0.1:%d/x", "tcp://user:%s@127.0.0.1:%d",
                                  "http://user:%s@127.0.0.1:%d/a.ts", "rtmp://user:%s@127.0.0.1:%d/l/s"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char url[160];
        snprintf(url, sizeof url, forms[i], SECRET, port);
        fp_reader_options o = {.timeout_us = 5000000};
        fp_reader *r = NULL;
        int rc = fp_reader_open(url, &o, &r);
        ck_assert_msg(rc < 0, "'%s' opened", url);
        const char *m = fp_errmsg();
        ck_assert_msg(!strstr(m, SECRET), "fp_errmsg: %s", m);
        ck_assert_msg(strstr(m, "***@127.0.0.1"), "fp_errmsg names no redacted URL: %s", m);
        m = fp_reader_errmsg(r); /* a failed open keeps the reader for its message */
        ck_assert_msg(!strstr(m, SECRET), "fp_reader_errmsg: %s", m);
        ck_assert_msg(strstr(m, "***@127.0.0.1"), "fp_reader_errmsg: %s", m);
        fp_reader_close(&r);
    }
}

START_TEST(errmsg_and_ffmpeg_lines)
{
    int port = free_port(SOCK_STREAM);
    fp_log_set_level(FP_LOG_DEBUG);
    fp_log_set_callback(collect, &got);
    refused_opens(port);
    lines_assert_clean(&got, "refused opens");
    /* FFmpeg's lines came through the hook, under its components' names */
    ck_assert_msg(lines_find(&got, "tcp", "") >= 0 || lines_find(&got, "rtsp", "") >= 0,
                  "no FFmpeg line came through the hook (%d lines)", got.n);
    lines_clear(&got);

    fp_log_set_callback(NULL, NULL);
    capture c;
    capture_begin(&c);
    refused_opens(port);
    char *text = capture_end(&c);
    text_assert_clean(text, "stderr");
    ck_assert_msg(strstr(text, "framepool ["), "FFmpeg's lines are not printed: '%.400s'", text);
    ck_assert_msg(!strstr(text, "] Connection to") || !strstr(text, " @ 0x"),
                  "FFmpeg's own printer is still on: '%.400s'", text);
    free(text);
    fp_log_set_level(FP_LOG_WARNING);
}
END_TEST

typedef struct evrec {
    pthread_mutex_t mu;
    int n, gave_up;
    char msg[64][300];
} evrec;

static void on_event(const fp_live_event *ev, void *user)
{
    evrec *e = user;
    pthread_mutex_lock(&e->mu);
    if (e->n < 64)
        snprintf(e->msg[e->n++], sizeof e->msg[0], "%s", ev->message);
    if (ev->type == FP_LIVE_GAVE_UP)
        e->gave_up++;
    pthread_mutex_unlock(&e->mu);
}

/* A live reader on a refused port until it gives up; events and messages. */
static void live_gives_up(const char *fmt, int port)
{
    char url[160];
    snprintf(url, sizeof url, fmt, SECRET, port);
    evrec e = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fp_reader_options o = {0};
    o.live.mode = FP_LIVE_LATEST;
    o.live.max_reconnects = 2;
    o.live.reconnect_min = 0.05;
    o.live.reconnect_max = 0.1;
    o.live.stall = 2;
    o.live.on_event = on_event;
    o.live.user = &e;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), 0);
    ck_assert_int_eq(e.gave_up, 1);
    const char *m = fp_reader_errmsg(r);
    ck_assert_msg(strstr(m, "gave up") && strstr(m, "***@127.0.0.1"), "%s", m);
    ck_assert_msg(!strstr(m, SECRET), "fp_reader_errmsg: %s", m);
    for (int i = 0; i < e.n; i++)
        ck_assert_msg(!strstr(e.msg[i], SECRET), "event: %s", e.msg[i]);
    fp_reader_close(&r);
}

START_TEST(live_events_and_gave_up)
{
    static const char *forms[] = {"rtsp://user:%s@127.0.0.1:%d/x", "rtsp:/user:%s@127.0.0.1:%d/x",
                                  "rtsp:user:%s@127.0.0.1:%d/x", "tcp://user:%s@127.0.0.1:%d"};
    int port = free_port(SOCK_STREAM);
    fp_log_set_level(FP_LOG_DEBUG);
    fp_log_set_callback(collect, &got);
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        live_gives_up(forms[i], port);
    lines_assert_clean(&got, "live reader");
    /* the events are log lines too */
    ck_assert_int_ge(lines_find(&got, "framepool", "gave up on '"), 0);
    ck_assert_int_ge(lines_find(&got, "framepool", "reconnecting to '"), 0);
    int k = lines_find(&got, "framepool", "gave up on '");
    ck_assert_int_eq(got.level[k], FP_LOG_ERROR);
    lines_clear(&got);

    fp_log_set_callback(NULL, NULL);
    capture c;
    capture_begin(&c);
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        live_gives_up(forms[i], port);
    char *text = capture_end(&c);
    text_assert_clean(text, "stderr");
    ck_assert_msg(strstr(text, "framepool [framepool] gave up on 'rtsp:/***@127.0.0.1:"),
                  "stderr: '%.600s'", text);
    free(text);
    fp_log_set_level(FP_LOG_WARNING);
}
END_TEST

/* HLS over HTTP with credentials: FFmpeg prints every segment's whole URL
 * ("Opening 'http://user:pass@host/seg.ts' for reading") and, at debug
 * level, its requests with the Basic header. */
static char hls_dir[64];
static pid_t hls_pid;

static int hls_start(void)
{
    ck_assert_msg(have_program("ffmpeg -version"), "ffmpeg is missing (Debian package ffmpeg)");
    ck_assert_msg(have_program("/usr/bin/python3 -c 'import http.server'"),
                  "/usr/bin/python3 is missing (Debian package python3)");
    snprintf(hls_dir, sizeof hls_dir, "/tmp/fp_test_log_hls_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(hls_dir));
    int rc = tu_sh("ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=160x120:rate=25 "
                   "-t 3 -c:v mpeg2video -g 25 -f hls -hls_time 1 -hls_list_size 0 "
                   "-hls_segment_filename '%s/seg%%d.ts' '%s/index.m3u8'",
                   hls_dir, hls_dir);
    ck_assert_msg(rc == 0, "ffmpeg (hls) failed: %s", tu_out);
    int port = free_port(SOCK_STREAM);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    char *argv[] = {"/usr/bin/python3", "-m", "http.server", ps, "--bind", "127.0.0.1",
                    "--directory", hls_dir, NULL};
    hls_pid = spawn(argv);
    zoo_wait_tcp(port, "the HTTP server", 20 * SLACK);
    return port;
}

static void hls_stop(void)
{
    reap(&hls_pid);
    tu_sh("rm -rf '%s'", hls_dir);
}

static int hls_read(int port)
{
    char url[160];
    snprintf(url, sizeof url, "http://user:%s@127.0.0.1:%d/index.m3u8", SECRET, port);
    fp_reader_options o = {.timeout_us = 20000000, .threads = 2};
    fp_reader *r = NULL;
    int rc = fp_reader_open(url, &o, &r);
    ck_assert_msg(rc == 0, "open: %s", fp_errmsg());
    int n = 0;
    fp_image *img = NULL;
    while ((rc = fp_reader_next(r, &img)) > 0) {
        fp_unref(&img);
        n++;
    }
    ck_assert_msg(rc == 0, "read: %s", fp_reader_errmsg(r));
    fp_reader_close(&r);
    return n;
}

START_TEST(hls_segment_urls)
{
    int port = hls_start();
    fp_log_set_level(FP_LOG_DEBUG);
    fp_log_set_callback(collect, &got);
    ck_assert_int_ge(hls_read(port), 70);
    lines_assert_clean(&got, "HLS");
    int k = lines_find(&got, "hls", "Opening 'http://***@127.0.0.1:");
    ck_assert_msg(k >= 0, "no 'Opening' line from FFmpeg's hls demuxer (%d lines)", got.n);
    ck_assert_int_ge(lines_find(&got, NULL, "seg2.ts"), 0);
    lines_clear(&got);

    fp_log_set_callback(NULL, NULL);
    capture c;
    capture_begin(&c);
    ck_assert_int_ge(hls_read(port), 70);
    char *text = capture_end(&c);
    text_assert_clean(text, "stderr");
    ck_assert_msg(strstr(text, "framepool [hls] Opening 'http://***@127.0.0.1:"),
                  "stderr: '%.600s'", text);
    free(text);
    fp_log_set_level(FP_LOG_WARNING);
    hls_stop();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, levels_and_hook);
    tcase_add_test(tc, default_prints_to_stderr);
    tcase_add_test(tc, switch_waits_for_old_calls);
    tcase_add_test(tc, a_child_forked_while_threads_log_can_log);
    LIVE_ADD(tc, errmsg_and_ffmpeg_lines);
    LIVE_ADD(tc, live_events_and_gave_up);
    LIVE_ADD(tc, hls_segment_urls);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
