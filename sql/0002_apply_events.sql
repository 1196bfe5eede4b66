-- 0002_apply_events.sql - meshd_apply_events(jsonb): apply a batch of journalled registry events
-- in one round trip, idempotently.  docs/registry.md ("Applying journal events") is the contract:
-- the event format, what each type does, replay and ordering rules, malformed events.
--
-- The daemon sends `SELECT meshd_apply_events($1::jsonb)` with a JSON array of events in journal
-- order and acks the batch in its journal when the call succeeds.  After a crash it replays
-- events that may already be applied: applying an event again changes nothing.

-- Columns the event writer needs -------------------------------------------------------------
-- agent_registry: the last applied node/job STATE event (node and job events), so that an older
-- event delivered late never overwrites a newer state.  Order is (event_at, event_seq): the
-- event's time on the node, then its journal id (the tie-break within one timestamp).
ALTER TABLE agent_registry ADD COLUMN IF NOT EXISTS event_id  text;
ALTER TABLE agent_registry ADD COLUMN IF NOT EXISTS event_at  timestamptz;
ALTER TABLE agent_registry ADD COLUMN IF NOT EXISTS event_seq bigint;
COMMENT ON COLUMN agent_registry.event_id IS 'Journal id of the last node/job state event applied to this row.';
COMMENT ON COLUMN agent_registry.event_at IS 'Event time of the last applied state event: (event_at, event_seq) orders them; an older event is ignored.';
COMMENT ON COLUMN agent_registry.event_seq IS 'Journal id number (after the last /) of the last applied state event: the tie-break for equal event_at.';
COMMENT ON COLUMN agent_registry.state IS 'Lower-case state name: a job''s supervisor state (stopped, starting, running, backoff, stopping, exited, fatal) or the node''s (up, down).';

-- agent_runs: the process and the attempt (a retried slot keeps its run_id), and the order of the
-- last applied run event, so that a replayed run_start never reopens a finished run.
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS pid       integer CHECK (pid > 0);
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS attempt   integer CHECK (attempt >= 1);
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS event_at  timestamptz;
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS event_seq bigint;
COMMENT ON COLUMN agent_runs.pid IS 'PID of the (latest attempt''s) process; NULL when unknown.';
COMMENT ON COLUMN agent_runs.attempt IS 'Attempt number, 1 for the first try; a retry of the same slot keeps the run_id.';
COMMENT ON COLUMN agent_runs.event_at IS 'Event time of the last applied run event: (event_at, event_seq) orders them; an older event is ignored.';
COMMENT ON COLUMN agent_runs.event_seq IS 'Journal id number of the last applied run event (tie-break for equal event_at).';

ALTER TABLE agent_messages ADD COLUMN IF NOT EXISTS run_id text;
COMMENT ON COLUMN agent_messages.run_id IS 'agent_runs.run_id of the run that produced the message, if any.';

