#!/usr/bin/env python3
"""SIGHUP on the real meshd: a broken file keeps the running configuration; an edit is applied as
a diff (untouched services keep their PID, changed ones restart, removed ones stop, new ones
start, scheduled jobs pick up new schedules)."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, node_yaml, pid_alive  # noqa: E402


def _base(h):
    return node_yaml(h) + """
jobs:
  svc:
    command: %s
    schedule: always
  tick:
    command: %s
    schedule: "* * * * * *"
""" % (fw("write-pid", h.path("svc"), "loop"), fw("stamp", h.path("ticks")))


def _line_of(text, needle):
    for i, l in enumerate(text.splitlines(), 1):
        if needle in l:
            return i
    raise AssertionError("%r not in config" % needle)


def _assert_keeps_running(h, svc_pid, hups):
    """After a failed reload: the service is the same process and tick keeps firing."""
    h.wait_log(r"reload failed: ", count=hups)
    n = len(h.lines("ticks"))
    h.wait_file_lines("ticks", n + 2, timeout=20)
    eq([svc_pid], h.pids("svc"), "service pids after a failed reload")
    check(pid_alive(svc_pid), "service %d alive" % svc_pid)
    eq(0, h.log_count(r"reloaded: "), "reloaded lines")


def test_sighup_with_a_broken_file_keeps_the_old_config(h):
    h.config(_base(h))
    h.start()
    h.wait_file_lines("svc", 1)
    h.wait_file_lines("ticks", 1)
    svc_pid = h.pids("svc")[0]

    # 1: a valid YAML file with a bad cron field: the error names file, line and column.
    bad = _base(h).replace('"* * * * * *"', '"61 * * * *"')
    h.config(bad)
    h.hup()
    _assert_keeps_running(h, svc_pid, 1)
    line = _line_of(bad, '"61 * * * *"')
    errs = h.log_find(r"(\S*meshd\.yaml):(\d+):(\d+): error: (.*)$")
    check(errs, "a file:line:col error line")
    eq(h.cfg_path, errs[0].group(1), "file named in the error")
    eq(line, int(errs[0].group(2)), "line of the bad schedule: %s" % errs[0].group(0))
    check(int(errs[0].group(3)) > 0, "a column")
    # The error line comes before the "reload failed" line.
    check(h.log().find(errs[0].group(0)) < h.log().find("reload failed: "),
          "diagnostics precede 'reload failed'")
    check(re.search(r"reload failed: .*keeping the running configuration", h.log()),
          "reload failed line says the running configuration is kept")

    # 2: not even YAML.
    h.config(_base(h) + "  broken: [unclosed\n")
    h.hup()
    _assert_keeps_running(h, svc_pid, 2)

    # 3: the file is gone: an error without a position names the file alone (FILE: error:),
    # never a made-up FILE:0:0.
    os.unlink(h.cfg_path)
    h.hup()
    _assert_keeps_running(h, svc_pid, 3)
    gone = h.log_find(r"meshd\[\d+\]: (.*cannot open.*)$")
    eq(["%s: error: cannot open: No such file or directory" % h.cfg_path],
       [m.group(1) for m in gone], "the error line of a reload of a deleted file")

    # 4: and a good file is taken again afterwards, without touching the service.
    h.config(_base(h))
    h.hup()
    h.wait_log(r"reloaded: ")
    time.sleep(0.5)
    eq([svc_pid], h.pids("svc"), "service pids after a good reload")
    h.stop()


def test_sighup_with_an_edit_applies_a_diff(h):
    def cfg(version):
        jobs = {
            "keep": fw("write-pid", h.path("keep"), "loop"),
            "change": fw("write-pid", h.path("change"), "print", "v%d" % version, "loop"),
        }
        text = node_yaml(h) + "\njobs:\n"
        text += "  keep:\n    command: %s\n    schedule: always\n" % jobs["keep"]
        text += "  change:\n    command: %s\n    schedule: always\n" % jobs["change"]
        if version == 1:
            text += "  remove:\n    command: %s\n    schedule: always\n" % fw(
                "spawn-child", h.path("remove.child"), "write-pid", h.path("remove"), "loop")
            # Never fires during the test (once a year)...
            text += "  resched:\n    command: %s\n    schedule: \"0 0 1 1 *\"\n" % fw(
                "stamp", h.path("resched"))
        else:
            text += "  add:\n    command: %s\n    schedule: always\n" % fw(
                "write-pid", h.path("add"), "loop")
            # ... until the reload makes it fire every second.
            text += "  resched:\n    command: %s\n    schedule: \"* * * * * *\"\n" % fw(
                "stamp", h.path("resched"))
        return text

    h.config(cfg(1))
    h.start()
    for f in ("keep", "change", "remove", "remove.child"):
        h.wait_file_lines(f, 1)
    keep, change, remove = h.pids("keep")[0], h.pids("change")[0], h.pids("remove")[0]
    remove_child = h.pids("remove.child")[0]
    h.config(cfg(2))
    h.hup()
    m = h.wait_log(r"reloaded: .*added=(\d+) removed=(\d+) changed=(\d+)")[0]
    eq(("1", "1"), (m.group(1), m.group(2)), "added/removed in %r" % m.group(0))
    check(int(m.group(3)) >= 1, "at least the changed service counted: %r" % m.group(0))

    h.wait_file_lines("change", 2)
    h.wait_file_lines("add", 1)
    h.wait_dead([remove, remove_child, change],
                what="removed service, its child and the old changed service to stop")
    new_change = h.pids("change")[1]
    check(new_change != change and pid_alive(new_change), "changed service restarted")
    h.wait_log(r"output: job=change run=\S+ stream=stdout \| v2")
    check(pid_alive(h.pids("add")[0]), "added service running")
    h.wait_file_lines("resched", 2, timeout=20)
    # The untouched service was never restarted.
    eq([keep], h.pids("keep"), "untouched service pids")
    check(pid_alive(keep), "untouched service %d alive" % keep)
    eq(1, len(h.spawned_pids("keep")), "spawns of the untouched service")
    eq(1, len(h.pids("remove")), "the removed service was not started again")
    h.stop()


def test_sighup_without_changes_touches_nothing(h):
    h.config(_base(h))
    h.start()
    h.wait_file_lines("svc", 1)
    svc = h.pids("svc")[0]
    for i in range(3):
        h.hup()
        h.wait_log(r"reloaded: .*added=0 removed=0 changed=0", count=i + 1)
    time.sleep(0.5)
    eq([svc], h.pids("svc"), "service pids after 3 no-op reloads")
    h.stop()


def test_disabling_a_service_stops_it(h):
    def cfg(enabled):
        return node_yaml(h) + """
jobs:
  svc:
    command: %s
    schedule: always
    enabled: %s
""" % (fw("write-pid", h.path("svc"), "loop"), "true" if enabled else "false")

    h.config(cfg(True))
    h.start()
    h.wait_file_lines("svc", 1)
    pid = h.pids("svc")[0]
    h.config(cfg(False))
    h.hup()
    h.wait_log(r"reloaded: ")
    h.wait_dead([pid])
    h.config(cfg(True))
    h.hup()
    h.wait_log(r"reloaded: ", count=2)
    h.wait_file_lines("svc", 2)
    check(pid_alive(h.pids("svc")[1]), "re-enabled service running")
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
