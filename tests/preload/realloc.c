/* realloc.c — realloc keeps a block's contents while it grows and shrinks
 * across the small, medium, large and huge ranges (16 B .. 256 MiB);
 * realloc(NULL, n) allocates; realloc(p, 0) frees and returns NULL without
 * touching errno (and leaks nothing); a request that cannot be met returns
 * NULL with ENOMEM and leaves the old block intact. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* Called through volatile pointers, so the compiler cannot treat them as
 * the builtins it knows: clang drops a malloc whose result is only tested
 * and freed, and the failing call would never be made. */
static void *(*volatile realloc_fn)(void *, size_t) = realloc;

/* The byte at offset i of a block filled with `seed`. */
static unsigned char pattern_byte(size_t i, unsigned seed)
{
    uint32_t x = (uint32_t)i * 2654435761u + seed * 40503u;
    return (unsigned char)(x >> 24 ^ x >> 11 ^ x);
}

static void fill(unsigned char *p, size_t from, size_t to, unsigned seed)
{
    for (size_t i = from; i < to; i++) p[i] = pattern_byte(i, seed);
}

/* The first offset in [0, n) that lost its pattern, or n. */
static size_t first_bad(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern_byte(i, seed)) return i;
    return n;
}

/* Sizes on both sides of every range boundary, 16 B .. 64 MiB. */
static const size_t ladder[] = {
    16, 17, 48, 100, 512, 1000, 4095, 4096, 4097, 10000, 65536, 100000,
    256 * KiB - 1, 256 * KiB, 256 * KiB + 1, 300 * KiB, 1 * MiB,
    2 * MiB - 4096, 2 * MiB - 1, 2 * MiB, 2 * MiB + 1, 3 * MiB + 12345, 8 * MiB,
    64 * MiB,
};
#define LADDER_LEN (sizeof ladder / sizeof ladder[0])

/* Resize p from `old` to `n` bytes and check the common prefix survived. */
static unsigned char *resize(unsigned char *p, size_t old, size_t n, unsigned seed)
{
    unsigned char *q = realloc(p, n);
    REQUIRE(q != NULL, "realloc(%p, %zu) from %zu bytes returned NULL", (void *)p, n, old);
    size_t usable = malloc_usable_size(q);
    CHECK(usable >= n, "realloc(.., %zu): usable size %zu", n, usable);
    CHECK((uintptr_t)q % 16 == 0, "realloc(.., %zu) = %p is not 16-byte aligned", n, (void *)q);
    size_t keep = old < n ? old : n;
    size_t bad = first_bad(q, keep, seed);
    CHECK(bad == keep, "realloc %zu -> %zu bytes: byte %zu of the kept %zu changed", old, n, bad,
          keep);
    if (n > old) fill(q, old, n, seed);
    return q;
}

/* Up the ladder and down again, one rung at a time and skipping rungs. */
static void ladder_walk(void)
{
    for (size_t step = 1; step <= 3; step++) {
        unsigned seed = (unsigned)step;
        size_t cur = ladder[0];
        unsigned char *p = malloc(cur);
        REQUIRE(p != NULL, "malloc(%zu)", cur);
        fill(p, 0, cur, seed);
        for (size_t i = step; i < LADDER_LEN; i += step) {
            p = resize(p, cur, ladder[i], seed);
            cur = ladder[i];
        }
        for (size_t i = LADDER_LEN; i-- > 0;) {
            if (i % step) continue;
            p = resize(p, cur, ladder[i], seed);
            cur = ladder[i];
        }
        free(p);
    }
    /* Every pair of rungs, in both directions, from a fresh block. */
    for (size_t i = 0; i < LADDER_LEN; i++) {
        if (ladder[i] > 8 * MiB) continue;
        for (size_t j = 0; j < LADDER_LEN; j++) {
            if (ladder[j] > 8 * MiB) continue;
            unsigned seed = (unsigned)(i * 31 + j);
            unsigned char *p = malloc(ladder[i]);
            REQUIRE(p != NULL, "malloc(%zu)", ladder[i]);
            fill(p, 0, ladder[i], seed);
            p = resize(p, ladder[i], ladder[j], seed);
            free(p);
        }
    }
}

/* Growing one byte at a time, then shrinking one byte at a time. */
static void byte_steps(void)
{
    size_t cur = 1;
    unsigned char *p = malloc(cur);
    REQUIRE(p != NULL, "malloc(1)");
    fill(p, 0, cur, 99);
    for (size_t n = 2; n <= 5000; n++) { p = resize(p, cur, n, 99); cur = n; }
    for (size_t n = 4999; n >= 1; n--) { p = resize(p, cur, n, 99); cur = n; }
    free(p);
}

