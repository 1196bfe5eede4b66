#!/usr/bin/env python3
"""The workers on a real PostgreSQL (the ctest cluster, MESHD_TEST_PG): meshd-refresh.

Each test makes fresh databases on the cluster: one for its data (its own small schema of
tables and materialized views) and, when it runs the real meshd, one for meshd's registry,
where the run records and alerts are read back.  The happy path, the alert and its resolve,
and the stop go through the real meshd (a job with `worker: refresh`, node.worker_dir pointing
at the build's libexec/meshd, started with POST /api/jobs/NAME/run); the cases where meshd adds
nothing run the binary directly: config on stdin, status lines on fd 3 (pass_fds)."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, node_yaml  # noqa: E402

WORKER_DIR = os.path.join(os.path.dirname(harness.MESHD), "libexec", "meshd") if harness.MESHD else ""
REFRESH = os.path.join(WORKER_DIR, "meshd-refresh")


class Db(harness.Database):
    """A fresh database on the test cluster for a worker's data, dropped at clean-up."""

    def __init__(self, h, prefix):
        if not os.path.exists(REFRESH):
            harness.no_pg("no %s (build it first)" % REFRESH)
        super().__init__(h, prefix)


psql = harness.psql


def cleanly(fn):
    """Runs test fn(h) and then, whatever happened: kills the workers it started by hand (in
    h.workers, by PID), stops the servers it started (h.servers, each by its own PID) and stops
    meshd (the harness's teardown then drops the databases it made)."""
    def wrapped(h):
        h.workers = []
        h.servers = []
        try:
            fn(h)
        finally:
            for wk in h.workers:
                if wk.proc.poll() is None:
                    os.kill(wk.proc.pid, signal.SIGKILL)
                    wk.proc.wait()
            for s in h.servers:
                s.stop()
            if h.running():
                h.stop()
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


_run = cleanly


# ---- the data --------------------------------------------------------------------------------

# Three levels: mv_c reads mv_b, which reads mv_a through the plain view v_b; mv_a reads the
# table t.  mv_a and mv_c have a unique index on a plain column (concurrent); mv_b has none
# (plain, with a warning).
CHAIN = """
CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO t SELECT g, g * 10 FROM generate_series(1, 100) g;
CREATE MATERIALIZED VIEW mv_a AS SELECT id, v FROM t;
CREATE UNIQUE INDEX mv_a_id ON mv_a (id);
CREATE VIEW v_b AS SELECT id, v * 2 AS v2 FROM mv_a;
CREATE MATERIALIZED VIEW mv_b AS SELECT id, v2 FROM v_b;
CREATE MATERIALIZED VIEW mv_c AS SELECT count(*) AS n, sum(v2) AS total FROM mv_b;
CREATE UNIQUE INDEX mv_c_n ON mv_c (n);
"""

# A view whose refresh takes knob.secs seconds (0 when created).
SLOW = """
CREATE TABLE knob (secs float8 NOT NULL);
INSERT INTO knob VALUES (0);
CREATE MATERIALIZED VIEW mv_slow AS SELECT k.secs FROM knob k, pg_sleep(k.secs) s;
"""


def wait_stats(db, table, n_ins):
    """Waits until pg_stat_user_tables shows n_ins inserts into table: backends flush their
    counters asynchronously (up to ~1 s after the commit, PostgreSQL 15)."""
    deadline = time.time() + 15
    while time.time() < deadline:
        got = db.sql("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = '%s'" % table)
        if got and int(got) >= n_ins:
            return
        time.sleep(0.1)
    raise harness.Failure("pg_stat_user_tables never showed %d inserts into %s" % (n_ins, table))


def by_view(summary):
    return {v["view"]: v for v in summary["views"]}


# ---- the binary alone --------------------------------------------------------------------------


