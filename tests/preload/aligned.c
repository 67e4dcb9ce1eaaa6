/* aligned.c — posix_memalign, aligned_alloc and memalign for every power of
 * two from 16 B to 1 GiB and sizes 0, 1, align-1, align, 3*align and 100000:
 * the pointer is aligned, the usable size covers the request, the memory is
 * writable, live blocks do not overlap, and free() releases them.  Bad
 * alignments: posix_memalign returns EINVAL without touching errno,
 * aligned_alloc returns NULL with EINVAL.  valloc and pvalloc return
 * page-aligned blocks, pvalloc rounded up to whole pages. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)

enum method { POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN };
static const char *const method_name[] = {"posix_memalign", "aligned_alloc", "memalign"};

static void *allocate(enum method m, size_t align, size_t size)
{
    void *p = NULL;
    switch (m) {
    case POSIX_MEMALIGN: {
        int rc = posix_memalign(&p, align, size);
        CHECK(rc == 0, "posix_memalign(.., %zu, %zu) returned %d", align, size, rc);
        return rc == 0 ? p : NULL;
    }
    case ALIGNED_ALLOC: return aligned_alloc(align, size);
    case MEMALIGN: return memalign(align, size);
    }
    return NULL;
}

/* Write the block: all of it when small, else its first and last 64 KiB
 * (a 3 GiB block fully touched would not fit the test's memory budget). */
static void touch(unsigned char *p, size_t size, unsigned char value)
{
    if (size <= 4 * MiB) {
        memset(p, value, size);
    } else {
        memset(p, value, 64 * KiB);
        memset(p + size - 64 * KiB, value, 64 * KiB);
    }
}

static int touched_ok(const unsigned char *p, size_t size, unsigned char value)
{
    size_t head = size <= 4 * MiB ? size : 64 * KiB;
    for (size_t i = 0; i < head; i++)
        if (p[i] != value) return 0;
    if (size > 4 * MiB)
        for (size_t i = size - 64 * KiB; i < size; i++)
            if (p[i] != value) return 0;
    return 1;
}

struct block { unsigned char *p; size_t size; unsigned char value; };

static void every_alignment(void)
{
    for (size_t align = 16; align <= 1 * GiB; align *= 2) {
        const size_t sizes[] = {0, 1, align - 1, align, 3 * align, 100000};
        struct block live[3 * 6];
        size_t count = 0;
        for (enum method m = POSIX_MEMALIGN; m <= MEMALIGN; m++) {
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                size_t size = sizes[s];
                unsigned char *p = allocate(m, align, size);
                CHECK(p != NULL, "%s(%zu, %zu) failed", method_name[m], align, size);
                if (!p) continue;
                CHECK((uintptr_t)p % align == 0, "%s(%zu, %zu) = %p is misaligned",
                      method_name[m], align, size, (void *)p);
                size_t usable = malloc_usable_size(p);
                CHECK(usable >= size, "%s(%zu, %zu): usable size %zu", method_name[m], align, size,
                      usable);
                unsigned char value = (unsigned char)(count * 13 + 1);
                touch(p, size, value);
                live[count++] = (struct block){p, size, value};
            }
            /* Keep the small ones of all three methods alive together; free
             * big ones at once so at most a few GiB of address space is held. */
            if (align >= 64 * MiB) {
                for (size_t i = 0; i < count; i++) {
                    CHECK(touched_ok(live[i].p, live[i].size, live[i].value),
                          "aligned block %p (%zu bytes, align %zu) lost its contents",
                          (void *)live[i].p, live[i].size, align);
                    free(live[i].p);
                }
                count = 0;
            }
        }
        for (size_t i = 0; i < count; i++) {
            CHECK(touched_ok(live[i].p, live[i].size, live[i].value),
                  "aligned block %p (%zu bytes, align %zu) lost its contents", (void *)live[i].p,
                  live[i].size, align);
            for (size_t j = 0; j < count; j++) {
                if (i == j) continue;
                uintptr_t a = (uintptr_t)live[i].p, b = (uintptr_t)live[j].p;
                CHECK(a + live[i].size <= b || b + live[j].size <= a,
                      "aligned blocks overlap: %p+%zu and %p+%zu", (void *)live[i].p,
                      live[i].size, (void *)live[j].p, live[j].size);
            }
        }
        for (size_t i = 0; i < count; i++) free(live[i].p);
    }
}

/* Alignments below 16 (1, 2, 4, 8) are valid for aligned_alloc and memalign
 * and give at least 16-byte alignment. */
