/* test_cgroup.c - supervisor/cgroup.c: the parsers (mountinfo, /proc/self/cgroup, cpu.stat,
 * cgroup.events, run names) as tables, then the runtime against the real cgroup2 hierarchy when
 * this process may make a cgroup of its own (root, a writable cgroup2 mount): the layout, a run
 * whose setsid grandchild is killed with it, CPU time, removal once empty, and a stale run of a
 * "previous meshd" killed at start.  Those skip elsewhere.
 *
 * The runtime tests move this test process into a fresh cgroup <own>/test_cgroup.<pid> (meshd
 * then moves it on into .../supervisor) and back out at the end, and remove what they made. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cgroup.h"
#include "launch.h"
#include "launch_internal.h"
#include "looptest.h"
#include "t.h"

/* ---- parsers ------------------------------------------------------------------------------- */

TEST(mountinfo_lines)
{
    static const struct {
        const char *line;
        int want;
        const char *point, *root;
    } cases[] = {
        {"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw", 1,
         "/sys/fs/cgroup/unified", "/"},
        /* optional fields before the separator */
        {"30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 master:1 - cgroup2 "
         "cgroup2 rw,nsdelegate,memory_recursiveprot",
         1, "/sys/fs/cgroup", "/"},
        /* a container without a cgroup namespace: its own subtree bind-mounted */
        {"1234 1200 0:26 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw", 1,
         "/sys/fs/cgroup", "/docker/abc"},
        /* octal escapes: space, tab, backslash */
        {"50 31 0:40 /a\\040b /mnt/my\\040cg\\011x\\134y rw - cgroup2 none rw", 1,
         "/mnt/my cg\tx\\y", "/a b"},
        {"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu", 0, NULL, NULL},
        {"22 1 8:1 / / rw,relatime - ext4 /dev/vda rw", 0, NULL, NULL},
        {"22 1 8:1 / / rw - averyveryveryverylongfilesystemtypename x rw", 0, NULL, NULL},
        {"", -EINVAL, NULL, NULL},
        {"garbage", -EINVAL, NULL, NULL},
        {"1 2 3:4 / /x rw shared:1", -EINVAL, NULL, NULL}, /* no " - " */
        {"1 2 3:4 / /x rw -", -EINVAL, NULL, NULL},        /* nothing after it */
        {"1 2 3:4 relative /x rw - cgroup2 c rw", -EINVAL, NULL, NULL},
    };
    char point[64], root[64];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = sup_cg_parse_mount(cases[i].line, point, sizeof point, root, sizeof root);
        if (r != cases[i].want)
            T_FAIL("line %zu \"%s\": got %d, want %d", i, cases[i].line, r, cases[i].want);
        if (r == 1) {
            T_ASSERT_STREQ(cases[i].point, point);
            T_ASSERT_STREQ(cases[i].root, root);
        }
    }
    T_ASSERT_EQ(-ENAMETOOLONG, sup_cg_parse_mount(cases[0].line, point, 8, root, sizeof root));
}

TEST(self_cgroup_line)
{
    char path[64];

    /* a hybrid host: v1 lines, then the v2 one */
    T_ASSERT_EQ(0, sup_cg_parse_self("9:name=systemd:/\n4:memory:/x/y\n1:cpu:/\n0::/\n", path,
                                     sizeof path));
    T_ASSERT_STREQ("/", path);
    T_ASSERT_EQ(0, sup_cg_parse_self("0::/system.slice/meshd.service\n", path, sizeof path));
    T_ASSERT_STREQ("/system.slice/meshd.service", path);
    T_ASSERT_EQ(0, sup_cg_parse_self("0::/a b", path, sizeof path)); /* no final newline */
    T_ASSERT_STREQ("/a b", path);
    T_ASSERT_EQ(-ENOENT, sup_cg_parse_self("4:memory:/\n1:cpu:/\n", path, sizeof path));
    T_ASSERT_EQ(-ENOENT, sup_cg_parse_self("", path, sizeof path));
    T_ASSERT_EQ(-ENOENT, sup_cg_parse_self("10::/\n", path, sizeof path));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_self("0::\n", path, sizeof path));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_self("0::relative\n", path, sizeof path));
    T_ASSERT_EQ(-ENAMETOOLONG, sup_cg_parse_self("0::/abcdefgh\n", path, 8));
}

