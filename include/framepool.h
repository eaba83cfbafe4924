/*
 * framepool.h — umbrella header: everything but the OpenCV wrapper (cv.h).
 */
#ifndef FRAMEPOOL_H
#define FRAMEPOOL_H

#include "framepool/base.h"
#include "framepool/obj.h"
#include "framepool/image.h"
#include "framepool/pool.h"
#include "framepool/weak.h"
#include "framepool/cache.h"
#include "framepool/diag.h"
#include "framepool/measure.h"
#include "framepool/reader.h"
#include "framepool/imgsave.h"

#endif
