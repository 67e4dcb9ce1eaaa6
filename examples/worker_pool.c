/*
 * worker_pool.c — worker threads pinned per NUMA node, and every task run
 * on the node that holds its data.
 *
 * Each node with CPUs gets a task queue and workers pinned to its CPUs.
 * The data the tasks work on is spread over the nodes in chunks, made two
 * ways: nm_malloc_onnode (a block bound to a node, from numamalloc's heap)
 * and nm_region_map with a bind policy (a mapping of its own, prefaulted
 * from the node).  A task is not sent where its data was meant to be: the
 * submitter asks the kernel where the chunk's pages are (nm_where) and
 * queues the task on that node, so a chunk that moved would be followed.
 *
 * Each task sums its chunk; the sums are checked against the formula the
 * chunks were filled with, and every task must have run on the node that
 * holds its data.  Exits 1 otherwise.
 *
 *   gcc -O2 -pthread -I include examples/worker_pool.c -o worker_pool \
 *       -L build -lnumamalloc -Wl,-rpath,$PWD/build
 */
#define _GNU_SOURCE
#include <numamalloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNKS_PER_NODE 6
#define CHUNK_BYTES (512 * 1024)
#define CHUNK_WORDS (CHUNK_BYTES / sizeof(uint64_t))
#define MAX_WORKERS_PER_NODE 2
#define MAX_NODES 64               /* nodes this example handles */
#define MAX_TASKS (CHUNKS_PER_NODE * MAX_NODES)

struct task {
    int index;
    uint64_t *data;                /* CHUNK_WORDS words */
    nm_region *region;             /* when the chunk is a region, else NULL */
    int data_node;                 /* where nm_where found the pages */
    int ran_on;                    /* the node the worker ran on */
    uint64_t sum;
};

/* ---------------------------------------------------------------- per-node queue */

struct node_queue {
    int node;
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct task *items[MAX_TASKS];
    int head, tail;
    bool closed;                   /* no more tasks will come */
    pthread_t workers[MAX_WORKERS_PER_NODE];
    int worker_count;
    long done;                     /* tasks this node's workers ran */
};

static void queue_push(struct node_queue *q, struct task *t)
{
    pthread_mutex_lock(&q->lock);
    q->items[q->tail++] = t;
    pthread_cond_signal(&q->ready);
    pthread_mutex_unlock(&q->lock);
}

/* The next task, or NULL once the queue is closed and empty. */
static struct task *queue_pop(struct node_queue *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->head == q->tail && !q->closed) pthread_cond_wait(&q->ready, &q->lock);
    struct task *t = q->head < q->tail ? q->items[q->head++] : NULL;
    pthread_mutex_unlock(&q->lock);
    return t;
}

static void queue_close(struct node_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
}

/* ---------------------------------------------------------------- workers */

