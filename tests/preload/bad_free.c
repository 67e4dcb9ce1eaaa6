/* bad_free.c — freeing what was not allocated (stack, global, interior and
 * foreign mmap pointers), freeing twice (small, medium, large, huge), and
 * writing into freed blocks (a use after free that plants a pointer, one
 * that zeroes the block and frees it again, a 1-byte overflow into the
 * next block, writes into blocks on another thread's lists or on a list
 * handed to the arena) is reported on stderr in exactly one line naming
 * the pointer, then the process dies by SIGABRT.  With
 * NUMAMALLOC_ON_ERROR=warn the same line is printed and the program goes
 * on with an intact heap, never handed the damaged block nor an address
 * planted in it.  Each case runs in a child (this program
 * re-executed with --case NAME), whose stdout carries the pointer and
 * whose stderr is checked. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* The same pointer, hidden from the compiler, which would otherwise warn
 * about (and might drop) a free it can see is invalid. */
static void *opaque(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* Tell the parent which pointer the error is about. */
static void announce(const void *p)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%#lx\n", (unsigned long)(uintptr_t)p);
    if (write(1, line, (size_t)n) != n) _exit(120);
}

static char global_buf[256];

/* ---- what the child does after an error in warn mode ---- */

struct block { uint64_t *p; size_t size; };

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct block *)a)->p;
    uintptr_t y = (uintptr_t)((const struct block *)b)->p;
    return x < y ? -1 : x > y;
}

/* Allocate many blocks (many of `hot_size`, the size of the block the error
 * was about), fill each with its own address, and check that no block was
 * handed out twice or overlaps another and that every block kept its
 * contents. */
static void heap_still_works(size_t hot_size)
{
    enum { COUNT = 20000 };
    static struct block b[COUNT];
    uint64_t rng = 777;
    /* A quarter of the blocks are of the hot size, up to 64 MiB of them. */
    size_t hot_max = 64 * MiB / hot_size;
    for (int round = 0; round < 3; round++) {
        size_t hot = 0;
        for (int i = 0; i < COUNT; i++) {
            size_t size = 16 + (size_t)(nm_test_random(&rng) % 2000);
            if (i % 4 == 0 && hot < hot_max) { size = hot_size; hot++; }
            if (i % 1000 == 1) size = 300 * KiB;
            b[i].size = size;
            b[i].p = malloc(size);
            REQUIRE(b[i].p != NULL, "malloc(%zu) after the error", size);
            size_t words = size / 8;
            size_t step = words > 512 ? 509 : 1;
            for (size_t w = 0; w < words; w += step) b[i].p[w] = (uintptr_t)b[i].p ^ w;
        }
        for (int i = 0; i < COUNT; i++) {
            size_t words = b[i].size / 8;
            size_t step = words > 512 ? 509 : 1;
            for (size_t w = 0; w < words; w += step)
                if (b[i].p[w] != ((uintptr_t)b[i].p ^ w)) {
                    CHECK(0, "block %p (%zu bytes) overwritten at word %zu", (void *)b[i].p,
                          b[i].size, w);
                    break;
                }
        }
        qsort(b, COUNT, sizeof b[0], by_address);
        for (int i = 1; i < COUNT; i++)
            CHECK((uintptr_t)b[i - 1].p + b[i - 1].size <= (uintptr_t)b[i].p,
                  "blocks %p (%zu bytes) and %p overlap: the heap was damaged", (void *)b[i - 1].p,
                  b[i - 1].size, (void *)b[i].p);
        for (int i = 0; i < COUNT; i++) free(b[i].p);
    }
}

/* ---- the cases (run in the child) ---- */

/* Each case makes one bad call and returns the size of the block involved
 * (for heap_still_works), or 0. */
typedef size_t case_fn(void);

static size_t free_stack(void)
{
    char buf[64];
    memset(buf, 1, sizeof buf);
    void *bad = opaque(buf + 16);
    announce(bad);
    free(bad);
    return 64;
}

static size_t free_global(void)
{
    void *bad = opaque(global_buf + 32);
    announce(bad);
    free(bad);
    return 64;
}

