#!/usr/bin/env python3
"""The registry on the real meshd and a real PostgreSQL: runs, metrics and alerts land in their
tables; a database outage loses nothing and duplicates nothing; an unreachable database at start
is not fatal; a SIGKILL of meshd during the replay neither loses nor duplicates.

Each test starts a private cluster (tests/pg/pgctl.sh, under /var/tmp), so it can stop and start
it at will without touching the shared test cluster."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, log_line_time, node_yaml  # noqa: E402

PGCTL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg", "pgctl.sh")


class Cluster:
    def __init__(self, h):
        # As root the server runs as postgres, which may not be able to enter the test's temp
        # dir (a TMPDIR under a 0700 home): the cluster gets a directory of its own under
        # /var/tmp, which pgctl.sh creates 0700 for the server's user, and removes at clean-up.
        # Its socket is in DIR/sock, a short path (a socket path must fit in 107 bytes).
        self.dir = "/var/tmp/meshd-itpg-%d-%s" % (os.getpid(), os.path.basename(h.dir)[-8:])
        self.sock = os.path.join(self.dir, "sock")
        self.url = "host=%s port=5432 user=postgres dbname=meshd" % self.sock
        h.notes.append(self)

    def start(self):
        r = subprocess.run([PGCTL, "start", self.dir, self.sock], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0 and not os.path.isdir("/usr/lib/postgresql"):
            harness.no_pg("no PostgreSQL binaries (install postgresql-15)")
        check(r.returncode == 0, "pgctl.sh start failed: %s" % r.stderr.strip()[-300:])

    def stop(self, mode="fast"):
        pgbin = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
        cmd = ["/usr/lib/postgresql/%s/bin/pg_ctl" % pgbin, "-D", os.path.join(self.dir, "data"),
               "-m", mode, "-w", "stop"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, capture_output=True, timeout=120, cwd="/")

    def sql(self, query, db="meshd"):
        r = subprocess.run(["psql", self.url.replace("dbname=meshd", "dbname=" + db), "-XAtqc",
                            query], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "psql failed: %s" % r.stderr)
        return r.stdout.strip()

    def create_db(self):
        self.sql("CREATE DATABASE meshd", db="postgres")

    @classmethod
    def with_db(cls, h, migrate=False):
        """A private cluster, started, with an empty database meshd (migrated if asked)."""
        pg = cls(h)
        pg.start()
        pg.create_db()
        if migrate:
            subprocess.run([harness.MESHCTL, "migrate", "--url", pg.url], check=True,
                           capture_output=True, timeout=60)
        return pg


def _cleanup(h):
    for n in h.notes:
        if isinstance(n, Cluster):
            n.stop("immediate")
            subprocess.run([PGCTL, "destroy", n.dir], timeout=120)


def _run(fn):
    def wrapped(h):
        try:
            fn(h)
        finally:
            _cleanup(h)
    wrapped.__name__ = fn.__name__
    return wrapped


TICK = """
jobs:
  tick:
    command: %s
    schedule: "* * * * * *"
"""


def json_str(text):
    return json.dumps(text)


def _tick_cmd():
    return fw("print", "hello from tick", "metric", "rows", "42",
              "status", '{"event":"alert","severity":"warning","key":"k1","message":"m"}',
              "exit", "3")


def _spawned_runs(h, job):
    return sorted(set(m.group(1) for m in
                      re.finditer(r"spawned: job=%s run=(\S+)" % job, h.log())))


def _check_each_metric_once(h, pg, job, name):
    """Every metric meshd received (its 'metric:' log line, written as the event is journalled)
    is in agent_metrics exactly once, and nothing else is.  Which runs send one is up to the
    runs: one stopped at shutdown may have sent its metric or not, so counting runs by their
    final status cannot say how many metrics there must be; meshd's log can."""
    closed = h.log_find(r"registry closed: unsent=(\d+)")
    check(closed and closed[-1].group(1) == "0",
          "meshd's last stop left events unsent: %r" % (closed[-1].group(0) if closed else None))
    received = [m.group(1) for m in h.log_find(r"metric: job=%s run=(\S+) name=%s " %
                                                (re.escape(job), re.escape(name)))]
    check(received, "no %s metric received from %s" % (name, job))
    eq(len(received), len(set(received)), "metrics received per run (one each)")
    rows = pg.sql("SELECT run_id FROM agent_metrics WHERE job = '%s' AND name = '%s' "
                  "ORDER BY run_id" % (job, name)).split()
    eq(sorted(received), rows, "the runs of the %s metrics in agent_metrics" % name)


