/* errno_api.c — the small print of the malloc API: free() leaves errno
 * alone (as glibc's does since 2.33), malloc_usable_size(NULL) is 0,
 * malloc(0) returns unique pointers, free(NULL) does nothing, mallinfo2()
 * follows what is allocated, and malloc_stats() prints to stderr.  (The nm_
 * API is tested in tests/unit/api.c.) */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* Called through volatile pointers, so the compiler cannot treat them as
 * the builtins it knows and drop a malloc/free pair whose memory is never
 * read. */
static void *(*volatile malloc_fn)(size_t) = malloc;
static void (*volatile free_fn)(void *) = free;

static void free_keeps_errno(void)
{
    const size_t sizes[] = {0, 16, 1000, 100000, 300 * KiB, 1 * MiB, 3 * MiB, 64 * MiB};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = malloc_fn(sizes[i]);
            REQUIRE(p != NULL, "malloc(%zu)", sizes[i]);
            memset(p, 1, sizes[i]);
            errno = 4242;
            free_fn(p);
            CHECK(errno == 4242, "free of a %zu-byte block changed errno to %d", sizes[i], errno);
        }
        /* With the cache emptied, frees that return memory to the OS. */
        malloc_trim(0);
    }
    errno = 4242;
    free_fn(NULL);
    CHECK(errno == 4242, "free(NULL) changed errno to %d", errno);
}

static int by_value(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

static void zero_and_null(void)
{
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu",
          malloc_usable_size(NULL));
    enum { N = 1000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc_fn(0);
        CHECK(p[i] != NULL, "malloc(0) returned NULL (call %d)", i);
    }
    void *sorted[N];
    memcpy(sorted, p, sizeof sorted);
    qsort(sorted, N, sizeof sorted[0], by_value);
    for (int i = 1; i < N; i++)
        CHECK(sorted[i] != sorted[i - 1], "malloc(0) returned %p twice", sorted[i]);
    for (int i = 0; i < N; i++) free(p[i]);
    free(NULL);
}

static void mallinfo_follows(void)
{
    struct mallinfo2 before = mallinfo2();
    enum { BIG = 64, SMALL = 10000 };
    void *big[BIG], *small[SMALL];
    for (int i = 0; i < BIG; i++) {
        big[i] = malloc_fn(1 * MiB);
        REQUIRE(big[i] != NULL, "malloc(1 MiB)");
        memset(big[i], 1, 1 * MiB);
    }
    for (int i = 0; i < SMALL; i++) {
        small[i] = malloc_fn(100);
        REQUIRE(small[i] != NULL, "malloc(100)");
        memset(small[i], 1, 100);
    }
    struct mallinfo2 during = mallinfo2();
    for (int i = 0; i < BIG; i++) free_fn(big[i]);
    for (int i = 0; i < SMALL; i++) free_fn(small[i]);
    struct mallinfo2 after = mallinfo2();

    size_t live = BIG * MiB + SMALL * 100;
    CHECK(during.arena > 0, "mallinfo2().arena is 0 with %zu bytes allocated", live);
    CHECK(during.uordblks > 0, "mallinfo2().uordblks is 0 with %zu bytes allocated", live);
    CHECK(during.arena >= during.uordblks, "mallinfo2(): arena %zu < uordblks %zu", during.arena,
          during.uordblks);
    CHECK(during.uordblks >= before.uordblks + live,
          "mallinfo2().uordblks went from %zu to %zu while %zu bytes were allocated",
          before.uordblks, during.uordblks, live);
    CHECK(after.uordblks + BIG * MiB <= during.uordblks,
          "mallinfo2().uordblks went from %zu only to %zu when %d MiB were freed", during.uordblks,
          after.uordblks, BIG);
}

static void malloc_stats_prints(void)
{
    FILE *tmp = tmpfile();
    REQUIRE(tmp != NULL, "tmpfile: %s", strerror(errno));
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0, "dup(2): %s", strerror(errno));
    dup2(fileno(tmp), 2);
    void *p = malloc(1000);
    malloc_stats();
    free(p);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    struct stat st;
    REQUIRE(fstat(fileno(tmp), &st) == 0, "fstat: %s", strerror(errno));
    CHECK(st.st_size > 0, "malloc_stats() wrote nothing to stderr");
    /* It is text: printable characters, tabs and newlines. */
    rewind(tmp);
    int c, bad = 0;
    long n = 0;
    while ((c = fgetc(tmp)) != EOF && n++ < 1000000)
        if (!(c == '\n' || c == '\t' || (c >= 32 && c < 127))) bad++;
    CHECK(bad == 0, "malloc_stats() output has %d non-text bytes", bad);
    fclose(tmp);
}

int main(void)
{
    nm_test_require_numamalloc();
    free_keeps_errno();
    zero_and_null();
    mallinfo_follows();
    malloc_stats_prints();
    return nm_test_done();
}
