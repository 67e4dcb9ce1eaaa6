/* tier.c — nm_node_tier and nm_node_perf: on this machine (checked against
 * /sys read independently, with opendir and stdio), on the recorded tree
 * tests/sysfs/tiered (two DRAM nodes in tier 4, a CXL node in tier 22,
 * HMAT data for each), on a tree without tiers or HMAT (two-node), and on
 * an odd tree written here at run time (the old "nodes" file name, names
 * that are not tiers, garbage, partial HMAT data).  The allocator reads its
 * topology once, so each tree runs in a child started with
 * NUMAMALLOC_SYSFS_ROOT.
 *
 *   tier                  everything (the trees are found under $NM_ROOT)
 *   tier --this-machine   this machine only: for a guest of tests/vm/,
 *                         which has no copy of tests/sysfs */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"

static void tier_is(int node, int tier)
{
    errno = 0;
    int got = nm_node_tier(node);
    if (tier >= 0) CHECK(got == tier, "node %d: tier %d, expected %d (errno %d)", node, got, tier, errno);
    else CHECK(got == -1 && errno == -tier, "node %d: tier %d errno %d, expected -1 errno %d", node,
               got, errno, -tier);
}

static void perf_is(int node, uint64_t rbw, uint64_t wbw, uint64_t rlat, uint64_t wlat)
{
    struct nm_node_perf p;
    memset(&p, 0xff, sizeof p);
    int r = nm_node_perf(node, &p);
    CHECK(r == 0, "node %d: nm_node_perf failed: %s", node, strerror(errno));
    if (r != 0) return;
    CHECK(p.read_bandwidth == rbw && p.write_bandwidth == wbw && p.read_latency == rlat &&
          p.write_latency == wlat, "node %d: %llu %llu %llu %llu, expected %llu %llu %llu %llu", node,
          (unsigned long long)p.read_bandwidth, (unsigned long long)p.write_bandwidth,
          (unsigned long long)p.read_latency, (unsigned long long)p.write_latency,
          (unsigned long long)rbw, (unsigned long long)wbw, (unsigned long long)rlat,
          (unsigned long long)wlat);
}

static void perf_fails(int node, int error)
{
    struct nm_node_perf p;
    errno = 0;
    CHECK(nm_node_perf(node, &p) == -1 && errno == error, "node %d: errno %d, expected %d", node, errno,
          error);
}

/* ---- recorded and generated trees ------------------------------------------------ */

static void tiered(void)
{
    int ids[8];
    REQUIRE(nm_node_ids(ids, 8) == 3 && ids[0] == 0 && ids[1] == 1 && ids[2] == 2);
    CHECK(nm_node_has_cpus(2) == 0);
    tier_is(0, 4);
    tier_is(1, 4);
    tier_is(2, 22);
    tier_is(3, -EINVAL);
    tier_is(-1, -EINVAL);
    perf_is(0, 115200, 98304, 92, 95);
    perf_is(1, 115200, 98304, 92, 95);
    perf_is(2, 32768, 28672, 271, 298);
    perf_fails(3, EINVAL);
    CHECK(nm_node_perf(0, NULL) == 0);
}

/* No memory_tiering directory, no access0: ENOENT for every node. */
static void two_node(void)
{
    REQUIRE(nm_node_count() == 2);
    tier_is(0, -ENOENT);
    tier_is(1, -ENOENT);
    perf_fails(0, ENOENT);
    perf_fails(1, ENOENT);
    tier_is(2, -EINVAL);
}

static void odd(void)
{
    REQUIRE(nm_node_count() == 3);
    tier_is(0, 3);          /* "nodes", as Linux 6.1 release candidates named the file */
    tier_is(1, -ENOENT);    /* in no tier (the tier that names it has a garbage list) */
    tier_is(2, 1);          /* the lowest of the two tiers listing it */
    perf_is(0, 5000, 0, 80, 0);
    perf_fails(1, ENOENT);  /* access0 exists, but holds no number */
    perf_fails(2, ENOENT);  /* no access0 at all */
}