@_run
def test_runs_metrics_alerts_land(h):
    pg = Cluster.with_db(h)
    h.config(node_yaml(h) + TICK % _tick_cmd())
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=30)
    h.wait_for(lambda: int(pg.sql("SELECT count(*) FROM agent_runs WHERE status = 'failed'")) >= 2,
               30, "two finished runs in agent_runs")
    h.stop()
    runs = _spawned_runs(h, "tick")
    rows = pg.sql("SELECT run_id, status, exit_code, replace(output_tail, E'\\n', ' ') FROM agent_runs "
                  "WHERE job = 'tick' ORDER BY run_id").split("\n")
    eq(len(runs), len(rows), "one agent_runs row per spawned run")
    for line in rows:
        run_id, status, code, tail = (line.split("|", 3) + [""] * 4)[:4]
        check(run_id in runs, "run %s was spawned" % run_id)
        if status != "stopped":
            eq("failed", status, "status of %s" % run_id)
            eq("3", code, "exit code of %s" % run_id)
            check("hello from tick" in tail, "output tail of %s: %r" % (run_id, tail))
    _check_each_metric_once(h, pg, "tick", "rows")
    eq("0", pg.sql("SELECT count(*) FROM agent_metrics WHERE name = 'rows' AND value <> 42"),
       "metric values")
    eq("1", pg.sql("SELECT count(*) FROM agent_alerts WHERE key = 'k1' AND status = 'open'"),
       "one open alert per key")
    eq("down", pg.sql("SELECT state FROM agent_registry WHERE job IS NULL"), "node row at exit")


@_run
def test_output_tail_is_escaped_and_bounded(h):
    """Worker output reaches agent_runs.output_tail escaped (a Latin-1 byte used to make every
    registry write fail, for good) and bounded (20 lines of 8 KiB used to make the run_end event
    too large for the journal: the run was never recorded): the newest lines that fit."""
    pg = Cluster.with_db(h)
    latin = ["/bin/sh", "-c", r"printf 'caf\351 \033[1mbold\007\n'"]
    long_ = ["/bin/sh", "-c",
             r"i=0; while [ $i -lt 25 ]; do printf '%08000d\n' $i; i=$((i+1)); done; echo last"]
    h.config(node_yaml(h) + """
jobs:
  latin: {command: %s, schedule: always, restart: never}
  long: {command: %s, schedule: always, restart: never}
""" % (json.dumps(latin), json.dumps(long_)))
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=30)
    h.wait_for(lambda: pg.sql("SELECT count(*) FROM agent_runs WHERE status = 'succeeded'") == "2",
               30, "both runs in agent_runs")
    eq(r"caf\xe9 \x1b[1mbold\x07", pg.sql("SELECT output_tail FROM agent_runs WHERE job = 'latin'"),
       "the latin run's tail")
    size, tail = pg.sql("SELECT octet_length(output_tail) || '|' || output_tail FROM agent_runs "
                        "WHERE job = 'long'").split("|", 1)
    check(int(size) <= 65536, "output_tail of %s bytes" % size)
    lines = tail.split("\n")
    eq("last", lines[-1], "the newest line last")
    check(len(lines) >= 6, "only %d lines kept" % len(lines))
    eq(["%08000d" % i for i in range(25 - (len(lines) - 1), 25)], lines[:-1], "the newest lines")
    eq(0, h.log_count(r"registry write failed|not journalled"), "registry errors")
    h.stop()


@_run
def test_result_summary_lands(h):
    """A worker's {"event":"result"} summary object reaches agent_runs.summary; one too large for
    the run_end event is stored as a truncated marker beside a full output tail; a summary that
    is not an object is not stored, with a warning."""
    pg = Cluster.with_db(h)
    summary = {"views": [{"view": "public.mv_a", "outcome": "refreshed", "rows": 12}],
               "failed": 0, "note": "caf\u00e9 \"q\""}
    big = {"pad": "x" * 20000}
    # 25 lines of 8 kB, then the fake worker (exec'd as $0) sends the oversized result
    big_cmd = ["/bin/sh", "-c",
               "i=0; while [ $i -lt 25 ]; do printf '%08000d\\n' $i; i=$((i+1)); done; "
               'exec "$0" "$@"'] + json.loads(fw("status", json.dumps(
                   {"event": "result", "status": "failed", "summary": big}), "exit", "1"))
    h.config(node_yaml(h) + """
jobs:
  sum: {command: %s, schedule: always, restart: never}
  big: {command: %s, schedule: always, restart: never}
  scalar: {command: %s, schedule: always, restart: never}
""" % (fw("status", json.dumps({"event": "result", "status": "ok", "summary": summary})),
       json.dumps(big_cmd), fw("status", '{"event":"result","status":"ok","summary":5}')))
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=30)
    h.wait_for(lambda: pg.sql("SELECT count(*) FROM agent_runs WHERE finished_at IS NOT NULL")
               == "3", 30, "three finished runs in agent_runs")
    eq(summary, json.loads(pg.sql("SELECT summary FROM agent_runs WHERE job = 'sum'")),
       "the summary as the worker wrote it")
    eq({"truncated": True, "bytes": len(json.dumps(big, separators=(",", ":")))},
       json.loads(pg.sql("SELECT summary FROM agent_runs WHERE job = 'big'")),
       "an oversized summary")
    tail = pg.sql("SELECT output_tail FROM agent_runs WHERE job = 'big'").split("\n")
    eq("%08000d" % 24, tail[-1], "the big run's newest output line")
    check(len(tail) >= 4, "only %d tail lines beside the summary" % len(tail))
    eq("failed", pg.sql("SELECT status FROM agent_runs WHERE job = 'big'"), "the big run")
    eq("", pg.sql("SELECT coalesce(summary::text, '') FROM agent_runs WHERE job = 'scalar'"),
       "a scalar summary")
    check(h.log_find(r"result: job=scalar run=\S+ summary is not a JSON object: not stored"),
          "no warning about the scalar summary")
    check(h.log_find(r"result: job=big run=\S+ summary of \d+ bytes is over 16384"),
          "no warning about the oversized summary")
    eq(0, h.log_count(r"registry write failed|not journalled"), "registry errors")
    h.stop()


