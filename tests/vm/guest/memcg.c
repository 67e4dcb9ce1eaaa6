/*
 * memcg.c — runs inside a guest, in a memory cgroup with memory.max set
 * (tests/vm/memcg.sh, guest/memcg.sh): the jobs of a server or batch
 * program, one after another, in a pool of worker threads that lives
 * through them all, with the cgroup's memory.current read between the
 * steps.  Allocator-neutral: the same program runs on numamalloc
 * (LD_PRELOAD) and on glibc's malloc.
 *
 *     memcg GAP [--check-after-gap MIB] [--check-after-trim MIB]
 *
 *   - start: each of the WORKERS threads keeps 2 MiB of 16-1024 B blocks
 *     for the whole run (the program's long-lived state); memory.current
 *     then is the baseline;
 *   - job A: each worker allocates and writes 28 MiB of blocks, half the
 *     bytes 16-1024 B, half 1-256 KiB, and frees them itself;
 *   - job B: each worker allocates and writes 30 MiB of 1-4 MiB blocks and
 *     frees them (another shape: none of job A's pages fits them);
 *   - job C: as job A, but each worker frees the blocks of the next one
 *     (requests handed from thread to thread);
 *   - after each job, the GAP: "idle" sleeps the purge delay and a half
 *     (NUMAMALLOC_PURGE_DELAY_MS, 1000 by default) with memory.current read
 *     every quarter of the delay, the workers waiting (a server between
 *     requests); "busy" goes on at once; "trim" calls malloc_trim(0).
 *
 * At most 8 + 120 MiB are live at any time.  Prints one "sample" line per
 * step (MiB: the cgroup's memory.current and memory.peak, the process's
 * anonymous memory and the part of it in huge pages, from smaps_rollup;
 * after an allocation, the bytes the workers asked for) and "memcg GAP:
 * ..." at the end; with NM_MEMCG_STATS=1, numamalloc's statistics after
 * each gap (nm_stats_print, when numamalloc is the allocator).  --check-after-gap M fails (exit 1) when memory.current after a gap
 * is more than M MiB above the baseline; --check-after-trim M the same
 * after malloc_trim(0).  Over memory.max the kernel reclaims, then (no
 * swap) kills the program: it dies with SIGKILL, its last sample shows
 * where.
 */
#include "guest.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <time.h>

#define WORKERS 4
#define KEEP_BYTES (2 * MiB)        /* per worker, the whole run */
#define SMALL_JOB_BYTES (28 * MiB)  /* per worker, jobs A and C */
#define LARGE_JOB_BYTES (30 * MiB)  /* per worker, job B */
#define MAX_BLOCKS 200000           /* per list */

enum job { JOB_KEEP, JOB_A, JOB_B, JOB_C, JOB_EXIT };

static pthread_barrier_t start_barrier, allocated_barrier, freed_barrier;
static enum job current_job;
static struct blocks job_blocks[WORKERS], kept_blocks[WORKERS];
static char cgroup_dir[512];
static size_t requested[WORKERS];   /* bytes the workers asked for in the job */

/* ---------------------------------------------------------------- the cgroup */

static void find_cgroup(void)
{
    char line[256];
    bool found = false;
    FILE *f = fopen("/proc/self/cgroup", "r");
    REQUIRE(f != NULL, "cannot read /proc/self/cgroup");
    while (!found && fgets(line, sizeof line, f)) found = strncmp(line, "0::", 3) == 0;
    fclose(f);
    REQUIRE(found, "not in a cgroup v2 hierarchy");
    line[strcspn(line, "\n")] = 0;
    snprintf(cgroup_dir, sizeof cgroup_dir, "/sys/fs/cgroup%s", line + 3);
}

static double cgroup_mib(const char *file)
{
    char path[600], value[64];
    snprintf(path, sizeof path, "%s/%s", cgroup_dir, file);
    REQUIRE(read_line(path, value, sizeof value), "cannot read %s", path);
    return (double)strtoull(value, NULL, 10) / (double)MiB;
}

