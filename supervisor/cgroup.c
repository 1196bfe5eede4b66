/* cgroup.c - each run in a cgroup v2 of its own (see cgroup.h): meshd's subtree, found, checked
 * for delegation and laid out at start, with the clean-up of a previous life's runs.  One run's
 * cgroup, its removal and the small cgroupfs I/O are cgroup_run.c, which this file calls.
 */
#define _GNU_SOURCE /* O_DIRECTORY, unlinkat, fdopendir */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cgroup.h"
#include "cgroup_internal.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"

/* ---- parsers ------------------------------------------------------------------------------- */

/* Copies the next space-separated field of *s into out, undoing mountinfo's \ooo escapes.
 * Returns 0, -EINVAL at the end of the line, -ENAMETOOLONG. */
static int next_field(const char **s, char *out, size_t len)
{
    const char *p = *s;
    size_t k = 0;

    while (*p == ' ')
        p++;
    if (*p == '\0')
        return -EINVAL;
    for (; *p != '\0' && *p != ' '; p++) {
        char c = *p;
        if (c == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
            p[3] <= '7') {
            c = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        }
        if (out != NULL) {
            if (k + 1 >= len)
                return -ENAMETOOLONG;
            out[k++] = c;
        }
    }
    if (out != NULL)
        out[k] = '\0';
    *s = p;
    return 0;
}

int sup_cg_parse_mount(const char *line, char *point, size_t plen, char *root, size_t rlen)
{
    const char *s = line;
    char fstype[32];
    int r;

    /* ID PARENT MAJ:MIN */
    for (int i = 0; i < 3; i++)
        if ((r = next_field(&s, NULL, 0)) < 0)
            return r;
    if ((r = next_field(&s, root, rlen)) < 0 || (r = next_field(&s, point, plen)) < 0)
        return r;
    /* OPTIONS, then optional fields up to a lone "-". */
    if ((r = next_field(&s, NULL, 0)) < 0)
        return r;
    for (;;) {
        while (*s == ' ')
            s++;
        if (s[0] == '-' && (s[1] == ' ' || s[1] == '\0')) {
            s++;
            break;
        }
        if ((r = next_field(&s, NULL, 0)) < 0)
            return r;
    }
    r = next_field(&s, fstype, sizeof fstype);
    if (r == -ENAMETOOLONG)
        return 0; /* no type we care about is that long */
    if (r < 0)
        return r;
    if (root[0] != '/' || point[0] != '/')
        return -EINVAL;
    return strcmp(fstype, "cgroup2") == 0 ? 1 : 0;
}

int sup_cg_parse_self(const char *text, char *path, size_t len)
{
    for (const char *l = text; *l != '\0';) {
        const char *end = strchr(l, '\n');
        size_t n = end ? (size_t)(end - l) : strlen(l);

        /* "HIERARCHY-ID:CONTROLLERS:PATH"; v2 is "0::PATH". */
        if (n >= 3 && strncmp(l, "0::", 3) == 0) {
            if (n == 3 || l[3] != '/')
                return -EINVAL;
            if (n - 3 >= len)
                return -ENAMETOOLONG;
            memcpy(path, l + 3, n - 3);
            path[n - 3] = '\0';
            return 0;
        }
        l += n;
        if (*l == '\n')
            l++;
    }
    return -ENOENT;
}

int sup_cg_join(const char *point, const char *root, const char *own, char *out, size_t len)
{
    size_t rl = strlen(root);
    const char *rest;
    int n;

    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    if (rl == 1) {
        rest = own; /* root "/": every cgroup is visible */
    } else if (strncmp(own, root, rl) == 0 && (own[rl] == '\0' || own[rl] == '/')) {
        rest = own + rl;
    } else {
        return -ENOENT;
    }
    while (*rest == '/')
        rest++;
    if (*rest == '\0')
        n = snprintf(out, len, "%s", point);
    else
        n = snprintf(out, len, "%s%s%s", point,
                     point[0] != '\0' && point[strlen(point) - 1] == '/' ? "" : "/", rest);
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return 0;
}

bool sup_cg_has_controller(const char *list, const char *name)
{
    size_t nl = strlen(name);

    for (const char *p = list; *p != '\0';) {
        size_t n = strcspn(p, " \n");
        if (n == nl && strncmp(p, name, nl) == 0)
            return true;
        p += n;
        p += strspn(p, " \n");
    }
    return false;
}

/* ---- meshd's subtree ----------------------------------------------------------------------- */

static void set_why(struct sup_cg *cg, const char *fmt, ...) MD_PRINTF(2, 3);

static void set_why(struct sup_cg *cg, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    md_free(cg->why);
    cg->why = md_xstrdup(s != NULL ? s : "?");
    free(s); /* vasprintf's */
}

/* Finds meshd's own cgroup directory; *top: it is the top of the mount it is seen through.
 * 0, or -errno with why filled. */
