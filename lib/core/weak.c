/* Weak handles and fp_on_free: the object layer's hooks. (Weak handles are
 * not handed out yet, so no object ever has FP__OBJ_WEAK or FP__OBJ_ONFREE.) */
#include "internal.h"

#include <stdlib.h>

fp__onfree *fp__weak_dying(fp__obj *h)
{
    fp__obj_fatal(h, "weak/on-free flags set before weak.c supports them");
}

void fp__weak_run_callbacks(fp__onfree *list)
{
    (void)list;
}
