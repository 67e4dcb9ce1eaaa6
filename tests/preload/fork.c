/* fork.c — fork while other threads are busy in malloc and free, and the
 * child's heap still works: it reads, frees and resizes blocks the parent
 * allocated before the fork, allocates on its own and from a new thread,
 * then _exit(0)s.  Also fork from a SIGALRM handler (the timer interrupts the
 * main thread in and out of malloc), and fork while a thread writes FILE
 * streams and calls fflush(NULL).  A child that does not finish in time, or
 * a parent stuck in fork, is a failure (a deadlock in the allocator's or
 * libc's fork handling), caught by timeouts and a watchdog thread. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define CHILD_TIMEOUT_S 20
#define SECTION_TIMEOUT_S 90

static size_t random_size(uint64_t *rng)
{
    uint64_t r = nm_test_random(rng);
    if (r % 64 == 0) return 1 * MiB + (size_t)(r >> 20) % MiB;
    if (r % 256 == 1) return 3 * MiB;
    size_t base = (size_t)16 << ((r >> 8) % 12);
    return base + (size_t)((r >> 16) % base);
}

/* ---- watchdog: a parent stuck (in fork, or anywhere) fails the test ---- */

static _Atomic double section_deadline;
static const char *_Atomic section_name = "start";

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        usleep(100 * 1000);
        if (nm_test_now() > atomic_load(&section_deadline)) {
            char msg[200];
            int n = snprintf(msg, sizeof msg, "fork.c: %s did not finish in %d s: deadlock?\n",
                             atomic_load(&section_name), SECTION_TIMEOUT_S);
            if (write(2, msg, (size_t)n) < 0) _exit(3);
            _exit(3);
        }
    }
    return NULL;
}

static void begin_section(const char *name)
{
    atomic_store(&section_name, name);
    atomic_store(&section_deadline, nm_test_now() + SECTION_TIMEOUT_S);
    printf("%s\n", name);
    fflush(stdout);
}

/* ---- busy threads: malloc, fill, check and free until told to stop ---- */

static atomic_int stop_busy;

static void *busy(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    unsigned char *slot[64] = {0};
    size_t size[64] = {0};
    while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
        int i = (int)(nm_test_random(&rng) % 64);
        if (slot[i]) {
            unsigned char v = (unsigned char)size[i];
            CHECK(slot[i][0] == v && slot[i][size[i] - 1] == v, "busy thread: block %p changed",
                  (void *)slot[i]);
            free(slot[i]);
            slot[i] = NULL;
        } else {
            size[i] = random_size(&rng);
            slot[i] = malloc(size[i]);
            REQUIRE(slot[i] != NULL, "busy thread: malloc(%zu)", size[i]);
            memset(slot[i], (unsigned char)size[i], size[i] < 4096 ? size[i] : 4096);
            slot[i][size[i] - 1] = (unsigned char)size[i];
        }
    }
    for (int i = 0; i < 64; i++) free(slot[i]);
    return NULL;
}

#define BUSY_THREADS 3
static pthread_t busy_tid[BUSY_THREADS];

static void start_busy(void)
{
    atomic_store(&stop_busy, 0);
    for (int i = 0; i < BUSY_THREADS; i++) {
        int rc = pthread_create(&busy_tid[i], NULL, busy, (void *)(uintptr_t)(i + 1));
        REQUIRE(rc == 0, "pthread_create: error %d", rc);
    }
}

static void stop_busy_threads(void)
{
    atomic_store(&stop_busy, 1);
    for (int i = 0; i < BUSY_THREADS; i++) pthread_join(busy_tid[i], NULL);
}

/* Wait for a child; it must exit with `expected` within the timeout. */
static void wait_child(pid_t pid, int expected, const char *what)
{
    double deadline = nm_test_now() + CHILD_TIMEOUT_S;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            CHECK(0, "%s: waitpid(%d): %s", what, (int)pid, strerror(errno));
            return;
        }
        if (nm_test_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            CHECK(0, "%s: child %d did not exit within %d s (deadlock after fork?)", what,
                  (int)pid, CHILD_TIMEOUT_S);
            return;
        }
        usleep(2000);
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == expected,
          "%s: child %d ended with %s %d, expected exit status %d", what, (int)pid,
          WIFEXITED(status) ? "exit status" : "signal",
          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), expected);
}

/* ---- blocks the parent allocates before forking ---- */

#define PRE_BLOCKS 200

struct pre_block { unsigned char *p; size_t size; };
static struct pre_block pre[PRE_BLOCKS];

static unsigned char pre_byte(size_t block, size_t i) { return (unsigned char)(block * 31 + i * 7); }

static void make_pre_blocks(void)
{
    uint64_t rng = 12345;
    for (size_t b = 0; b < PRE_BLOCKS; b++) {
        size_t size = (b % 100 == 0) ? 4 * MiB + b : random_size(&rng);
        pre[b].p = malloc(size);
        REQUIRE(pre[b].p != NULL, "malloc(%zu)", size);
        pre[b].size = size;
        for (size_t i = 0; i < size; i++) pre[b].p[i] = pre_byte(b, i);
    }
}

