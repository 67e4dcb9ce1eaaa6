/* test_topology.c — the topology layer: recorded sysfs trees (tests/sysfs)
 * give exactly the nodes, CPUs, distances and memory they describe; broken
 * and generated odd trees give a consistent answer (the one-node fallback
 * where the tree is unusable) and never crash; the real /sys agrees with
 * numactl --hardware and /proc; nm_topology_current_node agrees with
 * getcpu on every CPU. */
#define _GNU_SOURCE
#include "topology.h"

#include "../testutil.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

static struct nm_topology t; /* ~16 KiB: not on the stack */
static char repo[PATH_MAX];

/* ---- helpers ------------------------------------------------------------- */

/* The repository root: $NM_ROOT (tests/run.sh), else four levels above
 * this binary (build/tests/unit/test_topology). */
static void find_repo(void)
{
    snprintf(repo, sizeof repo, "%s", nm_test_repo());
}

static const char *tree(const char *name)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/tests/sysfs/%s", repo, name);
    return path;
}

static void load_tree(const char *name) { nm_topology_load(&t, tree(name)); }

static int count_bits(const uint64_t *set, int bits)
{
    int n = 0;
    for (int i = 0; i < bits / 64; i++) n += __builtin_popcountll(set[i]);
    return n;
}

/* Whatever the input, the result must hang together. */
static void check_consistent(const struct nm_topology *x, const char *what)
{
    REQUIRE(x->node_count >= 1 && x->node_count <= NM_MAX_NODES, "%s: node_count %d", what,
            x->node_count);
    int known_ids = 0;
    for (int id = 0; id < NM_MAX_NODE_ID; id++) {
        int index = x->index_of_id[id];
        CHECK(index >= -1 && index < x->node_count, "%s: index_of_id[%d] = %d", what, id, index);
        if (index >= 0) {
            known_ids++;
            CHECK(x->node_id[index] == id, "%s: node_id[%d] = %d, expected %d", what, index,
                  x->node_id[index], id);
        }
    }
    CHECK(known_ids == x->node_count, "%s: %d ids map to an index, %d nodes", what, known_ids,
          x->node_count);
    int cpus_on[NM_MAX_NODES] = {0};
    CHECK(x->cpu_limit >= 1 && x->cpu_limit <= NM_MAX_CPUS, "%s: cpu_limit %d", what, x->cpu_limit);
    for (int cpu = 0; cpu < NM_MAX_CPUS; cpu++) {
        int node = x->node_of_cpu[cpu];
        CHECK(node >= -1 && node < x->node_count, "%s: node_of_cpu[%d] = %d", what, cpu, node);
        CHECK(cpu < x->cpu_limit || node == -1, "%s: CPU %d beyond cpu_limit %d has node %d", what,
              cpu, x->cpu_limit, node);
        if (node >= 0 && node < x->node_count) cpus_on[node]++;
    }
    CHECK(x->cpu_limit < 1 || x->node_of_cpu[x->cpu_limit - 1] >= 0, "%s: CPU cpu_limit-1 unknown",
          what);
    bool any_memory = false;
    for (int i = 0; i < x->node_count; i++) {
        if (i > 0) CHECK(x->node_id[i] > x->node_id[i - 1], "%s: ids not ascending at %d", what, i);
        CHECK(x->cpu_count[i] == cpus_on[i], "%s: cpu_count[%d] = %d, %d CPUs map to it", what, i,
              x->cpu_count[i], cpus_on[i]);
        CHECK(x->mem_free[i] <= x->mem_total[i] || x->mem_total[i] == 0,
              "%s: node %d free %llu > total %llu", what, i, (unsigned long long)x->mem_free[i],
              (unsigned long long)x->mem_total[i]);
        any_memory |= x->has_memory[i];
        for (int j = 0; j < x->node_count; j++)
            CHECK(x->distance[i][j] >= 1, "%s: distance[%d][%d] = 0", what, i, j);
        int home = x->home[i];
        CHECK(home >= 0 && home < x->node_count && nm_topology_usable(x, home) &&
                  (home == i) == nm_topology_usable(x, i),
              "%s: node %d: home %d", what, i, home);
    }
    CHECK(any_memory, "%s: no node has memory", what);
    if (x->fallback) {
        CHECK(x->node_count == 1 && x->node_id[0] == 0 && x->index_of_id[0] == 0,
              "%s: fallback is not one node 0", what);
        CHECK(x->has_memory[0] && x->distance[0][0] == 10, "%s: fallback node 0", what);
    }
}