TEST(join_mount_and_cgroup)
{
    static const struct {
        const char *point, *root, *own;
        int want;
        const char *out;
    } cases[] = {
        {"/sys/fs/cgroup", "/", "/system.slice/meshd.service", 0,
         "/sys/fs/cgroup/system.slice/meshd.service"},
        {"/sys/fs/cgroup", "/", "/", 0, "/sys/fs/cgroup"},
        {"/sys/fs/cgroup/unified", "/", "/meshd-it.12", 0, "/sys/fs/cgroup/unified/meshd-it.12"},
        {"/sys/fs/cgroup", "/docker/abc", "/docker/abc", 0, "/sys/fs/cgroup"},
        {"/sys/fs/cgroup", "/docker/abc", "/docker/abc/sub", 0, "/sys/fs/cgroup/sub"},
        {"/sys/fs/cgroup", "/docker/abc/", "/docker/abc/sub", 0, "/sys/fs/cgroup/sub"},
        {"/sys/fs/cgroup", "/docker/abc", "/docker/abcd", -ENOENT, NULL},
        {"/sys/fs/cgroup", "/docker/abc", "/other", -ENOENT, NULL},
        {"/", "/", "/x", 0, "/x"},
    };
    char out[128];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = sup_cg_join(cases[i].point, cases[i].root, cases[i].own, out, sizeof out);
        if (r != cases[i].want)
            T_FAIL("case %zu (%s, %s, %s): got %d, want %d", i, cases[i].point, cases[i].root,
                   cases[i].own, r, cases[i].want);
        if (r == 0)
            T_ASSERT_STREQ(cases[i].out, out);
    }
    T_ASSERT_EQ(-ENAMETOOLONG, sup_cg_join("/sys/fs/cgroup", "/", "/abc", out, 16));
}

TEST(cpu_stat)
{
    struct sup_cg_usage u;

    memset(&u, 0, sizeof u);
    T_ASSERT_EQ(0, sup_cg_parse_cpu_stat("usage_usec 312345\nuser_usec 300000\n"
                                         "system_usec 12345\nnr_periods 0\nnr_throttled 0\n"
                                         "throttled_usec 0\nnr_bursts 0\nburst_usec 0\n",
                                         &u));
    T_ASSERT_TRUE(u.cpu);
    T_ASSERT_EQ(312345, u.usage_usec);
    T_ASSERT_EQ(300000, u.user_usec);
    T_ASSERT_EQ(12345, u.system_usec);
    /* any order, no final newline; a key that only starts like one does not count */
    memset(&u, 0, sizeof u);
    T_ASSERT_EQ(0, sup_cg_parse_cpu_stat("user_usec_x 9\nsystem_usec 2\nuser_usec 1\n"
                                         "usage_usec 18446744073709551615",
                                         &u));
    T_ASSERT_EQ(1, u.user_usec);
    T_ASSERT_TRUE(u.usage_usec == UINT64_MAX);
    memset(&u, 0, sizeof u);
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_cpu_stat("usage_usec 1\nuser_usec 1\n", &u));
    T_ASSERT_FALSE(u.cpu);
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_cpu_stat("usage_usec x\nuser_usec 1\nsystem_usec 1\n", &u));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_cpu_stat("usage_usec 18446744073709551616\nuser_usec 1\n"
                                               "system_usec 1\n",
                                               &u));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_cpu_stat("usage_usec -1\nuser_usec 1\nsystem_usec 1\n", &u));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_cpu_stat("usage_usec \nuser_usec 1\nsystem_usec 1\n", &u));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_cpu_stat("", &u));
    T_ASSERT_FALSE(u.cpu);
}

