/* Diagnostics hooks called by the object layer while tracking is on. */
#include "internal.h"

_Atomic int fp__diag_mode;

void fp__diag_on_new(fp__obj *h)
{
    (void)h;
}

void fp__diag_on_free(fp__obj *h)
{
    (void)h;
}
