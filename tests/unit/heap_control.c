/* heap_control.c — heaps that reset, have limits and statistics, serve a
 * thread's plain allocations, and move (the parts that need no second
 * node; tests/unit/heap_migrate.c moves pages between nodes):
 *   stats        blocks and bytes counted exactly while one thread uses the
 *                heap; NULL arguments give EINVAL; the same again with every
 *                block sampled by the heap profiler (this program re-executed
 *                with NUMAMALLOC_PROF=1 NUMAMALLOC_PROF_SAMPLE=1 --prof)
 *   reset        every block goes at once, the heap serves again from the
 *                memory it kept (mapped bytes do not grow), and a free of a
 *                block from before the reset is reported (small: invalid
 *                pointer, large: double free), in a child that aborts
 *   limit        small and large allocations past the limit return NULL
 *                with ENOMEM, the heap still serves what fits, freeing
 *                makes room, no limit again lifts it
 *   set_heap     malloc, calloc, realloc(NULL), posix_memalign,
 *                aligned_alloc, a large malloc, strdup and fopen's FILE of
 *                the calling thread come from the heap set; another thread
 *                is not affected; realloc keeps plain blocks plain and heap
 *                blocks in the heap; frees from another thread work; the
 *                previous heap is returned; reset of a heap set is EBUSY,
 *                destroy of it is reported (child aborts); threads that exit
 *                with the heap set leave their blocks valid and the heap
 *                free to reset
 *   limit_threads 4 threads fill a limited heap: each stops with ENOMEM,
 *                and together they never take it over the limit
 *   migrate      bad input (NULL heap, a node that does not exist) gives
 *                EINVAL with the policy unchanged; a move to where the
 *                pages are moves nothing and reports the resident pages */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static nm_heap_t *heap_of(const void *p)
{
    struct nm_ptr_info info;
    if (nm_ptr_info(p, &info) != 0) return (nm_heap_t *)-1;
    return info.heap;
}

/* Run `fn(arg)` in a child with stderr captured: whether it died of
 * SIGABRT, and its stderr in `out`. */
static bool child_aborts(void (*fn)(void *), void *arg, char *out, size_t size)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < size && (n = read(fds[0], out + len, size - 1 - len)) > 0) len += (size_t)n;
    out[len] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

/* ---- stats ------------------------------------------------------------------------ */

static void case_stats(void)
{
    struct nm_heap_stats st;
    errno = 0;
    CHECK(nm_heap_stats(NULL, &st) == -1 && errno == EINVAL);
    nm_heap_t *h = nm_heap_new(NULL);
    REQUIRE(h != NULL);
    errno = 0;
    CHECK(nm_heap_stats(h, NULL) == -1 && errno == EINVAL);
    REQUIRE(nm_heap_stats(h, &st) == 0);
    CHECK(st.mapped == 0 && st.blocks == 0 && st.in_use == 0 && st.limit == 0,
          "a new heap holds %llu bytes, %llu blocks", (unsigned long long)st.mapped,
          (unsigned long long)st.blocks);
    static void *p[300];
    size_t bytes = 0;
    for (int i = 0; i < 300; i++) {
        size_t size = i < 200 ? 48 : i < 290 ? 20000 : 3 * MiB;
        p[i] = nm_heap_malloc(h, size);
        REQUIRE(p[i] != NULL);
        memset(p[i], 1, size);
        bytes += nm_usable_size(p[i]);
    }
    REQUIRE(nm_heap_stats(h, &st) == 0);
    CHECK(st.blocks == 300 && st.large_blocks == 10, "blocks %llu large %llu, expected 300 and 10",
          (unsigned long long)st.blocks, (unsigned long long)st.large_blocks);
    CHECK(st.in_use == bytes, "in use %llu, the blocks' usable sizes add to %zu",
          (unsigned long long)st.in_use, bytes);
    CHECK(st.mapped >= bytes && st.committed <= st.mapped && st.committed >= bytes,
          "mapped %llu committed %llu for %zu bytes of blocks", (unsigned long long)st.mapped,
          (unsigned long long)st.committed, bytes);
    CHECK(st.charged >= 30 * MiB && st.charged <= st.mapped, "charged %llu",
          (unsigned long long)st.charged);
    for (int i = 0; i < 300; i += 2) free(p[i]);
    REQUIRE(nm_heap_stats(h, &st) == 0);
    CHECK(st.blocks == 150 && st.large_blocks == 5, "after freeing half: %llu blocks, %llu large",
          (unsigned long long)st.blocks, (unsigned long long)st.large_blocks);
    nm_heap_destroy(h);
    printf("stats: 300 blocks counted exactly, half freed counted\n");
}

