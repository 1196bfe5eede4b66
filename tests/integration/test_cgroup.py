#!/usr/bin/env python3
"""Each run in a cgroup of its own (docs/supervision.md, "Cgroups"), on the real meshd.

meshd runs in a fresh cgroup the harness makes and marks delegated (user.delegate=1), as systemd
does for a unit with Delegate=yes.  A worker forks a grandchild that calls setsid (it leaves the
worker's process group and session, as a daemon does); once the run ends -- exit 0, a run
timeout, `meshctl stop`, meshd's shutdown -- the grandchild must be gone, while meshd runs on.
Without cgroups (before them) such a grandchild lived on until meshd itself stopped.  A run that
burns ~0.3 s of CPU has its CPU time in /status.  node.cgroups: off, the root cgroup, a cgroup
nobody delegated, and a read-only cgroup2 mount each give one start-up line saying why, and the
old behaviour.  A container's cgroup namespace (unshare --cgroup) counts as delegated.

Skips when this machine cannot make a cgroup v2 for the test (not root, no writable cgroup2)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MESHCTL, Skip, check, eq, fw, node_yaml, pid_alive  # noqa: E402

GRACE = 10.0  # generous: "shortly after the run ends" on a loaded 2-core box


def ctl(h, *args):
    """meshctl on h's unix socket; must exit 0.  Returns stdout."""
    check(MESHCTL and os.access(MESHCTL, os.X_OK), "MESHCTL_BIN not set or not executable")
    e = dict(os.environ)
    e.pop("MESHD_CONFIG", None)
    e.pop("MESHD_API_TOKEN", None)
    r = subprocess.run([MESHCTL] + list(args) + ["--socket", os.path.join(h.state_dir,
                                                                         "meshd.sock")],
                       cwd=h.dir, env=e, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30)
    eq(0, r.returncode, "meshctl %s (stdout %r, stderr %r)" % (" ".join(args), r.stdout,
                                                                 r.stderr))
    return r.stdout


def status(h):
    return json.loads(ctl(h, "status", "--json"))


def job_status(h, name):
    for j in status(h)["jobs"]:
        if j["name"] == name:
            return j
    raise harness.Failure("no job %s in /status" % name)


def escapee(h, name="gc"):
    """The pid of the setsid'd grandchild the worker wrote to name, once it is there and has left
    the worker's session (which is what makes it escape a group kill)."""
    h.wait_file_lines(name, 1)
    pid = h.pids(name)[0]
    def left_session():
        try:
            return os.getsid(pid) == pid
        except ProcessLookupError:
            return True
    h.wait_for(lambda: not pid_alive(pid) or left_session(), what="setsid in %d" % pid)
    return pid


def run_cgroups(h):
    """The run cgroups meshd has now (names), or [] when there is no runs/ directory."""
    try:
        return sorted(d for d in os.listdir(os.path.join(h.cgroup, "runs"))
                      if os.path.isdir(os.path.join(h.cgroup, "runs", d)))
    except FileNotFoundError:
        return []


def start_on(h, cfg):
    h.make_cgroup()
    h.config(cfg)
    h.start(cgroup=True)
    m = h.wait_log(r"cgroups: (on|off) .*")[0]
    check(m.group(1) == "on", "cgroups are off: %s" % m.group(0))


YEARLY = '"@yearly"'  # a cron job that runs only when told to (meshctl run)


def test_exit_0_leaves_no_escapee(h):
    start_on(h, node_yaml(h) + """
jobs:
  esc:
    command: %s
    schedule: %s
""" % (fw("spawn-escapee", h.path("gc"), "sleep", "300", "exit", "0"), YEARLY))
    # meshd moved itself out of its cgroup's root into supervisor/ (no internal processes).
    with open(os.path.join(h.cgroup, "supervisor", "cgroup.procs")) as f:
        eq([h.pid], [int(x) for x in f.read().split()], "meshd in <own>/supervisor")
    ctl(h, "run", "esc")
    gc = escapee(h)
    check(pid_alive(gc), "grandchild %d alive while the run runs" % gc)
    run = h.wait_log(r"run done: job=esc run=(\S+) status=succeeded")[0].group(1)
    h.wait_dead([gc], timeout=GRACE, what="grandchild %d to die with its run" % gc)
    check(h.running(), "meshd still running")
    h.wait_log(r"killed leftovers: job=esc run=%s cgroup=esc-\d+" % re.escape(run))
    h.wait_for(lambda: run_cgroups(h) == [], GRACE, "the run's cgroup to be removed")
    h.stop()
    check(not re.search(r"(stopping|killing) orphan", h.log()),
          "no orphan was left for the shutdown to stop")  # it died long before the stop


