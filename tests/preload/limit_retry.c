/* limit_retry.c — under an address-space limit (setrlimit RLIMIT_AS, as
 * `ulimit -v 512M`), memory freed by the program is there for its next
 * allocations: when the kernel refuses a mapping, numamalloc gives back
 * what it caches (segments in its node caches, chunk reservations, spans,
 * free pages, other threads' remote frees) and tries once more.
 *
 * Each case runs in a child of its own with the 512 MiB limit:
 *   (a) one thread allocates 200 KB blocks (written) until the limit
 *       refuses one or 4,096 are live, frees them all, then asks for
 *       64 MiB: it must get it (and write all of it);
 *   (b) the same, but a second thread frees the blocks and exits before
 *       the 64 MiB request;
 *   (c) the same, but the second thread stays alive and idle (blocked on
 *       a pipe) during the request;
 *   (d) blocks of 200 KB fill the limit and are freed, then 8 MiB blocks
 *       (written) are allocated until one is refused: at least 256 MiB of
 *       them must fit (half the limit: the rest is the program, the
 *       library's 32 MiB segment map, stacks, and what the allocator
 *       keeps live), then they are freed and 200 KB blocks fill it again:
 *       at least as many as in the first round less 10%;
 *   (e) 1 MiB blocks come and go in three rounds (their spans wait in the
 *       span cache), then 200 KB blocks fill the limit: at least as many
 *       as after malloc_trim(0) less 10% (the heap's slow path gets the
 *       spans' address space back).
 * 512 MiB and 4,096 x 200 KB (800 MB) are the figures of the reported
 * case: the loop stops at the limit (about 1,770 blocks).
 *
 * Without the release and retry, (a) to (c) got NULL + ENOMEM for the
 * 64 MiB while hundreds of MiB sat in the caches; (d) got 0 bytes of 8 MiB
 * blocks; (e) 105 blocks of 200 KB against 1,785 after malloc_trim. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define LIMIT (512 * MiB)
#define BLOCK ((size_t)200 * 1000)
#define COUNT 4096
#define BIG (64 * MiB)

static void *blocks[COUNT];
static size_t live;

static void limit_address_space(void)
{
    struct rlimit rl = { LIMIT, LIMIT };
    REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit: %s", strerror(errno));
}

/* 200 KB blocks, each written, until 4,096 are live or one is refused. */
static size_t fill(void)
{
    live = 0;
    for (size_t i = 0; i < COUNT; i++) {
        void *p = malloc(BLOCK);
        if (!p) {
            REQUIRE(errno == ENOMEM, "errno %d after a refused malloc", errno);
            break;
        }
        memset(p, (int)(i & 0xff) | 1, BLOCK);
        blocks[live++] = p;
    }
    return live;
}

static void free_all(void)
{
    for (size_t i = 0; i < live; i++) free(blocks[i]);
    live = 0;
}

/* The request after the free: granted, and all of it writable. */
static int big_request(const char *what, size_t filled)
{
    errno = 0;
    char *p = malloc(BIG);
    if (!p) {
        fprintf(stderr, "%s: %zu blocks of 200 KB freed, then malloc(64 MiB) = NULL, errno %d\n",
                what, filled, errno);
        return 1;
    }
    memset(p, 0x5a, BIG);
    REQUIRE(p[0] == 0x5a && p[BIG - 1] == 0x5a);
    free(p);
    printf("%s: %zu blocks of 200 KB freed, then malloc(64 MiB) granted\n", what, filled);
    return 0;
}

static int case_single(void)
{
    limit_address_space();
    size_t n = fill();
    REQUIRE(n > 0);
    free_all();
    return big_request("one thread", n);
}

/* The second thread: started before the limit is reached (its stack is a
 * mapping too), it waits for the word to free the blocks, frees them, says
 * so, and then exits or stays idle until told to end. */
struct freer {
    int go[2], done[2];
    bool stays;
};

static void wait_byte(int fd)
{
    char c;
    ssize_t n;
    while ((n = read(fd, &c, 1)) < 0 && errno == EINTR) {
    }
    REQUIRE(n == 1);
}

