/*
 * openmp.c — numamalloc with OpenMP: every thread allocates the part of the
 * data it works on from its own NUMA node, computes on it, and asks the
 * kernel where the pages went (nm_where).
 *
 * Two ways to get node-local memory are shown side by side:
 *   a = nm_malloc_onnode(bytes, nm_current_node())  explicit: bound to the node
 *   b = malloc(bytes)                               implicit: numamalloc serves
 *                                                   each thread from the node it
 *                                                   runs on (once it is pinned)
 * Each thread computes sum(a[i] * b[i]) over its share; an OpenMP reduction
 * adds the shares up and the total is checked against a serial reference.
 *
 * Then the most common HPC pattern: the master thread allocates one big
 * array with malloc (a large block: its pages are placed where they are
 * first written), a `parallel for schedule(static)` loop initialises it,
 * so each thread first-touches its own contiguous chunk, and each thread
 * asks nm_where whether the pages of its chunk are on its node.  Later
 * loops with the same static schedule then work on local memory.
 *
 * The program exits 1 if the sum is wrong or any page is off its thread's
 * node, so it checks itself.
 *
 *   gcc -O2 -fopenmp -I include examples/openmp.c -o openmp \
 *       -L build -lnumamalloc -Wl,-rpath,$PWD/build
 *   OMP_NUM_THREADS=8 ./openmp [MiB per array per thread, default 8]
 *
 * Threads are pinned by the OpenMP runtime when OMP_PROC_BIND is set
 * (OMP_PROC_BIND=spread OMP_PLACES=cores); otherwise thread t pins itself to
 * the t-th CPU the process may use.
 */
#define _GNU_SOURCE
#include <numamalloc.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGE 4096

/* What one thread found out, printed after the parallel region. */
struct thread_report {
    int cpu, node;
    long onnode_pages, onnode_local;   /* nm_malloc_onnode block: pages, pages on `node` */
    long malloc_pages, malloc_local;   /* malloc block */
    /* First touch of the master's array: the thread's chunk (the indexes
     * schedule(static) gave it), where it ran, and its whole pages. */
    size_t chunk_first, chunk_end;
    int touch_cpu, touch_node;
    long chunk_pages, chunk_local;
};

/* The values the threads compute on; the same formula gives the reference. */
static uint64_t value_a(uint64_t i) { return i; }
static uint64_t value_b(uint64_t i) { return i % 7 + 1; }

/* Pin the calling thread to the t-th CPU of the process's affinity mask. */
static void pin_to_nth_cpu(const cpu_set_t *allowed, int t)
{
    int count = CPU_COUNT(allowed), seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, allowed)) continue;
        if (seen++ == t % count) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof one, &one);
            return;
        }
    }
}

