/* test_runlog - supervisor/runlog.c: the runs file a crashed meshd leaves for its next life.
 *
 * The parser on a table of lines; then the file itself on a real loop in a temp dir: what a
 * "crash" (the file as it is, never closed) leaves open, a torn last line, compaction, and the
 * liveness check against a real child process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "meshd/md_alloc.h"
#include "launch.h"
#include "runlog.h"
#include "t.h"

TEST(parse_lines)
{
    struct sup_runlog_run r;

    T_ASSERT_EQ('B', sup_runlog_parse("B a1b2c3d4e5f6-7 s 1764835200 1764835200004 nightly "
                                      "nightly@20251204T080000Z",
                                      &r));
    T_ASSERT_STREQ("a1b2c3d4e5f6-7", r.exec_id);
    T_ASSERT_EQ('s', r.kind);
    T_ASSERT_EQ(1764835200, r.slot);
    T_ASSERT_EQ(1764835200004LL, r.started_ms);
    T_ASSERT_STREQ("nightly", r.job);
    T_ASSERT_STREQ("nightly@20251204T080000Z", r.run_id);
    T_ASSERT_FALSE(r.has_pid);

    T_ASSERT_EQ('P', sup_runlog_parse("P a1b2c3d4e5f6-7 4242 987654 0b1c-boot nightly-3", &r));
    T_ASSERT_EQ(4242, r.pid);
    T_ASSERT_EQ(987654, r.starttime);
    T_ASSERT_STREQ("0b1c-boot", r.boot);
    T_ASSERT_STREQ("nightly-3", r.cgroup);
    T_ASSERT_TRUE(r.has_pid);
    T_ASSERT_EQ('P', sup_runlog_parse("P x-1 7 1 boot -", &r));
    T_ASSERT_STREQ("", r.cgroup);
    T_ASSERT_EQ('E', sup_runlog_parse("E a1b2c3d4e5f6-7", &r));
    T_ASSERT_STREQ("a1b2c3d4e5f6-7", r.exec_id);

    static const char *bad[] = {
        "",
        "B",
        "X a-1",
        "B a-1 q 1 2 job run",       /* unknown kind */
        "B a-1 s -1 2 job run",      /* negative slot */
        "B a-1 s 1 2 job",           /* no run id */
        "B a-1 s 1 2 job run extra", /* too many fields */
        "P a-1 0 1 boot -",          /* pid 0 */
        "P a-1 7 x boot -",          /* not a number */
        "E a-1 more",
        "Ba-1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sup_runlog_parse(bad[i], &r) != -1)
            T_FAIL("accepted a bad line: \"%s\"", bad[i]);
}

static char dir[64];

static void fresh_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_runlog.XXXXXX");
    T_ASSERT_TRUE(mkdtemp(dir) != NULL);
}

static void rm_dir(void)
{
    char path[128];

    snprintf(path, sizeof path, "%s/runs", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/runs.tmp", dir);
    unlink(path);
    rmdir(dir);
}

static struct sup_runlog_run run(const char *exec, char kind, int64_t slot, const char *job)
{
    struct sup_runlog_run r = {.kind = kind, .slot = slot, .started_ms = slot * 1000 + 3};

    snprintf(r.exec_id, sizeof r.exec_id, "%s", exec);
    snprintf(r.job, sizeof r.job, "%s", job);
    snprintf(r.run_id, sizeof r.run_id, "%s@%lld", job, (long long)slot);
    return r;
}

/* What a launched run does (launch.c write_note) and then meshd: the P line, written through
 * the note, then sup_runlog_launched. */
static void started(struct sup_runlog *rl, const char *exec, int pid, const char *cgroup)
{
    char head[64], tail[160], line[512];
    uint64_t st = 0;
    int fd, n;

    T_ASSERT_TRUE(sup_runlog_note(rl, exec, cgroup, &fd, head, sizeof head, tail, sizeof tail));
    T_ASSERT_EQ(0, sup_runlog_starttime(pid, &st));
    n = snprintf(line, sizeof line, "%s %d %llu%s", head, pid, (unsigned long long)st, tail);
    T_ASSERT_EQ(n, write(fd, line, (size_t)n));
    sup_runlog_launched(rl, exec, pid, cgroup);
}

/* Opens the file as a new life would and returns what it leaves open (sorted by exec id
 * order of the file is not promised, so callers look entries up). */
static size_t reopen(uv_loop_t *loop, struct sup_runlog **rl, struct sup_runlog_run **left)
{
    size_t n = 0;

    T_ASSERT_EQ(0, sup_runlog_open(loop, dir, rl, left, &n));
    return n;
}

static const struct sup_runlog_run *find(const struct sup_runlog_run *v, size_t n, const char *e)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].exec_id, e) == 0)
            return &v[i];
    return NULL;
}

