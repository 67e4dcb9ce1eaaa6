/* cross_free.c — runs inside the 2node guest (tests/vm/cross_free.sh): the
 * cross-node frees of nm_stats_json.  A thread on the first node with CPUs
 * allocates and writes 1,000 blocks of 64 B, 200 of 8 KiB and 3 of 1 MiB
 * (the pointers kept in mmap'd memory, not in malloc'd memory), and 500
 * more of 64 B; a thread on the second node frees the first 1,203, a
 * thread on the first node frees the 500.  The statistics printed after
 * each step must count exactly the second node's frees as cross-node (the
 * first node's thread freeing another thread's blocks is remote but not
 * cross-node); glibc's own frees at thread exit may add a few.  Prints the
 * JSON objects, one per line, after "json " for the host to read. */
#include "guest.h"

#include <dlfcn.h>
#include <pthread.h>

#define SMALL 1000
#define MEDIUM 200
#define LARGE 3
#define LOCAL 500
#define CROSS (SMALL + MEDIUM + LARGE)

static void **blocks;   /* CROSS + LOCAL pointers, in mmap'd memory */

static void *allocate(void *arg)
{
    (void)arg;
    run_on_node(step_node);
    for (int i = 0; i < CROSS + LOCAL; i++) {
        size_t size = i < SMALL ? 64 : i < SMALL + MEDIUM ? 8 * KiB : i < CROSS ? MiB : 64;
        blocks[i] = malloc(size);
        REQUIRE(blocks[i] != NULL, "malloc(%zu)", size);
        memset(blocks[i], 1, size);
    }
    return NULL;
}

static int free_from, free_to;
static void *release(void *arg)
{
    (void)arg;
    run_on_node(step_node);
    for (int i = free_from; i < free_to; i++) free(blocks[i]);
    return NULL;
}


static void print_stats(const char *when)
{
    size_t (*stats_json)(char *, size_t) = (size_t (*)(char *, size_t))dlsym(RTLD_DEFAULT, "nm_stats_json");
    REQUIRE(stats_json != NULL, "nm_stats_json not found: is numamalloc preloaded?");
    static char buf[256 * 1024];
    REQUIRE(stats_json(buf, sizeof buf) < sizeof buf, "statistics too long");
    printf("json %s %s", when, buf);
    fflush(stdout);
}

int main(void)
{
    load_topology();
    REQUIRE(cpu_node_count >= 2, "needs two nodes with CPUs, the guest has %d", cpu_node_count);
    int first = cpu_nodes[0], second = cpu_nodes[1];
    blocks = map_zeroed((CROSS + LOCAL) * sizeof *blocks);
    print_stats("start");
    in_thread(allocate, first);
    print_stats("allocated");
    free_from = 0, free_to = CROSS;
    in_thread(release, second);
    print_stats("second-node-freed");
    free_from = CROSS, free_to = CROSS + LOCAL;
    in_thread(release, first);
    print_stats("first-node-freed");
    printf("nodes %d %d\n", first, second);
    return nm_test_done();
}
