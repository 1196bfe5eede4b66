-- 0004_executions.sql - every execution kept, ownership of a run by the life that claimed or
-- started it, the statuses abandoned and unknown, gaps of missed slots, start-up reconciliation,
-- the cluster claim as a function, and a lock order that makes the registry deadlock-free.
-- docs/registry.md ("Schema added by 0004") is the contract.
--
-- Vocabulary (docs/registry.md): a *life* is one meshd process (12 hex digits drawn at start);
-- an *execution* is one spawn, its exec id "<life>-<n>" names the life that spawned it.  A run
-- (one slot of a job) is owned by the life that claimed it, or else by the first life that
-- started it.  Retries of the run by that life are new executions of the same run; an
-- execution by any other life is a duplicate: it is recorded in agent_executions and counted
-- on the run, and never overwrites the owner's row.
--
-- Deadlock freedom.  Two nodes' claims and event batches write the same agent_runs rows (a slot
-- both of them handle) and the same open alerts.  Every writer here takes those rows in one
-- global order: agent_runs by (job, run_id), then agent_alerts by key, both compared byte-wise
-- (COLLATE "C").  Every other row a batch writes (its own node's agent_registry rows and
-- executions, its metrics, messages and applied ids) is written only by that node, one batch at
-- a time, so waiting on it cannot close a cycle.  meshd_claim sorts its slots; meshd_apply_events
-- applies a batch's node-private events first (in journal order), then its run events key by
-- key in that order (journal order within a key), then its alerts key by key.

-- agent_runs: the statuses, the owner, the execution counts, gaps -------------------------------
ALTER TABLE agent_runs DROP CONSTRAINT agent_runs_status_check;
ALTER TABLE agent_runs ADD CONSTRAINT agent_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'missed', 'skipped',
                      'stopped', 'abandoned', 'unknown'));
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS life         text;
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS exec_id      text;
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS executions   integer NOT NULL DEFAULT 0
    CHECK (executions >= 0);
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS lives        integer NOT NULL DEFAULT 0
    CHECK (lives >= 0);
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS missed_count integer CHECK (missed_count >= 1);
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS missed_until timestamptz;
ALTER TABLE agent_runs ADD CONSTRAINT agent_runs_missed_range
    CHECK (missed_until IS NULL OR (status = 'missed' AND missed_until >= scheduled_for));
-- meshctl health: the runs executed by more than one life (few, and wanted by the newest).
CREATE INDEX agent_runs_duplicates ON agent_runs (created_at) WHERE lives > 1;

COMMENT ON COLUMN agent_runs.status IS
    'running, succeeded, failed, timed_out, missed, skipped, stopped (ended because meshd stopped it), abandoned (its meshd died; it ended unobserved, outcome unknown) or unknown (adopted by the next meshd after a restart, which saw it end without its exit status).';
COMMENT ON COLUMN agent_runs.life IS
    'The meshd life (process) that owns the row: the one that claimed the slot, else the first that started the run. Only its events update the row; another life''s execution of the run is a duplicate (agent_executions, lives).';
COMMENT ON COLUMN agent_runs.exec_id IS
    'The owner''s latest execution (agent_executions.exec_id, "<life>-<n>"); NULL while the slot is claimed but not started.';
COMMENT ON COLUMN agent_runs.executions IS
    'How many executions of the run are recorded (agent_executions): attempts and duplicates.';
COMMENT ON COLUMN agent_runs.lives IS
    'How many distinct meshd lives executed the run. More than 1: the slot ran more than once (two nodes, or a restarted node running again what its previous life started); meshctl health reports it.';
COMMENT ON COLUMN agent_runs.missed_count IS
    'For a gap recorded as one row (slots_missed): how many slots were missed, from scheduled_for to missed_until. NULL on every other row (a missed row without it is one slot).';
COMMENT ON COLUMN agent_runs.missed_until IS
    'For a gap recorded as one row: the last missed slot (inclusive). The gap''s later slots have no rows of their own from this node.';
COMMENT ON COLUMN agent_runs.event_at IS
    'Order key of the last change (with event_seq): the event time of the last applied run event, or the node''s clock when it claimed the slot. An older event is ignored.';
COMMENT ON COLUMN agent_runs.event_seq IS
    'Journal id number of the last applied run event, or the node''s last journal id when it claimed the slot (tie-break for equal event_at).';

-- agent_executions ---------------------------------------------------------------------------
CREATE TABLE agent_executions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exec_id       text NOT NULL CHECK (exec_id <> ''),
    run_id        text NOT NULL CHECK (run_id <> ''),
    job           text NOT NULL CHECK (job <> ''),
    node          text NOT NULL CHECK (node <> ''),
    life          text NOT NULL CHECK (life <> ''),
    scheduled_for timestamptz,
    attempt       integer CHECK (attempt >= 1),
    pid           integer CHECK (pid > 0),
    started_at    timestamptz,
    finished_at   timestamptz,
    duration_ms   bigint CHECK (duration_ms >= 0),
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out',
                                                  'stopped', 'abandoned', 'unknown')),
    exit_code     integer CHECK (exit_code BETWEEN 0 AND 255),
    signal        integer CHECK (signal BETWEEN 1 AND 127),
    reason        text,
    event_id      text,
    event_at      timestamptz,
    event_seq     bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_executions_exec_id UNIQUE (exec_id),
    CONSTRAINT agent_executions_exit_or_signal CHECK (exit_code IS NULL OR signal IS NULL),
    CONSTRAINT agent_executions_running_open CHECK (status <> 'running' OR finished_at IS NULL)
);
-- Few indexes: a row is written twice per run (start, end), on the registry's hot path.
-- Retention walks the primary key (ids grow with created_at), so no index on created_at.
CREATE INDEX agent_executions_run ON agent_executions (run_id);
CREATE INDEX agent_executions_running ON agent_executions (node) WHERE status = 'running';
CREATE TRIGGER agent_executions_touch BEFORE UPDATE ON agent_executions
    FOR EACH ROW EXECUTE FUNCTION meshd_touch_updated_at();

