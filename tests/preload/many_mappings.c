/* many_mappings.c — a heap of many live blocks stays within the kernel's
 * limit on mappings (vm.max_map_count, 65,530 by default).
 *
 * Four threads each keep 25,000 live 260 KiB blocks (large blocks: one
 * 4 MiB span each, 400 GiB of address space in all) and 250,000 live small
 * blocks of 16..256 B, writing one byte of each.  Every allocation must
 * succeed and /proc/self/maps must stay under 2,000 lines while they live;
 * once all are freed and malloc_trim(0) has run, the mapping count and RSS
 * must be back near where they started.  Untouched memory costs nothing:
 * the allocator reserves address space with MAP_NORESERVE, so this needs
 * vm.overcommit_memory 0 or 1 (with 2 the kernel charges every reservation
 * and the test is skipped). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define THREADS 4
#define LARGE_PER_THREAD 25000          /* 100,000 in all */
#define SMALL_PER_THREAD 250000         /* 1,000,000 in all */
#define LARGE_SIZE (260 * KiB)

/* While the blocks live.  What numamalloc maps for them: 400 GiB of spans
 * carved from reservations of at most 1 GiB (at least 400 of them, one
 * mapping each), the small blocks' ~136 MB in a few dozen segments (a few
 * reservations), and per thread a heap struct; the process itself (program,
 * libraries, stacks of the four threads with their guard pages) takes under
 * 100 lines.  2,000 leaves room for reservations that are partly used; one
 * mapping per block (what a plain mmap per span gives) is 100,000. */
#define MAPS_LIVE_MAX 2000

/* After everything is freed and trimmed, above the start: glibc keeps the
 * stacks of exited threads for reuse (stack + guard page: 2 lines each, 8),
 * numamalloc keeps each thread's heap struct (one mapping each, 4) and may
 * keep one partly used reservation per arena it used (local and
 * first-touch: 2).  14 in all; 16 allows the two lines a libc may add for
 * its own bookkeeping. */
#define MAPS_AFTER_SLACK 16

/* RSS after: the heap structs and cached thread stacks above (a few pages
 * each), the bytes of numamalloc's address map covering 400 GiB (100 KiB),
 * and the bookkeeping pages of empty reservations: far under 16 MiB.
 * At peak each large block has two pages resident (the span's header page,
 * written by the allocator, and the page we write), so RSS grows by at least
 * 100,000 x 8 KiB = 781 MiB, which makes the bound after meaningful. */
#define RSS_AFTER_SLACK (16 * MiB)
#define RSS_PEAK_MIN (100000 * 8 * KiB)

struct worker {
    int id;
    unsigned char **large;
    unsigned char **small;
    size_t large_done, small_done;
    size_t failed_size;                 /* size of the first failed malloc, 0: none */
    int failed_errno;
};

static pthread_barrier_t allocated, checked;

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    REQUIRE(f != NULL, "open /proc/self/maps: %s", strerror(errno));
    int lines = 0, c;
    while ((c = getc(f)) != EOF)
        if (c == '\n') lines++;
    fclose(f);
    return lines;
}

/* Bookkeeping comes straight from the kernel, so that it neither adds to
 * nor depends on the allocator under test. */
static void *table(size_t entries)
{
    void *p = mmap(NULL, entries * sizeof(void *), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED, "mmap: %s", strerror(errno));
    return p;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(w->id + 1);
    /* Ten small blocks, then one large, so both kinds grow together. */
    while (!w->failed_size && (w->large_done < LARGE_PER_THREAD || w->small_done < SMALL_PER_THREAD)) {
        for (int i = 0; i < 10 && w->small_done < SMALL_PER_THREAD; i++) {
            rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
            size_t size = 16 + (size_t)((rng * 2685821657736338717ull) >> 32) % 241;
            unsigned char *p = malloc(size);
            if (!p) { w->failed_size = size; w->failed_errno = errno; break; }
            p[0] = (unsigned char)w->id;
            w->small[w->small_done++] = p;
        }
        if (w->failed_size || w->large_done == LARGE_PER_THREAD) continue;
        unsigned char *p = malloc(LARGE_SIZE);
        if (!p) { w->failed_size = LARGE_SIZE; w->failed_errno = errno; break; }
        p[0] = (unsigned char)w->id;
        w->large[w->large_done++] = p;
    }
    pthread_barrier_wait(&allocated);
    pthread_barrier_wait(&checked);     /* main counted the mappings */
    for (size_t i = 0; i < w->large_done; i++) {
        CHECK(w->large[i][0] == (unsigned char)w->id, "large block %zu of thread %d changed", i, w->id);
        free(w->large[i]);
    }
    for (size_t i = 0; i < w->small_done; i++) {
        CHECK(w->small[i][0] == (unsigned char)w->id, "small block %zu of thread %d changed", i, w->id);
        free(w->small[i]);
    }
    return NULL;
}

int main(void)
{
    nm_test_require_numamalloc();
    char buf[16] = "";
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
    }
    if (buf[0] == '2')
        nm_test_skip("vm.overcommit_memory is 2: the kernel would charge the 400 GiB of "
                     "address space this test reserves (MAP_NORESERVE is ignored)");

    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .id = i + 1 };
        w[i].large = table(LARGE_PER_THREAD);
        w[i].small = table(SMALL_PER_THREAD);
    }
    /* The start: a warmed-up allocator with nothing cached. */
    free(malloc(100));
    free(malloc(LARGE_SIZE));
    malloc_trim(0);
    int maps_start = count_maps();
    size_t rss_start = nm_test_rss();

    pthread_barrier_init(&allocated, NULL, THREADS + 1);
    pthread_barrier_init(&checked, NULL, THREADS + 1);
    pthread_t t[THREADS];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, work, &w[i]) == 0, "pthread_create");
    pthread_barrier_wait(&allocated);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    int maps_live = count_maps();
    size_t rss_peak = nm_test_rss();
    size_t large = 0, small = 0;
    for (int i = 0; i < THREADS; i++) {
        large += w[i].large_done;
        small += w[i].small_done;
        CHECK(w[i].failed_size == 0, "thread %d: malloc(%zu) failed (%s) after %zu large and "
              "%zu small blocks", w[i].id, w[i].failed_size, strerror(w[i].failed_errno),
              w[i].large_done, w[i].small_done);
    }
    printf("live: %zu large + %zu small blocks in %.2f s, %d lines in /proc/self/maps "
           "(start %d), RSS %zu MiB (start %zu MiB)\n", large, small,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           maps_live, maps_start, rss_peak / MiB, rss_start / MiB);
    CHECK(maps_live < MAPS_LIVE_MAX, "%d mappings with the blocks live (bound %d)", maps_live,
          MAPS_LIVE_MAX);
    if (large == THREADS * (size_t)LARGE_PER_THREAD)
        CHECK(rss_peak >= rss_start + RSS_PEAK_MIN, "peak RSS %zu KiB, start %zu KiB",
              rss_peak / KiB, rss_start / KiB);

    pthread_barrier_wait(&checked);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    malloc_trim(0);
    int maps_end = count_maps();
    size_t rss_end = nm_test_rss();
    printf("all freed and trimmed: %d lines in /proc/self/maps, RSS %zu MiB\n", maps_end,
           rss_end / MiB);
    CHECK(maps_end <= maps_start + MAPS_AFTER_SLACK, "%d mappings after freeing, %d at the start",
          maps_end, maps_start);
    CHECK(rss_end < rss_start + RSS_AFTER_SLACK, "RSS %zu KiB after freeing, %zu KiB at the start",
          rss_end / KiB, rss_start / KiB);
    return nm_test_done();
}
