/*
 * numamalloc.c — the `numamalloc` command: runs programs with the library
 * preloaded and a policy (run), shows the machine's nodes (topology), where
 * a process's memory is (maps), and what a run did to the NUMA counters
 * (stat).  This file: the command line, help texts, and `run`; the other
 * subcommands are in topology.c, maps.c and stat.c.
 *
 * The library is found next to the command: build/libnumamalloc.so when
 * it runs from build/, PREFIX/lib/libnumamalloc.so.N after make install.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "numamalloc.h"
#include "tool.h"

#ifndef NM_SONAME
#define NM_SONAME "libnumamalloc.so.0"   /* the Makefile passes libnumamalloc.so.$(SOVERSION) */
#endif

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define VERSION_TEXT STRINGIFY(NUMAMALLOC_VERSION_MAJOR) "." STRINGIFY(NUMAMALLOC_VERSION_MINOR) \
    "." STRINGIFY(NUMAMALLOC_VERSION_PATCH)

static const char usage_main[] =
    "usage: numamalloc COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "NUMA-aware malloc: run programs with it and see where memory is.\n"
    "\n"
    "commands:\n"
    "  run [OPTIONS] -- PROGRAM [ARGS]   run PROGRAM with numamalloc preloaded and a policy\n"
    "  topology [--json]                 nodes, CPUs, memory, distances, tiers, huge pages\n"
    "  maps PID [--json] [--mappings]    where a running process's memory is, by node and kind\n"
    "  stat [OPTIONS] -- PROGRAM [ARGS]  run PROGRAM, report NUMA counters and numamalloc statistics\n"
    "  help [COMMAND]                    this text, or a command's\n"
    "\n"
    "`numamalloc COMMAND --help` describes each command; man numamalloc has the details.\n"
    "Options: --help, --version.\n";

static const char usage_run[] =
    "usage: numamalloc run [OPTIONS] [--] PROGRAM [ARGS]\n"
    "\n"
    "Run PROGRAM with libnumamalloc preloaded (LD_PRELOAD, put before any\n"
    "preload already set) and configured through its environment variables.\n"
    "\n"
    "  --policy=POLICY      NUMAMALLOC_POLICY: local, bind:NODES, preferred:NODE,\n"
    "                       preferred-many:NODES, interleave:NODES,\n"
    "                       weighted-interleave:NODES (NODES: all, 0-3, 0,2)\n"
    "  --interleave=NODES   the same as --policy=interleave:NODES\n"
    "  --membind=NODES      the same as --policy=bind:NODES\n"
    "  --preferred=NODE     the same as --policy=preferred:NODE\n"
    "  --hugepages=MODE     NUMAMALLOC_HUGEPAGES: off, thp or hugetlb\n"
    "  --stats              NUMAMALLOC_STATS=1: print statistics when PROGRAM exits\n"
    "  --help               this text\n"
    "\n"
    "Only one policy option may be given; it is checked against this machine\n"
    "first.  Exit status: PROGRAM's; 2 for a bad option, policy or node; 126 if\n"
    "PROGRAM cannot be run, 127 if it is not found.\n";

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
    "usage: numamalloc maps PID [--json] [--mappings]\n"
    "\n"
    "Where the memory of process PID is, from /proc/PID/numa_maps and\n"
    "/proc/PID/maps: resident pages and bytes per node, and per kind of mapping\n"
    "with its policies.  Kinds: numamalloc ([anon:numamalloc], the library's\n"
    "heaps and blocks), numamalloc-region ([anon:numamalloc-region], nm_region_map),\n"
    "heap, stack, anon (other anonymous memory), hugetlb, file, other ([vdso] ...).\n"
    "Pages are counted in units of the base page size (4 KiB).\n"
    "\n"
    "  --json       the same as a JSON object\n"
    "  --mappings   list every mapping too\n"
    "  --help       this text\n"
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
    "  --policy=POLICY, --interleave=NODES, --membind=NODES, --preferred=NODE,\n"
    "  --hugepages=MODE     as for numamalloc run\n"
    "  --json               the report as a JSON object\n"
    "  -o, --output=FILE    write the report to FILE (default: standard error)\n"
    "  --help               this text\n"
    "\n"
    "The counters are system-wide: other processes' allocations count too.\n"
    "Exit status: PROGRAM's (128 + N if signal N killed it); 2, 126, 127 as for run.\n";

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
    static const char *const prefix[] = {
        [OPT_POLICY - OPT_POLICY] = "",
        [OPT_INTERLEAVE - OPT_POLICY] = "interleave:",
        [OPT_MEMBIND - OPT_POLICY] = "bind:",
        [OPT_PREFERRED - OPT_POLICY] = "preferred:",
    };
    static const char *const spelling[] = { "--policy", "--interleave", "--membind", "--preferred" };
    switch (opt) {
    case OPT_POLICY:
    case OPT_INTERLEAVE:
    case OPT_MEMBIND:
    case OPT_PREFERRED:
        if (l->policy_option[0]) {
            fail(EXIT_USAGE, "%s: give only one of --policy, --interleave, --membind, --preferred",
                 l->command);
        }
        if (snprintf(l->policy, sizeof l->policy, "%s%s", prefix[opt - OPT_POLICY], arg) >=
            (int)sizeof l->policy) {
            fail(EXIT_USAGE, "%s: policy too long: '%s'", l->command, arg);
        }
        snprintf(l->policy_option, sizeof l->policy_option, "%s=%s", spelling[opt - OPT_POLICY], arg);
        return true;
    case OPT_HUGEPAGES:
        for (size_t i = 0; i < sizeof hugepage_modes / sizeof hugepage_modes[0]; i++) {
            if (strcmp(arg, hugepage_modes[i]) == 0) {
                l->hugepages = hugepage_modes[i];
                return true;
            }
        }
        fail(EXIT_USAGE, "%s: --hugepages=%s: not a mode (off, thp, hugetlb)", l->command, arg);
    default:
        return false;
    }
}

