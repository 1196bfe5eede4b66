/* db_internal.h - struct md_db, for db.c and its tests only. */
#ifndef MESHD_DB_INTERNAL_H
#define MESHD_DB_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshd/md_db.h"

struct db_req;
struct db_watch;

struct md_db {
    uv_loop_t *loop;
    enum md_db_state state;
    PGconn *conn;           /* non-NULL in CONNECTING, IDLE, BUSY */
    struct db_watch *watch; /* the current socket's watcher, or NULL */
    uv_timer_t timer;       /* connect timeout, backoff, deferred connect/teardown */
    unsigned pending;       /* handles not yet closed (timer + watchers) */
    bool flushing;          /* PQflush returned 1: poll writable too */
    bool closing;           /* md_db_close was called */
    bool closed;            /* teardown done: free in the last close_cb */
    bool ever_connected;
    void (*closed_cb)(void *ud);
    void *closed_ud;

    struct db_req *head, *tail; /* FIFO of requests not yet sent */
    size_t nqueued;
    struct db_req *inflight; /* sent, NULL result not yet seen */

    char *conninfo;   /* may hold the password: never log */
    char *password;   /* only to scrub error texts; NULL if none */
    char *target;     /* redacted, for logs */
    char *on_connect; /* or NULL */
    unsigned connect_timeout_ms, backoff_initial_ms, backoff_max_ms;
    unsigned tries; /* failed attempts since the last connect */
    size_t max_queue;
    md_db_state_cb *cfg_state_cb;
    md_db_notify_cb *cfg_notify_cb;
    void *cfg_ud;
    char errbuf[512]; /* the last error result's message, scrubbed */
    struct md_db_stats stats;
};

/* Copies msg into out as one line with every occurrence of password replaced by "***". */
void md__db_scrub(const char *password, const char *msg, char *out, size_t outsz);

/* Loads libpq in a daemon linked against pq_lazy.c rather than libpq (see there): 0, or
 * MD_EDB with the loader's reason in err.  Weak: in a binary linked against libpq itself the
 * function does not exist (its address is NULL) and there is nothing to load. */
int md__pq_load(char *err, size_t len) __attribute__((weak));

#endif
