/*
 * chunk.h — address space reserved in large chunks and carved into 4 MiB
 * units, so that the heap's ranges share few kernel mappings.
 *
 * Every mmap is a mapping (a VMA) of its own, and the kernel allows a
 * process vm.max_map_count of them (65,530 by default).  So an arena does
 * not map each segment and span by itself: it reserves a chunk (64 MiB for
 * its first, doubling for each chunk it holds at once, up to 1 GiB), binds
 * it (mbind), marks it MADV_NOHUGEPAGE and names it, all once, and carves
 * 4 MiB-aligned runs of units out of it without a syscall.  Ranges of one
 * chunk with the same policy, advice and name are one mapping.
 *
 * A unit is free or carved.  A free unit holds no memory (a returned run is
 * decommitted first) and reads as zero, like a fresh mapping.  A chunk whose
 * units are all free is unmapped.
 *
 * Concurrency.  Returning units is lock-free (an atomic OR per bitmap word:
 * the returner owns those bits).  Carving and retiring (unmapping an empty
 * chunk) take the chunk's `busy` flag with a try: a thread that finds it
 * taken goes on to the next chunk or maps a new one, and never waits, so a
 * holder stopped by a signal or lost in a fork blocks nobody (the fork
 * child clears the flags).  No syscall is made while the flag is held.
 *
 * Calls the os layer only.
 */
#ifndef NM_CHUNK_H
#define NM_CHUNK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os.h"

#define NM_UNIT_SHIFT 22
#define NM_UNIT_SIZE ((size_t)1 << NM_UNIT_SHIFT)          /* 4 MiB */
#define NM_CHUNK_MIN_UNITS 16                              /* 64 MiB: an arena's first chunk */
#define NM_CHUNK_MAX_UNITS 256                             /* 1 GiB */
#define NM_CHUNK_CARVE_MAX 64      /* runs of up to 256 MiB come from chunks; larger ones
                                      are mappings of their own */
#define NM_CHUNK_WORDS (NM_CHUNK_MAX_UNITS / 64)

enum nm_chunk_state {
    NM_CHUNK_EMPTY = 0,     /* the descriptor holds no chunk: free to set up again */
    NM_CHUNK_SETUP,         /* being mapped by the thread that claimed it */
    NM_CHUNK_ACTIVE,        /* mapped; units are carved and returned */
    NM_CHUNK_RETIRING,      /* all free, being unmapped */
};

/* A chunk's descriptor.  Descriptors come from a static pool, belong to one
 * arena's list for good (push-only), and are reused for that arena's later
 * chunks once their chunk is unmapped.  `base` and `units` are written only
 * in SETUP and RETIRING, by the one thread that moved the state there;
 * carvers read them after seeing ACTIVE under `busy`, returners while they
 * hold units (which keeps the chunk ACTIVE). */
struct nm_chunk_list;
struct nm_chunk {
    _Atomic uint64_t free[NM_CHUNK_WORDS];  /* bit i: unit i is free */
    _Atomic uintptr_t base;                 /* first unit */
    _Atomic uint32_t units;                 /* units in the chunk */
    _Atomic uint8_t state;                  /* enum nm_chunk_state */
    _Atomic bool busy;                      /* carving or retiring (try only) */
    struct nm_chunk *next;                  /* in its arena's list (set once) */
    struct nm_chunk_list *list;             /* that list (set once) */
};

/* An arena's chunks. */
struct nm_chunk_list {
    _Atomic(struct nm_chunk *) head;        /* push-only */
    _Atomic uint32_t live;                  /* chunks mapped now: new ones grow with it */
};

/* `units` contiguous units from one of the list's chunks, mapping a new
 * chunk (bound with mbind(bind_mode, nodes) unless bind_mode is negative)
 * when none has room.  The range reads as zero and holds no memory.
 * Returns it and its chunk in *chunk, or NULL (errno ENOMEM) when units
 * exceeds NM_CHUNK_CARVE_MAX, the kernel charges mappings in full
 * (vm.overcommit_memory 2), no chunk can be mapped, or a strict binding
 * (NM_MPOL_BIND) is refused; the caller then maps the range by itself. */
void *nm_chunk_carve(struct nm_chunk_list *list, size_t units, int bind_mode,
                     const nm_nodemask *nodes, struct nm_chunk **chunk);

/* Give back `units` units from `start`, carved from `c`: their memory is
 * decommitted, and the chunk is unmapped if nothing else of it is carved.
 * The range must have the chunk's advice again (MADV_NOHUGEPAGE). */
void nm_chunk_return(struct nm_chunk *c, void *start, size_t units);

/* Carve the `more` units that follow [start, start + units) of `c` if they
 * are all free (no syscall).  Returns whether they now belong to the caller. */
bool nm_chunk_extend(struct nm_chunk *c, void *start, size_t units, size_t more);

/* Unmap the list's chunks that are all free (a return whose try to retire
 * its chunk found it busy leaves one behind). */
void nm_chunk_sweep(struct nm_chunk_list *list);

/* In the child of a fork: clear the busy flags of every descriptor. */
void nm_chunk_after_fork(void);

#endif
