/*
 * os.c — the operating-system layer.
 *
 * Everything numamalloc asks of the kernel goes through here: anonymous
 * mappings (reserve, decommit, release, remap), the NUMA policy syscalls
 * (mbind, get/set_mempolicy, move_pages, called raw so that no libnuma is
 * needed), transparent and hugetlb huge pages, a coarse clock, small file
 * reads, unbuffered output, and starting the library's own threads.  This layer calls libc and the kernel only,
 * never malloc, never stdio.  Failures are returned (NULL or -1 with errno),
 * never fatal.
 */
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

/* ---- mappings ---------------------------------------------------------- */

static void *map_anon(void *hint, size_t size, bool hugetlb, int prot)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    if (hugetlb) flags |= MAP_HUGETLB | MAP_HUGE_2MB;
    void *p = mmap(hint, size, prot, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* ---- overcommit ---------------------------------------------------------- */

/* vm.overcommit_memory, read once (-1: not yet; 0 when unreadable, the
 * kernel's default). */
static _Atomic int overcommit_mode = -1;
/* Sizes up to this are known to be possible (0: nothing known yet). */
static _Atomic size_t commit_known_ok;

static int overcommit(void)
{
    int mode = atomic_load_explicit(&overcommit_mode, memory_order_relaxed);
    if (nm_likely(mode >= 0)) return mode;
    char buf[16];
    int saved = errno;
    mode = nm_os_read_file("/proc/sys/vm/overcommit_memory", buf, sizeof buf) > 0 &&
           buf[0] >= '0' && buf[0] <= '2' ? buf[0] - '0' : 0;
    errno = saved;
    atomic_store_explicit(&overcommit_mode, mode, memory_order_relaxed);
    return mode;
}

/* The value in bytes of "Name:   123 kB" in /proc/meminfo, or 0. */
static uint64_t meminfo_bytes(const char *name)
{
    char buf[8192];
    if (nm_os_read_file("/proc/meminfo", buf, sizeof buf) <= 0) return 0;
    size_t len = strlen(name);
    for (char *line = buf; *line;) {
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            char *p = line + len + 1;
            while (*p == ' ') p++;
            uint64_t kb = 0;
            while (*p >= '0' && *p <= '9') kb = kb * 10 + (uint64_t)(*p++ - '0');
            return kb * 1024;
        }
        char *nl = strchr(line, '\n');
        if (!nl) break;
        line = nl + 1;
    }
    return 0;
}

/* The most the kernel could ever commit to one mapping; UINT64_MAX when it
 * does not say no (mode 1, or a figure it cannot read). */
static uint64_t commit_ceiling(void)
{
    int saved = errno;
    uint64_t ceiling = UINT64_MAX;
    switch (overcommit()) {
    case 0: {
        /* __vm_enough_memory: pages > totalram_pages() + total_swap_pages. */
        struct sysinfo si;
        if (sysinfo(&si) == 0 && si.totalram > 0)
            ceiling = ((uint64_t)si.totalram + si.totalswap) * (si.mem_unit ? si.mem_unit : 1);
        break;
    }
    case 2: {
        uint64_t limit = meminfo_bytes("CommitLimit");
        if (limit > 0) ceiling = limit;
        break;
    }
    default:
        break;
    }
    errno = saved;
    return ceiling;
}

bool nm_os_commit_possible(size_t size)
{
    if (nm_likely(size <= atomic_load_explicit(&commit_known_ok, memory_order_relaxed))) return true;
    uint64_t ceiling = commit_ceiling();
    if (size > ceiling) return false;
    /* Remember the ceiling (it may grow: swapon, memory hot-plug; a refusal
     * asks again). */
    atomic_store_explicit(&commit_known_ok, ceiling > SIZE_MAX ? SIZE_MAX : (size_t)ceiling,
                          memory_order_relaxed);
    return true;
}

bool nm_os_strict_commit(void)
{
    return overcommit() == 2;
}

