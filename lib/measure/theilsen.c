/*
 * The robust statistics every memory verdict uses (measure.h): the median
 * and the Theil-Sen slope, written once for the in-process tracker, the
 * benchmarks and the outside observer.
 */
#include "measure_priv.h"

#include <stdint.h>

/* The k-th smallest of a[0..n) (Hoare's selection; reorders a). Afterwards
 * a[0..k) are all <= the result. */
static double select_kth(double *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                double tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

double fp__median(double *a, size_t n)
{
    if (n == 0)
        return 0;
    double hi = select_kth(a, n, n / 2);
    if (n % 2)
        return hi;
    double lo = a[0];
    for (size_t i = 1; i < n / 2; i++) /* after selection the lower half is below */
        if (a[i] > lo)
            lo = a[i];
    return (lo + hi) / 2;
}

static uint64_t all_pairs(size_t n)
{
    return n < 2 ? 0 : (uint64_t)n * (n - 1) / 2;
}

size_t fp__theil_sen_work_len(size_t n, size_t max_pairs)
{
    if (!max_pairs)
        max_pairs = FP_THEIL_SEN_MAX_PAIRS;
    uint64_t all = all_pairs(n);
    return all <= max_pairs ? (size_t)all : max_pairs;
}

double fp__theil_sen(const double *x, const double *y, size_t n, size_t max_pairs,
                     double *work)
{
    if (!max_pairs)
        max_pairs = FP_THEIL_SEN_MAX_PAIRS;
    if (n < 2)
        return 0;
    size_t m = 0;
    if (all_pairs(n) <= max_pairs) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++) {
                double dx = x ? x[j] - x[i] : (double)(j - i);
                if (dx != 0)
                    work[m++] = (y[j] - y[i]) / dx;
            }
    } else {
        /* A fixed-seed xorshift draws the pairs: the same points give the
         * same slope. Pairs with equal x are skipped; the draws are bounded
         * so that points that mostly share one x still end. */
        uint64_t r = 0x9e3779b97f4a7c15ull;
        for (uint64_t draws = 0; m < max_pairs && draws < 8 * (uint64_t)max_pairs; draws++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            size_t i = (size_t)((r >> 32) % n), j = (size_t)((r & 0xffffffffu) % n);
            if (i == j)
                continue;
            if (i > j) {
                size_t t = i;
                i = j;
                j = t;
            }
            double dx = x ? x[j] - x[i] : (double)(j - i);
            if (dx != 0)
                work[m++] = (y[j] - y[i]) / dx;
        }
    }
    return fp__median(work, m);
}

int fp_theil_sen(const double *x, const double *y, size_t n, size_t max_pairs, double *slope)
{
    if (!slope || (!y && n > 0)) {
        fp_errmsg_set("fp_theil_sen: %s is NULL", slope ? "y" : "slope");
        return FP_EINVAL;
    }
    *slope = 0;
    size_t len = fp__theil_sen_work_len(n, max_pairs);
    if (len == 0)
        return FP_OK;
    if (len > SIZE_MAX / sizeof(double)) {
        fp_errmsg_set("fp_theil_sen: %zu pairs do not fit in memory", len);
        return FP_ENOMEM;
    }
    double *work = fp_alloc(len * sizeof *work, 16);
    if (!work) {
        fp_errmsg_set("fp_theil_sen: no memory for the slopes of %zu pairs", len);
        return FP_ENOMEM;
    }
    *slope = fp__theil_sen(x, y, n, max_pairs, work);
    fp_free(work, len * sizeof *work);
    return FP_OK;
}
