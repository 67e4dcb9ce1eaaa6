/*
 * alloc.c — the nm_ allocation API: malloc-family operations on top of the
 * heap (small and medium blocks) and large spans, with the checks the
 * public contract promises (sizes that overflow, bad alignments, pointers
 * we do not own, double frees); allocation with flags (nm_mallocx: where,
 * how aligned, zeroed, strict), sized frees that check the size against
 * the block, and what a pointer is (nm_ptr_info).
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

#include "device.h"
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
static struct nm_arena *plain_large_arena(size_t size)
{
    nm_heap_init();
    if (nm_proc.interleave_arena && size >= nm_opt.interleave_above) return nm_proc.interleave_arena;
    if (nm_proc.policy_arena) return nm_proc.policy_arena;
    return nm_first_touch_arena(nm_topology_home_node());
}

/* The arena of a large block that names none: the heap the thread has set
 * (nm_thread_set_heap; a load on this slow path only), else as above. */
static struct nm_arena *large_arena(size_t size)
{
    struct nm_arena *set = nm_tls_set_arena;
    if (nm_unlikely(set != NULL)) return set;
    return plain_large_arena(size);
}

/* The one way to a large block: a span of arena `a`, or, when the
 * profiler's countdown says so, a sampled one (prof.h). */
static void *large_alloc(size_t size, size_t alignment, struct nm_arena *a, bool zero)
{
    if (nm_unlikely(nm_heap_sample_due(size))) {
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
    } else if (q && nm_unlikely(nm_heap_sample_due(size))) {
        nm_prof_adopt(nm_segment_find(q), size);
    }
    return q;
}

/* A heap made by nm_heap_new: an owned arena bound by the policy, and an id
 * that names it in every thread's table of heaps (heap.h).  Every owned
 * arena is the first member of one: user_heap_of() finds it.  The id is
 * replaced by a new one when the heap is reset (nm_heap_reset: the
 * threads' heaps for the old one were handed back), never reused. */
