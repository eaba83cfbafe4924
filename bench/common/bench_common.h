/*
 * What every benchmark shares, written once: the clocks (wall and process
 * CPU), the CPU count, running a child program, the report helpers (CSV and
 * JSON strings, sizes; sizes print with fp_diag_format_size), and the live
 * benchmarks' sources. Process sampling from /proc and the Theil-Sen slope
 * are framepool's own (framepool/measure.h: fp_procstat, fp_theil_sen).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic wall-clock seconds. */
double bench_now(void);
/* CPU seconds (user + system) of this process, all threads. */
double bench_cpu_seconds(void);
/* CPUs this process may run on (affinity), at least 1. */
int bench_cpu_count(void);
/* Runs argv (a path, or a name on PATH) and waits: its exit status, or -1
 * when it could not run or died of a signal. Flushes stdout/stderr first. */
int bench_run_wait(char *const argv[]);
/* Writes s as a JSON string (quoted, escaped). */
void bench_json_str(FILE *f, const char *s);
/* Writes s as a CSV field (quoted, quotes doubled). */
void bench_csv_str(FILE *f, const char *s);
/* The command line as one string, for a report: argv joined by spaces. */
void bench_command_line(char *buf, size_t n, int argc, char **argv);

/* The live benchmarks' sources (live_soak, multi_stream, live_latency). */
/* A free tcp port on 127.0.0.1 (bound, read and closed: free until someone
 * else takes it). */
int bench_free_port(void);
/* Runs `ffmpeg -nostdin -loglevel error -y ARGS -f mpegts TMPFILE` and
 * returns the file's bytes (malloc'd; *len set), or NULL when ffmpeg failed. */
unsigned char *bench_make_clip(const char *ffmpeg_args, size_t *len);
/* The path of program `name` in this executable's directory (a peer such as
 * multi_stream_cv), into buf. 0, or -1. */
int bench_peer_path(const char *name, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
