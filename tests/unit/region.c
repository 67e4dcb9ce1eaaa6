/* region.c — regions and verification: nm_region_map with every policy,
 * prefault mode and page-size flag; nm_where against /proc/self/numa_maps
 * and libnuma's numa_move_pages (loaded with dlopen, as an independent
 * check); nm_region_enforcement; nm_region_migrate; bad input.
 *
 * Every check runs on each node the machine has (one here; several in the
 * QEMU guests of tests/vm/).  Checks that need two nodes or more are under
 * `if (nodes > 1)` and print what they checked. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"

#define PAGE 4096ul
#define HUGE (2ul << 20)
#define MAX_IDS 64

static int ids[MAX_IDS], nodes;
static bool has_memory[MAX_IDS], has_cpus[MAX_IDS];

/* ---- reading /proc without malloc between "before" and "after" --------------- */

static char text[4 << 20];

static const char *read_text(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    text[0] = '\0';
    if (fd < 0) return text;
    for (ssize_t n; len + 1 < sizeof text && (n = read(fd, text + len, sizeof text - 1 - len)) > 0;)
        len += (size_t)n;
    close(fd);
    text[len] = '\0';
    return text;
}

static int maps_lines(void)
{
    const char *s = read_text("/proc/self/maps");
    int lines = 0;
    for (; *s; s++) lines += *s == '\n';
    return lines;
}

/* The line of `path` (numa_maps or smaps) that starts the mapping at `addr`,
 * copied to `line`; smaps: the whole block up to the next mapping. */
static bool find_mapping(const char *path, const void *addr, char *out, size_t cap, bool block)
{
    char key[32];
    snprintf(key, sizeof key, "%lx", (unsigned long)(uintptr_t)addr);
    const char *s = read_text(path);
    size_t klen = strlen(key);
    for (const char *line = s; *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol) eol = line + strlen(line);
        if (strncmp(line, key, klen) == 0 && (line[klen] == ' ' || line[klen] == '-')) {
            const char *end = eol;
            if (block) {
                /* smaps: the block ends at the next line that starts a mapping
                 * (a hex address followed by '-'). */
                for (const char *next = *eol ? eol + 1 : eol; *next;) {
                    const char *q = next;
                    while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f')) q++;
                    if (q > next && *q == '-') break;
                    const char *e = strchr(next, '\n');
                    end = e ? e : next + strlen(next);
                    next = e ? e + 1 : end;
                }
            }
            size_t n = (size_t)(end - line) < cap - 1 ? (size_t)(end - line) : cap - 1;
            memcpy(out, line, n);
            out[n] = '\0';
            return true;
        }
        line = *eol ? eol + 1 : eol;
    }
    return false;
}

/* Pages (4 KiB) per node of the mapping at `addr`, from /proc/self/numa_maps
 * ("N0=12": 12 pages of kernelpagesize_kB each). */
static bool numa_maps_counts(const void *addr, uint64_t *counts)
{
    char line[8192];
    memset(counts, 0, sizeof(uint64_t) * NM_NODE_ID_LIMIT);
    if (!find_mapping("/proc/self/numa_maps", addr, line, sizeof line, false)) return false;
    uint64_t page_kb = 4;
    const char *k = strstr(line, "kernelpagesize_kB=");
    if (k) page_kb = strtoull(k + strlen("kernelpagesize_kB="), NULL, 10);
    for (const char *s = line; (s = strstr(s, " N")) != NULL;) {
        char *end;
        long id = strtol(s + 2, &end, 10);
        s += 2;
        if (end == s || *end != '=' || id < 0 || id >= NM_NODE_ID_LIMIT) continue;
        counts[id] += strtoull(end + 1, NULL, 10) * page_kb / 4;
    }
    return true;
}

/* Whether the VmFlags of the mapping at `addr` (smaps) include `flag`. */
static bool vm_flag(const void *addr, const char *flag)
{
    static char block[16384];
    if (!find_mapping("/proc/self/smaps", addr, block, sizeof block, true)) return false;
    const char *v = strstr(block, "VmFlags:");
    if (!v) return false;
    char want[8];
    snprintf(want, sizeof want, " %s", flag);
    for (const char *s = v; (s = strstr(s, want)) != NULL; s++)
        if (s[strlen(want)] == ' ' || s[strlen(want)] == '\n' || s[strlen(want)] == '\0') return true;
    return false;
}

/* ---- libnuma, loaded at run time ------------------------------------------------ */

typedef long (*move_pages_fn)(int, unsigned long, void **, const int *, int *, int);
static move_pages_fn libnuma_move_pages;

static void load_libnuma(void)
{
    void *h = dlopen("libnuma.so.1", RTLD_NOW);
    if (h) libnuma_move_pages = (move_pages_fn)dlsym(h, "numa_move_pages");
    if (!libnuma_move_pages)
        printf("note: libnuma.so.1 not loaded (%s): nm_where is compared with numa_maps only\n",
               dlerror());
}

/* Whether each of `n` pages from `p` is present and mapped by this process
 * alone, from /proc/self/pagemap (bit 63 present, bit 56 exclusively
 * mapped; both readable without privileges).  The shared zero page never
 * is; a page this test wrote always is (the test does not fork).  Returns
 * false when pagemap cannot be read. */
static bool own_pages(const void *p, unsigned long n, bool *own)
{
    static uint64_t entries[1024];
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t want = n * sizeof entries[0];
    ssize_t got = pread(fd, entries, want, (off_t)((uintptr_t)p / PAGE * sizeof entries[0]));
    close(fd);
    if (got != (ssize_t)want) return false;
    for (unsigned long i = 0; i < n; i++) own[i] = (entries[i] >> 63 & 1) && (entries[i] >> 56 & 1);
    return true;
}

