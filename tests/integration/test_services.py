#!/usr/bin/env python3
"""Always-on services on the real meshd: restart after a kill, crash loops going FATAL, exit 100,
readiness by status line, the status pipe's bad lines, output capture."""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (check, eq, fw, log_line_time, node_yaml, parent_of, pid_alive,  # noqa: E402
                     read_pids, zombies_of)


def test_killed_service_is_restarted(h):
    h.config(node_yaml(h) + """
jobs:
  svc:
    command: %s
    schedule: always
    restart: always
    start_secs: 200ms
    backoff: {initial: 100ms, max: 500ms}
""" % fw("write-pid", h.path("pids"), "loop"))
    h.start()
    h.wait_file_lines("pids", 1)
    old = h.pids("pids")[0]
    check(pid_alive(old), "service pid %d alive" % old)
    os.kill(old, signal.SIGKILL)
    h.wait_file_lines("pids", 2)
    new = h.pids("pids")[1]
    check(new != old, "a new pid after the kill")
    h.wait_dead([old])
    check(pid_alive(new), "replacement %d alive" % new)
    h.wait_log(r"exited: job=svc run=\S+ pid=%d signal=\S+" % old)
    # Killed again: restarted again (the service is not given up on after one kill).
    os.kill(new, signal.SIGKILL)
    h.wait_file_lines("pids", 3)
    third = h.pids("pids")[2]
    check(third not in (old, new) and pid_alive(third), "third pid %d alive" % third)
    eq(h.pids("pids"), h.spawned_pids("svc"), "pids written == pids meshd logged as spawned")
    h.stop()
    check(not pid_alive(third), "service stopped with meshd")


def test_crash_loop_goes_fatal_after_retries(h):
    h.config(node_yaml(h) + """
jobs:
  crash:
    command: %s
    schedule: always
    restart: always
    max_retries: 3
    start_secs: 1s
    backoff: {initial: 50ms, max: 200ms}
  bystander:
    command: %s
    schedule: always
""" % (fw("write-pid", h.path("pids"), "sleep", "20", "exit", "3"),
       fw("write-pid", h.path("bystander"), "loop")))
    h.start()
    h.wait_log(r"gave up: job=crash state=FATAL tries=4\b")
    eq(4, len(h.pids("pids")), "spawns (max_retries + 1)")
    # No more spawns once FATAL (backoff max is 200 ms, so 1.5 s would show several).
    time.sleep(1.5)
    eq(4, len(h.pids("pids")), "spawns after FATAL")
    eq(4, len(h.spawned_pids("crash")), "spawned lines")
    eq(3, h.log_count(r"backoff: job=crash "), "backoff lines")
    eq(1, h.log_count(r"gave up: job=crash "), "gave up lines")
    for p in h.pids("pids"):
        check(not pid_alive(p), "crashed pid %d gone" % p)
    # Another job is not affected.
    eq(1, len(h.pids("bystander")), "bystander spawns")
    check(pid_alive(h.pids("bystander")[0]), "bystander alive")
    h.stop()


def test_exit_100_goes_fatal_at_once(h):
    h.config(node_yaml(h) + """
jobs:
  perm:
    command: %s
    schedule: always
    restart: always
    max_retries: 5
    backoff: {initial: 50ms, max: 100ms}
""" % fw("write-pid", h.path("pids"), "exit", "100"))
    h.start()
    h.wait_log(r"gave up: job=perm state=FATAL")
    time.sleep(1.0)
    eq(1, len(h.pids("pids")), "spawns of a job exiting 100")
    eq(0, h.log_count(r"backoff: job=perm "), "backoff lines")
    h.stop()


def test_on_failure_does_not_restart_a_clean_exit(h):
    h.config(node_yaml(h) + """
jobs:
  once:
    command: %s
    schedule: always
    restart: on-failure
    start_secs: 0s
    backoff: {initial: 50ms, max: 100ms}
""" % fw("write-pid", h.path("pids"), "exit", "0"))
    h.start()
    h.wait_log(r"exited: job=once run=\S+ pid=\d+ code=0")
    time.sleep(1.0)
    eq(1, len(h.pids("pids")), "spawns of a job that exits 0 with restart: on-failure")
    h.stop()


def test_ready_line_gates_readiness(h):
    h.config(node_yaml(h) + """
jobs:
  slowready:
    command: %s
    schedule: always
    ready: line
    start_secs: 100ms
""" % fw("write-pid", h.path("pids"), "sleep", "1500", "ready", "loop"))
    h.start()
    h.wait_log(r"state: job=slowready from=STARTING to=RUNNING")
    spawned = h.log_find(r"^.*spawned: job=slowready .*$")[0].group(0)
    ready = h.log_find(r"^.*ready: job=slowready .*$")
    running = h.log_find(r"^.*state: job=slowready from=STARTING to=RUNNING.*$")[0]
    check(ready, "ready line logged")
    check(ready[0].start() < running.start(), "RUNNING only after the ready line")
    # start_secs (100 ms) is ignored with ready: line; the worker says ready after 1.5 s.
    dt = log_line_time(running.group(0)) - log_line_time(spawned)
    check(dt >= 1.2, "RUNNING %.3f s after spawn, before the worker was ready" % dt)
    h.stop()


