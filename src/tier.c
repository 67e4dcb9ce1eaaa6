/*
 * tier.c — memory tiers and HMAT performance data of the nodes, read from
 * sysfs under nm_opt.sysfs_root ("/sys", or a recorded tree in tests):
 *
 *   <root>/devices/virtual/memory_tiering/memory_tierN/nodelist
 *       the nodes of tier N (lower N is faster; Linux 6.1+)
 *   <root>/devices/system/node/nodeN/access0/initiators/{read,write}_{bandwidth,latency}
 *       node N's bandwidth (MB/s) and latency (ns) from its nearest CPUs
 *       (ACPI HMAT, Linux 5.2+)
 *
 * Files are read with open/read (nm_os_read_file) and the directory is
 * listed with getdents64 into a stack buffer: no stdio, no malloc.
 *
 * Layer: beside topology, below policy (which resolves memory kinds such
 * as "highest-bandwidth" from these figures while it parses
 * NUMAMALLOC_POLICY inside the first malloc).  May call topology
 * (nm_topology_ensure, which sets up the options and the nodes), options
 * and os.  Nothing else.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "numamalloc.h"
#include "options.h"
#include "os.h"
#include "topology.h"

#define LIST_CAP 4096   /* a node list or a number */

static void path_start(struct nm_path *p, const char *under_root)
{
    p->len = 0;
    p->too_long = false;
    p->text[0] = '\0';
    nm_path_add(p, nm_opt.sysfs_root ? nm_opt.sysfs_root : "/sys");
    nm_path_add(p, under_root);
}

/* A decimal number followed by nothing but white space.  False if none. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = s;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s++ - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (s == start) return false;
    while (*s == '\n' || *s == ' ' || *s == '\t') s++;
    if (*s != '\0') return false;
    *out = v;
    return true;
}

/* Dense index of node id `node`, or -1 with errno EINVAL. */
static int node_index(int node)
{
    nm_topology_ensure();
    int index = nm_topology_index(&nm_topo, node);
    if (index < 0) errno = EINVAL;
    return index;
}

/* ---- memory tiers ------------------------------------------------------------ */

#define TIER_DIR "/devices/virtual/memory_tiering"
#define TIER_PREFIX "memory_tier"

/* N of a directory entry named "memory_tierN", or -1. */
static int tier_number(const char *name)
{
    size_t n = strlen(TIER_PREFIX);
    uint64_t tier;
    if (strncmp(name, TIER_PREFIX, n) != 0 || !parse_u64(name + n, &tier) || tier > INT32_MAX)
        return -1;
    return (int)tier;
}

/* Whether tier directory `name` lists node `node`.  The file is "nodelist";
 * release candidates of Linux 6.1 called it "nodes". */
static bool tier_has_node(const char *name, int node)
{
    static const char *const files[] = { "nodelist", "nodes" };
    char buf[LIST_CAP];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct nm_path p;
        path_start(&p, TIER_DIR "/");
        nm_path_add(&p, name);
        nm_path_add(&p, "/");
        nm_path_add(&p, files[i]);
        if (p.too_long || nm_os_read_file(p.text, buf, sizeof buf) < 0) continue;
        uint64_t set[NM_MAX_NODE_ID / 64];
        memset(set, 0, sizeof set);
        if (nm_topology_parse_list(buf, set, NM_MAX_NODE_ID) < 0) return false;
        return (set[node / 64] >> (node % 64)) & 1;
    }
    return false;
}

nm_export int nm_node_tier(int node)
{
    if (node_index(node) < 0) return -1;
    struct nm_path p;
    path_start(&p, TIER_DIR);
    int fd = p.too_long ? -1 : open(p.text, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) { errno = ENOENT; return -1; }
    /* The tiers are few (one per kind of memory); read every entry and
     * keep the lowest tier that lists the node (a node is in one tier). */
    int found = -1;
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        ssize_t n = getdents64(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            int tier = tier_number(d->d_name);
            if (tier < 0 || (found >= 0 && tier >= found)) continue;
            if (tier_has_node(d->d_name, node)) found = tier;
        }
    }
    close(fd);
    if (found < 0) errno = ENOENT;   /* no tiers, or none holds the node */
    return found;
}

/* ---- HMAT access data --------------------------------------------------------- */

static const struct {
    const char *file;
    size_t offset;
} perf_files[] = {
    { "read_bandwidth", offsetof(struct nm_node_perf, read_bandwidth) },
    { "write_bandwidth", offsetof(struct nm_node_perf, write_bandwidth) },
    { "read_latency", offsetof(struct nm_node_perf, read_latency) },
    { "write_latency", offsetof(struct nm_node_perf, write_latency) },
};

nm_export int nm_node_perf(int node, struct nm_node_perf *out)
{
    if (node_index(node) < 0) return -1;
    struct nm_node_perf perf;
    memset(&perf, 0, sizeof perf);
    int known = 0;
    for (size_t i = 0; i < sizeof perf_files / sizeof perf_files[0]; i++) {
        struct nm_path p;
        path_start(&p, "/devices/system/node/node");
        nm_path_add_uint(&p, (unsigned)node);
        nm_path_add(&p, "/access0/initiators/");
        nm_path_add(&p, perf_files[i].file);
        char buf[64];
        uint64_t value;
        if (p.too_long || nm_os_read_file(p.text, buf, sizeof buf) < 0) continue;
        if (!parse_u64(buf, &value)) continue;
        memcpy((char *)&perf + perf_files[i].offset, &value, sizeof value);
        known++;
    }
    if (known == 0) { errno = ENOENT; return -1; }
    if (out) *out = perf;
    return 0;
}
