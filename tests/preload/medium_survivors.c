/* medium_survivors.c — a few long-lived buffers do not keep a burst's
 * memory resident.
 *
 * The pattern is a server's burst: one thread allocates 64 MiB of request
 * buffers of 16 - 256 KiB (random sizes, fixed seed), writes them, keeps
 * one in 8 at random (session state, a cache entry) and frees the rest.
 * Almost every page that held the buffers keeps a survivor, so giving
 * back whole free pages returns little: what must go back is the inside
 * of the free buffers around the survivors.
 *
 *   delay  after the frees the thread keeps serving small requests (every
 *          10 ms it builds a 512 KiB reply of 1 KiB blocks and frees it)
 *          for up to 1.5 purge delays (1 s by default) plus 1 s: RSS must
 *          fall to at most its value before the burst plus twice the
 *          survivors' size.
 *   exit   the same burst in a thread that then exits, handing its
 *          survivors to the main thread, which serves as above: the same
 *          limit by the purge delay plus 1 s (the exited thread's heap
 *          waits the delay for a new thread, then its free buffers go
 *          back).
 *   trim   the same burst again, then malloc_trim(0) at once: RSS must be
 *          within the same limit right after the call.
 *
 * The test runs the workload twice: in a child without the preload
 * (glibc) and in this process (numamalloc), and prints both; the limits
 * are checked for numamalloc. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define BURST_BYTES (64 * MiB)
#define MAX_BUFFERS 8192
#define KEEP_ONE_IN 8
#define REPLY_BLOCKS 512
/* Deadlines, for the default purge delay of 1 s: a free buffer is found
 * by its thread's next maintenance pass (every half delay) and goes back
 * a delay later; an exited thread's heap waits a delay, then its free
 * buffers go back at once; plus 1 s. */
#define SERVE_DEADLINE 2.5
#define EXIT_DEADLINE 2.0

static void *buffers[MAX_BUFFERS];
static size_t sizes[MAX_BUFFERS];

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* The burst: returns how many buffers it kept (first in `buffers`) and
 * their bytes in *live. */
static size_t burst(uint64_t seed, size_t *live)
{
    size_t n = 0, total = 0;
    while (total < BURST_BYTES) {
        REQUIRE(n < MAX_BUFFERS);
        sizes[n] = 16 * KiB + (size_t)(nm_test_random(&seed) % (240 * KiB));
        buffers[n] = malloc(sizes[n]);
        REQUIRE(buffers[n] != NULL, "malloc(%zu)", sizes[n]);
        memset(buffers[n], 0x5a, sizes[n]);
        total += sizes[n++];
    }
    size_t kept = 0;
    *live = 0;
    for (size_t i = 0; i < n; i++) {
        if (nm_test_random(&seed) % KEEP_ONE_IN == 0) {
            buffers[kept] = buffers[i];
            sizes[kept] = sizes[i];
            *live += sizes[kept++];
        } else {
            free(buffers[i]);
        }
    }
    return kept;
}

/* Free the survivors, each checked first: every byte as the burst wrote
 * it (giving back free buffers' memory must never reach a live one). */
static void drop(size_t kept)
{
    for (size_t i = 0; i < kept; i++) {
        const unsigned char *p = buffers[i];
        size_t k = 0;
        while (k < sizes[i] && p[k] == 0x5a) k++;
        CHECK(k == sizes[i], "survivor %zu (%zu bytes at %p): byte %zu changed", i, sizes[i],
              buffers[i], k);
        free(buffers[i]);
    }
}

/* A small request: a 512 KiB reply built of 1 KiB blocks and freed. */
static void serve(void)
{
    static void *reply[REPLY_BLOCKS];
    for (int i = 0; i < REPLY_BLOCKS; i++) {
        reply[i] = malloc(KiB);
        REQUIRE(reply[i] != NULL);
        memset(reply[i], i, KiB);
    }
    for (int i = 0; i < REPLY_BLOCKS; i++) free(reply[i]);
}

struct result {
    double live_mib;
    double delay_mib, delay_s;   /* RSS above the start, when it reached the limit or the end */
    double exit_mib, exit_s;     /* the same, the burst in a thread that exited */
    double trim_mib;             /* RSS above the start right after malloc_trim(0) */
};

/* Serve until RSS is at most `limit` or `deadline` seconds have passed;
 * returns RSS and the time taken in *seconds. */
