/* stats_interval.c — for tests/programs/stats_json.sh: prints its pid and
 * sleeps for argv[1] milliseconds without allocating; with argv[2] "fork",
 * forks first, prints the child's pid too, and both sleep (the parent
 * waits for the child, then returns); with "pexit", the sleep is a
 * second thread's, which never allocates, and the first thread ends with
 * pthread_exit at once; with "chdir DIR", it changes its directory to DIR
 * halfway through. */
#include <pthread.h>
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

static long sleep_for;

static void *sleeper(void *arg)
{
    (void)arg;
    sleep_ms(sleep_for);
    return NULL;
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
    if (argc > 2 && !strcmp(argv[2], "pexit")) {
        pthread_t t;
        sleep_for = ms;
        if (pthread_create(&t, NULL, sleeper, NULL) != 0) return 1;
        pthread_exit(NULL);
    }
    if (argc > 3 && !strcmp(argv[2], "chdir")) {
        sleep_ms(ms / 2);
        if (chdir(argv[3]) != 0) return 1;
    }
    sleep_ms(argc > 3 ? ms - ms / 2 : ms);
    return 0;
}