@_run
def test_outage_loses_and_duplicates_nothing(h):
    pg = Cluster.with_db(h)
    h.config(node_yaml(h) + TICK % _tick_cmd())
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=30)
    pg.stop("immediate")
    h.wait_log(r"db lost", timeout=30)
    n = len(_spawned_runs(h, "tick"))
    h.wait_for(lambda: len(_spawned_runs(h, "tick")) >= n + 3, 30, "runs during the outage")
    pg.start()
    h.wait_log(r"db reconnected", timeout=60)
    h.stop()
    # meshd shipped what it could at stop; a second start ships the rest from the journal.
    h.proc = None
    h.exit_code = None
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=30, count=2)
    runs = _spawned_runs(h, "tick")
    h.wait_for(lambda: int(pg.sql("SELECT count(*) FROM agent_runs WHERE job = 'tick'"))
               >= len(runs), 30, "every run in agent_runs")
    h.stop()
    runs = _spawned_runs(h, "tick")
    eq(str(len(runs)), pg.sql("SELECT count(DISTINCT run_id) FROM agent_runs WHERE job = 'tick'"),
       "each spawned run once")
    eq(pg.sql("SELECT count(*) FROM agent_runs WHERE job = 'tick'"),
       pg.sql("SELECT count(DISTINCT run_id) FROM agent_runs WHERE job = 'tick'"), "no duplicates")
    # Each metric a run sent, sent before, during or after the outage, lands exactly once.
    _check_each_metric_once(h, pg, "tick", "rows")


@_run
def test_database_unreachable_at_start(h):
    pg = Cluster(h)  # not started yet
    h.config(node_yaml(h) + TICK % fw("exit", "0"))
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_for(lambda: len(_spawned_runs(h, "tick")) >= 3, 30, "runs without a database")
    check(h.running(), "meshd runs without its database")
    pg.start()
    pg.create_db()
    h.wait_log(r"registry ready", timeout=90)
    h.wait_for(lambda: int(pg.sql("SELECT count(*) FROM agent_runs WHERE job = 'tick'")) >= 3,
               30, "the journalled runs arrive")
    h.stop()


@_run
def test_sigkill_during_replay_exactly_once(h):
    pg = Cluster.with_db(h)
    jobs = "\njobs:\n" + "".join(
        "  t%d: {command: %s, schedule: '* * * * * *'}\n" % (i, fw("metric", "m", str(i)))
        for i in range(8))
    h.config(node_yaml(h) + jobs)
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=30)
    pg.stop("immediate")
    h.wait_log(r"db lost", timeout=30)
    h.wait_for(lambda: len(_spawned_runs(h, r"t\d")) >= 60, 60, "a backlog of runs")
    pg.start()
    h.wait_log(r"db reconnected", timeout=60)
    killed_at = time.time()
    os.kill(h.pid, signal.SIGKILL)  # somewhere in the replay (or just after)
    h.proc.wait()
    # Runs spawned before the kill (minus a margin for the log line that precedes the journal
    # append): their run_start was journalled, so each must reach the table exactly once.
    before = set(m.group(2) for m in re.finditer(r"^(\S+ .*)spawned: job=t\d run=(\S+)", h.log(),
                                                  re.M)
                 if log_line_time(m.group(1)) < killed_at - 0.1)
    h.proc = None
    h.exit_code = None
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=30, count=2)
    h.stop()
    rows = pg.sql("SELECT run_id FROM agent_runs").split("\n")
    eq(len(rows), len(set(rows)), "no duplicate run rows")
    missing = before - set(rows)
    check(not missing, "runs lost: %s" % sorted(missing)[:5])
    eq(pg.sql("SELECT count(*) FROM agent_metrics"),
       pg.sql("SELECT count(DISTINCT event_id) FROM agent_metrics"), "no duplicate metrics")




