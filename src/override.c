/*
 * override.c — the libc allocation symbols, so that LD_PRELOAD (or linking)
 * makes numamalloc the process's malloc: malloc, free, calloc, realloc,
 * reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * C23's free_sized and free_aligned_sized (their sizes checked against the
 * block: alloc.c), malloc_usable_size, the glibc extensions malloc_trim, malloc_stats,
 * mallinfo and mallinfo2, and glibc's internal __libc_* names.  They all
 * use the fast paths of alloc.h (free inline; malloc's, with gcc, as one
 * shared copy that malloc jumps to: docs/design.md).
 *
 * C++ operator new and delete (every form: plain, array, nothrow, sized,
 * aligned) are exported too, under their mangled names, so they take the
 * same inline fast path.  The library stays C and needs no C++ runtime: only
 * when an allocation fails does operator new hand the request to the next
 * definition of the same operator (the C++ runtime's, found with
 * dlsym(RTLD_NEXT) or else RTLD_DEFAULT), which retries through our malloc,
 * calls the new-handler until it gives up and throws std::bad_alloc, exactly
 * as with glibc.
 *
 * Also the process hooks: a constructor that registers the fork handler and
 * the statistics printed at exit, and the thread that prints them every
 * NUMAMALLOC_STATS_INTERVAL.
 *
 * Top layer: may call alloc.h and everything below it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "numamalloc.h"
#include "options.h"
#include "prof.h"
#include "purge.h"
#include "stats.h"

#define nm_libc_export __attribute__((visibility("default"), used))

/* The exported name of libc symbol `name`.  The ThreadSanitizer build
 * (make check-tsan) compiles this same file with -DNM_LIBC_PREFIX=tsan_,
 * so that its entry points are tsan_malloc, tsan_free, tsan__Znwm, ...:
 * TSan's runtime owns malloc and calls it while it starts, before it can
 * run instrumented code, so an instrumented malloc under the real name
 * crashes it (docs/design.md, "Testing").  The code behind the names is the
 * same. */
#ifdef NM_LIBC_PREFIX
#define nm_libc_paste(prefix, name) prefix##name
#define nm_libc_expand(prefix, name) nm_libc_paste(prefix, name)
#define nm_libc(name) nm_libc_expand(NM_LIBC_PREFIX, name)
#else
#define nm_libc(name) name
#endif

/* The entry points proper; the exported names are aliases of them (an
 * alias adds no jump, and may declare more attributes than its target). */
static void *malloc_entry(size_t size)
{
    return nm_alloc_inline(size);
}

static void free_entry(void *p)
{
    nm_free_inline(p);
}

static void *calloc_entry(size_t count, size_t size)
{
    return nm_calloc_inline(count, size);
}

#define nm_alias(target) __attribute__((alias(#target)))
nm_libc_export void *nm_libc(malloc)(size_t size) nm_alias(malloc_entry);
nm_libc_export void nm_libc(free)(void *p) nm_alias(free_entry);
nm_libc_export void *nm_libc(calloc)(size_t count, size_t size) nm_alias(calloc_entry);

nm_libc_export void *nm_libc(realloc)(void *p, size_t size)
{
    return nm_realloc_named(p, size, "realloc");
}

nm_libc_export void *nm_libc(reallocarray)(void *p, size_t count, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) { errno = ENOMEM; return NULL; }
    return nm_realloc_named(p, bytes, "reallocarray");
}

nm_libc_export int nm_libc(posix_memalign)(void **out, size_t alignment, size_t size)
{
    if (alignment < sizeof(void *) || !nm_is_pow2(alignment)) return EINVAL;
    int saved = errno;
    void *p = nm_aligned_inline(alignment, size);
    int err = p ? 0 : errno;
    errno = saved;
    if (!p) return err;
    *out = p;
    return 0;
}

nm_libc_export void *nm_libc(aligned_alloc)(size_t alignment, size_t size)
{
    if (nm_unlikely(!nm_is_pow2(alignment))) { errno = EINVAL; return NULL; }
    return nm_aligned_inline(alignment, size);
}

/* memalign accepts any alignment, as glibc's does: it rounds it up to a
 * power of two. */
