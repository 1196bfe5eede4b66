#!/usr/bin/env python3
"""Exactly once, proven (issue 10): every scheduled slot runs once, across nodes and crashes.

Each test runs 20 every-second jobs whose command appends one line per execution to a shared
execution log, "RUN_ID NODE MARKER" (MARKER = the shell's pid and its start time in /proc, so
two executions never share it), and then judges every slot of a window with two witnesses: the
log (what really ran, and where) and the registry (agent_runs; and the executions table,
agent_executions, when the schema has it).  A slot of the window is

  - ran once:   one line in the log;
  - duplicate:  more than one line (two nodes ran it, or one node ran it twice);
  - recorded:   no line, and its agent_runs row says it did not run (missed, skipped, abandoned,
                stopped) with a reason, or a gap row of missed slots covers it;
  - lost:       no line and no such row.

and besides: a slot that ran must have a row that says so, by the node that ran it (not
'missed': the registry must not hide a run), and once every node has stopped cleanly no row
of the window is still 'running'.  Every test asserts 0 duplicates, 0 lost, 0 hidden, 0 stuck,
and prints the figures on one line ("ledger: ...") whether it passes or not.

Faults are aimed at slot instants: the test computes the next slot, sleeps until slot + d
(one sleep, no polling) and signals meshd by its PID; the offsets actually hit are printed.
Each test has a private PostgreSQL cluster (test_registry.Cluster), so one can stop it."""

import calendar
import contextlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check  # noqa: E402
from test_registry import PGCTL, Cluster  # noqa: E402

JOBS = 20           # every-second jobs per node
RUN_S = 0.3         # how long each run lasts (so a SIGKILLed meshd leaves runs going)
SETTLE_S = 15.0     # after the last fault: how long the slots may take to be decided

# ---- set-up -------------------------------------------------------------------------------


def _job_script(log):
    # read/set are builtins: the marker costs no fork.  Field 22 of /proc/PID/stat is the
    # process's start time, so (pid, start time) names one execution even if pids wrap.
    return ('read -r s < /proc/$$/stat; set -- $s; '
            'echo "$MESHD_RUN_ID $MESHD_NODE $$-${22}" >> %s; exec sleep %g'
            % (shlex.quote(log), RUN_S))


def _conf(node_h, node, log, cluster=True, cluster_extra="", prefer=None):
    """A node's meshd.yaml: JOBS every-second jobs j00.. writing to the execution log; the
    defaults otherwise (catch_up, concurrency, when_offline, claim_timeout).  With prefer=NODE
    the first half of the jobs prefer NODE (the others take over 1 s after the slot), so a
    fault aimed at NODE's slot instant always finds it claiming and spawning them."""
    out = ["node:", "  name: %s" % node, "  state_dir: %s" % json.dumps(node_h.state_dir)]
    if cluster:
        out.append("cluster: {enabled: true%s}" % cluster_extra)
    out.append("jobs:")
    cmd = json.dumps(["/bin/sh", "-c", _job_script(log)])
    for i in range(JOBS):
        extra = ", prefer: %s, takeover_after: 1s" % prefer if prefer and i < JOBS // 2 else ""
        out.append('  j%02d: {command: %s, schedule: "* * * * * *"%s}' % (i, cmd, extra))
    return "\n".join(out) + "\n"


def _with_pg(fn):
    """Runs the test, then stops and removes its private clusters; on a failure, agent_runs is
    saved in the test's directory first (agent_runs.txt)."""
    def wrapped(h):
        try:
            fn(h)
        except BaseException:
            for n in h.notes:
                if isinstance(n, Cluster):
                    try:
                        r = subprocess.run(["psql", n.url, "-XAtqc", "SELECT * FROM agent_runs "
                                            "ORDER BY job, scheduled_for"], capture_output=True,
                                           text=True, timeout=60)
                        with open(h.path("agent_runs.txt"), "w") as f:
                            f.write(r.stdout or r.stderr)
                    except (OSError, subprocess.SubprocessError):
                        pass  # the failure itself matters more than this copy
            raise
        finally:
            for n in h.notes:
                if isinstance(n, Cluster):
                    n.stop("immediate")
                    subprocess.run([PGCTL, "destroy", n.dir], timeout=120)
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


