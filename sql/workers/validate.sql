-- meshd-validate's own state, in the DATA database (not the registry).  Embedded in the binary
-- and applied by the worker at every start, under an advisory lock: every statement here must
-- be idempotent.  Statements end with ';' at the end of a line (the worker splits there).
-- docs/validate.md ("What it keeps") is the contract; meshd-remediate reads suites and failures.

CREATE SCHEMA IF NOT EXISTS meshd_validate;

-- Every check's value and outcome, per run and group: the history, and the baselines of
-- change checks ("row_count change vs the last run that did not fail").  One row per check
-- (and group) per run, written in one transaction at the end of the run.
CREATE TABLE IF NOT EXISTS meshd_validate.results (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id    text NOT NULL,
    suite     text NOT NULL,
    tbl       text NOT NULL,               -- the table as the config names it
    name      text NOT NULL,               -- the check's name
    type      text NOT NULL,
    grp       text NOT NULL DEFAULT '',    -- the group's label ('11'), '' without group_by
    scope     text NOT NULL DEFAULT '',    -- a scrape.changed partition ('11'), '' for all
    value     double precision,            -- bad rows, row count, % change, age (s), metric
    rows      bigint,                      -- rows the check looked at
    percent   double precision,            -- of rows, for checks that count bad rows
    outcome   text NOT NULL CHECK (outcome IN ('pass', 'warn', 'fail', 'refused', 'error')),
    message   text,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS results_check ON meshd_validate.results (suite, tbl, name, at DESC);
CREATE INDEX IF NOT EXISTS results_at ON meshd_validate.results (at);
CREATE INDEX IF NOT EXISTS results_run ON meshd_validate.results (run_id);

-- The last outcome of each check and group, and the baseline of change checks: what a run
-- compares with (a warn/fail that passes again is resolved; a group that is gone is resolved
-- too).  base_rows is the row count of the last run in which the check did not fail.
CREATE TABLE IF NOT EXISTS meshd_validate.state (
    suite     text NOT NULL,
    tbl       text NOT NULL,
    name      text NOT NULL,
    scope     text NOT NULL DEFAULT '',
    grp       text NOT NULL DEFAULT '',
    outcome   text NOT NULL,
    value     double precision,
    base_rows bigint,
    run_id    text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (suite, tbl, name, scope, grp)
);

-- Failed-row samples: at most `samples` rows per check and run, capped when written.
CREATE TABLE IF NOT EXISTS meshd_validate.failures (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id   text NOT NULL,
    suite    text NOT NULL,
    tbl      text NOT NULL,
    name     text NOT NULL,
    grp      text NOT NULL DEFAULT '',
    row_key  jsonb NOT NULL,                -- the key columns (or the duplicated key)
    row_data jsonb,                         -- the tested columns, or the whole row
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS failures_check ON meshd_validate.failures (suite, tbl, name, at DESC);
CREATE INDEX IF NOT EXISTS failures_at ON meshd_validate.failures (at);
CREATE INDEX IF NOT EXISTS failures_run ON meshd_validate.failures (run_id);

-- Each suite's checks as its last run had them (the `tables:` JSON): meshd-remediate re-runs
-- the checks a fix names from here, so the checks are written once, in the validate job.
CREATE TABLE IF NOT EXISTS meshd_validate.suites (
    suite      text PRIMARY KEY,
    tables     jsonb NOT NULL,
    run_id     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
