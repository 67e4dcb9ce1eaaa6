/*
 * symbols.c — addresses of a process to function names, for `numamalloc
 * prof`: the process's /proc/PID/maps (as a heap profile keeps it) says
 * which file an address is in and at which file offset; the file's PT_LOAD
 * program headers turn the offset into the ELF's virtual address, and its
 * .symtab (else .dynsym) names the function there.  No libelf: the files
 * are mapped read-only and read with <elf.h>'s structures (64-bit ELF of
 * this machine's byte order; anything else is named by file and offset).
 *
 * Each file's symbols are read once and kept, sorted by address.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"

/* One executable mapping of the process: [start, end) maps the file
 * `path` from `offset` on. */
struct exec_mapping {
    uint64_t start, end, offset;
    char *path;                 /* "" for anonymous memory; "[vdso]" ... */
    struct elf_file *file;      /* NULL until first looked up */
};

struct function {
    uint64_t start, size;       /* in the ELF's virtual addresses */
    const char *name;           /* inside the file's string table copy */
};

/* A file on disk and its functions.  Invariant: `functions` is sorted by
 * start; `readable` is false when the file could not be read as ELF, and
 * then `functions` is empty and `loads` too. */
struct elf_file {
    char *path;
    bool readable;
    int load_count;
    struct { uint64_t offset, filesz, vaddr; } *loads;
    size_t count;
    struct function *functions;
    char *strings;              /* the string table the names point into */
    struct elf_file *next;
};

struct symbolizer {
    size_t count;
    struct exec_mapping *mappings;   /* executable mappings, in maps order */
    struct elf_file *files;     /* every file read so far */
};

/* ---- the maps text ------------------------------------------------------------------- */

struct symbolizer *symbolizer_new(const char *maps, size_t len)
{
    struct symbolizer *s = xcalloc(1, sizeof *s);
    size_t cap = 0;
    for (size_t at = 0; at < len;) {
        const char *line = maps + at;
        const char *nl = memchr(line, '\n', len - at);
        size_t n = nl ? (size_t)(nl - line) : len - at;
        at += n + 1;
        struct maps_line m;
        if (!maps_line_parse(line, n, &m) || !m.executable) continue;
        if (s->count == cap) {
            cap = cap ? cap * 2 : 64;
            s->mappings = realloc(s->mappings, cap * sizeof *s->mappings);
            if (!s->mappings) fail(EXIT_FAILED, "out of memory");
        }
        struct exec_mapping *map = &s->mappings[s->count++];
        *map = (struct exec_mapping){ .start = m.start, .end = m.end, .offset = m.offset };
        size_t path_len = n - m.path_at;
        while (path_len && line[m.path_at + path_len - 1] == ' ') path_len--;
        map->path = strndup(line + m.path_at, path_len);
        if (!map->path) fail(EXIT_FAILED, "out of memory");
    }
    return s;
}

/* ---- reading an ELF file ------------------------------------------------------------- */

static int by_start(const void *a, const void *b)
{
    const struct function *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    /* At the same address prefer the sized symbol (a function over an alias of size 0). */
    return x->size > y->size ? -1 : x->size < y->size;
}

/* Whether [offset, offset + size) lies inside a file of `file_size` bytes. */
static bool inside(uint64_t offset, uint64_t size, uint64_t file_size)
{
    return offset <= file_size && size <= file_size - offset;
}

/* Read the functions of one symbol table (section `sym`, strings in its
 * sh_link section); false if it has none. */
static bool read_symbols(struct elf_file *f, const unsigned char *data, size_t size, const Elf64_Shdr *sections,
                         unsigned section_count, const Elf64_Shdr *sym)
{
    if (sym->sh_entsize != sizeof(Elf64_Sym) || sym->sh_link >= section_count ||
        !inside(sym->sh_offset, sym->sh_size, size))
        return false;
    const Elf64_Shdr *str = &sections[sym->sh_link];
    if (str->sh_type != SHT_STRTAB || !inside(str->sh_offset, str->sh_size, size) || str->sh_size == 0) return false;
    size_t n = sym->sh_size / sizeof(Elf64_Sym);
    f->strings = malloc(str->sh_size + 1);
    if (!f->strings) fail(EXIT_FAILED, "out of memory");
    memcpy(f->strings, data + str->sh_offset, str->sh_size);
    f->strings[str->sh_size] = '\0';   /* a name running off the table ends here */
    f->functions = xcalloc(n, sizeof *f->functions);
    f->count = 0;
    for (size_t i = 0; i < n; i++) {
        Elf64_Sym s;
        memcpy(&s, data + sym->sh_offset + i * sizeof s, sizeof s);
        int type = ELF64_ST_TYPE(s.st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF || s.st_name >= str->sh_size ||
            f->strings[s.st_name] == '\0')
            continue;
        f->functions[f->count++] = (struct function){ s.st_value, s.st_size, f->strings + s.st_name };
    }
    if (f->count == 0) {
        free(f->functions);
        free(f->strings);
        f->functions = NULL;
        f->strings = NULL;
        return false;
    }
    qsort(f->functions, f->count, sizeof *f->functions, by_start);
    return true;
}