struct nm_user_heap {
    struct nm_arena arena;
    uint64_t id;
    nm_policy policy;   /* the arena's binding (nm_heap_migrate changes both) */
    bool internal;      /* the library's own: a node's heap for NM_STRICT (not the
                           program's, so nm_ptr_info names no heap) */
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

nm_noinline void *nm_alloc_large(struct nm_arena *a, size_t size, size_t alignment, bool zero)
{
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    int saved = errno;
    void *p = large_alloc(size, alignment, a ? a : large_arena(size), zero);
    nm_heap_tick();
    nm_purge_safe_point();
    if (p) errno = saved;
    return p;
}

nm_noinline void *nm_alloc_aligned_slow(struct nm_heap *h, struct nm_arena *a, size_t size,
                                        size_t alignment, bool zero)
{
    if (alignment > NM_MEDIUM_MAX || size > NM_MEDIUM_MAX)
        return nm_alloc_large(a, size, alignment, zero);
    void *p = nm_heap_alloc_aligned(h, size, alignment);
    if (zero && p) memset(p, 0, size);
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
    return nm_aligned_inline(alignment, size);
}

/* ---- free ------------------------------------------------------------------------------ */

/* Free live block `p` found by block_lookup. */
static void free_live(const struct block_ref *ref, void *p, const char *fn)
{
    if (!ref->page) {
        nm_heap_note_free(ref->segment);
        if (nm_unlikely(ref->segment->prof.site)) nm_prof_free(ref->segment);
        if (!nm_large_free(ref->segment)) report_double_free(fn, p);
        nm_heap_tick();
    } else {
        nm_heap_free_block(ref->segment, ref->page, p);
    }
}

struct size_check;
static void free_checked(void *p, const char *fn, const struct size_check *check);

nm_noinline void nm_free_slow(void *p, const char *fn)
{
    free_checked(p, fn, NULL);
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

/* ---- placing a block ------------------------------------------------------------------ */

/* The topology index of kernel node id `node` (the heap layer set up
 * first), or -1 + EINVAL for a node that does not exist or whose memory is
 * not usable (none, or not in the process's cpuset). */
static int usable_node_index(int node)
{
    nm_heap_init();
    int index = nm_topology_index(&nm_topo, node);
    if (index < 0 || !nm_topology_usable(&nm_topo, index)) {
        errno = EINVAL;
        return -1;
    }
    return index;
}

/* The calling thread's heap for kernel node id `node`, or NULL + EINVAL for
 * a node that is not usable (usable_node_index). */
static nm_noinline struct nm_heap *node_heap_lookup(int node, int *index)
{
    *index = usable_node_index(node);
    if (*index < 0) return NULL;
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

/* A block on kernel node `node` (nm_malloc_onnode): the thread's heap for
 * the node, the node's bound arena for large blocks. */
static nm_always_inline void *node_alloc(int node, size_t size, size_t alignment, bool zero)
{
    int index;
    struct nm_heap *h = node_heap(node, &index);
    if (nm_unlikely(!h)) return NULL;
    return nm_alloc_in(h, nm_bound_arena(index), size, alignment, zero);
}

/* A block of heap `uh` (nm_heap_new). */
static inline void *heap_alloc(struct nm_user_heap *uh, size_t size, size_t alignment, bool zero)
{
    struct nm_heap *h = nm_heap_user(&uh->arena, uh->id);
    if (nm_unlikely(!h)) return NULL;
    return nm_alloc_in(h, &uh->arena, size, alignment, zero);
}

/* The NM_STRICT heap of kernel node `node`: made at its first use, bound
 * to the node with NM_HEAP_STRICT, kept for the life of the process
 * (nm_proc.strict_node_heap).  NULL + EINVAL for a node that is not
 * usable, or the errno of nm_heap_new_flags. */
static nm_noinline struct nm_user_heap *strict_heap(int node)
{
    int index = usable_node_index(node);
    if (index < 0) return NULL;
    _Atomic(struct nm_user_heap *) *slot = &nm_proc.strict_node_heap[index];
    struct nm_user_heap *uh = atomic_load_explicit(slot, memory_order_acquire);
    if (uh) return uh;
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_nodeset_add(&set, node);
    nm_policy bind = nm_policy_bind(&set);
    struct nm_user_heap *made = nm_heap_new_flags(&bind, NM_HEAP_STRICT);
    if (!made) return NULL;
    made->internal = true;
    if (atomic_compare_exchange_strong(slot, &uh, made)) return made;
    nm_heap_destroy(made);      /* another thread made the node's first */
    return uh;
}

/* A new block of `size` bytes aligned to `alignment` placed as arena `a`
 * places its blocks: a node's bound arena by that node's bound heap, an
 * owned arena by its heap (nm_heap_new, a node's strict heap), any other
 * arena (node-local, first-touch, process-wide) as malloc places the
 * calling thread's blocks. */
static void *alloc_like(struct nm_arena *a, size_t size, size_t alignment)
{
    if (a->owned) return heap_alloc(user_heap_of(a), size, alignment, false);
    if (a == nm_bound_arena(a->node)) return node_alloc(nm_topo.node_id[a->node], size, alignment, false);
    /* A plain block stays plain while the thread has a heap set. */
    if (nm_unlikely(nm_tls_set_arena != NULL))
        return nm_alloc_in(nm_heap_own(), plain_large_arena(size), size, alignment, false);
    return nm_aligned_inline(alignment, size);
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

/* A sampled block of up to NM_MEDIUM_MAX bytes has a span of its own in
 * place of a heap block (prof.h): realloc treats it as the heap block it
 * stands for, so that growing it goes where a heap block's growth goes. */
static bool stands_for_heap_block(const struct block_ref *ref)
{
    return !ref->page && nm_unlikely(nm_span_stands_for_heap_block(ref->segment));
}

/* The one realloc.  Resize live block `p` to `size` bytes aligned to
 * `alignment` (a power of two; 1: any): kept when it is aligned so and the
 * new size still fits and wastes under half, a large block grown or shrunk
 * in its span or moved with mremap (alignments up to a page, which both
 * keep); else copied to a new block and freed.  The new block is placed
 * like `p` (same node binding, same heap, same policy) when `into` is NULL
 * or p's arena, else in arena `into`.  With `zero`, the bytes from p's
 * usable size up to `size` are cleared.  `fn` names the call in error
 * reports. */
static void *realloc_block(void *p, size_t size, struct nm_arena *into, size_t alignment,
                           bool zero, const char *fn)
{
    struct block_ref ref;
    if (!realloc_lookup(p, fn, &ref)) return NULL;
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }

    struct nm_arena *home = ref.segment->arena;
    void *q = NULL;
    if (!into) into = home;
    if (into == home && ((uintptr_t)p & (alignment - 1)) == 0) {
        if (size <= ref.usable && size >= ref.usable / 2) {
            if (nm_unlikely(!ref.page && ref.segment->prof.site)) nm_prof_resized(ref.segment, size);
            return p;
        }
        if (!ref.page && size > NM_MEDIUM_MAX && alignment <= NM_OS_PAGE && !stands_for_heap_block(&ref)) {
            int saved = errno;
            q = large_resize(ref.segment, size);
            errno = saved;
        }
    }
    if (!q) {
        q = alloc_like(into, size, alignment);
        if (!q) return NULL;
        memcpy(q, p, size < ref.usable ? size : ref.usable);
        nm_free_inline(p);
    }
    if (zero && size > ref.usable) memset((char *)q + ref.usable, 0, size - ref.usable);
    return q;
}

void *nm_realloc_named(void *p, size_t size, const char *fn)
{
    if (!p) return nm_alloc_inline(size);
    if (size == 0) {          /* as glibc: free and return NULL */
        nm_free_inline(p);
        return NULL;
    }
    return realloc_block(p, size, NULL, 1, false, fn);
}

nm_export void *nm_realloc(void *p, size_t size)
{
    return nm_realloc_named(p, size, "realloc");
}

/* ---- allocation on a given node ----------------------------------------------------------- */

nm_export void *nm_malloc_onnode(size_t size, int node)
{
    return node_alloc(node, size, 0, false);
}

nm_export void *nm_calloc_onnode(size_t count, size_t size, int node)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) { errno = ENOMEM; return NULL; }
    return node_alloc(node, bytes, 0, true);
}

/* The device nm_malloc_near was last asked for by this thread and the
 * node its blocks go to: a call for the same name is a compare, not a
 * walk of sysfs. */
static __thread char near_dev[64] __attribute__((tls_model("initial-exec")));
static __thread int near_node __attribute__((tls_model("initial-exec")));

nm_export void *nm_malloc_near(const char *dev, size_t size)
{
    int node;
    if (dev && dev[0] && strncmp(dev, near_dev, sizeof near_dev) == 0) {
        node = near_node;
    } else {
        int device_node;
        node = nm_device_home_node(dev, &device_node);
        if (node < 0) return NULL;
        size_t len = strlen(dev);
        if (len < sizeof near_dev) {
            memcpy(near_dev, dev, len + 1);
            near_node = node;
        }
    }
    return node_alloc(node, size, 0, false);
}

nm_export int nm_reserve(int node, size_t bytes)
{
    int index = usable_node_index(node);
    if (index < 0) return -1;
    if (bytes > PTRDIFF_MAX) { errno = ENOMEM; return -1; }
    struct nm_arena *a = nm_proc.policy_arena ? nm_proc.policy_arena : nm_local_arena(index);
    if (nm_arena_reserve(a, bytes) != 0) return -1;
    /* The calling thread's heap takes the free pages of its own segments
     * before any reserved one: fault those in too. */
    struct nm_heap *h = nm_heap_own();
    if (h != &nm_heap_empty && h->arena == a) nm_heap_populate(h);
    return 0;
}

/* ---- allocation with flags ------------------------------------------------------------------ */

#define NM_FLAGS_KNOWN (NM_ALIGN_LG_MASK | NM_ZERO | NM_STRICT | NM_NODE_MASK | NM_NODE_GIVEN)

/* Whether `f` is a valid combination of flags (numamalloc.h): no unknown
 * bit, an alignment up to 1 GiB, node bits and NM_STRICT only with
 * NM_NODE_GIVEN.  The node itself is checked where it is looked up. */
static inline bool flags_valid(unsigned f)
{
    return !(f & ~(unsigned)NM_FLAGS_KNOWN) && (f & NM_ALIGN_LG_MASK) <= NM_ALIGN_LG_MAX &&
           ((f & NM_NODE_GIVEN) || !(f & (NM_NODE_MASK | NM_STRICT)));
}

static inline size_t flags_alignment(unsigned f)
{
    return (size_t)1 << (f & NM_ALIGN_LG_MASK);
}

static inline int flags_node(unsigned f)
{
    return (int)((f & NM_NODE_MASK) >> NM_NODE_SHIFT);
}

static nm_cold void *invalid_flags(void)
{
    errno = EINVAL;
    return NULL;
}

static nm_noinline void *strict_alloc(int node, size_t size, size_t alignment, bool zero)
{
    struct nm_user_heap *uh = strict_heap(node);
    return uh ? heap_alloc(uh, size, alignment, zero) : NULL;
}

/* nm_mallocx with NM_ZERO, NM_STRICT or flags that are not valid. */
static nm_noinline void *mallocx_other(size_t size, unsigned f)
{
    if (!flags_valid(f)) return invalid_flags();
    size_t alignment = flags_alignment(f);
    bool zero = f & NM_ZERO;
    if (!(f & NM_NODE_GIVEN)) return nm_alloc_in(nm_tls_heap, NULL, size, alignment, zero);
    if (f & NM_STRICT) return strict_alloc(flags_node(f), size, alignment, zero);
    return node_alloc(flags_node(f), size, alignment, zero);
}

/* nm_mallocx's two fast cases, each a function of its own that nm_mallocx
 * jumps to, so that neither pays for the other's stack frame. */
static nm_noinline void *mallocx_aligned(size_t size, size_t alignment)
{
    return nm_alloc_in(nm_tls_heap, NULL, size, alignment, false);
}

static nm_noinline void *mallocx_node(size_t size, unsigned f)
{
    return node_alloc(flags_node(f), size, flags_alignment(f), false);
}

/* The fast cases first, each one compare: an alignment alone (f is its
 * log2, up to 1 GiB), a node alone (nm_malloc_onnode itself), a node with
 * an alignment. */
nm_export void *nm_mallocx(size_t size, int flags)
{
    unsigned f = (unsigned)flags;
    if (nm_likely(f <= NM_ALIGN_LG_MAX)) return mallocx_aligned(size, (size_t)1 << f);
    if (nm_likely((f & ~(unsigned)NM_NODE_MASK) == NM_NODE_GIVEN)) return nm_malloc_onnode(size, flags_node(f));
    if (nm_likely((f & ~(unsigned)(NM_ALIGN_LG_MASK | NM_NODE_MASK)) == NM_NODE_GIVEN &&
                  (f & NM_ALIGN_LG_MASK) <= NM_ALIGN_LG_MAX))
        return mallocx_node(size, f);
    return mallocx_other(size, f);
}

nm_export void *nm_rallocx(void *p, size_t size, int flags)
{
    unsigned f = (unsigned)flags;
    if (nm_unlikely(!flags_valid(f))) return invalid_flags();
    if (!p) return nm_mallocx(size, flags);
    struct nm_arena *into = NULL;
    if (f & NM_STRICT) {
        struct nm_user_heap *uh = strict_heap(flags_node(f));
        if (!uh) return NULL;
        into = &uh->arena;
    } else if (f & NM_NODE_GIVEN) {
        int index = usable_node_index(flags_node(f));
        if (index < 0) return NULL;
        into = nm_bound_arena(index);
    }
    return realloc_block(p, size, into, flags_alignment(f), f & NM_ZERO, "nm_rallocx");
}

/* ---- sized frees --------------------------------------------------------------------------- */

/* The sizes an allocation that returned live block `ref` may have asked
 * for, allocating with `alignment` (0: none), as [*least, *most]: up to its
 * usable size, down to the smallest its size class serves (a large span:
 * its usable size less a page, the rounding of large blocks) or half its
 * usable size, down to which realloc keeps a block.  A block the profiler
 * sampled (a span of its own, whatever its size) records the size itself. */
static void size_range(const struct block_ref *ref, size_t alignment, size_t *least, size_t *most)
{
    *most = ref->usable;
    if (!ref->page && nm_unlikely(ref->segment->prof.site)) {
        *least = *most = ref->segment->prof.size;
        return;
    }
    size_t low;
    if (!ref->page) {
        size_t round = ref->segment->hugetlb ? NM_HUGE_PAGE : NM_OS_PAGE;
        low = ref->usable <= round ? 0 : ref->usable - round + 1;
    } else if (nm_proc.secure && ref->page->size_class < NM_SMALL_CLASSES) {
        low = ref->usable;           /* secure mode's tag: the bytes asked for, exactly */
    } else {
        /* The class after the last smaller class that an allocation with
         * this alignment could have landed in (nm_aligned_class). */
        size_t align = alignment > 16 ? alignment : 16;
        unsigned cls = ref->page->size_class;
        low = 0;
        while (cls-- > 0) {
            if (nm_class_size[cls] >= align && nm_class_size[cls] % align == 0) {
                low = nm_class_size[cls] + 1;
                break;
            }
        }
    }
    *least = low < ref->usable / 2 ? low : ref->usable / 2;
}

static nm_cold void report_size(const char *fn, const void *p, size_t size, size_t least,
                                size_t most, size_t usable)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, fn);
    nm_line_str(&l, "(): size ");
    nm_line_u64(&l, size);
    nm_line_str(&l, " does not match the block at ");
    nm_line_hex(&l, (uintptr_t)p);
    nm_line_str(&l, " (usable size ");
    nm_line_u64(&l, usable);
    nm_line_str(&l, ": allocated with ");
    nm_line_u64(&l, least);
    nm_line_str(&l, " to ");
    nm_line_u64(&l, most);
    nm_line_str(&l, " bytes)");
    nm_report_error(&l);
}

