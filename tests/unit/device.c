/* device.c — memory near a device and memory kinds: nm_node_of_device for
 * every naming form and every error, nm_malloc_near, and the policy forms
 * near:DEVICE and hbm, highest-bandwidth, lowest-latency, highest-capacity,
 * cxl, memory-only, dram.
 *
 * On this machine every network and block device of /sys is looked up and
 * compared with a walk up its sysfs directory made here independently
 * (realpath and stdio); every kind that parses gets a 1 MiB region bound
 * with it, populated, and its pages must be on the kind's nodes
 * (move_pages through nm_where: in the guests of tests/vm a real check of
 * bind:cxl and bind:dram); the kinds' nodes are compared with nm_node_*
 * figures, and where the firmware gives HMAT figures (tests/vm/kinds.sh)
 * hbm, highest-bandwidth and lowest-latency with the rule applied here to
 * the figures read from sysfs.  Then, each in a child started with NUMAMALLOC_SYSFS_ROOT and
 * pinned to node 0, the recorded trees of tests/sysfs:
 *   two-node-devices  a NIC (eth0, PCI 0000:17:00.0, node 0), an NVMe drive
 *                     on node 1 (nvme0n1 and partition nvme0n1p1 under
 *                     controller nvme0, PCI 0000:b3:00.0), a GPU on node 1
 *                     (0000:3b:00.0, card0, char 226:0), a NIC without
 *                     affinity (eth1, 0000:00:1f.6, numa_node -1), lo and
 *                     /dev/null (1:3) under devices/virtual;
 *   tiered            HMAT and tiers: DRAM nodes 0-1, CXL node 2;
 *   two-node, sparse-cxl: no HMAT, no tiers;
 * and two trees written at run time from tiered: tiers without HMAT in a
 * cpuset of nodes 1-2 (the fallback rules decide), and tiered in a cpuset
 * of nodes 0-1 (cxl: not allowed).
 *
 *   device                  everything (the trees are found under $NM_ROOT)
 *   device --this-machine   this machine only (tests/vm/api.sh's guests) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"

/* ---- helpers ------------------------------------------------------------------------ */

static void node_is(const char *dev, int node)
{
    errno = 0;
    int got = nm_node_of_device(dev);
    if (node >= 0) CHECK(got == node, "'%s': node %d (errno %d), expected %d", dev, got, errno, node);
    else CHECK(got == -1 && errno == -node, "'%s': node %d errno %d, expected -1 errno %d", dev, got,
               errno, -node);
}

/* Parse `text`; it must give `mode` and format back as `formatted`. */
static void parse_ok(const char *text, enum nm_policy_mode mode, const char *formatted)
{
    nm_policy p;
    char err[256] = "", back[256] = "";
    int r = nm_policy_parse(text, &p, err, sizeof err);
    CHECK(r == 0, "'%s' did not parse: %s", text, err);
    if (r != 0) return;
    nm_policy_format(&p, back, sizeof back);
    CHECK(p.mode == mode && strcmp(back, formatted) == 0, "'%s' is '%s' (mode %d), expected '%s'", text,
          back, (int)p.mode, formatted);
}

/* Parse `text`; it must fail with `error` and exactly `message`. */
static void parse_fails(const char *text, int error, const char *message)
{
    nm_policy p;
    char err[256] = "";
    errno = 0;
    int r = nm_policy_parse(text, &p, err, sizeof err);
    CHECK(r == -1 && errno == error, "'%s': r=%d errno=%d, expected errno %d (%s)", text, r, errno,
          error, err);
    CHECK(strcmp(err, message) == 0, "'%s': message '%s', expected '%s'", text, err, message);
}

/* Run the calling thread on a CPU of node `node` (the real node, which a
 * recorded tree takes as its own node of that id); false if none. */
static bool pin_to_node(int node)
{
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    for (int cpu = 0; cpu < cpus && cpu < CPU_SETSIZE; cpu++) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((size_t)cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) continue;
        unsigned c, n;
        if (getcpu(&c, &n) == 0 && (int)n == node) return true;
    }
    return false;
}

