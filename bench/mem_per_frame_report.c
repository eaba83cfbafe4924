/*
 * mem_per_frame: the report — result files read back, the table, the goals,
 * CSV, JSON and the plot (mem_per_frame_report.h).
 */
#define _GNU_SOURCE
#include "mem_per_frame_report.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int mpf_parse_result(const char *path, row *w)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *v = strchr(line, ' ');
        if (!v)
            continue;
        *v++ = 0;
        const char *k = line;
        if (!strcmp(k, "ok")) w->ok = atoi(v);
        else if (!strcmp(k, "note")) snprintf(w->note, sizeof w->note, "%s", v);
        else if (!strcmp(k, "codec")) snprintf(w->codec, sizeof w->codec, "%s", v);
        else if (!strcmp(k, "width")) w->width = atoi(v);
        else if (!strcmp(k, "height")) w->height = atoi(v);
        else if (!strcmp(k, "threads")) w->threads = atoi(v);
        else if (!strcmp(k, "proc_threads")) w->proc_threads = atoi(v);
        else if (!strcmp(k, "frame_bytes")) w->frame_bytes = strtoull(v, NULL, 10);
        else if (!strcmp(k, "frames")) w->frames = strtoull(v, NULL, 10);
        else if (!strcmp(k, "seconds")) w->seconds = atof(v);
        else if (!strcmp(k, "fps")) w->fps = atof(v);
        else if (!strcmp(k, "cpu_ms")) w->cpu_ms = atof(v);
        else if (!strcmp(k, "base_rss")) w->base_rss = strtoull(v, NULL, 10);
        else if (!strcmp(k, "clip_frames")) w->clip_frames = atol(v);
        else if (!strcmp(k, "judged_from")) w->judged_from = strtoull(v, NULL, 10);
        else if (!strcmp(k, "verdict")) w->verdict = atoi(v);
        else if (!strcmp(k, "warmup")) w->warmup = strtoull(v, NULL, 10);
        else if (!strcmp(k, "warmup_ended")) w->warmup_ended = atoi(v);
        else if (!strcmp(k, "slope")) w->slope = atof(v);
        else if (!strcmp(k, "window")) w->window = strtoll(v, NULL, 10);
        else if (!strcmp(k, "peak")) w->peak = strtoull(v, NULL, 10);
        else if (!strcmp(k, "faults")) w->faults = atof(v);
        else if (!strcmp(k, "live_slope")) w->live_slope = atof(v);
        else if (!strcmp(k, "live_delta")) w->live_delta = strtoll(v, NULL, 10);
        else if (!strcmp(k, "live_flat")) w->live_flat = atoi(v);
        else if (!strcmp(k, "live")) w->live = strtoull(v, NULL, 10);
        else if (!strcmp(k, "idle")) w->idle = strtoull(v, NULL, 10);
        else if (!strcmp(k, "late_misses")) w->late_misses = strtoull(v, NULL, 10);
        else if (!strcmp(k, "fail_reasons")) w->fail_reasons = (unsigned)atoi(v);
    }
    fclose(f);
    return 0;
}

/* Theil-Sen slope of RssAnon over the second half of the frames after
 * warm-up, from the points file (fp_theil_sen). A leak grows in both halves;
 * a one-time heap extension shows in one at most. */
void mpf_late_slope(row *w)
{
    FILE *f = fopen(w->points, "r");
    if (!f)
        return;
    static double fx[8192], fy[8192];
    size_t n = 0;
    unsigned long long a, b;
    uint64_t from = w->warmup + (w->frames - w->warmup) / 2;
    while (n < 8192 && fscanf(f, "%llu %llu", &a, &b) == 2)
        if (a >= from) {
            fx[n] = (double)a;
            fy[n] = (double)b;
            n++;
        }
    fclose(f);
    if (n >= 3)
        fp_theil_sen(fx, fy, n, 0, &w->late_slope);
}

/* 1 when the rounds of a --repeat run did not all give the same verdict */
int mpf_rounds_differ(const row *w)
{
    int n = w->nrounds < 16 ? w->nrounds : 16;
    for (int i = 1; i < n; i++)
        if (w->round_verdict[i] != w->round_verdict[0])
            return 1;
    return 0;
}

const char *mpf_verdict_name(const row *w)
{
    if (!w->ran)
        return "skipped";
    if (!w->ok)
        return "ERROR";
    static const char *const n[] = {"PASS", "FAIL", "INCONCLUSIVE"};
    return w->verdict >= 0 && w->verdict <= 2 ? n[w->verdict] : "?";
}

