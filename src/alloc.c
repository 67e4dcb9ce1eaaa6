/*
 * alloc.c — the nm_ allocation API: malloc-family operations on top of the
 * heap (small and medium blocks) and large spans, with the checks the
 * public contract promises (sizes that overflow, bad alignments, pointers
 * we do not own, double frees).
 *
 * May call every layer below (heap, large, page, segment, topology, os,
 * options).  override.c maps the libc names onto these.
 */
#define _GNU_SOURCE
#include "alloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "numamalloc.h"
#include "options.h"
#include "policy.h"
#include "prof.h"
#include "purge.h"

/* ---- errors -------------------------------------------------------------------- */

/* One line naming the call and the pointer, then abort (or carry on, with
 * NUMAMALLOC_ON_ERROR=warn, leaving the heap untouched). */
static nm_cold void report(const char *fn, const char *what, const void *p, const char *why)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, fn);
    nm_line_str(&l, "(): ");
    nm_line_str(&l, what);
    nm_line_str(&l, " ");
    nm_line_hex(&l, (uintptr_t)p);
    nm_line_str(&l, why);
    nm_report_error(&l);
}

static nm_cold void report_invalid(const char *fn, const void *p)
{
    report(fn, "invalid pointer", p, ": not allocated by numamalloc");
}

static nm_cold void report_double_free(const char *fn, const void *p)
{
    report(fn, "double free of", p, "");
}

/* The arena a large block of `size` bytes comes from: the process-wide
 * interleave arena for big ones when NUMAMALLOC_INTERLEAVE_ABOVE says so,
 * the NUMAMALLOC_POLICY arena, else the first-touch arena of the thread's
 * home node now (topology.h; not bound: the pages go to the nodes of the
 * threads that first write them, as an OpenMP code that initialises a
 * shared array in parallel expects). */
static struct nm_arena *large_arena(size_t size)
{
    nm_heap_init();
    if (nm_proc.interleave_arena && size >= nm_opt.interleave_above) return nm_proc.interleave_arena;
    if (nm_proc.policy_arena) return nm_proc.policy_arena;
    return nm_first_touch_arena(nm_topology_home_node());
}

/* The one way to a large block: a span of arena `a`, or, when the
 * profiler's countdown says so, a sampled one (prof.h). */
static void *large_alloc(size_t size, size_t alignment, struct nm_arena *a, bool zero)
{
    if (nm_unlikely(nm_prof_counts(size))) {
        void *p = nm_prof_alloc(a, size, alignment, zero);
        if (p) return p;
    }
    return nm_large_alloc(size, alignment, a, zero);
}

/* Resize the large block of span `s` (large.h), keeping the profiler's
 * record of a sampled one across a move; a resize counts as an allocation
 * of the new size for the profiler's countdown, as a new block would. */
static void *large_resize(struct nm_segment *s, size_t size)
{
    uint32_t site = nm_unlikely(s->prof.site) ? nm_prof_detach(s) : 0;
    void *q = nm_large_resize(s, size);
    if (site) {
        if (q) nm_prof_attach(nm_segment_find(q), site, size);
        else nm_prof_attach(s, site, s->prof.size);
    } else if (q && nm_unlikely(nm_prof_counts(size))) {
        nm_prof_adopt(nm_segment_find(q), size);
    }
    return q;
}


/* A heap made by nm_heap_new: an owned arena bound by the policy, and an id
 * that names it in every thread's table of heaps (heap.h).  Every owned
 * arena is the first member of one: user_heap_of() finds it. */
struct nm_user_heap {
    struct nm_arena arena;
    uint64_t id;
    nm_policy policy;
};

static struct nm_user_heap *user_heap_of(struct nm_arena *a)
{
    return (struct nm_user_heap *)a;
}

/* ---- finding a block ------------------------------------------------------------- */

enum block_status { BLOCK_LIVE, BLOCK_FREE, BLOCK_NOT_OURS };

struct block_ref {
    struct nm_segment *segment;
    struct nm_page *page;       /* NULL for large blocks */
    size_t usable;
};

