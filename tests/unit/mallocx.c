/* mallocx.c — the flags API of include/numamalloc.h: nm_mallocx,
 * nm_rallocx and nm_heap_mallocx with every flag and combination (NM_ALIGN
 * up to 1 GiB really aligns, NM_ZERO really zeroes a block freed dirty,
 * NM_NODE binds to the node as nm_malloc_onnode does, NM_STRICT comes from
 * the node's strict heap), every EINVAL case and ENOMEM; rallocx keeping
 * or changing the block's placement, moving blocks not aligned enough and
 * zeroing the grown tail; nm_free_sized / nm_free_aligned_sized and the
 * exported free_sized / free_aligned_sized with right sizes (every size
 * from malloc, realloc in place, aligned allocations) and wrong ones: one
 * line naming the pointer and the sizes, SIGABRT by default, the block
 * left alone with NUMAMALLOC_ON_ERROR=warn (this program re-executed);
 * nm_ptr_info on pointers to and into small, medium and large blocks,
 * freed blocks and pointers that are not numamalloc's.  Re-executed, it
 * runs all of that again under NUMAMALLOC_SECURE=1 (--secure: small
 * blocks checked against the exact size asked for, medium ones by their
 * class), and the sized frees under NUMAMALLOC_PROF=1
 * NUMAMALLOC_PROF_SAMPLE=1 (--prof: every block a sampled span of a whole
 * page, checked against the size the profiler recorded). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "numamalloc.h"
#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define MPOL_BIND_MODE 2

void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

static const size_t sizes[] = { 0, 1, 16, 100, 1000, 1024, 1025, 5000, 8192, 100 * KiB,
                                256 * KiB, 300 * KiB, 3 * MiB };
#define NSIZES (sizeof sizes / sizeof sizes[0])

static int node_ids[64];
static int node_count;
static bool secure;     /* NUMAMALLOC_SECURE=1: quarantined frees, exact sizes */
static bool sampled;    /* --prof: the heap profiler samples every block */

static bool has_memory(int node)
{
    uint64_t total = 0;
    nm_node_memory(node, &total, NULL);
    return total > 0;
}

static size_t first_nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return i;
    return n;
}

/* One allocation with `flags`, checked: alignment, usable size, placement
 * (node: bound to it, on it once written; strict: the node's strict heap),
 * and with NM_ZERO, zero bytes where a block of the same size and flags
 * was freed dirty just before.  Returns whether the zeroed block reused
 * the dirty one. */
static bool one(size_t size, size_t alignment, int node, bool strict, bool zero)
{
    int flags = (alignment ? NM_ALIGN(alignment) : 0) | (node >= 0 ? NM_NODE(node) : 0) |
                (strict ? NM_STRICT : 0);
    unsigned char *dirty = nm_mallocx(size, flags);
    REQUIRE(dirty != NULL, "nm_mallocx(%zu, align %zu node %d strict %d): errno %d", size,
            alignment, node, strict, errno);
    memset(dirty, 0xAB, size);
    nm_free(dirty);
    errno = 4242;
    unsigned char *p = nm_mallocx(size, flags | (zero ? NM_ZERO : 0));
    REQUIRE(p != NULL, "nm_mallocx(%zu, %#x)", size, (unsigned)flags);
    CHECK(errno == 4242, "errno changed to %d", errno);
    size_t want = alignment > 16 ? alignment : 16;
    CHECK((uintptr_t)p % want == 0, "nm_mallocx(%zu, NM_ALIGN(%zu)) = %p", size, alignment,
          (void *)p);
    CHECK(nm_usable_size(p) >= size);
    if (zero) {
        size_t at = first_nonzero(p, size);
        CHECK(at == size, "nm_mallocx(%zu, NM_ZERO | align %zu node %d strict %d): byte %zu is %#x",
              size, alignment, node, strict, at, at < size ? p[at] : 0);
    }
    struct nm_ptr_info info;
    REQUIRE(nm_ptr_info(p, &info) == 0);
    CHECK(info.start == p && info.usable_size == nm_usable_size(p));
    CHECK(info.heap == NULL, "a block of nm_mallocx names a heap");
    if (node >= 0 && size > 0) {
        memset(p, 0x11, size);
        CHECK(info.node == node, "asked node %d, segment's node %d", node, info.node);
        CHECK(info.policy.mode == NM_POLICY_BIND && nm_nodeset_has(&info.policy.nodes, node) &&
              nm_nodeset_count(&info.policy.nodes) == 1, "policy %d", (int)info.policy.mode);
        unsigned long mask0 = 0;
        int mode = nm_test_policy_of(p, &mask0);
        CHECK(mode == MPOL_BIND_MODE && mask0 == 1ul << node, "%zu B node %d strict %d: mode %d mask %#lx",
              size, node, strict, mode, mask0);
        CHECK(nm_test_node_of(p) == node);
    }
    bool reused = p == dirty;
    nm_free(p);
    return reused;
}

