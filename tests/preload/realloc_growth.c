/* realloc_growth.c — a buffer that doubles with realloc (a string builder,
 * a vector, a read buffer) while the program allocates other things in
 * between: its pages move with mremap, never copied, at every growth.
 *
 * The buffer grows from 1 MiB to 256 MiB, each step writing one byte per
 * 4 KiB page of its new half; between steps a 300 KiB block is allocated
 * and kept, so the buffer cannot always grow where it is.  A copy faults
 * in the old part again at every step that moves it (about twice the page
 * faults in all).  The test runs the pattern twice: in a child without
 * the preload (glibc, which moves its mmapped chunks with mremap) and in
 * this process (numamalloc), with transparent huge pages off for the
 * process (prctl) so that page faults count 4 KiB pages in both, and
 * compares the minor page faults.  Without a copy both take about one
 * fault per page of the final buffer, so numamalloc must take at most
 * 1.1x glibc's (a copy of the moved steps took 1.29x). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "../testutil.h"

#define MiB ((size_t)1 << 20)
#define FIRST (1 * MiB)
#define LAST (256 * MiB)
#define OTHER (300 * 1024)
#define STEPS 8   /* 1 MiB doubled 8 times */

static void *(*volatile realloc_fn)(void *, size_t) = realloc;

static void touch(unsigned char *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i += 4096) p[i] = (unsigned char)(i >> 12);
}

/* Minor page faults of the growth, or -1 when a step lost data. */
static long grow(void)
{
    void *other[STEPS];
    long before = nm_test_minor_faults();
    unsigned char *buf = malloc(FIRST);
    if (!buf) return -1;
    touch(buf, 0, FIRST);
    size_t size = FIRST;
    for (int step = 0; step < STEPS; step++) {
        other[step] = malloc(OTHER);
        if (!other[step]) return -1;
        ((unsigned char *)other[step])[0] = 1;
        unsigned char *bigger = realloc_fn(buf, 2 * size);
        if (!bigger) return -1;
        for (size_t i = 0; i < size; i += 64 * 4096)
            if (bigger[i] != (unsigned char)(i >> 12)) return -1;
        buf = bigger;
        touch(buf, size, 2 * size);
        size *= 2;
    }
    long faults = nm_test_minor_faults() - before;
    free(buf);
    for (int step = 0; step < STEPS; step++) free(other[step]);
    return faults;
}

int main(int argc, char **argv)
{
    (void)argc;
    /* 4 KiB page faults in both runs, whatever the system's THP mode. */
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) {
        printf("prctl(PR_SET_THP_DISABLE) refused: fault counts would not compare\n");
        return 77;
    }
    if (getenv("REALLOC_GROWTH_CHILD")) {
        printf("%ld\n", grow());
        return 0;
    }
    nm_test_require_numamalloc();

    /* glibc: this program again, without the preload. */
    char line[64];
    nm_test_glibc_run(argv[0], "REALLOC_GROWTH_CHILD", line, sizeof line);
    long glibc_faults = atol(line);
    REQUIRE(glibc_faults > 0, "glibc's run failed (child said '%s')", line);

    long faults = grow();
    REQUIRE(faults >= 0, "a growth lost the buffer's contents");
    printf("buffer doubled from 1 to 256 MiB with 300 KiB blocks allocated between steps: "
           "page faults glibc %ld, numamalloc %ld\n", glibc_faults, faults);
    CHECK(faults * 10 <= glibc_faults * 11, "numamalloc took %ld page faults, glibc %ld: "
          "the buffer was copied", faults, glibc_faults);
    return nm_test_done();
}
