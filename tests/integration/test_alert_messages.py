#!/usr/bin/env python3
"""Alerts reach the bus, and meshd raises its own (sql/0006; docs/registry.md "Alert
messages", docs/supervision.md "meshd's own alerts"), on the real meshd and a real PostgreSQL:
a database of its own per test on the shared throwaway cluster (MESHD_TEST_PG, ctest's pg
fixture), migrated by meshctl.

- a worker's alert raised, raised again and resolved: exactly three 'alert' messages (open,
  repeat, resolve) with the alert's id, its state after each change and a priority by
  severity, and an `on: alert` job gets each of them;
- a cron or event job's failed run opens job.<name>.failed (severity: failure_alert; none:
  nothing) with an open message; its next succeeded run resolves it, with a resolve message;
- a job that gives up opens job.<name>.fatal (critical), shown in /api/jobs/NAME too, and is
  resolved once it runs and succeeds again;
- slots missed while meshd was down open job.<name>.missed, resolved by the caught-up run;
- a bad failure_alert is a file:line:col error at start."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, node_yaml  # noqa: E402

PAYLOAD_KEYS = {"event", "id", "key", "severity", "job", "node", "message", "count", "opened_at",
                "updated_at", "resolved_at"}
PRIORITY = {"critical": 10, "warning": 50, "info": 100}
TIME_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


psql = harness.psql


def Db(h):
    """A fresh, migrated database on the test cluster, dropped at the end of the test."""
    return harness.Database(h, "alert_msgs", migrate=True)


def alert_messages(db, key=None):
    """The 'alert' messages (of key, or all), oldest first: dicts with the row's priority,
    source, status and targets beside the payload."""
    where = "type = 'alert'" + (" AND payload->>'key' = '%s'" % key if key else "")
    rows = db.sql("SELECT json_build_object('priority', priority, 'source', source, 'status', "
                  "status, 'to_node', to_node, 'to_job', to_job, 'event_id', event_id, "
                  "'payload', payload) FROM agent_messages WHERE %s ORDER BY id" % where)
    return [json.loads(line) for line in rows.splitlines() if line]


def alert_row(db, key, status=None):
    """The alert of key (the newest, or the newest with status) as a dict, or None."""
    row = db.sql("SELECT row_to_json(a) FROM agent_alerts a WHERE key = '%s'%s ORDER BY id DESC "
                 "LIMIT 1" % (key, " AND status = '%s'" % status if status else ""))
    return json.loads(row) if row else None


def check_message(m, event, alert):
    """One alert message against its alert (as the registry holds it after that change)."""
    p = m["payload"]
    eq(PAYLOAD_KEYS, set(p), "payload keys")
    eq(event, p["event"], "event")
    eq("meshd", m["source"], "source")
    eq(None, m["to_node"], "to_node")
    eq(None, m["to_job"], "to_job")
    eq(None, m["event_id"], "event_id")
    eq(alert["id"], p["id"], "the alert's id")
    for k in ("key", "job", "node"):
        eq(alert[k], p[k], k)
    eq(PRIORITY[p["severity"]], m["priority"], "priority by severity (%s)" % p["severity"])
    for k in ("opened_at", "updated_at"):
        check(re.match(TIME_RE, p[k] or ""), "%s %r" % (k, p[k]))
    if event == "resolve":
        check(re.match(TIME_RE, p["resolved_at"] or ""), "resolved_at %r" % p["resolved_at"])
    else:
        eq(None, p["resolved_at"], "resolved_at")


def registry():
    return "registry:\n  heartbeat: 2s\n"


def flaky(h, name, code):
    """A command that fails with code the first time it runs and succeeds every time after."""
    flag = h.path("ok-" + name)
    return json.dumps(["sh", "-c", "test -e %s && exit 0; touch %s; exit %d" % (flag, flag, code)])


def test_worker_alert_open_repeat_resolve(h):
    """A worker raises an alert, raises it again more severe, resolves it: three messages,
    open (warning, 50), repeat (critical, 10) and resolve, each with the alert's id and its
    state after the change, and the `on: alert` job runs once for each."""
    db = Db(h)
    out = h.path("delivered.txt")
    alert = '{"event":"alert","severity":"%s","key":"disk.full","message":"%s"}'
    h.config(node_yaml(h, registry()) + """
