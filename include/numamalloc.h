/*
 * numamalloc.h — public API of numamalloc, a NUMA-aware memory allocator.
 *
 * Two ways to use the library:
 *
 *  1. As a drop-in malloc: `LD_PRELOAD=libnumamalloc.so ./app`, or link with
 *     `-lnumamalloc`.  malloc, free, calloc, realloc, the aligned variants,
 *     malloc_usable_size and C++ new/delete are all served by numamalloc, and
 *     every thread's memory comes from the NUMA node it runs on.
 *
 *  2. Through the functions below (prefix `nm_`).  They work whether or not
 *     numamalloc also replaced malloc; a block from any nm_ allocation
 *     function may be freed with nm_free() or, when numamalloc is the
 *     process's malloc, with free().
 *
 * All functions are thread-safe.  None of them takes a lock that a fork() or
 * a signal could leave held.  Errors are reported through errno, as POSIX
 * specifies for the corresponding libc function.
 *
 * Signals: malloc, free and the other libc allocation functions, C++ new
 * and delete, and the nm_ functions are not async-signal-safe; calling them
 * from a signal handler is undefined behaviour (the handler may have
 * stopped its thread in the middle of changing its heap), as with glibc.
 * The exceptions are queries that only read: nm_usable_size() (of a block
 * no thread is freeing), nm_stats_get(), nm_stats_print(), nm_node_count(),
 * nm_node_ids(), nm_node_of_cpu(), nm_node_distance(), nm_node_has_cpus()
 * and the nm_nodeset_*() functions are async-signal-safe once the library
 * has started (under LD_PRELOAD or linking, before main; else at the first
 * nm_ call).  fork() from a signal handler is supported, also when the
 * handler stopped its thread inside malloc, free or malloc_trim: the parent
 * goes on unaffected, and the child may allocate and free in the handler
 * (before exec or _exit; its thread continues with a new heap when the
 * stopped call held its own).  Returning from the handler in the child into
 * the stopped allocator call is undefined, as the call itself would be.
 */
#ifndef NUMAMALLOC_H
#define NUMAMALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NUMAMALLOC_VERSION_MAJOR 0
#define NUMAMALLOC_VERSION_MINOR 1
#define NUMAMALLOC_VERSION_PATCH 0
#define NM_STRINGIFY_(x) #x
#define NM_STRINGIFY(x) NM_STRINGIFY_(x)
/* "0.1.0" */
#define NUMAMALLOC_VERSION_STRING NM_STRINGIFY(NUMAMALLOC_VERSION_MAJOR) "." \
    NM_STRINGIFY(NUMAMALLOC_VERSION_MINOR) "." NM_STRINGIFY(NUMAMALLOC_VERSION_PATCH)

/* A program's own default configuration: define it, as
 *     const char *nm_conf = "purge_delay_ms:5000,cache_mb:1G";
 * in the form of NUMAMALLOC_CONF ("key:value" items separated by commas;
 * the keys are the NUMAMALLOC_ variables' names without the prefix, in
 * lower case; a piece without ':' belongs to the value before it, as in
 * "policy:bind:0,2").  It is read once at start-up, before NUMAMALLOC_CONF
 * and then the single variables, each overriding it.  The library sees it
 * when the program is linked with -lnumamalloc (or built with -rdynamic
 * when the library is preloaded).  Items that do not parse are reported
 * on stderr, one line each, and ignored. */
extern const char *nm_conf;

#if defined(__GNUC__)
#define NM_ATTR_MALLOC __attribute__((malloc))
#define NM_ATTR_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#else
#define NM_ATTR_MALLOC
#define NM_ATTR_ALLOC_SIZE(...)
#endif

/* ------------------------------------------------------------------------
 * Core allocation (the same operations as malloc & co.)
 * ------------------------------------------------------------------------ */

/* Allocate `size` bytes on the calling thread's NUMA node.  Blocks above
 * 256 KiB are not bound to a node: each of their pages goes to the node of
 * the thread that first writes it (so an array that the master allocates
 * and an OpenMP team initialises is spread over the team's nodes; a block
 * written by its own thread is local); NUMAMALLOC_POLICY binds them too.
 * With NUMAMALLOC_HUGEPAGES=hugetlb, blocks of 2 MiB and more are faulted
 * in by the allocating thread (so the pool is checked), and their pages
 * are on its node, or where the pool has pages.
 * The block is
 * aligned to at least 16 bytes, and to the largest power of two dividing its
 * usable size up to 4096 (so a 4096-byte request is 4096-aligned); blocks of
 * 2 MiB and more are 2 MiB aligned (and backed by transparent huge pages
 * where the system allows).  Usable size is at most 12.5% (or 16 bytes)
 * above the request up to 8 KiB and above 256 KiB, and less than 1.5 times
 * it in between (two size classes per power of two).  nm_malloc(0)
 * returns a unique pointer.  Returns NULL and sets errno to ENOMEM when the
 * request cannot be met (including sizes near SIZE_MAX): at once for a size
 * the kernel could never commit (above RAM + swap under its heuristic
 * overcommit, above CommitLimit under strict overcommit); when the kernel
 * refuses a mapping, after everything numamalloc caches was given back (as
 * by nm_trim) and the request tried once more.  The same holds for every
 * allocation function below. */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(1) void *nm_malloc(size_t size);

/* Allocate an array of `count` elements of `size` bytes, zeroed.  A block
 * above 256 KiB is not written by the call (its pages read as zero until
 * first written, and are placed then).  Returns NULL with errno ENOMEM
 * when count * size overflows or memory is short. */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(1, 2) void *nm_calloc(size_t count, size_t size);

/* Resize a block, keeping its contents up to the smaller of the two sizes.
 * nm_realloc(NULL, n) is nm_malloc(n); nm_realloc(p, 0) frees p and returns
 * NULL.  Large blocks grow in place or are moved with mremap (no copy;
 * blocks of heaps made with nm_heap_new and hugetlb blocks are copied).  A
 * block keeps its placement: one from nm_malloc_onnode(..., n) stays bound
 * to node n, one of a heap made with nm_heap_new stays in that heap (with
 * its policy, and goes away with nm_heap_destroy); a plain block that must
 * move is placed as malloc places the calling thread's blocks.  The same
 * holds for realloc when numamalloc is the process's malloc.  On failure
 * returns NULL with errno ENOMEM and leaves `ptr` untouched. */
NM_ATTR_ALLOC_SIZE(2) void *nm_realloc(void *ptr, size_t size);

