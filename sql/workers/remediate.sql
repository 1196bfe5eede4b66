-- meshd-remediate's own state, in the DATA database (not the registry).  Embedded in the binary
-- and applied by the worker at every start, under an advisory lock: every statement here must
-- be idempotent.  Statements end with ';' at the end of a line (the worker splits there).
-- docs/remediate.md ("What it keeps") is the contract.

CREATE SCHEMA IF NOT EXISTS meshd_remediate;

-- Every plan a run made: what a fix would change, identified by the hash of (the fix, the
-- check's SQL, the sorted keys of its target rows).  An approval names the plan; applying it
-- re-selects the targets and refuses when the hash moved (a stale plan).  fix_def is the fix
-- as planned: an approved plan is applied as it was approved, whatever the config says now.
CREATE TABLE IF NOT EXISTS meshd_remediate.plans (
    plan        text PRIMARY KEY,                 -- the first 16 hex digits of the hash
    hash        text NOT NULL,                    -- sha256, hex
    suite       text NOT NULL,
    fix         text NOT NULL,
    fix_def     jsonb NOT NULL,
    tbl         text NOT NULL,
    check_name  text NOT NULL,
    scope       text NOT NULL DEFAULT '',
    action      text NOT NULL,
    rows        bigint NOT NULL,
    table_rows  bigint,
    samples     jsonb NOT NULL DEFAULT '[]',
    status      text NOT NULL CHECK (status IN ('planned', 'applied', 'stale', 'refused',
                                                'failed', 'expired')),
    message     text,
    run_id      text NOT NULL,                    -- the run that planned it
    applied_run text,                             -- the run that applied (or refused) it
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz
);
CREATE INDEX IF NOT EXISTS plans_fix ON meshd_remediate.plans (suite, fix, created_at DESC);

-- Before-images of every row a fix changed, deleted or moved, for the audit and for undo.
-- after is the row as the fix left it (updates): undo restores a row only if it is still so.
CREATE TABLE IF NOT EXISTS meshd_remediate.audit (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id    text NOT NULL,
    plan      text NOT NULL,
    fix       text NOT NULL,
    tbl       text NOT NULL,                      -- regclass text
    action    text NOT NULL CHECK (action IN ('update', 'delete', 'quarantine')),
    row_key   jsonb NOT NULL,
    before    jsonb NOT NULL,
    after     jsonb,
    at        timestamptz NOT NULL DEFAULT now(),
    undone_by text                                -- the run that undid it
);
CREATE INDEX IF NOT EXISTS audit_run ON meshd_remediate.audit (run_id);

-- Rows a quarantine fix moved out of their table, with the reason.
CREATE TABLE IF NOT EXISTS meshd_remediate.quarantine (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      text NOT NULL,
    fix         text NOT NULL,
    tbl         text NOT NULL,
    reason      text NOT NULL,
    row_key     jsonb NOT NULL,
    row_data    jsonb NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    restored_by text
);
CREATE INDEX IF NOT EXISTS quarantine_run ON meshd_remediate.quarantine (run_id);
