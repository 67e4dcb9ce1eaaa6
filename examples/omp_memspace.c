/* omp_memspace.c — OpenMP 5 memory spaces and allocator traits served by
 * numamalloc heaps.
 *
 * OpenMP names memory by what it is for (omp_high_bw_mem_space,
 * omp_large_cap_mem_space, omp_low_lat_mem_space) and tunes an allocator
 * with traits (alignment, pool size, what to do when the pool is out,
 * partition).  numamalloc names memory by kind (bind:hbm,
 * preferred:highest-capacity, interleave:dram...) and gives heaps a limit:
 * this file maps one onto the other, so an OpenMP code gets its memory
 * spaces on the right nodes of a tiered machine whatever its compiler's
 * runtime does with them (libgomp serves them all from malloc unless it
 * finds libmemkind).
 *
 *   memory space              numamalloc policy (a heap per allocator)
 *   omp_default_mem_space     local (the calling thread's node)
 *   omp_large_cap_mem_space   preferred:highest-capacity
 *   omp_high_bw_mem_space     preferred:highest-bandwidth
 *   omp_low_lat_mem_space     preferred:lowest-latency
 *   omp_const_mem_space       local
 *   trait omp_atk_partition = omp_atv_interleaved: interleave over the
 *   space's kind (interleave:dram for the default space)
 *   trait omp_atk_alignment: NM_ALIGN on every allocation
 *   trait omp_atk_pool_size: nm_heap_set_limit
 *   trait omp_atk_fallback: default_mem_fb (the default memory space),
 *   null_fb (NULL), abort_fb (abort)
 *
 * Kinds are resolved where the allocator is made (numamalloc.h,
 * nm_policy_parse): make each thread's allocators on the thread, or one
 * for all on the master.  The program allocates from each space in an
 * OpenMP team, checks where the pages are (nm_where), alignment, and a
 * pool's fallbacks, prints a line each and exits 1 when something is
 * wrong.
 *
 *   gcc -O2 -fopenmp -I include examples/omp_memspace.c -o omp_memspace \
 *       -L build -lnumamalloc -Wl,-rpath,$PWD/build
 */
#include <errno.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numamalloc.h"

struct nm_omp_allocator {
    nm_heap_t *heap;
    size_t alignment;               /* omp_atk_alignment (1: none) */
    omp_alloctrait_value_t fallback;
    char policy[64];                /* the policy text the heap was made with */
};

/* The policy of a memory space: its kind, preferred (a machine without the
 * kind serves it from the nearest memory), or interleaved over it. */
static void space_policy(omp_memspace_handle_t space, bool interleaved, char *out, size_t len)
{
    const char *kind = space == omp_large_cap_mem_space ? "highest-capacity"
                     : space == omp_high_bw_mem_space   ? "highest-bandwidth"
                     : space == omp_low_lat_mem_space   ? "lowest-latency"
                                                        : NULL;
    if (interleaved) snprintf(out, len, "interleave:%s", kind ? kind : "dram");
    else if (kind) snprintf(out, len, "preferred:%s", kind);
    else snprintf(out, len, "local");
}

/* omp_init_allocator's counterpart: NULL (with a line on stderr) when a
 * trait cannot be honoured. */
static struct nm_omp_allocator *nm_omp_init_allocator(omp_memspace_handle_t space, int ntraits,
                                                      const omp_alloctrait_t traits[])
{
    struct nm_omp_allocator *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->alignment = 1;
    a->fallback = omp_atv_default_mem_fb;
    bool interleaved = false;
    size_t pool = 0;
    for (int i = 0; i < ntraits; i++) {
        switch (traits[i].key) {
        case omp_atk_alignment: a->alignment = (size_t)traits[i].value; break;
        case omp_atk_pool_size: pool = (size_t)traits[i].value; break;
        case omp_atk_fallback: a->fallback = (omp_alloctrait_value_t)traits[i].value; break;
        case omp_atk_partition: interleaved = traits[i].value == omp_atv_interleaved; break;
        default: break;   /* sync_hint, access, pinned: nothing to do here */
        }
    }
    space_policy(space, interleaved, a->policy, sizeof a->policy);
    nm_policy p;
    char err[256];
    if (nm_policy_parse(a->policy, &p, err, sizeof err) != 0) {
        fprintf(stderr, "omp_memspace: %s: %s\n", a->policy, err);
        free(a);
        return NULL;
    }
    a->heap = nm_heap_new(&p);
    if (!a->heap || (pool && nm_heap_set_limit(a->heap, pool) != 0)) {
        fprintf(stderr, "omp_memspace: %s: no heap: %s\n", a->policy, strerror(errno));
        if (a->heap) nm_heap_destroy(a->heap);
        free(a);
        return NULL;
    }
    return a;
}

