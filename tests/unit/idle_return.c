/* idle_return.c — memory a program frees goes back to the OS on time, on
 * every path where a thread that holds it stops calling malloc.  Each case
 * runs in a process of its own with its own NUMAMALLOC_PURGE_DELAY_MS, and
 * measures RSS: at the start (base), with the blocks live (peak), and at
 * the deadline; it must be back within 1/8 of what the blocks added
 * (peak - base).  What may stay: the first page of each size class the
 * threads used (at most 1 MiB per class here) and the pages of the few
 * blocks kept live, a few MiB against the 64-128 MiB freed.
 *
 *   idle_owner   thread A allocates 64 MiB of 1 KiB blocks and hands them
 *                to thread B, which frees them all; A, B and main then wait
 *                without allocating.  Deadline: the purge delay (300 ms)
 *                plus 1 s.  Blocks freed by other threads go back although
 *                their owner never collects them.
 *   idle_freer   thread A allocates 64 MiB of 16 B blocks; thread B frees
 *                two blocks of every page first (blocks it may keep for
 *                its own next allocations, or hand to its arena for other
 *                threads' as whole lists), then all the others; A, B and
 *                main wait.  Deadline: the purge delay (300 ms) plus 1 s.
 *                Blocks a thread kept from other threads' pages go back
 *                when it stops allocating, those its arena holds when no
 *                thread takes them, and so do their pages.
 *   idle_class   the same, but B goes on freeing a 32 B block of A's every
 *                20 ms: the 16 B blocks it kept go back although it is
 *                not idle (a class it stopped using pins no page).
 *   master_idle  (purge delay 5 s) a server's start: thread A (the
 *                master) allocates 64 MiB of 1 KiB blocks and waits for
 *                its worker; thread B allocates as much in 2 KiB blocks
 *                of its own (another size class: none of A's memory
 *                serves it), then frees A's blocks, all but one in 4096
 *                (4 MiB), which A keeps (its settings, say), in 8 rounds
 *                250 ms apart, each over all of A's pages (as requests
 *                come), and waits.
 *                Deadline: 3 s after the last free, well before the
 *                delay: RSS back within the limit above what B holds.
 *                A's free pages are not in demand while A does not
 *                allocate, so they wait no delay (arena.h: nm_purge_owner_idle);
 *                under the delay alone, A's 64 MiB would stay beside B's
 *                for 5 s.  A purge pass that runs between two rounds
 *                finds no page of A's free yet: a later one must come.
 *   master_empty  the same, but A keeps nothing: its segments empty whole
 *                and go to the node's cache, from where the same pass
 *                gives them back.
 *   master_remote  the same, but B works in a heap of its own (nm_heap_new,
 *                nm_thread_set_heap), as a worker on another node does in
 *                its node's: every free of A's blocks goes to A's pages'
 *                remote lists (B keeps none for itself), and nothing of
 *                B's waits to wake the purge thread: A's frees must.
 *   thread_exit  4 threads each allocate 32 MiB of 1-32 KiB blocks, free
 *                all but their first block, and exit.  Deadline: the purge
 *                delay plus 1 s.  An exited thread's free pages go back
 *                although no other thread takes its heap.
 *   one_allocator  a server whose second thread never allocates (it only
 *                waits, as an I/O or signal thread may): main allocates
 *                64 MiB of 1 KiB blocks right after creating it, frees
 *                them all, then serves a 1 KiB request every 20 ms, always
 *                from a page it has (no slow path after the frees).
 *                Deadline: the purge delay (300 ms) plus 1 s.  The purge
 *                thread starts although no free may start it and nothing
 *                waited before the frees.
 *   fork_child   (purge delay 2 s) a thread allocates 64 MiB of 1-32 KiB
 *                blocks, frees all but its first one and waits; main forks
 *                at once (the parent has given nothing back yet).  The
 *                child, where that thread does not exist and which has one
 *                thread (so no purge thread), allocates a block, waits the
 *                purge delay, allocates another: its RSS, which starts with
 *                the parent's pages, is back by the purge delay plus 1 s.
 *   trim_heaps   (purge delay 10 s) a thread allocates 48 MiB from a heap
 *                with a policy (nm_heap_new) and 16 MiB with
 *                nm_malloc_onnode, frees all but the first block of each,
 *                and waits; main calls nm_trim(): RSS is back at once,
 *                though the delay has not passed and the memory is another
 *                thread's.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "../testutil.h"
#include "heap.h"   /* nm_tls_heap, the arena's lists: idle_freer checks that blocks were kept */
#include "numamalloc.h"