/* MAP_NORESERVE skips the kernel's heuristic check (mode 0), for the
 * mapping and for its growth with mremap: it is made here, so that what the
 * kernel would refuse fails now, not as an OOM kill later.  In mode 2 the
 * kernel charges and checks every mapping itself. */
static bool guess_refuses(size_t size)
{
    return !nm_os_commit_possible(size) && overcommit() == 0;
}

/* ---- reservations -------------------------------------------------------- */

/* Where the next aligned reservation is tried first.  Asking the kernel for
 * an address that is already aligned makes the common case one mmap; when
 * the hint is taken we fall back to over-reserving and trimming. */
static _Atomic uintptr_t next_hint = (uintptr_t)8 << 40; /* 8 TiB */

static void *reserve(size_t size, size_t align, bool hugetlb, int prot)
{
    if (align < NM_OS_PAGE) align = NM_OS_PAGE;
    if (hugetlb && align < NM_HUGE_PAGE) align = NM_HUGE_PAGE;
    size = nm_align_up(size, hugetlb ? NM_HUGE_PAGE : NM_OS_PAGE);
    if (size == 0 || size > ((size_t)1 << 46) || align > ((size_t)1 << 40)) {
        errno = ENOMEM;
        return NULL;
    }
    if (nm_unlikely(guess_refuses(size))) {
        errno = ENOMEM;
        return NULL;
    }

    uintptr_t hint = atomic_fetch_add(&next_hint, nm_align_up(size, align) + align);
    hint = nm_align_up(hint, align);
    if (hint < ((uintptr_t)1 << 46)) {
        void *p = map_anon((void *)hint, size, hugetlb, prot);
        if (p && ((uintptr_t)p & (align - 1)) == 0) return p;
        if (p) munmap(p, size);
        if (!p && hugetlb) return NULL;
    }

    /* Over-reserve by the alignment and trim both ends. */
    size_t span = size + align;
    if (span < size) { errno = ENOMEM; return NULL; }
    char *raw = map_anon(NULL, span, hugetlb, prot);
    if (!raw) { errno = ENOMEM; return NULL; }
    char *start = (char *)nm_align_up((uintptr_t)raw, align);
    size_t head = (size_t)(start - raw);
    size_t tail = span - head - size;
    if (head) munmap(raw, head);
    if (tail) munmap(start + size, tail);
    return start;
}

void *nm_os_reserve(size_t size, size_t align, bool hugetlb)
{
    return reserve(size, align, hugetlb, PROT_READ | PROT_WRITE);
}

/* ---- committing on use ---------------------------------------------------------
 *
 * The one rule for strict accounting (vm.overcommit_memory 2), where the
 * kernel charges every private writable mapping in full against
 * CommitLimit, MAP_NORESERVE or not, and charges it again in a fork child:
 * address space is reserved PROT_NONE (not charged) and made writable as
 * it is used (mprotect charges it then), as glibc grows its arenas.
 * madvise(MADV_DONTNEED) gives the pages back but not the charge, nor does
 * mprotect(PROT_NONE) of a range once written: a range's charge goes back
 * only when it is mapped anew (what glibc's shrink_heap does).  In the
 * other modes a reservation is writable from the start, committing is
 * nothing and uncommitting is nm_os_decommit: no syscall more. */

void *nm_os_reserve_space(size_t size, size_t align)
{
    return reserve(size, align, false, overcommit() == 2 ? PROT_NONE : PROT_READ | PROT_WRITE);
}

int nm_os_commit(void *p, size_t size)
{
    if (nm_likely(overcommit() != 2) || size == 0) return 0;
    if (mprotect(p, size, PROT_READ | PROT_WRITE) == 0) return 0;
    errno = ENOMEM;
    return -1;
}

int nm_os_uncommit(void *p, size_t size, const struct nm_os_advice *advice)
{
    if (nm_likely(overcommit() != 2)) return nm_os_decommit(p, size);
    if (size == 0) return 1;
    void *q = mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                   -1, 0);
    if (q == MAP_FAILED) return -1;
    /* What the range had: its binding, its huge-page advice, its name. */
    if (advice->bind_mode >= 0) (void)nm_os_mbind(p, size, advice->bind_mode, advice->nodes, 0);
    (void)madvise(p, size, advice->thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    nm_os_name_range(p, size, "numamalloc");
    return 1;
}