static void every_flag(void)
{
    static const size_t aligns[] = { 0, 1, 8, 16, 32, 64, 256, 4096, 8 * KiB, 64 * KiB,
                                     256 * KiB, 1 * MiB, 8 * MiB };
    int nodes[3] = { -1, -1, -1 };
    int n_nodes = 1;
    for (int i = 0; i < node_count && n_nodes < 3; i++)
        if (has_memory(node_ids[i])) nodes[n_nodes++] = node_ids[i];
    size_t zero_reused = 0, zero_total = 0;
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
        for (size_t s = 0; s < NSIZES; s++)
            for (int n = 0; n < n_nodes; n++)
                for (int strict = 0; strict <= (nodes[n] >= 0); strict++)
                    for (int zero = 0; zero <= 1; zero++) {
                        bool reused = one(sizes[s], aligns[a], nodes[n], strict, zero);
                        if (zero && sizes[s] > 0 && sizes[s] <= 256 * KiB) {
                            zero_total++;
                            zero_reused += reused;
                        }
                    }
    /* The zero check means something only where the dirty block came back
     * (secure mode's quarantine holds freed blocks back). */
    CHECK(secure || zero_reused * 2 > zero_total, "NM_ZERO reused the dirty block %zu times of %zu",
          zero_reused, zero_total);

    /* 1 GiB, the largest alignment. */
    void *p = nm_mallocx(100, NM_ALIGN(GiB));
    REQUIRE(p != NULL, "NM_ALIGN(1 GiB): errno %d", errno);
    CHECK((uintptr_t)p % GiB == 0);
    nm_free(p);

    /* Without flags: nm_malloc's placement, on the fast path's classes. */
    p = nm_mallocx(100, 0);
    void *q = nm_malloc(100);
    CHECK(nm_usable_size(p) == nm_usable_size(q));
    nm_free(q);
    nm_free(p);

    /* Alignments up to 4 KiB take the class whose size is the first multiple. */
    p = nm_mallocx(4096, NM_ALIGN(4096));
    CHECK(p && nm_usable_size(p) == 4096 && (uintptr_t)p % 4096 == 0);
    nm_free(p);

    /* nm_heap_mallocx: the heap's placement, aligned and zeroed. */
    nm_heap_t *h = nm_heap_new(NULL);
    REQUIRE(h != NULL);
    for (size_t s = 0; s < NSIZES; s++) {
        unsigned char *b = nm_heap_mallocx(h, sizes[s], NM_ALIGN(256));
        REQUIRE(b != NULL);
        memset(b, 0xCD, sizes[s]);
        nm_free(b);
        b = nm_heap_mallocx(h, sizes[s], NM_ALIGN(256) | NM_ZERO);
        REQUIRE(b != NULL);
        CHECK((uintptr_t)b % 256 == 0);
        CHECK(first_nonzero(b, sizes[s]) == sizes[s], "heap NM_ZERO %zu B", sizes[s]);
        struct nm_ptr_info info;
        REQUIRE(nm_ptr_info(b, &info) == 0);
        CHECK(info.heap == h, "block of heap %p: info names %p", (void *)h, (void *)info.heap);
        nm_free(b);
    }
    nm_heap_destroy(h);
}