static void small_alignments(void)
{
    for (size_t align = 1; align < 16; align *= 2) {
        for (size_t size = 1; size <= 100; size += 33) {
            void *p = aligned_alloc(align, size);
            CHECK(p != NULL && (uintptr_t)p % 16 == 0, "aligned_alloc(%zu, %zu) = %p", align, size,
                  p);
            free(p);
            p = memalign(align, size);
            CHECK(p != NULL && (uintptr_t)p % 16 == 0, "memalign(%zu, %zu) = %p", align, size, p);
            free(p);
        }
    }
    void *p = NULL;
    CHECK(posix_memalign(&p, sizeof(void *), 10) == 0 && p != NULL,
          "posix_memalign(.., sizeof(void *), 10) failed");
    free(p);
}

/* Called through volatile pointers, so the compiler cannot treat them as
 * the builtins it knows: clang drops a malloc whose result is only tested
 * and freed, and the failing call would never be made. */
static void *(*volatile aligned_alloc_fn)(size_t, size_t) = aligned_alloc;
static int (*volatile posix_memalign_fn)(void **, size_t, size_t) = posix_memalign;

static void bad_alignments(void)
{
    /* posix_memalign: the alignment must be a power of two multiple of
     * sizeof(void *).  The error is returned; errno is left alone. */
    const size_t bad_posix[] = {0, 1, 2, 3, sizeof(void *) / 2, 24, 48, 4095, 4097,
                                (size_t)1 << 63 | 16, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad_posix / sizeof bad_posix[0]; i++) {
        void *sentinel = (void *)0x1234, *p = sentinel;
        errno = 4242;
        int rc = posix_memalign_fn(&p, bad_posix[i], 64);
        CHECK(rc == EINVAL, "posix_memalign(.., %zu, 64) returned %d, expected EINVAL",
              bad_posix[i], rc);
        CHECK(errno == 4242, "posix_memalign(.., %zu, 64) changed errno to %d", bad_posix[i],
              errno);
        CHECK(p == sentinel, "posix_memalign(.., %zu, 64) wrote %p to memptr on failure",
              bad_posix[i], p);
        if (rc == 0) free(p);
    }
    /* aligned_alloc: not a power of two -> NULL, EINVAL (as glibc 2.38+). */
    const size_t bad_aligned[] = {0, 3, 24, 48, 4095, 4097, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad_aligned / sizeof bad_aligned[0]; i++) {
        errno = 0;
        void *p = aligned_alloc_fn(bad_aligned[i], 64);
        CHECK(p == NULL, "aligned_alloc(%zu, 64) = %p, expected NULL", bad_aligned[i], p);
        CHECK(errno == EINVAL, "aligned_alloc(%zu, 64): errno %d, expected EINVAL",
              bad_aligned[i], errno);
        free(p);
    }
    /* A valid alignment with an impossible size: ENOMEM. */
    volatile size_t huge = SIZE_MAX - 100;
    void *p = NULL;
    int rc = posix_memalign_fn(&p, 64, huge);
    CHECK(rc == ENOMEM, "posix_memalign(.., 64, SIZE_MAX-100) returned %d, expected ENOMEM", rc);
    errno = 0;
    p = aligned_alloc_fn(4096, huge);
    CHECK(p == NULL && errno == ENOMEM, "aligned_alloc(4096, SIZE_MAX-100) = %p, errno %d", p,
          errno);
}

static void page_allocations(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t sizes[] = {1, 100, page - 1, page, page + 1, 3 * page + 7, 100000, 3 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = valloc(n);
        REQUIRE(p != NULL, "valloc(%zu) returned NULL", n);
        CHECK((uintptr_t)p % page == 0, "valloc(%zu) = %p is not page aligned", n, (void *)p);
        CHECK(malloc_usable_size(p) >= n, "valloc(%zu): usable %zu", n, malloc_usable_size(p));
        memset(p, 1, n);
        free(p);

        p = pvalloc(n);
        REQUIRE(p != NULL, "pvalloc(%zu) returned NULL", n);
        size_t rounded = (n + page - 1) / page * page;
        CHECK((uintptr_t)p % page == 0, "pvalloc(%zu) = %p is not page aligned", n, (void *)p);
        CHECK(malloc_usable_size(p) >= rounded, "pvalloc(%zu): usable %zu, expected >= %zu", n,
              malloc_usable_size(p), rounded);
        memset(p, 1, rounded); /* the whole rounded size is the caller's */
        free(p);
    }
}

int main(void)
{
    nm_test_require_numamalloc();
    every_alignment();
    small_alignments();
    bad_alignments();
    page_allocations();
    return nm_test_done();
}