/* The fallback with exactly the CPUs of `cpus`. */
static void check_fallback(const char *what, const uint64_t *cpus)
{
    check_consistent(&t, what);
    CHECK(t.fallback, "%s: expected the fallback", what);
    CHECK(t.node_count == 1, "%s: %d nodes", what, t.node_count);
    CHECK(t.cpu_count[0] == count_bits(cpus, NM_MAX_CPUS), "%s: %d CPUs, expected %d", what,
          t.cpu_count[0], count_bits(cpus, NM_MAX_CPUS));
    for (int cpu = 0; cpu < NM_MAX_CPUS; cpu++) {
        bool in = (cpus[cpu / 64] >> (cpu % 64)) & 1;
        CHECK(t.node_of_cpu[cpu] == (in ? 0 : -1), "%s: CPU %d -> %d", what, cpu,
              t.node_of_cpu[cpu]);
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    CHECK(t.mem_total[0] == (uint64_t)pages * (uint64_t)page, "%s: fallback mem_total %llu", what,
          (unsigned long long)t.mem_total[0]);
}

static void cpus_range(uint64_t *cpus, int first, int last)
{
    memset(cpus, 0, NM_MAX_CPUS / 8);
    for (int c = first; c <= last; c++) cpus[c / 64] |= 1ull << (c % 64);
}

/* The CPUs this process may run on. */
static void cpus_allowed(uint64_t *cpus)
{
    cpu_set_t set[NM_MAX_CPUS / CPU_SETSIZE];
    memset(cpus, 0, NM_MAX_CPUS / 8);
    int rc = sched_getaffinity(0, sizeof set, set); /* REQUIRE evaluates twice */
    REQUIRE(rc == 0, "sched_getaffinity: %s", strerror(errno));
    for (int c = 0; c < NM_MAX_CPUS; c++)
        if (CPU_ISSET_S(c, sizeof set, set)) cpus[c / 64] |= 1ull << (c % 64);
}

/* Node `index` has kernel id `id` and exactly CPUs first..last plus
 * first2..last2 (pass -1 for none). */
static void check_node(const char *what, int index, int id, int a, int b, int c, int d)
{
    CHECK(t.node_id[index] == id, "%s: node_id[%d] = %d, expected %d", what, index,
          t.node_id[index], id);
    CHECK(nm_topology_index(&t, id) == index, "%s: index of id %d = %d", what, id,
          nm_topology_index(&t, id));
    int expected = 0;
    for (int cpu = 0; cpu < NM_MAX_CPUS; cpu++) {
        bool mine = (a >= 0 && cpu >= a && cpu <= b) || (c >= 0 && cpu >= c && cpu <= d);
        expected += mine;
        if (mine)
            CHECK(t.node_of_cpu[cpu] == index, "%s: CPU %d -> %d, expected %d", what, cpu,
                  t.node_of_cpu[cpu], index);
        else
            CHECK(t.node_of_cpu[cpu] != index, "%s: CPU %d wrongly on %d", what, cpu, index);
    }
    CHECK(t.cpu_count[index] == expected, "%s: cpu_count[%d] = %d, expected %d", what, index,
          t.cpu_count[index], expected);
}

static void check_memory(const char *what, int index, uint64_t total_kib, uint64_t free_kib)
{
    CHECK(t.mem_total[index] == total_kib * 1024, "%s: mem_total[%d] = %llu", what, index,
          (unsigned long long)t.mem_total[index]);
    CHECK(t.mem_free[index] == free_kib * 1024, "%s: mem_free[%d] = %llu", what, index,
          (unsigned long long)t.mem_free[index]);
    CHECK(t.has_memory[index] == (total_kib > 0), "%s: has_memory[%d]", what, index);
}

/* ---- recorded trees --------------------------------------------------------- */

static void test_one_node(void)
{
    load_tree("one-node");
    check_consistent(&t, "one-node");
    CHECK(!t.fallback && t.node_count == 1 && t.cpu_limit == 2, "in %s", __func__);
    check_node("one-node", 0, 0, 0, 1, -1, -1);
    check_memory("one-node", 0, 4679896, 4332796);
    CHECK(t.distance[0][0] == 10, "in %s", __func__);
    CHECK(nm_topology_index(&t, 1) == -1 && nm_topology_index(&t, -1) == -1 &&
              nm_topology_index(&t, NM_MAX_NODE_ID) == -1,
          "in %s", __func__);
}

static void test_two_node(void)
{
    load_tree("two-node");
    check_consistent(&t, "two-node");
    CHECK(!t.fallback && t.node_count == 2 && t.cpu_limit == 32, "in %s", __func__);
    check_node("two-node", 0, 0, 0, 7, 16, 23);
    check_node("two-node", 1, 1, 8, 15, 24, 31);
    check_memory("two-node", 0, 65755700, 61203344);
    check_memory("two-node", 1, 66037016, 63950120);
    CHECK(t.distance[0][0] == 10 && t.distance[0][1] == 21 && t.distance[1][0] == 21 &&
              t.distance[1][1] == 10,
          "in %s", __func__);
}

static void test_four_node(void)
{
    static const int d[4][4] = {
        {10, 12, 21, 21}, {12, 10, 21, 21}, {21, 21, 10, 12}, {21, 21, 12, 10}};
    load_tree("four-node");
    check_consistent(&t, "four-node");
    CHECK(!t.fallback && t.node_count == 4 && t.cpu_limit == 96, "in %s", __func__);
    for (int i = 0; i < 4; i++) {
        check_node("four-node", i, i, 12 * i, 12 * i + 11, 48 + 12 * i, 48 + 12 * i + 11);
        check_memory("four-node", i, 32654312 + 1024 * (uint64_t)i,
                     30112000 - 733000 * (uint64_t)i);
        for (int j = 0; j < 4; j++)
            CHECK(t.distance[i][j] == d[i][j], "four-node distance[%d][%d] = %d", i, j,
                  t.distance[i][j]);
    }
    CHECK(t.node_of_cpu[13] == 1 && t.node_of_cpu[95] == 3 && t.node_of_cpu[96] == -1, "in %s",
          __func__);
    /* No proc-self-status: every node allowed, each its own home. */
    CHECK(!t.mems_limited, "four-node: mems limited");
    for (int i = 0; i < 4; i++)
        CHECK(t.mem_allowed[i] && t.home[i] == i, "four-node: node %d allowed %d home %d", i,
              t.mem_allowed[i], t.home[i]);
}

/* The same machine in a cpuset with the memory of nodes 1-2 only
 * (Mems_allowed_list: 1-2): CPUs of node 0 get node 1's memory (12 away),
 * those of node 3 node 2's. */
static void test_four_node_cpuset(void)
{
    load_tree("four-node-cpuset");
    check_consistent(&t, "four-node-cpuset");
    CHECK(!t.fallback && t.node_count == 4 && t.mems_limited, "in %s", __func__);
    static const bool allowed[4] = {false, true, true, false};
    static const int home[4] = {1, 1, 2, 2};
    for (int i = 0; i < 4; i++) {
        CHECK(t.has_memory[i] && t.mem_allowed[i] == allowed[i] &&
                  nm_topology_usable(&t, i) == allowed[i] && t.home[i] == home[i],
              "four-node-cpuset: node %d allowed %d home %d", i, t.mem_allowed[i], t.home[i]);
    }
}

static void test_eight_node(void)
{
    load_tree("eight-node");
    check_consistent(&t, "eight-node");
    CHECK(!t.fallback && t.node_count == 8 && t.cpu_limit == 256, "in %s", __func__);
    for (int i = 0; i < 8; i++) {
        check_node("eight-node", i, i, 16 * i, 16 * i + 15, 128 + 16 * i, 128 + 16 * i + 15);
        check_memory("eight-node", i, 65948456 - 2048 * (uint64_t)(i % 3),
                     61000000 - 1000000 * (uint64_t)i);
        for (int j = 0; j < 8; j++) {
            int expected = i == j ? 10 : i / 4 == j / 4 ? 12 : 32;
            CHECK(t.distance[i][j] == expected, "eight-node distance[%d][%d] = %d", i, j,
                  t.distance[i][j]);
        }
    }
    CHECK(t.node_of_cpu[200] == 4, "CPU 200 -> %d", t.node_of_cpu[200]);
}

static void test_sparse_cxl(void)
{
    static const int d[3][3] = {{10, 21, 24}, {21, 10, 34}, {24, 34, 10}};
    load_tree("sparse-cxl");
    check_consistent(&t, "sparse-cxl");
    CHECK(!t.fallback && t.node_count == 3 && t.cpu_limit == 64, "in %s", __func__);
    check_node("sparse-cxl", 0, 0, 0, 15, 32, 47);
    check_node("sparse-cxl", 1, 2, 16, 31, 48, 63);
    check_node("sparse-cxl", 2, 4, -1, -1, -1, -1); /* CXL: memory only */
    CHECK(t.cpu_count[2] == 0, "in %s", __func__);
    check_memory("sparse-cxl", 0, 131596288, 120004112);
    check_memory("sparse-cxl", 1, 0, 0); /* CPUs only */
    check_memory("sparse-cxl", 2, 268435456, 268173312);
    CHECK(!t.has_memory[1] && t.has_memory[2], "in %s", __func__);
    /* Node 2's CPUs get memory from node 0 (21 away; the CXL node is 34). */
    CHECK(t.home[0] == 0 && t.home[1] == 0 && t.home[2] == 2 && !t.mems_limited,
          "sparse-cxl: homes %d %d %d", t.home[0], t.home[1], t.home[2]);
    static const int index_of[8] = {0, -1, 1, -1, 2, -1, -1, -1};
    for (int id = 0; id < 8; id++)
        CHECK(nm_topology_index(&t, id) == index_of[id], "sparse-cxl: index of id %d = %d", id,
              nm_topology_index(&t, id));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            CHECK(t.distance[i][j] == d[i][j], "sparse-cxl distance[%d][%d] = %d", i, j,
                  t.distance[i][j]);
}

static void test_optional_files_missing(void)
{
    load_tree("no-meminfo-no-distance");
    check_consistent(&t, "no-meminfo-no-distance");
    CHECK(!t.fallback && t.node_count == 2, "in %s", __func__);
    check_node("no-meminfo-no-distance", 0, 0, 0, 3, -1, -1);
    check_node("no-meminfo-no-distance", 1, 1, 4, 7, -1, -1);
    /* Unknown memory: assumed present, size 0; default distances. */
    CHECK(t.has_memory[0] && t.has_memory[1] && t.mem_total[0] == 0 && t.mem_total[1] == 0, "in %s",
          __func__);
    CHECK(t.distance[0][0] == 10 && t.distance[1][1] == 10 && t.distance[0][1] == 20 &&
              t.distance[1][0] == 20,
          "in %s", __func__);
}

static void test_no_online_file(void)
{
    load_tree("no-online-file");
    check_consistent(&t, "no-online-file");
    CHECK(!t.fallback && t.node_count == 2, "in %s", __func__);
    check_node("no-online-file", 0, 1, 0, 3, -1, -1);
    check_node("no-online-file", 1, 3, 4, 7, -1, -1);
    check_memory("no-online-file", 1, 8388608, 7000000);
    CHECK(t.distance[0][1] == 20 && t.distance[1][1] == 10, "in %s", __func__);
}

static void test_ignored_huge_id(void)
{
    load_tree("ignored-huge-id");
    check_consistent(&t, "ignored-huge-id");
    CHECK(!t.fallback && t.node_count == 1 && t.cpu_limit == 4, "in %s", __func__);
    check_node("ignored-huge-id", 0, 0, 0, 3, -1, -1);
    CHECK(t.node_of_cpu[4] == -1 && t.distance[0][0] == 10, "in %s", __func__);
    check_memory("ignored-huge-id", 0, 16777216, 16000000);
}

static void test_broken_trees(void)
{
    uint64_t cpus[NM_MAX_CPUS / 64];
    int saved = errno = 4242;

    load_tree("broken-garbage");
    cpus_range(cpus, 0, 3);
    check_fallback("broken-garbage", cpus);

    load_tree("broken-distance");
    cpus_range(cpus, 0, 7);
    check_fallback("broken-distance", cpus);

    load_tree("broken-huge-id");
    cpus_range(cpus, 0, 5);
    check_fallback("broken-huge-id", cpus);

    /* No cpu/online either: the CPUs this process may run on. */
    cpus_allowed(cpus);
    load_tree("broken-empty");
    check_fallback("broken-empty", cpus);
    nm_topology_load(&t, "/nonexistent/sysfs");
    check_fallback("/nonexistent/sysfs", cpus);
    char longroot[3000];
    memset(longroot, 'x', sizeof longroot - 1);
    longroot[0] = '/';
    longroot[sizeof longroot - 1] = '\0';
    nm_topology_load(&t, longroot);
    check_fallback("a root longer than any path", cpus);

    CHECK(errno == saved, "load changed errno to %d", errno);
}

/* ---- generated trees ----------------------------------------------------------- */

static char gen_root[512];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void gen_reset(void)
{
    if (gen_root[0]) nftw(gen_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    /* Thousands of tiny files: tmpfs when there is one ($TMPDIR wins). */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(gen_root, sizeof gen_root, "%s/nm-topology-XXXXXX", tmp);
    char *made = mkdtemp(gen_root);
    REQUIRE(made != NULL, "mkdtemp: %s", strerror(errno));
}

/* Write `text` to <gen_root>/devices/system/<rel>, making directories. */
static void put(const char *rel, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/devices/system/%s", gen_root, rel);
    FILE *f = fopen(path, "w");
    for (char *s = path + strlen(gen_root) + 1; !f && *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    if (!f) f = fopen(path, "w");
    REQUIRE(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void put_node(int id, const char *leaf, const char *text)
{
    char rel[128];
    snprintf(rel, sizeof rel, "node/node%d/%s", id, leaf);
    put(rel, text);
}

static void put_meminfo(int id, uint64_t total_kib, uint64_t free_kib)
{
    char text[256];
    snprintf(text, sizeof text,
             "Node %d MemTotal:       %llu kB\nNode %d MemFree:        %llu kB\n"
             "Node %d MemUsed:        %llu kB\n",
             id, (unsigned long long)total_kib, id, (unsigned long long)free_kib, id,
             (unsigned long long)(total_kib - free_kib));
    put_node(id, "meminfo", text);
}

/* "first,first+2,...,last\n" (malloc'ed). */
static char *long_cpulist(int first, int last)
{
    size_t cap = (size_t)(last - first + 2) * 4, len = 0;
    char *text = malloc(cap);
    REQUIRE(text != NULL, "out of memory");
    for (int cpu = first; cpu <= last; cpu += 2)
        len += (size_t)snprintf(text + len, cap - len, "%s%d", cpu > first ? "," : "", cpu);
    snprintf(text + len, cap - len, "\n");
    return text;
}

/* Write `text` to <gen_root>/proc-self-status. */
static void put_status(const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/proc-self-status", gen_root);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* A good two-node tree (CPUs 0-3, 4-7) to spoil one file of. */
static void gen_two_nodes(void)
{
    gen_reset();
    put("node/online", "0-1\n");
    put("cpu/online", "0-7\n");
    put_node(0, "cpulist", "0-3\n");
    put_node(1, "cpulist", "4-7\n");
    put_node(0, "distance", "10 21\n");
    put_node(1, "distance", "21 10\n");
    put_meminfo(0, 1048576, 524288);
    put_meminfo(1, 1048576, 262144);
}

static void test_too_many_nodes(void)
{
    /* 70 nodes with even ids 0..138; node 2k has CPU k.  Distances differ
     * per pair so that a wrong column would show. */
    enum { N = 70 };
    gen_reset();
    char text[1024];
    put("node/online", "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,42,44,46,48,50,"
                       "52,54,56,58,60,62,64,66,68,70,72,74,76,78,80,82,84,86,88,90,92,94,96,98,"
                       "100,102,104,106,108,110,112,114,116,118,120,122,124,126,128,130,132,134,"
                       "136,138\n");
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "%d\n", i);
        put_node(2 * i, "cpulist", text);
        size_t len = 0;
        for (int j = 0; j < N; j++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%d", j ? " " : "",
                                    i == j ? 10 : 11 + (i * 7 + j * 3) % 200);
        snprintf(text + len, sizeof text - len, "\n");
        put_node(2 * i, "distance", text);
        put_meminfo(2 * i, 1024 * (uint64_t)(i + 1), 512);
    }
    nm_topology_load(&t, gen_root);
    check_consistent(&t, "70 nodes");
    CHECK(!t.fallback && t.node_count == NM_MAX_NODES, "70 nodes: %d kept", t.node_count);
    CHECK(t.cpu_limit == NM_MAX_NODES, "70 nodes: cpu_limit %d", t.cpu_limit);
    for (int i = 0; i < NM_MAX_NODES; i++) {
        CHECK(t.node_id[i] == 2 * i && t.node_of_cpu[i] == i && t.cpu_count[i] == 1, "in %s",
              __func__);
        CHECK(t.mem_total[i] == 1024 * 1024 * (uint64_t)(i + 1), "in %s", __func__);
        for (int j = 0; j < NM_MAX_NODES; j++)
            CHECK(t.distance[i][j] == (i == j ? 10 : 11 + (i * 7 + j * 3) % 200),
                  "70 nodes: distance[%d][%d] = %d", i, j, t.distance[i][j]);
    }
    for (int i = NM_MAX_NODES; i < N; i++)
        CHECK(nm_topology_index(&t, 2 * i) == -1 && t.node_of_cpu[i] == -1, "in %s", __func__);
}

static void test_generated_good(void)
{
    /* A listed node without a directory is skipped; distance columns still
     * follow the online list. */
    gen_reset();
    put("node/online", "0-2\n");
    put_node(0, "cpulist", "0-1\n");
    put_node(2, "cpulist", "2-3\n");
    put_node(0, "distance", "10 15 25\n");
    put_node(2, "distance", "26 16 11\n");
    nm_topology_load(&t, gen_root);
    check_consistent(&t, "node 1 missing");
    CHECK(!t.fallback && t.node_count == 2 && t.node_id[1] == 2, "in %s", __func__);
    CHECK(t.distance[0][0] == 10 && t.distance[0][1] == 25 && t.distance[1][0] == 26 &&
              t.distance[1][1] == 11,
          "in %s", __func__);

    /* CPUs at NM_MAX_CPUS and beyond are ignored. */
    gen_two_nodes();
    put_node(1, "cpulist", "4-7,4095-4100\n");
    nm_topology_load(&t, gen_root);
    check_consistent(&t, "huge CPU numbers");
    CHECK(!t.fallback && t.cpu_count[1] == 5 && t.node_of_cpu[4095] == 1 && t.cpu_limit == 4096,
          "in %s", __func__);

    /* A long cpulist (every other CPU up to 4094, about 10 KB) is read whole. */
    gen_two_nodes();
    char *list = long_cpulist(4, 4094);
    put_node(1, "cpulist", list);
    free(list);
    nm_topology_load(&t, gen_root);
    check_consistent(&t, "long cpulist");
    CHECK(!t.fallback && t.cpu_count[1] == 2046 && t.node_of_cpu[4094] == 1 &&
              t.node_of_cpu[4093] == -1 && t.cpu_limit == 4095,
          "long cpulist: %d CPUs", t.cpu_count[1]);

    /* One distance row missing: defaults everywhere. */
    gen_two_nodes();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/devices/system/node/node1/distance", gen_root);
    remove(path);
    nm_topology_load(&t, gen_root);
    check_consistent(&t, "distance row missing");
    CHECK(!t.fallback && t.distance[0][1] == 20 && t.distance[1][0] == 20 && t.distance[0][0] == 10,
          "in %s", __func__);

    /* meminfo garbage or without MemFree. */
    gen_two_nodes();
    put_node(0, "meminfo", "Node 0 MemTotal: lots\n");
    put_node(1, "meminfo", "Node 1 MemTotal:        2048 kB\n");
    nm_topology_load(&t, gen_root);
    check_consistent(&t, "meminfo odd");
    CHECK(!t.fallback && t.has_memory[0] && t.mem_total[0] == 0, "in %s", __func__);
    CHECK(t.has_memory[1] && t.mem_total[1] == 2048 * 1024 && t.mem_free[1] == 0, "in %s",
          __func__);

    /* refresh_free re-reads MemFree only. */
    gen_two_nodes();
    nm_topology_load(&t, gen_root);
    CHECK(t.mem_free[0] == 524288 * 1024ull && t.mem_free[1] == 262144 * 1024ull, "in %s",
          __func__);
    put_meminfo(0, 999, 1000); /* total changes too: must be left alone */
    put_meminfo(1, 1048576, 4096);
    nm_topology_refresh_free(&t, gen_root);
    CHECK(t.mem_total[0] == 1048576 * 1024ull && t.mem_free[0] == 1000 * 1024ull, "in %s",
          __func__);
    CHECK(t.mem_free[1] == 4096 * 1024ull, "in %s", __func__);
}

/* Each case spoils the good two-node tree and must give the fallback with
 * CPUs 0-7 (from cpu/online). */
static void test_generated_broken(void)
{
    static const struct {
        const char *file, *text;
    } cases[] = {
        {"node/node1/cpulist", "3-5\n"}, /* CPU 3 on two nodes */
        {"node/node1/cpulist", "4-\n"},
        {"node/node1/cpulist", "7-4\n"},
        {"node/node1/cpulist", "4,,5\n"},
        {"node/node1/cpulist", "4-7 junk\n"},
        {"node/node1/cpulist", "-1\n"},
        {"node/node1/cpulist", "4-99999999999999999999999\n"},
        {"node/node1/distance", "21 0\n"},
        {"node/node1/distance", "21 256\n"},
        {"node/node1/distance", "21 10 10\n"},
        {"node/node1/distance", "21 x\n"},
        {"node/node1/distance", "\n"},
        {"node/online", "0-1048576\n"}, /* rows too short */
        {"node/online", "0-1048577\n"}, /* beyond any list value */
        {"node/online", "\n"},
        {"node/online", "1-0\n"},
    };
    uint64_t cpus[NM_MAX_CPUS / 64];
    cpus_range(cpus, 0, 7);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s = \"%.20s\"", cases[i].file, cases[i].text);
        gen_two_nodes();
        put(cases[i].file, cases[i].text);
        nm_topology_load(&t, gen_root);
        check_fallback(what, cpus);
    }

    /* A cpulist too long to read whole (about 20 KB): never half-read. */
    gen_two_nodes();
    char *list = long_cpulist(4, 8190);
    put_node(1, "cpulist", list);
    free(list);
    nm_topology_load(&t, gen_root);
    check_fallback("20 KB cpulist", cpus);

    /* No CPU anywhere; no memory anywhere. */
    gen_two_nodes();
    put_node(0, "cpulist", "\n");
    put_node(1, "cpulist", "\n");
    nm_topology_load(&t, gen_root);
    check_fallback("no CPUs", cpus);
    gen_two_nodes();
    put_meminfo(0, 0, 0);
    put_meminfo(1, 0, 0);
    nm_topology_load(&t, gen_root);
    check_fallback("no memory", cpus);
    uint64_t before = t.mem_free[0];
    nm_topology_refresh_free(&t, gen_root);
    CHECK(t.fallback && t.mem_free[0] > 0 && t.mem_free[0] <= t.mem_total[0],
          "fallback refresh: free %llu (was %llu)", (unsigned long long)t.mem_free[0],
          (unsigned long long)before);
}

/* Random trees, some spoiled by random edits.  Unspoiled ones must come
 * out exactly as written, every one consistent. */
static void test_fuzz(void)
{
    static const char junk[] = "0123456789-, \n\tx";
    srand(12345);
    int exact = 0;
    for (int round = 0; round < 300; round++) {
        gen_reset();
        int count = 1 + rand() % 5, ids[5], id = rand() % 3;
        char online[128] = "", text[256];
        for (int i = 0; i < count; i++) {
            ids[i] = id;
            size_t len = strlen(online);
            snprintf(online + len, sizeof online - len, "%s%d", i ? "," : "", id);
            id += 1 + rand() % 4;
        }
        bool spoil = rand() % 2;
        int spoiled_node = rand() % count, spoiled_file = rand() % 4;
        for (int i = 0; i < count; i++) {
            char cpulist[64], distance[64] = "";
            snprintf(cpulist, sizeof cpulist, "%d-%d,%d", 4 * i, 4 * i + 2, 100 + i);
            for (int j = 0; j < count; j++) {
                size_t len = strlen(distance);
                snprintf(distance + len, sizeof distance - len, "%s%d", j ? " " : "",
                         i == j ? 10 : 20 + i + j);
            }
            char *files[3] = {cpulist, distance, NULL};
            if (spoil && i == spoiled_node && spoiled_file < 2) {
                char *s = files[spoiled_file];
                size_t len = strlen(s);
                if (rand() % 2)
                    s[rand() % len] = junk[rand() % (sizeof junk - 1)];
                else
                    s[rand() % (len + 1)] = '\0';
            }
            snprintf(text, sizeof text, "%s\n", cpulist);
            put_node(ids[i], "cpulist", text);
            snprintf(text, sizeof text, "%s\n", distance);
            put_node(ids[i], "distance", text);
            put_meminfo(ids[i], 4096 * (uint64_t)(i + 1), 1024);
            if (spoil && i == spoiled_node && spoiled_file == 2)
                put_node(ids[i], "meminfo", "Node 9 MemTotal:  1x kB\nMemFree: -3 kB\n");
        }
        if (spoil && spoiled_file == 3) online[rand() % (strlen(online) + 1)] = junk[rand() % 12];
        snprintf(text, sizeof text, "%s\n", online);
        put("node/online", text);

        nm_topology_load(&t, gen_root);
        char what[64];
        snprintf(what, sizeof what, "fuzz round %d", round);
        check_consistent(&t, what);
        if (spoil) continue;
        exact++;
        CHECK(!t.fallback && t.node_count == count, "%s: %d nodes", what, t.node_count);
        for (int i = 0; i < count && i < t.node_count; i++) {
            CHECK(t.node_id[i] == ids[i] && t.cpu_count[i] == 4, "%s: node %d", what, i);
            CHECK(t.node_of_cpu[4 * i + 1] == i && t.node_of_cpu[100 + i] == i &&
                      t.node_of_cpu[4 * i + 3] == -1,
                  "%s: CPUs of node %d", what, i);
            CHECK(t.mem_total[i] == 4096 * 1024 * (uint64_t)(i + 1), "%s: memory", what);
            for (int j = 0; j < count && j < t.node_count; j++)
                CHECK(t.distance[i][j] == (i == j ? 10 : 20 + i + j), "%s: distance", what);
        }
    }
    CHECK(exact > 100, "only %d unspoiled rounds", exact);
}

/* ---- the running machine ----------------------------------------------------- */

/* Parse a list such as "0-3,8" with stdio-free but independent code. */
static int parse_list_simple(const char *s, uint64_t *set, int limit)
{
    int n = 0;
    while (*s && *s != '\n') {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s) return -1;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            s = end;
        }
        for (long i = a; i <= b; i++) {
            if (i < limit) set[i / 64] |= 1ull << (i % 64);
            n++;
        }
        if (*s == ',') s++;
    }
    return n;
}

