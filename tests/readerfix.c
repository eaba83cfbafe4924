/* The reader tests' shared fixture (readerfix.h). */
#define _DEFAULT_SOURCE
#include "readerfix.h"

#include "avclips.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

const fp_reader_options *dflt(void)
{
    static fp_reader_options o;
    o.threads = TU_THREADS;
    return &o;
}


char clip_h264[1024], clip_ts[1024], clip_small[1024], clip_long_ts[1024];
char md5_ref[NFR][33];

void setup(void)
{
    ck_assert_ptr_nonnull(clip_make("r_h264.mp4",
                                    SRC "-frames:v 30 -c:v libx264 -bf 3 -g 10 -pix_fmt yuv420p",
                                    clip_h264, sizeof clip_h264));
    ck_assert_ptr_nonnull(clip_make("r_h264.ts",
                                    SRC "-frames:v 30 -c:v libx264 -bf 2 -g 10 -pix_fmt yuv420p",
                                    clip_ts, sizeof clip_ts));
    ck_assert_ptr_nonnull(clip_make("r_small.mp4",
                                    "-f lavfi -i testsrc2=size=160x120:rate=25 -frames:v 25 "
                                    "-c:v libx264 -bf 2 -g 25 -pix_fmt yuv420p",
                                    clip_small, sizeof clip_small));
    /* 10 s: longer than the 5 s libavformat analyses before the open returns */
    ck_assert_ptr_nonnull(clip_make("r_long.ts",
                                    "-f lavfi -i testsrc2=size=160x120:rate=25 -frames:v 250 "
                                    "-c:v libx264 -g 25 -pix_fmt yuv420p",
                                    clip_long_ts, sizeof clip_long_ts));
    ck_assert_int_eq(oracle_md5(clip_h264, NULL, md5_ref, NFR), NFR);
}

unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    ck_assert_uint_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}
