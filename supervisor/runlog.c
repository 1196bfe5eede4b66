/* runlog.c - the runs this node started and has not yet ended, on disk (see runlog.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "runlog.h"

#define RUNLOG_NAME "runs"
#define RUNLOG_TMP "runs.tmp"
#define SYNC_MS 1000               /* fdatasync at most this long after a write */
#define COMPACT_BYTES (256 * 1024) /* rewrite the file with the live runs past this size */
#define LINE_MAX_LEN 1024

struct live {
    struct live *next;
    struct sup_runlog_run r;
};

struct sup_runlog {
    uv_timer_t sync;
    int dirfd, fd;
    char *dir;
    char boot[40];
    struct live *live;
    size_t nlive;
    uint64_t bytes; /* the file's size */
    bool dirty;     /* written since the last fdatasync */
    bool warned;    /* a write failed and was logged: later failures are not */
};

/* ---- parsing ------------------------------------------------------------------------------ */

/* Copies the next space-separated field of *s into out (len bytes) and advances *s.  Returns
 * false when there is none or it does not fit. */
static bool field(const char **s, char *out, size_t len)
{
    const char *p = *s, *e;

    while (*p == ' ')
        p++;
    if (*p == '\0')
        return false;
    e = strchr(p, ' ');
    if (e == NULL)
        e = p + strlen(p);
    if ((size_t)(e - p) >= len)
        return false;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    *s = e;
    return true;
}

static bool num(const char **s, int64_t min, int64_t *out)
{
    char buf[32], *end;
    long long v;

    if (!field(s, buf, sizeof buf))
        return false;
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0' || end == buf || v < min)
        return false;
    *out = v;
    return true;
}

int sup_runlog_parse(const char *line, struct sup_runlog_run *r)
{
    const char *s = line + 1;
    char kind[4];
    int64_t v;

    memset(r, 0, sizeof *r);
    if (line[0] == '\0' || line[1] != ' ')
        return -1;
    if (!field(&s, r->exec_id, sizeof r->exec_id))
        return -1;
    switch (line[0]) {
    case 'B':
        if (!field(&s, kind, sizeof kind) || strlen(kind) != 1 || strchr("smve", kind[0]) == NULL)
            return -1;
        r->kind = kind[0];
        if (!num(&s, 0, &r->slot) || !num(&s, 0, &r->started_ms) ||
            !field(&s, r->job, sizeof r->job) || !field(&s, r->run_id, sizeof r->run_id))
            return -1;
        break;
    case 'P':
        if (!num(&s, 1, &v) || v > INT32_MAX)
            return -1;
        r->pid = (int)v;
        if (!num(&s, 0, &v))
            return -1;
        r->starttime = (uint64_t)v;
        if (!field(&s, r->boot, sizeof r->boot))
            return -1;
        if (field(&s, r->cgroup, sizeof r->cgroup) && strcmp(r->cgroup, "-") == 0)
            r->cgroup[0] = '\0';
        r->has_pid = true;
        break;
    case 'E':
        break;
    default:
        return -1;
    }
    while (*s == ' ')
        s++;
    return *s == '\0' ? line[0] : -1;
}

/* ---- /proc -------------------------------------------------------------------------------- */

int sup_runlog_starttime(int pid, uint64_t *out)
{
    char path[64], buf[1024], *p, state;
    int fd;
    ssize_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return n < 0 ? -errno : -ESRCH;
    buf[n] = '\0';
    /* "pid (comm) state ppid ..." - comm may hold anything, so count from the last ')'.
     * Field 22 (starttime) is the 20th after it. */
    if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
        return -EINVAL;
    state = p[2];
    for (int i = 0; i < 20; i++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            return -EINVAL;
    }
    *out = strtoull(p + 1, NULL, 10);
    /* A zombie has finished: not the live process a record means. */
    return state == 'Z' || state == 'X' ? -ESRCH : 0;
}

static void read_boot(char *out, size_t len)
{
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, len - 1) : -1;

    if (fd >= 0)
        close(fd);
    if (n <= 0) {
        snprintf(out, len, "-");
        return;
    }
    out[n] = '\0';
    out[strcspn(out, "\n ")] = '\0';
}

bool sup_runlog_alive(const struct sup_runlog_run *r)
{
    char boot[40];
    uint64_t st;

    if (!r->has_pid)
        return false;
    read_boot(boot, sizeof boot);
    if (strcmp(boot, r->boot) != 0)
        return false; /* the machine rebooted: every pid is someone else's */
    return sup_runlog_starttime(r->pid, &st) == 0 && st == r->starttime;
}

/* ---- writing ------------------------------------------------------------------------------ */

static void sync_cb(uv_timer_t *t)
{
    struct sup_runlog *rl = MD_CONTAINER_OF(t, struct sup_runlog, sync);

    if (rl->dirty && rl->fd >= 0 && fdatasync(rl->fd) < 0)
        md_log_err(MD_LOG_WARN, -errno, "runs file fdatasync: dir=%s", rl->dir);
    rl->dirty = false;
}

