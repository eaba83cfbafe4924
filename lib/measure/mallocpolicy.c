/*
 * An opt-in glibc malloc policy for long video loops (measure.h,
 * fp_memtrack_malloc_policy). Everywhere else it does nothing.
 */
#define _GNU_SOURCE
#include "measure_priv.h"

#include <limits.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int fp_memtrack_malloc_release(void)
{
#if defined(__GLIBC__)
    malloc_trim(0);
    return FP_OK;
#else
    return FP_ENOENT;
#endif
}

int fp_memtrack_malloc_policy(const fp_malloc_policy *p)
{
    fp_malloc_policy d = {0};
    if (p)
        d = *p;
    if (d.mmap_threshold == 0)
        d.mmap_threshold = FP_MALLOC_MMAP_THRESHOLD;
    if (d.trim_threshold == 0)
        d.trim_threshold = FP_MALLOC_TRIM_THRESHOLD;
    if (d.arena_max < 0 || d.mmap_threshold > (size_t)32 << 20 ||
        d.trim_threshold > (size_t)INT_MAX)
        return FP_EINVAL;
#if defined(__GLIBC__)
    /* Setting either threshold turns glibc's adaptive thresholds off (after
     * a mapped block is freed, glibc raises the mmap threshold to its size
     * and the trim threshold to twice that, so every later block of that
     * size stays in the heap and a heap's free top is never returned). */
    if (!mallopt(M_MMAP_THRESHOLD, (int)d.mmap_threshold) ||
        !mallopt(M_TRIM_THRESHOLD, (int)d.trim_threshold))
        return FP_EINVAL;
    if (d.arena_max > 0 && !mallopt(M_ARENA_MAX, d.arena_max))
        return FP_EINVAL;
    return FP_OK;
#else
    return FP_ENOENT;
#endif
}
