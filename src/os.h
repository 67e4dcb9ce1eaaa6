/*
 * os.h — the operating-system layer: memory mappings, NUMA policy syscalls,
 * huge pages, clocks, files and error output.  Calls libc and the kernel only.
 */
#ifndef NM_OS_H
#define NM_OS_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NM_KiB ((size_t)1024)
#define NM_MiB (1024 * NM_KiB)
#define NM_GiB (1024 * NM_MiB)

#define NM_OS_PAGE ((size_t)4096)
#define NM_HUGE_PAGE (2 * NM_MiB)

#if defined(__GNUC__)
#define nm_likely(x) __builtin_expect(!!(x), 1)
#define nm_unlikely(x) __builtin_expect(!!(x), 0)
#define nm_noinline __attribute__((noinline))
#define nm_always_inline inline __attribute__((always_inline))
#define nm_cold __attribute__((cold, noinline))
#define nm_export __attribute__((visibility("default")))
#else
#define nm_likely(x) (x)
#define nm_unlikely(x) (x)
#define nm_noinline
#define nm_always_inline inline
#define nm_cold
#define nm_export
#endif

/* Set bits of `x`.  Plain arithmetic, not __builtin_popcountll: without
 * -mpopcnt that is a call to libgcc's __popcountdi2, whose code the link
 * puts after the library's own, away from the functions programs run
 * (docs/design.md, "Code layout"). */