/* 8 MiB -> 64 MiB -> 256 MiB and back down: large growth keeps the data. */
static void large_growth(void)
{
    const size_t steps[] = {8 * MiB, 64 * MiB, 256 * MiB, 64 * MiB + 3, 1 * MiB, 100};
    size_t cur = steps[0];
    unsigned char *p = malloc(cur);
    REQUIRE(p != NULL, "malloc(%zu)", cur);
    fill(p, 0, cur, 7);
    for (size_t i = 1; i < sizeof steps / sizeof steps[0]; i++) {
        p = resize(p, cur, steps[i], 7);
        cur = steps[i];
    }
    free(p);
}

static void null_and_zero(void)
{
    /* realloc(NULL, n) is malloc(n). */
    const size_t sizes[] = {0, 1, 100, 5000, 300 * KiB, 3 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = realloc(NULL, sizes[i]);
        REQUIRE(p != NULL, "realloc(NULL, %zu) returned NULL", sizes[i]);
        CHECK(malloc_usable_size(p) >= sizes[i], "realloc(NULL, %zu): usable %zu", sizes[i],
              malloc_usable_size(p));
        memset(p, 0x5a, sizes[i]);
        free(p);
    }

    /* realloc(p, 0) frees p and returns NULL (glibc's behaviour), leaving
     * errno alone.  Done many times over 64 KiB, 1 MiB and 4 MiB blocks, so
     * a realloc(p, 0) that does not free would show in the RSS. */
    const size_t zero_sizes[] = {64, 4000, 64 * KiB, 1 * MiB, 4 * MiB};
    for (size_t i = 0; i < sizeof zero_sizes / sizeof zero_sizes[0]; i++) {
        unsigned char *p = malloc(zero_sizes[i]);
        REQUIRE(p != NULL, "malloc(%zu)", zero_sizes[i]);
        memset(p, 1, zero_sizes[i]);
        errno = 4242;
        void *q = realloc_fn(p, 0);
        CHECK(q == NULL, "realloc(p of %zu bytes, 0) returned %p, expected NULL (free)",
              zero_sizes[i], q);
        CHECK(errno == 4242, "realloc(p, 0) changed errno to %d", errno);
        if (q) free(q);
    }
    malloc_trim(0);
    size_t rss_before = nm_test_rss();
    size_t total = 0;
    for (int round = 0; round < 2000; round++) {
        size_t n = (round % 2) ? 64 * KiB : 1 * MiB;
        unsigned char *p = malloc(n);
        REQUIRE(p != NULL, "malloc(%zu)", n);
        memset(p, 3, n); /* touched, so a leak is resident */
        total += n;
        void *q = realloc_fn(p, 0);
        if (q) free(q);
    }
    size_t rss_after = nm_test_rss();
    /* 2000 rounds put ~1 GiB through realloc(p, 0); if the blocks were not
     * freed, RSS would grow by that much.  32 MiB covers the allocator's
     * cache of freed large blocks (NUMAMALLOC_CACHE_MB, default 32). */
    CHECK(rss_after <= rss_before + 32 * MiB + 8 * MiB,
          "RSS grew from %zu to %zu KiB over %zu MiB of realloc(p, 0): blocks not freed?",
          rss_before / 1024, rss_after / 1024, total / MiB);
}

/* Requests that cannot be met: NULL, ENOMEM, old block unchanged. */
static void failures(void)
{
    volatile size_t impossible[] = {SIZE_MAX, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX + 1,
                                    (size_t)PTRDIFF_MAX};
    const size_t old_sizes[] = {24, 3000, 100 * KiB, 700 * KiB, 5 * MiB};
    for (size_t i = 0; i < sizeof old_sizes / sizeof old_sizes[0]; i++) {
        size_t n = old_sizes[i];
        unsigned char *p = malloc(n);
        REQUIRE(p != NULL, "malloc(%zu)", n);
        fill(p, 0, n, 1234);
        for (size_t j = 0; j < sizeof impossible / sizeof impossible[0]; j++) {
            errno = 0;
            void *q = realloc_fn(p, impossible[j]);
            CHECK(q == NULL, "realloc(%zu-byte block, %zu) succeeded", n, impossible[j]);
            CHECK(errno == ENOMEM, "realloc(.., %zu): errno %d, expected ENOMEM", impossible[j],
                  errno);
            if (q) { p = q; continue; }
            size_t bad = first_bad(p, n, 1234);
            CHECK(bad == n, "failed realloc(.., %zu) changed byte %zu of the old %zu-byte block",
                  impossible[j], bad, n);
            CHECK(malloc_usable_size(p) >= n, "failed realloc changed the old block's size");
        }
        /* The old block is still a live, resizable block. */
        p = resize(p, n, 2 * n, 1234);
        free(p);
    }
    errno = 0;
    void *q = realloc_fn(NULL, impossible[0]);
    CHECK(q == NULL && errno == ENOMEM, "realloc(NULL, SIZE_MAX) = %p, errno %d", q, errno);
}

int main(void)
{
    nm_test_require_numamalloc();
    ladder_walk();
    byte_steps();
    large_growth();
    null_and_zero();
    failures();
    return nm_test_done();
}
