/* fuzz.h — what the libFuzzer targets in tests/fuzz/ share: a failed
 * check prints what was expected (testutil.h's line) and aborts (libFuzzer
 * keeps the input),
 * a reader that turns the input bytes into choices, and where the
 * repository is (for the recorded sysfs trees). */
#ifndef NM_FUZZ_H
#define NM_FUZZ_H

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The condition is evaluated once; a failure aborts, so libFuzzer saves
 * the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                                    \
    do {                                                                         \
        if (!(cond)) {                                                           \
            nm_test_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__);             \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* The input, read from the front; past its end every read gives 0. */
struct fuzz_input {
    const uint8_t *data;
    size_t size, pos;
};

static inline int fuzz_more(const struct fuzz_input *in) { return in->pos < in->size; }

static inline uint8_t fuzz_u8(struct fuzz_input *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static inline uint32_t fuzz_u16(struct fuzz_input *in)
{
    uint32_t lo = fuzz_u8(in);
    return lo | (uint32_t)fuzz_u8(in) << 8;
}

static inline uint32_t fuzz_u32(struct fuzz_input *in)
{
    uint32_t lo = fuzz_u16(in);
    return lo | fuzz_u16(in) << 16;
}

/* The repository root (testutil.h). */
static inline const char *nm_fuzz_repo(void)
{
    return nm_test_repo();
}

#endif