static void close_all(uv_loop_t *loop, struct sup_runlog *rl)
{
    sup_runlog_close(rl);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* What a life began and did not end is what the next life finds, with its pid when one was
 * written; ended runs are gone; a torn last line is ignored. */
TEST(crash_leaves_the_open_runs)
{
    uv_loop_t loop;
    struct sup_runlog *rl, *rl2, *rl3;
    struct sup_runlog_run *left = NULL, a = run("L1-1", 's', 100, "alpha"),
                          b = run("L1-2", 'm', 0, "beta"), c = run("L1-3", 'v', 0, "gamma");
    const struct sup_runlog_run *f;
    char path[128];
    int fd;

    fresh_dir();
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(0, reopen(&loop, &rl, &left));
    T_ASSERT_EQ(0, sup_runlog_begin(rl, &a));
    started(rl, a.exec_id, getpid(), "alpha-1");
    T_ASSERT_EQ(0, sup_runlog_begin(rl, &b)); /* "killed" before its spawn */
    T_ASSERT_EQ(0, sup_runlog_begin(rl, &c));
    started(rl, c.exec_id, getpid(), NULL);
    T_ASSERT_EQ(0, sup_runlog_end(rl, c.exec_id));
    /* A crash in the middle of a write: half a line at the end. */
    snprintf(path, sizeof path, "%s/runs", dir);
    fd = open(path, O_WRONLY | O_APPEND);
    T_ASSERT_TRUE(fd >= 0);
    T_ASSERT_EQ(9, write(fd, "E L1-1 tr", 9));
    close(fd);

    /* The next life, without rl ever being closed. */
    T_ASSERT_EQ(2, reopen(&loop, &rl2, &left));
    f = find(left, 2, "L1-1");
    T_ASSERT_TRUE(f != NULL);
    T_ASSERT_TRUE(f->has_pid);
    T_ASSERT_EQ(getpid(), f->pid);
    T_ASSERT_STREQ("alpha-1", f->cgroup);
    T_ASSERT_EQ(100, f->slot);
    T_ASSERT_STREQ("alpha@100", f->run_id);
    T_ASSERT_TRUE(sup_runlog_alive(f)); /* this process: same pid, same start, same boot */
    f = find(left, 2, "L1-2");
    T_ASSERT_TRUE(f != NULL && !f->has_pid && f->kind == 'm');
    T_ASSERT_FALSE(sup_runlog_alive(f));
    md_free(left);

    /* They stay open until ended; ending them leaves nothing for the life after. */
    T_ASSERT_EQ(0, sup_runlog_end(rl2, "L1-1"));
    T_ASSERT_EQ(0, sup_runlog_end(rl2, "L1-2"));
    T_ASSERT_EQ(0, reopen(&loop, &rl3, &left));
    close_all(&loop, rl3);
    close_all(&loop, rl2);
    close_all(&loop, rl);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
    rm_dir();
}

/* A process that is gone, or a pid now used by another process, is not alive. */
TEST(alive_checks_pid_and_start_time)
{
    uv_loop_t loop;
    struct sup_runlog *rl, *rl2;
    struct sup_runlog_run *left = NULL, a = run("L2-1", 's', 200, "alpha");
    pid_t child = fork();

    if (child == 0) {
        pause();
        _exit(0);
    }
    fresh_dir();
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(0, reopen(&loop, &rl, &left));
    T_ASSERT_EQ(0, sup_runlog_begin(rl, &a));
    started(rl, a.exec_id, child, NULL);
    T_ASSERT_EQ(1, reopen(&loop, &rl2, &left)); /* the next life, rl never closed */
    T_ASSERT_TRUE(sup_runlog_alive(&left[0]));
    left[0].starttime++; /* as if the pid had been reused by a later process */
    T_ASSERT_FALSE(sup_runlog_alive(&left[0]));
    left[0].starttime--;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    T_ASSERT_FALSE(sup_runlog_alive(&left[0]));
    md_free(left);
    close_all(&loop, rl2);
    close_all(&loop, rl);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
    rm_dir();
}

/* The file is rewritten with the live runs once it has grown: it stays small however many
 * runs come and go, and what is open survives the rewrite. */
TEST(compaction_keeps_the_open_runs)
{
    uv_loop_t loop;
    struct sup_runlog *rl, *rl2;
    struct sup_runlog_run *left = NULL, keep = run("L3-keep", 's', 300, "kept");
    char path[128], exec[32];
    struct stat st;

    fresh_dir();
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(0, reopen(&loop, &rl, &left));
    T_ASSERT_EQ(0, sup_runlog_begin(rl, &keep));
    started(rl, keep.exec_id, getpid(), NULL);
    for (int i = 0; i < 5000; i++) {
        struct sup_runlog_run r;
        snprintf(exec, sizeof exec, "L3-%d", i);
        r = run(exec, 's', 1000 + i, "churn");
        T_ASSERT_EQ(0, sup_runlog_begin(rl, &r));
        started(rl, exec, getpid(), "churn-1");
        T_ASSERT_EQ(0, sup_runlog_end(rl, exec));
    }
    snprintf(path, sizeof path, "%s/runs", dir);
    T_ASSERT_EQ(0, stat(path, &st));
    T_ASSERT_TRUE(st.st_size < 300 * 1024);
    T_ASSERT_EQ(1, reopen(&loop, &rl2, &left));
    T_ASSERT_STREQ("L3-keep", left[0].exec_id);
    T_ASSERT_TRUE(left[0].has_pid);
    md_free(left);
    close_all(&loop, rl2);
    close_all(&loop, rl);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
    rm_dir();
}

/* The P record through a real launch: the child writes it just before its exec, so a meshd
 * killed right after the launch still leaves it, with the child's own pid and start time. */
TEST(the_run_writes_its_own_start_record)
{
    uv_loop_t loop;
    struct sup_runlog *rl, *rl2;
    struct sup_runlog_run *left = NULL, r = run("L4-1", 's', 400, "noted");
    char *argv[] = {"sleep", "30", NULL}, *envp[] = {"PATH=/usr/bin:/bin", NULL};
    char head[64], tail[160];
    struct sup_launch l = {.path = "/bin/sleep", .argv = argv, .envp = envp, .cgroup_dir = -1};
    struct sup_launched out;
    int null;

    fresh_dir();
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(0, reopen(&loop, &rl, &left));
    T_ASSERT_EQ(0, sup_runlog_begin(rl, &r));
    T_ASSERT_TRUE(sup_runlog_note(rl, r.exec_id, "noted-1", &l.note_fd, head, sizeof head, tail,
                                  sizeof tail));
    l.note_head = head;
    l.note_tail = tail;
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    l.fds[0] = l.fds[1] = l.fds[2] = l.fds[3] = null;
    T_ASSERT_EQ(0, sup_launch(&l, &out));
    close(null);
    /* meshd "dies" here: no sup_runlog_launched.  The next life: */
    T_ASSERT_EQ(1, reopen(&loop, &rl2, &left));
    T_ASSERT_TRUE(left[0].has_pid);
    T_ASSERT_EQ(out.pid, left[0].pid);
    T_ASSERT_STREQ("noted-1", left[0].cgroup);
    T_ASSERT_TRUE(sup_runlog_alive(&left[0])); /* its start time is the right one */
    kill(out.pid, SIGKILL);
    waitpid(out.pid, NULL, 0);
    close(out.pidfd);
    T_ASSERT_FALSE(sup_runlog_alive(&left[0]));
    md_free(left);
    close_all(&loop, rl2);
    close_all(&loop, rl);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
    rm_dir();
}

T_MAIN()