@contextlib.contextmanager
def _nodes(h, names):
    """One Harness per node name: h for the first, new ones for the others (each its own
    directory, state and log).  At the end the extra nodes are killed if still running and torn
    down (their leftovers fail the test); their directories are kept when the test failed."""
    nodes = [h]
    for n in names[1:]:
        nodes.append(harness.Harness("%s_%s" % (h.name, n)))
    ok = False
    try:
        yield nodes
        ok = True
    finally:
        problems = []
        for n in nodes[1:]:
            if n.running():
                n.proc.kill()
                n.proc.wait()
            problems += n.teardown()
            if ok and not problems:
                shutil.rmtree(n.dir, ignore_errors=True)
            else:
                print("  kept %s" % n.dir)
        if ok and problems:
            raise harness.Failure("teardown of the other nodes:\n  " + "\n  ".join(problems))


def _start(node, pg):
    """(Re)starts a node's meshd with the registry at pg (its log goes on in meshd.log)."""
    if node.logf is not None:
        node.logf.close()
        node.logf = None
    node.proc = None
    node.exit_code = None
    node.start(env={"DATABASE_URL": pg.url})


def _kill(node, sig=signal.SIGKILL):
    os.kill(node.pid, sig)
    node.exit_code = node.proc.wait()


def _lives(node):
    """How many times this node's meshd has logged its start."""
    return node.log_count(r"\bstarted: node=")


# ---- slot-aligned timing ------------------------------------------------------------------


def _next_slot(ahead):
    """The first whole second at least `ahead` seconds from now."""
    return math.ceil(time.time() + ahead)


def _sleep_until(t):
    """One sleep until wall-clock time t; returns how late we woke (s)."""
    d = t - time.time()
    if d > 0:
        time.sleep(d)
    return time.time() - t


def _signal_at(node, sig, d_ms, ahead=1.2):
    """Sends sig to the node's meshd d_ms after the next slot at least `ahead` s away.
    Returns (slot, the offset hit in ms)."""
    slot = _next_slot(ahead)
    _sleep_until(slot + d_ms / 1000.0)
    os.kill(node.pid, sig)
    hit = (time.time() - slot) * 1000.0
    if sig == signal.SIGKILL:
        node.exit_code = node.proc.wait()
    return slot, hit


# ---- the ledger ----------------------------------------------------------------------------

NOT_RUN = ("missed", "skipped", "abandoned", "stopped")
RUN_ID_RE = re.compile(r"^(j\d\d)@(\d{8}T\d{6}Z)$")


def _slot_of(run_id):
    m = RUN_ID_RE.match(run_id)
    check(m is not None, "not a scheduled run id of ours: %r" % run_id)
    return m.group(1), calendar.timegm(time.strptime(m.group(2), "%Y%m%dT%H%M%SZ"))


def _exec_log(path):
    """{(job, slot): [(node, marker), ...]} from the execution log."""
    out = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        p = line.split()
        check(len(p) == 3, "execution log: bad line %r" % line)
        out.setdefault(_slot_of(p[0]), []).append((p[1], p[2]))
    return out


def _registry_rows(pg):
    """{(job, slot): (node, status, reason, until)} of agent_runs' scheduled rows; `until` is the
    last slot of a gap row (a column missed_until, when the schema has it), else the slot."""
    cols = set(pg.sql("SELECT column_name FROM information_schema.columns WHERE table_name = "
                      "'agent_runs'").split())
    until = ("coalesce(extract(epoch FROM missed_until), extract(epoch FROM scheduled_for))"
             if "missed_until" in cols else "extract(epoch FROM scheduled_for)")
    out = {}
    q = ("SELECT job, extract(epoch FROM scheduled_for)::bigint, (%s)::bigint, node, status, "
         "replace(coalesce(reason, ''), E'\\n', ' ') FROM agent_runs "
         "WHERE scheduled_for IS NOT NULL" % until)
    for line in pg.sql(q).splitlines():
        job, slot, last, node, status, reason = line.split("|", 5)
        out[(job, int(slot))] = (node, status, reason, int(last))
    return out


