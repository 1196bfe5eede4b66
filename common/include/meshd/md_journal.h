/* md_journal.h - the local journal of registry events: nothing is lost while PostgreSQL is away.
 *
 * The registry appends every event here BEFORE it sends it anywhere, and acks it once the
 * database has confirmed it.  On restart the journal hands back every event that was appended
 * but not acked, in id order, so the registry can replay it.  The design (file format, ids,
 * dropping under the size bound, recovery) is described in docs/journal.md.
 *
 * Durability, precisely:
 * - md_journal_append writes the record with one write(2) to the page cache before it returns,
 *   so a crash of meshd (SIGKILL, abort) loses nothing that append reported as appended.
 * - md_journal_sync does fdatasync.  The owner calls it from its periodic tick; a power loss or
 *   kernel crash may lose the events appended since the last sync (up to one tick of events).
 *   With nothing pending (every event acked) it does no I/O at all: what is on disk is in the
 *   database already.
 * - Replaying an event the database had already confirmed (a crash between the database's
 *   confirmation and the persisted ack) is harmless: the database side is idempotent by event
 *   id, so the journal only promises "at least once, in id order".  The ack watermark is
 *   saved lazily while nothing is pending, so a crash replays at most 4096 acked events.
 * - Ids are strictly increasing 64-bit numbers that are never reused, not even after every
 *   event was acked and every file deleted, and not after a power loss.  They are not dense:
 *   after a restart they may jump by up to 65536.
 *
 * Blocking: every call does blocking file I/O on the local disk (this is a deliberate exception
 * to the "nothing blocks the loop" rule: local disk and page cache).  md_journal_append and
 * md_journal_ack cost O(record) plus, rarely, an fsync (of the small state file once per 65536
 * ids and when acked segments are deleted; of the old segment at a rotation); a drop round under
 * the bound rewrites the segments that held dropped events (see md_journal_opts.max_bytes).
 * md_journal_open reads every segment once.
 *
 * A journal is single-threaded; none of its functions may be called from inside its own
 * callbacks (md_journal_visit_cb, md_journal_overflow_cb).
 */
#ifndef MESHD_MD_JOURNAL_H
#define MESHD_MD_JOURNAL_H

#include "md_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest event accepted by md_journal_append, in bytes of JSON text. */
#define MD_JOURNAL_EVENT_MAX (64 * 1024)

/* What an event is worth, lowest first: under the size bound, lower values are dropped first. */
enum md_jprio {
    MD_JPRIO_HEARTBEAT = 0, /* heartbeats, progress snapshots: the next one supersedes it */
    MD_JPRIO_METRIC = 1,    /* metric samples */
    MD_JPRIO_EVENT = 2,     /* alerts, messages, state changes */
    MD_JPRIO_RUN = 3,       /* run records: never dropped */
};
#define MD_JPRIO_COUNT 4

/* Called once per drop round (the bound was hit and events were dropped for good), and once when
 * the journal goes over the bound holding only run records (dropped_count 0: it keeps growing).
 * Also called with dropped_count 1 for a low-priority event dropped on arrival because run
 * records alone fill the bound; the owner should rate-limit its alert.  The owner logs a loud
 * warning and opens an alert.  Must not call back into the journal. */
typedef void md_journal_overflow_cb(void *ud, size_t dropped_count, uint64_t dropped_bytes);

/* Called by md_journal_pending for each visited event.  json is borrowed: valid only during the
 * call; it is NUL-terminated for convenience, but len is authoritative.  Return 0 to go on, any
 * other value to stop the visit after this event.  Must not call back into the journal. */
typedef int md_journal_visit_cb(void *ud, uint64_t id, enum md_jprio prio, const char *json,
                                size_t len);

/* Options; zero members take their defaults.  The struct is copied by md_journal_open. */
struct md_journal_opts {
    /* Bound on pending bytes (records as stored: JSON plus about 40 bytes of framing).  When an
     * append takes the journal past it, a drop round removes the oldest heartbeats, then the
     * oldest metrics, then the oldest events, until pending bytes are at most 7/8 of the bound
     * (the slack amortizes the rewrite of the segments involved).  Run records are never
     * dropped; if they alone exceed the bound, the journal grows past it.  Default 64 MiB. */
    uint64_t max_bytes;
    /* A segment file is rotated once appending would take it past this size.  Default 4 MiB. */
    uint64_t segment_bytes;
    md_journal_overflow_cb *overflow_cb; /* may be NULL */
    void *ud;                            /* passed to overflow_cb */
};

