/* hugepages: what huge pages are worth to a program that reads a big array
 * at random (seed 000 claims 15-20% from huge pages: this measures it).
 *
 * Models a hash table, a graph or an index much larger than the caches and
 * the TLB's reach with 4 KiB pages: almost every read misses both.
 *
 * One thread allocates the array with one malloc (1 GiB in mode=quick,
 * 4 GiB in full, 64 MiB in tiny), fills every 8-byte word with a value
 * derived from its index, then follows a chain of dependent random reads:
 * the index of each read comes from the value of the previous one (plus a
 * step counter, so that the walk never falls into a short cycle), which no
 * prefetcher can guess.  Every value read is checked against its index.
 *
 * Whether the array gets huge pages is up to the allocator: numamalloc asks
 * for transparent huge pages on blocks of 2 MiB and more (unless
 * NUMAMALLOC_HUGEPAGES=off); where the system's THP setting is "madvise"
 * most other allocators get 4 KiB pages.  huge_pct says what each got, read
 * from /proc/self/smaps (AnonHugePages of the array's mappings).
 *
 * TLB misses during the reads are counted with the dTLB-load-misses counter
 * (the one `perf stat -e dTLB-load-misses` reads, through perf_event_open,
 * user space only, around the measured reads alone).  Where the CPU or the
 * hypervisor exposes no such counter the value is "unsupported", never a
 * made-up number.
 *
 * Usage:  hugepages mode=tiny|quick|full
 * Prints: RESULT bench=hugepages ns_per_read=X huge_pct=P fill_ms=F
 *         dtlb_misses_per_read=M|unsupported ...
 *   ns_per_read  wall time per dependent random read (after a warm-up)
 *   fill_ms      time to write the whole array once (the page faults)
 *   huge_pct     share of the array backed by huge pages after the fill */
#include "bench.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#define READS_PER_CHECK 4096   /* reads between two looks at the clock */

struct mode_params {
    int log2_bytes;
    double warm_s, run_s;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 26, 0.005, 0.03 },
    [MODE_QUICK] = { 30, 0.05, 0.3 },
    [MODE_FULL]  = { 32, 0.2, 1.0 },
};

/* The value stored at word i: a cheap mix, so that its low bits look random. */
static inline uint64_t word_of(uint64_t i)
{
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    return x * 0xbf58476d1ce4e5b9ull;
}

/* ---- the dTLB-load-misses counter ------------------------------------- */

struct tlb_counter {
    int fd;
    int error;   /* errno of perf_event_open when fd < 0 */
};

static struct tlb_counter tlb_open(void)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_HW_CACHE;
    attr.config = PERF_COUNT_HW_CACHE_DTLB | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
                  (PERF_COUNT_HW_CACHE_RESULT_MISS << 16);
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    attr.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
    struct tlb_counter c;
    c.fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    c.error = c.fd < 0 ? errno : 0;
    return c;
}

/* The count since the counter was enabled, or -1 when it did not count
 * (not scheduled on the PMU the whole time, or unreadable). */
static long long tlb_read(struct tlb_counter *c)
{
    uint64_t v[3];
    if (c->fd < 0 || read(c->fd, v, sizeof v) != (ssize_t)sizeof v)
        return -1;
    if (v[1] == 0 || v[2] != v[1])
        return -1;
    return (long long)v[0];
}

/* ---- huge pages of a range, from /proc/self/smaps ---------------------- */

/* KiB of [p, p + size) backed by huge pages: each mapping's AnonHugePages,
 * at most the part of the mapping inside the range.  -1 if unreadable. */
