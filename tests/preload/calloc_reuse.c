/* calloc_reuse.c — a large calloc on a reused span: the two sides of the
 * rule of large.c (span_clear).
 *
 *   buffer   a program that callocs a 3 MiB buffer, fills it, frees it and
 *            does it again 100 times (a decoder's frame, a server's reply
 *            buffer) takes its pages once: rounds 3..100 must take fewer
 *            minor page faults than one round of fresh pages (768), since
 *            the reused span is cleared in place.  Giving its pages back at
 *            each calloc and faulting them in again took 257 faults a round
 *            with transparent huge pages, 776 without (25,186 and 76,033 in
 *            all); glibc takes 734 in all.
 *   array    a 16 MiB calloc on a reused span that was written whole has
 *            none of its pages resident before it is written (mincore): an
 *            OpenMP team's first write places them (tests/vm/first_touch.sh
 *            checks where), and a sparse table takes only what it touches;
 *            also on a 20 MiB span that a 3 MiB block used since (6 MiB of
 *            it committed: the rule goes by the block's size).
 *
 * Every calloc is checked for zeros.  NM_TEST_OTHER_ALLOCATOR=1 runs it
 * on another malloc as a report: the counts are printed, numamalloc's rule
 * is not judged. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define BUFFER_SIZE (3 * MiB)
#define BUFFER_ROUNDS 100
#define ARRAY_SIZE (16 * MiB)

static long minor_faults(void)
{
    struct rusage u;
    REQUIRE(getrusage(RUSAGE_SELF, &u) == 0, "getrusage");
    return u.ru_minflt;
}

/* Offset of the first nonzero byte of [p, p + n), or n. */
static size_t first_nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w) {
            while (!p[i]) i++;
            return i;
        }
    }
    return n;
}

/* Pages of [p, p + n) resident now (p page-aligned or not). */
static size_t resident_pages(void *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)p & ~(page - 1);
    size_t count = ((uintptr_t)p + n - start + page - 1) / page;
    unsigned char *vec = malloc(count);
    REQUIRE(vec != NULL, "malloc for mincore's vector");
    REQUIRE(mincore((void *)start, count * page, vec) == 0, "mincore");
    size_t resident = 0;
    for (size_t i = 0; i < count; i++) resident += vec[i] & 1;
    free(vec);
    return resident;
}

static int judged;   /* numamalloc's rule is checked, not only printed */

static void buffer_rounds(void)
{
    long before = 0;
    for (int round = 0; round < BUFFER_ROUNDS; round++) {
        /* Counted from the third round: the first two may still take the
         * kernel's faults of a first use (code pages, a huge zero page
         * replaced). */
        if (round == 2) before = minor_faults();
        unsigned char *b = calloc(1, BUFFER_SIZE);
        REQUIRE(b != NULL, "calloc(1, %zu)", BUFFER_SIZE);
        size_t bad = first_nonzero(b, BUFFER_SIZE);
        CHECK(bad == BUFFER_SIZE, "round %d: byte %zu of a calloc'ed %zu-byte block is not zero",
              round, bad, BUFFER_SIZE);
        memset(b, 0x5a, BUFFER_SIZE);
        free(b);
    }
    long faults = minor_faults() - before;
    long fresh = (long)(BUFFER_SIZE / (size_t)sysconf(_SC_PAGESIZE));
    printf("buffer: %d rounds of calloc(%zu MiB), fill, free: %ld minor faults in rounds "
           "3..%d (one round of fresh pages: %ld)\n",
           BUFFER_ROUNDS, BUFFER_SIZE / MiB, faults, BUFFER_ROUNDS, fresh);
    if (judged)
        CHECK(faults < fresh, "rounds 3..%d took %ld page faults: the buffer's pages were given "
              "back and faulted in again", BUFFER_ROUNDS, faults);
}

/* `span_size` bytes written and freed, then (when `small` is not 0) a
 * block of `small` bytes on the same span written and freed, then a
 * calloc'ed array of ARRAY_SIZE; with nothing cached before (malloc_trim),
 * so that the span the blocks take is that one. */
static void array_reuse(size_t span_size, size_t small)
{
    malloc_trim(0);
    unsigned char *a = malloc(span_size);
    REQUIRE(a != NULL, "malloc(%zu)", span_size);
    memset(a, 0x5a, span_size);
    free(a);
    if (small) {
        unsigned char *b = malloc(small);
        REQUIRE(b != NULL, "malloc(%zu)", small);
        CHECK(b == a || !judged, "malloc(%zu MiB) did not reuse the freed %zu MiB span", small / MiB, span_size / MiB);
        memset(b, 0x5b, small);
        free(b);
    }
    unsigned char *z = calloc(ARRAY_SIZE / 8, 8);
    REQUIRE(z != NULL, "calloc(%zu, 8)", ARRAY_SIZE / 8);
    size_t resident = resident_pages(z, ARRAY_SIZE);
    printf("array: calloc(%zu MiB) %s a freed %zu MiB block%s: %zu pages resident before any write\n",
           ARRAY_SIZE / MiB, z == a ? "on" : "beside", span_size / MiB,
           small ? " (its span since used by a small one)" : "", resident);
    /* Where a span is not reused there is nothing to give back: the check
     * is about reuse. */
    if (judged) {
        CHECK(z == a, "calloc(%zu MiB) did not reuse the freed span", ARRAY_SIZE / MiB);
        CHECK(resident <= 1, "%zu pages of a calloc'ed %zu MiB array are resident before it is "
              "written: they were cleared, not given back", resident, ARRAY_SIZE / MiB);
    }
    size_t bad = first_nonzero(z, ARRAY_SIZE);
    CHECK(bad == ARRAY_SIZE, "byte %zu of the calloc'ed array is not zero", bad);
    free(z);
}

int main(void)
{
    nm_test_require_numamalloc();
    judged = getenv("NM_TEST_OTHER_ALLOCATOR") == NULL;
    buffer_rounds();
    array_reuse(ARRAY_SIZE, 0);
    /* The rule goes by the block's size, not by what the span has
     * committed: a 3 MiB block left 6 MiB of a 20 MiB span committed. */
    array_reuse(20 * MiB, 3 * MiB);
    return nm_test_done();
}
