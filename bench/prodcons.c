/* prodcons: blocks allocated on one thread and freed on another -- the
 * remote-free path.
 *
 * Models pipelines and message passing: a producer thread builds objects
 * (16 B - 1 KiB, every power-of-two band equally likely, fixed seeds) and
 * hands them to a consumer thread, which reads and frees them.
 *
 * threads=T runs T producer/consumer pairs (2T threads).  Each pair shares a
 * single-producer single-consumer ring of 16 slots; a slot carries a batch of
 * 64 blocks, so the queue costs one atomic store per 64 blocks and the time
 * goes to the allocator.  When the ring is full (or empty) the waiting side
 * yields the CPU.
 *
 * Check: the producer writes a tag at both ends of each block (naming its
 * address and size); the consumer verifies the tags before freeing.  Every
 * block produced must be consumed.  Before timing, each producer also checks
 * that 4096 live blocks are non-NULL, disjoint and writable end to end.
 *
 * Usage:  prodcons threads=T mode=tiny|quick|full
 * Prints: RESULT bench=prodcons ... mops_per_s=X ...
 *   mops_per_s   blocks allocated by a producer and freed by a consumer per
 *                second, all pairs together, in millions */
#include "bench.h"

#include <pthread.h>
#include <sched.h>

#define SIZE_MIN 16
#define SIZE_MAX_BYTES 1024
#define SIZE_TABLE 4096
#define BATCH 64               /* blocks per ring slot */
#define RING 16                /* slots per ring */
#define MAX_INTERVAL_S 30.0    /* the most the measured interval may be stretched to */

struct mode_params {
    double warm_s, run_s;
    int verify_blocks;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.02, 512 },
    [MODE_QUICK] = { 0.05, 0.25, 4096 },
    [MODE_FULL]  = { 0.2, 1.0, 4096 },
};

struct slot {
    void *blocks[BATCH];
    uint16_t sizes[BATCH];
};

/* One producer/consumer pair.  head counts slots published by the producer,
 * tail slots released by the consumer; each on its own cache line. */
struct pair {
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
    _Alignas(64) _Atomic int producer_done;
    struct bench_counter consumed;   /* blocks freed by the consumer */
    struct slot slots[RING];
    pthread_t producer, consumer;
    int index;
    uint64_t produced;
    uint64_t checksum;
    int producer_ok, consumer_ok;
};

static struct mode_params params;
static pthread_barrier_t start_barrier;
static _Atomic int stop_flag;

static _Atomic int any_failure;

static void report(struct pair *p, int *ok, const char *who, const char *what)
{
    if (*ok)
        fprintf(stderr, "prodcons: pair %d: %s: %s\n", p->index, who, what);
    *ok = 0;
    atomic_store(&any_failure, 1);
}

/* Live blocks must be non-NULL, disjoint and writable end to end. */
static void verify_blocks(struct pair *p, const uint16_t *sizes)
{
    int n = params.verify_blocks;
    void **blocks = bench_map((size_t)n * sizeof *blocks);
    struct bench_range *ranges = bench_map((size_t)n * sizeof *ranges);
    for (int i = 0; i < n; i++) {
        blocks[i] = malloc(sizes[i % SIZE_TABLE]);
        if (!blocks[i]) {
            report(p, &p->producer_ok, "producer", "malloc returned NULL");
            n = i;
            break;
        }
        bench_fill(blocks[i], sizes[i % SIZE_TABLE], (uint64_t)i);
        ranges[i] = (struct bench_range){ (uintptr_t)blocks[i], sizes[i % SIZE_TABLE] };
    }
    for (int i = 0; i < n; i++)
        if (!bench_fill_ok(blocks[i], sizes[i % SIZE_TABLE], (uint64_t)i))
            report(p, &p->producer_ok, "producer", "a block's contents changed while it was live");
    if (!bench_ranges_disjoint(ranges, (size_t)n))
        report(p, &p->producer_ok, "producer", "two live blocks overlap");
    for (int i = 0; i < n; i++)
        free(blocks[i]);
    bench_unmap(blocks, (size_t)params.verify_blocks * sizeof *blocks);
    bench_unmap(ranges, (size_t)params.verify_blocks * sizeof *ranges);
}

