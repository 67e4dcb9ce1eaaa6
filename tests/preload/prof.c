/* prof.c — the heap profiler as a program uses it: NUMAMALLOC_PROF=1, a
 * few call sites, a profile read back and checked against what the
 * program knows it did.
 *
 *   off      without NUMAMALLOC_PROF, nm_prof_dump fails with EINVAL and
 *            writes nothing.
 *   exact    NUMAMALLOC_PROF_SAMPLE=1 records every allocation: the
 *            site that kept 500 of its 1000 blocks of 100 B shows 500 live
 *            (50,000 B), 1000 allocated and 500 freed; the leaking site
 *            300 x 40 B live; a 1 MiB calloc 1 live block; the blocks a
 *            second thread freed count as freed at their site; each site
 *            is found by the first frame of its stack (the function that
 *            called malloc), the live bytes per node add up to the live
 *            bytes, the header's totals to the sites', and the maps
 *            section names this program.  The signal (USR2) and
 *            nm_prof_dump(NULL) write numbered files (%n), and a fork
 *            child writes its own profile at exit, with its own site.
 *            A heap made with nm_heap_new and destroyed with 10 sampled
 *            blocks live leaves no sample behind (they count as freed; a
 *            dump and a new sample at the same site read no unmapped
 *            header).
 *   fork     with every allocation recorded, a thread that allocates all
 *            the time is interrupted 300 times by a signal whose handler
 *            forks (the child exits at once): no fork waits for the
 *            profiler's lock the interrupted thread holds (a watchdog of
 *            60 s fails the test instead of hanging).
 *   sampled  at the default kind of rate (64 KiB here), 64 MiB allocated
 *            at one site in 1000-byte blocks is estimated, by pprof's rule
 *            (each sample divided by 1 - exp(-size / rate)), within 20%
 *            (about 1000 samples: 7 standard deviations); a thread's very
 *            first allocation, 4 MiB, is sampled as any other would be.
 *   rare     at a mean of 1 TiB nothing is sampled: not even 8 threads
 *            whose first and only allocation is a realloc that grows a
 *            1 MiB block to 1.5 MiB (a resize counts like an allocation,
 *            against the thread's first drawn interval).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "numamalloc.h"
#include "../testutil.h"

/* The library is preloaded, not linked: its function, found at start. */
static int (*prof_dump)(const char *path);

static void *kept[1000];
static void *handed[200];

__attribute__((noinline)) static void *site_kept(size_t n)
{
    void *p = malloc(n);
    memset(p, 1, n);
    return p;
}

__attribute__((noinline)) static void *site_leak(size_t n)
{
    void *p = malloc(n);
    memset(p, 2, n);
    return p;
}

__attribute__((noinline)) static void *site_large(size_t n)
{
    unsigned char *p = calloc(1, n);
    if (p) ((volatile unsigned char *)p)[n - 1] = 0;   /* not a tail call */
    return p;
}

__attribute__((noinline)) static void *site_handed(size_t n)
{
    void *p = malloc(n);
    memset(p, 3, n);
    return p;
}

__attribute__((noinline)) static void *site_child(size_t n)
{
    void *p = malloc(n);
    memset(p, 4, n);
    return p;
}

__attribute__((noinline)) static void *site_stream(size_t n)
{
    void *p = malloc(n);
    memset(p, 5, 64);
    return p;
}

__attribute__((noinline)) static void *site_heap(void *heap, void *(*heap_malloc)(void *, size_t), size_t n)
{
    void *p = heap_malloc(heap, n);
    memset(p, 7, n);
    return p;
}

__attribute__((noinline)) static void *site_grow(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q) ((volatile unsigned char *)q)[n - 1] = 8;   /* not a tail call */
    return q;
}

__attribute__((noinline)) static void *site_first(size_t n)
{
    void *p = malloc(n);
    memset(p, 6, 64);
    return p;
}

/* The site functions, to find which one a return address is in: the one
 * that starts closest below it (they are a few dozen bytes long). */
static const struct {
    const char *name;
    const void *fn;
} sites[] = {
    { "kept", (const void *)site_kept }, { "leak", (const void *)site_leak }, { "large", (const void *)site_large },
    { "handed", (const void *)site_handed }, { "child", (const void *)site_child }, { "stream", (const void *)site_stream },
    { "first", (const void *)site_first }, { "heap", (const void *)site_heap },
    { "grow", (const void *)site_grow },
};
#define SITE_COUNT (sizeof sites / sizeof sites[0])