def test_timeout_kills_the_escapee(h):
    start_on(h, node_yaml(h) + """
jobs:
  slow:
    command: %s
    schedule: %s
    timeout: 1s
    stop_timeout: 1s
""" % (fw("spawn-escapee", h.path("gc"), "write-pid", h.path("leader"), "loop"), YEARLY))
    ctl(h, "run", "slow")
    gc = escapee(h)
    h.wait_file_lines("leader", 1)
    leader = h.pids("leader")[0]
    h.wait_log(r"run done: job=slow run=\S+ status=timed_out")
    h.wait_dead([leader, gc], timeout=GRACE, what="leader %d and grandchild %d" % (leader, gc))
    check(h.running(), "meshd still running")
    h.stop()


def test_meshctl_stop_kills_the_escapee(h):
    start_on(h, node_yaml(h) + """
jobs:
  svc:
    command: %s
    schedule: always
""" % fw("spawn-escapee", h.path("gc"), "write-pid", h.path("leader"), "loop"))
    gc = escapee(h)
    h.wait_file_lines("leader", 1)
    leader = h.pids("leader")[0]
    ctl(h, "stop", "svc")
    h.wait_dead([leader, gc], timeout=GRACE, what="service %d and grandchild %d" % (leader, gc))
    check(h.running(), "meshd still running")
    eq("stopped", job_status(h, "svc")["state"], "svc state")
    h.stop()


def test_shutdown_kills_the_escapee_with_its_run(h):
    # Worker and grandchild ignore SIGTERM: meshd SIGKILLs the run after stop_timeout.  The
    # grandchild dies with it, not ORPHAN_GRACE (5 s) later by the orphan sweep's SIGKILL.  (The
    # sweep may still see it dying and send it a TERM: that is harmless and not checked.)
    start_on(h, node_yaml(h) + """
jobs:
  svc:
    command: %s
    schedule: always
    stop_timeout: 1s
""" % fw("ignore", "TERM", "spawn-escapee", h.path("gc"), "write-pid", h.path("leader"),
         "loop"))
    gc = escapee(h)
    h.wait_file_lines("leader", 1)
    h.stop()
    check(not pid_alive(gc), "grandchild %d outlived meshd" % gc)
    check(not re.search(r"killing orphan: pid=%d\b" % gc, h.log()),
          "the grandchild was left to the orphan sweep:\n%s" % h.log()[-2000:])
    h.wait_log(r"signalled: job=svc run=\S+ pid=\d+ signal=Killed cgroup=svc-\d+")


def test_cpu_time_in_status(h):
    start_on(h, node_yaml(h) + """
jobs:
  burner:
    command: %s
    schedule: %s
""" % (fw("burn", "300", "exit", "0"), YEARLY))
    ctl(h, "run", "burner")
    h.wait_log(r"run done: job=burner run=\S+ status=succeeded")
    st = status(h)
    cg = st["node"]["cgroups"]
    eq(True, cg["on"], "node.cgroups.on")
    eq(h.cgroup, cg["path"], "node.cgroups.path")
    last = [j for j in st["jobs"] if j["name"] == "burner"][0]["last_run"]
    cpu = last["cpu_usec"]
    check(cpu is not None and 200000 <= cpu <= 30000000, "cpu_usec %r for ~0.3 s burned" % cpu)
    parts = last["cpu_user_usec"] + last["cpu_system_usec"]
    check(abs(parts - cpu) <= cpu * 0.1 + 10000, "user + system %d vs usage %d" % (parts, cpu))
    if cg["memory"]:
        check(last["memory_peak_bytes"] > 0, "memory_peak_bytes %r" % last["memory_peak_bytes"])
    else:
        eq(None, last["memory_peak_bytes"], "memory_peak_bytes without the memory controller")
        check(cg["why"], "node.cgroups.why says why there is no memory figure")
    first = ctl(h, "status").splitlines()[0]
    check(re.search(r"; cgroups on( \(no memory\))?$", first), "meshctl status: %r" % first)
    # The same record in /api/jobs/NAME.
    code, one = h.api_json("GET", "/api/jobs/burner", sock=True)
    eq(200, code, "GET /api/jobs/burner")
    eq(last, one["last_run"], "/api/jobs/burner last_run")
    h.stop()


# ---- without cgroups: one line at start, and the old behaviour ----------------------------