/* Compare with `numactl --hardware`: node list, CPUs, sizes, distances. */
static void compare_numactl(void)
{
    FILE *p = popen("numactl --hardware 2>/dev/null", "r");
    char line[4096];
    int nodes = -1, rows = 0, header[NM_MAX_NODES], columns = 0;
    bool in_distances = false;
    if (!p) return;
    while (fgets(line, sizeof line, p)) {
        int id, n = 0;
        long long mb;
        if (in_distances && strncmp(line, "node ", 5) == 0) {
            for (char *s = line + 5, *end; columns < NM_MAX_NODES; s = end) {
                long v = strtol(s, &end, 10);
                if (end == s) break;
                header[columns++] = (int)v;
            }
        } else if (in_distances && sscanf(line, " %d:%n", &id, &n) == 1 && n > 0) {
            int row = nm_topology_index(&t, id);
            int c = 0;
            for (char *s = line + n, *end; c < columns; s = end, c++) {
                long v = strtol(s, &end, 10);
                if (end == s) break;
                int col = nm_topology_index(&t, header[c]);
                CHECK(row >= 0 && col >= 0 && t.distance[row][col] == v,
                      "numactl: distance %d -> %d is %ld; we say %d", id, header[c], v,
                      row >= 0 && col >= 0 ? t.distance[row][col] : -1);
            }
            CHECK(c == columns, "numactl distance row for node %d", id);
            rows++;
        } else if (strncmp(line, "node distances:", 15) == 0) {
            in_distances = true;
        } else if (sscanf(line, "available: %d nodes", &n) == 1) {
            nodes = n;
        } else if (sscanf(line, "node %d cpus:%n", &id, &n) == 1 && n > 0) {
            int index = nm_topology_index(&t, id);
            CHECK(index >= 0, "numactl node %d unknown", id);
            if (index < 0) continue;
            int expected = 0;
            for (char *s = line + n, *end;; s = end) {
                long cpu = strtol(s, &end, 10);
                if (end == s) break;
                expected++;
                CHECK(cpu < NM_MAX_CPUS && t.node_of_cpu[cpu] == index,
                      "numactl: CPU %ld on node %d; we say index %d", cpu, id,
                      cpu < NM_MAX_CPUS ? t.node_of_cpu[cpu] : -2);
            }
            CHECK(t.cpu_count[index] == expected, "numactl: node %d has %d CPUs; we say %d", id,
                  expected, t.cpu_count[index]);
        } else if (sscanf(line, "node %d size: %lld MB", &id, &mb) == 2) {
            int index = nm_topology_index(&t, id);
            CHECK(index >= 0 && (long long)(t.mem_total[index] >> 20) == mb,
                  "numactl: node %d size %lld MB; we say %llu", id, mb,
                  index >= 0 ? (unsigned long long)(t.mem_total[index] >> 20) : 0ull);
        }
    }
    int status = pclose(p);
    if (nodes < 0 && status != 0) {
        printf("note: numactl --hardware did not run; /sys compared with /proc only\n");
        return;
    }
    CHECK(nodes == t.node_count, "numactl: %d nodes; we say %d", nodes, t.node_count);
    CHECK(rows == t.node_count && columns == t.node_count, "numactl distance table %dx%d", rows,
          columns);
}

