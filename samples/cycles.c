/*
 * cycles — three objects that reference each other.
 *
 * A camera owns a tracker, the tracker owns a recorder, and the recorder
 * points back at the camera. With three strong references the cycle keeps
 * all three alive after the program drops its own: reference counting alone
 * cannot free a cycle, and the leak report lists the three with the lines
 * that created them and, under each, the line whose reference keeps it
 * (the reference history, FP_DIAG=refs). With a weak back-reference the
 * cycle is broken and all three die.
 *
 * Usage: cycles            (refs are switched on by the program itself)
 */
#include <framepool.h>
#include <stdio.h>

typedef struct node {
    const char *role;
    struct node *next;   /* strong: owns the next object */
    fp_weak back;        /* weak: refers without owning (second variant) */
} node;

static int freed;

static void node_finalize(void *obj)
{
    node *n = obj;
    fp_unref(&n->next);
}

static void on_free(void *user)
{
    printf("  %s freed\n", (const char *)user);
    freed++;
}

static const fp_type camera_type = {"camera", node_finalize};
static const fp_type tracker_type = {"tracker", node_finalize};
static const fp_type recorder_type = {"recorder", node_finalize};

static long live_of(const fp_type *t)
{
    fp_type_stats st;
    fp_type_get_stats(t, &st);
    return (long)st.live;
}

static long live_nodes(void)
{
    return live_of(&camera_type) + live_of(&tracker_type) + live_of(&recorder_type);
}

/* Builds camera -> tracker -> recorder, and recorder -> camera either strong
 * or weak. Returns 0 when all three were created. */
static int build(int weak_back)
{
    node *cam = fp_new(&camera_type, sizeof(node));
    node *trk = fp_new(&tracker_type, sizeof(node));
    node *rec = fp_new(&recorder_type, sizeof(node));
    if (!cam || !trk || !rec)
        return 1;
    cam->role = "camera";
    trk->role = "tracker";
    rec->role = "recorder";
    fp_on_free(cam, on_free, "camera");
    fp_on_free(trk, on_free, "tracker");
    fp_on_free(rec, on_free, "recorder");
    cam->next = fp_ref(trk);
    trk->next = fp_ref(rec);
    if (weak_back)
        rec->back = fp_weak_of(cam); /* does not keep the camera alive */
    else
        rec->next = fp_ref(cam);     /* closes a strong cycle */
    /* The program is done with all three. */
    fp_unref(&cam);
    fp_unref(&trk);
    fp_unref(&rec);
    return 0;
}

int main(void)
{
    fp_diag_configure("refs"); /* sites, and who holds each reference */

    printf("== strong back-reference: camera -> tracker -> recorder -> camera\n");
    freed = 0;
    if (build(0))
        return 1;
    printf("after dropping every reference: %ld objects alive, %d freed\n", live_nodes(), freed);
    printf("leak report:\n");
    fp_diag_leak_report(stdout, 0);

    printf("\n== weak back-reference: camera -> tracker -> recorder ~> camera\n");
    long before = live_nodes();
    freed = 0;
    if (build(1))
        return 1;
    printf("after dropping every reference: %ld objects alive, %d freed\n",
           live_nodes() - before, freed);
    return 0;
}
