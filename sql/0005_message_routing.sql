-- 0005_message_routing.sql - the bus's messages get a priority and an optional target.
-- docs/registry.md ("agent_messages: the bus", "Schema added by 0005") and docs/cluster.md
-- ("The message bus") are the contract.
--
--   priority  a whole number 0..1000000, lower runs first, default 100 (so 0..99 jump ahead of
--             every message that says nothing, and 101.. wait behind them);
--   to_node   only the meshd whose node.name it is takes the message (NULL: any node);
--   to_job    only the `on:` job of that name takes it (NULL: any job of the type).
-- A consumer claims the most urgent message it may take: type = its `on:`, target NULL or
-- itself, ORDER BY priority, created_at, id (FIFO within a priority).  The pending index
-- follows that order, so the claim stays one index scan that stops at the first row it can
-- lock.  A message whose target never consumes it stays pending; `meshctl health` lists those
-- addressed to a node or job the registry does not know.
--
-- The apply function: a worker's `message` status event carries priority/to_node/to_job to
-- the registry, so 0004's meshd_apply_event is replaced (CREATE OR REPLACE, same signature,
-- the rest of it unchanged) to hand `message` events to meshd_apply_message below; every other
-- type takes exactly the path it took under 0004.  The lock-order contract at the top of 0004
-- holds as it was: a message event writes only a new agent_messages row of its own node
-- (class 0 in meshd_event_lock, applied in journal order before the batch's runs and alerts),
-- unique by its event id, so no two batches ever wait on each other for it.  Replay stays a
-- no-op: the insert is still ON CONFLICT (event_id) DO NOTHING.

-- agent_messages: the columns -------------------------------------------------------------
-- ADD COLUMN with a constant default rewrites nothing (PostgreSQL 11+): existing rows read 100.
ALTER TABLE agent_messages ADD COLUMN IF NOT EXISTS priority integer NOT NULL DEFAULT 100;
ALTER TABLE agent_messages ADD COLUMN IF NOT EXISTS to_node text;
ALTER TABLE agent_messages ADD COLUMN IF NOT EXISTS to_job text;
ALTER TABLE agent_messages ADD CONSTRAINT agent_messages_priority
    CHECK (priority BETWEEN 0 AND 1000000);
-- '' would be a target nobody has: NULL says "anyone".  The name rule itself (1..64 of
-- [A-Za-z0-9_.-]) is checked by meshd's producers, not here, as for type.
ALTER TABLE agent_messages ADD CONSTRAINT agent_messages_to_node
    CHECK (to_node <> '' AND octet_length(to_node) <= 200);
ALTER TABLE agent_messages ADD CONSTRAINT agent_messages_to_job
    CHECK (to_job <> '' AND octet_length(to_job) <= 200);

COMMENT ON COLUMN agent_messages.priority IS
    'Lower runs first: a consumer takes its most urgent pending message (priority, then created_at, id). 0..1000000, default 100.';
COMMENT ON COLUMN agent_messages.to_node IS
    'Only the meshd node of this name may take the message; NULL: any node. A node that never runs an on: job of the type leaves it pending.';
COMMENT ON COLUMN agent_messages.to_job IS
    'Only the on: job of this name may take the message; NULL: any on: job of the type. Must be an on: job of the message''s type, or it stays pending.';

-- The claim's index: (type, priority, created_at, id) WHERE pending, the order of
--   SELECT id FROM agent_messages WHERE status = 'pending' AND type = $1
--      AND (to_node IS NULL OR to_node = $node) AND (to_job IS NULL OR to_job = $job)
--    ORDER BY priority, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
-- The target test is a filter on the rows the scan visits: messages for other consumers are
-- stepped over, not locked.  Built inside the migration's transaction (no CONCURRENTLY there);
-- it covers pending rows only, and its build reads the table once.
DROP INDEX IF EXISTS agent_messages_pending;
CREATE INDEX agent_messages_pending ON agent_messages (type, priority, created_at, id)
    WHERE status = 'pending';

-- One message event --------------------------------------------------------------------------
-- A name field of an event (to_node, to_job): NULL when absent, null or ""; 22023 unless a string.
CREATE FUNCTION meshd_event_name(e jsonb, key text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    CASE coalesce(jsonb_typeof(e -> key), 'null')
    WHEN 'null' THEN
        RETURN NULL;
    WHEN 'string' THEN
        RETURN nullif(e ->> key, '');
    ELSE
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('"%s" must be a string', key);
    END CASE;
END
$fn$;
COMMENT ON FUNCTION meshd_event_name(jsonb, text) IS
    'meshd_apply_events helper: an optional string field (NULL when absent, null or empty; 22023 for another JSON type).';

-- The `message` event (docs/registry.md): 0002's insert plus priority (a whole JSON number
-- 0..1000000; absent or null: the default) and the target.  A bad priority or target makes the
-- event malformed (22023, or 23514 from a CHECK): skipped with a WARNING like any malformed
-- event.  meshd itself never sends one: the status protocol rejects such a line first.
CREATE FUNCTION meshd_apply_message(e jsonb) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_id   text;
    v_job  text;
    v_prio numeric;
BEGIN
    PERFORM meshd_event_need(e, 'id', 'type', 'at', 'node', 'msg_type');
    v_id := e ->> 'id';
    IF substring(v_id FROM '/([0-9]{1,18})$') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('id "%s" is not <node>/<journal id>', v_id);
    END IF;
    v_job := nullif(e ->> 'job', '');
    CASE coalesce(jsonb_typeof(e -> 'priority'), 'null')
    WHEN 'null' THEN
        v_prio := 100;
    WHEN 'number' THEN
        v_prio := (e ->> 'priority')::numeric;
    ELSE
        v_prio := -1;
    END CASE;
    IF v_prio <> trunc(v_prio) OR v_prio < 0 OR v_prio > 1000000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('message: priority %s is not a whole number from 0 to 1000000',
                             e -> 'priority');
    END IF;
    INSERT INTO agent_messages (type, payload, source, run_id, created_at, event_id, priority,
                                to_node, to_job)
    VALUES (e ->> 'msg_type', coalesce(e -> 'payload', '{}'),
            (e ->> 'node') || coalesce('/' || v_job, ''), nullif(e ->> 'run_id', ''),
            meshd_event_ts(e ->> 'at'), v_id, v_prio::integer, meshd_event_name(e, 'to_node'),
            meshd_event_name(e, 'to_job'))
    ON CONFLICT (event_id) DO NOTHING;
    RETURN FOUND;
END
$fn$;
COMMENT ON FUNCTION meshd_apply_message(jsonb) IS
    'meshd_apply_events helper: applies a message event (a pending agent_messages row with its priority and target); false for a replay.';

-- 0004's meshd_apply_event, with `message` handed to meshd_apply_message.  Everything else is
-- as 0004 wrote it.
CREATE OR REPLACE FUNCTION meshd_apply_event(e jsonb) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_id text;
BEGIN
    IF jsonb_typeof(e) IS DISTINCT FROM 'object' THEN
        RETURN meshd_apply_event_0003(e);
    END IF;
    IF e ->> 'type' = 'message' THEN
        RETURN meshd_apply_message(e);
    END IF;
    IF e ->> 'type' NOT IN ('run_start', 'run_end', 'run_missed', 'run_skipped',
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
    'Applies one journal event (see meshd_apply_events); true if it changed something. Raises class 22/23 errors for a malformed event. 0004: run events keep every execution and respect the run''s owner; runs_reconciled is only validated here. 0005: message events carry a priority and a target.';
