-- 0001_registry.sql - the registry: node and job rows, run history (the cluster claim), metrics,
-- alerts and the message bus, plus the retention helper.  docs/registry.md explains each table.
--
-- Applied by meshd at start and by `meshctl migrate`, inside the wrapper md_migration_script()
-- builds (advisory lock, one transaction, recorded in meshd_migrations).  Never edit a migration
-- once released: add the next numbered file.  Needs PostgreSQL 13 or newer.
--
-- Conventions: text + CHECK instead of enum types (adding a value is a one-line migration, not an
-- ALTER TYPE); timestamptz everywhere; every table has a bigint identity key; event_id columns
-- make a replayed journal event a no-op (UNIQUE, NULL when the write was not journalled).

-- updated_at maintenance, so no writer can forget it.
CREATE FUNCTION meshd_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION meshd_touch_updated_at() IS
    'BEFORE UPDATE trigger: sets updated_at to the transaction time.';

-- agent_registry ------------------------------------------------------------------------------
CREATE TABLE agent_registry (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('node', 'job')),
    node            text NOT NULL CHECK (node <> ''),
    job             text CHECK (job <> ''),
    environment     text,
    state           text NOT NULL CHECK (state ~ '^[a-z][a-z_]*$'),
    pid             integer CHECK (pid > 0),
    last_heartbeat  timestamptz,
    last_run_id     text,
    last_run_status text,
    last_run_at     timestamptz,
    next_run_at     timestamptz,
    restarts        integer NOT NULL DEFAULT 0 CHECK (restarts >= 0),
    progress        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_registry_kind_job CHECK ((kind = 'node') = (job IS NULL))
);
-- One row per node and per (node, job).  Upsert with
--   INSERT ... ON CONFLICT (node, (coalesce(job, ''))) DO UPDATE ...
-- (job = '' is forbidden above, so '' stands for "the node row" without ambiguity).
CREATE UNIQUE INDEX agent_registry_agent ON agent_registry (node, (coalesce(job, '')));
CREATE INDEX agent_registry_job ON agent_registry (job) WHERE job IS NOT NULL;
CREATE TRIGGER agent_registry_touch BEFORE UPDATE ON agent_registry
    FOR EACH ROW EXECUTE FUNCTION meshd_touch_updated_at();

COMMENT ON TABLE agent_registry IS
    'Live state: one row per meshd node (kind node, job NULL) and one per job on each node.';
COMMENT ON COLUMN agent_registry.kind IS 'node: the meshd process itself; job: one configured job on that node.';
COMMENT ON COLUMN agent_registry.node IS 'Node name (registry.node in the config, else the host name).';
COMMENT ON COLUMN agent_registry.job IS 'Job name from the config; NULL on the node row.';
COMMENT ON COLUMN agent_registry.environment IS 'Free-form deployment label (prod, staging, dev).';
COMMENT ON COLUMN agent_registry.state IS 'Lower-case state name: a job''s supervisor state (stopped, starting, running, backoff, stopping, exited, fatal) or the node''s (running, stopping).';
COMMENT ON COLUMN agent_registry.pid IS 'PID of the node''s meshd or of the job''s current process; NULL when none.';
COMMENT ON COLUMN agent_registry.last_heartbeat IS 'Last heartbeat: the node''s periodic beat, or the job worker''s last status line.';
COMMENT ON COLUMN agent_registry.last_run_id IS 'agent_runs.run_id of the latest run.';
COMMENT ON COLUMN agent_registry.last_run_status IS 'agent_runs.status of the latest run.';
COMMENT ON COLUMN agent_registry.last_run_at IS 'When the latest run started (or was recorded, for missed/skipped).';
COMMENT ON COLUMN agent_registry.next_run_at IS 'Next scheduled fire on this node; NULL for services and unscheduled jobs.';
COMMENT ON COLUMN agent_registry.restarts IS 'Restarts since meshd started (services and retried runs).';
COMMENT ON COLUMN agent_registry.progress IS 'Last progress event of the running worker (status protocol), as JSON.';
COMMENT ON COLUMN agent_registry.updated_at IS 'Last change to the row (maintained by a trigger).';