static int site_index(uintptr_t ret)
{
    int best = -1;
    uintptr_t best_start = 0;
    for (size_t i = 0; i < SITE_COUNT; i++) {
        uintptr_t start = (uintptr_t)sites[i].fn;
        if (start < ret && ret - start < 256 && start > best_start) {
            best = (int)i;
            best_start = start;
        }
    }
    return best;
}

/* What a profile says about each of our sites (summed if a site shows
 * twice), and its header. */
struct site_figures {
    uint64_t live_blocks, live_bytes, alloc_blocks, alloc_bytes;
    uint64_t freed_blocks, freed_bytes, node_bytes;
    double est_alloc_bytes;   /* alloc_bytes scaled by pprof's rule */
};
struct profile {
    uint64_t head[4];         /* live blocks, live bytes, alloc blocks, alloc bytes */
    uint64_t sum[4];          /* the same summed over the sample lines */
    uint64_t rate;
    int nodes;
    bool maps_name_us;
    struct site_figures site[SITE_COUNT];
};

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* 1 - exp(-x) for 0 <= x <= 1, by its series (no libm). */
static double one_minus_exp_neg(double x)
{
    double term = x, sum = 0;
    for (int k = 1; k < 30; k++) {
        sum += term;
        term *= -x / (k + 1);
    }
    return sum;
}

static bool parse_profile(const char *path, struct profile *pr)
{
    memset(pr, 0, sizeof *pr);
    char *text = read_file(path);
    REQUIRE(text, "cannot read profile %s", path);
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = '\0';
    bool ok = sscanf(text, "heap profile: %lu: %lu [ %lu: %lu] @ heap_v2/%lu", &pr->head[0],
                     &pr->head[1], &pr->head[2], &pr->head[3], &pr->rate) == 5;
    CHECK(ok, "%s: first line is not a heap_v2 header", path);
    char *save = NULL, *maps = strstr(text, "\nMAPPED_LIBRARIES:\n");
    CHECK(maps != NULL, "%s: no maps section", path);
    if (maps) {
        pr->maps_name_us = strstr(maps, self) != NULL;
        *maps = '\0';
    }
    uint64_t node_bytes = 0, freed[2] = { 0, 0 };
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "# nodes ", 8)) pr->nodes = atoi(line + 8);
        if (!strncmp(line, "# site live_node", 16)) {
            node_bytes = 0;
            char *c = line + 16;
            for (int i = 0; i < pr->nodes; i++) {
                unsigned long b, y;
                CHECK(sscanf(c, " %lu:%lu", &b, &y) == 2, "bad site line: %s", line);
                node_bytes += y;
                c = strchr(c + 1, ' ');
                if (!c) break;
            }
            char *f = strstr(line, " freed ");
            CHECK(f && sscanf(f, " freed %lu:%lu", &freed[0], &freed[1]) == 2, "no freed: %s", line);
            continue;
        }
        if (line[0] == '#' || line[0] == 'h') continue;
        uint64_t v[4];
        int at = 0;
        REQUIRE(sscanf(line, "%lu: %lu [ %lu: %lu] @%n", &v[0], &v[1], &v[2], &v[3], &at) == 4,
                "bad sample line: %s", line);
        for (int i = 0; i < 4; i++) pr->sum[i] += v[i];
        uintptr_t first = (uintptr_t)strtoull(line + at, NULL, 16);
        int s = site_index(first);
        if (s < 0) continue;
        struct site_figures *f = &pr->site[s];
        f->live_blocks += v[0];
        f->live_bytes += v[1];
        f->alloc_blocks += v[2];
        f->alloc_bytes += v[3];
        f->freed_blocks += freed[0];
        f->freed_bytes += freed[1];
        f->node_bytes += node_bytes;
        if (v[2]) {
            double avg = (double)v[3] / (double)v[2];
            f->est_alloc_bytes += pr->rate > 1 ? (double)v[3] / one_minus_exp_neg(avg / (double)pr->rate)
                                               : (double)v[3];
        }
    }
    free(text);
    return ok;
}

static int site_named(const char *name)
{
    for (size_t i = 0; i < SITE_COUNT; i++)
        if (!strcmp(sites[i].name, name)) return (int)i;
    return -1;
}