static nm_cold void report_alignment(const char *fn, const void *p, size_t alignment)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, fn);
    nm_line_str(&l, "(): alignment ");
    nm_line_u64(&l, alignment);
    if (!nm_is_pow2(alignment)) {
        nm_line_str(&l, " is not a power of two (block ");
        nm_line_hex(&l, (uintptr_t)p);
        nm_line_str(&l, ")");
    } else {
        nm_line_str(&l, " does not match the block at ");
        nm_line_hex(&l, (uintptr_t)p);
        nm_line_str(&l, " (aligned to ");
        nm_line_u64(&l, (uintptr_t)p & -(uintptr_t)p);
        nm_line_str(&l, ")");
    }
    nm_report_error(&l);
}

/* What a sized free says of the block: its size, and its alignment when
 * `aligned`. */
struct size_check {
    bool aligned;
    size_t alignment;
    size_t size;
};

/* Whether live block `p` (`ref`) matches what the sized free `fn` says
 * of it; if not, it is reported. */
static bool size_matches(const struct block_ref *ref, const void *p, const char *fn,
                         const struct size_check *c)
{
    if (c->aligned && (!nm_is_pow2(c->alignment) || ((uintptr_t)p & (c->alignment - 1)))) {
        report_alignment(fn, p, c->alignment);
        return false;
    }
    size_t least, most;
    size_range(ref, c->aligned ? c->alignment : 0, &least, &most);
    if (c->size > most || c->size < least) {
        report_size(fn, p, c->size, least, most, ref->usable);
        return false;
    }
    return true;
}

