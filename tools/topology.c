/*
 * topology.c — `numamalloc topology [--json]`: the machine's NUMA nodes as
 * the library sees them (nm_node_* and nm_node_tier/nm_node_perf), plus
 * what sysfs and /proc say about huge pages, THP and NUMA balancing, and
 * the machine's devices by node (nm_node_of_device): network interfaces,
 * block devices (not partitions) and InfiniBand devices that are not
 * virtual, and GPUs and accelerators (PCI display or processing
 * accelerator class, named by PCI address).
 * Everything is gathered first, then printed, as text in the manner of
 * `numactl --hardware` or as JSON.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "numamalloc.h"
#include "tool.h"

#define MAX_POOLS 8   /* huge page sizes per node (x86 has 2: 2 MiB and 1 GiB) */

struct pool {
    uint64_t size_kb, total, free;
};

struct node {
    int id;
    int cpu_count;
    int *cpus;
    uint64_t size, free;
    int tier;                   /* -1: none */
    bool has_perf;
    struct nm_node_perf perf;
    int pool_count;
    struct pool pools[MAX_POOLS];
};

#define LINE_WIDTH 80

struct device {
    char name[64];
    const char *kind;           /* "net", "block", "infiniband", "gpu", "accelerator" */
    int node;                   /* -1: no node affinity */
};

struct machine {
    int count;
    int device_count;
    struct device *devices;
    struct node *nodes;
    int *distance;              /* count x count, row = from */
    char thp[32];               /* "" if unknown */
    int balancing;              /* /proc/sys/kernel/numa_balancing, -1 if absent */
};

static int by_size(const void *a, const void *b)
{
    const struct pool *x = a, *y = b;
    return x->size_kb < y->size_kb ? -1 : x->size_kb > y->size_kb;
}

/* Huge page pools of a node: nodeN/hugepages/hugepages-<size>kB/{nr,free}_hugepages. */
static void read_pools(struct node *n)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/devices/system/node/node%d/hugepages", sysfs_root(), n->id);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && n->pool_count < MAX_POOLS) {
        unsigned long long kb;
        char unit[4];
        if (sscanf(e->d_name, "hugepages-%llu%3s", &kb, unit) != 2 || strcmp(unit, "kB") != 0) continue;
        struct pool *p = &n->pools[n->pool_count];
        char path[4400];
        p->size_kb = kb;
        snprintf(path, sizeof path, "%s/%s/nr_hugepages", dir, e->d_name);
        if (!read_u64(path, &p->total)) continue;
        snprintf(path, sizeof path, "%s/%s/free_hugepages", dir, e->d_name);
        if (!read_u64(path, &p->free)) continue;
        n->pool_count++;
    }
    closedir(d);
    qsort(n->pools, (size_t)n->pool_count, sizeof n->pools[0], by_size);
}

/* The word in brackets of kernel/mm/transparent_hugepage/enabled. */
static void read_thp(char *out, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/kernel/mm/transparent_hugepage/enabled", sysfs_root());
    out[0] = '\0';
    char *text = read_text(path);
    if (!text) return;
    char *open = strchr(text, '['), *close = open ? strchr(open, ']') : NULL;
    if (open && close && (size_t)(close - open - 1) < len) {
        memcpy(out, open + 1, (size_t)(close - open - 1));
        out[close - open - 1] = '\0';
    }
    free(text);
}

static void add_device(struct machine *m, const char *name, const char *kind)
{
    struct device *grown = realloc(m->devices, (size_t)(m->device_count + 1) * sizeof *grown);
    if (!grown) fail(EXIT_FAILED, "out of memory");
    m->devices = grown;
    struct device *d = &m->devices[m->device_count++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->kind = kind;
    d->node = nm_node_of_device(name);
}

/* Whether <dir>/<name> is a physical device: its directory is not under
 * devices/virtual (lo, bridges, loop and dm devices), and for block
 * devices not a partition. */
static bool physical(const char *dir, const char *name, bool block)
{
    char path[4400], real[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!realpath(path, real) || strstr(real, "/devices/virtual/")) return false;
    snprintf(path, sizeof path, "%s/%s/partition", dir, name);
    return !block || access(path, F_OK) != 0;
}

static int entry_visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Devices of class `class` (<root>/class/<class>), in name order. */
static void gather_class(struct machine *m, const char *class, const char *kind)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/class/%s", sysfs_root(), class);
    struct dirent **names;
    int n = scandir(dir, &names, entry_visible, alphasort);
    for (int i = 0; i < n; i++) {
        if (physical(dir, names[i]->d_name, strcmp(kind, "block") == 0))
            add_device(m, names[i]->d_name, kind);
        free(names[i]);
    }
    if (n >= 0) free(names);
}