static int find_own(struct sup_cg *cg, char *dir, size_t len, bool *top)
{
    char text[4096], own[PATH_MAX], point[PATH_MAX], root[PATH_MAX];
    char *line = NULL;
    size_t cap = 0;
    bool any = false;
    ssize_t n;
    FILE *f;
    int r;

    n = sup__cg_read_at(AT_FDCWD, "/proc/self/cgroup", text, sizeof text);
    if (n < 0) {
        set_why(cg, "cannot read /proc/self/cgroup: %s", strerror((int)-n));
        return (int)n;
    }
    r = sup_cg_parse_self(text, own, sizeof own);
    if (r < 0) {
        set_why(cg, "no cgroup v2 hierarchy (no 0:: line in /proc/self/cgroup)");
        return r;
    }
    f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL) {
        r = -errno;
        set_why(cg, "cannot read /proc/self/mountinfo: %s", strerror(-r));
        return r;
    }
    r = -ENOENT;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        if (sup_cg_parse_mount(line, point, sizeof point, root, sizeof root) != 1)
            continue;
        any = true;
        if (sup_cg_join(point, root, own, dir, len) == 0) {
            *top = strcmp(dir, point) == 0;
            r = 0;
            break;
        }
    }
    free(line); /* getline's buffer */
    fclose(f);
    if (r < 0 && any)
        set_why(cg, "meshd's cgroup %s is not under any cgroup2 mount", own);
    else if (r < 0)
        set_why(cg, "cgroup2 is not mounted");
    return r;
}

/* Whether meshd's cgroup is its own to divide: systemd's rule is that a process may make
 * cgroups below its own only when it was delegated that subtree.  Delegated are: the top of the
 * cgroup2 mount meshd sees (a container's cgroup namespace, or its cgroup bind-mounted there;
 * the host's root cgroup was ruled out before); a cgroup systemd marked (trusted.delegate, which
 * only root can read, or user.delegate since systemd 251: "1" for a unit with Delegate=yes,
 * which an operator can also set on a cgroup made for meshd); and, for a meshd that is not root,
 * a cgroup directory it owns (systemd hands a delegated cgroup to the unit's User=). */
static bool delegated(int ownfd, bool top)
{
    static const char *const names[] = {"trusted.delegate", "user.delegate"};
    char v[8];
    struct stat st;

    if (top)
        return true;
    for (size_t i = 0; i < MD_ARRAY_SIZE(names); i++) {
        ssize_t n = fgetxattr(ownfd, names[i], v, sizeof v - 1);
        if (n > 0) {
            v[n] = '\0';
            if (strcmp(v, "1") == 0)
                return true;
        }
    }
    return geteuid() != 0 && fstat(ownfd, &st) == 0 && st.st_uid == geteuid();
}

static const char *hint(int err)
{
    switch (err) {
    case -EACCES:
    case -EPERM:
        return " (not delegated to meshd's user; systemd: Delegate=yes)";
    case -EROFS:
        return " (read-only; systemd: ProtectControlGroups=no)";
    default:
        return "";
    }
}

/* Enables the memory controller for the cgroups in <own>/runs.  True when on, else cg->why says
 * why not. */
static bool enable_memory(struct sup_cg *cg, int ownfd, int runsfd)
{
    char list[512];
    ssize_t n = sup__cg_read_at(ownfd, "cgroup.controllers", list, sizeof list);
    int r;

    if (n < 0 || !sup_cg_has_controller(list, "memory")) {
        set_why(cg, "the memory controller is not available in meshd's cgroup");
        return false;
    }
    r = sup__cg_write_at(ownfd, "cgroup.subtree_control", "+memory");
    if (r == 0)
        r = sup__cg_write_at(runsfd, "cgroup.subtree_control", "+memory");
    if (r < 0) {
        set_why(cg, "cannot enable the memory controller: %s%s", strerror(-r),
                r == -EBUSY ? " (other processes share meshd's cgroup)" : "");
        return false;
    }
    return true;
}

/* Kills and removes every run cgroup a previous meshd left in runs/, but those named in keep
 * (the runs this life adopts: sup_cg_run_adopt). */
static void clean_stale(struct sup_cg *cg, const char *const *keep, size_t nkeep)
{
    int fd = openat(cg->runs_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        int rfd, pop;
        if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            strlen(de->d_name) >= RUN_NAME_MAX)
            continue;
        bool kept = false;
        for (size_t i = 0; i < nkeep && !kept; i++)
            kept = strcmp(keep[i], de->d_name) == 0;
        if (kept)
            continue;
        rfd = openat(cg->runs_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0)
            continue;
        cg->stale++;
        pop = sup__cg_populated_at(rfd);
        if (pop == 1)
            md_log(MD_LOG_WARN, "cgroup: killing a run a previous meshd left: %s/%s", cg->runs_path,
                   de->d_name);
        sup__cg_remove_when_empty(cg, rfd, de->d_name);
    }
    closedir(d);
}

