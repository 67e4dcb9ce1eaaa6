/*
 * purge.c — the background purge: a thread that gives back the memory that
 * has waited the purge delay (arena.h: nm_purge_due) in every heap of
 * every thread, every arena's abandoned segments and caches, and the span
 * caches, and gives the lists of blocks arenas hold for their threads back
 * to their pages once unused (arena.h: nm_transfer), so that a process that
 * frees memory and goes quiet returns it without calling malloc again (a
 * server after its load, an idle rank between phases).
 *
 * The thread starts once the program has a second thread, at a safe point
 * of an allocation path (creating a thread allocates; arena.c:
 * nm_purge_at_safe_point), and ends once nothing waits
 * and the program is down to one thread, so that it never keeps a process
 * alive nor a single-threaded program multi-threaded.  It sleeps on a
 * futex while nothing waits, so an idle process with nothing to give back
 * costs no wake-ups; while memory waits it makes a pass every quarter of
 * the purge delay (at least 10 ms).  It blocks every signal, takes no lock
 * that the program's threads wait for across a system call (heap.h:
 * `lock`), and never waits for a heap's owner.  A fork waits for the passes
 * in progress (the thread's, or an nm_trim's in another thread) and lets no
 * new one start until it is done, so no heap is held by a purge in the
 * child; there the thread does not exist, and a new one starts when needed.
 *
 * Without the thread (a single-threaded program, NUMAMALLOC_PURGE_THREAD=0,
 * or it could not be created), the same pass runs from allocation paths,
 * at most every quarter of the delay.
 *
 * May call the heap, large and segment layers, the os layer and the options.
 */
#define _GNU_SOURCE
#include "purge.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>

#include "heap.h"
#include "large.h"
#include "options.h"

/* A fork waits for the passes of other threads in progress
 * (nm_proc.purge.running) and no new one starts meanwhile: no heap is held
 * by a purge in the child. */
static _Atomic bool fork_pending;
/* Forced passes (nm_trim) in progress: other passes stand aside. */
static _Atomic uint32_t forced_passes;

/* An arena's abandoned segments and its cache. */
static void purge_arena(struct nm_arena *a, uint64_t now_ms, bool force, bool *waiting)
{
    nm_heap_purge_abandoned(a, now_ms, force, waiting);
    if (nm_arena_cache_purge(a, now_ms, force)) *waiting = true;
}

/* The arenas of the process: every node's three and the process-wide ones.
 * Owned arenas (nm_heap_new) are reached through their heaps. */
static int process_arenas(struct nm_arena **out)
{
    int n = 0;
    for (int node = 0; node < nm_topo.node_count; node++) {
        out[n++] = nm_local_arena(node);
        out[n++] = nm_bound_arena(node);
        out[n++] = nm_first_touch_arena(node);
    }
    if (nm_proc.policy_arena) out[n++] = nm_proc.policy_arena;
    if (nm_proc.interleave_arena) out[n++] = nm_proc.interleave_arena;
    return n;
}

static struct nm_arena *heap_owned_arena(struct nm_heap *h)
{
    struct nm_arena *a = atomic_load_explicit(&h->arena, memory_order_acquire);
    return a && a->owned && !atomic_load(&a->releasing) ? a : NULL;
}

/* Passes so far: an owned arena, reached through each of its heaps, gives
 * its lists back once a pass (its touched bits are cleared by the first
 * look; a second look in the same pass would find every class idle). */
static _Atomic uint64_t pass_count;

static void purge_transfer_once(struct nm_arena *a, uint64_t pass, bool force, bool *waiting)
{
    if (atomic_exchange_explicit(&a->transfer_pass, pass, memory_order_relaxed) != pass)
        nm_heap_purge_transfer(a, force, waiting);
}

bool nm_purge_pass(uint64_t now_ms, bool force)
{
    bool waiting = false;
    nm_purge_pass_begin();
    if (atomic_load(&fork_pending) || (!force && atomic_load(&forced_passes))) {
        nm_purge_pass_end();
        return true;
    }
    struct nm_arena *arenas[3 * NM_MAX_NODES + 2];
    int count = process_arenas(arenas);
    uint64_t pass = atomic_fetch_add_explicit(&pass_count, 1, memory_order_relaxed) + 1;
    /* Blocks handed between threads go back to their pages first, where
     * the heaps' passes below collect them. */
    for (int i = 0; i < count; i++) purge_transfer_once(arenas[i], pass, force, &waiting);
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next) {
        struct nm_arena *a = heap_owned_arena(h);
        if (a) purge_transfer_once(a, pass, force, &waiting);
    }
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next) {
        struct nm_arena *a = heap_owned_arena(h);
        nm_heap_purge(h, now_ms, force, &waiting);
        if (a) purge_arena(a, now_ms, force, &waiting);
    }
    for (int i = 0; i < count; i++) purge_arena(arenas[i], now_ms, force, &waiting);
    for (int node = 0; node < nm_topo.node_count; node++)
        if (nm_large_cache_purge(node, now_ms, force)) waiting = true;
    nm_purge_pass_end();
    return waiting;
}

