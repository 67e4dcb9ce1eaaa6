/*
 * tool_hold.c — runs inside the multi-node guest under `numamalloc run`
 * (tests/vm/tool.sh): allocates 64 MiB with malloc and writes it, then
 * finds where its pages are with move_pages(2) (raw system call, nothing
 * moved): those of the block, and those of the whole mapping holding the
 * block's first byte (from /proc/self/maps), so that `numamalloc maps` can
 * be compared with it mapping for mapping.  Prints
 *
 *     PID MAPPING-START block N0=.. N1=.. mapping N0=.. N1=..
 *
 * (nodes without pages left out), then waits until it is killed; with the
 * argument "exit", returns instead (for numamalloc stat).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_NODES 64
#define PAGE 4096
#define BATCH 1024

/* Add the node of each resident page of [start, end) to counts[]. */
static void count_pages(uintptr_t start, uintptr_t end, long *counts)
{
    void *pages[BATCH];
    int status[BATCH];
    for (uintptr_t at = start; at < end;) {
        unsigned long n = 0;
        for (; n < BATCH && at < end; n++, at += PAGE) pages[n] = (void *)at;
        if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) != 0) {
            perror("move_pages");
            exit(1);
        }
        for (unsigned long i = 0; i < n; i++) {
            if (status[i] >= 0 && status[i] < MAX_NODES) counts[status[i]]++;
        }
    }
}

static void print_counts(const char *what, const long *counts)
{
    printf(" %s", what);
    for (int node = 0; node < MAX_NODES; node++) {
        if (counts[node]) printf(" N%d=%ld", node, counts[node]);
    }
}

int main(int argc, char **argv)
{
    size_t size = 64u << 20;
    char *block = malloc(size);
    if (!block) return 1;
    memset(block, 1, size);

    uintptr_t start = 0, end = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a <= (uintptr_t)block && (uintptr_t)block < b) {
            start = a;
            end = b;
        }
    }
    if (!start) {
        fprintf(stderr, "tool_hold: no mapping holds the block\n");
        return 1;
    }
    long in_block[MAX_NODES] = { 0 }, in_mapping[MAX_NODES] = { 0 };
    count_pages((uintptr_t)block, (uintptr_t)block + size, in_block);
    count_pages(start, end, in_mapping);
    printf("%d %lx", (int)getpid(), (unsigned long)start);
    print_counts("block", in_block);
    print_counts("mapping", in_mapping);
    printf("\n");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "exit") == 0) {
        free(block);
        return 0;
    }
    for (;;) pause();
}