static void expect_einval(void *p, const char *what)
{
    CHECK(p == NULL && errno == EINVAL, "%s: %p, errno %d", what, p, errno);
    if (p) nm_free(p);
}

static void invalid_flags(void)
{
    int missing = -1;   /* a node id below 1024 that is no node */
    for (int id = 0; id < NM_NODE_ID_LIMIT && missing < 0; id++) {
        bool found = false;
        for (int i = 0; i < node_count; i++) found |= node_ids[i] == id;
        if (!found) missing = id;
    }
    struct { int flags; const char *what; } bad[] = {
        { NM_ALIGN(0), "NM_ALIGN(0)" },
        { NM_ALIGN(3), "NM_ALIGN(3)" },
        { NM_ALIGN(48), "NM_ALIGN(48)" },
        { NM_ALIGN(2 * GiB), "NM_ALIGN(2 GiB)" },
        { 31, "log2 alignment 31" },
        { 63, "log2 alignment 63" },
        { 1 << 19, "bit 19" },
        { 1 << 29, "bit 29" },
        { NM_FLAGS_INVALID, "the invalid bit" },
        { INT32_MIN, "bit 31" },
        { NM_NODE(-1), "NM_NODE(-1)" },
        { NM_NODE(NM_NODE_ID_LIMIT), "NM_NODE(1024)" },
        { NM_NODE(missing), "NM_NODE(a missing id)" },
        { 1 << NM_NODE_SHIFT, "node bits without NM_NODE_GIVEN" },
        { NM_STRICT, "NM_STRICT without a node" },
        { NM_STRICT | NM_ZERO | NM_ALIGN(64), "NM_STRICT | NM_ZERO | NM_ALIGN without a node" },
        { NM_STRICT | NM_NODE(missing), "NM_STRICT | NM_NODE(a missing id)" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i].flags == NM_NODE(missing) && missing < 0) continue;
        errno = 0;
        expect_einval(nm_mallocx(100, bad[i].flags), bad[i].what);
        errno = 0;
        expect_einval(nm_mallocx(3 * MiB, bad[i].flags), bad[i].what);
        unsigned char *p = nm_malloc(100);
        REQUIRE(p != NULL);
        memset(p, 0x5A, 100);
        errno = 0;
        expect_einval(nm_rallocx(p, 200, bad[i].flags), bad[i].what);
        CHECK(first_nonzero(p, 100) == 0 && p[99] == 0x5A && nm_usable_size(p) >= 100,
              "nm_rallocx(%s) touched the block", bad[i].what);
        nm_free(p);
        errno = 0;
        expect_einval(nm_rallocx(NULL, 200, bad[i].flags), bad[i].what);
    }
    /* A heap places its blocks itself. */
    nm_heap_t *h = nm_heap_new(NULL);
    REQUIRE(h != NULL);
    errno = 0;
    expect_einval(nm_heap_mallocx(h, 100, NM_NODE(node_ids[0])), "nm_heap_mallocx(NM_NODE)");
    errno = 0;
    expect_einval(nm_heap_mallocx(h, 100, NM_NODE(node_ids[0]) | NM_STRICT), "nm_heap_mallocx(NM_STRICT)");
    errno = 0;
    expect_einval(nm_heap_mallocx(h, 100, NM_ALIGN(5)), "nm_heap_mallocx(NM_ALIGN(5))");
    errno = 0;
    expect_einval(nm_heap_mallocx(h, 100, 1 << 20), "nm_heap_mallocx(bit 20)");
    nm_heap_destroy(h);

    /* ENOMEM as malloc gives it. */
    volatile size_t huge = SIZE_MAX, big = (size_t)PTRDIFF_MAX + 1;
    int node = node_ids[0];
    int enomem[] = { 0, NM_ALIGN(64), NM_ALIGN(8 * MiB), NM_ZERO, NM_NODE(node),
                     NM_NODE(node) | NM_STRICT, NM_NODE(node) | NM_ALIGN(4096) | NM_ZERO };
    for (size_t i = 0; i < sizeof enomem / sizeof enomem[0]; i++) {
        errno = 0;
        void *p = nm_mallocx(huge, enomem[i]);
        CHECK(p == NULL && errno == ENOMEM, "nm_mallocx(SIZE_MAX, %#x): %p errno %d",
              (unsigned)enomem[i], p, errno);
        errno = 0;
        p = nm_mallocx(big, enomem[i]);
        CHECK(p == NULL && errno == ENOMEM, "nm_mallocx(PTRDIFF_MAX + 1, %#x): errno %d",
              (unsigned)enomem[i], errno);
        void *b = nm_malloc(64);
        errno = 0;
        p = nm_rallocx(b, huge, enomem[i]);
        CHECK(p == NULL && errno == ENOMEM && nm_usable_size(b) >= 64, "nm_rallocx(SIZE_MAX, %#x)",
              (unsigned)enomem[i]);
        nm_free(b);
    }
    /* A strict block bigger than the node: refused up front. */
    uint64_t total = 0;
    nm_node_memory(node, &total, NULL);
    errno = 0;
    void *p = nm_mallocx((size_t)total * 2, NM_NODE(node) | NM_STRICT);
    CHECK(p == NULL && errno == ENOMEM, "strict %llu bytes on node %d: %p errno %d",
          (unsigned long long)total * 2, node, p, errno);
}