-- agent_runs ----------------------------------------------------------------------------------
CREATE TABLE agent_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        text NOT NULL CHECK (run_id <> ''),
    job           text NOT NULL CHECK (job <> ''),
    node          text NOT NULL CHECK (node <> ''),
    scheduled_for timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    duration_ms   bigint CHECK (duration_ms >= 0),
    exit_code     integer CHECK (exit_code BETWEEN 0 AND 255),
    signal        integer CHECK (signal BETWEEN 1 AND 127),
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out',
                                                  'missed', 'skipped', 'stopped')),
    reason        text,
    output_tail   text CHECK (octet_length(output_tail) <= 65536),
    summary       jsonb CHECK (jsonb_typeof(summary) = 'object'),
    event_id      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_runs_run_id UNIQUE (run_id),
    -- The cluster claim: at most one row per scheduled slot of a job, whatever its status.
    -- NULLs are distinct, so unscheduled runs (scheduled_for NULL) never conflict.  A plain
    -- constraint rather than a partial index so writers can say ON CONFLICT (job, scheduled_for).
    CONSTRAINT agent_runs_claim UNIQUE (job, scheduled_for),
    CONSTRAINT agent_runs_exit_or_signal CHECK (exit_code IS NULL OR signal IS NULL),
    CONSTRAINT agent_runs_not_run_reason CHECK (status NOT IN ('missed', 'skipped') OR reason IS NOT NULL),
    CONSTRAINT agent_runs_running_open CHECK (status <> 'running' OR finished_at IS NULL)
);
CREATE INDEX agent_runs_job_recent ON agent_runs (job, created_at DESC);
CREATE INDEX agent_runs_created ON agent_runs (created_at);
CREATE INDEX agent_runs_running ON agent_runs (node) WHERE status = 'running';
CREATE TRIGGER agent_runs_touch BEFORE UPDATE ON agent_runs
    FOR EACH ROW EXECUTE FUNCTION meshd_touch_updated_at();

COMMENT ON TABLE agent_runs IS
    'Run history: one row per run, and per missed or skipped run. UNIQUE (job, scheduled_for) is the exactly-once cluster claim.';
COMMENT ON COLUMN agent_runs.run_id IS 'meshd''s id for the run (MESHD_RUN_ID in the worker); writers upsert by it.';
COMMENT ON COLUMN agent_runs.scheduled_for IS 'The cron slot this run is for; NULL for unscheduled runs (manual, service restarts).';
COMMENT ON COLUMN agent_runs.started_at IS 'Wall-clock spawn time; NULL for missed and skipped runs.';
COMMENT ON COLUMN agent_runs.finished_at IS 'Wall-clock end; NULL while running.';
COMMENT ON COLUMN agent_runs.duration_ms IS 'Run time from the monotonic clock (not finished_at - started_at, which a clock step distorts).';
COMMENT ON COLUMN agent_runs.exit_code IS 'Exit status when the process exited; NULL when killed by a signal.';
COMMENT ON COLUMN agent_runs.signal IS 'Terminating signal number when killed; NULL when it exited.';
COMMENT ON COLUMN agent_runs.status IS 'running, succeeded, failed, timed_out, missed, skipped or stopped (ended because meshd stopped it).';
COMMENT ON COLUMN agent_runs.reason IS 'Why: required for missed and skipped; free text otherwise (spawn error, timeout).';
COMMENT ON COLUMN agent_runs.output_tail IS 'Last lines of stdout/stderr, at most 64 KiB.';
COMMENT ON COLUMN agent_runs.summary IS 'The worker''s result summary object (status protocol result event).';
COMMENT ON COLUMN agent_runs.event_id IS 'Journal id of the last event applied to this row (diagnostics; idempotency is the run_id upsert).';