/* Pages per node of [p, p + len) by libnuma's numa_move_pages, leaving out
 * the shared zero page, to which some kernels' move_pages gives a node
 * (pagemap tells it apart: not this process's own page). */
static long libnuma_counts(void *p, size_t len, uint64_t *counts)
{
    memset(counts, 0, sizeof(uint64_t) * NM_NODE_ID_LIMIT);
    long resident = 0;
    static void *pages[1024];
    static int status[1024];
    static bool own[1024];
    for (size_t off = 0; off < len;) {
        unsigned long n = 0;
        for (; n < 1024 && off < len; n++, off += PAGE) pages[n] = (char *)p + off;
        if (libnuma_move_pages(0, n, pages, NULL, status, 0) != 0) return -1;
        if (!own_pages(pages[0], n, own)) return -1;
        for (unsigned long i = 0; i < n; i++)
            if (status[i] >= 0 && status[i] < NM_NODE_ID_LIMIT && own[i]) {
                counts[status[i]]++;
                resident++;
            }
    }
    return resident;
}

/* ---- helpers ------------------------------------------------------------------- */

static uint64_t where[NM_NODE_ID_LIMIT], other[NM_NODE_ID_LIMIT];

/* nm_where of the whole region; the counts agree with numa_maps and libnuma. */
static long where_region(nm_region *r, const char *what)
{
    memset(where, 0, sizeof where);
    long resident = nm_where(nm_region_addr(r), nm_region_size(r), where, NM_NODE_ID_LIMIT);
    CHECK(resident >= 0, "%s: nm_where failed: %s", what, strerror(errno));
    uint64_t sum = 0;
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++) sum += where[id];
    CHECK(sum == (uint64_t)resident, "%s: counts add up to %" PRIu64 ", resident %ld", what, sum,
          resident);
    if (numa_maps_counts(nm_region_addr(r), other)) {
        for (int id = 0; id < NM_NODE_ID_LIMIT; id++)
            CHECK(other[id] == where[id], "%s: node %d: numa_maps %" PRIu64 ", nm_where %" PRIu64,
                  what, id, other[id], where[id]);
    } else {
        /* numa_maps omits nothing but may show no line for a region whose
         * VMA merged with a neighbour; ours are named, so they never do. */
        CHECK(false, "%s: no numa_maps line for %p", what, nm_region_addr(r));
    }
    if (libnuma_move_pages) {
        long lr = libnuma_counts(nm_region_addr(r), nm_region_size(r), other);
        CHECK(lr == resident, "%s: libnuma says %ld resident, nm_where %ld", what, lr, resident);
        for (int id = 0; id < NM_NODE_ID_LIMIT; id++)
            CHECK(other[id] == where[id], "%s: node %d: libnuma %" PRIu64 ", nm_where %" PRIu64, what,
                  id, other[id], where[id]);
    }
    return resident;
}

static nm_policy bind_to(int node)
{
    nm_nodeset s;
    nm_nodeset_clear(&s);
    nm_nodeset_add(&s, node);
    return nm_policy_bind(&s);
}

static nm_policy parse(const char *text_policy)
{
    nm_policy p;
    char err[200];
    REQUIRE(nm_policy_parse(text_policy, &p, err, sizeof err) == 0, "%s: %s", text_policy, err);
    return p;
}

static void check_enforcement(nm_region *r, enum nm_enforcement_level level, uint64_t resident,
                              const char *what)
{
    struct nm_enforcement e;
    REQUIRE(nm_region_enforcement(r, &e) == 0, "%s", what);
    CHECK(e.pages == nm_region_size(r) / PAGE, "%s: pages %" PRIu64, what, e.pages);
    CHECK(e.resident == resident, "%s: resident %" PRIu64 ", expected %" PRIu64, what, e.resident,
          resident);
    CHECK(e.level == level, "%s: level %s, expected %s", what,
          e.level == NM_ENFORCEMENT_HARD ? "hard" : "soft", level == NM_ENFORCEMENT_HARD ? "hard" : "soft");
    uint64_t sum = 0;
    for (int i = 0; i < nodes; i++) {
        CHECK(e.per_node[i] == where[ids[i]], "%s: per_node[%d] %" PRIu64 ", node %d has %" PRIu64,
              what, i, e.per_node[i], ids[i], where[ids[i]]);
        sum += e.per_node[i];
    }
    CHECK(sum == e.resident && e.on_allowed <= e.resident, "%s", what);
}

/* Nothing in the region may sit on a memory-only node unless `p` names it. */
static void no_unnamed_memory_only(const nm_policy *p, const char *what)
{
    for (int i = 0; i < nodes; i++)
        if (!has_cpus[i] && !nm_nodeset_has(&p->nodes, ids[i]))
            CHECK(where[ids[i]] == 0, "%s: %" PRIu64 " pages on memory-only node %d", what,
                  where[ids[i]], ids[i]);
}

/* ---- the checks ----------------------------------------------------------------- */