static void rallocx(void)
{
    int node = node_ids[0];
    /* No node flag: the block keeps its placement. */
    unsigned char *p = nm_malloc_onnode(100, node);
    REQUIRE(p != NULL);
    memset(p, 0x42, 100);
    p = nm_rallocx(p, 20000, 0);
    REQUIRE(p != NULL);
    struct nm_ptr_info info;
    REQUIRE(nm_ptr_info(p, &info) == 0);
    CHECK(info.policy.mode == NM_POLICY_BIND && info.node == node, "an on-node block lost its node");
    CHECK(first_nonzero(p, 100) == 0 && p[0] == 0x42 && p[99] == 0x42);
    for (size_t i = 0; i < 100; i++) CHECK(p[i] == 0x42);
    nm_free(p);

    /* A node flag moves a plain block to the node's bound placement. */
    p = nm_malloc(100);
    memset(p, 0x43, 100);
    REQUIRE(nm_ptr_info(p, &info) == 0);
    CHECK(info.policy.mode != NM_POLICY_BIND, "a plain block is bound");
    p = nm_rallocx(p, 100, NM_NODE(node));
    REQUIRE(p != NULL && nm_ptr_info(p, &info) == 0);
    CHECK(info.policy.mode == NM_POLICY_BIND && info.node == node);
    CHECK(p[0] == 0x43 && p[99] == 0x43);
    /* ... and NM_STRICT to the node's strict heap. */
    p = nm_rallocx(p, 300, NM_NODE(node) | NM_STRICT);
    REQUIRE(p != NULL && nm_ptr_info(p, &info) == 0);
    CHECK(info.policy.mode == NM_POLICY_BIND && info.heap == NULL && p[99] == 0x43);
    /* Which it then keeps. */
    unsigned char *q = nm_rallocx(p, 50000, 0);
    REQUIRE(q != NULL);
    struct nm_ptr_info qi;
    REQUIRE(nm_ptr_info(q, &qi) == 0);
    CHECK(qi.policy.mode == NM_POLICY_BIND && q[99] == 0x43);
    nm_free(q);

    /* A heap's block stays in its heap. */
    nm_heap_t *h = nm_heap_new(NULL);
    p = nm_heap_malloc(h, 100);
    p = nm_rallocx(p, 400 * KiB, NM_ZERO);
    REQUIRE(p != NULL && nm_ptr_info(p, &info) == 0);
    CHECK(info.heap == h);
    nm_free(p);
    nm_heap_destroy(h);

    /* Alignment: kept when the block already is, moved when it is not. */
    p = nm_mallocx(4096, NM_ALIGN(4096));
    q = nm_rallocx(p, 4000, NM_ALIGN(4096));
    CHECK(q == p, "an aligned block that fits moved");
    nm_free(q);
    for (size_t a = 32; a <= 2 * MiB; a *= 4) {
        unsigned char *b = NULL;
        void *keep[64];
        int kept = 0;
        /* A block that is not aligned to `a` (every block is 4 KiB aligned
         * when the profiler samples them all: nothing to move then). */
        while (kept < 64) {
            b = nm_malloc(100);
            if ((uintptr_t)b % a) break;
            keep[kept++] = b;
        }
        for (int i = 0; i < kept; i++) nm_free(keep[i]);
        if (kept == 64) continue;
        for (int i = 0; i < 100; i++) b[i] = (unsigned char)i;
        unsigned char *c = nm_rallocx(b, 100, NM_ALIGN(a));
        REQUIRE(c != NULL);
        CHECK((uintptr_t)c % a == 0, "nm_rallocx(NM_ALIGN(%zu)) = %p", a, (void *)c);
        for (int i = 0; i < 100; i++) CHECK(c[i] == (unsigned char)i);
        nm_free(c);
    }

    /* NM_ZERO: from the old usable size on. */
    for (size_t s = 1; s < NSIZES; s++) {
        for (size_t t = 1; t < NSIZES; t++) {
            unsigned char *b = nm_malloc(sizes[s]);
            size_t old = nm_usable_size(b);
            memset(b, 0x77, old);
            /* A dirty block of the new size waits to be reused. */
            unsigned char *d = nm_malloc(sizes[t]);
            memset(d, 0x99, sizes[t]);
            nm_free(d);
            unsigned char *c = nm_rallocx(b, sizes[t], NM_ZERO);
            REQUIRE(c != NULL);
            size_t kept = old < sizes[t] ? old : sizes[t];
            size_t at = first_nonzero(c + kept, sizes[t] - kept);
            CHECK(at == sizes[t] - kept, "rallocx %zu -> %zu NM_ZERO: byte %zu not zero", sizes[s],
                  sizes[t], kept + at);
            size_t bad = 0;
            for (size_t i = 0; i < kept; i++) bad += c[i] != 0x77;
            CHECK(bad == 0, "rallocx %zu -> %zu lost %zu bytes", sizes[s], sizes[t], bad);
            nm_free(c);
        }
    }

    /* Size 0 resizes, NULL allocates. */
    p = nm_malloc(1000);
    q = nm_rallocx(p, 0, 0);
    CHECK(q != NULL, "nm_rallocx(p, 0, 0) = NULL");
    nm_free(q);
    q = nm_rallocx(NULL, 100, NM_ZERO | NM_ALIGN(128));
    CHECK(q && (uintptr_t)q % 128 == 0 && first_nonzero(q, 100) == 100);
    nm_free(q);
}

