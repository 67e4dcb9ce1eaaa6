/*
 * policy.c — explicit placement, part one: the public topology functions,
 * node sets, and memory policies as values (build, parse, check, format,
 * apply to a range with mbind).
 *
 * Node ids in this API are the kernel's (sparse); the layers below index
 * nodes densely (topology.h).  Nothing here allocates or uses stdio: policy
 * text is parsed inside the first malloc (NUMAMALLOC_POLICY).
 *
 * May call the topology, os and options layers: it sits below the segment
 * layer, so that the heap layer can parse NUMAMALLOC_POLICY at start-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "numamalloc.h"
#include "options.h"
#include "os.h"
#include "policy.h"
#include "topology.h"

/* ---- topology ------------------------------------------------------------------ */

/* Dense index of node id `node`, or -1 with errno EINVAL. */
static int node_index(int node)
{
    nm_topology_ensure();
    int index = nm_topology_index(&nm_topo, node);
    if (index < 0) errno = EINVAL;
    return index;
}

nm_export int nm_node_count(void)
{
    nm_topology_ensure();
    return nm_topo.node_count;
}

nm_export int nm_node_ids(int *ids, int max)
{
    nm_topology_ensure();
    for (int i = 0; i < nm_topo.node_count && i < max; i++) ids[i] = nm_topo.node_id[i];
    return nm_topo.node_count;
}

nm_export int nm_node_of_cpu(int cpu)
{
    nm_topology_ensure();
    if (cpu < 0 || cpu >= nm_topo.cpu_limit || nm_topo.node_of_cpu[cpu] < 0) {
        errno = EINVAL;
        return -1;
    }
    return nm_topo.node_id[nm_topo.node_of_cpu[cpu]];
}

nm_export int nm_current_node(void)
{
    nm_topology_ensure();
    return nm_topo.node_id[nm_topology_current_node()];
}

nm_export int nm_node_distance(int from, int to)
{
    int a = node_index(from), b = node_index(to);
    if (a < 0 || b < 0) return -1;
    return nm_topo.distance[a][b];
}

nm_export int nm_node_cpus(int node, int *cpus, int max)
{
    int index = node_index(node);
    if (index < 0) return -1;
    int count = 0;
    for (int cpu = 0; cpu < nm_topo.cpu_limit; cpu++) {
        if (nm_topo.node_of_cpu[cpu] != index) continue;
        if (count < max) cpus[count] = cpu;
        count++;
    }
    return count;
}

nm_export int nm_node_memory(int node, uint64_t *total, uint64_t *free_bytes)
{
    int index = node_index(node);
    if (index < 0) return -1;
    if (total) *total = nm_topo.mem_total[index];
    if (free_bytes) *free_bytes = nm_topology_free_now(&nm_topo, index, nm_opt.sysfs_root);
    return 0;
}

nm_export int nm_node_has_cpus(int node)
{
    int index = node_index(node);
    if (index < 0) return -1;
    return nm_topo.cpu_count[index] > 0;
}

nm_export int nm_nodes_by_distance(int node, int *ids, int max)
{
    int from = node_index(node);
    if (from < 0) return -1;
    int order[NM_MAX_NODES];
    int n = nm_topo.node_count;
    for (int i = 0; i < n; i++) order[i] = i;
    /* Insertion sort: at most 64 nodes; itself first (distance 10 and, on a
     * sane table, the only 10), then by distance, ties by id. */
    for (int i = 1; i < n; i++) {
        int x = order[i], j = i;
        while (j > 0) {
            int y = order[j - 1];
            int dx = x == from ? -1 : nm_topo.distance[from][x];
            int dy = y == from ? -1 : nm_topo.distance[from][y];
            if (dy < dx || (dy == dx && y < x)) break;
            order[j] = y;
            j--;
        }
        order[j] = x;
    }
    for (int i = 0; i < n && i < max; i++) ids[i] = nm_topo.node_id[order[i]];
    return n;
}

/* ---- node sets -------------------------------------------------------------------- */

nm_export void nm_nodeset_clear(nm_nodeset *set)
{
    memset(set, 0, sizeof *set);
}

nm_export void nm_nodeset_add(nm_nodeset *set, int node)
{
    if (node >= 0 && node < NM_NODE_ID_LIMIT) set->bits[node / 64] |= (uint64_t)1 << (node % 64);
}

nm_export int nm_nodeset_has(const nm_nodeset *set, int node)
{
    return node >= 0 && node < NM_NODE_ID_LIMIT && (set->bits[node / 64] >> (node % 64)) & 1;
}