static void put(const char *root, const char *path, const char *content)
{
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", root, path);
    for (char *slash = strchr(full + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(full, 0755);
        *slash = '/';
    }
    FILE *f = fopen(full, "w");
    REQUIRE(f, "%s", full);
    fputs(content, f);
    fclose(f);
}

static void write_odd_tree(const char *root)
{
    static const char *const files[][2] = {
        { "devices/system/node/online", "0-2\n" },
        { "devices/system/node/node0/cpulist", "0-1\n" },
        { "devices/system/node/node0/distance", "10 20 20\n" },
        { "devices/system/node/node0/meminfo", "Node 0 MemTotal:       1048576 kB\n" },
        { "devices/system/node/node1/cpulist", "2-3\n" },
        { "devices/system/node/node1/distance", "20 10 20\n" },
        { "devices/system/node/node1/meminfo", "Node 1 MemTotal:       1048576 kB\n" },
        { "devices/system/node/node2/cpulist", "\n" },
        { "devices/system/node/node2/distance", "20 20 10\n" },
        { "devices/system/node/node2/meminfo", "Node 2 MemTotal:       1048576 kB\n" },
        { "devices/system/cpu/online", "0-3\n" },
        { "devices/virtual/memory_tiering/memory_tier3/nodes", "0\n" },
        { "devices/virtual/memory_tiering/memory_tier9/nodelist", "1,zz\n" },
        { "devices/virtual/memory_tiering/memory_tier5/nodelist", "2\n" },
        { "devices/virtual/memory_tiering/memory_tier1/nodelist", "2\n" },
        { "devices/virtual/memory_tiering/memory_tierX/nodelist", "0-2\n" },
        { "devices/virtual/memory_tiering/memory_tier0x/nodelist", "0-2\n" },
        { "devices/virtual/memory_tiering/memory_tier2/other", "0-2\n" },
        { "devices/virtual/memory_tiering/uevent", "" },
        { "devices/system/node/node0/access0/initiators/read_bandwidth", "5000\n" },
        { "devices/system/node/node0/access0/initiators/read_latency", "80\n" },
        { "devices/system/node/node0/access0/initiators/write_bandwidth", "12abc\n" },
        { "devices/system/node/node1/access0/initiators/read_latency", "\n" },
        { "devices/system/node/node1/access0/initiators/write_latency", "-3\n" },
        { "devices/system/node/node1/access0/initiators/read_bandwidth", "99999999999999999999999\n" },
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) put(root, files[i][0], files[i][1]);
}

/* ---- this machine ------------------------------------------------------------------ */

/* The tier listing `node`, read with opendir and stdio; -1 if none, -2 if
 * there is no memory_tiering directory. */
static int expected_tier(int node)
{
    DIR *d = opendir("/sys/devices/virtual/memory_tiering");
    if (!d) return -2;
    int found = -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int n;
        char rest;
        if (sscanf(e->d_name, "memory_tier%d%c", &n, &rest) != 1) continue;
        char path[512], list[4096] = "";
        snprintf(path, sizeof path, "/sys/devices/virtual/memory_tiering/%s/nodelist", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (!fgets(list, sizeof list, f)) list[0] = '\0';
        fclose(f);
        /* "0-1,4": ranges separated by commas */
        for (char *s = list; *s && *s != '\n';) {
            int a = (int)strtol(s, &s, 10), b = a;
            if (*s == '-') b = (int)strtol(s + 1, &s, 10);
            if (node >= a && node <= b && (found < 0 || n < found)) found = n;
            if (*s == ',') s++;
            else break;
        }
    }
    closedir(d);
    return found;
}

static void this_machine(void)
{
    int ids[64];
    int count = nm_node_ids(ids, 64);
    for (int i = 0; i < count && i < 64; i++) {
        int want = expected_tier(ids[i]);
        if (want >= 0) tier_is(ids[i], want);
        else tier_is(ids[i], -ENOENT);
        printf("node %d: tier %d%s\n", ids[i], nm_node_tier(ids[i]),
               want == -2 ? " (no memory_tiering directory)" : "");

        static const char *const names[] = { "read_bandwidth", "write_bandwidth", "read_latency",
                                             "write_latency" };
        uint64_t v[4] = { 0, 0, 0, 0 };
        int known = 0;
        for (int k = 0; k < 4; k++) {
            char path[256];
            snprintf(path, sizeof path, "/sys/devices/system/node/node%d/access0/initiators/%s", ids[i],
                     names[k]);
            FILE *f = fopen(path, "r");
            unsigned long long x;
            if (f && fscanf(f, "%llu", &x) == 1) { v[k] = x; known++; }
            if (f) fclose(f);
        }
        if (known) perf_is(ids[i], v[0], v[1], v[2], v[3]);
        else perf_fails(ids[i], ENOENT);
        printf("node %d: HMAT %s\n", ids[i], known ? "data checked" : "none (ENOENT checked)");
    }
    int missing = 0;
    while (nm_node_distance(missing, missing) > 0) missing++;
    tier_is(missing, -EINVAL);
    perf_fails(missing, EINVAL);
}

/* ---- driver ------------------------------------------------------------------------- */

static const struct {
    const char *tree;
    void (*check)(void);
} trees[] = {
    { "tiered", tiered },
    { "two-node", two_node },
    { "odd", odd },
};

static void run_tree(const char *argv0, size_t i, const char *dir)
{
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        setenv("NUMAMALLOC_SYSFS_ROOT", dir, 1);
        execl("/proc/self/exe", argv0, "--tree", trees[i].tree, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tree %s: status %#x", trees[i].tree, status);
    printf("tree %s: checked\n", trees[i].tree);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--tree") == 0) {
        for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++)
            if (strcmp(argv[2], trees[i].tree) == 0) trees[i].check();
        return nm_test_done();
    }
    this_machine();
    if (argc == 2 && strcmp(argv[1], "--this-machine") == 0) return nm_test_done();
    const char *root = getenv("NM_ROOT") ? getenv("NM_ROOT") : ".";
    char odd_dir[] = "/tmp/nm-tier-XXXXXX";
    REQUIRE(mkdtemp(odd_dir));
    write_odd_tree(odd_dir);
    for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++) {
        char dir[4096];
        if (strcmp(trees[i].tree, "odd") == 0) snprintf(dir, sizeof dir, "%s", odd_dir);
        else snprintf(dir, sizeof dir, "%s/tests/sysfs/%s", root, trees[i].tree);
        run_tree(argv[0], i, dir);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", odd_dir);
    CHECK(system(cmd) == 0);
    return nm_test_done();
}
