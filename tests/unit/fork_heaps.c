/* fork_heaps.c — after fork, the child's memory is fully usable and
 * returnable, though the parent's other threads do not exist in the child.
 *
 *   memory    the parent has 8 threads, each holding 64 MiB of small and
 *             medium blocks and 8 blocks of a heap with a policy, when the
 *             main thread forks.  The child starts 4 threads that allocate
 *             and free blocks of their own and free all of the parent's
 *             blocks (the heap's too; the heap then serves the child and is
 *             destroyed there), calls malloc_trim, and its RSS must fall by
 *             at least 3/4 of the 512 MiB freed.  Then 4 new threads
 *             allocate 256 MiB, write it and free it: after malloc_trim RSS
 *             is back within 32 MiB of where it was.
 *   forks     1,000 forks while 4 threads allocate and free: each child
 *             allocates, frees, starts a thread that does the same, and
 *             exits; no child and no parent hangs (watchdogs turn a hang
 *             into a failure).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "../testutil.h"
#include "numamalloc.h"

#define MiB ((size_t)1 << 20)
#define PARENT_THREADS 8
#define PER_THREAD (64 * MiB)
#define CHILD_THREADS 4
#define MAX_BLOCKS (PARENT_THREADS * 20000)
#define HEAP_BLOCKS 8

/* ---- memory: the parent's blocks, freed in the child ---------------------- */

struct parent_blocks {          /* in a mapping of its own, not in the heap */
    void *p[MAX_BLOCKS];
    atomic_long count;
    void *heap_blocks[PARENT_THREADS * HEAP_BLOCKS];
};
static struct parent_blocks *blocks;
static nm_heap_t *policy_heap;
static pthread_barrier_t ready, release_parent;

static void *parent_thread(void *arg)
{
    int index = (int)(intptr_t)arg;
    size_t held = 0;
    for (unsigned k = 0; held < PER_THREAD; k++) {
        size_t size = (size_t)1024 << (k % 6);   /* 1 KiB .. 32 KiB: small and medium */
        char *p = malloc(size);
        REQUIRE(p != NULL);
        memset(p, 0x3c, size);
        long at = atomic_fetch_add(&blocks->count, 1);
        REQUIRE(at < MAX_BLOCKS);
        blocks->p[at] = p;
        held += size;
    }
    for (int i = 0; i < HEAP_BLOCKS; i++) {
        char *p = nm_heap_malloc(policy_heap, 4096);
        REQUIRE(p != NULL);
        memset(p, 1, 4096);
        blocks->heap_blocks[index * HEAP_BLOCKS + i] = p;
    }
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&release_parent);   /* alive while the main thread forks */
    return NULL;
}

/* A child thread: its share of the parent's blocks (and heap blocks) freed,
 * amid blocks of its own. */
static void *free_parent_blocks(void *arg)
{
    int index = (int)(intptr_t)arg;
    void *mine[64];
    for (int i = 0; i < 64; i++) {
        mine[i] = malloc((size_t)4096 << (i % 9));   /* 4 KiB .. 1 MiB */
        REQUIRE(mine[i] != NULL);
        memset(mine[i], 7, 4096);
    }
    long total = atomic_load(&blocks->count);
    for (long i = index; i < total; i += CHILD_THREADS) {
        unsigned char *p = blocks->p[i];
        REQUIRE(p[0] == 0x3c, "a parent block changed in the child");
        free(p);
    }
    for (int i = index; i < PARENT_THREADS * HEAP_BLOCKS; i += CHILD_THREADS) free(blocks->heap_blocks[i]);
    for (int i = 0; i < 64; i++) free(mine[i]);
    return NULL;
}

/* A child thread: 64 MiB of its own, written and freed. */
static void *own_memory(void *arg)
{
    (void)arg;
    enum { N = 1024 };
    static __thread void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(64 * 1024);
        REQUIRE(p[i] != NULL);
        memset(p[i], 9, 64 * 1024);
    }
    for (int i = 0; i < N; i++) free(p[i]);
    return NULL;
}

static void child_threads(void *(*fn)(void *))
{
    pthread_t t[CHILD_THREADS];
    for (int i = 0; i < CHILD_THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, fn, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < CHILD_THREADS; i++) pthread_join(t[i], NULL);
}