static size_t free_interior(size_t size, size_t offset)
{
    unsigned char *p = malloc(size);
    REQUIRE(p != NULL, "malloc(%zu)", size);
    memset(p, 1, size < 4096 ? size : 4096);
    void *bad = opaque(p + offset);
    announce(bad);
    free(bad);
    free(p); /* warn mode: the real block is still live and can be freed */
    return size;
}

static size_t free_interior_small_8(void) { return free_interior(64, 8); }
static size_t free_interior_small_16(void) { return free_interior(64, 16); }
static size_t free_interior_medium(void) { return free_interior(100000, 4096); }
static size_t free_interior_large(void) { return free_interior(1 * MiB, 4096); }
static size_t free_interior_huge(void) { return free_interior(8 * MiB, 2 * MiB); }

static size_t free_mmap_page(void)
{
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(page != MAP_FAILED, "mmap: %s", strerror(errno));
    announce(page);
    free(page);
    return 64;
}

/* One page left mapped in the middle of an otherwise unmapped 8 MiB range,
 * so nothing around it (say, a 4 MiB-aligned segment header) is readable:
 * the check must not fault. */
static size_t free_mmap_isolated(void)
{
    unsigned char *range = mmap(NULL, 8 * MiB, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(range != MAP_FAILED, "mmap: %s", strerror(errno));
    uintptr_t base = ((uintptr_t)range + 4 * MiB - 1) & ~(uintptr_t)(4 * MiB - 1);
    unsigned char *page = (unsigned char *)base + 1 * MiB + 4096 * 3;
    munmap(range, (size_t)(page - range));
    munmap(page + 4096, (size_t)(range + 8 * MiB - (page + 4096)));
    page[0] = 1;
    announce(page + 64);
    free(page + 64);
    return 64;
}

/* A 2 MiB-aligned foreign mapping, like the start of a huge block. */
static size_t free_mmap_2mib_aligned(void)
{
    unsigned char *range = mmap(NULL, 6 * MiB, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(range != MAP_FAILED, "mmap: %s", strerror(errno));
    uintptr_t aligned = ((uintptr_t)range + 2 * MiB - 1) & ~(uintptr_t)(2 * MiB - 1);
    announce((void *)aligned);
    free((void *)aligned);
    return 64;
}

static size_t double_free(size_t size)
{
    unsigned char *p = malloc(size);
    REQUIRE(p != NULL, "malloc(%zu)", size);
    memset(p, 1, size < 4096 ? size : 4096);
    void *again = opaque(p);
    announce(p);
    free(p);
    free(again);
    return size;
}

static size_t double_free_small(void) { return double_free(64); }
static size_t double_free_medium(void) { return double_free(100000); }
static size_t double_free_large(void) { return double_free(1 * MiB); }
static size_t double_free_huge(void) { return double_free(8 * MiB); }

/* The second free comes after other blocks of the same size were allocated
 * and freed, so the block is no longer first in line. */
static size_t double_free_small_later(void)
{
    unsigned char *p = malloc(48);
    REQUIRE(p != NULL, "malloc(48)");
    void *again = opaque(p);
    announce(p);
    free(p);
    void *others[100];
    for (int i = 0; i < 100; i++) others[i] = malloc(48);
    for (int i = 0; i < 100; i += 2) free(others[i]);
    free(again);
    for (int i = 1; i < 100; i += 2) free(others[i]);
    return 48;
}

static size_t realloc_stack(void)
{
    char buf[64];
    memset(buf, 1, sizeof buf);
    void *bad = opaque(buf + 16);
    announce(bad);
    void *q = realloc(bad, 200);
    CHECK(q == NULL, "realloc of an invalid pointer returned %p", q);
    return 200;
}

static size_t realloc_interior(void)
{
    unsigned char *p = malloc(64);
    REQUIRE(p != NULL, "malloc(64)");
    void *bad = opaque(p + 16);
    announce(bad);
    void *q = realloc(bad, 100);
    CHECK(q == NULL, "realloc of an invalid pointer returned %p", q);
    free(p);
    return 64;
}

/* ---- writes into freed blocks (the message names the damaged block) ---- */

/* Where a use after free points the next malloc (glibc before safe-linking
 * would hand it out). */
static char planted[256] __attribute__((aligned(64)));

static int by_pointer(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return x < y ? -1 : x > y;
}

/* After the damage (warn mode): 3000 live blocks of `size`, none of them
 * `bad` (the damaged block: NULL when the program may get it once, as a
 * block it freed twice) nor `planted`, none handed out twice, each aligned
 * to 16 and written end to end. */
static void never_handed_out(size_t size, const void *bad)
{
    enum { N = 3000 };
    static void *q[N];
    for (int i = 0; i < N; i++) {
        q[i] = malloc(size);
        REQUIRE(q[i] != NULL, "malloc(%zu) after the damage", size);
        CHECK(q[i] != bad, "malloc(%zu) handed out the damaged block %p", size, q[i]);
        CHECK((char *)q[i] + size <= planted || (char *)q[i] >= planted + sizeof planted,
              "malloc(%zu) returned %p, inside the address planted in the freed block", size, q[i]);
        CHECK((uintptr_t)q[i] % 16 == 0, "malloc(%zu) returned the misaligned %p", size, q[i]);
        memset(q[i], 0x5a, size);
    }
    qsort(q, N, sizeof q[0], by_pointer);
    for (int i = 1; i < N; i++)
        CHECK((char *)q[i - 1] + size <= (char *)q[i], "live blocks %p and %p overlap", q[i - 1],
              q[i]);
    for (int i = 0; i < N; i++) free(q[i]);
}

/* S1: a use after free writes an address into a freed block. */
static size_t uaf_pointer_write(void)
{
    void *p = malloc(64);
    REQUIRE(p != NULL, "malloc(64)");
    announce(p);
    free(opaque(p));
    *(void **)opaque(p) = planted;
    never_handed_out(64, p);
    return 64;
}

/* Secure mode: a use after free writes past the 16 bytes the encoded link
 * holds, into the poison the quarantine checks when the block leaves it. */
static size_t uaf_poison_write(void)
{
    void *p = malloc(64);
    REQUIRE(p != NULL, "malloc(64)");
    announce(p);
    free(opaque(p));
    ((volatile char *)opaque(p))[40] = 1;
    never_handed_out(64, p);
    return 64;
}

/* S2: a freed block zeroed (erasing what marks it free) and freed again
 * while it is still first on its page's free list: a double free. */
static size_t uaf_zero_double_free(void)
{
    void *p = malloc(64);
    REQUIRE(p != NULL, "malloc(64)");
    announce(p);
    free(opaque(p));
    memset(opaque(p), 0, 16);
    free(opaque(p));
    never_handed_out(64, NULL);
    return 64;
}

/* The same with another block of the page freed in between: the second
 * free cannot tell; the block is found when the list reaches it again
 * (live by then: the program got it back once) and never handed out twice. */
static size_t uaf_zero_double_free_later(void)
{
    void *keep = malloc(64), *p = malloc(64), *y = malloc(64);
    REQUIRE(keep && p && y, "malloc(64)");
    announce(p);
    free(opaque(p));
    free(y);
    memset(opaque(p), 0, 16);
    free(opaque(p));
    never_handed_out(64, NULL);
    free(keep);
    return 64;
}

/* A medium block (its frees by other threads go to its page's remote
 * list) freed by another thread, zeroed and freed again. */
static void *zero_refree(void *arg)
{
    void *p = arg;
    free(opaque(p));
    memset(opaque(p), 0, 16);
    free(opaque(p));
    return NULL;
}

static size_t uaf_zero_double_free_remote(void)
{
    void *p = malloc(64 * 1024);
    REQUIRE(p != NULL, "malloc(64 KiB)");
    announce(p);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, zero_refree, p) == 0, "pthread_create");
    pthread_join(t, NULL);
    never_handed_out(64 * 1024, NULL);
    return 64 * 1024;
}

