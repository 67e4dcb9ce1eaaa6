/* policy.c — the public topology functions and policies: on this machine
 * (checked against what the kernel and sysconf say), and on recorded sysfs
 * trees of larger machines (the test runs itself again with
 * NUMAMALLOC_SYSFS_ROOT pointing at a tree, because the allocator reads its
 * topology once, at start-up). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"

#define MPOL_BIND_MODE 2
#define MPOL_F_ADDR (1 << 1)

/* Parse `text`; it must fail with exactly `message`. */
static void parse_fails(const char *text, const char *message)
{
    nm_policy p;
    char err[256] = "";
    errno = 0;
    int r = nm_policy_parse(text, &p, err, sizeof err);
    CHECK(r == -1 && errno == EINVAL, "'%s' parsed (r=%d errno=%d)", text, r, errno);
    CHECK(strcmp(err, message) == 0, "'%s': message '%s', expected '%s'", text, err, message);
}

/* Parse `text`; it must succeed and format back as `formatted`. */
static void parse_ok(const char *text, enum nm_policy_mode mode, const char *formatted)
{
    nm_policy p;
    char err[256] = "", back[256];
    int r = nm_policy_parse(text, &p, err, sizeof err);
    CHECK(r == 0, "'%s' did not parse: %s", text, err);
    if (r != 0) return;
    CHECK(p.mode == mode, "'%s': mode %d, expected %d", text, (int)p.mode, (int)mode);
    int n = nm_policy_format(&p, back, sizeof back);
    CHECK(n == (int)strlen(formatted) && strcmp(back, formatted) == 0,
          "'%s' formats as '%s' (%d), expected '%s'", text, back, n, formatted);
    nm_policy again;
    CHECK(nm_policy_parse(back, &again, err, sizeof err) == 0 && memcmp(&again, &p, sizeof p) == 0,
          "'%s' does not read back", back);
}