static void *nm_omp_alloc(size_t size, struct nm_omp_allocator *a)
{
    void *p = nm_heap_mallocx(a->heap, size, NM_ALIGN(a->alignment));
    if (p) return p;
    switch (a->fallback) {
    case omp_atv_null_fb: return NULL;
    case omp_atv_abort_fb: fprintf(stderr, "omp_memspace: %zu bytes: pool exhausted\n", size); abort();
    default: return nm_mallocx(size, NM_ALIGN(a->alignment));   /* the default memory space */
    }
}

static void nm_omp_free(void *p, struct nm_omp_allocator *a)
{
    (void)a;
    nm_free(p);
}

static void nm_omp_destroy_allocator(struct nm_omp_allocator *a)
{
    nm_heap_destroy(a->heap);
    free(a);
}

/* The nodes the pages of [p, p + bytes) are on, as "N0=.. N1=..". */
static int pages_where(const void *p, size_t bytes, char *out, size_t len)
{
    uint64_t counts[NM_NODE_ID_LIMIT] = { 0 };
    long pages = nm_where(p, bytes, counts, NM_NODE_ID_LIMIT);
    size_t used = 0;
    out[0] = '\0';
    for (int n = 0; n < NM_NODE_ID_LIMIT && used < len; n++)
        if (counts[n]) used += (size_t)snprintf(out + used, len - used, "%sN%d=%llu", used ? " " : "", n,
                                                (unsigned long long)counts[n]);
    return pages > 0 ? 0 : -1;
}

int main(void)
{
    static const struct { omp_memspace_handle_t space; const char *name; } spaces[] = {
        { omp_default_mem_space, "omp_default_mem_space" },
        { omp_large_cap_mem_space, "omp_large_cap_mem_space" },
        { omp_high_bw_mem_space, "omp_high_bw_mem_space" },
        { omp_low_lat_mem_space, "omp_low_lat_mem_space" },
    };
    const size_t n = 1 << 20;   /* doubles: 8 MiB per thread and space */
    int bad = 0;
    for (size_t s = 0; s < sizeof spaces / sizeof spaces[0]; s++) {
        omp_alloctrait_t traits[] = { { omp_atk_alignment, 4096 } };
        struct nm_omp_allocator *a = nm_omp_init_allocator(spaces[s].space, 1, traits);
        if (!a) {
            bad = 1;
            continue;
        }
        int wrong = 0;
#pragma omp parallel reduction(+ : wrong)
        {
            double *x = nm_omp_alloc(n * sizeof *x, a);
            if (!x || (uintptr_t)x % 4096 != 0) {
                wrong++;
            } else {
                for (size_t i = 0; i < n; i++) x[i] = (double)i;
                char where[256];
                if (pages_where(x, n * sizeof *x, where, sizeof where) != 0) wrong++;
#pragma omp critical
                printf("%s (%s), thread %d: 4096-aligned, pages %s\n", spaces[s].name, a->policy,
                       omp_get_thread_num(), where);
                nm_omp_free(x, a);
            }
        }
        printf("%s: %s\n", spaces[s].name, wrong ? "WRONG" : "ok");
        bad |= wrong != 0;
        nm_omp_destroy_allocator(a);
    }

    /* A 16 MiB pool: a second 12 MiB block does not fit.  null_fb gives
     * NULL; default_mem_fb gives a block of the default memory space. */
    omp_alloctrait_t null_pool[] = { { omp_atk_pool_size, 16 << 20 }, { omp_atk_fallback, omp_atv_null_fb } };
    omp_alloctrait_t default_pool[] = { { omp_atk_pool_size, 16 << 20 },
                                        { omp_atk_fallback, omp_atv_default_mem_fb } };
    struct nm_omp_allocator *a = nm_omp_init_allocator(omp_high_bw_mem_space, 2, null_pool);
    struct nm_omp_allocator *b = nm_omp_init_allocator(omp_high_bw_mem_space, 2, default_pool);
    if (!a || !b) return 1;
    void *a1 = nm_omp_alloc(12 << 20, a), *a2 = nm_omp_alloc(12 << 20, a);
    void *b1 = nm_omp_alloc(12 << 20, b), *b2 = nm_omp_alloc(12 << 20, b);
    struct nm_ptr_info info;
    bool b2_outside = b2 && nm_ptr_info(b2, &info) == 0 && info.heap != b->heap;
    bool pool_ok = a1 && !a2 && b1 && b2_outside;
    printf("pool of 16 MiB: a second 12 MiB block %s with null_fb, %s with default_mem_fb: %s\n",
           a2 ? "given" : "refused", b2_outside ? "from the default space" : "not from it",
           pool_ok ? "ok" : "WRONG");
    bad |= !pool_ok;
    nm_omp_free(a1, a);
    nm_omp_free(b1, b);
    nm_omp_free(b2, b);
    nm_omp_destroy_allocator(a);
    nm_omp_destroy_allocator(b);
    return bad;
}
