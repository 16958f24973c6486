/* fuzz.h: what every fuzz target shares: the libFuzzer entry point (also called by the
 * replay runner) and CHECK, an assertion that survives NDEBUG builds. */
#ifndef PGENRICH_FUZZ_H
#define PGENRICH_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* assert() is compiled out under NDEBUG (RelWithDebInfo); these checks must not be. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