/* Free `p` named by call `fn` (not NULL), reporting a pointer that is not
 * a block, a block already free and, with `check` (a sized free; NULL:
 * plain free), a block whose size or alignment does not match. */
static void free_checked(void *p, const char *fn, const struct size_check *check)
{
    int saved = errno;
    struct block_ref ref;
    switch (block_lookup(p, &ref)) {
    case BLOCK_NOT_OURS: report_invalid(fn, p); break;
    case BLOCK_FREE: report_double_free(fn, p); break;
    case BLOCK_LIVE:
        if (!check || size_matches(&ref, p, fn, check)) free_live(&ref, p, fn);
        break;
    }
    errno = saved;
}

void nm_free_sized_named(void *p, bool aligned, size_t alignment, size_t size, const char *fn)
{
    if (!p) return;
    const struct size_check check = { aligned, alignment, size };
    free_checked(p, fn, &check);
}

nm_export void nm_free_sized(void *p, size_t size)
{
    nm_free_sized_named(p, false, 0, size, "nm_free_sized");
}

nm_export void nm_free_aligned_sized(void *p, size_t alignment, size_t size)
{
    nm_free_sized_named(p, true, alignment, size, "nm_free_aligned_sized");
}

/* ---- what a pointer is --------------------------------------------------------------------- */