def _escapee_survives_its_run(h):
    """Without cgroups a setsid grandchild outlives its run (as before), until meshd stops."""
    ctl(h, "run", "esc")
    gc = escapee(h)
    h.wait_log(r"run done: job=esc run=\S+ status=succeeded")
    time.sleep(1.0)
    check(pid_alive(gc), "grandchild %d still alive after its run (no cgroups)" % gc)
    last = job_status(h, "esc")["last_run"]
    eq(None, last["cpu_usec"], "cpu_usec without cgroups")
    eq(None, last["memory_peak_bytes"], "memory_peak_bytes without cgroups")
    check("killed leftovers" not in h.log(), "no cgroup kill without cgroups")
    h.stop()
    check(not pid_alive(gc), "grandchild %d stopped with meshd" % gc)
    return gc


def _esc_job(h, node_extra=""):
    return node_yaml(h, node_extra) + """
jobs:
  esc:
    command: %s
    schedule: %s
""" % (fw("spawn-escapee", h.path("gc"), "exit", "0"), YEARLY)


def _off_line(h):
    lines = [m.group(0) for m in h.log_find(r"^.*cgroups: .*$")]
    eq(1, len(lines), "one cgroups line at start: %r" % lines)
    check("cgroups: off reason=" in lines[0], "cgroups off: %r" % lines[0])
    return lines[0]


def test_off_by_config(h):
    h.make_cgroup()
    h.config(_esc_job(h, "  cgroups: off\n"))
    h.start(cgroup=True)
    h.wait_started()
    check('reason="node.cgroups is off"' in _off_line(h), "the reason")
    eq(False, status(h)["node"]["cgroups"]["on"], "node.cgroups.on")
    eq("node.cgroups is off", status(h)["node"]["cgroups"]["why"], "node.cgroups.why")
    check(ctl(h, "status").splitlines()[0].endswith("; cgroups off"), "meshctl status says off")
    check(not os.path.exists(os.path.join(h.cgroup, "supervisor")), "no supervisor/ made")
    _escapee_survives_its_run(h)


def test_off_when_not_delegated(h):
    # Writable (we are root), but not marked as delegated: systemd's rule is not to divide a
    # cgroup one was not given.
    h.make_cgroup(mark=False)
    h.config(_esc_job(h))
    h.start(cgroup=True)
    h.wait_started()
    check("is not delegated to it" in _off_line(h), "the reason")
    check(not os.path.exists(os.path.join(h.cgroup, "supervisor")), "no supervisor/ made")
    _escapee_survives_its_run(h)


def test_off_in_the_root_cgroup(h):
    base = harness.cgroup2_own_dir()
    if base is None or os.path.exists(os.path.join(base, "cgroup.type")):
        raise Skip("this test process is not in the root cgroup")
    h.config(_esc_job(h))
    h.start()  # in our own (root) cgroup
    h.wait_started()
    check("meshd runs in the root cgroup" in _off_line(h), "the reason")
    _escapee_survives_its_run(h)


def _cgroup2_mount_point(path):
    best = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.startswith("cgroup2 "):
                point = left.split()[4].replace("\\040", " ")
                if path == point or path.startswith(point.rstrip("/") + "/"):
                    best = point
    return best


def test_off_on_a_read_only_mount(h):
    # systemd's ProtectControlGroups=yes: /sys/fs/cgroup read-only in meshd's mount namespace.
    h.make_cgroup()
    point = _cgroup2_mount_point(h.cgroup)
    check(point is not None, "cgroup2 mount of %s" % h.cgroup)
    h.config(_esc_job(h))
    h.start(cgroup=True, wrap=[
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        'mount -o remount,bind,ro "$0" && exec "$@"', point])
    h.wait_started()
    check("Read-only file system" in _off_line(h), "the reason")
    _escapee_survives_its_run(h)


def test_container_cgroup_namespace_counts_as_delegated(h):
    # A container: its own cgroup namespace with cgroup2 mounted inside shows meshd's cgroup as
    # "/" at the top of the mount -- delegated without any mark.
    h.make_cgroup(mark=False)
    point = _cgroup2_mount_point(h.cgroup)
    check(point is not None, "cgroup2 mount of %s" % h.cgroup)
    h.config(_esc_job(h))
    h.start(cgroup=True, wrap=[
        "unshare", "--cgroup", "--mount", "--propagation", "private", "sh", "-c",
        'umount -l "$0" && mount -t cgroup2 cgroup2 "$0" && exec "$@"', point])
    m = h.wait_log(r"cgroups: (on|off) .*")[0]
    check(m.group(1) == "on", "cgroups in a cgroup namespace: %s" % m.group(0))
    check(os.path.isdir(os.path.join(h.cgroup, "supervisor")), "supervisor/ made")
    ctl(h, "run", "esc")
    gc = escapee(h)
    h.wait_log(r"run done: job=esc run=\S+ status=succeeded")
    h.wait_dead([gc], timeout=GRACE, what="grandchild %d to die with its run" % gc)
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
