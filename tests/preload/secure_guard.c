/* secure_guard.c — secure mode's guard pages, as the kernel maps them.
 *
 * With NUMAMALLOC_SECURE=1 (the program runs itself again with it set:
 * the options are read at the first allocation, before main):
 *   - a large block is followed by a page the program cannot touch, right
 *     after its last usable byte, and stays so after realloc grows it (in
 *     place or moved), shrinks it, and grows it again: a buffer that grows
 *     with realloc, the way a program fills a read buffer or a vector;
 *   - its contents survive every step;
 *   - the last 4 KiB of the 4 MiB segment holding a small block and of the
 *     one holding a medium block cannot be touched either.
 * Whether an address can be touched is what /proc/self/maps says of the
 * mapping holding it ("---p" or "rw-p"), not what the allocator reports.
 * The same program without secure mode finds no guard after its large
 * block: the check tells the two apart. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define SEGMENT (4 * MiB)
#define PAGE 4096

/* The protection of the mapping holding `addr` ("rw-p", "---p", ...), or
 * "none" when no mapping holds it. */
static void protection_of(const void *addr, char prot[5])
{
    strcpy(prot, "none");
    FILE *f = fopen("/proc/self/maps", "r");
    REQUIRE(f != NULL, "open /proc/self/maps");
    char line[512];
    uintptr_t a = (uintptr_t)addr;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3) continue;
        if (a >= lo && a < hi) {
            memcpy(prot, perms, 5);
            break;
        }
    }
    fclose(f);
}

static int is_guard(const void *addr)
{
    char prot[5];
    protection_of(addr, prot);
    return strcmp(prot, "---p") == 0;
}

static int is_writable(const void *addr)
{
    char prot[5];
    protection_of(addr, prot);
    return prot[0] == 'r' && prot[1] == 'w';
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 512) p[i] = (unsigned char)(seed + i / 512);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 512)
        if (p[i] != (unsigned char)(seed + i / 512)) return 0;
    return 1;
}

/* Block `p`, usable as malloc_usable_size says, ends right before a guard. */
static void check_guarded(const char *step, unsigned char *p)
{
    size_t usable = malloc_usable_size(p);
    CHECK(usable % PAGE == 0, "%s: a large block's usable size %zu is not whole pages", step,
          usable);
    CHECK(is_writable(p) && is_writable(p + usable - 1),
          "%s: the block %p (%zu bytes) is not writable to its end", step, (void *)p, usable);
    CHECK(is_guard(p + usable), "%s: the page after the block %p (%zu bytes) is not a guard",
          step, (void *)p, usable);
}

static void secure_run(void)
{
    /* A buffer growing as data arrives, then cut back, then grown again. */
    static const size_t steps[] = {300 * KiB, 700 * KiB, 3 * MiB, 9 * MiB, 20 * MiB,
                                   6 * MiB,   7 * MiB,   40 * MiB};
    size_t kept = steps[0];
    unsigned char *p = malloc(kept);
    REQUIRE(p != NULL, "malloc(%zu)", kept);
    fill(p, kept, 7);
    check_guarded("malloc", p);
    for (size_t i = 1; i < sizeof steps / sizeof steps[0]; i++) {
        char step[64];
        snprintf(step, sizeof step, "realloc to %zu KiB", steps[i] / KiB);
        unsigned char *q = realloc(p, steps[i]);
        REQUIRE(q != NULL, "%s", step);
        if (steps[i] < kept) kept = steps[i];
        CHECK(intact(q, kept, 7), "%s: the block's first %zu bytes changed", step, kept);
        check_guarded(step, q);
        fill(q, steps[i], 7);
        kept = steps[i];
        p = q;
    }
    free(p);

    /* The segments of small and medium blocks end with a guard. */
    static const size_t sizes[] = {64, 200 * KiB};
    for (size_t i = 0; i < 2; i++) {
        unsigned char *b = malloc(sizes[i]);
        REQUIRE(b != NULL, "malloc(%zu)", sizes[i]);
        memset(b, 1, sizes[i]);
        uintptr_t end = ((uintptr_t)b & ~(SEGMENT - 1)) + SEGMENT;
        CHECK(is_guard((void *)(end - PAGE)) && is_guard((void *)(end - 1)),
              "the last 4 KiB of the segment holding a %zu-byte block (%p) are not a guard",
              sizes[i], (void *)b);
        CHECK(!is_guard((void *)(end - PAGE - 1)),
              "the guard of the segment holding a %zu-byte block (%p) is more than 4 KiB",
              sizes[i], (void *)b);
        free(b);
    }
}

int main(int argc, char **argv)
{
    nm_test_require_numamalloc();
    (void)argc;
    const char *secure = getenv("NUMAMALLOC_SECURE");
    if (!secure || strcmp(secure, "1") != 0) {
        /* Without secure mode no guard follows a large block. */
        unsigned char *p = malloc(300 * KiB);
        REQUIRE(p != NULL, "malloc");
        memset(p, 1, 300 * KiB);
        CHECK(!is_guard(p + malloc_usable_size(p)),
              "without secure mode, a guard follows the large block %p", (void *)p);
        free(p);
        if (nm_test_done() != 0) return 1;
        setenv("NUMAMALLOC_SECURE", "1", 1);
        execv("/proc/self/exe", argv);
        REQUIRE(0, "execv /proc/self/exe");
    }
    secure_run();
    return nm_test_done();
}