-- agent_metrics -------------------------------------------------------------------------------
CREATE TABLE agent_metrics (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    node       text NOT NULL,
    job        text,
    run_id     text,
    name       text NOT NULL CHECK (name <> ''),
    value      double precision NOT NULL,
    event_id   text,
    CONSTRAINT agent_metrics_event_id UNIQUE (event_id)
);
CREATE INDEX agent_metrics_recent ON agent_metrics (created_at DESC, job);
CREATE INDEX agent_metrics_series ON agent_metrics (job, name, created_at DESC);

COMMENT ON TABLE agent_metrics IS 'Numeric samples reported by workers (status protocol metric events) and by meshd itself.';
COMMENT ON COLUMN agent_metrics.created_at IS 'When the sample was taken (the event time, not the insert time).';
COMMENT ON COLUMN agent_metrics.job IS 'Reporting job; NULL for node-level metrics.';
COMMENT ON COLUMN agent_metrics.run_id IS 'agent_runs.run_id of the run that reported it, if any (no foreign key: runs are pruned independently).';
COMMENT ON COLUMN agent_metrics.event_id IS 'Journal event id: INSERT ... ON CONFLICT (event_id) DO NOTHING makes replays harmless.';

-- agent_alerts --------------------------------------------------------------------------------
CREATE TABLE agent_alerts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node          text NOT NULL,
    job           text,
    key           text NOT NULL CHECK (key <> ''),
    severity      text NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    message       text NOT NULL,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    count         integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    opened_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    event_id      text,
    last_event_id text,
    CONSTRAINT agent_alerts_event_id UNIQUE (event_id),
    CONSTRAINT agent_alerts_resolved CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- Dedup: one open alert per key.  Raise with
--   INSERT ... ON CONFLICT (key) WHERE status = 'open' DO UPDATE SET count = agent_alerts.count + 1, ...
CREATE UNIQUE INDEX agent_alerts_open_key ON agent_alerts (key) WHERE status = 'open';
CREATE INDEX agent_alerts_triage ON agent_alerts (status, severity, opened_at DESC);
CREATE TRIGGER agent_alerts_touch BEFORE UPDATE ON agent_alerts
    FOR EACH ROW EXECUTE FUNCTION meshd_touch_updated_at();

COMMENT ON TABLE agent_alerts IS 'Alerts: open -> resolved, deduplicated by key (at most one open alert per key).';
COMMENT ON COLUMN agent_alerts.key IS 'Dedup key chosen by the reporter (e.g. disk-full:/var); a new open alert with an open key bumps count instead.';
COMMENT ON COLUMN agent_alerts.severity IS 'critical (meshctl health fails), warning or info.';
COMMENT ON COLUMN agent_alerts.count IS 'How many times the alert was raised while open.';
COMMENT ON COLUMN agent_alerts.opened_at IS 'First raise.';
COMMENT ON COLUMN agent_alerts.updated_at IS 'Last raise or change (maintained by a trigger).';
COMMENT ON COLUMN agent_alerts.resolved_at IS 'Set exactly when status is resolved.';
COMMENT ON COLUMN agent_alerts.event_id IS 'Journal id of the event that opened the alert (a replay conflicts: treat 23505 on agent_alerts_event_id as done).';
COMMENT ON COLUMN agent_alerts.last_event_id IS 'Journal id of the last event applied (bump or resolve); an update whose event id equals it is a replay and is skipped.';

-- agent_messages ------------------------------------------------------------------------------
CREATE TABLE agent_messages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type         text NOT NULL CHECK (type <> '' AND octet_length(type) <= 200),
    payload      jsonb NOT NULL DEFAULT '{}',
    source       text,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    claimed_by   text,
    claimed_at   timestamptz,
    processed_at timestamptz,
    event_id     text,
    CONSTRAINT agent_messages_event_id UNIQUE (event_id)
);
-- Consumers: SELECT ... WHERE status = 'pending' AND type = $1 ORDER BY created_at
--            LIMIT n FOR UPDATE SKIP LOCKED.
CREATE INDEX agent_messages_pending ON agent_messages (type, created_at) WHERE status = 'pending';
-- Reclaiming work from a consumer that died mid-message.
CREATE INDEX agent_messages_processing ON agent_messages (claimed_at) WHERE status = 'processing';
CREATE INDEX agent_messages_processed ON agent_messages (processed_at) WHERE status IN ('done', 'failed');

