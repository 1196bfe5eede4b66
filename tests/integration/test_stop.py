#!/usr/bin/env python3
"""Stopping on the real meshd: run timeouts kill the whole process group, stop_timeout escalates
to SIGKILL, SIGTERM/SIGINT leave no process behind and meshd exits 0."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, node_yaml, pid_alive  # noqa: E402


def _timeout_job(h, pre=()):
    return node_yaml(h) + """
jobs:
  slowrun:
    command: %s
    schedule: "*/2 * * * * *"
    timeout: 1s
    stop_signal: TERM
    stop_timeout: 1s
    stop_group: true
""" % fw(*(list(pre) + ["write-pid", h.path("leaders"), "spawn-child", h.path("grandchild"),
                        "write-pid", h.path("forked"), "loop"]))


def _check_timed_out_run(h):
    h.wait_file_lines("forked", 1, timeout=20)
    leader = h.pids("leaders")[0]
    grandchild = h.pids("grandchild")[0]
    check(pid_alive(grandchild), "grandchild %d alive during the run" % grandchild)
    m = h.wait_log(r"timeout: job=slowrun run=(\S+) pid=%d" % leader)[0]
    run = m.group(1)
    h.wait_log(r"run done: job=slowrun run=%s status=timed_out" % run)
    h.wait_dead([leader, grandchild], what="leader %d and grandchild %d to die" % (leader, grandchild))
    return leader, grandchild


def test_run_timeout_kills_the_whole_group(h):
    h.config(_timeout_job(h))
    h.start()
    _check_timed_out_run(h)
    h.stop()


def test_run_timeout_kills_a_group_that_ignores_term(h):
    h.config(_timeout_job(h, pre=["ignore", "TERM"]))
    h.start()
    leader, _ = _check_timed_out_run(h)
    h.wait_log(r"exited: job=slowrun run=\S+ pid=%d signal=Killed" % leader)
    h.stop()


def test_ignored_sigterm_gets_sigkill_after_stop_timeout(h):
    h.config(node_yaml(h) + """
jobs:
  stubborn:
    command: %s
    schedule: always
    stop_signal: TERM
    stop_timeout: 1500ms
""" % fw("ignore", "TERM", "write-pid", h.path("pids"), "loop"))
    h.start()
    h.wait_file_lines("pids", 1)
    pid = h.pids("pids")[0]
    # Let the worker's "ignore TERM" take effect: it wrote its pid after it.
    t0 = time.monotonic()
    h.stop()
    took = time.monotonic() - t0
    check(not pid_alive(pid), "stubborn worker %d dead" % pid)
    h.wait_log(r"exited: job=stubborn run=\S+ pid=%d signal=Killed" % pid)
    # SIGKILL only after the grace period: a lower bound, safe on a slow machine.
    check(took >= 1.3, "meshd stopped in %.3f s, before the 1.5 s stop_timeout" % took)


def test_stop_signal_is_configurable(h):
    h.config(node_yaml(h) + """
jobs:
  intjob:
    command: %s
    schedule: always
    stop_signal: INT
    stop_timeout: 10s
""" % fw("ignore", "TERM", "write-pid", h.path("pids"), "loop"))
    h.start()
    h.wait_file_lines("pids", 1)
    pid = h.pids("pids")[0]
    h.stop()
    h.wait_log(r"exited: job=intjob run=\S+ pid=%d signal=Interrupt" % pid)


def test_sigterm_leaves_no_process_behind(h):
    h.config(node_yaml(h) + """
jobs:
  plain:
    command: %s
    schedule: always
  forker:
    command: %s
    schedule: always
    stop_group: true
  stubborn:
    command: %s
    schedule: always
    stop_group: true
    stop_timeout: 1s
  midrun:
    command: %s
    schedule: "* * * * * *"
    stop_group: true
    stop_timeout: 1s
""" % (fw("write-pid", h.path("plain"), "loop"),
       fw("spawn-child", h.path("forker.child"), "write-pid", h.path("forker"), "loop"),
       fw("ignore", "TERM", "spawn-child", h.path("stubborn.child"), "write-pid",
          h.path("stubborn"), "loop"),
       fw("spawn-child", h.path("midrun.child"), "write-pid", h.path("midrun"), "sleep", "60000")))
    h.start()
    for f in ("plain", "forker", "stubborn", "midrun"):
        h.wait_file_lines(f, 1, timeout=20)
    pids = []
    for f in ("plain", "forker", "forker.child", "stubborn", "stubborn.child", "midrun",
              "midrun.child"):
        pids += h.pids(f)
    for p in pids:
        check(pid_alive(p), "pid %d alive before the stop" % p)
    before = set(h.descendants())
    check(set(pids) <= before, "every known pid carries the test token: %r vs %r" % (pids, before))
    h.stop(expect=0)
    alive = [p for p in pids if pid_alive(p)]
    eq([], alive, "processes alive after meshd exited")
    eq([], h.descendants(), "descendants alive after meshd exited")
    h.wait_log(r"stopped: every job is down")
    h.wait_log(r"exit: code=0")


def test_sigint_stops_gracefully(h):
    h.config(node_yaml(h) + """
jobs:
  plain:
    command: %s
    schedule: always
""" % fw("write-pid", h.path("pids"), "loop"))
    h.start()
    h.wait_file_lines("pids", 1)
    pid = h.pids("pids")[0]
    h.signal(signal.SIGINT)
    code = h.wait_exit()
    eq(0, code, "meshd exit status after SIGINT")
    check(not pid_alive(pid), "service %d dead" % pid)


def test_no_respawn_while_stopping(h):
    """A service that dies during shutdown is not restarted."""
    h.config(node_yaml(h) + """
jobs:
  svc:
    command: %s
    schedule: always
    restart: always
    backoff: {initial: 10ms, max: 20ms}
""" % fw("write-pid", h.path("pids"), "loop"))
    h.start()
    h.wait_file_lines("pids", 1)
    h.stop()
    eq(1, len(h.pids("pids")), "spawns")


def test_sigterm_kills_orphans_of_finished_runs(h):
    """A worker that daemonizes a child and exits 0 leaves the child with meshd (its subreaper);
    a SIGTERM of meshd must not leave that child behind."""
    h.config(node_yaml(h) + """
jobs:
  daemonizer:
    command: %s
    schedule: always
    restart: never
""" % fw("spawn-child", h.path("child"), "exit", "0"))
    h.start()
    h.wait_log(r"exited: job=daemonizer run=\S+ pid=\d+ code=0")
    child = h.pids("child")[0]
    check(pid_alive(child), "orphan alive before the stop")
    h.stop()
    h.wait_dead([child], timeout=5, what="orphan %d of a finished run to be stopped with meshd" % child)


if __name__ == "__main__":
    harness.main(globals())