static enum block_status block_lookup(const void *p, struct block_ref *ref)
{
    struct nm_segment *s = nm_segment_find(p);
    if (!s) return BLOCK_NOT_OURS;
    ref->segment = s;
    if (s->kind == NM_SEGMENT_LARGE) {
        if (p != nm_large_block(s)) return BLOCK_NOT_OURS;
        ref->page = NULL;
        ref->usable = s->block_size;
        return atomic_load_explicit(&s->large_state, memory_order_relaxed) == NM_LARGE_LIVE
               ? BLOCK_LIVE : BLOCK_FREE;
    }
    struct nm_page *pg = nm_page_of(s, p);
    if (!nm_page_is_block(pg, p)) return BLOCK_NOT_OURS;
    ref->page = pg;
    const struct nm_block *b = p;
    if (nm_block_is_free(b)) return BLOCK_FREE;
    ref->usable = nm_proc.secure ? nm_heap_secure_usable(pg, p) : pg->block_size;
    return BLOCK_LIVE;
}

/* ---- allocation ---------------------------------------------------------------------- */

nm_noinline void *nm_alloc_slow(size_t size, bool zero)
{
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    int saved = errno;
    void *p = large_alloc(size, 0, large_arena(size), zero);
    nm_heap_tick();
    nm_purge_safe_point();
    if (p) errno = saved;
    return p;
}

nm_export void *nm_malloc(size_t size)
{
    return nm_alloc_inline(size);
}

nm_export void *nm_calloc(size_t count, size_t size)
{
    return nm_calloc_inline(count, size);
}

nm_export void *nm_aligned_alloc(size_t alignment, size_t size)
{
    if (!nm_is_pow2(alignment)) { errno = EINVAL; return NULL; }
    if (alignment <= 16) return nm_alloc_inline(size);
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    if (alignment <= NM_MEDIUM_MAX && size <= NM_MEDIUM_MAX)
        return nm_heap_alloc_aligned(nm_tls_heap, size, alignment);
    int saved = errno;
    void *p = large_alloc(size, alignment, large_arena(size), false);
    if (p) errno = saved;
    return p;
}

/* ---- free ------------------------------------------------------------------------------ */

nm_noinline void nm_free_slow(void *p, const char *fn)
{
    int saved = errno;
    struct block_ref ref;
    switch (block_lookup(p, &ref)) {
    case BLOCK_NOT_OURS:
        report_invalid(fn, p);
        break;
    case BLOCK_FREE:
        report_double_free(fn, p);
        break;
    case BLOCK_LIVE:
        if (!ref.page) {
            nm_heap_note_free(ref.segment);
            if (nm_unlikely(ref.segment->prof.site)) nm_prof_free(ref.segment);
            if (!nm_large_free(ref.segment)) report_double_free(fn, p);
            nm_heap_tick();
        } else if (nm_proc.secure) {
            nm_heap_free_secure(ref.segment, ref.page, p);
        } else {
            nm_heap_free(ref.segment, ref.page, p);
        }
        break;
    }
    errno = saved;
}

nm_export void nm_free(void *p)
{
    nm_free_inline(p);
}

nm_export size_t nm_usable_size(const void *p)
{
    struct block_ref ref;
    if (!p || block_lookup(p, &ref) == BLOCK_NOT_OURS) return 0;
    return ref.usable;
}

/* ---- realloc ------------------------------------------------------------------------------ */

/* Find the live block `p` for a realloc named `fn`; report (and fail with
 * EINVAL) a pointer we do not own or a block already free. */
static bool realloc_lookup(void *p, const char *fn, struct block_ref *ref)
{
    switch (block_lookup(p, ref)) {
    case BLOCK_NOT_OURS: report_invalid(fn, p); break;
    case BLOCK_FREE: report_double_free(fn, p); break;
    case BLOCK_LIVE: return true;
    }
    errno = EINVAL;
    return false;
}

/* A new block of `size` bytes placed as arena `a` places its blocks: a
 * node's bound arena by that node's bound heap, an owned arena by its heap
 * (nm_heap_new), any other arena (node-local, first-touch, process-wide) as
 * malloc places the calling thread's blocks. */
static void *alloc_like(struct nm_arena *a, size_t size)
{
    if (a->owned) return nm_heap_malloc(user_heap_of(a), size);
    if (a == nm_bound_arena(a->node)) return nm_malloc_onnode(size, nm_topo.node_id[a->node]);
    return nm_alloc_inline(size);
}