/* The placement of arena `a` as a policy: its heap's for an owned arena,
 * else the kernel binding it gives its memory (none: local). */
static nm_policy arena_policy(struct nm_arena *a)
{
    if (a->owned) return user_heap_of(a)->policy;
    nm_nodeset set;
    nm_nodeset_clear(&set);
    int first = -1;
    for (int id = 0; id < NM_MASK_BITS && id < NM_NODE_ID_LIMIT; id++) {
        if (!nm_mask_test(&a->nodes, id)) continue;
        nm_nodeset_add(&set, id);
        if (first < 0) first = id;
    }
    switch (a->bind_mode) {
    case NM_MPOL_BIND: return nm_policy_bind(&set);
    case NM_MPOL_PREFERRED: return nm_policy_preferred(first);
    case NM_MPOL_PREFERRED_MANY: return nm_policy_preferred_many(&set);
    case NM_MPOL_INTERLEAVE: return nm_policy_interleave(&set);
    case NM_MPOL_WEIGHTED_INTERLEAVE: return nm_policy_weighted_interleave(&set);
    default: return nm_policy_local();
    }
}

/* The start of the block of segment `s` that `p` points into (large, or
 * carved in its page), or NULL; whether it is live is block_lookup's. */
static const void *block_start(struct nm_segment *s, const void *p)
{
    if (s->kind == NM_SEGMENT_LARGE) {
        const uint8_t *start = nm_large_block(s);
        if ((const uint8_t *)p < start || (uintptr_t)p - (uintptr_t)start >= s->block_size) return NULL;
        return start;
    }
    const struct nm_page *pg = nm_page_of(s, p);
    uint32_t size = pg->block_size;
    uintptr_t off = (uintptr_t)p - (uintptr_t)pg->start;
    if (size == 0 || off >= atomic_load_explicit(&pg->carved, memory_order_relaxed)) return NULL;
    return pg->start + nm_block_index(off, pg->block_recip) * size;
}

