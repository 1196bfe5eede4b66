#!/usr/bin/env python3
"""The bus's priority and targets (sql/0005; docs/cluster.md, "Priority and targets") on the real
meshd and a real PostgreSQL: a database of its own per test on the shared throwaway cluster
(MESHD_TEST_PG, ctest's pg fixture), migrated by meshctl.

- messages queued before meshd starts, or while the on: job is paused, run most urgent first,
  first in first out within a priority;
- a message for another job is left to it, and one for a job nobody has stays pending (and
  `meshctl health` says so once it is old; `meshctl publish` warns at once);
- a message for another node is left pending by this node and taken by a second meshd of that
  name;
- a worker's `message` status line carries priority and target into agent_messages, and a bad
  priority is a bad status line.

Each on: job appends "<job> <message id> <payload>" to a file, one line per run, so the order
of the lines is the order the messages ran in (one at a time per job)."""

import contextlib
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, node_yaml  # noqa: E402

YEARLY = '"0 0 1 1 *"'


psql = harness.psql


def Db(h):
    """A fresh, migrated database on the test cluster, dropped at the end of the test."""
    return harness.Database(h, "bus_routing", migrate=True)


def publish(db, mtype, payload, *opts, warn=None):
    """meshctl publish; returns the message id.  warn: a regex stderr must match (None: stderr
    must be empty)."""
    code, out, err = harness.meshctl("publish", mtype, json.dumps(payload), "--url", db.url,
                                     *opts)
    eq(0, code, "meshctl publish %s %s: %s" % (mtype, " ".join(opts), err))
    check(out.strip().isdigit(), "publish prints the id: %r" % out)
    if warn is None:
        eq("", err, "publish's stderr")
    else:
        check(re.search(warn, err), "publish warns /%s/: %r" % (warn, err))
    return int(out)


def consumer(out):
    """An on: job's command: one line per run, "<job> <message id> <payload>"."""
    script = ('printf "%%s %%s %%s\\n" "$MESHD_JOB" "$MESHD_MESSAGE_ID" '
              '"$MESHD_MESSAGE_PAYLOAD" >> %s' % out)
    return json.dumps(["sh", "-c", script])


def runs(h, name="runs.txt"):
    """The lines of the runs file as (job, id, payload dict)."""
    got = []
    for line in h.lines(name):
        job, mid, payload = line.split(" ", 2)
        got.append((job, int(mid), json.loads(payload)))
    return got


def registry(heartbeat="1h"):
    # A long heartbeat: the bus's periodic look at the queue (every heartbeat) cannot stand in
    # for the wake-ups these tests are about.
    return "registry:\n  heartbeat: %s\n" % heartbeat


def test_priority_order_then_fifo_before_start(h):
    """Messages queued before meshd starts run by priority (lower first), then in the order
    they were published; messages for another node or job are stepped over."""
    db = Db(h)
    order = [("a", 100), ("b", 5), ("c", 100), ("d", 0), ("e", 5), ("f", 1000000), ("g", None)]
    for key, prio in order:
        opts = ("--priority", str(prio)) if prio is not None else ()
        publish(db, "job.todo", {"k": key}, *opts)
    elsewhere = publish(db, "job.todo", {"k": "node-b"}, "--priority", "0", "--to-node", "b",
                        warn=r"warning: no node 'b' in the registry yet; message \d+ stays pending")
    other = publish(db, "job.todo", {"k": "job-other"}, "--priority", "0", "--to-job", "other",
                    warn=r"warning: no job 'other' in the registry yet")
    publish(db, "other.type", {"k": "x"}, "--priority", "0")
    out = h.path("runs.txt")
    h.config(node_yaml(h, registry()) + """
jobs:
  work:
    command: %s
    on: job.todo
""" % consumer(out))
    h.start(env={"DATABASE_URL": db.url})
    h.wait_for(lambda: len(h.lines("runs.txt")) >= 7, 30, "the seven messages run")
    h.wait_for(lambda: db.sql("SELECT count(*) FROM agent_messages WHERE type = 'job.todo' AND "
                              "status = 'done'") == "7", 15, "the seven marked done")
    got = runs(h)
    eq(["d", "b", "e", "a", "c", "g", "f"], [p["k"] for _, _, p in got],
       "run order (priority, then first in first out)")
    # The claim order in the database agrees with the run order.
    eq([str(mid) for _, mid, _ in got],
       db.sql("SELECT string_agg(id::text, ' ' ORDER BY claimed_at, id) FROM agent_messages "
              "WHERE status = 'done'").split(), "claimed_at order")
    eq("100", db.sql("SELECT priority FROM agent_messages WHERE payload->>'k' = 'g'"),
       "no --priority: the default")
    # Each claim logs the message's priority.
    h.wait_log(r"message: job=work id=%d type=job\.todo priority=1000000" % got[-1][1])
    h.stop()
    eq(7, len(h.lines("runs.txt")), "nothing else ran")
    for mid in (elsewhere, other):
        eq("pending|0|", db.sql("SELECT status || '|' || attempts || '|' || "
                                "coalesce(claimed_by, '') FROM agent_messages WHERE id = %d" % mid),
           "message %d (for another consumer) untouched" % mid)
    eq("pending", db.sql("SELECT status FROM agent_messages WHERE type = 'other.type'"))


