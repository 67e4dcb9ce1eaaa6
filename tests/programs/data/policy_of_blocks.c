/* policy_of_blocks.c — prints the kernel's memory policy (mode and node
 * mask) of the memory under a small, a medium and a large malloc'ed block,
 * and the process policy: "small=MODE:MASK medium=... large=... process=...". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *mode_name(int mode)
{
    static const char *names[] = { "default", "preferred", "bind", "interleave", "local",
                                   "preferred-many", "weighted-interleave" };
    return mode >= 0 && mode < 7 ? names[mode] : "?";
}

static void show(const char *what, void *addr, unsigned flags)
{
    unsigned long mask[16] = { 0 };
    int mode = -1;
    if (syscall(SYS_get_mempolicy, &mode, mask, 1025, addr, flags) != 0) {
        printf("%s=error ", what);
        return;
    }
    printf("%s=%s:%#lx ", what, mode_name(mode), mask[0]);
}

int main(void)
{
    char *small = malloc(100), *medium = malloc(100000), *large = malloc(8 << 20);
    memset(small, 1, 100);
    memset(medium, 1, 100000);
    memset(large, 1, 8 << 20);
    show("small", small, 2 /* MPOL_F_ADDR */);
    show("medium", medium, 2);
    show("large", large, 2);
    show("process", NULL, 0);
    printf("\n");
    return 0;
}