static int pre_block_ok(size_t b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (pre[b].p[i] != pre_byte(b, i)) return 0;
    return 1;
}

static void free_pre_blocks(void)
{
    for (size_t b = 0; b < PRE_BLOCKS; b++) {
        CHECK(pre_block_ok(b, pre[b].size), "parent: block %zu changed by a child", b);
        free(pre[b].p);
    }
}

/* Random work in the current thread: allocate, check, free. */
static void churn(uint64_t seed, int rounds)
{
    uint64_t rng = seed;
    unsigned char *held[32] = {0};
    size_t held_size[32] = {0};
    for (int r = 0; r < rounds; r++) {
        int i = (int)(nm_test_random(&rng) % 32);
        if (held[i]) {
            CHECK(held[i][0] == (unsigned char)i && held[i][held_size[i] - 1] == (unsigned char)i,
                  "churn: block %p changed", (void *)held[i]);
            free(held[i]);
            held[i] = NULL;
        } else {
            held_size[i] = random_size(&rng);
            held[i] = malloc(held_size[i]);
            REQUIRE(held[i] != NULL, "churn: malloc(%zu)", held_size[i]);
            held[i][0] = held[i][held_size[i] - 1] = (unsigned char)i;
        }
    }
    for (int i = 0; i < 32; i++) free(held[i]);
}

static void *child_thread(void *arg)
{
    churn((uintptr_t)arg, 5000);
    return NULL;
}

/* What a child does after a fork from normal code.  Its exit status says
 * whether its own checks passed: the count it inherited is the parent's. */
static void child_after_fork(int round)
{
    nm_test_failures = 0;
    for (size_t b = 0; b < PRE_BLOCKS; b++) {
        CHECK(pre_block_ok(b, pre[b].size), "child: parent's block %zu (%zu bytes) differs", b,
              pre[b].size);
        if (b % 2 == 0) {
            free(pre[b].p);
        } else {
            size_t keep = pre[b].size;
            unsigned char *q = realloc(pre[b].p, keep * 2 + 100);
            REQUIRE(q != NULL, "child: realloc");
            pre[b].p = q;
            CHECK(pre_block_ok(b, keep), "child: realloc lost the parent's block %zu", b);
            free(q);
        }
    }
    churn((uint64_t)round * 77 + 5, 5000);
    pthread_t t;
    int rc = pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(round + 1));
    CHECK(rc == 0, "child: pthread_create: error %d", rc);
    if (rc == 0) pthread_join(t, NULL);
    _exit(nm_test_failures ? 1 : 0);
}

static void fork_from_threads(void)
{
    begin_section("fork while threads allocate");
    make_pre_blocks();
    start_busy();
    for (int round = 0; round < 20; round++) {
        usleep(2000);
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) child_after_fork(round);
        wait_child(pid, 0, "fork while threads allocate");
        churn((uint64_t)round, 2000);
    }
    stop_busy_threads();
    free_pre_blocks();
}

/* ---- fork from a signal handler ---- */

#define SIGNAL_FORKS 40
static volatile sig_atomic_t main_in_malloc;
static volatile sig_atomic_t signal_forks;
static volatile sig_atomic_t fork_failed;
static volatile sig_atomic_t fork_errno;   /* errno of the fork that failed */
static pid_t signal_child[SIGNAL_FORKS];

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    if (signal_forks >= SIGNAL_FORKS) return;
    int in_malloc = main_in_malloc;
    pid_t pid = fork();
    if (pid == 0) {
        /* When the handler interrupted this thread inside malloc, the child
         * only exits (that heap is mid-update in this thread); otherwise it
         * may use the heap. */
        if (!in_malloc) {
            void *p = malloc(1000), *q = malloc(3 * MiB);
            if (!p || !q) _exit(1);
            memset(p, 1, 1000);
            memset(q, 2, 4096);
            free(p);
            free(q);
        }
        _exit(42);
    }
    if (pid < 0) {
        fork_failed = 1;
        fork_errno = errno;
    } else {
        signal_child[signal_forks++] = pid;
    }
    errno = saved;
}