/* S3: a block overflowed by one byte into the free block after it. */
static size_t overflow_into_free(void)
{
    enum { N = 64 };
    unsigned char *held[N], *a = NULL, *b = NULL;
    for (int i = 0; i < N; i++) {
        held[i] = malloc(64);
        REQUIRE(held[i] != NULL, "malloc(64)");
    }
    for (int i = 0; i < N && !b; i++)
        for (int j = 0; j < N && !b; j++)
            if (held[j] == held[i] + 64) { a = held[i]; b = held[j]; held[j] = NULL; }
    REQUIRE(b != NULL, "no two of %d blocks of 64 bytes are neighbours", N);
    announce(b);
    free(opaque(b));
    unsigned char *past_end = opaque(a + 64);
    *past_end ^= 0xff;   /* a fixed value matched the link's byte one time in 256 */
    never_handed_out(64, b);
    for (int i = 0; i < N; i++) free(held[i]);
    return 64;
}

/* Blocks of the main thread freed by another thread, which then writes
 * into one it freed: the last, or the one `back` places before it. */
struct freer { void **blocks; int count; int back; void *damaged; };

/* The freeing thread, with a heap of its own, frees every handed block. */
static void free_handed(struct freer *f)
{
    free(opaque(malloc(16)));
    for (int i = 0; i < f->count; i++) free(opaque(f->blocks[i]));
}