nm_export int nm_nodeset_count(const nm_nodeset *set)
{
    int count = 0;
    for (int i = 0; i < NM_NODESET_WORDS; i++) count += __builtin_popcountll(set->bits[i]);
    return count;
}

nm_export nm_nodeset nm_nodeset_all(void)
{
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_topology_ensure();
    for (int i = 0; i < nm_topo.node_count; i++) nm_nodeset_add(&set, nm_topo.node_id[i]);
    return set;
}

/* Every node whose memory the process may use (it has memory and the
 * cpuset allows it): what "all" means in a policy, as in numactl. */
static nm_nodeset usable_nodes(void)
{
    nm_nodeset set;
    nm_nodeset_clear(&set);
    for (int i = 0; i < nm_topo.node_count; i++)
        if (nm_topology_usable(&nm_topo, i)) nm_nodeset_add(&set, nm_topo.node_id[i]);
    return set;
}

/* ---- policies as values ------------------------------------------------------------- */

static nm_policy policy_of(enum nm_policy_mode mode, const nm_nodeset *nodes)
{
    nm_policy p;
    memset(&p, 0, sizeof p);
    p.mode = mode;
    if (nodes) p.nodes = *nodes;
    return p;
}

nm_export nm_policy nm_policy_local(void) { return policy_of(NM_POLICY_LOCAL, NULL); }
nm_export nm_policy nm_policy_bind(const nm_nodeset *n) { return policy_of(NM_POLICY_BIND, n); }
nm_export nm_policy nm_policy_preferred_many(const nm_nodeset *n)
{
    return policy_of(NM_POLICY_PREFERRED_MANY, n);
}
nm_export nm_policy nm_policy_interleave(const nm_nodeset *n)
{
    return policy_of(NM_POLICY_INTERLEAVE, n);
}
nm_export nm_policy nm_policy_weighted_interleave(const nm_nodeset *n)
{
    return policy_of(NM_POLICY_WEIGHTED_INTERLEAVE, n);
}
nm_export nm_policy nm_policy_preferred(int node)
{
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_nodeset_add(&set, node);
    return policy_of(NM_POLICY_PREFERRED, &set);
}

/* The text name and kernel mode of each policy mode, and what its node set
 * must look like. */
struct mode_desc {
    const char *name;
    int kernel_mode;
    enum { NODES_NONE, NODES_ONE, NODES_SET } nodes;
};

static const struct mode_desc modes[] = {
    [NM_POLICY_LOCAL] = { "local", NM_MPOL_LOCAL, NODES_NONE },
    [NM_POLICY_BIND] = { "bind", NM_MPOL_BIND, NODES_SET },
    [NM_POLICY_PREFERRED] = { "preferred", NM_MPOL_PREFERRED, NODES_ONE },
    [NM_POLICY_PREFERRED_MANY] = { "preferred-many", NM_MPOL_PREFERRED_MANY, NODES_SET },
    [NM_POLICY_INTERLEAVE] = { "interleave", NM_MPOL_INTERLEAVE, NODES_SET },
    [NM_POLICY_WEIGHTED_INTERLEAVE] = { "weighted-interleave", NM_MPOL_WEIGHTED_INTERLEAVE,
                                        NODES_SET },
};
#define MODE_COUNT (sizeof modes / sizeof modes[0])

/* Text built into a caller's buffer, snprintf-style: `len` counts what
 * the whole text needs, the buffer keeps what fits (NUL-terminated). */
struct text {
    char *buf;
    size_t cap;
    size_t len;
};

static void text_str(struct text *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++, t->len++)
        if (t->len + 1 < t->cap) t->buf[t->len] = s[i];
    if (t->cap) t->buf[t->len < t->cap ? t->len : t->cap - 1] = '\0';
}

static void text_int(struct text *t, int v)
{
    char digits[12];
    int n = 0;
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    do { digits[sizeof digits - 1 - n++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) digits[sizeof digits - 1 - n++] = '-';
    text_str(t, digits + sizeof digits - n, (size_t)n);
}

/* A node set as list text ("0-3", "0,2,4"). */
static void text_nodes(struct text *t, const nm_nodeset *set)
{
    bool first = true;
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++) {
        if (!nm_nodeset_has(set, id)) continue;
        int last = id;
        while (last + 1 < NM_NODE_ID_LIMIT && nm_nodeset_has(set, last + 1)) last++;
        if (!first) text_str(t, ",", 1);
        text_int(t, id);
        if (last != id) { text_str(t, "-", 1); text_int(t, last); }
        first = false;
        id = last;
    }
}