bool nm_os_zero_readonly(void *p, size_t size)
{
    if (nm_likely(overcommit() != 2)) return false;
    return mmap(p, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
                0) != MAP_FAILED;
}

void nm_os_release(void *p, size_t size)
{
    if (p) munmap(p, size);
}

int nm_os_decommit(void *p, size_t size)
{
    return madvise(p, size, MADV_DONTNEED);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int nm_os_populate_only(void *p, size_t len)
{
    if (len == 0) return 0;
    if (madvise(p, len, MADV_POPULATE_WRITE) == 0) return 0;
    if (errno == ENOMEM || errno == EFAULT) return ENOMEM;   /* the pool is short */
    return errno == EINVAL ? ENOSYS : errno;
}

int nm_os_populate(void *p, size_t len)
{
    if (len == 0) return 0;
    if (madvise(p, len, MADV_POPULATE_WRITE) == 0) return 0;
    /* A hugetlb pool without pages: EFAULT ("would SIGBUS"). */
    if (errno == ENOMEM || errno == EFAULT) return ENOMEM;
    if (errno != EINVAL) return errno;
    for (size_t off = 0; off < len; off += NM_OS_PAGE) ((volatile char *)p)[off] = 0;
    return 0;
}

void nm_os_use_thp(void *p, size_t size)
{
    (void)madvise(p, size, MADV_HUGEPAGE);
}

void nm_os_no_thp(void *p, size_t size)
{
    (void)madvise(p, size, MADV_NOHUGEPAGE);
}

void nm_os_guard(void *p, size_t size)
{
    (void)mprotect(p, size, PROT_NONE);
}

void nm_os_unguard(void *p, size_t size)
{
    (void)mprotect(p, size, PROT_READ | PROT_WRITE);
}

/* Kernels without CONFIG_ANON_VMA_NAME refuse every naming call with
 * EINVAL: after the first refusal, no more calls. */
static _Atomic bool vma_names_refused;

void nm_os_name_range(void *p, size_t size, const char *name)
{
    if (atomic_load_explicit(&vma_names_refused, memory_order_relaxed)) return;
    int saved = errno;
    if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, size, (unsigned long)name) != 0 &&
        errno == EINVAL)
        atomic_store_explicit(&vma_names_refused, true, memory_order_relaxed);
    errno = saved;
}

void *nm_os_remap(void *old, size_t old_size, size_t new_size, void *new_addr)
{
    if (new_size > old_size && nm_unlikely(guess_refuses(new_size))) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = new_addr
        ? mremap(old, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, new_addr)
        : mremap(old, old_size, new_size, 0);
    return p == MAP_FAILED ? NULL : p;
}

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

int nm_os_move_range(void *old, size_t size, void *new_addr)
{
    void *p = mremap(old, size, size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, new_addr);
    return p == MAP_FAILED ? -1 : 0;
}

/* ---- NUMA policy syscalls ---------------------------------------------- */

long nm_os_mbind(void *p, size_t len, int mode, const nm_nodemask *mask, unsigned flags)
{
    return syscall(SYS_mbind, p, len, mode, mask ? mask->bits : NULL,
                   mask ? (unsigned long)NM_MASK_BITS + 1 : 0, flags);
}

long nm_os_get_mempolicy(int *mode, nm_nodemask *mask, void *addr, unsigned flags)
{
    return syscall(SYS_get_mempolicy, mode, mask ? mask->bits : NULL,
                   mask ? (unsigned long)NM_MASK_BITS + 1 : 0, addr, flags);
}

long nm_os_set_mempolicy(int mode, const nm_nodemask *mask)
{
    return syscall(SYS_set_mempolicy, mode, mask ? mask->bits : NULL,
                   mask ? (unsigned long)NM_MASK_BITS + 1 : 0);
}