static void *free_then_write(void *arg)
{
    struct freer *f = arg;
    free_handed(f);
    f->damaged = f->blocks[f->count - 1 - f->back];
    *(void **)opaque(f->damaged) = planted;
    return NULL;
}

/* `n` blocks of 64 bytes allocated here, handed to a thread running `body`. */
static struct freer on_another_thread(void **blocks, int n, int back, void *(*body)(void *))
{
    for (int i = 0; i < n; i++) {
        blocks[i] = malloc(64);
        REQUIRE(blocks[i] != NULL, "malloc(64)");
    }
    struct freer f = { blocks, n, back, NULL };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, body, &f) == 0, "pthread_create");
    pthread_join(t, NULL);
    return f;
}

/* More blocks than the freeing thread keeps for itself (16 KiB of a class)
 * and its arena holds for other threads (eight such lists): the last ones
 * go to their page's remote-free list, where the damaged one is found when
 * the main thread collects them. */
static size_t uaf_remote_list(void)
{
    static void *blocks[4000];
    struct freer f = on_another_thread(blocks, 4000, 0, free_then_write);
    announce(f.damaged);
    never_handed_out(64, f.damaged);
    return 64;
}

/* One block more than the freeing thread keeps for itself (16 KiB of a
 * class): its full list goes to the arena, and the last block starts a new
 * one.  The damaged block is the one before it, first on the list in the
 * arena; the main thread takes that list when its own page runs out. */
static size_t uaf_transfer_list(void)
{
    static void *blocks[16 * KiB / 64 + 1];
    struct freer f = on_another_thread(blocks, 16 * KiB / 64 + 1, 1, free_then_write);
    announce(f.damaged);
    never_handed_out(64, f.damaged);
    return 64;
}

/* The same thread, with one block more than it keeps: the last block,
 * the one that sent the full list to the arena, zeroed and freed again. */
static void *free_then_zero_refree(void *arg)
{
    struct freer *f = arg;
    free_handed(f);
    f->damaged = f->blocks[f->count - 1];
    announce(f->damaged);
    memset(opaque(f->damaged), 0, 16);
    free(opaque(f->damaged));
    return NULL;
}

static size_t uaf_zero_double_free_transfer(void)
{
    static void *blocks[16 * KiB / 64 + 1];
    struct freer f = on_another_thread(blocks, 16 * KiB / 64 + 1, 0, free_then_zero_refree);
    never_handed_out(64, f.damaged);
    return 64;
}

/* A few blocks, kept by the freeing thread for its own next allocations:
 * it finds the damaged one itself. */
static void *foreign_then_allocate(void *arg)
{
    struct freer *f = arg;
    free_then_write(f);
    announce(f->damaged);
    never_handed_out(64, f->damaged);
    return NULL;
}

static size_t uaf_foreign_list(void)
{
    void *blocks[8];
    on_another_thread(blocks, 8, 0, foreign_then_allocate);
    return 64;
}

/* Secure mode: a block overflowed by one byte past the 60 bytes asked for
 * (a live block: nothing else would notice until its neighbour is used). */
static size_t overflow_live(void)
{
    unsigned char *p = malloc(60);
    REQUIRE(p != NULL, "malloc(60)");
    memset(p, 1, 60);
    announce(p);
    unsigned char *past_end = opaque(p + 60);
    /* Flipped: a fixed value matched the canary's byte one time in 256. */
    *past_end ^= 0xff;
    free(p);
    return 60;
}

