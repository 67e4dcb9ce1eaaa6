/*
 * tool.h — what the files of the `numamalloc` command share: errors and
 * exit statuses, reading /proc and /sys files, number and list formatting,
 * a small JSON writer, the options that start a program with the
 * library preloaded (run, stat, prof), and function names for addresses
 * (prof).
 *
 * The command is a tool, not the library: it uses stdio and malloc freely
 * (its malloc is numamalloc's, from libnumamalloc.a).
 */
#ifndef NUMAMALLOC_TOOL_H
#define NUMAMALLOC_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Exit statuses (run and stat otherwise exit with the program's status). */
enum {
    EXIT_FAILED = 1,        /* something could not be read or done */
    EXIT_USAGE = 2,         /* bad command line, policy or node */
    EXIT_CANNOT_EXEC = 126, /* the program exists but cannot be run */
    EXIT_NOT_FOUND = 127,   /* no such program */
};

/* Print "numamalloc: MESSAGE" on stderr and exit with `status`. */
__attribute__((noreturn, format(printf, 2, 3))) void fail(int status, const char *fmt, ...);

/* Flush stdout and exit 0, or report a write error and exit 1. */
__attribute__((noreturn)) void finish(void);

/* malloc and calloc that never return NULL: "out of memory", exit 1.  A
 * size or count of 0 still gives a block (of 1 byte, or 1 element). */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);

/* The whole file as a NUL-terminated string (malloc'd), or NULL with errno. */
char *read_text(const char *path);
/* The first line of a file as an unsigned number; false if unreadable. */
bool read_u64(const char *path, uint64_t *out);

/* Where the topology is read from: NUMAMALLOC_SYSFS_ROOT (tests) or /sys,
 * as the library does. */
const char *sysfs_root(void);

/* "64.0 MiB"; `buf` of at least 32 bytes.  Signed: "-1.5 MiB". */
const char *format_bytes(char *buf, uint64_t bytes);
const char *format_bytes_signed(char *buf, int64_t bytes);
/* Ascending ids as a list: "0-3,8,10-11" ("" for none). */
void format_list(char *buf, size_t len, const int *ids, int count);

/* Words printed within `width` columns, the cursor at `column`: a space
 * between two words on a line; a word that would end past `width` starts a
 * new line, indented to column `indent`, unless the cursor is at or before
 * `indent` (a word longer than the line is printed whole). */
struct wrap {
    FILE *out;
    int column, indent, width;
    bool words_on_line;         /* a space is due before the next word */
};
void wrap_begin(struct wrap *w, FILE *out, int column, int indent, int width);
void wrap_word(struct wrap *w, const char *word, size_t len);
/* The words of `text` (separated by spaces) so, starting at `column`. */
void print_wrapped(FILE *out, const char *text, int column, int indent, int width);

/* ---- JSON ------------------------------------------------------------------ */

#define JSON_MAX_DEPTH 16

struct json {
    FILE *out;
    int depth;
    bool has_items[JSON_MAX_DEPTH]; /* a comma is due before the next item */
    bool inline_[JSON_MAX_DEPTH];   /* items on one line (short arrays) */
};

/* `key` names the member inside an object; NULL inside an array. */
void json_begin(struct json *j, FILE *out);
void json_open(struct json *j, const char *key, char bracket);   /* '{' or '[' */
void json_open_inline(struct json *j, const char *key, char bracket);
void json_close(struct json *j, char bracket);
void json_end(struct json *j);
void json_string(struct json *j, const char *key, const char *value); /* NULL: null */
void json_uint(struct json *j, const char *key, uint64_t value);
void json_int(struct json *j, const char *key, int64_t value);
void json_double(struct json *j, const char *key, double value);
void json_bool(struct json *j, const char *key, bool value);
void json_null(struct json *j, const char *key);
void json_raw(struct json *j, const char *key, const char *text);   /* a JSON value as it is */

/* ---- starting a program with the library (run, stat, prof) ------------------ */

struct launch {
    const char *command;        /* "run" or "stat", for messages */
    char policy_option[300];    /* as the user wrote it, e.g. "--membind=1"; "" if none */
    char policy[256];           /* NUMAMALLOC_POLICY, "" to leave it alone */
    const char *hugepages;      /* NUMAMALLOC_HUGEPAGES, NULL to leave it */
    bool stats;                 /* NUMAMALLOC_STATS=1 */
    char cpu_option[300];       /* -N/--cpunodebind or -C/--physcpubind as written; "" if none */
    char cpus[256];             /* -C: a CPU list; -N: "node:" and a node list */
    const char *library;        /* --library=PATH; NULL: NUMAMALLOC_LIBRARY or next to us */
};

/* Options both run and stat take; values for getopt_long.  The short forms
 * are numactl's: LAUNCH_SHORT_OPTIONS goes in getopt's option string. */
