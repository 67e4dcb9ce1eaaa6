/*
 * numamalloc.c — the `numamalloc` command: runs programs with the library
 * preloaded and a policy (run), shows the machine's nodes (topology), where
 * a process's memory is (maps), what a run did to the NUMA counters
 * (stat), and heap profiles (prof).  This file: the command line, help
 * texts, and `run`; the other subcommands are in topology.c, maps.c,
 * stat.c and prof.c (with symbols.c).
 *
 * The library is found next to the command: build/libnumamalloc.so when
 * it runs from build/, PREFIX/lib/libnumamalloc.so.N after make install.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "numamalloc.h"
#include "tool.h"

#ifndef NM_SONAME
#define NM_SONAME "libnumamalloc.so.0"   /* the Makefile passes libnumamalloc.so.$(SOVERSION) */
#endif


static const char usage_main[] =
    "usage: numamalloc COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "NUMA-aware malloc: run programs with it and see where memory is.\n"
    "\n"
    "commands:\n"
    "  run [OPTIONS] -- PROGRAM [ARGS]   run PROGRAM with numamalloc and a policy\n"
    "  topology [--json]                 nodes, CPUs, memory, distances, tiers\n"
    "  maps PID|NAME... | --system       where processes' memory is, by node\n"
    "  stat [OPTIONS] -- PROGRAM [ARGS]  run PROGRAM, report NUMA counters and\n"
    "                                    numamalloc's statistics\n"
    "  prof [OPTIONS] -- PROGRAM [ARGS]  run PROGRAM with heap profiling, report\n"
    "                                    where its live memory was allocated\n"
    "  prof report FILE                  report a heap profile the library wrote\n"
    "  help [COMMAND]                    this text, or a command's\n"
    "\n"
    "`numamalloc COMMAND --help` describes each command; man numamalloc has more.\n"
    "Options: --help, --version.\n";

static const char usage_run[] =
    "usage: numamalloc run [OPTIONS] [--] PROGRAM [ARGS]\n"
    "\n"
    "Run PROGRAM with libnumamalloc preloaded (LD_PRELOAD, put before any\n"
    "preload already set) and configured through its environment variables.\n"
    "A policy also applies to the whole process, as numactl sets it\n"
    "(set_mempolicy: stacks, static data and other libraries' memory follow it).\n"
    "\n"
    "  --policy=POLICY         NUMAMALLOC_POLICY: local, bind:NODES, preferred:NODE,\n"
    "                          preferred-many:NODES, interleave:NODES,\n"
    "                          weighted-interleave:NODES (NODES: all, 0-3, 0,2,\n"
    "                          a kind: dram, cxl, hbm, highest-bandwidth,\n"
    "                          lowest-latency, highest-capacity, memory-only;\n"
    "                          near:DEVICE), near:DEVICE (bind:near:DEVICE)\n"
    "  -i, --interleave=NODES  the same as --policy=interleave:NODES\n"
    "  -m, --membind=NODES     the same as --policy=bind:NODES\n"
    "  -p, --preferred=NODE    the same as --policy=preferred:NODE\n"
    "  -l, --localalloc        the same as --policy=local\n"
    "  -N, --cpunodebind=NODES run on the CPUs of NODES only\n"
    "  -C, --physcpubind=CPUS  run on CPUS only (0-3,8 or all)\n"
    "  --hugepages=MODE        NUMAMALLOC_HUGEPAGES: off, thp or hugetlb\n"
    "  --stats                 NUMAMALLOC_STATS=1: statistics when PROGRAM exits\n"
    "  --library=PATH          preload this library (default: NUMAMALLOC_LIBRARY,\n"
    "                          else the one installed with this command)\n"
    "  --help                  this text\n"
    "\n"
    "Only one policy option and one CPU option may be given; both are checked\n"
    "against this machine first.  A statically linked or set-user-ID PROGRAM\n"
    "cannot have the library preloaded: a line says so, and the policy and CPU\n"
    "binding still apply.  Exit status: PROGRAM's; 2 for a bad option, policy,\n"
    "node or CPU; 126 if PROGRAM cannot be run, 127 if it is not found.\n";

