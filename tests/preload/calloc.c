/* calloc.c — calloc returns zeroed memory even when it reuses blocks that
 * were dirtied and freed (small, medium, large and huge sizes, and blocks
 * left dirty past their end by an in-place shrink); overflowing calloc and
 * reallocarray, malloc(SIZE_MAX) and malloc(PTRDIFF_MAX + 1) return NULL with
 * errno ENOMEM. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* Offset of the first nonzero byte in [0, n), or n. */
static size_t first_nonzero(const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w) break;
    }
    for (; i < n; i++)
        if (p[i]) return i;
    return n;
}

/* Dirty `count` blocks of `size` bytes with 0xAA, free them, then calloc the
 * same number of blocks of `size` (and of a slightly smaller size from the
 * same range) and check every byte asked for is zero. */
static void dirty_then_calloc(size_t size, size_t count, int rounds)
{
    void **blocks = malloc(count * sizeof *blocks);
    REQUIRE(blocks != NULL, "malloc for the block table");
    for (int round = 0; round < rounds; round++) {
        for (size_t i = 0; i < count; i++) {
            blocks[i] = malloc(size);
            REQUIRE(blocks[i] != NULL, "malloc(%zu)", size);
            memset(blocks[i], 0xAA, malloc_usable_size(blocks[i]));
        }
        for (size_t i = 0; i < count; i++) free(blocks[i]);

        size_t ask = (round % 2) ? size - size / 16 : size;
        for (size_t i = 0; i < count; i++) {
            /* Vary the element split: calloc(n, 1), calloc(1, n), calloc(n/8, 8). */
            unsigned char *p;
            switch (i % 3) {
            case 0: p = calloc(ask, 1); break;
            case 1: p = calloc(1, ask); break;
            default: p = calloc(ask / 8, 8); break;
            }
            size_t n = (i % 3 == 2) ? ask / 8 * 8 : ask;
            REQUIRE(p != NULL, "calloc for %zu bytes returned NULL", n);
            size_t bad = first_nonzero(p, n);
            CHECK(bad == n, "calloc(%zu bytes) round %d block %zu: byte %zu is 0x%02x, not zero", n,
                  round, i, bad, bad < n ? p[bad] : 0);
            blocks[i] = p;
        }
        /* Dirty the calloc'ed blocks too, so the next round reuses them dirty. */
        for (size_t i = 0; i < count; i++) {
            memset(blocks[i], 0xAA, malloc_usable_size(blocks[i]));
            free(blocks[i]);
        }
    }
    free(blocks);
}

/* A block shrunk in place by realloc keeps its dirty tail inside the same
 * memory; when that memory comes back through calloc it must be zero. */
static void shrink_then_calloc(size_t big, size_t small)
{
    for (int round = 0; round < 20; round++) {
        unsigned char *p = malloc(big);
        REQUIRE(p != NULL, "malloc(%zu)", big);
        memset(p, 0xAA, malloc_usable_size(p));
        p = realloc(p, small);
        REQUIRE(p != NULL, "realloc(.., %zu)", small);
        free(p);
        unsigned char *q = calloc(1, big);
        REQUIRE(q != NULL, "calloc(1, %zu)", big);
        size_t bad = first_nonzero(q, big);
        CHECK(bad == big, "calloc(1, %zu) after a %zu -> %zu shrink: byte %zu is 0x%02x", big, big,
              small, bad, bad < big ? q[bad] : 0);
        memset(q, 0xAA, big);
        free(q);
    }
}

/* Aligned blocks (whose padding the allocator may reuse) dirtied and freed. */
static void aligned_then_calloc(void)
{
    for (size_t align = 64; align <= 4 * MiB; align *= 4) {
        for (int round = 0; round < 8; round++) {
            void *p = NULL;
            int rc = posix_memalign(&p, align, 3 * align / 2);
            REQUIRE(rc == 0, "posix_memalign(.., %zu, ..) returned %d", align, rc);
            memset(p, 0xAA, malloc_usable_size(p));
            free(p);
            size_t n = 2 * align;
            unsigned char *q = calloc(n, 1);
            REQUIRE(q != NULL, "calloc(%zu, 1)", n);
            size_t bad = first_nonzero(q, n);
            CHECK(bad == n, "calloc(%zu, 1) after aligned blocks: byte %zu nonzero", n, bad);
            memset(q, 0xAA, n);
            free(q);
        }
    }
}

/* The same pointer, hidden from the compiler, which would otherwise warn
 * about using a block after a (failed) reallocarray. */
