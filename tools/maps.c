/*
 * maps.c — `numamalloc maps PID|NAME... [--json] [--mappings] [-o FILE]`:
 * where running processes' memory is (a name: every process with that
 * command); `numamalloc maps --system`: each node's memory, as numastat -m.  /proc/PID/numa_maps gives each mapping's policy and
 * resident pages per node; /proc/PID/maps gives its end and name, which
 * says its kind ([anon:numamalloc] is the library's, named with
 * PR_SET_VMA_ANON_NAME).  Both files are read whole before anything is
 * printed, so an error never leaves a partial table.
 *
 * NUMAMALLOC_PROC_ROOT=DIR reads DIR/PID/... instead (tests: recorded
 * files with what the test machine's kernel cannot show, e.g. named
 * mappings or hugetlb pages).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "numamalloc.h"
#include "tool.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

enum kind { K_NUMAMALLOC, K_REGION, K_HEAP, K_STACK, K_ANON, K_HUGETLB, K_FILE, K_OTHER, K_COUNT };

static const char *const kind_names[K_COUNT] = {
    "numamalloc", "numamalloc-region", "heap", "stack", "anon", "hugetlb", "file", "other",
};

/* One line of /proc/PID/maps. */
struct area {
    uint64_t start, end;
    const char *name;           /* "" for anonymous memory */
};

/* One line of /proc/PID/numa_maps, joined with its area. */
struct mapping {
    uint64_t start, end;        /* end: start if maps did not list it */
    const char *name;
    char *policy;
    enum kind kind;
    int node_count;             /* entries in node[] and bytes[] */
    int *node;
    uint64_t *bytes;
};

struct policy_total {
    char *policy;
    uint64_t mappings, bytes;
};

struct kind_total {
    uint64_t mappings, size, resident;
    uint64_t *bytes;            /* by node id, NM_NODE_ID_LIMIT entries */
    int policy_count;
    struct policy_total *policies;
};

struct process {
    int pid;
    char comm[64];
    char mems_allowed[256];
    int mapping_count;
    struct mapping *mappings;
    struct kind_total kinds[K_COUNT];
    uint64_t *bytes;            /* by node id, NM_NODE_ID_LIMIT entries */
    bool *node_shown;           /* by node id: a node of the machine, or one with pages */
    uint64_t page_size;
    bool names_supported;
};

static const char *proc_root(void)
{
    const char *root = getenv("NUMAMALLOC_PROC_ROOT");
    return root && *root ? root : "/proc";
}

/* Read /proc/PID/FILE whole, or fail with a one-line reason. */
static char *read_proc(int pid, const char *file, const char *comm)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%d/%s", proc_root(), pid, file);
    char *text = read_text(path);
    if (text) return text;
    int err = errno;
    if (err == ENOENT || err == ESRCH) fail(EXIT_FAILED, "maps: no process %d", pid);
    if (err == EACCES || err == EPERM) {
        fail(EXIT_FAILED, "maps: cannot read %s of process %d (%s): %s (it belongs to another user; "
             "run as that user or as root)", path, pid, comm, strerror(err));
    }
    fail(EXIT_FAILED, "maps: cannot read %s: %s", path, strerror(err));
}

/* Whether this kernel names anonymous mappings (CONFIG_ANON_VMA_NAME). */
static bool anon_names_supported(void)
{
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    bool ok = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, (unsigned long)page,
                    (unsigned long)"numamalloc-probe") == 0;
    munmap(p, (size_t)page);
    return ok;
}

/* Lines of /proc/PID/maps: "start-end perms offset dev inode   name". */
static struct area *parse_areas(char *text, int *count)
{
    int cap = 64, n = 0;
    struct area *areas = xcalloc((size_t)cap, sizeof *areas);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        struct maps_line m;
        if (!maps_line_parse(line, strlen(line), &m)) continue;
        if (n == cap) {
            areas = realloc(areas, (size_t)(cap *= 2) * sizeof *areas);
            if (!areas) fail(EXIT_FAILED, "out of memory");
        }
        areas[n++] = (struct area){ m.start, m.end, line + m.path_at };
    }
    *count = n;
    return areas;
}