static int memory_child(void)
{
    size_t before = nm_test_rss();
    child_threads(free_parent_blocks);
    char *q = nm_heap_malloc(policy_heap, 100);
    REQUIRE(q != NULL, "the heap with a policy does not serve the child");
    memset(q, 2, 100);
    free(q);
    nm_heap_destroy(policy_heap);
    malloc_trim(0);
    size_t after = nm_test_rss();
    /* 512 MiB of the parent's blocks were freed; what may stay resident is
     * bounded by a quarter of it (the node cache, the child threads' own
     * leftovers, pages of the program). */
    CHECK(after + 3 * (PARENT_THREADS * PER_THREAD) / 4 <= before,
          "child RSS %zu MiB before freeing the parent's 512 MiB, %zu MiB after malloc_trim",
          before / MiB, after / MiB);
    child_threads(own_memory);
    malloc_trim(0);
    size_t again = nm_test_rss();
    CHECK(again <= after + 32 * MiB,
          "child RSS %zu MiB, then %zu MiB after 256 MiB of new threads' blocks were freed",
          after / MiB, again / MiB);
    printf("child RSS: %zu MiB at fork, %zu MiB after freeing the parent's blocks, %zu MiB after its own threads' 256 MiB\n",
           before / MiB, after / MiB, again / MiB);
    fflush(stdout);
    return nm_test_failures ? 1 : 0;
}

static void memory_case(void)
{
    blocks = mmap(NULL, sizeof *blocks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(blocks != MAP_FAILED);
    nm_nodeset one;
    nm_nodeset_clear(&one);
    nm_nodeset_add(&one, nm_current_node());
    nm_policy bind = nm_policy_bind(&one);
    policy_heap = nm_heap_new(&bind);
    REQUIRE(policy_heap != NULL);
    pthread_barrier_init(&ready, NULL, PARENT_THREADS + 1);
    pthread_barrier_init(&release_parent, NULL, PARENT_THREADS + 1);
    pthread_t t[PARENT_THREADS];
    for (int i = 0; i < PARENT_THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, parent_thread, (void *)(intptr_t)i) == 0);
    pthread_barrier_wait(&ready);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(120);
        _exit(memory_child());
    }
    pthread_barrier_wait(&release_parent);
    for (int i = 0; i < PARENT_THREADS; i++) pthread_join(t[i], NULL);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "memory child: status %#x", status);
    long total = atomic_load(&blocks->count);
    for (long i = 0; i < total; i++) free(blocks->p[i]);
    nm_heap_destroy(policy_heap);
}

/* ---- forks: 1,000 while threads allocate ------------------------------------ */

static atomic_bool stop;

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *keep[32] = { 0 };
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        seed = seed * 1103515245 + 12345;
        int slot = (int)(seed >> 16) % 32;
        free(keep[slot]);
        keep[slot] = malloc((size_t)16 << ((seed >> 8) % 15));   /* 16 B .. 256 KiB */
        if (keep[slot]) ((char *)keep[slot])[0] = 1;
    }
    for (int i = 0; i < 32; i++) free(keep[i]);
    return NULL;
}

static void *child_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) free(malloc((size_t)16 << (i % 15)));
    return NULL;
}

static void forks_case(void)
{
    enum { CHURNERS = 4, FORKS = 1000 };
    pthread_t t[CHURNERS];
    for (int i = 0; i < CHURNERS; i++)
        REQUIRE(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1)) == 0);
    int bad = 0;
    for (int f = 0; f < FORKS; f++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork %d: %s", f, strerror(errno));
        if (pid == 0) {
            alarm(20);
            void *p = malloc(100), *q = malloc(300000);
            if (!p || !q) _exit(3);
            pthread_t w;
            if (pthread_create(&w, NULL, child_worker, NULL) != 0) _exit(4);
            pthread_join(w, NULL);
            free(p);
            free(q);
            _exit(0);
        }
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (bad++ < 5) fprintf(stderr, "fork %d: child status %#x\n", f, status);
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < CHURNERS; i++) pthread_join(t[i], NULL);
    CHECK(bad == 0, "%d of %d children failed or hung", bad, FORKS);
}

int main(void)
{
    alarm(300);   /* the whole test: a hang in the parent fails */
    memory_case();
    forks_case();
    printf("fork: the child frees and returns the parent's threads' memory; 1,000 forks with allocating threads\n");
    return nm_test_done();
}