static void *free_thread(void *arg)
{
    struct freer *f = arg;
    wait_byte(f->go[0]);
    free_all();
    REQUIRE(write(f->done[1], "f", 1) == 1);
    if (f->stays) wait_byte(f->go[0]);
    return NULL;
}

static int case_other_thread(bool stays)
{
    limit_address_space();
    struct freer f = { .stays = stays };
    REQUIRE(pipe(f.go) == 0 && pipe(f.done) == 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, free_thread, &f) == 0);
    size_t n = fill();
    REQUIRE(n > 0);
    REQUIRE(write(f.go[1], "g", 1) == 1);
    wait_byte(f.done[0]);                      /* it freed them */
    if (!stays) REQUIRE(pthread_join(t, NULL) == 0);
    int rc = big_request(stays ? "freed by an idle thread" : "freed by a thread that exited", n);
    if (stays) {
        REQUIRE(write(f.go[1], "e", 1) == 1);
        REQUIRE(pthread_join(t, NULL) == 0);
    }
    return rc;
}

static int case_rounds(void)
{
    limit_address_space();
    size_t first = fill();
    REQUIRE(first > 0);
    free_all();
    enum { BIGS = 64 };
    static char *big[BIGS];
    size_t n = 0;
    while (n < BIGS) {
        char *p = malloc(8 * MiB);
        if (!p) break;
        memset(p, 0x33, 8 * MiB);
        big[n++] = p;
    }
    for (size_t i = 0; i < n; i++) free(big[i]);
    size_t again = fill();
    free_all();
    printf("rounds: %zu blocks of 200 KB, then %zu MiB in 8 MiB blocks, then %zu blocks of 200 KB\n",
           first, n * 8, again);
    int rc = 0;
    if (n * 8 * MiB < LIMIT / 2) {
        fprintf(stderr, "rounds: only %zu MiB of 8 MiB blocks after freeing %zu blocks of 200 KB\n",
                n * 8, first);
        rc = 1;
    }
    if (again < first - first / 10) {
        fprintf(stderr, "rounds: %zu blocks of 200 KB the second time, %zu the first\n", again, first);
        rc = 1;
    }
    return rc;
}

/* Spans of freed 1 MiB blocks wait in the span cache (blocks that came
 * back in rounds earn it); then small and medium blocks need segments: the
 * heap's slow path must get the cached spans' address space back.  The
 * reference is the same fill after malloc_trim gave everything back. */
static int case_span_cache(void)
{
    limit_address_space();
    enum { MIBS = 512 };
    static char *one[MIBS];
    size_t n = 0;
    for (int round = 0; round < 3; round++) {
        for (n = 0; n < MIBS; n++) {
            one[n] = malloc(MiB);
            if (!one[n]) break;
            memset(one[n], 0x44, MiB);
        }
        REQUIRE(n > 0, "no 1 MiB block at all in round %d", round);
        for (size_t i = 0; i < n; i++) free(one[i]);
    }
    size_t after_spans = fill();
    free_all();
    malloc_trim(0);
    size_t after_trim = fill();
    free_all();
    printf("span cache: %zu blocks of 1 MiB in rounds, then %zu blocks of 200 KB "
           "(%zu after malloc_trim)\n", n, after_spans, after_trim);
    if (after_spans < after_trim - after_trim / 10) {
        fprintf(stderr, "span cache: %zu blocks of 200 KB after 1 MiB rounds, %zu after malloc_trim\n",
                after_spans, after_trim);
        return 1;
    }
    return 0;
}

static int run(int (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int rc = fn();
        fflush(stdout);
        _exit(rc);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status)) {
        fprintf(stderr, "a case died with signal %d\n", WTERMSIG(status));
        return 1;
    }
    return WEXITSTATUS(status);
}

static int exited(void) { return case_other_thread(false); }
static int idle(void) { return case_other_thread(true); }

int main(void)
{
    nm_test_require_numamalloc();
    CHECK(run(case_single) == 0, "one thread");
    CHECK(run(exited) == 0, "blocks freed by a thread that exited");
    CHECK(run(idle) == 0, "blocks freed by a thread that stays idle");
    CHECK(run(case_rounds) == 0, "rounds of 200 KB and 8 MiB blocks");
    CHECK(run(case_span_cache) == 0, "200 KB blocks after spans of 1 MiB blocks were cached");
    return nm_test_done();
}