-- Alerts are not naturally idempotent (a raise bumps a counter; a resolve closes whatever alert is
-- open under the key, possibly one opened after the resolve was first applied), so alert and
-- resolve events are recorded here and a replayed id is a no-op.  Only those two (rare) types:
-- every other type is idempotent through its own table's keys.  Pruned by meshd_prune.
CREATE TABLE IF NOT EXISTS meshd_applied_events (
    event_id   text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS meshd_applied_events_applied ON meshd_applied_events (applied_at);
COMMENT ON TABLE meshd_applied_events IS
    'Journal ids of applied alert and resolve events: a replay of one is a no-op. Pruned by meshd_prune.';

-- Helpers ------------------------------------------------------------------------------------
-- Raises 22023 (invalid_parameter_value) unless every key is present, not null and not "".
CREATE FUNCTION meshd_event_need(e jsonb, VARIADIC keys text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    k text;
BEGIN
    FOREACH k IN ARRAY keys LOOP
        IF coalesce(jsonb_typeof(e -> k), 'null') = 'null' OR e ->> k = '' THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('required field "%s" is missing, null or empty', k);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION meshd_event_need(jsonb, text[]) IS
    'meshd_apply_events helper: raises 22023 unless each named field is present, non-null, non-empty.';

-- ISO-8601 timestamp WITH an offset (Z or +hh[:mm]) -> timestamptz; NULL stays NULL.  Without the
-- offset the cast would silently use the session time zone, so that is rejected (22007).
CREATE FUNCTION meshd_event_ts(t text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    IF t IS NULL THEN
        RETURN NULL;
    END IF;
    IF t !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN
        RAISE EXCEPTION USING ERRCODE = '22007',
            MESSAGE = format('not an ISO-8601 timestamp with offset: "%s"', t);
    END IF;
    RETURN t::timestamptz;
END
$fn$;
COMMENT ON FUNCTION meshd_event_ts(text) IS
    'meshd_apply_events helper: ISO-8601 text with offset -> timestamptz (22007 otherwise); NULL -> NULL.';

-- One event --------------------------------------------------------------------------------
-- Returns true when the event changed something, false when it was a no-op (replay, older than
-- the stored state, unknown type).  Raises a class 22 error for a malformed event; a class 23
-- error (a CHECK the values break) means the same.  meshd_apply_events turns both into a warning.
CREATE FUNCTION meshd_apply_event(e jsonb) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_id      text;
    v_seq     bigint;
    v_type    text;
    v_at      timestamptz;
    v_node    text;
    v_env     text;
    v_job     text;
    v_run     text;
    v_state   text;
    v_status  text;
    v_sched   timestamptz;
    v_started timestamptz;
    v_fin     timestamptz;
    v_last    timestamptz;
    v_dur     bigint;
    v_json    jsonb;
BEGIN
    IF jsonb_typeof(e) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'an event is a JSON object';
    END IF;
    PERFORM meshd_event_need(e, 'id', 'type', 'at', 'node');
    v_id := e ->> 'id';
    v_seq := substring(v_id FROM '/([0-9]{1,18})$')::bigint;
    IF v_seq IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('id "%s" is not <node>/<journal id>', v_id);
    END IF;
    v_type := e ->> 'type';
    v_at := meshd_event_ts(e ->> 'at');
    v_node := e ->> 'node';
    v_env := nullif(e ->> 'env', '');
    v_job := nullif(e ->> 'job', '');

    CASE v_type
    WHEN 'heartbeat' THEN
        IF v_job IS NULL THEN
            INSERT INTO agent_registry AS g (kind, node, environment, state, last_heartbeat)
            VALUES ('node', v_node, v_env, 'up', v_at)
            ON CONFLICT (node, (coalesce(job, ''))) DO UPDATE
                SET last_heartbeat = EXCLUDED.last_heartbeat,
                    environment = coalesce(EXCLUDED.environment, g.environment)
                WHERE g.last_heartbeat IS NULL OR g.last_heartbeat < EXCLUDED.last_heartbeat;
        ELSE
            UPDATE agent_registry g SET last_heartbeat = v_at
            WHERE g.node = v_node AND coalesce(g.job, '') = v_job
              AND (g.last_heartbeat IS NULL OR g.last_heartbeat < v_at);
        END IF;
        RETURN FOUND;

    WHEN 'node' THEN
        PERFORM meshd_event_need(e, 'state');
        v_state := e ->> 'state';
        IF v_state NOT IN ('up', 'down') THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('node state "%s" is not up or down', v_state);
        END IF;
        INSERT INTO agent_registry AS g (kind, node, environment, state, pid, last_heartbeat,
                                         event_id, event_at, event_seq)
        VALUES ('node', v_node, v_env, v_state, (e ->> 'pid')::integer, v_at, v_id, v_at, v_seq)
        ON CONFLICT (node, (coalesce(job, ''))) DO UPDATE
            SET state = EXCLUDED.state, pid = EXCLUDED.pid,
                environment = coalesce(EXCLUDED.environment, g.environment),
                last_heartbeat = greatest(g.last_heartbeat, EXCLUDED.last_heartbeat),
                event_id = EXCLUDED.event_id, event_at = EXCLUDED.event_at,
                event_seq = EXCLUDED.event_seq
            WHERE g.event_at IS NULL
               OR (g.event_at, g.event_seq) < (EXCLUDED.event_at, EXCLUDED.event_seq);
        RETURN FOUND;

    WHEN 'job' THEN
        PERFORM meshd_event_need(e, 'job', 'state');
        v_state := lower(e ->> 'state');
        IF v_state NOT IN ('stopped', 'starting', 'running', 'backoff', 'stopping', 'exited',
                           'fatal') THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('job state "%s" is not a supervisor state', e ->> 'state');
        END IF;
        INSERT INTO agent_registry AS g (kind, node, job, environment, state, pid, next_run_at,
                                         restarts, event_id, event_at, event_seq)
        VALUES ('job', v_node, v_job, v_env, v_state, (e ->> 'pid')::integer,
                meshd_event_ts(e ->> 'next_run_at'), coalesce((e ->> 'restarts')::integer, 0),
                v_id, v_at, v_seq)
        ON CONFLICT (node, (coalesce(job, ''))) DO UPDATE
            SET state = EXCLUDED.state, pid = EXCLUDED.pid, next_run_at = EXCLUDED.next_run_at,
                restarts = coalesce((e ->> 'restarts')::integer, g.restarts),
                environment = coalesce(EXCLUDED.environment, g.environment),
                event_id = EXCLUDED.event_id, event_at = EXCLUDED.event_at,
                event_seq = EXCLUDED.event_seq
            WHERE g.event_at IS NULL
               OR (g.event_at, g.event_seq) < (EXCLUDED.event_at, EXCLUDED.event_seq);
        RETURN FOUND;

    WHEN 'progress' THEN
        PERFORM meshd_event_need(e, 'job', 'run_id', 'done');
        IF jsonb_typeof(e -> 'done') <> 'number'
           OR coalesce(jsonb_typeof(e -> 'total'), 'null') NOT IN ('number', 'null')
           OR coalesce(jsonb_typeof(e -> 'unit'), 'null') NOT IN ('string', 'null') THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = 'progress: done must be a number, total a number or null, unit a string or null';
        END IF;
        -- 'at' in a fixed UTC format, so a replay builds the identical object whatever the
        -- session's TimeZone, and the IS DISTINCT FROM below sees no change.
        v_json := jsonb_build_object('run_id', e ->> 'run_id', 'done', e -> 'done',
                                     'total', e -> 'total', 'unit', e -> 'unit',
                                     'at', to_char(v_at AT TIME ZONE 'UTC',
                                                   'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
        INSERT INTO agent_registry AS g (kind, node, job, environment, state, last_heartbeat,
                                         progress)
        VALUES ('job', v_node, v_job, v_env, 'running', v_at, v_json)
        ON CONFLICT (node, (coalesce(job, ''))) DO UPDATE
            SET progress = EXCLUDED.progress,
                last_heartbeat = greatest(g.last_heartbeat, EXCLUDED.last_heartbeat)
            WHERE g.progress IS DISTINCT FROM EXCLUDED.progress
              AND coalesce((g.progress ->> 'at')::timestamptz, '-infinity') <= EXCLUDED.last_heartbeat;
        RETURN FOUND;

    WHEN 'run_start' THEN
        PERFORM meshd_event_need(e, 'job', 'run_id', 'started_at');
        v_run := e ->> 'run_id';
        v_sched := meshd_event_ts(e ->> 'scheduled_for');
        v_started := meshd_event_ts(e ->> 'started_at');
        -- No conflict target: a clash on run_id (the row exists) or on (job, scheduled_for) (the
        -- slot is recorded under another run id) is not an error here.
        INSERT INTO agent_runs (run_id, job, node, scheduled_for, started_at, pid, attempt, status,
                                event_id, event_at, event_seq)
        VALUES (v_run, v_job, v_node, v_sched, v_started, (e ->> 'pid')::integer,
                coalesce((e ->> 'attempt')::integer, 1), 'running', v_id, v_at, v_seq)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            -- The run exists (a claim row, an earlier attempt, or this very event replayed): a
            -- later event makes it running again, with the previous attempt's result cleared.
            UPDATE agent_runs r
               SET started_at = v_started, pid = (e ->> 'pid')::integer,
                   attempt = coalesce((e ->> 'attempt')::integer, r.attempt, 1),
                   status = 'running', finished_at = NULL, duration_ms = NULL, exit_code = NULL,
                   signal = NULL, reason = NULL, output_tail = NULL, summary = NULL,
                   event_id = v_id, event_at = v_at, event_seq = v_seq
             WHERE r.run_id = v_run AND r.status NOT IN ('missed', 'skipped')
               AND (r.event_at IS NULL OR (r.event_at, r.event_seq) < (v_at, v_seq));
            IF NOT FOUND THEN
                SELECT r.status INTO v_status FROM agent_runs r WHERE r.run_id = v_run;
                IF NOT FOUND THEN
                    RAISE WARNING 'meshd_apply_events: run_start % (run %): slot of job % at % is already recorded under another run id; skipped',
                        v_id, v_run, v_job, v_sched;
                ELSIF v_status IN ('missed', 'skipped') THEN
                    RAISE WARNING 'meshd_apply_events: run_start % (run %): the slot is already recorded as %; skipped',
                        v_id, v_run, v_status;
                END IF;
                RETURN false; -- else: a replay or an older event
            END IF;
        END IF;
        UPDATE agent_registry g
           SET last_run_id = v_run, last_run_status = 'running', last_run_at = v_started
         WHERE g.node = v_node AND coalesce(g.job, '') = v_job
           AND (g.last_run_at IS NULL OR g.last_run_at <= v_started);
        RETURN true;

    WHEN 'run_end' THEN
        PERFORM meshd_event_need(e, 'job', 'run_id', 'finished_at', 'status');
        v_run := e ->> 'run_id';
        v_status := e ->> 'status';
        IF v_status NOT IN ('succeeded', 'failed', 'timed_out', 'stopped') THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('run_end status "%s" is not succeeded, failed, timed_out or stopped', v_status);
        END IF;
        v_fin := meshd_event_ts(e ->> 'finished_at');
        v_sched := meshd_event_ts(e ->> 'scheduled_for');   -- optional: for a lost run_start
        v_started := meshd_event_ts(e ->> 'started_at');     -- optional: likewise
        v_dur := (e ->> 'duration_ms')::bigint;              -- optional: monotonic run time
        v_json := CASE WHEN jsonb_typeof(e -> 'summary') = 'object' THEN e -> 'summary' END;
        UPDATE agent_runs r
           SET finished_at = v_fin, status = v_status,
               started_at = coalesce(r.started_at, v_started),
               duration_ms = coalesce(v_dur, CASE WHEN coalesce(r.started_at, v_started) IS NOT NULL
                   THEN greatest(0, round(extract(epoch FROM v_fin - coalesce(r.started_at, v_started)) * 1000))::bigint END),
               exit_code = (e ->> 'exit_code')::integer, signal = (e ->> 'signal')::integer,
               reason = e ->> 'reason', output_tail = e ->> 'output_tail', summary = v_json,
               pid = coalesce((e ->> 'pid')::integer, r.pid),
               event_id = v_id, event_at = v_at, event_seq = v_seq
         WHERE r.run_id = v_run AND r.status NOT IN ('missed', 'skipped')
           AND (r.event_at IS NULL OR (r.event_at, r.event_seq) < (v_at, v_seq))
        RETURNING r.started_at INTO v_last;
        IF NOT FOUND THEN
            -- run_start was lost (dropped, or never sent): record the run from its end.
            INSERT INTO agent_runs (run_id, job, node, scheduled_for, started_at, finished_at,
                                    duration_ms, exit_code, signal, status, reason, output_tail,
                                    summary, pid, attempt, event_id, event_at, event_seq)
            VALUES (v_run, v_job, v_node, v_sched, v_started, v_fin,
                    coalesce(v_dur, CASE WHEN v_started IS NOT NULL THEN
                        greatest(0, round(extract(epoch FROM v_fin - v_started) * 1000))::bigint END),
                    (e ->> 'exit_code')::integer, (e ->> 'signal')::integer, v_status,
                    e ->> 'reason', e ->> 'output_tail', v_json, (e ->> 'pid')::integer,
                    (e ->> 'attempt')::integer, v_id, v_at, v_seq)
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                SELECT r.status INTO v_status FROM agent_runs r WHERE r.run_id = v_run;
                IF NOT FOUND THEN
                    RAISE WARNING 'meshd_apply_events: run_end % (run %): slot of job % at % is already recorded under another run id; skipped',
                        v_id, v_run, v_job, v_sched;
                ELSIF v_status IN ('missed', 'skipped') THEN
                    RAISE WARNING 'meshd_apply_events: run_end % (run %): the slot is already recorded as %; skipped',
                        v_id, v_run, v_status;
                END IF;
                RETURN false;
            END IF;
            v_last := v_started;
        END IF;
        v_last := coalesce(v_last, v_fin);
        UPDATE agent_registry g
           SET last_run_id = v_run, last_run_status = v_status, last_run_at = v_last
         WHERE g.node = v_node AND coalesce(g.job, '') = v_job
           AND (g.last_run_at IS NULL OR g.last_run_at <= v_last);
        RETURN true;

    WHEN 'run_missed', 'run_skipped' THEN
        PERFORM meshd_event_need(e, 'job', 'scheduled_for', 'reason');
        v_sched := meshd_event_ts(e ->> 'scheduled_for');
        -- The daemon's run id for a slot (sup_run_id): <job>@<YYYYMMDDTHHMMSSZ>, UTC, seconds.
        v_run := v_job || '@' || to_char(v_sched AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"');
        v_status := CASE v_type WHEN 'run_missed' THEN 'missed' ELSE 'skipped' END;
        INSERT INTO agent_runs (run_id, job, node, scheduled_for, status, reason, event_id,
                                event_at, event_seq)
        VALUES (v_run, v_job, v_node, v_sched, v_status, e ->> 'reason', v_id, v_at, v_seq)
        ON CONFLICT DO NOTHING;  -- the slot is recorded once, whatever happened to it first
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        UPDATE agent_registry g
           SET last_run_id = v_run, last_run_status = v_status, last_run_at = v_at
         WHERE g.node = v_node AND coalesce(g.job, '') = v_job
           AND (g.last_run_at IS NULL OR g.last_run_at <= v_at);
        RETURN true;

    WHEN 'metric' THEN
        PERFORM meshd_event_need(e, 'name', 'value');
        INSERT INTO agent_metrics (created_at, node, job, run_id, name, value, event_id)
        VALUES (v_at, v_node, v_job, nullif(e ->> 'run_id', ''), e ->> 'name',
                (e ->> 'value')::double precision, v_id)
        ON CONFLICT (event_id) DO NOTHING;
        RETURN FOUND;

    WHEN 'alert' THEN
        PERFORM meshd_event_need(e, 'key', 'severity', 'message');
        INSERT INTO meshd_applied_events (event_id) VALUES (v_id) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN false; -- replay
        END IF;
        INSERT INTO agent_alerts AS a (node, job, key, severity, message, opened_at, event_id,
                                       last_event_id)
        VALUES (v_node, v_job, e ->> 'key', e ->> 'severity', e ->> 'message', v_at, v_id, v_id)
        ON CONFLICT (key) WHERE status = 'open' DO UPDATE
            SET count = a.count + 1, severity = EXCLUDED.severity, message = EXCLUDED.message,
                last_event_id = EXCLUDED.last_event_id;
        RETURN true;

    WHEN 'resolve' THEN
        PERFORM meshd_event_need(e, 'key');
        -- Recorded even when nothing is open: replayed after the key was raised again, it must
        -- not close the new alert.
        INSERT INTO meshd_applied_events (event_id) VALUES (v_id) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        UPDATE agent_alerts a
           SET status = 'resolved', resolved_at = v_at, last_event_id = v_id
         WHERE a.key = e ->> 'key' AND a.status = 'open';
        RETURN FOUND;

    WHEN 'message' THEN
        PERFORM meshd_event_need(e, 'msg_type');
        INSERT INTO agent_messages (type, payload, source, run_id, created_at, event_id)
        VALUES (e ->> 'msg_type', coalesce(e -> 'payload', '{}'),
                v_node || coalesce('/' || v_job, ''), nullif(e ->> 'run_id', ''), v_at, v_id)
        ON CONFLICT (event_id) DO NOTHING;
        RETURN FOUND;

    ELSE
        -- A newer daemon talking to an older schema: skip, never wedge its journal.
        RAISE WARNING 'meshd_apply_events: event % has unknown type "%"; skipped', v_id, v_type;
        RETURN false;
    END CASE;
END
$fn$;
COMMENT ON FUNCTION meshd_apply_event(jsonb) IS
    'Applies one journal event (see meshd_apply_events); true if it changed something. Raises class 22/23 errors for a malformed event.';

-- The batch --------------------------------------------------------------------------------
-- Fast path: every event in order, no per-event subtransaction.  If an event raises a data
-- (class 22) or constraint (class 23) error, the whole pass is rolled back (one subtransaction)
-- and the batch is applied again with one subtransaction per event, skipping the bad ones with a
-- WARNING.  Any other error (serialization failure, deadlock, out of disk, a schema bug) fails
-- the call: the daemon keeps the batch and retries it.
CREATE FUNCTION meshd_apply_events(events jsonb) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    e jsonb;
    n integer := 0;
    len integer;
BEGIN
    IF events IS NULL THEN
        RETURN 0;
    END IF;
    IF jsonb_typeof(events) <> 'array' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'meshd_apply_events: expected a JSON array of events';
    END IF;
    len := jsonb_array_length(events);
    BEGIN
        FOR i IN 0 .. len - 1 LOOP
            IF meshd_apply_event(events -> i) THEN
                n := n + 1;
            END IF;
        END LOOP;
        RETURN n;
    EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
        NULL; -- a malformed event: redo the batch carefully, below
    END;

    n := 0;
    FOR i IN 0 .. len - 1 LOOP
        e := events -> i;
        BEGIN
            IF meshd_apply_event(e) THEN
                n := n + 1;
            END IF;
        EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
            RAISE WARNING 'meshd_apply_events: event % skipped: % (SQLSTATE %)',
                coalesce(e ->> 'id', format('#%s of the batch', i)), SQLERRM, SQLSTATE;
        END;
    END LOOP;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION meshd_apply_events(jsonb) IS
    'Applies a JSON array of journal events in order, atomically and idempotently (by event id); returns how many changed something. Malformed events and unknown types are skipped with a WARNING. docs/registry.md.';

-- Retention: meshd_prune also forgets old applied alert/resolve ids -----------------------
CREATE OR REPLACE FUNCTION meshd_prune(older_than interval, batch integer DEFAULT 1000) RETURNS bigint
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

    DELETE FROM meshd_applied_events WHERE event_id IN (
        SELECT event_id FROM meshd_applied_events
        WHERE applied_at < cutoff
        ORDER BY applied_at LIMIT batch FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    RETURN total;
END
$fn$;
COMMENT ON FUNCTION meshd_prune(interval, integer) IS
    'Retention: deletes up to batch rows per table older than older_than (finished runs, metrics, done/failed messages, resolved alerts, applied alert/resolve ids); returns the count. Call until it returns 0.';