static const char usage_topology[] =
    "usage: numamalloc topology [--json]\n"
    "\n"
    "The machine's NUMA nodes: CPUs (list format), memory size and free memory,\n"
    "distances (as numactl --hardware), memory-only nodes, memory tiers, HMAT\n"
    "bandwidth and latency where the firmware gives them, huge pages per node,\n"
    "the transparent huge page mode and automatic NUMA balancing.\n"
    "\n"
    "  --json   the same as a JSON object\n"
    "  --help   this text\n";

static const char usage_maps[] =
    "usage: numamalloc maps [--json] [--mappings] [-o FILE] PID|NAME...\n"
    "       numamalloc maps --system [--json] [-o FILE]\n"
    "\n"
    "Where the memory of each process is (NAME: every process with that\n"
    "command), from /proc/PID/numa_maps and /proc/PID/maps: resident pages and\n"
    "bytes per node, and per kind of mapping with its policies.  Kinds:\n"
    "numamalloc ([anon:numamalloc], the library's heaps and blocks),\n"
    "numamalloc-region ([anon:numamalloc-region], nm_region_map), heap, stack,\n"
    "anon (other anonymous memory), hugetlb, file, other ([vdso] ...).  Pages\n"
    "are counted in units of the base page size (4 KiB).\n"
    "\n"
    "  --json            the same as JSON: an object, or an array of them when\n"
    "                    more than one process (or a NAME) is asked for\n"
    "  --mappings        list every mapping too\n"
    "  --system          each node's memory (nodeN/meminfo), as numastat -m\n"
    "  -o, --output=FILE write to FILE (-: standard output, the default)\n"
    "  --help            this text\n"
    "\n"
    "Reading another user's process needs the right to trace it (or root).\n";

static const char usage_stat[] =
    "usage: numamalloc stat [OPTIONS] [--] PROGRAM [ARGS]\n"
    "\n"
    "Run PROGRAM as `numamalloc run` does, with NUMAMALLOC_STATS=1, and report\n"
    "the system's NUMA counters (numa_hit, numa_miss, numa_foreign, numa_local,\n"
    "numa_other, numa_interleave from /proc/vmstat) before and after, the same\n"
    "counters per node (nodeN/numastat), free memory per node before and after,\n"
    "and numamalloc's statistics of the run (one table per process that used it).\n"
    "PROGRAM's standard error passes through a pipe so that the statistics can be\n"
    "taken out of it; everything else it writes there is passed on.\n"
    "\n"
    "  --policy, -i, -m, -p, -l, -N, -C, --hugepages, --library\n"
    "                       as for numamalloc run\n"
    "  --json               the report as a JSON object\n"
    "  -o, --output=FILE    write the report to FILE (-: standard output;\n"
    "                       default: standard error)\n"
    "  --help               this text\n"
    "\n"
    "The counters are system-wide: other processes' allocations count too.\n"
    "Exit status: PROGRAM's (128 + N if signal N killed it); 2, 126, 127 as for run.\n";