/* ---- reset ------------------------------------------------------------------------ */

static void free_it(void *p) { free(p); }

static void case_reset(void)
{
    errno = 0;
    CHECK(nm_heap_reset(NULL) == -1 && errno == EINVAL);
    nm_heap_t *h = nm_heap_new(NULL);
    REQUIRE(h != NULL);
    struct nm_heap_stats st;
    uint64_t mapped_first = 0;
    char msg[4096];
    for (int round = 0; round < 20; round++) {
        void *small = NULL, *large = NULL;
        for (int i = 0; i < 2000; i++) {
            size_t size = i % 100 == 99 ? 2 * MiB : (size_t)(16 + (i * 37) % 30000);
            char *p = nm_heap_malloc(h, size);
            REQUIRE(p != NULL, "round %d block %d", round, i);
            memset(p, round, size < 4096 ? size : 4096);
            if (i == 5) small = p;
            if (i == 99) large = p;
        }
        REQUIRE(nm_heap_stats(h, &st) == 0);
        CHECK(st.blocks == 2000, "round %d: %llu blocks", round, (unsigned long long)st.blocks);
        if (round == 0) mapped_first = st.mapped;
        CHECK(st.mapped <= mapped_first, "round %d: the heap maps %llu bytes, %llu after the first",
              round, (unsigned long long)st.mapped, (unsigned long long)mapped_first);
        uint64_t mapped_before = st.mapped;
        REQUIRE(nm_heap_reset(h) == 0);
        REQUIRE(nm_heap_stats(h, &st) == 0);
        CHECK(st.blocks == 0 && st.in_use == 0 && st.large_blocks == 0,
              "after reset: %llu blocks, %llu bytes", (unsigned long long)st.blocks,
              (unsigned long long)st.in_use);
        CHECK(st.mapped == mapped_before, "reset gave back memory (%llu of %llu)",
              (unsigned long long)st.mapped, (unsigned long long)mapped_before);
        if (round == 0) {
            CHECK(nm_ptr_info(small, &(struct nm_ptr_info){ 0 }) == -1,
                  "a block from before the reset is still live");
            bool died = child_aborts(free_it, small, msg, sizeof msg);
            CHECK(died && strstr(msg, "invalid pointer"), "free of an old small block: %s", msg);
            died = child_aborts(free_it, large, msg, sizeof msg);
            CHECK(died && strstr(msg, "double free"), "free of an old large block: %s", msg);
        }
    }
    nm_heap_destroy(h);
    printf("reset: 20 rounds of 2000 blocks in %llu bytes mapped; old blocks' frees reported\n",
           (unsigned long long)mapped_first);
}

/* ---- limit ------------------------------------------------------------------------ */