nm_libc_export void *nm_libc(memalign)(size_t alignment, size_t size)
{
    if (alignment > ((size_t)1 << 62)) { errno = EINVAL; return NULL; }
    size_t pow2 = alignment <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzll(alignment - 1));
    return nm_aligned_inline(pow2, size);
}

nm_libc_export void *nm_libc(valloc)(size_t size)
{
    return nm_aligned_alloc((size_t)sysconf(_SC_PAGESIZE), size);
}

nm_libc_export void *nm_libc(pvalloc)(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t rounded = nm_align_up(size ? size : 1, page);
    if (rounded < size) { errno = ENOMEM; return NULL; }
    return nm_aligned_alloc(page, rounded);
}

nm_libc_export void nm_libc(free_sized)(void *p, size_t size)
{
    nm_free_sized_named(p, false, 0, size, "free_sized");
}

nm_libc_export void nm_libc(free_aligned_sized)(void *p, size_t alignment, size_t size)
{
    nm_free_sized_named(p, true, alignment, size, "free_aligned_sized");
}

nm_libc_export size_t nm_libc(malloc_usable_size)(void *p)
{
    return nm_usable_size(p);
}

nm_libc_export int nm_libc(malloc_trim)(size_t pad)
{
    (void)pad;
    nm_trim();
    return 1;
}

nm_libc_export void nm_libc(malloc_stats)(void)
{
    nm_stats_print(2);
}

nm_libc_export struct mallinfo2 nm_libc(mallinfo2)(void)
{
    struct nm_stats st;
    nm_stats_get(&st);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    size_t large = 0;
    for (int i = 0; i < st.node_count; i++) {
        mi.arena += st.node[i].mapped;
        mi.uordblks += st.node[i].in_use;
        mi.fordblks += st.node[i].committed - (st.node[i].in_use < st.node[i].committed
                                               ? st.node[i].in_use : st.node[i].committed);
        mi.fsmblks += st.node[i].cached;
        large += st.node[i].large_blocks;
    }
    mi.hblks = large;
    mi.keepcost = 0;
    return mi;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
nm_libc_export struct mallinfo nm_libc(mallinfo)(void)
{
    struct mallinfo2 m2 = nm_libc(mallinfo2)();
    struct mallinfo mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = (int)m2.arena;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    mi.fsmblks = (int)m2.fsmblks;
    mi.hblks = (int)m2.hblks;
    return mi;
}
#pragma GCC diagnostic pop

/* glibc's internal names: programs and libraries that call them directly
 * must not mix two allocators.  Aliases, not copies (a copy would be folded
 * into a jump by the compiler anyway). */
nm_libc_export void *nm_libc(__libc_malloc)(size_t size) nm_alias(malloc_entry);
nm_libc_export void nm_libc(__libc_free)(void *p) nm_alias(free_entry);
nm_libc_export void *nm_libc(__libc_calloc)(size_t n, size_t size) nm_alias(calloc_entry);
nm_libc_export void *nm_libc(__libc_realloc)(void *p, size_t size) { return nm_realloc_named(p, size, "realloc"); }
nm_libc_export void *nm_libc(__libc_memalign)(size_t alignment, size_t size) { return nm_libc(memalign)(alignment, size); }

/* ---- C++ operator new and delete ---------------------------------------------------------
 *
 * Itanium C++ ABI names (size_t is unsigned long: m; std::align_val_t is an
 * enum over size_t; std::nothrow_t is passed by reference). */

/* operator new(size_t) and operator new(size_t, std::align_val_t) of the C++
 * runtime: the next definition after ours, else the first one that is not
 * ours (a runtime loaded before us).  NULL when there is none. */
static void *cxx_runtime_new(const char *name, void *ours)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f || f == ours) f = dlsym(RTLD_DEFAULT, name);
    return f == ours ? NULL : f;
}

static void *cxx_new(size_t size);
static void *cxx_new_aligned(size_t size, size_t alignment);

/* A failed new: the runtime's operator new retries through our malloc,
 * runs the new-handler loop and throws std::bad_alloc.  Without a runtime
 * (nobody can have installed a handler, and nothing can catch): a message
 * and abort, as an uncaught std::bad_alloc would. */