/* ---- sized frees ---------------------------------------------------------------------------- */

static void sized_right(void)
{
    /* Every size malloc takes, up to 300 KiB, freed with its size; every
     * size from realloc in place. */
    for (size_t size = 0; size <= 300 * KiB; size += size < 4096 ? 1 : size < 64 * KiB ? 97 : 1021) {
        void *p = nm_malloc(size);
        nm_free_sized(p, size);
        p = nm_malloc(size);
        free_sized(p, size);
    }
    for (size_t s = 0; s < NSIZES; s++) {
        unsigned char *p = nm_malloc(sizes[s]);
        size_t usable = nm_usable_size(p);
        /* realloc keeps a block down to half its usable size */
        unsigned char *q = nm_realloc(p, usable / 2 ? usable / 2 : 1);
        CHECK(q == p || sizes[s] <= 16);
        nm_free_sized(q, usable / 2 ? usable / 2 : 1);
        p = nm_calloc(1, sizes[s]);
        nm_free_sized(p, sizes[s]);
        p = nm_malloc_onnode(sizes[s], node_ids[0]);
        nm_free_sized(p, sizes[s]);
        p = nm_mallocx(sizes[s], NM_ZERO);
        nm_free_sized(p, sizes[s]);
    }
    for (size_t a = 1; a <= 4 * MiB; a *= 2) {
        for (size_t s = 0; s < NSIZES; s++) {
            void *p = nm_aligned_alloc(a, sizes[s]);
            REQUIRE(p != NULL);
            nm_free_aligned_sized(p, a, sizes[s]);
            p = nm_mallocx(sizes[s], NM_ALIGN(a));
            free_aligned_sized(p, a, sizes[s]);
        }
    }
    nm_free_sized(NULL, 100);
    nm_free_aligned_sized(NULL, 3, 100);
    free_sized(NULL, 0);
    free_aligned_sized(NULL, 64, 64);
}

