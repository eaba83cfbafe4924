/* The reader fuzz harness, shared by the libFuzzer target and the
 * regression test. */
#ifndef FP_FUZZ_READER_BODY_H
#define FP_FUZZ_READER_BODY_H

#include <stddef.h>
#include <stdint.h>

/* Largest single allocation framepool and FFmpeg may make during a run:
 * frames up to about 4096x4096 decode, larger ones fail with FP_ENOMEM. */
#define FPFZ_MAX_ALLOC ((size_t)64 << 20)
/* Frames pulled per pass (and again after the seek), and pixels per pass. */
#define FPFZ_MAX_FRAMES 24
#define FPFZ_MAX_PIXELS (8LL << 20)

/* Installs the bounded allocator, av_max_alloc and silences FFmpeg's log
 * (once; fpfz_run_one calls it). */
void fpfz_init(void);

/* Runs one input through the reader (native pass with seek, BGR24 pass).
 * Returns 0, or -1 when an invariant broke (after fpfz_violation()). */
int fpfz_run_one(const uint8_t *data, size_t size);

/* Allocations made through framepool's allocator hook and not yet freed. */
long long fpfz_live_allocations(void);

/* Called when an invariant breaks: the fuzzer aborts (a crash to keep), the
 * regression test records a failure. Defined by each user of the body. */
void fpfz_violation(void);

#endif
