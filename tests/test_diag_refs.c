/* Reference history (FP_DIAG=refs): the leak report and fp_diag_print_refs
 * name the line that kept a reference, not just the line that created the
 * object. Each case asserts the exact file:line printed. */
#define _GNU_SOURCE
#include "testutil.h"

#include "internal.h"
#include <framepool.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC "tests/test_diag_refs.c"

static const fp_type thing_type = {"refs_thing", NULL};

static void refs_on(void)
{
    ck_assert_int_eq(fp_diag_configure("refs"), FP_OK);
    ck_assert(fp_diag_flags() & FP_DIAG_SITES); /* refs implies sites */
}

/* The leak report, as text (kept in a static buffer for the assertions). */
static char report[65536];
static const char *leak_report(void)
{
    memout m;
    mo_open(&m);
    fp_diag_leak_report(m.f, 0);
    snprintf(report, sizeof report, "%s", mo_text(&m));
    mo_close(&m);
    return report;
}

static char refs_text[16384];
static const char *print_refs(const void *obj, int *rc)
{
    memout m;
    mo_open(&m);
    *rc = fp_diag_print_refs(m.f, obj);
    snprintf(refs_text, sizeof refs_text, "%s", mo_text(&m));
    mo_close(&m);
    return refs_text;
}

static int has_holder(const char *text, int line, const char *func)
{
    char want[256];
    snprintf(want, sizeof want, "+1 at " SRC ":%d in %s", line, func);
    for (const char *p = strstr(text, want); p; p = strstr(p + 1, want)) {
        const char *nl = strchr(p, '\n');
        const char *nr = strstr(p, "never released");
        if (nr && (!nl || nr < nl))
            return 1;
    }
    return 0;
}

/* ---- an extra fp_ref kept ---------------------------------------------------------- */

static void *kept;

START_TEST(extra_ref_kept_names_its_line)
{
    refs_on();
    int created = __LINE__ + 1;
    void *t = fp_new(&thing_type, 32);
    int held = __LINE__ + 1;
    kept = fp_ref(t); /* the culprit */
    fp_unref(&t);     /* the owner lets go: its reference was the creation's */
    const char *r = leak_report();
    char site[128];
    snprintf(site, sizeof site, "created at " SRC ":%d", created);
    ck_assert_msg(strstr(r, site) != NULL, "%s", r);
    ck_assert_msg(has_holder(r, held, __func__), "%s", r);
    /* The creation's reference was released: it is not named as a holder. */
    char creation[128];
    snprintf(creation, sizeof creation, "+1 at " SRC ":%d", created);
    ck_assert_msg(strstr(r, creation) == NULL, "%s", r);

    int rc;
    const char *p = print_refs(kept, &rc);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(p, "refcount 1") != NULL, "%s", p);
    ck_assert_msg(strstr(p, "still held by:") != NULL, "%s", p);
    ck_assert_msg(has_holder(strstr(p, "still held by:"), held, __func__),
                  "%s", p);
    fp_unref(&kept);
    r = leak_report();
    ck_assert_msg(strstr(r, "no leaked objects") != NULL, "%s", r);
}
END_TEST

/* ---- a registry that refs in a helper --------------------------------------------------- */

typedef struct registry {
    void *items[64];
    int n;
} registry;

static int helper_line;
/* Not static, so that the caller's name resolves (the test links with
 * exported symbols, -rdynamic). */
/* Not inlined nor cloned: an inlined function has no frame of its own, and
 * a clone (track_detections.constprop.0) is a local symbol, so in optimized
 * builds the caller named would be another frame or an address. */
#if defined(__clang__)
#define EXPORTED __attribute__((visibility("default"), noinline))
#else
#define EXPORTED __attribute__((visibility("default"), noipa))
#endif
EXPORTED void registry_add(registry *reg, void *obj);
EXPORTED void track_detections(registry *reg, int n);
EXPORTED void track_balanced(registry *reg);

void registry_add(registry *reg, void *obj)
{
    helper_line = __LINE__ + 1;
    reg->items[reg->n++] = fp_ref(obj);
}

void track_detections(registry *reg, int n)
{
    for (int i = 0; i < n; i++) {
        void *d = fp_new(&thing_type, 16);
        registry_add(reg, d);
        fp_unref(&d);
    }
}

/* The same helper from a caller that cleans up after itself. */
void track_balanced(registry *reg)
{
    void *d = fp_new(&thing_type, 16);
    registry_add(reg, d);
    fp_unref(&reg->items[--reg->n]);
    fp_unref(&d);
}

