/* topology.c — fuzz target for the sysfs topology loader
 * (nm_topology_load, src/topology.c) and the tier and HMAT readers
 * (nm_node_tier, nm_node_perf, src/tier.c).
 *
 * The input describes a small sysfs tree, one file after another:
 *     >devices/system/node/online
 *     0-1
 *     >devices/system/node/node0/cpulist
 *     0-7
 * A line starting with '>' names a file under the tree's root (letters,
 * digits, '_', '-', '.', '/' and no "..": anything else skips the file);
 * the lines after it, up to the next '>' line, are its contents.  A name
 * ending in "*N" repeats the contents N times (up to 64 KiB: files longer
 * than the loader's buffers).  The tree is written to a fresh directory
 * and loaded; whatever it holds, the topology must be consistent: 1 to 64
 * nodes with ascending ids and both maps agreeing, every CPU on one node
 * and counted there, distances non-zero, free memory within the total, at
 * least one usable node and every node's home usable (itself when it is),
 * and a tree that did not load is the one-node fallback.  Seeds come from
 * the recorded trees in tests/sysfs (tests/fuzz/sysfs_seeds.sh). */
#define _GNU_SOURCE
#include "numamalloc.h"
#include "options.h"
#include "topology.h"

#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <sys/stat.h>

static void cleanup(void);
static char root[PATH_MAX];          /* the process's sysfs root: tree/ below it */
static char tree[PATH_MAX + 8];
static struct nm_topology t;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(root, sizeof root, "%s/nm-fuzz-topology-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    FUZZ_CHECK(mkdtemp(root) != NULL, "mkdtemp %s: %s", root, strerror(errno));
    snprintf(tree, sizeof tree, "%s/tree", root);
    /* nm_node_tier and nm_node_perf read under nm_opt.sysfs_root; the
     * process's own topology is the fallback (the root holds no nodes). */
    atexit(cleanup);
    nm_options_init();
    nm_opt.sysfs_root = tree;
    nm_topology_ensure();
    FUZZ_CHECK(nm_topo.fallback && nm_topo.node_id[0] == 0);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tree_remove(void)
{
    nftw(tree, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
    tree_remove();
    rmdir(root);
}

static bool name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 200 || name[0] == '/') return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.' || c == '/';
        if (!ok) return false;
        if (c == '.' && i + 1 < len && name[i + 1] == '.') return false;
    }
    return true;
}

