/* notify.c - the service manager's notification protocol (sd_notify), spoken by hand.
 *
 * When $NOTIFY_SOCKET is set (systemd's Type=notify), meshd sends datagrams to it: READY=1 once
 * the config is loaded and the first jobs are started, RELOADING=1 / READY=1 around a reload,
 * STOPPING=1 when a stop begins, STATUS=<one line> with each, and WATCHDOG=1 every half
 * $WATCHDOG_USEC from a timer on the loop itself, so a wedged loop stops the pings and the
 * manager restarts meshd.  The socket is a path or, with a leading '@', an abstract name.
 *
 * The variables are removed from meshd's environment (as sd_notify(unset=1) does) so the jobs
 * it starts do not talk to the manager in meshd's name.  Sends never block (MSG_DONTWAIT); a
 * lost datagram is logged once, never fatal.  Without $NOTIFY_SOCKET everything is a no-op.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "notify.h"

struct sup_notify {
    int fd;
    struct sockaddr_un addr;
    socklen_t addrlen;
    uv_timer_t watchdog;
    bool watchdog_on;
    bool warned;
};

static struct sup_notify *g_notify; /* one per process: the manager talks to the main pid */

static int parse_socket(const char *s, struct sockaddr_un *sa, socklen_t *len)
{
    size_t n = strlen(s);

    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (n == 0 || n >= sizeof sa->sun_path || (s[0] != '/' && s[0] != '@'))
        return -EINVAL;
    memcpy(sa->sun_path, s, n);
    if (s[0] == '@')
        sa->sun_path[0] = '\0'; /* abstract namespace */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (s[0] == '/'));
    return 0;
}

static void send_msg(const char *msg)
{
    struct sup_notify *n = g_notify;
    ssize_t r;

    if (n == NULL)
        return;
    r = sendto(n->fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
               (const struct sockaddr *)&n->addr, n->addrlen);
    if (r < 0 && !n->warned) {
        n->warned = true; /* once: the manager may be gone (a stop in progress) */
        md_log_err(MD_LOG_WARN, -errno, "notify: send to the service manager failed");
    }
}

/* "STATUS=3 jobs: 1 running, 2 scheduled" */
static void status_line(const struct sup_notify_counts *c, const char *prefix, char *buf,
                        size_t len)
{
    int k = snprintf(buf, len, "%sSTATUS=%u jobs: %u running, %u scheduled", prefix, c->jobs,
                     c->running, c->scheduled);
    if (c->fatal && k > 0 && (size_t)k < len)
        k += snprintf(buf + k, len - (size_t)k, ", %u fatal", c->fatal);
    if (c->paused && k > 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, ", %u paused", c->paused);
}

static void watchdog_cb(uv_timer_t *t)
{
    (void)t;
    send_msg("WATCHDOG=1");
}

void sup_notify_init(uv_loop_t *loop)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    const char *wusec = getenv("WATCHDOG_USEC"), *wpid = getenv("WATCHDOG_PID");
    struct sup_notify *n;
    uint64_t usec = 0;

    if (wusec != NULL && (wpid == NULL || strtol(wpid, NULL, 10) == (long)getpid())) {
        char *end;
        errno = 0;
        usec = strtoull(wusec, &end, 10);
        if (errno != 0 || *end != '\0')
            usec = 0;
    }
    /* Ours alone: the jobs must not inherit them. */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (sock == NULL || *sock == '\0')
        return;
    n = md_xcalloc(1, sizeof *n);
    if (parse_socket(sock, &n->addr, &n->addrlen) < 0) {
        md_log(MD_LOG_WARN, "notify: NOTIFY_SOCKET is not a socket path or @name; ignored");
        md_free(n);
        return;
    }
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0) {
        md_log_err(MD_LOG_WARN, -errno, "notify: socket");
        md_free(n);
        return;
    }
    g_notify = n;
    if (usec > 0) {
        uint64_t ms = usec / 2000; /* half the manager's timeout */
        uv_timer_init(loop, &n->watchdog);
        uv_timer_start(&n->watchdog, watchdog_cb, ms ? ms : 1, ms ? ms : 1);
        n->watchdog_on = true;
        md_log(MD_LOG_NOTICE, "notify: watchdog ping every %" PRIu64 " ms", ms ? ms : 1);
    }
}

void sup_notify_ready(const struct sup_notify_counts *c)
{
    char msg[256];

    if (g_notify == NULL)
        return;
    status_line(c, "READY=1\n", msg, sizeof msg);
    send_msg(msg);
}

void sup_notify_reloading(void)
{
    struct timespec ts;
    char msg[128];

    if (g_notify == NULL)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* MONOTONIC_USEC is what Type=notify-reload (systemd 253+) wants with RELOADING=1. */
    snprintf(msg, sizeof msg,
             "RELOADING=1\nSTATUS=reloading the configuration\n"
             "MONOTONIC_USEC=%" PRIu64,
             (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
    send_msg(msg);
}

void sup_notify_stopping(void)
{
    send_msg("STOPPING=1\nSTATUS=stopping: waiting for the jobs to exit");
}

static void notify_closed(uv_handle_t *h)
{
    md_free(MD_CONTAINER_OF((uv_timer_t *)h, struct sup_notify, watchdog));
}

void sup_notify_close(void)
{
    struct sup_notify *n = g_notify;

    if (n == NULL)
        return;
    g_notify = NULL;
    close(n->fd);
    if (n->watchdog_on)
        uv_close((uv_handle_t *)&n->watchdog, notify_closed);
    else
        md_free(n);
}