/* Secure mode: an overflow of 16 bytes past the 64 asked for reaches the
 * block's size tag; realloc copies the whole block, then its free reports
 * the tag (with warn the program keeps its 64 bytes). */
static size_t overflow_tag_realloc(void)
{
    unsigned char *p = malloc(64);
    REQUIRE(p != NULL, "malloc(64)");
    for (int i = 0; i < 64; i++) p[i] = (unsigned char)i;
    announce(p);
    memset(opaque(p + 64), 0x41, 16);
    unsigned char *q = realloc(p, 200);
    REQUIRE(q != NULL, "realloc(200)");
    for (int i = 0; i < 64; i++)
        CHECK(q[i] == (unsigned char)i, "realloc lost byte %d of the block", i);
    free(q);
    return 64;
}

/* What the one line says: it starts with `start` (with the call's name
 * where it has %s) and the pointer in hex, and ends with `end` (NULL: any
 * end).  A double free of a huge block may find its span already unmapped:
 * then the pointer is no longer the allocator's, and "invalid pointer" is
 * as right as "double free" (`also`). */
enum error_kind { INVALID, DOUBLE, INVALID_OR_DOUBLE, CORRUPT_FREE, CORRUPT_REMOTE, OVERFLOW,
                  OVERFLOW_TAG, QUARANTINE, DOUBLE_ERASED };
static const struct error_text {
    const char *start, *end;
    enum error_kind also;
} error_texts[] = {
    [INVALID] = {"numamalloc: %s(): invalid pointer 0x", NULL, INVALID},
    [DOUBLE] = {"numamalloc: %s(): double free of 0x", NULL, DOUBLE},
    [INVALID_OR_DOUBLE] = {"numamalloc: %s(): double free of 0x", NULL, INVALID},
    [CORRUPT_FREE] = {"numamalloc: heap corruption detected in free list of a 64-byte block at 0x",
                      ": use after free or overflow\n", CORRUPT_FREE},
    [CORRUPT_REMOTE] = {"numamalloc: heap corruption detected in remote-free list of a 64-byte "
                        "block at 0x", ": use after free or overflow\n", CORRUPT_REMOTE},
    /* Secure mode: a canary right after the 60 bytes asked for; a 64-byte
     * request takes an 80-byte block (16 bytes of canary and size tag). */
    [OVERFLOW] = {"numamalloc: %s(): heap overflow past the 60-byte block at 0x",
                  ": its canary was overwritten\n", OVERFLOW},
    [OVERFLOW_TAG] = {"numamalloc: %s(): heap overflow into the end of the 80-byte block at 0x",
                      ": its size tag was overwritten\n", OVERFLOW_TAG},
    [QUARANTINE] = {"numamalloc: use after free detected: the 80-byte block at 0x",
                    " was written after it was freed\n", QUARANTINE},
    /* A double free of a block the program erased: with warn the block
     * stays on its list as the program left it, and the list is reported
     * as damaged when it is next taken from (a second line, same block). */
    [DOUBLE_ERASED] = {"numamalloc: %s(): double free of 0x", NULL, DOUBLE_ERASED},
};