static long huge_kb(const void *p, size_t size)
{
    size_t cap = (size_t)16 << 20;
    char *buf = bench_map(cap);
    int fd = open("/proc/self/smaps", O_RDONLY);
    size_t len = 0;
    if (fd >= 0) {
        ssize_t n;
        while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
            len += (size_t)n;
        close(fd);
    }
    buf[len] = '\0';
    long total = fd < 0 ? -1 : 0;
    uintptr_t lo = (uintptr_t)p, hi = lo + size, overlap = 0;
    for (char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        unsigned long start, end;
        long kb;
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
            uintptr_t a = start > lo ? start : lo, b = end < hi ? end : hi;
            overlap = a < b ? b - a : 0;
        } else if (overlap && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) {
            long most = (long)(overlap / 1024);
            total += kb < most ? kb : most;
        }
    }
    bench_unmap(buf, cap);
    return total;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    struct mode_params params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);

    size_t bytes = (size_t)1 << params.log2_bytes, words = bytes / 8, mask = words - 1;
    int check_ok = 1;
    uint64_t *array = malloc(bytes);
    if (!array) {
        fprintf(stderr, "hugepages: malloc(%zu) returned NULL\n", bytes);
        return 1;
    }

    double t0 = bench_now();
    for (size_t i = 0; i < words; i++)
        array[i] = word_of(i);
    double fill_ms = (bench_now() - t0) * 1e3;
    long huge = huge_kb(array, bytes);

    /* The walk: warm-up reads first, then the measured ones, looking at the
     * clock every READS_PER_CHECK reads. */
    struct tlb_counter tlb = tlb_open();
    uint64_t index = 12345 & mask, step = 0, bad = 0, sum = 0, reads = 0;
    double t_start = 0, t_end = 0;
    long long misses = -1;
    int measuring = 0;
    double phase_end = bench_now() + params.warm_s;
    for (;;) {
        for (int i = 0; i < READS_PER_CHECK; i++) {
            uint64_t value = array[index];
            bad += value != word_of(index);
            sum += value;
            index = (value + ++step * 0x9e3779b97f4a7c15ull) & mask;
        }
        if (measuring)
            reads += READS_PER_CHECK;
        double now = bench_now();
        if (now < phase_end)
            continue;
        if (measuring) {
            t_end = now;
            break;
        }
        measuring = 1;
        if (tlb.fd >= 0) {
            ioctl(tlb.fd, PERF_EVENT_IOC_RESET, 0);
            ioctl(tlb.fd, PERF_EVENT_IOC_ENABLE, 0);
        }
        t_start = bench_now();
        phase_end = t_start + params.run_s;
    }
    if (tlb.fd >= 0) {
        ioctl(tlb.fd, PERF_EVENT_IOC_DISABLE, 0);
        misses = tlb_read(&tlb);
        close(tlb.fd);
    }
    if (bad) {
        fprintf(stderr, "hugepages: %llu reads found a value that was not the one written\n",
                (unsigned long long)bad);
        check_ok = 0;
    }
    if (huge < 0) {
        fprintf(stderr, "hugepages: cannot read /proc/self/smaps\n");
        check_ok = 0;
    }
    char tlb_text[64];
    if (misses >= 0) {
        snprintf(tlb_text, sizeof tlb_text, "%.4f", (double)misses / (double)reads);
    } else {
        snprintf(tlb_text, sizeof tlb_text, "unsupported");
        fprintf(stderr, "hugepages: no dTLB-load-misses counter on this machine (%s)\n",
                tlb.fd < 0 ? strerror(tlb.error) : "it did not count");
    }
    free(array);

    printf("RESULT bench=hugepages array_mib=%zu ns_per_read=%.2f huge_pct=%.1f fill_ms=%.1f"
           " dtlb_misses_per_read=%s reads=%llu seconds=%.3f",
           bytes >> 20, (t_end - t_start) * 1e9 / (double)reads,
           huge < 0 ? 0.0 : 100.0 * (double)huge * 1024.0 / (double)bytes, fill_ms, tlb_text,
           (unsigned long long)reads, t_end - t_start);
    bench_result_end(check_ok, sum);
    return check_ok ? 0 : 1;
}
