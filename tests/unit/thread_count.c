/* thread_count.c — what the background purge asks of the os layer before it
 * starts a thread (arena.c: nm_purge_at_safe_point):
 *   - nm_os_never_threaded() is true in a process that has not created a
 *     thread, and false once it has (glibc's __libc_single_threaded);
 *   - nm_os_thread_count() is 1, then 2 while the thread lives, as
 *     /proc/self/task says;
 *   - with every file descriptor in use (/proc/self/stat cannot be opened,
 *     as in a server at its descriptor limit) it returns 0, "unknown", and
 *     leaves errno as it was: it runs inside an allocation that succeeds. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../testutil.h"
#include "os.h"

static int task_count(void)
{
    DIR *d = opendir("/proc/self/task");
    REQUIRE(d != NULL, "opendir /proc/self/task");
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static pthread_barrier_t step;

static void *second(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&step);   /* counted */
    pthread_barrier_wait(&step);   /* done */
    return NULL;
}

int main(void)
{
    CHECK(nm_os_never_threaded(), "a process that created no thread is said to have one");
    CHECK(nm_os_thread_count() == 1, "one thread counted as %d", nm_os_thread_count());

    pthread_barrier_init(&step, NULL, 2);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, second, NULL) == 0, "pthread_create");
    pthread_barrier_wait(&step);
    CHECK(!nm_os_never_threaded(), "a process with a second thread is said to have none");
    CHECK(nm_os_thread_count() == 2 && task_count() == 2, "two threads counted as %d (/proc: %d)",
          nm_os_thread_count(), task_count());
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);

    /* Every descriptor in use. */
    struct rlimit old, low;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit");
    low = old;
    low.rlim_cur = 64;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit");
    int fds[64], opened = 0;
    while (opened < 64 && (fds[opened] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) opened++;
    REQUIRE(errno == EMFILE, "opening /dev/null until the limit ended with %s", strerror(errno));
    errno = 0;
    int count = nm_os_thread_count();
    int saved = errno;
    for (int i = 0; i < opened; i++) close(fds[i]);
    setrlimit(RLIMIT_NOFILE, &old);
    CHECK(count == 0, "with no descriptor left the count is %d, not 0 (unknown)", count);
    CHECK(saved == 0, "with no descriptor left the count set errno to %d (%s)", saved,
          strerror(saved));
    return nm_test_done();
}