static nm_cold nm_noinline void *cxx_new_failed(size_t size)
{
    void *(*next)(size_t) = (void *(*)(size_t))cxx_runtime_new("_Znwm", (void *)cxx_new);
    if (next) return next(size);
    nm_line l = { .len = 0 };
    nm_line_str(&l, "numamalloc: operator new: out of memory and no C++ runtime to throw std::bad_alloc\n");
    nm_line_write(&l, 2);
    abort();
}

static nm_cold nm_noinline void *cxx_new_aligned_failed(size_t size, size_t alignment)
{
    void *(*next)(size_t, size_t) = (void *(*)(size_t, size_t))
        cxx_runtime_new("_ZnwmSt11align_val_t", (void *)cxx_new_aligned);
    if (next) return next(size, alignment);
    nm_line l = { .len = 0 };
    nm_line_str(&l, "numamalloc: operator new: out of memory and no C++ runtime to throw std::bad_alloc\n");
    nm_line_write(&l, 2);
    abort();
}

/* The nothrow forms run the same handler loop: the runtime's nothrow
 * operator new calls operator new (ours, through the dynamic linker) and
 * turns its std::bad_alloc into NULL. */
static nm_cold nm_noinline void *cxx_nothrow_failed(const char *name, void *ours, size_t size,
                                                    const void *tag)
{
    void *(*next)(size_t, const void *) = (void *(*)(size_t, const void *))cxx_runtime_new(name, ours);
    return next ? next(size, tag) : NULL;
}

static nm_cold nm_noinline void *cxx_nothrow_aligned_failed(const char *name, void *ours,
                                                            size_t size, size_t alignment,
                                                            const void *tag)
{
    void *(*next)(size_t, size_t, const void *) =
        (void *(*)(size_t, size_t, const void *))cxx_runtime_new(name, ours);
    return next ? next(size, alignment, tag) : NULL;
}

/* operator new: the array forms are the same functions (the runtime's
 * array forms only call the plain ones).  Over-aligned new: the alignment
 * is a power of two (the language guarantees it). */
static void *cxx_new(size_t size)
{
    void *p = nm_alloc_inline(size);
    return nm_likely(p != NULL) ? p : cxx_new_failed(size);
}

static void *cxx_new_nothrow(size_t size, const void *tag)
{
    void *p = nm_alloc_inline(size);
    return nm_likely(p != NULL) ? p : cxx_nothrow_failed("_ZnwmRKSt9nothrow_t", (void *)cxx_new_nothrow, size, tag);
}

static void *cxx_new_aligned(size_t size, size_t alignment)
{
    void *p = nm_aligned_inline(alignment, size);
    return nm_likely(p != NULL) ? p : cxx_new_aligned_failed(size, alignment);
}

static void *cxx_new_aligned_nothrow(size_t size, size_t alignment, const void *tag)
{
    void *p = nm_aligned_inline(alignment, size);
    return nm_likely(p != NULL) ? p
        : cxx_nothrow_aligned_failed("_ZnwmSt11align_val_tRKSt9nothrow_t",
                                     (void *)cxx_new_aligned_nothrow, size, alignment, tag);
}

nm_libc_export void *nm_libc(_Znwm)(size_t size) nm_alias(cxx_new);
nm_libc_export void *nm_libc(_Znam)(size_t size) nm_alias(cxx_new);
nm_libc_export void *nm_libc(_ZnwmRKSt9nothrow_t)(size_t size, const void *tag) nm_alias(cxx_new_nothrow);
nm_libc_export void *nm_libc(_ZnamRKSt9nothrow_t)(size_t size, const void *tag) nm_alias(cxx_new_nothrow);
nm_libc_export void *nm_libc(_ZnwmSt11align_val_t)(size_t size, size_t alignment) nm_alias(cxx_new_aligned);
nm_libc_export void *nm_libc(_ZnamSt11align_val_t)(size_t size, size_t alignment) nm_alias(cxx_new_aligned);
nm_libc_export void *nm_libc(_ZnwmSt11align_val_tRKSt9nothrow_t)(size_t size, size_t alignment, const void *tag)
    nm_alias(cxx_new_aligned_nothrow);