/* A device file made here with mknod (char or block, major:minor) in
 * `dir`; false (with the reason printed) where mknod is not allowed. */
static bool make_node(const char *dir, const char *name, mode_t type, unsigned maj, unsigned min,
                      char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    if (mknod(path, type | 0600, makedev(maj, min)) == 0) return true;
    printf("%s (%u:%u): not checked, mknod: %s\n", name, maj, min, strerror(errno));
    return false;
}

/* ---- the recorded tree with devices ---------------------------------------------------- */

static void two_node_devices(void)
{
    REQUIRE(nm_node_count() == 2);
    /* every naming form */
    node_is("eth0", 0);
    node_is("0000:17:00.0", 0);
    node_is("17:00.0", 0);
    node_is("nvme0n1", 1);
    node_is("nvme0n1p1", 1);        /* partition -> disk -> controller -> PCI function */
    node_is("nvme0", 1);
    node_is("0000:B3:00.0", 1);     /* upper case hex */
    node_is("0000:3b:00.0", 1);
    node_is("10000:01:00.0", 1);    /* a domain of 5 digits (Intel VMD) */
    node_is("card0", 1);
    /* no affinity */
    node_is("eth1", -ENXIO);        /* numa_node -1 */
    node_is("0000:00:1f.6", -ENXIO);
    node_is("lo", -ENXIO);          /* devices/virtual */
    node_is("0000:17:01.0", -ENXIO); /* numa_node 2000: its own answer, not its parent's node 0 */
    node_is("/dev/null", -ENXIO);   /* 1:3, devices/virtual/mem/null */
    /* no such device */
    node_is("ib0", -ENODEV);
    node_is("0000:99:00.0", -ENODEV);
    node_is("0000:17:00.8", -ENODEV);   /* not a PCI address (function 8): no such name */
    node_is("..", -ENODEV);
    node_is("net/eth0", -ENODEV);
    node_is("/no/such/file", -ENODEV);
    node_is("/proc/self/status", -ENODEV);  /* not a device file */
    node_is("", -EINVAL);
    node_is(NULL, -EINVAL);

    /* /dev paths: stat, then dev/char or dev/block of the tree */
    char dir[] = "/tmp/nm-device-XXXXXX", path[256];
    REQUIRE(mkdtemp(dir));
    if (make_node(dir, "card0", S_IFCHR, 226, 0, path, sizeof path)) node_is(path, 1);
    if (make_node(dir, "nvme0n1p1", S_IFBLK, 259, 1, path, sizeof path)) node_is(path, 1);
    if (make_node(dir, "unknown", S_IFCHR, 250, 7, path, sizeof path)) node_is(path, -ENODEV);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);

    /* policies */
    parse_ok("near:eth0", NM_POLICY_BIND, "bind:0");
    parse_ok("near:nvme0n1p1", NM_POLICY_BIND, "bind:1");
    parse_ok("near:0000:3b:00.0", NM_POLICY_BIND, "bind:1");
    parse_ok("bind:near:card0", NM_POLICY_BIND, "bind:1");
    parse_ok("preferred:near:nvme0n1", NM_POLICY_PREFERRED, "preferred:1");
    parse_ok("interleave:near:eth0", NM_POLICY_INTERLEAVE, "interleave:0");
    parse_fails("near:eth1", ENXIO, "device 'eth1' has no NUMA node (its numa_node is -1)");
    parse_fails("near:ib0", ENODEV,
                "no device 'ib0': expected a PCI address, network interface, block device or /dev path");
    parse_fails("near:", EINVAL, "near needs a device, e.g. 'near:eth0'");
    parse_fails("preferred:near:", EINVAL, "near needs a device, e.g. 'near:eth0'");

    /* nm_malloc_near: node 0 of the tree is this machine's node 0 */
    size_t size = 1 << 20;
    char *p = nm_malloc_near("eth0", size);
    REQUIRE(p, "nm_malloc_near(eth0): %s", strerror(errno));
    memset(p, 1, size);
    uint64_t counts[NM_NODE_ID_LIMIT] = {0};
    long pages = nm_where(p, size, counts, NM_NODE_ID_LIMIT);
    CHECK(pages == (long)(size / 4096) && counts[0] == (uint64_t)pages,
          "nm_malloc_near(eth0): %ld pages, %llu on node 0", pages, (unsigned long long)counts[0]);
    nm_free(p);
    static const struct {
        const char *dev;
        int error;
    } refused[] = { { "eth1", ENXIO }, { "lo", ENXIO }, { "ib0", ENODEV }, { "", EINVAL }, { NULL, EINVAL } };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        errno = 0;
        void *q = nm_malloc_near(refused[i].dev, 64);
        CHECK(q == NULL && errno == refused[i].error, "nm_malloc_near(%s): %p errno %d, expected %d",
              refused[i].dev ? refused[i].dev : "NULL", q, errno, refused[i].error);
    }
}