static void pin_to_node(int node)
{
    int cpus[CPU_SETSIZE], n = nm_node_cpus(node, cpus, CPU_SETSIZE);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < n; i++) CPU_SET(cpus[i], &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *worker_main(void *arg)
{
    struct node_queue *q = arg;
    pin_to_node(q->node);
    struct task *t;
    while ((t = queue_pop(q)) != NULL) {
        uint64_t sum = 0;
        for (size_t i = 0; i < CHUNK_WORDS; i++) sum += t->data[i];
        t->sum = sum;
        t->ran_on = nm_current_node();
        __atomic_fetch_add(&q->done, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* ---------------------------------------------------------------- the program */

static struct node_queue *queues[NM_NODE_ID_LIMIT];   /* by node id; NULL: no CPUs */
static struct task tasks[MAX_TASKS];

/* The node most of [p, p + len)'s pages are on, or -1. */
static int node_of(const void *p, size_t len)
{
    uint64_t counts[NM_NODE_ID_LIMIT] = {0};
    if (nm_where(p, len, counts, NM_NODE_ID_LIMIT) <= 0) return -1;
    int best = 0;
    for (int n = 1; n < NM_NODE_ID_LIMIT; n++)
        if (counts[n] > counts[best]) best = n;
    return best;
}

/* The queue for data on `node`: that node's, or the nearest node's with
 * CPUs (a memory-only node has no workers). */
static struct node_queue *queue_near(int node)
{
    int order[NM_NODE_ID_LIMIT];
    int count = nm_nodes_by_distance(node, order, NM_NODE_ID_LIMIT);
    for (int i = 0; i < count; i++)
        if (queues[order[i]]) return queues[order[i]];
    return NULL;
}

static uint64_t word(int chunk, size_t i) { return (uint64_t)chunk * CHUNK_WORDS + i; }

int main(void)
{
    int ids[MAX_NODES], mem_nodes[MAX_NODES], mem_count = 0;
    int nodes = nm_node_ids(ids, MAX_NODES);
    if (nodes > MAX_NODES) nodes = MAX_NODES;

    /* A queue and workers for each node with CPUs. */
    for (int i = 0; i < nodes; i++) {
        uint64_t total = 0, free_bytes = 0;
        nm_node_memory(ids[i], &total, &free_bytes);
        if (total > 0) mem_nodes[mem_count++] = ids[i];
        int cpus[CPU_SETSIZE], ncpus = nm_node_cpus(ids[i], cpus, CPU_SETSIZE);
        if (ncpus <= 0) continue;
        struct node_queue *q = calloc(1, sizeof *q);
        if (!q) { perror("worker_pool"); return 1; }
        q->node = ids[i];
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->ready, NULL);
        q->worker_count = ncpus < MAX_WORKERS_PER_NODE ? ncpus : MAX_WORKERS_PER_NODE;
        for (int k = 0; k < q->worker_count; k++)
            if (pthread_create(&q->workers[k], NULL, worker_main, q) != 0) {
                perror("worker_pool: pthread_create");
                return 1;
            }
        queues[ids[i]] = q;
    }

    /* The data: CHUNKS_PER_NODE chunks per node with memory, dealt out in
     * turn; each node gets nm_malloc_onnode blocks and bind regions in turn. */
    int ntasks = CHUNKS_PER_NODE * mem_count;
    for (int c = 0; c < ntasks; c++) {
        struct task *t = &tasks[c];
        int node = mem_nodes[c % mem_count];
        t->index = c;
        t->ran_on = -1;
        if ((c / mem_count) % 2 == 0) {
            t->data = nm_malloc_onnode(CHUNK_BYTES, node);
        } else {
            nm_nodeset set;
            nm_nodeset_clear(&set);
            nm_nodeset_add(&set, node);
            nm_policy bind = nm_policy_bind(&set);
            t->region = nm_region_map(CHUNK_BYTES, &bind, NM_PREFAULT_TOUCH, 0);
            t->data = t->region ? nm_region_addr(t->region) : NULL;
        }
        if (!t->data) { perror("worker_pool: allocating a chunk"); return 1; }
        for (size_t i = 0; i < CHUNK_WORDS; i++) t->data[i] = word(c, i);
    }

    /* Send each task to the node its data is on, as the kernel reports it. */
    for (int c = 0; c < ntasks; c++) {
        struct task *t = &tasks[c];
        t->data_node = node_of(t->data, CHUNK_BYTES);
        struct node_queue *q = t->data_node < 0 ? NULL : queue_near(t->data_node);
        if (!q) { fprintf(stderr, "worker_pool: chunk %d is nowhere\n", c); return 1; }
        queue_push(q, t);
    }
    for (int n = 0; n < NM_NODE_ID_LIMIT; n++) if (queues[n]) queue_close(queues[n]);
    for (int n = 0; n < NM_NODE_ID_LIMIT; n++)
        if (queues[n]) for (int k = 0; k < queues[n]->worker_count; k++)
            pthread_join(queues[n]->workers[k], NULL);

    /* Check: every sum right, every task on its data's node. */
    int failed = 0, wrong_sum = 0, remote = 0;
    for (int c = 0; c < ntasks; c++) {
        struct task *t = &tasks[c];
        uint64_t expected = 0;
        for (size_t i = 0; i < CHUNK_WORDS; i++) expected += word(c, i);
        int meant = mem_nodes[c % mem_count];
        int want_run = queue_near(meant)->node;   /* meant itself unless memory-only */
        printf("task %2d: data (%s) on node %d, ran on node %d, sum %s\n", c,
               t->region ? "region bind" : "nm_malloc_onnode", t->data_node, t->ran_on,
               t->sum == expected ? "ok" : "WRONG");
        if (t->sum != expected) wrong_sum++;
        if (t->data_node != meant || t->ran_on != want_run) remote++;
    }
    for (int n = 0; n < NM_NODE_ID_LIMIT; n++) {
        struct node_queue *q = queues[n];
        if (!q) continue;
        printf("node %d: %d worker thread(s) ran %ld tasks\n", q->node, q->worker_count, q->done);
    }
    failed = wrong_sum || remote;
    printf("%d tasks, %d wrong sums, %d off their data's node: %s\n", ntasks, wrong_sum, remote,
           failed ? "FAILED" : "every task ran where its data is");

    for (int c = 0; c < ntasks; c++) {
        if (tasks[c].region) nm_region_unmap(tasks[c].region);
        else nm_free(tasks[c].data);
    }
    return failed;
}