#define MiB ((size_t)1 << 20)

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Wait until RSS is at most `limit` or `deadline_ms` passes; returns RSS. */
static size_t rss_by(size_t limit, uint64_t deadline_ms)
{
    size_t rss = nm_test_rss();
    while (rss > limit && now_ms() < deadline_ms) {
        sleep_ms(20);
        rss = nm_test_rss();
    }
    return rss;
}

static void report(const char *name, size_t base, size_t peak, size_t after, size_t limit,
                   uint64_t waited_ms)
{
    printf("%-12s base %5.1f MiB, peak %6.1f MiB, after %5.1f MiB (limit %5.1f) in %llu ms\n",
           name, base / (double)MiB, peak / (double)MiB, after / (double)MiB,
           limit / (double)MiB, (unsigned long long)waited_ms);
    CHECK(after <= limit, "%s: %.1f MiB still resident, more than %.1f MiB", name,
          after / (double)MiB, limit / (double)MiB);
}

static size_t limit_for(size_t base, size_t peak)
{
    return base + (peak > base ? (peak - base) / 8 : 0);
}

/* Touch every page of a block, so that it is resident. */
static void *alloc_touched(size_t size)
{
    char *p = malloc(size);
    REQUIRE(p != NULL);
    memset(p, 0x5a, size);
    return p;
}

/* The two-thread cases: `allocator` and `freer` each wait on `step` three
 * times (1: allocated, 2: freed, 3: measured, exit).  Main measures the
 * peak at 1; after 2 it runs `freed` (may be NULL) and waits for RSS to
 * fall within the limit by the purge delay (300 ms) plus 1 s; then it runs
 * `measured` (may be NULL) and lets the threads exit. */
static pthread_barrier_t step;

static void two_thread_case(const char *name, void *(*allocator)(void *),
                            void *(*freer_fn)(void *), void (*freed)(void),
                            void (*measured_fn)(void))
{
    pthread_barrier_init(&step, NULL, 3);
    size_t base = nm_test_rss();
    pthread_t a, b;
    pthread_create(&a, NULL, allocator, NULL);
    pthread_create(&b, NULL, freer_fn, NULL);
    pthread_barrier_wait(&step);
    size_t peak = nm_test_rss();
    pthread_barrier_wait(&step);
    if (freed) freed();
    uint64_t start = now_ms();
    size_t limit = limit_for(base, peak);
    size_t after = rss_by(limit, start + 300 + 1000);
    report(name, base, peak, after, limit, now_ms() - start);
    if (measured_fn) measured_fn();
    pthread_barrier_wait(&step);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&step);
}

/* The allocating thread's part, once it has allocated. */
static void allocator_steps(void)
{
    pthread_barrier_wait(&step);   /* 1: allocated */
    pthread_barrier_wait(&step);   /* 2: freed by the other thread */
    pthread_barrier_wait(&step);   /* 3: measured; exit */
}

/* ---- idle_owner ------------------------------------------------------------------- */

#define IDLE_BLOCKS (64 * 1024)
static void *idle_blocks[IDLE_BLOCKS];

static void *idle_allocator(void *arg)
{
    (void)arg;
    for (int i = 0; i < IDLE_BLOCKS; i++) idle_blocks[i] = alloc_touched(1024);
    allocator_steps();
    return NULL;
}

static void *idle_freer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&step);
    for (int i = 0; i < IDLE_BLOCKS; i++) free(idle_blocks[i]);
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    return NULL;
}

static void case_idle_owner(void)
{
    two_thread_case("idle_owner", idle_allocator, idle_freer, NULL, NULL);
}

/* ---- master_idle ------------------------------------------------------------------- */

static void *master_blocks[IDLE_BLOCKS];
#define MASTER_ROUNDS 8     /* the worker's rounds of frees */
static int master_keeps = 4096;   /* the master keeps one block in this many (0: none) */

static void *master(void *arg)
{
    (void)arg;
    for (int i = 0; i < IDLE_BLOCKS; i++) master_blocks[i] = alloc_touched(1024);
    allocator_steps();
    return NULL;
}

static bool worker_own_heap;   /* master_remote: B allocates from a heap of its own */

