/*
 * libFuzzer target: explicit image layouts, wrapped memory descriptions and
 * pool configs decoded from arbitrary bytes (see fuzz_layout_body.c).
 * Built by `cmake -DFP_FUZZ=ON` with clang; run by
 * `FP_FUZZ_TARGET=layout scripts/fuzz SECONDS`.
 */
#include "fuzz_layout_body.h"

#include <stdlib.h>

void fplz_violation(void)
{
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fplz_run_one(data, size);
    return 0;
}
