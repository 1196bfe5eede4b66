/* fake_worker - a scriptable child process for supervisor tests (libuv's spawn_helper idea).
 *
 * argv is a script of actions run left to right; the program exits 0 after the last one.
 * Status actions use MESHD_STATUS_FD and are silent no-ops when it is not set.
 *
 *   ready                status line {"event":"ready"}
 *   heartbeat            status line {"event":"heartbeat"}
 *   metric NAME VAL      status line {"event":"metric","name":NAME,"value":VAL}
 *   status JSON          JSON written verbatim as one status line (a '\n' is appended)
 *   badstatus            a malformed status line (not JSON)
 *   longstatus N         a status line of exactly N bytes before its '\n': a valid "message"
 *                        event padded to N when N >= 48, else N 'x' bytes
 *   print TEXT           TEXT and '\n' on stdout (flushed)
 *   eprint TEXT          TEXT and '\n' on stderr
 *   flood N              N lines "flood <i>" on stdout, as fast as possible
 *   flood-esc N          N lines on stdout, as fast as possible, each holding bytes a terminal
 *                        obeys or a log must not carry raw: "esc <i> " ESC "[31mred" ESC "[0m"
 *                        CR BEL " caf" 0xE9 (Latin-1, invalid UTF-8) " " C2 9B (U+009B, CSI) "2J"
 *   flood-badstatus N    N bad status lines, as fast as possible: valid JSON whose unknown
 *                        event name (which meshd quotes in its warning) holds ESC and BEL:
 *                        {"event":"\u001b]0;pwned\u0007 <i>"}
 *   pipe-size FD BYTES   resize the pipe at FD (F_SETPIPE_SZ; 1 MiB is the unprivileged
 *                        maximum), so that it holds more than one of meshd's 64 KiB reads
 *   flood-esc-for MS     flood-esc lines for MS milliseconds, then "flood-esc-for: wrote N
 *                        lines" on stderr
 *   flood-badstatus-for MS  likewise with flood-badstatus lines
 *   sleep MS             sleep MS milliseconds (resumed across signal handlers)
 *   loop                 sleep forever
 *   exit N               exit with status N now
 *   abort                abort()
 *   kill-self SIG        send SIG (number, "TERM" or "SIGTERM") to itself
 *   ignore SIG           set SIG to SIG_IGN (inherited by later spawn-child grandchildren)
 *   spawn-child FILE     fork a grandchild in our process group that sleeps forever with
 *                        stdin/stdout/stderr on /dev/null and the status fd closed; its pid and
 *                        '\n' are written to FILE atomically (temp file + rename)
 *   spawn-escapee FILE   the same, but the grandchild calls setsid first: it leaves our process
 *                        group and session, as a daemon does
 *   burn MS              busy-loop until this process has used MS ms of CPU time
 *   write-pid FILE       append "<pid>\n" to FILE
 *   stamp FILE           append "<pid> <epoch s.ns> <MESHD_RUN_ID> <MESHD_SCHEDULED_AT>\n"
 *                        ("-" for an unset variable) to FILE
 *   env FILE             write every MESHD_* variable as NAME=VALUE lines to FILE (atomically)
 *   stdin FILE           copy stdin until EOF to FILE (atomically)
 *
 * Exit status: 0 at the end of the script, N for "exit N", 100 for an unknown action or a bad
 * argument (with a message on stderr), 111 when a file cannot be written.
 */
#define _GNU_SOURCE 1 /* F_SETPIPE_SZ */
#include "meshd/md_status.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static struct md_status_writer status = {.fd = -1};

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "fake_worker[%ld]: ", (long)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

static long num_arg(const char *s, long min, long max, const char *what)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        die(100, "%s: bad number '%s'", what, s);
    return v;
}

static int sig_arg(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } sigs[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
        {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},
        {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},
        {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"SEGV", SIGSEGV},
    };

    if (*s >= '0' && *s <= '9')
        return (int)num_arg(s, 1, 64, "signal");
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (strcmp(s, sigs[i].name) == 0)
            return sigs[i].sig;
    die(100, "unknown signal '%s'", s);
}

static void write_all(int fd, const char *p, size_t n, const char *what)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die(111, "%s: write: %s", what, strerror(errno));
        p += r;
        n -= (size_t)r;
    }
}

/* A raw status line, bypassing md_status validation (that is the point of "status JSON"). */
static void raw_status(const char *line, size_t n)
{
    if (status.fd < 0)
        return;
    char *buf = malloc(n + 1);
    if (buf == NULL)
        die(111, "out of memory");
    memcpy(buf, line, n);
    buf[n] = '\n';
    write_all(status.fd, buf, n + 1, "status");
    free(buf);
}

static void append_file(const char *path, const char *text)
{
    /* One write() with O_APPEND: concurrent runs appending to the same file do not interleave. */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        die(111, "%s: %s", path, strerror(errno));
    write_all(fd, text, strlen(text), path);
    close(fd);
}