/* Written since the last fdatasync: arm the sync. */
static void mark_dirty(struct sup_runlog *rl)
{
    rl->dirty = true;
    if (!uv_is_active((uv_handle_t *)&rl->sync)) {
        /* Mid-second, clear of the next burst of spawns (cron slots fall on whole seconds). */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uv_timer_start(&rl->sync, sync_cb,
                       SYNC_MS + (uint64_t)((1500 - ts.tv_nsec / 1000000) % 1000), 0);
    }
}

static int put(struct sup_runlog *rl, const char *line, size_t len)
{
    ssize_t n;

    if (rl->fd < 0)
        return -EBADF;
    do
        n = write(rl->fd, line, len);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)len) {
        int e = n < 0 ? -errno : -EIO;
        if (!rl->warned)
            md_log_err(MD_LOG_ERROR, e,
                       "runs file write: dir=%s (a crash now may re-run or lose "
                       "a slot)",
                       rl->dir);
        rl->warned = true;
        return e;
    }
    rl->bytes += len;
    mark_dirty(rl);
    return 0;
}

static size_t fmt_begin(char *buf, size_t len, const struct sup_runlog_run *r)
{
    int n = snprintf(buf, len, "B %s %c %" PRId64 " %" PRId64 " %s %s\n", r->exec_id, r->kind,
                     r->slot, r->started_ms, r->job, r->run_id);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

static size_t fmt_pid(char *buf, size_t len, const struct sup_runlog_run *r)
{
    int n = snprintf(buf, len, "P %s %d %" PRIu64 " %s %s\n", r->exec_id, r->pid, r->starttime,
                     r->boot, r->cgroup[0] ? r->cgroup : "-");
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* Rewrites the file with the live runs: temp file, fdatasync, rename, directory fsync. */
static int compact(struct sup_runlog *rl)
{
    char line[LINE_MAX_LEN];
    int fd, rc = 0;
    uint64_t bytes = 0;

    fd = openat(rl->dirfd, RUNLOG_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    for (struct live *l = rl->live; l != NULL && rc == 0; l = l->next) {
        size_t n = fmt_begin(line, sizeof line, &l->r);
        if (l->r.has_pid)
            n += fmt_pid(line + n, sizeof line - n, &l->r);
        if (write(fd, line, n) != (ssize_t)n)
            rc = -EIO;
        bytes += n;
    }
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    if (rc == 0 && renameat(rl->dirfd, RUNLOG_TMP, rl->dirfd, RUNLOG_NAME) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        (void)unlinkat(rl->dirfd, RUNLOG_TMP, 0);
        return rc;
    }
    (void)fsync(rl->dirfd);
    if (rl->fd >= 0)
        close(rl->fd);
    /* The renamed temp file is the file now: append to it. */
    if (fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) < 0 || lseek(fd, 0, SEEK_END) < 0) {
        close(fd);
        rl->fd = -1;
        return -errno;
    }
    rl->fd = fd;
    rl->bytes = bytes;
    rl->dirty = false;
    return 0;
}

static struct live *find(struct sup_runlog *rl, const char *exec_id, struct live ***link)
{
    for (struct live **pp = &rl->live; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->r.exec_id, exec_id) == 0) {
            if (link != NULL)
                *link = pp;
            return *pp;
        }
    }
    return NULL;
}

int sup_runlog_begin(struct sup_runlog *rl, const struct sup_runlog_run *r)
{
    char line[LINE_MAX_LEN];
    size_t n;
    struct live *l;

    if (rl == NULL)
        return 0;
    if ((n = fmt_begin(line, sizeof line, r)) == 0)
        return -ENAMETOOLONG;
    l = md_xcalloc(1, sizeof *l);
    l->r = *r;
    l->r.has_pid = false;
    l->next = rl->live;
    rl->live = l;
    rl->nlive++;
    return put(rl, line, n);
}

bool sup_runlog_note(struct sup_runlog *rl, const char *exec_id, const char *cgroup, int *fd,
                     char *head, size_t hn, char *tail, size_t tn)
{
    int a, b;

    if (rl == NULL || rl->fd < 0)
        return false;
    a = snprintf(head, hn, "P %s", exec_id);
    b = snprintf(tail, tn, " %s %s\n", rl->boot, cgroup != NULL && *cgroup ? cgroup : "-");
    if (a < 0 || (size_t)a >= hn || b < 0 || (size_t)b >= tn)
        return false;
    *fd = rl->fd;
    return true;
}

void sup_runlog_launched(struct sup_runlog *rl, const char *exec_id, int pid, const char *cgroup)
{
    struct live *l;
    struct stat st;

    if (rl == NULL || (l = find(rl, exec_id, NULL)) == NULL)
        return;
    if (sup_runlog_starttime(pid, &l->r.starttime) < 0)
        l->r.starttime = 0; /* gone already: the end mark follows soon */
    l->r.pid = pid;
    l->r.has_pid = true;
    snprintf(l->r.boot, sizeof l->r.boot, "%s", rl->boot);
    snprintf(l->r.cgroup, sizeof l->r.cgroup, "%s", cgroup != NULL ? cgroup : "");
    /* The child appended its line: count it, and sync it like our own. */
    if (fstat(rl->fd, &st) == 0)
        rl->bytes = (uint64_t)st.st_size;
    mark_dirty(rl);
}

