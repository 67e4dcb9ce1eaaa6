/*
 * region.c — regions (big arrays mapped with a memory policy and prefaulted
 * as asked) and verification (where the kernel put each resident page).
 *
 *   map:      reserve -> huge page advice -> name -> mbind -> prefault
 *   prefault: TOUCH    one thread per node of the policy, pinned to that
 *                      node's CPUs (a memory-only node: to the nearest node
 *                      with CPUs; wherever the caller is pinned), faults in
 *                      its share of the range; local: the calling thread
 *                      faults in everything
 *             POPULATE the calling thread faults in everything
 *             (faulting = MADV_POPULATE_WRITE, Linux 5.14+; a write to
 *             every page before that)
 *   migrate:  mbind(MPOL_MF_MOVE | MPOL_MF_STRICT); interleave also moves
 *             pages that sit on a node of the set but not on their turn
 *   where:    move_pages with no target nodes: the node of each resident
 *             page, without faulting anything in; pages that map the
 *             shared zero page (only read) are not resident (PAGEMAP_SCAN
 *             on /proc/self/pagemap, Linux 6.7+, confirms it)
 *
 * The policy is always set before anything is touched, so first touch can
 * never put a page where the policy does not want it.  The kernel chooses
 * every page's node; the touching threads only decide which node of a bind
 * or preferred-many set is nearest (so each node gets the share its thread
 * touched), and let each node's CPUs zero their own memory in parallel.
 *
 * The region descriptor lives in a page of its own, not in a malloc block:
 * this layer sits below the alloc layer, and a page of its own keeps the
 * descriptor out of the region (which may be bound to a far node, huge-page
 * aligned, or overrun by its user).
 *
 * May call the tier, policy and heap layers and everything below them.
 * Not a malloc path: it creates threads (pthread_create may call malloc).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "heap.h"
#include "numamalloc.h"
#include "os.h"
#include "policy.h"
#include "topology.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define REGION_FLAGS (NM_REGION_HUGEPAGES | NM_REGION_NOHUGEPAGES | NM_REGION_HUGETLB)
#define WHERE_BATCH 512     /* pages asked about per move_pages call */
#define TOUCH_STACK (64 * 1024)

struct nm_region {
    char *addr;
    size_t size;            /* bytes mapped: a multiple of the page size */
    unsigned flags;
    nm_policy policy;       /* the policy the kernel has for the range */
};

/* CPUs as a bit set big enough for every CPU number the topology knows. */
typedef struct {
    unsigned long bits[NM_MAX_CPUS / (8 * sizeof(unsigned long))];
} cpu_mask;

static void cpu_mask_add(cpu_mask *m, int cpu)
{
    size_t w = 8 * sizeof(unsigned long);
    m->bits[(size_t)cpu / w] |= 1ul << ((size_t)cpu % w);
}

/* One share of a TOUCH prefault. */
struct touch_job {
    char *start;
    size_t len;
    int node;                   /* kernel id of the node the share is for */
    int error;                  /* errno value, 0 when done */
    bool threaded;
    pthread_t thread;
};

/* Run the calling thread on the CPUs of `node`, or of the nearest node with
 * CPUs we may use (a memory-only node has none).  Not limited to the CPUs
 * the caller was pinned to: a pinned caller (OpenMP's first thread, say)
 * would otherwise touch every share from one node.  The process's cpuset
 * still applies: the kernel refuses a node with none of its CPUs (EINVAL)
 * and we try the next.  Best effort: failing costs only locality. */
static void run_near(int node)
{
    int order[NM_MAX_NODES];
    int n = nm_nodes_by_distance(node, order, NM_MAX_NODES);
    for (int i = 0; i < n && i < NM_MAX_NODES; i++) {
        int index = nm_topology_index(&nm_topo, order[i]);
        if (index < 0 || nm_topo.cpu_count[index] == 0) continue;
        cpu_mask mask;
        memset(&mask, 0, sizeof mask);
        for (int cpu = 0; cpu < nm_topo.cpu_limit && cpu < NM_MAX_CPUS; cpu++)
            if (nm_topo.node_of_cpu[cpu] == index) cpu_mask_add(&mask, cpu);
        if (sched_setaffinity(0, sizeof mask, (cpu_set_t *)&mask) == 0) return;
    }
}

static void *touch_main(void *arg)
{
    struct touch_job *job = arg;
    run_near(job->node);
    job->error = nm_os_populate(job->start, job->len);
    return NULL;
}

/* TOUCH: split [addr, addr + size) into one share per node of the policy
 * (boundaries on `unit`), and fault each share in from a thread on that
 * node.  Local: the calling thread, whose node local means.  Returns 0 or
 * an errno value. */