void mpf_print_table(FILE *out, row *rows, int n)
{
    fprintf(out, "%-22s %6s %7s %8s %9s %11s %12s %9s %19s %10s  %s\n", "scenario", "frames",
            "fps", "cpu ms/f", "slope B/f", "window", "peak RssAnon", "faults/f",
            "framepool live", "pool idle", "verdict");
    for (int i = 0; i < n; i++) {
        row *w = &rows[i];
        if (!w->ran)
            continue;
        if (!w->ok) {
            fprintf(out, "%-22s ERROR: %s\n", w->sc->label, w->note);
            continue;
        }
        char win[32], pk[32], live[48], idle[32], lb[32];
        fp_diag_format_size(win, sizeof win, (double)w->window, 1);
        fp_diag_format_size(pk, sizeof pk, (double)w->peak, 0);
        if (w->sc->framepool) {
            fp_diag_format_size(lb, sizeof lb, (double)w->live, 0);
            if (w->live_flat)
                snprintf(live, sizeof live, "flat %s", lb);
            else /* the window test failed: show how far the live bytes moved */
                snprintf(live, sizeof live, "NOT flat %s",
                         fp_diag_format_size(lb, sizeof lb, (double)w->live_delta, 1));
            fp_diag_format_size(idle, sizeof idle, (double)w->idle, 0);
        } else {
            snprintf(live, sizeof live, "-");
            snprintf(idle, sizeof idle, "-");
        }
        fprintf(out, "%-22s %6" PRIu64 " %7.1f %8.3f %9.1f %11s %12s %9.3f %19s %10s  %s%s\n",
                w->sc->label, w->frames, w->fps, w->cpu_ms, w->slope, win, pk, w->faults, live,
                idle, mpf_verdict_name(w), mpf_rounds_differ(w) ? "*" : "");
    }
}

static row *find_row(row *rows, int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].sc->id, id) && rows[i].ran && rows[i].ok)
            return &rows[i];
    return NULL;
}

int mpf_eval_goals(row *rows, int n, goal *g)
{
    int k = 0;
    const char *fpids[] = {"1", "5a"};
    for (int i = 0; i < 2; i++) {
        row *w = find_row(rows, n, fpids[i]);
        goal *x = &g[k++];
        x->name = i == 0 ? "single loop: live flat, slope <= 16 B/f, faults <= 0.05/f"
                         : "pipeline: live flat, slope <= 16 B/f, faults <= 0.05/f";
        if (!w) {
            x->met = -1;
            snprintf(x->detail, sizeof x->detail, "scenario %s did not run", fpids[i]);
            continue;
        }
        x->met = w->live_flat && w->slope <= 16 && w->faults <= 0.05 &&
                 w->verdict == FP_MEMTRACK_PASS;
        snprintf(x->detail, sizeof x->detail,
                 "live %s, slope %.1f B/f, faults %.3f/f, verdict %s",
                 w->live_flat ? "flat" : "NOT flat", w->slope, w->faults, mpf_verdict_name(w));
    }
    row *a = find_row(rows, n, "5a"), *b = find_row(rows, n, "5b");
    goal *x = &g[k++];
    x->name = "pipeline: faults/f >= 20x lower than libav's, peak <= libav's";
    if (!a || !b) {
        x->met = -1;
        snprintf(x->detail, sizeof x->detail, "scenarios 5a and 5b are both needed");
    } else {
        double ratio = a->faults > 0 ? b->faults / a->faults : (b->faults > 0 ? INFINITY : 0);
        x->met = ratio >= 20 && a->peak <= b->peak;
        char pa[32], pb[32];
        snprintf(x->detail, sizeof x->detail,
                 "faults %.3f vs %.3f per frame (%s%.1fx lower), peak %s vs %s (%.2fx)",
                 a->faults, b->faults, isinf(ratio) ? ">" : "",
                 isinf(ratio) ? b->faults / 0.001 : ratio,
                 fp_diag_format_size(pa, sizeof pa, (double)a->peak, 0),
                 fp_diag_format_size(pb, sizeof pb, (double)b->peak, 0),
                 (double)a->peak / (double)b->peak);
    }
    a = find_row(rows, n, "1");
    b = find_row(rows, n, "2");
    x = &g[k++];
    x->name = "loop vs cv::VideoCapture: peak <= 0.8x, fps >= 1.15x";
    if (!a || !b) {
        x->met = -1;
        snprintf(x->detail, sizeof x->detail, "scenarios 1 and 2 are both needed");
    } else {
        double pr = (double)a->peak / (double)b->peak, fr = a->fps / b->fps;
        double lr = (double)(a->peak - a->base_rss) / (double)(b->peak - b->base_rss);
        double cr = b->cpu_ms / a->cpu_ms;
        x->met = pr <= 0.8 && fr >= 1.15;
        char pa[32], pb[32], sa[32], sb[32];
        snprintf(x->detail, sizeof x->detail,
                 "peak %s vs %s = %.2fx (%s), fps %.2fx (%s); peak above each process's start "
                 "(%s vs %s) %.2fx, CPU per frame %.2fx less",
                 fp_diag_format_size(pa, sizeof pa, (double)a->peak, 0),
                 fp_diag_format_size(pb, sizeof pb, (double)b->peak, 0), pr,
                 pr <= 0.8 ? "met" : "not met", fr, fr >= 1.15 ? "met" : "not met",
                 fp_diag_format_size(sa, sizeof sa, (double)a->base_rss, 0),
                 fp_diag_format_size(sb, sizeof sb, (double)b->base_rss, 0), lr, cr);
    }
    a = find_row(rows, n, "4");
    x = &g[k++];
    x->name = "leak: FAIL with slope close to the frame size";
    if (!a) {
        x->met = -1;
        snprintf(x->detail, sizeof x->detail, "scenario 4 did not run");
    } else {
        double r = a->frame_bytes ? a->slope / (double)a->frame_bytes : 0;
        x->met = a->verdict == FP_MEMTRACK_FAIL && r >= 0.9 && r <= 1.25;
        snprintf(x->detail, sizeof x->detail,
                 "verdict %s, slope %.0f B/f = %.3fx the %" PRIu64 "-byte BGR frame",
                 mpf_verdict_name(a), a->slope, r, a->frame_bytes);
    }
    return k;
}