static void bind_touch_each_node(void)
{
    for (int i = 0; i < nodes; i++) {
        if (!has_memory[i]) continue;
        char what[64];
        snprintf(what, sizeof what, "bind:%d touch", ids[i]);
        nm_policy p = bind_to(ids[i]);
        nm_region *r = nm_region_map(6 * HUGE + 3 * PAGE, &p, NM_PREFAULT_TOUCH, 0);
        REQUIRE(r, "%s: %s", what, strerror(errno));
        size_t pages = nm_region_size(r) / PAGE;
        CHECK(nm_region_size(r) == 6 * HUGE + 3 * PAGE);
        long resident = where_region(r, what);
        CHECK(resident == (long)pages && where[ids[i]] == pages, "%s: %ld resident, %" PRIu64
              " on the node, of %zu", what, resident, where[ids[i]], pages);
        check_enforcement(r, NM_ENFORCEMENT_HARD, pages, what);
        /* Fresh memory reads as zero. */
        const unsigned char *b = nm_region_addr(r);
        bool zero = true;
        for (size_t off = 0; off < nm_region_size(r); off += 997) zero &= b[off] == 0;
        CHECK(zero, "%s: not zero", what);
        CHECK(nm_region_unmap(r) == 0);

        /* preferred:N, with room to spare: every page on N as well. */
        snprintf(what, sizeof what, "preferred:%d touch", ids[i]);
        p = nm_policy_preferred(ids[i]);
        r = nm_region_map(3 * HUGE, &p, NM_PREFAULT_TOUCH, NM_REGION_HUGEPAGES);
        REQUIRE(r, "%s: %s", what, strerror(errno));
        pages = nm_region_size(r) / PAGE;
        CHECK(where_region(r, what) == (long)pages && where[ids[i]] == pages, "%s: %" PRIu64
              " of %zu on the node", what, where[ids[i]], pages);
        check_enforcement(r, NM_ENFORCEMENT_HARD, pages, what);
        CHECK(nm_region_unmap(r) == 0);
    }
    printf("bind:N and preferred:N with touch: every page on N, enforcement hard, on %d node(s)\n",
           nodes);
}

/* Whether this kernel maps its shared zero page for a read fault in a
 * region of `flags` (4 KiB pages, or a THP range's huge zero page), by the
 * process's RSS: some kernels give every read fault a page of its own
 * (then what was only read is resident, and nm_where must count it). */
static bool reads_map_zero_page(unsigned flags)
{
    nm_region *r = nm_region_map(2 * HUGE, NULL, NM_PREFAULT_NONE, flags);
    REQUIRE(r, "%s", strerror(errno));
    volatile char *b = nm_region_addr(r);
    size_t size = nm_region_size(r), before = nm_test_rss();
    char sum = 0;
    for (size_t off = 0; off < size; off += PAGE) sum += b[off];
    size_t after = nm_test_rss(), grown = after > before ? after - before : 0;
    CHECK(sum == 0);
    CHECK(nm_region_unmap(r) == 0);
    return grown < size / 2;
}

static void prefault_none(void)
{
    bool zero_page = reads_map_zero_page(NM_REGION_NOHUGEPAGES);
    /* 4 KiB pages: with THP "always" one write would fault in 2 MiB. */
    nm_region *r = nm_region_map(5 * HUGE, NULL, NM_PREFAULT_NONE, NM_REGION_NOHUGEPAGES);
    REQUIRE(r, "%s", strerror(errno));
    size_t pages = nm_region_size(r) / PAGE;
    CHECK(where_region(r, "none") == 0);
    /* Asking again still finds nothing: nm_where faults nothing in. */
    CHECK(where_region(r, "none, again") == 0);
    check_enforcement(r, NM_ENFORCEMENT_SOFT, 0, "none");
    /* Read some pages (the shared zero page: still not resident anywhere;
     * resident where the kernel gives read faults pages of their own),
     * write three others. */
    volatile char *b = nm_region_addr(r);
    char sum = 0;
    for (size_t off = 0; off < 64 * PAGE; off += PAGE) sum += b[off];
    CHECK(sum == 0);
    b[100 * PAGE] = 1;
    b[101 * PAGE + 5] = 2;
    b[nm_region_size(r) - 1] = 3;
    long read = zero_page ? 0 : 64;
    long resident = where_region(r, "three written");
    CHECK(resident == 3 + read, "%ld resident after reading 64 pages (%s) and writing 3",
          resident, zero_page ? "the zero page" : "pages of their own");
    check_enforcement(r, NM_ENFORCEMENT_SOFT, (size_t)(3 + read), "three written");
    CHECK(resident < (long)pages);
    /* Part of a range: only the pages [ptr, ptr + len) touches. */
    uint64_t c[NM_NODE_ID_LIMIT] = { 0 };
    CHECK(nm_where((const char *)b + 101 * PAGE + 4095, 2, c, NM_NODE_ID_LIMIT) == 1,
          "the two bytes span page 101 (written) and 102 (not)");
    CHECK(nm_where((const char *)b + 100 * PAGE + 1, 1, NULL, 0) == 1);
    CHECK(nm_where((const char *)b, 0, NULL, 0) == 0);
    CHECK(nm_region_unmap(r) == 0);
    printf("prefault none: nothing resident, nm_where faults nothing in, enforcement soft\n");
}

/* Pages only read map the kernel's shared zero page (4 KiB pages) or its
 * huge zero page (a 2 MiB range read under THP): no memory of the process,
 * so nm_where and the enforcement report count none of them, on kernels
 * whose move_pages gives such a page a node as on those that say -EFAULT.
 * Written pages are counted.  On a kernel that gives a read fault a page
 * of its own (reads_map_zero_page: the RSS grows), every page read is
 * resident and counted. */
