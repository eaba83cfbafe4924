/*
 * The part of the core's internals that lib/av may use: objects, images,
 * the error channel and clocks. Not installed. The core's modules keep
 * their other internals in their own private headers (pool_priv.h,
 * weak_priv.h, typestat.h, diag_internal.h), which lib/av does not see.
 */
#ifndef FRAMEPOOL_INTERNAL_H
#define FRAMEPOOL_INTERNAL_H

#include "base_priv.h"
#include "framepool/pool.h"
#include "image_priv.h"
#include "obj_priv.h"

#endif
