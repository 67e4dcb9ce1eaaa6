/*
 * mpi.c — numamalloc in an MPI program: each rank binds itself to a NUMA
 * node and allocates from it, the ranks exchange data, and numamalloc hands
 * memory back to the OS while Open MPI's memory hooks watch every munmap
 * and madvise.
 *
 *   mpicc -O2 -I include examples/mpi.c -o mpi_example \
 *       -L build -lnumamalloc -Wl,-rpath,$PWD/build
 *   mpirun -np 4 ./mpi_example                 (as root: --allow-run-as-root)
 *   LD_PRELOAD=$PWD/build/libnumamalloc.so mpirun -np 4 --mca osc ucx ./mpi_example
 *
 * 1. Binding: rank r takes the r-th node with CPUs (modulo their number),
 *    pins itself to that node's CPUs (mpirun --bind-to numa would do the
 *    same) and makes a heap bound to it: nm_heap_new(bind:NODE).  Its
 *    vector comes from that heap; nm_where confirms every page is on NODE.
 * 2. Exchange: an MPI_Allreduce of the vectors' checksums, compared with
 *    the closed form, and a ring of 16 MiB messages, checked word by word.
 * 3. Memory hooks: Open MPI intercepts munmap, madvise and friends (its
 *    "patcher" rewrites them in libc, and UCX adds hooks of its own) to
 *    keep its caches of registered memory right.  numamalloc returns memory
 *    with exactly those calls, from inside malloc and free, while MPI may
 *    itself be allocating.  Each round allocates big blocks, posts a receive
 *    into one, frees others and calls nm_trim() while the message is in
 *    flight, then frees the rest.  With Open MPI the example registers an
 *    observer with its hooks (opal_mem_hooks_register_release, looked up at
 *    run time, so other MPIs run it too) and reports how much of the memory
 *    numamalloc returned Open MPI saw go.  A deadlock here would hang.
 *    Open MPI installs the hooks when a component needs them, as UCX does
 *    on InfiniBand clusters.  Debian's build leaves UCX off by default
 *    (/etc/openmpi/openmpi-mca-params.conf), so on a machine without such
 *    a network, turn the hooks on with `mpirun --mca osc ucx ...`.
 *
 * Every rank checks what it can; the program exits 1 on every rank if any
 * check failed anywhere.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <mpi.h>
#include <numamalloc.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VECTOR_WORDS (512 * 1024)          /* 4 MiB from the node's heap */
#define MESSAGE_BYTES (16u << 20)          /* ring messages */
#define SCRATCH_BYTES (8u << 20)           /* freed while a message is in flight */
#define ROUNDS 12
#define PAGE 4096

/* ---------------------------------------------------------------- Open MPI's memory hooks */

/* The signatures of opal/memoryhooks/memory.h (Open MPI's devel headers). */
typedef void release_fn(void *buf, size_t length, void *cbdata, bool from_alloc);
typedef int register_fn(release_fn *func, void *cbdata);
typedef int unregister_fn(release_fn *func);

static uint64_t hook_calls, hook_bytes;

/* Called by Open MPI inside its munmap/madvise hooks, so possibly inside
 * numamalloc's free: nothing here may allocate or lock. */
static void on_release(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)buf, (void)cbdata, (void)from_alloc;
    __atomic_fetch_add(&hook_calls, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&hook_bytes, length, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- binding */

/* The rank-th node with CPUs, modulo their number. */
static int node_for_rank(int rank)
{
    int ids[NM_NODE_ID_LIMIT], with_cpus[NM_NODE_ID_LIMIT], count = 0;
    int nodes = nm_node_ids(ids, NM_NODE_ID_LIMIT);
    for (int i = 0; i < nodes && i < NM_NODE_ID_LIMIT; i++)
        if (nm_node_has_cpus(ids[i]) == 1) with_cpus[count++] = ids[i];
    return count ? with_cpus[rank % count] : 0;
}

static int pin_to_node(int node)
{
    int cpus[CPU_SETSIZE], n = nm_node_cpus(node, cpus, CPU_SETSIZE);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < n; i++) CPU_SET(cpus[i], &set);
    if (n <= 0 || sched_setaffinity(0, sizeof set, &set) != 0) return -1;
    nm_thread_rebind();   /* serve this thread from the node from now on */
    return 0;
}

static long pages_on(const void *p, size_t len, int node, long *resident)
{
    uint64_t counts[NM_NODE_ID_LIMIT] = {0};
    *resident = nm_where(p, len, counts, NM_NODE_ID_LIMIT);
    return (long)counts[node];
}

/* ---------------------------------------------------------------- the program */

