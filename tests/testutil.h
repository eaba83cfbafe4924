/* Helpers shared by the unit tests. */
#ifndef FP_TESTUTIL_H
#define FP_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Sanitizers slow threads down 5-20x: the threaded cases scale down. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* An in-memory FILE for checking printed output. */
typedef struct memout {
    FILE *f;
    char *buf;
    size_t len;
} memout;
void mo_open(memout *m);
const char *mo_text(memout *m); /* flushes; the text so far ("" if none) */
void mo_close(memout *m);

/* A counting allocator installed with fp_set_allocator: it records live
 * allocations and bytes and can fail the Nth allocation (1-based). */
void tu_alloc_install(void);
void tu_alloc_uninstall(void);
void tu_alloc_fail_at(uint64_t n);     /* 0 = never fail */
uint64_t tu_alloc_count(void);         /* allocations attempted since install */
int64_t tu_alloc_live(void);           /* allocations not yet freed */
int64_t tu_alloc_live_bytes(void);
/* Stops failing allocations, then asserts that no framepool allocation is
 * live and that the leak report (internal objects included) finds nothing;
 * on failure prints the report to stderr. `what` and `n` name the step in
 * the failure message (e.g. "failing allocation", 17). */
void tu_alloc_assert_clean(const char *what, unsigned long long n);

/* Runs a suite with check's runner; returns the process exit status. */
int tu_run(Suite *s);

/* Adds a test case named `name` to `s` and returns it (owned by the suite):
 * `setup` (may be NULL) as its unchecked fixture, run once in the runner's
 * process before the case's tests, and a time bound of `timeout_s` seconds
 * per test. A long loop goes into a case of its own with a longer bound. */
TCase *tu_tcase(Suite *s, const char *name, void (*setup)(void), double timeout_s);

/* Current time in seconds (monotonic). */
double tu_now(void);

/* How much longer than on an idle machine a time bound of a test should be:
 * 3 under sanitizers (they slow decoding and threads down), times the load
 * per CPU (at most 3) when the machine is busier than its CPU count (read once per
 * process, so a bound and the setting it checks scale alike). A bound
 * scaled by it catches a wait that never ends, not a busy machine. */
double tu_slack(void);

/* Runs a shell command made with printf-style `fmt` (through popen), its
 * stdout and stderr captured into tu_out (NUL-terminated; the rest of a
 * longer output is cut). Returns its exit status, or -1 when it did not exit
 * normally (a signal). */
#define TU_OUT_SIZE (1 << 16)
extern char tu_out[TU_OUT_SIZE];
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The pool of `img`, for comparisons: fp_image_get_pool's reference is
 * dropped at once, so the result is valid only while someone else holds the
 * pool. NULL when fp_image_get_pool gives NULL. */
struct fp_pool;
struct fp_image;
struct fp_pool *tu_pool_of(const struct fp_image *img);

#endif
