/*
 * topology.c — the machine's NUMA nodes, read from sysfs, and the node the
 * calling thread runs on.
 *
 * Layer: just above os.  Files are read with nm_os_read_file and the
 * cpuset's nodes asked with nm_os_get_mempolicy; besides that
 * only libc calls that neither allocate nor print are used: getcpu,
 * sched_getaffinity, getauxval, access, sysconf (page counts come from
 * sysinfo) and string.h.  Nothing here uses malloc or stdio, so it can run
 * inside the first malloc call.
 *
 * Files read, all under <root>/devices/system/node:
 *   online          node ids in the kernel's list format ("0-1,4"); when it
 *                   is missing, node directories node0..node1023 are probed
 *   nodeN/cpulist   the node's CPUs in list format; empty for memory-only
 *                   nodes (CXL, HBM)
 *   nodeN/distance  one number per online node, in online-node order
 *   nodeN/meminfo   "Node 0 MemTotal:       24575816 kB", then MemFree ...
 *
 * The nodes whose memory the process may use (its cpuset's mems): on the
 * running machine ("/sys") from get_mempolicy(MPOL_F_MEMS_ALLOWED), else
 * the "Mems_allowed_list:" line of /proc/self/status; for a recorded tree
 * from that line in <root>/proc-self-status, every node when the file is
 * missing.  A mask that is unreadable, or allows none of the nodes with
 * memory, is no limit (allocation must not fail because of it).
 *
 * Odd trees.  cpulist is required: a node listed but without a directory is
 * skipped, and a cpulist that is garbage, or a CPU claimed by two nodes,
 * makes the tree unusable.  meminfo and distance are optional: a node
 * without a readable meminfo is taken to have memory of unknown size; when
 * any distance row is missing the whole table takes the kernel's defaults
 * (10, LOCAL_DISTANCE, on the diagonal; 20, REMOTE_DISTANCE, elsewhere).
 * A row that exists but is garbage or has the wrong length makes the tree
 * unusable, as does a tree without nodes, without CPUs or without memory.
 * An unusable tree gives the fallback: one node 0 holding every CPU.
 */
#define _GNU_SOURCE
#include "topology.h"

#include "options.h"
#include "os.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

struct nm_topology nm_topo;

enum {
    READ_CAP = 16384,        /* longest list file read whole (interleaved cpulists) */
    MEMINFO_CAP = 4096,      /* MemTotal and MemFree are the first lines */
    LOCAL_DISTANCE = 10,     /* the kernel's defaults, used when rows are missing */
    REMOTE_DISTANCE = 20,
    LIST_VALUE_MAX = 1 << 20 /* a larger number in a list makes it garbage */
};

/* ---- bit sets ------------------------------------------------------------- */

typedef uint64_t nm_cpuset[NM_MAX_CPUS / 64];
typedef uint64_t nm_idset[NM_MAX_NODE_ID / 64];

static void bit_set(uint64_t *set, int i) { set[i / 64] |= (uint64_t)1 << (i % 64); }
static bool bit_test(const uint64_t *set, int i) { return (set[i / 64] >> (i % 64)) & 1; }

static bool cpus_any(const uint64_t *cpus)
{
    for (int w = 0; w < NM_MAX_CPUS / 64; w++)
        if (cpus[w]) return true;
    return false;
}

/* ---- text ------------------------------------------------------------------ */

/* A decimal number at *sp of at most `max`; advances *sp past it. */
static bool parse_uint(const char **sp, uint64_t max, uint64_t *out)
{
    const char *s = *sp;
    uint64_t value = 0;
    if (*s < '0' || *s > '9') return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        value = value * 10 + (uint64_t)(*s - '0');
        if (value > max) return false;
    }
    *out = value;
    *sp = s;
    return true;
}

