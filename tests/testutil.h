/* testutil.h — tiny helpers shared by the C and C++ tests (it compiles as
 * gnu11 and as gnu++17): CHECK() that names the
 * failing line, skip with a reason, reading this process's RSS and page
 * faults, and running the same program under glibc to compare; a clock
 * and a random sequence. */
#ifndef NM_TESTUTIL_H
#define NM_TESTUTIL_H

#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Failed checks so far; CHECK may be called from several threads at once,
 * so it only grows with an atomic add. */
static int nm_test_failures;

/* Report a failed check: file, line, the condition, and an optional
 * printf-style message. */
static inline void nm_test_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    __atomic_fetch_add(&nm_test_failures, 1, __ATOMIC_RELAXED);
    fprintf(stderr, "%s:%d: CHECK(%s) failed", file, line, cond);
    if (fmt[0]) {
        fprintf(stderr, ": ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
}

/* The condition is evaluated once. */
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) nm_test_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__);   \
    } while (0)

/* Stop the test right away. */
#define REQUIRE(cond, ...)                                                      \
    do {                                                                        \
        if (!(cond)) {                                                          \
            nm_test_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__);            \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

/* Exit status 77 with the reason as the last line: reported as skipped. */
static inline void nm_test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(77);
}

/* The repository root: $NM_ROOT (tests/run.sh sets it), else four levels
 * above this binary (build/tests/KIND/NAME). */
static inline const char *nm_test_repo(void)
{
    static char repo[4096];
    if (repo[0]) return repo;
    const char *env = getenv("NM_ROOT");
    if (env && *env) {
        snprintf(repo, sizeof repo, "%s", env);
        return repo;
    }
    ssize_t n = readlink("/proc/self/exe", repo, sizeof repo - 1);
    REQUIRE(n > 0, "cannot find the repository: set NM_ROOT");
    repo[n] = '\0';
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(repo, '/');
        REQUIRE(slash != NULL, "cannot find the repository: set NM_ROOT");
        *slash = '\0';
    }
    return repo;
}

/* Seconds on the monotonic clock. */
static inline double nm_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: the next number of the sequence in `*s` (never 0). */
static inline uint64_t nm_test_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static inline int nm_test_done(void)
{
    int failures = __atomic_load_n(&nm_test_failures, __ATOMIC_RELAXED);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}

/* Fail unless numamalloc is this process's allocator (LD_PRELOAD or linked).
 * NM_TEST_OTHER_ALLOCATOR=1 lets a program that only uses the standard API
 * run on whatever allocator the process has, to compare (a report, never
 * a test result: tests/vm/overcommit.sh runs its programs on glibc so). */
static inline void nm_test_require_numamalloc(void)
{
    if (!dlsym(RTLD_DEFAULT, "nm_malloc") && !getenv("NM_TEST_OTHER_ALLOCATOR")) {
        fprintf(stderr, "numamalloc is not loaded (run through tests/run.sh)\n");
        exit(2);
    }
}

/* The kernel's memory policy for the page holding `addr`: the mode
 * (0 default, 1 preferred, 2 bind, 3 interleave, 4 local ...) and the first
 * word of its node mask; -1 on error. */
static inline int nm_test_policy_of(void *addr, unsigned long *mask0)
{
    unsigned long mask[16] = { 0 };
    int mode = -1;
    if (syscall(SYS_get_mempolicy, &mode, mask, 1025, addr, 2 /* MPOL_F_ADDR */) != 0) return -1;
    *mask0 = mask[0];
    return mode;
}

/* The node of the (resident) page holding `p`, from move_pages; or a
 * negative errno. */
static inline int nm_test_node_of(void *p)
{
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)4095);
    int status = -1;
    if (syscall(SYS_move_pages, 0, 1UL, &page, NULL, &status, 0) != 0) return -1;
    return status;
}

/* Minor page faults this process has taken so far. */
static inline long nm_test_minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* Whether the page holding `p` is mapped in this process (the present bit
 * of /proc/self/pagemap, which any process may read for itself); -1 when
 * the file cannot be read. */
static inline int nm_test_page_present(const void *p)
{
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) return -1;
    uint64_t entry = 0;
    ssize_t got = pread(fd, &entry, sizeof entry, (off_t)((uintptr_t)p / 4096 * sizeof entry));
    close(fd);
    return got == (ssize_t)sizeof entry ? (int)(entry >> 63) : -1;
}

/* Resident set size in bytes, from /proc/self/statm. */
static inline size_t nm_test_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (size_t)resident * 4096;
}

/* The first line this program prints when run again without the preload
 * (under glibc), with the environment variable `marker` set so that it
 * knows to run only the measured part: a test compares numamalloc with
 * glibc on the same pattern.  Exits the test (status 1) when that run
 * fails. */
static inline void nm_test_glibc_run(const char *argv0, const char *marker, char *line, size_t size)
{
    int out[2];
    REQUIRE(pipe(out) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        unsetenv("LD_PRELOAD");
        setenv(marker, "1", 1);
        execl("/proc/self/exe", argv0, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    line[0] = 0;
    FILE *f = fdopen(out[0], "r");
    REQUIRE(f && fgets(line, (int)size, f));
    fclose(f);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the run under glibc failed");
}

/* This program again, in a child with `vars` (name, value, ..., NULL) set
 * in its environment and `mode` as its argument (options are read anew
 * there); a check that it exited with status 0. */
static inline void nm_test_run_self(const char *argv0, const char *mode, const char *const *vars)
{
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        for (int i = 0; vars[i]; i += 2) setenv(vars[i], vars[i + 1], 1);
        execl("/proc/self/exe", argv0, mode, (char *)NULL);
        _exit(127);
    }
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the %s run failed: status %#x", mode,
          status);
}

#endif