def test_paused_job_takes_the_most_urgent_first_on_resume(h):
    """Messages published while the on: job is paused wait, and on resume run at once, most
    urgent first."""
    db = Db(h)
    out = h.path("runs.txt")
    h.config(node_yaml(h, registry()) + """
jobs:
  work:
    command: %s
    on: job.todo
""" % consumer(out))
    h.start(env={"DATABASE_URL": db.url})
    h.wait_log(r"registry ready", timeout=30)
    status, _, body = h.api("POST", "/api/jobs/work/pause", sock=True)
    eq(200, status, "pause: %r" % body)
    for key, prio in (("p", 300), ("q", 20), ("r", 300), ("s", 10), ("t", 20)):
        publish(db, "job.todo", {"k": key}, "--priority", str(prio))
    # Five publishes take meshctl's start-up and a connection each (tens of ms), against a
    # few ms from NOTIFY to a run: had the pause not held, the first ones would have run.
    eq([], h.lines("runs.txt"), "nothing runs while paused")
    status, _, body = h.api("POST", "/api/jobs/work/resume", sock=True)
    eq(200, status, "resume: %r" % body)
    # Within 15 s, not at the next heartbeat (1 h): resume wakes the bus.
    h.wait_for(lambda: len(h.lines("runs.txt")) >= 5, 15, "the five run after the resume")
    eq(["s", "q", "t", "p", "r"], [p["k"] for _, _, p in runs(h)], "run order after resume")
    h.stop()


def test_to_job_goes_to_the_named_job(h):
    """Two on: jobs of one type: a message for one of them is run by that one only; a message
    for a job nobody has stays pending, meshctl publish warns about it, and meshctl health
    fails on it once it is older than --stale."""
    db = Db(h)
    out = h.path("runs.txt")
    # Queued first, so both jobs find work at once: each takes only what it may.
    m1 = publish(db, "job.todo", {"k": 1}, "--to-job", "beta", warn=r"no job 'beta'")
    m2 = publish(db, "job.todo", {"k": 2}, "--to-job", "alpha", warn=r"no job 'alpha'")
    m3 = publish(db, "job.todo", {"k": 3}, "--to-job", "beta", "--to-node", "itest",
                 warn=r"no node 'itest'")
    m4 = publish(db, "job.todo", {"k": 4})
    h.config(node_yaml(h, registry()) + """
jobs:
  alpha:
    command: %s
    on: job.todo
  beta:
    command: %s
    on: job.todo
""" % (consumer(out), consumer(out)))
    h.start(env={"DATABASE_URL": db.url})
    h.wait_for(lambda: db.sql("SELECT count(*) FROM agent_messages WHERE status = 'done'")
               == "4", 30, "the four messages done")
    # Once registered, a target the registry knows is published without a warning, and one it
    # does not know with one.
    h.wait_for(lambda: db.sql("SELECT count(*) FROM agent_registry WHERE node = 'itest' AND "
                              "job IN ('alpha', 'beta')") == "2", 15, "the jobs registered")
    m5 = publish(db, "job.todo", {"k": 5}, "--to-job", "gamma",
                 warn=r"warning: no job 'gamma' in the registry yet; message \d+ stays pending "
                      r"until an on: job\.todo job of that name takes it")
    m6 = publish(db, "job.todo", {"k": 6}, "--to-job", "alpha", "--to-node", "itest")
    h.wait_for(lambda: db.sql("SELECT status FROM agent_messages WHERE id = %d" % m6) == "done",
               15, "the message for itest/alpha done")
    by = {mid: job for job, mid, _ in runs(h)}
    eq({m1: "beta", m2: "alpha", m3: "beta", m6: "alpha"},
       {k: v for k, v in by.items() if k != m4}, "who ran the addressed messages")
    check(m4 in by, "the message for anyone ran (by %r)" % by.get(m4))
    eq("itest/beta", db.sql("SELECT claimed_by FROM agent_messages WHERE id = %d" % m1))
    eq("pending|0", db.sql("SELECT status || '|' || attempts FROM agent_messages WHERE id = %d"
                           % m5), "the message for job gamma is left pending")
    check(m5 not in by, "nobody ran the message for gamma")

    # meshctl health: a young message for an unknown job is not yet a failure; an hour-old one
    # is, named with its target.
    def health():
        code, out, err = harness.meshctl("health", "--url", db.url, "--config", h.cfg_path,
                                         "--json")
        check(code in (0, 1), "meshctl health could not check: %s" % err)
        checks = {c["name"]: c for c in json.loads(out)["checks"]}
        return checks["messages"]
    c = health()
    check(c["ok"], "a young message is no failure: %r" % c)
    db.sql("UPDATE agent_messages SET created_at = now() - interval '1 hour' WHERE id = %d" % m5)
    c = health()
    check(not c["ok"], "an hour-old message for job gamma fails the check: %r" % c)
    eq([(m5, "gamma", None)], [(m["id"], m["to_job"], m["to_node"]) for m in c["messages"]])
    check("to_job=gamma" in c["detail"], "the detail names the target: %r" % c["detail"])
    h.stop()


