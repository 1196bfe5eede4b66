#!/usr/bin/env python3
"""meshd as a container's only process (PID 1 in its own PID namespace), and jobs that run as
another user."""

import os
import pwd
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Skip, check, eq, fw, node_yaml, pid_alive, zombies_of  # noqa: E402

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


def _can_unshare():
    try:
        return subprocess.run(UNSHARE + ["true"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _children(pid):
    out = []
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, task)) as f:
            out += [int(x) for x in f.read().split()]
    return out


def _nspid(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


def test_pid1_reaps_orphans_and_stops_clean(h):
    if os.geteuid() != 0 or not _can_unshare():
        raise Skip("needs root and unshare --pid")
    # The worker leaves two orphans behind: one exits soon (must be reaped, not left a
    # zombie), one lingers (must be stopped when meshd stops).
    h.config(node_yaml(h) + """
jobs:
  orphaner:
    command: [sh, -c, 'sleep 0.3 & sleep 300 & echo $! > %s; exit 0']
    schedule: always
    restart: never
  svc:
    command: %s
    schedule: always
""" % (h.path("lingerer"), fw("loop")))
    h.start(wrap=UNSHARE)
    meshd = h.wait_for(lambda: (_children(h.pid) or [None])[0], 20, "meshd under unshare")
    eq(1, _nspid(meshd)[-1], "meshd is PID 1 in its namespace")
    h.wait_log(r"exited: job=orphaner run=\S+ pid=\d+ code=0", timeout=20)
    ns_pid = h.wait_for(lambda: (h.pids("lingerer") or [None])[0], 20, "the lingerer's pid")
    # $! is its pid inside the namespace: find it among this test's processes.
    lingerer = h.wait_for(lambda: ([p for p in h.descendants() if _nspid(p)[-1:] == [ns_pid]
                                    and len(_nspid(p)) > 1] or [None])[0], 20,
                          "the lingerer's host pid")
    # The short orphan was reparented to meshd, exited and was reaped.
    h.wait_for(lambda: not zombies_of(meshd), 20, "no zombie under meshd")
    check(pid_alive(lingerer), "the lingering orphan runs on until meshd stops")
    os.kill(meshd, signal.SIGTERM)
    code = h.wait_exit(30)
    eq(0, code, "meshd (through unshare) exit status")
    check(not pid_alive(lingerer), "the orphan did not outlive meshd")
    h.wait_log(r"stopping orphan: pid=\d+", timeout=1)


def test_job_runs_as_user(h):
    if os.geteuid() != 0:
        raise Skip("needs root to switch users")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise Skip("no user 'nobody'")
    os.chmod(h.dir, 0o777)
    h.config(node_yaml(h) + """
jobs:
  asuser:
    command: [sh, -c, 'id -u > %s; id -g >> %s']
    schedule: always
    restart: never
    user: nobody
  badusr:
    command: [sh, -c, 'exit 0']
    schedule: always
    restart: never
    user: no-such-user-here
""" % (h.path("ids"), h.path("ids")))
    h.start()
    ids = h.wait_file_lines("ids", 2, timeout=20)
    eq(str(nobody.pw_uid), ids[0], "uid of the run")
    eq(str(nobody.pw_gid), ids[1], "gid of the run")
    # An unknown user is a spawn failure of that job, logged, not a crash of meshd.
    h.wait_log(r"spawn failed: job=badusr .*unknown user 'no-such-user-here'", timeout=20)
    check(h.running(), "meshd keeps running")
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