class Worker:
    """A worker binary (meshd-refresh unless binary says another) run directly: config on
    stdin, status lines on a pipe at fd 3."""

    def __init__(self, cfg, extra_env=None, binary=None):
        r, w = os.pipe()
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env["MESHD_STATUS_FD"] = str(w)
        env.update(extra_env or {})
        self.proc = subprocess.Popen([binary or REFRESH], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     pass_fds=(w,), env=env, start_new_session=True)
        os.close(w)
        self.status = b""
        self.out = b""
        self.reader = threading.Thread(target=self._read, args=(r,), daemon=True)
        self.reader.start()
        self.proc.stdin.write(json.dumps(cfg).encode())
        self.proc.stdin.close()
        self.proc.stdin = None  # communicate() must not flush it again

    def _read(self, fd):
        with os.fdopen(fd, "rb") as f:
            self.status = f.read()

    def wait(self, timeout=60):
        self.out, _ = self.proc.communicate(timeout=timeout)
        self.reader.join(10)
        self.events = [json.loads(line) for line in self.status.decode().splitlines() if line]
        self.log = self.out.decode(errors="replace")
        return self.proc.returncode

    def result(self):
        res = [e for e in self.events if e["event"] == "result"]
        check(len(res) == 1, "one result line: %r (log: %s)" % (self.events, self.log[-2000:]))
        return res[0]


def run_worker(cfg, expect=0, timeout=60):
    wk = Worker(cfg)
    code = wk.wait(timeout)
    eq(expect, code, "meshd-refresh exit code (log: %s)" % wk.log[-3000:])
    return wk


# ---- the real meshd ----------------------------------------------------------------------------


def start_meshd(h, reg, data, cfg, extra_job=""):
    h.config(node_yaml(h, "  worker_dir: %s\n" % json.dumps(WORKER_DIR)) + """
jobs:
  refresh:
    worker: refresh
    schedule: "0 0 1 1 *"
    stop_timeout: 10s
%s    config: %s
""" % (extra_job, json.dumps(dict(cfg, database={"url": data.url}))))
    h.start(env={"DATABASE_URL": reg.url})
    h.wait_log(r"registry ready", timeout=30)
    sock = os.path.join(h.state_dir, "meshd.sock")
    h.wait_for(lambda: os.path.exists(sock), what="the API socket")


def run_now(h):
    status, body = h.api_json("POST", "/api/jobs/refresh/run", sock=True)
    eq(202, status, "run: %r" % body)
    return body["run_id"]


def wait_run(h, reg, run_id, timeout=60):
    """The run's agent_runs row once it finished: (status, exit_code, signal, output_tail)."""
    row = []

    def done():
        got = reg.sql("SELECT status, coalesce(exit_code, -1), coalesce(signal, 0), "
                      "coalesce(output_tail, '') FROM agent_runs "
                      "WHERE run_id = '%s' AND status <> 'running'" % run_id)
        if got:
            row[:] = got.split("|", 3)
        return bool(got)

    h.wait_for(done, timeout, "run %s finished in agent_runs" % run_id)
    return row[0], int(row[1]), int(row[2]), row[3]


def run_summary(reg, run_id):
    """The worker's result summary as meshd stored it in agent_runs.summary."""
    return json.loads(reg.sql("SELECT coalesce(summary, 'null') FROM agent_runs "
                              "WHERE run_id = '%s'" % run_id))


def metrics(h, reg, run_id, n):
    """The run's metrics in agent_metrics (name -> value), once there are n of them."""
    got = {}

    def have():
        rows = reg.sql("SELECT name || '=' || value FROM agent_metrics WHERE run_id = '%s'" % run_id)
        got.clear()
        got.update(line.split("=", 1) for line in rows.splitlines() if line)
        return len(got) >= n

    h.wait_for(have, 15, "%d metrics of %s" % (n, run_id))
    return {k: float(v) for k, v in got.items()}


def in_order(text, *patterns):
    """True when each regex matches text, each after the previous one."""
    at = 0
    for p in patterns:
        m = re.compile(p).search(text, at)
        if not m:
            return False
        at = m.end()
    return True


# ---- the tests ---------------------------------------------------------------------------------


