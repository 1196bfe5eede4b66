/* orphans.c - orphans.h. */
#include "orphans.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void act(pid_t pid, enum sup_orphan_action a)
{
    int st;

    switch (a) {
    case SUP_ORPHAN_REAP:
        if (waitpid(pid, &st, WNOHANG) > 0)
            md_log(MD_LOG_INFO, "reaped orphan: pid=%ld", (long)pid);
        break;
    case SUP_ORPHAN_TERM:
        md_log(MD_LOG_NOTICE, "stopping orphan: pid=%ld signal=TERM", (long)pid);
        kill(pid, SIGTERM);
        break;
    case SUP_ORPHAN_KILL:
        md_log(MD_LOG_WARN, "killing orphan: pid=%ld signal=KILL", (long)pid);
        kill(pid, SIGKILL);
        break;
    }
}

int sup_orphans(const int *ours, size_t nours, enum sup_orphan_action a)
{
    char path[64], *buf;
    size_t len = 0, cap = 8192;
    ssize_t n;
    int fd, count = 0;

    snprintf(path, sizeof path, "/proc/self/task/%ld/children", (long)getpid());
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* One pid is at most 8 bytes here; read it all, however many children there are. */
    buf = md_xmalloc(cap);
    while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 64)
            buf = md_xrealloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    for (char *s = buf, *end; *s != '\0'; s = end) {
        long pid = strtol(s, &end, 10);
        int key = (int)pid;
        if (end == s)
            break;
        if (pid > 0 && bsearch(&key, ours, nours, sizeof *ours, cmp_int) == NULL) {
            count++;
            act((pid_t)pid, a);
        }
    }
    md_free(buf);
    return count;
}