/* Masks in proc-self-status: what is allowed, and which masks mean no
 * limit (unreadable, or allowing none of the nodes with memory). */
static void test_generated_cpusets(void)
{
    static const struct {
        const char *status;     /* NULL: no file */
        bool allowed0, allowed1;
        int home0, home1;
    } cases[] = {
        { NULL, true, true, 0, 1 },
        { "Name:\tx\nMems_allowed:\t00000002\nMems_allowed_list:\t1\nvoluntary_ctxt_switches:\t3\n",
          false, true, 1, 1 },
        { "Mems_allowed_list:\t0\n", true, false, 0, 0 },   /* first line, no newline before */
        { "Mems_allowed_list:\t0-1\n", true, true, 0, 1 },
        { "Mems_allowed_list:\t1,5-7\n", false, true, 1, 1 },  /* unknown ids ignored */
        { "Mems_allowed_list:\t5-7\n", true, true, 0, 1 },     /* none of ours: no limit */
        { "Mems_allowed_list:\t\n", true, true, 0, 1 },        /* empty: no limit */
        { "Mems_allowed_list:\tzero\n", true, true, 0, 1 },    /* garbage: no limit */
        { "Name:\tx\n", true, true, 0, 1 },                     /* no such line */
        { "XMems_allowed_list:\t1\n", true, true, 0, 1 },       /* another key */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gen_two_nodes();
        if (cases[c].status) put_status(cases[c].status);
        nm_topology_load(&t, gen_root);
        const char *what = cases[c].status ? cases[c].status : "(no file)";
        check_consistent(&t, what);
        CHECK(!t.fallback && t.node_count == 2, "%s: fallback", what);
        CHECK(t.mem_allowed[0] == cases[c].allowed0 && t.mem_allowed[1] == cases[c].allowed1 &&
                  t.home[0] == cases[c].home0 && t.home[1] == cases[c].home1 &&
                  t.mems_limited == !(cases[c].allowed0 && cases[c].allowed1),
              "%s: allowed %d %d, homes %d %d, limited %d", what, t.mem_allowed[0],
              t.mem_allowed[1], t.home[0], t.home[1], t.mems_limited);
    }
    /* A node without memory is never usable; its CPUs get the nearest
     * allowed node, not a nearer one outside the cpuset. */
    gen_reset();
    put("node/online", "0-2\n");
    put_node(0, "cpulist", "0-3\n");
    put_node(1, "cpulist", "4-7\n");
    put_node(2, "cpulist", "8-9\n");
    put_node(0, "distance", "10 12 30\n");
    put_node(1, "distance", "12 10 20\n");
    put_node(2, "distance", "30 20 10\n");
    put_meminfo(0, 1048576, 524288);
    put_meminfo(1, 0, 0);
    put_meminfo(2, 1048576, 524288);
    put_status("Mems_allowed_list:\t2\n");
    nm_topology_load(&t, gen_root);
    check_consistent(&t, "memoryless node in a cpuset");
    CHECK(t.home[0] == 2 && t.home[1] == 2 && t.home[2] == 2 && t.mems_limited,
          "memoryless node in a cpuset: homes %d %d %d", t.home[0], t.home[1], t.home[2]);
    put_status("Mems_allowed_list:\t0,2\n");
    nm_topology_load(&t, gen_root);
    CHECK(t.home[0] == 0 && t.home[1] == 0 && t.home[2] == 2 && !t.mems_limited,
          "memoryless node: homes %d %d %d", t.home[0], t.home[1], t.home[2]);
    /* The fallback (unusable tree) has no limit. */
    put("node/online", "garbage\n");
    nm_topology_load(&t, gen_root);
    CHECK(t.fallback && t.mem_allowed[0] && t.home[0] == 0 && !t.mems_limited,
          "fallback: allowed %d home %d", t.mem_allowed[0], t.home[0]);
}

