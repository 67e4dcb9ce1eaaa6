/* prof_sites.c — runs inside the 2node guest (tests/vm/prof_sites.sh)
 * under NUMAMALLOC_PROF=1 NUMAMALLOC_PROF_SAMPLE=1 (every allocation
 * recorded): three call sites whose memory the host knows.
 *   site_local  a thread on the first node keeps 400 blocks of 128 B
 *   site_cross  a thread on the first node allocates 300 blocks of 256 B,
 *               a thread on the second node frees them all
 *   site_leak   a thread on the second node allocates 200 blocks of 512 B
 *               and never frees them
 *   site_moved  a thread on the first node keeps 100 blocks of 64 B, whose
 *               pages the program then moves to the second node with
 *               move_pages(2), as a balancer (numad, NUMA balancing) would:
 *               the profile must find them on the second node, outside the
 *               first node its heap binds them to (mismatched)
 * Every block is written by the thread that allocated it.  Then the
 * program writes its profile with nm_prof_dump and prints it, each line
 * after "prof ", with the addresses of the three functions ("site NAME
 * ADDRESS") and the two nodes ("nodes FIRST SECOND"), for the host to
 * read; the pointers are kept in mmap'd memory, so nothing else of the
 * program allocates.  Then, with the profile written: a sampled 24-byte
 * block grown to 1 MiB with realloc must have the kernel policy of a plain
 * 1 MiB block (first touch), not its thread heap's binding. */
#include "guest.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sys/syscall.h>

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)   /* <numaif.h>, which is libnuma's */
#endif

#define LOCAL 400
#define CROSS 300
#define LEAK 200
#define MOVED 100

static void **blocks;   /* LOCAL + CROSS + LEAK pointers, in mmap'd memory */

__attribute__((noinline)) static void *site_local(size_t n)
{
    void *p = malloc(n);
    REQUIRE(p != NULL, "malloc");
    memset(p, 1, n);
    return p;
}

__attribute__((noinline)) static void *site_cross(size_t n)
{
    void *p = malloc(n);
    REQUIRE(p != NULL, "malloc");
    memset(p, 2, n);
    return p;
}

__attribute__((noinline)) static void *site_leak(size_t n)
{
    void *p = malloc(n);
    REQUIRE(p != NULL, "malloc");
    memset(p, 3, n);
    return p;
}

__attribute__((noinline)) static void *site_moved(size_t n)
{
    void *p = malloc(n);
    REQUIRE(p != NULL, "malloc");
    memset(p, 4, n);
    return p;
}

static void *first_node_work(void *arg)
{
    (void)arg;
    run_on_node(step_node);
    for (int i = 0; i < LOCAL; i++) blocks[i] = site_local(128);
    for (int i = 0; i < CROSS; i++) blocks[LOCAL + i] = site_cross(256);
    for (int i = 0; i < MOVED; i++) blocks[LOCAL + CROSS + LEAK + i] = site_moved(64);
    return NULL;
}

static void *second_node_work(void *arg)
{
    (void)arg;
    run_on_node(step_node);
    for (int i = 0; i < CROSS; i++) free(blocks[LOCAL + i]);
    for (int i = 0; i < LEAK; i++) blocks[LOCAL + CROSS + i] = site_leak(512);
    return NULL;
}


/* The kernel's memory policy at `p` (get_mempolicy MPOL_F_ADDR), or -1. */
static int page_policy(void *p)
{
    int mode = -1;
    unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };
    return syscall(SYS_get_mempolicy, &mode, mask, 1024 + 1, p, 2 /* MPOL_F_ADDR */) == 0 ? mode : -1;
}

int main(void)
{
    load_topology();
    REQUIRE(cpu_node_count >= 2, "needs two nodes with CPUs, the guest has %d", cpu_node_count);
    int (*prof_dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "nm_prof_dump");
    REQUIRE(prof_dump != NULL, "nm_prof_dump not found: is numamalloc preloaded?");
    int first = cpu_nodes[0], second = cpu_nodes[1];
    blocks = map_zeroed((LOCAL + CROSS + LEAK + MOVED) * sizeof *blocks);
    in_thread(first_node_work, first);
    in_thread(second_node_work, second);
    /* A sampled block has a page of its own: move each to the second node. */
    void **moved = blocks + LOCAL + CROSS + LEAK;
    void *pages[MOVED];
    int to[MOVED], status[MOVED];
    for (int i = 0; i < MOVED; i++) {
        pages[i] = (void *)((uintptr_t)moved[i] & ~(uintptr_t)4095);
        to[i] = second;
    }
    long r = syscall(SYS_move_pages, 0, (unsigned long)MOVED, pages, to, status, MPOL_MF_MOVE);
    REQUIRE(r == 0, "move_pages: %s", strerror(errno));
    for (int i = 0; i < MOVED; i++) REQUIRE(status[i] == second, "page %d not moved: %d", i, status[i]);
    REQUIRE(prof_dump("/tmp/prof_sites.heap") == 0, "nm_prof_dump: %s", strerror(errno));
    printf("site local %p\nsite cross %p\nsite leak %p\nsite moved %p\nnodes %d %d\n",
           (void *)site_local, (void *)site_cross, (void *)site_leak, (void *)site_moved, first, second);
    FILE *f = fopen("/tmp/prof_sites.heap", "r");
    REQUIRE(f != NULL, "cannot read the profile back");
    char line[4096];
    while (fgets(line, sizeof line, f)) printf("prof %s", line);
    fclose(f);
    fflush(stdout);
    /* A sampled small block (a span of its own) grown past 256 KiB goes
     * where a large block goes, as an unsampled one would: placed by first
     * touch (the kernel's default policy), not kept in the thread heap's
     * bound arena. */
    void *small = malloc(24);
    void *grown = realloc(small, 1 << 20), *large = malloc(1 << 20);
    REQUIRE(grown && large, "malloc/realloc");
    int grown_mode = page_policy(grown), large_mode = page_policy(large);
    printf("realloc 24 B -> 1 MiB: policy %d, a 1 MiB malloc: %d\n", grown_mode, large_mode);
    CHECK(grown_mode == large_mode, "a sampled small block grown to 1 MiB kept its heap's binding (%d, not %d)",
          grown_mode, large_mode);
    return nm_test_done();
}
