/*
 * purge.h — giving free memory back to the OS on time: one pass over every
 * heap, abandoned segment and cache of the process, run by a background
 * thread while memory waits for the purge delay (in programs with two
 * threads or more), from allocation paths otherwise, and by nm_trim.
 *
 * May call the heap, large and segment layers and the options.
 */
#ifndef NM_PURGE_H
#define NM_PURGE_H

#include <stdbool.h>
#include <stdint.h>

/* Register the pass for allocation paths and the release for refused
 * mappings, and let the background thread start (from now on, at a safe
 * point where the program has a second thread) unless
 * NUMAMALLOC_PURGE_THREAD=0 or the delay is 0.  Called once the process is
 * up (override.c's constructor). */
void nm_purge_init(void);

/* One pass over everything (force: every free byte, now, as nm_trim asks).
 * Returns whether memory still waits for its delay. */
bool nm_purge_pass(uint64_t now_ms, bool force);

/* nm_trim's pass, forced: the purge thread's passes stand aside meanwhile
 * (one in progress holds caches and heaps for a moment, which a forced
 * pass would skip), and it is waited for (at most 1 s). */
void nm_purge_trim(void);

/* Everything cached goes back now: the calling thread's heap (its foreign
 * lists, remote frees and free pages: nm_heap_trim), then nm_purge_trim's
 * pass.  nm_trim, and an allocation whose mapping the kernel refused
 * (arena.h: nm_arena_release_for_retry). */
void nm_purge_release_all(void);

/* A look at other threads' heaps that is no purge (the statistics'
 * count of blocks in use, heap.h: nm_heap_count_blocks), bracketed as a
 * pass is: a fork and an owned arena's release wait for it.  False (and
 * nothing to end) while a fork is being made: the look is skipped. */
bool nm_purge_visit_begin(void);
void nm_purge_visit_end(void);

/* The program's own threads among the `count` threads of the process
 * that /proc counts (os.h: nm_os_proc_stat): less the library's helpers
 * (arena.h: struct nm_purge_clock) and the purge thread while it runs. */
int nm_purge_program_threads(int count);

/* Fork: before, the passes in progress end and no new one starts; after,
 * in the parent they go on, in the child (where the thread does not exist)
 * a new one starts when needed. */
void nm_purge_before_fork(void);
void nm_purge_after_fork_parent(void);
void nm_purge_after_fork_child(void);

#endif
