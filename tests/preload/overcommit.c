/* overcommit.c — a request the kernel could never commit fails at once
 * with ENOMEM, as under glibc, instead of succeeding and ending in an OOM
 * kill at first use.  numamalloc reserves with MAP_NORESERVE, which skips
 * the kernel's heuristic check (vm.overcommit_memory 0); it makes the
 * check itself.
 *
 * The oracle is the kernel: a plain private writable mapping of 1000 GiB
 * without MAP_NORESERVE (what glibc's malloc makes) is tried first.  When
 * the kernel refuses it (mode 0 with RAM + swap below 1000 GiB, or mode 2),
 * malloc, calloc, realloc to it (the old block kept intact), realloc of
 * NULL, aligned_alloc, posix_memalign, memalign, nm_malloc_onnode and
 * nm_calloc_onnode of 1000 GiB must each give NULL with errno ENOMEM,
 * reserve nothing (VmSize unchanged), and the process must go on
 * allocating.  When the kernel grants it (mode 1, or a machine that big),
 * malloc(1000 GiB) must succeed too: numamalloc refuses no more than the
 * kernel does.  Under vm.overcommit_memory 2 (tests/vm/overcommit.sh),
 * malloc of 64 MiB more than CommitLimit must be refused the same way. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>

#include "../testutil.h"

#define GiB ((size_t)1 << 30)
#define HUGE_REQUEST (1000 * GiB)

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0;
    if (f) {
        if (fscanf(f, "%lu", &size) != 1) size = 0;
        fclose(f);
    }
    return (size_t)size * 4096;
}

/* NULL with ENOMEM, nothing reserved (VmSize within 64 MiB of before: the
 * test's own stdio and small blocks). */
static void expect_refused(const char *what, void *p, size_t before)
{
    int err = errno;
    CHECK(p == NULL, "%s: %p, not NULL", what, p);
    CHECK(err == ENOMEM, "%s: errno %d, not ENOMEM", what, err);
    size_t after = vm_size();
    CHECK(after < before + 64 * ((size_t)1 << 20), "%s: VmSize %zu -> %zu", what, before, after);
    free(p);
}

/* Small, medium and large blocks still come and are writable. */
static void still_works(const char *after)
{
    static const size_t sizes[] = { 16, 4000, 200000, 8 << 20, 64 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = malloc(sizes[i]);
        CHECK(p != NULL, "malloc(%zu) after %s", sizes[i], after);
        if (!p) continue;
        memset(p, 0x11, sizes[i]);
        free(p);
    }
}

