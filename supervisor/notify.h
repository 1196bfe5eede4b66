/* notify.h - tell a service manager (systemd Type=notify) what meshd is doing; notify.c. */
#ifndef MESHD_NOTIFY_H
#define MESHD_NOTIFY_H

struct sup;

/* Reads and unsets NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID; starts the watchdog timer. */
void sup_notify_init(struct sup *sup);
/* READY=1 with a STATUS= summary (start-up done, reload done). */
void sup_notify_ready(struct sup *sup);
/* RELOADING=1 (a reload begins). */
void sup_notify_reloading(struct sup *sup);
/* STOPPING=1 (a graceful stop begins). */
void sup_notify_stopping(struct sup *sup);
/* Stops the watchdog and closes the socket (the loop's last handles). */
void sup_notify_close(struct sup *sup);

#endif