@_run
def test_journal_full_raises_the_alert_and_keeps_run_records(h):
    """While the database is away, a worker floods metrics past registry.journal_max: the
    journal drops the low-value events, /health goes 503, a critical alert meshd.journal_full
    is raised, and no run record is lost."""
    pg = Cluster(h)  # not started: the database is away
    flood = ("i=0; while [ $i -lt 40000 ]; do "
             "echo '{\"event\":\"metric\",\"name\":\"flood_metric_with_a_long_name\",\"value\":1}' >&3; "
             "i=$((i+1)); done")
    h.config(node_yaml(h) + """
registry: {journal_max: 1MiB}
jobs:
  tick:
    command: %s
    schedule: "* * * * * *"
  flood:
    command: ["sh", "-c", %s]
    schedule: "0 0 1 1 *"
""" % (fw("exit", "0"), json_str(flood)))
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_for(lambda: len(_spawned_runs(h, "tick")) >= 2, 30, "tick runs")
    eq(202, h.api("POST", "/api/jobs/flood/run", sock=True)[0])
    h.wait_log(r"journal full: dropped=\d+", timeout=60)
    status, body = h.api_json("GET", "/health")
    eq(503, status, "a journal at its bound makes /health 503: %r" % body)
    check(any("registry" in r for r in body["reasons"]), repr(body))
    h.wait_log(r"run done: job=flood", timeout=60)
    ticks_before_db = _spawned_runs(h, "tick")
    pg.start()
    pg.create_db()
    h.wait_log(r"registry ready", timeout=90)
    h.wait_for(lambda: pg.sql("SELECT count(*) FROM agent_alerts WHERE key = 'meshd.journal_full'"
                              " AND status = 'open' AND severity = 'critical'") == "1",
               60, "the journal_full alert lands, open and critical")
    # Every run record journalled before the database came back is there (runs are never
    # dropped); the dropped events were metrics.
    want = set(ticks_before_db)
    h.wait_for(lambda: want <= set(pg.sql("SELECT run_id FROM agent_runs WHERE job = 'tick'")
                                   .split()), 60, "every tick run recorded")
    check(pg.sql("SELECT count(*) FROM agent_runs WHERE job = 'flood'") == "1", "the flood run")
    n = int(pg.sql("SELECT count(*) FROM agent_metrics WHERE name = 'flood_metric_with_a_long_name'"))
    check(0 < n < 40000, "some metrics were dropped, some kept: %d" % n)
    h.stop()


@_run
def test_a_long_gap_of_missed_slots_is_recorded_as_one_row(h):
    """Past 5 missed slots of a job in one wake-up, meshd records the gap as one agent_runs row
    (slots_missed: its count and range), never only a log line (issue 10: 26,000 of 30,000
    overloaded slots had no row at all).  Every slot between the last run before the stop and
    the first after the start is in that row."""
    pg = Cluster.with_db(h)
    h.config(node_yaml(h) + """
jobs:
  tick:
    command: %s
    schedule: "* * * * * *"
    catch_up: 0s
""" % fw("exit", "0"))
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=30)
    h.wait_for(lambda: len(_spawned_runs(h, "tick")) >= 2, 30, "runs")
    h.stop()
    before = _spawned_runs(h, "tick")
    time.sleep(9)
    h.proc = None
    h.exit_code = None
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=30, count=2)
    h.wait_log(r"missed: job=tick count=\d+ ")
    h.wait_for(lambda: len(_spawned_runs(h, "tick")) > len(before), 30, "a run after the gap")
    h.stop()
    after = [r for r in _spawned_runs(h, "tick") if r not in before]
    def slot(run):  # tick@20261204T192200Z -> Unix seconds
        import calendar
        return calendar.timegm(time.strptime(run.split("@")[1], "%Y%m%dT%H%M%SZ"))
    last, first = max(slot(r) for r in before), min(slot(r) for r in after)
    gap = int(round(first - last)) - 1
    check(gap >= 6, "the stop made a gap of more than 5 slots (%d)" % gap)
    rows = pg.sql("SELECT missed_count, extract(epoch FROM scheduled_for)::bigint, "
                  "extract(epoch FROM missed_until)::bigint, reason FROM agent_runs "
                  "WHERE job = 'tick' AND status = 'missed'").splitlines()
    eq(1, len(rows), "one row for the gap: %r" % rows)
    count, frm, to, reason = rows[0].split("|", 3)
    eq(gap, int(count), "the row counts every slot of the gap")
    eq(int(last) + 1, int(frm), "the gap starts right after the last run")
    eq(int(first) - 1, int(to), "and ends right before the first run after it")
    check("meshd was down" in reason, "the reason: %r" % reason)