/* ---- kinds on recorded trees ------------------------------------------------------------- */

static void tiered(void)
{
    REQUIRE(nm_node_count() == 3);
    parse_ok("bind:hbm", NM_POLICY_BIND, "bind:0");   /* 115200 MB/s on 0 and 1: 0 is nearer */
    parse_ok("bind:highest-bandwidth", NM_POLICY_BIND, "bind:0");
    parse_ok("bind:lowest-latency", NM_POLICY_BIND, "bind:0");
    parse_ok("bind:highest-capacity", NM_POLICY_BIND, "bind:2");
    parse_ok("bind:cxl", NM_POLICY_BIND, "bind:2");
    parse_ok("bind:memory-only", NM_POLICY_BIND, "bind:2");
    parse_ok("bind:dram", NM_POLICY_BIND, "bind:0-1");
    parse_ok("interleave:dram", NM_POLICY_INTERLEAVE, "interleave:0-1");
    parse_ok("preferred:dram", NM_POLICY_PREFERRED, "preferred:0");
    parse_ok("preferred:highest-bandwidth", NM_POLICY_PREFERRED, "preferred:0");
    parse_ok("preferred-many:cxl", NM_POLICY_PREFERRED_MANY, "preferred-many:2");
    /* From node 1 the answers that depend on the caller change. */
    if (pin_to_node(1)) {
        parse_ok("bind:hbm", NM_POLICY_BIND, "bind:1");
        parse_ok("bind:lowest-latency", NM_POLICY_BIND, "bind:1");
        parse_ok("preferred:dram", NM_POLICY_PREFERRED, "preferred:1");
        parse_ok("bind:highest-capacity", NM_POLICY_BIND, "bind:2");
        printf("tiered: kinds from node 1 checked\n");
    } else {
        printf("tiered: kinds from node 1 not checked (this machine has no CPU on node 1)\n");
    }
}

/* No HMAT, no tiers: bandwidth and latency fall back to the nearest node. */
static void two_node(void)
{
    parse_ok("bind:hbm", NM_POLICY_BIND, "bind:0");
    parse_ok("bind:lowest-latency", NM_POLICY_BIND, "bind:0");
    parse_ok("bind:highest-capacity", NM_POLICY_BIND, "bind:1");   /* 66037016 kB > 65755700 kB */
    parse_ok("bind:dram", NM_POLICY_BIND, "bind:0-1");
    parse_fails("bind:cxl", ENODEV, "no node of kind cxl on this machine (nodes: 0-1)");
    parse_fails("interleave:memory-only", ENODEV,
                "no node of kind memory-only on this machine (nodes: 0-1)");
}

/* Ids 0, 2, 4: node 2 has CPUs but no memory, node 4 memory only. */
static void sparse_cxl(void)
{
    parse_ok("bind:dram", NM_POLICY_BIND, "bind:0");
    parse_ok("bind:cxl", NM_POLICY_BIND, "bind:4");
    parse_ok("bind:hbm", NM_POLICY_BIND, "bind:0");
    parse_ok("bind:highest-capacity", NM_POLICY_BIND, "bind:4");
}

/* tiered without HMAT, cpuset 1-2: node 1 (tier 4, distance 21 from 0)
 * against node 2 (tier 22, distance 14). */
