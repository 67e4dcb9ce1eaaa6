/* guest.h — what the programs that run inside the multi-node guests of
 * tests/vm/ share: the guest's topology read from sysfs (no libnuma, not
 * numamalloc's own view), pinning a thread to a node, lists of blocks kept in
 * mmap'd memory (so that the allocator under test serves only the blocks
 * measured), and locating every page of a list of blocks with move_pages(2)
 * and a NULL node list (nothing moves, nothing is faulted in).  Include it
 * first, or define _GNU_SOURCE before any header. */
#ifndef NM_GUEST_H
#define NM_GUEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../testutil.h"

#define MAX_NODE 64          /* node ids the guest programs handle */
#define OS_PAGE 4096UL
#define HUGE_PAGES_PER_UNIT 512   /* 4 KiB pages in a 2 MiB huge page */
#define KiB (1UL << 10)
#define MiB (1UL << 20)

/* ---------------------------------------------------------------- topology */

static bool node_online[MAX_NODE];
static bool node_has_memory[MAX_NODE];
static cpu_set_t node_cpus[MAX_NODE];
static int cpu_nodes[MAX_NODE], cpu_node_count;   /* nodes with CPUs, ascending */
static int mem_nodes[MAX_NODE], mem_node_count;   /* nodes with memory, ascending */

static inline bool read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok) buf[strcspn(buf, "\n")] = 0;
    return ok;
}

/* Parse a kernel list ("0-1,3") into flags[0..limit). */
static inline bool parse_list(const char *s, bool *flags, int limit)
{
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s) return false;
        if (*end == '-') {
            s = end + 1;
            b = strtol(s, &end, 10);
            if (end == s) return false;
        }
        for (long i = a; i <= b && i < limit; i++) flags[i] = true;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return false;
    }
    return true;
}

/* Read the online nodes, their CPUs and which have memory.  The shapes
 * promise at least two nodes with CPUs: fewer is a failure. */
static inline void load_topology(void)
{
    char buf[4096], path[128];
    REQUIRE(read_line("/sys/devices/system/node/online", buf, sizeof buf), "no /sys/devices/system/node/online");
    REQUIRE(parse_list(buf, node_online, MAX_NODE), "bad node list '%s'", buf);
    REQUIRE(read_line("/sys/devices/system/node/has_memory", buf, sizeof buf),
            "no /sys/devices/system/node/has_memory");
    REQUIRE(parse_list(buf, node_has_memory, MAX_NODE), "bad node list '%s'", buf);
    for (int n = 0; n < MAX_NODE; n++) {
        if (!node_online[n]) continue;
        bool cpus[CPU_SETSIZE] = {false};
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", n);
        REQUIRE(read_line(path, buf, sizeof buf), "cannot read %s", path);
        REQUIRE(parse_list(buf, cpus, CPU_SETSIZE), "bad cpu list '%s' in %s", buf, path);
        CPU_ZERO(&node_cpus[n]);
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (cpus[c]) CPU_SET(c, &node_cpus[n]);
        if (CPU_COUNT(&node_cpus[n]) > 0) cpu_nodes[cpu_node_count++] = n;
        if (node_has_memory[n]) mem_nodes[mem_node_count++] = n;
    }
    REQUIRE(cpu_node_count >= 2, "the guest has %d node(s) with CPUs, the shape promised 2 or more", cpu_node_count);
}

static inline int current_node(void)
{
    unsigned cpu = 0, node = 0;
    REQUIRE(syscall(SYS_getcpu, &cpu, &node, NULL) == 0, "getcpu: %s", strerror(errno));
    return (int)node;
}

/* Move the calling thread onto `node`'s CPUs and check it runs there. */
static inline void run_on_node(int node)
{
    REQUIRE(sched_setaffinity(0, sizeof node_cpus[node], &node_cpus[node]) == 0,
            "sched_setaffinity to node %d: %s", node, strerror(errno));
    int now = current_node();
    REQUIRE(now == node, "pinned to node %d but getcpu says node %d", node, now);
}

/* ---------------------------------------------------------------- bookkeeping */

static inline void *map_zeroed(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED, "mmap %zu bytes: %s", bytes, strerror(errno));
    return p;
}

/* xorshift64: the programs' random numbers (a fixed seed, the same run). */
static inline uint64_t guest_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* A number from low to high, both included. */
static inline size_t guest_random_between(uint64_t *state, size_t low, size_t high)
{
    return low + (size_t)(guest_random(state) % (high - low + 1));
}

struct block { char *p; size_t size; };

struct blocks {              /* a list of blocks in mmap'd memory */
    struct block *b;
    long n, cap;
};