int sup_runlog_end(struct sup_runlog *rl, const char *exec_id)
{
    char line[LINE_MAX_LEN];
    struct live *l, **link;
    int n, r;

    if (rl == NULL || (l = find(rl, exec_id, &link)) == NULL)
        return 0;
    *link = l->next;
    rl->nlive--;
    md_free(l);
    n = snprintf(line, sizeof line, "E %s\n", exec_id);
    r = put(rl, line, (size_t)n);
    if (r == 0 && rl->bytes > COMPACT_BYTES && (r = compact(rl)) < 0)
        md_log_err(MD_LOG_WARN, r, "runs file rewrite: dir=%s", rl->dir);
    return r;
}

/* ---- open / close ------------------------------------------------------------------------- */

/* Replays the file into rl->live: B adds, P completes, E removes; a bad or torn line is
 * skipped (counted). */
static void load(struct sup_runlog *rl)
{
    int fd = openat(rl->dirfd, RUNLOG_NAME, O_RDONLY | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    char *line = NULL;
    size_t cap = 0, bad = 0;
    ssize_t n;
    struct sup_runlog_run r;

    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        struct live *l, **link;
        if (line[n - 1] != '\n') {
            bad++; /* torn: the crash came in the middle of a write */
            break;
        }
        line[n - 1] = '\0';
        switch (sup_runlog_parse(line, &r)) {
        case 'B':
            if (find(rl, r.exec_id, NULL) != NULL)
                break;
            l = md_xcalloc(1, sizeof *l);
            l->r = r;
            l->next = rl->live;
            rl->live = l;
            rl->nlive++;
            break;
        case 'P':
            if ((l = find(rl, r.exec_id, NULL)) != NULL) {
                l->r.has_pid = true;
                l->r.pid = r.pid;
                l->r.starttime = r.starttime;
                memcpy(l->r.boot, r.boot, sizeof r.boot);
                memcpy(l->r.cgroup, r.cgroup, sizeof r.cgroup);
            }
            break;
        case 'E':
            if ((l = find(rl, r.exec_id, &link)) != NULL) {
                *link = l->next;
                rl->nlive--;
                md_free(l);
            }
            break;
        default:
            bad++;
        }
    }
    free(line);
    fclose(f);
    if (bad > 0)
        md_log(MD_LOG_WARN, "runs file: dir=%s bad_lines=%zu (ignored)", rl->dir, bad);
}

int sup_runlog_open(uv_loop_t *loop, const char *dir, struct sup_runlog **out,
                    struct sup_runlog_run **left, size_t *nleft)
{
    struct sup_runlog *rl = md_xcalloc(1, sizeof *rl);
    size_t i = 0;
    int r;

    *out = NULL;
    *left = NULL;
    *nleft = 0;
    rl->fd = -1;
    rl->dir = md_xstrdup(dir);
    read_boot(rl->boot, sizeof rl->boot);
    rl->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rl->dirfd < 0) {
        r = -errno;
        goto fail;
    }
    load(rl);
    if (rl->nlive > 0) {
        *left = md_xcalloc(rl->nlive, sizeof **left);
        for (struct live *l = rl->live; l != NULL; l = l->next)
            (*left)[i++] = l->r;
        *nleft = i;
    }
    /* Start from a file with only what is still open (and no torn line to append after). */
    if ((r = compact(rl)) < 0)
        goto fail;
    uv_timer_init(loop, &rl->sync);
    *out = rl;
    return 0;

fail:
    md_log_err(MD_LOG_ERROR, r,
               "runs file: dir=%s (runs are not recorded on disk: after a crash "
               "a slot may run again)",
               dir);
    md_free(*left);
    *left = NULL;
    *nleft = 0;
    while (rl->live != NULL) {
        struct live *l = rl->live;
        rl->live = l->next;
        md_free(l);
    }
    if (rl->dirfd >= 0)
        close(rl->dirfd);
    md_free(rl->dir);
    md_free(rl);
    return r;
}

static void close_cb(uv_handle_t *h)
{
    struct sup_runlog *rl = MD_CONTAINER_OF((uv_timer_t *)h, struct sup_runlog, sync);

    while (rl->live != NULL) {
        struct live *l = rl->live;
        rl->live = l->next;
        md_free(l);
    }
    md_free(rl->dir);
    md_free(rl);
}

void sup_runlog_close(struct sup_runlog *rl)
{
    if (rl == NULL)
        return;
    if (rl->dirty && rl->fd >= 0)
        (void)fdatasync(rl->fd);
    if (rl->fd >= 0)
        close(rl->fd);
    if (rl->dirfd >= 0)
        close(rl->dirfd);
    rl->fd = rl->dirfd = -1;
    uv_close((uv_handle_t *)&rl->sync, close_cb);
}