/* Writes FILE.tmp.<pid> and renames it over FILE, so a polling test never sees half of it. */
static void replace_file(const char *path, const char *data, size_t n)
{
    char tmp[PATH_MAX];
    int fd;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        die(100, "%s: path too long", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(111, "%s: %s", tmp, strerror(errno));
    write_all(fd, data, n, tmp);
    if (close(fd) < 0 || rename(tmp, path) < 0)
        die(111, "%s: %s", path, strerror(errno));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void spawn_child(const char *path, bool escape)
{
    char buf[32];
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        die(111, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Let go of the pipes so the supervisor's view of them depends on our parent alone;
         * what the test checks is that the group kill reaches this process. */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            if (null > 2)
                close(null);
        }
        if (status.fd > 2)
            close(status.fd);
        if (escape && setsid() < 0)
            _exit(111);
        for (;;)
            pause();
    }
    snprintf(buf, sizeof buf, "%ld\n", (long)pid);
    replace_file(path, buf, strlen(buf));
}

static void burn_cpu(long ms)
{
    struct timespec t;

    do {
        if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) < 0)
            die(111, "clock_gettime: %s", strerror(errno));
    } while (t.tv_sec * 1000L + t.tv_nsec / 1000000L < ms);
}

static void dump_env(const char *path)
{
    size_t len = 0, cap = 256;
    char *buf = malloc(cap);

    if (buf == NULL)
        die(111, "out of memory");
    for (char **e = environ; *e != NULL; e++) {
        size_t n = strlen(*e);
        if (strncmp(*e, "MESHD_", 6) != 0)
            continue;
        while (len + n + 1 > cap) {
            cap *= 2;
            if ((buf = realloc(buf, cap)) == NULL)
                die(111, "out of memory");
        }
        memcpy(buf + len, *e, n);
        buf[len + n] = '\n';
        len += n + 1;
    }
    replace_file(path, buf, len);
    free(buf);
}

