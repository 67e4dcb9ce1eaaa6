/* stats_interval.c — for tests/programs/stats_json.sh: prints its pid and
 * sleeps for argv[1] milliseconds without allocating; with argv[2] "fork",
 * forks first, prints the child's pid too, and both sleep (the parent
 * waits for the child, then returns). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
    struct timespec t = { ms / 1000, ms % 1000 * 1000000 };
    while (nanosleep(&t, &t) != 0) {}
}

int main(int argc, char **argv)
{
    long ms = argc > 1 ? atol(argv[1]) : 1200;
    printf("%ld\n", (long)getpid());
    fflush(stdout);
    if (argc > 2 && !strcmp(argv[2], "fork")) {
        pid_t child = fork();
        if (child < 0) return 1;
        if (child == 0) {
            printf("%ld\n", (long)getpid());
            fflush(stdout);
            sleep_ms(ms);
            return 0;
        }
        sleep_ms(ms);
        int status;
        return waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    sleep_ms(ms);
    return 0;
}
