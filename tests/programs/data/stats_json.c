/* stats_json.c — for tests/programs/stats_json.sh: prints its pid, then
 * nm_stats_json() with ten 3 MiB blocks live and written, then again after
 * they are freed, then with 1000 blocks of 40 bytes and 300 of 3000 bytes
 * live, then after they are freed: one object per line; checks the buffer
 * contract itself (a short buffer gets the same length back and a NUL at
 * its end). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "numamalloc.h"

#define BLOCKS 10
#define BLOCK_SIZE (3u << 20)
#define SMALL_BLOCKS 1000
#define SMALL_SIZE 40
#define MEDIUM_BLOCKS 300
#define MEDIUM_SIZE 3000

static void print_json(void)
{
    static char buf[256 * 1024];
    size_t len = nm_stats_json(buf, sizeof buf);
    if (len >= sizeof buf || strlen(buf) != len || len == 0 || buf[len - 1] != '\n') {
        fprintf(stderr, "nm_stats_json: length %zu for %zu bytes written\n", len, strlen(buf));
        exit(1);
    }
    char small[16];
    memset(small, 'x', sizeof small);
    size_t again = nm_stats_json(small, sizeof small);
    if (again < sizeof small || small[sizeof small - 1] != '\0' || strlen(small) != sizeof small - 1 ||
        memcmp(small, buf, sizeof small - 1) != 0 || nm_stats_json(NULL, 0) < sizeof small) {
        fprintf(stderr, "nm_stats_json into 16 bytes: %zu, '%s'\n", again, small);
        exit(1);
    }
    fputs(buf, stdout);
}

int main(void)
{
    void *p[BLOCKS];
    printf("%ld\n", (long)getpid());
    for (int i = 0; i < BLOCKS; i++) {
        p[i] = malloc(BLOCK_SIZE);
        if (!p[i]) return 1;
        memset(p[i], i, BLOCK_SIZE);
    }
    print_json();
    for (int i = 0; i < BLOCKS; i++) free(p[i]);
    print_json();

    static void *small[SMALL_BLOCKS], *medium[MEDIUM_BLOCKS];
    for (int i = 0; i < SMALL_BLOCKS; i++)
        if (!(small[i] = malloc(SMALL_SIZE))) return 1;
    for (int i = 0; i < MEDIUM_BLOCKS; i++)
        if (!(medium[i] = malloc(MEDIUM_SIZE))) return 1;
    print_json();
    for (int i = 0; i < SMALL_BLOCKS; i++) free(small[i]);
    for (int i = 0; i < MEDIUM_BLOCKS; i++) free(medium[i]);
    print_json();
    return 0;
}