static inline void blocks_init(struct blocks *bl, long cap)
{
    bl->b = map_zeroed((size_t)cap * sizeof *bl->b);
    bl->n = 0;
    bl->cap = cap;
}

static inline void blocks_release(struct blocks *bl)
{
    if (bl->b) munmap(bl->b, (size_t)bl->cap * sizeof *bl->b);
    bl->b = NULL;
}

static inline void blocks_push(struct blocks *bl, struct block b)
{
    REQUIRE(bl->n < bl->cap, "block list full");
    bl->b[bl->n++] = b;
}

static inline void free_all(struct blocks *bl)
{
    for (long i = 0; i < bl->n; i++) free(bl->b[i].p);
    bl->n = 0;
}

/* ---------------------------------------------------------------- where pages are */

/* Ask the kernel which node each page is on: status[i] is the node, or a
 * negative errno (-ENOENT: not present).  NULL nodes: nothing moves. */
static inline void locate_pages(uintptr_t *pages, long n, int *status)
{
    const long batch = 4096;
    for (long i = 0; i < n; i += batch) {
        long k = n - i < batch ? n - i : batch;
        long r = syscall(SYS_move_pages, 0, (unsigned long)k, (void **)(pages + i), NULL, status + i, 0);
        REQUIRE(r == 0, "move_pages: %s", strerror(errno));
    }
}

static inline void sift_down(uintptr_t *a, long start, long end)
{
    long root = start;
    while (2 * root + 1 < end) {
        long child = 2 * root + 1;
        if (child + 1 < end && a[child] < a[child + 1]) child++;
        if (a[root] >= a[child]) return;
        uintptr_t t = a[root]; a[root] = a[child]; a[child] = t;
        root = child;
    }
}

static inline void sort_addresses(uintptr_t *a, long n)   /* heapsort: no malloc */
{
    for (long start = n / 2 - 1; start >= 0; start--) sift_down(a, start, n);
    for (long end = n - 1; end > 0; end--) {
        uintptr_t t = a[0]; a[0] = a[end]; a[end] = t;
        sift_down(a, 0, end);
    }
}

static inline long pages_in(const struct block *b)
{
    uintptr_t first = (uintptr_t)b->p & ~(OS_PAGE - 1);
    uintptr_t last = ((uintptr_t)b->p + b->size - 1) & ~(OS_PAGE - 1);
    return (long)((last - first) / OS_PAGE) + 1;
}

struct tally {
    long pages;              /* distinct pages holding the blocks */
    long on[MAX_NODE];       /* ... on each node */
    long absent;             /* ... not present (never touched?!) */
    long runs;               /* ... in this many runs of consecutive pages */
};

/* Where the distinct pages of some lists of blocks are. */
static inline void tally_lists(const struct blocks *lists, int nlists, struct tally *t)
{
    long total = 0;
    memset(t, 0, sizeof *t);
    for (int l = 0; l < nlists; l++)
        for (long i = 0; i < lists[l].n; i++) total += pages_in(&lists[l].b[i]);
    if (total == 0) return;
    uintptr_t *pages = map_zeroed((size_t)total * sizeof *pages);
    long n = 0;
    for (int l = 0; l < nlists; l++)
        for (long i = 0; i < lists[l].n; i++) {
            uintptr_t first = (uintptr_t)lists[l].b[i].p & ~(OS_PAGE - 1);
            for (long k = 0; k < pages_in(&lists[l].b[i]); k++) pages[n++] = first + (uintptr_t)k * OS_PAGE;
        }
    sort_addresses(pages, n);
    long unique = 0;
    for (long i = 0; i < n; i++)
        if (unique == 0 || pages[i] != pages[unique - 1]) {
            if (unique == 0 || pages[i] != pages[unique - 1] + OS_PAGE) t->runs++;
            pages[unique++] = pages[i];
        }
    int *status = map_zeroed((size_t)unique * sizeof *status);
    locate_pages(pages, unique, status);
    t->pages = unique;
    for (long i = 0; i < unique; i++) {
        if (status[i] >= 0 && status[i] < MAX_NODE) t->on[status[i]]++;
        else t->absent++;
    }
    munmap(status, (size_t)unique * sizeof *status);
    munmap(pages, (size_t)total * sizeof *pages);
}

/* The node of the threads in_thread starts (they pin themselves with
 * run_on_node(step_node)). */
static int step_node __attribute__((unused));

/* Run `fn` in a new thread for node `node` and wait for it to end. */
static inline void in_thread(void *(*fn)(void *), int node)
{
    pthread_t t;
    step_node = node;
    REQUIRE(pthread_create(&t, NULL, fn, NULL) == 0, "pthread_create");
    REQUIRE(pthread_join(t, NULL) == 0, "pthread_join");
}

#endif