/* Resident pages of [p, p + len) and how many of them are on `node`. */
static void locate(const void *p, size_t len, int node, long *pages, long *on_node)
{
    uint64_t counts[NM_NODE_ID_LIMIT] = {0};
    *pages = nm_where(p, len, counts, NM_NODE_ID_LIMIT);
    *on_node = *pages < 0 ? 0 : (long)counts[node];
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 8;
    if (mib == 0) {
        fprintf(stderr, "usage: %s [MiB per array per thread, > 0]\n", argv[0]);
        return 2;
    }
    size_t bytes = mib << 20, n = bytes / sizeof(uint64_t);
    int max_threads = omp_get_max_threads();
    struct thread_report *report = calloc((size_t)max_threads, sizeof *report);
    cpu_set_t allowed;
    if (!report || sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        perror("openmp");
        return 1;
    }
    int runtime_binds = omp_get_proc_bind() != omp_proc_bind_false;
    int threads = 0, failed = 0;
    uint64_t sum = 0;

    #pragma omp parallel reduction(+:sum)
    {
        int t = omp_get_thread_num();
        #pragma omp single
        threads = omp_get_num_threads();

        if (!runtime_binds) pin_to_nth_cpu(&allowed, t);
        /* The thread may have allocated before it was pinned (the runtime
         * does); serve its next allocations from the node it is on now. */
        nm_thread_rebind();
        int node = nm_current_node();

        /* Idea 1: ask for the node explicitly.  Idea 2: plain malloc. */
        uint64_t *a = nm_malloc_onnode(bytes, node);
        uint64_t *b = malloc(bytes);
        if (!a || !b) {
            #pragma omp atomic write
            failed = 1;
        } else {
            /* First touch and compute, both on the thread's own node. */
            uint64_t first = (uint64_t)t * n, local_sum = 0;
            for (size_t i = 0; i < n; i++) {
                a[i] = value_a(first + i);
                b[i] = value_b(first + i);
            }
            for (size_t i = 0; i < n; i++) local_sum += a[i] * b[i];
            sum += local_sum;

            struct thread_report *r = &report[t];
            r->cpu = sched_getcpu();
            r->node = node;
            locate(a, bytes, node, &r->onnode_pages, &r->onnode_local);
            locate(b, bytes, node, &r->malloc_pages, &r->malloc_local);
        }
        nm_free(a);
        free(b);
    }
    if (failed) {
        fprintf(stderr, "openmp: out of memory\n");
        return 1;
    }

    /* First touch: the master allocates, the team initialises with the
     * schedule its compute loops will use, so each chunk lands on the node
     * of the thread that works on it. */
    size_t total = (size_t)threads * n;
    uint64_t *x = malloc(total * sizeof *x);
    if (!x) {
        fprintf(stderr, "openmp: out of memory\n");
        return 1;
    }
    #pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        if (!runtime_binds) pin_to_nth_cpu(&allowed, t);   /* as in the first region */
        struct thread_report *r = &report[t];
        r->chunk_first = total;
        r->chunk_end = 0;
        #pragma omp for schedule(static)
        for (size_t i = 0; i < total; i++) {
            x[i] = value_a(i);
            if (i < r->chunk_first) r->chunk_first = i;
            r->chunk_end = i + 1;
        }
        /* The implicit barrier is passed: every chunk is written.  Whole
         * pages of this thread's chunk only (an edge page shared with a
         * neighbour's chunk goes to whichever wrote it first). */
        r->touch_cpu = sched_getcpu();
        r->touch_node = nm_current_node();
        r->chunk_pages = r->chunk_local = 0;
        if (r->chunk_end > r->chunk_first) {
            uintptr_t lo = (uintptr_t)&x[r->chunk_first], hi = (uintptr_t)&x[r->chunk_end];
            lo = (lo + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
            hi &= ~(uintptr_t)(PAGE - 1);
            if (hi > lo) locate((const void *)lo, hi - lo, r->touch_node, &r->chunk_pages, &r->chunk_local);
        }
    }
    uint64_t x_sum = 0, x_expected = 0;
    for (size_t i = 0; i < total; i++) {
        x_sum += x[i];
        x_expected += value_a(i);
    }
    free(x);

    /* Per thread, then per node. */
    long want = (long)(bytes / PAGE);
    long node_threads[NM_NODE_ID_LIMIT] = {0}, node_pages[NM_NODE_ID_LIMIT] = {0},
         node_local[NM_NODE_ID_LIMIT] = {0};
    printf("%d threads, %zu MiB per array per thread, %s\n", threads, mib,
           runtime_binds ? "pinned by the OpenMP runtime" : "each pinned to one CPU");
    for (int t = 0; t < threads; t++) {
        const struct thread_report *r = &report[t];
        printf("thread %d: cpu %d node %d: nm_malloc_onnode %ld/%ld pages on node %d, "
               "malloc %ld/%ld pages on node %d\n", t, r->cpu, r->node,
               r->onnode_local, r->onnode_pages, r->node, r->malloc_local, r->malloc_pages, r->node);
        if (r->onnode_pages != want || r->onnode_local != want ||
            r->malloc_pages != want || r->malloc_local != want) {
            printf("thread %d: expected all %ld pages of each array on node %d\n", t, want, r->node);
            failed = 1;
        }
        node_threads[r->node]++;
        node_pages[r->node] += r->onnode_pages + r->malloc_pages;
        node_local[r->node] += r->onnode_local + r->malloc_local;
    }
    for (int t = 0; t < threads; t++) {
        const struct thread_report *r = &report[t];
        printf("first touch: thread %d: cpu %d node %d: elements %zu-%zu, %ld/%ld pages of its chunk on node %d\n",
               t, r->touch_cpu, r->touch_node, r->chunk_first, r->chunk_end, r->chunk_local, r->chunk_pages,
               r->touch_node);
        if (r->chunk_pages <= 0 || r->chunk_local != r->chunk_pages) {
            printf("first touch: thread %d: expected every page of its chunk on node %d\n", t, r->touch_node);
            failed = 1;
        }
    }
    if (x_sum != x_expected) {
        printf("first touch: array sum %llu, expected %llu: WRONG\n", (unsigned long long)x_sum,
               (unsigned long long)x_expected);
        failed = 1;
    }
    for (int node = 0; node < NM_NODE_ID_LIMIT; node++)
        if (node_threads[node])
            printf("node %d: %ld thread(s), %ld/%ld pages local\n", node, node_threads[node],
                   node_local[node], node_pages[node]);

    /* The same sum, serially, from the same formula. */
    uint64_t expected = 0;
    for (uint64_t i = 0; i < (uint64_t)threads * n; i++) expected += value_a(i) * value_b(i);
    printf("sum %llu, expected %llu: %s\n", (unsigned long long)sum,
           (unsigned long long)expected, sum == expected ? "ok" : "WRONG");
    if (sum != expected) failed = 1;
    printf("%s\n", failed ? "FAILED" : "all pages local, sum ok");
    free(report);
    return failed;
}
