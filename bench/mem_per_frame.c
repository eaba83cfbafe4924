/*
 * mem_per_frame — memory per frame of a video loop: framepool against the
 * loops people write today, on the same clip, with the same decoder threads.
 *
 *   mem_per_frame [options] [CLIP ...]
 *
 * Scenarios, each in its own process (this program re-executes itself with
 * --scenario ID; scenario 2 is the program mem_per_frame_cv next to it, which
 * links OpenCV's videoio), each looping the clip until it has run --frames
 * (framepool with fp_reader_options.loop, the others by seeking):
 *   1   framepool: fp_reader (BGR24) -> fp_image_save (PNG) every Nth -> release
 *   2   OpenCV: cv::VideoCapture::read into one Mat + cv::imwrite every Nth
 *   3   plain libav: decode, a new BGR AVFrame per frame (av_frame_get_buffer
 *       + sws_scale), PNG every Nth with libavcodec's encoder, av_frame_free
 *   4   the same loop forgetting av_frame_free (the classic leak; stops after
 *       leaking about --leak-mb)
 *   5a  pipeline, framepool: decode thread -> queue of 8 -> worker holding a
 *       window of its last --hold frames, releasing the oldest (the worker
 *       starts once the queue is full: a pre-roll)
 *   5b  the same pipeline with plain libav frames (allocated by the decode
 *       thread, freed by the worker)
 * Every scenario measures itself with one fp_memtrack (RssAnon from statm,
 * minor faults from getrusage, framepool live and idle bytes), sampled once
 * per frame, plus a 1 ms RssAnon watcher for the peak (mem_per_frame_harness.c).
 * Prints one table per clip, the goals, and writes --csv, --json and a
 * gnuplot PNG of RssAnon over frames (--plot).
 *
 * This program links framepool and FFmpeg only, not OpenCV: framepool saves
 * with fp_image_save and the plain libav loops with libavcodec's PNG encoder
 * (both at cv::imwrite's default setting, zlib level 1 with the "sub" row
 * filter). So its processes start smaller than mem_per_frame_cv's, which
 * loads OpenCV (imgcodecs alone pulls in 139 libraries on Debian, about
 * 12 MiB of RssAnon before the first frame); the loops themselves differ by
 * one BGR frame (cv::VideoCapture converts into its own buffer and copies
 * into the caller's Mat). The table's notes show each process's RssAnon at
 * start, and the goal line gives the peak ratio both absolute and above each
 * process's start.
 */
#define _GNU_SOURCE
#include "mem_per_frame_report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int make_default_clip(const char *tmp, char *out, size_t n)
{
    snprintf(out, n, "%s/testsrc2-1280x720.mp4", tmp);
    printf("mem_per_frame: no clip given: making %s (10 s of 1280x720 H.264, B-frames) with "
           "ffmpeg\n",
           out);
    char *argv[] = {"ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1280x720:rate=30:duration=10", "-c:v", "libx264", "-preset",
                    "veryfast", "-pix_fmt", "yuv420p", "-g", "60", "-bf", "2", out, NULL};
    return bench_run_wait(argv) == 0 ? 0 : -1;
}

static int rm_rf(const char *dir)
{
    char *argv[] = {"rm", "-rf", (char *)dir, NULL};
    return bench_run_wait(argv);
}

static int usage(FILE *f, int rc)
{
    fprintf(f,
            "usage: mem_per_frame [--frames N] [--threads N] [--save-every N] [--leak-mb MB]\n"
            "                     [--queue N] [--hold N] [--max-held N] [--prime] [--repeat N]\n"
            "                     [--only 1,2,3,4,5a,5b] [--csv FILE] [--json FILE]\n"
            "                     [--plot FILE.png] [--keep] [CLIP ...]\n"
            "  --frames N      frames per scenario (default 5000; the clip is looped: framepool\n"
            "                  with fp_reader_options.loop, the others by seeking)\n"
            "  --threads N     decoder threads for every scenario (default: the CPU count,\n"
            "                  which is what cv::VideoCapture uses and cannot be told otherwise)\n"
            "  --save-every N  save every Nth frame as PNG in scenarios 1-4 (default 100;\n"
            "                  0 = never)\n"
            "  --leak-mb MB    scenario 4 stops after leaking about this much (default 512)\n"
            "  --queue N       pipeline queue bound (default 8)\n"
            "  --hold N        frames the pipeline worker holds (default 4)\n"
            "  --max-held N    5a's reader bound on frames held (default queue + hold + 2, the\n"
            "                  pipeline's full depth; fewer makes the decode thread wait)\n"
            "  --repeat N      run the scenarios N times, interleaved (1..16, default 1); each\n"
            "                  row is the round with the best fps, the notes list all rounds\n"
            "  --prime         5a opens its reader with fp_reader_options.prefill: the BGR\n"
            "                  pool is at its bound, every page touched, before the first frame\n"
            "  --plot FILE     PNG of RssAnon over frames (gnuplot); more clips get -2, -3, ...\n"
            "  --keep          keep the temporary directory (clip, frames, samples)\n"
            "Without CLIP, a 1280x720 H.264 test clip is generated with ffmpeg.\n");
    return rc;
}

