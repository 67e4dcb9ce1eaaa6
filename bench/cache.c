/* cache: false sharing that the allocator causes -- active (pattern=thrash)
 * or passive (pattern=scratch), in the spirit of Hoard's cache-thrash and
 * cache-scratch benchmarks.
 *
 * Models threads that each keep a small object of their own (a counter, a
 * cursor, a little state struct) and write it all the time.  If the
 * allocator hands two threads objects in the same 64-byte cache line, every
 * write of one thread takes the line away from the other, and the program
 * runs many times slower though it shares nothing.
 *
 * pattern=thrash (active false sharing): each of threads=T threads, again
 * and again, allocates an 8-byte object, writes each of its bytes 2000
 * times (a read and a write each time), checks it and frees it.  An
 * allocator that serves small requests from one shared run of memory puts
 * the threads' objects side by side.
 *
 * pattern=scratch (passive false sharing): the main thread first allocates
 * T objects of 8 bytes (side by side, under most allocators) and hands one
 * to each thread; each thread frees the one it got, then works as in
 * thrash.  An allocator that gives a thread back the block it just freed,
 * though another thread allocated it, keeps the threads in the main
 * thread's cache line.
 *
 * Fixed work, split evenly among the threads: 60000 objects in all (2000
 * in mode=tiny, 300000 in mode=full), 16000 writes each, so with no false
 * sharing more threads finish sooner, up to the number of CPUs.
 *
 * Check: every object is filled with 0 when allocated; after its writes
 * each byte must hold the number of writes (mod 256); the objects the main
 * thread hands out must be non-NULL and disjoint.
 *
 * Usage:  cache pattern=thrash|scratch threads=T mode=tiny|quick|full
 * Prints: RESULT bench=cache pattern=P seconds=S ns_per_write=N ...
 *   seconds       time for all the threads to finish (wall clock)
 *   ns_per_write  seconds / writes per thread, in ns */
#include "bench.h"

#define OBJECT 8
#define WRITES 2000   /* per byte of an object, before it is freed */

struct mode_params {
    long objects;     /* objects allocated in all, split among the threads */
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 2000 },
    [MODE_QUICK] = { 60000 },
    [MODE_FULL]  = { 300000 },
};

struct worker {               /* each on its own cache lines: the harness shares none */
    _Alignas(64) pthread_t thread;
    unsigned char *handed;   /* scratch: the object from the main thread */
    long objects;
    int index;
    int check_ok;
    uint64_t checksum;
};

static pthread_barrier_t start_barrier;

static int write_object(volatile unsigned char *o)
{
    for (int r = 0; r < WRITES; r++)
        for (int b = 0; b < OBJECT; b++)
            o[b] = (unsigned char)(o[b] + 1);
    for (int b = 0; b < OBJECT; b++)
        if (o[b] != (unsigned char)WRITES)
            return 0;
    return 1;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(&start_barrier);
    if (w->handed) {
        if (!write_object(w->handed))
            w->check_ok = 0;
        free(w->handed);
    }
    for (long i = 0; i < w->objects && w->check_ok; i++) {
        unsigned char *o = malloc(OBJECT);
        if (!o) {
            fprintf(stderr, "cache: thread %d: malloc returned NULL\n", w->index);
            w->check_ok = 0;
            break;
        }
        memset(o, 0, OBJECT);
        if (!write_object(o)) {
            fprintf(stderr, "cache: thread %d: an object changed under its writes\n", w->index);
            w->check_ok = 0;
        }
        w->checksum += (uint64_t)(uintptr_t)o & 63;
        free(o);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    const char *pattern = bench_arg_str(&args, "pattern", "thrash");
    int n = (int)bench_arg_long(&args, "threads", 1, 1, 1024);
    struct mode_params params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);
    int scratch = strcmp(pattern, "scratch") == 0;
    if (!scratch && strcmp(pattern, "thrash") != 0)
        bench_usage_exit(argv[0], "pattern must be thrash or scratch, not", pattern);

    struct worker *workers = bench_map((size_t)n * sizeof *workers);
    struct bench_range *ranges = bench_map((size_t)n * sizeof *ranges);
    int check_ok = 1;
    for (int i = 0; i < n; i++) {
        workers[i].index = i;
        workers[i].check_ok = 1;
        workers[i].objects = params.objects / n + (i < params.objects % n);
        if (scratch) {
            workers[i].handed = malloc(OBJECT);
            if (!workers[i].handed) {
                fprintf(stderr, "cache: malloc returned NULL\n");
                return 1;
            }
            memset(workers[i].handed, 0, OBJECT);
            ranges[i] = (struct bench_range){ (uintptr_t)workers[i].handed, OBJECT };
        }
    }
    if (scratch && !bench_ranges_disjoint(ranges, (size_t)n)) {
        fprintf(stderr, "cache: two live blocks overlap\n");
        check_ok = 0;
    }
    pthread_barrier_init(&start_barrier, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        bench_thread_start("cache", &workers[i].thread, worker_main, &workers[i]);
    }
    double start = bench_now();
    pthread_barrier_wait(&start_barrier);
    uint64_t checksum = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(workers[i].thread, NULL);
        check_ok &= workers[i].check_ok;
        checksum += workers[i].checksum;
    }
    double seconds = bench_now() - start;
    double writes_per_thread = (double)(params.objects / n) * WRITES * OBJECT;
    printf("RESULT bench=cache pattern=%s threads=%d seconds=%.4f ns_per_write=%.3f", pattern, n,
           seconds, seconds / writes_per_thread * 1e9);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