static int touch(char *addr, size_t size, const nm_policy *p, size_t unit)
{
    if (p->mode == NM_POLICY_LOCAL) return nm_os_populate(addr, size);

    struct touch_job jobs[NM_MAX_NODES];
    int count = 0, nodes = nm_nodeset_count(&p->nodes);
    uintptr_t begin = (uintptr_t)addr, end = begin + size;
    for (int id = 0; id < NM_NODE_ID_LIMIT && count < NM_MAX_NODES; id++) {
        if (!nm_nodeset_has(&p->nodes, id)) continue;
        /* Share k is [size * k / nodes, size * (k + 1) / nodes), with inner
         * boundaries moved up to `unit` so no huge page is split. */
        uintptr_t from = count == 0 ? begin : nm_align_up(begin + size / nodes * count, unit);
        uintptr_t to = count + 1 == nodes ? end : nm_align_up(begin + size / nodes * (count + 1), unit);
        if (from > end) from = end;
        if (to > end) to = end;
        struct touch_job *job = &jobs[count++];
        job->start = (char *)from;
        job->len = to > from ? to - from : 0;
        job->node = id;
        job->error = 0;
        job->threaded = false;
    }

    pthread_attr_t attr;
    bool have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr) pthread_attr_setstacksize(&attr, TOUCH_STACK);
    for (int i = 0; i < count; i++) {
        if (jobs[i].len == 0) continue;
        jobs[i].threaded = pthread_create(&jobs[i].thread, have_attr ? &attr : NULL, touch_main,
                                          &jobs[i]) == 0;
    }
    /* A share without a thread (none could be made) is done here. */
    for (int i = 0; i < count; i++)
        if (jobs[i].len && !jobs[i].threaded) jobs[i].error = nm_os_populate(jobs[i].start, jobs[i].len);
    int error = 0;
    for (int i = 0; i < count; i++) {
        if (jobs[i].threaded) pthread_join(jobs[i].thread, NULL);
        if (!error) error = jobs[i].error;
    }
    if (have_attr) pthread_attr_destroy(&attr);
    return error;
}

/* ---- regions ---------------------------------------------------------------------- */

static bool flags_valid(unsigned flags)
{
    unsigned kind = flags & REGION_FLAGS;
    return (flags & ~REGION_FLAGS) == 0 && (kind & (kind - 1)) == 0;   /* at most one */
}

nm_export nm_region *nm_region_map(size_t size, const nm_policy *policy, enum nm_prefault prefault,
                                   unsigned flags)
{
    nm_heap_init();
    nm_policy p = policy ? *policy : nm_policy_local();
    if (size == 0 || !flags_valid(flags) || (unsigned)prefault > NM_PREFAULT_POPULATE) {
        errno = EINVAL;
        return NULL;
    }
    if (nm_policy_check(&p, NULL, 0) != 0) return NULL;   /* EINVAL or ENOSYS */

    bool hugetlb = flags & NM_REGION_HUGETLB;
    size_t page = hugetlb ? NM_HUGE_PAGE : NM_OS_PAGE;
    if (size > ((size_t)1 << 46)) { errno = ENOMEM; return NULL; }
    size_t bytes = nm_align_up(size, page);
    size_t align = flags & (NM_REGION_HUGEPAGES | NM_REGION_HUGETLB) ? NM_HUGE_PAGE : NM_OS_PAGE;

    struct nm_region *r = nm_os_reserve(NM_OS_PAGE, NM_OS_PAGE, false);
    if (!r) return NULL;
    char *addr = nm_os_reserve(bytes, align, hugetlb);
    if (!addr) {
        nm_os_release(r, NM_OS_PAGE);
        errno = ENOMEM;
        return NULL;
    }
    if (flags & NM_REGION_HUGEPAGES) nm_os_use_thp(addr, bytes);
    if (flags & NM_REGION_NOHUGEPAGES) (void)madvise(addr, bytes, MADV_NOHUGEPAGE);
    nm_os_name_range(addr, bytes, "numamalloc-region");

    int error = 0;
    if (nm_policy_apply(addr, bytes, &p, 0) != 0) error = errno;
    /* Hugetlb pages are taken from the pool now, whatever `prefault` says:
     * the pool is memory set aside already, and only now can a shortage be
     * an error rather than a SIGBUS at the first touch. */
    size_t unit = flags & NM_REGION_NOHUGEPAGES ? NM_OS_PAGE : NM_HUGE_PAGE;
    if (!error && prefault == NM_PREFAULT_TOUCH) error = touch(addr, bytes, &p, unit);
    else if (!error && (prefault == NM_PREFAULT_POPULATE || hugetlb)) error = nm_os_populate(addr, bytes);
    if (error) {
        nm_os_release(addr, bytes);
        nm_os_release(r, NM_OS_PAGE);
        errno = error;
        return NULL;
    }
    r->addr = addr;
    r->size = bytes;
    r->flags = flags;
    r->policy = p;
    return r;
}

