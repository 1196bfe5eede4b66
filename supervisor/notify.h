/* notify.h - tell a service manager (systemd Type=notify) what meshd is doing; notify.c. */
#ifndef MESHD_NOTIFY_H
#define MESHD_NOTIFY_H

#include <uv.h>

/* The STATUS= summary: "3 jobs: 1 running, 2 scheduled[, 1 fatal][, 1 paused]". */
struct sup_notify_counts {
    unsigned jobs, running, scheduled, fatal, paused;
};

/* Reads and unsets NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID; starts the watchdog timer. */
void sup_notify_init(uv_loop_t *loop);
/* READY=1 with a STATUS= summary (start-up done, reload done). */
void sup_notify_ready(const struct sup_notify_counts *c);
/* RELOADING=1 (a reload begins). */
void sup_notify_reloading(void);
/* STOPPING=1 (a graceful stop begins). */
void sup_notify_stopping(void);
/* Stops the watchdog and closes the socket (the loop's last handles). */
void sup_notify_close(void);

#endif
