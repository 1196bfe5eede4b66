#!/usr/bin/env python3
"""meshd-report's routing, outbox and delivery on a real PostgreSQL (the ctest cluster,
MESHD_TEST_PG) with a real webhook receiver on 127.0.0.1 (notifyfix.WebhookServer), and through
the real meshd where meshd adds something (the `alert` message that starts an `on: alert` run,
meshd's own job alerts).  Each test has a fresh registry database of its own, migrated by
meshctl.  The receivers' own behaviour (headers, signatures, e-mail, GitHub's life cycle) is
tests/integration/test_report_receivers.py's.

- an alert a worker raises under meshd reaches the webhook, and so does its resolve;
- grouping: group_wait, group_interval, repeat_interval, with lower bounds that cannot be met
  by accident and generous upper ones;
- inhibition: a database-down alert mutes the same node's check alerts until it resolves;
- quiet hours hold a warning until the window ends, and let a critical alert through;
- escalation: still firing after escalate_after, the alert goes to the next receiver;
- a receiver down for a while, then back: every notification arrives once, in order;
- two report runs at once against one registry: each notification arrives exactly once;
- 429 with Retry-After is honoured; a 400 is recorded as refused and raises an alert;
- SIGTERM during a send: the run dies by SIGTERM at once, the notification stays pending and
  goes out (once more) with the same idempotency key; SIGKILL after the receiver has it and
  before the COMMIT: the same, and nothing else is sent twice;
- the six-hourly fleet health check's failure reaches the receivers (conf/meshd.yaml's job);
- config errors exit 100 naming the key."""

import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, node_yaml  # noqa: E402
from notifyfix import WebhookServer  # noqa: E402
from test_workers import WORKER_DIR, Worker, cleanly  # noqa: E402

REPORT = os.path.join(WORKER_DIR, "meshd-report")
_run = cleanly


class Registry(harness.Database):
    """A fresh, migrated registry database on the test cluster, dropped at clean-up."""

    def __init__(self, h):
        if not os.path.exists(REPORT):
            harness.no_pg("no %s (build it first)" % REPORT)
        super().__init__(h, "report", migrate=True)

    def rows(self, query):
        out = self.sql(query)
        return [line.split("|") for line in out.splitlines()] if out else []

    def raise_alert(self, key, severity="warning", job="dq", node="pc", message="m"):
        return int(self.sql("INSERT INTO agent_alerts (node, job, key, severity, message) "
                            "VALUES ('%s', %s, '%s', '%s', '%s') RETURNING id" % (
                                node, "NULL" if job is None else "'%s'" % job, key, severity,
                                message)))

    def resolve(self, key):
        self.sql("UPDATE agent_alerts SET status = 'resolved', resolved_at = now() "
                 "WHERE key = '%s' AND status = 'open'" % key)



def registry_and_hook(h):
    """A fresh registry and a webhook receiver, both gone at the test's end."""
    hook = WebhookServer()
    h.servers.append(hook)
    return Registry(h), hook


def cfg(reg, hook, **route):
    """A config: one webhook receiver `hook`, one route with route's keys."""
    r = {"receivers": ["hook"], "group_wait": "0s"}
    r.update(route)
    return {"database": {"url": reg.url}, "linger": "0s",
            "receivers": [{"name": "hook", "type": "webhook", "url": hook.url("/hook")}],
            "routes": [r]}


def report(h, config, expect=0, env=None, timeout=60):
    wk = Worker(config, extra_env=env, binary=REPORT)
    h.workers.append(wk)
    code = wk.wait(timeout)
    eq(expect, code, "meshd-report exit code (log: %s)" % wk.log[-3000:])
    return wk


def notes(hook):
    """The JSON notes the receiver got, in arrival order."""
    return [r["json"] for r in hook.requests()]


def keys_of(note):
    return sorted(a["labels"]["key"] for a in note["alerts"])


def outbox(reg):
    return reg.rows("SELECT id, kind, status, attempts, coalesce(code, 0), "
                    "coalesce(answer, '') FROM meshd_report.outbox ORDER BY id")


# ---- grouping and timing, the worker alone ----------------------------------------------------


