/*
 * Replays the fuzz regression inputs (tests/fuzz/regressions/: inputs that
 * once crashed or broke an invariant, plus hand-made edge cases) through the
 * same harness as the libFuzzer target, in every build (plain, ASan+UBSan,
 * valgrind). Each must run to the end with every invariant intact and
 * nothing left allocated.
 */
#define _POSIX_C_SOURCE 200809L
#include "fuzz/fuzz_reader_body.h"
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int violations;

void fpfz_violation(void)
{
    violations++;
}

#define REGRESS_DIR FP_SOURCE_DIR "/tests/fuzz/regressions"

static int list_inputs(char names[][256], int max)
{
    DIR *d = opendir(REGRESS_DIR);
    ck_assert_msg(d != NULL, "cannot open %s", REGRESS_DIR);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README"))
            continue;
        snprintf(names[n++], 256, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

START_TEST(replay_all)
{
    static char names[512][256];
    int n = list_inputs(names, 512);
    ck_assert_int_ge(n, 1); /* the folder holds at least the hand-made cases */
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", REGRESS_DIR, names[i]);
        FILE *f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        static uint8_t buf[1 << 16];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        ck_assert_msg(len < sizeof buf, "%s: regression inputs stay below 64 KiB", names[i]);
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, buf, len);
        violations = 0;
        int rc = fpfz_run_one(copy, len);
        free(copy);
        printf("%s: %zu bytes, %s\n", names[i], len, rc == 0 ? "ok" : "INVARIANT BROKEN");
        ck_assert_msg(rc == 0 && violations == 0, "%s breaks an invariant (see above)",
                      names[i]);
    }
    ck_assert_int_eq(fpfz_live_allocations(), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fuzz_regress");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, replay_all);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