static const struct area *find_area(const struct area *areas, int count, uint64_t start)
{
    int lo = 0, hi = count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (areas[mid].start == start) return &areas[mid];
        if (areas[mid].start < start) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* The policy field of a numa_maps line: one word, but two of the kernel's
 * mode names have a space ("prefer (many):0-1", "weighted interleave:0-3"). */
static char *take_policy(char **rest)
{
    static const char *const spaced[] = { "prefer (many)", "weighted interleave" };
    char *s = *rest, *end = NULL;
    for (size_t i = 0; i < sizeof spaced / sizeof spaced[0]; i++) {
        size_t len = strlen(spaced[i]);
        if (strncmp(s, spaced[i], len) == 0) end = s + len;
    }
    end = strchr(end ? end : s, ' ');
    if (end) {
        *end = '\0';
        *rest = end + 1;
    } else {
        *rest = s + strlen(s);
    }
    return s;
}

static enum kind kind_of(const char *name, bool heap, bool stack, bool huge, bool file)
{
    if (strcmp(name, "[anon:numamalloc]") == 0) return K_NUMAMALLOC;
    if (strcmp(name, "[anon:numamalloc-region]") == 0) return K_REGION;
    if (huge) return K_HUGETLB;
    if (heap || strcmp(name, "[heap]") == 0) return K_HEAP;
    if (stack || strncmp(name, "[stack", 6) == 0) return K_STACK;
    if (file) return K_FILE;
    if (name[0] == '[' && strncmp(name, "[anon:", 6) != 0) return K_OTHER;
    return K_ANON;
}

/* One numa_maps line: "start policy [heap|stack|huge|file=PATH] anon=.. N0=12
 * N1=3 kernelpagesize_kB=4".  Returns false for a line that is not one. */
static bool parse_mapping(char *line, const struct area *areas, int area_count, struct mapping *m)
{
    char *rest;
    unsigned long long start = strtoull(line, &rest, 16);
    if (rest == line || *rest != ' ') return false;
    rest++;
    memset(m, 0, sizeof *m);
    m->start = m->end = start;
    m->policy = take_policy(&rest);
    bool heap = false, stack = false, huge = false, file = false;
    uint64_t page_kb = 4;
    int cap = 0;
    for (char *tok = strtok(rest, " "); tok; tok = strtok(NULL, " ")) {
        int node;
        unsigned long long count, kb;
        int used = 0;
        if (strcmp(tok, "heap") == 0) heap = true;
        else if (strncmp(tok, "stack", 5) == 0 && (tok[5] == '\0' || tok[5] == ':')) stack = true;
        else if (strcmp(tok, "huge") == 0) huge = true;
        else if (strncmp(tok, "file=", 5) == 0) file = true;
        else if (sscanf(tok, "kernelpagesize_kB=%llu%n", &kb, &used) == 1 && tok[used] == '\0') page_kb = kb;
        else if (sscanf(tok, "N%d=%llu%n", &node, &count, &used) == 2 && tok[used] == '\0' && node >= 0 &&
                 node < NM_NODE_ID_LIMIT) {
            if (m->node_count == cap) {
                cap = cap ? cap * 2 : 4;
                m->node = realloc(m->node, (size_t)cap * sizeof *m->node);
                m->bytes = realloc(m->bytes, (size_t)cap * sizeof *m->bytes);
                if (!m->node || !m->bytes) fail(EXIT_FAILED, "out of memory");
            }
            m->node[m->node_count] = node;
            m->bytes[m->node_count++] = count;   /* pages for now: kernelpagesize_kB comes last */
        }
    }
    for (int i = 0; i < m->node_count; i++) m->bytes[i] *= page_kb * 1024;
    const struct area *a = find_area(areas, area_count, start);
    m->name = a ? a->name : "";
    if (a) m->end = a->end;
    m->kind = kind_of(m->name, heap, stack, huge, file);
    return true;
}

static void add_policy(struct kind_total *k, char *policy, uint64_t resident)
{
    for (int i = 0; i < k->policy_count; i++) {
        if (strcmp(k->policies[i].policy, policy) == 0) {
            k->policies[i].mappings++;
            k->policies[i].bytes += resident;
            return;
        }
    }
    k->policies = realloc(k->policies, (size_t)(k->policy_count + 1) * sizeof *k->policies);
    if (!k->policies) fail(EXIT_FAILED, "out of memory");
    k->policies[k->policy_count++] = (struct policy_total){ policy, 1, resident };
}

static void gather(struct process *p)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%d/comm", proc_root(), p->pid);
    char *comm = read_text(path);
    if (!comm) {
        if (errno == ENOENT || errno == ESRCH) fail(EXIT_FAILED, "maps: no process %d", p->pid);
        fail(EXIT_FAILED, "maps: cannot read %s: %s", path, strerror(errno));
    }
    comm[strcspn(comm, "\n")] = '\0';
    snprintf(p->comm, sizeof p->comm, "%s", comm);
    free(comm);

    char *numa_maps = read_proc(p->pid, "numa_maps", p->comm);
    char *maps = read_proc(p->pid, "maps", p->comm);
    char *status = read_proc(p->pid, "status", p->comm);
    if (numa_maps[0] == '\0') {
        fail(EXIT_FAILED, "maps: process %d (%s) has no memory map (a kernel thread, or it is exiting)",
             p->pid, p->comm);
    }
    char *allowed = strstr(status, "\nMems_allowed_list:");
    if (allowed) {
        allowed += strlen("\nMems_allowed_list:");
        allowed += strspn(allowed, " \t");
        snprintf(p->mems_allowed, sizeof p->mems_allowed, "%.*s", (int)strcspn(allowed, "\n"), allowed);
    }

    int area_count;
    struct area *areas = parse_areas(maps, &area_count);
    int cap = 64;
    p->mappings = xcalloc((size_t)cap, sizeof *p->mappings);
    /* strtok is used inside parse_mapping, so split the lines by hand. */
    for (char *line = numa_maps, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (p->mapping_count == cap) {
            p->mappings = realloc(p->mappings, (size_t)(cap *= 2) * sizeof *p->mappings);
            if (!p->mappings) fail(EXIT_FAILED, "out of memory");
        }
        if (parse_mapping(line, areas, area_count, &p->mappings[p->mapping_count])) p->mapping_count++;
    }

    p->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
    p->bytes = xcalloc(NM_NODE_ID_LIMIT, sizeof *p->bytes);
    p->node_shown = xcalloc(NM_NODE_ID_LIMIT, sizeof *p->node_shown);
    int ids[NM_NODE_ID_LIMIT];
    int count = nm_node_ids(ids, NM_NODE_ID_LIMIT);
    for (int i = 0; i < count && i < NM_NODE_ID_LIMIT; i++) p->node_shown[ids[i]] = true;
    for (int k = 0; k < K_COUNT; k++) p->kinds[k].bytes = xcalloc(NM_NODE_ID_LIMIT, sizeof(uint64_t));
    for (int i = 0; i < p->mapping_count; i++) {
        struct mapping *m = &p->mappings[i];
        struct kind_total *k = &p->kinds[m->kind];
        uint64_t resident = 0;
        for (int n = 0; n < m->node_count; n++) {
            k->bytes[m->node[n]] += m->bytes[n];
            p->bytes[m->node[n]] += m->bytes[n];
            p->node_shown[m->node[n]] = true;
            resident += m->bytes[n];
        }
        k->mappings++;
        k->size += m->end - m->start;
        k->resident += resident;
        add_policy(k, m->policy, resident);
    }
    p->names_supported = anon_names_supported();
}

