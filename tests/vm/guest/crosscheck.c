/*
 * crosscheck.c — runs inside the multi-node guest (tests/vm/crosscheck.sh):
 * an independent check of how placement.c locates pages.  With numamalloc
 * preloaded, a thread on the second node with CPUs allocates a small, a
 * medium and a huge block and writes them; then every page of each block is
 * located three ways, which must agree, and must say the thread's node:
 *   - the raw move_pages(2) system call with a NULL node list (placement.c's
 *     method),
 *   - libnuma's numa_move_pages(),
 *   - /proc/self/numa_maps (the kernel's per-mapping page counts per node).
 *
 *   crosscheck           exit 0 = all agree
 */
#define _GNU_SOURCE
#include <errno.h>
#include <numa.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../testutil.h"

#define OS_PAGE 4096UL
#define MAX_PAGES 4096

static void raw_locate(void **pages, long n, int *status)
{
    long r = syscall(SYS_move_pages, 0, (unsigned long)n, pages, NULL, status, 0);
    REQUIRE(r == 0, "move_pages: %s", strerror(errno));
}

/* Pages on `node` in the numa_maps line of the mapping that holds `p`:
 * the mapping's start address is the first field, "N<node>=<pages>" one of
 * the others.  -1 when no mapping starts at or below p on a line we read. */
static long numa_maps_pages(const void *p, int node, unsigned long *vma_start)
{
    FILE *f = fopen("/proc/self/numa_maps", "r");
    REQUIRE(f != NULL, "cannot open /proc/self/numa_maps");
    char line[4096], key[32];
    long best = -1;
    unsigned long best_start = 0;
    snprintf(key, sizeof key, " N%d=", node);
    while (fgets(line, sizeof line, f)) {
        unsigned long start = strtoul(line, NULL, 16);
        if (start > (uintptr_t)p || start < best_start) continue;
        char *at = strstr(line, key);
        best = at ? strtol(at + strlen(key), NULL, 10) : 0;
        best_start = start;
    }
    fclose(f);
    *vma_start = best_start;
    return best;
}

static void cross_check(const char *what, char *block, size_t size, int node)
{
    uintptr_t first = (uintptr_t)block & ~(OS_PAGE - 1);
    long n = (long)(((uintptr_t)block + size - 1 - first) / OS_PAGE) + 1;
    REQUIRE(n <= MAX_PAGES, "block too large for this check");
    static void *pages[MAX_PAGES];
    static int raw[MAX_PAGES], lib[MAX_PAGES];
    for (long i = 0; i < n; i++) pages[i] = (void *)(first + (uintptr_t)i * OS_PAGE);
    raw_locate(pages, n, raw);
    REQUIRE(numa_move_pages(0, (unsigned long)n, pages, NULL, lib, 0) == 0, "numa_move_pages: %s", strerror(errno));
    long agree = 0, on_node = 0;
    for (long i = 0; i < n; i++) {
        agree += raw[i] == lib[i];
        on_node += raw[i] == node;
    }
    unsigned long vma = 0;
    long mapped = numa_maps_pages(block, node, &vma);
    printf("%-8s %8zu B: %ld pages; move_pages and numa_move_pages agree on %ld; %ld on node %d; "
           "numa_maps: the mapping at 0x%lx has %ld pages on node %d\n",
           what, size, n, agree, on_node, node, vma, mapped, node);
    CHECK(agree == n, "%s: move_pages and numa_move_pages disagree on %ld of %ld pages", what, n - agree, n);
    CHECK(on_node == n, "%s: %ld of %ld pages not on node %d", what, n - on_node, n, node);
    CHECK(mapped >= n, "%s: numa_maps counts %ld pages on node %d in the block's mapping, the block has %ld",
          what, mapped, node, n);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    nm_test_require_numamalloc();
    REQUIRE(numa_available() == 0, "libnuma: NUMA not available in the guest");
    int node = -1, seen = 0;
    for (int n = 0; n <= numa_max_node() && node < 0; n++) {
        struct bitmask *cpus = numa_allocate_cpumask();
        if (numa_node_to_cpus(n, cpus) == 0 && numa_bitmask_weight(cpus) > 0 && seen++ == 1) node = n;
        numa_free_cpumask(cpus);
    }
    REQUIRE(node >= 0, "fewer than two nodes with CPUs");
    REQUIRE(numa_run_on_node(node) == 0, "numa_run_on_node(%d): %s", node, strerror(errno));
    unsigned cpu = 0, now = 0;
    REQUIRE(syscall(SYS_getcpu, &cpu, &now, NULL) == 0 && (int)now == node, "not running on node %d", node);

    static const struct { const char *what; size_t size; } blocks[] = {
        {"small", 200}, {"medium", 100 * 1024}, {"huge", 6u << 20},
    };
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        char *p = malloc(blocks[i].size);
        REQUIRE(p != NULL, "malloc(%zu)", blocks[i].size);
        memset(p, 7, blocks[i].size);
        cross_check(blocks[i].what, p, blocks[i].size, node);
        free(p);
    }
    return nm_test_done();
}