/* GPUs and accelerators: PCI functions of class 0x03 (display) or 0x12
 * (processing accelerator), by address. */
static void gather_gpus(struct machine *m)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bus/pci/devices", sysfs_root());
    struct dirent **names;
    int n = scandir(dir, &names, entry_visible, alphasort);
    for (int i = 0; i < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s/class", dir, names[i]->d_name);
        char *class = read_text(path);
        if (class && strncmp(class, "0x03", 4) == 0) add_device(m, names[i]->d_name, "gpu");
        else if (class && strncmp(class, "0x12", 4) == 0) add_device(m, names[i]->d_name, "accelerator");
        free(class);
        free(names[i]);
    }
    if (n >= 0) free(names);
}

static void gather_devices(struct machine *m)
{
    gather_class(m, "net", "net");
    gather_class(m, "block", "block");
    gather_class(m, "infiniband", "infiniband");
    gather_gpus(m);
}

static void gather(struct machine *m)
{
    m->count = nm_node_count();
    int *ids = calloc((size_t)m->count, sizeof *ids);
    m->nodes = calloc((size_t)m->count, sizeof *m->nodes);
    m->distance = calloc((size_t)m->count * (size_t)m->count, sizeof *m->distance);
    if (!ids || !m->nodes || !m->distance) fail(EXIT_FAILED, "out of memory");
    nm_node_ids(ids, m->count);
    for (int i = 0; i < m->count; i++) {
        struct node *n = &m->nodes[i];
        n->id = ids[i];
        n->cpu_count = nm_node_cpus(n->id, NULL, 0);
        if (n->cpu_count < 0) fail(EXIT_FAILED, "cannot read the CPUs of node %d", n->id);
        n->cpus = calloc((size_t)n->cpu_count + 1, sizeof *n->cpus);
        if (!n->cpus) fail(EXIT_FAILED, "out of memory");
        nm_node_cpus(n->id, n->cpus, n->cpu_count);
        nm_node_memory(n->id, &n->size, &n->free);
        n->tier = nm_node_tier(n->id);
        n->has_perf = nm_node_perf(n->id, &n->perf) == 0;
        read_pools(n);
        for (int j = 0; j < m->count; j++) m->distance[i * m->count + j] = nm_node_distance(n->id, ids[j]);
    }
    free(ids);
    gather_devices(m);
    read_thp(m->thp, sizeof m->thp);
    uint64_t balancing;
    m->balancing = read_u64("/proc/sys/kernel/numa_balancing", &balancing) ? (int)balancing : -1;
}

static const char *balancing_text(int value)
{
    static const char *const modes[] = { "off", "on", "memory tiering", "on, and memory tiering" };
    if (value < 0) return "not in this kernel";
    return value < 4 ? modes[value] : "on";
}

/* Huge page size in the largest whole unit: "2 MiB", "1 GiB". */
static const char *pool_size(char *buf, uint64_t kb)
{
    if (kb % (1024 * 1024) == 0) snprintf(buf, 32, "%" PRIu64 " GiB", kb / (1024 * 1024));
    else if (kb % 1024 == 0) snprintf(buf, 32, "%" PRIu64 " MiB", kb / 1024);
    else snprintf(buf, 32, "%" PRIu64 " KiB", kb);
    return buf;
}

/* The devices of `node` (-1: those without one) on lines that start with
 * `head`, items separated by ", ", wrapped within LINE_WIDTH columns under
 * the first item. */
static void print_device_line(const struct machine *m, int node, const char *head)
{
    int last = -1;
    for (int i = 0; i < m->device_count; i++)
        if (m->devices[i].node == node) last = i;
    fputs(head, stdout);
    struct wrap w;
    wrap_begin(&w, stdout, (int)strlen(head), (int)strlen(head), LINE_WIDTH);
    for (int i = 0; i <= last; i++) {
        const struct device *d = &m->devices[i];
        if (d->node != node) continue;
        char item[96];
        snprintf(item, sizeof item, "%s (%s)%s", d->name, d->kind, i == last ? "" : ",");
        wrap_word(&w, item, strlen(item));
    }
    putchar('\n');
}