static void copy_stdin(const char *path)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);

    if (buf == NULL)
        die(111, "out of memory");
    for (;;) {
        if (len == cap) {
            cap *= 2;
            if ((buf = realloc(buf, cap)) == NULL)
                die(111, "out of memory");
        }
        ssize_t r = read(0, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die(111, "stdin: %s", strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
    }
    replace_file(path, buf, len);
    free(buf);
}

static void long_status(long n)
{
    static const char head[] = "{\"event\":\"message\",\"type\":\"long\",\"payload\":\"";
    size_t hl = sizeof head - 1;
    char *buf = malloc((size_t)n + 1);

    if (buf == NULL)
        die(111, "out of memory");
    if ((size_t)n >= hl + 2) {
        memcpy(buf, head, hl);
        memset(buf + hl, 'x', (size_t)n - hl - 2);
        memcpy(buf + n - 2, "\"}", 2);
    } else {
        memset(buf, 'x', (size_t)n);
    }
    raw_status(buf, (size_t)n);
    free(buf);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* flood-esc and flood-badstatus: n lines (n >= 0), or for ms milliseconds when n < 0.
 * Returns the number of lines written. */
static long flood_esc(long n, long ms)
{
    double end = now_ms() + (double)ms;
    long k;

    for (k = 0; n < 0 || k < n; k++) {
        if (n < 0 && k % 256 == 0 && now_ms() >= end)
            break;
        printf("esc %ld \033[31mred\033[0m\r\a caf\xe9 \xc2\x9b"
               "2J\n",
               k);
    }
    fflush(stdout);
    return k;
}

static long flood_bad_status(long n, long ms)
{
    static char buf[65536];
    double end = now_ms() + (double)ms;
    size_t len = 0;
    long k;

    if (status.fd < 0)
        return 0;
    for (k = 0; n < 0 || k < n; k++) {
        if (n < 0 && k % 256 == 0 && now_ms() >= end)
            break;
        if (len > sizeof buf - 100) {
            write_all(status.fd, buf, len, "status");
            len = 0;
        }
        len += (size_t)snprintf(buf + len, sizeof buf - len,
                                "{\"event\":\"\\u001b]0;pwned\\u0007 %ld\"}\n", k);
    }
    write_all(status.fd, buf, len, "status");
    return k;
}

static void stamp(const char *path)
{
    struct timespec ts;
    const char *run = getenv("MESHD_RUN_ID"), *at = getenv("MESHD_SCHEDULED_AT");
    char line[512];

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(line, sizeof line, "%ld %lld.%09ld %s %s\n", (long)getpid(), (long long)ts.tv_sec,
             ts.tv_nsec, run && *run ? run : "-", at && *at ? at : "-");
    append_file(path, line);
}

int main(int argc, char **argv)
{
    int rc = md_status_open(&status);

    if (rc < 0 && rc != -ENOENT)
        fprintf(stderr, "fake_worker: MESHD_STATUS_FD unusable: %s\n", strerror(-rc));

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* The argument of a one-argument action, or exit 100 when it is missing. */
#define ARG() (i + 1 < argc ? argv[++i] : (die(100, "'%s' needs an argument", a), (char *)NULL))

        if (strcmp(a, "ready") == 0) {
            md_status_ready(&status);
        } else if (strcmp(a, "heartbeat") == 0) {
            md_status_heartbeat(&status);
        } else if (strcmp(a, "metric") == 0) {
            const char *name = ARG(), *val = ARG();
            char *end;
            double v = strtod(val, &end);
            if (end == val || *end != '\0')
                die(100, "metric: bad value '%s'", val);
            if ((rc = md_status_metric(&status, name, v)) < 0)
                fprintf(stderr, "fake_worker: metric: %s\n", md_strerror(rc));
        } else if (strcmp(a, "status") == 0) {
            const char *json = ARG();
            raw_status(json, strlen(json));
        } else if (strcmp(a, "badstatus") == 0) {
            raw_status("this is {not json", 17);
        } else if (strcmp(a, "longstatus") == 0) {
            long_status(num_arg(ARG(), 0, 64L << 20, "longstatus"));
        } else if (strcmp(a, "print") == 0) {
            puts(ARG());
            fflush(stdout);
        } else if (strcmp(a, "eprint") == 0) {
            fprintf(stderr, "%s\n", ARG());
        } else if (strcmp(a, "flood") == 0) {
            long n = num_arg(ARG(), 0, LONG_MAX, "flood");
            for (long k = 0; k < n; k++)
                printf("flood %ld\n", k);
            fflush(stdout);
        } else if (strcmp(a, "flood-esc") == 0) {
            flood_esc(num_arg(ARG(), 0, LONG_MAX, "flood-esc"), 0);
        } else if (strcmp(a, "flood-badstatus") == 0) {
            flood_bad_status(num_arg(ARG(), 0, LONG_MAX, "flood-badstatus"), 0);
        } else if (strcmp(a, "pipe-size") == 0) {
            int fd = (int)num_arg(ARG(), 0, 1023, "pipe-size");
            int size = (int)num_arg(ARG(), 4096, 1L << 30, "pipe-size");
            if (fcntl(fd, F_SETPIPE_SZ, size) < 0)
                die(111, "pipe-size %d %d: %s", fd, size, strerror(errno));
        } else if (strcmp(a, "flood-esc-for") == 0) {
            long k = flood_esc(-1, num_arg(ARG(), 0, LONG_MAX / 2, "flood-esc-for"));
            fprintf(stderr, "flood-esc-for: wrote %ld lines\n", k);
        } else if (strcmp(a, "flood-badstatus-for") == 0) {
            long k = flood_bad_status(-1, num_arg(ARG(), 0, LONG_MAX / 2, "flood-badstatus-for"));
            fprintf(stderr, "flood-badstatus-for: wrote %ld lines\n", k);
        } else if (strcmp(a, "sleep") == 0) {
            sleep_ms(num_arg(ARG(), 0, LONG_MAX / 2, "sleep"));
        } else if (strcmp(a, "loop") == 0) {
            fflush(stdout);
            for (;;)
                pause();
        } else if (strcmp(a, "exit") == 0) {
            long code = num_arg(ARG(), 0, 255, "exit");
            fflush(stdout);
            exit((int)code);
        } else if (strcmp(a, "abort") == 0) {
            fflush(stdout);
            abort();
        } else if (strcmp(a, "kill-self") == 0) {
            int sig = sig_arg(ARG());
            fflush(stdout);
            kill(getpid(), sig);
        } else if (strcmp(a, "ignore") == 0) {
            int sig = sig_arg(ARG());
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = SIG_IGN;
            sigemptyset(&sa.sa_mask);
            if (sigaction(sig, &sa, NULL) < 0)
                die(100, "ignore %s: %s", argv[i], strerror(errno));
        } else if (strcmp(a, "spawn-child") == 0) {
            spawn_child(ARG(), false);
        } else if (strcmp(a, "spawn-escapee") == 0) {
            spawn_child(ARG(), true);
        } else if (strcmp(a, "burn") == 0) {
            burn_cpu(num_arg(ARG(), 0, LONG_MAX / 2, "burn"));
        } else if (strcmp(a, "write-pid") == 0) {
            const char *path = ARG();
            char buf[32];
            snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
            append_file(path, buf);
        } else if (strcmp(a, "stamp") == 0) {
            stamp(ARG());
        } else if (strcmp(a, "env") == 0) {
            dump_env(ARG());
        } else if (strcmp(a, "stdin") == 0) {
            copy_stdin(ARG());
        } else {
            die(100, "unknown action '%s'", a);
        }
#undef ARG
    }
    fflush(stdout);
    return 0;
}