static inline unsigned nm_popcount64(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* Built with ThreadSanitizer (gcc defines the first, clang has the second):
 * it does not see what membarrier orders, so code that relies on it takes
 * a lock there instead. */
#if defined(__SANITIZE_THREAD__)
#define NM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NM_TSAN 1
#endif
#endif
#ifndef NM_TSAN
#define NM_TSAN 0
#endif

static inline size_t nm_align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
static inline size_t nm_align_down(size_t x, size_t a) { return x & ~(a - 1); }
static inline bool nm_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* Kernel memory-policy modes (linux/mempolicy.h), defined here so the
 * library needs no kernel headers beyond libc's. */
enum {
    NM_MPOL_DEFAULT = 0,
    NM_MPOL_PREFERRED = 1,
    NM_MPOL_BIND = 2,
    NM_MPOL_INTERLEAVE = 3,
    NM_MPOL_LOCAL = 4,
    NM_MPOL_PREFERRED_MANY = 5,
    NM_MPOL_WEIGHTED_INTERLEAVE = 6,
};
#define NM_MPOL_MF_STRICT (1u << 0)
#define NM_MPOL_MF_MOVE (1u << 1)
#define NM_MPOL_F_MEMS_ALLOWED (1u << 2)  /* get_mempolicy: the cpuset's nodes */

/* Node masks: one bit per kernel node id, up to NM_MASK_BITS ids. */
#define NM_MASK_BITS 1024
#define NM_MASK_WORDS (NM_MASK_BITS / 64)
typedef struct { unsigned long bits[NM_MASK_WORDS]; } nm_nodemask;

/* Memory.  Reserve returns `size` bytes of zeroed, readable and writable
 * anonymous memory aligned to `align` (a power of two, at least a page), or
 * NULL with errno ENOMEM.  Nothing is touched, so no physical page exists
 * until first use: callers bind the range to a node before touching it. */
void *nm_os_reserve(size_t size, size_t align, bool hugetlb);
/* Whether the kernel could ever commit a private writable mapping of `size`
 * bytes, as its overcommit accounting decides (mm/overcommit-accounting,
 * vm.overcommit_memory, read once from /proc/sys/vm/overcommit_memory):
 * mode 1 (always) yes; mode 0 (heuristic) only up to total RAM + swap;
 * mode 2 (strict) only up to CommitLimit (/proc/meminfo).  Mappings with
 * MAP_NORESERVE escape the check in mode 0, so nm_os_reserve makes it
 * itself: a request the kernel would refuse fails at once with ENOMEM
 * instead of an OOM kill later.  Reads files or calls sysinfo only for
 * sizes beyond what was last found possible. */
bool nm_os_commit_possible(size_t size);
/* Whether the kernel charges every private writable mapping in full
 * against CommitLimit, MAP_NORESERVE or not (vm.overcommit_memory 2):
 * then nm_os_reserve_space reserves PROT_NONE (below). */
bool nm_os_strict_commit(void);
/* Committing on use.  Under strict accounting (vm.overcommit_memory 2)
 * every writable byte of a private mapping is charged against CommitLimit
 * whether it is ever touched or not (and charged again in a fork child):
 * nm_os_reserve_space then reserves address space only (PROT_NONE, not
 * charged), and nm_os_commit makes a part of it usable (readable and
 * writable, charged; -1 with ENOMEM past the limit).  nm_os_uncommit gives
 * a part's pages and charge back (the range is mapped anew, PROT_NONE) and
 * puts back what `advice` says the range had; it reads as zero once
 * committed again.  In modes 0 and 1 nm_os_reserve_space is nm_os_reserve,
 * nm_os_commit does nothing and nm_os_uncommit is nm_os_decommit: not one
 * syscall more.  Page-aligned ranges.  nm_os_uncommit returns 1 when the
 * range is now reserved only (strict accounting), 0 when only its pages
 * went (it stays writable), -1 (errno set) when nothing was done. */
struct nm_os_advice {
    int bind_mode;              /* NM_MPOL_* of the range, or -1: no binding */
    const nm_nodemask *nodes;   /* its nodes */
    bool thp;                   /* MADV_HUGEPAGE, else MADV_NOHUGEPAGE */
};
void *nm_os_reserve_space(size_t size, size_t align);
/* Strict accounting only: map a range that holds only zeroes (never
 * written yet) anew read-only, so that it reads as zero and is not charged
 * until nm_os_commit makes parts of it writable.  Returns whether it did
 * (false in the other modes, or when the kernel refused: the range stays
 * as it was). */
bool nm_os_zero_readonly(void *p, size_t size);
int nm_os_commit(void *p, size_t size);
int nm_os_uncommit(void *p, size_t size, const struct nm_os_advice *advice);
void nm_os_release(void *p, size_t size);
/* Give the physical pages of a range back; the range stays mapped and reads
 * as zero afterwards.  Returns 0 or -1 (errno set). */
int nm_os_decommit(void *p, size_t size);
/* Fault in [p, p + len) for writing from the calling thread, as the range's
 * policy says.  Returns 0 or an errno value (ENOMEM when a hugetlb pool has
 * too few pages).  MADV_POPULATE_WRITE (Linux 5.14+); before that a write
 * of zero to each page (the range must be new, so it reads as zero). */
int nm_os_populate(void *p, size_t len);
/* The same with MADV_POPULATE_WRITE only, never by writing: for hugetlb
 * ranges, where a write the pool cannot back raises SIGBUS.  ENOSYS where
 * the kernel lacks it (before 5.14). */
int nm_os_populate_only(void *p, size_t len);
/* Ask for transparent huge pages on a 2 MiB-aligned range, or ask for none
 * (no error if the kernel has none). */
void nm_os_use_thp(void *p, size_t size);
void nm_os_no_thp(void *p, size_t size);
/* Make [p, p + size) a guard (no access: a touch is a SIGSEGV at the
 * faulting address) or ordinary memory again. */
void nm_os_guard(void *p, size_t size);
void nm_os_unguard(void *p, size_t size);
/* Name an anonymous range so it shows as [anon:NAME] in /proc/PID/maps
 * (Linux 5.17+, silently ignored before). */
void nm_os_name_range(void *p, size_t size, const char *name);
/* Grow or shrink a mapping: in place only when `new_addr` is NULL and
 * `may_move` is false, else moved.  Returns the new address or NULL. */
void *nm_os_remap(void *old, size_t old_size, size_t new_size, void *new_addr);
/* Move the pages of [old, old + size) to new_addr (replacing what was
 * mapped there) and leave the old range mapped, empty, reading as zero,
 * with its advice and policy: MREMAP_DONTUNMAP (Linux 5.7+).  The range
 * must lie in one mapping.  Returns 0, or -1 (errno set: EINVAL before
 * 5.7) with nothing moved (but [new_addr, new_addr + size) may have been
 * unmapped). */
int nm_os_move_range(void *old, size_t size, void *new_addr);

/* NUMA policy syscalls (raw, no libnuma).  `maxnode` follows the kernel
 * convention: the number of bits in the mask plus one. */
long nm_os_mbind(void *p, size_t len, int mode, const nm_nodemask *mask, unsigned flags);
long nm_os_get_mempolicy(int *mode, nm_nodemask *mask, void *addr, unsigned flags);
long nm_os_set_mempolicy(int mode, const nm_nodemask *mask);
long nm_os_move_pages(size_t count, void **pages, const int *nodes, int *status, int flags);
/* Which of `count` pages from `p` (page-aligned) map the kernel's shared
 * zero page or huge zero page: pages only ever read, which hold no memory
 * of their own.  Sets zero[i] for each; `pagemap` is an open
 * /proc/self/pagemap.  Asks the PAGEMAP_SCAN ioctl (Linux 6.7+) for the
 * PAGE_IS_PFNZERO category.  Returns 0, or -1 with errno when the kernel
 * cannot say (ENOTTY or EINVAL before 6.7; zero[] is then untouched). */
int nm_os_zero_pages(int pagemap, const void *p, size_t count, bool *zero);
/* Bind a range to one kernel node id with `mode` (NM_MPOL_PREFERRED or
 * NM_MPOL_BIND).  Returns 0 or -1 (errno set). */
int nm_os_bind_node(void *p, size_t len, int node_id, int mode);

static inline void nm_mask_set(nm_nodemask *m, int id) { m->bits[id / 64] |= 1ul << (id % 64); }
static inline bool nm_mask_test(const nm_nodemask *m, int id)
{
    return id >= 0 && id < NM_MASK_BITS && (m->bits[id / 64] >> (id % 64)) & 1;
}

/* A try-flag: win `flag` with a bounded number of tries (its holder keeps
 * it for a few instructions), else give up.  Nobody ever waits for a holder
 * that a signal or a fork may have stopped; a fork child clears the flags.
 * Used by the arena stacks (segment.c) and the chunks (chunk.c); the flags
 * waited for with nm_flag_wait (below) are the exceptions their comments
 * name. */
static inline bool nm_flag_try(_Atomic bool *flag)
{
    for (int tries = 0; tries < 64; tries++) {
        if (!atomic_exchange_explicit(flag, true, memory_order_acquire)) return true;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
    return false;
}

/* Win `flag`, waiting as long as its holder keeps it: rounds of
 * nm_flag_try with a sched_yield between them.  Only for the flags whose
 * own comment says they are waited for (the statistics' turns, the heap
 * profiler's lock), and never from a signal handler that may have
 * interrupted the holder. */
static inline void nm_flag_wait(_Atomic bool *flag)
{
    while (!nm_flag_try(flag)) sched_yield();
}

static inline void nm_flag_release(_Atomic bool *flag)
{
    atomic_store_explicit(flag, false, memory_order_release);
}

/* Time in milliseconds from a coarse monotonic clock (vDSO, no syscall). */
uint64_t nm_os_now_ms(void);

/* Read a whole small file into `buf` (NUL-terminated).  Returns the number
 * of bytes read or -1.  Uses open/read only (no stdio, no malloc). */
ssize_t nm_os_read_file(const char *path, char *buf, size_t cap);
/* From one read of /proc/self/stat: the process's state letter (field 3:
 * 'Z' once its first thread has ended with pthread_exit while others run)
 * and its number of threads (field 20; 0 if the line is cut short); either
 * pointer may be NULL.  False, nothing set, when /proc cannot say.  Keeps
 * errno. */
bool nm_os_proc_stat(char *state, int *threads);
/* The number of threads of this process (nm_os_proc_stat), or 0 if unknown. */
int nm_os_thread_count(void);
/* Whether the process has never created a thread, as the C library knows
 * without a system call (glibc 2.32 and later: __libc_single_threaded);
 * false when the library does not say. */
bool nm_os_never_threaded(void);
/* Start a detached thread of the library running fn(arg), with every
 * signal blocked (it takes none of the program's signals) and a stack of
 * `stack` bytes given explicitly (so that pthread_create reads no default
 * attributes, whose lock the caller of the malloc that starts it may
 * hold: pthread_getattr_default_np allocates under it).  Keeps errno.
 * False when the thread could not start. */
bool nm_os_start_thread(void *(*fn)(void *), void *arg, size_t stack);
/* open(path, O_RDONLY | O_CLOEXEC) and close, for callers above this layer. */
int nm_os_open_read(const char *path);
void nm_os_close(int fd);

/* Output without stdio or malloc: build a line in a fixed buffer, then
 * write it with one write(2).  Text beyond the buffer is cut. */
typedef struct {
    char data[512];
    size_t len;
} nm_line;
void nm_line_str(nm_line *l, const char *s);
/* Text from outside (an environment value): at most 64 characters, the
 * rest cut to "...", control characters (a newline) as '?', so that a
 * message quoting it stays one short line. */
void nm_line_value(nm_line *l, const char *s);
void nm_line_u64(nm_line *l, uint64_t v);
void nm_line_i64(nm_line *l, int64_t v);
void nm_line_hex(nm_line *l, uintptr_t v);            /* 0x-prefixed */
void nm_line_pad(nm_line *l, size_t column);          /* spaces up to column */
void nm_line_size(nm_line *l, uint64_t bytes);        /* "12.3 MiB" */
void nm_line_write(nm_line *l, int fd);               /* write and reset */

/* Write a one-line message "numamalloc: <msg>\n" to stderr. */
void nm_os_warn(const char *msg);

/* Wake one thread waiting on `word` / wait while it holds `expected`
 * (futex; a wait may return early: callers look again). */
void nm_os_futex_wake(_Atomic uint32_t *word);
void nm_os_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ms);

/* A memory barrier on every running thread of the process (membarrier(2),
 * private expedited, Linux 4.14+, registered on first use and again in a
 * fork child).  Lets one thread pair plain stores and loads of another
 * with its own: after it returns, what every other thread stored before
 * is visible, and what they load after sees our stores.  False when the
 * kernel (or a seccomp filter) refuses it: the caller must not rely on it.
 * (The global command is not used: it waits for an RCU grace period,
 * milliseconds.) */
bool nm_os_membarrier(void);

#endif
