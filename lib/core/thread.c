/* Threads the library starts (convert-ahead workers, live readers, the
 * diagnostics threads): every signal blocked. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <signal.h>

int fp__thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    if (!th)
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(th ? th : &t, &at, fn, arg);
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
