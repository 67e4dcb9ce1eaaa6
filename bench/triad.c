/* triad: memory bandwidth of threads working on memory they allocated, on
 * their chunks of arrays the main thread allocated, on memory from another
 * NUMA node and on memory interleaved over all nodes (STREAM's triad
 * kernel: a[i] = b[i] + s * c[i]).
 *
 * Models the data-parallel part of a program: each thread streams through
 * arrays of its own, as an OpenMP loop over a thread-private chunk does, or
 * through its static chunk of shared arrays, as `#pragma omp parallel for
 * schedule(static)` does over arrays the master allocated.
 *
 * One thread per CPU the process may run on, each pinned to its CPU.  Each
 * thread allocates three arrays of doubles (32 MiB each in mode=quick, so
 * the three are several times the last-level cache), writes them once, and
 * runs the triad over them: a warm-up pass, then a fixed number of passes
 * timed between two barriers of all threads.  Bandwidth counts 24 bytes per
 * element (two reads and a write), as STREAM does.
 *
 * Scenarios:
 *   local       malloc, first written by the thread itself (every machine)
 *   shared      "master allocates, workers touch" (every machine): the main
 *               thread allocates three arrays of (threads x the array size)
 *               with malloc, under every allocator; thread i first writes
 *               its own contiguous chunk i of each (a static schedule),
 *               then runs the triad on that chunk
 *   remote      the arrays on the next node with CPUs, not the thread's own
 *   interleave  the arrays spread over all nodes with CPUs
 * remote and interleave need two or more nodes with CPUs; on a one-node
 * machine the program says so (remote_gbs=one_node) and reports only the
 * local and shared figures.  Under numamalloc they use its API, looked up
 * with dlsym: nm_malloc_onnode(size, that node), and nm_heap_malloc from a
 * heap with an interleave policy over those nodes.  Under any other allocator, the
 * arrays come from malloc and are placed by first touch: the thread moves to
 * a CPU of the other node (remote), or of each node in turn for every
 * node's share of 2 MiB pieces (interleave), writes them, and moves back.
 * Where every page of the arrays lies is then read with move_pages(2) and
 * reported (on_node_pct: pages on the node meant, for shared the whole
 * pages of each thread's chunks on the thread's own node, trivially 100 on
 * one node; interleave: the share of the node with the fewest pages, 100 =
 * even); nothing is judged on it.
 *
 * Check: after the passes every element of a must be b + s * c, exactly.
 *
 * Usage:  triad mode=tiny|quick|full [threads=N, default: one per CPU]
 * Prints: RESULT bench=triad local_gbs=X shared_gbs=S remote_gbs=Y|one_node
 *         interleave_gbs=Z|one_node nodes=N threads=T ...
 *   *_gbs  GB/s (10^9 bytes per second) of all threads together */
#include "bench.h"

#include "../include/numamalloc.h"

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>

#define MAX_CPUS 1024
#define MAX_NODES 64
#define PIECE ((size_t)2 << 20)   /* interleaving by first touch: 2 MiB pieces */
#define SCALAR 3.0

struct mode_params {
    size_t array_bytes;
    int passes;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { (size_t)2 << 20, 2 },
    [MODE_QUICK] = { (size_t)32 << 20, 16 },
    [MODE_FULL]  = { (size_t)128 << 20, 20 },
};

enum scenario { LOCAL, SHARED, REMOTE, INTERLEAVE, SCENARIOS };

struct scenario_info {
    const char *name;
    int needs_two_nodes;   /* else it runs on every machine */
};

static const struct scenario_info scenario_table[SCENARIOS] = {
    [LOCAL]      = { "local", 0 },
    [SHARED]     = { "shared", 0 },
    [REMOTE]     = { "remote", 1 },
    [INTERLEAVE] = { "interleave", 1 },
};

/* ---- topology, from sysfs (the same for every allocator) ---------------- */