static void read_only_pages(void)
{
    static const struct { unsigned flags; const char *name; } kinds[] = {
        { NM_REGION_NOHUGEPAGES, "4 KiB pages" },
        { NM_REGION_HUGEPAGES, "huge pages" },
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const char *what = kinds[k].name;
        bool zero_page = reads_map_zero_page(kinds[k].flags);
        nm_region *r = nm_region_map(2 * HUGE, NULL, NM_PREFAULT_NONE, kinds[k].flags);
        REQUIRE(r, "%s: %s", what, strerror(errno));
        volatile char *b = nm_region_addr(r);
        size_t size = nm_region_size(r), pages = size / PAGE;
        char sum = 0;
        for (size_t off = 0; off < size; off += PAGE) sum += b[off];
        CHECK(sum == 0, "%s: fresh memory reads as zero", what);
        uint64_t counts[NM_NODE_ID_LIMIT] = { 0 };
        long read = zero_page ? 0 : (long)pages;
        long resident = nm_where((const void *)b, size, counts, NM_NODE_ID_LIMIT);
        CHECK(resident == read, "%s: %ld of %zu pages resident after reading them all, expected %ld",
              what, resident, pages, read);
        uint64_t counted = 0;
        for (int id = 0; id < NM_NODE_ID_LIMIT; id++) counted += counts[id];
        CHECK(counted == (uint64_t)read, "%s: %" PRIu64 " read pages counted on nodes", what,
              counted);
        struct nm_enforcement e;
        REQUIRE(nm_region_enforcement(r, &e) == 0, "%s", what);
        /* Hard once every page is resident (all of them read, here). */
        enum nm_enforcement_level level = read ? NM_ENFORCEMENT_HARD : NM_ENFORCEMENT_SOFT;
        CHECK(e.resident == (uint64_t)read && e.on_allowed == (uint64_t)read && e.level == level,
              "%s: enforcement after reading: resident %" PRIu64 ", on allowed nodes %" PRIu64,
              what, e.resident, e.on_allowed);
        /* Now write: one page in the first 2 MiB, the last byte of the second
         * (with huge pages each write may fault in a whole 2 MiB page). */
        b[7 * PAGE] = 1;
        b[size - 1] = 2;
        long written = nm_where((const void *)b, size, NULL, 0);
        long at_least = zero_page ? 2 : (long)pages;
        long at_most = kinds[k].flags & NM_REGION_HUGEPAGES || !zero_page ? (long)pages : 2;
        CHECK(written >= at_least && written <= at_most,
              "%s: %ld resident after writing 2 pages, expected %ld to %ld", what, written,
              at_least, at_most);
        CHECK(nm_where((const void *)(b + 7 * PAGE), 1, NULL, 0) == 1, "%s: the written page", what);
        CHECK(nm_where((const void *)(b + size - 1), 1, NULL, 0) == 1, "%s: the last page", what);
        REQUIRE(nm_region_enforcement(r, &e) == 0, "%s", what);
        CHECK(e.resident == (uint64_t)written, "%s: enforcement resident %" PRIu64 ", nm_where %ld",
              what, e.resident, written);
        CHECK(nm_region_unmap(r) == 0);
    }
    printf("read only: zero-page mappings (4 KiB and huge) not resident (pages a read fault\n"
           "  got of their own, on kernels without them, resident); written pages resident\n");
}

static void populate(void)
{
    static const char *const policies[] = { "local", "bind:all", "interleave:all", "preferred:%d" };
    for (size_t k = 0; k < sizeof policies / sizeof policies[0]; k++) {
        char name[64];
        int first = -1;
        for (int i = 0; i < nodes && first < 0; i++) if (has_memory[i]) first = ids[i];
        snprintf(name, sizeof name, policies[k], first);
        nm_policy p = parse(name);
        nm_region *r = nm_region_map(3 * HUGE + PAGE, &p, NM_PREFAULT_POPULATE, 0);
        REQUIRE(r, "%s: %s", name, strerror(errno));
        size_t pages = nm_region_size(r) / PAGE;
        long resident = where_region(r, name);
        CHECK(resident == (long)pages, "%s populate: %ld of %zu resident", name, resident, pages);
        check_enforcement(r, NM_ENFORCEMENT_HARD, pages, name);
        no_unnamed_memory_only(&p, name);
        if (p.mode == NM_POLICY_PREFERRED)
            CHECK(where[first] == pages, "preferred:%d: %" PRIu64 " of %zu there", first,
                  where[first], pages);
        CHECK(nm_region_unmap(r) == 0);
    }
    printf("prefault populate: every page resident, enforcement hard\n");
}

static void page_size_flags(void)
{
    nm_region *r = nm_region_map(4 * HUGE + 100, NULL, NM_PREFAULT_TOUCH, NM_REGION_HUGEPAGES);
    REQUIRE(r, "%s", strerror(errno));
    CHECK((uintptr_t)nm_region_addr(r) % HUGE == 0, "hugepages region at %p", nm_region_addr(r));
    CHECK(nm_region_size(r) == 4 * HUGE + PAGE);
    CHECK(vm_flag(nm_region_addr(r), "hg"), "no 'hg' in VmFlags");
    CHECK(!vm_flag(nm_region_addr(r), "nh"));
    CHECK(where_region(r, "hugepages") == (long)(nm_region_size(r) / PAGE));
    CHECK(nm_region_unmap(r) == 0);

    r = nm_region_map(HUGE, NULL, NM_PREFAULT_NONE, NM_REGION_NOHUGEPAGES);
    REQUIRE(r, "%s", strerror(errno));
    CHECK(vm_flag(nm_region_addr(r), "nh"), "no 'nh' in VmFlags");
    CHECK(!vm_flag(nm_region_addr(r), "hg"));
    CHECK(nm_region_unmap(r) == 0);

    /* Plain regions carry neither flag. */
    r = nm_region_map(HUGE, NULL, NM_PREFAULT_NONE, 0);
    REQUIRE(r);
    CHECK(!vm_flag(nm_region_addr(r), "nh") && !vm_flag(nm_region_addr(r), "hg"));
    CHECK(nm_region_unmap(r) == 0);
    printf("hugepages: 2 MiB aligned, VmFlags hg; nohugepages: VmFlags nh\n");
}