long nm_os_move_pages(size_t count, void **pages, const int *nodes, int *status, int flags)
{
    return syscall(SYS_move_pages, 0, count, pages, nodes, status, flags);
}

int nm_os_bind_node(void *p, size_t len, int node_id, int mode)
{
    nm_nodemask mask;
    memset(&mask, 0, sizeof mask);
    if (node_id < 0 || node_id >= NM_MASK_BITS) { errno = EINVAL; return -1; }
    nm_mask_set(&mask, node_id);
    return nm_os_mbind(p, len, mode, &mask, 0) == 0 ? 0 : -1;
}

/* ---- time and files ------------------------------------------------------ */

uint64_t nm_os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

ssize_t nm_os_read_file(const char *path, char *buf, size_t cap)
{
    if (cap == 0) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { close(fd); return -1; }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

int nm_os_open_read(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC);
}

void nm_os_close(int fd)
{
    if (fd >= 0) close(fd);
}

/* ---- zero-page mappings -------------------------------------------------- */

/* The PAGEMAP_SCAN ioctl of /proc/PID/pagemap (linux/fs.h, Linux 6.7+),
 * defined here because libc's kernel headers may predate it.  The kernel
 * fills `vec` with runs of pages [start, end) whose categories match the
 * masks, up to vec_len runs, and says in walk_end where it stopped. */
struct nm_page_region {
    uint64_t start, end, categories;
};
struct nm_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define NM_PAGEMAP_SCAN _IOWR('f', 16, struct nm_pm_scan_arg)
#define NM_PAGE_IS_PFNZERO (1u << 5)
#define NM_ZERO_RUNS 32     /* runs of zero pages asked for per ioctl */

int nm_os_zero_pages(int pagemap, const void *p, size_t count, bool *zero)
{
    uintptr_t start = (uintptr_t)p, end = start + count * NM_OS_PAGE;
    for (uintptr_t at = start; at < end;) {
        struct nm_page_region runs[NM_ZERO_RUNS];
        struct nm_pm_scan_arg arg = {
            .size = sizeof arg,
            .start = at,
            .end = end,
            .vec = (uintptr_t)runs,
            .vec_len = NM_ZERO_RUNS,
            .category_mask = NM_PAGE_IS_PFNZERO,
            .return_mask = NM_PAGE_IS_PFNZERO,
        };
        long found = ioctl(pagemap, NM_PAGEMAP_SCAN, &arg);
        if (found < 0) return -1;
        for (long i = 0; i < found && i < NM_ZERO_RUNS; i++) {
            uintptr_t from = runs[i].start < start ? start : runs[i].start;
            uintptr_t to = runs[i].end > end ? end : runs[i].end;
            for (uintptr_t page = from; page < to; page += NM_OS_PAGE)
                zero[(page - start) / NM_OS_PAGE] = true;
        }
        /* walk_end: where the walk stopped (end, unless `runs` filled up). */
        if (arg.walk_end <= at) { errno = EIO; return -1; }
        at = arg.walk_end;
    }
    return 0;
}

/* ---- output -------------------------------------------------------------- */

void nm_line_str(nm_line *l, const char *s)
{
    while (*s && l->len < sizeof l->data) l->data[l->len++] = *s++;
}

void nm_line_value(nm_line *l, const char *s)
{
    enum { SHOWN = 64 };
    size_t n = 0;
    for (; s[n] && n < SHOWN && l->len < sizeof l->data; n++)
        l->data[l->len++] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    if (s[n]) nm_line_str(l, "...");
}

void nm_line_u64(nm_line *l, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n > 0 && l->len < sizeof l->data) l->data[l->len++] = tmp[--n];
}

void nm_line_i64(nm_line *l, int64_t v)
{
    if (v < 0) { nm_line_str(l, "-"); nm_line_u64(l, (uint64_t)0 - (uint64_t)v); }
    else nm_line_u64(l, (uint64_t)v);
}