COMMENT ON TABLE agent_executions IS
    'Every execution (spawn) of every run: one row per exec id, filled by run_start and run_end. A retry is a new execution of the same run by the same life; an execution by another life is a duplicate of the slot. agent_runs keeps the owner''s view.';
COMMENT ON COLUMN agent_executions.exec_id IS 'meshd''s id for the spawn, "<life>-<n>" (MESHD_EXEC_ID is not exported; the log shows it).';
COMMENT ON COLUMN agent_executions.run_id IS 'The run it executed (agent_runs.run_id; no foreign key: pruned independently).';
COMMENT ON COLUMN agent_executions.node IS 'The node that spawned it.';
COMMENT ON COLUMN agent_executions.life IS 'The meshd life that spawned it (the part of exec_id before the dash).';
COMMENT ON COLUMN agent_executions.scheduled_for IS 'The slot, as on the run; NULL for unscheduled runs.';
COMMENT ON COLUMN agent_executions.attempt IS 'Attempt number within its life''s tries of the run (1 for the first).';
COMMENT ON COLUMN agent_executions.status IS 'running, succeeded, failed, timed_out, stopped, abandoned or unknown (as agent_runs.status).';
COMMENT ON COLUMN agent_executions.reason IS 'Why it ended so (spawn error, timeout, restart); free text.';
COMMENT ON COLUMN agent_executions.event_at IS 'Order key of the last applied event (with event_seq); an older event is ignored.';
COMMENT ON COLUMN agent_executions.event_seq IS 'Journal id number of the last applied event.';
COMMENT ON COLUMN agent_executions.updated_at IS 'Last change to the row (maintained by a trigger).';

