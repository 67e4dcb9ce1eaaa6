/* code_footprint: a program that only allocates maps little of the
 * library's code (docs/design.md, "Code layout").
 *
 * The kernel maps a file's pages around a faulting one (fault-around: up to
 * 64 KiB, the aligned window holding the fault), so a program maps every
 * window of the code that holds a function it runs.  The build places the
 * functions programs run (src/hot.list) together, first in .text: 59 KiB
 * up to nm_hot_code_end, so they lie in at most two windows however the
 * library is placed.  Scattered through the code (built without the
 * list), the same run maps all three windows of its 140 KiB.
 *
 * The program: small, medium and large blocks, calloc, realloc, aligned
 * allocations, a thread that allocates and exits, blocks freed by another
 * thread.  Then every window of the library's code holding a page the
 * process has mapped (/proc/self/pagemap's present bit) must meet the
 * range from .init to nm_hot_code_end and the start-up code the link puts
 * right after it (read from the library's section headers and symbol
 * table; a stripped library skips): a window outside it holds a function
 * the program ran that src/hot.list does not list.  The layout is made for
 * the default configuration: under strict overcommit accounting
 * (vm.overcommit_memory 2) the allocator runs code of its own, and the
 * test skips. */
#define _GNU_SOURCE
#include "../testutil.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WINDOW ((uintptr_t)64 << 10)
#define BLOCKS 4096

static void *blocks[BLOCKS];

static void *allocate_and_exit(void *arg)
{
    (void)arg;
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc((size_t)(16 + (i * 37) % 3000));
        REQUIRE(blocks[i], "malloc");
        memset(blocks[i], 1, 16);
    }
    void *big = malloc(1 << 20);
    REQUIRE(big, "malloc(1 MiB)");
    memset(big, 2, 4096);
    free(big);
    return NULL;
}

static void allocate(void)
{
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, allocate_and_exit, NULL) == 0, "pthread_create");
    REQUIRE(pthread_join(t, NULL) == 0, "pthread_join");
    for (int i = 0; i < BLOCKS; i++) free(blocks[i]);   /* the exited thread's blocks */
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < BLOCKS; i++) {
            blocks[i] = malloc((size_t)(8 + (i * 131) % 20000));
            REQUIRE(blocks[i], "malloc");
        }
        for (int i = 0; i < BLOCKS; i += 2) {
            blocks[i] = realloc(blocks[i], (size_t)(i % 500) + 1);
            REQUIRE(blocks[i], "realloc");
        }
        for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
    }
    void *z = calloc(1000, 48);
    void *a = NULL;
    CHECK(posix_memalign(&a, 256, 1000) == 0 && a, "posix_memalign");
    void *b = aligned_alloc(4096, 8192);
    void *l = malloc(8 << 20);
    REQUIRE(z && b && l, "calloc, aligned_alloc, malloc(8 MiB)");
    memset(l, 3, 8 << 20);
    l = realloc(l, 16 << 20);
    REQUIRE(l, "realloc to 16 MiB");
    free(l);
    free(b);
    free(a);
    free(z);
}

/* The address range [*lo, *hi) from section .init to nm_hot_code_end
 * (the end of the functions src/hot.list places first), or to the end of
 * crtbeginS's start-up code the link puts right after them, in the
 * library file `path`, relative to its load address.  1 when found, 0
 * when the symbol table has no nm_hot_code_end, -1 when the file has no
 * symbol table (stripped). */
static const char *const range_ends[] = { "nm_hot_code_end", "frame_dummy", "register_tm_clones",
                                          "deregister_tm_clones", "__do_global_dtors_aux" };

