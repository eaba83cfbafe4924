/*
 * libFuzzer target: arbitrary bytes into fp_reader_open_memory, every frame
 * pulled with native and BGR24 output (see fuzz_reader_body.c).
 * Built by `cmake -DFP_FUZZ=ON` with clang; run by scripts/fuzz.
 */
#include "fuzz_reader_body.h"

#include <stdlib.h>

void fpfz_violation(void)
{
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fpfz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fpfz_run_one(data, size);
    return 0;
}