static const char usage_prof[] =
    "usage: numamalloc prof [OPTIONS] [--] PROGRAM [ARGS]\n"
    "       numamalloc prof report FILE [--top=N] [--alloc] [--collapsed]\n"
    "                                   [--svg=OUT.svg] [-o OUT|-]\n"
    "\n"
    "Heap profiles: which call stacks hold the memory, on which node, and how\n"
    "much of it was freed from another node or placed outside its policy.\n"
    "\n"
    "prof PROGRAM runs PROGRAM as `numamalloc run` does, with NUMAMALLOC_PROF=1;\n"
    "each process writes a profile at exit, and the one of PROGRAM itself is\n"
    "reported on standard error (other processes' files are listed).\n"
    "  --policy, -i, -m, -p, -l, -N, -C, --hugepages, --library\n"
    "                       as for numamalloc run\n"
    "  -o, --output=PATTERN NUMAMALLOC_PROF_FILE: where profiles go (%p: pid,\n"
    "                       %r: MPI/Slurm rank, %n: a count; numamalloc.%p.heap)\n"
    "  --sample=SIZE        NUMAMALLOC_PROF_SAMPLE: sample one block every SIZE\n"
    "                       bytes on average (default 512K; 1: every block)\n"
    "  --top=N, --alloc, --svg=OUT.svg   as for prof report\n"
    "\n"
    "prof report FILE reads a profile and prints the top sites by live bytes:\n"
    "live bytes and blocks, live bytes per node, allocated bytes, cross-node\n"
    "frees, mismatched bytes, and the allocating function < its callers, with\n"
    "totals per node.  Functions are named from the ELF symbol tables of the\n"
    "files the process had mapped (they must still be there).\n"
    "  --top=N              the N largest sites (default 10)\n"
    "  --alloc              rank and draw by allocated bytes, not live\n"
    "  --collapsed          folded stacks instead (\"main;f;g BYTES\" lines, for\n"
    "                       flamegraph.pl, inferno or speedscope)\n"
    "  --svg=OUT.svg        also draw a flame graph into OUT.svg\n"
    "  -o, --output=OUT     write the report to OUT (-: standard output, default)\n"
    "  --help               this text\n"
    "\n"
    "Counts are sampled: bytes and blocks are estimated as pprof does.  The file\n"
    "is a gperftools heap profile (pprof reads it) with the NUMA data on '#'\n"
    "lines.  Exit status: prof report 0, 1 if FILE is no complete profile, 2 for\n"
    "a bad option; prof PROGRAM: PROGRAM's, and 2, 126, 127 as for run.\n";

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
};

static const struct command commands[] = {
    { "run", cmd_run, usage_run },
    { "topology", cmd_topology, usage_topology },
    { "maps", cmd_maps, usage_maps },
    { "stat", cmd_stat, usage_stat },
    { "prof", cmd_prof, usage_prof },
};
#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    }
    return NULL;
}

static __attribute__((noreturn)) void help(const char *text)
{
    fputs(text, stdout);
    finish();
}

void command_help(const char *name)
{
    help(find_command(name)->usage);
}

void bad_option(const char *command, int opt, char **argv)
{
    const char *given = argv[optind - 1];
    if (opt == ':') fail(EXIT_USAGE, "%s: option '%s' needs a value (see numamalloc %s --help)", command, given, command);
    fail(EXIT_USAGE, "%s: unknown option '%s' (see numamalloc %s --help)", command, given, command);
}

/* ---- starting a program --------------------------------------------------------- */

static const char *const hugepage_modes[] = { "off", "thp", "hugetlb" };