/* ---- hugetlb: uses node `node`'s pool, which the test may grow for itself ---- */

static char pool_path[256];
static long pool_saved = -1;

static long read_long(const char *path)
{
    const char *s = read_text(path);
    return *s ? strtol(s, NULL, 10) : -1;
}

static bool write_long(const char *path, long v)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", v);
    bool ok = write(fd, buf, (size_t)n) == n;
    close(fd);
    return ok;
}

static void restore_pool(void)
{
    if (pool_saved >= 0 && !write_long(pool_path, pool_saved))
        fprintf(stderr, "could not restore %s to %ld\n", pool_path, pool_saved);
}

static void hugetlb(void)
{
    int node = -1;
    for (int i = 0; i < nodes && node < 0; i++) if (has_memory[i] && has_cpus[i]) node = ids[i];
    REQUIRE(node >= 0);
    char dir[200], free_path[256];
    snprintf(dir, sizeof dir, "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB", node);
    snprintf(pool_path, sizeof pool_path, "%s/nr_hugepages", dir);
    snprintf(free_path, sizeof free_path, "%s/free_hugepages", dir);
    long overcommit = read_long("/proc/sys/vm/nr_overcommit_hugepages");
    long before = read_long(pool_path);
    if (before < 0) {
        printf("hugetlb: %s unreadable (no hugetlb support): not checked\n", pool_path);
        return;
    }
    /* Grow the node's pool by 2 pages for this test, if we may. */
    if (write_long(pool_path, before + 2)) {
        pool_saved = before;
        atexit(restore_pool);
    }
    long free_pages = read_long(free_path);
    nm_policy p = bind_to(node);
    int lines = maps_lines();
    if (free_pages >= 2) {
        nm_region *r = nm_region_map(HUGE + 1, &p, NM_PREFAULT_NONE, NM_REGION_HUGETLB);
        REQUIRE(r, "hugetlb with %ld free pages on node %d: %s", free_pages, node, strerror(errno));
        CHECK(nm_region_size(r) == 2 * HUGE && (uintptr_t)nm_region_addr(r) % HUGE == 0,
              "rounded up to huge pages: %zu bytes at %p", nm_region_size(r), nm_region_addr(r));
        CHECK(read_long(free_path) == free_pages - 2, "the pool pages are taken at map time");
        CHECK(vm_flag(nm_region_addr(r), "ht"), "VmFlags without ht");
        long resident = where_region(r, "hugetlb");
        CHECK(resident == (long)(2 * HUGE / PAGE) && where[node] == 2 * HUGE / PAGE,
              "hugetlb: %ld resident", resident);
        check_enforcement(r, NM_ENFORCEMENT_HARD, 2 * HUGE / PAGE, "hugetlb");
        memset(nm_region_addr(r), 0x5a, HUGE);
        CHECK(nm_region_unmap(r) == 0);
        CHECK(read_long(free_path) == free_pages);

        r = nm_region_map(2 * HUGE, &p, NM_PREFAULT_TOUCH, NM_REGION_HUGETLB);
        REQUIRE(r, "hugetlb touch: %s", strerror(errno));
        CHECK(where_region(r, "hugetlb touch") == (long)(2 * HUGE / PAGE));
        CHECK(nm_region_unmap(r) == 0);
        printf("hugetlb: %ld free pages on node %d: mapped, resident there, pool given back\n",
               free_pages, node);
    }
    /* More pages than the node's pool has: ENOMEM, nothing left mapped. */
    free_pages = read_long(free_path);
    if (overcommit == 0) {
        errno = 0;
        nm_region *r = nm_region_map((size_t)(free_pages + 1) * HUGE, &p, NM_PREFAULT_NONE,
                                     NM_REGION_HUGETLB);
        CHECK(r == NULL && errno == ENOMEM, "hugetlb beyond the pool (%ld free): %p errno %d",
              free_pages, (void *)r, errno);
        CHECK(read_long(free_path) == free_pages, "pool pages leaked");
        printf("hugetlb: %ld pages asked of a pool of %ld free: ENOMEM\n", free_pages + 1, free_pages);
    } else {
        printf("hugetlb: nr_overcommit_hugepages is %ld: the shortage path is not checked\n",
               overcommit);
    }
    CHECK(maps_lines() == lines, "maps: %d lines, %d before", maps_lines(), lines);
    restore_pool();
    pool_saved = -1;
}

static void fill(nm_region *r, unsigned seed)
{
    uint32_t *w = nm_region_addr(r);
    for (size_t i = 0; i < nm_region_size(r) / 4; i += 61) w[i] = (uint32_t)i * 2654435761u + seed;
}

static bool filled(nm_region *r, unsigned seed)
{
    const uint32_t *w = nm_region_addr(r);
    for (size_t i = 0; i < nm_region_size(r) / 4; i += 61)
        if (w[i] != (uint32_t)i * 2654435761u + seed) return false;
    return true;
}

