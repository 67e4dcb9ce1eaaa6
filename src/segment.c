/*
 * segment.c — node-bound memory: the segment map, and segment allocation,
 * formatting and release (the caches and abandoned stacks are arena.c's).
 *
 * Memory comes in 4 MiB-aligned ranges, carved from the arena's chunks
 * (chunk.c) or mapped by themselves, bound with mbind as their arena says
 * before first touch (a local arena does not bind when the
 * process runs under its own memory policy, e.g. numactl --membind, which we
 * then respect).  Nothing here takes a lock.
 *
 * May call the chunk, policy, os and topology layers and the options.
 */
#define _GNU_SOURCE
#include "segment.h"

#include <errno.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "options.h"

_Atomic uint8_t nm_segment_map[NM_MAP_UNITS];
__thread uintptr_t nm_tls_thread_id __attribute__((tls_model("initial-exec"))) = NM_THREAD_UNNAMED;

void nm_thread_name(void)
{
    if (nm_tls_thread_id == NM_THREAD_UNNAMED)
        nm_tls_thread_id = NM_THREAD_UNNAMED + 1 +
                           atomic_fetch_add_explicit(&nm_proc.next_thread_id, 1, memory_order_relaxed);
}

/* ---- start-up ---------------------------------------------------------------- */

/* splitmix64's finalizer: every bit of `x` reaches every bit of the result. */
static uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void map_lazy_init(void);

void nm_segment_init(void)
{
    /* AT_RANDOM: 16 random bytes the kernel gives every process; no
     * syscall.  They may lie at any address: copied, not loaded as words. */
    const void *at_random = (const void *)getauxval(AT_RANDOM);
    uint64_t random[2] = { 0, 0 };
    if (at_random) memcpy(random, at_random, sizeof random);
    uint64_t key = random[0] ^ (random[1] << 1);
    if (key == 0) key = (uintptr_t)&key ^ 0x5bd1e9955bd1e995ull;
    nm_proc.cookie_key = (uintptr_t)key | 1;
    nm_proc.link_key = mix64(key ^ 0x9E3779B97F4A7C15ull);
    nm_proc.check_key = mix64(key + 0xD1B54A32D192ED03ull);
    nm_proc.canary_key = mix64(key ^ 0x2545F4914F6CDD1Dull);
    nm_proc.secure = nm_opt.secure;
    nm_proc.slow_allocs = nm_opt.secure || nm_opt.prof;
    map_lazy_init();
}

/* ---- the segment map ------------------------------------------------------------ */

/* The map's memory.  Under strict accounting its 32 MiB of bss would be
 * charged whole, in every process and again in every fork child; so at
 * start-up its whole pages are mapped anew read-only (zero, not charged:
 * lookups read them), and a page is made writable before a unit it holds
 * is first set (nm_map_prepare): one page per 16 GiB of address space.
 * [map_lazy_lo, map_lazy_hi): those pages (empty in the other modes);
 * map_page_writable: bit i, the i-th of them was made writable. */
static uintptr_t map_lazy_lo, map_lazy_hi;
static _Atomic uint64_t map_page_writable[NM_MAP_UNITS / NM_OS_PAGE / 64 + 1];

static void map_lazy_init(void)
{
    uintptr_t lo = nm_align_up((uintptr_t)nm_segment_map, NM_OS_PAGE);
    uintptr_t hi = nm_align_down((uintptr_t)nm_segment_map + NM_MAP_UNITS, NM_OS_PAGE);
    if (hi > lo && nm_os_strict_commit() && nm_os_zero_readonly((void *)lo, hi - lo)) {
        map_lazy_lo = lo;
        map_lazy_hi = hi;
    }
}

bool nm_map_prepare(void *start, size_t size)
{
    if (nm_likely(!map_lazy_hi)) return true;
    size_t first = (uintptr_t)start >> NM_SEGMENT_SHIFT;
    size_t last = ((uintptr_t)start + size - 1) >> NM_SEGMENT_SHIFT;
    if (first >= NM_MAP_UNITS) return true;
    if (last >= NM_MAP_UNITS) last = NM_MAP_UNITS - 1;
    uintptr_t from = nm_align_down((uintptr_t)&nm_segment_map[first], NM_OS_PAGE);
    uintptr_t to = (uintptr_t)&nm_segment_map[last] + 1;
    for (uintptr_t page = from; page < to; page += NM_OS_PAGE) {
        if (page < map_lazy_lo || page >= map_lazy_hi) continue;
        size_t i = (page - map_lazy_lo) / NM_OS_PAGE;
        uint64_t bit = 1ull << (i % 64);
        if (atomic_load_explicit(&map_page_writable[i / 64], memory_order_acquire) & bit) continue;
        if (nm_os_commit((void *)page, NM_OS_PAGE) != 0) return false;
        atomic_fetch_or_explicit(&map_page_writable[i / 64], bit, memory_order_release);
    }
    return true;
}