@contextlib.contextmanager
def _second_node(name):
    """A second Harness (another meshd node) for the length of a with block; its meshd is
    killed and its directory removed afterwards, whatever happened."""
    hb = harness.Harness(name)
    try:
        yield hb
    finally:
        if hb.running():
            hb.proc.kill()
            hb.proc.wait()
        hb.teardown()
        shutil.rmtree(hb.dir, ignore_errors=True)


def _cluster_conf(h, node, stamps, extra=""):
    return ("node:\n  name: %s\n  state_dir: %s\ncluster: {enabled: true%s}\n"
            "jobs:\n  tick:\n    command: %s\n    schedule: \"*/2 * * * * *\"\n"
            "    prefer: a\n    takeover_after: 1s\n    catch_up: 10s\n"
            % (node, json.dumps(h.state_dir), extra, fw("stamp", stamps)))


@_run
def test_cluster_two_nodes_never_run_a_slot_twice(h):
    """Two meshd (a, preferred, and b) on one database: a runs every slot while it is awake,
    b takes over after takeover_after while a is frozen (a sleeping PC), and when a wakes its
    catch-up finds the slot claimed.  Every slot runs exactly once across both nodes."""
    pg = Cluster.with_db(h)
    with _second_node("cluster_b") as hb:
        sa, sb = h.path("stamps.a"), h.path("stamps.b")
        h.config(_cluster_conf(h, "a", sa))
        hb.config(_cluster_conf(hb, "b", sb))
        h.start(env={"DATABASE_URL": pg.url})
        hb.start(env={"DATABASE_URL": pg.url})
        h.wait_log(r"registry ready", timeout=60)
        hb.wait_log(r"registry ready", timeout=60)
        h.wait_for(lambda: len(h.stamps("stamps.a")) >= 3, 30, "a runs the slots")
        hb.wait_log(r"claimed elsewhere: job=tick slot=\S+ by=a", timeout=30)
        eq([], h.stamps("stamps.b"), "b ran nothing while a was awake")

        # a sleeps: b takes over each slot after takeover_after (1 s).
        os.kill(h.pid, signal.SIGSTOP)
        try:
            h.wait_for(lambda: len(h.stamps("stamps.b")) >= 3, 30, "b takes over")
            for r in h.stamps("stamps.b"):
                slot = harness.parse_utc_iso(r["at"])
                check(1.0 <= r["t"] - slot < 3.0, "b ran %s %.2f s after the slot (takeover "
                      "after 1 s)" % (r["run_id"], r["t"] - slot))
        finally:
            os.kill(h.pid, signal.SIGCONT)
        n_a = len(h.stamps("stamps.a"))
        h.wait_for(lambda: len(h.stamps("stamps.a")) >= n_a + 3, 30, "a runs again when awake")
        h.stop()
        hb.stop()

        ra = [r["run_id"] for r in h.stamps("stamps.a")]
        rb = [r["run_id"] for r in h.stamps("stamps.b")]
        eq(len(ra), len(set(ra)), "a ran each slot once")
        eq(len(rb), len(set(rb)), "b ran each slot once")
        eq(set(), set(ra) & set(rb), "no slot ran on both nodes")
        # The registry has one row per slot, recorded by the node that ran it.
        rows = dict(line.split("|") for line in pg.sql(
            "SELECT run_id, node FROM agent_runs WHERE job = 'tick' AND status <> 'missed'"
        ).split())
        for run in ra:
            eq("a", rows.get(run), "row of %s" % run)
        for run in rb:
            eq("b", rows.get(run), "row of %s" % run)
        # Between the first and the last stamp, no slot went unrun.
        slots = sorted(harness.parse_utc_iso(r["at"]) for r in h.stamps("stamps.a") +
                       h.stamps("stamps.b"))
        gaps = [b - a for a, b in zip(slots, slots[1:]) if b - a != 2]
        eq([], gaps, "every 2 s slot ran, on one node or the other")