def _executions(pg):
    """{(job, slot): [node, ...]} from the executions table (one row per execution), or None
    while the schema has none (before issue 10's migration, sql/0004)."""
    if pg.sql("SELECT to_regclass('public.agent_executions') IS NOT NULL") != "t":
        version = pg.sql("SELECT coalesce(max(version), 0) FROM meshd_migrations")
        check(int(version) < 4, "the registry has migration %s (issue 10's executions are in "
              "sql/0004) but no table agent_executions: point _executions() at the table that "
              "keeps one row per execution" % version)
        return None
    out = {}
    for line in pg.sql("SELECT run_id, node FROM agent_executions").splitlines():
        run_id, node = line.split("|", 1)
        if RUN_ID_RE.match(run_id):
            out.setdefault(_slot_of(run_id), []).append(node)
    return out


class Ledger:
    """Every slot of jobs j00..j19 in [first, last] (Unix seconds), judged from the execution
    log and the registry.  Duplicates are counted over the whole log, not only the window."""

    def __init__(self, pg, log, first, last):
        self.first, self.last = first, last
        self.execs = _exec_log(log)
        self.rows = _registry_rows(pg)
        self.registry_execs = _executions(pg)
        gaps = {}
        for (job, slot), (node, status, reason, until) in self.rows.items():
            if status == "missed" and reason and until > slot:
                gaps.setdefault(job, []).append((slot, until))
        self.slots = [("j%02d" % i, s) for i in range(JOBS) for s in range(first, last + 1)]
        self.dup_nodes, self.dup_same = [], []   # ran on two nodes / twice on one node
        for key, ex in sorted(self.execs.items()):
            if len(ex) > 1:
                nodes = [n for n, _ in ex]
                (self.dup_same if len(set(nodes)) == 1 else self.dup_nodes).append((key, nodes))
        self.ran_once, self.recorded, self.lost, self.pending = [], [], [], []
        self.hidden, self.unrecorded, self.wrong_node, self.stuck = [], [], [], []
        self.exec_mismatch = []
        for key in self.slots:
            ex = self.execs.get(key, [])
            row = self.rows.get(key)
            if row is not None and row[1] == "running":
                self.stuck.append(key)
            if ex:
                if len(ex) == 1:
                    self.ran_once.append(key)
                if row is None:
                    self.unrecorded.append(key)
                elif row[1] in ("missed", "skipped"):
                    self.hidden.append((key, row[1], row[2]))
                elif len(ex) == 1 and row[0] != ex[0][0]:
                    self.wrong_node.append((key, ex[0][0], row[0]))
            elif row is not None and row[1] in NOT_RUN and row[2]:
                self.recorded.append(key)
            elif any(a <= key[1] <= b for a, b in gaps.get(key[0], [])):
                self.recorded.append(key)
            else:
                self.lost.append((key, row))
                if row is None or row[1] == "running":
                    self.pending.append(key)
            if self.registry_execs is not None:
                got = sorted(self.registry_execs.get(key, []))
                if got != sorted(n for n, _ in ex):
                    self.exec_mismatch.append((key, sorted(n for n, _ in ex), got))

    def undecided(self):
        """Slots that may still be decided (no execution, no final row yet)."""
        return len(self.pending)

    def summary(self):
        n_dup = len(self.dup_nodes) + len(self.dup_same)
        execs = sum(len(self.execs.get(k, ())) for k in self.slots)
        return ("slots=%d (%d jobs x %d s) executions_in_window=%d ran_once=%d duplicates=%d "
                "(on two nodes %d, twice on one node %d) recorded_not_run=%d lost=%d "
                "ran_but_recorded_missed=%d ran_without_row=%d row_on_wrong_node=%d "
                "stuck_running=%d executions_table=%s"
                % (len(self.slots), JOBS, self.last - self.first + 1, execs,
                   len(self.ran_once), n_dup, len(self.dup_nodes), len(self.dup_same),
                   len(self.recorded), len(self.lost), len(self.hidden), len(self.unrecorded),
                   len(self.wrong_node), len(self.stuck),
                   "absent" if self.registry_execs is None else
                   "%d mismatches" % len(self.exec_mismatch)))

    def check(self):
        """Fails with every kind of breach, each with a few examples."""
        def fmt(key):
            return harness.run_id(key[0], key[1])

        bad = []
        for what, items in (
                ("slots executed on two nodes", [(fmt(k), n) for k, n in self.dup_nodes]),
                ("slots executed twice by one node", [(fmt(k), n) for k, n in self.dup_same]),
                ("slots lost (not run, no missed/skipped row with a reason)",
                 [(fmt(k), r) for k, r in self.lost]),
                ("slots that ran but are recorded as not run",
                 [(fmt(k), s, r) for k, s, r in self.hidden]),
                ("slots that ran without an agent_runs row", [fmt(k) for k in self.unrecorded]),
                ("rows naming another node than the one that ran the slot",
                 [(fmt(k), a, b) for k, a, b in self.wrong_node]),
                ("rows still 'running' after every node stopped", [fmt(k) for k in self.stuck]),
                ("executions table disagrees with the execution log (log, table)",
                 [(fmt(k), a, b) for k, a, b in self.exec_mismatch])):
            if items:
                bad.append("%d %s, e.g. %s" % (len(items), what, items[:4]))
        check(not bad, "exactly once broken: " + self.summary() + "\n  " + "\n  ".join(bad))