static void map_set(size_t unit, enum nm_map_kind kind)
{
    if (unit < NM_MAP_UNITS)
        atomic_store_explicit(&nm_segment_map[unit], (uint8_t)kind, memory_order_release);
}

void nm_map_add(void *start, size_t size, enum nm_map_kind kind)
{
    size_t first = (uintptr_t)start >> NM_SEGMENT_SHIFT;
    size_t last = ((uintptr_t)start + size - 1) >> NM_SEGMENT_SHIFT;
    for (size_t unit = last; unit > first; unit--) map_set(unit, NM_MAP_CONT);
    map_set(first, kind);
}

void nm_map_remove(void *start, size_t size)
{
    size_t first = (uintptr_t)start >> NM_SEGMENT_SHIFT;
    size_t last = ((uintptr_t)start + size - 1) >> NM_SEGMENT_SHIFT;
    for (size_t unit = first; unit <= last; unit++) map_set(unit, NM_MAP_NONE);
}

struct nm_segment *nm_segment_find(const void *p)
{
    uintptr_t addr = (uintptr_t)p;
    for (;;) {
        switch (nm_map_lookup(addr)) {
        case NM_MAP_SEGMENT_SMALL:
        case NM_MAP_SEGMENT_MEDIUM:
        case NM_MAP_SPAN: {
            struct nm_segment *s = nm_segment_of((void *)addr);
            if (s->cookie != nm_segment_cookie(s)) return NULL;
            return (uintptr_t)p - (uintptr_t)s < s->size ? s : NULL;
        }
        case NM_MAP_CONT:
            addr = (addr & ~(NM_SEGMENT_SIZE - 1)) - NM_SEGMENT_SIZE;
            continue;
        default:
            return NULL;
        }
    }
}

/* ---- mapping memory for a node ---------------------------------------------------- */

/* Reserve `size` bytes and bind them as arena `a` says: writable, or
 * (`space`) as address space to commit on use (os.h).  NULL + ENOMEM. */