static void *producer_main(void *arg)
{
    struct pair *p = arg;
    uint16_t sizes[SIZE_TABLE];
    uint64_t seed = 1 + (uint64_t)p->index, head = 0;
    unsigned next = 0;
    for (int i = 0; i < SIZE_TABLE; i++)
        sizes[i] = (uint16_t)bench_size_log_uniform(&seed, SIZE_MIN, SIZE_MAX_BYTES);

    verify_blocks(p, sizes);
    pthread_barrier_wait(&start_barrier);
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed) && p->producer_ok) {
        if (head - atomic_load_explicit(&p->tail, memory_order_acquire) == RING) {
            sched_yield();
            continue;
        }
        struct slot *s = &p->slots[head % RING];
        for (int i = 0; i < BATCH; i++) {
            size_t size = sizes[next++ % SIZE_TABLE];
            void *block = malloc(size);
            if (!block) {
                report(p, &p->producer_ok, "producer", "malloc returned NULL");
                break;
            }
            bench_tag_write(block, size);
            s->blocks[i] = block;
            s->sizes[i] = (uint16_t)size;
        }
        if (!p->producer_ok)
            break;
        head++;
        p->produced += BATCH;
        atomic_store_explicit(&p->head, head, memory_order_release);
    }
    atomic_store_explicit(&p->producer_done, 1, memory_order_release);
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct pair *p = arg;
    uint64_t tail = 0, consumed = 0, sum = 0;

    pthread_barrier_wait(&start_barrier);
    for (;;) {
        if (tail == atomic_load_explicit(&p->head, memory_order_acquire)) {
            if (atomic_load_explicit(&p->producer_done, memory_order_acquire) &&
                tail == atomic_load_explicit(&p->head, memory_order_acquire))
                break;
            sched_yield();
            continue;
        }
        struct slot *s = &p->slots[tail % RING];
        for (int i = 0; i < BATCH; i++) {
            uint64_t tag = bench_tag_read(s->blocks[i], s->sizes[i]);
            if (!tag)
                report(p, &p->consumer_ok, "consumer", "a block's tag was overwritten in flight");
            sum += tag;
            free(s->blocks[i]);
        }
        tail++;
        consumed += BATCH;
        atomic_store_explicit(&p->tail, tail, memory_order_release);
        atomic_store_explicit(&p->consumed.value, consumed, memory_order_relaxed);
    }
    p->checksum = sum;
    return NULL;
}

/* Reads every consumer's block counter into seen[] and returns their sum. */
static uint64_t read_consumed(const struct pair *pairs, int n, uint64_t *seen)
{
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        seen[i] = atomic_load_explicit(&pairs[i].consumed.value, memory_order_relaxed);
        sum += seen[i];
    }
    return sum;
}

/* 1 when every consumer has freed a batch since seen[] was read. */
static int all_advanced(const struct pair *pairs, int n, const uint64_t *seen)
{
    for (int i = 0; i < n; i++)
        if (atomic_load_explicit(&pairs[i].consumed.value, memory_order_relaxed) == seen[i])
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    int npairs = (int)bench_arg_long(&args, "threads", 1, 1, 512);
    params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);

    struct pair *pairs = bench_map((size_t)npairs * sizeof *pairs);
    pthread_barrier_init(&start_barrier, NULL, 2 * (unsigned)npairs + 1);
    for (int i = 0; i < npairs; i++) {
        pairs[i].index = i;
        pairs[i].producer_ok = pairs[i].consumer_ok = 1;
        bench_thread_start("prodcons", &pairs[i].producer, producer_main, &pairs[i]);
        bench_thread_start("prodcons", &pairs[i].consumer, consumer_main, &pairs[i]);
    }
    pthread_barrier_wait(&start_barrier);
    bench_sleep(params.warm_s);
    uint64_t *seen = bench_map((size_t)npairs * sizeof *seen);
    uint64_t blocks_start = read_consumed(pairs, npairs, seen);
    double t_start = bench_now();
    bench_sleep(params.run_s);
    /* On a crowded machine a thread may not get a CPU during a short
     * interval; extend the interval until every pair has moved a batch. */
    while (!all_advanced(pairs, npairs, seen) && !atomic_load(&any_failure) &&
           bench_now() - t_start < MAX_INTERVAL_S)
        bench_sleep(0.001);
    uint64_t blocks_end = read_consumed(pairs, npairs, seen);
    double t_end = bench_now();
    atomic_store(&stop_flag, 1);

    int check_ok = 1;
    uint64_t checksum = 0;
    for (int i = 0; i < npairs; i++) {
        pthread_join(pairs[i].producer, NULL);
        pthread_join(pairs[i].consumer, NULL);
        check_ok &= pairs[i].producer_ok & pairs[i].consumer_ok;
        checksum += pairs[i].checksum;
        uint64_t consumed = atomic_load(&pairs[i].consumed.value);
        if (consumed != pairs[i].produced) {
            fprintf(stderr, "prodcons: pair %d produced %llu blocks but consumed %llu\n", i,
                    (unsigned long long)pairs[i].produced, (unsigned long long)consumed);
            check_ok = 0;
        }
    }
    uint64_t blocks = blocks_end - blocks_start;
    double seconds = t_end - t_start;
    if (blocks == 0) {
        fprintf(stderr, "prodcons: no blocks went through in the measured interval\n");
        check_ok = 0;
    }
    printf("RESULT bench=prodcons threads=%d producers=%d consumers=%d mops_per_s=%.3f"
           " blocks=%llu seconds=%.3f",
           npairs, npairs, npairs, (double)blocks / seconds / 1e6,
           (unsigned long long)blocks, seconds);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