@_run
def test_chain_order_modes_and_skip_unchanged_under_meshd(h):
    """views: [mv_c] refreshes mv_a, mv_b, mv_c in that order (the upstream ones too);
    concurrently where a unique index allows, plain with a warning for mv_b.  A second run
    with no writes skips all three as unchanged; one insert into t, two levels below mv_c,
    refreshes all three again."""
    reg = Db(h, "rfreg")
    data = Db(h, "rfdata")
    data.sql(CHAIN)
    start_meshd(h, reg, data, {"views": ["mv_c"]})

    run1 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run1)
    eq(("succeeded", 0), (status, code), "first run (output %s)" % tail)
    check(in_order(tail, r"public\.mv_a: refreshed \(concurrently",
                   r"public\.mv_b: plain refresh \(readers wait for it\): no valid unique index",
                   r"public\.mv_b: refreshed \(plain", r"public\.mv_c: refreshed \(concurrently"),
          "mv_a (concurrently), mv_b (plain, with the warning), mv_c (concurrently), in that "
          "order: %s" % tail)
    check("public.mv_a: upstream of a listed view" in tail, "mv_a is refreshed as an upstream")
    m = metrics(h, reg, run1, 9)
    eq(100, m["refresh.public.mv_b.rows"], "rows of mv_b")
    s = run_summary(reg, run1)
    eq((3, 0, 0), (s["refreshed"], s["skipped"], s["failed"]), "counts in agent_runs.summary")
    eq(["public.mv_a", "public.mv_b", "public.mv_c"], [v["view"] for v in s["views"]],
       "the summary lists the views in refresh order")
    v = by_view(s)
    eq(("concurrent", "plain", "concurrent"),
       (v["public.mv_a"]["mode"], v["public.mv_b"]["mode"], v["public.mv_c"]["mode"]), "modes")
    eq(True, v["public.mv_a"].get("upstream"), "mv_a marked upstream")
    eq(0, m["refresh.public.mv_c.skipped"], "mv_c not skipped")
    # The state rows were written in refresh order (each in its view's transaction).
    eq("public.mv_a,public.mv_b,public.mv_c",
       data.sql("SELECT string_agg(view_name, ',' ORDER BY refreshed_at) "
                "FROM meshd_refresh.view_state"), "refreshed_at order")

    run2 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run2)
    eq(("succeeded", 0), (status, code), "second run")
    for v in ("mv_a", "mv_b", "mv_c"):
        check("public.%s: skipped: unchanged" % v in tail, "%s skipped: %s" % (v, tail))
    eq(["unchanged"] * 3, [v["reason"] for v in run_summary(reg, run2)["views"]],
       "the second run's summary")
    m = metrics(h, reg, run2, 3)
    eq([1, 1, 1], [m["refresh.public.%s.skipped" % v] for v in ("mv_a", "mv_b", "mv_c")],
       "skipped metrics")

    data.sql("INSERT INTO t VALUES (101, 1010)")
    wait_stats(data, "t", 101)
    run3 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run3)
    eq(("succeeded", 0), (status, code), "third run")
    check(in_order(tail, r"public\.mv_a: refreshed \(concurrently, inputs changed\)",
                   r"public\.mv_b: refreshed \(plain, inputs changed\)",
                   r"public\.mv_c: refreshed \(concurrently, inputs changed\)"),
          "all three refreshed again: %s" % tail)
    eq("101|103020", data.sql("SELECT n, total FROM mv_c"), "mv_c sees the new row")
    h.stop()