nm_libc_export void *nm_libc(_ZnamSt11align_val_tRKSt9nothrow_t)(size_t size, size_t alignment, const void *tag)
    nm_alias(cxx_new_aligned_nothrow);

/* Every delete is free: a block's size and alignment are known from its
 * page or span, so the size and alignment arguments (declared away here:
 * the caller's extra registers are simply not read) are not needed. */
nm_libc_export void nm_libc(_ZdlPv)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdaPv)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdlPvm)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdaPvm)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdlPvRKSt9nothrow_t)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdaPvRKSt9nothrow_t)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdlPvSt11align_val_t)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdaPvSt11align_val_t)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdlPvmSt11align_val_t)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdaPvmSt11align_val_t)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdlPvSt11align_val_tRKSt9nothrow_t)(void *p) nm_alias(free_entry);
nm_libc_export void nm_libc(_ZdaPvSt11align_val_tRKSt9nothrow_t)(void *p) nm_alias(free_entry);

/* ---- process hooks ---------------------------------------------------------------------- */

/* The profiler's lock is held across the fork when it can be had (prof.h),
 * so its tables are whole in the child; taken after the purge's, which
 * waits for passes that a signal-handler profile could be in. */
static void before_fork(void)
{
    nm_purge_before_fork();
    nm_prof_before_fork();
}

static void after_fork_in_parent(void)
{
    nm_prof_after_fork(false);
    nm_purge_after_fork_parent();
}

/* Nothing else is locked, so the child can allocate at once.  The pop flags of
 * the arena stacks are cleared, in case a thread that does not exist in the
 * child held one, and the heaps of those threads go to their arenas as at
 * thread exit: the child's threads adopt their segments, so the parent's
 * blocks are freed, reused and given back in the child too. */
static _Atomic bool stats_timer_started;   /* NUMAMALLOC_STATS_INTERVAL (below) */
static void stats_timer_start(void);

static void after_fork_in_child(void)
{
    nm_prof_after_fork(true);
    nm_purge_after_fork_child();
    nm_arenas_after_fork();
    nm_heap_after_fork();
    nm_stats_after_fork();
    /* The parent's timer thread does not exist here. */
    if (atomic_exchange(&stats_timer_started, false)) {
        atomic_fetch_sub(&nm_proc.purge.helpers, 1);
        stats_timer_start();
    }
}

/* NUMAMALLOC_STATS: the statistics go to a private copy of stderr taken at
 * start, because programs may close fd 2 in their own exit handlers, which
 * run before ours (GNU coreutils' close_stdout does).  If the copy no longer
 * is the same file at exit (the program closed it and the number was
 * reused), they go to fd 2 if that still is, else nowhere. */
static int stats_fd = -1;
static dev_t stats_dev;
static ino_t stats_ino;

static bool same_file(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == stats_dev && st.st_ino == stats_ino;
}

static void write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text += n;
        len -= (size_t)n;
    }
}

#define NM_STATS_JSON_MAX (128 * 1024)   /* 64 nodes and every class fit */

/* The statistics on `fd`: the table (NUMAMALLOC_STATS=1), else JSON, one
 * object on one line written at once, built in `json` (no malloc). */
static void print_stats(int fd, char json[NM_STATS_JSON_MAX])
{
    if (nm_opt.stats_at_exit == NM_STATS_TEXT) {
        nm_stats_print(fd);
        return;
    }
    size_t len = nm_stats_json(json, NM_STATS_JSON_MAX);
    write_all(fd, json, len < NM_STATS_JSON_MAX ? len : NM_STATS_JSON_MAX - 1);
}

/* Whether the file was written yet by this process (or the parent it was
 * forked from): the first write empties it, later ones (the periodic
 * dumps, then the one at exit) are appended. */
static _Atomic bool stats_file_started;
static _Atomic bool stats_file_warned;

/* NUMAMALLOC_STATS_FILE as an absolute pattern, taken once at start-up
 * (keep_stderr_for_stats): a program that changes its directory keeps
 * writing (appending) the same file. */
static char stats_file_pattern[4096];