static void this_machine(void)
{
    int count = nm_node_count();
    REQUIRE(count >= 1);
    int ids[64];
    CHECK(nm_node_ids(ids, 64) == count);
    long cpus_online = sysconf(_SC_NPROCESSORS_ONLN);
    int total_cpus = 0;
    for (int i = 0; i < count; i++) {
        int cpus[4096];
        int n = nm_node_cpus(ids[i], cpus, 4096);
        CHECK(n >= 0);
        total_cpus += n;
        for (int c = 0; c < n && c < 4096; c++)
            CHECK(nm_node_of_cpu(cpus[c]) == ids[i], "cpu %d: node %d, listed on %d", cpus[c],
                  nm_node_of_cpu(cpus[c]), ids[i]);
        CHECK(nm_node_has_cpus(ids[i]) == (n > 0));
        CHECK(nm_node_distance(ids[i], ids[i]) == 10);
        uint64_t total = 0, free_bytes = 0;
        CHECK(nm_node_memory(ids[i], &total, &free_bytes) == 0);
        CHECK(total > 0 && free_bytes <= total, "node %d: total %llu free %llu", ids[i],
              (unsigned long long)total, (unsigned long long)free_bytes);
        int order[64];
        CHECK(nm_nodes_by_distance(ids[i], order, 64) == count && order[0] == ids[i]);
    }
    CHECK(total_cpus == cpus_online, "nodes list %d CPUs, sysconf says %ld", total_cpus, cpus_online);

    /* The current node agrees with getcpu while pinned to each CPU. */
    cpu_set_t saved;
    sched_getaffinity(0, sizeof saved, &saved);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &saved)) continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0) continue;
        unsigned c = 0, node = 0;
        syscall(SYS_getcpu, &c, &node, NULL);
        CHECK(nm_current_node() == (int)node, "on cpu %d: nm_current_node %d, getcpu %u", cpu,
              nm_current_node(), node);
    }
    sched_setaffinity(0, sizeof saved, &saved);

    /* Unknown nodes. */
    errno = 0;
    CHECK(nm_node_distance(0, 999) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(nm_node_cpus(-3, NULL, 0) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(nm_node_memory(1000, NULL, NULL) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(nm_node_of_cpu(1 << 20) == -1 && errno == EINVAL);

    /* Policies this kernel supports, and their text. */
    parse_ok("local", NM_POLICY_LOCAL, "local");
    parse_ok("bind:0", NM_POLICY_BIND, "bind:0");
    /* "all" is every node with memory, the same set as listing them. */
    nm_policy all, listed;
    char list[4096] = "interleave:";
    for (int i = 0; i < count; i++) {
        uint64_t total = 0;
        nm_node_memory(ids[i], &total, NULL);
        if (total) snprintf(list + strlen(list), sizeof list - strlen(list), "%d,", ids[i]);
    }
    list[strlen(list) - 1] = '\0';
    REQUIRE(nm_policy_parse("interleave:all", &all, NULL, 0) == 0);
    REQUIRE(nm_policy_parse(list, &listed, NULL, 0) == 0, "%s", list);
    CHECK(memcmp(&all, &listed, sizeof all) == 0, "interleave:all is not %s", list);
    parse_ok("preferred-many:0", NM_POLICY_PREFERRED_MANY, "preferred-many:0");
    /* Weighted interleave came with Linux 6.9, and with it the sysfs
     * directory of its weights: without that, parsing names the version. */
    struct stat st;
    if (stat("/sys/kernel/mm/mempolicy/weighted_interleave", &st) == 0) {
        parse_ok("weighted-interleave:0", NM_POLICY_WEIGHTED_INTERLEAVE, "weighted-interleave:0");
    } else {
        nm_policy p;
        char err[256] = "";
        errno = 0;
        int r = nm_policy_parse("weighted-interleave:0", &p, err, sizeof err);
        CHECK(r == -1 && errno == ENOSYS, "weighted-interleave:0 parsed (r=%d errno=%d)", r, errno);
        CHECK(strcmp(err, "this kernel has no weighted-interleave policy (Linux 6.9+)") == 0,
              "weighted-interleave:0: message '%s'", err);
        printf("weighted interleave: not in this kernel (no /sys/kernel/mm/mempolicy/weighted_interleave): refused as such\n");
    }

    /* A policy applied to a range is what the kernel reports for it. */
    size_t len = 1 << 20;
    void *range = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(range != MAP_FAILED);
    nm_policy bind;
    REQUIRE(nm_policy_parse("bind:0", &bind, NULL, 0) == 0);
    unsigned long mask[16] = { 0 };
    int mode = -1;
    REQUIRE(syscall(SYS_mbind, range, len, MPOL_BIND_MODE, (unsigned long[16]){ 1 }, 1025, 0) == 0);
    CHECK(syscall(SYS_get_mempolicy, &mode, mask, 1025, range, MPOL_F_ADDR) == 0);
    CHECK(mode == MPOL_BIND_MODE && mask[0] == 1, "mode %d mask %#lx", mode, mask[0]);
    munmap(range, len);
}

/* Facts about the recorded trees (tests/sysfs/README.md). */
static void four_node(void)
{
    CHECK(nm_node_count() == 4, "%d nodes", nm_node_count());
    int order[8];
    CHECK(nm_nodes_by_distance(2, order, 8) == 4);
    CHECK(order[0] == 2 && order[1] == 3 && order[2] == 0 && order[3] == 1,
          "by distance from 2: %d %d %d %d", order[0], order[1], order[2], order[3]);
    CHECK(nm_node_distance(0, 1) == 12 && nm_node_distance(1, 3) == 21);
    parse_ok("interleave:all", NM_POLICY_INTERLEAVE, "interleave:0-3");
    parse_ok("interleave:0,2", NM_POLICY_INTERLEAVE, "interleave:0,2");
    parse_ok("bind:0-1", NM_POLICY_BIND, "bind:0-1");
    parse_ok("bind:3,1-2", NM_POLICY_BIND, "bind:1-3");
    parse_ok("preferred:2", NM_POLICY_PREFERRED, "preferred:2");
    parse_fails("bind:7", "node 7 does not exist (nodes: 0-3)");
    parse_fails("bind:0-4", "node 4 does not exist (nodes: 0-3)");
    parse_fails("bind:", "bind needs nodes, e.g. 'bind:0-1'");
    parse_fails("bind", "bind needs nodes, e.g. 'bind:0-1'");
    parse_fails("preferred:0-1", "preferred takes exactly one node, not 2");
    parse_fails("preferred:all", "preferred takes one node, not 'all'");
    parse_fails("local:0", "local takes no nodes: 'local:0'");
    parse_fails("interleave:0,,1", "bad node list '0,,1': expected ids and ranges like 0-3 or "
                                   "0,2, a kind such as dram or cxl, or near:DEVICE");
    parse_fails("interleave:3-1", "bad node list '3-1': expected ids and ranges like 0-3 or "
                                   "0,2, a kind such as dram or cxl, or near:DEVICE");
    parse_fails("interleave:x", "bad node list 'x': expected ids and ranges like 0-3 or "
                                   "0,2, a kind such as dram or cxl, or near:DEVICE");
    parse_fails("interleave:0-5000", "bad node list '0-5000': node ids go up to 1023");
    parse_fails("spread:0", "unknown policy 'spread': expected local, bind:NODES, preferred:NODE, "
                            "preferred-many:NODES, interleave:NODES, weighted-interleave:NODES or "
                            "near:DEVICE");
    parse_fails("", "unknown policy '': expected local, bind:NODES, preferred:NODE, "
                    "preferred-many:NODES, interleave:NODES, weighted-interleave:NODES or "
                    "near:DEVICE");
    nm_nodeset none;
    nm_nodeset_clear(&none);
    nm_policy empty = nm_policy_bind(&none);
    char err[128];
    errno = 0;
    CHECK(nm_policy_check(&empty, err, sizeof err) == -1 && errno == EINVAL);
    CHECK(strcmp(err, "bind needs at least one node: the node set is empty") == 0, "%s", err);
    /* A short buffer keeps what fits; the format's return says what it needs. */
    nm_policy all;
    REQUIRE(nm_policy_parse("interleave:all", &all, NULL, 0) == 0);
    char small[8];
    CHECK(nm_policy_format(&all, small, sizeof small) == 14 && strcmp(small, "interle") == 0);
}

static void sparse_cxl(void)
{
    int ids[8];
    CHECK(nm_node_ids(ids, 8) == 3 && ids[0] == 0 && ids[1] == 2 && ids[2] == 4);
    CHECK(nm_node_has_cpus(4) == 0, "the CXL node has CPUs?");
    CHECK(nm_node_has_cpus(2) == 1);
    CHECK(nm_node_cpus(4, ids, 8) == 0);
    errno = 0;
    CHECK(nm_node_has_cpus(1) == -1 && errno == EINVAL);
    int order[8];
    CHECK(nm_nodes_by_distance(2, order, 8) == 3 && order[0] == 2 && order[1] == 0 && order[2] == 4,
          "by distance from 2: %d %d %d", order[0], order[1], order[2]);
    parse_ok("bind:4", NM_POLICY_BIND, "bind:4");
    /* "all": every node with memory (node 2 has none), the CXL node included. */
    parse_ok("interleave:all", NM_POLICY_INTERLEAVE, "interleave:0,4");
    parse_fails("bind:1", "node 1 does not exist (nodes: 0,2,4)");
    parse_fails("bind:0,2", "node 2 has no memory");
    /* A node without memory: refused by every allocation function, nothing
     * allocated. */
    errno = 0;
    CHECK(nm_malloc_onnode(64, 2) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(nm_calloc_onnode(1, 1 << 20, 2) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(nm_reserve(2, 1 << 20) == -1 && errno == EINVAL);
    nm_policy no_memory = nm_policy_preferred(2);
    errno = 0;
    CHECK(nm_heap_new(&no_memory) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(nm_region_map(1 << 20, &no_memory, NM_PREFAULT_NONE, 0) == NULL && errno == EINVAL);
}

/* The four-node machine from a cpuset with the memory of nodes 1-2 only:
 * "all" is 1-2, the other nodes are refused everywhere with EINVAL, and a
 * thread on nodes 0-1 (of the tree; the real node it runs on names it) is
 * served by node 1, on 2-3 by node 2. */
static void four_node_cpuset(void)
{
    parse_ok("interleave:all", NM_POLICY_INTERLEAVE, "interleave:1-2");
    parse_ok("bind:all", NM_POLICY_BIND, "bind:1-2");
    parse_ok("preferred:2", NM_POLICY_PREFERRED, "preferred:2");
    parse_fails("bind:0", "node 0 is not allowed in this cpuset (allowed: 1-2)");
    parse_fails("interleave:1-3", "node 3 is not allowed in this cpuset (allowed: 1-2)");
    parse_fails("preferred:3", "node 3 is not allowed in this cpuset (allowed: 1-2)");
    parse_fails("preferred-many:0,2", "node 0 is not allowed in this cpuset (allowed: 1-2)");
    parse_fails("bind:7", "node 7 does not exist (nodes: 0-3)");
    nm_nodeset all = nm_nodeset_all();
    nm_policy every = nm_policy_interleave(&all);
    char err[128];
    errno = 0;
    CHECK(nm_policy_check(&every, err, sizeof err) == -1 && errno == EINVAL &&
              strcmp(err, "node 0 is not allowed in this cpuset (allowed: 1-2)") == 0,
          "interleave over nm_nodeset_all(): %s", err);
    for (int node = 0; node < 4; node += 3) {
        errno = 0;
        CHECK(nm_malloc_onnode(64, node) == NULL && errno == EINVAL, "onnode %d", node);
        errno = 0;
        CHECK(nm_calloc_onnode(1, 1 << 20, node) == NULL && errno == EINVAL, "calloc_onnode %d", node);
        errno = 0;
        CHECK(nm_reserve(node, 1 << 20) == -1 && errno == EINVAL, "reserve %d", node);
        nm_policy bind = nm_policy_preferred(node);
        errno = 0;
        CHECK(nm_heap_new(&bind) == NULL && errno == EINVAL, "heap preferred:%d", node);
        errno = 0;
        CHECK(nm_region_map(1 << 20, &bind, NM_PREFAULT_NONE, 0) == NULL && errno == EINVAL,
              "region preferred:%d", node);
    }
    /* The node serving this thread. */
    cpu_set_t saved, one;
    sched_getaffinity(0, sizeof saved, &saved);
    unsigned cpu = 0, node = 0;
    syscall(SYS_getcpu, &cpu, &node, NULL);
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    syscall(SYS_getcpu, &cpu, &node, NULL);
    if (node <= 3) {
        int home = node <= 1 ? 1 : 2;
        CHECK(nm_thread_rebind() == home, "on node %u: served by %d, expected %d", node,
              nm_thread_rebind(), home);
        CHECK(nm_current_node() == (int)node, "nm_current_node %d, getcpu %u", nm_current_node(),
              node);
    }
    void *p = malloc(100);
    CHECK(p != NULL);
    free(p);
    sched_setaffinity(0, sizeof saved, &saved);
}

static const struct {
    const char *tree;
    void (*check)(void);
} trees[] = {
    { "four-node", four_node },
    { "four-node-cpuset", four_node_cpuset },
    { "sparse-cxl", sparse_cxl },
};

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--tree") == 0) {
        for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++)
            if (strcmp(argv[2], trees[i].tree) == 0) trees[i].check();
        return nm_test_done();
    }
    this_machine();
    const char *root = getenv("NM_ROOT") ? getenv("NM_ROOT") : ".";
    for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/tests/sysfs/%s", root, trees[i].tree);
            setenv("NUMAMALLOC_SYSFS_ROOT", dir, 1);
            execl("/proc/self/exe", argv[0], "--tree", trees[i].tree, (char *)NULL);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tree %s: status %#x", trees[i].tree,
              status);
    }
    return nm_test_done();
}
