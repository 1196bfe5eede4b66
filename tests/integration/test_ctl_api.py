#!/usr/bin/env python3
"""meshctl's client commands against the real meshd (docs/meshctl.md, docs/api.md): status
(table and --json), run + logs, pause/resume, stop/restart of a service, reload, an unknown job,
no meshd at all, and the TCP listener with a bearer token."""

import json
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MESHCTL, Skip, check, eq, node_yaml  # noqa: E402

CRON = "hello"  # a cron job that never fires by itself within a test
SVC = "svc"     # an always-on service
TOKEN = "sekrit"


def _need_meshctl():
    if not MESHCTL or not os.access(MESHCTL, os.X_OK):
        raise Skip("MESHCTL_BIN not set")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sock(h):
    return os.path.join(h.state_dir, "meshd.sock")


def ctl(h, *args, env=None, socket_arg=True):
    """Runs meshctl with --socket of h's meshd (unless socket_arg is False); returns
    (code, stdout, stderr)."""
    check(MESHCTL and os.access(MESHCTL, os.X_OK), "MESHCTL_BIN not set or not executable")
    e = dict(os.environ)
    for k in ("MESHD_CONFIG", "MESHD_API_TOKEN"):
        e.pop(k, None)
    e.update(env or {})
    argv = [MESHCTL] + list(args) + (["--socket", _sock(h)] if socket_arg else [])
    r = subprocess.run(argv, cwd=h.dir, env=e, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def ok(h, *args, **kw):
    """meshctl that must exit 0; returns its stdout."""
    code, out, err = ctl(h, *args, **kw)
    eq(0, code, "meshctl %s (stdout %r, stderr %r)" % (" ".join(args), out, err))
    return out


def status_json(h):
    return json.loads(ok(h, "status", "--json"))


def job_of(h, name):
    for j in status_json(h)["jobs"]:
        if j["name"] == name:
            return j
    raise harness.Failure("no job %r in /status" % name)


def _start(h, port=None, token=None):
    """meshd with the cron job and the service; TCP on port (a free one by default)."""
    http = "http:\n  listen: \"127.0.0.1:%d\"\n" % (port or _free_port())
    if token:
        http += "  token: %s\n" % json.dumps(token)
    h.config(node_yaml(h) + http + """
jobs:
  %s:
    command: ["sh", "-c", "echo hello-from-run; echo oops >&2"]
    schedule: "0 0 1 1 *"
  %s:
    command: ["sleep", "1000"]
    schedule: always
""" % (CRON, SVC))
    h.start()
    h.wait_for(lambda: os.path.exists(_sock(h)), what="the API socket %s" % _sock(h))
    # meshd answers once the socket exists; the service may still be starting.
    h.wait_for(lambda: job_of(h, SVC)["state"] == "running" and job_of(h, SVC)["pid"],
               what="the service running in /status")


def test_status_table_and_json(h):
    _need_meshctl()
    _start(h)
    st = status_json(h)
    eq("itest", st["node"]["name"], "node name")
    eq(h.pid, st["node"]["pid"], "meshd's pid")
    jobs = {j["name"]: j for j in st["jobs"]}
    eq({CRON, SVC}, set(jobs), "jobs in /status")
    eq("cron", jobs[CRON]["kind"])
    eq("service", jobs[SVC]["kind"])
    check(isinstance(jobs[SVC]["pid"], int), "the service has a pid: %r" % jobs[SVC])
    check(jobs[CRON]["next_run"], "the cron job has a next run: %r" % jobs[CRON])

    out = ok(h, "status")
    lines = out.splitlines()
    check(re.match(r"node itest\b", lines[0]), "first line names the node: %r" % lines[0])
    check("healthy" in lines[0], "first line says healthy: %r" % lines[0])
    check("registry" in lines[0], "first line tells the registry state: %r" % lines[0])
    check(lines[1].split()[:3] == ["NAME", "STATE", "DETAIL"], "header: %r" % lines[1])
    rows = {l.split()[0]: l for l in lines[2:]}
    eq({CRON, SVC}, set(rows), "table rows")
    check(rows[SVC].split()[1] == jobs[SVC]["state"].upper(), "service state: %r" % rows[SVC])
    check("pid %d" % jobs[SVC]["pid"] in rows[SVC], "service pid: %r" % rows[SVC])
    check(rows[CRON].split()[1] == jobs[CRON]["state"].upper(), "cron state: %r" % rows[CRON])
    next_run = re.sub(r"\.\d+Z$", "Z", jobs[CRON]["next_run"])  # the table drops the fraction
    check(next_run in rows[CRON], "cron next run %s: %r" % (next_run, rows[CRON]))
    check("never run" in rows[CRON], "cron never ran: %r" % rows[CRON])

    # One job: the same row without the node line; --json is the job object.
    out = ok(h, "status", SVC)
    check(out.splitlines()[1].startswith(SVC), "status %s: %r" % (SVC, out))
    eq(SVC, json.loads(ok(h, "status", SVC, "--json"))["name"])
    h.stop()


def test_run_then_logs(h):
    _need_meshctl()
    _start(h)
    out = ok(h, "run", CRON)
    m = re.search(r"started run (%s@\S+)" % CRON, out)
    check(m, "run prints the run id: %r" % out)
    run_id = m.group(1)

    def finished():
        code, o, _ = ctl(h, "logs", CRON)
        return code == 0 and "hello-from-run" in o and "oops" in o and "running" not in o and o

    out = h.wait_for(finished, what="the run's output in meshctl logs")
    head = out.splitlines()[0]
    check(run_id in head, "the run is headed by its id: %r" % head)
    check("succeeded" in head, "and its status: %r" % head)
    logs = json.loads(ok(h, "logs", CRON, "--json"))
    eq(CRON, logs["job"])
    eq(run_id, logs["runs"][-1]["run_id"])
    eq("succeeded", job_of(h, CRON)["last_run"]["status"], "last_run in /status")
    check("last run succeeded" in ok(h, "status"), "the table shows the last run")
    h.stop()


def test_pause_resume(h):
    _need_meshctl()
    _start(h)
    eq(False, job_of(h, CRON)["paused"])
    check("paused" in ok(h, "pause", CRON), "pause says so")
    j = job_of(h, CRON)
    eq(True, j["paused"], "paused after pause")
    eq(None, j["next_run"], "no next run while paused")
    row = [l for l in ok(h, "status").splitlines() if l.startswith(CRON + " ")][0]
    check(row.rstrip().endswith("paused"), "NEXT RUN says paused: %r" % row)
    check("resumed" in ok(h, "resume", CRON), "resume says so")
    j = job_of(h, CRON)
    eq(False, j["paused"], "paused after resume")
    check(j["next_run"], "a next run again: %r" % j)
    h.stop()


def test_stop_and_restart_a_service(h):
    _need_meshctl()
    _start(h)
    old = job_of(h, SVC)["pid"]
    ok(h, "stop", SVC)
    h.wait_for(lambda: job_of(h, SVC)["pid"] is None
               and job_of(h, SVC)["state"] in ("stopped", "exited"), what="the service stopped")
    h.wait_dead([old])
    row = [l for l in ok(h, "status").splitlines() if l.startswith(SVC + " ")][0]
    check(row.split()[1] in ("STOPPED", "EXITED"), "table shows it stopped: %r" % row)
    code, _, err = ctl(h, "stop", SVC)
    eq(1, code, "stopping a stopped service (409) exits 1 (stderr %r)" % err)
    check(re.search(r"^meshctl: .+\(HTTP 409\)$", err, re.M), "prints the error: %r" % err)

    ok(h, "restart", SVC)
    new = h.wait_for(lambda: job_of(h, SVC)["state"] == "running" and job_of(h, SVC)["pid"],
                     what="the service running again")
    check(new != old, "a new pid (%r, was %r)" % (new, old))
    h.stop()


def test_reload(h):
    _need_meshctl()
    _start(h)
    check("reloaded" in ok(h, "reload"), "reload says so")
    h.wait_log(r"reloaded: ")
    eq({CRON, SVC}, {j["name"] for j in status_json(h)["jobs"]}, "jobs after reload")
    # A broken file: exit 1, the error and its file:line:col diagnostics; the old schedule stays.
    good = open(h.cfg_path).read()
    h.config(good + "    no_such_key: 1\n")
    code, out, err = ctl(h, "reload")
    eq(1, code, "reload of a broken file (stdout %r stderr %r)" % (out, err))
    check(re.search(r"^meshctl: .*\(HTTP 400\)$", err, re.M), "the error: %r" % err)
    check(re.search(r"^  %s:\d+:\d+: error: .*no_such_key" % re.escape(h.cfg_path), err, re.M),
          "the diagnostics: %r" % err)
    eq({CRON, SVC}, {j["name"] for j in status_json(h)["jobs"]}, "jobs after a failed reload")
    # A deleted file: the diagnostic has no position, so it names the file alone.
    os.unlink(h.cfg_path)
    code, out, err = ctl(h, "reload")
    eq(1, code, "reload of a deleted file (stdout %r stderr %r)" % (out, err))
    eq(["  %s: error: cannot open: No such file or directory" % h.cfg_path],
       [l for l in err.splitlines() if l.startswith("  ")], "the diagnostics of a deleted file")
    eq({CRON, SVC}, {j["name"] for j in status_json(h)["jobs"]}, "jobs after a failed reload")
    h.stop()


def test_unknown_job_exits_1_with_the_error(h):
    _need_meshctl()
    _start(h)
    for args in (("run", "nope"), ("pause", "nope"), ("logs", "nope"), ("status", "nope")):
        code, out, err = ctl(h, *args)
        eq(1, code, "meshctl %s (stdout %r stderr %r)" % (" ".join(args), out, err))
        check(re.search(r"^meshctl: .*nope.*\(HTTP 404\)$", err, re.M),
              "meshctl %s prints the server's error: %r" % (" ".join(args), err))
    h.stop()


def test_no_meshd_exits_3(h):
    _need_meshctl()
    missing = h.path("nowhere/meshd.sock")
    for args in (("status",), ("run", CRON), ("logs", CRON), ("reload",)):
        code, out, err = ctl(h, *args, "--socket", missing, socket_arg=False)
        eq(3, code, "meshctl %s without meshd (stderr %r)" % (" ".join(args), err))
        check("meshctl: meshd is not running (no socket at %s)" % missing in err,
              "clear message: %r" % err)
    # The socket path from the config's state_dir.
    h.config(node_yaml(h) + "jobs:\n  a:\n    command: [\"true\"]\n    schedule: always\n")
    code, _, err = ctl(h, "status", "--config", h.cfg_path, socket_arg=False)
    eq(3, code, "status --config without meshd (stderr %r)" % err)
    check("no socket at %s" % _sock(h) in err, "the config's state_dir is used: %r" % err)
    # Nothing listens on the URL.
    url = "http://127.0.0.1:%d" % _free_port()
    code, _, err = ctl(h, "status", "--url", url, socket_arg=False)
    eq(3, code, "status --url without meshd (stderr %r)" % err)
    check("cannot connect to %s" % url in err, "clear message: %r" % err)
    code, _, err = ctl(h, "status", "--bogus")
    eq(2, code, "an unknown option is a usage error (stderr %r)" % err)


def test_tcp_listener_with_a_token(h):
    _need_meshctl()
    port = _free_port()
    _start(h, port=port, token=TOKEN)
    url = "http://127.0.0.1:%d" % port
    # Reads are anonymous by default.
    code, out, err = ctl(h, "status", "--url", url, socket_arg=False)
    eq(0, code, "status over TCP (stderr %r)" % err)
    check(SVC in out, "status over TCP lists the jobs: %r" % out)
    for extra, env in ((["--token", "wrong"], None), ([], None), ([], {"MESHD_API_TOKEN": "x"})):
        code, out, err = ctl(h, "pause", CRON, "--url", url, *extra, env=env, socket_arg=False)
        eq(4, code, "pause with token %r/%r (stderr %r)" % (extra, env, err))
        check(re.search(r"^meshctl: .*\(HTTP 401\)$", err, re.M), "the 401 error: %r" % err)
    eq(False, job_of(h, CRON)["paused"], "nothing was paused without the token")
    ok(h, "pause", CRON, "--url", url, "--token", TOKEN, socket_arg=False)
    eq(True, job_of(h, CRON)["paused"], "paused with the token")
    ok(h, "resume", CRON, "--url", url + "/", env={"MESHD_API_TOKEN": TOKEN}, socket_arg=False)
    eq(False, job_of(h, CRON)["paused"], "resumed with the token from the environment")
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
