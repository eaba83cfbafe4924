/*
 * framepool/diag.h — tracemalloc, objgraph, Pympler and a leak checker for
 * framepool objects. (The memory-per-frame verdict, fp_memtrack, measures
 * the process rather than framepool's objects: measure.h.)
 *
 * What is always on (no switch, two relaxed atomic adds per object):
 *   per-type counters (live, live bytes, peak, created), pool idle bytes,
 *   fp_diag_print_summary, fp_growth_check.
 *
 * What the FP_DIAG environment variable (or fp_diag_configure) switches on:
 *   sites       link every new object into a live list so that snapshots,
 *               diffs and leak reports can group objects by creation site;
 *   backtrace   also record a call stack per object (glibc backtrace(),
 *               interned, symbolized only when printed; implies sites;
 *               `backtrace=N` sets the depth, default 16, max 64);
 *   leaks=report  print the leak report to stderr at exit (implies sites);
 *   leaks=error   the same, and make the exit status 1 when leaks were found;
 *   refs        also keep, per object, a history of the sites that took and
 *               dropped its references (implies sites): net per site
 *               (file:line and function, and for a reference taken the
 *               function that called the site's function), with the thread
 *               and frame tick of the last event, at most 12 sites per
 *               object (further sites are counted together). The leak report
 *               then names, under each leaked object, the lines still
 *               holding its references ("+1 at app.c:15 in main, never
 *               released"), and fp_diag_print_refs shows one live object's.
 *               References framepool takes on your behalf (fp_cache_put,
 *               fp_cache_get, fp_weak_get, fp_weakmap_get, fp_reader_next's
 *               rebinding) are recorded at your call. The caller of a site's
 *               function is found (one short unwind, glibc backtrace) for
 *               the first reference taken at that site on each object;
 *               later ones there count with it (an inlined function has no
 *               frame: optimized builds name the nearest caller that was
 *               not inlined). Cost: an allocation of about
 *               1 KiB per object created, about a microsecond for the first
 *               reference per site and object, tens of nanoseconds for the
 *               others (measured: bench/README.md, diag_overhead); nothing when off;
 *   socket      open the channel framepool-stat PID talks to: a UNIX socket
 *               $XDG_RUNTIME_DIR/framepool/PID.sock (or, without a usable
 *               XDG_RUNTIME_DIR, /tmp/framepool-UID/PID.sock), in a 0700
 *               directory of this user, mode 0600, removed at exit; a
 *               thread answers "summary", "growth", "leaks" or "report"
 *               requests from processes of the same user (SO_PEERCRED),
 *               building each reply in memory before writing it, so a slow
 *               reader never holds up the program. Not created unless asked;
 *               once open it stays open until exit;
 *   summary     print fp_diag_print_summary to stderr at exit;
 *   signal      SIGUSR1 prints the summary and the growth since the last
 *               report to stderr, from a dedicated thread (never from the
 *               signal handler itself, which only writes a byte to a pipe
 *               the thread reads); framepool's handler replaces any other
 *               SIGUSR1 handler;
 *   off         nothing (the default).
 * Items are separated by commas, e.g. FP_DIAG=sites,leaks=error,signal.
 * The variable is read once, when the library is loaded. With everything
 * off, creating an object costs one predictable branch more.
 *
 * Sites are printed as the compiler spelled __FILE__; build with
 * -ffile-prefix-map=<source dir>/= to get short relative paths.
 *
 * A typical leak hunt, like tracemalloc's:
 *
 *   fp_snapshot *a = NULL, *b = NULL;
 *   fp_diag_configure("sites");
 *   fp_snapshot_take(&a);
 *   ... run 100 frames ...
 *   fp_snapshot_take(&b);
 *   fp_diag_print_diff(stderr, b, a, FP_DIAG_BY_SITE, 10);
 *   // app.c:57: size=5400 KiB (+2700 KiB), count=2 (+1), average=2700 KiB
 *   //     fp_image (in process_frame)
 *   fp_unref(&a); fp_unref(&b);
 */
#ifndef FRAMEPOOL_DIAG_H
#define FRAMEPOOL_DIAG_H