/* Free a block from any nm_ allocation function (or from malloc when
 * numamalloc is the process's malloc), from any thread.  nm_free(NULL) does
 * nothing.  Freeing a pointer numamalloc does not own, or a block already
 * free, is reported on stderr with one line naming the pointer, then aborts
 * (or only reports, with NUMAMALLOC_ON_ERROR=warn).  So is a freed block the
 * program wrote into (use after free, overflow), when numamalloc next takes
 * it from its free list ("heap corruption detected ..."); with warn that
 * block is never handed out again. */
void nm_free(void *ptr);

/* Allocate `size` bytes aligned to `alignment`, which must be a power of two
 * (any power of two up to 1 GiB and beyond is accepted; below 16 it is
 * raised to 16).  Returns NULL with errno EINVAL for a bad alignment, ENOMEM
 * when memory is short. */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(2) void *nm_aligned_alloc(size_t alignment, size_t size);

/* The number of bytes usable in the block at `ptr` (at least the size asked
 * for).  0 for NULL. */
size_t nm_usable_size(const void *ptr);

/* Look at the node the calling thread runs on now and, if it moved since
 * its heap was set up, serve its next allocations from the new node.
 * Without this call the move is noticed on its own within a bounded number
 * of allocations (see docs/design.md).  Returns the node now used: the node
 * the thread runs on, or, when the process's cpuset excludes that node's
 * memory (or it has none), the nearest node whose memory it may use. */
int nm_thread_rebind(void);

/* Return free memory to the operating system now, without waiting for the
 * purge delay: the free pages of every thread's heap (on every node, heaps
 * with a policy and nm_malloc_onnode heaps included), pages whose blocks
 * other threads freed, the heaps of exited threads, the segments they left
 * behind, every cache, and the inside of free blocks of 12 - 256 KiB (all
 * their 4 KiB pages but the first) on pages that still have blocks in use:
 * those of the heap the calling thread allocates from, and those exited
 * threads left.  Blocks in use stay where they are.  (malloc_trim() calls
 * this.) */
void nm_trim(void);

/* ------------------------------------------------------------------------
 * Topology
 *
 * Nodes are named by the kernel's node ids, which may be sparse (0, 2, 4).
 * A node may have memory but no CPUs (CXL or HBM memory tiers).  Functions
 * taking a node return -1 with errno EINVAL for an id that is not a node.
 * ------------------------------------------------------------------------ */

#define NM_NODE_ID_LIMIT 1024   /* node ids are below this */
#define NM_STATS_MAX_NODES 64   /* nodes reported per node (nm_stats, nm_enforcement) */
#define NM_STATS_MAX_CLASSES 96 /* size classes reported in nm_stats.size_class[] */

/* Number of NUMA nodes (1 on a machine without NUMA, or when sysfs cannot be
 * read, e.g. in some containers). */
int nm_node_count(void);

/* Write up to `max` node ids in ascending order to `ids`; return how many
 * nodes there are (which may exceed `max`). */
int nm_node_ids(int *ids, int max);

/* The node of CPU `cpu`, or -1 (errno EINVAL) for an unknown CPU. */
int nm_node_of_cpu(int cpu);

/* The node the calling thread runs on now (rseq or getcpu; no syscall on
 * Linux 6.3+). */
int nm_current_node(void);

/* The kernel's distance between two nodes (10 = local; larger is slower). */
int nm_node_distance(int from, int to);

/* Write up to `max` CPU numbers of `node` to `cpus`; return how many CPUs it
 * has (0 for a memory-only node). */
int nm_node_cpus(int node, int *cpus, int max);

/* Total and free memory of `node` in bytes (free is read now).  Returns 0. */
int nm_node_memory(int node, uint64_t *total, uint64_t *free_bytes);

/* 1 if `node` has CPUs, 0 if it is a memory-only node. */
int nm_node_has_cpus(int node);

/* Write up to `max` node ids to `ids`, nearest to `node` first (`node`
 * itself, then by distance, ties by id); return the number of nodes. */
int nm_nodes_by_distance(int node, int *ids, int max);

/* ------------------------------------------------------------------------
 * Node sets and policies
 *
 * A policy says where memory goes: on the node of the thread that touches
 * it first (local), only on a set of nodes (bind, strict: the kernel never
 * uses other nodes), on one node when it has room and elsewhere when not
 * (preferred, soft), on the nearest node of a set with room (preferred-many,
 * Linux 5.15+), or spread page by page over a set (interleave; weighted
 * interleave, Linux 6.9+, spreads by the weights in
 * /sys/kernel/mm/mempolicy/weighted_interleave).  A policy is a plain value:
 * copy it, compare it, keep it on the stack.
 * ------------------------------------------------------------------------ */

#define NM_NODESET_WORDS (NM_NODE_ID_LIMIT / 64)
typedef struct {
    uint64_t bits[NM_NODESET_WORDS];   /* bit i: node id i */
} nm_nodeset;

enum nm_policy_mode {
    NM_POLICY_LOCAL,
    NM_POLICY_BIND,
    NM_POLICY_PREFERRED,
    NM_POLICY_PREFERRED_MANY,
    NM_POLICY_INTERLEAVE,
    NM_POLICY_WEIGHTED_INTERLEAVE,
};

typedef struct {
    enum nm_policy_mode mode;
    nm_nodeset nodes;       /* empty for local; one node for preferred */
} nm_policy;

void nm_nodeset_clear(nm_nodeset *set);
void nm_nodeset_add(nm_nodeset *set, int node);
int nm_nodeset_has(const nm_nodeset *set, int node);
int nm_nodeset_count(const nm_nodeset *set);
/* Every node of the machine (memory-only nodes, nodes without memory and
 * nodes outside the process's cpuset included; "all" in a policy is the
 * usable ones only). */
nm_nodeset nm_nodeset_all(void);

/* Build policies.  The node set is taken as given; nm_policy_check says
 * whether the machine can honour it. */
nm_policy nm_policy_local(void);
nm_policy nm_policy_bind(const nm_nodeset *nodes);
nm_policy nm_policy_preferred(int node);
nm_policy nm_policy_preferred_many(const nm_nodeset *nodes);
nm_policy nm_policy_interleave(const nm_nodeset *nodes);
nm_policy nm_policy_weighted_interleave(const nm_nodeset *nodes);

