/* mlock_calloc: a program that locks its memory gets zeroed memory from
 * calloc (chunk.c: nm_chunk_return).
 *
 * Real-time and some HPC programs (RDMA buffers, latency-bound MPI ranks)
 * call mlockall(MCL_CURRENT | MCL_FUTURE) at start.  The kernel then
 * refuses MADV_DONTNEED on the allocator's memory (EINVAL: a locked
 * range), so the units of a freed large block that go back to their chunk
 * keep their contents.  A unit of a chunk is taken to read as zero: a span
 * carved from it counts as zeroed (calloc does not clear it) and a fresh
 * segment's header is not cleared.  The allocator so clears a run the
 * kernel would not give back.
 *
 * The pattern: after mlockall, with a live set the program keeps (small
 * blocks and a 3 MiB buffer, which keep the chunk mapped), rounds of
 * calloc of 1 MiB, fill it, free it
 * (once with malloc_trim after the free, so that the cached span goes back
 * to its chunk at once); every calloc must read as zero.  Then blocks of
 * 4 KiB from calloc, which take pages of new segments on those units, must
 * read as zero too.  Skipped where the process may not lock its memory. */
#define _GNU_SOURCE
#include "../testutil.h"

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

enum { BIG = 1 << 20, ROUNDS = 8, SMALL = 4096, SMALLS = 2048 };

/* The first byte of p[0, n) that is not zero, or -1. */
static long first_nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return (long)i;
    return -1;
}

/* Fill and free `p`: the stores are kept (a memset just before free is
 * dead to the compiler). */
static void fill_and_free(unsigned char *p, size_t n)
{
    memset(p, 0xab, n);
    __asm__ volatile("" : : "r"(p) : "memory");
    free(p);
}

static void big_rounds(bool trim)
{
    for (int round = 0; round < ROUNDS; round++) {
        unsigned char *p = calloc(1, BIG);
        REQUIRE(p, "calloc(1 MiB): %s", strerror(errno));
        long at = first_nonzero(p, BIG);
        CHECK(at < 0, "%s round %d: calloc(1 MiB) at %p has byte %ld = %#x", trim ? "trim" : "free",
              round, (void *)p, at, at < 0 ? 0 : p[at]);
        fill_and_free(p, BIG);
        if (trim) malloc_trim(0);
    }
}

int main(void)
{
    nm_test_require_numamalloc();
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0)
        nm_test_skip("mlockall: %s (RLIMIT_MEMLOCK too small, not root)", strerror(errno));
    static void *live[1000];
    for (int i = 0; i < 1000; i++) {
        live[i] = malloc(64);
        REQUIRE(live[i], "malloc(64)");
    }
    unsigned char *buffer = malloc(3 << 20);
    REQUIRE(buffer, "malloc(3 MiB)");
    memset(buffer, 1, 3 << 20);
    big_rounds(false);
    big_rounds(true);

    static unsigned char *small[SMALLS];
    for (int i = 0; i < SMALLS; i++) {
        small[i] = calloc(1, SMALL);
        REQUIRE(small[i], "calloc(4 KiB): %s", strerror(errno));
        long at = first_nonzero(small[i], SMALL);
        CHECK(at < 0, "calloc(4 KiB) number %d at %p has byte %ld = %#x", i, (void *)small[i], at,
              at < 0 ? 0 : small[i][at]);
    }
    for (int i = 0; i < SMALLS; i++) fill_and_free(small[i], SMALL);
    free(buffer);
    for (int i = 0; i < 1000; i++) free(live[i]);
    if (!nm_test_failures)
        printf("calloc under mlockall: %d blocks of 1 MiB and %d of 4 KiB read as zero\n",
               2 * ROUNDS, SMALLS);
    return nm_test_done();
}
