/* Helper of test_diag_static: a program that never calls an fp_diag_*
 * function, linked with libframepool.a only, and leaks one image. Run with
 * FP_DIAG=leaks=error it must exit non-zero with the leak report. */
#include <framepool.h>
#include <stdio.h>

int main(void)
{
    fp_image *img = NULL;
    if (fp_image_new(FP_PIX_GRAY8, 16, 16, &img) != FP_OK)
        return 3;
    puts("leaking one image");
    return 0; /* img is never released */
}
