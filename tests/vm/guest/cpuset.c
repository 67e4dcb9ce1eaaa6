/*
 * cpuset.c — runs inside the 4-node guest (tests/vm/cpuset.sh) in a cgroup
 * v2 cpuset that allows the memory of some nodes only (cpuset.mems) and
 * every CPU, linked with build/libnumamalloc.a (plain malloc is numamalloc
 * too).  Pages are located with move_pages(2).  The allowed nodes are read
 * here from Mems_allowed_list in /proc/self/status, and each node's "home"
 * (the allowed node nearest to it: sysfs distances, ties by the lower id)
 * is worked out here, not asked of numamalloc.
 *
 *   threads    a thread pinned to each node with CPUs: nm_current_node() is
 *              that node, nm_thread_rebind() its home; malloc'ed blocks
 *              (16 B - 1000 B, 8 - 256 KiB, 1 - 8 MiB) and the blocks of a
 *              local heap (nm_heap_new(NULL)): 100% of the pages on the home
 *   policies   "all" is the allowed nodes (parse and format); a policy
 *              naming an excluded node is refused with EINVAL and the line
 *              "node N is not allowed in this cpuset (allowed: LIST)" (parse,
 *              nm_policy_check); nm_malloc_onnode, nm_calloc_onnode,
 *              nm_mallocx and nm_rallocx with NM_NODE (NM_STRICT too),
 *              nm_reserve, nm_heap_new and nm_region_map on excluded nodes:
 *              EINVAL; on allowed ones: 100% on the node; heaps and a
 *              region with interleave:all: pages on allowed nodes only, on
 *              each of them
 *   allowed    (run with NUMAMALLOC_POLICY=interleave:all or
 *              NUMAMALLOC_INTERLEAVE_ABOVE=1M): threads on every node with
 *              CPUs allocate blocks of 2 - 4 MiB: no page off the allowed
 *              nodes, pages on each of them
 *
 *   cpuset CHECK      prints "cpuset CHECK: PASS ..." or FAIL lines
 * Exit 0 = the check passed.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "guest.h"
#include "numamalloc.h"

static bool allowed[MAX_NODE];
static int home[MAX_NODE];
static char allowed_text[128];

static void load_allowed(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    REQUIRE(f != NULL, "/proc/self/status: %s", strerror(errno));
    char line[4096];
    bool seen = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Mems_allowed_list:", 18) != 0) continue;
        char *list = line + 18 + strspn(line + 18, " \t");
        list[strcspn(list, "\n")] = '\0';
        snprintf(allowed_text, sizeof allowed_text, "%s", list);
        seen = parse_list(list, allowed, MAX_NODE);
    }
    fclose(f);
    REQUIRE(seen, "no Mems_allowed_list in /proc/self/status");
    for (int i = 0; i < cpu_node_count; i++) {
        int n = cpu_nodes[i], best = -1, best_d = 0;
        char path[128], buf[1024];
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/distance", n);
        REQUIRE(read_line(path, buf, sizeof buf), "cannot read %s", path);
        char *s = buf;
        for (int m = 0; m < MAX_NODE; m++) {
            if (!node_online[m]) continue;
            int d = (int)strtol(s, &s, 10);
            if (!allowed[m] || !node_has_memory[m]) continue;
            if (m == n) d = 0;   /* itself first */
            if (best < 0 || d < best_d) { best = m; best_d = d; }
        }
        REQUIRE(best >= 0, "no allowed node with memory");
        home[n] = best;
    }
}

static bool on_allowed_only(const struct tally *t) {
    for (int n = 0; n < MAX_NODE; n++)
        if (t->on[n] && !allowed[n]) return false;
    return t->absent == 0;
}

static void tally_text(const struct tally *t, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "%ld pages:", t->pages);
    for (int n = 0; n < MAX_NODE && k < len; n++)
        if (t->on[n]) k += (size_t)snprintf(buf + k, len - k, " N%d=%ld", n, t->on[n]);
    if (t->absent && k < len) snprintf(buf + k, len - k, " absent=%ld", t->absent);
}

