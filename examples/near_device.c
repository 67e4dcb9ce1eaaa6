/*
 * near_device.c — I/O buffers next to a network card, compute arrays on
 * the fastest memory.
 *
 * An RDMA or DPDK program registers its receive and send buffers with the
 * NIC, which reads and writes them by DMA across the PCI bus: buffers on
 * the NIC's own socket save a hop over the socket interconnect on every
 * packet.  Its compute arrays, which the CPUs stream through, want the
 * memory with the highest bandwidth (HBM where the machine has it).
 *
 *   gcc -O2 -I include examples/near_device.c -o near_device \
 *       -L build -lnumamalloc -Wl,-rpath,$PWD/build
 *   ./near_device [DEVICE]
 *
 * DEVICE is a network interface, block device, PCI address or /dev path
 * (default: the first network interface whose NUMA node sysfs knows).
 * The buffers come from nm_malloc_near(DEVICE, ...); the arrays from a
 * heap whose policy is "bind:highest-bandwidth".  Each prints one line,
 * checked with nm_where (the kernel's move_pages) against the node it
 * should be on: for the buffers, the node nm_malloc_near placed them on
 * (nm_ptr_info), which is the device's node, or the nearest node with
 * memory when the device's node has none; exit status 1 if a page is
 * elsewhere.  A machine with one
 * node, or a virtual machine, usually has no device with a NUMA node: the
 * program says so and takes the buffers from the calling thread's node.
 */
#include <dirent.h>
#include <errno.h>
#include <numamalloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFFERS 16
#define BUFFER_SIZE (256 * 1024)
#define ARRAY_SIZE (8 * 1024 * 1024)

/* The first network interface with a NUMA node, in name order, or NULL. */
static const char *first_nic_with_node(char *name, size_t len)
{
    const char *root = getenv("NUMAMALLOC_SYSFS_ROOT");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/class/net", root && *root ? root : "/sys");
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    const char *found = NULL;
    for (int i = 0; i < n; i++) {
        if (!found && names[i]->d_name[0] != '.' && nm_node_of_device(names[i]->d_name) >= 0) {
            snprintf(name, len, "%s", names[i]->d_name);
            found = name;
        }
        free(names[i]);
    }
    if (n >= 0) free(names);
    return found;
}

/* Pages of [p, p + len) on the nodes of `nodes`, and resident pages in all. */
static long pages_on(const void *p, size_t len, const nm_nodeset *nodes, long *resident)
{
    static uint64_t counts[NM_NODE_ID_LIMIT];
    memset(counts, 0, sizeof counts);
    long total = nm_where(p, len, counts, NM_NODE_ID_LIMIT);
    long inside = 0;
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++)
        if (nm_nodeset_has(nodes, id)) inside += (long)counts[id];
    *resident += total > 0 ? total : 0;
    return inside;
}

int main(int argc, char **argv)
{
    int status = 0;
    char nic[256];
    const char *dev = argc > 1 ? argv[1] : first_nic_with_node(nic, sizeof nic);

    /* I/O buffers near the device. */
    void *buffers[BUFFERS];
    int node = dev ? nm_node_of_device(dev) : -1;
    const char *why = !dev ? "no network interface here has a NUMA node"
                      : node < 0 && errno == ENXIO ? "it has no NUMA node affinity"
                      : node < 0 ? "no such device" : NULL;
    if (why) node = nm_current_node();
    for (int i = 0; i < BUFFERS; i++) {
        buffers[i] = why ? nm_malloc_onnode(BUFFER_SIZE, node) : nm_malloc_near(dev, BUFFER_SIZE);
        if (!buffers[i]) {
            fprintf(stderr, "cannot allocate I/O buffer %d: %s\n", i, strerror(errno));
            return 1;
        }
        memset(buffers[i], 0, BUFFER_SIZE);   /* as a driver would, before posting it */
    }
    /* The node whose memory the buffers are bound to: the device's, or
     * the nearest with memory when it has none (a CPU-only node). */
    struct nm_ptr_info info;
    int memory_node = nm_ptr_info(buffers[0], &info) == 0 ? info.node : node;
    nm_nodeset where;
    nm_nodeset_clear(&where);
    nm_nodeset_add(&where, memory_node);
    long resident = 0, inside = 0;
    for (int i = 0; i < BUFFERS; i++) inside += pages_on(buffers[i], BUFFER_SIZE, &where, &resident);
    bool ok = resident == BUFFERS * (BUFFER_SIZE / 4096) && inside == resident;
    if (why && dev) printf("%s: %s; I/O buffers on this thread's node instead\n", dev, why);
    else if (why) printf("%s; I/O buffers on this thread's node instead\n", why);
    printf("I/O buffers %s%s (node %d): %d x %d KiB, %ld/%ld pages on node %d: %s\n",
           why ? "local" : "near ", why ? "" : dev, node, BUFFERS, BUFFER_SIZE / 1024, inside, resident,
           memory_node, ok ? "ok" : "WRONG");
    status |= !ok;

    /* Compute arrays on the highest-bandwidth memory, for this thread. */
    nm_policy fast;
    char err[256], text[256];
    if (nm_policy_parse("bind:highest-bandwidth", &fast, err, sizeof err) != 0) {
        fprintf(stderr, "bind:highest-bandwidth: %s\n", err);
        return 1;
    }
    nm_policy_format(&fast, text, sizeof text);
    nm_heap_t *heap = nm_heap_new(&fast);
    double *a = heap ? nm_heap_malloc(heap, ARRAY_SIZE) : NULL;
    double *b = heap ? nm_heap_malloc(heap, ARRAY_SIZE) : NULL;
    if (!a || !b) {
        fprintf(stderr, "cannot allocate the arrays: %s\n", strerror(errno));
        return 1;
    }
    size_t count = ARRAY_SIZE / sizeof(double);
    for (size_t i = 0; i < count; i++) { a[i] = (double)i; b[i] = 2.0 * (double)i; }
    resident = 0;
    inside = pages_on(a, ARRAY_SIZE, &fast.nodes, &resident) + pages_on(b, ARRAY_SIZE, &fast.nodes, &resident);
    ok = resident == 2 * (ARRAY_SIZE / 4096) && inside == resident;
    printf("compute arrays on highest-bandwidth (%s): 2 x %d MiB, %ld/%ld pages there: %s\n", text,
           ARRAY_SIZE >> 20, inside, resident, ok ? "ok" : "WRONG");
    status |= !ok;

    for (int i = 0; i < BUFFERS; i++) nm_free(buffers[i]);
    nm_heap_destroy(heap);
    return status;
}