static void tiers_cpuset(void)
{
    parse_ok("bind:highest-bandwidth", NM_POLICY_BIND, "bind:1");  /* the fastest tier */
    parse_ok("bind:lowest-latency", NM_POLICY_BIND, "bind:2");     /* the nearest */
    parse_ok("bind:dram", NM_POLICY_BIND, "bind:1");
    parse_ok("bind:cxl", NM_POLICY_BIND, "bind:2");
    parse_ok("bind:highest-capacity", NM_POLICY_BIND, "bind:2");
}

/* tiered with HMAT, cpuset 0-1. */
static void tiered_cpuset(void)
{
    parse_fails("bind:cxl", ENODEV, "no node of kind cxl is allowed in this cpuset (allowed: 0-1)");
    parse_ok("bind:highest-capacity", NM_POLICY_BIND, "bind:0-1");  /* equal sizes: both */
    parse_ok("bind:hbm", NM_POLICY_BIND, "bind:0");
}

/* ---- this machine ----------------------------------------------------------------------- */

/* The node of a sysfs device directory, found independently: numa_node of
 * it or of the nearest parent under /sys/devices; -ENXIO if none. */
static int expected_node(const char *dir)
{
    char real[PATH_MAX];
    if (!realpath(dir, real)) return -ENODEV;
    for (;;) {
        char file[PATH_MAX + 16];
        snprintf(file, sizeof file, "%s/numa_node", real);
        FILE *f = fopen(file, "r");
        int node = -1;
        if (f) {
            if (fscanf(f, "%d", &node) != 1) node = -1;
            fclose(f);
        }
        if (node >= 0) return node;
        if (strcmp(real, "/sys/devices") == 0) return -ENXIO;
        char *slash = strrchr(real, '/');
        if (!slash || slash == real) return -ENXIO;
        *slash = '\0';
    }
}

static int check_class(const char *class)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/sys/class/%s", class);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int checked = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int want = expected_node(path);
        node_is(e->d_name, want);
        printf("%s %s: %s %d\n", class, e->d_name, want >= 0 ? "node" : "errno", want >= 0 ? want : -want);
        checked++;
    }
    closedir(d);
    return checked;
}

/* Nodes with memory this process may use, as the library says them. */
static int usable_nodes(int *ids)
{
    nm_policy all;
    char err[256];
    REQUIRE(nm_policy_parse("bind:all", &all, err, sizeof err) == 0, "%s", err);
    int n = 0;
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++)
        if (nm_nodeset_has(&all.nodes, id)) ids[n++] = id;
    return n;
}

/* `kind` on this machine: its nodes must be those `belongs` accepts (of
 * the usable ones), and a populated region bound to it must have its pages
 * there (move_pages). */
static void kind_here(const char *kind, bool (*belongs)(int node, const int *ids, int n))
{
    int ids[NM_NODE_ID_LIMIT];
    int n = usable_nodes(ids);
    nm_nodeset want;
    nm_nodeset_clear(&want);
    for (int i = 0; i < n; i++)
        if (belongs(ids[i], ids, n)) nm_nodeset_add(&want, ids[i]);
    char text[64], err[256] = "";
    snprintf(text, sizeof text, "bind:%s", kind);
    nm_policy p;
    errno = 0;
    int r = nm_policy_parse(text, &p, err, sizeof err);
    if (nm_nodeset_count(&want) == 0) {
        CHECK(r == -1 && errno == ENODEV, "%s: parsed (r=%d errno=%d) on a machine without such a node",
              text, r, errno);
        CHECK(strncmp(err, "no node of kind ", 16) == 0, "%s: message '%s'", text, err);
        printf("%s: %s (checked)\n", text, err);
        return;
    }
    REQUIRE(r == 0, "%s: %s", text, err);
    CHECK(memcmp(&p.nodes, &want, sizeof want) == 0, "%s: not the nodes expected", text);
    size_t size = 1 << 20;
    nm_region *region = nm_region_map(size, &p, NM_PREFAULT_POPULATE, NM_REGION_NOHUGEPAGES);
    REQUIRE(region, "%s: nm_region_map: %s", text, strerror(errno));
    uint64_t counts[NM_NODE_ID_LIMIT] = {0};
    long pages = nm_where(nm_region_addr(region), size, counts, NM_NODE_ID_LIMIT);
    uint64_t inside = 0;
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++)
        if (nm_nodeset_has(&p.nodes, id)) inside += counts[id];
    CHECK(pages == (long)(size / 4096) && inside == (uint64_t)pages,
          "%s: %ld pages resident, %llu on its nodes", text, pages, (unsigned long long)inside);
    char back[256];
    nm_policy_format(&p, back, sizeof back);
    printf("%s = %s: %ld of %ld pages on its nodes (move_pages)\n", text, back, (long)inside, pages);
    nm_region_unmap(region);
}

