/*
 * weak_registry — the classic "class-level registry" leak, and its fix.
 *
 * A tracker registers every detection it creates so that other parts of the
 * program can look them up. With strong references the registry keeps every
 * detection alive forever: memory grows by one object per frame. With a
 * weak-keyed map an entry vanishes as soon as its detection dies, so the map
 * holds only what is still in use. The growth report (objgraph's
 * show_growth) shows one type growing and the other flat, and the
 * reference history (FP_DIAG=refs) names the line that keeps the detections
 * alive: the registry's fp_ref.
 *
 * Usage: weak_registry [FRAMES]      (default 1000)
 */
#include <framepool.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct detection {
    int64_t frame;
    float x, y, w, h;
} detection;

/* Two types so that the growth report tells the two registries apart. */
static const fp_type strong_det_type = {"detection (strong registry)", NULL};
static const fp_type weak_det_type = {"detection (weak registry)", NULL};

/* Phase 1: a registry that owns a reference to every detection. */
typedef struct strong_registry {
    detection **items;
    size_t n, cap;
} strong_registry;

static int strong_register(strong_registry *r, detection *d)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        detection **items = realloc(r->items, cap * sizeof *items);
        if (!items)
            return FP_ENOMEM;
        r->items = items;
        r->cap = cap;
    }
    r->items[r->n++] = fp_ref(d); /* the registry keeps it alive */
    return FP_OK;
}

static detection *detect(const fp_type *type, int64_t frame)
{
    detection *d = fp_new(type, sizeof *d);
    if (d) {
        d->frame = frame;
        d->x = (float)(frame % 100);
        d->w = d->h = 32;
    }
    return d;
}

int main(int argc, char **argv)
{
    long frames = argc > 1 ? atol(argv[1]) : 1000;
    if (frames <= 0) {
        fprintf(stderr, "usage: weak_registry [FRAMES]\n");
        return 2;
    }
    fp_diag_configure("refs"); /* or run with FP_DIAG=refs */
    fp_growth *growth = NULL;
    if (fp_growth_new(&growth) != FP_OK)
        return 1;
    fp_growth_check(growth, NULL, 0); /* baseline */

    printf("== strong registry: registry.append(self)\n");
    strong_registry reg = {0};
    for (long f = 0; f < frames; f++) {
        detection *d = detect(&strong_det_type, f);
        if (!d || strong_register(&reg, d) != FP_OK)
            return 1;
        fp_unref(&d); /* the frame is done with it... but the registry is not */
        if ((f + 1) % (frames / 4 > 0 ? frames / 4 : 1) == 0) {
            printf("frame %ld: registry holds %zu detections; growth:\n", f + 1, reg.n);
            fp_growth_check(growth, stdout, 10);
        }
    }
    fp_type_stats st;
    fp_type_get_stats(&strong_det_type, &st);
    printf("strong registry: %zu entries, %llu detections alive, %llu bytes\n", reg.n,
           (unsigned long long)st.live, (unsigned long long)st.live_bytes);
    if (reg.n) {
        printf("who keeps the first detection alive:\n");
        fp_diag_print_refs(stdout, reg.items[0]);
    }
    for (size_t i = 0; i < reg.n; i++)
        fp_unref(&reg.items[i]);
    free(reg.items);

    printf("\n== weak registry: weakref.WeakKeyDictionary\n");
    fp_weakmap_config cfg = {.mode = FP_WEAKMAP_WEAK_KEYS};
    fp_weakmap *wreg = NULL;
    if (fp_weakmap_new(&cfg, &wreg) != FP_OK)
        return 1;
    fp_growth_check(growth, NULL, 0);
    size_t max_len = 0;
    detection *current = NULL; /* the frame's live detection, as in a real loop */
    for (long f = 0; f < frames; f++) {
        detection *d = detect(&weak_det_type, f);
        if (!d || fp_weakmap_put(wreg, d, NULL) != FP_OK)
            return 1;
        fp_unref(&current); /* the previous one dies here: its entry leaves the map */
        current = d;
        size_t len = fp_weakmap_len(wreg);
        if (len > max_len)
            max_len = len;
        if ((f + 1) % (frames / 4 > 0 ? frames / 4 : 1) == 0) {
            printf("frame %ld: registry holds %zu detections; growth:\n", f + 1,
                   fp_weakmap_len(wreg));
            if (fp_growth_check(growth, stdout, 10) == 0)
                printf("    (nothing grew)\n");
        }
    }
    fp_type_get_stats(&weak_det_type, &st);
    printf("weak registry: %zu entries (at most %zu at once), %llu detections alive\n",
           fp_weakmap_len(wreg), max_len, (unsigned long long)st.live);
    fp_unref(&current);
    printf("after the last frame: %zu entries\n", fp_weakmap_len(wreg));
    fp_unref(&wreg);
    fp_unref(&growth);
    return 0;
}