static const struct bad_case {
    const char *name;
    case_fn *run;
    const char *call;     /* "free" or "realloc" */
    enum error_kind kind;
    int secure;           /* 1: run with NUMAMALLOC_SECURE=1 */
} cases[] = {
    {"free_stack", free_stack, "free", INVALID, 0},
    {"free_global", free_global, "free", INVALID, 0},
    {"free_interior_small_8", free_interior_small_8, "free", INVALID, 0},
    {"free_interior_small_16", free_interior_small_16, "free", INVALID, 0},
    {"free_interior_medium", free_interior_medium, "free", INVALID, 0},
    {"free_interior_large", free_interior_large, "free", INVALID, 0},
    {"free_interior_huge", free_interior_huge, "free", INVALID, 0},
    {"free_mmap_page", free_mmap_page, "free", INVALID, 0},
    {"free_mmap_isolated", free_mmap_isolated, "free", INVALID, 0},
    {"free_mmap_2mib_aligned", free_mmap_2mib_aligned, "free", INVALID, 0},
    {"double_free_small", double_free_small, "free", DOUBLE, 0},
    {"double_free_small_later", double_free_small_later, "free", DOUBLE, 0},
    {"double_free_medium", double_free_medium, "free", DOUBLE, 0},
    {"double_free_large", double_free_large, "free", DOUBLE, 0},
    /* A freed huge block may already be unmapped: then it is no longer the
     * allocator's, and "invalid pointer" is as right as "double free". */
    {"double_free_huge", double_free_huge, "free", INVALID_OR_DOUBLE, 0},
    {"realloc_stack", realloc_stack, "realloc", INVALID, 0},
    {"realloc_interior", realloc_interior, "realloc", INVALID, 0},
    {"uaf_pointer_write", uaf_pointer_write, "malloc", CORRUPT_FREE, 0},
    {"uaf_zero_double_free", uaf_zero_double_free, "free", DOUBLE_ERASED, 0},
    {"uaf_zero_double_free_later", uaf_zero_double_free_later, "malloc", CORRUPT_FREE, 0},
    {"uaf_zero_double_free_remote", uaf_zero_double_free_remote, "free", DOUBLE_ERASED, 0},
    {"overflow_into_free", overflow_into_free, "malloc", CORRUPT_FREE, 0},
    {"uaf_remote_list", uaf_remote_list, "malloc", CORRUPT_REMOTE, 0},
    {"uaf_foreign_list", uaf_foreign_list, "malloc", CORRUPT_FREE, 0},
    {"uaf_transfer_list", uaf_transfer_list, "malloc", CORRUPT_FREE, 0},
    {"uaf_zero_double_free_transfer", uaf_zero_double_free_transfer, "free", DOUBLE_ERASED, 0},
    {"overflow_live", overflow_live, "free", OVERFLOW, 1},
    {"uaf_quarantine", uaf_pointer_write, "malloc", QUARANTINE, 1},
    {"uaf_quarantine_poison", uaf_poison_write, "malloc", QUARANTINE, 1},
    {"overflow_tag_realloc", overflow_tag_realloc, "free", OVERFLOW_TAG, 1},
};
#define CASE_COUNT (sizeof cases / sizeof cases[0])

static int run_case(const char *name)
{
    for (size_t i = 0; i < CASE_COUNT; i++) {
        if (strcmp(cases[i].name, name) != 0) continue;
        size_t size = cases[i].run();
        /* Only reached when the allocator did not abort (warn mode). */
        heap_still_works(size ? size : 64);
        return nm_test_done();
    }
    fprintf(stderr, "no case %s\n", name);
    return 2;
}

/* ---- the parent: run each case in a child and judge what it did ---- */

struct child_result {
    int status;
    char out[256], err[4096];
    size_t err_len;
    int timed_out;
};

