/*
 * prof.h — the heap profiler (NUMAMALLOC_PROF): a sample of the program's
 * allocations by call stack, with the node each sampled block's memory is
 * on, the blocks freed by a thread of another node, and the blocks the
 * kernel placed outside the nodes their policy names.
 *
 * Sampling is by bytes, as tcmalloc's and jemalloc's: each thread counts
 * the bytes it allocates down from an interval drawn from an exponential
 * distribution of mean NUMAMALLOC_PROF_SAMPLE (a Poisson process over the
 * bytes allocated); the allocation that takes the count below zero is
 * sampled.  A block of s bytes is so sampled with probability
 * 1 - exp(-s / mean), and a reader estimates the program's totals by
 * dividing each sample by that (pprof's heap_v2 rule).  While the profiler
 * is on, every allocation of a heap takes the heap's slow path, which
 * counts (heap.h: nm_tls_sample_left); while it is off nothing counts and
 * the fast paths are those of a library without it.
 *
 * A sampled block gets a span of its own (large.h), whatever its size,
 * from the arena it would have come from (same node, same policy): its
 * free is then a large block's, which takes the slow path anyway, so the
 * frees of the blocks not sampled cost nothing more, and the span's header
 * holds the sample (segment.h: struct nm_prof_mark).  A sampled block of a
 * few bytes so takes a page: at the default mean, at most one page per
 * 512 KiB allocated.
 *
 * Call stacks come from the unwinder of libgcc (linked into the library,
 * so no library is loaded and nothing allocates), and are kept as return
 * addresses; the `numamalloc prof` command symbolises them from the copy
 * of /proc/self/maps that ends each profile.  A profile is the text heap
 * profile of gperftools (pprof reads it), with comment lines that carry
 * the per-node figures (docs/design.md, "Heap profiler").
 *
 * May call the large, segment, topology and os layers and the options.
 */
#ifndef NM_PROF_H
#define NM_PROF_H

#include "heap.h"

/* Start the profiler when NUMAMALLOC_PROF says so (at library start-up,
 * outside any allocation): its tables, the dump at exit and on
 * NUMAMALLOC_PROF_SIGNAL.  Sets nm_proc.sample_alloc. */
void nm_prof_init(void);

/* An allocation that took its thread's countdown below zero: a block of
 * `size` bytes from arena `a` in a span of its own, recorded with the
 * caller's stack; draws the thread's next interval.  NULL when it is not
 * sampled after all (the thread's first count, an allocation made by the
 * profiler itself, no memory): the caller serves it the usual way. */
void *nm_prof_alloc(struct nm_arena *a, size_t size, size_t alignment, bool zero);
/* The sampled block of span `s` (s->prof.site != 0) is being freed. */
void nm_prof_free(struct nm_segment *s);
/* The sampled block of span `s` is about to be resized, which may move the
 * span: off its site's list; returns its site.  nm_prof_attach puts the
 * block of span `s` (the same one or where it moved) back on the list of
 * `site` with `size` bytes (growth counts as allocated). */
uint32_t nm_prof_detach(struct nm_segment *s);
void nm_prof_attach(struct nm_segment *s, uint32_t site, size_t size);
/* The sampled block of span `s` now holds `size` bytes, in place. */
void nm_prof_resized(struct nm_segment *s, size_t size);
/* The block of span `s`, not sampled, was resized to `size` bytes and its
 * thread's countdown crossed zero (heap.h: nm_heap_sample_due): sample it now, with
 * the caller's stack (a realloc that resizes counts as an allocation of
 * its new size). */
void nm_prof_adopt(struct nm_segment *s, size_t size);
/* Owned arena `a` is about to be released with every block in it
 * (nm_heap_destroy): its live samples count as freed and leave the
 * tables. */
void nm_prof_forget_arena(const struct nm_arena *a);

/* fork: the parent holds the profiler's lock across it when it can have
 * it within a few milliseconds, so the child's tables are whole; else the
 * child stops profiling.  The child numbers its own profiles from 0 (%n). */
void nm_prof_before_fork(void);
void nm_prof_after_fork(bool child);

#endif