void launch_check(const struct launch *l)
{
    if (!l->policy_option[0]) return;
    nm_policy policy;
    char err[256];
    if (nm_policy_parse(l->policy, &policy, err, sizeof err) != 0 ||
        nm_policy_check(&policy, err, sizeof err) != 0) {
        fail(EXIT_USAGE, "%s: bad policy '%s': %s", l->command, l->policy_option, err);
    }
}

/* The library this command belongs to: next to it (the build directory) or
 * in ../lib (an installed tree). */
static void find_library(char out[PATH_MAX])
{
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
    };
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char dir[PATH_MAX + 16], real_dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s%s", exe, candidates[i].dir);
        if (!realpath(dir, real_dir)) continue;
        /* The directory without "..", the file as named (not resolved to
         * libnumamalloc.so.0.1.0). */
        const char *sep = strcmp(real_dir, "/") == 0 ? "" : "/";
        if (snprintf(out, PATH_MAX, "%s%s%s", real_dir, sep, candidates[i].file) >= PATH_MAX) continue;
        if (access(out, R_OK) == 0) return;
    }
    fail(EXIT_FAILED, "cannot find libnumamalloc.so: not in %s nor in %s/../lib", exe, exe);
}

void launch_environment(const struct launch *l)
{
    char library[PATH_MAX];
    find_library(library);
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

/* ---- run -------------------------------------------------------------------------- */

int cmd_run(int argc, char **argv)
{
    static const struct option options[] = {
        { "policy", required_argument, NULL, OPT_POLICY },
        { "interleave", required_argument, NULL, OPT_INTERLEAVE },
        { "membind", required_argument, NULL, OPT_MEMBIND },
        { "preferred", required_argument, NULL, OPT_PREFERRED },
        { "hugepages", required_argument, NULL, OPT_HUGEPAGES },
        { "stats", no_argument, NULL, OPT_STATS },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    struct launch l = { .command = "run" };
    int opt;
    while ((opt = getopt_long(argc, argv, "+:", options, NULL)) != -1) {
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
    launch_exec(argv + optind);
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2) fail(EXIT_USAGE, "no command given (commands: run, topology, maps, stat; see numamalloc --help)");
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) help(usage_main);
    if (strcmp(name, "--version") == 0) {
        printf("numamalloc %s\n", VERSION_TEXT);
        finish();
    }
    if (strcmp(name, "help") == 0) {
        if (argc < 3) help(usage_main);
        if (!find_command(argv[2])) fail(EXIT_USAGE, "help: unknown command '%s' (commands: run, topology, maps, stat)", argv[2]);
        command_help(argv[2]);
    }
    const struct command *c = find_command(name);
    if (!c) {
        fail(EXIT_USAGE, "unknown command '%s' (commands: run, topology, maps, stat; see numamalloc --help)",
             name);
    }
    opterr = 0;
    optind = 1;
    return c->run(argc - 1, argv + 1);
}