nm_export int nm_ptr_info(const void *p, struct nm_ptr_info *info)
{
    struct nm_segment *s = p ? nm_segment_find(p) : NULL;
    const void *start = s ? block_start(s, p) : NULL;
    struct block_ref ref;
    if (!start || block_lookup(start, &ref) != BLOCK_LIVE) goto invalid;
    info->kind = !ref.page ? NM_PTR_LARGE : s->kind == NM_SEGMENT_SMALL ? NM_PTR_SMALL : NM_PTR_MEDIUM;
    info->start = (void *)start;
    info->usable_size = ref.usable;
    info->node = nm_topo.node_id[s->node];
    struct nm_arena *a = s->arena;
    info->heap = a->owned && !user_heap_of(a)->internal ? user_heap_of(a) : NULL;
    info->policy = arena_policy(a);
    return 0;
invalid:
    errno = EINVAL;
    return -1;
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
    return heap_alloc(uh, size, 0, false);
}

nm_export void *nm_heap_calloc(nm_heap_t *uh, size_t count, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) { errno = ENOMEM; return NULL; }
    return heap_alloc(uh, bytes, 0, true);
}

nm_export void *nm_heap_aligned_alloc(nm_heap_t *uh, size_t alignment, size_t size)
{
    if (!nm_is_pow2(alignment)) { errno = EINVAL; return NULL; }
    return heap_alloc(uh, size, alignment, false);
}

nm_export void *nm_heap_mallocx(nm_heap_t *uh, size_t size, int flags)
{
    unsigned f = (unsigned)flags;
    if (nm_unlikely(!flags_valid(f) || (f & (NM_NODE_GIVEN | NM_STRICT)))) return invalid_flags();
    return heap_alloc(uh, size, flags_alignment(f), f & NM_ZERO);
}

nm_export void *nm_heap_realloc(nm_heap_t *uh, void *p, size_t size)
{
    if (!p) return nm_heap_malloc(uh, size);
    if (size == 0) {
        nm_free_inline(p);
        return NULL;
    }
    return realloc_block(p, size, &uh->arena, 1, false, "nm_heap_realloc");
}

