/* dropin.h — the drop-in entry points of src/override.c in the
 * ThreadSanitizer build, where they carry the prefix tsan_ (TSan's runtime
 * owns malloc: Makefile, docs/design.md "Testing").  Included last, it maps
 * the libc names onto them, so a test reads as the program it stands for:
 * its malloc, free, ... run exactly the code that LD_PRELOAD puts under a
 * program (and libnumamalloc's constructor, with its fork handlers and
 * purge thread, runs at start).  Calls that libc and the TSan runtime make
 * internally still go to TSan's malloc, whose blocks these tests never
 * free.
 *
 * C++ operator new and delete are called by their mangled names. */
#ifndef NM_TSAN_DROPIN_H
#define NM_TSAN_DROPIN_H

#include <stddef.h>
#include <malloc.h>

void *tsan_malloc(size_t size);
void tsan_free(void *p);
void *tsan_calloc(size_t count, size_t size);
void *tsan_realloc(void *p, size_t size);
void *tsan_reallocarray(void *p, size_t count, size_t size);
int tsan_posix_memalign(void **out, size_t alignment, size_t size);
void *tsan_aligned_alloc(size_t alignment, size_t size);
void *tsan_memalign(size_t alignment, size_t size);
void *tsan_valloc(size_t size);
size_t tsan_malloc_usable_size(void *p);
int tsan_malloc_trim(size_t pad);
struct mallinfo2 tsan_mallinfo2(void);

void *tsan__Znwm(size_t size);                          /* operator new(size_t) */
void *tsan__ZnamSt11align_val_t(size_t size, size_t alignment); /* new[](size_t, align_val_t) */
void tsan__ZdlPvm(void *p, size_t size);                /* operator delete(void *, size_t) */
void tsan__ZdaPvSt11align_val_t(void *p, size_t alignment); /* delete[](void *, align_val_t) */

#define malloc tsan_malloc
#define free tsan_free
#define calloc tsan_calloc
#define realloc tsan_realloc
#define reallocarray tsan_reallocarray
#define posix_memalign tsan_posix_memalign
#define aligned_alloc tsan_aligned_alloc
#define memalign tsan_memalign
#define valloc tsan_valloc
#define malloc_usable_size tsan_malloc_usable_size
#define malloc_trim tsan_malloc_trim
#define mallinfo2() tsan_mallinfo2()   /* struct mallinfo2 keeps its name */

#endif
