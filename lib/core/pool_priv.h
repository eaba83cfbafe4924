/*
 * Private to the core: what the pool (pool.c) offers the image and
 * diagnostics modules. Not installed; lib/av does not see it.
 */
#ifndef FRAMEPOOL_POOL_PRIV_H
#define FRAMEPOOL_POOL_PRIV_H

#include "framepool/pool.h"
#include "image_priv.h"

/* pool.c: the dispose hook of pooled images (returns one to its pool). */
void fp__pool_image_returned(fp__obj *h);
/* pool.c: whether `img` fits the pool's current buffers (and the pool is open). */
int fp__pool_matches(struct fp_pool *p, const fp_image *img);
/* pool.c: what every pool counts for the fp_image statistics: images out
 * (acquired and not yet released), their bytes, and images ever created or
 * revived by a pool, including pools that are gone. Takes the pool registry
 * lock and each pool's lock. */
void fp__pool_image_counts(uint64_t *live, uint64_t *bytes, uint64_t *created);
/* pool.c: visits every pool in the process (for leak reports). `fn` runs
 * under the registry lock: it must not read type statistics (a read of the
 * fp_image figures takes that lock). */
int fp__pool_foreach(int (*fn)(struct fp_pool *p, const fp_pool_stats *s, int closed, void *user),
                     void *user);

#endif