/* A sampled block of up to NM_MEDIUM_MAX bytes has a span of its own in
 * place of a heap block (prof.h): realloc treats it as the heap block it
 * stands for, so that growing it goes where a heap block's growth goes. */
static bool stands_for_heap_block(const struct block_ref *ref)
{
    return !ref->page && nm_unlikely(ref->segment->prof.site) && ref->segment->prof.size <= NM_MEDIUM_MAX;
}

/* The one realloc.  Resize live block `p` to `size`: kept when the new
 * size still fits and wastes under half, a large block grown or shrunk in
 * its span or moved with mremap; else copied to a new block and freed.  The
 * new block is placed like `p` (same node binding, same heap, same policy)
 * when `into` is NULL or p's arena, else in arena `into`.  `fn` names the
 * call in error reports. */
static void *realloc_block(void *p, size_t size, struct nm_arena *into, const char *fn)
{
    if (size == 0) {          /* as glibc: free and return NULL */
        nm_free_inline(p);
        return NULL;
    }
    struct block_ref ref;
    if (!realloc_lookup(p, fn, &ref)) return NULL;
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }

    struct nm_arena *home = ref.segment->arena;
    if (!into || into == home) {
        into = home;
        if (size <= ref.usable && size >= ref.usable / 2) {
            if (nm_unlikely(!ref.page && ref.segment->prof.site)) nm_prof_resized(ref.segment, size);
            return p;
        }
        if (!ref.page && size > NM_MEDIUM_MAX && !stands_for_heap_block(&ref)) {
            int saved = errno;
            void *q = large_resize(ref.segment, size);
            errno = saved;
            if (q) return q;
        }
    }
    void *q = alloc_like(into, size);
    if (!q) return NULL;
    memcpy(q, p, size < ref.usable ? size : ref.usable);
    nm_free_inline(p);
    return q;
}

void *nm_realloc_named(void *p, size_t size, const char *fn)
{
    if (!p) return nm_alloc_inline(size);
    return realloc_block(p, size, NULL, fn);
}

nm_export void *nm_realloc(void *p, size_t size)
{
    return nm_realloc_named(p, size, "realloc");
}

/* ---- allocation on a given node ----------------------------------------------------------- */

/* The calling thread's heap for kernel node id `node`, or NULL + EINVAL for
 * a node that does not exist or whose memory is not usable (none, or not
 * in the process's cpuset). */
static nm_noinline struct nm_heap *node_heap_lookup(int node, int *index)
{
    nm_heap_init();
    *index = nm_topology_index(&nm_topo, node);
    if (*index < 0 || !nm_topology_usable(&nm_topo, *index)) {
        errno = EINVAL;
        return NULL;
    }
    struct nm_heap *h = nm_tls_node_heap[*index];
    if (!h) h = nm_heap_for_node(*index);
    if (h) {
        nm_tls_last_node_id = node;
        nm_tls_last_node_heap = h;
    }
    return h;
}

static inline struct nm_heap *node_heap(int node, int *index)
{
    /* The node asked for last: one compare (its checks were made then). */
    if (nm_likely(node == nm_tls_last_node_id)) {
        *index = nm_tls_last_node_heap->node;
        return nm_tls_last_node_heap;
    }
    return node_heap_lookup(node, index);
}

nm_export void *nm_malloc_onnode(size_t size, int node)
{
    int index;
    struct nm_heap *h = node_heap(node, &index);
    if (nm_unlikely(!h)) return NULL;
    if (nm_likely(size <= NM_DIRECT_MAX)) return nm_heap_alloc_small(h, size);
    if (nm_likely(size <= NM_MEDIUM_MAX)) return nm_heap_alloc_medium(h, size);
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    return large_alloc(size, 0, nm_bound_arena(index), false);
}

nm_export void *nm_calloc_onnode(size_t count, size_t size, int node)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) { errno = ENOMEM; return NULL; }
    if (bytes > NM_MEDIUM_MAX) {
        int index;
        if (!node_heap(node, &index)) return NULL;
        if (bytes > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
        return large_alloc(bytes, 0, nm_bound_arena(index), true);
    }
    void *p = nm_malloc_onnode(bytes, node);
    if (p) memset(p, 0, bytes);
    return p;
}

