/* The reader tests' shared fixture: generated clips, the ffmpeg md5 oracle of
 * the first one, and default options. Used by test_reader*.c, which follow
 * lib/av: the public reader and its engine (test_reader.c), the input stage
 * (test_reader_input.c), seeking (test_reader_seek.c), conversion and
 * converting ahead (test_reader_convert.c). */
#ifndef FP_READERFIX_H
#define FP_READERFIX_H

#include <framepool.h>

/* Decoder threads for the tests: automatic, so that get_buffer2 and the
 * buffer release callbacks run on FFmpeg's frame threads — also under
 * ThreadSanitizer, where tests/tsan.supp (scripts/test) silences the races
 * TSan reports inside uninstrumented FFmpeg, not those in framepool. */
#define TU_THREADS 0

#define SRC "-f lavfi -i testsrc2=size=320x240:rate=25 "
#define NFR 30

extern char clip_h264[1024], clip_ts[1024], clip_small[1024], clip_long_ts[1024];
extern char md5_ref[NFR][33]; /* native md5 of clip_h264's frames */

/* Default options with TU_THREADS decoder threads (a static copy). */
const fp_reader_options *dflt(void);
/* Makes the clips and md5_ref (a check fixture). */
void setup(void);
/* The whole file at `path` (malloc'd), its size in *len. */
unsigned char *slurp(const char *path, size_t *len);

#endif