bool launch_option(struct launch *l, int opt, const char *arg)
{
    /* Each policy option: what it puts before its argument, and its
     * spellings (long, short) for messages. */
    static const struct {
        int opt, short_opt;
        const char *prefix, *spelling, *short_spelling;
    } policies[] = {
        { OPT_POLICY, 0, "", "--policy", NULL },
        { OPT_INTERLEAVE, 'i', "interleave:", "--interleave", "-i" },
        { OPT_MEMBIND, 'm', "bind:", "--membind", "-m" },
        { OPT_PREFERRED, 'p', "preferred:", "--preferred", "-p" },
        { OPT_LOCALALLOC, 'l', "local", "--localalloc", "-l" },
    };
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        bool is_short = opt == policies[i].short_opt;
        if (opt != policies[i].opt && !is_short) continue;
        if (l->policy_option[0]) {
            fail(EXIT_USAGE, "%s: give only one of --policy, --interleave (-i), --membind (-m), "
                             "--preferred (-p), --localalloc (-l)", l->command);
        }
        const char *value = policies[i].opt == OPT_LOCALALLOC ? "" : arg;
        if (snprintf(l->policy, sizeof l->policy, "%s%s", policies[i].prefix, value) >= (int)sizeof l->policy) {
            fail(EXIT_USAGE, "%s: policy too long: '%s'", l->command, value);
        }
        if (policies[i].opt == OPT_LOCALALLOC)
            snprintf(l->policy_option, sizeof l->policy_option, "%s",
                     is_short ? policies[i].short_spelling : policies[i].spelling);
        else if (is_short)
            snprintf(l->policy_option, sizeof l->policy_option, "%s %s", policies[i].short_spelling, arg);
        else
            snprintf(l->policy_option, sizeof l->policy_option, "%s=%s", policies[i].spelling, arg);
        return true;
    }
    switch (opt) {
    case OPT_CPUNODEBIND:
    case 'N':
    case OPT_PHYSCPUBIND:
    case 'C': {
        bool nodes = opt == OPT_CPUNODEBIND || opt == 'N';
        if (l->cpu_option[0]) fail(EXIT_USAGE, "%s: give only one of --cpunodebind (-N), --physcpubind (-C)", l->command);
        if (snprintf(l->cpus, sizeof l->cpus, "%s%s", nodes ? "node:" : "", arg) >= (int)sizeof l->cpus)
            fail(EXIT_USAGE, "%s: list too long: '%s'", l->command, arg);
        snprintf(l->cpu_option, sizeof l->cpu_option, "%s%s",
                 opt == 'N' ? "-N " : opt == 'C' ? "-C " : nodes ? "--cpunodebind=" : "--physcpubind=", arg);
        return true;
    }
    case OPT_HUGEPAGES:
        for (size_t i = 0; i < sizeof hugepage_modes / sizeof hugepage_modes[0]; i++) {
            if (strcmp(arg, hugepage_modes[i]) == 0) {
                l->hugepages = hugepage_modes[i];
                return true;
            }
        }
        fail(EXIT_USAGE, "%s: --hugepages=%s: not a mode (off, thp, hugetlb)", l->command, arg);
    case OPT_LIBRARY:
        l->library = arg;
        return true;
    default:
        return false;
    }
}

/* A list of numbers as cpulist files and numactl write them ("0-3,8,8"):
 * each one (repeats allowed) goes to `add`; "all" adds every one of
 * [0, all_limit).  False, with the part that is wrong in `err`, when the
 * text is not such a list. */
static bool parse_id_list(const char *text, int limit, void (*add)(int id, void *arg), void *arg,
                          char *err, size_t err_len)
{
    if (strcmp(text, "all") == 0) {
        for (int id = 0; id < limit; id++) add(id, arg);
        return true;
    }
    const char *c = text;
    do {
        char *end;
        errno = 0;
        long first = strtol(c, &end, 10), last = first;
        if (end == c || first < 0 || errno) break;
        c = end;
        if (*c == '-') {
            last = strtol(c + 1, &end, 10);
            if (end == c + 1 || last < first || errno) break;
            c = end;
        }
        if (last >= limit) {
            snprintf(err, err_len, "%ld is out of range (below %d)", last, limit);
            return false;
        }
        for (long id = first; id <= last; id++) add((int)id, arg);
        if (*c == '\0') return true;
    } while (*c++ == ',');
    snprintf(err, err_len, "not a list such as 0-3,8");
    return false;
}

static void add_cpu(int cpu, void *set) { CPU_SET((size_t)cpu, (cpu_set_t *)set); }