static int node_count;                 /* nodes with CPUs we may run on */
static int node_ids[MAX_NODES];
static cpu_set_t node_cpus[MAX_NODES]; /* of those, the CPUs we may run on */
static int cpu_list[MAX_CPUS], cpu_node[MAX_CPUS], cpu_count;

/* Adds the CPUs of a kernel list ("0-3,8") to set; 0 if malformed. */
static int parse_cpu_list(const char *s, cpu_set_t *set)
{
    while (*s && *s != '\n') {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s)
            return 0;
        if (*end == '-') {
            s = end + 1;
            b = strtol(s, &end, 10);
            if (end == s)
                return 0;
        }
        for (long c = a; c <= b && c < CPU_SETSIZE; c++)
            CPU_SET((int)c, set);
        s = *end == ',' ? end + 1 : end;
    }
    return 1;
}

static void load_topology(void)
{
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        CPU_SET(0, &allowed);
    for (int node = 0; node < 1024 && node_count < MAX_NODES; node++) {
        char path[96], buf[4096];
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", node);
        if (bench_read_proc(path, buf, sizeof buf) < 0)
            continue;
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        if (!parse_cpu_list(buf, &cpus))
            continue;
        CPU_AND(&cpus, &cpus, &allowed);
        if (CPU_COUNT(&cpus) == 0)
            continue;
        node_ids[node_count] = node;
        node_cpus[node_count] = cpus;
        node_count++;
    }
    if (node_count == 0) {   /* no sysfs: one node with every CPU allowed */
        node_ids[0] = 0;
        node_cpus[0] = allowed;
        node_count = 1;
    }
    for (int c = 0; c < CPU_SETSIZE && cpu_count < MAX_CPUS; c++) {
        if (!CPU_ISSET(c, &allowed))
            continue;
        cpu_list[cpu_count] = c;
        cpu_node[cpu_count] = 0;
        for (int k = 0; k < node_count; k++)
            if (CPU_ISSET(c, &node_cpus[k]))
                cpu_node[cpu_count] = k;
        cpu_count++;
    }
}

static int pin_to(const cpu_set_t *cpus)
{
    return sched_setaffinity(0, sizeof *cpus, cpus);
}

/* ---- numamalloc's API, when it is the allocator ------------------------- */

static void *(*nm_onnode)(size_t, int);
static nm_heap_t *(*nm_heap_create)(const nm_policy *);
static void *(*nm_heap_alloc)(nm_heap_t *, size_t);
static void (*nm_heap_release)(nm_heap_t *);
static nm_heap_t *interleave_heap;

static void load_numamalloc_api(void)
{
    nm_onnode = (void *(*)(size_t, int))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_malloc_onnode");
    nm_heap_create = (nm_heap_t * (*)(const nm_policy *))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_heap_new");
    nm_heap_alloc = (void *(*)(nm_heap_t *, size_t))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_heap_malloc");
    nm_heap_release = (void (*)(nm_heap_t *))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_heap_destroy");
    void (*set_clear)(nm_nodeset *) = (void (*)(nm_nodeset *))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_nodeset_clear");
    void (*set_add)(nm_nodeset *, int) = (void (*)(nm_nodeset *, int))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_nodeset_add");
    nm_policy (*interleave)(const nm_nodeset *) =
        (nm_policy(*)(const nm_nodeset *))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_policy_interleave");
    if (!nm_onnode || !nm_heap_create || !nm_heap_alloc || !nm_heap_release || !set_clear ||
        !set_add || !interleave) {
        nm_onnode = NULL;
        return;
    }
    if (node_count < 2)
        return;
    nm_nodeset nodes;
    set_clear(&nodes);
    for (int k = 0; k < node_count; k++)
        set_add(&nodes, node_ids[k]);
    nm_policy policy = interleave(&nodes);
    interleave_heap = nm_heap_create(&policy);
    if (!interleave_heap)
        fprintf(stderr, "triad: nm_heap_new(interleave) failed: %s\n", strerror(errno));
}

/* ---- where pages lie (move_pages with no target: nothing moves) --------- */