static void test_real_sysfs(void)
{
    nm_topology_load(&t, NULL);
    check_consistent(&t, "/sys");
    FILE *f = fopen("/sys/devices/system/node/online", "r");
    char line[4096];
    if (f && fgets(line, sizeof line, f)) {
        uint64_t ids[NM_MAX_NODE_ID / 64] = {0};
        int listed = parse_list_simple(line, ids, NM_MAX_NODE_ID);
        CHECK(!t.fallback, "/sys has a node list but gave the fallback");
        CHECK(t.node_count == (listed < NM_MAX_NODES ? listed : NM_MAX_NODES),
              "%d nodes, %d online", t.node_count, listed);
        for (int id = 0, i = 0; id < NM_MAX_NODE_ID && i < t.node_count; id++)
            if ((ids[id / 64] >> (id % 64)) & 1)
                CHECK(t.node_id[i++] == id, "/sys: node %d: id %d, online says %d", i - 1,
                      t.node_id[i - 1], id);
    }
    if (f) fclose(f);

    /* Every online CPU sits on a node, and every CPU we may run on. */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int mapped = 0;
    for (int i = 0; i < t.node_count; i++) mapped += t.cpu_count[i];
    CHECK(mapped == online, "%d CPUs on nodes, sysconf says %ld online", mapped, online);
    uint64_t allowed[NM_MAX_CPUS / 64];
    cpus_allowed(allowed);
    for (int cpu = 0; cpu < NM_MAX_CPUS; cpu++)
        if ((allowed[cpu / 64] >> (cpu % 64)) & 1)
            CHECK(t.node_of_cpu[cpu] >= 0, "allowed CPU %d has no node", cpu);

    /* The nodes this process may allocate on have memory. */
    f = fopen("/proc/self/status", "r");
    REQUIRE(f != NULL, "/proc/self/status: %s", strerror(errno));
    bool seen = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Mems_allowed_list:", 18) != 0) continue;
        uint64_t mems[NM_MAX_NODE_ID / 64] = {0};
        seen = parse_list_simple(line + 18 + strspn(line + 18, " \t"), mems, NM_MAX_NODE_ID) > 0;
        for (int id = 0; id < NM_MAX_NODE_ID; id++) {
            if (!((mems[id / 64] >> (id % 64)) & 1)) continue;
            int index = nm_topology_index(&t, id);
            CHECK(index >= 0 && t.has_memory[index], "allowed memory node %d: index %d", id, index);
        }
        /* The topology's allowed nodes are the kernel's (it asks by syscall). */
        for (int i = 0; i < t.node_count; i++) {
            int id = t.node_id[i];
            bool listed = (mems[id / 64] >> (id % 64)) & 1;
            if (t.has_memory[i])
                CHECK(t.mem_allowed[i] == listed, "node %d: allowed %d, Mems_allowed_list %d", id,
                      t.mem_allowed[i], listed);
            CHECK(nm_topology_usable(&t, t.home[i]), "node %d: home %d not usable", id, t.home[i]);
        }
    }
    fclose(f);
    CHECK(seen, "no Mems_allowed_list in /proc/self/status");
    compare_numactl();

    struct nm_topology *copy = malloc(sizeof *copy);
    REQUIRE(copy != NULL, "out of memory");
    nm_topology_load(copy, "/sys");
    CHECK(copy->node_count == t.node_count && copy->cpu_limit == t.cpu_limit &&
              memcmp(copy->node_of_cpu, t.node_of_cpu, sizeof t.node_of_cpu) == 0 &&
              memcmp(copy->distance, t.distance, sizeof t.distance) == 0,
          "load(NULL) and load(\"/sys\") differ");
    free(copy);
}

