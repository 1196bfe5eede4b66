/* cgroup_run.c - one run's cgroup: its name, creation or adoption, cgroup.kill, what it used
 * (cpu.stat, memory.peak), and its removal, at once or once it empties (see cgroup.h); with the
 * small cgroupfs I/O that meshd's subtree (cgroup.c) uses too.
 */
#define _GNU_SOURCE /* O_DIRECTORY, unlinkat, fdopendir */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "cgroup_internal.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"

#define NEST_MAX 16 /* cgroups a worker made inside its run's, removed depth-first */

/* ---- parsers of a run's files and its name ------------------------------------------------- */

int sup_cg_parse_u64(const char *text, uint64_t *v)
{
    uint64_t x = 0;
    const char *p = text;

    for (; *p >= '0' && *p <= '9'; p++) {
        if (x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -EINVAL;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (p == text || (*p != '\0' && !(*p == '\n' && p[1] == '\0')))
        return -EINVAL;
    *v = x;
    return 0;
}

/* The value of "KEY VALUE" line `key` in text, as a number.  0, -ENOENT or -EINVAL. */
static int keyed_u64(const char *text, const char *key, uint64_t *v)
{
    size_t kl = strlen(key);

    for (const char *l = text; *l != '\0';) {
        const char *end = strchr(l, '\n');
        size_t n = end ? (size_t)(end - l) : strlen(l);

        if (n > kl && strncmp(l, key, kl) == 0 && l[kl] == ' ') {
            char num[24];
            size_t nl = n - kl - 1;
            if (nl == 0 || nl >= sizeof num)
                return -EINVAL;
            memcpy(num, l + kl + 1, nl);
            num[nl] = '\0';
            return sup_cg_parse_u64(num, v);
        }
        l += n;
        if (*l == '\n')
            l++;
    }
    return -ENOENT;
}

int sup_cg_parse_cpu_stat(const char *text, struct sup_cg_usage *u)
{
    uint64_t usage, user, sys;

    if (keyed_u64(text, "usage_usec", &usage) < 0 || keyed_u64(text, "user_usec", &user) < 0 ||
        keyed_u64(text, "system_usec", &sys) < 0)
        return -EINVAL;
    u->cpu = true;
    u->usage_usec = usage;
    u->user_usec = user;
    u->system_usec = sys;
    return 0;
}

int sup_cg_parse_populated(const char *text)
{
    uint64_t v;

    if (keyed_u64(text, "populated", &v) < 0 || v > 1)
        return -EINVAL;
    return (int)v;
}

void sup_cg_run_name(const char *job, uint64_t seq, char *buf, size_t len)
{
    char name[65];
    size_t k = 0;

    for (const unsigned char *c = (const unsigned char *)job; *c != '\0' && k < 64; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || (*c == '.' && k > 0);
        name[k++] = ok ? (char)*c : '_';
    }
    if (k == 0)
        name[k++] = '_';
    name[k] = '\0';
    snprintf(buf, len, "%s-%llu", name, (unsigned long long)seq);
}

/* ---- small cgroupfs I/O -------------------------------------------------------------------- */

/* Reads file `name` under dirfd (AT_FDCWD: a path) into buf, NUL-terminated.  Returns the length
 * or -errno; a file longer than cap - 1 is -EFBIG. */
ssize_t sup__cg_read_at(int dirfd, const char *name, char *buf, size_t cap)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t n;

    if (fd < 0)
        return -errno;
    while ((n = read(fd, buf + len, cap - 1 - len)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            n = -errno;
            close(fd);
            return n;
        }
        len += (size_t)n;
        if (len == cap - 1) {
            close(fd);
            return -EFBIG;
        }
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Writes s to file `name` under dirfd in one write(2).  0 or -errno. */
int sup__cg_write_at(int dirfd, const char *name, const char *s)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
    ssize_t n;
    int r = 0;

    if (fd < 0)
        return -errno;
    do
        n = write(fd, s, strlen(s));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        r = -errno;
    close(fd);
    return r;
}

int sup__cg_populated_at(int dirfd)
{
    char buf[256];
    ssize_t n = sup__cg_read_at(dirfd, "cgroup.events", buf, sizeof buf);

    return n < 0 ? (int)n : sup_cg_parse_populated(buf);
}

/* Removes cgroup `name` under parent, and first any cgroups nested in it (a worker may make its
 * own).  Empty cgroups only: the kernel refuses a populated one (EBUSY).  0 or -errno. */
static int remove_tree(int parent, const char *name, int depth)
{
    int fd, r;
    DIR *d;
    struct dirent *de;

    if (unlinkat(parent, name, AT_REMOVEDIR) == 0)
        return 0;
    r = -errno;
    if (r != -EBUSY || depth == 0)
        return r;
    fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (d == NULL) {
        r = -errno;
        close(fd);
        return r;
    }
    while ((de = readdir(d)) != NULL)
        if (de->d_type == DT_DIR && strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            (void)remove_tree(dirfd(d), de->d_name, depth - 1);
    closedir(d);
    return unlinkat(parent, name, AT_REMOVEDIR) == 0 ? 0 : -errno;
}

/* ---- removal once empty -------------------------------------------------------------------- */

struct sup_cg_pending {
    uv_fs_event_t watch; /* inotify on <runs>/<name>/cgroup.events */
    struct sup_cg *cg;
    struct sup_cg_pending *next;
    int dirfd;
    char name[RUN_NAME_MAX];
};

static void pending_unlink(struct sup_cg_pending *pd)
{
    for (struct sup_cg_pending **pp = &pd->cg->pending; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == pd) {
            *pp = pd->next;
            return;
        }
    }
}

static void pending_close_cb(uv_handle_t *h)
{
    struct sup_cg_pending *pd = MD_CONTAINER_OF(h, struct sup_cg_pending, watch);

    close(pd->dirfd);
    md_free(pd);
}

/* Removes the cgroup if it is empty now; then the watch is done.  Returns true when it is. */
static bool pending_try(struct sup_cg_pending *pd)
{
    int r, pop = sup__cg_populated_at(pd->dirfd);

    if (pop == 1)
        return false;
    r = remove_tree(pd->cg->runs_fd, pd->name, NEST_MAX);
    if (r == -EBUSY)
        return false;
    if (r < 0 && r != -ENOENT)
        md_log_err(MD_LOG_WARN, r, "cgroup: cannot remove %s/%s", pd->cg->runs_path, pd->name);
    else
        md_log(MD_LOG_DEBUG, "cgroup: removed %s", pd->name);
    pending_unlink(pd);
    uv_fs_event_stop(&pd->watch);
    uv_close((uv_handle_t *)&pd->watch, pending_close_cb);
    return true;
}

static void pending_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    (void)status;
    pending_try(MD_CONTAINER_OF(h, struct sup_cg_pending, watch));
}

/* Takes ownership of dirfd (the cgroup `name` in runs/): removes the cgroup now if it is empty,
 * else kills what is in it and removes it once cgroup.events says it emptied. */
void sup__cg_remove_when_empty(struct sup_cg *cg, int dirfd, const char *name)
{
    struct sup_cg_pending *pd;
    char *path;
    int r;

    if (sup__cg_populated_at(dirfd) != 1) {
        r = remove_tree(cg->runs_fd, name, NEST_MAX);
        if (r != -EBUSY) { /* removed, or it cannot be (then say so) */
            if (r < 0 && r != -ENOENT)
                md_log_err(MD_LOG_WARN, r, "cgroup: cannot remove %s/%s", cg->runs_path, name);
            close(dirfd);
            return;
        }
    }
    /* Killed processes need a moment to exit (and one stuck in the kernel, longer). */
    (void)sup__cg_write_at(dirfd, "cgroup.kill", "1");
    if (cg->closed) {
        md_log(MD_LOG_WARN, "cgroup: left %s/%s (not empty yet at shutdown)", cg->runs_path, name);
        close(dirfd);
        return;
    }
    pd = md_xcalloc(1, sizeof *pd);
    pd->cg = cg;
    pd->dirfd = dirfd;
    snprintf(pd->name, sizeof pd->name, "%s", name);
    uv_fs_event_init(cg->loop, &pd->watch);
    path = md_xasprintf("%s/%s/cgroup.events", cg->runs_path, name);
    /* Watch first, then look: an "emptied" between a look and the watch would be missed. */
    r = uv_fs_event_start(&pd->watch, pending_cb, path, 0);
    md_free(path);
    pd->next = cg->pending;
    cg->pending = pd;
    if (r < 0) {
        md_log_err(MD_LOG_WARN, r, "cgroup: cannot watch %s/%s; it is removed at the next start",
                   cg->runs_path, name);
        pending_unlink(pd);
        uv_close((uv_handle_t *)&pd->watch, pending_close_cb);
        return;
    }
    pending_try(pd);
}

void sup_cg_close(struct sup_cg *cg)
{
    if (cg == NULL || cg->closed)
        return;
    cg->closed = true;
    while (cg->pending != NULL) {
        struct sup_cg_pending *pd = cg->pending;
        if (pending_try(pd))
            continue;
        md_log(MD_LOG_WARN, "cgroup: left %s/%s (not empty yet at shutdown)", cg->runs_path,
               pd->name);
        pending_unlink(pd);
        uv_fs_event_stop(&pd->watch);
        uv_close((uv_handle_t *)&pd->watch, pending_close_cb);
    }
}

/* ---- one run's cgroup ---------------------------------------------------------------------- */

struct sup_cg_run {
    struct sup_cg *cg;
    int dirfd;
    char name[RUN_NAME_MAX];
};

int sup_cg_run_new(struct sup_cg *cg, const char *job, struct sup_cg_run **out)
{
    char name[RUN_NAME_MAX];
    int dfd, r;

    if (!cg->on || cg->closed)
        return -ENOTSUP;
    /* A name a previous meshd left (and could not remove) is skipped. */
    for (int tries = 0;; tries++) {
        sup_cg_run_name(job, ++cg->seq, name, sizeof name);
        if (mkdirat(cg->runs_fd, name, 0755) == 0)
            break;
        if (errno != EEXIST || tries == 8)
            return -errno;
    }
    dfd = openat(cg->runs_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        r = -errno;
        (void)unlinkat(cg->runs_fd, name, AT_REMOVEDIR);
        return r;
    }
    *out = md_xcalloc(1, sizeof **out);
    (*out)->cg = cg;
    (*out)->dirfd = dfd;
    snprintf((*out)->name, sizeof(*out)->name, "%s", name);
    return 0;
}

int sup_cg_run_adopt(struct sup_cg *cg, const char *name, struct sup_cg_run **out)
{
    int dfd;

    if (!cg->on || cg->closed)
        return -ENOTSUP;
    if (strlen(name) >= RUN_NAME_MAX || strchr(name, '/') != NULL || name[0] == '.')
        return -EINVAL;
    dfd = openat(cg->runs_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    *out = md_xcalloc(1, sizeof **out);
    (*out)->cg = cg;
    (*out)->dirfd = dfd;
    snprintf((*out)->name, sizeof(*out)->name, "%s", name);
    return 0;
}

const char *sup_cg_run_name_of(const struct sup_cg_run *r)
{
    return r->name;
}

int sup_cg_run_dirfd(const struct sup_cg_run *r)
{
    return r->dirfd;
}

int sup_cg_run_kill(struct sup_cg_run *r)
{
    int pop = sup__cg_populated_at(r->dirfd), w;

    if (pop == 0)
        return 0;
    w = sup__cg_write_at(r->dirfd, "cgroup.kill", "1");
    return w < 0 ? w : 1;
}

void sup_cg_run_usage(const struct sup_cg_run *r, struct sup_cg_usage *u)
{
    char buf[1024];

    memset(u, 0, sizeof *u);
    if (sup__cg_read_at(r->dirfd, "cpu.stat", buf, sizeof buf) >= 0 &&
        sup_cg_parse_cpu_stat(buf, u) < 0)
        md_log(MD_LOG_DEBUG, "cgroup: %s: unexpected cpu.stat", r->name);
    if (r->cg->memory && sup__cg_read_at(r->dirfd, "memory.peak", buf, sizeof buf) >= 0 &&
        sup_cg_parse_u64(buf, &u->memory_peak) == 0)
        u->memory = true;
}

void sup_cg_run_release(struct sup_cg_run *r)
{
    sup__cg_remove_when_empty(r->cg, r->dirfd, r->name);
    md_free(r);
}