/* "N0=12 N1=3": pages per node, nodes without pages left out ("-": none). */
static void format_pages(char *buf, size_t len, const struct process *p, const uint64_t *bytes_by_node)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int n = 0; n < NM_NODE_ID_LIMIT && used < len; n++) {
        if (!bytes_by_node[n]) continue;
        int w = snprintf(buf + used, len - used, "%sN%d=%" PRIu64, used ? " " : "", n,
                         bytes_by_node[n] / p->page_size);
        if (w > 0) used += (size_t)w;
    }
    if (!buf[0]) snprintf(buf, len, "-");
}

static uint64_t total_of(const uint64_t *bytes_by_node)
{
    uint64_t sum = 0;
    for (int n = 0; n < NM_NODE_ID_LIMIT; n++) sum += bytes_by_node[n];
    return sum;
}

static void print_text(const struct process *p, bool list)
{
    char a[32], b[32];
    uint64_t total = total_of(p->bytes);
    printf("process %d (%s): %d mappings, %s resident; memory nodes allowed: %s\n", p->pid, p->comm,
           p->mapping_count, format_bytes(a, total), p->mems_allowed[0] ? p->mems_allowed : "unknown");
    printf("\n%-6s %12s %12s\n", "node", "pages", "bytes");
    for (int n = 0; n < NM_NODE_ID_LIMIT; n++) {
        if (!p->node_shown[n]) continue;
        printf("%-6d %12" PRIu64 " %12s\n", n, p->bytes[n] / p->page_size, format_bytes(a, p->bytes[n]));
    }
    printf("%-6s %12" PRIu64 " %12s\n", "total", total / p->page_size, format_bytes(a, total));

    /* Within 80 columns: pages by node wrap under their column, and each
     * kind's policies follow on a line of their own. */
    printf("\n%-17s %8s %10s %10s  %s\n", "kind", "mappings", "size", "resident", "pages by node");
    for (int k = 0; k < K_COUNT; k++) {
        const struct kind_total *t = &p->kinds[k];
        char pages[2048], policies[1024] = "";
        size_t used = 0;
        for (int i = 0; i < t->policy_count && used < sizeof policies; i++) {
            int w = snprintf(policies + used, sizeof policies - used, "%s%s", i ? "; " : "", t->policies[i].policy);
            if (w > 0) used += (size_t)w;
        }
        format_pages(pages, sizeof pages, p, t->bytes);
        printf("%-17s %8" PRIu64 " %10s %10s  ", kind_names[k], t->mappings, format_bytes(a, t->size),
               format_bytes(b, t->resident));
        print_wrapped(stdout, pages, 50, 50, 80);
        printf("\n");
        if (policies[0]) {
            printf("%18spolicies: ", "");
            print_wrapped(stdout, policies, 28, 28, 80);
            printf("\n");
        }
    }
    if (!p->names_supported && p->kinds[K_NUMAMALLOC].mappings == 0 && p->kinds[K_REGION].mappings == 0) {
        printf("\nThis kernel does not name anonymous mappings (no CONFIG_ANON_VMA_NAME):\n"
               "numamalloc's memory is counted as anon.\n");
    }
    if (!list) return;
    /* Two lines a mapping: where, how big, its policy and kind; then its
     * pages by node and its name. */
    printf("\n%-25s %10s %-20s %s\n", "address", "size", "policy", "kind");
    printf("%4s%s\n", "", "pages by node, name");
    for (int i = 0; i < p->mapping_count; i++) {
        const struct mapping *m = &p->mappings[i];
        char range[48], pages[2048] = "", rest[4096];
        size_t used = 0;
        snprintf(range, sizeof range, "%" PRIx64 "-%" PRIx64, m->start, m->end);
        for (int n = 0; n < m->node_count && used < sizeof pages; n++) {
            int w = snprintf(pages + used, sizeof pages - used, "%sN%d=%" PRIu64, n ? " " : "", m->node[n],
                             m->bytes[n] / p->page_size);
            if (w > 0) used += (size_t)w;
        }
        /* A policy too long for its column goes on a line of its own. */
        if (strlen(m->policy) <= 20) {
            printf("%-25s %10s %-20s %s\n", range, format_bytes(a, m->end - m->start), m->policy,
                   kind_names[m->kind]);
        } else {
            printf("%-25s %10s %-20s %s\n%4s", range, format_bytes(a, m->end - m->start), "(below)",
                   kind_names[m->kind], "");
            print_wrapped(stdout, m->policy, 4, 8, 80);
            printf("\n");
        }
        snprintf(rest, sizeof rest, "%s%s%s", pages[0] ? pages : "-", m->name[0] ? " " : "", m->name);
        printf("%4s", "");
        print_wrapped(stdout, rest, 4, 8, 80);
        printf("\n");
    }
}