/* Adds to count[k] the pages of [p, p + bytes) on node_ids[k]; returns the
 * pages looked at. */
static long count_pages(const void *p, size_t bytes, long *count)
{
    enum { BATCH = 1024 };
    void *pages[BATCH];
    int status[BATCH];
    uintptr_t start = (uintptr_t)p / 4096 * 4096, end = (uintptr_t)p + bytes;
    long seen = 0;
    while (start < end) {
        int n = 0;
        for (; n < BATCH && start < end; n++, start += 4096)
            pages[n] = (void *)start;
        if (syscall(SYS_move_pages, 0, (unsigned long)n, pages, NULL, status, 0) != 0)
            return seen;
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < node_count; k++)
                if (status[i] == node_ids[k])
                    count[k]++;
            seen++;
        }
    }
    return seen;
}

/* The same for the pages wholly inside [p, p + bytes): a page at the edge of
 * a chunk of a shared array is shared with the next chunk's thread too. */
static long count_whole_pages(const void *p, size_t bytes, long *count)
{
    uintptr_t start = ((uintptr_t)p + 4095) / 4096 * 4096, end = ((uintptr_t)p + bytes) / 4096 * 4096;
    return end > start ? count_pages((const void *)start, end - start, count) : 0;
}

/* ---- the threads ---------------------------------------------------------- */

struct worker {
    pthread_t thread;
    int index;       /* also its CPU: cpu_list[index] */
    int check_ok;
    double *a, *b, *c;   /* its arrays, or (shared) its chunks of the shared ones */
    size_t n;
    uint64_t checksum;
    long on_node[MAX_NODES], pages;
    double t_start, t_end;   /* this thread's timed passes */
};

static struct mode_params params;
static int worker_count;
static struct worker *workers;
static pthread_barrier_t barrier;
static enum scenario current;   /* set by main between barriers */
static double *shared_arrays[3]; /* shared: a, b, c of threads x array size, from main */

static void fail(struct worker *w, const char *what)
{
    if (w->check_ok)
        fprintf(stderr, "triad: thread %d, %s: %s\n", w->index, scenario_table[current].name, what);
    w->check_ok = 0;
}

/* The position in node_ids of the node after this thread's. */
static int other_node(const struct worker *w)
{
    return (cpu_node[w->index] + 1) % node_count;
}

/* Whether numamalloc's API places the arrays of the current scenario
 * (else malloc and first touch do). */
static int placed_by_api(void)
{
    return (current == REMOTE && nm_onnode) || (current == INTERLEAVE && interleave_heap);
}

static void *allocate(struct worker *w, size_t bytes)
{
    if (placed_by_api())
        return current == REMOTE ? nm_onnode(bytes, node_ids[other_node(w)])
                                 : nm_heap_alloc(interleave_heap, bytes);
    return malloc(bytes);
}

/* The first value of element i of array 0 (a), 1 (b) or 2 (c). */
static double initial_value(int array, size_t i)
{
    switch (array) {
    case 0: return 0.0;
    case 1: return (double)(i % 1024);
    default: return (double)(i % 7) + 0.5;
    }
}

static void init_range(double *x, int array, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        x[i] = initial_value(array, i);
}

/* First writes: by this thread where it runs, or (placed by first touch)
 * from a CPU of the node the memory should come from.  Interleaved pieces
 * are the 2 MiB-aligned ones of the address space, as huge pages are: the
 * piece at address A goes to node (A / 2 MiB) mod nodes. */