int main(void)
{
    nm_test_require_numamalloc();
    char mode[8] = "?";
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    if (f) {
        if (!fgets(mode, sizeof mode, f)) strcpy(mode, "?");
        fclose(f);
        mode[strcspn(mode, "\n")] = 0;
    }
    struct sysinfo si;
    REQUIRE(sysinfo(&si) == 0);
    unsigned long long ram_swap =
        ((unsigned long long)si.totalram + si.totalswap) * (si.mem_unit ? si.mem_unit : 1);
    void *probe = mmap(NULL, HUGE_REQUEST, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool kernel_grants = probe != MAP_FAILED;
    if (kernel_grants) munmap(probe, HUGE_REQUEST);
    printf("vm.overcommit_memory %s, RAM + swap %.1f GiB: the kernel %s a 1000 GiB mapping\n", mode,
           (double)ram_swap / GiB, kernel_grants ? "grants" : "refuses");

    if (kernel_grants) {
        char *p = malloc(HUGE_REQUEST);
        CHECK(p != NULL, "malloc(1000 GiB) refused where the kernel grants it (errno %d)", errno);
        if (p) p[0] = 1, p[HUGE_REQUEST - 1] = 1;
        free(p);
        still_works("malloc(1000 GiB)");
        return nm_test_done();
    }

    size_t before = vm_size();
    errno = 0;
    expect_refused("malloc", malloc(HUGE_REQUEST), before);
    errno = 0;
    expect_refused("calloc(1, 1000 GiB)", calloc(1, HUGE_REQUEST), before);
    errno = 0;
    expect_refused("calloc(1000, 1 GiB)", calloc(1000, GiB), before);
    errno = 0;
    expect_refused("realloc(NULL)", realloc(NULL, HUGE_REQUEST), before);
    errno = 0;
    expect_refused("aligned_alloc(4096)", aligned_alloc(4096, HUGE_REQUEST), before);
    errno = 0;
    expect_refused("aligned_alloc(1 GiB)", aligned_alloc(GiB, HUGE_REQUEST), before);
    errno = 0;
    expect_refused("memalign(2 MiB)", memalign(2 << 20, HUGE_REQUEST), before);
    void *pm = (void *)1;
    int rc = posix_memalign(&pm, 64, HUGE_REQUEST);
    CHECK(rc == ENOMEM, "posix_memalign: %d, not ENOMEM", rc);

    /* realloc of live blocks of each range: NULL + ENOMEM, the block kept
     * (called through a pointer: gcc cannot tell that a failed realloc
     * leaves the block alive). */
    void *(*volatile realloc_fn)(void *, size_t) = realloc;
    static const size_t olds[] = { 100, 100000, 3 << 20, 300 << 20 };
    for (size_t i = 0; i < sizeof olds / sizeof olds[0]; i++) {
        unsigned char *old = malloc(olds[i]);
        REQUIRE(old != NULL);
        memset(old, 0xa5, olds[i]);
        errno = 0;
        void *q = realloc_fn(old, HUGE_REQUEST);
        int err = errno;
        CHECK(q == NULL && err == ENOMEM, "realloc(%zu -> 1000 GiB): %p, errno %d", olds[i], q, err);
        if (q) {
            free(q);
            continue;
        }
        CHECK(old[0] == 0xa5 && old[olds[i] - 1] == 0xa5, "realloc(%zu): old block changed", olds[i]);
        free(old);
    }

    void *(*onnode)(size_t, int) = (void *(*)(size_t, int))dlsym(RTLD_DEFAULT, "nm_malloc_onnode");
    void *(*calloc_onnode)(size_t, size_t, int) =
        (void *(*)(size_t, size_t, int))dlsym(RTLD_DEFAULT, "nm_calloc_onnode");
    REQUIRE(onnode && calloc_onnode);
    int node = -1;
    for (int n = 0; n < 1024 && node < 0; n++) {
        void *p = onnode(64, n);   /* the first node with memory */
        if (p) node = n;
        free(p);
    }
    REQUIRE(node >= 0, "no node takes nm_malloc_onnode");
    before = vm_size();   /* the node heap's first segment is there now */
    errno = 0;
    expect_refused("nm_malloc_onnode", onnode(HUGE_REQUEST, node), before);
    errno = 0;
    expect_refused("nm_calloc_onnode", calloc_onnode(1000, GiB, node), before);

    /* Strict accounting: nothing above CommitLimit can ever be committed. */
    if (strcmp(mode, "2") == 0) {
        unsigned long long limit_kb = 0;
        char line[256];
        FILE *m = fopen("/proc/meminfo", "r");
        while (m && fgets(line, sizeof line, m))
            if (sscanf(line, "CommitLimit: %llu kB", &limit_kb) == 1) break;
        if (m) fclose(m);
        REQUIRE(limit_kb > 0, "no CommitLimit in /proc/meminfo");
        size_t over = (size_t)limit_kb * 1024 + 64 * ((size_t)1 << 20);
        before = vm_size();
        errno = 0;
        expect_refused("malloc(CommitLimit + 64 MiB)", malloc(over), before);
        printf("CommitLimit %llu MiB: malloc of 64 MiB more refused\n", limit_kb / 1024);
    }

    still_works("the refused requests");
    printf("every 1000 GiB request: NULL + ENOMEM, nothing reserved\n");
    return nm_test_done();
}