/* The CPUs of node `node` (its sysfs cpulist) into `set`. */
static void add_node_cpus(int node, void *set)
{
    char path[PATH_MAX], err[128];
    snprintf(path, sizeof path, "%s/devices/system/node/node%d/cpulist", sysfs_root(), node);
    char *text = read_text(path);
    if (!text) fail(EXIT_USAGE, "node %d does not exist (%s: %s)", node, path, strerror(errno));
    text[strcspn(text, "\n")] = '\0';
    if (text[0] && !parse_id_list(text, CPU_SETSIZE, add_cpu, set, err, sizeof err))
        fail(EXIT_FAILED, "%s: %s", path, err);
    free(text);
}

/* The CPUs -N or -C ask for; exits 2 when the list is wrong or leaves no
 * CPU this process may run on. */
static void launch_cpu_set(const struct launch *l, cpu_set_t *set)
{
    char err[160];
    CPU_ZERO(set);
    bool nodes = strncmp(l->cpus, "node:", 5) == 0;
    const char *list = l->cpus + (nodes ? 5 : 0);
    if (nodes) {
        nm_policy p;   /* the node list as a policy reads it: "all", ranges */
        char text[300];
        snprintf(text, sizeof text, "bind:%s", list);
        if (nm_policy_parse(text, &p, err, sizeof err) != 0) fail(EXIT_USAGE, "%s: bad node list '%s': %s", l->command, l->cpu_option, err);
        for (int node = 0; node < NM_NODE_ID_LIMIT; node++)
            if (nm_nodeset_has(&p.nodes, node)) add_node_cpus(node, set);
    } else if (!parse_id_list(list, CPU_SETSIZE, add_cpu, set, err, sizeof err)) {
        fail(EXIT_USAGE, "%s: bad CPU list '%s': %s", l->command, l->cpu_option, err);
    }
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
        CPU_AND(set, set, &allowed);
        if (CPU_COUNT(set) == 0) {
            int ids[CPU_SETSIZE], n = 0;
            for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
                if (CPU_ISSET((size_t)cpu, &allowed)) ids[n++] = cpu;
            char have[1024];
            format_list(have, sizeof have, ids, n);
            fail(EXIT_USAGE, "%s: '%s': none of these CPUs is available to this process (CPUs: %s)",
                 l->command, l->cpu_option, have);
        }
    }
}

void launch_check(const struct launch *l)
{
    if (l->cpu_option[0]) {
        cpu_set_t set;
        launch_cpu_set(l, &set);
    }
    if (!l->policy_option[0]) return;
    nm_policy policy;
    char err[256];
    if (nm_policy_parse(l->policy, &policy, err, sizeof err) != 0 ||
        nm_policy_check(&policy, err, sizeof err) != 0) {
        fail(EXIT_USAGE, "%s: bad policy '%s': %s", l->command, l->policy_option, err);
    }
}

/* The library this command belongs to: next to it (the build directory) or
 * in PREFIX/lib, lib64 or lib/TRIPLET (an installed tree). */
#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MULTIARCH "powerpc64le-linux-gnu"
#elif defined(__riscv) && __riscv_xlen == 64
#define MULTIARCH "riscv64-linux-gnu"
#elif defined(__s390x__)
#define MULTIARCH "s390x-linux-gnu"
#else
#define MULTIARCH "."
#endif