/* "devices:", then a line per node with devices and one for devices
 * without a node. */
static void print_devices(const struct machine *m)
{
    if (m->device_count == 0) {
        printf("devices: none (no network, block or GPU device found)\n");
        return;
    }
    printf("devices:\n");
    for (int i = 0; i < m->count; i++) {
        bool any = false;
        for (int k = 0; k < m->device_count; k++) any |= m->devices[k].node == m->nodes[i].id;
        if (!any) continue;
        char head[32];
        snprintf(head, sizeof head, "  node %d: ", m->nodes[i].id);
        print_device_line(m, m->nodes[i].id, head);
    }
    bool unplaced = false;
    for (int k = 0; k < m->device_count; k++) unplaced |= m->devices[k].node < 0;
    if (unplaced) print_device_line(m, -1, "  no node: ");
}

static void print_text(const struct machine *m)
{
    char list[8192];
    int *ids = calloc((size_t)m->count + 1, sizeof *ids), memory_only = 0;
    if (!ids) fail(EXIT_FAILED, "out of memory");
    for (int i = 0; i < m->count; i++) ids[i] = m->nodes[i].id;
    format_list(list, sizeof list, ids, m->count);
    printf("available: %d node%s (%s)\n", m->count, m->count == 1 ? "" : "s", list);
    for (int i = 0; i < m->count; i++) {
        const struct node *n = &m->nodes[i];
        format_list(list, sizeof list, n->cpus, n->cpu_count);
        printf("node %d cpus: %s\n", n->id, n->cpu_count ? list : "none (memory only)");
        printf("node %d size: %" PRIu64 " MiB\n", n->id, n->size >> 20);
        printf("node %d free: %" PRIu64 " MiB\n", n->id, n->free >> 20);
        if (n->tier >= 0) printf("node %d tier: %d\n", n->id, n->tier);
        else printf("node %d tier: none\n", n->id);
        printf("node %d huge pages:", n->id);
        for (int p = 0; p < n->pool_count; p++) {
            char size[32];
            printf("%s %s %" PRIu64 " of %" PRIu64 " free", p ? "," : "",
                   pool_size(size, n->pools[p].size_kb), n->pools[p].free, n->pools[p].total);
        }
        printf("%s\n", n->pool_count ? "" : " none");
        if (n->has_perf) {
            printf("node %d access (HMAT): read %" PRIu64 " MB/s %" PRIu64 " ns, write %" PRIu64
                   " MB/s %" PRIu64 " ns\n", n->id, n->perf.read_bandwidth, n->perf.read_latency,
                   n->perf.write_bandwidth, n->perf.write_latency);
        }
    }
    printf("node distances:\nnode ");
    for (int j = 0; j < m->count; j++) printf("%4d", m->nodes[j].id);
    printf("\n");
    for (int i = 0; i < m->count; i++) {
        printf("%4d:", m->nodes[i].id);
        for (int j = 0; j < m->count; j++) printf("%4d", m->distance[i * m->count + j]);
        printf("\n");
    }
    for (int i = 0; i < m->count; i++) {
        if (m->nodes[i].cpu_count == 0 && m->nodes[i].size > 0) ids[memory_only++] = m->nodes[i].id;
    }
    format_list(list, sizeof list, ids, memory_only);
    printf("memory-only nodes: %s\n", memory_only ? list : "none");

    /* Tiers in ascending order, each with its nodes. */
    printf("memory tiers:");
    int last = -1, shown = 0;
    for (;;) {
        int next = -1, count = 0;
        for (int i = 0; i < m->count; i++) {
            int t = m->nodes[i].tier;
            if (t > last && (next < 0 || t < next)) next = t;
        }
        if (next < 0) break;
        for (int i = 0; i < m->count; i++) {
            if (m->nodes[i].tier == next) ids[count++] = m->nodes[i].id;
        }
        format_list(list, sizeof list, ids, count);
        printf("%s tier %d: node%s %s", shown++ ? ";" : "", next, count == 1 ? "" : "s", list);
        last = next;
    }
    printf("%s\n", shown ? "" : " none (the kernel shows no memory_tiering)");
    print_devices(m);
    printf("transparent huge pages: %s\n", m->thp[0] ? m->thp : "unknown (no kernel/mm/transparent_hugepage/enabled)");
    printf("automatic NUMA balancing: %s\n", balancing_text(m->balancing));
    free(ids);
}