static void json_nodes(struct json *j, const struct process *p, const char *key, const uint64_t *bytes_by_node,
                       bool all_shown)
{
    json_open(j, key, '[');
    for (int n = 0; n < NM_NODE_ID_LIMIT; n++) {
        if (all_shown ? !p->node_shown[n] : !bytes_by_node[n]) continue;
        json_open_inline(j, NULL, '{');
        json_int(j, "node", n);
        json_uint(j, "pages", bytes_by_node[n] / p->page_size);
        json_uint(j, "bytes", bytes_by_node[n]);
        json_close(j, '{');
    }
    json_close(j, '[');
}

static void print_json(const struct process *p, bool list)
{
    struct json j;
    json_begin(&j, stdout);
    json_open(&j, NULL, '{');
    json_int(&j, "pid", p->pid);
    json_string(&j, "command", p->comm);
    json_string(&j, "mems_allowed", p->mems_allowed[0] ? p->mems_allowed : NULL);
    json_uint(&j, "page_size", p->page_size);
    json_bool(&j, "anon_names_supported", p->names_supported);
    json_uint(&j, "mapping_count", (uint64_t)p->mapping_count);
    json_nodes(&j, p, "nodes", p->bytes, true);
    uint64_t total = total_of(p->bytes);
    json_open_inline(&j, "total", '{');
    json_uint(&j, "pages", total / p->page_size);
    json_uint(&j, "bytes", total);
    json_close(&j, '{');
    json_open(&j, "kinds", '[');
    for (int k = 0; k < K_COUNT; k++) {
        const struct kind_total *t = &p->kinds[k];
        json_open(&j, NULL, '{');
        json_string(&j, "kind", kind_names[k]);
        json_uint(&j, "mappings", t->mappings);
        json_uint(&j, "size_bytes", t->size);
        json_uint(&j, "resident_bytes", t->resident);
        json_nodes(&j, p, "nodes", t->bytes, false);
        json_open(&j, "policies", '[');
        for (int i = 0; i < t->policy_count; i++) {
            json_open_inline(&j, NULL, '{');
            json_string(&j, "policy", t->policies[i].policy);
            json_uint(&j, "mappings", t->policies[i].mappings);
            json_uint(&j, "resident_bytes", t->policies[i].bytes);
            json_close(&j, '{');
        }
        json_close(&j, '[');
        json_close(&j, '{');
    }
    json_close(&j, '[');
    if (list) {
        json_open(&j, "mappings", '[');
        for (int i = 0; i < p->mapping_count; i++) {
            const struct mapping *m = &p->mappings[i];
            char hex[24];
            json_open_inline(&j, NULL, '{');
            snprintf(hex, sizeof hex, "0x%" PRIx64, m->start);
            json_string(&j, "start", hex);
            snprintf(hex, sizeof hex, "0x%" PRIx64, m->end);
            json_string(&j, "end", hex);
            json_string(&j, "kind", kind_names[m->kind]);
            json_string(&j, "policy", m->policy);
            json_string(&j, "name", m->name);
            json_open_inline(&j, "nodes", '[');
            for (int n = 0; n < m->node_count; n++) {
                json_open_inline(&j, NULL, '{');
                json_int(&j, "node", m->node[n]);
                json_uint(&j, "pages", m->bytes[n] / p->page_size);
                json_uint(&j, "bytes", m->bytes[n]);
                json_close(&j, '{');
            }
            json_close(&j, '[');
            json_close(&j, '{');
        }
        json_close(&j, '[');
    }
    json_close(&j, '{');
    json_end(&j);
}