def _backlog(node):
    """The node's registry backlog (events journalled, not yet acknowledged), or None when
    its meshd does not answer or its registry is not connected."""
    try:
        _, body = node.api_json("GET", "/status", sock=True, timeout=5)
        reg = body["node"]["registry"]
        return reg["backlog"] if reg.get("connected") else None
    except (OSError, harness.Failure, KeyError, TypeError):
        return None


BACKLOG_OK = 100  # events: about a second's worth of 20 jobs; a stop flushes that much


def _caught_up(node):
    b = _backlog(node)
    return b is not None and b <= BACKLOG_OK


def _settle(pg, log, first, last, nodes, timeout=SETTLE_S):
    """Waits (up to timeout) until every slot of the window is decided (catch-ups, late claims
    and journal replays take a moment after a fault) and every node's registry has caught up
    with its journal.  Never fails by itself: the judgement says what is wrong."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            decided = Ledger(pg, log, first, last).undecided() == 0
        except harness.Failure:
            decided = False  # the database is not back yet
        if decided and all(_caught_up(n) for n in nodes if n.running()):
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


def _unsent(node):
    closed = node.log_find(r"registry closed: unsent=(\d+)")
    check(closed, "%s: no 'registry closed' line at its stop" % node.name)
    return int(closed[-1].group(1))


def _stop_all(nodes, pg):
    """Stops every running node (one SIGTERM each, then waits).  The registry must hold
    everything before it is judged: a node whose stop left events in its journal (a replay
    still going on a loaded machine) is started again until they are sent, then stopped (its
    new runs are past the window)."""
    def stop(group):
        for n in group:
            if n.running():
                os.kill(n.pid, signal.SIGTERM)  # once: a second SIGTERM means "stop now"
        for n in group:
            if n.proc is not None and n.exit_code is None:
                code = n.wait_exit()
                if code is None:
                    n.proc.kill()
                    n.proc.wait()
                check(code == 0, "%s: meshd exit status %r after SIGTERM" % (n.name, code))

    stop(nodes)
    for n in nodes:
        if _unsent(n) == 0:
            continue
        print("  %s: %d events left in its journal at its stop; started again to send them"
              % (n.name, _unsent(n)))
        _start(n, pg)
        n.wait_for(lambda: _caught_up(n), 60, "%s's journal sent" % n.name)
        stop([n])
        check(_unsent(n) == 0, "%s: its journal is still not sent: %d events"
              % (n.name, _unsent(n)))


def _judge(pg, log, first, last, notes="", all_ran=False):
    """Prints the ledger of the window and fails on any breach; with all_ran (no fault was
    injected) every slot must also have run: nothing justified skipping one."""
    ledger = Ledger(pg, log, first, last)
    print("  ledger: %s%s" % (ledger.summary(), notes))
    sys.stdout.flush()
    ledger.check()
    if all_ran:
        not_run = sorted(set(ledger.slots) - set(ledger.execs))
        check(not not_run, "no fault, yet %d slots did not run, e.g. %s" % (
            len(not_run), [(harness.run_id(*k), ledger.rows.get(k)) for k in not_run[:4]]))


# ---- the tests -----------------------------------------------------------------------------


@_with_pg
def test_two_nodes_fault_free(h):
    """Two nodes, no fault at all, 30 s of both: every slot runs, once.  b starts ~5.5 s after
    a (nodes started in the same second claim each second's jobs in the same order; others
    need not)."""
    pg = Cluster.with_db(h)
    log = h.path("exec.log")
    with _nodes(h, ["a", "b"]) as (a, b):
        a.config(_conf(a, "a", log))
        b.config(_conf(b, "b", log))
        t_a = time.time()
        _start(a, pg)
        a.wait_log(r"registry ready", timeout=60)
        _sleep_until(t_a + 5.5)
        _start(b, pg)
        b.wait_log(r"registry ready", timeout=60)
        first = math.ceil(t_a) + 1
        last = math.ceil(t_a) + 36
        _sleep_until(last + 1)
        _settle(pg, log, first, last, [a, b], timeout=5)
        _stop_all([a, b], pg)
        _judge(pg, log, first, last, all_ran=True)


@_with_pg
def test_two_nodes_kill_stop_restart(h):
    """Two nodes; half the jobs prefer a (b takes them over 1 s after the slot), the other
    half are claimed by whichever node comes first.  a is SIGKILLed 6 ms after a slot (while it
    spawns that slot's runs) and restarted 0.3 s later; then b is SIGSTOPped 3 ms after a slot
    (its claims in flight) for 10 s; then a restarts cleanly across a slot (SIGTERM 100 ms
    before it, started again 50 ms after it: that slot is a catch-up for the new life).  Every
    slot runs once, or is recorded with its reason."""
    pg = Cluster.with_db(h)
    log = h.path("exec.log")
    with _nodes(h, ["a", "b"]) as (a, b):
        a.config(_conf(a, "a", log, prefer="a"))
        b.config(_conf(b, "b", log, prefer="a"))
        t0 = time.time()
        _start(a, pg)
        a.wait_log(r"registry ready", timeout=60)
        _sleep_until(t0 + 3.5)
        _start(b, pg)
        b.wait_log(r"registry ready", timeout=60)
        first = math.ceil(t0) + 1
        hits = []

        slot, hit = _signal_at(a, signal.SIGKILL, 6, ahead=2.0)
        hits.append("a SIGKILL slot+%.1fms" % hit)
        _sleep_until(slot + 0.3)
        _start(a, pg)
        a.wait_log(r"registry ready", timeout=60, count=2)

        slot, hit = _signal_at(b, signal.SIGSTOP, 3, ahead=2.0)
        hits.append("b SIGSTOP slot+%.1fms" % hit)
        try:
            _sleep_until(slot + 10)
        finally:
            os.kill(b.pid, signal.SIGCONT)

        slot = _next_slot(2.5)
        _sleep_until(slot - 0.1)
        hits.append("a SIGTERM slot%+.1fms" % ((time.time() - slot) * 1000))
        a.stop()
        _sleep_until(slot + 0.05)
        hits.append("started again slot%+.1fms" % ((time.time() - slot) * 1000))
        _start(a, pg)
        a.wait_log(r"registry ready", timeout=60, count=3)
        last = slot + 3
        _sleep_until(last + 1)
        _settle(pg, log, first, last, [a, b])
        _stop_all([a, b], pg)
        _judge(pg, log, first, last, "; faults: " + ", ".join(hits))


@_with_pg
def test_one_node_sigkill_at_slot_instants(h):
    """One node (registry, no cluster), SIGKILLed 2..30 ms after six slot instants, while the
    slot's 20 runs are being spawned, and restarted 0.3..1.5 s later.  No slot runs twice, none
    is recorded missed although it ran, none is lost, no row stays 'running'."""
    pg = Cluster.with_db(h)
    log = h.path("exec.log")
    h.config(_conf(h, "solo", log, cluster=False))
    t0 = time.time()
    _start(h, pg)
    h.wait_log(r"registry ready", timeout=60)
    first = math.ceil(t0) + 1
    hits = []
    for i, (d_ms, restart_s) in enumerate(((2, 0.3), (30, 1.5), (8, 0.6), (15, 1.0),
                                           (5, 1.2), (20, 0.45))):
        slot, hit = _signal_at(h, signal.SIGKILL, d_ms, ahead=1.5)
        late = _sleep_until(slot + hit / 1000.0 + restart_s)
        _start(h, pg)
        hits.append("slot+%.1fms/restart %.2fs" % (hit, restart_s + late))
        h.wait_for(lambda: _lives(h) >= i + 2, 30, "meshd's start #%d" % (i + 2))
    h.wait_log(r"registry ready", timeout=60, count=7)
    last = math.ceil(time.time()) + 2
    _sleep_until(last + 1)
    _settle(pg, log, first, last, [h])
    _stop_all([h], pg)
    _judge(pg, log, first, last, "; kills: " + ", ".join(hits))


@_with_pg
def test_two_nodes_database_down_20s(h):
    """Two nodes; PostgreSQL is stopped with -m immediate for 20 s, then started again.  With
    the default when_offline no slot runs on both nodes, and none is lost: a slot that could not
    be claimed runs later (inside catch_up) or is recorded missed with its reason."""
    pg = Cluster.with_db(h)
    log = h.path("exec.log")
    with _nodes(h, ["a", "b"]) as (a, b):
        a.config(_conf(a, "a", log))
        b.config(_conf(b, "b", log))
        t0 = time.time()
        _start(a, pg)
        a.wait_log(r"registry ready", timeout=60)
        _sleep_until(t0 + 2.5)
        _start(b, pg)
        b.wait_log(r"registry ready", timeout=60)
        first = math.ceil(t0) + 1
        slot = _next_slot(2.0)
        _sleep_until(slot + 0.5)
        down = time.time()
        pg.stop("immediate")
        a.wait_log(r"db lost", timeout=30)
        b.wait_log(r"db lost", timeout=30)
        _sleep_until(down + 20)
        pg.start()
        # Both connections of each node (events, claims) are back, then 3 s of normal life.
        a.wait_log(r"db reconnected", timeout=60, count=2)
        b.wait_log(r"db reconnected", timeout=60, count=2)
        last = math.ceil(time.time()) + 3
        _sleep_until(last + 1)
        _settle(pg, log, first, last, [a, b])
        _stop_all([a, b], pg)
        _judge(pg, log, first, last, "; database down %.1f s from %s" % (
            20.0, time.strftime("%H:%M:%S", time.gmtime(down))))


if __name__ == "__main__":
    harness.main(globals())