void nm_line_hex(nm_line *l, uintptr_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    int n = 0;
    do { tmp[n++] = digits[v & 15]; v >>= 4; } while (v);
    nm_line_str(l, "0x");
    while (n > 0 && l->len < sizeof l->data) l->data[l->len++] = tmp[--n];
}

void nm_line_pad(nm_line *l, size_t column)
{
    while (l->len < column && l->len < sizeof l->data) l->data[l->len++] = ' ';
}

void nm_line_size(nm_line *l, uint64_t bytes)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;
    uint64_t unit = 1;
    while (bytes / unit >= 1024 && u < 4) { unit *= 1024; u++; }
    if (u == 0) { nm_line_u64(l, bytes); nm_line_str(l, " B"); return; }
    uint64_t scaled10 = bytes / (unit / 1024) * 10 / 1024;   /* tenths of a unit */
    nm_line_u64(l, scaled10 / 10);
    nm_line_str(l, ".");
    nm_line_u64(l, scaled10 % 10);
    nm_line_str(l, " ");
    nm_line_str(l, units[u]);
}

void nm_line_write(nm_line *l, int fd)
{
    int saved = errno;
    size_t off = 0;
    while (off < l->len) {
        ssize_t n = write(fd, l->data + off, l->len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += (size_t)n;
    }
    l->len = 0;
    errno = saved;
}

void nm_os_warn(const char *msg)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, "numamalloc: ");
    nm_line_str(&l, msg);
    nm_line_str(&l, "\n");
    nm_line_write(&l, 2);
}

/* ---- futex ------------------------------------------------------------------ */

void nm_os_futex_wake(_Atomic uint32_t *word)
{
    int saved = errno;
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

void nm_os_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ms)
{
    int saved = errno;
    struct timespec ts = { .tv_sec = (time_t)(timeout_ms / 1000),
                           .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected,
                  timeout_ms ? &ts : NULL, NULL, 0);
    errno = saved;
}

/* ---- membarrier ------------------------------------------------------------- */

bool nm_os_membarrier(void)
{
    int saved = errno;
    bool done = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
    /* Not registered yet (or again: a fork child is not). */
    if (!done && errno == EPERM &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
        done = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
    errno = saved;
    return done;
}

/* ---- threads ------------------------------------------------------------------ */

/* glibc clears it when the process creates its first thread, and never
 * sets it again; weak, for a C library without it. */
extern char __libc_single_threaded __attribute__((weak));

bool nm_os_never_threaded(void)
{
    return &__libc_single_threaded != NULL && __libc_single_threaded;
}

bool nm_os_proc_stat(char *state, int *threads)
{
    char buf[1024];
    int saved = errno;   /* an allocation path asks: a failed open must not show */
    ssize_t n = nm_os_read_file("/proc/self/stat", buf, sizeof buf - 1);
    errno = saved;
    if (n <= 0) return false;
    buf[n] = 0;
    /* The command name (field 2) may hold spaces and parentheses: the
     * fields are counted from the last ')'.  State: field 3. */
    char *p = NULL;
    for (char *q = buf; *q; q++)
        if (*q == ')') p = q;
    if (!p || p[1] != ' ' || !p[2]) return false;
    if (state) *state = p[2];
    if (threads) {
        /* Field 20. */
        int field = 2;
        for (; *p && field < 20; p++)
            if (*p == ' ') field++;
        int count = 0;
        for (; *p >= '0' && *p <= '9'; p++) count = count * 10 + (*p - '0');
        *threads = count;
    }
    return true;
}

int nm_os_thread_count(void)
{
    int count;
    return nm_os_proc_stat(NULL, &count) ? count : 0;
}

bool nm_os_start_thread(void *(*fn)(void *), void *arg, size_t stack)
{
    int saved = errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t thread;
    bool started = pthread_attr_init(&attr) == 0 &&
                   pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                   pthread_attr_setstacksize(&attr, stack) == 0 &&
                   pthread_create(&thread, &attr, fn, arg) == 0;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return started;
}