/* rseq is expected when glibc registered it and the kernel says it fills
 * node_id (AT_RSEQ_FEATURE_SIZE >= 24). */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

static int current_agrees_on_cpu(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) return 0;
    int agreed = 0;
    for (int i = 0; i < 2000; i++) {
        unsigned got_cpu, node;
        int index = nm_topology_current_node();
        int rc = getcpu(&got_cpu, &node);
        REQUIRE(rc == 0, "getcpu: %s", strerror(errno));
        CHECK(got_cpu == (unsigned)cpu, "pinned to %d, getcpu says %u", cpu, got_cpu);
        CHECK(index >= 0 && index < nm_topo.node_count && nm_topo.node_id[index] == (int)node,
              "CPU %d: current node index %d (id %d), getcpu node %u", cpu, index,
              index >= 0 && index < nm_topo.node_count ? nm_topo.node_id[index] : -1, node);
        CHECK(nm_topo.node_of_cpu[cpu] == index, "CPU %d: node_of_cpu %d, current %d", cpu,
              nm_topo.node_of_cpu[cpu], index);
        agreed++;
    }
    return agreed;
}

static void *thread_main(void *arg)
{
    (void)arg;
    uint64_t allowed[NM_MAX_CPUS / 64];
    cpus_allowed(allowed);
    for (int cpu = 0; cpu < NM_MAX_CPUS; cpu++)
        if ((allowed[cpu / 64] >> (cpu % 64)) & 1) current_agrees_on_cpu(cpu);
    return NULL;
}