/* Parse a policy from text, as NUMAMALLOC_POLICY and the numamalloc command
 * take it:
 *     local | bind:NODES | preferred:NODE | preferred-many:NODES
 *           | interleave:NODES | weighted-interleave:NODES | near:DEVICE
 * where NODES (and NODE) is
 *   - a list of ids and ranges ("0-3", "0,2", "1,4-6");
 *   - "all": every node whose memory this process may use (it has memory
 *     and the process's cpuset allows it, as in numactl);
 *   - "near:DEVICE": the node of a device, as nm_node_of_device finds it
 *     (when that node has no memory or the cpuset excludes it, the nearest
 *     node whose memory may be used); "near:DEVICE" alone is
 *     "bind:near:DEVICE", e.g. "near:eth0", "near:0000:3b:00.0";
 *   - a kind of memory, among the nodes whose memory may be used:
 *       hbm, highest-bandwidth  the highest read bandwidth (HMAT);
 *       lowest-latency          the lowest read latency (HMAT);
 *       highest-capacity        the most memory (MemTotal);
 *       cxl, memory-only        nodes with memory and no CPUs;
 *       dram                    nodes with memory and CPUs.
 *     Bandwidth and latency are the ACPI HMAT figures of nm_node_perf (each
 *     node's, from its nearest CPUs); nodes whose figures tie are ranked
 *     by their distance from the node the calling thread runs on, and a
 *     node without figures ranks last.  Without HMAT figures, hbm and
 *     highest-bandwidth are the fastest memory tier (nm_node_tier, lowest
 *     number first; all nodes when the kernel shows no tiers) nearest to
 *     the caller, and lowest-latency the nodes nearest to the caller (the
 *     kernel's distance).  So on a two-socket machine without HBM,
 *     highest-bandwidth is the caller's own node.  Every node that ties
 *     on every key is included; a mode taking one node (preferred) takes
 *     the one nearest to the caller (ties: the lowest id).
 * Devices and kinds are resolved when the text is parsed, for the thread
 * that parses it (NUMAMALLOC_POLICY: the thread of the first allocation,
 * normally the main thread at start-up); the policy holds node ids, and
 * nm_policy_format writes them ("bind:hbm" on a machine whose HBM is node
 * 2 formats as "bind:2").
 * The nodes must exist on this machine, have memory and be allowed by the
 * cpuset (cgroup cpuset.mems, Slurm --mem-bind: Mems_allowed_list in
 * /proc/self/status).  Returns 0, or -1 with errno and a one-line reason in
 * `err` (if not NULL): EINVAL for text that does not parse or nodes the
 * machine cannot use, e.g. "node 7 does not exist (nodes: 0-3)" or
 * "node 3 is not allowed in this cpuset (allowed: 0-1)"; ENODEV for a kind
 * with no node ("no node of kind cxl on this machine (nodes: 0-1)") or a
 * device that does not exist; ENXIO for a device without a node (its
 * numa_node is -1). */
int nm_policy_parse(const char *text, nm_policy *out, char *err, size_t err_len);

/* Whether this machine and kernel can honour `p`: nodes exist, have
 * memory and are allowed by the process's cpuset, the set is not empty,
 * the mode is supported by the kernel.
 * Returns 0, or -1 with errno (EINVAL, ENOSYS for a mode the kernel lacks)
 * and a one-line reason in `err`. */
int nm_policy_check(const nm_policy *p, char *err, size_t err_len);

/* Write `p` as text that nm_policy_parse reads back ("interleave:0-3").
 * Returns the length it needs (like snprintf). */
int nm_policy_format(const nm_policy *p, char *buf, size_t len);

/* ------------------------------------------------------------------------
 * Allocation on a given node
 * ------------------------------------------------------------------------ */

/* Allocate `size` bytes on node `node` (bound: the kernel puts the pages
 * there and nowhere else; they are taken when first written, and if the
 * node cannot hold them then, the kernel reclaims, swaps or calls the OOM
 * killer: for a failure up front, allocate from a heap made with
 * nm_heap_new_flags(&bind_to_node, NM_HEAP_STRICT)), from a per-thread
 * cache for that node:
 * no syscall per call, about the cost of malloc.  The block may be freed
 * with nm_free (or free) from any thread; it is only ever reused for
 * allocations on the same node.  Returns NULL with errno EINVAL for a node
 * that does not exist, has no memory or is outside the process's cpuset,
 * ENOMEM when memory is short. */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(1) void *nm_malloc_onnode(size_t size, int node);
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(1, 2) void *nm_calloc_onnode(size_t count, size_t size, int node);

/* ------------------------------------------------------------------------
 * Memory near a device
 *
 * A NIC, an NVMe drive or a GPU sits on a PCI bus attached to one socket;
 * its DMA and the threads that feed it are fastest with buffers on that
 * socket's node.  The kernel names that node in sysfs (numa_node of the
 * PCI function); these functions read it under NUMAMALLOC_SYSFS_ROOT
 * ("/sys").
 * ------------------------------------------------------------------------ */

/* The NUMA node of a device, named by
 *   - a PCI address: "0000:3b:00.0" (or "3b:00.0", domain 0000);
 *   - a device name: a network interface ("eth0", "ib0"), a block device
 *     ("nvme0n1", "sda", a partition "nvme0n1p2"), an InfiniBand device
 *     ("mlx5_0"), an NVMe controller ("nvme0") or a DRM device ("card0"),
 *     looked up in that order under <sysfs>/class/{net,block,infiniband,
 *     nvme,drm};
 *   - a device file ("/dev/nvme0n1", "/dev/dri/renderD128"): its major
 *     and minor numbers under <sysfs>/dev/{char,block}.
 * The device's parents are walked up (a partition to its disk, a disk to
 * its controller, a controller to its PCI function) until a numa_node
 * file names a node.  Returns the kernel's node id (which may be a node
 * without memory: nm_malloc_near and near:DEVICE then use the nearest
 * node with memory), or -1 with errno: EINVAL for NULL or "", ENODEV when
 * nothing by that name exists (or a file that is not a device, or a
 * device sysfs does not show), ENXIO when the device has no node
 * affinity (numa_node is -1 all the way up: a machine with one node, a
 * firmware that does not say, a virtual device such as "lo"). */
int nm_node_of_device(const char *dev);