@_run
def test_lock_timeout_alert_then_resolve_under_meshd(h):
    """Someone holds an ACCESS EXCLUSIVE lock on the view's table (LOCK TABLE refuses a
    materialized view; the refresh needs to read t all the same): each attempt waits lock_timeout,
    the worker tries again, then fails the view (exit 1) with the critical alert
    refresh.public.mv_a; once the lock is gone the next run refreshes and resolves it."""
    reg = Db(h, "rfreg")
    data = Db(h, "rfdata")
    data.sql(CHAIN)
    start_meshd(h, reg, data, {"views": ["mv_a"], "lock_timeout": "300ms", "attempts": 2})

    holder = subprocess.Popen(["psql", data.url, "-XAtq", "-c",
                               "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; "
                               "SELECT pg_sleep(60);"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        h.wait_for(lambda: data.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c "
                                    "ON c.oid = l.relation WHERE c.relname = 't' "
                                    "AND l.mode = 'AccessExclusiveLock' AND l.granted") == "1",
                   what="the test's lock on t")
        run1 = run_now(h)
        status, code, _, tail = wait_run(h, reg, run1)
        eq(("failed", 1), (status, code), "the locked run (output %s)" % tail)
        check(in_order(tail, r"public\.mv_a: attempt 1 of 2: .*lock", r"trying again",
                       r"refresh of public\.mv_a failed after 2 attempt\(s\)"),
              "tried twice, then failed: %s" % tail)
        h.wait_for(lambda: reg.sql("SELECT status || '/' || severity FROM agent_alerts "
                                   "WHERE key = 'refresh.public.mv_a'") == "open/critical",
                   what="the open critical alert")
    finally:
        # The server would sit out the pg_sleep after psql is gone: end the backend itself.
        data.sql("SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c "
                 "ON c.oid = l.relation WHERE c.relname = 't' AND l.mode = 'AccessExclusiveLock'")
        holder.kill()
        holder.wait()
    h.wait_for(lambda: data.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c "
                                "ON c.oid = l.relation WHERE c.relname = 't' "
                                "AND l.mode = 'AccessExclusiveLock'") == "0",
               what="the lock released")
    run2 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run2)
    eq(("succeeded", 0), (status, code), "the next run")
    check("public.mv_a: refreshed" in tail, "mv_a refreshed: %s" % tail)
    h.wait_for(lambda: reg.sql("SELECT status FROM agent_alerts "
                               "WHERE key = 'refresh.public.mv_a'") == "resolved",
               what="the alert resolved")
    h.stop()


def _refresh_query_running(data):
    return data.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                    "AND query LIKE 'REFRESH MATERIALIZED VIEW%mv_slow%' "
                    "AND application_name LIKE 'meshd-refresh%'") != "0"


@_run
def test_sigterm_cancels_within_a_second_under_meshd(h):
    """A stop during a long refresh: the query is cancelled and the worker gone within 1 s,
    the run recorded as stopped, and nothing of the refresh applied (view and state as before)."""
    reg = Db(h, "rfreg")
    data = Db(h, "rfdata")
    data.sql(SLOW)
    data.sql("UPDATE knob SET secs = 60")
    start_meshd(h, reg, data, {"views": ["mv_slow"]})
    run1 = run_now(h)
    h.wait_for(lambda: _refresh_query_running(data), 30, "the slow refresh running")
    pid = int(h.wait_log(r"spawned: job=refresh run=%s pid=(\d+)" % re.escape(run1))[0].group(1))
    t0 = time.time()
    status, body = h.api_json("POST", "/api/jobs/refresh/stop", sock=True)
    eq(202, status, "stop: %r" % body)
    while harness.pid_alive(pid) and time.time() - t0 < 5:
        time.sleep(0.01)
    took = time.time() - t0
    check(took < 1.0, "the worker took %.2f s to stop" % took)
    h.wait_for(lambda: not _refresh_query_running(data), 2, "the REFRESH gone from the server")
    status, code, sig, _ = wait_run(h, reg, run1)
    eq("stopped", status, "run status")
    eq(15, sig, "killed by SIGTERM (re-raised)")
    eq("0", data.sql("SELECT secs FROM mv_slow"), "mv_slow as before")
    eq("0", data.sql("SELECT count(*) FROM meshd_refresh.view_state"), "no state written")
    eq("0", reg.sql("SELECT count(*) FROM agent_alerts"), "a stop raises no alert")
    h.stop()