nm_export void *nm_region_addr(const nm_region *r)
{
    return r ? r->addr : NULL;
}

nm_export size_t nm_region_size(const nm_region *r)
{
    return r ? r->size : 0;
}

nm_export int nm_region_unmap(nm_region *r)
{
    if (!r) return 0;
    if (munmap(r->addr, r->size) != 0) return -1;
    nm_os_release(r, NM_OS_PAGE);
    return 0;
}

/* Interleave: put every resident page of `r` that sits on a node of the set
 * on the node the kernel gives its address, node (address / unit) mod the
 * number of nodes, counting the set's nodes in ascending order (unit: the
 * page size the kernel interleaves by; 2 MiB when huge pages may back the
 * region, so a huge page is never pulled apart).  mbind(MPOL_MF_MOVE) only
 * moves pages from outside the set, so without this a bound region that
 * becomes interleaved would stay where it was.  Returns how many pages are
 * still off their node after the moves (when `move`) or now. */
static uint64_t interleave_pass(const nm_region *r, size_t unit, bool move)
{
    int set[NM_MAX_NODES];
    int n = 0;
    for (int id = 0; id < NM_NODE_ID_LIMIT && n < NM_MAX_NODES; id++)
        if (nm_nodeset_has(&r->policy.nodes, id)) set[n++] = id;
    uint64_t off_node = 0;
    for (size_t done = 0; done < r->size;) {
        void *pages[WHERE_BATCH], *moving[WHERE_BATCH];
        int status[WHERE_BATCH], targets[WHERE_BATCH];
        size_t count = 0, moves = 0;
        for (; count < WHERE_BATCH && done < r->size; count++, done += NM_OS_PAGE)
            pages[count] = r->addr + done;
        if (nm_os_move_pages(count, pages, NULL, status, 0) != 0) {
            off_node += count;   /* cannot tell: not known to be in place */
            continue;
        }
        for (size_t i = 0; i < count; i++) {
            if (status[i] < 0 || !nm_nodeset_has(&r->policy.nodes, status[i])) continue;
            int target = set[((uintptr_t)pages[i] / unit) % (size_t)n];
            if (status[i] == target) continue;
            off_node++;
            moving[moves] = pages[i];
            targets[moves++] = target;
        }
        /* Statuses of the moves are not needed: the next pass looks again
         * (the pages of a huge page after its first say EBUSY, as the whole
         * huge page moves with the first). */
        if (move && moves) nm_os_move_pages(moves, moving, targets, status, NM_MPOL_MF_MOVE);
    }
    return off_node;
}

nm_export int nm_region_migrate(nm_region *r, const nm_policy *policy)
{
    if (!r) { errno = EINVAL; return -1; }
    nm_policy p = policy ? *policy : nm_policy_local();
    if (nm_policy_check(&p, NULL, 0) != 0) return -1;
    /* MF_STRICT with MF_MOVE: EIO when some page could not be moved (the
     * kernel has set the new policy all the same). */
    int result = nm_policy_apply(r->addr, r->size, &p, NM_MPOL_MF_MOVE | NM_MPOL_MF_STRICT);
    if (result != 0 && errno != EIO) return -1;
    r->policy = p;
    if (p.mode == NM_POLICY_INTERLEAVE) {
        size_t unit = r->flags & NM_REGION_NOHUGEPAGES ? NM_OS_PAGE : NM_HUGE_PAGE;
        uint64_t left = 0;
        for (int pass = 0; pass < 3; pass++) {
            left = interleave_pass(r, unit, pass < 2);
            if (left == 0) break;
        }
        if (left) result = -1;
    }
    if (result != 0) errno = EIO;
    return result;
}

/* ---- verification ------------------------------------------------------------------ */

/* Zero-page mappings, for nm_where.  A page that was only ever read maps
 * the kernel's shared zero page (or, in a THP range, the huge zero page):
 * it holds no memory of the process and sits on no node.  Most kernels
 * answer -EFAULT for it in move_pages, but not every kernel does, so a page
 * move_pages places is also checked with PAGEMAP_SCAN (Linux 6.7+; one
 * /proc/self/pagemap opened per nm_where call, one ioctl per batch that has
 * placed pages).  Where PAGEMAP_SCAN is missing, move_pages' answer stands. */
