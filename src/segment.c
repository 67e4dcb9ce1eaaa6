/*
 * segment.c — node-bound memory: the segment map, segment allocation and
 * release, the per-node cache and abandoned stacks, and purging.
 *
 * Memory comes in 4 MiB-aligned ranges, carved from the arena's chunks
 * (chunk.c) or mapped by themselves, bound with mbind as their arena says
 * before first touch (a local arena does not bind when the
 * process runs under its own memory policy, e.g. numactl --membind, which we
 * then respect).  Empty segments wait in their arena's cache for reuse, and
 * go back to the OS once they have waited the purge delay while the node
 * caches more than the cache limit.  Nothing here takes a lock: the arena
 * stacks are lock-free and a purge that finds another purge running simply
 * returns.
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

uintptr_t nm_cookie_key;
uintptr_t nm_free_mark;
bool nm_bind_segments = true;
_Atomic uint8_t nm_segment_map[NM_MAP_UNITS];
struct nm_node_state nm_nodes[NM_MAX_NODES];
struct nm_arena *nm_process_arena;
struct nm_arena *nm_interleave_arena;
struct nm_global_counters nm_counters;
struct nm_purge_clock nm_purge_clock;
_Atomic uint64_t nm_class_pages[NM_CLASS_SLOTS];
__thread uintptr_t nm_tls_thread_id __attribute__((tls_model("initial-exec"))) = NM_THREAD_UNNAMED;
static _Atomic uintptr_t next_thread_id = NM_THREAD_UNNAMED + 1;

void nm_thread_name(void)
{
    if (nm_tls_thread_id == NM_THREAD_UNNAMED)
        nm_tls_thread_id = atomic_fetch_add_explicit(&next_thread_id, 1, memory_order_relaxed);
}

/* ---- start-up ---------------------------------------------------------------- */

void nm_segment_init(void)
{
    /* AT_RANDOM: 16 random bytes the kernel gives every process; no syscall. */
    const uint64_t *random = (const uint64_t *)getauxval(AT_RANDOM);
    uint64_t key = random ? random[0] ^ (random[1] << 1) : 0;
    if (key == 0) key = (uintptr_t)&key ^ 0x5bd1e9955bd1e995ull;
    nm_cookie_key = (uintptr_t)key | 1;
    nm_free_mark = (nm_cookie_key * 0xff51afd7ed558ccdull) | 1;

    /* Respect a policy the process already has (numactl --membind/--interleave
     * /--preferred): binding our segments would override it. */
    int mode = NM_MPOL_DEFAULT;
    if (nm_os_get_mempolicy(&mode, NULL, NULL, 0) == 0 && mode != NM_MPOL_DEFAULT)
        nm_bind_segments = false;
    /* One node: binding changes nothing, save the syscall. */
    if (nm_topo.node_count < 2) nm_bind_segments = false;

    for (int i = 0; i < nm_topo.node_count; i++) {
        nm_nodemask one;
        memset(&one, 0, sizeof one);
        nm_mask_set(&one, nm_topo.node_id[i]);
        nm_arena_init(&nm_nodes[i].local, i, nm_bind_segments ? NM_MPOL_PREFERRED : -1, &one);
        nm_arena_init(&nm_nodes[i].bound, i, NM_MPOL_BIND, &one);
        nm_arena_init(&nm_nodes[i].first_touch, i, -1, NULL);
    }
}

void nm_arena_init(struct nm_arena *a, int node, int bind_mode, const nm_nodemask *nodes)
{
    memset(a, 0, sizeof *a);
    a->node = node;
    a->bind_mode = bind_mode;
    if (nodes) a->nodes = *nodes;
}

void nm_arena_init_policy(struct nm_arena *a, const nm_policy *p, int local)
{
    nm_nodemask mask;
    nm_policy_kernel_mask(p, &mask);
    int first = 0;
    while (first < NM_MASK_BITS - 1 && !nm_mask_test(&mask, first)) first++;
    int index = p->mode == NM_POLICY_LOCAL ? local : nm_topology_index(&nm_topo, first);
    nm_arena_init(a, index < 0 ? 0 : index, nm_policy_kernel_mode(p), &mask);
}

void nm_arena_after_fork(struct nm_arena *a)
{
    atomic_store(&a->cache.popping, false);
    atomic_store(&a->abandoned.popping, false);
}

void nm_segment_after_fork(void)
{
    for (int i = 0; i < NM_MAX_NODES; i++) {
        nm_arena_after_fork(&nm_nodes[i].local);
        nm_arena_after_fork(&nm_nodes[i].bound);
        nm_arena_after_fork(&nm_nodes[i].first_touch);
    }
    if (nm_process_arena) nm_arena_after_fork(nm_process_arena);
    if (nm_interleave_arena) nm_arena_after_fork(nm_interleave_arena);
    nm_chunk_after_fork();
}

