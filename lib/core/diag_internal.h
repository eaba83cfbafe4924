/* Interfaces shared by the diagnostics sources: diag_track.c (live list,
 * backtraces, reference history), diag_env.c (switches, exit handler,
 * signal), diag_socket.c (the socket channel), diag_report.c (summary,
 * growth, leaks, refs), diag_snapshot.c, and lib/measure/memtrack.c. */
#ifndef FRAMEPOOL_DIAG_INTERNAL_H
#define FRAMEPOOL_DIAG_INTERNAL_H

#include "framepool/diag.h"
#include "pool_priv.h"

/* Tracking bits (FP_DIAG_SITES | FP_DIAG_BACKTRACE | FP_DIAG_REFS) now on:
 * 0 = off. */
extern _Atomic int fp__diag_mode;
/* Frames recorded per backtrace (FP_DIAG=backtrace=N). */
extern _Atomic int fp__diag_bt_depth;
#define FP__DIAG_BT_MAX 64

/* Applies the tracking bits: sets fp__diag_mode and registers the object
 * layer's hooks they need (diag_track.c). Called under diag_env's lock. */
void fp__diag_track_apply(int mode);

/* A recorded call stack, interned (one record per distinct stack, kept for
 * the life of the process): objects point at it through diag_extra. */
typedef struct fp__bt {
    struct fp__bt *next;
    uint64_t hash;
    int depth;
    void *frames[];
} fp__bt;

/* One site of an object's reference history (FP_DIAG=refs): the
 * references taken and dropped there, net. */
typedef struct fp__refsite {
    const char *file;      /* NULL: unknown (fp_ref called through a pointer) */
    const char *func;
    const void *caller;    /* takes: return address into the function that called the
                              site's function (NULL: not known) */
    int line;
    int32_t net;           /* taken - dropped */
    uint32_t taken, dropped;
    uint32_t first_seq;    /* order of the first event here, per object */
    uint32_t tid;          /* thread of the last event here (kernel thread id) */
    unsigned char created; /* the creation's reference */
    unsigned char kept;    /* kept by a framepool container (FP__REF_KEPT) */
    uint64_t tick;         /* frame tick of the last event here */
} fp__refsite;

/* Sites kept per object; events at further sites are counted together. */
#define FP__REFS_SITES 12

/* A copy of one object's history (fp__diag_history_copy). */
typedef struct fp__refcopy {
    unsigned n;
    int32_t other_net;      /* net of the sites beyond FP__REFS_SITES */
    uint32_t other_events;
    fp__refsite site[FP__REFS_SITES];
} fp__refcopy;

/* Copies the history of `h` (flagged FP__OBJ_REFS, alive) into *out;
 * returns 0, or FP_ENOENT when it has none. The caller holds a reference or
 * the object's live-list shard lock. */
int fp__diag_history_copy(const fp__obj *h, fp__refcopy *out);

/* The backtrace recorded at creation (diag_extra or inside the history). */
const fp__bt *fp__diag_obj_bt(const fp__obj *h);

/* One live tracked object, copied out of the live list. */
typedef struct fp__diag_item {
    const fp_type *type;
    const char *file;
    const char *func;
    const fp__bt *tb;
    const void *obj;
    uint64_t birth;
    size_t bytes;
    int line;
    uint32_t refs;
    uint32_t flags;
    int hide; /* scratch for reports */
    const fp__refcopy *hist; /* fp__diag_collect_refs only; NULL without history */
} fp__diag_item;

/* Copies every live tracked object (refcount > 0) into a new array
 * (fp_alloc'd, release with fp_free(*items, *cap * sizeof **items)).
 * Returns 0 or FP_ENOMEM. */
int fp__diag_collect(fp__diag_item **items, size_t *n, size_t *cap);

/* The same, also copying each object's reference history into *hists
 * (fp_alloc'd, *hcap entries; release with fp_free(*hists, *hcap *
 * sizeof **hists); NULL when no object has one); items[i].hist points
 * into it. */
int fp__diag_collect_refs(fp__diag_item **items, size_t *n, size_t *cap, fp__refcopy **hists,
                          size_t *hcap);

/* Works out which sites still hold the references of one object: releases
 * cancel takes at the same site, then takes in the same function, then the
 * oldest takes. Writes into held[i] (same order as c->site) the references
 * site i still holds; returns the sum. */
int32_t fp__diag_holders(const fp__refcopy *c, int32_t held[FP__REFS_SITES]);

/* Prints "+N at file:line in func, called from ..., never released". */
void fp__diag_print_holder(FILE *out, const char *indent, const fp__refsite *s, int32_t n,
                           size_t objects, int details);

/* Prints `frame`'s symbol ("main+0x2a (prog+0x1234)") into buf. */
char *fp__diag_sym(char *buf, size_t n, const void *frame);

/* diag_env.c: starts a detached diagnostics thread running fn(NULL) with
 * every signal blocked (handlers then run on the program's own threads).
 * Returns pthread_create's result (0 or an errno value). */
int fp__diag_start_thread(void *(*fn)(void *));

/* The socket channel (diag_socket.c): starts its thread (once). Returns 0
 * or a negative error with the message set. */
int fp__diag_socket_start(void);
/* Removes the socket file (at exit). */
void fp__diag_socket_close(void);
/* The socket's path, or "" when the channel is not open. */
const char *fp__diag_socket_path(void);

/* Whether `t` is one of diag's own types (left out of snapshots). */
int fp__diag_own_type(const fp_type *t);
/* Adds `t` to diag's own types (idempotent; at most a few, from layers on
 * top of the core such as lib/measure's fp_memtrack_type). Thread-safe. */
void fp__diag_own_type_add(const fp_type *t);

/* Prints the frames of `tb` (symbolized with dladdr), one per line, each
 * preceded by `indent`. */
void fp__diag_print_bt(FILE *out, const fp__bt *tb, const char *indent);

/* Formats n with thousands separators ("9,500"). Returns buf. */
char *fp__diag_commas(char *buf, size_t n, uint64_t v);

/* Type name, never NULL. */
static inline const char *fp__diag_tname(const fp_type *t)
{
    return (t && t->name) ? t->name : "(unnamed)";
}

#endif