static void find_library(const struct launch *l, char out[PATH_MAX])
{
    const char *given = l->library ? l->library : getenv("NUMAMALLOC_LIBRARY");
    if (given && *given) {
        const char *how = l->library ? "--library" : "NUMAMALLOC_LIBRARY";
        if (!realpath(given, out)) fail(EXIT_FAILED, "%s=%s: %s", how, given, strerror(errno));
        if (access(out, R_OK) != 0) fail(EXIT_FAILED, "%s=%s: %s", how, given, strerror(errno));
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) fail(EXIT_FAILED, "cannot find this command's path: %s", strerror(errno));
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == exe) exe[1] = '\0';   /* "/numamalloc": the directory is "/" */
    else if (slash) *slash = '\0';
    static const struct {
        const char *dir, *file;
    } candidates[] = {
        { "", "libnumamalloc.so" },             /* build/ */
        { "/../lib", NM_SONAME },               /* PREFIX/bin -> PREFIX/lib */
        { "/../lib", "libnumamalloc.so" },
        { "/../lib64", NM_SONAME },
        { "/../lib/" MULTIARCH, NM_SONAME },
    };
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char dir[PATH_MAX + 32], real_dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s%s", exe, candidates[i].dir);
        if (!realpath(dir, real_dir)) continue;
        /* The directory without "..", the file as named (not resolved to
         * libnumamalloc.so.0.1.0). */
        const char *sep = strcmp(real_dir, "/") == 0 ? "" : "/";
        if (snprintf(out, PATH_MAX, "%s%s%s", real_dir, sep, candidates[i].file) >= PATH_MAX) continue;
        if (access(out, R_OK) == 0) return;
    }
    fail(EXIT_FAILED, "cannot find libnumamalloc.so: not in %s nor in %s/../lib, lib64 or lib/%s "
                      "(give it with --library=PATH or NUMAMALLOC_LIBRARY)", exe, exe, MULTIARCH);
}

/* Whether policy text names its nodes by id or "all" (not by a device or
 * a kind of memory, which depend on the thread that resolves them). */
static bool nodes_by_id(const char *policy)
{
    if (strncmp(policy, "near:", 5) == 0) return false;
    const char *colon = strchr(policy, ':');
    if (!colon) return true;
    const char *nodes = colon + 1;
    return strcmp(nodes, "all") == 0 || strspn(nodes, "0123456789,-") == strlen(nodes);
}

/* The policy for the whole process, as numactl sets it.  A policy naming
 * a device or a kind is resolved here, on the CPUs the program will run
 * on, and passed on as node ids, so that the library and the kernel's
 * process policy agree. */
static void apply_process_policy(const struct launch *l)
{
    /* The kernel's modes (linux/mempolicy.h: MPOL_LOCAL, MPOL_BIND, ...),
     * as the library names them in src/os.h. */
    static const int modes[] = {
        [NM_POLICY_LOCAL] = 4,
        [NM_POLICY_BIND] = 2,
        [NM_POLICY_PREFERRED] = 1,
        [NM_POLICY_PREFERRED_MANY] = 5,              /* Linux 5.15 */
        [NM_POLICY_INTERLEAVE] = 3,
        [NM_POLICY_WEIGHTED_INTERLEAVE] = 6,         /* Linux 6.9 */
    };
    nm_policy p;
    char err[256];
    if (nm_policy_parse(l->policy, &p, err, sizeof err) != 0) fail(EXIT_USAGE, "%s: %s", l->command, err);
    if (!nodes_by_id(l->policy)) {
        char ids[sizeof l->policy];
        nm_policy_format(&p, ids, sizeof ids);
        setenv("NUMAMALLOC_POLICY", ids, 1);
    }
    unsigned long mask[NM_NODE_ID_LIMIT / (8 * sizeof(unsigned long))] = { 0 };
    for (int node = 0; node < NM_NODE_ID_LIMIT; node++)
        if (nm_nodeset_has(&p.nodes, node)) mask[node / (8 * sizeof(unsigned long))] |= 1ul << (node % (8 * sizeof(unsigned long)));
    bool local = p.mode == NM_POLICY_LOCAL;
    if (syscall(SYS_set_mempolicy, modes[p.mode], local ? NULL : mask, local ? 0ul : (unsigned long)NM_NODE_ID_LIMIT + 1) != 0)
        fail(EXIT_FAILED, "%s: '%s': set_mempolicy: %s", l->command, l->policy_option, strerror(errno));
}