static void case_limit(void)
{
    errno = 0;
    CHECK(nm_heap_set_limit(NULL, MiB) == -1 && errno == EINVAL);
    nm_heap_t *h = nm_heap_new(NULL);
    REQUIRE(h != NULL);
    REQUIRE(nm_heap_set_limit(h, 12 * MiB) == 0);
    static void *blocks[4096];
    int n = 0;
    for (; n < 4096; n++) {
        errno = 0;
        blocks[n] = nm_heap_malloc(h, 64 * KiB);
        if (!blocks[n]) break;
        memset(blocks[n], 3, 64 * KiB);
    }
    int small_errno = errno;
    CHECK(n < 4096 && small_errno == ENOMEM, "64 KiB blocks: %d served, then errno %d", n, small_errno);
    CHECK((size_t)n * 64 * KiB >= 4 * MiB && (size_t)n * 64 * KiB <= 12 * MiB,
          "%d blocks of 64 KiB under a 12 MiB limit", n);
    struct nm_heap_stats st;
    REQUIRE(nm_heap_stats(h, &st) == 0);
    CHECK(st.charged <= 12 * MiB && st.limit == 12 * MiB, "charged %llu limit %llu",
          (unsigned long long)st.charged, (unsigned long long)st.limit);
    errno = 0;
    void *big = nm_heap_malloc(h, 8 * MiB);
    CHECK(big == NULL && errno == ENOMEM, "an 8 MiB block over the limit: %p errno %d", big, errno);
    errno = 0;
    big = nm_heap_calloc(h, 1, 600 * KiB);
    CHECK(big == NULL && errno == ENOMEM, "a 600 KiB calloc over the limit: %p errno %d", big, errno);
    /* Still usable: what fits in its memory comes, and a freed block makes room. */
    free(blocks[0]);
    blocks[0] = nm_heap_malloc(h, 64 * KiB);
    CHECK(blocks[0] != NULL, "the heap serves no more after the limit was hit");
    void *tiny = nm_heap_malloc(h, 32);
    CHECK(tiny != NULL || errno == ENOMEM);
    free(tiny);
    REQUIRE(nm_heap_set_limit(h, 0) == 0);
    big = nm_heap_malloc(h, 8 * MiB);
    CHECK(big != NULL, "no limit again: an 8 MiB block fails");
    free(big);
    /* A large block's span counts while it lives only: room for one span
     * (a 6 MiB block's is 12 MiB: its block starts 2 MiB in, 2 MiB-aligned,
     * and a span is reused for blocks down to half its size), not two. */
    REQUIRE(nm_heap_stats(h, &st) == 0);
    REQUIRE(nm_heap_set_limit(h, st.charged + 16 * MiB) == 0);
    for (int i = 0; i < 20; i++) {
        void *p = nm_heap_malloc(h, 6 * MiB);
        CHECK(p != NULL, "round %d: a 6 MiB block freed each time fails", i);
        free(p);
    }
    for (int i = 0; i < n; i++) free(blocks[i]);
    nm_heap_destroy(h);
    printf("limit: %d blocks of 64 KiB under 12 MiB, then ENOMEM; the heap serves on\n", n);
}

/* ---- set_heap --------------------------------------------------------------------- */

struct other_arg {
    void *to_free;
    nm_heap_t *seen;
};

static void *other_thread(void *argp)
{
    struct other_arg *a = argp;
    free(a->to_free);                  /* a block of the heap, freed elsewhere */
    void *p = malloc(100);
    a->seen = heap_of(p);
    free(p);
    return NULL;
}

static void destroy_it(void *h) { nm_heap_destroy(h); }