def test_exit_before_ready_is_a_failure(h):
    """restart: always + ready: line: an exit 0 before the ready line counts as a failure."""
    h.config(node_yaml(h) + """
jobs:
  neverready:
    command: %s
    schedule: always
    ready: line
    restart: always
    max_retries: 1
    backoff: {initial: 50ms, max: 100ms}
""" % fw("write-pid", h.path("pids"), "exit", "0"))
    h.start()
    h.wait_log(r"gave up: job=neverready state=FATAL")
    eq(2, len(h.pids("pids")), "spawns (max_retries + 1)")
    eq(0, h.log_count(r"to=RUNNING"), "RUNNING transitions")
    h.stop()


def test_bad_status_lines_are_logged_and_counted(h):
    h.config(node_yaml(h) + """
jobs:
  chatty:
    command: %s
    schedule: always
""" % fw("write-pid", h.path("pids"), "badstatus", "status", '{"event":"heartbeat"}',
          "status", '{"event":"no-such-event"}', "longstatus", "70000", "heartbeat",
          "print", "still-here", "loop"))
    h.start()
    h.wait_log(r"output: job=chatty run=\S+ stream=stdout \| still-here")
    h.wait_log(r"bad status line: job=chatty run=\S+ pid=\d+ count=1\b")
    h.wait_log(r"bad status line: job=chatty run=\S+ pid=\d+ count=3\b")
    pid = h.pids("pids")[0]
    check(pid_alive(pid), "worker still running after bad status lines")
    eq(0, h.log_count(r"exited: job=chatty "), "exits")
    eq(1, len(h.spawned_pids("chatty")), "spawns")
    # The 70000-byte line did not make meshd write a 70000-byte log line.
    longest = max(len(l) for l in h.log().splitlines())
    check(longest < 16384, "a log line of %d bytes" % longest)
    h.stop()


def test_output_lines_are_logged_with_job_and_run(h):
    h.config(node_yaml(h) + """
jobs:
  talker:
    command: %s
    schedule: always
    restart: never
""" % fw("print", "hello stdout", "eprint", "hello stderr", "print", "line two",
          "write-pid", h.path("pids"), "exit", "0"))
    h.start()
    h.wait_log(r"exited: job=talker run=\S+ pid=\d+ code=0")
    h.wait_log(r"output: job=talker run=\S+ stream=stdout \| line two")
    run = h.log_find(r"spawned: job=talker run=(\S+) pid=")[0].group(1)
    out = h.log_find(r"output: job=talker run=(\S+) stream=(\w+) \| (.*)$")
    got = [(m.group(1), m.group(2), m.group(3)) for m in out]
    for want in [(run, "stdout", "hello stdout"), (run, "stderr", "hello stderr"),
                 (run, "stdout", "line two")]:
        check(want in got, "output line %r missing from %r" % (want, got))
    stdout_lines = [g[2] for g in got if g[1] == "stdout"]
    eq(["hello stdout", "line two"], stdout_lines, "stdout lines in order")
    h.stop()


def test_output_flood_is_captured_in_full(h):
    """With the log limit off, every line of a fast writer reaches the log."""
    h.config(node_yaml(h) + """
jobs:
  flood:
    command: %s
    schedule: always
    restart: never
    log_limit: {burst: 0}
""" % fw("flood", "5000", "print", "flood-done", "exit", "0"))
    h.start()
    h.wait_log(r"output: job=flood run=\S+ stream=stdout \| flood-done", timeout=30)
    eq(5000, h.log_count(r"output: job=flood run=\S+ stream=stdout \| flood \d+$"),
       "flood lines in the log")
    h.stop()


def test_worker_by_name_and_workdir(h):
    wdir = h.path("libexec")
    os.makedirs(wdir)
    os.symlink(harness.FW, os.path.join(wdir, "meshd-fake"))
    os.makedirs(h.path("work"))
    h.config(node_yaml(h, "  worker_dir: %s\n" % json.dumps(wdir)) + """
jobs:
  named:
    worker: fake
    args: [write-pid, relative.pids, loop]
    schedule: always
    workdir: %s
""" % json.dumps(h.path("work")))
    h.start()
    h.wait_for(lambda: os.path.exists(h.path("work/relative.pids")),
               what="the worker to write work/relative.pids (relative to workdir)")
    pid = read_pids(h.path("work/relative.pids"))[0]
    check(pid_alive(pid), "named worker running")
    eq(0, len(h.pids("relative.pids")), "nothing written in meshd's own directory")
    h.stop()