TEST(numbers_events_controllers)
{
    uint64_t v = 7;

    T_ASSERT_EQ(0, sup_cg_parse_u64("4194304\n", &v));
    T_ASSERT_EQ(4194304, v);
    T_ASSERT_EQ(0, sup_cg_parse_u64("0", &v));
    T_ASSERT_EQ(0, v);
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_u64("", &v));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_u64("max\n", &v));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_u64("12 \n", &v));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_u64("12\n\n", &v));

    T_ASSERT_EQ(1, sup_cg_parse_populated("populated 1\nfrozen 0\n"));
    T_ASSERT_EQ(0, sup_cg_parse_populated("populated 0\nfrozen 0\n"));
    T_ASSERT_EQ(0, sup_cg_parse_populated("frozen 1\npopulated 0"));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_populated("frozen 0\n"));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_populated("populated 2\n"));
    T_ASSERT_EQ(-EINVAL, sup_cg_parse_populated("populated\n"));

    T_ASSERT_TRUE(sup_cg_has_controller("cpuset cpu io memory hugetlb pids\n", "memory"));
    T_ASSERT_TRUE(sup_cg_has_controller("hugetlb\n", "hugetlb"));
    T_ASSERT_TRUE(sup_cg_has_controller("cpu", "cpu"));
    T_ASSERT_FALSE(sup_cg_has_controller("cpuset io\n", "cpu"));
    T_ASSERT_FALSE(sup_cg_has_controller("memory\n", "mem"));
    T_ASSERT_FALSE(sup_cg_has_controller("\n", "memory"));
    T_ASSERT_FALSE(sup_cg_has_controller("", "memory"));
}

TEST(run_names)
{
    char buf[96], long_job[101];

    sup_cg_run_name("nightly-data.update_2", 3, buf, sizeof buf);
    T_ASSERT_STREQ("nightly-data.update_2-3", buf);
    sup_cg_run_name("a b/c\n", 1, buf, sizeof buf);
    T_ASSERT_STREQ("a_b_c_-1", buf);
    sup_cg_run_name(".hidden", 1, buf, sizeof buf); /* "." and ".." must never come out */
    T_ASSERT_STREQ("_hidden-1", buf);
    sup_cg_run_name("..", 2, buf, sizeof buf);
    T_ASSERT_STREQ("_.-2", buf);
    sup_cg_run_name("", 1, buf, sizeof buf);
    T_ASSERT_STREQ("_-1", buf);
    sup_cg_run_name("caf\xc3\xa9", 1, buf, sizeof buf);
    T_ASSERT_STREQ("caf__-1", buf);
    memset(long_job, 'j', 100);
    long_job[100] = '\0';
    sup_cg_run_name(long_job, UINT64_MAX, buf, sizeof buf);
    T_ASSERT_EQ(64 + 1 + 20, strlen(buf));
    T_ASSERT_STREQ("-18446744073709551615", buf + 64);
}

/* ---- the runtime, on the real hierarchy ----------------------------------------------------- */

static char orig_dir[PATH_MAX]; /* this process's cgroup before the test */
#define PBUF (2 * PATH_MAX)
static char test_dir[PATH_MAX + 32]; /* the cgroup made for the test */

static ssize_t slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, buf, cap - 1);
    close(fd);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

static int put(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = write(fd, s, strlen(s));
    n = n < 0 ? -errno : 0;
    close(fd);
    return (int)n;
}

/* This process's cgroup directory, as cgroup.c finds it (its parsers, plain I/O here). */
static bool own_dir(char *out, size_t len)
{
    char text[4096], own[PATH_MAX], point[PATH_MAX], root[PATH_MAX], line[8192];
    bool ok = false;
    FILE *f;

    if (slurp("/proc/self/cgroup", text, sizeof text) < 0 ||
        sup_cg_parse_self(text, own, sizeof own) < 0 ||
        (f = fopen("/proc/self/mountinfo", "re")) == NULL)
        return false;
    while (!ok && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        ok = sup_cg_parse_mount(line, point, sizeof point, root, sizeof root) == 1 &&
             sup_cg_join(point, root, own, out, len) == 0;
    }
    fclose(f);
    return ok;
}