/* All pages of `bl` on `node`. */
static void expect_on(const char *what, const struct blocks *bl, int node)
{
    struct tally t;
    char text[256];
    tally_lists(bl, 1, &t);
    tally_text(&t, text, sizeof text);
    CHECK(t.pages > 0 && t.on[node] == t.pages, "%s: %s, expected all on node %d", what, text, node);
    printf("  %s: %s\n", what, text);
}

/* No page off the allowed nodes, and pages on each of them. */
static void expect_allowed_all(const char *what, const struct blocks *bl)
{
    struct tally t;
    char text[256];
    tally_lists(bl, 1, &t);
    tally_text(&t, text, sizeof text);
    bool each = true;
    for (int n = 0; n < MAX_NODE; n++)
        if (allowed[n] && node_has_memory[n]) each &= t.on[n] > 0;
    CHECK(t.pages > 0 && on_allowed_only(&t) && each, "%s: %s, expected on every node of %s only",
          what, text, allowed_text);
    printf("  %s: %s\n", what, text);
}

/* Sizes in [min, max] stepping by `step`, about `bytes` in all, written. */
static void fill(struct blocks *bl, void *(*alloc)(void *, size_t), void *ctx, size_t min, size_t max,
                 size_t step, size_t bytes)
{
    size_t size = min, total = 0;
    while (total < bytes) {
        char *p = alloc(ctx, size);
        REQUIRE(p != NULL, "allocating %zu bytes: %s", size, strerror(errno));
        memset(p, 0x5a, size);
        blocks_push(bl, (struct block){p, size});
        total += size;
        size = size + step > max ? min : size + step;
    }
}

static void *plain_malloc(void *ctx, size_t size) { (void)ctx; return malloc(size); }
static void *heap_malloc(void *ctx, size_t size) { return nm_heap_malloc(ctx, size); }
static void *onnode_malloc(void *ctx, size_t size) { return nm_malloc_onnode(size, *(int *)ctx); }

struct pinned { int node; void (*fn)(int node, void *arg); void *arg; };

static void *pinned_main(void *p)
{
    struct pinned *c = p;
    run_on_node(c->node);
    c->fn(c->node, c->arg);
    return NULL;
}

/* Run fn(node, arg) on a new thread pinned to `node`. */
static void on_node(int node, void (*fn)(int, void *), void *arg)
{
    struct pinned c = {node, fn, arg};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, pinned_main, &c) == 0, "pthread_create");
    pthread_join(t, NULL);
}

/* ---------------------------------------------------------------- threads */

static void thread_job(int node, void *arg)
{
    (void)arg;
    int h = home[node];
    CHECK(nm_current_node() == node, "nm_current_node() %d on node %d", nm_current_node(), node);
    int served = nm_thread_rebind();
    CHECK(served == h, "thread on node %d: nm_thread_rebind() %d, its home is %d", node, served, h);
    printf("thread on node %d: served by node %d (home %d)\n", node, served, h);
    struct blocks small, medium, large, heap;
    blocks_init(&small, 8192);
    blocks_init(&medium, 1024);
    blocks_init(&large, 64);
    blocks_init(&heap, 8192);
    fill(&small, plain_malloc, NULL, 16, 1000, 24, 1 * MiB);
    fill(&medium, plain_malloc, NULL, 8 * KiB, 256 * KiB, 24 * KiB, 4 * MiB);
    fill(&large, plain_malloc, NULL, 1 * MiB, 8 * MiB, 3 * MiB, 16 * MiB);
    nm_heap_t *local = nm_heap_new(NULL);
    REQUIRE(local != NULL, "nm_heap_new(NULL): %s", strerror(errno));
    fill(&heap, heap_malloc, local, 16, 64 * KiB, 4000, 2 * MiB);
    expect_on("malloc 16-1000 B", &small, h);
    expect_on("malloc 8-256 KiB", &medium, h);
    expect_on("malloc 1-8 MiB", &large, h);
    expect_on("local heap", &heap, h);
    free_all(&small);
    free_all(&medium);
    free_all(&large);
    nm_heap_destroy(local);
    blocks_release(&small);
    blocks_release(&medium);
    blocks_release(&large);
    blocks_release(&heap);
}