static void print_json(const struct machine *m)
{
    struct json j;
    char list[8192];
    json_begin(&j, stdout);
    json_open(&j, NULL, '{');
    json_open_inline(&j, "node_ids", '[');
    for (int i = 0; i < m->count; i++) json_int(&j, NULL, m->nodes[i].id);
    json_close(&j, '[');
    json_open(&j, "nodes", '[');
    for (int i = 0; i < m->count; i++) {
        const struct node *n = &m->nodes[i];
        json_open(&j, NULL, '{');
        json_int(&j, "id", n->id);
        format_list(list, sizeof list, n->cpus, n->cpu_count);
        json_string(&j, "cpulist", list);
        json_open_inline(&j, "cpus", '[');
        for (int c = 0; c < n->cpu_count; c++) json_int(&j, NULL, n->cpus[c]);
        json_close(&j, '[');
        json_bool(&j, "memory_only", n->cpu_count == 0 && n->size > 0);
        json_uint(&j, "size_bytes", n->size);
        json_uint(&j, "free_bytes", n->free);
        if (n->tier >= 0) json_int(&j, "tier", n->tier);
        else json_null(&j, "tier");
        if (n->has_perf) {
            json_open(&j, "hmat", '{');
            json_uint(&j, "read_bandwidth_mbps", n->perf.read_bandwidth);
            json_uint(&j, "write_bandwidth_mbps", n->perf.write_bandwidth);
            json_uint(&j, "read_latency_ns", n->perf.read_latency);
            json_uint(&j, "write_latency_ns", n->perf.write_latency);
            json_close(&j, '{');
        } else {
            json_null(&j, "hmat");
        }
        json_open(&j, "hugepages", '[');
        for (int p = 0; p < n->pool_count; p++) {
            json_open_inline(&j, NULL, '{');
            json_uint(&j, "size_kb", n->pools[p].size_kb);
            json_uint(&j, "total", n->pools[p].total);
            json_uint(&j, "free", n->pools[p].free);
            json_close(&j, '{');
        }
        json_close(&j, '[');
        json_close(&j, '{');
    }
    json_close(&j, '[');
    json_open(&j, "distances", '[');
    for (int i = 0; i < m->count; i++) {
        json_open_inline(&j, NULL, '[');
        for (int k = 0; k < m->count; k++) json_int(&j, NULL, m->distance[i * m->count + k]);
        json_close(&j, '[');
    }
    json_close(&j, '[');
    json_open_inline(&j, "memory_only_nodes", '[');
    for (int i = 0; i < m->count; i++) {
        if (m->nodes[i].cpu_count == 0 && m->nodes[i].size > 0) json_int(&j, NULL, m->nodes[i].id);
    }
    json_close(&j, '[');
    json_open(&j, "devices", '[');
    for (int i = 0; i < m->device_count; i++) {
        const struct device *d = &m->devices[i];
        json_open_inline(&j, NULL, '{');
        json_string(&j, "name", d->name);
        json_string(&j, "kind", d->kind);
        if (d->node >= 0) json_int(&j, "node", d->node);
        else json_null(&j, "node");
        json_close(&j, '{');
    }
    json_close(&j, '[');
    json_string(&j, "transparent_hugepages", m->thp[0] ? m->thp : NULL);
    if (m->balancing >= 0) json_int(&j, "numa_balancing", m->balancing);
    else json_null(&j, "numa_balancing");
    json_string(&j, "numa_balancing_mode", balancing_text(m->balancing));
    json_close(&j, '{');
    json_end(&j);
}

int cmd_topology(int argc, char **argv)
{
    static const struct option options[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    bool json = false;
    int opt;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: json = true; break;
        case OPT_HELP: command_help("topology");
        default: bad_option("topology", opt, argv);
        }
    }
    if (optind < argc) fail(EXIT_USAGE, "topology: unexpected argument '%s'", argv[optind]);
    struct machine m = { 0 };
    gather(&m);
    if (json) print_json(&m);
    else print_text(&m);
    finish();
}