@_run
def test_concurrent_or_plain_and_the_null_key_warning(h):
    """Concurrent needs data and a unique index on plain columns: a view created WITH NO DATA
    is refreshed plain first, concurrently after; an expression or partial unique index does
    not count; a unique key holding NULLs (per pg_stats) is refreshed concurrently with a
    warning."""
    data = Db(h, "rfdata")
    data.sql("""
CREATE TABLE n (k int, v int);
INSERT INTO n VALUES (1, 1), (NULL, 2), (3, 3);
CREATE MATERIALIZED VIEW mv_nodata AS SELECT k, v FROM n WITH NO DATA;
CREATE UNIQUE INDEX mv_nodata_v ON mv_nodata (v);
CREATE MATERIALIZED VIEW mv_expr AS SELECT k, v FROM n;
CREATE UNIQUE INDEX mv_expr_v ON mv_expr ((v + 0));
CREATE UNIQUE INDEX mv_expr_p ON mv_expr (v) WHERE v > 1;
CREATE MATERIALIZED VIEW mv_null AS SELECT k, v FROM n;
CREATE UNIQUE INDEX mv_null_k ON mv_null (k);
ANALYZE mv_null;
""")
    cfg = {"views": ["mv_nodata", "mv_expr", "mv_null"], "database": {"url": data.url}}
    wk = run_worker(cfg)
    v = by_view(wk.result()["summary"])
    eq("plain", v["public.mv_nodata"]["mode"], "unpopulated")
    check("not populated" in v["public.mv_nodata"]["plain_because"], "why")
    eq("plain", v["public.mv_expr"]["mode"], "expression and partial indexes")
    check("unique index" in v["public.mv_expr"]["plain_because"], "why")
    eq("concurrent", v["public.mv_null"]["mode"], "NULL keys")
    eq("k", v["public.mv_null"]["null_key_columns"], "the NULL-holding key column")
    check(re.search(r"public\.mv_null: the unique key column\(s\) k hold NULLs", wk.log),
          "the NULL-key warning is logged: %s" % wk.log)
    check(re.search(r"public\.mv_expr: plain refresh", wk.log), "the plain warning is logged")
    eq("3", data.sql("SELECT count(*) FROM mv_nodata"), "mv_nodata filled")
    v = by_view(run_worker(dict(cfg, force=True)).result()["summary"])
    eq("concurrent", v["public.mv_nodata"]["mode"], "populated now")

    # mode: plain refreshes every view plain, without the warning; mode: concurrent refuses
    # the view that would block readers (it fails, exit 1) and refreshes the others.
    wk = run_worker(dict(cfg, force=True, mode="plain"))
    v = by_view(wk.result()["summary"])
    eq(["plain"] * 3, [v["public.%s" % n]["mode"] for n in ("mv_nodata", "mv_expr", "mv_null")],
       "mode: plain")
    check("plain refresh (readers wait" not in wk.log, "no warning for an asked-for plain refresh")
    wk = run_worker(dict(cfg, force=True, mode="concurrent"), expect=1)
    s = wk.result()["summary"]
    v = by_view(s)
    eq(("failed", "refreshed", "refreshed"),
       tuple(v["public.%s" % n]["outcome"] for n in ("mv_expr", "mv_nodata", "mv_null")),
       "mode: concurrent outcomes")
    check("cannot refresh concurrently: no valid unique index" in v["public.mv_expr"]["error"],
          "why mv_expr failed: %r" % v["public.mv_expr"])
    eq(1, s["failed"], "one failed")
    eq("failed", wk.result()["status"], "the result's status")
    wk = run_worker(dict(cfg, mode="sometimes"), expect=100)
    check("mode" in wk.log and "sometimes" in wk.log, "the bad mode is named: %s" % wk.log)