def test_cluster_without_database_follows_when_offline(h):
    """Claims need the database: when it cannot be asked, when_offline: skip (the default)
    does not run the slot (another node may run it) and records it missed once a later slot
    supersedes it, or when meshd stops; when_offline: run runs it anyway."""
    url = "postgresql://meshd@127.0.0.1:1/meshd?connect_timeout=1"
    # Both starts log to the same file: the second one waits for its own lines (count=2).
    for n, extra in enumerate((", claim_timeout: 1s", ", when_offline: skip, claim_timeout: 1s"),
                              1):
        h.proc = None
        h.config(_cluster_conf(h, "a", h.path("stamps.skip"), extra))
        h.start(env={"DATABASE_URL": url})
        h.wait_log(r"unclaimed: job=tick slot=\S+ reason=registry unreachable", timeout=30,
                   count=2 * n - 1)
        h.wait_log(r"missed: job=tick slot=\S+ reason=could not be claimed \(registry "
                   r"unreachable\); a later slot superseded it", timeout=30, count=n)
        h.stop()
        h.wait_log(r"missed: job=tick slot=\S+ reason=could not be claimed: registry "
                   r"unreachable until meshd stopped", timeout=5, count=n)
        eq([], h.stamps("stamps.skip"), "no run without a claim (%r)" % extra)
    h.proc = None
    h.config(_cluster_conf(h, "a", h.path("stamps.run"), ", when_offline: run, claim_timeout: 1s"))
    h.start(env={"DATABASE_URL": url})
    h.wait_for(lambda: len(h.stamps("stamps.run")) >= 2, 30, "runs without a claim (run)")
    h.wait_log(r"running job=tick slot=\S+ without a claim")
    h.stop()


def _next_slot(period, margin):
    """The next wall-clock multiple of period seconds at least margin seconds away."""
    now = time.time()
    t = (int(now) // period + 1) * period
    while t - now < margin:
        t += period
    return t


@_run
def test_cluster_unclaimed_slot_runs_when_the_database_is_back(h):
    """when_offline: skip.  The database goes away just before a slot: the slot is not run then
    (the claim cannot be made), and when the database is back inside the catch-up window it is
    claimed and run, once; a job whose catch-up window is over by then records it missed, with
    the reason, in the registry."""
    pg = Cluster.with_db(h)
    h.config("node:\n  name: a\n  state_dir: %s\ncluster: {enabled: true, claim_timeout: 1s}\n"
             "jobs:\n"
             "  tick:\n    command: %s\n    schedule: \"*/30 * * * * *\"\n    catch_up: 25s\n"
             "  late:\n    command: %s\n    schedule: \"*/30 * * * * *\"\n    catch_up: 1s\n"
             % (json.dumps(h.state_dir), fw("stamp", h.path("stamps.tick")),
                fw("stamp", h.path("stamps.late"))))
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=60)
    slot = _next_slot(30, 6)
    time.sleep(slot - 3 - time.time())  # the database goes 3 s before the slot
    pg.stop("immediate")
    h.wait_log(r"unclaimed: job=tick slot=\S+ reason=registry unreachable", timeout=40)
    h.wait_log(r"unclaimed: job=late slot=\S+ reason=registry unreachable", timeout=5)

    def at_slot(name):  # a slot before `slot' may have run (claimed) right after the start
        return [r for r in h.stamps(name) if int(harness.parse_utc_iso(r["at"])) == slot]
    eq([], at_slot("stamps.tick"), "nothing ran while the claim could not be made")
    # Back 2.5 s after the slot: inside tick's catch-up window (25 s), outside late's (1 s).
    time.sleep(max(0, slot + 2.5 - time.time()))
    pg.start()
    h.wait_log(r"cluster: claiming job=tick slot=\S+ again", timeout=60)
    h.wait_for(lambda: len(at_slot("stamps.tick")) == 1, 30, "the slot runs once it is won")
    h.wait_log(r"missed: job=late slot=\S+ reason=could not be claimed: registry unreachable "
               r"for \d+s, past the catch-up window of 1s", timeout=5)
    run = at_slot("stamps.tick")[0]
    h.wait_for(lambda: pg.sql("SELECT count(*) FROM agent_runs WHERE job = 'late' AND status = "
                              "'missed' AND reason LIKE 'could not be claimed: registry "
                              "unreachable for %'") == "1", 30, "late's slot recorded missed")
    h.wait_for(lambda: pg.sql("SELECT status FROM agent_runs WHERE run_id = '%s'"
                              % run["run_id"]) == "succeeded", 30, "tick's run recorded")
    h.stop()
    eq([], at_slot("stamps.late"), "late never ran")
    eq(1, len(at_slot("stamps.tick")), "tick ran once")
    eq("1", pg.sql("SELECT lives FROM agent_runs WHERE run_id = '%s'" % run["run_id"]),
       "one execution of the slot")


