/* huge_tail.c — blocks of 2 MiB and more cost what they hold with
 * transparent huge pages on.
 *
 * A program keeps ten buffers of 3.0-3.9 MiB (image tiles, column chunks),
 * writes them whole, then grows each with realloc to 5 MiB and writes that.
 * numamalloc gives such blocks transparent huge pages (NUMAMALLOC_HUGEPAGES
 * =thp, the default) on their whole huge pages only: the RSS they add must
 * stay within what was asked plus 64 KiB a block (a header page each, and
 * what else the process touches meanwhile), where huge pages over the
 * blocks' last, part-filled 2 MiB would add up to 2 MiB a block (41,116 KiB
 * for 35,114 asked, and 61,596 for 51,209 once grown).
 * The share in huge pages (AnonHugePages) is printed, as is glibc's RSS for
 * the same buffers (mmap per block: exactly what was asked).  Skipped when
 * the kernel has transparent huge pages off ("never"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define BLOCKS 10
#define SLACK_PER_BLOCK (64 * KiB)

static size_t smaps_kib(const char *field)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return 0;
    char line[256];
    size_t len = strlen(field), value = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0) value = strtoul(line + len, NULL, 10);
    fclose(f);
    return value;
}

/* Both steps, as "first_kib second_kib asked1_kib asked2_kib". */
static void measure(char *out, size_t size)
{
    static unsigned char *p[BLOCKS];
    size_t base = smaps_kib("Rss:"), asked1 = 0, asked2 = 0;
    for (int i = 0; i < BLOCKS; i++) {
        size_t n = 3 * MiB + (size_t)i * 100000;
        p[i] = malloc(n);
        REQUIRE(p[i] != NULL, "malloc(%zu)", n);
        memset(p[i], 1, n);
        asked1 += n;
    }
    size_t first = smaps_kib("Rss:") - base;
    size_t huge1 = smaps_kib("AnonHugePages:");
    for (int i = 0; i < BLOCKS; i++) {
        size_t n = 5 * MiB + 1000;
        p[i] = realloc(p[i], n);
        REQUIRE(p[i] != NULL, "realloc(%zu)", n);
        memset(p[i], 2, n);
        asked2 += n;
    }
    size_t second = smaps_kib("Rss:") - base;
    size_t huge2 = smaps_kib("AnonHugePages:");
    snprintf(out, size, "%zu %zu %zu %zu %zu %zu\n", first, second, asked1 / KiB, asked2 / KiB,
             huge1, huge2);
    for (int i = 0; i < BLOCKS; i++) free(p[i]);
}

int main(int argc, char **argv)
{
    (void)argc;
    char line[256];
    if (getenv("NM_HUGE_TAIL_GLIBC")) {
        measure(line, sizeof line);
        fputs(line, stdout);
        return 0;
    }
    nm_test_require_numamalloc();
    char thp[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(thp, sizeof thp, f)) thp[0] = 0;
        fclose(f);
    }
    if (!strstr(thp, "[always]") && !strstr(thp, "[madvise]"))
        nm_test_skip("transparent huge pages are off here (%s)", f ? "never" : "no sysfs entry");
    measure(line, sizeof line);
    size_t first, second, asked1, asked2, huge1, huge2;
    REQUIRE(sscanf(line, "%zu %zu %zu %zu %zu %zu", &first, &second, &asked1, &asked2, &huge1,
                   &huge2) == 6);
    char glibc[256];
    nm_test_glibc_run(argv[0], "NM_HUGE_TAIL_GLIBC", glibc, sizeof glibc);
    size_t g1 = 0, g2 = 0;
    sscanf(glibc, "%zu %zu", &g1, &g2);
    printf("10 blocks of 3.0-3.9 MiB: asked %zu KiB, RSS added %zu KiB (%zu KiB in huge pages); "
           "glibc %zu KiB\n", asked1, first, huge1, g1);
    printf("grown to 5 MiB each:     asked %zu KiB, RSS added %zu KiB (%zu KiB in huge pages); "
           "glibc %zu KiB\n", asked2, second, huge2, g2);
    size_t slack = BLOCKS * SLACK_PER_BLOCK / KiB;
    CHECK(first <= asked1 + slack, "the blocks added %zu KiB of RSS for %zu KiB asked (at most %zu)",
          first, asked1, asked1 + slack);
    CHECK(second <= asked2 + slack,
          "the grown blocks added %zu KiB of RSS for %zu KiB asked (at most %zu)", second, asked2,
          asked2 + slack);
    return nm_test_done();
}