static void test_current_node(void)
{
    nm_topology_init(NULL);
    bool expect_rseq =
        &__rseq_size != NULL && __rseq_size > 0 && getauxval(27 /* AT_RSEQ_FEATURE_SIZE */) >= 24;
#if !defined(__x86_64__) && !defined(__aarch64__)
    expect_rseq = false;
#endif
    CHECK(nm_topology_uses_rseq() == expect_rseq, "uses rseq: %d, expected %d",
          nm_topology_uses_rseq(), expect_rseq);
    printf("current node: %s\n", nm_topology_uses_rseq() ? "rseq node_id" : "getcpu");

    uint64_t allowed[NM_MAX_CPUS / 64];
    cpus_allowed(allowed);
    int checked = 0;
    for (int cpu = 0; cpu < NM_MAX_CPUS; cpu++)
        if ((allowed[cpu / 64] >> (cpu % 64)) & 1) checked += current_agrees_on_cpu(cpu);
    CHECK(checked >= 2000, "current node compared on %d calls", checked);

    /* Threads have their own rseq area. */
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        int rc = pthread_create(&threads[i], NULL, thread_main, NULL);
        REQUIRE(rc == 0, "pthread_create: %s", strerror(rc));
    }
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);

    cpu_set_t restore;
    CPU_ZERO(&restore);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if ((allowed[cpu / 64] >> (cpu % 64)) & 1) CPU_SET(cpu, &restore);
    sched_setaffinity(0, sizeof restore, &restore);
}

int main(void)
{
    find_repo();
    test_one_node();
    test_two_node();
    test_four_node();
    test_four_node_cpuset();
    test_eight_node();
    test_sparse_cxl();
    test_optional_files_missing();
    test_no_online_file();
    test_ignored_huge_id();
    test_broken_trees();
    test_too_many_nodes();
    test_generated_good();
    test_generated_broken();
    test_generated_cpusets();
    test_fuzz();
    test_real_sysfs();
    test_current_node();
    if (gen_root[0]) nftw(gen_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return nm_test_done();
}