static void *free_handed(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) free(handed[i]);
    return NULL;
}

static char dir[] = "/tmp/nm-prof-XXXXXX";

/* Sampled blocks of a heap destroyed with them live. */
static void destroyed_heap(void)
{
    void *(*heap_new)(const void *) = (void *(*)(const void *))dlsym(RTLD_DEFAULT, "nm_heap_new");
    void *(*heap_malloc)(void *, size_t) = (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "nm_heap_malloc");
    void (*heap_destroy)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "nm_heap_destroy");
    REQUIRE(heap_new && heap_malloc && heap_destroy, "nm_heap_new, nm_heap_malloc, nm_heap_destroy");
    for (int round = 0; round < 2; round++) {
        void *heap = heap_new(NULL);
        REQUIRE(heap, "nm_heap_new");
        for (int i = 0; i < 10; i++) (void)site_heap(heap, heap_malloc, 200);
        heap_destroy(heap);
        /* Other blocks take the address space the heap gave back. */
        for (int i = 0; i < 64; i++) free(malloc(1 << 20));
        char path[256];
        snprintf(path, sizeof path, "%s/destroyed.heap", dir);
        REQUIRE(prof_dump(path) == 0, "nm_prof_dump after nm_heap_destroy: %s", strerror(errno));
        struct profile pr;
        parse_profile(path, &pr);
        const struct site_figures *h = &pr.site[site_named("heap")];
        CHECK(h->live_blocks == 0 && h->freed_blocks == 10u * (unsigned)(round + 1),
              "round %d: destroyed heap's site: %lu live, %lu freed; want 0, %d", round, h->live_blocks,
              h->freed_blocks, 10 * (round + 1));
    }
}

static void exact(void)
{
    for (int i = 0; i < 1000; i++) kept[i] = site_kept(100);
    for (int i = 0; i < 500; i++) free(kept[i]);
    for (int i = 0; i < 300; i++) (void)site_leak(40);
    void *big = site_large(1 << 20);
    for (int i = 0; i < 200; i++) handed[i] = site_handed(64);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, free_handed, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);

    char path[256];
    snprintf(path, sizeof path, "%s/now.heap", dir);
    REQUIRE(prof_dump(path) == 0, "nm_prof_dump: %s", strerror(errno));
    struct profile pr;
    parse_profile(path, &pr);
    CHECK(pr.rate == 1, "rate %lu, want 1", pr.rate);
    for (int i = 0; i < 4; i++)
        CHECK(pr.head[i] == pr.sum[i], "header total %d is %lu, the sites sum to %lu", i, pr.head[i], pr.sum[i]);
    CHECK(pr.maps_name_us, "the maps section does not name this program");

    const struct site_figures *k = &pr.site[site_named("kept")];
    CHECK(k->live_blocks == 500 && k->live_bytes == 50000, "kept: live %lu blocks %lu bytes, want 500 / 50000",
          k->live_blocks, k->live_bytes);
    CHECK(k->alloc_blocks == 1000 && k->alloc_bytes == 100000, "kept: allocated %lu / %lu, want 1000 / 100000",
          k->alloc_blocks, k->alloc_bytes);
    CHECK(k->freed_blocks == 500 && k->freed_bytes == 50000, "kept: freed %lu / %lu, want 500 / 50000",
          k->freed_blocks, k->freed_bytes);
    CHECK(k->node_bytes == k->live_bytes, "kept: per-node bytes %lu, live %lu", k->node_bytes, k->live_bytes);
    const struct site_figures *l = &pr.site[site_named("leak")];
    CHECK(l->live_blocks == 300 && l->live_bytes == 12000 && l->freed_blocks == 0,
          "leak: live %lu / %lu, freed %lu; want 300 / 12000, 0", l->live_blocks, l->live_bytes, l->freed_blocks);
    const struct site_figures *g = &pr.site[site_named("large")];
    CHECK(g->live_blocks == 1 && g->live_bytes == 1 << 20, "large: live %lu / %lu, want 1 / 1048576",
          g->live_blocks, g->live_bytes);
    const struct site_figures *h = &pr.site[site_named("handed")];
    CHECK(h->alloc_blocks == 200 && h->freed_blocks == 200 && h->live_blocks == 0,
          "handed: allocated %lu, freed %lu, live %lu; want 200, 200, 0", h->alloc_blocks, h->freed_blocks,
          h->live_blocks);
    CHECK(((unsigned char *)big)[12345] == 0, "calloc'd sampled block not zero");
    destroyed_heap();

    /* The signal's dump and nm_prof_dump(NULL): files 0 and 1 of the pattern. */
    REQUIRE(raise(SIGUSR2) == 0, "raise");
    REQUIRE(prof_dump(NULL) == 0, "nm_prof_dump(NULL): %s", strerror(errno));
    for (int n = 0; n < 2; n++) {
        snprintf(path, sizeof path, "%s/p.%d.%d.heap", dir, (int)getpid(), n);
        CHECK(access(path, R_OK) == 0, "no profile %s (signal, then on demand)", path);
    }

    /* A fork child's profile at its exit: its own pid, its own site. */
    pid_t child = fork();
    REQUIRE(child >= 0, "fork");
    if (child == 0) {
        for (int i = 0; i < 10; i++) (void)site_child(256);
        exit(0);
    }
    int status;
    REQUIRE(waitpid(child, &status, 0) == child && WIFEXITED(status), "child");
    snprintf(path, sizeof path, "%s/p.%d.0.heap", dir, (int)child);
    struct profile cp;
    if (access(path, R_OK) != 0) {
        CHECK(0, "the fork child wrote no profile at exit (%s)", path);
    } else {
        parse_profile(path, &cp);
        const struct site_figures *c = &cp.site[site_named("child")];
        CHECK(c->live_blocks == 10 && c->live_bytes == 2560, "child: live %lu / %lu, want 10 / 2560",
              c->live_blocks, c->live_bytes);
        CHECK(cp.site[site_named("kept")].live_blocks == 500, "child: the parent's live blocks are its own too");
    }
}

