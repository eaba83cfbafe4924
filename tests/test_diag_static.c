/* FP_DIAG with libframepool.a: a statically linked program that never calls
 * an fp_diag_* function (tests/diag_static_leaker.c) still reads FP_DIAG. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define LEAKER FP_BINARY_DIR "/tests/diag_static_leaker"
/* The sanitizers' own leak check must not decide the status. */
#define NO_LSAN "ASAN_OPTIONS=detect_leaks=0 "

START_TEST(test_static_link_reads_fp_diag_leaks_error)
{
    int rc = tu_sh(NO_LSAN "FP_DIAG=leaks=error %s", LEAKER);
    ck_assert_msg(rc == 1, "FP_DIAG=leaks=error: exit %d, want 1; output:\n%s", rc, tu_out);
    ck_assert_msg(strstr(tu_out, "leaking one image"), "output:\n%s", tu_out);
    ck_assert_msg(strstr(tu_out, "fp_image"), "no leak report naming fp_image:\n%s", tu_out);
    ck_assert_msg(strstr(tu_out, "diag_static_leaker.c"), "no creation site:\n%s", tu_out);
    ck_assert_msg(strstr(tu_out, "exiting with status 1"), "output:\n%s", tu_out);
}
END_TEST

START_TEST(test_static_link_without_fp_diag_exits_zero)
{
    int rc = tu_sh(NO_LSAN "FP_DIAG= %s", LEAKER);
    ck_assert_msg(rc == 0, "no FP_DIAG: exit %d; output:\n%s", rc, tu_out);
    ck_assert_msg(!strstr(tu_out, "fp_image"), "unexpected report:\n%s", tu_out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("diag_static");
    TCase *tc = tcase_create("diag_static");
    tcase_add_test(tc, test_static_link_reads_fp_diag_leaks_error);
    tcase_add_test(tc, test_static_link_without_fp_diag_exits_zero);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
