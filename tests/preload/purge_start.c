/* purge_start.c — the background purge thread starts without deadlocking
 * inside glibc.
 *
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
 * default attributes.  Everything runs in a child with a 10 s watchdog: a
 * deadlock (with every signal blocked in the stuck thread) shows as a
 * child that had to be killed. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
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

int main(void)
{
    nm_test_require_numamalloc();
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(scenario());
    int status = 0;
    for (int waited_ms = 0; waited_ms < 10000; waited_ms += 20) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
            printf("the purge thread started inside glibc's default-attribute calls: no deadlock\n");
            return nm_test_done();
        }
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    CHECK(0, "the child hung for 10 s (a deadlock starting the purge thread)");
    return nm_test_done();
}
