/* A program that creates 100 pthread keys before anything else runs (from
 * .preinit_array, ahead of every library's constructor, so numamalloc's own
 * key gets an index above 32, where glibc's pthread_setspecific allocates
 * its second-level table with calloc), then starts threads that allocate:
 * small, medium and large blocks, on-node blocks, and blocks of a heap with
 * a policy, freed by the thread and by main.  Prints "ok". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS 100
#define THREADS 8

static pthread_key_t keys[KEYS];
static int keys_made;

static void make_keys(void)
{
    for (int i = 0; i < KEYS; i++)
        if (pthread_key_create(&keys[i], NULL) == 0) keys_made++;
}
__attribute__((section(".preinit_array"), used)) static void (*preinit)(void) = make_keys;

typedef void *(*onnode_fn)(size_t, int);
typedef void *(*heap_new_fn)(const void *);
typedef void *(*heap_malloc_fn)(void *, size_t);
static onnode_fn onnode;
static heap_new_fn heap_new;
static heap_malloc_fn heap_malloc;

struct job {
    int index;
    void *kept[4];
};

static void *worker(void *arg)
{
    struct job *job = arg;
    /* Each thread starts with a different call, so every way a thread's
     * first heap is set up is the very first allocation of some thread. */
    switch (job->index % 4) {
    case 0: job->kept[0] = malloc(24); break;
    case 1: job->kept[0] = onnode(100, 0); break;
    case 2: job->kept[0] = heap_malloc(heap_new(NULL), 64); break;
    case 3: job->kept[0] = calloc(1, 3 << 20); break;
    }
    job->kept[1] = malloc(40000);
    job->kept[2] = malloc(1 << 20);
    job->kept[3] = malloc(16);
    for (int i = 0; i < 4; i++) {
        if (!job->kept[i]) return "allocation failed";
        memset(job->kept[i], 0x5a, 16);
    }
    /* Thread-specific values of the program's own keys (some above 32). */
    for (int i = 0; i < keys_made; i += 7) pthread_setspecific(keys[i], job);
    void *scratch[64];
    for (int i = 0; i < 64; i++) scratch[i] = malloc((size_t)(i * 97 % 3000) + 1);
    for (int i = 0; i < 64; i++) free(scratch[i]);
    return NULL;
}

int main(void)
{
    if (keys_made != KEYS) { printf("only %d keys made\n", keys_made); return 1; }
    onnode = (onnode_fn)dlsym(RTLD_DEFAULT, "nm_malloc_onnode");
    heap_new = (heap_new_fn)dlsym(RTLD_DEFAULT, "nm_heap_new");
    heap_malloc = (heap_malloc_fn)dlsym(RTLD_DEFAULT, "nm_heap_malloc");
    if (!onnode || !heap_new || !heap_malloc) { printf("numamalloc is not loaded\n"); return 2; }
    for (int round = 0; round < 3; round++) {
        pthread_t t[THREADS];
        struct job jobs[THREADS];
        for (int i = 0; i < THREADS; i++) {
            jobs[i].index = i;
            if (pthread_create(&t[i], NULL, worker, &jobs[i]) != 0) { printf("pthread_create\n"); return 1; }
        }
        for (int i = 0; i < THREADS; i++) {
            void *err;
            pthread_join(t[i], &err);
            if (err) { printf("thread %d: %s\n", i, (char *)err); return 1; }
            for (int k = 0; k < 4; k++) free(jobs[i].kept[k]);   /* freed by another thread */
        }
    }
    void *p = malloc(100);
    free(p);
    printf("ok\n");
    return 0;
}