COMMENT ON TABLE agent_messages IS 'The message bus: producers insert pending rows; consumers claim them with FOR UPDATE SKIP LOCKED and are woken by NOTIFY agent_messages.';
COMMENT ON COLUMN agent_messages.type IS 'Routing key; consumers subscribe by type. Also the NOTIFY payload.';
COMMENT ON COLUMN agent_messages.source IS 'Producer: node/job, or any external name.';
COMMENT ON COLUMN agent_messages.status IS 'pending -> processing (claimed) -> done or failed; a failed or abandoned message may be set back to pending.';
COMMENT ON COLUMN agent_messages.attempts IS 'How many times it was claimed.';
COMMENT ON COLUMN agent_messages.claimed_by IS 'Consumer that holds it (node/job).';
COMMENT ON COLUMN agent_messages.processed_at IS 'When it reached done or failed; retention counts from here.';

-- NOTIFY from a trigger, not from the writers: every producer (meshd, a worker, psql, another
-- application) wakes the consumers without knowing about them, and the notification is sent at
-- commit, so a consumer never wakes before the row is visible.  PostgreSQL folds identical
-- notifications within a transaction, so a batch insert costs one NOTIFY per type.
CREATE FUNCTION meshd_messages_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('agent_messages', NEW.type);
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION meshd_messages_notify() IS
    'AFTER trigger: NOTIFY agent_messages, payload = message type, when a row becomes pending.';
CREATE TRIGGER agent_messages_notify_insert AFTER INSERT ON agent_messages
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION meshd_messages_notify();
CREATE TRIGGER agent_messages_notify_requeue AFTER UPDATE OF status ON agent_messages
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
    EXECUTE FUNCTION meshd_messages_notify();

-- Retention -----------------------------------------------------------------------------------
-- One call deletes at most `batch` rows from each table and returns how many it deleted in all.
-- The caller (meshd's housekeeping tick) repeats it, one short transaction per call, until it
-- returns 0: no long lock, no huge transaction, no bloat burst.  SKIP LOCKED keeps two nodes
-- pruning at once from waiting on each other.  Rows still in use are kept whatever their age:
-- running runs, open alerts, pending and processing messages.
CREATE FUNCTION meshd_prune(older_than interval, batch integer DEFAULT 1000) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    cutoff timestamptz := now() - older_than;
    n bigint;
    total bigint := 0;
BEGIN
    IF older_than <= interval '0' OR batch < 1 THEN
        RAISE EXCEPTION 'meshd_prune: older_than must be positive and batch at least 1';
    END IF;

    DELETE FROM agent_runs WHERE id IN (
        SELECT id FROM agent_runs
        WHERE created_at < cutoff AND status <> 'running'
        ORDER BY created_at LIMIT batch FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    DELETE FROM agent_metrics WHERE id IN (
        SELECT id FROM agent_metrics
        WHERE created_at < cutoff
        ORDER BY created_at LIMIT batch FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    DELETE FROM agent_messages WHERE id IN (
        SELECT id FROM agent_messages
        WHERE status IN ('done', 'failed') AND processed_at < cutoff
        ORDER BY processed_at LIMIT batch FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    DELETE FROM agent_alerts WHERE id IN (
        SELECT id FROM agent_alerts
        WHERE status = 'resolved' AND resolved_at < cutoff
        LIMIT batch FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    RETURN total;
END
$fn$;
COMMENT ON FUNCTION meshd_prune(interval, integer) IS
    'Retention: deletes up to batch rows per table older than older_than (finished runs, metrics, done/failed messages, resolved alerts); returns the count. Call until it returns 0.';