-- Helpers ------------------------------------------------------------------------------------
-- The daemon's run id for a slot (sup_run_id): <job>@<YYYYMMDDTHHMMSSZ>, UTC, whole seconds.
CREATE FUNCTION meshd_slot_run_id(job text, slot timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT job || '@' || to_char(slot AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"')
$fn$;
COMMENT ON FUNCTION meshd_slot_run_id(text, timestamptz) IS
    'The daemon''s run id of a scheduled slot: <job>@<YYYYMMDDTHHMMSSZ> (UTC).';

-- The life that spawned an execution: the part of its exec id before the first dash.
CREATE FUNCTION meshd_exec_life(exec_id text) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT nullif(split_part(exec_id, '-', 1), '')
$fn$;
COMMENT ON FUNCTION meshd_exec_life(text) IS
    'The life part of an exec id "<life>-<n>" (NULL for NULL or an empty life part).';

-- Recounts a run's executions and lives from agent_executions.  The caller holds the run's row
-- lock, taken in an earlier statement: under READ COMMITTED this statement's snapshot then sees
-- every execution committed by whoever held the lock before, so two nodes recording executions
-- of the same run at once cannot both count only their own.
CREATE FUNCTION meshd_run_recount(v_run text) RETURNS void
LANGUAGE sql AS $fn$
    UPDATE agent_runs r
       SET executions = c.n, lives = c.lives
      FROM (SELECT count(*)::integer AS n, count(DISTINCT x.life)::integer AS lives
              FROM agent_executions x WHERE x.run_id = v_run) c
     WHERE r.run_id = v_run AND (r.executions, r.lives) IS DISTINCT FROM (c.n, c.lives)
$fn$;
COMMENT ON FUNCTION meshd_run_recount(text) IS
    'meshd_apply_events helper: agent_runs.executions and lives of a run, recounted from agent_executions.';

-- Where an event sits in the lock order (see the top of this file): cls 0 for events that write
-- only rows of their own node (applied first, in journal order), 1 for an agent_runs row (k1 =
-- job, k2 = run id), 2 for an alert (k1 = key), 3 for runs_reconciled (expanded per run by
-- meshd_apply_events).  Never raises: an event it cannot place (malformed) is class 0 and fails
-- in its turn, as before.
CREATE FUNCTION meshd_event_lock(e jsonb, OUT cls integer, OUT k1 text, OUT k2 text)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    t text;
    v_job text;
    v_slot text;
BEGIN
    cls := 0;
    IF jsonb_typeof(e) IS DISTINCT FROM 'object' THEN
        RETURN;
    END IF;
    t := e ->> 'type';
    v_job := nullif(e ->> 'job', '');
    IF t IN ('run_start', 'run_end') THEN
        IF v_job IS NOT NULL AND coalesce(e ->> 'run_id', '') <> '' THEN
            cls := 1; k1 := v_job; k2 := e ->> 'run_id';
        END IF;
    ELSIF t IN ('run_missed', 'run_skipped', 'slots_missed') THEN
        v_slot := e ->> CASE t WHEN 'slots_missed' THEN 'from' ELSE 'scheduled_for' END;
        IF v_job IS NOT NULL AND v_slot ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN
            BEGIN
                k2 := meshd_slot_run_id(v_job, v_slot::timestamptz);
                cls := 1; k1 := v_job;
            EXCEPTION WHEN data_exception THEN
                k2 := NULL; -- an impossible date (2025-02-30): class 0, it fails in its turn
            END;
        END IF;
    ELSIF t IN ('alert', 'resolve') THEN
        IF coalesce(e ->> 'key', '') <> '' THEN
            cls := 2; k1 := e ->> 'key'; k2 := '';
        END IF;
    ELSIF t = 'runs_reconciled' THEN
        cls := 3;
    END IF;
END
$fn$;
COMMENT ON FUNCTION meshd_event_lock(jsonb) IS
    'meshd_apply_events helper: the event''s place in the lock order (class, key); never raises.';

-- The adopted exec ids of a runs_reconciled event, validated (22023 unless an array of strings).
CREATE FUNCTION meshd_event_adopted(e jsonb) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    IF coalesce(jsonb_typeof(e -> 'adopted'), 'null') = 'null' THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(e -> 'adopted') <> 'array'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(e -> 'adopted') a
                   WHERE jsonb_typeof(a) <> 'string') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'runs_reconciled: adopted must be an array of exec ids';
    END IF;
    RETURN ARRAY(SELECT jsonb_array_elements_text(e -> 'adopted'));
END
$fn$;
COMMENT ON FUNCTION meshd_event_adopted(jsonb) IS
    'meshd_apply_events helper: runs_reconciled''s adopted exec ids (22023 unless an array of strings).';

-- The claim ------------------------------------------------------------------------------------
-- meshd claims a scheduler wake-up's slots with one call.  Arrays: the slots' run ids, jobs and
-- instants, in any order; the answer has one row per slot in the order given.  The inserts are
-- made in the global order (job, run_id), so two nodes claiming overlapping slots never
-- deadlock: the later one waits for the earlier to commit, then finds the rows taken.
--   won:    this call inserted the row, or the row is this life's own claim that has not
--           started (a claim sent again after its answer was lost with the connection);
--   holder: when not won, "<node> (<status>)" of the row, or "?" when it was inserted by a
--           transaction that committed after this statement's snapshot.
-- The claim row is 'running' with started_at = now(), life = claimer, and the order key
-- (claim_at, claim_seq): the node's clock and its last journal id when it claimed, so that a
-- runs_reconciled of an earlier life, applied late, leaves it alone.
CREATE FUNCTION meshd_claim(run_ids text[], jobs text[], slots timestamptz[], claimer text,
                            claimer_life text, claim_at timestamptz, claim_seq bigint)
RETURNS TABLE (run_id text, won boolean, holder text)
LANGUAGE sql AS $fn$
    WITH want AS (
        SELECT w.rid, w.job, w.sched, w.ord
          FROM unnest(run_ids, jobs, slots) WITH ORDINALITY AS w(rid, job, sched, ord)
    ), ins AS (
        INSERT INTO agent_runs AS r (run_id, job, node, scheduled_for, started_at, status, life,
                                     event_at, event_seq)
        SELECT w.rid, w.job, claimer, w.sched, now(), 'running', claimer_life, claim_at,
               claim_seq
          FROM want w
         ORDER BY w.job COLLATE "C", w.rid COLLATE "C"
        ON CONFLICT DO NOTHING
        RETURNING r.run_id
    )
    SELECT w.rid,
           i.run_id IS NOT NULL OR coalesce(h.life = claimer_life AND h.exec_id IS NULL
                                            AND h.status = 'running', false),
           CASE WHEN i.run_id IS NULL THEN coalesce(h.node || ' (' || h.status || ')', '?') END
      FROM want w
      LEFT JOIN ins i ON i.run_id = w.rid
      LEFT JOIN agent_runs h ON i.run_id IS NULL AND h.job = w.job AND h.scheduled_for = w.sched
     ORDER BY w.ord
$fn$;
COMMENT ON FUNCTION meshd_claim(text[], text[], timestamptz[], text, text, timestamptz, bigint) IS
    'The cluster claim of a batch of slots (docs/cluster.md): inserts their agent_runs rows in (job, run_id) order, ON CONFLICT DO NOTHING; one answer row per slot, in the order given.';

-- One run event, with ownership ----------------------------------------------------------------
-- run_start, run_end, run_missed, run_skipped and slots_missed.  Returns true when it changed
-- something.  The caller (meshd_apply_event) has checked id/type/at/node.
CREATE FUNCTION meshd_apply_run_event(e jsonb) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_id      text := e ->> 'id';
    v_seq     bigint := substring(e ->> 'id' FROM '/([0-9]{1,18})$')::bigint;
    v_type    text := e ->> 'type';
    v_at      timestamptz := meshd_event_ts(e ->> 'at');
    v_node    text := e ->> 'node';
    v_job     text := nullif(e ->> 'job', '');
    v_life    text := nullif(e ->> 'life', '');
    v_exec    text := nullif(e ->> 'exec', '');
    v_xlife   text;       -- the life that spawned the execution (exec id), else the event's
    v_run     text;
    v_status  text;
    v_reason  text;
    v_sched   timestamptz;
    v_started timestamptz;
    v_fin     timestamptz;
    v_to      timestamptz;
    v_last    timestamptz;
    v_dur     bigint;
    v_count   bigint;
    v_pid     integer;
    v_attempt integer;
    v_json    jsonb;
    v_cpu     bigint;
    v_user    bigint;
    v_sys     bigint;
    v_peak    bigint;
    v_xstart  timestamptz; -- the execution's start, as recorded
    v_rstart  timestamptz; -- the run row's start
    v_done    boolean;
    v_new_x   boolean := false;  -- this event inserted the execution's row
    v_changed boolean := false;
    v_owner   boolean;
    cur       record;
BEGIN
    v_xlife := coalesce(meshd_exec_life(v_exec), v_life);

    CASE v_type
    WHEN 'run_start' THEN
        PERFORM meshd_event_need(e, 'job', 'run_id', 'started_at');
        v_run := e ->> 'run_id';
        v_sched := meshd_event_ts(e ->> 'scheduled_for');
        v_started := meshd_event_ts(e ->> 'started_at');
        v_pid := (e ->> 'pid')::integer;
        v_attempt := (e ->> 'attempt')::integer;
        IF v_exec IS NOT NULL THEN
            INSERT INTO agent_executions (exec_id, run_id, job, node, life, scheduled_for, attempt,
                                          pid, started_at, status, event_id, event_at, event_seq)
            VALUES (v_exec, v_run, v_job, v_node, v_xlife, v_sched, coalesce(v_attempt, 1),
                    v_pid, v_started, 'running', v_id, v_at, v_seq)
            ON CONFLICT (exec_id) DO NOTHING; -- a replay (or its run_end came first)
            v_new_x := FOUND;
        END IF;
        -- A new run: its counts are its executions so far (this one).  Another node inserting
        -- the same run at once waits for this row, then recounts under its lock (below).
        INSERT INTO agent_runs (run_id, job, node, scheduled_for, started_at, pid, attempt, status,
                                life, exec_id, executions, lives, event_id, event_at, event_seq)
        SELECT v_run, v_job, v_node, v_sched, v_started, v_pid, coalesce(v_attempt, 1),
               'running', v_xlife, v_exec, c.n, c.lives, v_id, v_at, v_seq
          FROM (SELECT count(*)::integer AS n, count(DISTINCT x.life)::integer AS lives
                  FROM agent_executions x WHERE x.run_id = v_run) c
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            v_changed := true;
            v_new_x := false; -- counted
        ELSE
            -- The row exists: lock it (this key's turn in the lock order), then decide.
            SELECT r.life, r.exec_id, r.status, r.event_at, r.event_seq INTO cur
              FROM agent_runs r WHERE r.run_id = v_run FOR UPDATE;
            IF NOT FOUND THEN
                RAISE WARNING 'meshd_apply_events: run_start % (run %): slot of job % at % is already recorded under another run id; skipped',
                    v_id, v_run, v_job, v_sched;
                RETURN v_new_x;
            END IF;
            v_owner := cur.life IS NULL OR cur.life = v_xlife;
            IF cur.status IN ('missed', 'skipped') THEN
                RAISE WARNING 'meshd_apply_events: run_start % (run %): the slot is already recorded as %; skipped',
                    v_id, v_run, cur.status;
            ELSIF v_owner THEN
                -- The owner's claim row, its next attempt, or a replay/older event (ignored).  A
                -- bare claim (nothing started yet) takes its life's first start whatever the
                -- clocks say.
                -- The counts are recounted in this statement: its snapshot is taken after the lock.
                UPDATE agent_runs r
                   SET started_at = v_started, pid = v_pid,
                       attempt = coalesce(v_attempt, r.attempt, 1),
                       status = 'running', finished_at = NULL, duration_ms = NULL,
                       exit_code = NULL, signal = NULL, reason = NULL, output_tail = NULL,
                       summary = NULL, cpu_usec = NULL, cpu_user_usec = NULL,
                       cpu_system_usec = NULL, memory_peak_bytes = NULL,
                       life = v_xlife, exec_id = coalesce(v_exec, r.exec_id),
                       executions = c.n, lives = c.lives,
                       event_id = v_id, event_at = v_at, event_seq = v_seq
                  FROM (SELECT count(*)::integer AS n, count(DISTINCT x.life)::integer AS lives
                          FROM agent_executions x WHERE x.run_id = v_run) c
                 WHERE r.run_id = v_run
                   AND (r.event_at IS NULL OR (r.event_at, r.event_seq) < (v_at, v_seq)
                        OR (r.exec_id IS NULL AND r.status = 'running'));
                v_changed := FOUND;
                IF v_changed THEN
                    v_new_x := false; -- counted
                END IF;
            END IF;
            -- Another life's execution of a run it does not own: a duplicate, counted below.
        END IF;
        IF v_new_x THEN
            PERFORM meshd_run_recount(v_run);
        END IF;
        IF NOT (v_changed OR v_new_x) THEN
            RETURN false; -- a replay or an older event
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
        IF v_status NOT IN ('succeeded', 'failed', 'timed_out', 'stopped', 'abandoned',
                            'unknown') THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('run_end status "%s" is not succeeded, failed, timed_out, stopped, abandoned or unknown', v_status);
        END IF;
        v_fin := meshd_event_ts(e ->> 'finished_at');
        v_sched := meshd_event_ts(e ->> 'scheduled_for');   -- optional: for a lost run_start
        v_started := meshd_event_ts(e ->> 'started_at');     -- optional: likewise
        v_dur := (e ->> 'duration_ms')::bigint;              -- optional: monotonic run time
        v_pid := (e ->> 'pid')::integer;
        v_attempt := (e ->> 'attempt')::integer;
        v_reason := e ->> 'reason';
        v_json := CASE WHEN jsonb_typeof(e -> 'summary') = 'object' THEN e -> 'summary' END;
        v_cpu := meshd_event_count(e, 'cpu_usec');
        v_user := meshd_event_count(e, 'cpu_user_usec');
        v_sys := meshd_event_count(e, 'cpu_system_usec');
        v_peak := meshd_event_count(e, 'memory_peak_bytes');
        IF v_exec IS NOT NULL THEN
            UPDATE agent_executions x
               SET finished_at = v_fin, status = v_status,
                   duration_ms = coalesce(v_dur, CASE WHEN x.started_at IS NOT NULL THEN
                       greatest(0, round(extract(epoch FROM v_fin - x.started_at) * 1000))::bigint END),
                   exit_code = (e ->> 'exit_code')::integer, signal = (e ->> 'signal')::integer,
                   reason = v_reason, pid = coalesce(v_pid, x.pid),
                   event_id = v_id, event_at = v_at, event_seq = v_seq
             WHERE x.exec_id = v_exec AND (x.event_at, x.event_seq) < (v_at, v_seq)
            RETURNING x.started_at INTO v_xstart;
            v_changed := FOUND;
            IF NOT FOUND THEN
                INSERT INTO agent_executions (exec_id, run_id, job, node, life, scheduled_for,
                                              attempt, pid, started_at, finished_at, duration_ms,
                                              status, exit_code, signal, reason, event_id,
                                              event_at, event_seq)
                VALUES (v_exec, v_run, v_job, v_node, v_xlife, v_sched, coalesce(v_attempt, 1),
                        v_pid, v_started, v_fin,
                        coalesce(v_dur, CASE WHEN v_started IS NOT NULL THEN
                            greatest(0, round(extract(epoch FROM v_fin - v_started) * 1000))::bigint END),
                        v_status, (e ->> 'exit_code')::integer, (e ->> 'signal')::integer,
                        v_reason, v_id, v_at, v_seq)
                ON CONFLICT (exec_id) DO NOTHING; -- exists and is newer: a replay
                v_new_x := FOUND;
                v_changed := FOUND;
            END IF;
        END IF;
        -- The common case first: the end of the owner's execution whose start is recorded (one
        -- statement, which takes the row lock).  Anything else is sorted out below.
        v_done := false;
        IF NOT v_new_x THEN
            UPDATE agent_runs r
               SET finished_at = v_fin, status = v_status,
                   started_at = coalesce(r.started_at, v_started),
                   duration_ms = coalesce(v_dur, CASE WHEN coalesce(r.started_at, v_started) IS NOT NULL
                       THEN greatest(0, round(extract(epoch FROM v_fin - coalesce(r.started_at, v_started)) * 1000))::bigint END),
                   exit_code = (e ->> 'exit_code')::integer, signal = (e ->> 'signal')::integer,
                   reason = v_reason, output_tail = e ->> 'output_tail', summary = v_json,
                   pid = coalesce(v_pid, r.pid), life = v_xlife,
                   exec_id = coalesce(v_exec, r.exec_id),
                   cpu_usec = v_cpu, cpu_user_usec = v_user, cpu_system_usec = v_sys,
                   memory_peak_bytes = v_peak,
                   event_id = v_id, event_at = v_at, event_seq = v_seq
             WHERE r.run_id = v_run AND (r.life IS NULL OR r.life = v_xlife)
               AND r.status NOT IN ('missed', 'skipped')
               AND (r.event_at IS NULL OR (r.event_at, r.event_seq) < (v_at, v_seq)
                    OR (r.exec_id IS NULL AND r.status = 'running'))
            RETURNING r.started_at INTO v_last;
            v_done := FOUND;
        END IF;
        IF v_done THEN
            v_changed := true;
        ELSE
            SELECT r.life, r.exec_id, r.status, r.started_at INTO cur
              FROM agent_runs r WHERE r.run_id = v_run FOR UPDATE;
            IF NOT FOUND THEN
                -- run_start was lost (dropped, or never sent): record the run from its end.
                INSERT INTO agent_runs (run_id, job, node, scheduled_for, started_at, finished_at,
                                        duration_ms, exit_code, signal, status, reason,
                                        output_tail, summary, pid, attempt, life, exec_id,
                                        executions, lives, cpu_usec, cpu_user_usec,
                                        cpu_system_usec, memory_peak_bytes, event_id, event_at,
                                        event_seq)
                SELECT v_run, v_job, v_node, v_sched, v_started, v_fin,
                       coalesce(v_dur, CASE WHEN v_started IS NOT NULL THEN
                           greatest(0, round(extract(epoch FROM v_fin - v_started) * 1000))::bigint END),
                       (e ->> 'exit_code')::integer, (e ->> 'signal')::integer, v_status,
                       v_reason, e ->> 'output_tail', v_json, v_pid, v_attempt, v_xlife, v_exec,
                       c.n, c.lives, v_cpu, v_user, v_sys, v_peak, v_id, v_at, v_seq
                  FROM (SELECT count(*)::integer AS n, count(DISTINCT x.life)::integer AS lives
                          FROM agent_executions x WHERE x.run_id = v_run) c
                ON CONFLICT DO NOTHING;
                IF FOUND THEN
                    v_changed := true;
                    v_new_x := false; -- counted
                    v_last := v_started;
                ELSE
                    RAISE WARNING 'meshd_apply_events: run_end % (run %): slot of job % at % is already recorded under another run id; skipped',
                        v_id, v_run, v_job, v_sched;
                END IF;
            ELSIF cur.status IN ('missed', 'skipped') THEN
                RAISE WARNING 'meshd_apply_events: run_end % (run %): the slot is already recorded as %; skipped',
                    v_id, v_run, cur.status;
            ELSIF v_new_x AND (cur.life IS NULL OR cur.life = v_xlife) THEN
                -- The owner's execution whose start was lost (an adopted one's end comes from
                -- the next life, with the exec id of the life that spawned it).  Counted in this
                -- statement, whose snapshot is taken after the lock.
                UPDATE agent_runs r
                   SET finished_at = v_fin, status = v_status,
                       started_at = coalesce(r.started_at, v_started),
                       duration_ms = coalesce(v_dur, CASE WHEN coalesce(r.started_at, v_started) IS NOT NULL
                           THEN greatest(0, round(extract(epoch FROM v_fin - coalesce(r.started_at, v_started)) * 1000))::bigint END),
                       exit_code = (e ->> 'exit_code')::integer, signal = (e ->> 'signal')::integer,
                       reason = v_reason, output_tail = e ->> 'output_tail', summary = v_json,
                       pid = coalesce(v_pid, r.pid), life = v_xlife,
                       exec_id = coalesce(v_exec, r.exec_id),
                       cpu_usec = v_cpu, cpu_user_usec = v_user, cpu_system_usec = v_sys,
                       memory_peak_bytes = v_peak, executions = c.n, lives = c.lives,
                       event_id = v_id, event_at = v_at, event_seq = v_seq
                  FROM (SELECT count(*)::integer AS n, count(DISTINCT x.life)::integer AS lives
                          FROM agent_executions x WHERE x.run_id = v_run) c
                 WHERE r.run_id = v_run
                   AND (r.event_at IS NULL OR (r.event_at, r.event_seq) < (v_at, v_seq)
                        OR (r.exec_id IS NULL AND r.status = 'running'))
                RETURNING r.started_at INTO v_last;
                IF FOUND THEN
                    v_changed := true;
                    v_new_x := false; -- counted
                END IF;
            END IF;
            -- Else the owner's replayed or older event (the fast path refused it), or another
            -- life's execution: the row keeps its owner's values.
            v_rstart := cur.started_at;
        END IF;
        IF v_new_x THEN
            PERFORM meshd_run_recount(v_run);
        END IF;
        IF NOT v_changed THEN
            RETURN false;
        END IF;
        v_last := coalesce(v_last, v_xstart, v_started, v_rstart, v_fin);
        UPDATE agent_registry g
           SET last_run_id = v_run, last_run_status = v_status, last_run_at = v_last
         WHERE g.node = v_node AND coalesce(g.job, '') = v_job
           AND (g.last_run_at IS NULL OR g.last_run_at <= v_last);
        RETURN true;

    WHEN 'run_missed', 'run_skipped', 'slots_missed' THEN
        IF v_type = 'slots_missed' THEN
            PERFORM meshd_event_need(e, 'job', 'from', 'to', 'count', 'reason');
            v_sched := meshd_event_ts(e ->> 'from');
            v_to := meshd_event_ts(e ->> 'to');
            v_count := meshd_event_count(e, 'count');
            IF v_count IS NULL OR v_count < 1 OR v_count > 2147483647 OR v_to < v_sched THEN
                RAISE EXCEPTION USING ERRCODE = '22023',
                    MESSAGE = 'slots_missed: count must be a whole number >= 1 and to >= from';
            END IF;
            v_reason := format('%s (%s slot%s from %s to %s)', e ->> 'reason', v_count,
                               CASE WHEN v_count = 1 THEN '' ELSE 's' END,
                               to_char(v_sched AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                               to_char(v_to AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
            v_status := 'missed';
        ELSE
            PERFORM meshd_event_need(e, 'job', 'scheduled_for', 'reason');
            v_sched := meshd_event_ts(e ->> 'scheduled_for');
            v_reason := e ->> 'reason';
            v_status := CASE v_type WHEN 'run_skipped' THEN 'skipped' ELSE 'missed' END;
        END IF;
        v_run := meshd_slot_run_id(v_job, v_sched);
        INSERT INTO agent_runs (run_id, job, node, scheduled_for, status, reason, life,
                                missed_count, missed_until, event_id, event_at, event_seq)
        VALUES (v_run, v_job, v_node, v_sched, v_status, v_reason, v_life,
                CASE WHEN v_type = 'slots_missed' THEN v_count END, v_to, v_id, v_at, v_seq)
        ON CONFLICT DO NOTHING;  -- the slot is recorded once, whatever happened to it first
        IF NOT FOUND THEN
            -- ...except this life's own claim that it never started: the claim answer came too
            -- late, or the slot was skipped after all.  That row becomes the record.
            UPDATE agent_runs r
               SET status = v_status, reason = v_reason, started_at = NULL,
                   missed_count = CASE WHEN v_type = 'slots_missed' THEN v_count END,
                   missed_until = v_to, event_id = v_id, event_at = v_at, event_seq = v_seq
             WHERE r.run_id = v_run AND r.status = 'running' AND r.exec_id IS NULL
               AND r.life = v_life AND r.node = v_node
               AND (r.event_at IS NULL OR (r.event_at, r.event_seq) < (v_at, v_seq));
            IF NOT FOUND THEN
                RETURN false;
            END IF;
        END IF;
        UPDATE agent_registry g
           SET last_run_id = v_run, last_run_status = v_status, last_run_at = v_at
         WHERE g.node = v_node AND coalesce(g.job, '') = v_job
           AND (g.last_run_at IS NULL OR g.last_run_at <= v_at);
        RETURN true;
    END CASE;
END
$fn$;
COMMENT ON FUNCTION meshd_apply_run_event(jsonb) IS
    'meshd_apply_event''s part for run_start, run_end, run_missed, run_skipped and slots_missed (0004: executions and ownership).';

-- runs_reconciled, one run at a time -----------------------------------------------------------
-- A life's start-up verdict on what its node's earlier lives left behind: every execution of the
-- node still 'running', spawned by another life, not adopted, and last changed before this
-- event becomes 'abandoned'; so does the run row (of the node, running, owned by another life,
-- its execution not adopted, last changed before this event).  "Before this event" is the order
-- key (event_at, event_seq): a claim made by a LATER life carries that life's clock and journal
-- id, so a runs_reconciled replayed late never closes it.  Applied per run (meshd_apply_events
-- puts each run in its place in the lock order); true when it changed something.
CREATE FUNCTION meshd_reconcile_run(e jsonb, v_run text) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_id      text := e ->> 'id';
    v_seq     bigint := substring(e ->> 'id' FROM '/([0-9]{1,18})$')::bigint;
    v_at      timestamptz := meshd_event_ts(e ->> 'at');
    v_node    text := e ->> 'node';
    v_life    text := e ->> 'life';
    v_adopted text[] := meshd_event_adopted(e);
    v_gone    text := format('meshd on %s restarted; the run ended unobserved', e ->> 'node');
    v_job     text;
    n         integer;
BEGIN
    UPDATE agent_executions x
       SET status = 'abandoned', finished_at = v_at, reason = v_gone,
           event_id = v_id, event_at = v_at, event_seq = v_seq
     WHERE x.run_id = v_run AND x.node = v_node AND x.status = 'running'
       AND x.life <> v_life AND x.exec_id <> ALL (v_adopted)
       AND (x.event_at IS NULL OR (x.event_at, x.event_seq) < (v_at, v_seq));
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE agent_runs r
       SET status = 'abandoned', finished_at = v_at,
           reason = CASE WHEN r.exec_id IS NULL
                         THEN format('claimed, never started: meshd on %s restarted', v_node)
                         ELSE v_gone END,
           event_id = v_id, event_at = v_at, event_seq = v_seq
     WHERE r.run_id = v_run AND r.node = v_node AND r.status = 'running'
       AND r.life IS DISTINCT FROM v_life
       AND (r.exec_id IS NULL OR r.exec_id <> ALL (v_adopted))
       AND (r.event_at IS NULL OR (r.event_at, r.event_seq) < (v_at, v_seq))
    RETURNING r.job INTO v_job;
    IF FOUND THEN
        UPDATE agent_registry g SET last_run_status = 'abandoned'
         WHERE g.node = v_node AND g.job = v_job AND g.last_run_id = v_run
           AND g.last_run_status = 'running';
        RETURN true;
    END IF;
    RETURN n > 0;
END
$fn$;
COMMENT ON FUNCTION meshd_reconcile_run(jsonb, text) IS
    'meshd_apply_events helper: applies a runs_reconciled event to one run (its row and its executions on the event''s node).';

-- One event --------------------------------------------------------------------------------
-- 0003's function is kept as meshd_apply_event_0003 for every type this migration does not
-- take over.  runs_reconciled here only validates (a direct caller gets the whole effect from
-- meshd_apply_events, which applies it run by run in the lock order).
ALTER FUNCTION meshd_apply_event(jsonb) RENAME TO meshd_apply_event_0003;
COMMENT ON FUNCTION meshd_apply_event_0003(jsonb) IS
    'meshd_apply_event as 0003 made it; 0004''s meshd_apply_event calls it for the types 0004 does not take over.';

CREATE FUNCTION meshd_apply_event(e jsonb) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_id text;
BEGIN
    IF jsonb_typeof(e) IS DISTINCT FROM 'object'
       OR e ->> 'type' NOT IN ('run_start', 'run_end', 'run_missed', 'run_skipped',
                               'slots_missed', 'runs_reconciled') THEN
        RETURN meshd_apply_event_0003(e);
    END IF;
    PERFORM meshd_event_need(e, 'id', 'type', 'at', 'node');
    v_id := e ->> 'id';
    IF substring(v_id FROM '/([0-9]{1,18})$') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('id "%s" is not <node>/<journal id>', v_id);
    END IF;
    PERFORM meshd_event_ts(e ->> 'at');
    IF e ->> 'type' = 'runs_reconciled' THEN
        PERFORM meshd_event_need(e, 'life');
        PERFORM meshd_event_adopted(e);
        RETURN false;
    END IF;
    RETURN meshd_apply_run_event(e);
END
$fn$;
COMMENT ON FUNCTION meshd_apply_event(jsonb) IS
    'Applies one journal event (see meshd_apply_events); true if it changed something. Raises class 22/23 errors for a malformed event. 0004: run events keep every execution and respect the run''s owner; runs_reconciled is only validated here.';

-- The batch --------------------------------------------------------------------------------
-- plan: a JSON array of steps {"o": ordinal in events (1-based), "k": kind, "r": run id}, in
-- lock order; kind e = apply the event, v = validate a runs_reconciled, r = apply a
-- runs_reconciled to run r.  careful: one subtransaction per step, skipping (with a WARNING)
-- the steps whose event is malformed; else any error propagates.
CREATE FUNCTION meshd_apply_plan(events jsonb, plan jsonb, careful boolean) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    step  record;
    e     jsonb;
    r     boolean;
    done  boolean[] := array_fill(false, ARRAY[jsonb_array_length(events)]);
    bad   boolean[] := array_fill(false, ARRAY[jsonb_array_length(events)]);
BEGIN
    FOR step IN SELECT (p ->> 'o')::integer AS o, p ->> 'k' AS k, p ->> 'r' AS run
                  FROM jsonb_array_elements(plan) WITH ORDINALITY AS s(p, i) ORDER BY s.i LOOP
        IF bad[step.o] THEN
            CONTINUE;
        END IF;
        e := events -> (step.o - 1);
        IF NOT careful THEN
            r := CASE step.k WHEN 'r' THEN meshd_reconcile_run(e, step.run)
                             ELSE meshd_apply_event(e) END;
        ELSE
            BEGIN
                r := CASE step.k WHEN 'r' THEN meshd_reconcile_run(e, step.run)
                                 ELSE meshd_apply_event(e) END;
            EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
                RAISE WARNING 'meshd_apply_events: event % skipped: % (SQLSTATE %)',
                    coalesce(e ->> 'id', format('#%s of the batch', step.o - 1)), SQLERRM,
                    SQLSTATE;
                bad[step.o] := true;
                r := false;
            END;
        END IF;
        IF r THEN
            done[step.o] := true;
        END IF;
    END LOOP;
    RETURN (SELECT count(*) FROM unnest(done) AS d WHERE d);
END
$fn$;
COMMENT ON FUNCTION meshd_apply_plan(jsonb, jsonb, boolean) IS
    'meshd_apply_events helper: applies a batch''s steps in lock order; returns how many events changed something.';

-- Fast path: every step in lock order, no per-event subtransaction.  If an event raises a data
-- (class 22) or constraint (class 23) error, the whole pass is rolled back (one subtransaction)
-- and the plan is applied again with one subtransaction per step, skipping the bad events with
-- a WARNING.  Any other error (serialization failure, deadlock, out of disk, a schema bug) fails
-- the call: the daemon keeps the batch and retries it.
CREATE OR REPLACE FUNCTION meshd_apply_events(events jsonb) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    plan jsonb;
BEGIN
    IF events IS NULL THEN
        RETURN 0;
    END IF;
    IF jsonb_typeof(events) <> 'array' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'meshd_apply_events: expected a JSON array of events';
    END IF;
    IF jsonb_array_length(events) = 0 THEN
        RETURN 0;
    END IF;
    -- The steps: every event in its class (0 own-node rows, 1 runs, 2 alerts), and for each
    -- runs_reconciled a validation step (class 0) and one step per run it may touch: the
    -- node's running rows and executions, and every run of the batch.  Sorted by class, key
    -- (byte order), then journal order.
    WITH ev AS (
        SELECT x.o::integer AS o, x.e, k.cls, k.k1, k.k2
          FROM jsonb_array_elements(events) WITH ORDINALITY AS x(e, o)
          CROSS JOIN LATERAL meshd_event_lock(x.e) AS k
    ), rr AS (
        SELECT ev.o, ev.e ->> 'node' AS node FROM ev
         WHERE ev.cls = 3 AND coalesce(ev.e ->> 'node', '') <> ''
           AND coalesce(ev.e ->> 'life', '') <> ''
    ), rr_runs AS (
        SELECT rr.o, r.job AS k1, r.run_id AS k2
          FROM rr JOIN agent_runs r ON r.node = rr.node AND r.status = 'running'
        UNION
        SELECT rr.o, x.job, x.run_id
          FROM rr JOIN agent_executions x ON x.node = rr.node AND x.status = 'running'
        UNION
        SELECT rr.o, ev.k1, ev.k2 FROM rr CROSS JOIN ev WHERE ev.cls = 1
    ), steps AS (
        SELECT ev.o, CASE ev.cls WHEN 3 THEN 0 ELSE ev.cls END AS cls, ev.k1, ev.k2,
               CASE ev.cls WHEN 3 THEN 'v' ELSE 'e' END AS k
          FROM ev
        UNION ALL
        SELECT rr_runs.o, 1, rr_runs.k1, rr_runs.k2, 'r' FROM rr_runs
    )
    SELECT jsonb_agg(jsonb_build_object('o', s.o, 'k', s.k, 'r', CASE s.k WHEN 'r' THEN s.k2 END)
                     ORDER BY s.cls, s.k1 COLLATE "C", s.k2 COLLATE "C", s.o)
      INTO plan
      FROM steps s;

    BEGIN
        RETURN meshd_apply_plan(events, plan, false);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
        NULL; -- a malformed event: redo the batch carefully, below
    END;
    RETURN meshd_apply_plan(events, plan, true);
END
$fn$;
COMMENT ON FUNCTION meshd_apply_events(jsonb) IS
    'Applies a JSON array of journal events atomically and idempotently (by event id), taking row locks in one global order (docs/registry.md); returns how many changed something. Malformed events and unknown types are skipped with a WARNING.';

-- Retention: meshd_prune also deletes old finished executions ---------------------------------
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

    -- In id order (the primary key; ids grow with created_at): the oldest come first and the
    -- scan stops after batch rows.
    DELETE FROM agent_executions WHERE id IN (
        SELECT id FROM agent_executions
        WHERE created_at < cutoff AND status <> 'running'
        ORDER BY id LIMIT batch FOR UPDATE SKIP LOCKED);
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
    'Retention: deletes up to batch rows per table older than older_than (finished runs and executions, metrics, done/failed messages, resolved alerts, applied alert/resolve ids); returns the count. Call until it returns 0.';