static void check_threads(void)
{
    for (int i = 0; i < cpu_node_count; i++) on_node(cpu_nodes[i], thread_job, NULL);
}

/* ---------------------------------------------------------------- policies */

static int first_excluded(void)
{
    for (int n = 0; n < MAX_NODE; n++)
        if (node_online[n] && node_has_memory[n] && !allowed[n]) return n;
    return -1;
}

static void parse_refused(const char *text, int node)
{
    nm_policy p;
    char err[256] = "", want[320];
    snprintf(want, sizeof want, "node %d is not allowed in this cpuset (allowed: %s)", node, allowed_text);
    errno = 0;
    int r = nm_policy_parse(text, &p, err, sizeof err);
    CHECK(r == -1 && errno == EINVAL && strcmp(err, want) == 0,
          "'%s': r=%d errno=%d '%s', expected EINVAL '%s'", text, r, errno, err, want);
    printf("  parse '%s': %s\n", text, err);
}

static void parse_formats(const char *text, const char *want)
{
    nm_policy p;
    char err[256] = "", back[256] = "";
    int r = nm_policy_parse(text, &p, err, sizeof err);
    if (r == 0) nm_policy_format(&p, back, sizeof back);
    CHECK(r == 0 && strcmp(back, want) == 0, "'%s': r=%d '%s' '%s', expected '%s'", text, r, err,
          back, want);
    printf("  parse '%s': %s\n", text, back);
}

static nm_policy parsed(const char *text)
{
    nm_policy p;
    char err[256] = "";
    REQUIRE(nm_policy_parse(text, &p, err, sizeof err) == 0, "'%s': %s", text, err);
    return p;
}

struct heap_job { nm_heap_t *heap; struct blocks *bl; };

static void heap_job(int node, void *arg)
{
    (void)node;
    struct heap_job *j = arg;
    fill(j->bl, heap_malloc, j->heap, 16, 256 * KiB, 8000, 4 * MiB);
    fill(j->bl, heap_malloc, j->heap, 1 * MiB, 4 * MiB, 1 * MiB, 10 * MiB);
}

struct onnode_job { int target; };

static void onnode_job(int node, void *arg)
{
    (void)node;
    struct onnode_job *j = arg;
    struct blocks bl;
    blocks_init(&bl, 8192);
    fill(&bl, onnode_malloc, &j->target, 16, 256 * KiB, 4000, 4 * MiB);
    fill(&bl, onnode_malloc, &j->target, 1 * MiB, 3 * MiB, 1 * MiB, 6 * MiB);
    char what[64];
    snprintf(what, sizeof what, "nm_malloc_onnode(., %d)", j->target);
    expect_on(what, &bl, j->target);
    free_all(&bl);
    blocks_release(&bl);
}

static void region_local_job(int node, void *arg)
{
    size_t size = 8 * MiB;
    nm_region *r = nm_region_map(size, NULL, NM_PREFAULT_TOUCH, 0);
    REQUIRE(r != NULL, "local region: %s", strerror(errno));
    struct blocks bl;
    blocks_init(&bl, 1);
    blocks_push(&bl, (struct block){nm_region_addr(r), size});
    char what[64];
    snprintf(what, sizeof what, "local region touched on node %d", node);
    expect_on(what, &bl, home[node]);
    *(nm_region **)arg = r;
    blocks_release(&bl);
}

