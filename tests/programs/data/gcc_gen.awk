# gcc_gen.awk — writes a C program of N generated functions (awk -v n=N) for
# tests/programs/gcc_compile.sh: loops, switches, structs, inlining
# candidates and string work, enough to keep gcc's optimizers busy.  The
# program prints one checksum of all the functions' results.
BEGIN {
    if (n == 0) n = 300
    print "#include <stdio.h>"
    print "#include <stdint.h>"
    print "#include <string.h>"
    print "struct pt { int32_t x, y, z; uint8_t tag[12]; };"
    print "static inline uint32_t mix(uint32_t h, uint32_t v) { h ^= v; h *= 16777619u; return h ^ (h >> 15); }"
    for (i = 0; i < n; i++) {
        printf "static uint32_t f%d(uint32_t a, const struct pt *p, char *buf)\n{\n", i
        printf "    uint32_t h = %.0fu + a;\n", i * 2654435761 % 4294967296
        printf "    for (int k = 0; k < %d; k++) {\n", 3 + i % 17
        printf "        switch ((a + k) %% %d) {\n", 4 + i % 5
        for (c = 0; c < 4 + i % 5; c++)
            printf "        case %d: h = mix(h, (uint32_t)(p[k %% 4].%s * %d + k)); break;\n", \
                   c, substr("xyz", 1 + (c + i) % 3, 1), c + i % 13 + 1
        print  "        default: h += (uint32_t)k; break;"
        print  "        }"
        printf "        if (h %% %d == 0) h = mix(h, p[(k + 1) %% 4].tag[k %% 12]);\n", 7 + i % 11
        print  "    }"
        printf "    int len = snprintf(buf, 64, \"f%d-%%u-%%d\", (unsigned)h, p[%d].y);\n", i, i % 4
        print  "    for (int k = 0; k < len; k++) h = mix(h, (uint8_t)buf[k]);"
        if (i > 0) printf "    if ((h & 7) == %d) h ^= f%d(a >> 1, p, buf + 1);\n", i % 8, int(i / 2)
        print  "    return h;"
        print  "}"
    }
    print "int main(void)"
    print "{"
    print "    struct pt p[4];"
    print "    char buf[128];"
    print "    for (int i = 0; i < 4; i++) {"
    print "        p[i].x = i * 3 + 1; p[i].y = -i * 7; p[i].z = i * i + 5;"
    print "        memset(p[i].tag, 'a' + i, sizeof p[i].tag);"
    print "    }"
    print "    uint32_t h = 0;"
    for (i = 0; i < n; i++) printf "    h = mix(h, f%d(%du, p, buf));\n", i, i * 31
    print "    printf(\"checksum %08x\\n\", (unsigned)h);"
    print "    return 0;"
    print "}"
}