static void first_touch(struct worker *w)
{
    cpu_set_t own;
    CPU_ZERO(&own);
    CPU_SET(cpu_list[w->index], &own);
    double *arrays[3] = { w->a, w->b, w->c };
    for (int x = 0; x < 3; x++) {
        if (placed_by_api() || current == LOCAL || current == SHARED) {
            init_range(arrays[x], x, 0, w->n);
        } else if (current == REMOTE) {
            pin_to(&node_cpus[other_node(w)]);
            init_range(arrays[x], x, 0, w->n);
        } else {
            uintptr_t start = (uintptr_t)arrays[x], end = start + w->n * sizeof(double);
            for (int k = 0; k < node_count; k++) {
                pin_to(&node_cpus[k]);
                for (uintptr_t piece = start / PIECE * PIECE; piece < end; piece += PIECE) {
                    if ((piece / PIECE) % (uintptr_t)node_count != (uintptr_t)k)
                        continue;
                    uintptr_t lo = piece > start ? piece : start;
                    uintptr_t hi = piece + PIECE < end ? piece + PIECE : end;
                    init_range(arrays[x], x, (lo - start) / sizeof(double),
                               (hi - start + sizeof(double) - 1) / sizeof(double));
                }
            }
        }
    }
    if (pin_to(&own) != 0)
        fail(w, "cannot pin the thread to its CPU");
}

static void triad_pass(double *restrict a, const double *restrict b, const double *restrict c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + SCALAR * c[i];
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    cpu_set_t own;
    CPU_ZERO(&own);
    CPU_SET(cpu_list[w->index], &own);
    if (pin_to(&own) != 0)
        fail(w, "cannot pin the thread to its CPU");
    for (;;) {
        pthread_barrier_wait(&barrier);   /* main has set `current` (or SCENARIOS: stop) */
        if (current == SCENARIOS)
            return NULL;
        size_t bytes = params.array_bytes;
        w->n = bytes / sizeof(double);
        if (current == SHARED) {   /* chunk `index` of each array main allocated */
            double **chunk[3] = { &w->a, &w->b, &w->c };
            for (int x = 0; x < 3; x++)
                *chunk[x] = shared_arrays[x] ? shared_arrays[x] + (size_t)w->index * w->n : NULL;
        } else {
            w->a = allocate(w, bytes);
            w->b = allocate(w, bytes);
            w->c = allocate(w, bytes);
        }
        int have = w->a && w->b && w->c;
        if (!have)
            fail(w, "allocation returned NULL");
        else
            first_touch(w);
        memset(w->on_node, 0, sizeof w->on_node);
        w->pages = 0;
        if (have) {
            long (*count)(const void *, size_t, long *) = current == SHARED ? count_whole_pages : count_pages;
            w->pages += count(w->a, bytes, w->on_node);
            w->pages += count(w->b, bytes, w->on_node);
            w->pages += count(w->c, bytes, w->on_node);
            triad_pass(w->a, w->b, w->c, w->n);   /* warm-up */
        }
        pthread_barrier_wait(&barrier);   /* start */
        w->t_start = bench_now();
        for (int p = 0; have && p < params.passes; p++)
            triad_pass(w->a, w->b, w->c, w->n);
        w->t_end = bench_now();
        pthread_barrier_wait(&barrier);   /* end */
        if (have) {
            for (size_t i = 0; i < w->n; i++) {
                if (w->a[i] != w->b[i] + SCALAR * w->c[i]) {
                    fail(w, "an element of a is not b + s * c");
                    break;
                }
            }
            w->checksum += (uint64_t)(w->a[w->n / 3] + w->a[w->n - 1]);
        }
        if (current != SHARED) {   /* main frees the shared arrays */
            free(w->a);
            free(w->b);
            free(w->c);
        }
        pthread_barrier_wait(&barrier);   /* checked */
    }
}

/* Runs one scenario on every thread; returns GB/s.  The time is from the
 * first thread's start to the last thread's end, as the threads saw them
 * (the main thread may wake late: it has no CPU of its own). */