/* Sets up <own>/supervisor (with meshd in it) and <own>/runs.  0, or -errno with why filled. */
static int setup(struct sup_cg *cg)
{
    char own[PATH_MAX], pids[64];
    int ownfd = -1, r;
    ssize_t n;
    bool top = false;

    if ((r = find_own(cg, own, sizeof own, &top)) < 0)
        return r;
    ownfd = open(own, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ownfd < 0) {
        r = -errno;
        set_why(cg, "cannot open %s: %s", own, strerror(-r));
        return r;
    }
    /* cgroup.type and cgroup.kill exist in every cgroup but the root; cgroup.kill since 5.14. */
    if (faccessat(ownfd, "cgroup.type", F_OK, 0) < 0) {
        set_why(cg,
                "meshd runs in the root cgroup (%s): give it a cgroup of its own "
                "(systemd: Delegate=yes; a container)",
                own);
        r = -EPERM;
        goto out;
    }
    if (faccessat(ownfd, "cgroup.kill", F_OK, 0) < 0) {
        set_why(cg, "the kernel has no cgroup.kill (Linux 5.14 or newer)");
        r = -ENOSYS;
        goto out;
    }
    if (!delegated(ownfd, top)) {
        set_why(cg,
                "meshd's cgroup %s is not delegated to it (systemd: Delegate=yes; a cgroup "
                "made for meshd: setfattr -n user.delegate -v 1 DIR)",
                own);
        r = -EPERM;
        goto out;
    }
    if (mkdirat(ownfd, "supervisor", 0755) < 0 && errno != EEXIST) {
        r = -errno;
        set_why(cg, "cannot create %s/supervisor: %s%s", own, strerror(-r), hint(r));
        goto out;
    }
    /* Another meshd in the same cgroup (started by hand in the same container, say) already
     * lives in supervisor/, and the runs/ it holds are its runs, not stale ones: leave both. */
    n = sup__cg_read_at(ownfd, "supervisor/cgroup.procs", pids, sizeof pids);
    if (n < 0 && n != -EFBIG) {
        r = (int)n;
        set_why(cg, "cannot read %s/supervisor/cgroup.procs: %s", own, strerror(-r));
        goto out;
    }
    if (n != 0) { /* -EFBIG: more pids than fit */
        set_why(cg, "another process (pid %ld, another meshd?) already uses %s/supervisor",
                n > 0 ? strtol(pids, NULL, 10) : 0L, own);
        r = -EBUSY;
        goto out;
    }
    /* meshd moves itself out of <own>, which may then enable controllers for its children. */
    if ((r = sup__cg_write_at(ownfd, "supervisor/cgroup.procs", "0")) < 0) {
        set_why(cg, "cannot move meshd into %s/supervisor: %s%s", own, strerror(-r), hint(r));
        (void)unlinkat(ownfd, "supervisor", AT_REMOVEDIR);
        goto out;
    }
    if (mkdirat(ownfd, "runs", 0755) < 0 && errno != EEXIST) {
        r = -errno;
        set_why(cg, "cannot create %s/runs: %s%s", own, strerror(-r), hint(r));
        goto out;
    }
    cg->runs_fd = openat(ownfd, "runs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg->runs_fd < 0) {
        r = -errno;
        set_why(cg, "cannot open %s/runs: %s", own, strerror(-r));
        goto out;
    }
    cg->path = md_xstrdup(own);
    cg->runs_path = md_xasprintf("%s/runs", own);
    cg->memory = enable_memory(cg, ownfd, cg->runs_fd);
    r = 0;
out:
    close(ownfd);
    return r;
}

struct sup_cg *sup_cg_new(uv_loop_t *loop, bool enabled, const char *const *keep, size_t nkeep)
{
    struct sup_cg *cg = md_xcalloc(1, sizeof *cg);

    cg->loop = loop;
    cg->runs_fd = -1;
    if (!enabled) {
        set_why(cg, "node.cgroups is off");
        md_log(MD_LOG_NOTICE, "cgroups: off reason=\"%s\"", cg->why);
        return cg;
    }
    if (setup(cg) < 0) {
        md_log(MD_LOG_NOTICE,
               "cgroups: off reason=\"%s\": a run's leftover processes survive "
               "it, no CPU or memory figures",
               cg->why);
        return cg;
    }
    cg->on = true;
    clean_stale(cg, keep, nkeep);
    if (cg->memory)
        md_log(MD_LOG_NOTICE, "cgroups: on path=%s memory=yes stale=%u", cg->path, cg->stale);
    else
        md_log(MD_LOG_NOTICE, "cgroups: on path=%s memory=no stale=%u why=\"%s\"", cg->path,
               cg->stale, cg->why);
    return cg;
}

void sup_cg_free(struct sup_cg *cg)
{
    if (cg == NULL)
        return;
    if (cg->runs_fd >= 0)
        close(cg->runs_fd);
    md_free(cg->path);
    md_free(cg->runs_path);
    md_free(cg->why);
    md_free(cg);
}