/* The process's anonymous and huge-page memory (kB), from smaps_rollup. */
static void anon_kib(long *anon, long *huge)
{
    char line[256];
    *anon = *huge = -1;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "Anonymous: %ld kB", anon);
        sscanf(line, "AnonHugePages: %ld kB", huge);
    }
    fclose(f);
}

static double sample(const char *job, const char *step)
{
    long anon, huge;
    anon_kib(&anon, &huge);
    double now = cgroup_mib("memory.current");
    printf("sample %s %-21s current %6.1f MiB, peak %6.1f MiB; anonymous %6.1f MiB, in huge pages %6.1f MiB\n",
           job, step, now, cgroup_mib("memory.peak"), (double)anon / 1024, (double)huge / 1024);
    fflush(stdout);
    return now;
}

/* ---------------------------------------------------------------- the workers */

/* Allocate and write `bytes` of blocks from the ranges [low, high) given,
 * half the bytes in each when there are two. */
static void allocate(struct blocks *list, uint64_t *state, size_t bytes, const size_t ranges[][2], int nranges,
                     size_t *requested_bytes)
{
    for (int r = 0; r < nranges; r++) {
        size_t share = bytes / (size_t)nranges;
        for (size_t done = 0; done < share;) {
            size_t size = guest_random_between(state, ranges[r][0], ranges[r][1]);
            char *p = malloc(size);
            REQUIRE(p != NULL, "malloc(%zu): %s", size, strerror(errno));
            memset(p, 0x5a, size);
            blocks_push(list, (struct block){p, size});
            done += size;
            *requested_bytes += size;
        }
    }
}

static const size_t small_medium[][2] = {{16, 1024}, {1 * KiB, 256 * KiB}};
static const size_t small_only[][2] = {{16, 1024}};
static const size_t large[][2] = {{1 * MiB, 4 * MiB}};

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t state = 0x9e3779b97f4a7c15ULL * (uint64_t)(me + 1);
    for (;;) {
        pthread_barrier_wait(&start_barrier);
        enum job job = current_job;
        if (job == JOB_EXIT) return NULL;
        switch (job) {
        case JOB_KEEP: allocate(&kept_blocks[me], &state, KEEP_BYTES, small_only, 1, &requested[me]); break;
        case JOB_A:
        case JOB_C: allocate(&job_blocks[me], &state, SMALL_JOB_BYTES, small_medium, 2, &requested[me]); break;
        case JOB_B: allocate(&job_blocks[me], &state, LARGE_JOB_BYTES, large, 1, &requested[me]); break;
        case JOB_EXIT: break;
        }
        pthread_barrier_wait(&allocated_barrier);
        pthread_barrier_wait(&allocated_barrier);   /* main has sampled */
        if (job != JOB_KEEP) free_all(&job_blocks[job == JOB_C ? (me + 1) % WORKERS : me]);
        pthread_barrier_wait(&freed_barrier);
    }
}

/* Run one job in every worker; sample after it allocated and after it freed. */
static void run_job(enum job job, const char *name)
{
    current_job = job;
    memset(requested, 0, sizeof requested);
    pthread_barrier_wait(&start_barrier);
    pthread_barrier_wait(&allocated_barrier);
    size_t total = 0;
    for (int i = 0; i < WORKERS; i++) total += requested[i];
    char step[48];
    snprintf(step, sizeof step, "allocated %.1f MiB", (double)total / (double)MiB);
    sample(name, step);
    pthread_barrier_wait(&allocated_barrier);
    pthread_barrier_wait(&freed_barrier);
}

/* With NM_MEMCG_STATS=1, numamalloc's statistics (when it is the
 * allocator: looked up by name, so that the program runs on any). */
static void print_allocator_stats(void)
{
    const char *want = getenv("NM_MEMCG_STATS");
    void (*print)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "nm_stats_print");
    if (want && strcmp(want, "1") == 0 && print) {
        fflush(stdout);
        print(1);
    }
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

