/*
 * purge.h — giving free memory back to the OS on time: one pass over every
 * heap, abandoned segment and cache of the process, run by a background
 * thread while memory waits for the purge delay, and by nm_trim.
 *
 * May call the heap, large and segment layers and the options.
 */
#ifndef NM_PURGE_H
#define NM_PURGE_H

#include <stdbool.h>
#include <stdint.h>

/* Let the background thread start (from now on, at the first safe point
 * where memory waits), unless NUMAMALLOC_PURGE_THREAD=0 or the delay is 0.
 * Called once the process is up (override.c's constructor). */
void nm_purge_init(void);

/* One pass over everything (force: every free byte, now, as nm_trim asks).
 * Returns whether memory still waits for its delay. */
bool nm_purge_pass(uint64_t now_ms, bool force);

/* nm_trim's pass, forced: the purge thread's passes stand aside meanwhile
 * (one in progress holds caches and heaps for a moment, which a forced
 * pass would skip), and it is waited for (at most 1 s). */
void nm_purge_trim(void);

/* Fork: before, the thread finishes its pass and waits; after, in the
 * parent it goes on, in the child (where it does not exist) a new one
 * starts when memory waits there. */
void nm_purge_before_fork(void);
void nm_purge_after_fork_parent(void);
void nm_purge_after_fork_child(void);

#endif