static void plot_name(char *buf, size_t n, const char *plot, int idx)
{
    if (idx == 0) {
        snprintf(buf, n, "%s", plot);
        return;
    }
    const char *dot = strrchr(plot, '.');
    const char *slash = strrchr(plot, '/');
    if (!dot || (slash && dot < slash))
        dot = plot + strlen(plot);
    snprintf(buf, n, "%.*s-%d%s", (int)(dot - plot), plot, idx + 1, dot);
}

int main(int argc, char **argv)
{
    mpf_opts o = {0};
    o.frames = 5000;
    o.threads = 0;
    o.save_every = 100;
    o.queue = 8;
    o.hold = 4;
    o.leak_mb = 512;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--scenario"))
            return mpf_child_main(argc, argv); /* one scenario in this process */
    const char *csv = NULL, *json = NULL, *plot = NULL, *only = NULL;
    int repeat = 1;
    int keep = 0;
    const char *clips[64];
    int nclips = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int v = i + 1 < argc;
        if (!strcmp(a, "--frames") && v) o.frames = atol(argv[++i]);
        else if (!strcmp(a, "--threads") && v) o.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--save-every") && v) o.save_every = atoi(argv[++i]);
        else if (!strcmp(a, "--leak-mb") && v) o.leak_mb = atol(argv[++i]);
        else if (!strcmp(a, "--queue") && v) o.queue = atoi(argv[++i]);
        else if (!strcmp(a, "--hold") && v) o.hold = atoi(argv[++i]);
        else if (!strcmp(a, "--max-held") && v) o.max_held = atoi(argv[++i]);
        else if (!strcmp(a, "--prime")) o.prime = 1;
        else if (!strcmp(a, "--repeat") && v) repeat = atoi(argv[++i]);
        else if (!strcmp(a, "--csv") && v) csv = argv[++i];
        else if (!strcmp(a, "--json") && v) json = argv[++i];
        else if (!strcmp(a, "--plot") && v) plot = argv[++i];
        else if (!strcmp(a, "--only") && v) only = argv[++i];
        else if (!strcmp(a, "--keep")) keep = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        else if (a[0] == '-') return usage(stderr, 2);
        else if (nclips < 64) clips[nclips++] = a;
        else return usage(stderr, 2);
    }
    if (o.frames < 200 || o.threads < 0 || o.save_every < 0 || o.queue < 1 || o.hold < 1 ||
        o.max_held < 0 || o.leak_mb < 1 || repeat < 1 || repeat > 16) {
        fprintf(stderr, "mem_per_frame: --frames must be >= 200, --repeat 1..16, the others "
                        "positive\n");
        return 2;
    }
    if (o.threads == 0)
        o.threads = bench_cpu_count();
    o.progress_tty = isatty(STDOUT_FILENO);

    const char *tdir = getenv("TMPDIR");
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/mem_per_frame.XXXXXX", tdir && *tdir ? tdir : "/tmp");
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "mem_per_frame: cannot create a temporary directory: %s\n",
                strerror(errno));
        return 1;
    }
    o.dir = tmp;
    char default_clip[4200];
    if (nclips == 0) {
        if (make_default_clip(tmp, default_clip, sizeof default_clip) < 0) {
            fprintf(stderr, "mem_per_frame: ffmpeg could not make the default clip; give a CLIP\n");
            rm_rf(tmp);
            return 1;
        }
        clips[nclips++] = default_clip;
    }
    FILE *fcsv = NULL, *fjson = NULL;
    if (csv && !(fcsv = fopen(csv, "w"))) {
        fprintf(stderr, "mem_per_frame: cannot write %s: %s\n", csv, strerror(errno));
        return 1;
    }
    if (json && !(fjson = fopen(json, "w"))) {
        fprintf(stderr, "mem_per_frame: cannot write %s: %s\n", json, strerror(errno));
        return 1;
    }
    if (fcsv)
        mpf_write_csv_header(fcsv);
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    if (fjson) {
        fprintf(fjson, "{\"tool\": \"mem_per_frame\", \"date\": \"%s\", \"cpus\": %d, "
                       "\"frames_per_scenario\": %ld, \"threads\": %d, \"save_every\": %d, "
                       "\"queue\": %d, \"hold\": %d, \"max_held\": %d, \"prime\": %s, "
                       "\"repeat\": %d, \"command\": ",
                date, bench_cpu_count(), o.frames, o.threads, o.save_every, o.queue, o.hold,
                o.max_held > 0 ? o.max_held : o.queue + o.hold + 2, o.prime ? "true" : "false",
                repeat);
        char cmd[4096];
        bench_command_line(cmd, sizeof cmd, argc, argv);
        bench_json_str(fjson, cmd);
        fprintf(fjson, ",\n  \"clips\": [\n");
    }

    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "mem_per_frame: cannot find its own executable\n");
        return 1;
    }
    self[sl] = 0;
    /* Scenario 2 is its own program, next to this one. */
    char self_cv[4200];
    snprintf(self_cv, sizeof self_cv, "%s_cv", self);
    if (access(self_cv, X_OK) != 0)
        fprintf(stderr, "mem_per_frame: %s is missing: scenario 2 will fail\n", self_cv);
    int all_ok = 1;
    for (int c = 0; c < nclips; c++) {
        row rows[MPF_MAX_SCEN];
        memset(rows, 0, sizeof rows);
        printf("\nmem_per_frame: %s, %ld frames per scenario, %d decoder threads, save every "
               "%d, pipeline queue %d, worker holds %d, 5a max_held %d%s, %d round%s\n",
               clips[c], o.frames, o.threads, o.save_every, o.queue, o.hold,
               o.max_held > 0 ? o.max_held : o.queue + o.hold + 2, o.prime ? " (primed)" : "",
               repeat, repeat > 1 ? "s" : "");
        for (int round = 0; round < repeat; round++) {
            for (int s = 0; s < MPF_MAX_SCEN; s++) {
                row *w = &rows[s];
                w->sc = &mpf_scenarios[s];
                if (only) {
                    char list[256];
                    snprintf(list, sizeof list, ",%s,", only);
                    char key[8];
                    snprintf(key, sizeof key, ",%s,", w->sc->id);
                    if (!strstr(list, key))
                        continue;
                }
                row t;
                memset(&t, 0, sizeof t);
                t.sc = w->sc;
                char res[4200], fr[32], th[32], se[32], lm[32], qu[32], ho[32], mh[32], pr[8];
                snprintf(res, sizeof res, "%s/result-%d-%s-%d.txt", tmp, c, t.sc->id, round);
                snprintf(t.points, sizeof t.points, "%s/rss-%d-%s-%d.dat", tmp, c, t.sc->id,
                         round);
                snprintf(fr, sizeof fr, "%ld", o.frames);
                snprintf(th, sizeof th, "%d", o.threads);
                snprintf(se, sizeof se, "%d", o.save_every);
                snprintf(lm, sizeof lm, "%ld", o.leak_mb);
                snprintf(qu, sizeof qu, "%d", o.queue);
                snprintf(ho, sizeof ho, "%d", o.hold);
                snprintf(mh, sizeof mh, "%d", o.max_held);
                snprintf(pr, sizeof pr, "%d", o.prime);
                char *cargv[] = {strcmp(t.sc->id, "2") ? self : self_cv,
                                 "--scenario", (char *)t.sc->id, "--result", res,
                                 "--points", t.points, "--dir", tmp, "--frames", fr,
                                 "--threads", th, "--save-every", se, "--leak-mb", lm,
                                 "--queue", qu, "--hold", ho, "--max-held", mh, "--prime", pr,
                                 "--clip", (char *)clips[c], NULL};
                unlink(res);
                t.ran = 1;
                int rc = bench_run_wait(cargv);
                if (mpf_parse_result(res, &t) < 0 || rc != 0) {
                    t.ok = 0;
                    if (!t.note[0])
                        snprintf(t.note, sizeof t.note, "the scenario process failed (%d)", rc);
                    all_ok = 0;
                } else {
                    mpf_late_slope(&t);
                }
                int k = w->nrounds;
                if (k < 16) {
                    w->round_fps[k] = t.ok ? t.fps : 0;
                    w->round_verdict[k] = t.ok ? t.verdict : -1;
                }
                if (!w->ran || !t.ok || (w->ok && t.fps > w->fps)) {
                    double rf[16];
                    int rv[16];
                    memcpy(rf, w->round_fps, sizeof rf);
                    memcpy(rv, w->round_verdict, sizeof rv);
                    *w = t;
                    memcpy(w->round_fps, rf, sizeof rf);
                    memcpy(w->round_verdict, rv, sizeof rv);
                }
                w->nrounds = k + 1;
            }
        }
        row *info = NULL;
        for (int s = 0; s < MPF_MAX_SCEN && !info; s++)
            if (rows[s].ran && rows[s].ok)
                info = &rows[s];
        printf("\nclip %s", clips[c]);
        if (info) {
            char fb[32];
            printf(": %dx%d %s, BGR frame %s, %d decoder threads", info->width, info->height,
                   info->codec, fp_diag_format_size(fb, sizeof fb, (double)info->frame_bytes, 0),
                   info->threads);
        }
        printf("\n\n");
        if (info && info->clip_frames > 0 && 2 * info->clip_frames + 30 > o.frames / 2)
            printf("note: %ld frames is less than four passes through this %ld-frame clip: the "
                   "warm-up (capped at half the run)\n      may not cover the decoder's "
                   "first-pass growth; --frames %ld or more judges it fully\n\n",
                   o.frames, info->clip_frames, 4 * info->clip_frames + 60);
        mpf_print_table(stdout, rows, MPF_MAX_SCEN);
        goal g[8];
        int ng = mpf_eval_goals(rows, MPF_MAX_SCEN, g);
        printf("\ngoals (same run):\n");
        for (int i = 0; i < ng; i++)
            printf("  [%s] %s: %s\n", g[i].met == 1 ? "met" : g[i].met == 0 ? "NOT MET" : "n/a",
                   g[i].name, g[i].detail);
        printf("\nnotes:\n");
        for (int s = 0; s < MPF_MAX_SCEN; s++) {
            row *w = &rows[s];
            if (!w->ran)
                continue;
            char b[32];
            char judged[64] = "";
            if (w->judged_from > w->warmup)
                snprintf(judged, sizeof judged, " (settled late: judged from frame %" PRIu64 ")",
                         w->judged_from);
            printf("  %-22s warm-up %" PRIu64 " frames%s%s, slope over the last half %.1f B/f, "
                   "RssAnon at start %s, %d threads in the process%s%s\n",
                   w->sc->label, w->warmup, w->warmup_ended ? "" : " (pools never settled)",
                   judged, w->late_slope, fp_diag_format_size(b, sizeof b, (double)w->base_rss, 0),
                   w->proc_threads, w->note[0] ? "; " : "", w->note);
            if (w->ok && w->verdict == FP_MEMTRACK_FAIL)
                printf("  %-22s FAIL because:%s%s%s (live bytes: slope %.1f B/f, %s since "
                       "warm-up end)\n",
                       "", w->fail_reasons & 1u ? " RssAnon grows" : "",
                       w->fail_reasons & 2u ? " faults" : "",
                       w->fail_reasons & 4u ? " framepool live bytes not flat" : "",
                       w->live_slope, fp_diag_format_size(b, sizeof b, (double)w->live_delta, 1));
            if (w->nrounds > 1) {
                static const char *const vn[] = {"PASS", "FAIL", "INCONCLUSIVE"};
                printf("  %-22s rounds (fps verdict):", "");
                for (int i = 0; i < w->nrounds && i < 16; i++)
                    printf(" %.1f %s", w->round_fps[i],
                           w->round_verdict[i] < 0 ? "ERROR" : vn[w->round_verdict[i] % 3]);
                printf("%s\n", mpf_rounds_differ(w) ? " (* the verdicts differ)" : "");
            }
        }
        char png[4200] = "";
        if (plot) {
            plot_name(png, sizeof png, plot, c);
            if (mpf_make_plot(png, tmp, clips[c], rows, MPF_MAX_SCEN) == 0)
                printf("plot: %s\n", png);
            else {
                fprintf(stderr, "mem_per_frame: gnuplot failed (apt-get install gnuplot-nox)\n");
                png[0] = 0;
            }
        }
        if (fcsv)
            mpf_write_csv_rows(fcsv, clips[c], rows, MPF_MAX_SCEN);
        if (fjson)
            mpf_write_json_clip(fjson, clips[c], rows, MPF_MAX_SCEN, g, ng, png[0] ? png : NULL, c == 0);
    }
    if (fjson) {
        fprintf(fjson, "\n  ]\n}\n");
        fclose(fjson);
    }
    if (fcsv)
        fclose(fcsv);
    if (keep)
        printf("kept %s\n", tmp);
    else
        rm_rf(tmp);
    return all_ok ? 0 : 1;
}