@_run
def test_group_wait_interval_and_repeat(h):
    reg, hook = registry_and_hook(h)
    c = cfg(reg, hook, group_wait="2s", group_interval="3s", repeat_interval="6s")
    c["linger"] = "30s"
    t0 = time.time()
    reg.raise_alert("check.parcels.missing")
    reg.raise_alert("check.parcels.dup")
    reg.raise_alert("job.load.failed", job="load")
    # One run: it lingers (30 s) for group_wait, the new alert's group_interval and the
    # repeats, woken by nothing but the clock (these alerts are not raised through meshd);
    # the test stops it at the end.
    wk = Worker(c, binary=REPORT)
    h.workers.append(wk)
    hook.wait_requests(2, timeout=20)
    first = time.time()
    got = notes(hook)
    check(first - t0 >= 2.0, "group_wait 2s: the first note came %.2f s after the raise" % (
        first - t0))
    by_job = {n["groupLabels"]["job"]: n for n in got}
    eq(["check.parcels.dup", "check.parcels.missing"], keys_of(by_job["dq"]), "dq's group")
    eq(["job.load.failed"], keys_of(by_job["load"]), "load's group")
    for n in got:
        eq("firing", n["meshd"]["kind"], "kind")
        eq("4", n["version"], "Alertmanager's version")
    # a new alert in dq's group: group_interval (3 s) after that group's notification
    t1 = time.time()
    reg.raise_alert("check.parcels.range")
    hook.wait_requests(3, timeout=20)
    third = notes(hook)[2]
    eq(["check.parcels.dup", "check.parcels.missing", "check.parcels.range"], keys_of(third),
       "the update lists the whole group")
    check(time.time() - first >= 2.5, "group_interval 3s respected")
    # repeats: 6 s after each group's last notification
    hook.wait_requests(5, timeout=30)
    kinds = [n["meshd"]["kind"] for n in notes(hook)[3:5]]
    eq(["repeat", "repeat"], kinds, "the repeats")
    check(time.time() - t1 >= 5.5, "repeat_interval 6s respected")
    # The fifth answer may still be on its way into the outbox: a stop before that COMMIT would
    # leave it pending (the crash window test_sigkill_... attacks), so wait for the record.
    h.wait_for(lambda: reg.sql("SELECT count(*) FROM meshd_report.outbox WHERE status = 'sent'")
               == "5", timeout=10, what="the fifth notification recorded")
    os.kill(wk.proc.pid, signal.SIGTERM)
    wk.wait(20)
    eq(5, len(hook.requests()), "nothing else")
    rows = outbox(reg)
    eq(["sent"] * 5, [r[2] for r in rows], "every row sent")