static void case_set_heap(void)
{
    nm_heap_t *h = nm_heap_new(NULL), *g = nm_heap_new(NULL);
    REQUIRE(h && g);
    void *plain = malloc(1000);
    CHECK(heap_of(plain) == NULL);
    errno = 0;
    CHECK(nm_thread_set_heap(h) == NULL && errno == 0, "no heap was set before");

    void *m = malloc(100), *c = calloc(10, 10), *r = realloc(NULL, 5000), *a = aligned_alloc(4096, 8192);
    void *pm = NULL;
    CHECK(posix_memalign(&pm, 64, 300) == 0);
    void *big = malloc(3 * MiB), *bigc = calloc(1, 2 * MiB);
    char *dup = strdup("third-party string");
    FILE *f = fopen("/proc/self/stat", "r");
    CHECK(heap_of(m) == h && heap_of(c) == h && heap_of(r) == h && heap_of(a) == h && heap_of(pm) == h,
          "small blocks: %p %p %p %p %p", (void *)heap_of(m), (void *)heap_of(c), (void *)heap_of(r),
          (void *)heap_of(a), (void *)heap_of(pm));
    CHECK(heap_of(big) == h && heap_of(bigc) == h, "large blocks: %p %p", (void *)heap_of(big),
          (void *)heap_of(bigc));
    CHECK(heap_of(dup) == h, "strdup's block is in heap %p, not %p", (void *)heap_of(dup), (void *)h);
    CHECK(f != NULL && heap_of(f) == h, "fopen's FILE is in heap %p", f ? (void *)heap_of(f) : NULL);
    if (f) fclose(f);

    /* realloc keeps a block where it is: a plain one plain, a heap one in the heap. */
    plain = realloc(plain, 200000);
    CHECK(plain && heap_of(plain) == NULL, "a plain block moved into the heap set");
    plain = realloc(plain, 3 * MiB);
    CHECK(plain && heap_of(plain) == NULL, "a plain block moved into the heap set (large)");

    /* Another thread: its own malloc, and it frees one of ours. */
    struct other_arg oa = { .to_free = c };
    pthread_t t;
    /* Created with no heap set: the C library allocates the new thread's
     * TLS vector (DTV) with the creator's malloc and keeps it with the
     * thread's cached stack after the thread exits, past the heap's
     * destroy below (numamalloc.h: nm_thread_set_heap). */
    CHECK(nm_thread_set_heap(NULL) == h);
    REQUIRE(pthread_create(&t, NULL, other_thread, &oa) == 0);
    CHECK(nm_thread_set_heap(h) == NULL);
    pthread_join(t, NULL);
    CHECK(oa.seen == NULL, "another thread's malloc came from heap %p", (void *)oa.seen);

    /* Reset and destroy of a heap that is set. */
    errno = 0;
    CHECK(nm_heap_reset(h) == -1 && errno == EBUSY, "reset of a heap set: errno %d", errno);
    char msg[4096];
    bool died = child_aborts(destroy_it, h, msg, sizeof msg);
    CHECK(died && strstr(msg, "nm_heap_destroy") && strstr(msg, "still set"),
          "destroy of a heap set: %s", msg);

    /* Another heap, then none: each call returns the one before. */
    CHECK(nm_thread_set_heap(g) == h);
    void *in_g = malloc(64);
    CHECK(heap_of(in_g) == g);
    CHECK(nm_thread_set_heap(NULL) == g);
    void *after = malloc(64);
    CHECK(heap_of(after) == NULL, "malloc after the heap was unset is in %p", (void *)heap_of(after));
    m = realloc(m, 300000);
    CHECK(m && heap_of(m) == h, "a heap block left its heap in realloc after unset");

    free(m); free(r); free(a); free(pm); free(big); free(bigc); free(dup);
    free(plain); free(in_g); free(after);
    /* The heap works for nm_heap_malloc as before, and goes. */
    void *q = nm_heap_malloc(h, 100);
    CHECK(q && heap_of(q) == h);
    free(q);
    CHECK(nm_heap_reset(h) == 0);
    nm_heap_destroy(h);
    nm_heap_destroy(g);

    /* Many heaps set and unset in turn (more than a thread's table of 8). */
    nm_heap_t *many[20];
    for (int i = 0; i < 20; i++) REQUIRE((many[i] = nm_heap_new(NULL)) != NULL);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20; i++) {
            nm_thread_set_heap(many[i]);
            void *p = malloc(100);
            CHECK(heap_of(p) == many[i]);
            void *q2 = nm_heap_malloc(many[(i + 9) % 20], 100);   /* evicts table slots */
            CHECK(heap_of(q2) == many[(i + 9) % 20]);
            free(q2);
            free(p);
        }
    }
    CHECK(nm_thread_set_heap(NULL) == many[19]);
    for (int i = 0; i < 20; i++) nm_heap_destroy(many[i]);
    printf("set_heap: plain allocations, strdup and fopen come from the heap set; rules hold\n");
}