void mpf_write_csv_rows(FILE *f, const char *clip, row *rows, int n)
{
    for (int i = 0; i < n; i++) {
        row *w = &rows[i];
        if (!w->ran)
            continue;
        bench_csv_str(f, clip);
        fprintf(f, ",%s,", w->sc->id);
        bench_csv_str(f, w->sc->label);
        fprintf(f,
                ",%d,%d,%d,%" PRIu64 ",%" PRIu64 ",%.3f,%.3f,%.3f,%" PRId64 ",%" PRIu64
                ",%.5f,",
                w->width, w->height, w->threads, w->frame_bytes, w->frames, w->seconds, w->fps,
                w->slope, w->window, w->peak, w->faults);
        if (w->sc->framepool)
            fprintf(f, "%" PRIu64 ",%d,%.3f,%" PRIu64 ",", w->live, w->live_flat, w->live_slope,
                    w->idle);
        else
            fprintf(f, ",,,,");
        fprintf(f, "%" PRIu64 ",%s,%.5f,%" PRIu64 ",", w->warmup, mpf_verdict_name(w), w->cpu_ms,
                w->base_rss);
        bench_csv_str(f, w->note);
        fputc('\n', f);
    }
}

void mpf_write_json_clip(FILE *f, const char *clip, row *rows, int n, goal *g, int ng,
                            const char *plot, int first)
{
    fprintf(f, "%s    {\"clip\": ", first ? "" : ",\n");
    bench_json_str(f, clip);
    fprintf(f, ", \"plot\": ");
    if (plot)
        bench_json_str(f, plot);
    else
        fputs("null", f);
    fprintf(f, ",\n     \"scenarios\": [");
    int k = 0;
    for (int i = 0; i < n; i++) {
        row *w = &rows[i];
        if (!w->ran)
            continue;
        fprintf(f, "%s\n      {\"id\": \"%s\", \"label\": ", k++ ? "," : "", w->sc->id);
        bench_json_str(f, w->sc->label);
        fprintf(f, ", \"ok\": %s, \"verdict\": \"%s\", \"codec\": ", w->ok ? "true" : "false",
                mpf_verdict_name(w));
        bench_json_str(f, w->codec);
        fprintf(f,
                ", \"width\": %d, \"height\": %d, \"threads\": %d, \"process_threads\": %d, "
                "\"frame_bytes\": %" PRIu64 ", \"frames\": %" PRIu64 ", \"seconds\": %.3f, "
                "\"fps\": %.3f, \"cpu_ms_per_frame\": %.5f, \"start_rss_anon_bytes\": %" PRIu64
                ", \"warmup_frames\": %" PRIu64 ", \"rss_slope_bytes_per_frame\": "
                "%.3f, \"rss_window_delta_bytes\": %" PRId64 ", \"peak_rss_anon_bytes\": %" PRIu64
                ", \"minor_faults_per_frame\": %.5f, \"rss_slope_last_half\": %.3f",
                w->width, w->height, w->threads, w->proc_threads, w->frame_bytes, w->frames,
                w->seconds, w->fps, w->cpu_ms, w->base_rss, w->warmup, w->slope, w->window,
                w->peak, w->faults, w->late_slope);
        if (w->sc->framepool)
            fprintf(f,
                    ", \"framepool_live_bytes\": %" PRIu64 ", \"framepool_live_flat\": %s, "
                    "\"framepool_live_slope\": %.3f, \"pool_idle_bytes\": %" PRIu64
                    ", \"late_pool_misses\": %" PRIu64,
                    w->live, w->live_flat ? "true" : "false", w->live_slope, w->idle,
                    w->late_misses);
        else
            fprintf(f, ", \"framepool_live_bytes\": null, \"pool_idle_bytes\": null");
        fprintf(f, ", \"judged_from_frame\": %" PRIu64 ", \"fail_reasons\": %u, \"rounds\": [",
                w->judged_from, w->fail_reasons);
        for (int r = 0; r < w->nrounds && r < 16; r++)
            fprintf(f, "%s{\"fps\": %.3f, \"verdict\": %d}", r ? ", " : "", w->round_fps[r],
                    w->round_verdict[r]);
        fprintf(f, "], \"note\": ");
        bench_json_str(f, w->note);
        fputc('}', f);
    }
    fprintf(f, "],\n     \"goals\": [");
    for (int i = 0; i < ng; i++) {
        fprintf(f, "%s\n      {\"goal\": ", i ? "," : "");
        bench_json_str(f, g[i].name);
        fprintf(f, ", \"met\": %s, \"detail\": ",
                g[i].met == 1 ? "true" : g[i].met == 0 ? "false" : "null");
        bench_json_str(f, g[i].detail);
        fputc('}', f);
    }
    fprintf(f, "]}");
}