#include "obj.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- switches ---------------------------------------------------------------- */

enum {
    FP_DIAG_SITES = 1u << 0,        /* track live objects and their creation sites */
    FP_DIAG_BACKTRACE = 1u << 1,    /* also record a backtrace per object */
    FP_DIAG_LEAKS_REPORT = 1u << 2, /* leak report to stderr at exit */
    FP_DIAG_LEAKS_ERROR = 1u << 3,  /* ... and exit status 1 when leaks were found */
    FP_DIAG_SIGNAL = 1u << 4,       /* SIGUSR1 prints summary + growth to stderr */
    FP_DIAG_SUMMARY = 1u << 5,      /* summary to stderr at exit */
    FP_DIAG_REFS = 1u << 6,         /* reference history per object (implies SITES) */
    FP_DIAG_SOCKET = 1u << 7,       /* the socket channel framepool-stat talks to */
};

/* Applies a specification in the FP_DIAG syntax (see above), replacing the
 * current switches (including those FP_DIAG set: to add to them, use
 * fp_diag_set_flags(fp_diag_flags() | ...)). Returns 0, or FP_EINVAL for an unknown item (the message
 * is in fp_errmsg; the known items are still applied). Objects created
 * before tracking was switched on are not in the live list: reports count
 * them as "not tracked". Thread-safe. */
FP_API int fp_diag_configure(const char *spec);

/* Sets the switches directly (FP_DIAG_* bits). Turning SIGNAL on starts the
 * signal thread (once per process); turning SOCKET on opens the channel and
 * starts its thread (once per process; it stays open until exit, so
 * FP_DIAG_SOCKET stays set); turning LEAKS_*, SUMMARY or SOCKET on installs
 * the exit handler (once). REFS implies SITES; objects created while it is
 * on keep their history after it is turned off. Returns 0, FP_EINVAL
 * (unknown bits), FP_ENOMEM (a thread could not start) or FP_EIO (the
 * channel's directory is not a private one of this user, or the socket
 * could not be made; the message says which); the other switches are
 * applied all the same. Thread-safe. */
FP_API int fp_diag_set_flags(unsigned flags);

/* Returns the current switches (FP_DIAG_* bits). */
FP_API unsigned fp_diag_flags(void);

/* Formats `size` bytes the way Python's tracemalloc does: B, KiB, MiB, GiB,
 * TiB; below 100 of a unit other than B with one decimal ("99.9 KiB"), below
 * 10 * 1024 with none ("1536 B", "5400 KiB"), else the next unit up. `sign`
 * prints a leading '+' for non-negative values. Writes at most n bytes into
 * buf (NUL-terminated) and returns buf. Thread-safe, no allocation. */
FP_API char *fp_diag_format_size(char *buf, size_t n, double size, int sign);

/* ---- counters ---------------------------------------------------------------- */

/* Prints a table of every type with live objects or a past peak, sorted by
 * live bytes, like Pympler's summary:
 *
 *   type                  # objects    live size         peak      created
 *   fp_image                      3      5.9 MiB     11.8 MiB          240
 *   ...
 *   pool idle bytes: 8.8 MiB; total: 7 objects, 5.9 MiB live
 *
 * Works with every switch off. Thread-safe; cost O(types). */
FP_API void fp_diag_print_summary(FILE *out);

/* What SIGUSR1 prints: a heading with the frame counter, the summary and the
 * growth since the previous fp_diag_report (process-wide growth state, see
 * fp_growth_check with g == NULL). Thread-safe. */
FP_API void fp_diag_report(FILE *out);

/* ---- growth (objgraph.show_growth) -------------------------------------------- */

typedef struct fp_growth fp_growth;
FP_API extern const fp_type fp_growth_type; /* "fp_growth" */

/* Creates a growth tracker that remembers the highest live count seen per
 * type. Returns 0 with +1 (caller releases) in *out, FP_EINVAL, FP_ENOMEM. */
#define fp_growth_new(out) fp_growth_new_at((out), __FILE__, __LINE__, __func__)
FP_API int fp_growth_new_at(fp_growth **out, const char *file, int line, const char *func);