/* The periodic dumps and the one at exit take turns (a flag waited for
 * for a whole dump, os.h: nm_flag_wait), and once the exit's has begun no
 * periodic one follows it: the exit's object is the last. */
static _Atomic bool stats_print_turn;
static bool stats_exit_printed;

/* Print the statistics where NUMAMALLOC_STATS_FILE says, or on stderr. */
static void print_stats_out(char json[NM_STATS_JSON_MAX])
{
    if (nm_opt.stats_file) {
        char path[4096];
        bool first = !atomic_exchange(&stats_file_started, true);
        const char *pattern = stats_file_pattern[0] ? stats_file_pattern : nm_opt.stats_file;
        int fd = nm_file_name(pattern, -1, path, sizeof path)
                     ? open(path, O_WRONLY | O_CREAT | O_APPEND | (first ? O_TRUNC : 0) |
                                      O_CLOEXEC | O_NOFOLLOW, 0644)
                     : -1;
        if (fd >= 0) {
            print_stats(fd, json);
            close(fd);
            return;
        }
        if (!atomic_exchange(&stats_file_warned, true)) {
            nm_line l = { .len = 0 };
            nm_line_str(&l, "numamalloc: cannot write NUMAMALLOC_STATS_FILE='");
            nm_line_value(&l, nm_opt.stats_file);
            nm_line_str(&l, "': statistics go to stderr\n");
            if (stats_fd >= 0 && same_file(stats_fd)) nm_line_write(&l, stats_fd);
            else if (same_file(2)) nm_line_write(&l, 2);
        }
    }
    if (stats_fd >= 0 && same_file(stats_fd)) print_stats(stats_fd, json);
    else if (same_file(2)) print_stats(2, json);
}

static void stats_turn_take(void) { nm_flag_wait(&stats_print_turn); }

static void print_stats_at_exit(void)
{
    static char json[NM_STATS_JSON_MAX];
    stats_turn_take();
    stats_exit_printed = true;
    print_stats_out(json);
    nm_flag_release(&stats_print_turn);
}

/* NUMAMALLOC_STATS_INTERVAL: a thread (numamalloc-stats) that prints the
 * statistics every interval, from the start of the process to its end,
 * whether the program allocates or not.  It makes no allocation and takes
 * no lock of the allocator but the statistics' own turn (whose snapshot
 * holds each heap only as a purge does), blocks every signal and sleeps on
 * the monotonic clock, so the dumps keep their pace.  It is detached: exit
 * ends it with the process; and it ends by itself once the program has no
 * thread left (all ended with pthread_exit), so that the process ends as it
 * would without it: looked at when a thread with a heap exits (heap.c
 * wakes it) and at each dump.  A fork child starts its own (its pid
 * differs: a %p file of its own). */

/* The state of the process's first thread in /proc/self/stat: 1 when it
 * has ended (pthread_exit) while others run (the process shows as a zombie,
 * state Z, and still counts that thread), 0 while it runs, -1 when /proc
 * cannot say. */
static int first_thread_state(void)
{
    char state;
    if (!nm_os_proc_stat(&state, NULL)) return -1;
    return state == 'Z';
}

/* Whether none of the program's own threads is left.  While the first
 * thread runs, the process ends when it returns or calls exit: not over.
 * Once it has ended with pthread_exit, /proc's count of threads, less
 * ours (purge.h: nm_purge_program_threads) and the first thread's zombie,
 * says.  Without /proc: whether any thread that allocated is left
 * (heap.c). */
static bool program_ended(void)
{
    char state;
    int count = 0;
    if (nm_os_proc_stat(&state, &count) && state != 'Z') return false;
    if (count <= 0) return atomic_load(&nm_proc.purge.threads) == 0;
    return nm_purge_program_threads(count) - 1 <= 0;
}

/* The dumps' pace: the precise monotonic clock, not nm_os_now_ms's coarse
 * one (a tick behind, up to 10 ms, at each dump). */
static uint64_t monotonic_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* How often the timer looks whether the program has ended while its first
 * thread is gone (a thread that exits without a heap does not wake it). */
#define NM_STATS_TIMER_LOOK_MS 100
#define NM_STATS_TIMER_WATCH_MS 2000

