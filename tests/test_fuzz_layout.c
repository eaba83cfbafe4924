/* The layout fuzz harness (tests/fuzz/fuzz_layout_body.c) over 20,000
 * deterministic pseudo-random inputs in every build: each invariant the
 * libFuzzer target checks, without libFuzzer. */
#include "testutil.h"

#include "fuzz/fuzz_layout_body.h"
#include <framepool.h>
#include <stdlib.h>

static int violations;

void fplz_violation(void)
{
    violations++;
}

#if UNDER_SANITIZER
#define INPUTS 5000
#else
#define INPUTS 20000
#endif

START_TEST(test_random_layouts_and_configs_keep_every_invariant)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t buf[256];
    for (int i = 0; i < INPUTS; i++) {
        size_t n = 1 + (size_t)(i % (int)sizeof buf);
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[k] = (uint8_t)x;
        }
        ck_assert_msg(fplz_run_one(buf, n) == 0, "input %d (%zu bytes) broke an invariant", i,
                      n);
    }
    ck_assert_int_eq(violations, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fuzz_layout");
    TCase *tc = tcase_create("fuzz_layout");
    tcase_add_test(tc, test_random_layouts_and_configs_keep_every_invariant);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
