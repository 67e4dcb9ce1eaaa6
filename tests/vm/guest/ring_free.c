/* ring_free.c — runs inside the 2node guest (tests/vm/ring_free.sh): a
 * server's worker threads on two nodes handing requests on, and where the
 * blocks they allocate afterwards are.  Four threads, two pinned to each
 * node with CPUs, pass blocks round a ring (0 and 1 on the first node, 2
 * and 3 on the second): in each of 40 rounds every thread allocates 600
 * blocks of 64 B and 300 of 256 B, writes them, and frees the previous
 * thread's blocks of the round before.  A thread frees more of a class
 * than it keeps for itself (16 KiB) from a thread of its own node, so the
 * full lists go to the node's arena for its other thread (docs/design.md,
 * "handed to the arena"); from a thread of the other node, every free is
 * remote.  Then each thread allocates 4,000 blocks of each size and
 * writes them: every page they are on must be on its own node
 * (move_pages), though half the ring's blocks it freed came from the
 * other node.  Prints "summary ..." for the host. */
#include "guest.h"

#include <pthread.h>

#define THREADS 4
#define ROUNDS 40
#define SMALL_N 600
#define MID_N 300
#define PER_ROUND (SMALL_N + MID_N)
#define AFTER 4000

static void **round_blocks[THREADS][2];   /* a thread's blocks of the last two rounds */
static void **after[THREADS];             /* 2 * AFTER a thread allocates at the end */
static int thread_node[THREADS];
static long misplaced[THREADS], located[THREADS];
static pthread_barrier_t step;

static size_t size_of(int i)
{
    return i < SMALL_N ? 64 : 256;
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg, prev = (me + THREADS - 1) % THREADS;
    run_on_node(thread_node[me]);
    for (int r = 0; r < ROUNDS; r++) {
        void **mine = round_blocks[me][r % 2];
        for (int i = 0; i < PER_ROUND; i++) {
            mine[i] = malloc(size_of(i));
            REQUIRE(mine[i] != NULL, "malloc(%zu)", size_of(i));
            memset(mine[i], me + 1, size_of(i));
        }
        pthread_barrier_wait(&step);   /* every thread's blocks of round r exist */
        if (r > 0) {
            void **theirs = round_blocks[prev][(r - 1) % 2];
            for (int i = 0; i < PER_ROUND; i++) free(theirs[i]);
        }
        pthread_barrier_wait(&step);   /* round r - 1 freed: its arrays may be reused */
    }
    /* The server's next requests: where does new memory come from? */
    for (int i = 0; i < 2 * AFTER; i++) {
        size_t size = i < AFTER ? 64 : 256;
        after[me][i] = malloc(size);
        REQUIRE(after[me][i] != NULL, "malloc(%zu)", size);
        memset(after[me][i], 0x5a, size);
    }
    uintptr_t *pages = map_zeroed(2 * AFTER * sizeof *pages);
    int *status = map_zeroed(2 * AFTER * sizeof *status);
    for (int i = 0; i < 2 * AFTER; i++) pages[i] = (uintptr_t)after[me][i] & ~(uintptr_t)4095;
    locate_pages(pages, 2 * AFTER, status);
    for (int i = 0; i < 2 * AFTER; i++) {
        located[me]++;
        if (status[i] != thread_node[me]) misplaced[me]++;
    }
    return NULL;
}

int main(void)
{
    load_topology();
    REQUIRE(cpu_node_count >= 2, "needs two nodes with CPUs, the guest has %d", cpu_node_count);
    for (int t = 0; t < THREADS; t++) {
        thread_node[t] = cpu_nodes[t < THREADS / 2 ? 0 : 1];
        round_blocks[t][0] = map_zeroed(PER_ROUND * sizeof(void *));
        round_blocks[t][1] = map_zeroed(PER_ROUND * sizeof(void *));
        after[t] = map_zeroed(2 * AFTER * sizeof(void *));
    }
    pthread_barrier_init(&step, NULL, THREADS);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        REQUIRE(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) == 0, "pthread_create");
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    long bad = 0;
    for (int t = 0; t < THREADS; t++) {
        printf("thread %d on node %d: %ld of %ld blocks' pages elsewhere\n", t, thread_node[t],
               misplaced[t], located[t]);
        bad += misplaced[t];
        CHECK(misplaced[t] == 0, "thread %d on node %d: %ld of its new blocks are on another node",
              t, thread_node[t], misplaced[t]);
    }
    printf("summary misplaced %ld\n", bad);
    return nm_test_done();
}