static void check_policies(void)
{
    int excluded = first_excluded();
    REQUIRE(excluded >= 0, "the cpuset allows every node (Mems_allowed_list: %s)", allowed_text);
    char all_list[256] = "";
    for (int n = 0, k = 0; n < MAX_NODE; n++)
        if (allowed[n] && node_has_memory[n])
            k += snprintf(all_list + k, sizeof all_list - (size_t)k, "%s%d", k ? "," : "", n);
    /* The guest's lists are ranges where consecutive ("1-2"); numamalloc
     * writes ranges too, so compare with the kernel's own text. */
    char want[300];
    snprintf(want, sizeof want, "interleave:%s", allowed_text);
    parse_formats("interleave:all", want);
    snprintf(want, sizeof want, "bind:%s", allowed_text);
    parse_formats("bind:all", want);
    char text[64];
    snprintf(text, sizeof text, "bind:%d", excluded);
    parse_refused(text, excluded);
    snprintf(text, sizeof text, "preferred:%d", excluded);
    parse_refused(text, excluded);
    for (int n = 0; n < MAX_NODE; n++) {
        if (!node_online[n] || !node_has_memory[n] || allowed[n]) continue;
        snprintf(text, sizeof text, "interleave:%s,%d", all_list, n);
        parse_refused(text, n);
    }

    /* Built policies: nm_policy_check says the same. */
    nm_nodeset every = nm_nodeset_all();
    nm_policy over_every = nm_policy_interleave(&every);
    char err[256] = "", line[320];
    snprintf(line, sizeof line, "node %d is not allowed in this cpuset (allowed: %s)", excluded, allowed_text);
    errno = 0;
    CHECK(nm_policy_check(&over_every, err, sizeof err) == -1 && errno == EINVAL && !strcmp(err, line),
          "nm_policy_check(interleave over nm_nodeset_all()): errno %d '%s'", errno, err);

    /* Excluded nodes: EINVAL everywhere, nothing allocated. */
    for (int n = 0; n < MAX_NODE; n++) {
        if (!node_online[n] || !node_has_memory[n] || allowed[n]) continue;
        errno = 0;
        CHECK(nm_malloc_onnode(100, n) == NULL && errno == EINVAL, "nm_malloc_onnode(100, %d): errno %d", n, errno);
        errno = 0;
        CHECK(nm_malloc_onnode(3 * MiB, n) == NULL && errno == EINVAL, "nm_malloc_onnode(3 MiB, %d): errno %d", n, errno);
        errno = 0;
        CHECK(nm_calloc_onnode(1, 4 * MiB, n) == NULL && errno == EINVAL, "nm_calloc_onnode(%d): errno %d", n, errno);
        static const int extra[] = { 0, NM_ALIGN(4096), NM_ZERO, NM_STRICT, NM_STRICT | NM_ALIGN(64) };
        for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++) {
            errno = 0;
            CHECK(nm_mallocx(100, NM_NODE(n) | extra[k]) == NULL && errno == EINVAL,
                  "nm_mallocx(100, NM_NODE(%d) | %#x): errno %d", n, (unsigned)extra[k], errno);
            void *b = nm_malloc(100);
            errno = 0;
            CHECK(nm_rallocx(b, 200, NM_NODE(n) | extra[k]) == NULL && errno == EINVAL && nm_usable_size(b) >= 100,
                  "nm_rallocx(p, 200, NM_NODE(%d) | %#x): errno %d", n, (unsigned)extra[k], errno);
            nm_free(b);
        }
        errno = 0;
        CHECK(nm_reserve(n, 4 * MiB) == -1 && errno == EINVAL, "nm_reserve(%d): errno %d", n, errno);
        nm_policy p = nm_policy_preferred(n);
        errno = 0;
        CHECK(nm_heap_new(&p) == NULL && errno == EINVAL, "nm_heap_new(preferred:%d): errno %d", n, errno);
        nm_nodeset one;
        nm_nodeset_clear(&one);
        nm_nodeset_add(&one, n);
        p = nm_policy_bind(&one);
        errno = 0;
        CHECK(nm_heap_new(&p) == NULL && errno == EINVAL, "nm_heap_new(bind:%d): errno %d", n, errno);
        errno = 0;
        CHECK(nm_region_map(4 * MiB, &p, NM_PREFAULT_TOUCH, 0) == NULL && errno == EINVAL,
              "nm_region_map(bind:%d): errno %d", n, errno);
        printf("  node %d: onnode, calloc_onnode, reserve, heap_new, region_map: EINVAL\n", n);
    }

    /* Allowed nodes: exact, asked from a thread on an excluded node's CPUs
     * when there is one with CPUs. */
    int asker = cpu_nodes[0];
    for (int i = 0; i < cpu_node_count; i++)
        if (!allowed[cpu_nodes[i]]) { asker = cpu_nodes[i]; break; }
    for (int n = 0; n < MAX_NODE; n++) {
        if (!allowed[n] || !node_has_memory[n]) continue;
        struct onnode_job j = {n};
        on_node(asker, onnode_job, &j);
        errno = 0;
        CHECK(nm_reserve(n, 8 * MiB) == 0, "nm_reserve(%d, 8 MiB): %s", n, strerror(errno));
        char name[64];
        snprintf(name, sizeof name, "bind:%d", n);
        nm_policy p = parsed(name);
        nm_heap_t *h = nm_heap_new(&p);
        REQUIRE(h != NULL, "nm_heap_new(%s): %s", name, strerror(errno));
        struct blocks bl;
        blocks_init(&bl, 8192);
        struct heap_job hj = {h, &bl};
        on_node(asker, heap_job, &hj);
        snprintf(name, sizeof name, "heap bind:%d", n);
        expect_on(name, &bl, n);
        nm_heap_destroy(h);
        blocks_release(&bl);
    }

    /* interleave:all heaps and regions: the allowed nodes, each of them. */
    nm_policy all = parsed("interleave:all");
    nm_heap_t *h = nm_heap_new(&all);
    REQUIRE(h != NULL, "nm_heap_new(interleave:all): %s", strerror(errno));
    struct blocks bl;
    blocks_init(&bl, 32768);
    struct heap_job hj = {h, &bl};
    for (int i = 0; i < cpu_node_count; i++) on_node(cpu_nodes[i], heap_job, &hj);
    expect_allowed_all("heap interleave:all, threads on every node", &bl);
    nm_heap_destroy(h);
    blocks_release(&bl);

    size_t size = 32 * MiB;
    nm_region *r = nm_region_map(size, &all, NM_PREFAULT_TOUCH, 0);
    REQUIRE(r != NULL, "nm_region_map(interleave:all): %s", strerror(errno));
    blocks_init(&bl, 1);
    blocks_push(&bl, (struct block){nm_region_addr(r), size});
    expect_allowed_all("region interleave:all (touch)", &bl);
    blocks_release(&bl);
    nm_policy to_excluded = nm_policy_preferred(excluded);
    errno = 0;
    CHECK(nm_region_migrate(r, &to_excluded) == -1 && errno == EINVAL,
          "nm_region_migrate(preferred:%d): errno %d", excluded, errno);
    nm_region_unmap(r);

    for (int i = 0; i < cpu_node_count; i++) {
        nm_region *local = NULL;
        on_node(cpu_nodes[i], region_local_job, &local);
        nm_region_unmap(local);
    }
}

