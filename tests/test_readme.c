/* README.md's C example, as users copy it: the code block of its "Example"
 * section is extracted at configure time (tests/CMakeLists.txt) and compiled
 * here as the body of a function, then run on a generated clip named
 * camera.mp4 in a scratch directory, headless, with ESC "pressed" at the
 * 10th frame. It must return 0, write its frame, and leave no image alive
 * (the ESC break must release the frame it holds). */
#define _POSIX_C_SOURCE 200809L
#include "avclips.h"
#include "testutil.h"

#include <framepool.h>
#include <framepool/cv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int waitkey_calls, esc_at = 10;

/* Replaces framepool_cv's fp_cv_waitkey (the executable's definition wins
 * over the shared library's): the user presses ESC at the esc_at-th frame. */
int fp_cv_waitkey(int ms)
{
    (void)ms;
    return ++waitkey_calls == esc_at ? 27 : -1;
}

static int readme_example(void)
{
#include "readme_example.inc"
    return 0;
}

static uint64_t images_alive(void)
{
    fp_type_stats ts;
    fp_type_get_stats(&fp_image_type, &ts);
    return ts.live;
}

START_TEST(readme_example_runs)
{
    /* headless, whatever the machine running the tests has */
    unsetenv("DISPLAY");
    unsetenv("WAYLAND_DISPLAY");
    char clip[1024], dir[1200], link_to[1200];
    ck_assert_ptr_nonnull(clip_make("readme_camera.mp4",
                                    "-f lavfi -i testsrc2=size=320x240:rate=25 -frames:v 30 "
                                    "-c:v libx264 -bf 2 -g 10 -pix_fmt yuv420p",
                                    clip, sizeof clip));
    snprintf(dir, sizeof dir, "%s/readme-%ld", clip_dir(), (long)getpid());
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(chdir(dir), 0);
    snprintf(link_to, sizeof link_to, "%s", clip);
    ck_assert_int_eq(symlink(link_to, "camera.mp4"), 0);

    uint64_t alive0 = images_alive();
    ck_assert_int_eq(readme_example(), 0);
    ck_assert_int_eq(waitkey_calls, esc_at); /* it stopped at ESC, not at the end */
    ck_assert_msg(images_alive() == alive0, "%llu images alive after the example, %llu before",
                  (unsigned long long)images_alive(), (unsigned long long)alive0);
    struct stat sb;
    ck_assert_int_eq(stat("frame.png", &sb), 0); /* frame 0 was saved */
    ck_assert_int_gt((int)sb.st_size, 0);

    /* and 200 times more: flat */
    for (int i = 0; i < 200; i++) {
        waitkey_calls = 0;
        esc_at = 2 + i % 20;
        ck_assert_int_eq(readme_example(), 0);
    }
    ck_assert_uint_eq(images_alive(), alive0);

    unlink("frame.png");
    unlink("camera.mp4");
    ck_assert_int_eq(chdir(".."), 0);
    rmdir(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("readme");
    TCase *tc = tcase_create("readme");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, readme_example_runs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