def test_defaults_apply_to_jobs(h):
    h.config(node_yaml(h) + """
defaults:
  restart: always
  max_retries: 1
  backoff: {initial: 50ms, max: 100ms}
  env: {ITEST_FROM_DEFAULTS: "yes"}
jobs:
  crash:
    command: ["/bin/sh", "-c", 'echo "$ITEST_FROM_DEFAULTS" >> "$0"; exit 3', %s]
    schedule: always
""" % json.dumps(h.path("out")))
    h.start()
    h.wait_log(r"gave up: job=crash state=FATAL tries=2\b")
    eq(["yes", "yes"], h.lines("out"), "runs (max_retries 1 from defaults) and env from defaults")
    h.stop()


def test_no_zombies_and_orphans_reaped(h):
    """Grandchildren orphaned by a finished run come to meshd (subreaper) and are reaped."""
    h.config(node_yaml(h) + """
jobs:
  orphaner:
    command: %s
    schedule: always
    restart: never
""" % fw("spawn-child", h.path("child"), "write-pid", h.path("pids"), "exit", "0"))
    h.start()
    h.wait_log(r"exited: job=orphaner run=\S+ pid=\d+ code=0")
    child = h.pids("child")[0]
    check(pid_alive(child), "the orphaned grandchild lives on after its parent's run")
    eq(h.pid, parent_of(child), "orphan reparented to meshd (child subreaper)")
    os.kill(child, signal.SIGKILL)
    # Reaped: not even a zombie left.
    h.wait_for(lambda: not os.path.exists("/proc/%d" % child), what="orphan %d reaped" % child)
    leader = h.pids("pids")[0]
    h.wait_for(lambda: not os.path.exists("/proc/%d" % leader), what="leader %d reaped" % leader)
    eq([], zombies_of(h.pid), "zombie children of meshd")
    h.stop()


def test_exec_failures_are_spawn_failures(h):
    """A missing program, a file that is not executable and a missing workdir: each is a
    failed start (retried, then FATAL), named in the log, and meshd runs on."""
    noexec = h.path("noexec.sh")
    with open(noexec, "w") as f:
        f.write("#!/bin/sh\necho never\n")
    os.chmod(noexec, 0o644)
    h.config(node_yaml(h) + """
defaults:
  backoff: {initial: 50ms, max: 100ms}
  max_retries: 1
jobs:
  nofile: {command: [no-such-program-here-xyz], schedule: always}
  noexec: {command: [%s], schedule: always}
  badcwd: {command: [/bin/true], schedule: always, workdir: %s}
  fine: {command: %s, schedule: always}
""" % (noexec, h.path("no/such/dir"), fw("loop")))
    h.start()
    h.wait_log(r"spawn failed: job=nofile .*No such file or directory", timeout=20)
    h.wait_log(r"spawn failed: job=noexec .*step=execve: Permission denied", timeout=20)
    h.wait_log(r"spawn failed: job=badcwd .*step=chdir: No such file or directory", timeout=20)
    for job in ("nofile", "noexec", "badcwd"):
        h.wait_log(r"gave up: job=%s state=FATAL tries=2" % job, timeout=20)
    check(h.running(), "meshd keeps running")
    check(len(h.spawned_pids("fine")) == 1, "the healthy service was not disturbed")
    h.stop()


def test_registry_credential_is_not_inherited(h):
    """meshd's DATABASE_URL and libpq's PG* variables are the registry's credential: a job
    sees them only when its env: (or defaults.env) names them."""
    # Written to a temp file and renamed, so the test never reads a half-written file.
    dump = ("env | grep -E '^(DATABASE_URL|PG[A-Z_]*|MESHD_API_TOKEN|ITEST_KEEP)=' "
            "| sort > \"$0.tmp\" && mv \"$0.tmp\" \"$0\"")
    h.config(node_yaml(h) + """
defaults:
  restart: never
jobs:
  plain:
    command: ["/bin/sh", "-c", %s, %s]
    schedule: always
  named:
    command: ["/bin/sh", "-c", %s, %s]
    schedule: always
    env: {DATABASE_URL: "${DATABASE_URL}", PGPASSWORD: "${PGPASSWORD}"}
""" % (json.dumps(dump), json.dumps(h.path("plain.env")),
       json.dumps(dump), json.dumps(h.path("named.env"))))
    h.start(env={"DATABASE_URL": "postgresql://registry:secret@127.0.0.1:1/none",
                 "PGPASSWORD": "secret", "PGHOST": "/nowhere", "PGSERVICE": "reg",
                 "MESHD_API_TOKEN": "tok", "ITEST_KEEP": "1"})
    for f in ("plain.env", "named.env"):
        h.wait_for(lambda: os.path.exists(h.path(f)), what="%s written" % f)
    eq(["ITEST_KEEP=1"], h.lines("plain.env"), "a job without env: gets none of them")
    eq(["DATABASE_URL=postgresql://registry:secret@127.0.0.1:1/none", "ITEST_KEEP=1",
        "PGPASSWORD=secret"], h.lines("named.env"), "a job gets what its env: names")
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