/* Text from the caller as a reason quotes it: at most VALUE_SHOWN
 * characters, the rest cut to "...", control characters (a newline) as
 * '?', so that the reason stays one short line. */
enum { VALUE_SHOWN = 64 };
static void text_value(struct text *t, const char *s)
{
    size_t n = 0;
    for (; s[n] && n < VALUE_SHOWN; n++) {
        char c = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
        text_str(t, &c, 1);
    }
    if (s[n]) text_str(t, "...", 3);
}

/* A reason: pieces of text and numbers.  Each piece is a string; a piece
 * "%d" takes the next int argument, "%n" the next node set, "%v" the next
 * string, text from the caller (text_value); NULL ends the list. */
static int fail(char *err, size_t len, int error, ...)
{
    struct text t = { err, err ? len : 0, 0 };
    va_list ap;
    va_start(ap, error);
    for (const char *piece; (piece = va_arg(ap, const char *)) != NULL;) {
        if (!strcmp(piece, "%d")) text_int(&t, va_arg(ap, int));
        else if (!strcmp(piece, "%n")) text_nodes(&t, va_arg(ap, const nm_nodeset *));
        else if (!strcmp(piece, "%v")) text_value(&t, va_arg(ap, const char *));
        else text_str(&t, piece, strlen(piece));
    }
    va_end(ap);
    errno = error;
    return -1;
}

/* Whether the kernel accepts `kernel_mode` for mbind: asked once per mode
 * on a scratch page. */
static bool kernel_has_mode(int kernel_mode)
{
    static _Atomic int known[8];   /* 0 unknown, 1 yes, 2 no */
    int k = atomic_load_explicit(&known[kernel_mode], memory_order_relaxed);
    if (k) return k == 1;
    void *page = mmap(NULL, NM_OS_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool yes = false;
    if (page != MAP_FAILED) {
        /* The nodes this process may use, from the kernel itself (the
         * topology may have been read from a recorded sysfs tree). */
        nm_nodemask mask;
        memset(&mask, 0, sizeof mask);
        nm_nodemask allowed;
        memset(&allowed, 0, sizeof allowed);
        int first = 0;
        if (nm_os_get_mempolicy(NULL, &allowed, NULL, NM_MPOL_F_MEMS_ALLOWED) == 0)
            while (first < NM_MASK_BITS - 1 && !nm_mask_test(&allowed, first)) first++;
        nm_mask_set(&mask, first);
        bool needs_mask = kernel_mode != NM_MPOL_LOCAL && kernel_mode != NM_MPOL_DEFAULT;
        yes = nm_os_mbind(page, NM_OS_PAGE, kernel_mode, needs_mask ? &mask : NULL, 0) == 0 ||
              errno != EINVAL;
        munmap(page, NM_OS_PAGE);
    }
    atomic_store_explicit(&known[kernel_mode], yes ? 1 : 2, memory_order_relaxed);
    return yes;
}

nm_export int nm_policy_check(const nm_policy *p, char *err, size_t err_len)
{
    nm_topology_ensure();
    if ((unsigned)p->mode >= MODE_COUNT)
        return fail(err, err_len, EINVAL, "unknown policy mode ", "%d", (int)p->mode, NULL);
    const struct mode_desc *m = &modes[p->mode];
    int count = nm_nodeset_count(&p->nodes);
    if (m->nodes == NODES_NONE && count != 0)
        return fail(err, err_len, EINVAL, m->name, " takes no nodes", NULL);
    if (m->nodes == NODES_ONE && count != 1)
        return fail(err, err_len, EINVAL, m->name, " takes exactly one node, not ", "%d", count,
                    NULL);
    if (m->nodes == NODES_SET && count == 0)
        return fail(err, err_len, EINVAL, m->name, " needs at least one node: the node set is empty",
                    NULL);
    nm_nodeset all = nm_nodeset_all();
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++) {
        if (!nm_nodeset_has(&p->nodes, id)) continue;
        int index = nm_topology_index(&nm_topo, id);
        if (index < 0)
            return fail(err, err_len, EINVAL, "node ", "%d", id, " does not exist (nodes: ", "%n",
                        &all, ")", NULL);
        if (!nm_topo.has_memory[index])
            return fail(err, err_len, EINVAL, "node ", "%d", id, " has no memory", NULL);
        if (!nm_topo.mem_allowed[index]) {
            nm_nodeset allowed = usable_nodes();
            return fail(err, err_len, EINVAL, "node ", "%d", id,
                        " is not allowed in this cpuset (allowed: ", "%n", &allowed, ")", NULL);
        }
    }
    if (!kernel_has_mode(m->kernel_mode))
        return fail(err, err_len, ENOSYS, "this kernel has no ", m->name, " policy",
                    p->mode == NM_POLICY_WEIGHTED_INTERLEAVE ? " (Linux 6.9+)"
                    : p->mode == NM_POLICY_PREFERRED_MANY   ? " (Linux 5.15+)" : "", NULL);
    return 0;
}