/* A thread that sets a heap and exits with it set: its blocks stay valid,
 * and the heap is no longer set anywhere (destroy goes through). */
static void *exit_with_heap(void *h)
{
    nm_thread_set_heap(h);
    void **blocks = malloc(100 * sizeof *blocks);
    for (int i = 0; i < 100; i++) {
        blocks[i] = malloc(i % 10 == 9 ? 400000 : 1000);
        memset(blocks[i], i, 16);
    }
    return blocks;
}

static void case_set_heap_exit(void)
{
    nm_heap_t *h = nm_heap_new(NULL);
    REQUIRE(h != NULL);
    for (int round = 0; round < 8; round++) {
        pthread_t t;
        void **blocks;
        REQUIRE(pthread_create(&t, NULL, exit_with_heap, h) == 0);
        pthread_join(t, (void **)&blocks);
        CHECK(heap_of(blocks) == h);
        for (int i = 0; i < 100; i++) {
            CHECK(heap_of(blocks[i]) == h && ((char *)blocks[i])[15] == (char)i);
            free(blocks[i]);
        }
        free(blocks);
        CHECK(nm_heap_reset(h) == 0, "reset after the thread that set the heap exited: errno %d", errno);
    }
    nm_heap_destroy(h);
    printf("set_heap_exit: 8 threads exited with the heap set; their blocks lived on\n");
}

/* Threads allocating from one heap at its limit: never over it together. */
struct limit_arg {
    nm_heap_t *h;
    int served;
    int error;
};

static void *fill_to_limit(void *argp)
{
    struct limit_arg *a = argp;
    for (;;) {
        errno = 0;
        void *p = nm_heap_malloc(a->h, a->served % 4 == 3 ? 700 * KiB : 48 * KiB);
        if (!p) break;
        memset(p, 1, 4096);
        a->served++;
    }
    a->error = errno;
    return NULL;
}

static void case_limit_threads(void)
{
    nm_heap_t *h = nm_heap_new(NULL);
    REQUIRE(h != NULL);
    REQUIRE(nm_heap_set_limit(h, 40 * MiB) == 0);
    struct limit_arg args[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct limit_arg){ .h = h };
        REQUIRE(pthread_create(&t[i], NULL, fill_to_limit, &args[i]) == 0);
    }
    int served = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(args[i].error == ENOMEM, "thread %d stopped with errno %d", i, args[i].error);
        served += args[i].served;
    }
    struct nm_heap_stats st;
    REQUIRE(nm_heap_stats(h, &st) == 0);
    CHECK(st.charged <= 40 * MiB && st.mapped <= 40 * MiB + 16 * MiB,
          "4 threads took the heap to %llu charged, %llu mapped (limit 40 MiB)",
          (unsigned long long)st.charged, (unsigned long long)st.mapped);
    CHECK(st.charged >= 20 * MiB, "4 threads stopped at %llu charged of 40 MiB",
          (unsigned long long)st.charged);
    nm_heap_destroy(h);
    printf("limit_threads: 4 threads, %d blocks, %llu bytes charged of 40 MiB\n", served,
           (unsigned long long)st.charged);
}

/* ---- migrate: bad input ---------------------------------------------------------- */