/* Allocate `size` bytes on the node of device `dev` (nm_node_of_device),
 * placed and bound as nm_malloc_onnode places them; when that node has no
 * memory or is outside the process's cpuset, on the nearest node whose
 * memory may be used.  Returns NULL with errno EINVAL, ENODEV or ENXIO as
 * nm_node_of_device, ENOMEM when memory is short.  Each thread remembers
 * the last device name it asked for and its node (names up to 63 bytes):
 * calls for the same device cost nm_malloc_onnode's time and a string
 * compare, and a device moved to another node meanwhile (hotplug) or a
 * name given to another device (an interface renamed) is seen when the
 * thread next asks for another name. */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(2) void *nm_malloc_near(const char *dev, size_t size);

/* ------------------------------------------------------------------------
 * Allocation with flags (as jemalloc's mallocx)
 *
 * `flags` is 0 or an OR of:
 *   NM_ALIGN(a)  align the block to `a` bytes, a power of two up to 1 GiB
 *                (below 16 it is 16); encoded as log2(a) in bits 0-5
 *   NM_ZERO      the first `size` bytes of the block are zero (as calloc)
 *   NM_NODE(n)   place the block on kernel node `n` exactly as
 *                nm_malloc_onnode(size, n) does (bound to the node, from the
 *                calling thread's cache for that node); bits 8-17 hold n,
 *                bit 18 says a node is given
 *   NM_STRICT    with NM_NODE only: the node's memory or nothing.  The
 *                block comes from a heap of the library's own, one per node,
 *                made at the node's first NM_STRICT allocation as
 *                nm_heap_new_flags(&bind_to_n, NM_HEAP_STRICT) would make it:
 *                its memory is faulted in when it is mapped and the call
 *                fails with ENOMEM when the node cannot hold it (instead of
 *                the kernel reclaiming, swapping or calling the OOM killer at
 *                first touch).  That memory stays resident until the process
 *                ends (freed blocks are reused, not given back), in 4 MiB
 *                segments per thread that uses it
 * Without NM_NODE a block is placed as nm_malloc places it.  Alignments up
 * to 4 KiB of blocks up to 256 KiB take the same fast path as malloc.
 *
 * Errors: NULL with errno EINVAL for bits that are no flag, an alignment
 * that is not a power of two or is above 1 GiB (NM_ALIGN then sets an
 * invalid bit), a node that does not exist, has no memory or is outside
 * the process's cpuset (a negative or too large id: NM_NODE sets the
 * invalid bit), NM_STRICT without NM_NODE; ENOMEM when memory is short
 * (or, with NM_STRICT, the node is).
 * ------------------------------------------------------------------------ */

#define NM_ALIGN_LG_MASK 0x3f         /* bits 0-5: log2 of the alignment */
#define NM_ALIGN_LG_MAX 30            /* 1 GiB */
#define NM_ZERO (1 << 6)
#define NM_STRICT (1 << 7)
#define NM_NODE_SHIFT 8               /* bits 8-17: the node id */
#define NM_NODE_MASK (0x3ff << NM_NODE_SHIFT)
#define NM_NODE_GIVEN (1 << 18)
#define NM_FLAGS_INVALID (1 << 30)    /* set by NM_ALIGN and NM_NODE for bad values */

/* The flag for alignment `a` (NM_FLAGS_INVALID unless a is a power of two
 * up to 1 GiB), and the flags for kernel node id `n` (NM_FLAGS_INVALID
 * outside 0 .. 1023).  Macros, so that flags are constant expressions (a
 * static table of them); each evaluates its argument more than once. */
#define NM_ALIGN(a)                                                                      \
    ((int)((a) != 0 && ((unsigned long long)(a) & ((unsigned long long)(a) - 1)) == 0 && \
                   (unsigned long long)(a) <= (1ull << NM_ALIGN_LG_MAX)                  \
               ? __builtin_ctzll((unsigned long long)(a))                               \
               : NM_FLAGS_INVALID))
#define NM_NODE(n)                                                                       \
    ((unsigned long long)(n) < NM_NODE_ID_LIMIT ? NM_NODE_GIVEN | ((int)(n) << NM_NODE_SHIFT) \
                                                : NM_FLAGS_INVALID)

/* `size` bytes placed, aligned and zeroed as `flags` say.  nm_mallocx(n, 0)
 * is nm_malloc(n). */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(1) void *nm_mallocx(size_t size, int flags);

/* Resize block `ptr` to `size` bytes as nm_realloc does (contents kept up
 * to the smaller size), with `flags`:
 *   no NM_NODE  the block keeps its placement (its node binding, its heap,
 *               its policy), as with nm_realloc;
 *   NM_NODE(n)  the block ends up placed as nm_mallocx(size, NM_NODE(n))
 *               places (moved when it is not there already; NM_STRICT: into
 *               the node's strict heap);
 *   NM_ALIGN(a) the block ends up aligned to `a`: a block that is not
 *               aligned enough is moved;
 *   NM_ZERO     the bytes from the old block's usable size (nm_usable_size)
 *               up to `size` are zero.  The size the block was asked for
 *               last is not known: bytes between it and the usable size
 *               keep what they held (to keep a whole block zero, allocate
 *               and grow it with sizes it uses entirely, or clear it).
 * Unlike nm_realloc, a size of 0 does not free: the block is resized to
 * the smallest one.  nm_rallocx(NULL, n, flags) is nm_mallocx(n, flags).
 * On failure returns NULL with errno (EINVAL for bad flags, or for a
 * pointer numamalloc does not own, after reporting it as nm_realloc
 * does; ENOMEM) and leaves `ptr` untouched. */
NM_ATTR_ALLOC_SIZE(2) void *nm_rallocx(void *ptr, size_t size, int flags);

/* ------------------------------------------------------------------------
 * Sized frees and what a pointer is
 * ------------------------------------------------------------------------ */

/* Free `ptr`, which the program says it allocated with `size` bytes (C23's
 * free_sized; numamalloc also exports free_sized and free_aligned_sized
 * when it is the process's malloc).  The size is checked against the
 * block: a size above its usable size, or below what any allocation that
 * could have returned it asked for (less than half its usable size and
 * smaller than its size class serves; realloc keeps a block down to half
 * its size; a block the heap profiler sampled: any other size than the
 * one asked for), is reported like an invalid free, in one line naming the
 * pointer and the sizes, then aborts (NUMAMALLOC_ON_ERROR=warn: the block
 * is not freed and the program goes on).  NULL does nothing. */
void nm_free_sized(void *ptr, size_t size);

/* The same for a block from an aligned allocation (nm_aligned_alloc,
 * aligned_alloc, NM_ALIGN): a block not aligned to `alignment`, or an
 * alignment that is not a power of two, is reported too, as is a size
 * that aligned allocation would not have served from the block. */
