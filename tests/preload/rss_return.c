/* rss_return.c — freed memory goes back to the operating system.
 * (a) A 512 MiB burst of small, medium, large and huge blocks, touched and
 *     freed: after malloc_trim(0) RSS is back near where it started.
 * (b) In a fresh process started with NUMAMALLOC_PURGE_DELAY_MS=50 and
 *     NUMAMALLOC_CACHE_MB=32 (options are read at start), the same burst
 *     freed without malloc_trim: once the delay has passed, a few ordinary
 *     allocations (one of 1 MiB) let the allocator purge, and within 2 s RSS
 *     falls below the start plus the 32 MiB cache plus a little slack. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define CACHE_MB 32
/* Near the start: allowed for what the allocator keeps after the burst
 * (metadata of the segments and spans it mapped, partly used pages) — a
 * 512 MiB burst needs ~128 segments' worth of bookkeeping, far under this. */
#define SLACK (16 * MiB)

struct block { unsigned char *p; size_t size; };

/* Allocate and touch ~512 MiB: 96 MiB of 16 B..4 KiB blocks, 160 MiB of
 * 4..256 KiB, 128 MiB of 256 KiB..2 MiB and 128 MiB of 2..16 MiB. */
static struct block *burst(size_t *count, uint64_t seed)
{
    const struct { size_t min, max, total; } mix[] = {
        {16, 4 * KiB, 96 * MiB},
        {4 * KiB, 256 * KiB, 160 * MiB},
        {256 * KiB, 2 * MiB, 128 * MiB},
        {2 * MiB, 16 * MiB, 128 * MiB},
    };
    size_t cap = 1 << 17, n = 0;
    struct block *b = malloc(cap * sizeof *b);
    REQUIRE(b != NULL, "malloc for the block table");
    uint64_t rng = seed;
    for (size_t m = 0; m < sizeof mix / sizeof mix[0]; m++) {
        for (size_t sum = 0; sum < mix[m].total;) {
            size_t size = mix[m].min + (size_t)(nm_test_random(&rng) % (mix[m].max - mix[m].min));
            REQUIRE(n < cap, "block table full");
            b[n].p = malloc(size);
            REQUIRE(b[n].p != NULL, "malloc(%zu)", size);
            b[n].size = size;
            memset(b[n].p, 0x77, size);
            sum += size;
            n++;
        }
    }
    /* Shuffle, so the frees come in no particular order. */
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(nm_test_random(&rng) % i);
        struct block t = b[i - 1];
        b[i - 1] = b[j];
        b[j] = t;
    }
    *count = n;
    return b;
}

static void free_all(struct block *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        CHECK(b[i].p[0] == 0x77 && b[i].p[b[i].size - 1] == 0x77, "block %p changed",
              (void *)b[i].p);
        free(b[i].p);
    }
    free(b);
}

/* The start: a warmed-up allocator with nothing cached. */
static size_t baseline(void)
{
    free(malloc(100));
    free(malloc(1 * MiB));
    malloc_trim(0);
    return nm_test_rss();
}

static void after_trim(void)
{
    size_t base = baseline();
    size_t n;
    struct block *b = burst(&n, 1);
    size_t peak = nm_test_rss();
    CHECK(peak >= base + 480 * MiB, "burst made RSS only %zu KiB (start %zu KiB)", peak / 1024,
          base / 1024);
    free_all(b, n);
    malloc_trim(0);
    size_t rss = nm_test_rss();
    printf("(a) start %zu KiB, peak %zu KiB, after free + malloc_trim %zu KiB\n", base / 1024,
           peak / 1024, rss / 1024);
    CHECK(rss < base + 32 * MiB, "after malloc_trim(0) RSS is %zu KiB, start was %zu KiB",
          rss / 1024, base / 1024);
}

/* Part (b), in the child started with the purge delay and cache size set. */
static int lazy_child(void)
{
    size_t base = baseline();
    size_t n;
    struct block *b = burst(&n, 2);
    size_t peak = nm_test_rss();
    CHECK(peak >= base + 480 * MiB, "burst made RSS only %zu KiB (start %zu KiB)", peak / 1024,
          base / 1024);
    free_all(b, n);
    size_t bound = base + CACHE_MB * MiB + SLACK;
    usleep(100 * 1000); /* twice the purge delay */
    double give_up = nm_test_now() + 2.0;
    size_t rss;
    int polls = 0;
    for (;;) {
        /* Ordinary traffic, which gives the allocator a chance to purge. */
        void *small[16];
        for (int i = 0; i < 16; i++) {
            small[i] = malloc(64 + 200 * (size_t)i);
            REQUIRE(small[i] != NULL, "malloc");
            memset(small[i], 1, 64);
        }
        unsigned char *big = malloc(1 * MiB);
        REQUIRE(big != NULL, "malloc(1 MiB)");
        big[0] = 1;
        free(big);
        for (int i = 0; i < 16; i++) free(small[i]);
        rss = nm_test_rss();
        polls++;
        if (rss < bound || nm_test_now() > give_up) break;
        usleep(50 * 1000);
    }
    printf("(b) start %zu KiB, peak %zu KiB, after free and %d polls %zu KiB (bound %zu KiB)\n",
           base / 1024, peak / 1024, polls, rss / 1024, bound / 1024);
    CHECK(rss < bound,
          "2 s after freeing 512 MiB RSS is %zu KiB; start %zu KiB + %d MiB cache + %zu MiB slack",
          rss / 1024, base / 1024, CACHE_MB, SLACK / MiB);
    return nm_test_done();
}

static void lazy_purge(void)
{
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        char cache[16];
        snprintf(cache, sizeof cache, "%d", CACHE_MB);
        setenv("NUMAMALLOC_PURGE_DELAY_MS", "50", 1);
        setenv("NUMAMALLOC_CACHE_MB", cache, 1);
        execl("/proc/self/exe", "rss_return", "--lazy-child", (char *)NULL);
        fprintf(stderr, "exec /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    int status = 0;
    double give_up = nm_test_now() + 60;
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && nm_test_now() < give_up) usleep(10 * 1000);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        CHECK(0, "part (b) child did not finish in 60 s");
        return;
    }
    CHECK(r == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "part (b) (lazy purge, in a child) failed: status %#x", status);
}

int main(int argc, char **argv)
{
    nm_test_require_numamalloc();
    if (argc > 1 && strcmp(argv[1], "--lazy-child") == 0) return lazy_child();
    after_trim();
    lazy_purge();
    return nm_test_done();
}
