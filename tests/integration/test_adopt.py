#!/usr/bin/env python3
"""meshd killed (SIGKILL) while runs are in progress, and started again: its next life finds
them in <state_dir>/runs.  A scheduled run still alive is adopted (never started twice, watched
to its end, its timeout still counting), a service is stopped and started afresh, a run that
ended meanwhile is recorded abandoned (docs/supervision.md, "After a crash")."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, node_yaml, pid_alive  # noqa: E402


def kill9(h):
    """SIGKILL meshd alone (its runs live on, reparented), as the OOM killer would."""
    os.kill(h.proc.pid, signal.SIGKILL)
    h.proc.wait()
    h.proc = None
    if h.logf:
        h.logf.close()
        h.logf = None


def last_run(h, job):
    code, one = h.api_json("GET", "/api/jobs/%s" % job, sock=True)
    eq(200, code, "GET /api/jobs/%s" % job)
    return one["last_run"]


def test_a_scheduled_run_is_adopted_not_rerun(h):
    """The slot's run survives meshd; the next life adopts it, never starts the slot again (nor
    records it missed), and records its end as unknown."""
    marks = h.path("marks")
    h.config(node_yaml(h) + """
jobs:
  long:
    command: ["/bin/sh", "-c", 'echo "$$ $MESHD_RUN_ID" >> %s; sleep 4; echo done >> %s', x]
    schedule: "*/10 * * * * *"
    catch_up: 1h
    concurrency: forbid
""" % (marks, h.path("done")))
    h.start()
    h.wait_for(lambda: len(h.lines("marks")) >= 1, timeout=15, what="the slot's run")
    pid, run = h.lines("marks")[0].split()
    kill9(h)
    check(pid_alive(int(pid)), "the run lives on after meshd's death")
    h.start()
    h.wait_log(r"adopted: job=long run=%s pid=%s" % (run, pid))
    h.wait_log(r"exited: job=long run=%s pid=%s status=unknown" % (run, pid), timeout=15)
    runs = [l.split()[1] for l in h.lines("marks")]
    eq(1, runs.count(run), "the slot ran once")
    eq(len(runs), len(set(runs)), "no slot ran twice: %r" % runs)
    eq(["done"], h.lines("done")[:1], "the adopted run finished its work")
    eq(0, h.log_count(r"missed: job=long"), "nothing recorded missed")
    r = last_run(h, "long")
    eq("unknown", r["status"], "the adopted run's end")
    eq(None, r["exit_code"], "no exit status for an adopted run")
    h.stop()


def test_an_adopted_run_keeps_its_timeout(h):
    """timeout counts from the run's real start, across meshd's restart."""
    h.config(node_yaml(h) + """
jobs:
  slow:
    command: ["/bin/sh", "-c", 'echo $$ >> %s; exec sleep 60']
    schedule: "*/10 * * * * *"
    timeout: 4s
    stop_timeout: 1s
""" % h.path("pids"))
    h.start()
    h.wait_for(lambda: len(h.pids("pids")) >= 1, timeout=15, what="the run")
    pid = h.pids("pids")[0]
    t0 = time.time()
    kill9(h)
    h.start()
    h.wait_log(r"adopted: job=slow .*pid=%d" % pid)
    h.wait_dead([pid], timeout=15, what="the adopted run, at its timeout")
    took = time.time() - t0
    check(took < 8, "stopped at its timeout, counted from its start (%.1fs after the kill)" % took)
    h.wait_log(r"run done: job=slow .*status=timed_out")
    h.stop()


def test_a_service_from_the_previous_life_is_stopped_and_started_afresh(h):
    h.config(node_yaml(h) + """
jobs:
  svc:
    command: ["/bin/sh", "-c", 'echo $$ >> %s; exec sleep 1000']
    schedule: always
    stop_timeout: 2s
""" % h.path("pids"))
    h.start()
    h.wait_for(lambda: len(h.pids("pids")) >= 1, what="the service")
    old = h.pids("pids")[0]
    kill9(h)
    check(pid_alive(old), "the service lives on after meshd's death")
    h.start()
    h.wait_log(r"adopted: job=svc .*pid=%d .*action=stop" % old)
    h.wait_dead([old], what="the previous life's service")
    h.wait_for(lambda: len(h.pids("pids")) >= 2, what="a fresh service")
    new = h.pids("pids")[-1]
    check(new != old and pid_alive(new), "a new service process runs")
    h.stop()
    check(not pid_alive(new), "stopped at shutdown")


def test_a_run_that_ended_meanwhile_is_abandoned(h):
    """The run's process is gone when the next life looks: recorded abandoned, with the reason,
    and its slot is not run again."""
    h.config(node_yaml(h) + """
jobs:
  brief:
    command: ["/bin/sh", "-c", 'echo "$$ $MESHD_RUN_ID" >> %s; exec sleep 60', x]
    schedule: "*/10 * * * * *"
    catch_up: 1h
""" % h.path("marks"))
    h.start()
    h.wait_for(lambda: len(h.lines("marks")) >= 1, timeout=15, what="the slot's run")
    pid, run = h.lines("marks")[0].split()
    kill9(h)
    os.kill(int(pid), signal.SIGKILL)
    h.wait_dead([int(pid)], what="the run, killed while meshd is down")
    h.start()
    h.wait_log(r"abandoned: job=brief run=%s .*reason=it ended while meshd was down" % run)
    r = last_run(h, "brief")
    eq("abandoned", r["status"], "recorded abandoned")
    time.sleep(1.5)
    runs = [l.split()[1] for l in h.lines("marks")]
    eq(1, runs.count(run), "the slot is not run again")
    h.stop()


def test_runs_file_is_empty_after_a_clean_stop(h):
    """Every run that ended was marked: a clean stop leaves nothing for the next life."""
    h.config(node_yaml(h) + """
jobs:
  tick:
    command: ["/bin/true"]
    schedule: "* * * * * *"
  svc:
    command: ["/bin/sleep", "1000"]
    schedule: always
""")
    h.start()
    h.wait_log(r"exited: job=tick", count=2)
    h.stop()
    h.proc = None
    h.logf.close()
    h.logf = None
    h.start()
    h.wait_log(r"started: node=", count=2)  # the log holds both lives
    eq(0, h.log_count(r"adopted: |abandoned: |reconciled: "), "nothing left to reconcile")
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