static bool is_memory_only(int node, const int *ids, int n)
{
    (void)ids, (void)n;
    return nm_node_has_cpus(node) == 0;
}

static bool is_dram(int node, const int *ids, int n)
{
    (void)ids, (void)n;
    return nm_node_has_cpus(node) == 1;
}

/* HMAT figure `file` (read_bandwidth, read_latency) of a node, read here
 * with stdio; 0 when there is none. */
static unsigned long long hmat(int node, const char *file)
{
    char path[256];
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d/access0/initiators/%s", node, file);
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    if (f && fscanf(f, "%llu", &v) != 1) v = 0;
    if (f) fclose(f);
    return v;
}

static unsigned caller_node;   /* the node this thread is pinned to */

/* The rule with HMAT: the best figure (highest bandwidth or lowest
 * latency), then the smallest distance from the caller's node. */
static bool best_by_hmat(int node, const int *ids, int n, const char *file, bool highest)
{
    unsigned long long best = 0;
    for (int i = 0; i < n; i++) {
        unsigned long long v = hmat(ids[i], file);
        if (v && (!best || (highest ? v > best : v < best))) best = v;
    }
    int nearest = -1;
    for (int i = 0; i < n; i++) {
        int d = nm_node_distance((int)caller_node, ids[i]);
        if (hmat(ids[i], file) == best && (nearest < 0 || d < nearest)) nearest = d;
    }
    return hmat(node, file) == best && nm_node_distance((int)caller_node, node) == nearest;
}

static bool best_bandwidth(int node, const int *ids, int n)
{
    return best_by_hmat(node, ids, n, "read_bandwidth", true);
}

static bool best_latency(int node, const int *ids, int n)
{
    return best_by_hmat(node, ids, n, "read_latency", false);
}

static bool is_biggest(int node, const int *ids, int n)
{
    uint64_t mine = 0, most = 0;
    nm_node_memory(node, &mine, NULL);
    for (int i = 0; i < n; i++) {
        uint64_t total = 0;
        nm_node_memory(ids[i], &total, NULL);
        if (total > most) most = total;
    }
    return mine == most;
}