/* ---- the whole system: each node's meminfo, as numastat -m ---------------------------- */

/* The fields of nodeN/meminfo shown, in this order (kB; HugePages_ in pages). */
static const char *const meminfo_fields[] = {
    "MemTotal", "MemFree", "MemUsed", "FilePages", "AnonPages", "Shmem", "Slab", "KernelStack",
    "PageTables", "AnonHugePages", "HugePages_Total", "HugePages_Free",
};
#define MEMINFO_COUNT (sizeof meminfo_fields / sizeof meminfo_fields[0])
#define SYSTEM_COLUMNS 5   /* nodes per block of the text table: 80 columns */

/* Field f of node `node`'s meminfo in bytes (huge pages at the default
 * huge page size); false if the file or the field is not there. */
static bool meminfo_bytes(const char *text, size_t f, uint64_t huge_page, uint64_t *out)
{
    const char *field = meminfo_fields[f];
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *colon = strchr(line, ':');
        const char *eol = strchr(line, '\n');
        if (!colon || (eol && colon > eol)) continue;
        const char *name = colon;
        while (name > line && name[-1] != ' ') name--;
        if ((size_t)(colon - name) != strlen(field) || strncmp(name, field, strlen(field)) != 0) continue;
        uint64_t v = strtoull(colon + 1, NULL, 10);
        *out = strncmp(field, "HugePages_", 10) == 0 ? v * huge_page : v * 1024;
        return true;
    }
    return false;
}