static void *worker(void *arg)
{
    (void)arg;
    nm_heap_t *own_heap = NULL;
    if (worker_own_heap) {
        own_heap = nm_heap_new(NULL);
        REQUIRE(own_heap != NULL, "nm_heap_new: %s", strerror(errno));
        nm_thread_set_heap(own_heap);
    }
    pthread_barrier_wait(&step);
    static void *own[IDLE_BLOCKS / 2];
    for (int i = 0; i < IDLE_BLOCKS / 2; i++) own[i] = alloc_touched(2048);
    for (int round = 0; round < MASTER_ROUNDS; round++) {
        if (round > 0) sleep_ms(250);
        for (int i = 2 * round; i < IDLE_BLOCKS; i += 2 * MASTER_ROUNDS) {
            if (master_keeps == 0 || i % master_keeps != 0) free(master_blocks[i]);
            free(master_blocks[i + 1]);
        }
    }
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    for (int i = 0; i < IDLE_BLOCKS / 2; i++) free(own[i]);
    for (int i = 0; master_keeps && i < IDLE_BLOCKS; i += master_keeps) free(master_blocks[i]);
    if (own_heap) {
        nm_thread_set_heap(NULL);
        nm_heap_destroy(own_heap);
    }
    return NULL;
}

static void master_case(const char *name)
{
    pthread_barrier_init(&step, NULL, 3);
    size_t base = nm_test_rss();
    pthread_t a, b;
    pthread_create(&a, NULL, master, NULL);
    pthread_create(&b, NULL, worker, NULL);
    pthread_barrier_wait(&step);   /* 1: A allocated */
    size_t held = nm_test_rss() - base;
    pthread_barrier_wait(&step);   /* 2: B allocated its own and freed A's */
    uint64_t start = now_ms();
    size_t peak = nm_test_rss();
    /* What may stay: B's blocks, as much as A's were, and 1/8 of A's. */
    size_t limit = base + held + held / 8;
    size_t after = rss_by(limit, start + 3000);
    report(name, base, peak, after, limit, now_ms() - start);
    pthread_barrier_wait(&step);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&step);
}

static void case_master_idle(void)
{
    master_case("master_idle");
}

static void case_master_empty(void)
{
    master_keeps = 0;
    master_case("master_empty");
}

static void case_master_remote(void)
{
    worker_own_heap = true;
    master_case("master_remote");
}

/* ---- idle_freer -------------------------------------------------------------------- */

/* 4M blocks of 16 B (64 MiB, 1024 pages of 64 KiB): the freeing thread
 * frees every 2048th first, two blocks of every page, which it may keep
 * for its own allocations (heap.h: foreign), then the rest. */
#define FREER_BLOCKS ((size_t)4 << 20)
#define FREER_STRIDE 2048
static void **freer_blocks;
static uint32_t freer_kept;   /* blocks the freeing thread kept, itself or in its arena */
/* idle_class: the freeing thread goes on freeing a 32 B block of the
 * allocator's every 20 ms while main measures. */
#define FREER_TRICKLE 200
static bool freer_trickle;
static void *trickle_blocks[FREER_TRICKLE];
static _Atomic bool measured;

static void *freer_allocator(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < FREER_BLOCKS; i++) {
        freer_blocks[i] = malloc(16);
        REQUIRE(freer_blocks[i] != NULL);
        memset(freer_blocks[i], 0x33, 16);
    }
    for (int i = 0; i < FREER_TRICKLE; i++) trickle_blocks[i] = alloc_touched(32);
    allocator_steps();
    return NULL;
}

static void *freer(void *arg)
{
    (void)arg;
    free(alloc_touched(16));   /* a thread that allocates too */
    pthread_barrier_wait(&step);
    for (size_t i = 0; i < FREER_BLOCKS; i += FREER_STRIDE) free(freer_blocks[i]);
    for (size_t i = 0; i < FREER_BLOCKS; i++)
        if (i % FREER_STRIDE) free(freer_blocks[i]);
    freer_kept = atomic_load(&nm_tls_heap->foreign_blocks);
    struct nm_transfer *t = &nm_segment_of(freer_blocks[0])->arena->transfer[nm_size_class(16)];
    for (int i = 0; i < NM_TRANSFER_SLOTS; i++)
        freer_kept += (uint32_t)(atomic_load(&t->slot[i]) & NM_TRANSFER_MAX_BLOCKS);
    pthread_barrier_wait(&step);
    for (int i = 0; freer_trickle && !atomic_load(&measured); i++) {
        if (i < FREER_TRICKLE) free(trickle_blocks[i]);
        sleep_ms(20);
    }
    pthread_barrier_wait(&step);
    return NULL;
}