/* Prints the types whose live count passed the highest count this tracker
 * had seen (the first call prints every type with live objects), sorted by
 * the increase, at most `limit` lines (0 = all), in objgraph's format
 * ("%-*s%9d %+9d": name, count now, increase). A steady loop prints nothing.
 * `g` NULL uses one process-wide tracker (shared with fp_diag_report).
 * `out` NULL updates the peaks without printing. Returns the number of types
 * that grew (>= 0) or FP_ENOMEM. Thread-safe (one lock per tracker);
 * cost O(types). */
FP_API int fp_growth_check(fp_growth *g, FILE *out, size_t limit);

/* ---- snapshots (tracemalloc) ----------------------------------------------------- */

typedef enum fp_diag_by {
    FP_DIAG_BY_SITE = 0,      /* file:line of the constructor call (tracemalloc "lineno") */
    FP_DIAG_BY_TYPE = 1,      /* type name */
    FP_DIAG_BY_TRACEBACK = 2, /* whole recorded call stack (falls back to site) */
} fp_diag_by;

typedef struct fp_snapshot fp_snapshot;
FP_API extern const fp_type fp_snapshot_type; /* "fp_snapshot" */

/* Records every live tracked object (type, site, backtrace, bytes), grouped
 * by (type, site, backtrace), plus the frame counter. Objects of diag's own
 * types (snapshots, diffs, growth trackers, memory trackers) are left out.
 * Needs FP_DIAG_SITES; without it the snapshot is empty and the call
 * returns FP_EINVAL with a message (*out still receives an empty snapshot).
 * Returns 0 with +1 (caller releases) in *out, or FP_ENOMEM. Thread-safe:
 * other threads keep creating and releasing objects meanwhile (each object
 * is seen or not, never half). Cost O(live objects log live objects) and
 * one allocation of about 48 bytes per distinct group. */
#define fp_snapshot_take(out) fp_snapshot_take_at((out), __FILE__, __LINE__, __func__)
FP_API int fp_snapshot_take_at(fp_snapshot **out, const char *file, int line, const char *func);

/* The frame counter (fp_frame_now) when the snapshot was taken. */
FP_API uint64_t fp_snapshot_frame(const fp_snapshot *s);
/* Objects and bytes in the snapshot. */
FP_API void fp_snapshot_totals(const fp_snapshot *s, uint64_t *count, uint64_t *bytes);

/* One line of a comparison: tracemalloc's StatisticDiff. */
typedef struct fp_diag_stat {
    const char *type;       /* type name ("(several types)" when a site made several) */
    const char *file;       /* site (NULL when grouped by type) */
    int line;
    const char *func;
    const void *traceback;  /* opaque recorded call stack, or NULL */
    int64_t size, size_diff;
    int64_t count, count_diff;
} fp_diag_stat;

/* The result of fp_snapshot_compare: a read-only view, valid while held. */
typedef struct fp_diag_diff {
    size_t n;                     /* number of stats */
    const fp_diag_stat *stats;    /* sorted like tracemalloc's compare_to */
    int64_t total_size, total_size_diff;
    int64_t total_count, total_count_diff;
} fp_diag_diff;
FP_API extern const fp_type fp_diag_diff_type; /* "fp_diag_diff" */

/* Compares `newer` with `older` (NULL: an empty snapshot, giving plain
 * statistics) grouped `by`, sorted by (|size_diff|, size, |count_diff|,
 * count, key) descending as tracemalloc's Snapshot.compare_to does; a group
 * only in `older` appears with size 0 and negative differences. Returns 0
 * with +1 (caller releases) in *out, FP_EINVAL, FP_ENOMEM. Snapshots are
 * immutable, so this is thread-safe. Cost O(g log g) for g groups. */
#define fp_snapshot_compare(newer, older, by, out) \
    fp_snapshot_compare_at((newer), (older), (by), (out), __FILE__, __LINE__, __func__)
FP_API int fp_snapshot_compare_at(const fp_snapshot *newer, const fp_snapshot *older,
                                  fp_diag_by by, fp_diag_diff **out, const char *file, int line,
                                  const char *func);