static void *stats_timer(void *arg)
{
    (void)arg;
    (void)prctl(PR_SET_NAME, "numamalloc-stats", 0, 0, 0);
    static char json[NM_STATS_JSON_MAX];
    uint64_t interval = nm_opt.stats_interval_ms, next = monotonic_ms(), watch_until = 0;
    for (;;) {
        next = next > UINT64_MAX - interval ? UINT64_MAX : next + interval;
        for (uint64_t now; (now = monotonic_ms()) < next;) {
            /* The exits seen before looking: one after it ends the wait. */
            uint32_t exits = atomic_load(&nm_proc.purge.exits);
            if (program_ended()) goto end;
            /* Look often while the first thread is gone, and for a while
             * after a thread exit woke us (the first thread's own exit
             * wakes us before /proc shows it ended). */
            uint64_t wait = next - now;
            if (wait > NM_STATS_TIMER_LOOK_MS && (now < watch_until || first_thread_state() != 0))
                wait = NM_STATS_TIMER_LOOK_MS;
            nm_os_futex_wait(&nm_proc.purge.exits, exits, wait);
            if (atomic_load(&nm_proc.purge.exits) != exits) watch_until = monotonic_ms() + NM_STATS_TIMER_WATCH_MS;
        }
        if (program_ended()) break;
        stats_turn_take();
        bool over = stats_exit_printed;
        if (!over) print_stats_out(json);
        nm_flag_release(&stats_print_turn);
        if (over) break;
    }
end:
    atomic_fetch_sub(&nm_proc.purge.helpers, 1);
    atomic_store(&stats_timer_started, false);
    return NULL;
}

/* The thread's stack (given explicitly: os.h, nm_os_start_thread); it
 * needs little beyond its static buffer. */
#define NM_STATS_TIMER_STACK (256 * 1024)

static void stats_timer_start(void)
{
    if (!nm_opt.stats_interval_ms || atomic_exchange(&stats_timer_started, true)) return;
    /* Not the program's thread: the purge thread's count of the program's
     * threads leaves it out (arena.h: helpers). */
    atomic_fetch_add(&nm_proc.purge.helpers, 1);
    if (!nm_os_start_thread(stats_timer, NULL, NM_STATS_TIMER_STACK)) {
        atomic_fetch_sub(&nm_proc.purge.helpers, 1);
        nm_line l = { .len = 0 };
        nm_line_str(&l, "numamalloc: cannot start the thread for NUMAMALLOC_STATS_INTERVAL\n");
        nm_line_write(&l, 2);
    }
}

static void keep_stderr_for_stats(void)
{
    /* A relative file name, made absolute now (no malloc: getcwd into a
     * buffer); one that does not fit stays relative. */
    if (nm_opt.stats_file && nm_opt.stats_file[0] != '/' &&
        getcwd(stats_file_pattern, sizeof stats_file_pattern - 1)) {
        size_t cwd = strlen(stats_file_pattern), len = strlen(nm_opt.stats_file);
        if (cwd + 1 + len < sizeof stats_file_pattern) {
            stats_file_pattern[cwd] = '/';
            memcpy(stats_file_pattern + cwd + 1, nm_opt.stats_file, len + 1);
        } else {
            stats_file_pattern[0] = '\0';
        }
    }
    struct stat st;
    if (fstat(2, &st) != 0) return;
    stats_dev = st.st_dev;
    stats_ino = st.st_ino;
    stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
}

/* NUMAMALLOC_VERBOSE: what this process runs with, as it was applied (not
 * as it was asked): the library and its version, the topology, the
 * placement, huge pages, purging and the error rule, on two lines. */
