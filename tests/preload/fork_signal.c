/* fork_signal.c — fork from a signal handler, many times, while the
 * program allocates everywhere: a 1 ms timer's SIGALRM interrupts the main
 * thread wherever it is (in malloc, free, realloc, in malloc_trim giving
 * memory back with its own heap held, or between them) while three other
 * threads malloc and free, and the handler forks.  The child allocates,
 * reallocs and frees in the handler (small, medium and 3 MiB blocks, while
 * the call it interrupted may have been changing its heap) and exits 0.  A
 * parent stuck in fork (its fork handler waiting for something the
 * interrupted call holds) or a child that does not exit within 20 s fails
 * the test. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
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

#define FORKS 400
#define BUSY_THREADS 3
#define CHILD_TIMEOUT_S 20
#define RUN_TIMEOUT_S 120

static size_t random_size(uint64_t *rng)
{
    uint64_t r = nm_test_random(rng);
    if (r % 64 == 0) return 1 * MiB + (size_t)(r >> 20) % MiB;
    size_t base = (size_t)16 << ((r >> 8) % 12);
    return base + (size_t)((r >> 16) % base);
}

/* ---- watchdog: a parent stuck in fork fails the test ---- */

static void *watchdog(void *arg)
{
    double deadline = *(double *)arg;
    while (nm_test_now() < deadline) usleep(100 * 1000);
    static const char msg[] = "fork_signal.c: the parent did not finish in time: stuck in a fork "
                              "from the signal handler (deadlock)?\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
    _exit(3);
}

/* ---- threads that malloc and free until told to stop ---- */

static atomic_int stop_busy;

static void *busy(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    unsigned char *slot[64] = {0};
    size_t size[64] = {0};
    while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
        int i = (int)(nm_test_random(&rng) % 64);
        if (slot[i]) {
            CHECK(slot[i][0] == (unsigned char)i && slot[i][size[i] - 1] == (unsigned char)i,
                  "busy thread: block %p changed", (void *)slot[i]);
            free(slot[i]);
            slot[i] = NULL;
        } else {
            size[i] = random_size(&rng);
            slot[i] = malloc(size[i]);
            REQUIRE(slot[i] != NULL, "busy thread: malloc(%zu)", size[i]);
            slot[i][0] = slot[i][size[i] - 1] = (unsigned char)i;
        }
    }
    for (int i = 0; i < 64; i++) free(slot[i]);
    return NULL;
}

/* ---- the handler ---- */

static volatile sig_atomic_t forks;
static volatile sig_atomic_t fork_errno;
static pid_t child[FORKS];

/* In the child, inside the handler: allocate, check, resize and free, then
 * exit with 0 if every block was intact. */
static void child_in_handler(int round)
{
    uint64_t rng = 1000 + (uint64_t)round;
    unsigned char *p[12];
    size_t n[12];
    int ok = 1;
    for (int i = 0; i < 12; i++) {
        n[i] = i == 0 ? 3 * MiB : random_size(&rng);
        p[i] = malloc(n[i]);
        if (!p[i]) _exit(2);
        memset(p[i], i + 1, n[i] < 4096 ? n[i] : 4096);
        p[i][n[i] - 1] = (unsigned char)(i + 1);
    }
    for (int i = 0; i < 12; i += 3) {
        unsigned char *q = realloc(p[i], n[i] * 2 + 100);
        if (!q) _exit(2);
        p[i] = q;
    }
    for (int i = 0; i < 12; i++) {
        ok &= p[i][0] == (unsigned char)(i + 1) && p[i][n[i] - 1] == (unsigned char)(i + 1);
        free(p[i]);
    }
    void *z = calloc(1000, 10);
    ok &= z != NULL && ((unsigned char *)z)[9999] == 0;
    free(z);
    _exit(ok ? 0 : 1);
}

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    if (forks < FORKS && !fork_errno) {
        pid_t pid = fork();
        if (pid == 0) child_in_handler(forks);
        if (pid < 0) fork_errno = errno;
        else child[forks++] = pid;
    }
    errno = saved;
}

/* Wait for every child; each must exit 0 within the timeout. */
static void wait_children(void)
{
    for (int i = 0; i < forks; i++) {
        double deadline = nm_test_now() + CHILD_TIMEOUT_S;
        int status = 0;
        pid_t r;
        while ((r = waitpid(child[i], &status, WNOHANG)) == 0 && nm_test_now() < deadline) usleep(1000);
        if (r == 0) {
            kill(child[i], SIGKILL);
            waitpid(child[i], &status, 0);
            CHECK(0, "child %d (pid %d) did not exit in %d s: deadlock after a fork from a "
                  "signal handler", i, (int)child[i], CHILD_TIMEOUT_S);
            continue;
        }
        CHECK(r == child[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child %d ended with %s %d, expected exit status 0", i,
              WIFEXITED(status) ? "exit status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
}

int main(void)
{
    nm_test_require_numamalloc();
    /* Only the main thread takes SIGALRM: the others start with it blocked. */
    sigset_t alarm_set, old;
    sigemptyset(&alarm_set);
    sigaddset(&alarm_set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm_set, &old);
    static double deadline;
    deadline = nm_test_now() + RUN_TIMEOUT_S;
    pthread_t dog, busy_tid[BUSY_THREADS];
    REQUIRE(pthread_create(&dog, NULL, watchdog, &deadline) == 0);
    for (int i = 0; i < BUSY_THREADS; i++) {
        int rc = pthread_create(&busy_tid[i], NULL, busy, (void *)(uintptr_t)(i + 1));
        REQUIRE(rc == 0, "pthread_create: error %d", rc);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every_ms = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &every_ms, NULL);

    /* The main thread: blocks of every size, realloc, and malloc_trim (a
     * pass over every heap, its own included) every 16th round for the
     * first quarter of the forks, every round for the rest, so the timer
     * lands in each. */
    uint64_t rng = 99;
    unsigned char *held[16] = {0};
    double give_up = nm_test_now() + RUN_TIMEOUT_S / 2;
    for (unsigned round = 0; forks < FORKS && !fork_errno && nm_test_now() < give_up; round++) {
        int i = (int)(nm_test_random(&rng) % 16);
        if (held[i]) {
            unsigned char *q = realloc(held[i], random_size(&rng));
            REQUIRE(q != NULL, "realloc");
            free(q);
        }
        size_t n = random_size(&rng);
        held[i] = malloc(n);
        REQUIRE(held[i] != NULL, "malloc(%zu)", n);
        held[i][0] = held[i][n - 1] = 7;
        if (round % 16 == 0 || forks >= FORKS / 4) malloc_trim(0);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    signal(SIGALRM, SIG_IGN);
    for (int i = 0; i < 16; i++) free(held[i]);
    CHECK(!fork_errno, "fork in the signal handler: %s", strerror(fork_errno));
    CHECK(forks == FORKS, "only %d of %d forks from the handler in %d s", (int)forks, FORKS,
          RUN_TIMEOUT_S / 2);
    wait_children();
    atomic_store(&stop_busy, 1);
    for (int i = 0; i < BUSY_THREADS; i++) pthread_join(busy_tid[i], NULL);
    printf("%d forks from a SIGALRM handler, every child allocated, freed and exited 0\n",
           (int)forks);
    return nm_test_done();
}
