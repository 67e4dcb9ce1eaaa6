/* code_footprint: a program that only allocates maps little of the
 * library's code (docs/design.md, "Code layout").
 *
 * The kernel maps a file's pages around a faulting one (fault-around: up to
 * 64 KiB, the aligned window holding the fault), so a program maps every
 * window of the code that holds a function it runs.  The link places the
 * functions programs run (src/hot.ld) together, 56 KiB of them: they lie in
 * at most two 64 KiB windows however the library is placed.  Scattered
 * through the code (the link without src/hot.ld), the same run maps all
 * three windows of its 140 KiB.
 *
 * The program: small, medium and large blocks, calloc, realloc, aligned
 * allocations, a thread that allocates and exits, blocks freed by another
 * thread.  Then it counts the 64 KiB windows of the library's code that
 * hold a page the process has mapped (/proc/self/pagemap's present bit),
 * and the code's resident KiB, and checks the windows are at most two. */
#define _GNU_SOURCE
#include "../testutil.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WINDOW ((uintptr_t)64 << 10)
#define BLOCKS 4096

static void *blocks[BLOCKS];

static void *allocate_and_exit(void *arg)
{
    (void)arg;
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc((size_t)(16 + (i * 37) % 3000));
        memset(blocks[i], 1, 16);
    }
    void *big = malloc(1 << 20);
    memset(big, 2, 4096);
    free(big);
    return NULL;
}

static void allocate(void)
{
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, allocate_and_exit, NULL) == 0, "pthread_create");
    REQUIRE(pthread_join(t, NULL) == 0, "pthread_join");
    for (int i = 0; i < BLOCKS; i++) free(blocks[i]);   /* the exited thread's blocks */
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < BLOCKS; i++) blocks[i] = malloc((size_t)(8 + (i * 131) % 20000));
        for (int i = 0; i < BLOCKS; i += 2) blocks[i] = realloc(blocks[i], (size_t)(i % 500) + 1);
        for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
    }
    void *z = calloc(1000, 48);
    void *a = NULL;
    CHECK(posix_memalign(&a, 256, 1000) == 0 && a, "posix_memalign");
    void *b = aligned_alloc(4096, 8192);
    void *l = malloc(8 << 20);
    memset(l, 3, 8 << 20);
    l = realloc(l, 16 << 20);
    free(l);
    free(b);
    free(a);
    free(z);
}

int main(void)
{
    nm_test_require_numamalloc();
    allocate();

    Dl_info info;
    REQUIRE(dladdr((void *)malloc, &info) && info.dli_fname, "dladdr(malloc)");
    char library[PATH_MAX];   /* as /proc/self/maps names it */
    REQUIRE(realpath(info.dli_fname, library), "realpath(%s)", info.dli_fname);
    FILE *maps = fopen("/proc/self/maps", "r");
    REQUIRE(maps, "/proc/self/maps");
    int pagemap = open("/proc/self/pagemap", O_RDONLY);
    REQUIRE(pagemap >= 0, "/proc/self/pagemap");
    char line[512];
    int windows = 0, code_mappings = 0;
    long resident_kib = 0;
    uintptr_t last_window = 0;
    while (fgets(line, sizeof line, maps)) {
        uintptr_t start, end;
        char perm[8], path[256] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &start, &end, perm, path) < 3) continue;
        if (strcmp(path, library) != 0 || perm[2] != 'x') continue;
        code_mappings++;
        for (uintptr_t page = start; page < end; page += 4096) {
            uint64_t entry = 0;
            REQUIRE(pread(pagemap, &entry, sizeof entry, (off_t)(page / 4096 * 8)) == 8, "pagemap");
            if (!(entry >> 63)) continue;
            resident_kib += 4;
            uintptr_t window = page & ~(WINDOW - 1);
            if (window != last_window) windows++;
            last_window = window;
        }
    }
    fclose(maps);
    close(pagemap);
    REQUIRE(code_mappings == 1, "%d executable mappings of %s", code_mappings, library);
    printf("code mapped: %ld KiB in %d windows of 64 KiB\n", resident_kib, windows);
    CHECK(windows <= 2, "the code this program ran lies in %d windows of 64 KiB, expected at most 2 "
          "(is a function it runs missing from src/hot.ld?  make hot-layout)", windows);
    return nm_test_failures ? 1 : 0;
}