jobs:
  w:
    command: %s
    schedule: always
    restart: never
  report:
    command: %s
    on: alert
    failure_alert: none
""" % (fw("status", alert % ("warning", "91% full"), "sleep", "300",
          "status", alert % ("critical", "99% full"), "sleep", "300",
          "status", '{"event":"resolve","key":"disk.full"}'),
       json.dumps(["sh", "-c", 'printf "%%s\\n" "$MESHD_MESSAGE_PAYLOAD" >> %s' % out])))
    h.start(env={"DATABASE_URL": db.url})
    h.wait_log(r"registry ready", timeout=30)
    h.wait_for(lambda: db.sql("SELECT count(*) FROM agent_messages WHERE type = 'alert' AND "
                              "status = 'done'") == "3", 30, "three alert messages delivered")
    time.sleep(0.5)  # nothing more may come
    h.stop()

    a = alert_row(db, "disk.full")
    eq("resolved", a["status"], "the alert")
    eq(2, a["count"], "raised twice")
    msgs = alert_messages(db)
    eq(["open", "repeat", "resolve"], [m["payload"]["event"] for m in msgs], "events in order")
    for m, sev, count, text in ((msgs[0], "warning", 1, "91% full"),
                                (msgs[1], "critical", 2, "99% full"),
                                (msgs[2], "critical", 2, "99% full")):
        check_message(m, m["payload"]["event"], a)
        eq(sev, m["payload"]["severity"], "severity of the %s" % m["payload"]["event"])
        eq(count, m["payload"]["count"], "count of the %s" % m["payload"]["event"])
        eq(text, m["payload"]["message"], "message of the %s" % m["payload"]["event"])
        eq("w", m["payload"]["job"], "job")
        eq("itest", m["payload"]["node"], "node")
    eq(msgs[0]["payload"]["opened_at"], msgs[2]["payload"]["opened_at"], "opened_at stays")
    # The on: alert job ran once per message, with the payload in its environment.
    got = sorted(json.loads(line)["event"] for line in h.lines("delivered.txt"))
    eq(["open", "repeat", "resolve"], got, "payloads the on: alert job got")
    eq("3", db.sql("SELECT count(*) FROM agent_messages"), "no other message")


def test_failed_runs_raise_and_succeeded_runs_resolve(h):
    """Cron and event jobs fail once, then succeed: job.<name>.failed opens with the job's
    failure_alert severity and resolves, one message each; failure_alert: none raises
    nothing."""
    db = Db(h)
    db.sql("INSERT INTO agent_messages (type, payload) VALUES ('work.todo', '{\"n\": 1}'), "
           "('work.todo', '{\"n\": 2}')")
    h.config(node_yaml(h, registry()) + """
defaults:
  timezone: UTC
jobs:
  flaky:
    command: %s
    schedule: "*/2 * * * * *"
  loud:
    command: %s
    schedule: "*/2 * * * * *"
    failure_alert: critical
  quiet:
    command: %s
    schedule: "*/2 * * * * *"
    failure_alert: none
  ev:
    command: %s
    on: work.todo
    failure_alert: info