static _Atomic bool churn_stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!churn_stop) free(site_stream(48));
    return NULL;
}

static void fork_in_handler(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
    errno = saved;
}

static void fork_from_signal(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fork_in_handler;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    alarm(60);   /* the default action ends the test: a deadlock fails it */
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, churn, NULL) == 0, "pthread_create");
    for (int i = 0; i < 300; i++) {
        REQUIRE(pthread_kill(t, SIGUSR1) == 0, "pthread_kill");
        usleep(2000);
    }
    churn_stop = true;
    pthread_join(t, NULL);
    alarm(0);
}

static void *first_allocation(void *arg)
{
    (void)arg;
    return site_first(4 << 20);
}

static void sampled(void)
{
    /* A thread's very first allocation counts like any other: 4 MiB at a
     * 64 KiB mean is sampled with probability 1 - exp(-64). */
    pthread_t t;
    void *first;
    REQUIRE(pthread_create(&t, NULL, first_allocation, NULL) == 0, "pthread_create");
    pthread_join(t, &first);

    enum { BLOCK = 1000, COUNT = 64 << 10 };   /* 64 MiB in all */
    for (int i = 0; i < COUNT; i++) free(site_stream(BLOCK));
    char path[256];
    snprintf(path, sizeof path, "%s/sampled.heap", dir);
    REQUIRE(prof_dump(path) == 0, "nm_prof_dump: %s", strerror(errno));
    struct profile pr;
    parse_profile(path, &pr);
    CHECK(pr.rate == 64 << 10, "rate %lu, want 65536", pr.rate);
    const struct site_figures *s = &pr.site[site_named("stream")];
    double truth = (double)BLOCK * COUNT, est = s->est_alloc_bytes;
    printf("stream: %lu samples, estimated %.1f MiB of %.1f MiB allocated\n", s->alloc_blocks,
           est / (1 << 20), truth / (1 << 20));
    CHECK(est > truth * 0.8 && est < truth * 1.2, "estimated %.0f bytes, allocated %.0f", est, truth);
    CHECK(s->live_blocks == 0, "stream: %lu live, all were freed", s->live_blocks);
    const struct site_figures *f = &pr.site[site_named("first")];
    CHECK(f->live_blocks == 1 && f->live_bytes == 4 << 20,
          "a thread's first allocation (4 MiB) was not sampled: %lu live blocks", f->live_blocks);
    free(first);
}

static void *grow_block(void *arg)
{
    return site_grow(arg, 3 << 19);
}