START_TEST(registry_helper_names_helper_and_caller)
{
    refs_on();
    registry reg = {0};
    track_balanced(&reg);
    track_detections(&reg, 3);
    const char *r = leak_report();
    char want[256];
    snprintf(want, sizeof want, "+3 at " SRC ":%d in registry_add, called from track_detections",
             helper_line);
    ck_assert_msg(strstr(r, want) != NULL, "%s", r);
    ck_assert_msg(strstr(r, "never released (3 objects)") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "track_balanced") == NULL, "%s", r);
    int rc;
    const char *p = print_refs(reg.items[0], &rc);
    ck_assert_int_eq(rc, 1);
    snprintf(want, sizeof want, "+1 at " SRC ":%d in registry_add, called from track_detections",
             helper_line);
    ck_assert_msg(strstr(strstr(p, "still held by:"), want) != NULL, "%s", p);
    for (int i = 0; i < reg.n; i++)
        fp_unref(&reg.items[i]);
}
END_TEST

/* ---- a cache entry pinned by a forgotten reference ---------------------------------------- */

START_TEST(cache_entry_pinned_names_the_get)
{
    refs_on();
    fp_cache_config cfg = {.name = "thumbs", .max_entries = 4};
    fp_cache *c = NULL;
    ck_assert_int_eq(fp_cache_new(&cfg, &c), FP_OK);
    void *t = fp_new(&thing_type, 64);
    int put_line = __LINE__ + 1;
    ck_assert_int_eq(fp_cache_put(c, 7, t, 0), FP_OK);
    fp_unref(&t);
    void *peek = fp_cache_get(c, 7); /* used and released: balanced */
    fp_unref(&peek);
    int got_line = __LINE__ + 1;
    void *forgotten = fp_cache_get(c, 7);
    ck_assert_ptr_nonnull(forgotten);
    /* While the cache lives, its own reference is the put's. */
    int rc;
    const char *p = print_refs(forgotten, &rc);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(has_holder(strstr(p, "still held by:"), put_line,
                             __func__),
                  "%s", p);
    ck_assert_msg(has_holder(strstr(p, "still held by:"), got_line,
                             __func__),
                  "%s", p);
    /* The cache goes: what pins the object is the forgotten get. */
    fp_unref(&c);
    const char *r = leak_report();
    ck_assert_msg(has_holder(r, got_line, __func__), "%s", r);
    char put[128];
    snprintf(put, sizeof put, "+1 at " SRC ":%d", put_line);
    ck_assert_msg(strstr(r, put) == NULL, "%s", r);
    fp_unref(&forgotten);
}
END_TEST

/* ---- a reference cycle between three objects ----------------------------------------------- */

typedef struct node {
    struct node *next;
} node;

static void node_fin(void *o)
{
    fp_unref(&((node *)o)->next);
}
static const fp_type node_type = {"cycle_node", node_fin};

START_TEST(cycle_of_three_names_all_three_sites)
{
    refs_on();
    node *a = fp_new(&node_type, sizeof *a);
    node *b = fp_new(&node_type, sizeof *b);
    node *c = fp_new(&node_type, sizeof *c);
    int la = __LINE__ + 1;
    a->next = fp_ref(b);
    int lb = __LINE__ + 1;
    b->next = fp_ref(c);
    int lc = __LINE__ + 1;
    c->next = fp_ref(a);
    node *keep_a = a;
    fp_unref(&a);
    fp_unref(&b);
    fp_unref(&c);
    const char *r = leak_report();
    ck_assert_msg(strstr(r, "3 leaked objects") != NULL, "%s", r);
    ck_assert_msg(has_holder(r, la, __func__), "%s", r);
    ck_assert_msg(has_holder(r, lb, __func__), "%s", r);
    ck_assert_msg(has_holder(r, lc, __func__), "%s", r);
    /* Breaking the cycle frees all three. */
    fp_unref(&keep_a->next);
    r = leak_report();
    ck_assert_msg(strstr(r, "no leaked objects") != NULL, "%s", r);
}
END_TEST

/* ---- references taken on the caller's behalf: weak upgrade, weak map ------------------------- */