nm_export int nm_reserve(int node, size_t bytes)
{
    nm_heap_init();
    int index = nm_topology_index(&nm_topo, node);
    if (index < 0 || !nm_topology_usable(&nm_topo, index)) { errno = EINVAL; return -1; }
    if (bytes > PTRDIFF_MAX) { errno = ENOMEM; return -1; }
    struct nm_arena *a = nm_proc.policy_arena ? nm_proc.policy_arena : nm_local_arena(index);
    if (nm_arena_reserve(a, bytes) != 0) return -1;
    /* The calling thread's heap takes the free pages of its own segments
     * before any reserved one: fault those in too. */
    struct nm_heap *h = nm_tls_heap;
    if (h != &nm_heap_empty && h->arena == a) nm_heap_populate(h);
    return 0;
}

/* ---- heaps with a policy ---------------------------------------------------------------------- */


nm_export nm_heap_t *nm_heap_new_flags(const nm_policy *policy, unsigned flags)
{
    nm_heap_init();
    if (flags & ~(unsigned)NM_HEAP_STRICT) { errno = EINVAL; return NULL; }
    nm_policy p = policy ? *policy : nm_policy_local();
    if (nm_policy_check(&p, NULL, 0) != 0) return NULL;
    struct nm_user_heap *uh = nm_os_reserve(sizeof *uh, NM_OS_PAGE, false);
    if (!uh) { errno = ENOMEM; return NULL; }
    nm_arena_init_policy(&uh->arena, &p, nm_topology_home_node());
    uh->arena.owned = true;
    uh->arena.strict = flags & NM_HEAP_STRICT;
    uh->policy = p;
    uh->id = 1 + atomic_fetch_add_explicit(&nm_proc.next_user_heap_id, 1, memory_order_relaxed);
    return uh;
}

nm_export nm_heap_t *nm_heap_new(const nm_policy *policy)
{
    return nm_heap_new_flags(policy, 0);
}

nm_export nm_policy nm_heap_policy(const nm_heap_t *uh)
{
    return uh->policy;
}

nm_export void *nm_heap_malloc(nm_heap_t *uh, size_t size)
{
    struct nm_heap *h = nm_heap_user(&uh->arena, uh->id);
    if (nm_unlikely(!h)) return NULL;
    if (nm_likely(size <= NM_DIRECT_MAX)) return nm_heap_alloc_small(h, size);
    if (nm_likely(size <= NM_MEDIUM_MAX)) return nm_heap_alloc_medium(h, size);
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    return large_alloc(size, 0, &uh->arena, false);
}

nm_export void *nm_heap_calloc(nm_heap_t *uh, size_t count, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes) || bytes > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (bytes > NM_MEDIUM_MAX) return large_alloc(bytes, 0, &uh->arena, true);
    void *p = nm_heap_malloc(uh, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

nm_export void *nm_heap_aligned_alloc(nm_heap_t *uh, size_t alignment, size_t size)
{
    if (!nm_is_pow2(alignment)) { errno = EINVAL; return NULL; }
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    if (alignment <= 16) return nm_heap_malloc(uh, size);
    if (alignment <= NM_MEDIUM_MAX && size <= NM_MEDIUM_MAX) {
        struct nm_heap *h = nm_heap_user(&uh->arena, uh->id);
        return h ? nm_heap_alloc_aligned(h, size, alignment) : NULL;
    }
    return large_alloc(size, alignment, &uh->arena, false);
}

nm_export void *nm_heap_realloc(nm_heap_t *uh, void *p, size_t size)
{
    if (!p) return nm_heap_malloc(uh, size);
    return realloc_block(p, size, &uh->arena, "nm_heap_realloc");
}

nm_export void nm_heap_destroy(nm_heap_t *uh)
{
    if (!uh) return;
    int saved = errno;
    nm_prof_forget_arena(&uh->arena);
    nm_heap_release_arena(&uh->arena);
    nm_os_release(uh, sizeof *uh);
    errno = saved;
}

/* ---- threads and trimming ------------------------------------------------------------------- */

nm_export int nm_thread_rebind(void)
{
    return nm_heap_rebind();
}

nm_export void nm_trim(void)
{
    nm_heap_init();
    /* Every heap of every thread, parked and abandoned ones, every cache. */
    nm_purge_release_all();
}