static void migrate(void)
{
    int first = -1;
    for (int i = 0; i < nodes && first < 0; i++) if (has_memory[i]) first = ids[i];
    nm_policy p = bind_to(first);
    nm_region *r = nm_region_map(4 * HUGE, &p, NM_PREFAULT_TOUCH, NM_REGION_NOHUGEPAGES);
    REQUIRE(r);
    size_t pages = nm_region_size(r) / PAGE;
    fill(r, 1);
    char name[64];
    snprintf(name, sizeof name, "preferred:%d", first);
    const char *targets[] = { "local", name, "interleave:all", "bind:all", "preferred-many:all" };
    for (size_t k = 0; k < sizeof targets / sizeof targets[0]; k++) {
        nm_policy to = parse(targets[k]);
        CHECK(nm_region_migrate(r, &to) == 0, "migrate to %s: %s", targets[k], strerror(errno));
        CHECK(filled(r, 1), "data changed by migrating to %s", targets[k]);
        CHECK(where_region(r, targets[k]) == (long)pages);
        check_enforcement(r, NM_ENFORCEMENT_HARD, pages, targets[k]);
    }
    CHECK(nm_region_migrate(r, NULL) == 0);
    CHECK(nm_region_migrate(r, &p) == 0, "back to bind:%d: %s", first, strerror(errno));
    CHECK(filled(r, 1) && where_region(r, "back") == (long)pages && where[first] == pages);
    check_enforcement(r, NM_ENFORCEMENT_HARD, pages, "back");

    /* Bad policies change nothing. */
    nm_nodeset empty;
    nm_nodeset_clear(&empty);
    nm_policy bad = nm_policy_bind(&empty);
    errno = 0;
    CHECK(nm_region_migrate(r, &bad) == -1 && errno == EINVAL);
    CHECK(filled(r, 1) && where_region(r, "after a bad migrate") == (long)pages && where[first] == pages);
    errno = 0;
    CHECK(nm_region_migrate(NULL, &p) == -1 && errno == EINVAL);

    /* Between nodes: every page moves, data kept, the new policy is the
     * region's (enforcement checks against it). */
    if (nodes > 1) {
        int moved = 0;
        for (int i = 0; i < nodes; i++) {
            if (!has_memory[i]) continue;
            nm_policy to = bind_to(ids[i]);
            char what[64];
            snprintf(what, sizeof what, "migrate to bind:%d", ids[i]);
            CHECK(nm_region_migrate(r, &to) == 0, "%s: %s", what, strerror(errno));
            CHECK(filled(r, 1), "%s: data changed", what);
            CHECK(where_region(r, what) == (long)pages && where[ids[i]] == pages,
                  "%s: %" PRIu64 " of %zu there", what, where[ids[i]], pages);
            check_enforcement(r, NM_ENFORCEMENT_HARD, pages, what);
            moved++;
        }
        /* To interleave: pages already on a node of the set move too, so the
         * region ends up spread evenly, not left where it was. */
        nm_policy il = parse("interleave:all");
        CHECK(nm_region_migrate(r, &il) == 0, "to interleave:all: %s", strerror(errno));
        CHECK(filled(r, 1));
        where_region(r, "migrate to interleave:all");
        int set = nm_nodeset_count(&il.nodes);
        for (int i = 0; i < nodes; i++) {
            if (!nm_nodeset_has(&il.nodes, ids[i])) continue;
            long share = (long)where[ids[i]], even = (long)(pages / (size_t)set);
            CHECK(share >= even - 1 && share <= even + 1, "interleave:all: node %d has %ld, even is %ld",
                  ids[i], share, even);
        }
        /* Huge pages: interleaved by 2 MiB, each node within one huge page of
         * even (huge pages move whole). */
        nm_policy first_only = bind_to(first);
        nm_region *h = nm_region_map((size_t)set * 2 * HUGE, &first_only, NM_PREFAULT_TOUCH,
                                     NM_REGION_HUGEPAGES);
        REQUIRE(h);
        fill(h, 2);
        size_t hpages = nm_region_size(h) / PAGE;
        CHECK(nm_region_migrate(h, &il) == 0, "huge pages to interleave:all: %s", strerror(errno));
        CHECK(filled(h, 2) && where_region(h, "huge pages to interleave:all") == (long)hpages);
        check_enforcement(h, NM_ENFORCEMENT_HARD, hpages, "huge pages to interleave:all");
        for (int i = 0; i < nodes; i++) {
            if (!nm_nodeset_has(&il.nodes, ids[i])) continue;
            long share = (long)where[ids[i]], even = (long)(hpages / (size_t)set), unit = HUGE / PAGE;
            CHECK(share >= even - unit && share <= even + unit,
                  "huge pages, interleave:all: node %d has %ld, even is %ld", ids[i], share, even);
        }
        CHECK(nm_region_unmap(h) == 0);
        printf("migrate: between %d nodes one by one, then to interleave:all evenly (4 KiB and "
               "2 MiB pages)\n", moved);
    } else {
        printf("migrate: one node: between policies only (moves between nodes need the guest)\n");
    }
    CHECK(nm_region_unmap(r) == 0);
}

/* Interleave with 4 KiB pages: every node of the set within one page of an
 * even share.  Bind and preferred-many over every node with CPUs, touched
 * from threads on each node: each node gets its share. */