enum {
    OPT_POLICY = 256, OPT_INTERLEAVE, OPT_MEMBIND, OPT_PREFERRED, OPT_HUGEPAGES,
    OPT_STATS, OPT_JSON, OPT_HELP, OPT_OUTPUT, OPT_MAPPINGS, OPT_LOCALALLOC,
    OPT_CPUNODEBIND, OPT_PHYSCPUBIND, OPT_LIBRARY, OPT_SYSTEM,
};
#define LAUNCH_SHORT_OPTIONS "m:i:p:lN:C:"
#define LAUNCH_LONG_OPTIONS                                                 \
    { "policy", required_argument, NULL, OPT_POLICY },                     \
    { "interleave", required_argument, NULL, OPT_INTERLEAVE },             \
    { "membind", required_argument, NULL, OPT_MEMBIND },                   \
    { "preferred", required_argument, NULL, OPT_PREFERRED },               \
    { "localalloc", no_argument, NULL, OPT_LOCALALLOC },                   \
    { "cpunodebind", required_argument, NULL, OPT_CPUNODEBIND },           \
    { "physcpubind", required_argument, NULL, OPT_PHYSCPUBIND },           \
    { "hugepages", required_argument, NULL, OPT_HUGEPAGES },               \
    { "library", required_argument, NULL, OPT_LIBRARY }

/* Take one of the policy, CPU, huge page or library options (long or
 * short); false if `opt` is not one. */
bool launch_option(struct launch *l, int opt, const char *arg);
/* Check the policy against this machine (nm_policy_parse, nm_policy_check)
 * and the CPU list; a bad one is reported in one line, exit 2. */
void launch_check(const struct launch *l);
/* Set LD_PRELOAD (the library: --library, NUMAMALLOC_LIBRARY, or the one
 * next to this command) and the NUMAMALLOC_ variables in this process's
 * environment; exits 1 if the library cannot be found.  Then, as numactl
 * does, apply the policy to this whole process (set_mempolicy: the program
 * inherits it across exec, so its stacks, static data and other
 * libraries' mappings follow it too) and bind it to the CPUs asked for. */
void launch_environment(const struct launch *l);
/* Say, in one line, why the library will not be preloaded into `program`
 * (statically linked, set-user-ID or set-group-ID); nothing otherwise. */
void launch_warn_unpreloadable(const struct launch *l, const char *program);
/* execvp, or report why not in one line and exit 126 or 127. */
__attribute__((noreturn)) void launch_exec(char **argv);
/* Fork and exec `argv` (execvp) with SIGINT and SIGQUIT at their defaults
 * and, unless `stderr_fd` is -1, that descriptor as its standard error; an
 * exec failure comes back through a pipe, and then the child is reaped and
 * this process says why in one line and exits 126 or 127.  Returns the
 * child's pid once it runs the program; the caller waits for it. */
pid_t launch_start(char **argv, int stderr_fd);
/* The exit status a shell would give for a wait status: the program's own,
 * or 128 + the signal that killed it. */
int exit_status_of(int status);
/* The exit status a shell would give for execvp's errno. */
int exec_failure_status(int err);
void exec_failure_message(const char *program, int err);

/* A usage error found by getopt: one line, exit 2. */
__attribute__((noreturn)) void bad_option(const char *command, int opt, char **argv);
/* Print the help of a command on stdout and exit 0. */
__attribute__((noreturn)) void command_help(const char *name);

/* One line of /proc/PID/maps: "start-end perms offset dev inode path"
 * (maps; prof, from a profile's copy of it). */
struct maps_line {
    uint64_t start, end, offset;
    bool executable;            /* perms has 'x' */
    size_t path_at;             /* where the path starts in the line (= its length if none) */
};
/* False if the `len` bytes at `line` are not such a line. */
bool maps_line_parse(const char *line, size_t len, struct maps_line *out);

/* ---- function names for addresses (prof; symbols.c) ----------------------------- */

/* The executable mappings of a process, from its maps text; each ELF file
 * is read once, when an address in it is first asked for. */
struct symbolizer;
struct symbolizer *symbolizer_new(const char *maps, size_t len);
/* The function `address` is in: the STT_FUNC symbol of .symtab (else
 * .dynsym) that holds it; else the nearest before it, as "NAME+0xDISTANCE"
 * when that one's size ends before the address; "FILE+0xVADDR" when the
 * file has none before it, "0xADDRESS" outside every file mapping (`buf`,
 * of `len` bytes, holds those). */
const char *symbolize(struct symbolizer *s, uint64_t address, char *buf, size_t len);

int cmd_run(int argc, char **argv);
int cmd_topology(int argc, char **argv);
int cmd_maps(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_prof(int argc, char **argv);

#endif