/* A heap that threads still have set (nm_thread_set_heap) cannot go:
 * reported in one line (abort, or with warn errno EBUSY). */
static nm_cold void report_heap_set(const char *fn, const nm_heap_t *uh, uint32_t threads)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, fn);
    nm_line_str(&l, "(): heap ");
    nm_line_hex(&l, (uintptr_t)uh);
    nm_line_str(&l, " is still set as the heap of ");
    nm_line_u64(&l, threads);
    nm_line_str(&l, threads == 1 ? " thread (nm_thread_set_heap)" : " threads (nm_thread_set_heap)");
    nm_report_error(&l);
    errno = EBUSY;
}

nm_export void nm_heap_destroy(nm_heap_t *uh)
{
    if (!uh) return;
    uint32_t set = atomic_load(&uh->arena.set_threads);
    if (nm_unlikely(set != 0)) {
        report_heap_set("nm_heap_destroy", uh, set);
        return;
    }
    int saved = errno;
    nm_prof_forget_arena(&uh->arena);
    nm_heap_release_arena(&uh->arena);
    nm_os_release(uh, sizeof *uh);
    errno = saved;
}

nm_export int nm_heap_reset(nm_heap_t *uh)
{
    if (!uh) { errno = EINVAL; return -1; }
    if (atomic_load(&uh->arena.set_threads) != 0) { errno = EBUSY; return -1; }
    int saved = errno;
    struct nm_arena *a = &uh->arena;
    nm_prof_forget_arena(a);
    /* The threads' heaps for it go (their slots name the old id, which no
     * heap has from here on), then its live large blocks and its
     * segments' blocks; its memory stays in it. */
    nm_heap_forget_arena(a);
    uh->id = 1 + atomic_fetch_add_explicit(&nm_proc.next_user_heap_id, 1, memory_order_relaxed);
    for (struct nm_segment *s = atomic_load_explicit(&a->spans, memory_order_acquire); s;
         s = s->member_next)
        if (atomic_load_explicit(&s->large_state, memory_order_relaxed) == NM_LARGE_LIVE)
            (void)nm_large_free(s);
    nm_arena_empty(a);
    atomic_store(&a->releasing, false);
    errno = saved;
    return 0;
}

nm_export int nm_heap_stats(const nm_heap_t *uh, struct nm_heap_stats *out)
{
    if (!uh || !out) { errno = EINVAL; return -1; }
    nm_arena_stats((struct nm_arena *)&uh->arena, out);
    return 0;
}

nm_export int nm_heap_set_limit(nm_heap_t *uh, size_t bytes)
{
    if (!uh) { errno = EINVAL; return -1; }
    atomic_store_explicit(&uh->arena.limit, bytes, memory_order_relaxed);
    return 0;
}

nm_export int nm_heap_migrate(nm_heap_t *uh, const nm_policy *policy, struct nm_migrate_report *report)
{
    struct nm_migrate_report none;
    if (!report) report = &none;
    memset(report, 0, sizeof *report);
    if (!uh) { errno = EINVAL; return -1; }
    nm_heap_init();
    nm_policy p = policy ? *policy : nm_policy_local();
    if (nm_policy_check(&p, NULL, 0) != 0) return -1;
    struct nm_arena *a = &uh->arena;
    /* The node its memory is charged to, as nm_heap_new would choose it
     * (a local heap keeps its node). */
    struct nm_arena charged;
    nm_arena_init_policy(&charged, &p, a->node);
    int saved = errno;
    atomic_store(&a->releasing, true);
    nm_purge_wait_passes(0);
    bool all = nm_arena_migrate(a, &p, charged.node, report);
    uh->policy = p;
    nm_heap_arena_moved(a);
    atomic_store(&a->releasing, false);
    errno = saved;
    if (!all) { errno = EIO; return -1; }
    return 0;
}

nm_export nm_heap_t *nm_thread_set_heap(nm_heap_t *uh)
{
    nm_heap_init();
    int saved = errno;
    struct nm_arena *before = nm_tls_set_arena;
    if (nm_heap_set_thread(uh ? &uh->arena : NULL, uh ? uh->id : 0) != 0) return NULL;
    errno = saved;
    return before ? user_heap_of(before) : NULL;
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
