/* pipeline.c — a two-stage pipeline with the NUMA mistakes profilers are
 * for, to look at with `numamalloc prof` (README, "Find where your memory
 * is").
 *
 * A reader thread on the first node allocates records and hands them to a
 * worker on the last node, which frees them after use: every record is
 * freed by a thread of another node (read_record).  The master builds a
 * lookup table the worker reads all the time, on the master's node
 * (build_index).  The worker keeps a result for every record in a cache
 * that only grows (cache_result).  The program checks its own sum and
 * exits 1 when it is wrong; it runs on one node too (then nothing is
 * remote).
 *
 *   gcc -O2 -g -pthread -I include examples/pipeline.c -o pipeline \
 *       -L build -lnumamalloc -Wl,-rpath,$PWD/build
 *   numamalloc prof -- ./pipeline
 *   ./pipeline hold &      (waits for a line on stdin before it exits)
 *   numamalloc maps pipeline
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "numamalloc.h"

#define RECORDS 20000
#define RECORD_BYTES 2048
#define INDEX_ENTRIES (1 << 18)
#define QUEUE 256
#define CACHE_BYTES 512

struct record {
    uint64_t key;
    char payload[RECORD_BYTES - sizeof(uint64_t)];
};

/* A bounded queue between the two threads. */
static struct record *queue[QUEUE];
static unsigned head, tail;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static uint64_t *lookup;        /* the master's table */
static uint64_t **cache;        /* the worker's results, never freed */
static uint64_t sum;

static void run_on_node(int node)
{
    int cpus[1024], n = nm_node_cpus(node, cpus, 1024);
    if (n <= 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < n; i++) CPU_SET(cpus[i], &set);
    if (sched_setaffinity(0, sizeof set, &set) == 0) nm_thread_rebind();
}

__attribute__((noinline)) static uint64_t *build_index(void)
{
    uint64_t *t = malloc(INDEX_ENTRIES * sizeof *t);
    for (size_t i = 0; i < INDEX_ENTRIES; i++) t[i] = i * 2654435761u;
    return t;
}

__attribute__((noinline)) static struct record *read_record(uint64_t key)
{
    struct record *r = malloc(sizeof *r);
    r->key = key;
    memset(r->payload, (int)(key & 0x7f), sizeof r->payload);
    return r;
}

__attribute__((noinline)) static uint64_t *cache_result(uint64_t value)
{
    uint64_t *c = malloc(CACHE_BYTES);
    memset(c, 0, CACHE_BYTES);
    c[0] = value;
    return c;
}

static void push(struct record *r)
{
    pthread_mutex_lock(&lock);
    while (tail - head == QUEUE) pthread_cond_wait(&changed, &lock);
    queue[tail++ % QUEUE] = r;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static struct record *pop(void)
{
    pthread_mutex_lock(&lock);
    while (tail == head) pthread_cond_wait(&changed, &lock);
    struct record *r = queue[head++ % QUEUE];
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    return r;
}

static int first_node, last_node;

static void *reader(void *arg)
{
    (void)arg;
    run_on_node(first_node);
    for (uint64_t k = 0; k < RECORDS; k++) push(read_record(k));
    return NULL;
}

static void *worker(void *arg)
{
    (void)arg;
    run_on_node(last_node);
    for (int i = 0; i < RECORDS; i++) {
        struct record *r = pop();
        uint64_t v = lookup[r->key % INDEX_ENTRIES] + (unsigned char)r->payload[7];
        cache[i] = cache_result(v);
        sum += v;
        free(r);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    /* nm_node_ids says how many nodes there are, which may be more than it
     * wrote: only the first 64 are in ids (none: node 0 for both). */
    int ids[64], n = nm_node_ids(ids, 64);
    if (n > 64) n = 64;
    first_node = n > 0 ? ids[0] : 0;
    last_node = n > 0 ? ids[n - 1] : 0;
    run_on_node(first_node);
    lookup = build_index();
    cache = calloc(RECORDS, sizeof *cache);
    pthread_t r, w;
    pthread_create(&r, NULL, reader, NULL);
    pthread_create(&w, NULL, worker, NULL);
    pthread_join(r, NULL);
    pthread_join(w, NULL);

    uint64_t want = 0;
    for (uint64_t k = 0; k < RECORDS; k++) want += lookup[k % INDEX_ENTRIES] + (k & 0x7f);
    printf("%d records from node %d to node %d, sum %llu: %s\n", RECORDS, first_node, last_node,
           (unsigned long long)sum, sum == want ? "ok" : "WRONG");
    if (argc > 1 && !strcmp(argv[1], "hold")) {
        /* Stay, with the memory as it is, until a line comes. */
        printf("holding: pid %d (a line on stdin ends it)\n", (int)getpid());
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin)) clearerr(stdin);
    }
    return sum == want ? 0 : 1;
}
