/* Failing FFmpeg's Nth allocation: the tests' posix_memalign interposer.
 * av_malloc is libavutil's only caller of posix_memalign; while av_armed is
 * set, calls from libavutil are counted in av_calls and the av_fail_at-th
 * one fails with ENOMEM. Every other caller (framepool's default allocator,
 * the check runner, libc) passes through. The test must link with -rdynamic
 * so that the shared FFmpeg libraries see the interposer. Not built under
 * ASan/TSan, which own the allocator: FP_AV_INTERPOSE is 0 there. */
#ifndef FP_AV_INTERPOSE_H
#define FP_AV_INTERPOSE_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FP_AV_INTERPOSE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FP_AV_INTERPOSE 0
#endif
#endif
#ifndef FP_AV_INTERPOSE
#define FP_AV_INTERPOSE 1
#endif

extern int av_armed;                         /* count (and fail) libavutil's calls */
extern unsigned long long av_calls;          /* libavutil calls counted since reset */
extern unsigned long long av_fail_at;        /* 1-based call to fail; 0 = none */

/* Finds libavutil in memory; call once before arming. */
void av_interpose_init(void);

#endif