struct zero_scan {
    int pagemap;        /* -1 until the first batch with placed pages */
    bool tried;         /* the open was attempted */
    bool works;         /* the last scan answered: zero[] is valid */
};

static void zero_scan(struct zero_scan *s, const void *p, size_t count, bool *zero)
{
    if (!s->tried) {
        s->tried = true;
        s->pagemap = nm_os_open_read("/proc/self/pagemap");
    }
    s->works = false;
    if (s->pagemap < 0) return;
    memset(zero, 0, count * sizeof *zero);
    int saved = errno;
    s->works = nm_os_zero_pages(s->pagemap, p, count, zero) == 0;
    errno = saved;
    if (!s->works) {   /* an older kernel: no use asking again */
        nm_os_close(s->pagemap);
        s->pagemap = -1;
    }
}

static void zero_scan_end(struct zero_scan *s)
{
    int saved = errno;
    nm_os_close(s->pagemap);
    errno = saved;
}

nm_export long nm_where(const void *ptr, size_t len, uint64_t *counts, int max_nodes)
{
    if (max_nodes < 0 || (max_nodes > 0 && !counts)) { errno = EINVAL; return -1; }
    if (len == 0) return 0;
    uintptr_t start = nm_align_down((uintptr_t)ptr, NM_OS_PAGE);
    uintptr_t last = (uintptr_t)ptr + len - 1;
    if (last < (uintptr_t)ptr) { errno = EFAULT; return -1; }
    uintptr_t end = nm_align_down(last, NM_OS_PAGE) + NM_OS_PAGE;

    long resident = 0;
    struct zero_scan scan = { .pagemap = -1 };
    for (uintptr_t at = start; at != end;) {
        void *pages[WHERE_BATCH];
        int status[WHERE_BATCH];
        bool zero[WHERE_BATCH];
        size_t count = 0;
        uintptr_t batch = at;
        for (; count < WHERE_BATCH && at != end; count++, at += NM_OS_PAGE) pages[count] = (void *)at;
        if (nm_os_move_pages(count, pages, NULL, status, 0) != 0) {
            zero_scan_end(&scan);
            return -1;
        }
        bool fault = false, placed = false;
        for (size_t i = 0; i < count; i++) {
            if (status[i] == -EFAULT) fault = true;
            if (status[i] >= 0) placed = true;
        }
        if (placed) zero_scan(&scan, (void *)batch, count, zero);
        for (size_t i = 0; i < count; i++) {
            if (status[i] < 0) continue;   /* -ENOENT: not faulted in */
            if (scan.works && zero[i]) continue;
            resident++;
            if (status[i] < max_nodes) counts[status[i]]++;
        }
        /* -EFAULT is both "not mapped" and "the shared zero page" (read,
         * never written: not resident on any node).  mincore tells them
         * apart: it fails with ENOMEM on a range with unmapped pages. */
        unsigned char vec[WHERE_BATCH];
        if (fault && mincore((void *)batch, count * NM_OS_PAGE, vec) != 0) {
            zero_scan_end(&scan);
            errno = EFAULT;
            return -1;
        }
    }
    zero_scan_end(&scan);
    return resident;
}

nm_export int nm_region_enforcement(const nm_region *r, struct nm_enforcement *out)
{
    if (!r || !out) { errno = EINVAL; return -1; }
    uint64_t counts[NM_NODE_ID_LIMIT];   /* 8 KiB: every node id */
    memset(counts, 0, sizeof counts);
    long resident = nm_where(r->addr, r->size, counts, NM_NODE_ID_LIMIT);
    if (resident < 0) return -1;

    memset(out, 0, sizeof *out);
    out->pages = r->size / NM_OS_PAGE;
    out->resident = (uint64_t)resident;
    /* The nodes the policy allows: its set; local allows any node (it is
     * wherever the first touch ran); preferred allows only its node, so a
     * preferred region that fell back is reported soft. */
    for (int i = 0; i < nm_topo.node_count; i++) {
        int id = nm_topo.node_id[i];
        if (i < NM_STATS_MAX_NODES) out->per_node[i] = counts[id];
        if (r->policy.mode == NM_POLICY_LOCAL || nm_nodeset_has(&r->policy.nodes, id))
            out->on_allowed += counts[id];
    }
    out->level = out->resident == out->pages && out->on_allowed == out->resident
        ? NM_ENFORCEMENT_HARD : NM_ENFORCEMENT_SOFT;
    return 0;
}
