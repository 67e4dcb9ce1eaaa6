/*
 * buffer_pool.c — a pool of fixed-size buffers per NUMA node, built on
 * numamalloc heaps with a bind policy.
 *
 * Each node with memory gets one pool, and each pool one heap made with
 * nm_heap_new(bind:NODE): every buffer the pool ever hands out lies on that
 * node, whichever thread allocated it or touched it first.  Threads take
 * buffers from the pool of the node they run on (pool_get) and give them
 * back (pool_put); a buffer never travels to another node's pool.  At the
 * end nm_heap_destroy releases each pool's memory at once.
 *
 * The program starts two threads pinned to each node with CPUs.  Each
 * takes a few buffers at a time from its node's pool, fills them with a
 * pattern, copies one into another, checks the copy and puts them back.
 * Then every buffer of every pool is located with nm_where.  Exits 1 if a
 * pattern was damaged or a page is off its pool's node.
 *
 *   gcc -O2 -pthread -I include examples/buffer_pool.c -o buffer_pool \
 *       -L build -lnumamalloc -Wl,-rpath,$PWD/build
 */
#define _GNU_SOURCE
#include <numamalloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFFER_SIZE (64 * 1024)   /* bytes per buffer */
#define POOL_CAPACITY 64          /* buffers a pool holds at most */
#define INITIAL_BUFFERS 8         /* buffers made when the pool is created */
#define THREADS_PER_NODE 2
#define ROUNDS 2000               /* get/put rounds per thread */
#define BUFFERS_PER_ROUND 4       /* buffers a thread holds at once */
#define MAX_WORKERS 256
#define PAGE 4096

/* ---------------------------------------------------------------- the pool */

struct buffer_pool {
    int node;
    nm_heap_t *heap;              /* bind:node: every buffer comes from here */
    pthread_mutex_t lock;
    void *buffers[POOL_CAPACITY]; /* every buffer made, for the final check */
    int made;
    void *free_list[POOL_CAPACITY];
    int free_count;
    long gets, puts;
    long gets_elsewhere;          /* gets by threads that should use another pool */
};

static struct buffer_pool *pool_for_node(int node);

static int pool_init(struct buffer_pool *pool, int node)
{
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_nodeset_add(&set, node);
    nm_policy bind = nm_policy_bind(&set);
    memset(pool, 0, sizeof *pool);
    pool->node = node;
    pool->heap = nm_heap_new(&bind);
    if (!pool->heap) return -1;
    pthread_mutex_init(&pool->lock, NULL);
    /* A first few buffers now; more are made on demand up to the capacity. */
    for (int i = 0; i < INITIAL_BUFFERS; i++) {
        void *b = nm_heap_malloc(pool->heap, BUFFER_SIZE);
        if (!b) return -1;
        memset(b, 0, BUFFER_SIZE);
        pool->buffers[pool->made++] = b;
        pool->free_list[pool->free_count++] = b;
    }
    return 0;
}

/* A buffer of BUFFER_SIZE bytes on the pool's node, or NULL when the pool
 * is at its capacity and every buffer is taken. */
static void *pool_get(struct buffer_pool *pool)
{
    void *b = NULL;
    int elsewhere = pool_for_node(nm_current_node()) != pool;   /* a misrouted thread */
    pthread_mutex_lock(&pool->lock);
    if (pool->free_count > 0) {
        b = pool->free_list[--pool->free_count];
    } else if (pool->made < POOL_CAPACITY) {
        b = nm_heap_malloc(pool->heap, BUFFER_SIZE);
        if (b) pool->buffers[pool->made++] = b;
    }
    if (b) {
        pool->gets++;
        pool->gets_elsewhere += elsewhere;
    }
    pthread_mutex_unlock(&pool->lock);
    return b;
}

static void pool_put(struct buffer_pool *pool, void *b)
{
    pthread_mutex_lock(&pool->lock);
    pool->free_list[pool->free_count++] = b;
    pool->puts++;
    pthread_mutex_unlock(&pool->lock);
}

/* Every buffer and the heap's memory, at once. */
static void pool_destroy(struct buffer_pool *pool)
{
    nm_heap_destroy(pool->heap);
    pthread_mutex_destroy(&pool->lock);
}

/* ---------------------------------------------------------------- the program */

static struct buffer_pool *pools[NM_NODE_ID_LIMIT];   /* by node id; NULL: no pool */

/* The pool for a thread on `node`: its own, or the nearest node's when
 * `node` has no memory (and so no pool). */