static void *opaque(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* Called through volatile pointers, so the compiler cannot treat them as
 * the builtins it knows: clang drops a malloc whose result is only tested
 * and freed, and the failing call would never be made. */
static void *(*volatile malloc_fn)(size_t) = malloc;
static void *(*volatile calloc_fn)(size_t, size_t) = calloc;
static void *(*volatile reallocarray_fn)(void *, size_t, size_t) = reallocarray;

static void check_enomem(const char *what, void *p)
{
    CHECK(p == NULL, "%s returned %p, expected NULL", what, p);
    CHECK(errno == ENOMEM, "%s: errno %d, expected ENOMEM", what, errno);
    free(p);
}

static void overflows(void)
{
    /* volatile: keep the compiler from folding (and warning about) sizes it
     * can see are impossible. */
    volatile size_t half = SIZE_MAX / 2 + 1, big = (size_t)1 << 32, max = SIZE_MAX;
    volatile size_t over = (size_t)PTRDIFF_MAX + 1;

    errno = 0; check_enomem("calloc(SIZE_MAX/2+1, 2)", calloc_fn(half, 2));
    errno = 0; check_enomem("calloc(2, SIZE_MAX/2+1)", calloc_fn(2, half));
    errno = 0; check_enomem("calloc(2^32, 2^32)", calloc_fn(big, big));
    errno = 0; check_enomem("calloc(SIZE_MAX, SIZE_MAX)", calloc_fn(max, max));
    errno = 0; check_enomem("calloc(1, SIZE_MAX)", calloc_fn(1, max));
    errno = 0; check_enomem("calloc(PTRDIFF_MAX+1, 1)", calloc_fn(over, 1));
    errno = 0; check_enomem("malloc(SIZE_MAX)", malloc_fn(max));
    errno = 0; check_enomem("malloc(PTRDIFF_MAX+1)", malloc_fn(over));
    errno = 0; check_enomem("reallocarray(NULL, 2^32, 2^32)", reallocarray_fn(NULL, big, big));
    errno = 0; check_enomem("reallocarray(NULL, SIZE_MAX/2+1, 2)", reallocarray_fn(NULL, half, 2));

    /* A failed reallocarray leaves the old block alone. */
    unsigned char *p = malloc(1000);
    REQUIRE(p != NULL, "malloc(1000)");
    memset(p, 0x3c, 1000);
    errno = 0;
    void *q = reallocarray_fn(opaque(p), big, big);
    CHECK(q == NULL && errno == ENOMEM, "reallocarray(p, 2^32, 2^32) = %p, errno %d", q, errno);
    size_t i = 0;
    while (i < 1000 && p[i] == 0x3c) i++;
    CHECK(i == 1000, "failed reallocarray changed byte %zu of the old block", i);
    /* A fitting reallocarray works and keeps the contents. */
    p = reallocarray(p, 500, 4);
    REQUIRE(p != NULL, "reallocarray(p, 500, 4)");
    i = 0;
    while (i < 1000 && p[i] == 0x3c) i++;
    CHECK(i == 1000, "reallocarray(p, 500, 4) lost byte %zu", i);
    free(p);

    /* calloc(0, n) and calloc(n, 0) are like malloc(0): a unique pointer. */
    void *z1 = calloc_fn(0, 16), *z2 = calloc_fn(16, 0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2, "calloc(0, 16) = %p, calloc(16, 0) = %p", z1, z2);
    free(z1);
    free(z2);
}

int main(void)
{
    nm_test_require_numamalloc();
    const struct { size_t size, count; int rounds; } cases[] = {
        {8, 20000, 4},        {24, 20000, 4},       {100, 10000, 4},     {1000, 4000, 4},
        {4096, 2000, 4},      {8 * KiB, 1000, 4},   {50 * KiB, 200, 4},  {200 * KiB, 100, 4},
        {256 * KiB, 64, 4},   {300 * KiB, 64, 4},   {1 * MiB, 24, 4},    {2 * MiB - 4096, 12, 4},
        {2 * MiB, 12, 4},     {3 * MiB + 123, 8, 4}, {16 * MiB, 2, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        dirty_then_calloc(cases[i].size, cases[i].count, cases[i].rounds);
    shrink_then_calloc(200 * KiB, 100);
    shrink_then_calloc(1 * MiB, 300 * KiB);
    shrink_then_calloc(8 * MiB, 2 * MiB + 1);
    shrink_then_calloc(8 * MiB, 100 * KiB);
    aligned_then_calloc();
    overflows();
    return nm_test_done();
}