static void print_configuration(void)
{
    static const char *const hugepages[] = {
        [NM_HUGEPAGES_OFF] = "off", [NM_HUGEPAGES_THP] = "transparent", [NM_HUGEPAGES_HUGETLB] = "hugetlb",
    };
    Dl_info self;
    nm_line l = { .len = 0 };
    nm_line_str(&l, "numamalloc: version " NUMAMALLOC_VERSION_STRING);
    if (dladdr((void *)print_configuration, &self) && self.dli_fname && self.dli_fname[0]) {
        nm_line_str(&l, " from ");
        nm_line_str(&l, self.dli_fname);
    }
    nm_line_str(&l, ", ");
    nm_line_u64(&l, (uint64_t)nm_topo.node_count);
    nm_line_str(&l, nm_topo.node_count == 1 ? " node" : " nodes");
    nm_line_str(&l, nm_topo.fallback ? " (sysfs unreadable: single-node fallback)" : "");
    nm_line_str(&l, nm_proc.bind_segments ? ", segments bound to their node"
                                          : ", segments not bound (one node or process policy)");
    if (nm_topo.mems_limited) {
        const char *sep = ", cpuset allows the memory of nodes ";
        for (int i = 0; i < nm_topo.node_count; i++) {
            if (!nm_topology_usable(&nm_topo, i)) continue;
            nm_line_str(&l, sep);
            nm_line_u64(&l, (uint64_t)nm_topo.node_id[i]);
            sep = ",";
        }
    }
    nm_line_str(&l, "\n");
    nm_line_write(&l, 2);
    nm_line_str(&l, "numamalloc: policy ");
    if (nm_proc.policy_arena) nm_line_value(&l, nm_opt.policy);
    else nm_line_str(&l, "local (first touch)");
    if (nm_opt.interleave_above && nm_topo.node_count > 1) {
        nm_line_str(&l, ", blocks from ");
        nm_line_size(&l, nm_opt.interleave_above);
        nm_line_str(&l, " interleaved");
    }
    nm_line_str(&l, ", huge pages ");
    nm_line_str(&l, hugepages[nm_opt.hugepages]);
    nm_line_str(&l, ", purge delay ");
    nm_line_u64(&l, nm_opt.purge_delay_ms);
    nm_line_str(&l, nm_opt.purge_thread ? " ms (a background thread once threaded)" : " ms (no background thread)");
    nm_line_str(&l, ", cache ");
    nm_line_size(&l, nm_opt.cache_bytes);
    nm_line_str(&l, " per node, secure mode ");
    nm_line_str(&l, nm_proc.secure ? "on" : "off");
    if (atomic_load(&nm_proc.sample_alloc)) {
        nm_line_str(&l, ", heap profiler on (a sample per ");
        nm_line_size(&l, nm_opt.prof_sample > 1 ? nm_opt.prof_sample : 1);
        nm_line_str(&l, ", to ");
        nm_line_value(&l, nm_opt.prof_file);
        nm_line_str(&l, ")");
    }
    nm_line_str(&l, ", on error ");
    nm_line_str(&l, nm_opt.on_error == NM_ON_ERROR_WARN ? "warn" : "abort");
    if (nm_opt.stats_interval_ms) {
        nm_line_str(&l, ", statistics every ");
        nm_line_u64(&l, nm_opt.stats_interval_ms);
        nm_line_str(&l, " ms");
    }
    nm_line_str(&l, "\n");
    nm_line_write(&l, 2);
}

/* pthread_atfork is a stub of libc_nonshared.a linked into the library,
 * which calls glibc's __register_atfork with the library's handle: called
 * here directly where glibc has it, so that the stub's code (placed after
 * the library's own) is not run (docs/design.md, "Code layout"). */
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void),
                             void *dso_handle) __attribute__((weak));
extern void *__dso_handle __attribute__((weak, visibility("hidden")));

/* Where the functions programs run end: placed last among them
 * (src/hot.list), for tests/preload/code_footprint. */
__attribute__((used, noinline)) static void nm_hot_code_end(void) { __asm__ volatile(""); }

__attribute__((constructor)) static void numamalloc_start(void)
{
    nm_heap_init();
    if (__register_atfork && &__dso_handle)
        (void)__register_atfork(before_fork, after_fork_in_parent, after_fork_in_child, __dso_handle);
    else
        (void)pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
    nm_purge_init();
    nm_prof_init();
    if (nm_opt.stats_at_exit || nm_opt.stats_interval_ms) keep_stderr_for_stats();
    if (nm_opt.stats_at_exit) atexit(print_stats_at_exit);
    if (nm_opt.verbose) print_configuration();
    stats_timer_start();
}
