/* large: big blocks, 64 KiB - 64 MiB, allocated, grown with realloc and
 * freed.
 *
 * Models buffers that grow as data arrives: a vector or a string builder
 * doubling its capacity, a read buffer, an image or a column being built.
 *
 * One thread runs a fixed number of cycles (48 in mode=quick, 400 in full), from a fixed
 * seed, so every allocator serves exactly the same requests.  A cycle:
 *   - frees the block that the cycle 4 before left (4 blocks stay live, so
 *     the allocator has up to 256 MiB of big blocks in use at once);
 *   - mallocs a first size, 64 KiB - 1 MiB, and a final size, up to 64 MiB
 *     (each power-of-two band equally likely);
 *   - grows the block with realloc by 1.25x to 2x at a time up to the final
 *     size.
 * Every page of a block is written when it first becomes part of the block
 * (one word per 4 KiB, naming the block and the offset), as a program
 * filling its buffer would, so page faults are part of the cost.  After
 * each realloc the words of the part that must have been kept are checked
 * (every 8th page, and the last one), and every word before the block is
 * freed.
 *
 * Usage:  large mode=tiny|quick|full
 * Prints: RESULT bench=large kops_per_s=X us_per_cycle=Y ...
 *   kops_per_s    malloc, realloc and free calls per second, in thousands
 *                 (with the page writes between them)
 *   us_per_cycle  time of one cycle (malloc, the reallocs, one free) */
#include "bench.h"

#define LIVE 4                      /* blocks kept live across cycles */
#define PAGE 4096
#define CHECK_EVERY 8               /* check every 8th page after a realloc */
#define FIRST_MIN ((size_t)64 << 10)
#define FIRST_MAX ((size_t)1 << 20)

struct mode_params {
    int cycles;
    size_t final_max;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 12, (size_t)8 << 20 },
    [MODE_QUICK] = { 48, (size_t)64 << 20 },
    [MODE_FULL]  = { 400, (size_t)64 << 20 },
};

static int check_ok = 1;

static void fail(const char *what, uint64_t id, size_t offset)
{
    if (check_ok)
        fprintf(stderr, "large: block %llu, offset %zu: %s\n", (unsigned long long)id, offset, what);
    check_ok = 0;
}

static inline uint64_t mark(uint64_t id, size_t offset)
{
    return (id * 0x9e3779b97f4a7c15ull) ^ offset ^ BENCH_TAG_SALT;
}

/* Writes the mark of each page offset whose word lies in [0, to) and did
 * not lie in [0, from): the words of the block's new part. */
static void write_pages(char *p, uint64_t id, size_t from, size_t to)
{
    size_t first = from >= 8 ? from - 7 : 0;
    for (size_t off = (first + PAGE - 1) / PAGE * PAGE; off + 8 <= to; off += PAGE) {
        uint64_t m = mark(id, off);
        memcpy(p + off, &m, 8);
    }
}

/* Checks the marks in [0, size): every `every`th page and the last. */
static uint64_t check_pages(const char *p, uint64_t id, size_t size, size_t every, const char *what)
{
    uint64_t sum = 0, got;
    size_t last = size >= 8 ? (size - 8) / PAGE * PAGE : 0;
    for (size_t off = 0; off + 8 <= size; off += every * PAGE) {
        memcpy(&got, p + off, 8);
        if (got != mark(id, off))
            fail(what, id, off);
        sum += got;
    }
    memcpy(&got, p + last, 8);
    if (size >= 8 && got != mark(id, last))
        fail(what, id, last);
    return sum + got;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    struct mode_params params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);

    char *live[LIVE] = { 0 };
    size_t live_size[LIVE] = { 0 };
    uint64_t live_id[LIVE] = { 0 };
    uint64_t seed = 7, calls = 0, checksum = 0, reallocs = 0, moved = 0;

    double t0 = bench_now();
    for (int cycle = 0; cycle < params.cycles && check_ok; cycle++) {
        int slot = cycle % LIVE;
        if (live[slot]) {
            checksum += check_pages(live[slot], live_id[slot], live_size[slot], 1,
                                    "a page lost its contents before free");
            free(live[slot]);
            calls++;
            live[slot] = NULL;
        }
        uint64_t id = (uint64_t)cycle + 1;
        size_t size = bench_size_log_uniform(&seed, FIRST_MIN, FIRST_MAX);
        size_t final = bench_size_log_uniform(&seed, size, params.final_max);
        char *p = malloc(size);
        calls++;
        if (!p) {
            fail("malloc returned NULL", id, 0);
            break;
        }
        write_pages(p, id, 0, size);
        while (size < final) {
            size_t grow = size + size / 4 + (size_t)(bench_rand(&seed) % (size * 3 / 4 + 1));
            if (grow > final)
                grow = final;
            char *q = realloc(p, grow);
            calls++;
            reallocs++;
            if (!q) {
                fail("realloc returned NULL", id, grow);
                free(p);
                p = NULL;
                break;
            }
            moved += q != p;
            p = q;
            checksum += check_pages(p, id, size, CHECK_EVERY, "realloc did not keep the contents");
            write_pages(p, id, size, grow);
            size = grow;
        }
        live[slot] = p;
        live_size[slot] = size;
        live_id[slot] = id;
    }
    for (int slot = 0; slot < LIVE; slot++) {
        if (!live[slot])
            continue;
        checksum += check_pages(live[slot], live_id[slot], live_size[slot], 1,
                                "a page lost its contents before free");
        free(live[slot]);
        calls++;
    }
    double seconds = bench_now() - t0;

    printf("RESULT bench=large cycles=%d kops_per_s=%.2f us_per_cycle=%.1f calls=%llu"
           " reallocs=%llu moved=%llu seconds=%.3f",
           params.cycles, (double)calls / seconds / 1e3, seconds * 1e6 / params.cycles,
           (unsigned long long)calls, (unsigned long long)reallocs, (unsigned long long)moved,
           seconds);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