static void freer_blocks_unmap(void)
{
    munmap(freer_blocks, FREER_BLOCKS * sizeof *freer_blocks);
}

static void freer_measured(void)
{
    /* Else the case shows nothing about kept blocks. */
    CHECK(freer_kept >= 2048, "the freeing thread kept only %u blocks", freer_kept);
    atomic_store(&measured, true);
}

static void freer_case(const char *name)
{
    /* The block array is outside the allocator under test. */
    freer_blocks = mmap(NULL, FREER_BLOCKS * sizeof *freer_blocks, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(freer_blocks != MAP_FAILED);
    two_thread_case(name, freer_allocator, freer, freer_blocks_unmap, freer_measured);
}

static void case_idle_freer(void)
{
    freer_case("idle_freer");
}

static void case_idle_class(void)
{
    freer_trickle = true;
    freer_case("idle_class");
}

/* ---- thread_exit ------------------------------------------------------------------ */

#define EXIT_THREADS 4
#define EXIT_BYTES (32 * MiB)

/* Allocate `bytes` in blocks of 1-32 KiB (small and medium pages), free all
 * but the first; returns the one kept. */
static void *churn(size_t bytes)
{
    size_t count = 0, held = 0;
    void **kept = mmap(NULL, 32 * 1024 * sizeof *kept, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(kept != MAP_FAILED);
    for (unsigned k = 0; held < bytes; k++) {
        size_t size = (size_t)1024 << (k % 6);
        kept[count++] = alloc_touched(size);
        held += size;
    }
    for (size_t i = 1; i < count; i++) free(kept[i]);
    void *first = kept[0];
    munmap(kept, 32 * 1024 * sizeof *kept);
    return first;
}

static void *exiting_thread(void *arg)
{
    *(void **)arg = churn(EXIT_BYTES);
    return NULL;
}

static void case_thread_exit(void)
{
    size_t base = nm_test_rss();
    pthread_t t[EXIT_THREADS];
    void *kept[EXIT_THREADS];
    size_t peak = 0;
    for (int i = 0; i < EXIT_THREADS; i++) pthread_create(&t[i], NULL, exiting_thread, &kept[i]);
    for (int i = 0; i < EXIT_THREADS; i++) pthread_join(t[i], NULL);
    /* The blocks were freed before the threads ended: the peak is what
     * they wrote, EXIT_THREADS * EXIT_BYTES (RSS now still holds it, or
     * less if some was already given back). */
    peak = base + EXIT_THREADS * EXIT_BYTES;
    uint64_t start = now_ms();
    size_t limit = limit_for(base, peak);
    size_t after = rss_by(limit, start + 300 + 1000);
    report("thread_exit", base, peak, after, limit, now_ms() - start);
    for (int i = 0; i < EXIT_THREADS; i++) free(kept[i]);
}

/* ---- one_allocator ------------------------------------------------------------------ */

static void *waiting_thread(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&step);   /* until main is done; no allocation */
    return NULL;
}

static void case_one_allocator(void)
{
    pthread_barrier_init(&step, NULL, 2);
    size_t base = nm_test_rss();
    pthread_t t;
    pthread_create(&t, NULL, waiting_thread, NULL);
    enum { N = 64 * 1024 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) blocks[i] = alloc_touched(1024);
    size_t peak = nm_test_rss();
    for (int i = 0; i < N; i++) free(blocks[i]);
    uint64_t start = now_ms();
    size_t limit = limit_for(base, peak);
    size_t after = nm_test_rss();
    while (after > limit && now_ms() < start + 300 + 1000) {
        free(alloc_touched(1024));   /* a request */
        sleep_ms(20);
        after = nm_test_rss();
    }
    report("one_allocator", base, peak, after, limit, now_ms() - start);
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
}

/* ---- fork_child and trim_heaps: a thread that holds free memory and waits ------------- */

static nm_heap_t *policy_heap;
static bool use_heaps;

static void *holding_thread(void *arg)
{
    (void)arg;
    void *kept = NULL, *heap_kept = NULL, *node_kept = NULL;
    if (use_heaps) {
        /* 48 MiB from the heap and 16 MiB on node 0, all freed but one. */
        static void *p[64 * 1024];
        size_t n = 0;
        for (size_t held = 0; held < 48 * MiB; held += 4096) {
            p[n] = nm_heap_malloc(policy_heap, 4096);
            REQUIRE(p[n] != NULL);
            memset(p[n++], 0x11, 4096);
        }
        heap_kept = p[0];
        for (size_t i = 1; i < n; i++) free(p[i]);
        n = 0;
        for (size_t held = 0; held < 16 * MiB; held += 2048) {
            p[n] = nm_malloc_onnode(2048, nm_current_node());
            REQUIRE(p[n] != NULL);
            memset(p[n++], 0x22, 2048);
        }
        node_kept = p[0];
        for (size_t i = 1; i < n; i++) free(p[i]);
    } else {
        kept = churn(64 * MiB);
    }
    pthread_barrier_wait(&step);   /* 1: holding free memory */
    pthread_barrier_wait(&step);   /* 2: done */
    free(kept);
    free(heap_kept);
    free(node_kept);
    return NULL;
}

static void case_fork_child(void)
{
    pthread_barrier_init(&step, NULL, 2);
    size_t base = nm_test_rss();
    pthread_t t;
    pthread_create(&t, NULL, holding_thread, NULL);
    pthread_barrier_wait(&step);
    size_t peak = base + 64 * MiB;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        /* The child has one thread: no purge thread starts there (a
         * single-threaded program stays single-threaded); it purges on its
         * allocation paths.  It does a little work of its own, waits the
         * purge delay, allocates once more, and waits. */
        free(alloc_touched(200 * 1024));
        uint64_t start = now_ms();
        sleep_ms(2000 + 100);
        free(alloc_touched(1024 * 1024));
        size_t limit = limit_for(base, peak);
        size_t after = rss_by(limit, start + 2000 + 1000);
        report("fork_child", base, peak, after, limit, now_ms() - start);
        fflush(stdout);
        _exit(nm_test_failures ? 1 : 0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's check failed");
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
}

static void case_trim_heaps(void)
{
    pthread_barrier_init(&step, NULL, 2);
    nm_policy p = nm_policy_preferred(nm_current_node());
    policy_heap = nm_heap_new(&p);
    REQUIRE(policy_heap != NULL);
    use_heaps = true;
    size_t base = nm_test_rss();
    pthread_t t;
    pthread_create(&t, NULL, holding_thread, NULL);
    pthread_barrier_wait(&step);
    size_t peak = base + 64 * MiB;
    size_t limit = limit_for(base, peak);
    nm_trim();
    size_t after = nm_test_rss();
    report("trim_heaps", base, peak, after, limit, 0);
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
    nm_heap_destroy(policy_heap);
}

/* ---- driver ------------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(void);
    const char *delay_ms;
} cases[] = {
    { "idle_owner", case_idle_owner, "300" },
    { "master_idle", case_master_idle, "5000" },
    { "master_empty", case_master_empty, "5000" },
    { "master_remote", case_master_remote, "5000" },
    { "idle_freer", case_idle_freer, "300" },
    { "idle_class", case_idle_class, "300" },
    { "thread_exit", case_thread_exit, "300" },
    { "one_allocator", case_one_allocator, "300" },
    { "fork_child", case_fork_child, "2000" },
    { "trim_heaps", case_trim_heaps, "10000" },
};
#define CASES (sizeof cases / sizeof cases[0])

int main(int argc, char **argv)
{
    if (argc == 2) {
        for (size_t i = 0; i < CASES; i++)
            if (strcmp(argv[1], cases[i].name) == 0) cases[i].run();
        return nm_test_done();
    }
    /* Each case in a process of its own, with its delay set before the
     * first malloc (options are read then). */
    int failed = 0;
    for (size_t i = 0; i < CASES; i++) {
        fflush(stdout);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            setenv("NUMAMALLOC_PURGE_DELAY_MS", cases[i].delay_ms, 1);
            execl("/proc/self/exe", argv[0], cases[i].name, (char *)NULL);
            _exit(127);
        }
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "case %s failed (status %d)\n", cases[i].name, status);
            failed++;
        }
    }
    return failed ? 1 : 0;
}