/* Removes dir and every cgroup below it (all must be empty). */
static void rm_cgroup_tree(const char *dir)
{
    char cmd[PBUF];

    snprintf(cmd, sizeof cmd, "find '%s' -depth -type d -exec rmdir {} + 2>/dev/null", dir);
    if (system(cmd) != 0)
        return; /* the caller looks again */
}

/* Back to where we were; removes the test's cgroups.  Also at exit, after a failed test. */
static void leave_test_cgroup(void)
{
    char procs[PBUF];

    if (test_dir[0] == '\0')
        return;
    snprintf(procs, sizeof procs, "%s/cgroup.procs", orig_dir);
    if (put(procs, "0") < 0)
        fprintf(stderr, "  could not move back to %s\n", orig_dir);
    /* What a failed test left running goes (it would hold our stderr open, too). */
    snprintf(procs, sizeof procs, "%s/cgroup.kill", test_dir);
    (void)put(procs, "1");
    for (int i = 0; i < 50 && access(test_dir, F_OK) == 0; i++) {
        rm_cgroup_tree(test_dir);
        usleep(20000);
    }
    if (access(test_dir, F_OK) == 0)
        fprintf(stderr, "  could not remove %s\n", test_dir);
    test_dir[0] = '\0';
}

/* Puts this process in a fresh cgroup of its own, or skips.  mark: as systemd marks a cgroup
 * it delegates (user.delegate=1). */
static void enter_test_cgroup(bool mark)
{
    char procs[PBUF];

    static bool registered;

    leave_test_cgroup(); /* what a failed test left */
    if (!registered) {
        atexit(leave_test_cgroup);
        registered = true;
    }
    if (!own_dir(orig_dir, sizeof orig_dir))
        T_SKIP("no cgroup2 hierarchy visible");
    snprintf(test_dir, sizeof test_dir, "%s/test_cgroup.%ld", orig_dir, (long)getpid());
    if (mkdir(test_dir, 0755) < 0) {
        test_dir[0] = '\0';
        T_SKIP("cannot make a cgroup here (not root, or not delegated)");
    }
    if (mark && setxattr(test_dir, "user.delegate", "1", 1, 0) < 0) {
        rmdir(test_dir);
        test_dir[0] = '\0';
        T_SKIP("cannot set user.delegate on a cgroup (kernel < 5.7?)");
    }
    snprintf(procs, sizeof procs, "%s/cgroup.procs", test_dir);
    if (put(procs, "0") < 0) {
        rmdir(test_dir);
        test_dir[0] = '\0';
        T_SKIP("cannot move into a new cgroup");
    }
}

static bool pid_alive(pid_t pid)
{
    char path[64], buf[512], *rp;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (slurp(path, buf, sizeof buf) <= 0)
        return false;
    rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static bool wait_dead(pid_t pid, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (!pid_alive(pid))
            return true;
        usleep(10000);
    }
    return !pid_alive(pid);
}

static bool path_gone(void *arg)
{
    return access((const char *)arg, F_OK) != 0;
}

/* Burns about ms of CPU time in this process. */
static void burn(long ms)
{
    struct timespec t;

    do
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    while (t.tv_sec * 1000 + t.tv_nsec / 1000000 < ms);
}

TEST(disabled_by_config)
{
    uv_loop_t loop;
    struct sup_cg *cg;

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    cg = sup_cg_new(&loop, false, NULL, 0);
    T_ASSERT_FALSE(cg->on);
    T_ASSERT_STREQ("node.cgroups is off", cg->why);
    sup_cg_close(cg);
    uv_run(&loop, UV_RUN_NOWAIT);
    sup_cg_free(cg);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
}