/* Formats one stat as tracemalloc does: as a StatisticDiff
 * ("%s: size=%s (%s), count=%i (%+i), average=%s") when `diff` is non-zero,
 * else as a Statistic ("%s: size=%s, count=%i, average=%s"); the average is
 * left out when count is 0. The key is "file:line" or the type name.
 * Returns buf (NUL-terminated, truncated to n bytes). */
FP_API char *fp_diag_format_stat(char *buf, size_t n, const fp_diag_stat *st, fp_diag_by by,
                                 int diff);

/* Prints the comparison: the first `limit` stats (0 = all), each line in
 * tracemalloc's format followed by an indented line naming the type and
 * function (and, by traceback, the recorded frames), then
 * "N other: size=... (...), count=... (...)" for the rest and a
 * "Total: size=... (...), count=... (...)" line. `older` NULL prints plain
 * statistics (tracemalloc's Snapshot.statistics). Returns the number of
 * stats, or a negative error as fp_snapshot_compare. Thread-safe. */
FP_API int fp_diag_print_diff(FILE *out, const fp_snapshot *newer, const fp_snapshot *older,
                              fp_diag_by by, size_t limit);

/* ---- leaks ------------------------------------------------------------------------- */

/* Marks `obj` as an intentional singleton (lives until exit on purpose):
 * leak reports leave it out. Returns 0, or FP_EINVAL for NULL. Thread-safe.
 * A pooled image loses the mark when it goes back to its pool. */
FP_API int fp_diag_mark_singleton(void *obj);

enum {
    FP_DIAG_REPORT_SINGLETONS = 1u << 0, /* also list singletons */
    FP_DIAG_REPORT_INTERNAL = 1u << 1,   /* also list the library's internal objects */
    FP_DIAG_REPORT_OBJECTS = 1u << 2,    /* list each object (address, refcount, age), up
                                            to 8 per group */
    FP_DIAG_REPORT_BACKTRACES = 1u << 3, /* print each group's recorded call stack */
};

/* Prints the live objects grouped by type and creation site, largest first,
 * with their refcounts and ages in frames:
 *
 *   framepool leak report at frame 9,600: 1 leaked object, 2.6 MiB
 *     fp_image: 1 object, 2.6 MiB, created at app.c:88 (process), refcount 1,
 *       alive for 9,500 frames
 *         +1 at app.c:91 in process, never released [last taken by ...]
 *   pools with buffers still out:
 *     pool 'frames' (released by its owner): 1 of 4 buffers out, 2.6 MiB
 *
 * plus the objects alive but not tracked (created before sites were on).
 * With FP_DIAG=refs each group is followed by the sites still holding its
 * objects' references, summed over the group (see fp_diag_print_refs).
 * Singletons and internal objects are left out unless `flags` asks for them.
 * Returns the number of leaked objects (tracked ones listed plus untracked
 * ones counted), >= 0. Needs FP_DIAG_SITES for the per-site listing.
 * Thread-safe; cost O(live objects log live objects). */
FP_API int fp_diag_leak_report(FILE *out, unsigned flags);

/* Prints the reference history of one live object (FP_DIAG=refs when it
 * was created): its type, refcount and creation site, each site that took
 * or dropped references (net, taken, released, last thread and frame), and
 * the sites still holding its references, e.g.
 *
 *   thing 0x5581...: refcount 2, 64 B, created at app.c:14 (main) at frame 0
 *     references by site (taken - released):
 *       +1 at app.c:14 in main (its creation): taken 1, released 0, ...
 *       +1 at app.c:15 in main: taken 1, released 0, ...
 *       -1 at app.c:20 in main: taken 0, released 1, ...
 *     still held by:
 *       +1 at app.c:15 in main, never released [last taken by thread ...]
 *
 * The C answer to Python's gc.get_referrers. Which release cancels which
 * take is inferred: a release cancels takes at its own line, then takes in
 * its own function, then the oldest takes. `obj` must be a live object you
 * hold. Returns the number of references attributed to holder sites (>= 0),
 * FP_ENOENT when the object has no history (printed as such), FP_EINVAL.
 * Thread-safe. */
FP_API int fp_diag_print_refs(FILE *out, const void *obj);

#ifdef __cplusplus
}
#endif
#endif