void nm_free_aligned_sized(void *ptr, size_t alignment, size_t size);

enum nm_ptr_kind {
    NM_PTR_SMALL,     /* a block of up to 8 KiB in a 64 KiB page */
    NM_PTR_MEDIUM,    /* up to 256 KiB, in a 512 KiB page */
    NM_PTR_LARGE,     /* a span of its own */
};

struct nm_ptr_info {
    void *start;            /* the block that holds the pointer (the pointer
                               itself unless it points inside the block) */
    size_t usable_size;     /* nm_usable_size(start) */
    enum nm_ptr_kind kind;
    int node;               /* kernel node id the block's memory is meant for:
                               the node its segment or span is charged to (for
                               a policy over several nodes, the first; where
                               the kernel put the pages: nm_where) */
    struct nm_user_heap *heap;  /* the heap (nm_heap_t) made by nm_heap_new that
                               the block belongs to, else NULL (plain, on-node
                               and NM_STRICT blocks) */
    nm_policy policy;       /* the placement the block was allocated under:
                               its heap's policy, else its arena's binding:
                               preferred on its node (thread heaps), bind to
                               its node (nm_malloc_onnode, NM_NODE), local
                               (large blocks placed by first touch), or the
                               NUMAMALLOC_POLICY / interleave policy */
};

/* Whether numamalloc owns `ptr`, a pointer to or into a live block: 0 and
 * `info` filled, or -1 with errno EINVAL for a pointer that is not in a
 * block of numamalloc's or whose block is free.  Reads only the
 * allocator's own records (no system call); async-signal-safe as
 * nm_usable_size is. */
int nm_ptr_info(const void *ptr, struct nm_ptr_info *info);

/* Fault in `bytes` (rounded up to 4 MiB) of memory on `node` now and keep
 * it for the small and medium blocks (up to 256 KiB) of threads running on
 * that node, so that they take no page faults later (a reserve a program
 * sets up in its initialisation).  The memory is never returned to the OS
 * by the purge (nm_trim does return it).  For big arrays use nm_region_map with
 * NM_PREFAULT_POPULATE.  Returns 0, or -1 with errno EINVAL (no such node,
 * a node without memory or outside the process's cpuset) or ENOMEM. */
int nm_reserve(int node, size_t bytes);

/* ------------------------------------------------------------------------
 * Heaps with a policy
 *
 * A heap places all its blocks by one policy: an interleaved heap for data
 * every thread shares, a heap bound to an HBM or CXL node, a heap per node
 * for a buffer pool.  Any thread may allocate from a heap (each thread gets
 * its own lock-free cache for it) and any thread may free its blocks with
 * nm_free or free.  nm_heap_destroy releases everything the heap holds at
 * once.
 * ------------------------------------------------------------------------ */

typedef struct nm_user_heap nm_heap_t;

/* A new heap whose memory is placed by `policy` (NULL: local).  Returns
 * NULL with errno EINVAL (bad policy: see nm_policy_check), ENOSYS (policy
 * the kernel lacks) or ENOMEM.
 *
 * Like every bound memory, a heap's memory is taken from the kernel when
 * it is first written: if the policy's nodes cannot hold it then, the
 * kernel reclaims, swaps or calls the OOM killer (a bind policy never
 * spills to other nodes).  A heap made with NM_HEAP_STRICT takes its
 * memory when the allocation maps it instead: the allocation that the
 * nodes cannot hold returns NULL with errno ENOMEM, and nothing is left
 * mapped (for a bind policy, the request is first checked against what
 * the nodes have free or in inactive page cache; memory that other
 * processes take between that check and the faults can still run the
 * node out, so this is a best effort, not a reservation); its memory then
 * stays resident until nm_heap_destroy (freed
 * blocks are reused, never given back early).  Memory is mapped in 4 MiB
 * segments for blocks up to 256 KiB and per block above, so a strict heap
 * holds at least one segment per thread that uses it. */
#define NM_HEAP_STRICT (1u << 0)
nm_heap_t *nm_heap_new(const nm_policy *policy);
/* nm_heap_new with flags (NM_HEAP_STRICT); an unknown flag gives EINVAL. */
nm_heap_t *nm_heap_new_flags(const nm_policy *policy, unsigned flags);

NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(2) void *nm_heap_malloc(nm_heap_t *heap, size_t size);
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(2, 3) void *nm_heap_calloc(nm_heap_t *heap, size_t count, size_t size);
/* Resize a block (of any heap, or of malloc) as nm_realloc does, and make
 * it a block of `heap`: a block of `heap` is resized in place when it can
 * be, a block of anything else is always moved into `heap`. */
NM_ATTR_ALLOC_SIZE(3) void *nm_heap_realloc(nm_heap_t *heap, void *ptr, size_t size);
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(3) void *nm_heap_aligned_alloc(nm_heap_t *heap, size_t alignment, size_t size);
/* nm_mallocx for `heap`: NM_ALIGN and NM_ZERO; the heap's policy places
 * the block, so NM_NODE and NM_STRICT give EINVAL (a heap made with
 * NM_HEAP_STRICT is strict). */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(2) void *nm_heap_mallocx(nm_heap_t *heap, size_t size, int flags);

/* The policy the heap places its memory by: the one it was made with, or
 * the last one nm_heap_migrate gave it. */
nm_policy nm_heap_policy(const nm_heap_t *heap);

/* Release every block of the heap and all its memory at once.  No thread may
 * use the heap or any of its blocks during or after the call (freeing one
 * afterwards is reported as an invalid pointer).  A heap that a thread
 * still has set (nm_thread_set_heap) is not destroyed: the call is
 * reported on stderr in one line, then aborts (NUMAMALLOC_ON_ERROR=warn:
 * returns with errno EBUSY, the heap untouched). */
void nm_heap_destroy(nm_heap_t *heap);

/* Free every block of the heap at once and keep the heap (per-timestep data:
 * allocate during a step, reset at its end).  Its memory stays with it
 * for the next blocks: its 4 MiB segments wait empty in the heap, their
 * pages given back to the kernel after the purge delay as any free memory
 * is (NUMAMALLOC_PURGE_DELAY_MS; a strict heap keeps them resident), and
 * its large blocks' spans wait decommitted for blocks of a similar size.
 * Every block of the heap becomes invalid, and the heap hands its memory
 * out again at once: freeing an old block is reported as an invalid
 * pointer or a double free only until its memory serves a new block;
 * after that it frees the new one.  The same rule as nm_heap_destroy: no
 * thread may use the heap or its blocks during the call, nor set the heap
 * (nm_thread_set_heap) meanwhile: the EBUSY check below is made once, at
 * the start.  Returns 0, or -1 with errno EINVAL
 * (NULL) or EBUSY (a thread has the heap set: nm_thread_set_heap(NULL)
 * first; nothing is freed). */