@_run
def test_cluster_restart_claims_its_catch_up_slots(h):
    """A node that restarts catches up the slot it missed while down: the claim of that slot
    waits for the claims connection (which is not up yet at start) instead of counting as
    offline; with when_offline: run it used to run the slot unclaimed."""
    pg = Cluster.with_db(h)
    stamps = h.path("stamps")
    h.config(_cluster_conf(h, "a", stamps, ", when_offline: run"))
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=60)
    h.wait_for(lambda: len(h.stamps("stamps")) >= 1, 30, "a first run")
    h.stop()
    time.sleep(2.5)  # at least one slot (every 2 s) passes while meshd is down
    h.proc = None
    n = len(h.stamps("stamps"))
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_for(lambda: len(h.stamps("stamps")) >= n + 2, 30, "runs after the restart")
    h.stop()
    eq(0, h.log_count(r"without a claim"), "every slot was claimed")
    runs = [r["run_id"] for r in h.stamps("stamps")]
    eq(len(runs), len(set(runs)), "each slot ran once")
    rows = pg.sql("SELECT run_id FROM agent_runs WHERE job = 'tick' AND node = 'a' AND "
                  "status IN ('succeeded', 'stopped') AND lives = 1").split()
    check(set(runs) <= set(rows), "every run claimed and recorded: %s" % sorted(set(runs) - set(rows)))


def _singleton_conf(h, node, pids):
    return ("node:\n  name: %s\n  state_dir: %s\ncluster: {enabled: true}\n"
            "jobs:\n  svc:\n    command: %s\n    schedule: always\n    singleton: true\n"
            "    start_secs: 100ms\n" % (node, json.dumps(h.state_dir), fw("write-pid", pids, "loop")))


@_run
def test_cluster_singleton_service_runs_on_one_node_and_fails_over(h):
    """A singleton service runs on the node that holds its lease (a session advisory lock); when
    that node dies its session ends, and the other node takes the lease and starts it."""
    pg = Cluster.with_db(h)
    with _second_node("singleton_b") as hb:
        pa, pb = h.path("pids.a"), h.path("pids.b")
        h.config(_singleton_conf(h, "a", pa))
        hb.config(_singleton_conf(hb, "b", pb))
        h.start(env={"DATABASE_URL": pg.url})
        h.wait_log(r"cluster: lease taken: job=svc", timeout=60)
        hb.start(env={"DATABASE_URL": pg.url})
        hb.wait_log(r"registry ready", timeout=60)
        time.sleep(4)  # more than the lease retry period: b asked and was refused
        eq(1, len(harness.read_pids(pa)), "a runs the service")
        eq([], harness.read_pids(pb), "b does not, while a holds the lease")
        status, job = hb.api_json("GET", "/api/jobs/svc", sock=True)
        check(job["lease_held"] is False and job["state"] == "stopped", repr(job))
        eq(409, hb.api("POST", "/api/jobs/svc/run", sock=True)[0], "no manual start without it")
        st = subprocess.run([harness.MESHCTL, "status", "--socket",
                             os.path.join(hb.state_dir, "meshd.sock")],
                            capture_output=True, text=True, timeout=30)
        check("lease held by another node" in st.stdout, "meshctl status says so: %r" % st.stdout)

        # a dies (its machine is gone): its session ends, b takes over.
        svc_a = harness.read_pids(pa)[0]
        os.kill(h.pid, signal.SIGKILL)
        h.proc.wait()
        os.kill(svc_a, signal.SIGKILL)
        hb.wait_for(lambda: len(harness.read_pids(pb)) == 1, 30, "b starts the service")
        hb.wait_log(r"cluster: lease taken: job=svc")
        hb.stop()