bool nm_purge_visit_begin(void)
{
    nm_purge_pass_begin();
    if (!atomic_load(&fork_pending)) return true;
    nm_purge_pass_end();
    return false;
}

void nm_purge_visit_end(void)
{
    nm_purge_pass_end();
}

void nm_purge_trim(void)
{
    atomic_fetch_add(&forced_passes, 1);
    nm_purge_wait_passes(1000);
    (void)nm_purge_pass(nm_os_now_ms(), true);
    atomic_fetch_sub(&forced_passes, 1);
}

void nm_purge_release_all(void)
{
    int saved = errno;
    nm_heap_trim();
    nm_purge_trim();
    errno = saved;
}

/* ---- the thread ---------------------------------------------------------------- */

static void *purge_thread(void *arg)
{
    (void)arg;
    (void)prctl(PR_SET_NAME, "numamalloc-purge", 0, 0, 0);
    struct nm_purge_clock *c = &nm_proc.purge;
    for (;;) {
        atomic_store(&c->quit, 0);
        /* Taken before the pass: what signals after it comes round again. */
        atomic_store(&c->waiting, 0);
        if (nm_purge_pass(nm_os_now_ms(), false)) {
            nm_os_futex_wait(&c->quit, 0, nm_purge_tick_ms());   /* a sleep, or a thread exited */
            continue;
        }
        /* Nothing waits.  The program is down to one thread (or none: it
         * ends when we do): end, leaving it as it would be without us; a
         * later need starts a new purge thread.  When /proc cannot say
         * (no /proc, no file descriptor left), the threads with a heap
         * decide. */
        int count = nm_os_thread_count();
        if (count ? nm_purge_program_threads(count) <= 1 : atomic_load(&c->threads) <= 1) break;
        /* Sleep until memory waits (nm_purge_signal) or a thread with a
         * heap exits.  Without such a thread, no exit would wake us: look
         * at the thread count every second then. */
        atomic_store(&c->idle, 1);
        uint64_t timeout = atomic_load(&c->threads) == 0 ? 1000 : 0;
        if (!atomic_load(&c->waiting) && !atomic_load(&c->quit))
            nm_os_futex_wait(&c->waiting, 0, timeout);
        atomic_store(&c->idle, 0);
        /* Let memory that just began to wait age a little first. */
        if (!atomic_load(&c->quit)) nm_os_futex_wait(&c->quit, 0, nm_purge_tick_ms());
    }
    /* Memory that begins to wait from now on is purged from allocation
     * paths, or starts a new thread.  The thread count is not looked at
     * for a purge delay: this thread, still counted until it is gone,
     * would start another. */
    atomic_store_explicit(&c->next_count_ms, nm_os_now_ms() + nm_opt.purge_delay_ms,
                          memory_order_relaxed);
    atomic_store(&c->state, 0);
    return NULL;
}

int nm_purge_program_threads(int count)
{
    return count - (int)atomic_load(&nm_proc.purge.helpers) - nm_purge_thread_running();
}

/* The thread's stack (given explicitly: os.h, nm_os_start_thread). */
#define NM_PURGE_STACK (8 * NM_MiB)

static void purge_start(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&nm_proc.purge.state, &expected, 1)) return;
    if (!nm_os_start_thread(purge_thread, NULL, NM_PURGE_STACK)) atomic_store(&nm_proc.purge.state, 2);
}

void nm_purge_init(void)
{
    atomic_store_explicit(&nm_proc.purge.pass, nm_purge_pass, memory_order_release);
    atomic_store_explicit(&nm_proc.purge.release, nm_purge_release_all, memory_order_release);
    if (!nm_opt.purge_thread || nm_opt.purge_delay_ms == 0) {
        atomic_store(&nm_proc.purge.state, 2);
        return;
    }
    atomic_store_explicit(&nm_proc.purge.start, purge_start, memory_order_release);
}

/* ---- fork ------------------------------------------------------------------------- */

void nm_purge_before_fork(void)
{
    atomic_store(&fork_pending, true);
    nm_purge_wait_passes(0);
}

void nm_purge_after_fork_parent(void)
{
    atomic_store(&fork_pending, false);
}

void nm_purge_after_fork_child(void)
{
    atomic_store(&fork_pending, false);
    atomic_store(&nm_proc.purge.idle, 0);
    /* The heaps of the threads that are gone wait for a purge here. */
    atomic_store(&nm_proc.purge.waiting, 1);
    /* Passes of the threads that are gone never end here; one the forking
     * thread's signal handler stopped ends if the child returns to it. */
    nm_purge_passes_after_fork();
    if (atomic_load(&nm_proc.purge.state) == 1) atomic_store(&nm_proc.purge.state, 0);
}