START_TEST(weak_upgrade_and_weakmap_get_are_the_callers)
{
    refs_on();
    void *t = fp_new(&thing_type, 8);
    fp_weak w = fp_weak_of(t);
    void *tmp = fp_weak_get(w);
    fp_unref(&tmp);
    int wl = __LINE__ + 1;
    void *up = fp_weak_get(w);
    ck_assert_ptr_eq(up, t);

    fp_unref(&t);
    int rc;
    const char *p = print_refs(up, &rc);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(has_holder(p, wl, __func__), "%s", p);

    /* value_ref = fp_ref, called by the map through its pointer: the
     * reference is recorded at the fp_weakmap_get line. */
    void *key = fp_new(&thing_type, 8);
    void *v = fp_new(&thing_type, 8);
    fp_weakmap_config cfg = {.mode = FP_WEAKMAP_WEAK_KEYS, .value_free = fp_decref,
                             .value_ref = fp_ref};
    fp_weakmap *m = NULL;
    ck_assert_int_eq(fp_weakmap_new(&cfg, &m), FP_OK);
    ck_assert_int_eq(fp_weakmap_put(m, key, v), FP_OK); /* the map owns v's reference */
    void *got = NULL;
    int ml = __LINE__ + 1;
    ck_assert_int_eq(fp_weakmap_get(m, key, &got), FP_OK);
    fp_unref(&m);
    fp_unref(&key);
    p = print_refs(got, &rc);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(has_holder(p, ml, __func__), "%s", p);
    fp_unref(&got);
    fp_unref(&up);
}
END_TEST

/* ---- without refs ---------------------------------------------------------------------------- */

START_TEST(without_refs_there_is_no_history)
{
    ck_assert_int_eq(fp_diag_configure("sites"), FP_OK);
    void *t = fp_new(&thing_type, 8);
    void *k = fp_ref(t);
    int rc;
    const char *p = print_refs(t, &rc);
    ck_assert_int_eq(rc, FP_ENOENT);
    ck_assert_msg(strstr(p, "no reference history") != NULL, "%s", p);
    ck_assert_msg(strstr(leak_report(), "never released") == NULL, "%s", report);
    fp_unref(&k);
    fp_unref(&t);
    ck_assert_int_eq(fp_diag_print_refs(NULL, t), FP_EINVAL);
    ck_assert_int_eq(fp_diag_configure("sites,refs,bogus"), FP_EINVAL);
    ck_assert(fp_diag_flags() & FP_DIAG_REFS); /* the known items still apply */
}
END_TEST

/* ---- the history is bounded; many sites still add up ------------------------------------------ */

START_TEST(history_is_bounded)
{
    refs_on();
    void *t = fp_new(&thing_type, 8);
    void *held[20];
    /* 20 distinct sites by macro expansion on distinct lines. */
#define TAKE(i) held[i] = fp_ref(t)
    TAKE(0);
    TAKE(1);
    TAKE(2);
    TAKE(3);
    TAKE(4);
    TAKE(5);
    TAKE(6);
    TAKE(7);
    TAKE(8);
    TAKE(9);
    TAKE(10);
    TAKE(11);
    TAKE(12);
    TAKE(13);
    TAKE(14);
    TAKE(15);
    TAKE(16);
    TAKE(17);
    TAKE(18);
    TAKE(19);
#undef TAKE
    int rc;
    const char *p = print_refs(t, &rc);
    ck_assert_msg(strstr(p, "events beyond the 12 sites kept") != NULL, "%s", p);
    ck_assert_int_eq(rc, 12); /* creation + 11 sites kept, 9 beyond */
    const char *r = leak_report();
    ck_assert_msg(strstr(r, "+9 taken at sites beyond the history's bound") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "and 4 more sites") != NULL, "%s", r);
    for (int i = 0; i < 20; i++)
        fp_unref(&held[i]);
    fp_unref(&t);
}
END_TEST

/* ---- threads: balanced references from several threads leave no holder ------------------------ */

static void *shared_obj;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < (UNDER_SANITIZER ? 2000 : 20000); i++) {
        void *r = fp_ref(shared_obj);
        fp_unref(&r);
    }
    return NULL;
}

START_TEST(threads_balanced_refs_leave_only_the_owner)
{
    refs_on();
    int created = __LINE__ + 1;
    shared_obj = fp_new(&thing_type, 8);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int rc;
    const char *p = print_refs(shared_obj, &rc);
    ck_assert_int_eq(rc, 1);
    char want[128];
    snprintf(want, sizeof want, "+1 at " SRC ":%d in %s (its creation), never released", created,
             __func__);
    ck_assert_msg(strstr(p, want) != NULL, "%s", p);
    fp_unref(&shared_obj);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("diag_refs");
    TCase *tc = tcase_create("refs");
    tcase_add_test(tc, extra_ref_kept_names_its_line);
    tcase_add_test(tc, registry_helper_names_helper_and_caller);
    tcase_add_test(tc, cache_entry_pinned_names_the_get);
    tcase_add_test(tc, cycle_of_three_names_all_three_sites);
    tcase_add_test(tc, weak_upgrade_and_weakmap_get_are_the_callers);
    tcase_add_test(tc, without_refs_there_is_no_history);
    tcase_add_test(tc, history_is_bounded);
    tcase_add_test(tc, threads_balanced_refs_leave_only_the_owner);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