@contextlib.contextmanager
def _second_node(name):
    """A second Harness (another meshd node) for the length of a with block; its meshd is
    killed by PID and its directory removed afterwards, whatever happened."""
    hb = harness.Harness(name)
    try:
        yield hb
    finally:
        if hb.running():
            hb.proc.kill()
            hb.proc.wait()
        problems = hb.teardown()
        shutil.rmtree(hb.dir, ignore_errors=True)
        check(not problems, "node b's teardown: %r" % problems)


def _node_conf(h, node, out):
    return """node:
  name: %s
  state_dir: %s
%sjobs:
  work:
    command: %s
    on: job.node
""" % (node, json.dumps(h.state_dir), registry(), consumer(out))


def test_to_node_is_left_for_that_node(h):
    """Node a leaves a message for node b pending, even as the most urgent of its type; node b
    (a second meshd on the same database) takes it once it is up, and only it."""
    db = Db(h)
    out = h.path("runs.txt")  # both nodes append here
    mb = publish(db, "job.node", {"k": "for-b"}, "--priority", "0", "--to-node", "b",
                 warn=r"no node 'b'")
    m_any = publish(db, "job.node", {"k": "any"})
    ma = publish(db, "job.node", {"k": "for-a"}, "--to-node", "a", warn=r"no node 'a'")
    with _second_node("bus_node_b") as hb:
        h.config(_node_conf(h, "a", out))
        hb.config(_node_conf(hb, "b", out))
        h.start(env={"DATABASE_URL": db.url})
        h.wait_for(lambda: db.sql("SELECT count(*) FROM agent_messages WHERE status = 'done'")
                   == "2", 30, "node a runs the two it may")
        eq([m_any, ma], [mid for _, mid, _ in runs(h)], "node a's runs, in order")
        eq("pending|0", db.sql("SELECT status || '|' || attempts FROM agent_messages WHERE "
                               "id = %d" % mb), "node a left b's message alone")
        hb.start(env={"DATABASE_URL": db.url})
        h.wait_for(lambda: db.sql("SELECT status FROM agent_messages WHERE id = %d" % mb)
                   == "done", 30, "node b runs its message")
        eq("b/work|1", db.sql("SELECT claimed_by || '|' || attempts FROM agent_messages WHERE "
                              "id = %d" % mb))
        # While both run, a new message for a goes to a, one for b to b.
        ma2 = publish(db, "job.node", {"k": "for-a-2"}, "--to-node", "a")
        mb2 = publish(db, "job.node", {"k": "for-b-2"}, "--to-node", "b")
        h.wait_for(lambda: db.sql("SELECT count(*) FROM agent_messages WHERE status = 'done'")
                   == "5", 30, "both new messages done")
        eq("a/work b/work", db.sql("SELECT string_agg(claimed_by, ' ' ORDER BY id) FROM "
                                   "agent_messages WHERE id IN (%d, %d)" % (ma2, mb2)))
        h.stop()
        hb.stop()
    lines = h.lines("runs.txt")
    eq(5, len(lines), "each message ran once: %r" % lines)


def test_worker_message_event_lands_with_priority_and_target(h):
    """A worker's status line {"event":"message", ..., "priority", "to_node", "to_job"} lands
    in agent_messages with those columns, and only the named job runs it; a bad priority is a
    bad status line and sends nothing."""
    db = Db(h)
    out = h.path("runs.txt")
    good = ('{"event":"message","type":"job.w","payload":{"n":1},"priority":7,'
            '"to_node":"itest","to_job":"sink"}')
    bad = '{"event":"message","type":"job.w","payload":{"n":2},"priority":1.5}'
    h.config(node_yaml(h, registry()) + """
jobs:
  producer:
    command: %s
    schedule: %s
  other:
    command: %s
    on: job.w
  sink:
    command: %s
    on: job.w
""" % (fw("status", good, "status", bad), YEARLY, consumer(out), consumer(out)))
    # other comes first: meshd asks the bus for its idle on: jobs in config order, so without
    # the target test other would take the message.
    h.start(env={"DATABASE_URL": db.url})
    h.wait_log(r"registry ready", timeout=30)
    eq(202, h.api("POST", "/api/jobs/producer/run", sock=True)[0])
    h.wait_for(lambda: db.sql("SELECT count(*) FROM agent_messages WHERE status = 'done'")
               == "1", 30, "the worker's message runs")
    h.wait_log(r"message: job=producer run=\S+ type=job\.w priority=7 to_node=itest "
               r"to_job=sink")
    h.wait_log(r"bad status line: job=producer .*'message': 'priority' must be a whole number "
               r"from 0 to 1000000")
    row = db.sql("SELECT type, payload::text, priority, to_node, to_job, source, "
                 "run_id IS NOT NULL, claimed_by FROM agent_messages")
    eq('job.w|{"n": 1}|7|itest|sink|itest/producer|t|itest/sink', row)
    eq([("sink", {"n": 1})], [(job, p) for job, _, p in runs(h)], "only sink ran it")
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