int mpf_make_plot(const char *png, const char *tmp, const char *clip, row *rows, int n)
{
    char script[1200];
    snprintf(script, sizeof script, "%s/plot.gp", tmp);
    FILE *f = fopen(script, "w");
    if (!f)
        return -1;
    const char *base = strrchr(clip, '/') ? strrchr(clip, '/') + 1 : clip;
    row *any = NULL;
    for (int i = 0; i < n && !any; i++)
        if (rows[i].ran && rows[i].ok)
            any = &rows[i];
    if (!any) {
        fclose(f);
        return -1;
    }
    /* framepool in blue/green, the peers in greys and orange, the leak in red */
    const char *colors[] = {"#1f5fbf", "#7f7f7f", "#e08a00", "#d62728", "#2ca02c", "#9467bd"};
    fprintf(f, "set terminal pngcairo size 1100,900 font 'sans,10'\n");
    fprintf(f, "set output '%s'\n", png);
    fprintf(f, "set multiplot layout 2,1 title \"RssAnon per frame: %s (%dx%d %s, %d decoder "
               "threads)\" font 'sans,12'\n",
            base, any->width, any->height, any->codec, any->threads);
    fprintf(f, "set xlabel 'frame'\nset ylabel 'RssAnon (MiB)'\nset grid\n"
               "set key outside right top samplen 2\n");
    for (int pass = 0; pass < 2; pass++) {
        fprintf(f, "set title \"%s\"\n",
                pass == 0 ? "all scenarios" : "without the leak (zoomed)");
        if (pass == 1 && any->warmup > 0)
            fprintf(f, "set arrow 1 from %" PRIu64 ", graph 0 to %" PRIu64 ", graph 1 nohead "
                       "dt 2 lc rgb '#555555'\nset label 1 'warm-up end' at %" PRIu64
                       ", graph 0.96 offset 0.5,0 font 'sans,9'\n",
                    any->warmup, any->warmup, any->warmup);
        fprintf(f, "plot ");
        int k = 0;
        /* the peers first, so that framepool's lines are drawn on top */
        for (int j = 0; j < 2 * n; j++) {
            row *w = &rows[j % n];
            if ((j < n) == (w->sc->framepool != 0))
                continue;
            if (!w->ran || !w->ok || (pass == 1 && !strcmp(w->sc->id, "4")))
                continue;
            fprintf(f, "%s'%s' using 1:($2/1048576) with lines lw %d lc rgb '%s' title '%s'",
                    k++ ? ", \\\n     " : "", w->points, w->sc->framepool ? 3 : 2,
                    colors[(w - rows) % 6], w->sc->label);
        }
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\n");
    fclose(f);
    char *argv[] = {"gnuplot", script, NULL};
    return bench_run_wait(argv) == 0 ? 0 : -1;
}

void mpf_write_csv_header(FILE *f)
{
    fprintf(f, "clip,id,scenario,width,height,threads,frame_bytes,frames,seconds,fps,"
               "rss_slope_b_per_frame,rss_window_delta_b,peak_rss_anon_b,"
               "minor_faults_per_frame,framepool_live_b,framepool_live_flat,"
               "framepool_live_slope,pool_idle_b,warmup_frames,verdict,cpu_ms_per_frame,"
               "start_rss_anon_b,note\n");
}
