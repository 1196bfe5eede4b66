-- 0003_run_usage.sql - what each run used: its CPU time and peak memory, read from the run's
-- cgroup (docs/supervision.md, "Cgroups") and carried by the run_end event.  docs/registry.md,
-- "Schema added by 0003".
--
-- 0002's per-event function stays as it is, renamed meshd_apply_event_0002; the new
-- meshd_apply_event applies every event through it, then writes the figures of a run_end on the
-- run it just finished, or clears them when a run_start opens the next attempt of a run.  Only
-- when the 0002 part changed the row, so a replayed or older event still changes nothing.

ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS cpu_usec          bigint CHECK (cpu_usec >= 0);
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS cpu_user_usec     bigint CHECK (cpu_user_usec >= 0);
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS cpu_system_usec   bigint CHECK (cpu_system_usec >= 0);
ALTER TABLE agent_runs ADD COLUMN IF NOT EXISTS memory_peak_bytes bigint CHECK (memory_peak_bytes >= 0);
COMMENT ON COLUMN agent_runs.cpu_usec IS
    'CPU time of every process of the run (its cgroup''s cpu.stat usage_usec), in microseconds; NULL when meshd ran it without cgroups.';
COMMENT ON COLUMN agent_runs.cpu_user_usec IS 'User part of cpu_usec (cpu.stat user_usec).';
COMMENT ON COLUMN agent_runs.cpu_system_usec IS 'System part of cpu_usec (cpu.stat system_usec).';
COMMENT ON COLUMN agent_runs.memory_peak_bytes IS
    'Peak memory of the run''s cgroup (memory.peak), in bytes; NULL without the cgroup memory controller.';

-- A non-negative whole JSON number under key, as bigint; NULL for anything else (absent, null,
-- a string, a fraction, out of range).  A bad figure is dropped, the run record is kept, as 0002
-- does with a summary that is not an object.
CREATE FUNCTION meshd_event_count(e jsonb, key text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    n numeric;
BEGIN
    IF jsonb_typeof(e -> key) IS DISTINCT FROM 'number' THEN
        RETURN NULL;
    END IF;
    n := (e ->> key)::numeric;
    IF n < 0 OR n > 9223372036854775807 OR n <> trunc(n) THEN
        RETURN NULL;
    END IF;
    RETURN n::bigint;
END
$fn$;
COMMENT ON FUNCTION meshd_event_count(jsonb, text) IS
    'The non-negative integer under key in an event, or NULL (absent or not such a number).';

ALTER FUNCTION meshd_apply_event(jsonb) RENAME TO meshd_apply_event_0002;
COMMENT ON FUNCTION meshd_apply_event_0002(jsonb) IS
    'meshd_apply_event as 0002 made it; 0003''s meshd_apply_event calls it, then records run usage.';

CREATE FUNCTION meshd_apply_event(e jsonb) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_cpu  bigint;
    v_user bigint;
    v_sys  bigint;
    v_peak bigint;
BEGIN
    IF NOT meshd_apply_event_0002(e) THEN
        RETURN false; -- a replay, an older event, a skipped type: nothing changed, nor here
    END IF;
    CASE e ->> 'type'
    WHEN 'run_end' THEN
        v_cpu := meshd_event_count(e, 'cpu_usec');
        v_user := meshd_event_count(e, 'cpu_user_usec');
        v_sys := meshd_event_count(e, 'cpu_system_usec');
        v_peak := meshd_event_count(e, 'memory_peak_bytes');
        UPDATE agent_runs r
           SET cpu_usec = v_cpu, cpu_user_usec = v_user, cpu_system_usec = v_sys,
               memory_peak_bytes = v_peak
         WHERE r.run_id = e ->> 'run_id'
           AND (r.cpu_usec, r.cpu_user_usec, r.cpu_system_usec, r.memory_peak_bytes)
               IS DISTINCT FROM (v_cpu, v_user, v_sys, v_peak);
    WHEN 'run_start' THEN
        -- The next attempt of a run: the previous attempt's figures go with its result.
        UPDATE agent_runs r
           SET cpu_usec = NULL, cpu_user_usec = NULL, cpu_system_usec = NULL,
               memory_peak_bytes = NULL
         WHERE r.run_id = e ->> 'run_id'
           AND (r.cpu_usec IS NOT NULL OR r.cpu_user_usec IS NOT NULL
                OR r.cpu_system_usec IS NOT NULL OR r.memory_peak_bytes IS NOT NULL);
    ELSE
        NULL;
    END CASE;
    RETURN true;
END
$fn$;
COMMENT ON FUNCTION meshd_apply_event(jsonb) IS
    'Applies one journal event (see meshd_apply_events); true if it changed something. Raises class 22/23 errors for a malformed event. 0003: also records a run_end''s CPU time and peak memory.';