void launch_environment(const struct launch *l)
{
    char library[PATH_MAX];
    find_library(l, library);
    if (strpbrk(library, " :")) {
        fail(EXIT_FAILED, "cannot preload %s: LD_PRELOAD cannot hold a path with a space or a colon", library);
    }
    const char *old = getenv("LD_PRELOAD");
    if (old && *old) {
        size_t size = strlen(library) + strlen(old) + 2;
        char *both = malloc(size);
        if (!both) fail(EXIT_FAILED, "out of memory");
        snprintf(both, size, "%s:%s", library, old);
        setenv("LD_PRELOAD", both, 1);
        free(both);
    } else {
        setenv("LD_PRELOAD", library, 1);
    }
    if (l->policy_option[0]) setenv("NUMAMALLOC_POLICY", l->policy, 1);
    if (l->hugepages) setenv("NUMAMALLOC_HUGEPAGES", l->hugepages, 1);
    if (l->stats) setenv("NUMAMALLOC_STATS", "1", 1);
    if (l->cpu_option[0]) {
        cpu_set_t set;
        launch_cpu_set(l, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            fail(EXIT_FAILED, "%s: '%s': sched_setaffinity: %s", l->command, l->cpu_option, strerror(errno));
    }
    if (l->policy_option[0]) apply_process_policy(l);
}

/* The file execvp would run for `program` (PATH searched as it does), or
 * false. */
static bool program_file(const char *program, char out[PATH_MAX])
{
    if (strchr(program, '/')) return snprintf(out, PATH_MAX, "%s", program) < PATH_MAX;
    const char *path = getenv("PATH");
    for (const char *dir = path ? path : "/bin:/usr/bin"; *dir;) {
        size_t len = strcspn(dir, ":");
        if (snprintf(out, PATH_MAX, "%.*s/%s", (int)len, len ? dir : ".", program) < PATH_MAX &&
            access(out, X_OK) == 0)
            return true;
        dir += len + (dir[len] == ':');
    }
    return false;
}

/* Whether the ELF file `fd` asks for a dynamic loader (a PT_INTERP
 * program header); -1 if it is no ELF file we can read (a script). */
static int elf_is_dynamic(int fd)
{
    unsigned char ident[EI_NIDENT];
    if (pread(fd, ident, sizeof ident, 0) != (ssize_t)sizeof ident || memcmp(ident, ELFMAG, SELFMAG) != 0)
        return -1;
    bool wide = ident[EI_CLASS] == ELFCLASS64;
    Elf64_Ehdr h64;
    Elf32_Ehdr h32;
    uint64_t phoff;
    unsigned phnum, phentsize;
    if (wide) {
        if (pread(fd, &h64, sizeof h64, 0) != (ssize_t)sizeof h64) return -1;
        phoff = h64.e_phoff, phnum = h64.e_phnum, phentsize = h64.e_phentsize;
    } else {
        if (pread(fd, &h32, sizeof h32, 0) != (ssize_t)sizeof h32) return -1;
        phoff = h32.e_phoff, phnum = h32.e_phnum, phentsize = h32.e_phentsize;
    }
    for (unsigned i = 0; i < phnum && i < 4096; i++) {
        uint32_t type;   /* p_type is the first word of both layouts */
        if (pread(fd, &type, sizeof type, (off_t)(phoff + (uint64_t)i * phentsize)) != (ssize_t)sizeof type)
            return -1;
        if (type == PT_INTERP) return 1;
    }
    return 0;
}

void launch_warn_unpreloadable(const struct launch *l, const char *program)
{
    char file[PATH_MAX];
    struct stat st;
    if (!program_file(program, file) || stat(file, &st) != 0) return;   /* exec will say why */
    const char *why = NULL;
    if (st.st_mode & (S_ISUID | S_ISGID)) {
        why = st.st_mode & S_ISUID ? "is set-user-ID: the loader ignores LD_PRELOAD for it"
                                   : "is set-group-ID: the loader ignores LD_PRELOAD for it";
    } else {
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && elf_is_dynamic(fd) == 0) why = "is statically linked: no library can be preloaded into it";
        if (fd >= 0) close(fd);
    }
    if (why)
        fprintf(stderr, "numamalloc: %s: %s %s; the memory policy and CPU binding still apply\n", l->command,
                program, why);
}