static const char *skip_blanks(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* Parse a kernel list such as "0-15,64-79\n" into `set`, a bit set of
 * `limit` bits zeroed by the caller; an empty text is an empty list.
 * Members at or above `limit` are counted but not stored.  Returns the
 * number of members, or -1 when the text is not a list: a stray character,
 * a range that runs backwards, a number above LIST_VALUE_MAX. */
int64_t nm_topology_parse_list(const char *text, uint64_t *set, int limit)
{
    int64_t highest;
    return nm_topology_parse_list_highest(text, set, limit, &highest);
}

int64_t nm_topology_parse_list_highest(const char *text, uint64_t *set, int limit, int64_t *highest)
{
    const char *s = skip_blanks(text);
    int64_t count = 0;
    *highest = -1;
    bool more = *s != '\n' && *s != '\0';
    while (more) {
        uint64_t first, last;
        if (!parse_uint(&s, LIST_VALUE_MAX, &first)) return -1;
        last = first;
        if (*s == '-') {
            s++;
            if (!parse_uint(&s, LIST_VALUE_MAX, &last) || last < first) return -1;
        }
        for (uint64_t i = first; i <= last && i < (uint64_t)limit; i++) bit_set(set, (int)i);
        count += (int64_t)(last - first + 1);
        if ((int64_t)last > *highest) *highest = (int64_t)last;
        more = *s == ',';
        if (more) s++;
    }
    while (*s == '\n' || *s == ' ' || *s == '\t') s++;
    return *s == '\0' ? count : -1;
}

/* The value of `key` ("MemTotal:") in a meminfo text, in bytes. */
static bool meminfo_bytes(const char *text, const char *key, uint64_t *bytes)
{
    const char *s = strstr(text, key);
    uint64_t kib;
    if (!s) return false;
    s = skip_blanks(s + strlen(key));
    if (!parse_uint(&s, (uint64_t)1 << 50, &kib)) return false;
    s = skip_blanks(s);
    if (s[0] != 'k' || s[1] != 'B') return false;
    *bytes = kib * 1024;
    return true;
}

/* ---- files ----------------------------------------------------------------- */

/* "<root>/devices/system/<dir>", then "/node<id>" when id >= 0, then
 * "/<leaf>" when leaf is not NULL. */
void nm_path_add(struct nm_path *p, const char *s)
{
    for (; *s; s++) {
        if (p->len + 1 >= sizeof p->text) { p->too_long = true; return; }
        p->text[p->len++] = *s;
    }
    p->text[p->len] = '\0';
}

void nm_path_add_uint(struct nm_path *p, unsigned value)
{
    char digits[12];
    int n = 0;
    do { digits[n++] = (char)('0' + value % 10); value /= 10; } while (value);
    char one[2] = {0, 0};
    while (n > 0) { one[0] = digits[--n]; nm_path_add(p, one); }
}

static bool sys_path(struct nm_path *p, const char *root, const char *dir, int id, const char *leaf)
{
    p->len = 0;
    p->too_long = false;
    p->text[0] = '\0';
    nm_path_add(p, root);
    nm_path_add(p, "/devices/system/");
    nm_path_add(p, dir);
    if (id >= 0) { nm_path_add(p, "/node"); nm_path_add_uint(p, (unsigned)id); }
    if (leaf) { nm_path_add(p, "/"); nm_path_add(p, leaf); }
    return !p->too_long;
}

/* Read a sysfs file into buf (cap bytes, NUL-terminated; nothing without a
 * buffer: FILE_MISSING).  A file that fills the buffer is FILE_CUT: what was
 * read may end anywhere. */
enum file_state { FILE_MISSING, FILE_CUT, FILE_OK };

static enum file_state read_sys(char *buf, size_t cap, const char *root, const char *dir, int id,
                                const char *leaf)
{
    struct nm_path p;
    if (!buf || !sys_path(&p, root, dir, id, leaf)) return FILE_MISSING;
    ssize_t n = nm_os_read_file(p.text, buf, cap);
    if (n < 0) return FILE_MISSING;
    return (size_t)n + 1 < cap ? FILE_OK : FILE_CUT;
}

/* ---- loading --------------------------------------------------------------- */

static void topology_clear(struct nm_topology *t)
{
    memset(t, 0, sizeof *t);
    for (int id = 0; id < NM_MAX_NODE_ID; id++) t->index_of_id[id] = -1;
    for (int cpu = 0; cpu < NM_MAX_CPUS; cpu++) t->node_of_cpu[cpu] = -1;
}

/* The kernel ids of the nodes as a bit set, and how many the online list
 * names in all, ids beyond the set included: the length of a distance row.
 * False when there is no list or it is garbage. */
static bool read_node_ids(char *buf, const char *root, uint64_t *ids, int64_t *listed)
{
    enum file_state online = read_sys(buf, READ_CAP, root, "node", -1, "online");
    if (online == FILE_CUT) return false;
    if (online == FILE_OK) {
        *listed = nm_topology_parse_list(buf, ids, NM_MAX_NODE_ID);
        return *listed > 0;
    }
    /* No online file: probe the node directories, if there is a node
     * directory at all (kernels built without NUMA have none). */
    struct nm_path p;
    if (!sys_path(&p, root, "node", -1, NULL) || access(p.text, F_OK) != 0) return false;
    *listed = 0;
    for (int id = 0; id < NM_MAX_NODE_ID; id++) {
        if (read_sys(buf, READ_CAP, root, "node", id, "cpulist") == FILE_MISSING) continue;
        bit_set(ids, id);
        ++*listed;
    }
    return *listed > 0;
}

/* Give node `id` the next index and the CPUs in `cpus`.  False when one of
 * them already belongs to another node. */
static bool add_node(struct nm_topology *t, int id, const uint64_t *cpus)
{
    int index = t->node_count++;
    t->node_id[index] = id;
    t->index_of_id[id] = (int16_t)index;
    for (int w = 0; w < NM_MAX_CPUS / 64; w++) {
        for (uint64_t bits = cpus[w]; bits; bits &= bits - 1) {
            int cpu = w * 64 + __builtin_ctzll(bits);
            if (t->node_of_cpu[cpu] >= 0) return false;
            t->node_of_cpu[cpu] = (int16_t)index;
            t->cpu_count[index]++;
            if (cpu >= t->cpu_limit) t->cpu_limit = cpu + 1;
        }
    }
    return true;
}

/* Memory of each node.  A node whose meminfo is unreadable (or says no
 * MemTotal) is assumed to have memory of unknown size: mem_total 0,
 * has_memory true, so it is still used.  False when no node has memory. */
static bool load_memory(struct nm_topology *t, char *buf, const char *root)
{
    bool any = false;
    for (int i = 0; i < t->node_count; i++) {
        uint64_t total = 0, free = 0;
        int id = t->node_id[i];
        /* A cut meminfo is fine: MemTotal and MemFree come first. */
        enum file_state meminfo = read_sys(buf, MEMINFO_CAP, root, "node", id, "meminfo");
        bool known = meminfo != FILE_MISSING && meminfo_bytes(buf, "MemTotal:", &total);
        if (known && !meminfo_bytes(buf, "MemFree:", &free)) free = 0;
        t->mem_total[i] = total;
        t->mem_free[i] = free < total ? free : total;
        t->has_memory[i] = !known || total > 0;
        any |= t->has_memory[i];
    }
    return any;
}

static void default_distances(struct nm_topology *t)
{
    for (int i = 0; i < t->node_count; i++)
        for (int j = 0; j < t->node_count; j++)
            t->distance[i][j] = i == j ? LOCAL_DISTANCE : REMOTE_DISTANCE;
}

/* One distance row: `columns` numbers from 1 to 255; column[j] is where the
 * node of index j sits in it (ascending). */
static bool parse_distance_row(const char *text, int64_t columns, const int *column,
                               int node_count, uint8_t *row)
{
    const char *s = skip_blanks(text);
    int next = 0;
    for (int64_t c = 0; c < columns; c++) {
        uint64_t d;
        if (c > 0) {
            if (*s != ' ' && *s != '\t') return false;
            s = skip_blanks(s);
        }
        if (!parse_uint(&s, 255, &d) || d == 0) return false;
        if (next < node_count && column[next] == c) row[next++] = (uint8_t)d;
    }
    while (*s == '\n' || *s == ' ' || *s == '\t') s++;
    return *s == '\0' && next == node_count;
}

/* The distance table.  A missing row gives every node the defaults; a row
 * that is present but wrong makes the tree unusable (false). */
static bool load_distances(struct nm_topology *t, char *buf, const char *root,
                           const int *column, int64_t columns)
{
    for (int i = 0; i < t->node_count; i++) {
        enum file_state row = read_sys(buf, READ_CAP, root, "node", t->node_id[i], "distance");
        if (row == FILE_MISSING) {
            default_distances(t);
            return true;
        }
        if (row == FILE_CUT) return false;
        if (!parse_distance_row(buf, columns, column, t->node_count, t->distance[i])) return false;
    }
    return true;
}

/* The tree as sysfs describes it; false when it is unusable. */
static bool load_nodes(struct nm_topology *t, char *buf, const char *root)
{
    nm_idset ids = {0};
    int64_t listed;
    int column[NM_MAX_NODES];  /* position of each index in the online list */
    int rank = 0;

    topology_clear(t);
    if (!read_node_ids(buf, root, ids, &listed)) return false;
    for (int id = 0; id < NM_MAX_NODE_ID && t->node_count < NM_MAX_NODES; id++) {
        if (!bit_test(ids, id)) continue;
        int position = rank++;
        enum file_state cpulist = read_sys(buf, READ_CAP, root, "node", id, "cpulist");
        if (cpulist == FILE_MISSING) continue;  /* listed, but no such node */
        nm_cpuset cpus = {0};
        if (cpulist == FILE_CUT || nm_topology_parse_list(buf, cpus, NM_MAX_CPUS) < 0) return false;
        column[t->node_count] = position;
        if (!add_node(t, id, cpus)) return false;
    }
    if (t->node_count == 0 || t->cpu_limit == 0) return false;
    if (!load_memory(t, buf, root)) return false;
    return load_distances(t, buf, root, column, listed);
}

/* The CPUs of the fallback node: <root>/devices/system/cpu/online, else
 * those this thread may run on, else CPU 0. */
static void fallback_cpus(char *buf, const char *root, uint64_t *cpus)
{
    if (read_sys(buf, READ_CAP, root, "cpu", -1, "online") == FILE_OK &&
        nm_topology_parse_list(buf, cpus, NM_MAX_CPUS) > 0 && cpus_any(cpus))
        return;
    memset(cpus, 0, sizeof(nm_cpuset));
    cpu_set_t allowed[NM_MAX_CPUS / CPU_SETSIZE];
    if (sched_getaffinity(0, sizeof allowed, allowed) == 0) {
        for (int cpu = 0; cpu < NM_MAX_CPUS; cpu++)
            if (CPU_ISSET_S(cpu, sizeof allowed, allowed)) bit_set(cpus, cpu);
    }
    if (!cpus_any(cpus)) bit_set(cpus, 0);
}

static uint64_t pages_bytes(int name)
{
    long pages = sysconf(name), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* One node 0 with every CPU and all of the machine's memory. */
static void load_fallback(struct nm_topology *t, char *buf, const char *root)
{
    nm_cpuset cpus = {0};
    topology_clear(t);
    fallback_cpus(buf, root, cpus);
    (void)add_node(t, 0, cpus);  /* the first node cannot clash */
    t->has_memory[0] = true;
    t->mem_total[0] = pages_bytes(_SC_PHYS_PAGES);
    t->mem_free[0] = pages_bytes(_SC_AVPHYS_PAGES);
    t->distance[0][0] = LOCAL_DISTANCE;
    t->fallback = true;
}

/* ---- the nodes the process may use ------------------------------------------ */

/* The ids listed on the "Mems_allowed_list:" line of a status text. */
static bool status_mems_allowed(char *text, uint64_t *ids)
{
    static const char key[] = "Mems_allowed_list:";
    char *s = strstr(text, key);
    if (!s || (s != text && s[-1] != '\n')) return false;
    s += sizeof key - 1;
    char *end = strchr(s, '\n');
    if (end) *end = '\0';   /* the list parser wants the line alone */
    return nm_topology_parse_list(s, ids, NM_MAX_NODE_ID) >= 0;
}

/* The ids of the nodes whose memory the process may use; false when that
 * is not known (then every node is allowed). */
static bool read_mems_allowed(char *buf, const char *root, uint64_t *ids)
{
    struct nm_path p = { .len = 0 };
    if (strcmp(root, "/sys") == 0) {
        nm_nodemask mask;
        memset(&mask, 0, sizeof mask);
        if (nm_os_get_mempolicy(NULL, &mask, NULL, NM_MPOL_F_MEMS_ALLOWED) == 0) {
            for (int w = 0; w < NM_MAX_NODE_ID / 64 && w < NM_MASK_WORDS; w++) ids[w] = mask.bits[w];
            return true;
        }
        nm_path_add(&p, "/proc/self/status");
    } else {
        nm_path_add(&p, root);
        nm_path_add(&p, "/proc-self-status");
    }
    /* The Mems_allowed lines come after a few hundred bytes; a status text
     * cut by the buffer may still hold them. */
    return buf && !p.too_long && nm_os_read_file(p.text, buf, READ_CAP) >= 0 &&
           status_mems_allowed(buf, ids);
}

/* mem_allowed, home and mems_limited of a loaded topology. */
static void load_allowed(struct nm_topology *t, char *buf, const char *root)
{
    nm_idset ids = {0};
    bool known = !t->fallback && read_mems_allowed(buf, root, ids);
    bool any = false;
    for (int i = 0; i < t->node_count; i++) {
        t->mem_allowed[i] = !known || bit_test(ids, t->node_id[i]);
        any |= nm_topology_usable(t, i);
    }
    if (!any)   /* not this machine's mask, or a cpuset of nodes we do not know */
        for (int i = 0; i < t->node_count; i++) t->mem_allowed[i] = true;
    t->mems_limited = false;
    for (int i = 0; i < t->node_count; i++) {
        t->mems_limited |= t->has_memory[i] && !t->mem_allowed[i];
        int best = nm_topology_usable(t, i) ? i : -1;
        for (int j = 0; j < t->node_count && best != i; j++)
            if (nm_topology_usable(t, j) && (best < 0 || t->distance[i][j] < t->distance[i][best]))
                best = j;
        t->home[i] = (int16_t)best;
    }
}

void nm_topology_load(struct nm_topology *t, const char *sysfs_root)
{
    /* The files are read into a mapping of their own, given back at the
     * end: on the stack, a buffer this size left the pages below it (where
     * the reads' own frames ran) resident in the main thread's stack for
     * the life of the process.  Without one nothing can be read, and the
     * topology is the fallback. */
    int saved_errno = errno;
    char *buf = nm_os_reserve(READ_CAP, NM_OS_PAGE, false);
    const char *root = sysfs_root ? sysfs_root : "/sys";
    if (!buf || !load_nodes(t, buf, root)) load_fallback(t, buf, root);
    load_allowed(t, buf, root);
    if (buf) nm_os_release(buf, READ_CAP);
    errno = saved_errno;
}

uint64_t nm_topology_free_now(const struct nm_topology *t, int index, const char *sysfs_root)
{
    char buf[MEMINFO_CAP];
    const char *root = sysfs_root ? sysfs_root : "/sys";
    int saved_errno = errno;
    uint64_t free = t->mem_free[index];
    if (t->fallback) {
        free = pages_bytes(_SC_AVPHYS_PAGES);
    } else if (read_sys(buf, sizeof buf, root, "node", t->node_id[index], "meminfo") != FILE_MISSING &&
               meminfo_bytes(buf, "MemFree:", &free)) {
        free = free < t->mem_total[index] ? free : t->mem_total[index];
    }
    errno = saved_errno;
    return free;
}

uint64_t nm_topology_available_now(const struct nm_topology *t, int index, const char *sysfs_root)
{
    char buf[MEMINFO_CAP];
    const char *root = sysfs_root ? sysfs_root : "/sys";
    int saved_errno = errno;
    uint64_t free = 0, cache = 0;
    if (t->fallback || read_sys(buf, sizeof buf, root, "node", t->node_id[index], "meminfo") == FILE_MISSING ||
        !meminfo_bytes(buf, "MemFree:", &free)) {
        errno = saved_errno;
        return nm_topology_free_now(t, index, sysfs_root);
    }
    if (!meminfo_bytes(buf, "Inactive(file):", &cache)) cache = 0;
    errno = saved_errno;
    uint64_t available = free + cache;
    return available < t->mem_total[index] ? available : t->mem_total[index];
}

void nm_topology_refresh_free(struct nm_topology *t, const char *sysfs_root)
{
    for (int i = 0; i < t->node_count; i++) t->mem_free[i] = nm_topology_free_now(t, i, sysfs_root);
}

/* ---- the current node -------------------------------------------------------
 *
 * glibc 2.35+ registers an rseq area for every thread and exports where it
 * lies relative to the thread pointer.  Since Linux 6.3 the kernel writes
 * the thread's node id there (struct rseq: cpu_id at byte 4, node_id at
 * byte 20) on every return to user space; AT_RSEQ_FEATURE_SIZE >= 24 says
 * it does.  glibc before 2.40 sets __rseq_size to 20 although it registers
 * 32 bytes, so only __rseq_size != 0 (registration worked) is required.
 * The symbols are weak: with an older glibc their addresses are NULL.
 */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif

enum { RSEQ_CPU_ID = 4, RSEQ_NODE_ID = 20, RSEQ_NODE_ID_END = 24 };

#if defined(__x86_64__) || defined(__aarch64__)
#define NM_RSEQ_NODE 1
#else
#define NM_RSEQ_NODE 0
#endif

/* Set once by nm_topology_init, before other threads ask. */
static bool rseq_has_node;

#if NM_RSEQ_NODE
/* The address of a 32-bit field of this thread's rseq area; the kernel may
 * change it at any time, hence volatile. */
static inline const volatile uint32_t *rseq_field_ref(size_t offset)
{
    char *tp;
#if defined(__x86_64__)
    __asm__("mov %%fs:0, %0" : "=r"(tp)); /* glibc's TCB points to itself */
#else
    tp = __builtin_thread_pointer();
#endif
    return (const volatile uint32_t *)(tp + __rseq_offset + offset);
}

/* That field's value. */
static inline uint32_t rseq_field(size_t offset)
{
    return *rseq_field_ref(offset);
}
#endif

/* Whether the rseq area carries the node id; checked against getcpu. */
static bool rseq_node_usable(void)
{
#if NM_RSEQ_NODE
    if (&__rseq_offset == NULL || &__rseq_size == NULL || __rseq_size == 0) return false;
    if (getauxval(AT_RSEQ_FEATURE_SIZE) < RSEQ_NODE_ID_END) return false;
    for (int attempt = 0; attempt < 3; attempt++) {  /* a migration may fall between */
        unsigned cpu, node;
        if (getcpu(&cpu, &node) != 0) return false;
        if (rseq_field(RSEQ_CPU_ID) == cpu && rseq_field(RSEQ_NODE_ID) == node) return true;
    }
#endif
    return false;
}

void nm_topology_init(const char *sysfs_root)
{
    int saved_errno = errno;
    nm_topology_load(&nm_topo, sysfs_root);
    rseq_has_node = rseq_node_usable();
    errno = saved_errno;
}

bool nm_topology_uses_rseq(void) { return rseq_has_node; }

const volatile uint32_t *nm_topology_move_word(void)
{
#if NM_RSEQ_NODE
    if (&__rseq_offset == NULL || &__rseq_size == NULL || __rseq_size == 0) return NULL;
    /* cpu_id < 0: glibc could not register this thread's area. */
    if ((int32_t)rseq_field(RSEQ_CPU_ID) < 0) return NULL;
    return rseq_field_ref(rseq_has_node ? RSEQ_NODE_ID : RSEQ_CPU_ID);
#else
    return NULL;
#endif
}

/* Once per process; a thread that comes while another one is at it waits
 * (reading a few sysfs files), nobody else takes a lock. */
void nm_topology_ensure(void)
{
    static _Atomic int state;   /* 0: not yet, 1: running, 2: done */
    if (nm_likely(atomic_load_explicit(&state, memory_order_acquire) == 2)) return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&state, &expected, 1)) {
        while (atomic_load_explicit(&state, memory_order_acquire) != 2) sched_yield();
        return;
    }
    nm_options_init();
    nm_topology_init(nm_opt.sysfs_root);
    atomic_store_explicit(&state, 2, memory_order_release);
}

/* The kernel id of the node this thread runs on. */
static unsigned current_node_id(void)
{
#if NM_RSEQ_NODE
    /* cpu_id < 0: glibc could not register this thread's area. */
    if (nm_likely(rseq_has_node) && (int32_t)rseq_field(RSEQ_CPU_ID) >= 0)
        return rseq_field(RSEQ_NODE_ID);
#endif
    unsigned cpu, node;
    if (getcpu(&cpu, &node) != 0) return 0;
    return node;
}

int nm_topology_current_node(void)
{
    unsigned id = current_node_id();
    int index = id < NM_MAX_NODE_ID ? nm_topo.index_of_id[id] : -1;
    return index >= 0 ? index : 0;
}
