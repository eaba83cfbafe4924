/* The posix_memalign interposer of av_interpose.h. */
#define _GNU_SOURCE
#include "av_interpose.h"

#include <check.h>
#include <dlfcn.h>
#include <libavutil/mem.h>
#include <stddef.h>

int av_armed;
unsigned long long av_calls, av_fail_at;

#if FP_AV_INTERPOSE
static const void *avutil_base;

void av_interpose_init(void)
{
    Dl_info info;
    ck_assert_int_ne(dladdr((void *)av_malloc, &info), 0);
    avutil_base = info.dli_fbase;
}

int posix_memalign(void **p, size_t align, size_t size);
__attribute__((visibility("default"))) int posix_memalign(void **p, size_t align, size_t size)
{
    static int (*real)(void **, size_t, size_t);
    if (!real)
        real = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    if (av_armed) {
        Dl_info info;
        if (dladdr(__builtin_return_address(0), &info) && info.dli_fbase == avutil_base) {
            if (++av_calls == av_fail_at)
                return 12; /* ENOMEM */
        }
    }
    return real(p, align, size);
}
#else
void av_interpose_init(void)
{
}
#endif
