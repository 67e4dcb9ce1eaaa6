/* madvise_hook.c — a program that intercepts madvise and allocates from
 * inside it loses nothing when numamalloc gives memory back.
 *
 * MPI libraries intercept madvise, munmap and mmap to keep their caches of
 * registered memory right, and may call malloc from inside the hook.  This
 * program defines madvise itself (exported, so it takes the library's
 * calls, as such a hook does): while armed, each call allocates a 64 KiB
 * buffer, fills it with a tag of its own, keeps it, and then asks the
 * kernel.
 *
 * The pattern: 1024 buffers of 64 KiB (64 MiB), written; one in 8 kept,
 * the others freed, so almost every page keeps a live buffer and what goes
 * back is the inside of the free ones, in many batches (heap.c:
 * block_batch).  Armed, malloc_trim(0) gives it back: the hook's
 * allocations take blocks from the very pages being given back, between
 * the madvise calls.  Then every buffer the hook allocated must still hold
 * its tag in every byte, and every kept buffer its own bytes: a block
 * handed out while a walk was taking blocks, or advised after it was
 * handed out, would read zero.
 *
 * Not compared with glibc: its malloc_trim calls madvise holding the
 * arena's lock, and a hook that allocates there deadlocks. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define BUFFER (64 * KiB)
#define BUFFERS 1024
#define KEEP_ONE_IN 8
#define HOOK_MAX 4096

static unsigned char *buffers[BUFFERS];
static unsigned char *hooked[HOOK_MAX];
/* Atomic: glibc declares malloc_trim a leaf function (one that never
 * calls back into this file), so the compiler may keep plain variables
 * across the call. */
static _Atomic unsigned hook_count, hook_calls;
static _Atomic int armed;
static __thread int in_hook;

static unsigned char hook_tag(unsigned i)
{
    return (unsigned char)(0x80 | (i % 127));
}

int madvise(void *addr, size_t length, int advice)
{
    if (armed && !in_hook) {
        in_hook = 1;
        hook_calls++;
        unsigned n = hook_count;
        if (n < HOOK_MAX) {
            unsigned char *p = malloc(BUFFER);
            if (p) {
                memset(p, hook_tag(n), BUFFER);
                hooked[n] = p;
                hook_count = n + 1;
            }
        }
        in_hook = 0;
    }
    return (int)syscall(SYS_madvise, addr, length, advice);
}

/* Whether every byte of `p` is `byte`. */
static int all_bytes(const unsigned char *p, size_t len, unsigned char byte)
{
    for (size_t k = 0; k < len; k++)
        if (p[k] != byte) return 0;
    return 1;
}

int main(void)
{
    nm_test_require_numamalloc();
    if (getenv("NUMAMALLOC_SECURE"))
        nm_test_skip("secure mode gives back no free blocks' inside (NUMAMALLOC_SECURE is set)");
    for (int i = 0; i < BUFFERS; i++) {
        buffers[i] = malloc(BUFFER);
        REQUIRE(buffers[i] != NULL);
        memset(buffers[i], 0x5a, BUFFER);
    }
    for (int i = 0; i < BUFFERS; i++)
        if (i % KEEP_ONE_IN) {
            free(buffers[i]);
            buffers[i] = NULL;
        }

    armed = 1;
    malloc_trim(0);
    armed = 0;
    __asm__ volatile("" ::: "memory");   /* hooked[] was written inside the call */
    unsigned calls = hook_calls, count = hook_count;
    printf("malloc_trim(0): %u madvise calls, %u buffers allocated inside them\n", calls, count);
    CHECK(count > 1, "the hook allocated %u buffers: the trim made too few madvise calls to "
          "test anything", count);
    for (unsigned i = 0; i < count; i++)
        CHECK(all_bytes(hooked[i], BUFFER, hook_tag(i)),
              "buffer %u allocated inside madvise (%p) lost its bytes", i, (void *)hooked[i]);
    for (int i = 0; i < BUFFERS; i++)
        if (buffers[i])
            CHECK(all_bytes(buffers[i], BUFFER, 0x5a), "kept buffer %d (%p) lost its bytes", i,
                  (void *)buffers[i]);
    for (unsigned i = 0; i < count; i++) free(hooked[i]);
    for (int i = 0; i < BUFFERS; i++) free(buffers[i]);
    return nm_test_done();
}