@_run
def test_overlapping_runs_one_refreshes_one_skips(h):
    """Two runs at once (as on two nodes): the second finds the view's advisory lock taken and
    reports skipped: locked instead of queueing; the first refreshes.  A view downstream of the
    locked one is skipped too (it would read the old data, and record its inputs as seen)."""
    data = Db(h, "rfdata")
    data.sql(SLOW)
    data.sql("CREATE MATERIALIZED VIEW mv_dep AS SELECT secs * 2 AS twice FROM mv_slow")
    data.sql("UPDATE knob SET secs = 3")
    first = Worker({"views": ["mv_slow"], "database": {"url": data.url}})
    h.wait_for(lambda: _refresh_query_running(data), 30, "the first refresh running")
    second = run_worker({"views": ["mv_dep"], "database": {"url": data.url}}, expect=0)
    v = by_view(second.result()["summary"])
    eq("skipped", v["public.mv_slow"]["outcome"], "the second run")
    check(v["public.mv_slow"]["reason"].startswith("locked"), "reason %r" % v["public.mv_slow"])
    eq(("skipped", "upstream locked (another run is refreshing it)"),
       (v["public.mv_dep"]["outcome"], v["public.mv_dep"]["reason"]), "the downstream view")
    eq(0, first.wait(), "first exit (log %s)" % first.log[-2000:])
    eq("refreshed", by_view(first.result()["summary"])["public.mv_slow"]["outcome"], "first")
    eq("3", data.sql("SELECT secs FROM mv_slow"), "mv_slow refreshed once")
    # mv_dep's inputs moved since its (absent) state: the next run refreshes it.
    data.sql("UPDATE knob SET secs = 0")
    v = by_view(run_worker({"views": ["mv_dep"], "database": {"url": data.url}}).result()["summary"])
    eq("refreshed", v["public.mv_dep"]["outcome"], "mv_dep on the next run")


@_run
def test_statement_timeout_fails_the_view_with_an_alert(h):
    data = Db(h, "rfdata")
    data.sql(SLOW)
    data.sql("UPDATE knob SET secs = 5")
    wk = run_worker({"views": ["mv_slow"], "statement_timeout": "300ms",
                     "database": {"url": data.url}}, expect=1)
    v = by_view(wk.result()["summary"])["public.mv_slow"]
    eq(("failed", "error"), (v["outcome"], v["reason"]), "mv_slow")
    check("statement timeout" in v["error"], "the error: %r" % v["error"])
    alerts = [e for e in wk.events if e["event"] == "alert"]
    eq([("critical", "refresh.public.mv_slow")], [(a["severity"], a["key"]) for a in alerts],
       "one critical alert")
    eq("0", data.sql("SELECT secs FROM mv_slow"), "mv_slow as before")


@_run
def test_invalid_index_is_rebuilt_and_vacuum_runs(h):
    """An INVALID index left by a failed CREATE INDEX CONCURRENTLY is dropped and built again;
    an existing valid one is left alone (and reported unused); vacuum: tables get
    VACUUM (ANALYZE)."""
    data = Db(h, "rfdata")
    data.sql("CREATE TABLE p (co int, yr int); INSERT INTO p VALUES (1, 2020), (1, 2020)")
    r = subprocess.run(["psql", data.url, "-XAtq", "-c",
                        "CREATE UNIQUE INDEX CONCURRENTLY idx_p_u ON p (co, yr)"],
                       capture_output=True, text=True)
    check(r.returncode != 0, "the duplicate makes the concurrent build fail")
    eq("f", data.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_p_u'::regclass"),
       "left INVALID")
    data.sql("DELETE FROM p WHERE ctid IN (SELECT max(ctid) FROM p)")
    stmt = "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_p_u ON p (co, yr)"
    cfg = {"indexes": [stmt], "vacuum": ["p"], "database": {"url": data.url}}
    s = run_worker(cfg).result()["summary"]
    eq("rebuilt", s["indexes"][0]["outcome"], "the index (%r)" % s)
    eq("t", data.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_p_u'::regclass"),
       "valid now")
    eq("vacuumed", s["vacuum"][0]["outcome"], "vacuum")
    check(data.sql("SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL "
                   "FROM pg_stat_user_tables WHERE relname = 'p'") == "t", "p vacuumed and analyzed")
    s = run_worker(cfg).result()["summary"]
    eq("exists", s["indexes"][0]["outcome"], "second run")
    check("idx_scan = 0" in s["indexes"][0].get("warning", ""), "unused index reported")