nm_export int nm_policy_parse(const char *text, nm_policy *out, char *err, size_t err_len)
{
    nm_topology_ensure();
    if (!text) return fail(err, err_len, EINVAL, "no policy given", NULL);
    const char *colon = strchr(text, ':');
    size_t name_len = colon ? (size_t)(colon - text) : strlen(text);
    const struct mode_desc *m = NULL;
    for (size_t i = 0; i < MODE_COUNT; i++) {
        if (strlen(modes[i].name) == name_len && strncmp(text, modes[i].name, name_len) == 0)
            m = &modes[i];
    }
    if (!m) {
        char name[VALUE_SHOWN + 2];   /* enough for fail to cut it */
        size_t n = name_len < sizeof name - 1 ? name_len : sizeof name - 1;
        memcpy(name, text, n);
        name[n] = '\0';
        return fail(err, err_len, EINVAL, "unknown policy '", "%v", name,
                    "': expected local, bind:NODES, preferred:NODE, preferred-many:NODES, "
                    "interleave:NODES or weighted-interleave:NODES", NULL);
    }
    nm_policy p = policy_of((enum nm_policy_mode)(m - modes), NULL);
    if (m->nodes == NODES_NONE) {
        if (colon) return fail(err, err_len, EINVAL, m->name, " takes no nodes: '", "%v", text, "'", NULL);
    } else {
        const char *list = colon ? colon + 1 : "";
        if (!*list)
            return fail(err, err_len, EINVAL, m->name, " needs nodes, e.g. '", m->name,
                        m->nodes == NODES_SET ? ":0-1'" : ":0'", NULL);
        if (strcmp(list, "all") == 0) {
            if (m->nodes == NODES_ONE)
                return fail(err, err_len, EINVAL, m->name, " takes one node, not 'all'", NULL);
            p.nodes = usable_nodes();
        } else {
            int64_t highest;
            if (nm_topology_parse_list_highest(list, p.nodes.bits, NM_NODE_ID_LIMIT, &highest) < 0)
                return fail(err, err_len, EINVAL, "bad node list '", "%v", list,
                            "': expected ids and ranges like 0-3 or 0,2", NULL);
            if (highest >= NM_NODE_ID_LIMIT)
                return fail(err, err_len, EINVAL, "bad node list '", "%v", list,
                            "': node ids go up to ", "%d", NM_NODE_ID_LIMIT - 1, NULL);
        }
    }
    if (nm_policy_check(&p, err, err_len) != 0) return -1;
    *out = p;
    return 0;
}

nm_export int nm_policy_format(const nm_policy *p, char *buf, size_t len)
{
    struct text t = { buf, len, 0 };
    if (len) buf[0] = '\0';
    if ((unsigned)p->mode >= MODE_COUNT) {
        text_str(&t, "unknown", 7);
        return (int)t.len;
    }
    const struct mode_desc *m = &modes[p->mode];
    text_str(&t, m->name, strlen(m->name));
    if (m->nodes != NODES_NONE) {
        text_str(&t, ":", 1);
        text_nodes(&t, &p->nodes);
    }
    return (int)t.len;
}

/* ---- applying a policy ------------------------------------------------------------------- */

int nm_policy_kernel_mode(const nm_policy *p)
{
    return modes[p->mode].kernel_mode;
}

void nm_policy_kernel_mask(const nm_policy *p, nm_nodemask *mask)
{
    memset(mask, 0, sizeof *mask);
    for (int w = 0; w < NM_NODESET_WORDS && w < NM_MASK_WORDS; w++) mask->bits[w] = p->nodes.bits[w];
}

int nm_policy_apply(void *start, size_t len, const nm_policy *p, unsigned flags)
{
    nm_nodemask mask;
    nm_policy_kernel_mask(p, &mask);
    const struct mode_desc *m = &modes[p->mode];
    long r = nm_os_mbind(start, len, m->kernel_mode, m->nodes == NODES_NONE ? NULL : &mask, flags);
    return r == 0 ? 0 : -1;
}