int nm_heap_reset(nm_heap_t *heap);

/* What a heap holds now.  The counts are read without stopping the
 * heap's threads: exact when no thread uses the heap and no purge is at
 * it (one giving back the inside of free blocks counts them in use for a
 * moment), else a snapshot that may be a little off. */
struct nm_heap_stats {
    uint64_t mapped;        /* address space the heap holds: its 4 MiB segments
                               (small and medium blocks; kept until
                               nm_heap_destroy) and its large blocks' spans */
    uint64_t committed;     /* of that, what was not given back to the kernel
                               (resident once written; an upper bound) */
    uint64_t in_use;        /* bytes of its live blocks (usable sizes) */
    uint64_t blocks;        /* its live blocks, large ones included (blocks
                               that another thread freed count until the
                               heap takes them back) */
    uint64_t large_blocks;  /* live blocks above 256 KiB, each a span (a
                               smaller block the heap profiler sampled has
                               a span too, and counts as a block only) */
    uint64_t charged;       /* bytes counted against the limit (a large block's
                               span is its size rounded up to 4 MiB): 4 MiB per
                               segment held plus the span of each live large
                               block */
    uint64_t limit;         /* nm_heap_set_limit's limit (0: none) */
};
/* Fill `out`.  Returns 0, or -1 with errno EINVAL for a NULL argument. */
int nm_heap_stats(const nm_heap_t *heap, struct nm_heap_stats *out);

/* Cap the heap's memory at `bytes` (0: no limit): an allocation that would
 * take the heap's charged bytes (struct nm_heap_stats: 4 MiB per segment it
 * maps for small and medium blocks, and each large block's span, its size
 * rounded up to 4 MiB, while the block lives: a 1 MiB block charges 4 MiB,
 * as does a small block the heap profiler sampled) over the limit returns
 * NULL with errno ENOMEM, and the heap
 * stays usable (blocks that fit in memory it holds still come; freeing
 * makes room).  Charged where the heap takes memory, not per block: so a
 * small block may fail while less than 4 MiB is in use below the limit,
 * and blocks up to 256 KiB are served from segments already held without
 * a check.  A limit below what the heap holds now stops new memory only.
 * Returns 0, or -1 with errno EINVAL for NULL. */
int nm_heap_set_limit(nm_heap_t *heap, size_t bytes);

/* What nm_heap_migrate did with the heap's pages (4 KiB each; a huge page
 * counts as its 4 KiB pages). */
struct nm_migrate_report {
    uint64_t resident;      /* pages of the heap in memory, looked at */
    uint64_t asked;         /* of those, pages not where the new policy puts
                               them, asked to move */
    uint64_t moved;         /* of those, pages now on their new node */
    uint64_t not_moved;     /* asked - moved: */
    uint64_t busy;          /*   EBUSY or EAGAIN: pinned, locked, under I/O,
                               or shared with another process */
    uint64_t no_memory;     /*   ENOMEM: the target node had no room */
    uint64_t other;         /*   any other status the kernel gave */
    int last_error;         /* errno of the last page not moved (0: none) */
};

/* Move the heap to `policy` (NULL: local): every resident page of its memory (its
 * segments and spans, live blocks and free memory alike) that is not where
 * the policy puts it is moved (move_pages), and its memory from then on is
 * placed by the policy (mbind of its ranges, and of those it maps later);
 * nm_heap_policy returns it.  Pages are moved to: bind and preferred-many,
 * the node of the set nearest to the page's node (pages already on a node
 * of the set stay); preferred, the node; interleave and weighted
 * interleave, pages outside the set to the set's nodes in turn by address
 * (pages already on a node of the set stay); local, none (new memory goes
 * where it is first written).  Blocks keep their addresses and contents.
 * No thread may allocate from the heap or free its blocks during the call
 * (the caller makes sure, as for nm_heap_destroy: e.g. between the phases
 * of the program); other heaps and plain malloc are not affected, and
 * reading and writing the heap's blocks meanwhile is allowed (a page is
 * copied while it is unmapped for a moment).  `report` (NULL: none) is
 * filled in either case.  Returns 0 when every page asked to move moved;
 * -1 with errno EIO when some did not (see the report; the new policy is
 * in effect all the same), EINVAL (NULL heap, a bad policy: see
 * nm_policy_check, e.g. a node without memory or outside the process's
 * cpuset) or ENOSYS (a mode the kernel lacks), with nothing changed. */
int nm_heap_migrate(nm_heap_t *heap, const nm_policy *policy, struct nm_migrate_report *report);

/* Make heap `heap` the calling thread's heap for everything it allocates
 * without naming a heap: malloc, calloc, realloc of NULL, posix_memalign,
 * aligned_alloc, memalign, valloc, C++ new, nm_malloc, nm_calloc,
 * nm_aligned_alloc and nm_mallocx without NM_NODE now come from `heap`,
 * until the thread calls nm_thread_set_heap(NULL) (or sets another heap,
 * or exits).  So the memory of code the program does not control (a
 * library, the C++ standard library's containers, a Fortran runtime)
 * goes where the heap's policy says.  Other threads are not affected.
 * Blocks are freed as usual, with free or nm_free from any thread, also
 * after the heap is no longer set; realloc keeps a block in its heap (a
 * block from before the call stays a plain block, a block of `heap`
 * stays in `heap`).  A heap may be set on several threads at once.  While
 * a thread has the heap set, nm_heap_destroy and nm_heap_reset of it are
 * errors (see there).  Everything the thread allocates meanwhile is a
 * block of the heap, also what the C library allocates on its behalf and
 * keeps: a thread it creates gets its TLS vector from the creator's
 * malloc and glibc keeps it with the thread's cached stack after the
 * thread exits; a stdio stream's FILE and buffer, locale and name-service
 * data live as long as the library keeps them.  Such blocks go with
 * nm_heap_destroy and nm_heap_reset like any other, and a later use of
 * them crashes: create threads and open streams that outlive the heap
 * while no heap is set.  Returns the heap set before (NULL: none).  On
 * failure returns NULL with errno ENOMEM (no memory for the thread's part
 * of the heap) and keeps the heap set before; with errno 0 set first, a
 * NULL return with errno 0 means "none before". */
