/*
 * The part of the core's internals that lib/av may use: objects, images,
 * the error channel, clocks and threads. Not installed. The core's modules keep
 * their other internals in their own private headers (pool_priv.h,
 * weak_priv.h, typestat.h, diag_internal.h), which lib/av does not see.
 */
#ifndef FRAMEPOOL_INTERNAL_H
#define FRAMEPOOL_INTERNAL_H

#include "base_priv.h"
#include "framepool/pool.h"
#include "image_priv.h"
#include "obj_priv.h"

#include <pthread.h>

/* thread.c: starts a thread running fn(arg) with every signal blocked, so
 * that a program's handlers (and FP_DIAG=signal's thread) keep seeing the
 * signals on the threads they expect. `th` NULL: the thread is detached,
 * else *th is to be joined. Returns pthread_create's result (0 or an errno
 * value). */
int fp__thread_start(pthread_t *th, void *(*fn)(void *), void *arg);

#endif
