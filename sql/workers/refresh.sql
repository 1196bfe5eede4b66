-- meshd-refresh's own state, in the DATA database (not the registry).  Embedded in the binary
-- and applied by the worker at every start, under an advisory lock: every statement here must
-- be idempotent.  Statements end with ';' at the end of a line (the worker splits there).

CREATE SCHEMA IF NOT EXISTS meshd_refresh;

-- One row per materialized view, written in the same transaction as its refresh, so a refresh
-- that rolls back leaves the previous row.  inputs holds the counters of every leaf table the
-- view reads (through plain views and upstream materialized views), read just before that
-- refresh: "oid/relfilenode/n_tup_ins/n_tup_upd/n_tup_del ..." sorted by oid, or "opaque".
CREATE TABLE IF NOT EXISTS meshd_refresh.view_state (
    view_name    text PRIMARY KEY,          -- format('%I.%I', schema, name)
    view_oid     oid NOT NULL,              -- a recreated view has another oid: refresh it
    stats_reset  text,                      -- pg_stat_database.stats_reset at the refresh
    inputs       text NOT NULL,
    mode         text NOT NULL,             -- concurrent | plain
    seconds      double precision NOT NULL,
    rows         bigint NOT NULL,
    run_id       text NOT NULL DEFAULT '',  -- MESHD_RUN_ID of the refreshing run
    refreshed_at timestamptz NOT NULL DEFAULT now()
);