@_run
def test_bus_on_jobs_take_messages(h):
    """`on: TYPE` jobs run once per pending message of their type: messages inserted by anyone
    (psql here), emitted by a worker's status line, or left 'processing' by this node's previous
    life; the run gets the message in its environment; the row ends done or failed."""
    pg = Cluster.with_db(h, migrate=True)
    pg.sql("INSERT INTO agent_messages (type, payload) VALUES ('report.requested', '{\"n\": 1}')")
    pg.sql("INSERT INTO agent_messages (type, payload, status, claimed_by, claimed_at) VALUES "
           "('report.requested', '{\"n\": 0}', 'processing', 'itest/report', now())")
    pg.sql("INSERT INTO agent_messages (type, payload) VALUES ('other.type', '{}')")
    out = h.path("runs.txt")
    script = ('echo "$MESHD_MESSAGE_ID|$MESHD_MESSAGE_TYPE|$MESHD_MESSAGE_PAYLOAD" >> %s; '
              'case "$MESHD_MESSAGE_PAYLOAD" in *fail*) exit 3;; esac' % out)
    h.config(node_yaml(h) + """
jobs:
  report:
    command: ["sh", "-c", %s]
    on: report.requested
  producer:
    command: %s
    schedule: "0 0 1 1 *"
""" % (json_str(script), fw("status", '{"event":"message","type":"report.requested",'
                                      '"payload":{"n":4,"from":"worker"}}')))
    h.start(env={"DATABASE_URL": pg.url})
    h.wait_log(r"registry ready", timeout=60)
    h.wait_for(lambda: len(h.lines("runs.txt")) >= 2, 30, "the queued messages run")
    # NOTIFY wakes the job for a new one, and a failing run marks its message failed.
    pg.sql("INSERT INTO agent_messages (type, payload) VALUES ('report.requested', "
           "'{\"n\": 2, \"x\": \"fail\"}')")
    h.wait_for(lambda: len(h.lines("runs.txt")) >= 3, 30, "a new message runs")
    # meshctl publish puts one on the bus (bad input is refused at the prompt).
    pub = subprocess.run([harness.MESHCTL, "publish", "report.requested", '{"n": 3}', "--url",
                          pg.url], capture_output=True, text=True, timeout=60)
    eq(0, pub.returncode, "meshctl publish: %s" % pub.stderr)
    check(pub.stdout.strip().isdigit(), "prints the id: %r" % pub.stdout)
    for bad in (["9bad"], ["ok.type", "{not json"]):
        r = subprocess.run([harness.MESHCTL, "publish"] + bad + ["--url", pg.url],
                           capture_output=True, text=True, timeout=60)
        eq(2, r.returncode, "publish %r refused: %s" % (bad, r.stderr))
    h.wait_for(lambda: len(h.lines("runs.txt")) >= 4, 30, "the published message runs")
    # A worker's status line becomes a message, which the on: job takes.
    eq(202, h.api("POST", "/api/jobs/producer/run", sock=True)[0])
    h.wait_for(lambda: len(h.lines("runs.txt")) >= 5, 30, "the worker's message runs")
    h.wait_for(lambda: pg.sql("SELECT count(*) FROM agent_messages WHERE type = "
                              "'report.requested' AND status IN ('pending', 'processing')") == "0",
               30, "every message processed")
    h.stop()
    lines = h.lines("runs.txt")
    eq(5, len(lines), "one run per message: %r" % lines)
    for line in lines:
        mid, mtype, payload = line.split("|", 2)
        eq("report.requested", mtype)
        row = pg.sql("SELECT payload::text FROM agent_messages WHERE id = %d" % int(mid))
        eq(json.loads(row), json.loads(payload), "the payload of message %s" % mid)
    rows = pg.sql("SELECT payload->>'n', status, coalesce(error, ''), claimed_by FROM "
                  "agent_messages WHERE type = 'report.requested' ORDER BY 1").split("\n")
    eq(["0|done||itest/report", "1|done||itest/report", "2|failed|failed: exit code 3|itest/report",
        "3|done||itest/report", "4|done||itest/report"], rows)
    eq("pending", pg.sql("SELECT status FROM agent_messages WHERE type = 'other.type'"),
       "other types are left alone")


@_run
def test_bus_two_nodes_share_the_queue(h):
    """Two nodes with the same on: job share one queue: each message runs exactly once."""
    pg = Cluster.with_db(h, migrate=True)
    out = h.path("runs.txt")  # both nodes append here: one line per run, "node id"
    conf = """node:
  name: %s
  state_dir: %s
jobs:
  work:
    command: ["sh", "-c", "echo \\"$MESHD_NODE $MESHD_MESSAGE_ID\\" >> %s; sleep 0.1"]
    on: work.item
"""
    with _second_node("bus_b") as hb:
        h.config(conf % ("a", json.dumps(h.state_dir), out))
        hb.config(conf % ("b", json.dumps(hb.state_dir), out))
        h.start(env={"DATABASE_URL": pg.url})
        hb.start(env={"DATABASE_URL": pg.url})
        h.wait_log(r"registry ready", timeout=60)
        hb.wait_log(r"registry ready", timeout=60)
        pg.sql("INSERT INTO agent_messages (type, payload) SELECT 'work.item', "
               "jsonb_build_object('i', g) FROM generate_series(1, 20) g")
        h.wait_for(lambda: pg.sql("SELECT count(*) FROM agent_messages WHERE status = 'done'")
                   == "20", 60, "all 20 messages done")
        h.stop()
        hb.stop()
    runs = [line.split() for line in h.lines("runs.txt")]
    ids = [r[1] for r in runs]
    eq(20, len(ids), "20 runs: %r" % runs)
    eq(20, len(set(ids)), "no message ran twice")
    nodes = {r[0] for r in runs}
    check(nodes == {"a", "b"}, "both nodes took messages: %r" % sorted(nodes))


if __name__ == "__main__":
    harness.main(globals())