static struct buffer_pool *pool_for_node(int node)
{
    int order[NM_NODE_ID_LIMIT];
    int count = nm_nodes_by_distance(node, order, NM_NODE_ID_LIMIT);
    for (int i = 0; i < count; i++)
        if (pools[order[i]]) return pools[order[i]];
    return NULL;
}

struct worker {
    pthread_t thread;
    int id, node;
    long errors;               /* damaged buffers seen */
};

static unsigned char pattern(int worker, long round, int buffer)
{
    return (unsigned char)(worker * 61 + round * 7 + buffer + 1);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int cpus[CPU_SETSIZE], ncpus = nm_node_cpus(w->node, cpus, CPU_SETSIZE);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < ncpus; i++) CPU_SET(cpus[i], &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);

    struct buffer_pool *pool = pool_for_node(nm_current_node());
    for (long round = 0; round < ROUNDS; round++) {
        unsigned char *held[BUFFERS_PER_ROUND];
        int n = 0;
        while (n < BUFFERS_PER_ROUND && (held[n] = pool_get(pool)) != NULL) n++;
        if (n == 0) {   /* every buffer taken: wait for a put */
            sched_yield();
            round--;
            continue;
        }
        /* Work on the buffers: each gets a pattern of its own (this thread,
         * this round, this buffer), checked once all are written, so a
         * buffer handed out twice at once would show. */
        for (int i = 0; i < n; i++) memset(held[i], pattern(w->id, round, i), BUFFER_SIZE);
        for (int i = 0; i < n; i++)
            for (size_t k = 0; k < BUFFER_SIZE; k += 64)   /* a byte per cache line */
                if (held[i][k] != pattern(w->id, round, i)) {
                    w->errors++;
                    break;
                }
        for (int i = 0; i < n; i++) pool_put(pool, held[i]);
    }
    return NULL;
}

int main(void)
{
    int ids[NM_NODE_ID_LIMIT];
    int nodes = nm_node_count();
    nm_node_ids(ids, NM_NODE_ID_LIMIT);

    /* One pool per node with memory. */
    for (int i = 0; i < nodes; i++) {
        uint64_t total = 0, free_bytes = 0;
        nm_node_memory(ids[i], &total, &free_bytes);
        if (total == 0) continue;
        pools[ids[i]] = malloc(sizeof(struct buffer_pool));
        if (!pools[ids[i]] || pool_init(pools[ids[i]], ids[i]) != 0) {
            perror("buffer_pool: pool_init");
            return 1;
        }
    }

    /* THREADS_PER_NODE threads on each node with CPUs. */
    static struct worker workers[MAX_WORKERS];
    int nworkers = 0;
    for (int i = 0; i < nodes && nworkers + THREADS_PER_NODE <= MAX_WORKERS; i++) {
        if (!nm_node_has_cpus(ids[i])) continue;
        for (int k = 0; k < THREADS_PER_NODE; k++) {
            struct worker *w = &workers[nworkers];
            w->id = nworkers++;
            w->node = ids[i];
            w->errors = 0;
            if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
                perror("buffer_pool: pthread_create");
                return 1;
            }
        }
    }
    long errors = 0;
    for (int i = 0; i < nworkers; i++) {
        pthread_join(workers[i].thread, NULL);
        errors += workers[i].errors;
    }

    /* Where is every buffer of every pool? */
    int failed = errors != 0;
    for (int i = 0; i < nodes; i++) {
        struct buffer_pool *pool = pools[ids[i]];
        if (!pool) continue;
        long pages = 0, on_node = 0;
        for (int b = 0; b < pool->made; b++) {
            uint64_t counts[NM_NODE_ID_LIMIT] = {0};
            long resident = nm_where(pool->buffers[b], BUFFER_SIZE, counts, NM_NODE_ID_LIMIT);
            if (resident < 0) { perror("buffer_pool: nm_where"); return 1; }
            pages += resident;
            on_node += (long)counts[pool->node];
        }
        long want = (long)pool->made * (BUFFER_SIZE / PAGE);
        int ok = pages == want && on_node == want && pool->gets == pool->puts &&
                 pool->free_count == pool->made && pool->gets_elsewhere == 0;
        printf("pool on node %d: %d buffers of %d KiB, %ld/%ld pages on node %d, "
               "%ld gets and %ld puts, %ld by threads of other nodes: %s\n",
               pool->node, pool->made, BUFFER_SIZE / 1024, on_node, want, pool->node,
               pool->gets, pool->puts, pool->gets_elsewhere, ok ? "ok" : "WRONG");
        if (!ok) failed = 1;
        pool_destroy(pool);
        free(pool);
    }
    printf("%d threads, %ld damaged buffers: %s\n", nworkers, errors,
           failed ? "FAILED" : "every buffer on its pool's node");
    return failed;
}