int exec_failure_status(int err)
{
    return err == ENOENT || err == ENOTDIR ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
}

void exec_failure_message(const char *program, int err)
{
    if (err == ENOENT && !strchr(program, '/')) {
        fprintf(stderr, "numamalloc: %s: command not found\n", program);
    } else {
        fprintf(stderr, "numamalloc: %s: %s\n", program, strerror(err));
    }
}

void launch_exec(char **argv)
{
    fflush(NULL);
    execvp(argv[0], argv);
    int err = errno;
    exec_failure_message(argv[0], err);
    exit(exec_failure_status(err));
}

pid_t launch_start(char **argv, int stderr_fd)
{
    int exec_pipe[2];
    if (pipe2(exec_pipe, O_CLOEXEC) != 0) fail(EXIT_FAILED, "cannot make a pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) fail(EXIT_FAILED, "cannot start %s: %s", argv[0], strerror(errno));
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        if (stderr_fd >= 0) dup2(stderr_fd, STDERR_FILENO);   /* dup2 clears close-on-exec */
        execvp(argv[0], argv);
        /* The exec pipe is closed by a successful exec: our parent reads
         * either nothing or this errno (one write of 4 bytes is atomic). */
        int err = errno;
        if (write(exec_pipe[1], &err, sizeof err) < 0) _exit(EXIT_NOT_FOUND);
        _exit(EXIT_NOT_FOUND);
    }
    close(exec_pipe[1]);
    int err;
    ssize_t n;
    while ((n = read(exec_pipe[0], &err, sizeof err)) < 0 && errno == EINTR) {}
    close(exec_pipe[0]);
    if (n == (ssize_t)sizeof err) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        exec_failure_message(argv[0], err);
        exit(exec_failure_status(err));
    }
    return pid;
}

int exit_status_of(int status)
{
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return EXIT_FAILED;
}

/* ---- run -------------------------------------------------------------------------- */

int cmd_run(int argc, char **argv)
{
    static const struct option options[] = {
        LAUNCH_LONG_OPTIONS,
        { "stats", no_argument, NULL, OPT_STATS },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    struct launch l = { .command = "run" };
    int opt;
    while ((opt = getopt_long(argc, argv, "+:" LAUNCH_SHORT_OPTIONS, options, NULL)) != -1) {
        if (launch_option(&l, opt, optarg)) continue;
        switch (opt) {
        case OPT_STATS: l.stats = true; break;
        case OPT_HELP: command_help("run");
        default: bad_option("run", opt, argv);
        }
    }
    if (optind >= argc) fail(EXIT_USAGE, "run: no program given (numamalloc run [OPTIONS] -- PROGRAM [ARGS])");
    launch_check(&l);
    launch_environment(&l);
    launch_warn_unpreloadable(&l, argv[optind]);
    launch_exec(argv + optind);
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2) fail(EXIT_USAGE, "no command given (commands: run, topology, maps, stat, prof; see numamalloc --help)");
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) help(usage_main);
    if (strcmp(name, "--version") == 0) {
        printf("numamalloc %s\n", NUMAMALLOC_VERSION_STRING);
        finish();
    }
    if (strcmp(name, "help") == 0) {
        if (argc < 3) help(usage_main);
        if (!find_command(argv[2])) fail(EXIT_USAGE, "help: unknown command '%s' (commands: run, topology, maps, stat, prof)", argv[2]);
        command_help(argv[2]);
    }
    const struct command *c = find_command(name);
    if (!c) {
        fail(EXIT_USAGE, "unknown command '%s' (commands: run, topology, maps, stat, prof; see numamalloc --help)",
             name);
    }
    opterr = 0;
    optind = 1;
    return c->run(argc - 1, argv + 1);
}