struct md_journal; /* opaque */

/* Opens (creating it and its parents, mode 0700, if needed) the journal in dir and recovers it:
 * reads the state file and every segment, truncates a torn last record (a crash mid-write) with
 * a warning, skips corrupt records with a warning, and rebuilds the pending events in memory.
 * If the recovered events exceed opts->max_bytes, a drop round runs (overflow_cb may be called
 * before this returns).  dir and opts are borrowed; opts may be NULL for all defaults.  On
 * success *out is a new journal the caller releases with md_journal_close.  Returns 0, or a
 * negative errno (the directory or a file could not be created, read or written); *out is then
 * NULL.  Corrupt content is never an error. */
int md_journal_open(const char *dir, const struct md_journal_opts *opts,
                    struct md_journal **out) MD_MUSTCHECK;

/* Syncs (md_journal_sync: fdatasync if written, ack watermark if moved; errors are logged),
 * closes the files and frees j.  Blocks for the disk.  NULL is a no-op. */
void md_journal_close(struct md_journal *j);

/* Assigns the next id to the event and appends it to the current segment file (one write(2);
 * no fsync, see md_journal_sync), rotating the segment first if it is full.  json (borrowed,
 * copied) is len bytes of compact JSON text, 1..MD_JOURNAL_EVENT_MAX, without '\n'.  On success
 * stores the id in *id (if not NULL) and returns 0.  The append may start a drop round
 * (md_journal_opts.max_bytes), which may drop this very event if it is of low priority; a
 * low-priority event is also dropped on arrival, without being written, while run records alone
 * fill the bound.  A dropped event still has its id, so the caller may send it at once, but it is
 * not pending any more.  Returns MD_ETOOBIG if len is over the cap, -EINVAL for len 0 or a '\n'
 * in json (nothing is written and no id is used), or a negative errno if the write failed (the
 * file is cut back to its previous size; an id may have been used). */
int md_journal_append(struct md_journal *j, enum md_jprio prio, const char *json, size_t len,
                      uint64_t *id) MD_MUSTCHECK;

/* The database confirmed every event with an id <= id.  Acks arrive in order: an id at or below
 * the current watermark is a no-op.  Pending events up to id are released; segment files whose
 * events are all acked (or dropped) are deleted, after the watermark was persisted (state file
 * written to a temp file, fsynced and renamed).  Returns 0, -EINVAL if id is above
 * md_journal_last_id, or a negative errno if the state file could not be written (the events
 * are released from memory anyway and the segments kept; they would be replayed after a
 * restart, which is harmless). */
int md_journal_ack(struct md_journal *j, uint64_t id) MD_MUSTCHECK;

/* fdatasyncs the current segment if it was written since the last sync, and persists the ack
 * watermark if it moved.  Called by the owner from its periodic tick; blocks for the disk.
 * Returns 0 or a negative errno. */
int md_journal_sync(struct md_journal *j) MD_MUSTCHECK;

/* Whether md_journal_sync has anything to do: false with nothing pending and the watermark
 * close enough to the saved one, so an owner may cancel a sync it had scheduled. */
bool md_journal_sync_due(const struct md_journal *j);

/* Visits pending (appended, neither acked nor dropped) events with an id > after_id in id order,
 * at most max of them, stopping early if cb returns non-zero.  Resuming from the id the previous
 * visit ended at costs O(visited), not O(pending).  Returns the number of events visited (cb
 * calls made; at most INT_MAX). */
int md_journal_pending(struct md_journal *j, uint64_t after_id, md_journal_visit_cb *cb, void *ud,
                       size_t max);

/* Counters, all O(1).  count: pending events.  bytes: pending bytes (records as stored, the
 * quantity bounded by max_bytes).  last_id: every id assigned so far is <= it and the next append
 * gets a larger one (0 before any).  acked: the ack watermark.  dropped: events dropped under the
 * bound since md_journal_open. */
size_t md_journal_count(const struct md_journal *j);
uint64_t md_journal_bytes(const struct md_journal *j);
uint64_t md_journal_last_id(const struct md_journal *j);
uint64_t md_journal_acked(const struct md_journal *j);
uint64_t md_journal_dropped(const struct md_journal *j);

#endif