""" % (flaky(h, "flaky", 3), flaky(h, "loud", 5), flaky(h, "quiet", 6), flaky(h, "ev", 4)))
    h.start(env={"DATABASE_URL": db.url})
    h.wait_log(r"registry ready", timeout=30)
    keys = ("job.flaky.failed", "job.loud.failed", "job.ev.failed")

    def all_resolved():
        return all(alert_row(db, k, "resolved") for k in keys)
    h.wait_for(all_resolved, 30, "the three failed alerts opened and resolved")
    h.wait_for(lambda: os.path.exists(h.path("ok-quiet")), 10, "quiet ran")
    h.wait_log(r"run done: job=quiet run=\S+ status=succeeded", timeout=10)
    h.stop()

    for key, job, sev, code in (("job.flaky.failed", "flaky", "warning", 3),
                                ("job.loud.failed", "loud", "critical", 5),
                                ("job.ev.failed", "ev", "info", 4)):
        a = alert_row(db, key)
        eq(sev, a["severity"], key)
        eq(job, a["job"], key)
        eq("itest", a["node"], key)
        eq(1, a["count"], "%s raised once" % key)
        eq("1", db.sql("SELECT count(*) FROM agent_alerts WHERE key = '%s'" % key), key)
        check(re.fullmatch(r"run %s@\S+ failed: exit code %d" % (job, code), a["message"]),
              "%s message %r" % (key, a["message"]))
        # The failed run is the one the message names, and it is recorded so.
        run = a["message"].split()[1]
        eq("failed|%d" % code, db.sql("SELECT status || '|' || exit_code FROM agent_runs WHERE "
                                      "run_id = '%s'" % run), "the run of %s" % key)
        msgs = alert_messages(db, key)
        eq(["open", "resolve"], [m["payload"]["event"] for m in msgs], "%s messages" % key)
        for m in msgs:
            check_message(m, m["payload"]["event"], a)
    eq("0", db.sql("SELECT count(*) FROM agent_alerts WHERE key LIKE 'job.quiet.%'"),
       "failure_alert: none raises nothing")
    eq("0", db.sql("SELECT count(*) FROM agent_messages WHERE type = 'alert' AND "
                   "payload->>'job' = 'quiet'"), "nor a message")
    eq("failed|done", db.sql("SELECT string_agg(status, '|' ORDER BY id) FROM agent_messages "
                             "WHERE type = 'work.todo'"), "the event job's messages")
    # In memory too: meshd logged each alert and its resolve.
    for key in keys:
        eq(1, h.log_count(r"alert: job=\S+ severity=\S+ key=%s " % re.escape(key)), key)
        check(h.log_count(r"resolve: job=\S+ key=%s$" % re.escape(key)) >= 1, key)


def test_fatal_alert_until_the_job_succeeds_again(h):
    """A cron job that exhausts its retries opens job.<name>.fatal (critical, priority 10) and
    job.<name>.failed; /api/jobs/NAME lists both; once it can succeed, its next slot runs it
    and both are resolved."""
    db = Db(h)
    ok = h.path("OK")
    h.config(node_yaml(h, registry()) + """
jobs:
  doomed:
    command: %s
    schedule: "*/3 * * * * *"
    restart: on-failure
    max_retries: 1
    backoff: {initial: 50ms, max: 50ms}