int main(int argc, char **argv)
{
    const char *gap = argc > 1 ? argv[1] : "";
    double check_gap = -1, check_trim = -1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--check-after-gap") == 0) check_gap = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--check-after-trim") == 0) check_trim = atof(argv[i + 1]);
        else REQUIRE(0, "unknown option %s", argv[i]);
    }
    REQUIRE(strcmp(gap, "idle") == 0 || strcmp(gap, "busy") == 0 || strcmp(gap, "trim") == 0,
            "usage: memcg idle|busy|trim [--check-after-gap MIB] [--check-after-trim MIB]");
    const char *delay_env = getenv("NUMAMALLOC_PURGE_DELAY_MS");
    long delay_ms = delay_env ? atol(delay_env) : 1000;
    find_cgroup();
    char path[600], max[64];
    snprintf(path, sizeof path, "%s/memory.max", cgroup_dir);
    REQUIRE(read_line(path, max, sizeof max), "cannot read %s", path);
    printf("memcg %s: cgroup %s, memory.max %s, %d workers, purge delay %ld ms\n", gap, cgroup_dir, max, WORKERS,
           delay_ms);

    for (int i = 0; i < WORKERS; i++) {
        blocks_init(&job_blocks[i], MAX_BLOCKS);
        blocks_init(&kept_blocks[i], MAX_BLOCKS);
        /* The lists are the test's, not the allocator's: no huge page. */
        madvise(job_blocks[i].b, MAX_BLOCKS * sizeof(struct block), MADV_NOHUGEPAGE);
        madvise(kept_blocks[i].b, MAX_BLOCKS * sizeof(struct block), MADV_NOHUGEPAGE);
    }
    pthread_barrier_init(&start_barrier, NULL, WORKERS + 1);
    pthread_barrier_init(&allocated_barrier, NULL, WORKERS + 1);
    pthread_barrier_init(&freed_barrier, NULL, WORKERS + 1);
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        REQUIRE(pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i) == 0, "pthread_create");

    run_job(JOB_KEEP, "start");
    double baseline = sample("start", "baseline");
    static const struct { enum job job; const char *name; } jobs[] = {
        {JOB_A, "A"}, {JOB_B, "B"}, {JOB_C, "C"},
    };
    double worst_gap = 0, worst_trim = 0;
    char summary[512];
    int used = 0;
    for (size_t j = 0; j < sizeof jobs / sizeof jobs[0]; j++) {
        const char *name = jobs[j].name;
        run_job(jobs[j].job, name);
        sample(name, "freed");
        double after = -1;
        if (strcmp(gap, "idle") == 0) {
            char step[32];
            for (long waited = 0; waited < delay_ms * 3 / 2;) {
                long step_ms = delay_ms / 4 > 0 ? delay_ms / 4 : 1;
                sleep_ms(step_ms);
                waited += step_ms;
                snprintf(step, sizeof step, "idle %ld ms", waited);
                after = sample(name, step);
            }
            if (after - baseline > worst_gap) worst_gap = after - baseline;
            print_allocator_stats();
        } else if (strcmp(gap, "trim") == 0) {
            malloc_trim(0);
            after = sample(name, "malloc_trim(0)");
            if (after - baseline > worst_trim) worst_trim = after - baseline;
            print_allocator_stats();
        }
        if (after >= 0)
            used += snprintf(summary + used, sizeof summary - (size_t)used, "%s%s %.1f", used ? ", " : "", name,
                             after);
    }
    current_job = JOB_EXIT;
    pthread_barrier_wait(&start_barrier);
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);

    printf("memcg %s: baseline %.1f MiB, peak %.1f MiB%s%s%s\n", gap, baseline, cgroup_mib("memory.peak"),
           used ? "; after the gap: " : "", used ? summary : "", used ? " MiB" : "");
    int fail = 0;
    if (check_gap >= 0 && worst_gap > check_gap) {
        printf("FAIL: memory.current after an idle gap of 1.5 purge delays is %.1f MiB above the baseline "
               "(at most %.1f)\n", worst_gap, check_gap);
        fail = 1;
    }
    if (check_trim >= 0 && worst_trim > check_trim) {
        printf("FAIL: memory.current after malloc_trim(0) is %.1f MiB above the baseline (at most %.1f)\n",
               worst_trim, check_trim);
        fail = 1;
    }
    return fail;
}