/* ---- the segment map ------------------------------------------------------------ */

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

/* ---- lock-free node stacks ------------------------------------------------------- */

void nm_stack_push(struct nm_stack *st, struct nm_segment *s)
{
    struct nm_segment *top = atomic_load_explicit(&st->top, memory_order_relaxed);
    do {
        s->stack_next = top;
    } while (!atomic_compare_exchange_weak_explicit(&st->top, &top, s, memory_order_release,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&st->count, 1, memory_order_relaxed);
}

/* Win the pop flag (nm_flag_try: a pop holds it for a few instructions;
 * nobody waits for a holder that a fork or a signal stopped). */
static bool stack_try_enter(struct nm_stack *st)
{
    if (atomic_load_explicit(&st->top, memory_order_relaxed) == NULL) return false;
    return nm_flag_try(&st->popping);
}

static void stack_leave(struct nm_stack *st) { nm_flag_release(&st->popping); }

struct nm_segment *nm_stack_pop(struct nm_stack *st)
{
    if (!stack_try_enter(st)) return NULL;
    /* Only pushes race with us, and they never remove `top`, so reading
     * top->stack_next is safe and the CAS cannot suffer ABA. */
    struct nm_segment *top = atomic_load_explicit(&st->top, memory_order_acquire);
    while (top && !atomic_compare_exchange_weak_explicit(&st->top, &top, top->stack_next,
                                                         memory_order_acquire,
                                                         memory_order_acquire)) {
    }
    stack_leave(st);
    if (top) atomic_fetch_sub_explicit(&st->count, 1, memory_order_relaxed);
    return top;
}

struct nm_segment *nm_stack_take_all(struct nm_stack *st)
{
    if (!stack_try_enter(st)) return NULL;
    struct nm_segment *all = atomic_exchange_explicit(&st->top, NULL, memory_order_acquire);
    stack_leave(st);
    for (struct nm_segment *s = all; s; s = s->stack_next)
        atomic_fetch_sub_explicit(&st->count, 1, memory_order_relaxed);
    return all;
}

/* ---- mapping memory for a node ---------------------------------------------------- */

/* Reserve `size` bytes and bind them as arena `a` says.  NULL + ENOMEM. */
static void *map_bound(size_t size, size_t align, struct nm_arena *a, bool hugetlb)
{
    void *p = nm_os_reserve(size, align, hugetlb);
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
    void *p = map_bound(size, align, a, true);
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
    if (!p) {
        p = map_bound(size, align, a, false);
        if (!p) return NULL;
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
    if (!chunk) nm_os_name_range(p, size, "numamalloc");
    ((struct nm_segment *)p)->chunk = chunk;
    nm_map_add(p, size, kind);
    atomic_fetch_add_explicit(&nm_nodes[a->node].mapped, size, memory_order_relaxed);
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
    atomic_fetch_sub_explicit(&nm_nodes[node].mapped, size, memory_order_relaxed);
    if (!chunk) {
        nm_os_release(start, size);
        return;
    }
    /* The units go back as the chunk has them: no huge pages. */
    if (thp) nm_os_no_thp(start, size);
    nm_chunk_return(chunk, start, size >> NM_UNIT_SHIFT);
}

/* ---- segments ------------------------------------------------------------------------ */

static const struct { uint8_t page_shift; } kind_layout[] = {
    [NM_SEGMENT_SMALL] = { NM_SMALL_PAGE_SHIFT },
    [NM_SEGMENT_MEDIUM] = { NM_MEDIUM_PAGE_SHIFT },
};

static void segment_format(struct nm_segment *s, struct nm_arena *a, enum nm_segment_kind kind)
{
    uint32_t pages = (uint32_t)(NM_SEGMENT_SIZE >> kind_layout[kind].page_shift);
    bool reserved = s->reserved;   /* a reserved segment stays reserved for life */
    struct nm_segment *member_next = s->member_next;
    struct nm_chunk *chunk = s->chunk;
    memset(s, 0, sizeof *s + pages * sizeof(struct nm_page));
    s->reserved = reserved;
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
}

struct nm_segment *nm_segment_alloc(struct nm_arena *a, enum nm_segment_kind kind)
{
    struct nm_node_state *ns = &nm_nodes[a->node];
    struct nm_segment *s = nm_stack_pop(&a->cache);
    if (s) {
        atomic_fetch_sub_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
    } else {
        s = nm_segment_map_memory(NM_SEGMENT_SIZE, NM_SEGMENT_SIZE, a, NULL,
                                  nm_map_segment_kind(kind));
        if (!s) return NULL;
    }
    segment_format(s, a, kind);
    atomic_fetch_add_explicit(&ns->segments, 1, memory_order_relaxed);
    return s;
}

void nm_segment_free(struct nm_segment *s)
{
    struct nm_arena *a = s->arena;   /* once pushed, the segment is another thread's */
    struct nm_node_state *ns = &nm_nodes[a->node];
    uint64_t now = nm_os_now_ms();
    atomic_store_explicit(&s->thread, 0, memory_order_relaxed);
    atomic_store_explicit(&s->heap, NULL, memory_order_relaxed);
    atomic_fetch_sub_explicit(&ns->segments, 1, memory_order_relaxed);
    /* Purged pages of the segment were counted as decommitted; from here on
     * the segment counts as a whole (cached, or gone). */
    size_t purged = 0;
    for (uint64_t bits = s->decommitted_pages; bits; bits &= bits - 1) {
        uint8_t *start;
        size_t len;
        nm_page_area(s, (size_t)__builtin_ctzll(bits), &start, &len);
        purged += len;
    }
    atomic_fetch_sub_explicit(&ns->decommitted, purged, memory_order_relaxed);
    if (nm_opt.purge_delay_ms == 0 && nm_opt.cache_bytes == 0 && !a->owned) {
        nm_segment_unmap_memory(s, s->size, s->node);
        atomic_fetch_add_explicit(&nm_counters.purges, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&nm_counters.purged_bytes, NM_SEGMENT_SIZE, memory_order_relaxed);
        return;
    }
    s->cached_ms = now;
    atomic_fetch_add_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
    nm_stack_push(&a->cache, s);
    nm_purge_signal();
}

void nm_segment_abandon(struct nm_segment *s)
{
    atomic_store_explicit(&s->thread, 0, memory_order_relaxed);
    atomic_store_explicit(&s->heap, NULL, memory_order_release);
    s->heap_next = s->heap_prev = NULL;
    atomic_fetch_add_explicit(&nm_counters.abandoned, 1, memory_order_relaxed);
    nm_stack_push(&s->arena->abandoned, s);
}

struct nm_segment *nm_segment_take_abandoned(struct nm_arena *a)
{
    struct nm_segment *s = nm_stack_pop(&a->abandoned);
    if (s) atomic_fetch_add_explicit(&nm_counters.reclaimed, 1, memory_order_relaxed);
    return s;
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
        /* retired_ms holds the clock's low 32 bits: compare in 32 bits. */
        if (force || (uint32_t)((uint32_t)now_ms - s->retired_ms[i]) >= nm_opt.purge_delay_ms)
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
        if (run && nm_os_decommit(run, run_len) == 0) {
            done |= run_bits;
            given += run_len;
            atomic_fetch_add_explicit(&nm_counters.purges, 1, memory_order_relaxed);
        }
        run = NULL;
        run_bits = 0;
    }
    atomic_fetch_add_explicit(&nm_nodes[s->node].decommitted, given, memory_order_relaxed);
    atomic_fetch_add_explicit(&nm_counters.purged_bytes, given, memory_order_relaxed);
    /* decommitted first: whoever takes the page next sees it. */
    atomic_fetch_or_explicit(&s->decommitted_pages, done, memory_order_relaxed);
    atomic_fetch_or_explicit(&s->free_pages, claimed, memory_order_release);
    atomic_fetch_and_explicit(&s->purging, ~claimed, memory_order_release);
    return given;
}

/* ---- releasing an owned arena -------------------------------------------------------------- */

void nm_arena_release(struct nm_arena *a)
{

    struct nm_node_state *ns = &nm_nodes[a->node];
    /* What the counters hold for each range: cached, live segments (and
     * their pages in use), live large blocks. */
    for (struct nm_segment *s = nm_stack_take_all(&a->cache); s; s = s->stack_next)
        atomic_fetch_sub_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
    struct nm_segment *segments = atomic_exchange_explicit(&a->members, NULL, memory_order_acquire);
    struct nm_segment *spans = atomic_exchange_explicit(&a->spans, NULL, memory_order_acquire);
    for (struct nm_segment *s = spans, *next; s; s = next) {
        next = s->member_next;
        if (atomic_load_explicit(&s->large_state, memory_order_relaxed) == NM_LARGE_LIVE) {
            atomic_fetch_sub_explicit(&ns->in_use, s->block_size, memory_order_relaxed);
            atomic_fetch_sub_explicit(&ns->large_blocks, 1, memory_order_relaxed);
        }
        nm_segment_unmap_memory(s, s->size, a->node);
    }
    struct nm_segment *s = segments;
    while (s) {
        struct nm_segment *next = s->member_next;
        if (atomic_load_explicit(&s->heap, memory_order_relaxed) || s->pages_used) {
            atomic_fetch_sub_explicit(&ns->segments, 1, memory_order_relaxed);
            for (uint32_t i = 0; i < s->page_count; i++) {
                if (s->pages[i].state == NM_PAGE_FREE) continue;
                atomic_fetch_sub_explicit(&nm_class_pages[s->pages[i].size_class], 1,
                                          memory_order_relaxed);
                atomic_fetch_sub_explicit(&ns->in_use, (size_t)1 << s->page_shift,
                                          memory_order_relaxed);
            }
        }
        nm_segment_unmap_memory(s, s->size, a->node);
        s = next;
    }
    atomic_store_explicit(&a->abandoned.top, NULL, memory_order_relaxed);
}

/* ---- reserving ------------------------------------------------------------------------ */

int nm_segment_reserve(struct nm_arena *a, size_t bytes)
{
    struct nm_node_state *ns = &nm_nodes[a->node];
    uint64_t now = nm_os_now_ms();
    for (size_t done = 0; done < bytes; done += NM_SEGMENT_SIZE) {
        struct nm_segment *s =
            nm_segment_map_memory(NM_SEGMENT_SIZE, NM_SEGMENT_SIZE, a, NULL, NM_MAP_SEGMENT_SMALL);
        if (!s) return -1;
        (void)nm_os_populate(s, NM_SEGMENT_SIZE);
        s->arena = a;
        s->reserved = true;
        s->cached_ms = now;
        atomic_fetch_add_explicit(&ns->reserved, NM_SEGMENT_SIZE, memory_order_relaxed);
        atomic_fetch_add_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
        nm_stack_push(&a->cache, s);
    }
    return 0;
}

/* ---- purging the node cache ---------------------------------------------------------- */

bool nm_segment_cache_purge(struct nm_arena *a, uint64_t now_ms, bool force)
{
    int node = a->node;
    struct nm_node_state *ns = &nm_nodes[node];
    bool waiting = false;
    atomic_store_explicit(&a->next_purge_ms, now_ms + (nm_opt.purge_delay_ms / 2) + 1,
                          memory_order_relaxed);
    struct nm_segment *all = nm_stack_take_all(&a->cache);
    if (!all && atomic_load_explicit(&a->cache.count, memory_order_relaxed) > 0)
        waiting = true;   /* another thread is at it */
    if (force) atomic_store_explicit(&ns->reserved, 0, memory_order_relaxed);
    /* A segment goes back once it has waited the purge delay
     * (nm_purge_due), or at once while the node caches more than the cache
     * limit beyond its reserved memory (nm_reserve), which stays until
     * forced. */
    for (struct nm_segment *s = all, *next; s; s = next) {
        next = s->stack_next;
        uint64_t over = atomic_load_explicit(&ns->reserved, memory_order_relaxed) +
                        nm_opt.cache_bytes;
        bool due = nm_purge_due(s->cached_ms, now_ms, nm_opt.purge_delay_ms, force) ||
                   atomic_load_explicit(&ns->cached, memory_order_relaxed) > over;
        if (a->strict ||
            (s->reserved && atomic_load_explicit(&ns->reserved, memory_order_relaxed) > 0)) {
            nm_stack_push(&a->cache, s);   /* kept committed */
        } else if (due && a->owned) {
            /* Owned arenas keep their ranges: give back the pages only. */
            if (!atomic_load_explicit(&s->decommitted_pages, memory_order_relaxed)) {
                nm_os_decommit((char *)s + NM_OS_PAGE, NM_SEGMENT_SIZE - NM_OS_PAGE);
                atomic_store_explicit(&s->decommitted_pages, ~0ull, memory_order_relaxed);
                atomic_fetch_add_explicit(&nm_counters.purges, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&nm_counters.purged_bytes, NM_SEGMENT_SIZE,
                                          memory_order_relaxed);
            }
            nm_stack_push(&a->cache, s);
        } else if (due) {
            atomic_fetch_sub_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
            nm_segment_unmap_memory(s, NM_SEGMENT_SIZE, node);
            atomic_fetch_add_explicit(&nm_counters.purges, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&nm_counters.purged_bytes, NM_SEGMENT_SIZE,
                                      memory_order_relaxed);
        } else {
            waiting = true;
            nm_stack_push(&a->cache, s);
        }
    }
    nm_chunk_sweep(&a->chunks);
    return waiting;
}
