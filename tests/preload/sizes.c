/* sizes.c — every request size 0..4096, then sizes growing by 1/16 up to
 * 8 MiB (plus the class boundaries): malloc returns a block whose usable size
 * covers the request without wasting more than 12.5% + 16 bytes (less than
 * half the request for medium sizes, 8 - 256 KiB), aligned to
 * 16 and to the largest power of two dividing the usable size (up to 4096),
 * 2 MiB aligned from 2 MiB on, fully writable, and never overlapping another
 * live block.  The sweep runs twice so the second pass reuses freed memory. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

struct live_block {
    unsigned char *ptr;
    size_t usable;
    unsigned char fill;
};

static struct live_block *live;
static size_t live_count, live_cap;

/* Largest power of two dividing x, at most 4096 (x > 0). */
static size_t natural_alignment(size_t x)
{
    size_t a = x & (~x + 1);
    return a > 4096 ? 4096 : a;
}

static void check_block(size_t n, unsigned char *p, size_t index)
{
    REQUIRE(p != NULL, "malloc(%zu) returned NULL", n);
    size_t usable = malloc_usable_size(p);
    CHECK(usable >= n, "malloc(%zu): usable size %zu is smaller than the request", n, usable);
    /* Up to 8 KiB (eight classes per power of two) and for large blocks
     * (4 KiB pages): usable <= n * 1.125 + 16, in integers 8 * usable <=
     * 9 * n + 128.  Medium sizes (two classes per power of two, docs/design.md
     * "Size classes"): usable < 1.5 * n. */
    if (n > 64 && (n <= 8 * KiB || n > 256 * KiB))
        CHECK(8 * usable <= 9 * n + 128,
              "malloc(%zu): usable size %zu wastes more than 12.5%% + 16 bytes", n, usable);
    else if (n > 8 * KiB)
        CHECK(2 * usable < 3 * n, "malloc(%zu): usable size %zu is 1.5 times the request or more",
              n, usable);
    uintptr_t addr = (uintptr_t)p;
    CHECK(addr % 16 == 0, "malloc(%zu) = %p is not 16-byte aligned", n, (void *)p);
    if (usable > 0) {
        size_t a = natural_alignment(usable);
        CHECK(addr % a == 0, "malloc(%zu) = %p (usable %zu) is not aligned to %zu", n,
              (void *)p, usable, a);
    }
    if (n >= 2 * MiB)
        CHECK(addr % (2 * MiB) == 0, "malloc(%zu) = %p is not 2 MiB aligned", n, (void *)p);

    unsigned char fill = (unsigned char)(index * 7 + 1);
    memset(p, fill, usable);
    /* Keep every third block alive; free the rest right away so later
     * requests reuse their memory. */
    if (index % 3 == 0) {
        if (live_count == live_cap) {
            live_cap = live_cap ? 2 * live_cap : 1024;
            live = realloc(live, live_cap * sizeof *live);
            REQUIRE(live != NULL, "out of memory for the live-block table");
        }
        live[live_count++] = (struct live_block){p, usable, fill};
    } else {
        free(p);
    }
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct live_block *)a)->ptr;
    uintptr_t y = (uintptr_t)((const struct live_block *)b)->ptr;
    return x < y ? -1 : x > y;
}

/* Every live block still holds its fill byte in all of its usable bytes, and
 * no two live blocks share a byte. */
static void check_and_free_live(void)
{
    for (size_t i = 0; i < live_count; i++) {
        const struct live_block *b = &live[i];
        size_t bad = b->usable;
        for (size_t j = 0; j < b->usable; j++)
            if (b->ptr[j] != b->fill) { bad = j; break; }
        CHECK(bad == b->usable, "block %p (usable %zu): byte %zu was overwritten (0x%02x, expected 0x%02x)",
              (void *)b->ptr, b->usable, bad, bad < b->usable ? b->ptr[bad] : 0, b->fill);
    }
    qsort(live, live_count, sizeof *live, by_address);
    for (size_t i = 1; i < live_count; i++) {
        const struct live_block *a = &live[i - 1], *b = &live[i];
        CHECK((uintptr_t)a->ptr + a->usable <= (uintptr_t)b->ptr,
              "live blocks overlap: %p+%zu and %p+%zu", (void *)a->ptr, a->usable,
              (void *)b->ptr, b->usable);
    }
    for (size_t i = 0; i < live_count; i++) free(live[i].ptr);
    live_count = 0;
}

static void sweep(void)
{
    size_t index = 0;
    for (size_t n = 0; n <= 4096; n++) check_block(n, malloc(n), index++);
    for (size_t n = 4096; n <= 8 * MiB; n += n / 16) check_block(n, malloc(n), index++);
    /* Around each power of two and the class boundaries (1.5 times each
     * power of two between the medium classes, 256 KiB medium to large,
     * 2 MiB large to huge). */
    for (size_t p = 8 * KiB; p <= 8 * MiB; p *= 2) {
        size_t q = p + p / 2;
        size_t around[] = {p - 4096, p - 1, p, p + 1, p + 16, p + 4096, q - 1, q, q + 1};
        for (size_t i = 0; i < sizeof around / sizeof around[0]; i++)
            check_block(around[i], malloc(around[i]), index++);
    }
    check_and_free_live();
}

int main(void)
{
    nm_test_require_numamalloc();
    sweep();
    sweep();
    free(live);
    return nm_test_done();
}
