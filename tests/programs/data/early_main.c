/* early_main.c — checks what early_lib.c's constructor left: its blocks
 * are intact and can be freed, and numamalloc served them. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char *early_blocks[64];
extern int early_ok;

int main(void)
{
    size_t (*usable)(const void *) = (size_t (*)(const void *))dlsym(RTLD_DEFAULT, "nm_usable_size");
    if (!usable) { fprintf(stderr, "numamalloc is not loaded\n"); return 2; }
    if (!early_ok) { fprintf(stderr, "the early constructor failed\n"); return 1; }
    for (int i = 0; i < 64; i++) {
        for (int j = 0; j < 16; j++) {
            if (early_blocks[i][j] != (char)i) { fprintf(stderr, "block %d corrupted\n", i); return 1; }
        }
        if (usable(early_blocks[i]) < ((size_t)16 << (i % 16))) {
            fprintf(stderr, "block %d not served by numamalloc\n", i);
            return 1;
        }
        free(early_blocks[i]);
    }
    printf("ok\n");
    return 0;
}