static void print_system(bool json)
{
    int ids[NM_NODE_ID_LIMIT];
    int count = nm_node_ids(ids, NM_NODE_ID_LIMIT);
    if (count <= 0) fail(EXIT_FAILED, "maps: no NUMA node found under %s", sysfs_root());
    uint64_t huge_page = 2 << 20;
    char *meminfo = read_text("/proc/meminfo");
    if (meminfo) {
        const char *at = strstr(meminfo, "Hugepagesize:");
        if (at) huge_page = strtoull(at + strlen("Hugepagesize:"), NULL, 10) * 1024;
        free(meminfo);
    }
    uint64_t (*value)[MEMINFO_COUNT] = xcalloc((size_t)count, sizeof *value);
    bool have[MEMINFO_COUNT] = { false };
    uint64_t total[MEMINFO_COUNT] = { 0 };
    for (int n = 0; n < count; n++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/devices/system/node/node%d/meminfo", sysfs_root(), ids[n]);
        char *text = read_text(path);
        if (!text) fail(EXIT_FAILED, "maps: cannot read %s: %s", path, strerror(errno));
        for (size_t f = 0; f < MEMINFO_COUNT; f++) {
            if (!meminfo_bytes(text, f, huge_page, &value[n][f])) continue;
            have[f] = true;
            total[f] += value[n][f];
        }
        free(text);
    }
    if (json) {
        struct json j;
        json_begin(&j, stdout);
        json_open(&j, NULL, '{');
        json_uint(&j, "huge_page_size", huge_page);
        json_open(&j, "nodes", '[');
        for (int n = 0; n < count; n++) {
            json_open_inline(&j, NULL, '{');
            json_int(&j, "node", ids[n]);
            for (size_t f = 0; f < MEMINFO_COUNT; f++)
                if (have[f]) json_uint(&j, meminfo_fields[f], value[n][f]);
            json_close(&j, '{');
        }
        json_close(&j, '[');
        json_open_inline(&j, "total", '{');
        for (size_t f = 0; f < MEMINFO_COUNT; f++)
            if (have[f]) json_uint(&j, meminfo_fields[f], total[f]);
        json_close(&j, '{');
        json_close(&j, '{');
        json_end(&j);
    } else {
        printf("memory of every node, MiB (nodeN/meminfo; huge pages of %" PRIu64 " KiB)\n",
               huge_page >> 10);
        /* Blocks of SYSTEM_COLUMNS nodes, the total after the last. */
        for (int first = 0; first < count; first += SYSTEM_COLUMNS) {
            int last = first + SYSTEM_COLUMNS < count ? first + SYSTEM_COLUMNS : count;
            bool with_total = last == count;
            printf("\n%-16s", "node");
            for (int n = first; n < last; n++) printf(" %11d", ids[n]);
            if (with_total) printf(" %11s", "total");
            printf("\n");
            for (size_t f = 0; f < MEMINFO_COUNT; f++) {
                if (!have[f]) continue;
                printf("%-16s", meminfo_fields[f]);
                for (int n = first; n < last; n++) printf(" %11.2f", (double)value[n][f] / (1 << 20));
                if (with_total) printf(" %11.2f", (double)total[f] / (1 << 20));
                printf("\n");
            }
        }
    }
    free(value);
}