static void this_machine(void)
{
    int checked = check_class("net") + check_class("block");
    printf("%d network and block devices checked against /sys\n", checked);
    node_is("/dev/null", -ENXIO);       /* devices/virtual/mem/null */
    node_is("no-such-device-0", -ENODEV);
    node_is("/etc/passwd", -ENODEV);
    node_is("", -EINVAL);
    if (access("/sys/class/net/lo", F_OK) == 0) {
        parse_fails("near:lo", ENXIO, "device 'lo' has no NUMA node (its numa_node is -1)");
        errno = 0;
        CHECK(nm_malloc_near("lo", 100) == NULL && errno == ENXIO, "nm_malloc_near(lo): errno %d", errno);
    }
    errno = 0;
    CHECK(nm_malloc_near("no-such-device-0", 100) == NULL && errno == ENODEV);

    kind_here("cxl", is_memory_only);
    kind_here("memory-only", is_memory_only);
    kind_here("dram", is_dram);
    kind_here("highest-capacity", is_biggest);
    /* Bandwidth and latency: with HMAT, the rule checked against figures
     * read here (and the pages); without it, in one tier or none, the
     * caller's own node. */
    unsigned cpu, node;
    REQUIRE(getcpu(&cpu, &node) == 0);
    caller_node = node;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);   /* the caller's node stays */
    int ids[NM_NODE_ID_LIMIT];
    int n = usable_nodes(ids);
    bool has_hmat = false, one_tier = true, here_usable = false;
    for (int i = 0; i < n; i++) {
        struct nm_node_perf perf;
        has_hmat |= nm_node_perf(ids[i], &perf) == 0;
        one_tier &= nm_node_tier(ids[i]) == nm_node_tier(ids[0]);
        here_usable |= ids[i] == (int)node;
    }
    if (has_hmat) {
        /* The guests of tests/vm/kinds.sh: HBM-like node 4 has the most
         * bandwidth, each node's own DRAM the least latency. */
        kind_here("hbm", best_bandwidth);
        kind_here("highest-bandwidth", best_bandwidth);
        kind_here("lowest-latency", best_latency);
        return;
    }
    static const char *const ranked[] = { "hbm", "highest-bandwidth", "lowest-latency" };
    for (size_t i = 0; i < sizeof ranked / sizeof ranked[0]; i++) {
        char text[64], err[256] = "", want[32];
        snprintf(text, sizeof text, "bind:%s", ranked[i]);
        nm_policy p;
        int r = nm_policy_parse(text, &p, err, sizeof err);
        CHECK(r == 0 && nm_nodeset_count(&p.nodes) >= 1, "%s: %s", text, err);
        /* Without HMAT, in one tier (or none): the caller's own node. */
        if (here_usable && (one_tier || i == 2)) {
            snprintf(want, sizeof want, "bind:%u", node);
            parse_ok(text, NM_POLICY_BIND, want);
            printf("%s = %s: the caller's node (no HMAT%s)\n", text, want, one_tier ? ", one tier" : "");
        }
    }
}

/* ---- driver ------------------------------------------------------------------------------ */

static const struct {
    const char *tree;
    void (*check)(void);
    const char *mems_allowed;   /* run-time copy of tiered with this cpuset; NULL: recorded */
    bool without_hmat;
} trees[] = {
    { "two-node-devices", two_node_devices, NULL, false },
    { "tiered", tiered, NULL, false },
    { "two-node", two_node, NULL, false },
    { "sparse-cxl", sparse_cxl, NULL, false },
    { "tiers-cpuset", tiers_cpuset, "1-2", true },
    { "tiered-cpuset", tiered_cpuset, "0-1", false },
};

/* A copy of tests/sysfs/tiered in `dir` with a cpuset, and without HMAT. */
static void write_tree(const char *root, const char *dir, const char *mems, bool without_hmat)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cp -r '%s/tests/sysfs/tiered/.' '%s' && printf 'Mems_allowed_list:\\t%s\\n' > '%s/proc-self-status'%s%s%s",
             root, dir, mems, dir, without_hmat ? " && rm -rf '" : "", without_hmat ? dir : "",
             without_hmat ? "'/devices/system/node/node*/access0" : "");
    REQUIRE(system(cmd) == 0, "%s", cmd);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--tree") == 0) {
        REQUIRE(pin_to_node(0), "cannot run on a CPU of node 0");
        for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++)
            if (strcmp(argv[2], trees[i].tree) == 0) trees[i].check();
        return nm_test_done();
    }
    this_machine();
    if (argc == 2 && strcmp(argv[1], "--this-machine") == 0) return nm_test_done();
    const char *root = nm_test_repo();
    for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++) {
        char dir[4200] = "/tmp/nm-device-tree-XXXXXX";
        if (trees[i].mems_allowed) {
            REQUIRE(mkdtemp(dir));
            write_tree(root, dir, trees[i].mems_allowed, trees[i].without_hmat);
        } else {
            snprintf(dir, sizeof dir, "%s/tests/sysfs/%s", root, trees[i].tree);
        }
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            setenv("NUMAMALLOC_SYSFS_ROOT", dir, 1);
            execl("/proc/self/exe", argv[0], "--tree", trees[i].tree, (char *)NULL);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tree %s: status %#x", trees[i].tree, status);
        printf("tree %s: checked\n", trees[i].tree);
        if (trees[i].mems_allowed) {
            char cmd[4200];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            CHECK(system(cmd) == 0);
        }
    }
    return nm_test_done();
}