static uint64_t pattern(int rank, int round, size_t i)
{
    return ((uint64_t)rank << 48) ^ ((uint64_t)round << 32) ^ i;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size, failed = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    /* 1. A node, its CPUs and a heap bound to it. */
    int node = node_for_rank(rank);
    if (pin_to_node(node) != 0) {
        printf("rank %d: cannot pin to node %d's CPUs\n", rank, node);
        failed = 1;
    }
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_nodeset_add(&set, node);
    nm_policy bind = nm_policy_bind(&set);
    nm_heap_t *heap = nm_heap_new(&bind);
    uint64_t *vector = heap ? nm_heap_malloc(heap, VECTOR_WORDS * sizeof(uint64_t)) : NULL;
    if (!vector) {
        printf("rank %d: no memory on node %d\n", rank, node);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    uint64_t checksum = 0;
    for (size_t i = 0; i < VECTOR_WORDS; i++) {
        vector[i] = (uint64_t)rank * VECTOR_WORDS + i;
        checksum += vector[i];
    }
    long resident, local = pages_on(vector, VECTOR_WORDS * sizeof(uint64_t), node, &resident);
    long want = (long)(VECTOR_WORDS * sizeof(uint64_t) / PAGE);
    printf("rank %d: node %d, cpu %d: 4 MiB vector from a bind:%d heap, %ld/%ld pages on node %d\n",
           rank, node, sched_getcpu(), node, local, want, node);
    if (resident != want || local != want) failed = 1;

    /* 2. Exchange: the sum of every rank's checksum is the sum 0..N-1. */
    uint64_t total = 0, n = (uint64_t)size * VECTOR_WORDS;
    MPI_Allreduce(&checksum, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (total != n * (n - 1) / 2) {
        printf("rank %d: allreduce gave %llu, expected %llu\n", rank,
               (unsigned long long)total, (unsigned long long)(n * (n - 1) / 2));
        failed = 1;
    }

    /* 3. Return memory to the OS, again and again, under MPI's hooks. */
    register_fn *reg = (register_fn *)dlsym(RTLD_DEFAULT, "opal_mem_hooks_register_release");
    unregister_fn *unreg = (unregister_fn *)dlsym(RTLD_DEFAULT, "opal_mem_hooks_unregister_release");
    bool observing = reg && reg(on_release, NULL) == 0;
    struct nm_stats before, after;
    nm_stats_get(&before);

    int to = (rank + 1) % size, from = (rank + size - 1) % size;
    size_t words = MESSAGE_BYTES / sizeof(uint64_t);
    long bad_words = 0;
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t *out = nm_malloc_onnode(MESSAGE_BYTES, node);   /* free() takes it too */
        uint64_t *in = malloc(MESSAGE_BYTES);
        char *scratch[3];
        if (!out || !in) MPI_Abort(MPI_COMM_WORLD, 1);
        for (size_t i = 0; i < words; i++) out[i] = pattern(rank, round, i);

        MPI_Request req;
        MPI_Irecv(in, (int)words, MPI_UINT64_T, from, round, MPI_COMM_WORLD, &req);
        /* While the message may be in flight: allocate, free, trim. */
        for (int k = 0; k < 3; k++) {
            scratch[k] = malloc(SCRATCH_BYTES);
            if (scratch[k]) memset(scratch[k], k, SCRATCH_BYTES);
        }
        for (int k = 0; k < 3; k++) free(scratch[k]);
        nm_trim();
        MPI_Send(out, (int)words, MPI_UINT64_T, to, round, MPI_COMM_WORLD);
        MPI_Wait(&req, MPI_STATUS_IGNORE);

        for (size_t i = 0; i < words; i++)
            if (in[i] != pattern(from, round, i)) bad_words++;
        free(out);
        free(in);
        nm_trim();
    }
    nm_stats_get(&after);
    if (observing && unreg) unreg(on_release);

    uint64_t purged = after.purged_bytes - before.purged_bytes;
    uint64_t seen_calls = __atomic_load_n(&hook_calls, __ATOMIC_RELAXED);
    uint64_t seen_bytes = __atomic_load_n(&hook_bytes, __ATOMIC_RELAXED);
    printf("rank %d: %d rounds of %u MiB messages, %ld bad words; numamalloc returned %llu MiB "
           "to the OS in %llu purges; ", rank, ROUNDS, MESSAGE_BYTES >> 20, bad_words,
           (unsigned long long)(purged >> 20),
           (unsigned long long)(after.purges - before.purges));
    if (observing)
        printf("Open MPI's hooks saw %llu releases, %llu MiB\n", (unsigned long long)seen_calls,
               (unsigned long long)(seen_bytes >> 20));
    else
        printf("no Open MPI memory hooks to observe\n");
    if (bad_words || purged == 0) failed = 1;
    /* Open MPI's hooks must have seen at least what numamalloc gave back. */
    if (observing && seen_bytes < purged) failed = 1;

    int any_failed = 0;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%d ranks, checksum %llu: %s\n", size, (unsigned long long)total,
               any_failed ? "FAILED" : "ok");
    nm_heap_destroy(heap);
    MPI_Finalize();
    return any_failed;
}
