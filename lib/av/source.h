/*
 * Private to lib/av: a source type behind the public fp_reader (reader.c
 * dispatches every fp_reader_* call through it). Two exist: the file/stream
 * engine (engine.c) and the live reader (live.c); a new source type is one
 * new file that fills these operations.
 */
#ifndef FRAMEPOOL_AV_SOURCE_H
#define FRAMEPOOL_AV_SOURCE_H

#include "err.h"
#include "framepool/reader.h"

#include <stdatomic.h>

/* What the public reader gives a source at its open. */
typedef struct fp__source_ctx {
    const char *what;            /* "open 'x.mp4'": starts the open's messages */
    _Atomic int *interrupted;    /* the reader's interrupt request (fp_reader_interrupt):
                                    set by any thread, consumed when reported */
    const char *file, *func;     /* the creation site given to the frames */
    int line;
} fp__source_ctx;

typedef struct fp__source_ops {
    const char *name;
    int (*next)(void *s, fp_image **img, const char *file, int line, const char *func);
    int (*seek)(void *s, double seconds, int flags);
    int (*info)(const void *s, fp_reader_info *out);
    int (*stats)(void *s, fp_reader_stats *out);
    /* after the interrupt flag was set: wake what waits (may be NULL) */
    void (*interrupt)(void *s);
    const char *(*errmsg)(const void *s);
    void (*close)(void *s);
} fp__source_ops;

/* The source behind an open reader (NULL otherwise): white-box tests. */
void *fp__reader_source(fp_reader *r);

extern const fp__source_ops fp__engine_ops; /* engine.c */
extern const fp__source_ops fp__live_ops;   /* live.c */

#endif