/* ---- which processes ------------------------------------------------------------------- */

/* A process id as given ("123"), or 0 if the argument is not a number. */
static int pid_of(const char *arg)
{
    if (arg[0] < '0' || arg[0] > '9') return 0;
    char *end;
    errno = 0;
    long pid = strtol(arg, &end, 10);
    if (*end || errno || pid <= 0 || pid > 0x7fffffff) fail(EXIT_USAGE, "maps: '%s' is not a process id", arg);
    return (int)pid;
}

/* The processes whose command (comm) is `name`, except this one, in pid
 * order, appended to *pids; returns how many. */
static int pids_named(const char *name, int **pids, int *count)
{
    DIR *dir = opendir(proc_root());
    if (!dir) fail(EXIT_FAILED, "maps: cannot read %s: %s", proc_root(), strerror(errno));
    int found = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == getpid()) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%ld/comm", proc_root(), pid);
        char *comm = read_text(path);
        if (!comm) continue;
        comm[strcspn(comm, "\n")] = '\0';
        if (strcmp(comm, name) == 0) {
            *pids = realloc(*pids, (size_t)(*count + 1) * sizeof **pids);
            if (!*pids) fail(EXIT_FAILED, "out of memory");
            (*pids)[(*count)++] = (int)pid;
            found++;
        }
        free(comm);
    }
    closedir(dir);
    return found;
}

static int by_pid(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int cmd_maps(int argc, char **argv)
{
    static const struct option options[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "mappings", no_argument, NULL, OPT_MAPPINGS },
        { "system", no_argument, NULL, OPT_SYSTEM },
        { "output", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    bool json = false, list = false, system = false;
    const char *output = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, ":o:", options, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: json = true; break;
        case OPT_MAPPINGS: list = true; break;
        case OPT_SYSTEM: system = true; break;
        case 'o': output = optarg; break;
        case OPT_HELP: command_help("maps");
        default: bad_option("maps", opt, argv);
        }
    }
    if (system && optind < argc) fail(EXIT_USAGE, "maps: --system takes no process, not '%s'", argv[optind]);
    if (!system && optind >= argc) fail(EXIT_USAGE, "maps: no process given (numamalloc maps PID|NAME... or --system)");
    int *pids = NULL, count = 0;
    bool one_pid = optind + 1 == argc && pid_of(argv[optind]);
    for (int i = optind; i < argc; i++) {
        int pid = pid_of(argv[i]);
        if (pid) {
            pids = realloc(pids, (size_t)(count + 1) * sizeof *pids);
            if (!pids) fail(EXIT_FAILED, "out of memory");
            pids[count++] = pid;
        } else {
            if (!argv[i][0]) fail(EXIT_USAGE, "maps: '' is not a process id nor a command name");
            int before = count;
            if (!pids_named(argv[i], &pids, &count)) fail(EXIT_FAILED, "maps: no process named '%s'", argv[i]);
            qsort(pids + before, (size_t)(count - before), sizeof *pids, by_pid);
        }
    }
    /* Everything is read before anything is written: an error never
     * leaves a partial report. */
    struct process *p = xcalloc((size_t)count, sizeof *p);
    for (int i = 0; i < count; i++) {
        p[i].pid = pids[i];
        gather(&p[i]);
    }
    if (output && strcmp(output, "-") != 0 && !freopen(output, "we", stdout))
        fail(EXIT_FAILED, "maps: cannot write %s: %s", output, strerror(errno));
    if (system) {
        print_system(json);
    } else if (json && one_pid) {
        print_json(&p[0], list);
    } else if (json) {
        /* Several processes (or a name): an array of the same objects. */
        printf("[\n");
        for (int i = 0; i < count; i++) {
            print_json(&p[i], list);
            if (i + 1 < count) printf(",\n");
        }
        printf("]\n");
    } else {
        for (int i = 0; i < count; i++) {
            if (i) printf("\n");
            print_text(&p[i], list);
        }
    }
    finish();
}
