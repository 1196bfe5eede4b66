/* fetch.h - meshd-scrape's downloads: many files over HTTP(S) or file://, conditional, resumable,
 * retried, on one background thread.
 *
 * The caller hands over an array of items, each a URL, the validators of the version it loaded
 * last, and the path the complete file goes to.  One download thread drives a curl multi handle
 * over them and hands each item back, finished, through fetch_next, in the order they finish.
 * The caller's thread is free meanwhile to load the files that already arrived.
 *
 * Per item:
 *
 *   - Conditional GET.  With an etag the request carries "If-None-Match: <etag>"; without one,
 *     and last_modified > 0, "If-Modified-Since: <last_modified>".  A 304 makes the item
 *     FETCH_NOT_MODIFIED: nothing is written, no body is received.  For file:// URLs (which have
 *     no ETag) the modification time is compared with last_modified whenever it is > 0, and a
 *     file not newer is FETCH_NOT_MODIFIED.
 *
 *   - Streaming.  The body goes to "<path>.part" as it arrives (never held in memory) and its
 *     SHA-256 is computed on the way.  When it is complete the .part is synced and renamed to
 *     path, and "<path>.part.meta" is removed.  Only a 200 or 206 (or a file:// read) writes
 *     anything: an error page never reaches the .part.  A disk error (ENOSPC) fails the item
 *     without retries, keeping what was written.
 *
 *   - Resume.  When a response starts a new .part, its validator is stored in .part.meta: the
 *     ETag when it is a strong one, else the Last-Modified time; a response with neither gets no
 *     .part.meta, and its .part is thrown away before the next attempt.  A later attempt, in the
 *     same run after a failure mid-body or in a later run after a stop or a crash, asks for the
 *     rest with "Range: bytes=<size of .part>-" and "If-Range: <validator>".  A 206 whose
 *     Content-Range starts where the .part ends continues it (the bytes already there are read
 *     and hashed first, on the download thread, so the SHA-256 is of the whole file); a 200 means
 * the file changed since: the .part is truncated and the download starts over.  A 416, or a 206
 * that does not fit, discards the .part and starts over from 0, once.  For file:// the file's
 * modification time is the validator and is checked by us.  The resumed request still carries
 * If-None-Match (or If-Modified-Since) for the version loaded last: a 304 then means that version
 * is still current, so the .part (of a newer one that has since gone away) is discarded and the
 * item is FETCH_NOT_MODIFIED.
 *
 *   - Retries.  Timeouts (connect, or below stall_bytes_per_s for stall_ms), connection
 *     failures, resets, early closes, empty replies, name resolution failures and HTTP 408, 429
 *     and 5xx are tried again, up to retries more times, after backoff_ms doubling per retry up
 *     to max_backoff_ms, +-10 % jitter; a Retry-After on the response lengthens the wait, up to
 *     max_backoff_ms.  A retry that finds a .part with a validator resumes it.  Waiting items
 *     do not hold up the others.  Any other 4xx, a malformed URL, an unsupported scheme, a
 *     missing file:// file are permanent failures and are not retried.
 *
 *   - Redirects are followed (at most 10; http and https only).  No Accept-Encoding is sent:
 *     the bytes on disk are the bytes the server stores, whatever their own compression.
 *
 * The directory of each path must exist; the download thread creates no directories.
 */
#ifndef MESHD_SCRAPE_FETCH_H
#define MESHD_SCRAPE_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshd/md_err.h"

/* What became of an item. */
enum fetch_outcome {
    FETCH_PENDING,      /* not finished yet (never seen by the caller through fetch_next) */
    FETCH_NOT_MODIFIED, /* 304, or a file:// file not newer than last_modified: nothing written */
    FETCH_DOWNLOADED,   /* path holds the complete file */
    FETCH_FAILED,       /* error says why; permanent says whether retrying could help */
    FETCH_STOPPED,      /* fetch_stop came first; a .part (with its .part.meta) may be left */
};

/* One file.  The caller owns the array and every item in it; the "in" fields are borrowed and
 * must stay valid and unchanged until fetch_free.  The download thread writes the "out" fields,
 * and the caller may read an item's "out" fields once fetch_next returned that item (the queue's
 * mutex orders the two), never before. */
struct fetch_item {
    /* in */
    const char *url;       /* http://, https:// or file://; user:password@ is allowed and kept
                            * out of every message */
    const char *etag;      /* ETag of the version loaded last, as the server sent it (quotes
                            * included); NULL: none */
    int64_t last_modified; /* Unix s of the version loaded last (used when etag is NULL, and
                            * always for file://); 0: none */
    const char *path;      /* where the complete file goes; "<path>.part" and "<path>.part.meta"
                            * hold an unfinished one */
    void *user;            /* the caller's, untouched */