static void spread(void)
{
    nm_policy il = parse("interleave:all");
    nm_region *r = nm_region_map(8 * HUGE + 5 * PAGE, &il, NM_PREFAULT_TOUCH, NM_REGION_NOHUGEPAGES);
    REQUIRE(r);
    size_t pages = nm_region_size(r) / PAGE;
    CHECK(where_region(r, "interleave:all touch") == (long)pages);
    check_enforcement(r, NM_ENFORCEMENT_HARD, pages, "interleave:all touch");
    int set = nm_nodeset_count(&il.nodes);
    for (int i = 0; i < nodes; i++) {
        if (!nm_nodeset_has(&il.nodes, ids[i])) continue;
        long share = (long)where[ids[i]], low = (long)(pages / (size_t)set);
        CHECK(share >= low && share <= low + 1, "interleave: node %d has %ld pages, even is %ld",
              ids[i], share, low);
    }
    CHECK(nm_region_unmap(r) == 0);

    nm_nodeset cpu_nodes;
    nm_nodeset_clear(&cpu_nodes);
    for (int i = 0; i < nodes; i++) if (has_memory[i] && has_cpus[i]) nm_nodeset_add(&cpu_nodes, ids[i]);
    int n = nm_nodeset_count(&cpu_nodes);
    nm_policy modes[2] = { nm_policy_bind(&cpu_nodes), nm_policy_preferred_many(&cpu_nodes) };
    /* This thread is pinned to one node's CPUs meanwhile (as OpenMP pins its
     * first thread): the touching threads must still run on their nodes. */
    cpu_set_t saved, one_node;
    REQUIRE(sched_getaffinity(0, sizeof saved, &saved) == 0);
    CPU_ZERO(&one_node);
    int first_cpu_node = -1;
    for (int i = 0; i < nodes && first_cpu_node < 0; i++)
        if (nm_nodeset_has(&cpu_nodes, ids[i])) first_cpu_node = ids[i];
    int cpus[1024];
    int ncpus = nm_node_cpus(first_cpu_node, cpus, 1024);
    for (int c = 0; c < ncpus && c < 1024; c++) CPU_SET(cpus[c], &one_node);
    REQUIRE(sched_setaffinity(0, sizeof one_node, &one_node) == 0);
    for (int m = 0; m < 2; m++) {
        if (m == 1 && nm_policy_check(&modes[m], NULL, 0) != 0) {
            printf("preferred-many: not in this kernel, not checked\n");
            continue;
        }
        const char *what = m == 0 ? "bind over the CPU nodes" : "preferred-many over the CPU nodes";
        r = nm_region_map((size_t)n * 4 * HUGE, &modes[m], NM_PREFAULT_TOUCH, NM_REGION_NOHUGEPAGES);
        REQUIRE(r, "%s", what);
        pages = nm_region_size(r) / PAGE;
        CHECK(where_region(r, what) == (long)pages);
        check_enforcement(r, NM_ENFORCEMENT_HARD, pages, what);
        no_unnamed_memory_only(&modes[m], what);
        /* The share of each node is touched by a thread on that node; the
         * kernel gives a bound (or preferred-many) page to the node of the
         * set nearest to the thread that touches it: the thread's own. */
        for (int i = 0; i < nodes; i++)
            if (nm_nodeset_has(&cpu_nodes, ids[i]))
                CHECK(where[ids[i]] == pages / (size_t)n, "%s: node %d has %" PRIu64 " of %zu", what,
                      ids[i], where[ids[i]], pages);
        CHECK(nm_region_unmap(r) == 0);
    }
    REQUIRE(sched_setaffinity(0, sizeof saved, &saved) == 0);

    /* Local, touched by this thread: no page on a memory-only node. */
    r = nm_region_map(4 * HUGE, NULL, NM_PREFAULT_TOUCH, 0);
    REQUIRE(r);
    nm_policy local = nm_policy_local();
    CHECK(where_region(r, "local touch") == (long)(4 * HUGE / PAGE));
    no_unnamed_memory_only(&local, "local touch");
    check_enforcement(r, NM_ENFORCEMENT_HARD, 4 * HUGE / PAGE, "local touch");
    CHECK(nm_region_unmap(r) == 0);
    printf("interleave within one page of even over %d node(s); bind and preferred-many touched "
           "from each of %d CPU node(s) evenly, the caller pinned to node %d\n", set, n,
           first_cpu_node);
}