/* Write tree/<name> (its directories first) with `body` repeated `times`. */
static void write_file(const char *name, size_t name_len, const char *body, size_t body_len, unsigned times)
{
    char path[PATH_MAX + 256];
    int n = snprintf(path, sizeof path, "%s/%.*s", tree, (int)name_len, name);
    if (n < 0 || (size_t)n >= sizeof path) return;
    for (char *slash = path + strlen(tree) + 1; (slash = strchr(slash, '/')) != NULL; slash++) {
        *slash = '\0';
        mkdir(path, 0755);
        *slash = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    for (unsigned i = 0; i < times; i++)
        if (write(fd, body, body_len) != (ssize_t)body_len) break;
    close(fd);
}

/* The input as files; returns how many were written. */
static int tree_write(const char *in, size_t size)
{
    const char *end = in + size, *s = in;
    int files = 0;
    mkdir(tree, 0755);
    while (s < end && files < 64) {
        /* a '>' line: the name, maybe "*N" */
        if (*s != '>') {
            const char *next = memmem(s, (size_t)(end - s), "\n>", 2);
            if (!next) break;
            s = next + 1;
            continue;
        }
        s++;
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        const char *name_end = eol ? eol : end;
        size_t name_len = (size_t)(name_end - s);
        unsigned times = 1;
        const char *star = memchr(s, '*', name_len);
        if (star) {
            times = (unsigned)strtoul(star + 1, NULL, 10);  /* digits stop at the line's end */
            name_len = (size_t)(star - s);
        }
        const char *body = eol ? eol + 1 : end;
        const char *body_end = memmem(body, (size_t)(end - body), "\n>", 2);
        body_end = body_end ? body_end + 1 : end;
        size_t body_len = (size_t)(body_end - body);
        if (body_len * times > 65536) times = body_len ? (unsigned)(65536 / body_len) : 1;
        if (times == 0) times = 1;
        if (name_ok(s, name_len)) {
            write_file(s, name_len, body, body_len, times);
            files++;
        }
        s = body_end;
    }
    return files;
}

static void check_topology(void)
{
    FUZZ_CHECK(t.node_count >= 1 && t.node_count <= NM_MAX_NODES, "%d nodes", t.node_count);
    int mapped = 0;
    for (int id = 0; id < NM_MAX_NODE_ID; id++) {
        int index = t.index_of_id[id];
        if (index < 0) {
            FUZZ_CHECK(index == -1);
            continue;
        }
        mapped++;
        FUZZ_CHECK(index < t.node_count && t.node_id[index] == id, "id %d -> index %d", id, index);
    }
    FUZZ_CHECK(mapped == t.node_count, "%d ids mapped for %d nodes", mapped, t.node_count);
    for (int i = 1; i < t.node_count; i++) FUZZ_CHECK(t.node_id[i - 1] < t.node_id[i]);

    FUZZ_CHECK(t.cpu_limit >= 1 && t.cpu_limit <= NM_MAX_CPUS, "cpu_limit %d", t.cpu_limit);
    FUZZ_CHECK(t.node_of_cpu[t.cpu_limit - 1] >= 0, "the highest CPU has no node");
    int cpus[NM_MAX_NODES] = { 0 };
    for (int cpu = 0; cpu < NM_MAX_CPUS; cpu++) {
        int index = t.node_of_cpu[cpu];
        FUZZ_CHECK(index >= -1 && index < t.node_count, "CPU %d on index %d", cpu, index);
        FUZZ_CHECK(index == -1 || cpu < t.cpu_limit, "CPU %d beyond cpu_limit %d", cpu, t.cpu_limit);
        if (index >= 0) cpus[index]++;
    }
    bool any_usable = false, limited = false;
    for (int i = 0; i < t.node_count; i++) {
        FUZZ_CHECK(cpus[i] == t.cpu_count[i], "node %d: %d CPUs, counted %d", i, cpus[i], t.cpu_count[i]);
        FUZZ_CHECK(t.mem_free[i] <= t.mem_total[i]);
        FUZZ_CHECK(t.mem_total[i] == 0 || t.has_memory[i]);
        for (int j = 0; j < t.node_count; j++) FUZZ_CHECK(t.distance[i][j] > 0, "distance[%d][%d] 0", i, j);
        any_usable |= nm_topology_usable(&t, i);
        limited |= t.has_memory[i] && !t.mem_allowed[i];
    }
    FUZZ_CHECK(any_usable, "no usable node");
    FUZZ_CHECK(t.mems_limited == limited);
    for (int i = 0; i < t.node_count; i++) {
        int home = t.home[i];
        FUZZ_CHECK(home >= 0 && home < t.node_count && nm_topology_usable(&t, home), "home of %d: %d", i, home);
        FUZZ_CHECK(!nm_topology_usable(&t, i) || home == i);
        FUZZ_CHECK(nm_topology_free_now(&t, i, tree) <= t.mem_total[i] || t.fallback);
        FUZZ_CHECK(nm_topology_available_now(&t, i, tree) <= t.mem_total[i] || t.fallback);
    }
    if (t.fallback) FUZZ_CHECK(t.node_count == 1 && t.node_id[0] == 0 && t.has_memory[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tree_remove();
    tree_write((const char *)data, size);
    errno = 12345;
    nm_topology_load(&t, tree);
    FUZZ_CHECK(errno == 12345, "errno changed to %d", errno);
    check_topology();

    /* Tiers and HMAT data of node 0 (the process's only node) from the
     * same tree: an answer or ENOENT, never anything else. */
    errno = 0;
    int tier = nm_node_tier(0);
    FUZZ_CHECK(tier >= 0 || errno == ENOENT, "nm_node_tier: %d, errno %d", tier, errno);
    struct nm_node_perf perf;
    errno = 0;
    int r = nm_node_perf(0, &perf);
    FUZZ_CHECK(r == 0 || (r == -1 && errno == ENOENT), "nm_node_perf: %d, errno %d", r, errno);
    FUZZ_CHECK(nm_node_tier(1) == -1 && errno == EINVAL);
    return 0;
}