/* The wrong frees, each run by a child: returns the block it was about. */
enum wrong { W_TOO_BIG, W_TOO_SMALL, W_LARGE_TOO_SMALL, W_LARGE_TOO_BIG, W_ALIGNED_SIZE,
             W_ALIGNMENT, W_NOT_POW2, W_LIBC, W_LIBC_ALIGNED, W_COUNT };
static const char *const wrong_name[W_COUNT] = {
    "too big", "too small", "large too small", "large too big", "aligned size",
    "alignment", "not a power of two", "free_sized", "free_aligned_sized",
};

static void *wrong_free(enum wrong w, size_t *size)
{
    void *p;
    switch (w) {
    case W_TOO_BIG: p = nm_malloc(100); *size = 200; nm_free_sized(p, 200); break;
    case W_TOO_SMALL: p = nm_malloc(5000); *size = 100; nm_free_sized(p, 100); break;
    case W_LARGE_TOO_SMALL: p = nm_malloc(3 * MiB); *size = 1000; nm_free_sized(p, 1000); break;
    case W_LARGE_TOO_BIG: p = nm_malloc(3 * MiB); *size = 5 * MiB; nm_free_sized(p, 5 * MiB); break;
    case W_ALIGNED_SIZE:
        p = nm_aligned_alloc(4096, 100);
        *size = 100;
        nm_free_aligned_sized(p, 64, 100);   /* aligned_alloc(64, 100) gives 128 bytes */
        break;
    case W_ALIGNMENT:
        for (int tries = 0; tries < 64 && (p = nm_malloc(100)) && (uintptr_t)p % 4096 == 0; tries++) {
        }
        *size = 100;
        nm_free_aligned_sized(p, 4096, 100);
        break;
    case W_NOT_POW2: p = nm_malloc(100); *size = 100; nm_free_aligned_sized(p, 48, 100); break;
    case W_LIBC: p = nm_malloc(1000); *size = 10; free_sized(p, 10); break;
    case W_LIBC_ALIGNED: p = nm_malloc(1000); *size = 2000; free_aligned_sized(p, 16, 2000); break;
    default: p = NULL;
    }
    return p;
}

/* In a child with stderr on a pipe: the wrong free, then exit 0. */
static void run_wrong(enum wrong w, char *err, size_t cap, int *status, void **block, size_t *size)
{
    int out[2], fds[2];
    REQUIRE(pipe(fds) == 0 && pipe(out) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        size_t sz = 0;
        void *p = wrong_free(w, &sz);
        char line[64];
        int n = snprintf(line, sizeof line, "%p %zu\n", p, sz);
        if (write(out[1], line, (size_t)n) != n) _exit(3);
        /* With warn the block is still live and can be freed for real. */
        struct nm_ptr_info info;
        if (nm_ptr_info(p, &info) != 0) _exit(4);
        nm_free(p);
        _exit(0);
    }
    close(fds[1]);
    close(out[1]);
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fds[0], err + len, cap - 1 - len)) > 0) len += (size_t)n;
    err[len] = '\0';
    char line[64] = "";
    n = read(out[0], line, sizeof line - 1);
    line[n > 0 ? n : 0] = '\0';
    *block = NULL;
    *size = 0;
    sscanf(line, "%p %zu", block, size);
    close(fds[0]);
    close(out[0]);
    waitpid(pid, status, 0);
}

