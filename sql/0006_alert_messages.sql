-- 0006_alert_messages.sql - every change of an alert that people should hear of puts one message
-- of type 'alert' on the bus, so an `on: alert` job (meshd-report) delivers it within seconds.
-- docs/registry.md ("Alert messages", "Schema added by 0006") and docs/cluster.md ("The message
-- bus") are the contract.
--
-- The message.  An AFTER trigger on agent_alerts inserts one pending agent_messages row,
--   type 'alert', source 'meshd', no target, event_id NULL, priority by the alert's severity
--   (critical 10, warning 50, info 100: lower runs first), payload
--   {"event": "open" | "repeat" | "resolve", "id": agent_alerts.id, "key", "severity",
--    "job" (null for a node alert), "node", "message", "count",
--    "opened_at", "updated_at", "resolved_at" (UTC, "YYYY-MM-DDTHH:MM:SS.mmmZ"; null when not set)}
-- with the row as it is after the change:
--   open     an INSERT of an open row (a new alert; a key resolved earlier and raised again too);
--   repeat   an UPDATE of an open row that stays open with a greater count (raised again);
--   resolve  an UPDATE that sets status from open to resolved.
-- Any other change (an INSERT of a resolved row, an edit of the message alone, a count set
-- back) writes no message.  Every writer of agent_alerts gets this, whoever it is: meshd's
-- event batches (workers' alerts and meshd's own), meshctl, psql, another application.
--
-- Exactly once.  The message is written by the statement that changes the alert, in the same
-- transaction: both commit or neither does, and a NOTIFY wakes the consumers at commit, as for
-- every message (0001's trigger on agent_messages).  A replayed journal event changes no alert
-- (meshd_applied_events, 0002), so it writes no message either: nothing is written twice.
--
-- Lock order.  The contract at the top of 0004 (and kept by 0005) holds unchanged: within a
-- batch, alert and resolve events are applied last, key by key; the trigger then inserts a new
-- agent_messages row only, which no other transaction can see, let alone lock, before commit
-- (its event_id is NULL, so the unique index never waits on another inserter either).  It
-- reads no other row and takes no other lock, so it adds no edge to the wait-for graph.
--
-- Retention.  An 'alert' message is meant for whoever consumes `on: alert`; without such a job
-- on any node it would stay pending for good.  meshd_prune (0004's, CREATE OR REPLACE, every
-- other step as it was) now also deletes pending 'alert' messages older than its older_than.
-- The alert itself stays in agent_alerts (an open one is never pruned; a resolved one goes by
-- the rule it always had).

-- The payload's time stamps: UTC with milliseconds, as every time meshd writes in JSON.
CREATE FUNCTION meshd_json_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $fn$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$fn$;
COMMENT ON FUNCTION meshd_json_time(timestamptz) IS
    'A time as meshd writes it in JSON: UTC, "YYYY-MM-DDTHH:MM:SS.mmmZ"; NULL for NULL.';

-- The trigger function.  The WHEN clauses of the triggers below already keep every change
-- that is not an open, a repeat or a resolve from calling it; it decides which of the three.
CREATE FUNCTION meshd_alert_message() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_event text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_event := 'open';
    ELSIF NEW.status = 'resolved' THEN
        v_event := 'resolve';
    ELSE
        v_event := 'repeat';
    END IF;
    INSERT INTO agent_messages (type, payload, source, priority)
    VALUES ('alert',
            jsonb_build_object('event', v_event, 'id', NEW.id, 'key', NEW.key,
                               'severity', NEW.severity, 'job', NEW.job, 'node', NEW.node,
                               'message', NEW.message, 'count', NEW.count,
                               'opened_at', meshd_json_time(NEW.opened_at),
                               'updated_at', meshd_json_time(NEW.updated_at),
                               'resolved_at', meshd_json_time(NEW.resolved_at)),
            'meshd',
            CASE NEW.severity WHEN 'critical' THEN 10 WHEN 'warning' THEN 50 ELSE 100 END);
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION meshd_alert_message() IS
    'AFTER trigger on agent_alerts: one pending agent_messages row of type alert (source meshd, priority critical 10, warning 50, info 100) per open, repeat or resolve; payload {event, id, key, severity, job, node, message, count, opened_at, updated_at, resolved_at}. docs/registry.md.';

CREATE TRIGGER agent_alerts_message_open AFTER INSERT ON agent_alerts
    FOR EACH ROW WHEN (NEW.status = 'open')
    EXECUTE FUNCTION meshd_alert_message();
CREATE TRIGGER agent_alerts_message_change AFTER UPDATE ON agent_alerts
    FOR EACH ROW WHEN ((OLD.status = 'open' AND NEW.status = 'resolved')
                       OR (OLD.status = 'open' AND NEW.status = 'open' AND NEW.count > OLD.count))
    EXECUTE FUNCTION meshd_alert_message();
COMMENT ON TRIGGER agent_alerts_message_open ON agent_alerts IS
    'A new open alert: an alert message with event open (meshd_alert_message).';
COMMENT ON TRIGGER agent_alerts_message_change ON agent_alerts IS
    'An open alert raised again (count up: event repeat) or resolved (event resolve): an alert message (meshd_alert_message).';

-- Retention: meshd_prune also deletes pending alert messages nobody took ----------------------
-- 0004's function with one more step (the 'alert' messages); every other step is as it was.
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

    -- 0006: alert messages that no `on: alert` job took.  Only type 'alert': a pending message
    -- of any other type is work someone still owes.  The pending index leads with type, so
    -- this reads only the pending alert messages; a processing one (a consumer has it) is left
    -- to its consumer.
    DELETE FROM agent_messages WHERE id IN (
        SELECT id FROM agent_messages
        WHERE status = 'pending' AND type = 'alert' AND created_at < cutoff
        LIMIT batch FOR UPDATE SKIP LOCKED);
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
    'Retention: deletes up to batch rows per table older than older_than (finished runs and executions, metrics, done/failed messages, pending alert messages nobody took, resolved alerts, applied alert/resolve ids); returns the count. Call until it returns 0.';