    /* out, valid once fetch_next returned the item */
    enum fetch_outcome outcome;
    long http_code;            /* the last response's status (0: file://, or no response) */
    char etag_new[256];        /* the file's ETag: the response's; for FETCH_NOT_MODIFIED, the
                                * request's etag when the 304 carried none; for a 206 without one,
                                * the one that started the .part.  "" none, or too long to keep */
    int64_t last_modified_new; /* Unix s of the file's Last-Modified (file://: its mtime), with
                                * the same fall-backs as etag_new; 0 unknown */
    int64_t bytes;             /* FETCH_DOWNLOADED: the size of the complete file; else 0 */
    int64_t bytes_received;    /* body bytes received this run, every attempt (0 for a 304) */
    char sha256[65];           /* FETCH_DOWNLOADED: hex SHA-256 of the complete file; else "" */
    int attempts;              /* requests made, restarts after a 416 included */
    bool resumed;              /* the complete file continued a .part (a 206, or file://) */
    double seconds;            /* wall time from the first request to the end */
    char error[256];           /* FETCH_FAILED: "<url>: <cause>", e.g. "https://h/a.zip: HTTP 404
                                * Not Found", "...: timed out: less than 1024 B/s for 60 s after
                                * 6 attempts"; FETCH_STOPPED: "<url>: stopped"; else "" */
    bool permanent;            /* FETCH_FAILED: retrying later cannot help (4xx other than 408
                                * and 429, a malformed URL, a missing file:// file, ...) */
};

/* Options.  fetch_opts_init fills in the defaults; a field left 0 also means its default, except
 * retries (0: no retries) and max_recv_speed (0: unlimited). */
struct fetch_opts {
    int concurrency;             /* transfers in flight at most; default 4 */
    int per_host;                /* of those, to one scheme://host:port of the item's URL (not
                                  * of a redirect's); default 2; file:// is not counted */
    int retries;                 /* attempts after the first; default 5 */
    uint64_t backoff_ms;         /* wait before the first retry, doubled for each next; 1000 */
    uint64_t max_backoff_ms;     /* cap of a wait, Retry-After included; default 60 s */
    uint64_t connect_timeout_ms; /* default 30 s */
    uint64_t stall_ms;           /* slower than stall_bytes_per_s for stall_ms is a timeout: */
    long stall_bytes_per_s;      /* default 60 s (whole seconds, rounded up) and 1024 B/s */
    int64_t max_recv_speed;      /* bytes/s per transfer; 0 unlimited */
    const char *user_agent;      /* copied; NULL: "meshd-scrape/<version>" */
};

struct fetcher;

/* url without "user:password@" (the last '@' of the authority ends them, so a password may hold
 * one), control characters as '?': what logs, summaries and state tables show.  The caller
 * frees it with md_free. */
char *fetch_url_shown(const char *url);

/* Fills o (caller-owned) with the defaults. */
void fetch_opts_init(struct fetch_opts *o);

/* Starts downloading items[0..n-1] (borrowed, with everything they point to, until fetch_free;
 * n may be 0; no two items may share a path) on a new thread, with options o (NULL: defaults;
 * copied).
 *
 * Calls curl_global_init (and fetch_free curl_global_cleanup), which are not thread-safe in
 * every libcurl build: the caller must have no other thread using libcurl or OpenSSL at those
 * moments; a single-threaded worker calling both from main is fine, and so are several fetchers
 * started and freed from that one thread.  SIGTERM, SIGINT and SIGPIPE are blocked in the
 * download thread, so the stop signals reach the caller's thread, and a write to a closed socket
 * fails with EPIPE there.  The download thread logs through md_log (thread-safe: one write per
 * line): "retrying: url=... attempt=N of M wait_ms=... cause=..." at warn, "restarting: ..." at
 * info; nothing else.
 *
 * Returns 0 with *out set (release it with fetch_free), -EINVAL for a bad option, -ENOMEM when
 * libcurl cannot be initialized, or -errno when the thread cannot be created.  On failure *out is
 * NULL and nothing has been started.  Item-level problems (a malformed URL) are not errors here:
 * the item comes back from fetch_next as FETCH_FAILED. */
int fetch_start(struct fetcher **out, struct fetch_item *items, size_t n,
                const struct fetch_opts *o) MD_MUSTCHECK;

/* The next finished item (one of items, with its out fields set), in the order they finished.
 * Waits up to timeout_ms for one (0: does not wait; < 0: waits until there is one).  Returns NULL
 * on a timeout, and once all n items were returned; fetch_done tells the two apart.  Every item
 * is returned exactly once, stopped ones included.  Call fetch_next and fetch_done from one
 * thread only (the consumer). */
struct fetch_item *fetch_next(struct fetcher *f, int timeout_ms);

/* True once fetch_next has returned all n items. */
bool fetch_done(const struct fetcher *f);

/* Body bytes received so far, over all items and attempts (for progress).  Any thread. */
int64_t fetch_bytes(const struct fetcher *f);

/* Asks the download thread to stop, and returns at once.  Within 200 ms it aborts the transfers
 * in flight, keeping their .part and .part.meta for the next run, and returns every item not yet
 * finished as FETCH_STOPPED (waiting for a retry, or never started); fetch_next then drains them.
 * Harmless to call twice, or after everything finished.  Any thread, but not from a signal
 * handler: set a flag there and call it from the loop around fetch_next. */
void fetch_stop(struct fetcher *f);

/* Stops (as fetch_stop) if not everything finished, waits for the download thread to end, and
 * frees f.  Items not yet returned by fetch_next keep their out fields but are never returned.
 * NULL is harmless.  From the consumer's thread. */
void fetch_free(struct fetcher *f);

#endif