static void bad_input(void)
{
    int lines = maps_lines();
    int missing = 0;
    while (nm_node_distance(missing, missing) > 0) missing++;   /* the first id that is no node */
    nm_policy p = bind_to(missing);
    errno = 0;
    CHECK(nm_region_map(HUGE, &p, NM_PREFAULT_TOUCH, 0) == NULL && errno == EINVAL,
          "bind:%d (no such node): errno %d", missing, errno);
    nm_nodeset empty;
    nm_nodeset_clear(&empty);
    p = nm_policy_interleave(&empty);
    errno = 0;
    CHECK(nm_region_map(HUGE, &p, NM_PREFAULT_NONE, 0) == NULL && errno == EINVAL, "empty set");
    for (int i = 0; i < nodes; i++) {
        if (has_memory[i]) continue;
        p = bind_to(ids[i]);
        errno = 0;
        CHECK(nm_region_map(HUGE, &p, NM_PREFAULT_NONE, 0) == NULL && errno == EINVAL,
              "node %d has no memory", ids[i]);
        printf("bind to node %d (no memory): EINVAL\n", ids[i]);
    }
    p.mode = (enum nm_policy_mode)42;
    errno = 0;
    CHECK(nm_region_map(HUGE, &p, NM_PREFAULT_NONE, 0) == NULL && errno == EINVAL, "bad mode");

    static const unsigned bad_flags[] = {
        NM_REGION_HUGEPAGES | NM_REGION_NOHUGEPAGES, NM_REGION_HUGEPAGES | NM_REGION_HUGETLB,
        NM_REGION_NOHUGEPAGES | NM_REGION_HUGETLB, 1u << 5, 1u << 31,
    };
    for (size_t i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
        errno = 0;
        CHECK(nm_region_map(HUGE, NULL, NM_PREFAULT_NONE, bad_flags[i]) == NULL && errno == EINVAL,
              "flags %#x", bad_flags[i]);
    }
    errno = 0;
    CHECK(nm_region_map(0, NULL, NM_PREFAULT_TOUCH, 0) == NULL && errno == EINVAL, "size 0");
    errno = 0;
    CHECK(nm_region_map(HUGE, NULL, (enum nm_prefault)3, 0) == NULL && errno == EINVAL, "prefault 3");
    errno = 0;
    CHECK(nm_region_map((size_t)1 << 60, NULL, NM_PREFAULT_NONE, 0) == NULL && errno == ENOMEM,
          "2^60 bytes: errno %d", errno);
    errno = 0;
    CHECK(nm_region_map(SIZE_MAX, NULL, NM_PREFAULT_NONE, 0) == NULL && errno == ENOMEM, "SIZE_MAX");
    /* A mode the kernel may lack: the map fails exactly as the check does. */
    nm_nodeset with_memory;
    nm_nodeset_clear(&with_memory);
    for (int i = 0; i < nodes; i++) if (has_memory[i]) nm_nodeset_add(&with_memory, ids[i]);
    p = nm_policy_weighted_interleave(&with_memory);
    errno = 0;
    int checked = nm_policy_check(&p, NULL, 0), check_errno = errno;
    nm_region *r = nm_region_map(HUGE, &p, NM_PREFAULT_POPULATE, 0);
    if (checked == 0) {
        CHECK(r != NULL, "weighted interleave: %s", strerror(errno));
        if (r) {
            CHECK(where_region(r, "weighted-interleave") == (long)(HUGE / PAGE));
            nm_region_unmap(r);
        }
    } else {
        CHECK(r == NULL && errno == check_errno, "weighted interleave: check says %d, map %d",
              check_errno, errno);
    }
    CHECK(maps_lines() == lines, "maps: %d lines, %d before: a failed map left something",
          maps_lines(), lines);

    /* nm_where: unmapped memory is an error (EFAULT); a bad count array or
     * node limit is EINVAL. */
    char *gone = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(gone != MAP_FAILED);
    gone[0] = 1;
    munmap(gone + PAGE, PAGE);
    uint64_t c[NM_NODE_ID_LIMIT] = { 0 };
    errno = 0;
    CHECK(nm_where(gone + PAGE, PAGE, c, NM_NODE_ID_LIMIT) == -1 && errno == EFAULT, "unmapped page");
    errno = 0;
    CHECK(nm_where(gone, 3 * PAGE, c, NM_NODE_ID_LIMIT) == -1 && errno == EFAULT, "hole in the range");
    CHECK(nm_where(gone, PAGE, c, NM_NODE_ID_LIMIT) == 1, "the mapped, written page");
    errno = 0;
    CHECK(nm_where(gone, PAGE, NULL, 4) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(nm_where(gone, PAGE, c, -1) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(nm_where((void *)(uintptr_t)-PAGE, 2 * PAGE, c, NM_NODE_ID_LIMIT) == -1 && errno == EFAULT,
          "wrapping range");
    munmap(gone, PAGE);
    munmap(gone + 2 * PAGE, PAGE);
    CHECK(nm_region_unmap(NULL) == 0);
    CHECK(nm_region_addr(NULL) == NULL && nm_region_size(NULL) == 0);
    struct nm_enforcement e;
    errno = 0;
    CHECK(nm_region_enforcement(NULL, &e) == -1 && errno == EINVAL);
    printf("bad input: EINVAL / ENOMEM / EFAULT as documented, nothing left mapped\n");
}

/* nm_where on memory that is not a region: a malloc'd block and the stack. */
static void where_anything(void)
{
    size_t len = 3 << 20;
    char *block = nm_malloc(len);
    REQUIRE(block);
    memset(block, 1, len);
    uint64_t c[NM_NODE_ID_LIMIT] = { 0 };
    long resident = nm_where(block, len, c, NM_NODE_ID_LIMIT);
    size_t pages = (((uintptr_t)block + len + PAGE - 1) / PAGE) - (uintptr_t)block / PAGE;
    CHECK(resident == (long)pages, "malloc block: %ld of %zu pages resident", resident, pages);
    if (libnuma_move_pages) {
        long lr = libnuma_counts((void *)((uintptr_t)block & ~(PAGE - 1)), pages * PAGE, other);
        CHECK(lr == resident);
        for (int id = 0; id < NM_NODE_ID_LIMIT; id++) CHECK(other[id] == c[id], "node %d", id);
    }
    nm_free(block);
    char local[100];
    memset(local, 0, sizeof local);
    CHECK(nm_where(local, sizeof local, NULL, 0) >= 1);
}

int main(void)
{
    nodes = nm_node_ids(ids, MAX_IDS);
    REQUIRE(nodes >= 1 && nodes <= MAX_IDS);
    for (int i = 0; i < nodes; i++) {
        uint64_t total = 0;
        nm_node_memory(ids[i], &total, NULL);
        has_memory[i] = total > 0;
        has_cpus[i] = nm_node_has_cpus(ids[i]) == 1;
    }
    printf("%d node(s)\n", nodes);
    load_libnuma();
    maps_lines();   /* warm up: whatever reading /proc sets up is there before the counts */
    bind_touch_each_node();
    prefault_none();
    read_only_pages();
    populate();
    page_size_flags();
    hugetlb();
    migrate();
    spread();
    bad_input();
    where_anything();
    return nm_test_done();
}