nm_heap_t *nm_thread_set_heap(nm_heap_t *heap);

/* ------------------------------------------------------------------------
 * Memory tiers
 *
 * Linux groups nodes into memory tiers by performance (DRAM, then slower
 * CXL or PMEM tiers; /sys/devices/virtual/memory_tiering), and firmware
 * (ACPI HMAT) may describe each node's bandwidth and latency as seen from
 * its nearest CPUs (/sys/devices/system/node/nodeN/access0/initiators).
 * ------------------------------------------------------------------------ */

/* The memory tier of `node`: the kernel's tier number (memory_tierN, lower
 * is faster), or -1 with errno ENOENT when the kernel exposes no tiers or
 * no tier lists the node (a node without memory), EINVAL for an unknown
 * node. */
int nm_node_tier(int node);

struct nm_node_perf {
    uint64_t read_bandwidth;    /* MB/s, 0 if unknown */
    uint64_t write_bandwidth;   /* MB/s, 0 if unknown */
    uint64_t read_latency;      /* ns, 0 if unknown */
    uint64_t write_latency;     /* ns, 0 if unknown */
};

/* HMAT access data of `node`.  Returns 0, or -1 with errno ENOENT when the
 * firmware describes none, EINVAL for an unknown node. */
int nm_node_perf(int node, struct nm_node_perf *out);

/* ------------------------------------------------------------------------
 * Regions: big arrays with a policy (mmap + mbind), prefaulted as asked
 * ------------------------------------------------------------------------ */

enum nm_prefault {
    NM_PREFAULT_NONE,       /* pages appear on first touch, placed by the policy */
    NM_PREFAULT_TOUCH,      /* touch every page now, from threads running on the
                               policy's nodes (one share of the range per node;
                               a memory-only node's share from the nearest node
                               with CPUs; local: the calling thread), so first
                               touch agrees with it */
    NM_PREFAULT_POPULATE,   /* let the kernel fault everything in now, from the
                               calling thread, after the policy is set
                               (MADV_POPULATE_WRITE; Linux < 5.14: a write
                               to every page) */
};

#define NM_REGION_HUGEPAGES   (1u << 0)  /* ask for transparent huge pages */
#define NM_REGION_NOHUGEPAGES (1u << 1)  /* 4 KiB pages only (interleave page by page) */
#define NM_REGION_HUGETLB     (1u << 2)  /* 2 MiB hugetlb pages, taken from the pool at
                                            map time whatever the prefault; ENOMEM if
                                            the pool has too few free on the policy's
                                            nodes.  At most one of the three flags. */

typedef struct nm_region nm_region;

/* Map `size` bytes (rounded up to the page size, 2 MiB with
 * NM_REGION_HUGETLB; 2 MiB aligned with NM_REGION_HUGEPAGES or HUGETLB)
 * with policy `policy` (NULL: local, which the region then has even when
 * the process runs under another policy, e.g. numactl --interleave).  The
 * policy is set before any page is touched.  Returns the region, or NULL
 * with errno, and nothing mapped: EINVAL for a size of 0, a bad policy, a
 * bad prefault or conflicting flags, ENOMEM when memory is short, ENOSYS
 * when the kernel lacks the policy. */
nm_region *nm_region_map(size_t size, const nm_policy *policy, enum nm_prefault prefault,
                         unsigned flags);
void *nm_region_addr(const nm_region *r);
size_t nm_region_size(const nm_region *r);
/* Unmap the region and free its descriptor.  Returns 0 or -1 (NULL: 0). */
int nm_region_unmap(nm_region *r);
/* Give the region a new policy (NULL: local, the calling thread's node) and
 * move the pages it already has to where that policy wants them (mbind with
 * MPOL_MF_MOVE: pages on nodes outside the policy's set move; for
 * interleave, pages on a node of the set but not on their turn move too,
 * with move_pages, so the region ends up spread evenly; weighted
 * interleave leaves pages that are on a node of its set where they are).
 * Returns 0, or -1 with errno: EINVAL or ENOSYS for a policy that
 * nm_policy_check rejects (nothing changes), EIO when some pages could not
 * be moved (the new policy is set all the same). */
int nm_region_migrate(nm_region *r, const nm_policy *policy);

/* ------------------------------------------------------------------------
 * Verification: ask the kernel where pages are
 * ------------------------------------------------------------------------ */

/* Count where the resident pages of [ptr, ptr + len) are: counts[id] is
 * increased by the number of 4 KiB pages on node id, for ids below
 * `max_nodes` (NM_NODE_ID_LIMIT covers every id; counts may be NULL when
 * max_nodes is 0).  Pages not yet faulted in are not counted and not faulted
 * in (move_pages with no target); nor are pages only ever read, which map
 * the kernel's shared zero page or huge zero page (on Linux 6.7+ the
 * PAGEMAP_SCAN ioctl of /proc/self/pagemap confirms it, as some kernels'
 * move_pages give that page a node).  Returns the number of resident pages, or
 * -1 with errno: EFAULT when part of the range is not mapped, EINVAL for a
 * negative max_nodes or NULL counts. */
long nm_where(const void *ptr, size_t len, uint64_t *counts, int max_nodes);

enum nm_enforcement_level {
    NM_ENFORCEMENT_HARD,    /* every page resident and on a node the policy allows
                               (its node set; preferred: its one node; local:
                               any node) */
    NM_ENFORCEMENT_SOFT,    /* the policy is set, but not every page is confirmed:
                               some are not faulted in yet, or sit elsewhere
                               (a preferred policy that fell back) */
};

struct nm_enforcement {
    enum nm_enforcement_level level;
    uint64_t pages;             /* pages in the region */
    uint64_t resident;          /* of those, faulted in */
    uint64_t on_allowed;        /* of those, on a node the policy allows */
    uint64_t per_node[NM_STATS_MAX_NODES]; /* resident pages by node index:
                                   per_node[i] is node nm_node_ids()[i] */
};

/* Check the region's pages against its policy.  Returns 0 or -1. */
int nm_region_enforcement(const nm_region *r, struct nm_enforcement *out);

/* ------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------ */