static void case_migrate_input(void)
{
    nm_heap_t *h = nm_heap_new(NULL);
    REQUIRE(h != NULL);
    char *p = nm_heap_malloc(h, 1 * MiB);
    REQUIRE(p != NULL);
    memset(p, 7, MiB);
    struct nm_migrate_report rep;
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_nodeset_add(&set, 1000);
    nm_policy bad = nm_policy_bind(&set);
    errno = 0;
    CHECK(nm_heap_migrate(NULL, &bad, &rep) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(nm_heap_migrate(h, &bad, &rep) == -1 && errno == EINVAL, "a node that does not exist");
    CHECK(nm_heap_policy(h).mode == NM_POLICY_LOCAL, "a refused migration changed the policy");
    nm_nodeset_clear(&set);
    nm_nodeset_add(&set, nm_current_node());
    nm_policy here = nm_policy_bind(&set);
    CHECK(nm_heap_migrate(h, &here, &rep) == 0);
    CHECK(rep.resident >= 256 && rep.asked == 0 && rep.not_moved == 0,
          "a move to where the pages are: resident %llu asked %llu", (unsigned long long)rep.resident,
          (unsigned long long)rep.asked);
    CHECK(nm_heap_policy(h).mode == NM_POLICY_BIND);
    CHECK(nm_heap_migrate(h, NULL, NULL) == 0);
    CHECK(nm_heap_policy(h).mode == NM_POLICY_LOCAL);
    for (size_t i = 0; i < MiB; i++)
        if (p[i] != 7) { CHECK(0, "contents changed at %zu", i); break; }
    nm_heap_destroy(h);
    printf("migrate: bad input refused with nothing changed\n");
}

/* A fork child, where only the forking thread exists, counts no other
 * thread as having the heap set: it can reset and destroy the heap that a
 * parent thread had set (EBUSY and an abort before). */
static pthread_barrier_t set_ready, set_done;

static void *set_and_wait(void *h)
{
    nm_thread_set_heap(h);
    free(malloc(100));
    pthread_barrier_wait(&set_ready);
    pthread_barrier_wait(&set_done);
    nm_thread_set_heap(NULL);
    return NULL;
}

static void case_fork_set_heap(void)
{
    nm_heap_t *h = nm_heap_new(NULL);
    REQUIRE(h, "nm_heap_new");
    pthread_barrier_init(&set_ready, NULL, 2);
    pthread_barrier_init(&set_done, NULL, 2);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, set_and_wait, h) == 0, "pthread_create");
    pthread_barrier_wait(&set_ready);
    pid_t child = fork();
    REQUIRE(child >= 0, "fork");
    if (child == 0) {
        int reset = nm_heap_reset(h);
        nm_heap_destroy(h);
        _exit(reset == 0 ? 0 : 3);
    }
    int status;
    REQUIRE(waitpid(child, &status, 0) == child, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "fork child: reset and destroy of a heap a parent thread had set: %s %d",
          WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    pthread_barrier_wait(&set_done);
    pthread_join(t, NULL);
    nm_heap_destroy(h);
}

/* case_stats again with every block sampled by the heap profiler (a span
 * of its own, even one of 48 bytes), in a child of this program that reads
 * its options anew: sampled blocks of up to 256 KiB still count as blocks,
 * not large blocks. */
static void case_stats_sampled(const char *argv0)
{
    const char *const vars[] = { "NUMAMALLOC_PROF", "1", "NUMAMALLOC_PROF_SAMPLE", "1",
                                 "NUMAMALLOC_PROF_FILE", "/dev/null",   /* its exit profile */
                                 NULL };
    nm_test_run_self(argv0, "--prof", vars);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--prof") == 0) {
        void *p = nm_malloc(48);
        REQUIRE(nm_usable_size(p) == 4096, "NUMAMALLOC_PROF_SAMPLE=1 did not take: usable size %zu",
                nm_usable_size(p));
        nm_free(p);
        case_stats();
        return nm_test_done();
    }
    case_stats();
    case_stats_sampled(argv[0]);
    case_reset();
    case_limit();
    case_set_heap();
    case_set_heap_exit();
    case_limit_threads();
    case_migrate_input();
    case_fork_set_heap();
    return nm_test_done();
}