static void fork_from_signal_handler(void)
{
    begin_section("fork from a SIGALRM handler");
    /* Only the main thread takes SIGALRM: the busy threads start with it
     * blocked. */
    sigset_t alarm_set, old;
    sigemptyset(&alarm_set);
    sigaddset(&alarm_set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm_set, &old);
    start_busy();
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every_3ms = {{0, 3000}, {0, 3000}};
    setitimer(ITIMER_REAL, &every_3ms, NULL);

    uint64_t rng = 99;
    double give_up = nm_test_now() + 60;
    while (signal_forks < SIGNAL_FORKS && !fork_failed && nm_test_now() < give_up) {
        size_t n = random_size(&rng);
        main_in_malloc = 1;
        atomic_signal_fence(memory_order_seq_cst);
        unsigned char *p = malloc(n);
        atomic_signal_fence(memory_order_seq_cst);
        main_in_malloc = 0;
        REQUIRE(p != NULL, "malloc(%zu)", n);
        p[0] = p[n - 1] = 7;
        main_in_malloc = 1;
        atomic_signal_fence(memory_order_seq_cst);
        free(p);
        atomic_signal_fence(memory_order_seq_cst);
        main_in_malloc = 0;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    signal(SIGALRM, SIG_IGN);
    CHECK(!fork_failed, "fork in the signal handler failed: %s", strerror(fork_errno));
    CHECK(signal_forks == SIGNAL_FORKS, "only %d forks from the handler in 60 s",
          (int)signal_forks);
    for (int i = 0; i < signal_forks; i++)
        wait_child(signal_child[i], 42, "fork from a signal handler");
    stop_busy_threads();
}

/* ---- fork while another thread flushes FILE streams ---- */

static atomic_int stop_stdio;

#define STREAMS 8
static void *stdio_writer(void *arg)
{
    (void)arg;
    FILE *f[STREAMS];
    char *mem[STREAMS] = {0};
    size_t mem_size[STREAMS] = {0};
    uint64_t rng = 4242;
    for (int i = 0; i < STREAMS; i++) {
        f[i] = (i % 2) ? open_memstream(&mem[i], &mem_size[i]) : tmpfile();
        REQUIRE(f[i] != NULL, "stream %d: %s", i, strerror(errno));
    }
    for (unsigned long n = 0; !atomic_load(&stop_stdio); n++) {
        int i = (int)(nm_test_random(&rng) % STREAMS);
        fprintf(f[i], "line %lu of stream %d: %0*d\n", n, i, (int)(nm_test_random(&rng) % 200), 0);
        if (n % 4 == 0) fflush(NULL);
        if (n % 500 == 0) {
            /* Reopen: a fresh FILE (allocated with malloc), and for memory
             * streams a fresh buffer grown with realloc. */
            fclose(f[i]);
            free(mem[i]);
            mem[i] = NULL;
            f[i] = (i % 2) ? open_memstream(&mem[i], &mem_size[i]) : tmpfile();
            REQUIRE(f[i] != NULL, "reopen stream %d: %s", i, strerror(errno));
        }
    }
    for (int i = 0; i < STREAMS; i++) {
        fclose(f[i]);
        free(mem[i]);
    }
    return NULL;
}

static void child_with_stdio(int round)
{
    nm_test_failures = 0; /* the parent's count: this child's checks start here */
    fflush(NULL); /* the parent's streams, with whatever state fork left */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    CHECK(m != NULL, "child %d: open_memstream: %s", round, strerror(errno));
    FILE *t = tmpfile();
    CHECK(t != NULL, "child %d: tmpfile: %s", round, strerror(errno));
    if (!m || !t) _exit(1);
    for (int i = 0; i < 1000; i++) {
        fprintf(m, "child %d line %d\n", round, i);
        fprintf(t, "child %d line %d\n", round, i);
    }
    fclose(m);
    fclose(t);
    int ok = len > 10000 && strncmp(buf, "child ", 6) == 0;
    CHECK(ok, "child %d: the memory stream holds %zu bytes, not the 1000 lines written", round,
          len);
    free(buf);
    churn((uint64_t)round + 1000, 2000);
    _exit(ok && !nm_test_failures ? 0 : 1);
}

static void fork_with_stdio(void)
{
    begin_section("fork while a thread flushes FILE streams");
    fflush(stdout);
    atomic_store(&stop_stdio, 0);
    pthread_t writer;
    int rc = pthread_create(&writer, NULL, stdio_writer, NULL);
    REQUIRE(rc == 0, "pthread_create: error %d", rc);
    start_busy();
    for (int round = 0; round < 40; round++) {
        usleep(3000);
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) child_with_stdio(round);
        wait_child(pid, 0, "fork while a thread flushes FILE streams");
    }
    atomic_store(&stop_stdio, 1);
    pthread_join(writer, NULL);
    stop_busy_threads();
}

int main(void)
{
    nm_test_require_numamalloc();
    atomic_store(&section_deadline, nm_test_now() + SECTION_TIMEOUT_S);
    /* The watchdog never takes SIGALRM (it starts with it blocked). */
    sigset_t alarm_set, old;
    sigemptyset(&alarm_set);
    sigaddset(&alarm_set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm_set, &old);
    pthread_t dog;
    int rc = pthread_create(&dog, NULL, watchdog, NULL);
    REQUIRE(rc == 0, "pthread_create: error %d", rc);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fork_from_threads();
    fork_from_signal_handler();
    fork_with_stdio();
    return nm_test_done();
}
