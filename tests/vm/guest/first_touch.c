/* first_touch.c — the OpenMP first-touch idiom, inside a multi-node guest:
 * the master thread allocates a big array, then an OpenMP team with one
 * thread pinned to each node with CPUs writes it with
 * `#pragma omp parallel for schedule(static)`, so each thread's chunk should
 * end up on its own node.  Measured with move_pages for every page of every
 * chunk, for arrays of 16 MiB (within the default large-block cache),
 * 64 MiB, 256 MiB and 1 GiB:
 *
 *   malloc    a fresh array from malloc
 *   calloc    the same from calloc (which must not write the array itself)
 *   reuse     freed and allocated again with the same size (a cached span
 *             when the allocator caches it), written again by the team
 *   realloc   the array doubled with realloc, the team writing the new
 *             half: the old chunks must stay where they were, the new
 *             chunks go to their writers (not for 1 GiB: the guest's
 *             memory would not hold 2 GiB)
 *
 * Every chunk must have at least 99% of its (whole) pages on its writer's
 * node; `--report` prints the same table without judging (for glibc and the
 * other allocators); `--sizes 64,256` picks the sizes in MiB (default
 * 16,64,256,1024).  Prints one line per case and a "summary" line. */
#include "guest.h"

#include <omp.h>

#define MIN_PERCENT 99.0

static int team;                     /* threads: one per node with CPUs */
static bool report_only;
static double worst = 100.0;
static int failures_here;

/* Seconds since the previous call (the time of each case, for the log). */
static double seconds_since_last(void)
{
    static double last;
    double now = omp_get_wtime(), d = last ? now - last : 0;
    last = now;
    return d;
}

/* Pin OpenMP thread t of the current team to the t-th node with CPUs. */
static void pin_team_thread(void)
{
    run_on_node(cpu_nodes[omp_get_thread_num()]);
}

/* The team writes a[lo, hi) with a static schedule: thread t gets the t-th
 * of `team` equal chunks. */
static void team_write(double *a, size_t lo, size_t hi)
{
#pragma omp parallel num_threads(team)
    {
        pin_team_thread();
#pragma omp for schedule(static)
        for (size_t i = lo; i < hi; i++) a[i] = (double)i;
    }
}

/* The share of whole pages of a[lo, hi) on `node`, in percent. */
static double percent_on(const double *a, size_t lo, size_t hi, int node, long *pages_out)
{
    uintptr_t first = ((uintptr_t)(a + lo) + OS_PAGE - 1) & ~(OS_PAGE - 1);
    uintptr_t end = (uintptr_t)(a + hi) & ~(OS_PAGE - 1);
    long n = end > first ? (long)((end - first) / OS_PAGE) : 0;
    *pages_out = n;
    if (n == 0) return 100.0;
    uintptr_t *pages = map_zeroed((size_t)n * sizeof *pages);
    int *status = map_zeroed((size_t)n * sizeof *status);
    for (long i = 0; i < n; i++) pages[i] = first + (uintptr_t)i * OS_PAGE;
    locate_pages(pages, n, status);
    long on = 0;
    for (long i = 0; i < n; i++) on += status[i] == node;
    munmap(pages, (size_t)n * sizeof *pages);
    munmap(status, (size_t)n * sizeof *status);
    return 100.0 * (double)on / (double)n;
}

/* Check the chunks of a[lo, hi) that the team wrote: chunk t on node t. */
static void check_chunks(const char *what, size_t mib, const double *a, size_t lo, size_t hi)
{
    size_t per = (hi - lo) / (size_t)team;
    printf("%5zu MiB %-16s", mib, what);
    double min = 100.0;
    for (int t = 0; t < team; t++) {
        long pages;
        double pct = percent_on(a, lo + (size_t)t * per, lo + (size_t)(t + 1) * per, cpu_nodes[t], &pages);
        printf("  node %d %5.1f%%", cpu_nodes[t], pct);
        if (pct < min) min = pct;
    }
    printf("  (%.1f s)\n", seconds_since_last());
    if (min < worst) worst = min;
    if (min < MIN_PERCENT) {
        failures_here++;
        if (!report_only)
            fprintf(stderr, "%zu MiB %s: a chunk has %.1f%% of its pages on its writer's node (at least %.0f%% expected)\n",
                    mib, what, min, MIN_PERCENT);
    }
    fflush(stdout);
}

static void one_size(size_t mib)
{
    size_t bytes = mib * MiB, n = bytes / sizeof(double);

    double *a = malloc(bytes);
    REQUIRE(a != NULL, "malloc(%zu MiB)", mib);
    team_write(a, 0, n);
    check_chunks("malloc", mib, a, 0, n);

    free(a);
    a = malloc(bytes);
    REQUIRE(a != NULL, "malloc(%zu MiB) again", mib);
    team_write(a, 0, n);
    check_chunks("reuse", mib, a, 0, n);

    if (mib <= 256) {
        double *b = realloc(a, 2 * bytes);
        REQUIRE(b != NULL, "realloc to %zu MiB", 2 * mib);
        a = b;
        team_write(a, n, 2 * n);
        check_chunks("realloc, old half", mib, a, 0, n);
        check_chunks("realloc, new half", mib, a, n, 2 * n);
    }
    free(a);

    a = calloc(n, sizeof(double));
    REQUIRE(a != NULL, "calloc(%zu MiB)", mib);
    team_write(a, 0, n);
    check_chunks("calloc", mib, a, 0, n);
    free(a);

    /* calloc again on what calloc left: memory that is reused must read as
     * zero and still be placed by the team.  The master reads a word in
     * each chunk (reading every page would map them all to the zero page
     * first, which is not what the idiom does, and is slow in the guest). */
    a = calloc(n, sizeof(double));
    REQUIRE(a != NULL, "calloc(%zu MiB) again", mib);
    size_t nonzero = 0;
    for (int t = 0; t < team; t++) nonzero += a[(size_t)t * (n / (size_t)team) + 1000] != 0.0;
    CHECK(nonzero == 0, "calloc(%zu MiB) again: %zu words read are not zero", mib, nonzero);
    team_write(a, 0, n);
    check_chunks("calloc reuse", mib, a, 0, n);
    free(a);
}

int main(int argc, char **argv)
{
    size_t sizes[8] = { 16, 64, 256, 1024 }, nsizes = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--report") == 0) {
            report_only = true;
        } else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
            nsizes = 0;
            for (char *s = argv[++i], *end; *s && nsizes < 8; s = *end ? end + 1 : end) {
                sizes[nsizes++] = strtoul(s, &end, 10);
                if (end == s || sizes[nsizes - 1] < 4) { fprintf(stderr, "bad size list\n"); return 2; }
            }
        } else {
            fprintf(stderr, "usage: first_touch [--report] [--sizes MIB,...]\n");
            return 2;
        }
    }
    load_topology();
    team = cpu_node_count;
    /* The master runs on the first node: where an allocator that binds
     * large blocks to the allocating thread would put everything. */
    run_on_node(cpu_nodes[0]);
    seconds_since_last();
    printf("team of %d threads on nodes", team);
    for (int t = 0; t < team; t++) printf(" %d", cpu_nodes[t]);
    printf("; master on node %d\n", cpu_nodes[0]);
    for (size_t i = 0; i < nsizes; i++) one_size(sizes[i]);
    printf("summary: worst chunk %.1f%% on its writer's node, %d case(s) below %.0f%%\n", worst,
           failures_here, MIN_PERCENT);
    if (report_only) return 0;
    return failures_here || nm_test_failures ? 1 : 0;
}
