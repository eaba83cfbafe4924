/* The layout fuzz harness (fuzz_layout_body.c), shared by the libFuzzer
 * target and test_fuzz_layout. */
#ifndef FP_FUZZ_LAYOUT_BODY_H
#define FP_FUZZ_LAYOUT_BODY_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input: layouts, wraps and pool configs decoded from the bytes.
 * Returns 0, or -1 when an invariant broke (after fplz_violation()). */
int fplz_run_one(const uint8_t *data, size_t size);

/* Called when an invariant breaks: the fuzzer aborts, the test counts a
 * failure. Defined by each user of the body. */
void fplz_violation(void);

#endif