static void rare(void)
{
    enum { THREADS = 8 };
    pthread_t t[THREADS];
    void *block[THREADS];
    for (int i = 0; i < THREADS; i++) {
        block[i] = malloc(1 << 20);
        REQUIRE(block[i], "malloc 1 MiB");
        memset(block[i], 9, 1 << 20);
    }
    for (int i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, grow_block, block[i]) == 0, "pthread_create");
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], &block[i]);
        REQUIRE(block[i], "realloc to 1.5 MiB failed");
    }
    char path[256];
    snprintf(path, sizeof path, "%s/rare.heap", dir);
    REQUIRE(prof_dump(path) == 0, "nm_prof_dump: %s", strerror(errno));
    struct profile pr;
    parse_profile(path, &pr);
    CHECK(pr.rate == 1ull << 40, "rate %lu, want 2^40", pr.rate);
    const struct site_figures *g = &pr.site[site_named("grow")];
    CHECK(g->alloc_blocks == 0, "%lu of %d reallocs that were their thread's first allocation were sampled "
          "at a mean of 1 TiB", g->alloc_blocks, THREADS);
    CHECK(pr.head[2] == 0, "%lu samples at a mean of 1 TiB", pr.head[2]);
    for (int i = 0; i < THREADS; i++) free(block[i]);
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* The stages after the first (profiler off), in order, each run in a
 * process of its own at its sampling rate. */
static void exact_then_fork(void)
{
    exact();
    fork_from_signal();
}

static const struct {
    const char *name;
    void (*run)(void);
    const char *sample;   /* NUMAMALLOC_PROF_SAMPLE */
} stages[] = {
    { "exact", exact_then_fork, "1" },
    { "sampled", sampled, "64K" },
    { "rare", rare, "1T" },
};
#define STAGE_COUNT (sizeof stages / sizeof stages[0])

int main(int argc, char **argv)
{
    (void)argc;
    prof_dump = (int (*)(const char *))dlsym(RTLD_DEFAULT, "nm_prof_dump");
    REQUIRE(prof_dump, "nm_prof_dump not found: run with LD_PRELOAD=libnumamalloc.so");
    const char *stage = getenv("NM_PROF_STAGE");
    if (!stage) {
        /* off */
        errno = 0;
        CHECK(prof_dump("/tmp/nm-prof-never.heap") == -1 && errno == EINVAL,
              "nm_prof_dump with the profiler off: not EINVAL");
        CHECK(access("/tmp/nm-prof-never.heap", F_OK) != 0, "a profile was written with the profiler off");
        if (nm_test_done() != 0) return 1;
        REQUIRE(mkdtemp(dir), "mkdtemp");
        char pattern[256];
        snprintf(pattern, sizeof pattern, "%s/p.%%p.%%n.heap", dir);
        setenv("NM_PROF_DIR", dir, 1);
        setenv("NM_PROF_STAGE", stages[0].name, 1);
        setenv("NUMAMALLOC_PROF", "1", 1);
        setenv("NUMAMALLOC_PROF_SAMPLE", stages[0].sample, 1);
        setenv("NUMAMALLOC_PROF_SIGNAL", "USR2", 1);
        setenv("NUMAMALLOC_PROF_FILE", pattern, 1);
        execv("/proc/self/exe", argv);
        REQUIRE(0, "execv /proc/self/exe");
    }
    snprintf(dir, sizeof dir, "%s", getenv("NM_PROF_DIR"));
    for (size_t i = 0; i < STAGE_COUNT; i++) {
        if (strcmp(stage, stages[i].name) != 0) continue;
        stages[i].run();
        int rc = nm_test_done();
        if (rc != 0 || i + 1 == STAGE_COUNT) {
            remove_dir();
            return rc;
        }
        /* The next stage in a process of its own, its rate read at start. */
        setenv("NM_PROF_STAGE", stages[i + 1].name, 1);
        setenv("NUMAMALLOC_PROF_SAMPLE", stages[i + 1].sample, 1);
        setenv("NUMAMALLOC_PROF_FILE", "/dev/null", 1);   /* its exit dump */
        fflush(stdout);
        execv("/proc/self/exe", argv);
        REQUIRE(0, "execv /proc/self/exe");
    }
    REQUIRE(0, "unknown NM_PROF_STAGE %s", stage);
    return 1;
}