static void *map_bound(size_t size, size_t align, struct nm_arena *a, bool hugetlb, bool space)
{
    void *p = space ? nm_os_reserve_space(size, align) : nm_os_reserve(size, align, hugetlb);
    if (!p) { errno = ENOMEM; return NULL; }
    if (a->bind_mode >= 0 && nm_os_mbind(p, size, a->bind_mode, &a->nodes, 0) != 0 &&
        a->bind_mode == NM_MPOL_BIND) {
        /* A strict binding that the kernel refuses is not something to
         * serve memory without. */
        nm_os_release(p, size);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

/* Hugetlb pages exist only if the pool has them on the nodes the policy
 * allows, and a mapping made with an empty pool still succeeds: the first
 * write would then raise SIGBUS.  So the pages are taken now, and NULL
 * means "none to be had". */
static void *map_hugetlb(size_t size, size_t align, struct nm_arena *a)
{
    int saved = errno;
    void *p = map_bound(size, align, a, true, false);
    if (p && nm_os_populate_only(p, size) != 0) {
        nm_os_release(p, size);
        p = NULL;
    }
    errno = saved;
    return p;
}

/* Whether the nodes a strict arena binds to can give `size` bytes now.
 * Faulting in more than a bound node can give does not fail: the kernel
 * calls the OOM killer, which picks the process that asked.  So the ask is
 * checked first against what the nodes have free or in inactive page cache
 * (their meminfo), less a headroom per node of 1/32 of its size (at least
 * 8 MiB) that the kernel keeps for itself.  A check, then the faults: other
 * processes may take the memory in between, so this is a best effort, not a
 * reservation.  Policies that may spill to other nodes (preferred,
 * interleave) need no check. */
static bool strict_fits(const struct nm_arena *a, size_t size)
{
    if (a->bind_mode != NM_MPOL_BIND) return true;
    uint64_t available = 0;
    for (int i = 0; i < nm_topo.node_count; i++) {
        if (!nm_mask_test(&a->nodes, nm_topo.node_id[i])) continue;
        uint64_t free_now = nm_topology_available_now(&nm_topo, i, nm_opt.sysfs_root);
        uint64_t headroom = nm_topo.mem_total[i] / 32;
        if (headroom < 8 * NM_MiB) headroom = 8 * NM_MiB;
        if (free_now > headroom) available += free_now - headroom;
    }
    return size <= available;
}

/* Ranges carved from chunks: not an owned arena's (it keeps its ranges in
 * member lists until it is released as a whole), not hugetlb, at most
 * 4 MiB-aligned (the units are) and not so large that they fragment a
 * chunk (larger ones are few: each is at least 256 MiB of address space). */
static bool carved(size_t size, size_t align, const struct nm_arena *a)
{
    return !a->owned && align <= NM_UNIT_SIZE && size % NM_UNIT_SIZE == 0 &&
           size <= (size_t)NM_CHUNK_CARVE_MAX << NM_UNIT_SHIFT;
}

void *nm_segment_map_memory(size_t size, size_t align, struct nm_arena *a, bool *hugetlb,
                            enum nm_map_kind kind)
{
    if (a->strict && !strict_fits(a, size)) { errno = ENOMEM; return NULL; }
    void *p = NULL;
    struct nm_chunk *chunk = NULL;
    if (hugetlb && *hugetlb) {
        p = map_hugetlb(size, align, a);
        *hugetlb = p != NULL;
    }
    /* A chunk is bound, advised and named when it is mapped. */
    if (!p && carved(size, align, a)) {
        int saved = errno;
        p = nm_chunk_carve(&a->chunks, size >> NM_UNIT_SHIFT, a->bind_mode, &a->nodes, &chunk);
        if (!p) errno = saved;   /* a mapping of its own may still be had */
    }
    /* A range of its own commits its header now, and its block (a span,
     * large.c) or its pages (a segment, nm_segment_commit_page) as they are
     * used; a strict arena's memory is all committed at once. */
    bool space = false;
    if (!p) {
        space = !a->strict;
        p = map_bound(size, align, a, false, space);
        if (!p) return NULL;
        if (space && nm_os_commit(p, kind == NM_MAP_SPAN ? NM_OS_PAGE : nm_segment_header_max()) != 0) {
            nm_os_release(p, size);
            return NULL;
        }
        /* No transparent huge pages unless a caller asks for them on a part
         * (huge blocks): blocks are carved 4 KiB at a time so that only what
         * is used is resident, and with THP "always" the first write (the
         * header, just below) would fault in 2 MiB. */
        nm_os_no_thp(p, size);
        if (a->strict && nm_os_populate(p, size) != 0) {
            nm_os_release(p, size);
            errno = ENOMEM;
            return NULL;
        }
    }
    if (!nm_map_prepare(p, size)) {
        if (chunk) nm_chunk_return(chunk, p, size >> NM_UNIT_SHIFT);
        else nm_os_release(p, size);
        errno = ENOMEM;
        return NULL;
    }
    if (!chunk) nm_os_name_range(p, size, "numamalloc");
    ((struct nm_segment *)p)->chunk = chunk;
    bool lazy = space && nm_os_strict_commit();
    struct nm_segment *head = p;
    if (kind == NM_MAP_SPAN) {
        head->writable = lazy ? 0 : SIZE_MAX;
    } else {
        atomic_store_explicit(&head->uncommitted, lazy ? ~0ull : 0, memory_order_relaxed);
        head->head_writable = lazy ? nm_segment_header_max() : NM_SEGMENT_SIZE;
    }
    nm_map_add(p, size, kind);
    atomic_fetch_add_explicit(&nm_proc.nodes[a->node].mapped, size, memory_order_relaxed);
    if (a->owned) {
        _Atomic(struct nm_segment *) *list = kind != NM_MAP_SPAN ? &a->members : &a->spans;
        struct nm_segment *s = p, *head = atomic_load_explicit(list, memory_order_relaxed);
        /* A new span is its mapper's: once listed, other threads look for a
         * free span there, and a fresh header would read as free. */
        if (kind == NM_MAP_SPAN)
            atomic_store_explicit(&s->large_state, NM_LARGE_LIVE, memory_order_relaxed);
        do {
            s->member_next = head;
        } while (!atomic_compare_exchange_weak_explicit(list, &head, s, memory_order_release,
                                                        memory_order_relaxed));
    }
    return p;
}

void nm_segment_unmap_memory(void *start, size_t size, int node)
{
    struct nm_segment *s = start;
    struct nm_chunk *chunk = s->chunk;
    bool thp = s->thp;
    nm_map_remove(start, size);
    atomic_fetch_sub_explicit(&nm_proc.nodes[node].mapped, size, memory_order_relaxed);
    if (!chunk) {
        nm_os_release(start, size);
        return;
    }
    /* The units go back as the chunk has them: no huge pages, no guard. */
    if (thp) nm_os_no_thp(start, size);
    if (nm_proc.secure && s->kind != NM_SEGMENT_LARGE)
        nm_os_unguard((char *)start + NM_SEGMENT_SIZE - NM_OS_PAGE, NM_OS_PAGE);
    nm_chunk_return(chunk, start, size >> NM_UNIT_SHIFT);
}

/* ---- segments ------------------------------------------------------------------------ */

static const struct { uint8_t page_shift; } kind_layout[] = {
    [NM_SEGMENT_SMALL] = { NM_SMALL_PAGE_SHIFT },
    [NM_SEGMENT_MEDIUM] = { NM_MEDIUM_PAGE_SHIFT },
};

int nm_segment_format(struct nm_segment *s, struct nm_arena *a, enum nm_segment_kind kind,
                      bool fresh)
{
    uint32_t pages = (uint32_t)(NM_SEGMENT_SIZE >> kind_layout[kind].page_shift);
    bool reserved = s->reserved;   /* a reserved segment stays reserved for life */
    uint64_t uncommitted = atomic_load_explicit(&s->uncommitted, memory_order_relaxed);
    /* The header of this kind may reach into what was page 0's area under
     * the other kind, given back with its charge (medium page 0 starts
     * 4 KiB in, below the small header's end): committed first. */
    size_t head_writable = s->head_writable;
    if (head_writable < sizeof *s + pages * sizeof(struct nm_page)) {
        if (nm_os_commit(s, nm_segment_header_max()) != 0) return -1;
        head_writable = nm_segment_header_max();
    }
    struct nm_segment *member_next = s->member_next;
    struct nm_chunk *chunk = s->chunk;
    if (!fresh) memset(s, 0, sizeof *s + pages * sizeof(struct nm_page));
    s->reserved = reserved;
    atomic_store_explicit(&s->uncommitted, uncommitted, memory_order_relaxed);
    s->head_writable = head_writable;
    s->member_next = member_next;
    s->chunk = chunk;
    s->cookie = nm_segment_cookie(s);
    s->kind = (uint8_t)kind;
    s->page_shift = kind_layout[kind].page_shift;
    /* free() takes the page shift from the map byte: no block of the
     * segment is live while it changes. */
    map_set((uintptr_t)s >> NM_SEGMENT_SHIFT, nm_map_segment_kind(kind));
    s->node = (uint16_t)a->node;
    s->arena = a;
    s->page_count = pages;
    s->size = NM_SEGMENT_SIZE;
    s->free_pages = pages == 64 ? ~0ull : (1ull << pages) - 1;
    /* Set again on every format: the header's memory may have served a
     * span before, and cannot say whether the page is a guard already. */
    if (nm_proc.secure) nm_os_guard((char *)s + NM_SEGMENT_SIZE - NM_OS_PAGE, NM_OS_PAGE);
    return 0;
}

/* ---- committing pages on use ---------------------------------------------------------- */

/* The units (bits of `uncommitted`) that page `index` of `s` covers. */
static uint64_t page_units(const struct nm_segment *s, size_t index)
{
    unsigned per = 1u << (s->page_shift - NM_SMALL_PAGE_SHIFT);
    uint64_t mask = per >= 64 ? ~0ull : (1ull << per) - 1;
    return mask << (index * per);
}

int nm_segment_commit_page(struct nm_segment *s, size_t index)
{
    uint64_t units = page_units(s, index);
    if (nm_likely(!(atomic_load_explicit(&s->uncommitted, memory_order_acquire) & units))) return 0;
    uint8_t *start;
    size_t len;
    nm_page_area(s, index, &start, &len);
    if (nm_os_commit(start, len) != 0) return -1;
    atomic_fetch_and_explicit(&s->uncommitted, ~units, memory_order_relaxed);
    return 0;
}

void nm_segment_uncommit_pages(struct nm_segment *s)
{
    if (s->head_writable >= NM_SEGMENT_SIZE || s->reserved) return;
    size_t head = nm_segment_header_max();
    struct nm_os_advice advice = { s->arena->bind_mode, &s->arena->nodes, false };
    if (nm_os_uncommit((char *)s + head, NM_SEGMENT_SIZE - head, &advice) > 0)
        atomic_store_explicit(&s->uncommitted, ~0ull, memory_order_relaxed);
}

int nm_segment_commit_all(struct nm_segment *s)
{
    if (!atomic_load_explicit(&s->uncommitted, memory_order_acquire)) return 0;
    size_t head = nm_segment_header_max();
    /* Up to the guard page in secure mode (segment.h: nm_page_guard). */
    size_t end = NM_SEGMENT_SIZE - (nm_proc.secure ? NM_OS_PAGE : 0);
    if (nm_os_commit((char *)s + head, end - head) != 0) return -1;
    atomic_store_explicit(&s->uncommitted, 0, memory_order_relaxed);
    return 0;
}

/* ---- giving back free pages ------------------------------------------------------------ */

uint64_t nm_segment_purge_claim(struct nm_segment *s, uint64_t now_ms, bool force, bool *waiting)
{
    if ((s->reserved && !force) || s->arena->strict) return 0;
    uint64_t free_now = atomic_load_explicit(&s->free_pages, memory_order_acquire);
    uint64_t candidates = free_now & ~atomic_load_explicit(&s->decommitted_pages,
                                                           memory_order_relaxed);
    uint64_t due = 0;
    for (uint64_t bits = candidates; bits; bits &= bits - 1) {
        size_t i = (size_t)__builtin_ctzll(bits);
        if (nm_purge_due32(s->retired_ms[i], now_ms, nm_opt.purge_delay_ms, force))
            due |= 1ull << i;
        else if (waiting)
            *waiting = true;
    }
    if (!due) return 0;
    /* The owner may take a free page meanwhile: claim what is still free. */
    uint64_t before = atomic_fetch_and_explicit(&s->free_pages, ~due, memory_order_acq_rel);
    due &= before;
    atomic_fetch_or_explicit(&s->purging, due, memory_order_relaxed);
    return due;
}

size_t nm_segment_purge_finish(struct nm_segment *s, uint64_t claimed)
{
    if (!claimed) return 0;
    size_t given = 0;
    uint64_t units = 0;   /* of pages whose charge went back too */
    struct nm_os_advice advice = { s->arena->bind_mode, &s->arena->nodes, false };
    uint8_t *run = NULL;
    size_t run_len = 0;
    uint64_t done = 0, run_bits = 0;
    for (size_t i = 0; i <= s->page_count; i++) {
        if (i < s->page_count && (claimed >> i) & 1) {
            uint8_t *start; size_t len;
            nm_page_area(s, i, &start, &len);
            if (!run) run = start;
            run_len = (size_t)(start + len - run);
            run_bits |= 1ull << i;
            continue;
        }
        int gone = run ? nm_os_uncommit(run, run_len, &advice) : -1;
        if (gone > 0 && (size_t)(run - (uint8_t *)s) < s->head_writable)
            s->head_writable = (size_t)(run - (uint8_t *)s);
        if (gone >= 0) {
            done |= run_bits;
            for (uint64_t bits = gone ? run_bits : 0; bits; bits &= bits - 1)
                units |= page_units(s, (size_t)__builtin_ctzll(bits));
            given += run_len;
            atomic_fetch_add_explicit(&nm_proc.counters.purges, 1, memory_order_relaxed);
        }
        run = NULL;
        run_bits = 0;
    }
    atomic_fetch_add_explicit(&nm_proc.nodes[s->node].decommitted, given, memory_order_relaxed);
    atomic_fetch_add_explicit(&nm_proc.counters.purged_bytes, given, memory_order_relaxed);
    /* decommitted first: whoever takes the page next sees it. */
    atomic_fetch_or_explicit(&s->decommitted_pages, done, memory_order_relaxed);
    atomic_fetch_or_explicit(&s->uncommitted, units, memory_order_relaxed);
    atomic_fetch_or_explicit(&s->free_pages, claimed, memory_order_release);
    atomic_fetch_and_explicit(&s->purging, ~claimed, memory_order_release);
    return given;
}