static void sized_wrong(bool warn)
{
    for (int w = 0; w < W_COUNT; w++) {
        /* Secure mode knows the size asked for, 100, and checks that alone;
         * so does the profiler for a block it sampled, and a sampled block
         * starts a page: 4096-aligned, as W_ALIGNMENT looks for one not. */
        if ((secure || sampled) && w == W_ALIGNED_SIZE) continue;
        if (sampled && w == W_ALIGNMENT) continue;
        char err[4096];
        int status;
        void *block = NULL;
        size_t size = 0;
        run_wrong((enum wrong)w, err, sizeof err, &status, &block, &size);
        char ptr[32], sz[32];
        snprintf(ptr, sizeof ptr, "%#lx", (unsigned long)(uintptr_t)block);
        snprintf(sz, sizeof sz, " %zu", size);
        size_t lines = 0;
        for (char *c = err; *c; c++) lines += *c == '\n';
        if (warn) {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "%s with warn: child status %#x", wrong_name[w], status);
        } else {
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "%s: child status %#x (no SIGABRT)", wrong_name[w], status);
        }
        CHECK(lines == 1 && strncmp(err, "numamalloc: ", 12) == 0 && strstr(err, ptr) &&
                  (w == W_NOT_POW2 || w == W_ALIGNMENT || strstr(err, sz)),
              "%s (%s): stderr: %s", wrong_name[w], warn ? "warn" : "abort", err);
        if (w == W_LIBC || w == W_LIBC_ALIGNED)
            CHECK(strstr(err, w == W_LIBC ? "free_sized()" : "free_aligned_sized()") != NULL,
                  "%s", err);
        if (w == W_ALIGNMENT) CHECK(strstr(err, "alignment 4096") != NULL, "%s", err);
        if (w == W_NOT_POW2) CHECK(strstr(err, "alignment 48 is not a power of two") != NULL, "%s", err);
    }
}

/* ---- nm_ptr_info ------------------------------------------------------------------------------ */

static char global_buf[256];

static void ptr_info(void)
{
    static const struct { size_t size; enum nm_ptr_kind kind; } blocks[] = {
        { 16, NM_PTR_SMALL }, { 100, NM_PTR_SMALL }, { 8 * KiB, NM_PTR_SMALL },
        { 100 * KiB, NM_PTR_MEDIUM }, { 256 * KiB, NM_PTR_MEDIUM },
        { 1 * MiB, NM_PTR_LARGE }, { 3 * MiB, NM_PTR_LARGE },
    };
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        /* A few neighbours, so that an interior pointer has blocks around. */
        unsigned char *before = nm_malloc(blocks[i].size);
        unsigned char *p = nm_malloc(blocks[i].size);
        unsigned char *after = nm_malloc(blocks[i].size);
        size_t usable = nm_usable_size(p);
        size_t offsets[] = { 0, 1, 15, 16, usable / 2, usable - 1 };
        for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
            if (offsets[o] >= usable) continue;
            struct nm_ptr_info info;
            memset(&info, 0xEE, sizeof info);
            int rc = nm_ptr_info(p + offsets[o], &info);
            CHECK(rc == 0, "nm_ptr_info(%zu B block + %zu) = %d", blocks[i].size, offsets[o], rc);
            CHECK(info.start == p, "%zu B + %zu: start %p, block %p", blocks[i].size, offsets[o],
                  info.start, (void *)p);
            /* (Secure mode's canary takes an 8 KiB request to a medium block.) */
            CHECK(info.usable_size == usable &&
                      (info.kind == blocks[i].kind || (secure && blocks[i].size == 8 * KiB)),
                  "%zu B + %zu: %zu %d",
                  blocks[i].size, offsets[o], info.usable_size, (int)info.kind);
            CHECK(info.heap == NULL);
            bool known = false;
            for (int n = 0; n < node_count; n++) known |= info.node == node_ids[n];
            CHECK(known, "node %d", info.node);
            CHECK(info.policy.mode != NM_POLICY_BIND, "a plain block's policy is bind");
        }
        nm_free(p);
        struct nm_ptr_info info;
        errno = 0;
        CHECK(nm_ptr_info(p, &info) == -1 && errno == EINVAL, "freed %zu B block", blocks[i].size);
        errno = 0;
        CHECK(nm_ptr_info(p + usable / 2, &info) == -1 && errno == EINVAL, "inside a freed %zu B block",
              blocks[i].size);
        nm_free(before);
        nm_free(after);
    }
    /* Heaps and nodes. */
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_nodeset_add(&set, node_ids[0]);
    nm_policy inter = nm_policy_interleave(&set);
    nm_heap_t *h = nm_heap_new(&inter);
    REQUIRE(h != NULL);
    size_t heap_sizes[] = { 64, 20000, 2 * MiB };
    for (int i = 0; i < 3; i++) {
        unsigned char *b = nm_heap_malloc(h, heap_sizes[i]);
        struct nm_ptr_info info;
        REQUIRE(nm_ptr_info(b + 10, &info) == 0);
        CHECK(info.heap == h && info.start == b && info.policy.mode == NM_POLICY_INTERLEAVE &&
              nm_nodeset_has(&info.policy.nodes, node_ids[0]) && info.node == node_ids[0]);
        nm_free(b);
    }
    nm_heap_destroy(h);
    unsigned char *b = nm_malloc_onnode(3000, node_ids[0]);
    struct nm_ptr_info info;
    REQUIRE(nm_ptr_info(b + 2999, &info) == 0);
    CHECK(info.start == b && info.node == node_ids[0] && info.policy.mode == NM_POLICY_BIND);
    nm_free(b);

    /* Not numamalloc's. */
    int local = 0;
    void *map = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(map != MAP_FAILED);
    const void *foreign[] = { NULL, &local, global_buf, map, (char *)map + 100, (void *)1,
                              (void *)UINTPTR_MAX, (void *)((uintptr_t)1 << 47) };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        errno = 0;
        CHECK(nm_ptr_info(foreign[i], &info) == -1 && errno == EINVAL, "nm_ptr_info(%p)", foreign[i]);
    }
    munmap(map, 4 * MiB);
    /* A segment's header is no block. */
    b = nm_malloc(100);
    errno = 0;
    CHECK(nm_ptr_info((void *)((uintptr_t)b & ~(uintptr_t)(4 * MiB - 1)), &info) == -1 && errno == EINVAL,
          "a segment header");
    nm_free(b);
}

