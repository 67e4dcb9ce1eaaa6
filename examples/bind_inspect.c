/*
 * bind_inspect.c — a block bound to a node, inspected from outside: a
 * 256 MiB block bound to node 0, written in full, then held until Enter is
 * pressed so that its placement can be inspected from another terminal:
 *
 *     numamalloc maps PID               (per node and per mapping)
 *     grep bind /proc/PID/numa_maps     (the kernel's own view)
 *
 * The numa_maps line of the block reads "bind:0 ... N0=65536": the policy is
 * bound to node 0, and all 65,536 pages of 4 KiB are there.  The program
 * shows that line itself, and checks with nm_where that every page is on
 * the node (exit status 1 if not).
 *
 *   gcc -O2 -I include examples/bind_inspect.c -o bind_inspect \
 *       -L build -lnumamalloc -Wl,-rpath,$PWD/build
 *   ./bind_inspect [--node N] [--mib M] [--no-wait]
 *
 * --node and --mib choose another node and size; --no-wait exits at once
 * instead of waiting for Enter (end of input also ends the wait).
 */
#include <numamalloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096

/* Copy the /proc/self/numa_maps line of the mapping holding `p` to `line`:
 * the last line whose start address is not above p (the lines are sorted). */
static int numa_maps_line(const void *p, char *line, size_t len)
{
    FILE *f = fopen("/proc/self/numa_maps", "r");
    char buf[1024];
    int found = 0;
    if (!f) return 0;
    while (fgets(buf, sizeof buf, f)) {
        uintptr_t start = (uintptr_t)strtoull(buf, NULL, 16);
        if (start > (uintptr_t)p) break;
        buf[strcspn(buf, "\n")] = 0;
        snprintf(line, len, "%s", buf);
        found = 1;
    }
    fclose(f);
    return found;
}

/* Does a numa_maps line say "bind:NODE" and "NNODE=COUNT", COUNT >= pages,
 * with no page on another node? */
static int numa_maps_says_bound(const char *line, int node, long pages)
{
    char bind[32];
    int bound = 0, only_node = 1;
    long count = 0;
    snprintf(bind, sizeof bind, " bind:%d ", node);
    bound = strstr(line, bind) != NULL;
    for (const char *t = strstr(line, " N"); t; t = strstr(t + 1, " N")) {
        int n;
        long c;
        if (sscanf(t, " N%d=%ld", &n, &c) != 2) continue;
        if (n == node) count = c;
        else only_node = 0;
    }
    return bound && only_node && count >= pages;
}

int main(int argc, char **argv)
{
    int node = 0, wait_for_enter = 1;
    size_t mib = 256;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--node") == 0 && i + 1 < argc) node = atoi(argv[++i]);
        else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc) mib = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--no-wait") == 0) wait_for_enter = 0;
        else {
            fprintf(stderr, "usage: %s [--node N] [--mib M] [--no-wait]\n", argv[0]);
            return 2;
        }
    }
    size_t bytes = mib << 20;
    if (node < 0 || node >= NM_NODE_ID_LIMIT || mib == 0) {
        fprintf(stderr, "bind_inspect: --node must be a node id, --mib above 0\n");
        return 2;
    }

    /* The block: bound to `node`, so the kernel puts every page there (or
     * the allocation fails), whichever CPU this process runs on. */
    char *block = nm_malloc_onnode(bytes, node);
    if (!block) {
        perror("bind_inspect: nm_malloc_onnode");
        return 1;
    }
    memset(block, 0x5a, bytes);   /* fault every page in */
    printf("pid %d: %zu MiB at %p from nm_malloc_onnode(%zu MiB, %d), every page written\n",
           (int)getpid(), mib, (void *)block, mib, node);

    /* Where are the pages?  The kernel's answer, page by page. */
    uint64_t counts[NM_NODE_ID_LIMIT] = {0};
    long pages = nm_where(block, bytes, counts, NM_NODE_ID_LIMIT);
    long want = (long)(bytes / PAGE), here = (long)counts[node];
    printf("nm_where: %ld/%ld pages on node %d\n", here, want, node);
    int ok = pages == want && here == want;

    /* The same as numa_maps shows it: the mapping's policy is bind:NODE and
     * its pages (the block's, maybe a few more) are on NODE alone. */
    char line[1024];
    if (numa_maps_line(block, line, sizeof line)) {
        printf("numa_maps: %s\n", line);
        if (!numa_maps_says_bound(line, node, want)) ok = 0;
    } else {
        printf("numa_maps: not readable here\n");
    }
    fflush(stdout);

    if (wait_for_enter) {
        printf("Inspect it from another terminal: numamalloc maps %d  (or: grep bind /proc/%d/numa_maps)\n",
               (int)getpid(), (int)getpid());
        printf("Press Enter to free the block and exit.\n");
        fflush(stdout);
        int c;
        while ((c = getchar()) != EOF && c != '\n') {}
    }
    nm_free(block);
    printf("%s\n", ok ? "ok: every page on the node it is bound to" : "FAILED: pages off the node");
    return ok ? 0 : 1;
}