/* ---------------------------------------------------------------- allowed */

static void big_job(int node, void *arg)
{
    (void)node;
    fill(arg, plain_malloc, NULL, 2 * MiB, 4 * MiB, 1 * MiB, 24 * MiB);
}

static void check_allowed(void)
{
    struct blocks bl;
    blocks_init(&bl, 1024);
    for (int i = 0; i < cpu_node_count; i++) on_node(cpu_nodes[i], big_job, &bl);
    expect_allowed_all("malloc 2-4 MiB, threads on every node", &bl);
    free_all(&bl);
    blocks_release(&bl);
}

static const struct { const char *name; void (*run)(void); } checks[] = {
    { "threads", check_threads },
    { "policies", check_policies },
    { "allowed", check_allowed },
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    REQUIRE(argc == 2, "usage: cpuset threads|policies|allowed");
    load_topology();
    load_allowed();
    printf("cpuset %s: Mems_allowed_list %s; homes:", argv[1], allowed_text);
    for (int i = 0; i < cpu_node_count; i++) printf(" %d->%d", cpu_nodes[i], home[cpu_nodes[i]]);
    printf("\n");
    for (size_t c = 0; c < sizeof checks / sizeof checks[0]; c++) {
        if (strcmp(argv[1], checks[c].name) != 0) continue;
        checks[c].run();
        int failed = nm_test_done();
        printf("cpuset %s: %s\n", argv[1], failed ? "FAIL" : "PASS");
        return failed;
    }
    fprintf(stderr, "unknown check '%s'\n", argv[1]);
    return 2;
}
