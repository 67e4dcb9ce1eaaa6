/* steady_faults.c — a steady workload takes no more page faults under
 * numamalloc than under glibc.
 *
 * The pattern is a server at a flat load: 6 threads each keep 4096 live
 * blocks (70% of 16-512 B, 25% of 512 B - 8 KiB, 5% of 8-64 KiB, fixed
 * seeds) and serve "requests": a request replaces 500 random blocks (free,
 * allocate, write every 4 KiB page of the new block), then the thread
 * sleeps 1 ms, as a server waits for its next request.  After a warm-up of
 * 200 requests per thread (the live set is built and has churned), the
 * steady phase of 2000 requests per thread lasts about 2.5 s, longer than
 * the default purge delay: memory that waits longer than the delay and is
 * then used again would be faulted in again.
 *
 * The test runs the workload twice: in a child without the preload
 * (glibc) and in this process (numamalloc), and compares the minor page
 * faults of the steady phase (getrusage, the whole process).  numamalloc
 * must take no more than glibc.  Live bytes are the same in both; RSS at
 * the end is printed for both. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "../testutil.h"

#define THREADS 6
#define SLOTS 4096
#define WARM_REQUESTS 200
#define STEADY_REQUESTS 2000
#define OPS_PER_REQUEST 500

static pthread_barrier_t phase;

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *seed)
{
    uint64_t r = next_random(seed);
    unsigned band = (unsigned)(r % 100);
    size_t lo, hi;
    if (band < 70) { lo = 16; hi = 512; }
    else if (band < 95) { lo = 512; hi = 8192; }
    else { lo = 8192; hi = 65536; }
    return lo + (size_t)((r >> 8) % (hi - lo));
}

static void *fill(size_t size, uint64_t tag)
{
    unsigned char *p = malloc(size);
    REQUIRE(p != NULL);
    for (size_t off = 0; off < size; off += 4096) p[off] = (unsigned char)tag;
    p[size - 1] = (unsigned char)tag;
    return p;
}

static void request(void **slot, uint64_t *seed)
{
    for (int k = 0; k < OPS_PER_REQUEST; k++) {
        size_t i = (size_t)(next_random(seed) % SLOTS);
        free(slot[i]);
        slot[i] = fill(pick_size(seed), i);
    }
    struct timespec ts = { 0, 1000 * 1000 };
    nanosleep(&ts, NULL);
}

static void *server_thread(void *arg)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
    void **slot = calloc(SLOTS, sizeof *slot);
    REQUIRE(slot != NULL);
    for (size_t i = 0; i < SLOTS; i++) slot[i] = fill(pick_size(&seed), i);
    for (int r = 0; r < WARM_REQUESTS; r++) request(slot, &seed);
    pthread_barrier_wait(&phase);   /* warm */
    pthread_barrier_wait(&phase);   /* counting from here */
    for (int r = 0; r < STEADY_REQUESTS; r++) request(slot, &seed);
    pthread_barrier_wait(&phase);   /* steady phase done */
    for (size_t i = 0; i < SLOTS; i++) free(slot[i]);
    free(slot);
    return NULL;
}

/* Run the workload; returns the steady phase's faults, sets *rss_mib. */
static long run_workload(double *rss_mib)
{
    pthread_barrier_init(&phase, NULL, THREADS + 1);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, server_thread, (void *)(intptr_t)i) == 0);
    pthread_barrier_wait(&phase);
    long before = nm_test_minor_faults();
    pthread_barrier_wait(&phase);
    pthread_barrier_wait(&phase);
    long faults = nm_test_minor_faults() - before;
    *rss_mib = nm_test_rss() / 1048576.0;
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    return faults;
}

int main(int argc, char **argv)
{
    (void)argc;
    if (getenv("STEADY_FAULTS_CHILD")) {
        double rss;
        long faults = run_workload(&rss);
        printf("%ld %.1f\n", faults, rss);
        return 0;
    }
    nm_test_require_numamalloc();

    /* glibc: this program again, without the preload. */
    char line[128];
    nm_test_glibc_run(argv[0], "STEADY_FAULTS_CHILD", line, sizeof line);
    long glibc_faults = 0;
    double glibc_rss = 0;
    REQUIRE(sscanf(line, "%ld %lf", &glibc_faults, &glibc_rss) == 2, "child said '%s'", line);

    double rss;
    long faults = run_workload(&rss);
    printf("steady phase, %d threads x %d requests: page faults glibc %ld, numamalloc %ld; "
           "RSS glibc %.1f MiB, numamalloc %.1f MiB\n",
           THREADS, STEADY_REQUESTS, glibc_faults, faults, glibc_rss, rss);
    CHECK(faults <= glibc_faults, "numamalloc took %ld page faults, glibc %ld", faults,
          glibc_faults);
    return nm_test_done();
}