static void run_child(const char *name, int warn, int secure, struct child_result *r)
{
    int out[2], err[2];
    REQUIRE(pipe(out) == 0 && pipe(err) == 0, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]); close(out[1]); close(err[0]); close(err[1]);
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        if (warn) setenv("NUMAMALLOC_ON_ERROR", "warn", 1);
        else unsetenv("NUMAMALLOC_ON_ERROR");
        if (secure) setenv("NUMAMALLOC_SECURE", "1", 1);
        else unsetenv("NUMAMALLOC_SECURE");
        unsetenv("NUMAMALLOC_VERBOSE");
        unsetenv("NUMAMALLOC_STATS");
        execl("/proc/self/exe", "bad_free", "--case", name, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    memset(r, 0, sizeof *r);
    size_t out_len = 0;
    struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    double give_up = nm_test_now() + 30;
    while (open_fds > 0 && nm_test_now() < give_up) {
        if (poll(fds, 2, 100) <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char tmp[1024];
            ssize_t n = read(fds[i].fd, tmp, sizeof tmp);
            if (n <= 0) { close(fds[i].fd); fds[i].fd = -1; open_fds--; continue; }
            char *dst = i == 0 ? r->out : r->err;
            size_t *len = i == 0 ? &out_len : &r->err_len;
            size_t cap = (i == 0 ? sizeof r->out : sizeof r->err) - 1;
            size_t take = (size_t)n < cap - *len ? (size_t)n : cap - *len;
            memcpy(dst + *len, tmp, take);
            *len += take;
        }
    }
    if (open_fds > 0) {
        r->timed_out = 1;
        kill(pid, SIGKILL);
        for (int i = 0; i < 2; i++) if (fds[i].fd >= 0) close(fds[i].fd);
    }
    waitpid(pid, &r->status, 0);
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* stderr must be exactly one line "numamalloc: CALL(): KIND 0xPTR..." where
 * PTR is the pointer the child announced. */
static void check_message(const struct bad_case *c, const struct child_result *r,
                          const char *mode)
{
    char first[sizeof r->err];
    const char *err = r->err;
    const char *newline = strchr(err, '\n');
    size_t err_len = r->err_len;
    if (c->kind == DOUBLE_ERASED && newline &&
        strncmp(newline + 1, "numamalloc: heap corruption detected in ", 40) == 0) {
        char ptr[32];
        snprintf(ptr, sizeof ptr, "at %#lx:", strtoul(r->out, NULL, 16));
        CHECK(strstr(newline + 1, ptr) != NULL, "%s (%s): the second line is not about %s: %s",
              c->name, mode, ptr, newline + 1);
        err_len = (size_t)(newline + 1 - err);
        memcpy(first, err, err_len);
        first[err_len] = '\0';
        err = first;
        newline = err + err_len - 1;
    }
    CHECK(err_len > 0 && newline == err + err_len - 1,
          "%s (%s): stderr is not exactly one line: \"%s\"", c->name, mode, err);
    unsigned long expected = strtoul(r->out, NULL, 16);
    CHECK(expected != 0, "%s (%s): the child did not announce its pointer (stdout \"%s\")",
          c->name, mode, r->out);

    const char *hex = NULL, *end_expected = NULL;
    char start[2][160];
    enum error_kind kinds[2] = {c->kind, error_texts[c->kind].also};
    for (int k = 0; k < 2 && !hex; k++) {
        snprintf(start[k], sizeof start[k], error_texts[kinds[k]].start, c->call);
        if (strncmp(err, start[k], strlen(start[k])) == 0) {
            hex = err + strlen(start[k]);
            end_expected = error_texts[kinds[k]].end;
        }
    }
    CHECK(hex != NULL, "%s (%s): stderr \"%s\" does not start with \"%s\"", c->name, mode, err,
          start[0]);
    if (!hex) return;
    char *end;
    unsigned long got = strtoul(hex, &end, 16);
    CHECK(end > hex && !is_hex(*end), "%s (%s): no pointer after \"0x\" in \"%s\"", c->name, mode,
          err);
    if (end_expected)
        CHECK(strcmp(end, end_expected) == 0, "%s (%s): the line ends \"%s\", not \"%s\"", c->name,
              mode, end, end_expected);
    CHECK(got == expected, "%s (%s): message names %#lx, the pointer was %#lx", c->name, mode, got,
          expected);
}

int main(int argc, char **argv)
{
    nm_test_require_numamalloc();
    if (argc > 2 && strcmp(argv[1], "--case") == 0) return run_case(argv[2]);

    for (size_t i = 0; i < CASE_COUNT; i++) {
        const struct bad_case *c = &cases[i];
        struct child_result r;

        run_child(c->name, 0, c->secure, &r);
        CHECK(!r.timed_out, "%s: child hung", c->name);
        CHECK(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT,
              "%s: child ended with %s %d, expected SIGABRT", c->name,
              WIFSIGNALED(r.status) ? "signal" : "exit status",
              WIFSIGNALED(r.status) ? WTERMSIG(r.status) : WEXITSTATUS(r.status));
        check_message(c, &r, "abort");

        run_child(c->name, 1, c->secure, &r);
        CHECK(!r.timed_out, "%s (warn): child hung", c->name);
        CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
              "%s (warn): child ended with %s %d, expected exit status 0; stderr: %s", c->name,
              WIFSIGNALED(r.status) ? "signal" : "exit status",
              WIFSIGNALED(r.status) ? WTERMSIG(r.status) : WEXITSTATUS(r.status), r.err);
        check_message(c, &r, "warn");
    }
    return nm_test_done();
}
