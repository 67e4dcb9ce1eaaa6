/*
 * near_device.c — memory near a real PCI device, in the 2node guest that
 * tests/vm/near_device.sh starts with a pxb host bridge on node 1 holding
 * an e1000 NIC (0000:09:01.0) and a secondary VGA (0000:09:02.0); the
 * devices of the root bus (0000:00:xx.x) have numa_node -1.  No driver
 * binds them (the guest loads no modules), so they are named by PCI
 * address.  Linked with libnumamalloc.a; pages located with move_pages
 * (nm_where).  Prints "summary: N checks, M failed"; exit 1 on a failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <numamalloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, failed;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        checks++;                                                           \
        if (!(cond)) {                                                      \
            failed++;                                                       \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
            printf(__VA_ARGS__);                                            \
            printf("\n");                                                   \
        }                                                                   \
    } while (0)

/* Pages of [p, p + len) on `node`, and resident pages in all. */
static long on_node(const void *p, size_t len, int node, long *resident)
{
    static uint64_t counts[NM_NODE_ID_LIMIT];
    memset(counts, 0, sizeof counts);
    *resident = nm_where(p, len, counts, NM_NODE_ID_LIMIT);
    return (long)counts[node];
}

static void node_is(const char *dev, int node, int error)
{
    errno = 0;
    int got = nm_node_of_device(dev);
    if (node >= 0) CHECK(got == node, "%s: node %d errno %d, expected %d", dev, got, errno, node);
    else CHECK(got == -1 && errno == error, "%s: %d errno %d, expected errno %d", dev, got, errno, error);
    printf("%s: %d%s\n", dev, got, got < 0 ? (errno == ENXIO ? " (ENXIO)" : " (error)") : "");
}

int main(void)
{
    node_is("0000:09:01.0", 1, 0);      /* the NIC behind the bridge on node 1 */
    node_is("09:01.0", 1, 0);
    node_is("0000:09:02.0", 1, 0);      /* the display controller */
    node_is("0000:00:01.1", -1, ENXIO); /* IDE on the root bus: no affinity */
    node_is("0000:77:00.0", -1, ENODEV);

    /* nm_malloc_near: small and large blocks, written, all on node 1 */
    static const size_t sizes[] = { 64, 8192, 200 * 1024, 4 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = nm_malloc_near("0000:09:01.0", sizes[i]);
        CHECK(p != NULL, "nm_malloc_near(%zu): %s", sizes[i], strerror(errno));
        if (!p) continue;
        memset(p, 1, sizes[i]);
        long resident, there = on_node(p, sizes[i], 1, &resident);
        CHECK(resident > 0 && there == resident, "nm_malloc_near(%zu): %ld of %ld pages on node 1",
              sizes[i], there, resident);
        printf("nm_malloc_near(0000:09:01.0, %zu): %ld/%ld pages on node 1\n", sizes[i], there, resident);
        nm_free(p);
    }
    errno = 0;
    CHECK(nm_malloc_near("0000:00:01.1", 100) == NULL && errno == ENXIO, "errno %d", errno);

    /* near: as a policy, through a heap */
    nm_policy p;
    char err[256] = "", text[64] = "";
    int r = nm_policy_parse("near:0000:09:01.0", &p, err, sizeof err);
    nm_policy_format(&p, text, sizeof text);
    CHECK(r == 0 && strcmp(text, "bind:1") == 0, "near:0000:09:01.0: '%s' %s", text, err);
    r = nm_policy_parse("near:00:01.1", &p, err, sizeof err);
    CHECK(r == -1 && errno == ENXIO, "near:00:01.1: r=%d errno=%d", r, errno);
    printf("near:00:01.1: %s\n", err);
    r = nm_policy_parse("interleave:near:09:02.0", &p, err, sizeof err);
    CHECK(r == 0 && nm_nodeset_count(&p.nodes) == 1 && nm_nodeset_has(&p.nodes, 1), "%s", err);
    nm_heap_t *heap = r == 0 ? nm_heap_new(&p) : NULL;
    CHECK(heap != NULL, "nm_heap_new: %s", strerror(errno));
    if (heap) {
        size_t len = 1 << 20;
        char *b = nm_heap_malloc(heap, len);
        CHECK(b != NULL, "nm_heap_malloc");
        if (b) {
            memset(b, 2, len);
            long resident, there = on_node(b, len, 1, &resident);
            CHECK(resident == 256 && there == 256, "heap near 09:02.0: %ld of %ld pages on node 1", there,
                  resident);
            printf("heap interleave:near:09:02.0: %ld/%ld pages on node 1\n", there, resident);
        }
        nm_heap_destroy(heap);
    }
    printf("summary: %d checks, %d failed\n", checks, failed);
    return failed != 0;
}