static double run_scenario(enum scenario s, double *on_node_pct)
{
    current = s;
    if (s == SHARED)   /* the master allocates; the workers will place */
        for (int x = 0; x < 3; x++)
            shared_arrays[x] = malloc((size_t)worker_count * params.array_bytes);
    pthread_barrier_wait(&barrier);   /* go: allocate and place */
    pthread_barrier_wait(&barrier);   /* placed: start */
    pthread_barrier_wait(&barrier);   /* done */
    pthread_barrier_wait(&barrier);   /* checked */
    if (s == SHARED)
        for (int x = 0; x < 3; x++) {
            free(shared_arrays[x]);
            shared_arrays[x] = NULL;
        }
    double first = workers[0].t_start, last = workers[0].t_end;
    for (int i = 1; i < worker_count; i++) {
        first = workers[i].t_start < first ? workers[i].t_start : first;
        last = workers[i].t_end > last ? workers[i].t_end : last;
    }
    double seconds = last - first;

    long total[MAX_NODES] = { 0 }, pages = 0, meant = 0;
    for (int i = 0; i < worker_count; i++) {
        struct worker *w = &workers[i];
        pages += w->pages;
        for (int k = 0; k < node_count; k++)
            total[k] += w->on_node[k];
        if (s == LOCAL || s == SHARED)
            meant += w->on_node[cpu_node[i]];
        else if (s == REMOTE)
            meant += w->on_node[other_node(w)];
    }
    if (s == INTERLEAVE) {
        long fewest = total[0], most = total[0];
        for (int k = 1; k < node_count; k++) {
            fewest = total[k] < fewest ? total[k] : fewest;
            most = total[k] > most ? total[k] : most;
        }
        *on_node_pct = most ? 100.0 * (double)fewest / (double)most : 0.0;
    } else {
        *on_node_pct = pages ? 100.0 * (double)meant / (double)pages : 0.0;
    }
    double bytes = 3.0 * (double)params.array_bytes * params.passes * worker_count;
    return bytes / seconds / 1e9;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    params = mode_table[bench_arg_mode(&args)];
    long threads_arg = bench_arg_long(&args, "threads", 0, 0, MAX_CPUS);
    bench_args_done(&args, argv[0]);

    load_topology();
    load_numamalloc_api();
    worker_count = threads_arg > 0 && threads_arg < cpu_count ? (int)threads_arg : cpu_count;
    workers = bench_map((size_t)worker_count * sizeof *workers);
    pthread_barrier_init(&barrier, NULL, (unsigned)worker_count + 1);
    for (int i = 0; i < worker_count; i++) {
        workers[i].index = i;
        workers[i].check_ok = 1;
        bench_thread_start("triad", &workers[i].thread, worker_main, &workers[i]);
    }

    char text[SCENARIOS][32], placed[SCENARIOS][32];
    for (int s = 0; s < SCENARIOS; s++) {
        snprintf(text[s], sizeof text[s], "one_node");
        snprintf(placed[s], sizeof placed[s], "-");
    }
    for (int s = 0; s < SCENARIOS; s++) {
        if (scenario_table[s].needs_two_nodes && node_count < 2)
            continue;
        double pct;
        double gbs = run_scenario((enum scenario)s, &pct);
        snprintf(text[s], sizeof text[s], "%.2f", gbs);
        snprintf(placed[s], sizeof placed[s], "%.1f", pct);
    }
    current = SCENARIOS;
    pthread_barrier_wait(&barrier);

    int check_ok = 1;
    uint64_t checksum = 0;
    for (int i = 0; i < worker_count; i++) {
        pthread_join(workers[i].thread, NULL);
        check_ok &= workers[i].check_ok;
        checksum += workers[i].checksum;
    }
    if (interleave_heap)
        nm_heap_release(interleave_heap);
    printf("RESULT bench=triad local_gbs=%s shared_gbs=%s remote_gbs=%s interleave_gbs=%s nodes=%d"
           " threads=%d array_mib=%zu placement=%s local_on_node_pct=%s shared_on_node_pct=%s"
           " remote_on_node_pct=%s interleave_balance_pct=%s",
           text[LOCAL], text[SHARED], text[REMOTE], text[INTERLEAVE], node_count, worker_count,
           params.array_bytes >> 20, nm_onnode ? "numamalloc_api" : "first_touch", placed[LOCAL],
           placed[SHARED], placed[REMOTE], placed[INTERLEAVE]);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
