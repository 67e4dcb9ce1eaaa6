/* hugetlb.c — NUMAMALLOC_HUGEPAGES=hugetlb in a multi-node guest whose
 * hugetlb pool has pages on one node only (tests/vm/hugetlb.sh sets it up):
 * blocks of 4 MiB and 64 MiB are allocated with malloc and written in full;
 * the program must live (no SIGBUS) and prints, for each block, the kernel
 * page size of its range (/proc/self/smaps) and the nodes its pages are on
 * (move_pages), as "block MIB kb=PAGESIZE nodes=N[,N...]". */
#include "guest.h"

/* KernelPageSize of the mapping that holds `p`, in kB, or -1. */
static long page_size_kb(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    REQUIRE(f != NULL, "/proc/self/smaps");
    char line[512];
    bool inside = false;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (inside && sscanf(line, "KernelPageSize: %ld kB", &kb) == 1) break;
    }
    fclose(f);
    return kb;
}

int main(void)
{
    load_topology();
    static const size_t sizes[] = { 4 * MiB, 64 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = malloc(sizes[i]);
        REQUIRE(p != NULL, "malloc(%zu MiB)", sizes[i] / MiB);
        memset(p, 0x42, sizes[i]);
        struct blocks bl;
        blocks_init(&bl, 1);
        blocks_push(&bl, (struct block){ p, sizes[i] });
        struct tally t;
        tally_lists(&bl, 1, &t);
        blocks_release(&bl);
        printf("block %zu kb=%ld nodes=", sizes[i] / MiB, page_size_kb(p));
        const char *sep = "";
        for (int n = 0; n < MAX_NODE; n++)
            if (t.on[n]) { printf("%s%d", sep, n); sep = ","; }
        printf(" absent=%ld\n", t.absent);
        for (size_t k = 0; k < sizes[i]; k += 4096) REQUIRE(p[k] == 0x42);
        free(p);
    }
    return 0;
}
