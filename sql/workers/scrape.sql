-- meshd-scrape's own state, in the DATA database (not the registry).  Embedded in the binary
-- and applied by the worker at every start, under an advisory lock: every statement here must
-- be idempotent.  Statements end with ';' at the end of a line (the worker splits there).

CREATE SCHEMA IF NOT EXISTS meshd_scrape;

-- One row per URL and target table (two jobs may load one file into two tables), written in
-- the same transaction as the file's load: a re-run after a crash
-- finds the validators of what was committed, so nothing is loaded twice.  etag, last_modified
-- and sha256 decide whether the next run downloads and loads it again.  announced is false
-- between the commit of a load that changed rows and the scrape.changed message about it; a
-- run that finds it false sends the message again.
CREATE TABLE IF NOT EXISTS meshd_scrape.files (
    url           text NOT NULL,            -- without user:password@
    source        text NOT NULL,
    target        text NOT NULL,            -- the table, as the config names it
    part          text NOT NULL DEFAULT '', -- the partition's values ("11"), '' for none
    etag          text,
    last_modified timestamptz,
    bytes         bigint,
    sha256        text,
    rows          bigint NOT NULL DEFAULT 0,
    inserted      bigint NOT NULL DEFAULT 0,
    updated       bigint NOT NULL DEFAULT 0,
    deleted       bigint NOT NULL DEFAULT 0,  -- or marked (deletes.mode: mark)
    unchanged     bigint NOT NULL DEFAULT 0,
    rejected      bigint NOT NULL DEFAULT 0,
    run_id        text NOT NULL DEFAULT '',
    announced     boolean NOT NULL DEFAULT true,
    loaded_at     timestamptz NOT NULL DEFAULT now(),
    checked_at    timestamptz,                -- the last run that found it unchanged
    PRIMARY KEY (url, target)
);

-- Rows a load set aside (max_bad_rows > 0), with the file line and the reason.
CREATE TABLE IF NOT EXISTS meshd_scrape.rejects (
    id       bigserial PRIMARY KEY,
    run_id   text NOT NULL DEFAULT '',
    source   text NOT NULL,
    url      text NOT NULL,                   -- without user:password@
    line     bigint NOT NULL,
    reason   text NOT NULL,
    raw      text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS rejects_source_at ON meshd_scrape.rejects (source, at);
