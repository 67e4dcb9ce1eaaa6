/* thread_start.c — run in the guest by tests/vm/thread_start.sh: a program
 * that starts eight threads at once, each of which allocates and frees 256
 * blocks of 16 B - 4 KiB four times as soon as it runs (a worker pool
 * coming up: its threads' first allocations set up their heaps, and one of
 * them starts numamalloc's purge thread).  With more threads than CPUs
 * they move between the guest's nodes while they do.  Exit 0 when every
 * thread ends; a crash is the failure the test counts. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define BLOCKS 256
#define ROUNDS 4

static pthread_barrier_t go;

static void *worker(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&go);
    void *kept[BLOCKS];
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < BLOCKS; i++) {
            size_t size = 16 + (size_t)(i * 37 % 4000);
            kept[i] = malloc(size);
            if (!kept[i]) abort();
            memset(kept[i], r, 16);
        }
        for (int i = 0; i < BLOCKS; i++) free(kept[i]);
        sched_yield();
    }
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    pthread_barrier_init(&go, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], NULL, worker, NULL) != 0) return 2;
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    return 0;
}