TEST(off_in_a_cgroup_not_delegated)
{
    uv_loop_t loop;
    struct sup_cg *cg;
    char path[PBUF];

    enter_test_cgroup(false); /* writable (we are root), but nobody said it is ours */
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    cg = sup_cg_new(&loop, true, NULL, 0);
    T_ASSERT_FALSE(cg->on);
    T_ASSERT_CONTAINS(cg->why, "is not delegated to it");
    snprintf(path, sizeof path, "%s/supervisor", test_dir);
    T_ASSERT_TRUE(path_gone(path)); /* nothing made, nothing moved */
    sup_cg_close(cg);
    uv_run(&loop, UV_RUN_NOWAIT);
    sup_cg_free(cg);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
    leave_test_cgroup();
}

/* The run cgroup's cgroup.procs, for a child to move itself in as launch.c's vfork path does. */
static int run_procs_fd(struct sup_cg_run *run)
{
    return openat(sup_cg_run_dirfd(run), "cgroup.procs", O_WRONLY | O_CLOEXEC);
}

TEST(run_and_its_setsid_grandchild_are_killed_and_counted)
{
    uv_loop_t loop;
    struct sup_cg *cg;
    struct sup_cg_run *run;
    struct sup_cg_usage u;
    char path[PBUF], buf[256];
    int procs_fd, pfd[2], st;
    pid_t child, grandchild = 0;

    enter_test_cgroup(true);
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    cg = sup_cg_new(&loop, true, NULL, 0);
    if (!cg->on) {
        fprintf(stderr, "  off: %s\n", cg->why);
        sup_cg_free(cg);
        leave_test_cgroup();
        T_FAIL("cgroups off in a cgroup of our own");
    }
    T_ASSERT_STREQ(test_dir, cg->path);
    /* meshd (this process) left <own> for <own>/supervisor */
    snprintf(path, sizeof path, "%s/supervisor/cgroup.procs", test_dir);
    T_ASSERT_TRUE(slurp(path, buf, sizeof buf) > 0);
    T_ASSERT_EQ(getpid(), atol(buf));

    T_ASSERT_EQ(0, sup_cg_run_new(cg, "job one", &run));
    T_ASSERT_TRUE((procs_fd = run_procs_fd(run)) >= 0);
    T_ASSERT_STREQ("job_one-1", sup_cg_run_name_of(run));
    {
        struct stat a, b;
        snprintf(path, sizeof path, "%s/runs/job_one-1", test_dir);
        T_ASSERT_EQ(0, fstat(sup_cg_run_dirfd(run), &a));
        T_ASSERT_EQ(0, stat(path, &b));
        T_ASSERT_TRUE(a.st_ino == b.st_ino && S_ISDIR(a.st_mode));
    }
    T_ASSERT_EQ(0, pipe(pfd));
    child = fork();
    if (child == 0) {
        /* What launch.c does before exec, then a worker that leaves a daemon behind. */
        pid_t gc;
        if (write(procs_fd, "0", 1) < 0)
            _exit(1);
        burn(150);
        gc = fork();
        if (gc == 0) {
            setsid();
            for (;;)
                pause();
        }
        if (write(pfd[1], &gc, sizeof gc) < 0)
            _exit(1);
        _exit(0);
    }
    close(procs_fd);
    close(pfd[1]);
    T_ASSERT_EQ((ssize_t)sizeof grandchild, read(pfd[0], &grandchild, sizeof grandchild));
    close(pfd[0]);
    T_ASSERT_EQ(child, waitpid(child, &st, 0));
    T_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    usleep(100000);
    T_ASSERT_TRUE(pid_alive(grandchild)); /* outside the process group, inside the cgroup */

    T_ASSERT_EQ(1, sup_cg_run_kill(run));
    T_ASSERT_TRUE(wait_dead(grandchild, 5000));
    sup_cg_run_usage(run, &u);
    T_ASSERT_TRUE(u.cpu);
    T_ASSERT_TRUE(u.user_usec + u.system_usec >= 100000); /* burned 150 ms */
    T_ASSERT_TRUE(u.usage_usec < 5000000);
    T_ASSERT_EQ(cg->memory, u.memory);

    snprintf(path, sizeof path, "%s/runs/job_one-1", test_dir);
    T_ASSERT_EQ(0, access(path, F_OK));
    sup_cg_run_release(run);
    T_ASSERT_TRUE(run_until(&loop, path_gone, path, 5000));
    /* the next run's cgroup has the next number */
    T_ASSERT_EQ(0, sup_cg_run_new(cg, "job one", &run));
    T_ASSERT_TRUE((procs_fd = run_procs_fd(run)) >= 0);
    T_ASSERT_STREQ("job_one-2", sup_cg_run_name_of(run));
    close(procs_fd);
    T_ASSERT_EQ(0, sup_cg_run_kill(run)); /* empty: nothing to kill */
    sup_cg_run_release(run);
    snprintf(path, sizeof path, "%s/runs/job_one-2", test_dir);
    T_ASSERT_TRUE(path_gone(path)); /* empty: removed at once */

    sup_cg_close(cg);
    uv_run(&loop, UV_RUN_NOWAIT);
    sup_cg_free(cg);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
    leave_test_cgroup();
}

