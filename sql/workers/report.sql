-- meshd-report's own state, in the REGISTRY database (it reads agent_alerts and agent_runs).
-- Embedded in the binary and applied by the worker at every start, under an advisory lock:
-- every statement here must be idempotent.  Statements end with ';' at the end of a line (the
-- worker splits there).  docs/report.md explains the tables.

CREATE SCHEMA IF NOT EXISTS meshd_report;

-- One row per (receiver, group): what that receiver was last told about the group.  Written
-- by the planner (under pg_advisory_xact_lock, so one node plans at a time) in the same
-- transaction as the outbox rows it adds, so a notification is planned exactly once.
CREATE TABLE IF NOT EXISTS meshd_report.groups (
    receiver     text NOT NULL,
    group_key    text NOT NULL,             -- "<route>[/esc<level>]/{label=value,...}"
    route        text NOT NULL,
    first_seen   timestamptz,               -- the group's first firing alert since it was empty
    last_sent_at timestamptz,               -- last notification planned (NULL: none yet)
    sent         jsonb NOT NULL DEFAULT '[]', -- ids of the firing alerts in that notification
    seq          integer NOT NULL DEFAULT 0,  -- notifications planned for the group
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (receiver, group_key)
);

-- Every notification: planned once (idem_key is unique), sent by exactly one node (claimed with
-- FOR UPDATE SKIP LOCKED, the row lock held across the send), retried with backoff while its
-- receiver is down, and kept with the receiver's answer.
CREATE TABLE IF NOT EXISTS meshd_report.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idem_key        text NOT NULL UNIQUE,
    receiver        text NOT NULL,
    group_key       text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('firing', 'repeat', 'resolved', 'escalation', 'digest')),
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    raised_at       timestamptz,             -- the newest alert change it reports (latency)
    sent_at         timestamptz,
    sent_by         text,                    -- node/job that sent it
    code            integer,                 -- the receiver's last HTTP status / SMTP code
    answer          text,                    -- the receiver's last words, or the error
    ref             text                     -- what it made: issue URL, Message-ID
);
-- The claim walks the pending rows in id order and stops at the first it may take: one index
-- step when the oldest is due, however long the history of sent rows behind it.
CREATE INDEX IF NOT EXISTS outbox_pending ON meshd_report.outbox (id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_group ON meshd_report.outbox (receiver, group_key, id)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_created ON meshd_report.outbox (created_at);

-- Per receiver: held back until paused_until after a failure (or a 429's Retry-After), so a
-- receiver that is down costs one attempt per backoff step, not one per notification.
CREATE TABLE IF NOT EXISTS meshd_report.receivers (
    name         text PRIMARY KEY,
    paused_until timestamptz,
    failures     integer NOT NULL DEFAULT 0,  -- in a row
    last_ok_at   timestamptz,
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- GitHub: alert fingerprint -> issue, per receiver (so no search API is ever needed; the
-- mapping is rebuilt from the fingerprint label when this row is missing).
CREATE TABLE IF NOT EXISTS meshd_report.github_issues (
    receiver     text NOT NULL,
    fingerprint  text NOT NULL,
    repo         text NOT NULL,
    number       integer NOT NULL,
    url          text NOT NULL,
    state        text NOT NULL CHECK (state IN ('open', 'closed')),
    occurrences  integer NOT NULL DEFAULT 1,
    opened_at    timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (receiver, fingerprint)
);