static int hot_range(const char *path, uintptr_t *lo, uintptr_t *hi)
{
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0, "open %s", path);
    Elf64_Ehdr eh;
    REQUIRE(pread(fd, &eh, sizeof eh, 0) == sizeof eh && eh.e_shentsize == sizeof(Elf64_Shdr),
            "%s: ELF header", path);
    static Elf64_Shdr sh[256];
    REQUIRE(eh.e_shnum <= 256 && eh.e_shstrndx < eh.e_shnum, "%s: %u sections", path, eh.e_shnum);
    size_t bytes = (size_t)eh.e_shnum * sizeof *sh;
    REQUIRE(pread(fd, sh, bytes, (off_t)eh.e_shoff) == (ssize_t)bytes, "%s: section headers", path);
    static char names[8192];
    ssize_t got = pread(fd, names, sizeof names - 1, (off_t)sh[eh.e_shstrndx].sh_offset);
    REQUIRE(got > 0, "%s: section names", path);
    names[got] = 0;
    bool have_init = false, have_end = false, have_symtab = false;
    for (int i = 0; i < eh.e_shnum; i++) {
        if (sh[i].sh_name < (size_t)got && strcmp(names + sh[i].sh_name, ".init") == 0) {
            *lo = sh[i].sh_addr;
            have_init = true;
        }
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh.e_shnum) continue;
        have_symtab = true;
        static Elf64_Sym syms[16384];
        static char strings[1 << 17];
        size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
        const Elf64_Shdr *str = &sh[sh[i].sh_link];
        REQUIRE(sh[i].sh_size <= sizeof syms && str->sh_size < sizeof strings,
                "%s: a symbol table of %lu bytes and names of %lu", path,
                (unsigned long)sh[i].sh_size, (unsigned long)str->sh_size);
        REQUIRE(pread(fd, syms, sh[i].sh_size, (off_t)sh[i].sh_offset) == (ssize_t)sh[i].sh_size &&
                pread(fd, strings, str->sh_size, (off_t)str->sh_offset) == (ssize_t)str->sh_size,
                "%s: symbol table", path);
        strings[str->sh_size] = 0;
        for (size_t k = 0; k < count; k++) {
            if (syms[k].st_name >= str->sh_size) continue;
            for (size_t e = 0; e < sizeof range_ends / sizeof range_ends[0]; e++) {
                if (strcmp(strings + syms[k].st_name, range_ends[e]) != 0) continue;
                uintptr_t end = syms[k].st_value + syms[k].st_size;
                if (end > *hi) *hi = end;
                have_end |= e == 0;
            }
        }
    }
    close(fd);
    REQUIRE(have_init, "%s: no .init section", path);
    return !have_symtab ? -1 : have_end ? 1 : 0;
}

int main(void)
{
    nm_test_require_numamalloc();
    char mode[4] = "";
    FILE *overcommit = fopen("/proc/sys/vm/overcommit_memory", "r");
    if (overcommit && fgets(mode, sizeof mode, overcommit) && mode[0] == '2')
        nm_test_skip("strict overcommit accounting: the code layout is made for the default");
    if (overcommit) fclose(overcommit);
    allocate();

    Dl_info info;
    REQUIRE(dladdr((void *)malloc, &info) && info.dli_fname, "dladdr(malloc)");
    char library[PATH_MAX];   /* as /proc/self/maps names it */
    REQUIRE(realpath(info.dli_fname, library), "realpath(%s)", info.dli_fname);
    uintptr_t lo = 0, hi = 0;
    int found = hot_range(library, &lo, &hi);
    if (found < 0) nm_test_skip("%s is stripped: no symbol says where its hot code ends", library);
    bool have_hot = found > 0;
    CHECK(have_hot, "%s has no symbol nm_hot_code_end (built without src/hot.list?)", library);
    uintptr_t base = (uintptr_t)info.dli_fbase;
    lo += base;
    hi += base;

    FILE *maps = fopen("/proc/self/maps", "r");
    REQUIRE(maps, "/proc/self/maps");
    char line[512];
    int windows = 0, code_mappings = 0;
    long resident_kib = 0;
    uintptr_t last_window = 0;
    while (fgets(line, sizeof line, maps)) {
        uintptr_t start, end;
        char perm[8], path[256] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &start, &end, perm, path) < 3) continue;
        if (strcmp(path, library) != 0 || perm[2] != 'x') continue;
        code_mappings++;
        for (uintptr_t page = start; page < end; page += 4096) {
            int present = nm_test_page_present((const void *)page);
            REQUIRE(present >= 0, "/proc/self/pagemap");
            if (!present) continue;
            resident_kib += 4;
            uintptr_t window = page & ~(WINDOW - 1);
            if (window == last_window) continue;
            windows++;
            last_window = window;
            CHECK(!have_hot || (window < hi && window + WINDOW > lo),
                  "the window at offset %#lx of the library's code is mapped, away from the "
                  "functions placed first (%#lx - %#lx): a function the program ran is missing "
                  "from src/hot.list (make hot-layout)", (unsigned long)(window - base), (unsigned long)(lo - base),
                  (unsigned long)(hi - base));
        }
    }
    fclose(maps);
    REQUIRE(code_mappings == 1, "%d executable mappings of %s", code_mappings, library);
    printf("code mapped: %ld KiB in %d windows of 64 KiB\n", resident_kib, windows);
    CHECK(windows <= 2, "the code this program ran lies in %d windows of 64 KiB, expected at most 2",
          windows);
    return nm_test_done();
}
