/* purge_start.c — the background purge thread starts without deadlocking
 * inside glibc, and never keeps a process alive.
 *
 * attr_lock:
 * glibc's pthread_setattr_default_np frees the previous default
 * attributes' cpu set while it holds the lock of the default attributes,
 * and pthread_getattr_default_np allocates while holding it; a
 * pthread_create that reads the defaults takes the same lock.  So the purge
 * thread must never be created from a free, and never read the defaults.
 * The program arranges for the first free that gives a page back (the
 * moment memory starts waiting for a purge) to be that free inside
 * pthread_setattr_default_np: the cpu set of the defaults (152 bytes) is
 * the last block left on its page, and the page is not the first of its
 * class.  Then it calls pthread_getattr_default_np and starts a thread with
 * default attributes.
 *
 * last_exit: the program frees memory (so the purge thread runs), starts a
 * thread that forks, and every thread ends with pthread_exit, in the
 * parent and in the child (as a Python thread that forks does): each
 * process must end, as it does without numamalloc, although the purge
 * thread never ends by itself.
 *
 * Each case runs in a child with a 10 s watchdog: a deadlock (with every
 * signal blocked in the stuck thread) or a process that never ends shows
 * as a child that had to be killed. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>

#include "../testutil.h"

static void set_default_cpus(void)
{
    pthread_attr_t a;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    REQUIRE(pthread_attr_init(&a) == 0);
    REQUIRE(pthread_attr_setaffinity_np(&a, sizeof set, &set) == 0);
    REQUIRE(pthread_setattr_default_np(&a) == 0);
    pthread_attr_destroy(&a);
}

static void *nothing(void *arg) { return arg; }

static int scenario(void)
{
    set_default_cpus();            /* the defaults now hold a 152-byte cpu set */
    static void *blocks[8192];
    int n = 0;
    void *q = malloc(152);         /* on the same page as that cpu set */
    uintptr_t page = (uintptr_t)q >> 16;
    blocks[n++] = q;
    for (;;) {                     /* fill the page; the next block opens another */
        void *p = malloc(152);
        REQUIRE(p != NULL && n < 8192);
        blocks[n++] = p;
        if (((uintptr_t)p >> 16) != page) break;
    }
    for (int i = 0; i < n - 1; i++) free(blocks[i]);   /* only the cpu set is left */
    set_default_cpus();            /* frees it, under the defaults' lock */
    pthread_attr_t got;
    REQUIRE(pthread_getattr_default_np(&got) == 0);   /* allocates under it */
    pthread_attr_destroy(&got);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, nothing, NULL) == 0);
    pthread_join(t, NULL);
    free(blocks[n - 1]);
    return 0;
}

/* ---- last_exit ---------------------------------------------------------------------- */

static void *forking_thread(void *arg)
{
    (void)arg;
    pid_t child = fork();
    if (child == 0) {
        /* The child: this thread is its only one; it allocates (the purge
         * thread may start here too) and ends with pthread_exit. */
        for (int i = 0; i < 1000; i++) free(malloc(100 + i));
        pthread_exit(NULL);
    }
    REQUIRE(child > 0);
    /* The child must end by itself: its last thread has exited. */
    int status = 0;
    for (int waited_ms = 0; waited_ms < 5000; waited_ms += 10) {
        if (waitpid(child, &status, WNOHANG) == child) pthread_exit(NULL);
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    kill(child, SIGKILL);
    fprintf(stderr, "the forked child did not end after its last thread exited\n");
    _exit(3);
}

static int last_exit(void)
{
    void *blocks[4096];
    for (int i = 0; i < 4096; i++) blocks[i] = malloc(1000);
    for (int i = 0; i < 4096; i++) free(blocks[i]);   /* memory waits for a purge */
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, forking_thread, NULL) == 0);
    pthread_exit(NULL);   /* main ends; the process ends with the last thread */
}

/* ---- driver --------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*run)(void);
    const char *what;
} cases[] = {
    { "attr_lock", scenario, "started inside glibc's default-attribute calls: no deadlock" },
    { "last_exit", last_exit, "every thread ended with pthread_exit: the processes ended" },
};

int main(void)
{
    nm_test_require_numamalloc();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fflush(stdout);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) _exit(cases[i].run());
        int status = 0;
        bool ended = false;
        for (int waited_ms = 0; waited_ms < 10000 && !ended; waited_ms += 20) {
            ended = waitpid(pid, &status, WNOHANG) == pid;
            struct timespec ts = { 0, 20 * 1000 * 1000 };
            if (!ended) nanosleep(&ts, NULL);
        }
        if (!ended) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        CHECK(ended, "%s: the child was still there after 10 s", cases[i].name);
        CHECK(!ended || (WIFEXITED(status) && WEXITSTATUS(status) == 0), "%s: child status %d",
              cases[i].name, status);
        if (ended) printf("%s: %s\n", cases[i].name, cases[i].what);
    }
    return nm_test_done();
}