/* A second meshd started in the same cgroup must neither take over nor kill the first one's
 * runs as stale. */
TEST(off_when_another_meshd_holds_the_subtree)
{
    uv_loop_t loop;
    struct sup_cg *first, *second;
    struct sup_cg_run *run;
    char path[PBUF];
    int procs_fd, st;
    pid_t other, worker;

    enter_test_cgroup(true);
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    first = sup_cg_new(&loop, true, NULL, 0);
    T_ASSERT_TRUE(first->on);
    T_ASSERT_EQ(0, sup_cg_run_new(first, "w", &run));
    T_ASSERT_TRUE((procs_fd = run_procs_fd(run)) >= 0);
    worker = fork();
    if (worker == 0) {
        if (write(procs_fd, "0", 1) < 0)
            _exit(1);
        for (;;)
            pause();
    }
    close(procs_fd);
    /* The "other meshd": a process that stays in <own>/supervisor while this one moves back
     * to <own> and starts again. */
    other = fork();
    if (other == 0)
        for (;;)
            pause();
    snprintf(path, sizeof path, "%s/cgroup.procs", test_dir);
    T_ASSERT_EQ(0, put(path, "0"));
    usleep(50000);

    second = sup_cg_new(&loop, true, NULL, 0);
    T_ASSERT_FALSE(second->on);
    T_ASSERT_CONTAINS(second->why, "already uses");
    T_ASSERT_TRUE(pid_alive(worker)); /* the first one's run was left alone */
    sup_cg_close(second);
    sup_cg_free(second);

    T_ASSERT_EQ(1, sup_cg_run_kill(run));
    T_ASSERT_EQ(worker, waitpid(worker, &st, 0));
    sup_cg_run_release(run);
    kill(other, SIGKILL);
    T_ASSERT_EQ(other, waitpid(other, &st, 0));
    sup_cg_close(first);
    uv_run(&loop, UV_RUN_NOWAIT);
    sup_cg_free(first);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
    leave_test_cgroup();
}