static void read_elf(struct elf_file *f)
{
    /* Without waiting on a FIFO or a device a profile might name. */
    int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    if (fd < 0) return;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return;
    }
    size_t size = (size_t)st.st_size;
    const unsigned char *data = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED) return;
    Elf64_Ehdr h;
    memcpy(&h, data, sizeof h);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const unsigned char order = ELFDATA2LSB;
#else
    const unsigned char order = ELFDATA2MSB;
#endif
    if (memcmp(h.e_ident, ELFMAG, SELFMAG) != 0 || h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != order ||
        h.e_phentsize != sizeof(Elf64_Phdr) || !inside(h.e_phoff, (uint64_t)h.e_phnum * sizeof(Elf64_Phdr), size))
        goto out;
    f->loads = xcalloc(h.e_phnum, sizeof *f->loads);
    for (unsigned i = 0; i < h.e_phnum; i++) {
        Elf64_Phdr p;
        memcpy(&p, data + h.e_phoff + i * sizeof p, sizeof p);
        if (p.p_type != PT_LOAD) continue;
        f->loads[f->load_count].offset = p.p_offset;
        f->loads[f->load_count].filesz = p.p_filesz;
        f->loads[f->load_count].vaddr = p.p_vaddr;
        f->load_count++;
    }
    f->readable = f->load_count > 0;
    if (!f->readable || h.e_shentsize != sizeof(Elf64_Shdr) ||
        !inside(h.e_shoff, (uint64_t)h.e_shnum * sizeof(Elf64_Shdr), size))
        goto out;
    Elf64_Shdr *sections = xcalloc(h.e_shnum, sizeof *sections);
    memcpy(sections, data + h.e_shoff, (size_t)h.e_shnum * sizeof *sections);
    /* .symtab has every function; a stripped file keeps only .dynsym. */
    static const uint32_t tables[] = { SHT_SYMTAB, SHT_DYNSYM };
    for (size_t t = 0; t < 2 && f->count == 0; t++)
        for (unsigned i = 0; i < h.e_shnum && f->count == 0; i++)
            if (sections[i].sh_type == tables[t]) read_symbols(f, data, size, sections, h.e_shnum, &sections[i]);
    free(sections);
out:
    munmap((void *)data, size);
}

static struct elf_file *elf_file(struct symbolizer *s, const char *path)
{
    for (struct elf_file *f = s->files; f; f = f->next)
        if (strcmp(f->path, path) == 0) return f;
    struct elf_file *f = xcalloc(1, sizeof *f);
    f->path = strdup(path);
    if (!f->path) fail(EXIT_FAILED, "out of memory");
    if (path[0] == '/') read_elf(f);   /* "[vdso]", anonymous memory: no file */
    f->next = s->files;
    s->files = f;
    return f;
}

/* The function containing `vaddr`, else the nearest one before it; NULL if
 * none is before it. */
static const struct function *find_function(const struct elf_file *f, uint64_t vaddr)
{
    size_t lo = 0, hi = f->count;   /* the first function starting after vaddr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->functions[mid].start <= vaddr) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return NULL;
    /* Among those starting at or before vaddr, one whose range holds it
     * (nested or overlapping symbols), else the nearest. */
    for (size_t i = lo; i-- > 0;) {
        const struct function *fn = &f->functions[i];
        if (vaddr - fn->start < fn->size) return fn;
        if (lo - i > 16) break;
    }
    return &f->functions[lo - 1];
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

const char *symbolize(struct symbolizer *s, uint64_t address, char *buf, size_t len)
{
    struct exec_mapping *map = NULL;
    for (size_t i = 0; i < s->count; i++) {
        if (address >= s->mappings[i].start && address < s->mappings[i].end) {
            map = &s->mappings[i];
            break;
        }
    }
    if (!map || !map->path[0]) {
        snprintf(buf, len, "0x%" PRIx64, address);
        return buf;
    }
    uint64_t offset = address - map->start + map->offset;
    /* A file replaced since the process mapped it shows as "PATH
     * (deleted)": the file now at PATH is another build, whose names would
     * be wrong; the address is given in the old file. */
    static const char deleted[] = " (deleted)";
    const char *base = base_name(map->path);
    size_t n = strlen(base);
    if (n > sizeof deleted - 1 && strcmp(base + n - (sizeof deleted - 1), deleted) == 0) {
        snprintf(buf, len, "%.*s+0x%" PRIx64, (int)(n - (sizeof deleted - 1)), base, offset);
        return buf;
    }
    if (!map->file) map->file = elf_file(s, map->path);
    struct elf_file *f = map->file;
    for (int i = 0; i < f->load_count; i++) {
        if (offset - f->loads[i].offset >= f->loads[i].filesz || offset < f->loads[i].offset) continue;
        uint64_t vaddr = offset - f->loads[i].offset + f->loads[i].vaddr;
        const struct function *fn = find_function(f, vaddr);
        /* Past the end of the nearest function before it, the address is
         * in a function the file does not name (a stripped library's
         * static function, libc's start_thread): the file and address,
         * rather than a neighbour's name that would mislead. */
        if (fn && !(fn->size && vaddr - fn->start >= fn->size)) return fn->name;
        snprintf(buf, len, "%s+0x%" PRIx64, base_name(f->path), vaddr);
        return buf;
    }
    snprintf(buf, len, "%s+0x%" PRIx64, base_name(map->path), offset);
    return buf;
}