@_run
def test_resolved_within_group_wait_is_never_sent_and_resolve_after(h):
    reg, hook = registry_and_hook(h)
    c = cfg(reg, hook, group_wait="1h", group_interval="1s")
    reg.raise_alert("a.quick")
    report(h, c)
    reg.resolve("a.quick")
    report(h, c)
    eq(0, len(hook.requests()), "resolved before group_wait: never notified")
    c = cfg(reg, hook, group_interval="1s")
    reg.raise_alert("b.slow")
    report(h, c)
    eq(1, len(hook.requests()), "firing")
    reg.resolve("b.slow")
    time.sleep(1.2)
    report(h, c)
    got = notes(hook)
    eq(2, len(got), "firing, then resolved")
    eq("resolved", got[1]["status"], "status")
    eq("resolved", got[1]["meshd"]["kind"], "kind")
    eq("resolved", got[1]["alerts"][0]["status"], "the alert's status")
    check(got[1]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z", "endsAt set")
    eq(0, int(reg.sql("SELECT count(*) FROM meshd_report.groups")), "the group ended")


@_run
def test_inhibition_then_escalation(h):
    reg, hook = registry_and_hook(h)
    c = cfg(reg, hook, group_by=["..."], group_interval="1s")
    c["inhibit"] = [{"source": {"key": ["meshd.db_down"]}, "target": {"key": ["check.*"]},
                     "equal": ["node"]}]
    reg.raise_alert("meshd.db_down", severity="critical", job=None, node="pc")
    reg.raise_alert("check.a@pc", node="pc")
    reg.raise_alert("check.a@cloud", node="cloud")
    report(h, c)
    eq(["check.a@cloud", "meshd.db_down"], sorted(keys_of(n)[0] for n in notes(hook)),
       "pc's check is muted while pc's database is down")
    reg.resolve("meshd.db_down")
    time.sleep(1.2)
    report(h, c)
    later = notes(hook)[2:]
    eq(sorted([("check.a@pc", "firing"), ("meshd.db_down", "resolved")]),
       sorted((keys_of(n)[0], n["status"]) for n in later), "unmuted, and the resolve")

    # escalation: a second receiver gets what is still firing 2 s after it opened
    esc = WebhookServer()
    h.servers.append(esc)
    c["receivers"].append({"name": "esc", "type": "webhook", "url": esc.url("/esc")})
    c["routes"][0].update(escalate_after="2s", escalate_to=["esc"])
    reg.sql("DELETE FROM agent_alerts")
    reg.sql("DELETE FROM meshd_report.groups")
    reg.raise_alert("job.load.fatal", severity="critical", job="load")
    c["linger"] = "10s"
    report(h, c)
    got = [r["json"] for r in esc.requests()]
    eq(1, len(got), "one escalation")
    eq("escalation", got[0]["meshd"]["kind"], "kind")
    eq(1, got[0]["meshd"]["level"], "level")
    eq(["job.load.fatal"], keys_of(got[0]), "the alert")


@_run
def test_quiet_hours_hold_all_but_critical(h):
    """A window around now (UTC): the warning waits, the critical goes out; with the window
    moved past, the warning goes out."""
    reg, hook = registry_and_hook(h)
    now = time.gmtime()
    mins = now.tm_hour * 60 + now.tm_min

    def hhmm(m):
        m %= 1440
        return "%02d:%02d" % (m // 60, m % 60)

    c = cfg(reg, hook)
    c["receivers"][0]["quiet_hours"] = {"from": hhmm(mins - 60), "to": hhmm(mins + 60),
                                        "timezone": "UTC"}
    reg.raise_alert("quiet.warn", job="j1")
    reg.raise_alert("quiet.crit", severity="critical", job="j2")
    report(h, c)
    eq([["quiet.crit"]], [keys_of(n) for n in notes(hook)], "only the critical one")
    eq(1, int(reg.sql("SELECT count(*) FROM meshd_report.outbox")), "the other is not planned")
    c["receivers"][0]["quiet_hours"] = {"from": hhmm(mins - 120), "to": hhmm(mins - 60),
                                        "timezone": "UTC"}
    report(h, c)
    eq([["quiet.crit"], ["quiet.warn"]], [keys_of(n) for n in notes(hook)],
       "the warning once the window is over")


# ---- delivery -------------------------------------------------------------------------------


@_run
def test_receiver_down_then_back_nothing_lost_nothing_twice(h):
    reg, hook = registry_and_hook(h)
    c = cfg(reg, hook, group_by=["..."], group_interval="1s")
    c["backoff"] = "200ms"
    c["max_backoff"] = "1s"
    hook.down()
    for i in range(5):
        reg.raise_alert("down.%d" % i)
    wk = report(h, c)
    res = wk.result()
    eq(0, res["summary"]["sent"], "nothing sent while down")
    eq(5, int(reg.sql("SELECT count(*) FROM meshd_report.outbox WHERE status = 'pending'")),
       "all pending")
    eq(1, int(reg.sql("SELECT count(*) FROM meshd_report.outbox WHERE attempts > 0")),
       "one attempt: the receiver is paused, not hammered")
    check(reg.sql("SELECT paused_until > now() FROM meshd_report.receivers "
                  "WHERE name = 'hook'") == "t", "paused")
    reg.resolve("down.0")
    time.sleep(1.2)
    wk = report(h, c)  # still down: the resolve is planned behind its firing
    hook.up()
    time.sleep(1.2)
    c["linger"] = "10s"
    wk = report(h, c)
    got = notes(hook)
    eq(6, len(got), "5 firing + 1 resolved, once each")
    idems = [r["headers"].get("idempotency-key") for r in hook.requests()]
    eq(len(idems), len(set(idems)), "no idempotency key twice")
    order = [(keys_of(n)[0], n["status"]) for n in got if keys_of(n)[0] == "down.0"]
    eq([("down.0", "firing"), ("down.0", "resolved")], order, "in order within the group")
    eq(["sent"] * 6, [r[2] for r in outbox(reg)], "all sent")


@_run
def test_two_runs_at_once_one_notification_each(h):
    reg, hook = registry_and_hook(h)
    c = cfg(reg, hook, group_by=["..."])
    reg.sql("INSERT INTO agent_alerts (node, job, key, severity, message) "
            "SELECT 'pc', 'dq', 'two.' || g, 'warning', 'm' FROM generate_series(1, 200) g")
    a = Worker(c, extra_env={"MESHD_NODE": "pc"}, binary=REPORT)
    b = Worker(c, extra_env={"MESHD_NODE": "cloud"}, binary=REPORT)
    h.workers += [a, b]
    eq(0, a.wait(120), "run a: %s" % a.log[-2000:])
    eq(0, b.wait(120), "run b: %s" % b.log[-2000:])
    got = notes(hook)
    eq(200, len(got), "200 notifications")
    eq(200, len({keys_of(n)[0] for n in got}), "each alert once")
    eq(200, int(reg.sql("SELECT count(*) FROM meshd_report.outbox WHERE status = 'sent'")),
       "200 rows sent")


@_run
def test_retry_after_and_refusal(h):
    reg, hook = registry_and_hook(h)
    c = cfg(reg, hook)
    hook.plan([{"status": 429, "retry_after": "2"}])
    reg.raise_alert("ra.1")
    t0 = time.time()
    c["linger"] = "10s"
    report(h, c)
    reqs = hook.requests()
    eq(2, len(reqs), "429, then the retry")
    check(reqs[1]["t"] - reqs[0]["t"] >= 1.9,
          "Retry-After: 2 honoured (%.2f s)" % (reqs[1]["t"] - reqs[0]["t"]))
    check(time.time() - t0 < 15, "not much later either")
    row = outbox(reg)[0]
    eq(("sent", "2"), (row[2], row[3]), "sent at the second attempt")

    hook.plan([{"status": 400, "body": "bad payload"}])
    reg.raise_alert("ra.2", job="other")
    c["linger"] = "0s"
    wk = report(h, c, expect=1)
    row = outbox(reg)[-1]
    eq(("failed", "400"), (row[2], row[4]), "refused")
    check("bad payload" in row[5], "the receiver's words kept: %r" % row[5])
    alerts = [e for e in wk.events if e["event"] == "alert"]
    eq(["report.receiver.hook"], [e["key"] for e in alerts], "an alert about the receiver")
    reg.raise_alert("ra.3", job="third")
    wk = report(h, c)
    eq(["report.receiver.hook"], [e["key"] for e in wk.events if e["event"] == "resolve"],
       "resolved by the next success")


@_run
def test_sigterm_during_a_send_keeps_it_pending(h):
    reg, hook = registry_and_hook(h)
    c = cfg(reg, hook)
    hook.plan([{"status": 200, "delay": 10}])
    reg.raise_alert("slow.1")
    wk = Worker(c, binary=REPORT)
    h.workers.append(wk)
    hook.wait_requests(1, timeout=20)
    t0 = time.time()
    os.kill(wk.proc.pid, signal.SIGTERM)
    code = wk.wait(20)
    eq(-signal.SIGTERM, code, "died by SIGTERM (log: %s)" % wk.log[-2000:])
    check(time.time() - t0 < 2, "within a second or so (%.2f s)" % (time.time() - t0))
    row = outbox(reg)[0]
    eq(("pending", "0"), (row[2], row[3]), "still pending, no attempt recorded")
    report(h, c)
    reqs = hook.requests()
    eq(2, len(reqs), "sent once more")
    eq(reqs[0]["headers"].get("idempotency-key"), reqs[1]["headers"].get("idempotency-key"),
       "the same idempotency key both times")
    eq("sent", outbox(reg)[0][2], "recorded")


@_run
def test_sigkill_after_the_receiver_got_it_sends_it_once_more(h):
    """The window the outbox cannot close: the receiver has the notification, the worker dies
    (SIGKILL, no clean-up) before its COMMIT.  The row lock goes with the session; the row is
    still pending and the next run sends it again, once, with the same idempotency key, and
    nothing else twice."""
    reg, hook = registry_and_hook(h)
    c = cfg(reg, hook, group_by=["..."])
    hook.plan([{"status": 200, "delay": 10}])
    reg.raise_alert("kill.1")
    reg.raise_alert("kill.2")
    wk = Worker(c, binary=REPORT)
    h.workers.append(wk)
    hook.wait_requests(1, timeout=20)
    os.kill(wk.proc.pid, signal.SIGKILL)
    eq(-signal.SIGKILL, wk.wait(20), "killed")
    eq([("pending", "0"), ("pending", "0")], [(r[2], r[3]) for r in outbox(reg)],
       "both still pending, no attempt recorded")
    report(h, c)
    reqs = hook.requests()
    keys = [r["headers"].get("idempotency-key") for r in reqs]
    eq(3, len(reqs), "the one in flight once more, the other once")
    eq(keys[0], keys[1], "the re-send carries the first one's idempotency key")
    check(keys[2] != keys[0], "the other notification is another key")
    eq(["sent", "sent"], [r[2] for r in outbox(reg)], "both recorded")


@_run
def test_config_errors_exit_100(h):
    reg = Registry(h)
    for bad, want in [
        ({"receivers": []}, "receivers: at least one is required"),
        ({"receivers": [{"name": "x", "type": "pager"}]}, "receivers[0].type"),
        ({"receivers": [{"name": "m", "type": "email", "url": "smtp://h", "from": "a@b"}]},
         "receivers[0].to: required"),
        ({"receivers": [{"name": "h", "type": "webhook", "url": "http://x/"}],
          "routes": [{"receivers": ["nope"]}]}, "routes[0].receivers[0]: no receiver"),
    ]:
        bad["database"] = {"url": reg.url}
        wk = report(h, bad, expect=100)
        check(want in wk.log, "%r in the log: %s" % (want, wk.log[-1000:]))


# ---- through meshd ----------------------------------------------------------------------------

RAISE = r'''
import json, os
p = json.loads(os.environ["MESHD_MESSAGE_PAYLOAD"])
line = {"event": p["op"], "key": p["key"]}
if p["op"] == "alert":
    line.update(severity=p.get("severity", "warning"), message=p.get("message", "m"))
os.write(int(os.environ["MESHD_STATUS_FD"]), (json.dumps(line) + "\n").encode())
'''


def start_meshd(h, reg, jobs):
    h.config(node_yaml(h, "  worker_dir: %s\nregistry:\n  url: %s\n" % (
        json.dumps(WORKER_DIR), json.dumps(reg.url))) + "jobs:\n" + jobs)
    h.start(env={"DATABASE_URL": reg.url})
    h.wait_log(r"registry ready", timeout=30)


def publish(reg, mtype, payload):
    code, out, err = harness.meshctl("publish", mtype, json.dumps(payload), "--url", reg.url)
    eq(0, code, "meshctl publish: %s" % err)


@_run
def test_alert_under_meshd_reaches_the_webhook_and_its_resolve_too(h):
    reg, hook = registry_and_hook(h)
    script = h.path("raise.py")
    with open(script, "w") as f:
        f.write(RAISE)
    c = cfg(reg, hook, group_interval="1s")
    start_meshd(h, reg, """  dq:
    command: [python3, %s]
    on: test.raise
  notify:
    worker: report
    on: alert
    env: {DATABASE_URL: %s}
    config: %s
""" % (json.dumps(script), json.dumps(reg.url), json.dumps(c)))
    t0 = time.time()
    publish(reg, "test.raise", {"op": "alert", "key": "check.parcels.missing_co_no",
                                "message": "3 rows"})
    hook.wait_requests(1, timeout=30)
    took = time.time() - t0
    note = notes(hook)[0]
    eq("firing", note["status"], "status")
    a = note["alerts"][0]
    eq(("check.parcels.missing_co_no", "dq", "itest", "3 rows"),
       (a["labels"]["key"], a["labels"]["job"], a["labels"]["node"],
        a["annotations"]["message"]), "the alert as raised")
    check(took < 20, "alert -> webhook in %.2f s" % took)
    time.sleep(1.1)
    publish(reg, "test.raise", {"op": "resolve", "key": "check.parcels.missing_co_no"})
    hook.wait_requests(2, timeout=30)
    eq("resolved", notes(hook)[1]["status"], "then resolved")
    h.stop()
    raised = reg.sql("SELECT count(*) FROM agent_messages WHERE type = 'alert'")
    check(int(raised) >= 2, "meshd published alert messages: %s" % raised)


@_run
def test_fleet_health_failure_reaches_the_webhook(h):
    """conf/meshd.yaml's fleet-health-check: `meshctl health` every 6 hours; here run now.  An
    open critical alert makes health fail; the run's failure raises job.<name>.failed, which
    reaches the receiver."""
    reg, hook = registry_and_hook(h)
    reg.raise_alert("disk.full", severity="critical", job=None, node="elsewhere")
    c = cfg(reg, hook, match={"key": ["job.*"]})
    start_meshd(h, reg, """  fleet-health-check:
    command: [%s, health, --url, %s]
    schedule: "0 */6 * * *"
    failure_alert: warning
  notify:
    worker: report
    on: alert
    env: {DATABASE_URL: %s}
    config: %s
""" % (json.dumps(harness.MESHCTL), json.dumps(reg.url), json.dumps(reg.url), json.dumps(c)))
    sock = os.path.join(h.state_dir, "meshd.sock")
    h.wait_for(lambda: os.path.exists(sock), what="the API socket")
    status, body = h.api_json("POST", "/api/jobs/fleet-health-check/run", sock=True)
    eq(202, status, "run: %r" % body)
    hook.wait_requests(1, timeout=60)
    note = notes(hook)[0]
    eq(["job.fleet-health-check.failed"], keys_of(note), "the health check's failure")
    check(re.search(r"exit", note["alerts"][0]["annotations"]["message"]),
          "the message says how it failed: %r" % note["alerts"][0]["annotations"]["message"])


if __name__ == "__main__":
    harness.main(globals())