""" % json.dumps(["sh", "-c", "test -e %s || exit 3" % ok]))
    h.start(env={"DATABASE_URL": db.url})
    h.wait_log(r"registry ready", timeout=30)
    h.wait_for(lambda: alert_row(db, "job.doomed.fatal", "open"), 30, "job.doomed.fatal open")
    fatal = alert_row(db, "job.doomed.fatal", "open")
    eq("critical", fatal["severity"], "fatal severity")
    check(re.fullmatch(r"gave up after 2 failures in a row \(retries exhausted\); last run "
                       r"doomed@\S+ failed: exit code 3", fatal["message"]),
          "fatal message %r" % fatal["message"])
    h.wait_for(lambda: alert_row(db, "job.doomed.failed", "open"), 10, "job.doomed.failed open")
    eq("warning", alert_row(db, "job.doomed.failed")["severity"], "failed severity")
    opened = alert_messages(db, "job.doomed.fatal")[0]
    check_message(opened, "open", fatal)
    eq(10, opened["priority"], "a critical alert's message goes first")
    status, job = h.api_json("GET", "/api/jobs/doomed")
    eq(200, status, "GET /api/jobs/doomed")
    shown = {a["key"]: a["severity"] for a in job["alerts"]}
    eq("critical", shown.get("job.doomed.fatal"), "/api/jobs/doomed alerts: %r" % shown)
    eq("warning", shown.get("job.doomed.failed"), "/api/jobs/doomed alerts: %r" % shown)

    open(ok, "w").close()
    h.wait_for(lambda: alert_row(db, "job.doomed.fatal", "resolved") and
               alert_row(db, "job.doomed.failed", "resolved"), 30, "both resolved")
    h.wait_for(lambda: not h.api_json("GET", "/api/jobs/doomed")[1]["alerts"], 10,
               "no open alert in /api/jobs/doomed")
    h.stop()
    eq("0", db.sql("SELECT count(*) FROM agent_alerts WHERE status = 'open'"), "open alerts")
    fat = [m["payload"]["event"] for m in alert_messages(db, "job.doomed.fatal")]
    check(fat[0] == "open" and fat[-1] == "resolve" and set(fat[1:-1]) <= {"repeat"},
          "fatal messages %r" % fat)


def test_missed_slots_alert_resolved_by_the_caught_up_run(h):
    """meshd was down over two slots of a daily job: they are recorded missed, one
    job.<name>.missed alert (warning) says so, and the caught-up run resolves it."""
    db = Db(h)
    now = int(time.time())
    slot = (now - 7200) // 60 * 60
    t = time.gmtime(slot)
    os.makedirs(h.state_dir, exist_ok=True)
    with open(os.path.join(h.state_dir, "schedule.state"), "w") as f:
        f.write("daily\t%d\n" % (slot - 3 * 86400))
    h.config(node_yaml(h, registry()) + """
jobs:
  daily:
    command: ["/bin/true"]
    schedule: "%d %d * * *"
    timezone: UTC
    catch_up: 3h
""" % (t.tm_min, t.tm_hour))
    h.start(env={"DATABASE_URL": db.url})
    h.wait_log(r"registry ready", timeout=30)
    h.wait_for(lambda: alert_row(db, "job.daily.missed", "resolved"), 30,
               "job.daily.missed opened and resolved")
    h.stop()
    a = alert_row(db, "job.daily.missed")
    eq("warning", a["severity"], "missed severity")
    first = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(slot - 2 * 86400))
    last = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(slot - 86400))
    check(a["message"].startswith("2 slots missed, %s to %s: " % (first, last)),
          "missed message %r" % a["message"])
    eq("2", db.sql("SELECT count(*) FROM agent_runs WHERE job = 'daily' AND status = 'missed'"),
       "missed runs")
    eq(["open", "resolve"], [m["payload"]["event"] for m in alert_messages(db, "job.daily.missed")],
       "missed messages")
    eq(2, len(alert_messages(db)), "no other alert message")


def test_bad_failure_alert_is_a_config_error(h):
    text = node_yaml(h) + """
jobs:
  x:
    command: ["/bin/true"]
    schedule: "@daily"
    failure_alert: loud
"""
    h.config(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "failure_alert: loud" in l)
    h.start()
    eq(100, h.wait_exit(), "meshd exit status for an invalid config")
    want = ("%s:%d:20: error: key 'jobs.x.failure_alert': expected one of critical, warning, "
            "info, none, got 'loud'" % (h.cfg_path, line))
    check(want in h.log(), "the error %r in the log:\n%s" % (want, h.log()[-2000:]))
    code, out, err = harness.meshctl("check", h.cfg_path)
    check(code != 0, "meshctl check fails")
    check(want in out + err, "meshctl check says %r: %r" % (want, out + err))


if __name__ == "__main__":
    harness.main(globals())
