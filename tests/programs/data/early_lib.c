/* early_lib.c — a shared library whose constructor allocates before
 * numamalloc's own constructor may have run: through malloc, calloc,
 * realloc, free, dlsym/dlerror (which allocate inside libc), a thread, and
 * thread-local storage with a destructor.  Used by tests/programs/early_start.sh. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *early_blocks[64];
int early_ok;

static void *early_thread(void *arg)
{
    char *p = malloc(1000);
    memset(p, 7, 1000);
    return p + (arg != NULL);
}

__attribute__((constructor)) static void early_start(void)
{
    for (int i = 0; i < 64; i++) {
        early_blocks[i] = malloc((size_t)16 << (i % 16));
        if (!early_blocks[i]) return;
        memset(early_blocks[i], i, 16);
    }
    char *z = calloc(100, 10);
    for (int i = 0; i < 1000; i++) if (z[i]) return;
    z = realloc(z, 1 << 22);
    free(z);
    (void)dlsym(RTLD_NEXT, "no_such_symbol_here");   /* makes dlerror allocate */
    const char *err = dlerror();
    if (!err) return;
    pthread_t t;
    void *r;
    if (pthread_create(&t, NULL, early_thread, NULL) != 0) return;
    pthread_join(t, &r);
    free(r);
    early_ok = 1;
}