TEST(stale_run_of_a_previous_life_is_killed_at_start)
{
    uv_loop_t loop;
    struct sup_cg *cg;
    char path[PBUF];
    int st;
    pid_t stale;

    enter_test_cgroup(true);
    snprintf(path, sizeof path, "%s/runs", test_dir);
    T_ASSERT_EQ(0, mkdir(path, 0755));
    snprintf(path, sizeof path, "%s/runs/old-7", test_dir);
    T_ASSERT_EQ(0, mkdir(path, 0755));
    snprintf(path, sizeof path, "%s/runs/old-8", test_dir); /* an empty one */
    T_ASSERT_EQ(0, mkdir(path, 0755));
    snprintf(path, sizeof path, "%s/runs/old-7/cgroup.procs", test_dir);
    stale = fork();
    if (stale == 0) {
        if (put(path, "0") < 0)
            _exit(1);
        for (;;)
            pause();
    }
    usleep(100000);
    T_ASSERT_TRUE(pid_alive(stale));

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    cg = sup_cg_new(&loop, true, NULL, 0);
    T_ASSERT_TRUE(cg->on);
    T_ASSERT_EQ(2, cg->stale);
    T_ASSERT_EQ(stale, waitpid(stale, &st, 0));
    T_ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    snprintf(path, sizeof path, "%s/runs/old-7", test_dir);
    T_ASSERT_TRUE(run_until(&loop, path_gone, path, 5000));
    snprintf(path, sizeof path, "%s/runs/old-8", test_dir);
    T_ASSERT_TRUE(path_gone(path));

    sup_cg_close(cg);
    uv_run(&loop, UV_RUN_NOWAIT);
    sup_cg_free(cg);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
    leave_test_cgroup();
}

/* launch.c puts the child in its run cgroup before it can run a line of the worker: through
 * clone3's CLONE_INTO_CGROUP, and on the vfork path through cgroup.procs.  A grandchild forked
 * first thing (and its setsid'd child) is in there too. */
static void launch_into_cgroup(bool vfork_path)
{
    uv_loop_t loop;
    struct sup_cg *cg;
    struct sup_cg_run *run;
    char *argv[] = {"sh", "-c",
                    "cat /proc/self/cgroup >&3; (setsid sh -c 'cat /proc/self/cgroup >&3')", NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    struct sup_launch l = {.path = "/bin/sh", .argv = argv, .envp = envp};
    struct sup_launched out;
    char buf[1024] = "", want[PBUF];
    int sp[2], null, st;
    size_t len = 0;
    ssize_t n;

    enter_test_cgroup(true);
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    cg = sup_cg_new(&loop, true, NULL, 0);
    T_ASSERT_TRUE(cg->on);
    T_ASSERT_EQ(0, sup_cg_run_new(cg, "launched", &run));
    T_ASSERT_EQ(0, pipe2(sp, O_CLOEXEC));
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    l.fds[0] = l.fds[1] = l.fds[2] = null;
    l.fds[3] = sp[1];
    l.cgroup_dir = sup_cg_run_dirfd(run);
    if (!sup__launch_force_vfork(vfork_path) && !vfork_path)
        fprintf(stderr, "  clone3 not compiled in: the vfork path again\n");
    T_ASSERT_EQ(0, sup_launch(&l, &out));
    sup__launch_force_vfork(false);
    close(sp[1]);
    close(null);
    while ((n = read(sp[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    close(sp[0]);
    T_ASSERT_EQ(out.pid, waitpid(out.pid, &st, 0));
    close(out.pidfd);
    T_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* "0::/<path below the mount>/runs/launched-1", once per process */
    snprintf(want, sizeof want, "/runs/launched-1\n");
    int seen = 0;
    for (const char *at = buf; (at = strstr(at, want)) != NULL; at++)
        seen++;
    if (seen != 2)
        T_FAIL("the child and its setsid grandchild in the run's cgroup, got:\n%s", buf);
    T_ASSERT_EQ(0, sup_cg_run_kill(run));
    sup_cg_run_release(run);
    sup_cg_close(cg);
    uv_run(&loop, UV_RUN_NOWAIT);
    sup_cg_free(cg);
    T_ASSERT_EQ(0, uv_loop_close(&loop));
    leave_test_cgroup();
}

TEST(launch_starts_the_child_in_its_cgroup_clone3)
{
    launch_into_cgroup(false);
}

TEST(launch_starts_the_child_in_its_cgroup_vfork)
{
    launch_into_cgroup(true);
}

T_MAIN()