@_run
def test_parallel_independent_views(h):
    """parallel: 2 runs independent views on two connections; a dependent view still waits."""
    data = Db(h, "rfdata")
    data.sql(CHAIN)
    data.sql("CREATE MATERIALIZED VIEW mv_x AS SELECT id FROM t WHERE id < 10")
    wk = run_worker({"views": ["mv_c", "mv_x"], "parallel": 2, "database": {"url": data.url}})
    s = wk.result()["summary"]
    eq(4, s["refreshed"], "refreshed (%r)" % s)
    eq("public.mv_a,public.mv_b,public.mv_c",
       data.sql("SELECT string_agg(view_name, ',' ORDER BY refreshed_at) FROM "
                "meshd_refresh.view_state WHERE view_name <> 'public.mv_x'"), "chain order")


@_run
def test_config_errors_exit_100_naming_the_key(h):
    data = Db(h, "rfdata")
    data.sql(CHAIN)
    # A cycle through a plain view: v_cyc is replaced to read cyc_b, which reads cyc_a.
    data.sql("CREATE VIEW v_cyc AS SELECT 1 AS x; "
             "CREATE MATERIALIZED VIEW cyc_a AS SELECT x FROM v_cyc; "
             "CREATE MATERIALIZED VIEW cyc_b AS SELECT x FROM cyc_a; "
             "CREATE OR REPLACE VIEW v_cyc AS SELECT x FROM cyc_b")
    url = {"url": data.url}
    for cfg, want in (({"views": [1], "database": url}, "views[0]"),
                      ({"views": ["mv_a"], "parallel": 9, "database": url}, "parallel"),
                      ({"views": ["mv_a"], "bogus": 1, "database": url}, "bogus"),
                      ({"database": url}, "nothing to do"),
                      ({"views": ["mv_a", "mv_nope"], "database": url},
                       'views[1]: no such materialized view "mv_nope"'),
                      ({"views": ["t"], "database": url}, "not a materialized view"),
                      ({"vacuum": ["nope"], "database": url}, 'vacuum[0]: no table "nope"'),
                      ({"indexes": ["CREATE INDEX ON t (v)"], "database": url}, "indexes[0]"),
                      ({"schemas": ["public", "nope"], "database": url},
                       'schemas[1]: no schema "nope"'),
                      ({"views": ["cyc_a"], "database": url},
                       "in a cycle: public.cyc_a -> public.cyc_b -> public.cyc_a")):
        wk = run_worker(cfg, expect=100)
        check(want in wk.log, "%r: the log names %r: %s" % (cfg, want, wk.log[-1000:]))


@_run
def test_database_unreachable_exits_111(h):
    Db(h, "rfdata")  # the skip logic, and the binary's presence
    wk = run_worker({"views": ["mv_a"],
                     "database": {"url": "host=/nonexistent-meshd port=5432 dbname=x"}},
                    expect=111)
    check("x" in wk.log, "logged")


def test_workers_need_neither_libuv_nor_libyaml(h):
    """A worker is a batch process: it links the kit, libpq and its own libraries, never the
    daemon's event loop or YAML parser (workers/README.md; --as-needed in CMakeLists.txt).  A
    kit function that drags a loader object into the binary shows up here as a DT_NEEDED."""
    names = sorted(f for f in os.listdir(WORKER_DIR) if f.startswith("meshd-")) \
        if WORKER_DIR and os.path.isdir(WORKER_DIR) else []
    check(len(names) >= 4, "the workers are built: %r" % names)
    for name in names:
        out = subprocess.run(["readelf", "-d", os.path.join(WORKER_DIR, name)],
                             capture_output=True, text=True, check=True).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
        check("libpq.so.5" in needed, "%s links libpq: %r" % (name, needed))
        bad = [n for n in needed if n.startswith(("libuv", "libyaml"))]
        eq([], bad, "%s's DT_NEEDED (%r)" % (name, needed))


if __name__ == "__main__":
    harness.main(globals())