int main(int argc, char **argv)
{
    node_count = nm_node_ids(node_ids, 64);
    secure = getenv("NUMAMALLOC_SECURE") && strcmp(getenv("NUMAMALLOC_SECURE"), "1") == 0;
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "--warn") == 0) {
        sized_wrong(true);
        return nm_test_done();
    }
    if (strcmp(mode, "--prof") == 0) {
        /* Every block sampled, a span of its own: the sized frees check
         * the size the profiler recorded, not the page-rounded span. */
        void *p = nm_malloc(100);
        REQUIRE(nm_usable_size(p) == 4096, "NUMAMALLOC_PROF_SAMPLE=1 did not take: usable size %zu",
                nm_usable_size(p));
        nm_free(p);
        sampled = true;
        sized_right();
        sized_wrong(false);
        return nm_test_done();
    }
    if (strcmp(mode, "--secure") == 0) {
        /* Secure mode's canary takes an 8 KiB request to a medium block. */
        void *p = nm_malloc(8 * KiB);
        struct nm_ptr_info info;
        REQUIRE(secure && nm_ptr_info(p, &info) == 0 && info.kind == NM_PTR_MEDIUM,
                "NUMAMALLOC_SECURE=1 did not take");
        nm_free(p);
    }
    every_flag();
    invalid_flags();
    rallocx();
    sized_right();
    sized_wrong(false);
    ptr_info();
    /* The same wrong frees under NUMAMALLOC_ON_ERROR=warn (read at start). */
    static const char *const warn[] = { "NUMAMALLOC_ON_ERROR", "warn", NULL };
    nm_test_run_self(argv[0], "--warn", warn);
    if (mode[0] == '\0') {
        /* All of it again in secure mode; the sized frees with every block
         * sampled by the heap profiler (its exit profile thrown away). */
        static const char *const secure_vars[] = { "NUMAMALLOC_SECURE", "1", NULL };
        nm_test_run_self(argv[0], "--secure", secure_vars);
        static const char *const prof_vars[] = { "NUMAMALLOC_PROF", "1", "NUMAMALLOC_PROF_SAMPLE", "1",
                                                 "NUMAMALLOC_PROF_FILE", "/dev/null", NULL };
        nm_test_run_self(argv[0], "--prof", prof_vars);
    }
    return nm_test_done();
}