struct nm_node_stats {
    int node;                   /* kernel node id */
    uint64_t mapped;            /* bytes of address space in segments and large spans */
    uint64_t committed;         /* bytes of that which may hold memory (not purged;
                                   counted by page: the given-back inside of
                                   free blocks on pages in use still counts) */
    uint64_t in_use;            /* bytes in live blocks (small: by page, large: exact) */
    uint64_t segments;          /* live 4 MiB segments for small and medium blocks */
    uint64_t large_blocks;      /* live large (> 256 KiB) blocks */
    uint64_t cached;            /* bytes kept for reuse in the node cache */
};

struct nm_class_stats {
    uint64_t block_size;        /* bytes per block in this class */
    uint64_t allocs;            /* blocks supplied to the class's free lists so far
                                   (all threads): carved from fresh memory, or
                                   freed by another thread and collected by the
                                   owner or taken again by the freeing thread; a
                                   block its own thread frees and takes again is
                                   not counted again (counted per refill, not per
                                   malloc) */
    uint64_t pages;             /* pages now serving the class (64 KiB up to
                                   8 KiB blocks, 512 KiB above) */
};

struct nm_stats {
    int node_count;                                  /* entries used in node[] */
    struct nm_node_stats node[NM_STATS_MAX_NODES];
    int class_count;                                 /* entries used in size_class[] */
    struct nm_class_stats size_class[NM_STATS_MAX_CLASSES];
    uint64_t large_allocs;      /* large blocks handed out so far */
    uint64_t large_frees;       /* large blocks given back so far */
    uint64_t remote_frees;      /* blocks freed by a thread other than their owner,
                                   counted when they are collected (by the owner,
                                   or by a purge for an owner that is gone or
                                   idle) or when the freeing thread, which may
                                   keep small ones of its own node, allocates
                                   them again */
    uint64_t purges;            /* times memory was returned to the OS */
    uint64_t purged_bytes;      /* bytes returned to the OS */
    uint64_t threads;           /* thread heaps created so far */
    uint64_t abandoned;         /* segments handed over by exiting or moving threads */
    uint64_t reclaimed;         /* abandoned segments taken over by another thread */
};

/* Fill `out` with a snapshot of the allocator's counters.  Counters of other
 * threads are read without stopping them, so the snapshot is approximate
 * while they run.  Does not allocate. */
void nm_stats_get(struct nm_stats *out);

/* Write the statistics in a readable table to file descriptor `fd` (for
 * example 2 for stderr).  Does not allocate and does not use stdio, so it is
 * safe to call from anywhere, including at exit. */
void nm_stats_print(int fd);

/* The statistics as one JSON object and a newline, written into `buf` as
 * snprintf does: at most len - 1 bytes and a NUL (when len > 0); returns
 * the length of the whole text, so a caller whose buffer was too small
 * (result >= len) can call again with a bigger one.  Does not allocate.
 *   {"numamalloc": "0.1.0", "pid": N, "command": "...", "rank": N or null
 *    (OMPI_COMM_WORLD_RANK, PMI_RANK, PMIX_RANK or SLURM_PROCID), "time": unix seconds,
 *    "time_ms": the same in milliseconds,
 *    "process": {"rss", "peak_rss" (bytes), "minor_faults", "major_faults"},
 *    "nodes": [{"node", "mapped", "committed", "in_use", "peak_in_use", "cached"
 *               (bytes), "segments", "large_blocks", "in_blocks"}],
 *    "classes": [{"block_size", "allocs", "pages", "page_bytes", "blocks_in_use",
 *                 "bytes_in_use"}] (classes in use),
 *    "large": {"blocks_in_use", "bytes_in_use"},
 *    "blocks_counted": true or false, "heaps_skipped": N,
 *    "events": {"large_allocs", "large_frees", "remote_frees", "cross_node_frees",
 *               "purges", "purged_bytes", "thread_heaps", "segments_abandoned",
 *               "segments_adopted"}}
 * The fields mean what the same fields of struct nm_stats mean;
 * peak_in_use is the most in_use has been since the process started, and
 * cross_node_frees counts the blocks freed by a thread on another node than
 * the one their memory is on (an array filled on one socket and freed on
 * the other: each such free costs a remote cache line, or a remote-free
 * list, and its memory is reused on its own node).
 * blocks_in_use and bytes_in_use (blocks x block_size, not whole pages) are
 * counted page by page when the statistics are taken, as is a node's
 * in_blocks (the bytes of its small, medium and large blocks in use):
 * nothing on the allocation paths counts them.  Other threads keep running
 * meanwhile, so they are approximate, and a block freed by another thread
 * counts as in use until the thread owning its page collects it (its next
 * slow path, or the purge).  heaps_skipped counts thread heaps busy for the
 * whole look and stacks of abandoned segments another thread was taking
 * from (not counted); blocks_counted is false when the look was
 * skipped (a fork was being made).  nm_stats_print's table shows the same.
 * Calls from several threads at once take turns.  NUMAMALLOC_STATS=json
 * prints it at exit. */
size_t nm_stats_json(char *buf, size_t len);

/* ---- Heap profiler ----------------------------------------------------- */

/* With NUMAMALLOC_PROF=1 (or prof:true in NUMAMALLOC_CONF) numamalloc
 * samples allocations, one per NUMAMALLOC_PROF_SAMPLE bytes allocated on
 * average (default 512 KiB; 1: every allocation), each with its call
 * stack, and writes a heap profile at exit, on NUMAMALLOC_PROF_SIGNAL
 * (USR1 or USR2) and when the program calls nm_prof_dump.  Per call site:
 * the blocks and bytes live, on which node their pages are, allocated and
 * freed totals, the blocks freed by a thread of another node than theirs,
 * and the live blocks the kernel placed outside the nodes their policy
 * names.  The profile is pprof's text heap profile with comment lines
 * that carry the per-node figures; `numamalloc prof report FILE` prints
 * the top sites and draws a flame graph.  Off, the profiler costs nothing:
 * the allocation fast paths are the same.
 *
 * Write a profile of the process now to `path`, or, with NULL, to
 * NUMAMALLOC_PROF_FILE (default "numamalloc.%p.heap"; %p the pid, %r the
 * MPI or Slurm rank, %n the number of profiles written before).  Returns
 * 0, or -1 with errno: EINVAL when the profiler is off, ENOTRECOVERABLE in
 * a child forked from a signal handler while the profiler's tables were
 * being changed (it profiles no more), or what opening or writing the
 * file failed with.  Does not allocate. */
int nm_prof_dump(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* NUMAMALLOC_H */
