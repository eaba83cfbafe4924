/*
 * Private to lib/measure: the pieces its files share (theilsen.c for the
 * robust statistics, procstat.c for /proc). Not installed. lib/measure is
 * built on the core only (its public and internal headers), never on lib/av.
 */
#ifndef FRAMEPOOL_MEASURE_PRIV_H
#define FRAMEPOOL_MEASURE_PRIV_H

#include "framepool/measure.h"

#include <stddef.h>

/* Median of a[0..n) (0 when n is 0); reorders a. O(n). */
double fp__median(double *a, size_t n);

/* Doubles of work space fp__theil_sen needs for n points and max_pairs
 * (0: FP_THEIL_SEN_MAX_PAIRS): the number of pairs it uses. */
size_t fp__theil_sen_work_len(size_t n, size_t max_pairs);

/* fp_theil_sen with the caller's work space (fp__theil_sen_work_len
 * doubles): allocates nothing. `y` must not be NULL. */
double fp__theil_sen(const double *x, const double *y, size_t n, size_t max_pairs,
                     double *work);

#endif