static size_t serve_until(size_t limit, double deadline, double *seconds)
{
    double start = nm_test_now();
    size_t rss = nm_test_rss();
    while (rss > limit && nm_test_now() - start < deadline) {
        serve();
        sleep_ms(10);
        rss = nm_test_rss();
    }
    *seconds = nm_test_now() - start;
    return rss;
}

static double above(size_t rss, size_t base)
{
    return (rss > base ? rss - base : 0) / (double)MiB;
}

static size_t thread_kept, thread_live;

static void *burst_thread(void *arg)
{
    (void)arg;
    thread_kept = burst(1, &thread_live);
    return NULL;
}

static void run_workload(struct result *r)
{
    size_t live = 0;
    size_t base = nm_test_rss();
    size_t kept = burst(1, &live);
    r->live_mib = live / (double)MiB;
    r->delay_mib = above(serve_until(base + 2 * live, SERVE_DEADLINE, &r->delay_s), base);
    drop(kept);

    malloc_trim(0);   /* each phase starts with what the last left given back */
    base = nm_test_rss();
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, burst_thread, NULL) == 0);
    REQUIRE(pthread_join(t, NULL) == 0);
    r->exit_mib = above(serve_until(base + 2 * thread_live, EXIT_DEADLINE, &r->exit_s), base);
    drop(thread_kept);

    malloc_trim(0);
    base = nm_test_rss();
    kept = burst(1, &live);   /* the same burst: the same survivors and live size */
    malloc_trim(0);
    r->trim_mib = above(nm_test_rss(), base);
    drop(kept);
}

int main(int argc, char **argv)
{
    (void)argc;
    struct result r;
    if (getenv("MEDIUM_SURVIVORS_CHILD")) {
        run_workload(&r);
        printf("%.1f %.1f %.2f %.1f %.2f %.1f\n", r.live_mib, r.delay_mib, r.delay_s, r.exit_mib,
               r.exit_s, r.trim_mib);
        return 0;
    }
    nm_test_require_numamalloc();
    static const char *const settings[] = { "NUMAMALLOC_PURGE_DELAY_MS", "NUMAMALLOC_PURGE_THREAD",
                                            "NUMAMALLOC_SECURE", "NUMAMALLOC_CONF" };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (getenv(settings[i]))
            nm_test_skip("its deadlines are for the default settings, and %s is set", settings[i]);

    char line[128];
    nm_test_glibc_run(argv[0], "MEDIUM_SURVIVORS_CHILD", line, sizeof line);
    struct result g;
    REQUIRE(sscanf(line, "%lf %lf %lf %lf %lf %lf", &g.live_mib, &g.delay_mib, &g.delay_s,
                   &g.exit_mib, &g.exit_s, &g.trim_mib) == 6, "child said '%s'", line);

    run_workload(&r);
    printf("64 MiB burst of 16-256 KiB buffers, 1 in 8 kept (%.1f MiB); resident above the "
           "start:\n"
           "  serving after it  glibc %5.1f MiB after %.1f s, numamalloc %5.1f MiB after %.1f s\n"
           "  burst's thread exited  glibc %5.1f MiB after %.1f s, numamalloc %5.1f MiB after %.1f s\n"
           "  malloc_trim(0) at once  glibc %5.1f MiB, numamalloc %5.1f MiB\n",
           r.live_mib, g.delay_mib, g.delay_s, r.delay_mib, r.delay_s, g.exit_mib, g.exit_s,
           r.exit_mib, r.exit_s, g.trim_mib, r.trim_mib);
    CHECK(r.delay_mib <= 2 * r.live_mib,
          "serving: %.1f MiB still resident above the start after %.1f s, more than twice the "
          "%.1f MiB kept", r.delay_mib, r.delay_s, r.live_mib);
    CHECK(r.exit_mib <= 2 * r.live_mib,
          "thread exited: %.1f MiB still resident above the start after %.1f s, more than twice "
          "the %.1f MiB kept", r.exit_mib, r.exit_s, r.live_mib);
    CHECK(r.trim_mib <= 2 * r.live_mib,
          "malloc_trim(0): %.1f MiB still resident above the start, more than twice the %.1f MiB "
          "kept", r.trim_mib, r.live_mib);
    return nm_test_done();
}
