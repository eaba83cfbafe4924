/*
 * leak_hunt — find a leak the way tracemalloc finds one in Python.
 *
 * The loop below copies every 10th frame for a "debug overlay" and keeps a
 * reference to each copy in a history it never clears: a planted leak.
 * Snapshots of the live framepool objects, taken after warm-up and at the
 * end, are compared by creation site; the diff's first line names the file
 * and line where the leaking copies are made, with how much they hold and
 * how many there are. The reference history (FP_DIAG=refs) then names the
 * line that keeps them: the holder, not just the maker.
 *
 * Usage: leak_hunt INPUT [--frames N]      (default 300 frames)
 */
#include <framepool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEPT 1024

int main(int argc, char **argv)
{
    const char *input = NULL;
    long max_frames = 300;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--frames") && i + 1 < argc)
            max_frames = atol(argv[++i]);
        else if (argv[i][0] == '-' || input)
            input = NULL, i = argc;
        else
            input = argv[i];
    }
    if (!input || max_frames < 40) {
        fprintf(stderr, "usage: leak_hunt INPUT [--frames N (>= 40)]\n");
        return 2;
    }
    fp_diag_configure("sites,refs"); /* or run with FP_DIAG=sites,refs */

    fp_reader_options opts = {.format = FP_PIX_BGR24, .width = 320};
    fp_reader *r = NULL;
    if (fp_reader_open(input, &opts, &r) < 0) {
        fprintf(stderr, "leak_hunt: %s\n", fp_reader_errmsg(r));
        fp_reader_close(&r);
        return 1;
    }
    static fp_image *overlay_history[MAX_KEPT];
    size_t kept = 0;
    fp_snapshot *warm = NULL, *end = NULL;
    fp_image *img = NULL;
    long frames = 0;
    int copy_line = 0, keep_line = 0;
    while (frames < max_frames) {
        int rc = fp_reader_next(r, &img);
        if (rc == 0 && frames > 0 && fp_reader_seek(r, 0, FP_SEEK_KEY) == 0)
            continue; /* loop a short clip */
        if (rc <= 0)
            break;
        if (frames == 20)
            fp_snapshot_take(&warm);
        if (frames % 10 == 0 && kept < MAX_KEPT) {
            fp_image *copy = NULL;
            copy_line = __LINE__ + 1;
            if (fp_image_copy(img, NULL, 0, &copy) == FP_OK) {
                keep_line = __LINE__ + 1;
                overlay_history[kept++] = fp_ref(copy); /* the planted leak: never released */
                fp_unref(&copy);                        /* the overlay is done with it */
            }
        }
        frames++;
    }
    fp_unref(&img);
    fp_snapshot_take(&end);
    printf("leak_hunt: %ld frames; planted leak: copies made at %s:%d, kept at %s:%d\n", frames,
           __FILE__, copy_line, __FILE__, keep_line);
    printf("top 5 sites by growth since frame 20:\n");
    fp_diag_print_diff(stdout, end, warm, FP_DIAG_BY_SITE, 5);
    if (kept) {
        printf("who holds the last copy (the C gc.get_referrers):\n");
        fp_diag_print_refs(stdout, overlay_history[kept - 1]);
    }
    fp_unref(&warm);
    fp_unref(&end);
    for (size_t i = 0; i < kept; i++) /* the fix: release what you keep */
        fp_unref(&overlay_history[i]);
    fp_reader_close(&r);
    return 0;
}
