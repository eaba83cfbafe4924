/*
 * mem_per_frame: what the driver knows of each scenario (its result row and
 * the goals), and the report written from them: the table, CSV, JSON and the
 * gnuplot plot (mem_per_frame_report.c).
 */
#ifndef MEM_PER_FRAME_REPORT_H
#define MEM_PER_FRAME_REPORT_H

#include "mem_per_frame.h"
#include "common/bench_common.h"

typedef struct scenario {
    const char *id;
    const char *label;
    int framepool;
} scenario;

#define MPF_MAX_SCEN 6 /* scenarios 1, 2, 3, 4, 5a, 5b */
extern const scenario mpf_scenarios[MPF_MAX_SCEN];
/* Runs the scenario named by --scenario in this process. Exit status. */
int mpf_child_main(int argc, char **argv);

typedef struct row {
    const scenario *sc;
    int ran, ok;
    char note[200], codec[32];
    int width, height, threads, proc_threads;
    uint64_t frame_bytes, frames, warmup, peak, live, idle, late_misses;
    double seconds, fps, cpu_ms, slope, faults, live_slope;
    uint64_t base_rss, judged_from;
    long clip_frames;
    double late_slope; /* Theil-Sen slope of RssAnon over the last half after warm-up */
    /* --repeat: every round's fps and verdict (-1 error); the row is the
     * round with the best fps (or the first failed one) */
    int nrounds;
    double round_fps[16];
    int round_verdict[16];
    int64_t window, live_delta;
    int verdict, warmup_ended, live_flat;
    unsigned fail_reasons;
    char points[1200];
} row;

typedef struct goal {
    const char *name;
    int met; /* 1 met, 0 not met, -1 not measured */
    char detail[240];
} goal;

/* Reads a scenario's result file into w. 0 or -1. */
int mpf_parse_result(const char *path, row *w);
/* Theil-Sen slope of RssAnon over the second half after warm-up, from the points. */
void mpf_late_slope(row *w);
const char *mpf_verdict_name(const row *w);
int mpf_rounds_differ(const row *w);
void mpf_print_table(FILE *out, row *rows, int n);
/* Evaluates the goals into g (at least 8). Returns how many. */
int mpf_eval_goals(row *rows, int n, goal *g);
void mpf_write_csv_header(FILE *f);
void mpf_write_csv_rows(FILE *f, const char *clip, row *rows, int n);
void mpf_write_json_clip(FILE *f, const char *clip, row *rows, int n, goal *g, int ng,
                         const char *plot, int first);
/* gnuplot PNG of RssAnon over frames; tmp holds the script. 0 or -1. */
int mpf_make_plot(const char *png, const char *tmp, const char *clip, row *rows, int n);

#endif
