#!/usr/bin/env python3
"""A worker cannot flood meshd's log nor reach the operator's terminal through it (issue 9,
item 7): each run's stdout, stderr and status lines are rate-limited (log_limit) with a
"suppressed" summary, the output tail stays whole, every worker byte is escaped, and the
scheduler keeps firing on time while one run floods."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, node_yaml, parse_utc_iso, pid_alive  # noqa: E402

# What fake_worker's flood-esc line k reads like once escaped (ESC, CR, BEL, a Latin-1 byte and
# the C1 control U+009B, in that order).
ESC_LINE = "esc %d \\x1b[31mred\\x1b[0m\\r\\x07 caf\\xe9 \\u009b2J"


def log_bytes(h):
    with open(h.log_path, "rb") as f:
        return f.read()


def assert_log_is_safe(h):
    """No control byte but '\\n', no DEL, no C1 control, and valid UTF-8, in all of the log."""
    raw = log_bytes(h)
    bad = sorted({b for b in raw if (b < 0x20 and b != 0x0A) or b == 0x7F})
    check(not bad, "raw control bytes in meshd's log: %s" % ["0x%02x" % b for b in bad])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise harness.Failure("meshd's log is not valid UTF-8: %s" % e)
    c1 = sorted({c for c in text if 0x80 <= ord(c) <= 0x9F})
    check(not c1, "C1 controls in meshd's log: %r" % c1)


def wrote(h, what, job):
    """N from the worker's own stderr line "<what>: wrote N lines" (logged: stderr has its own
    limit, which this one line does not reach)."""
    m = h.wait_log(r"output: job=%s run=\S+ stream=stderr \| %s: wrote (\d+) lines$" % (job, what),
                   timeout=60)
    return int(m[0].group(1))


def test_flood_is_limited_escaped_and_tail_kept(h):
    """Two runs flood meshd for 4 s, one on stdout with escape bytes, one with bad JSON on its
    status fd, while an every-second job fires.  With the defaults (1000 lines a stream per
    30 s): exactly 1000 lines of each are logged, one "log limit reached" and one "suppressed"
    line with the exact remainder each, nothing raw; the tail is the real last lines; every
    slot of the ticking job ran, on time."""
    h.config(node_yaml(h) + """
jobs:
  out:
    command: %s
    schedule: always
    restart: never
  st:
    command: %s
    schedule: always
    restart: never
  tick:
    command: %s
    schedule: "* * * * * *"
    catch_up: 0s
""" % (fw("sleep", "1500", "flood-esc-for", "4000", "print", "the end", "exit", "0"),
       fw("sleep", "1500", "flood-badstatus-for", "4000", "exit", "0"),
       fw("stamp", h.path("stamps"))))
    h.start(log_level="notice")
    n_out = wrote(h, "flood-esc-for", "out")
    n_st = wrote(h, "flood-badstatus-for", "st")
    check(n_out > 5000 and n_st > 5000, "the floods were floods: %d, %d lines" % (n_out, n_st))
    sup_out = h.wait_log(r"suppressed: job=out run=\S+ stream=stdout lines=(\d+)$")
    sup_st = h.wait_log(r"suppressed: job=st run=\S+ stream=status lines=(\d+)$")
    h.wait_log(r"exited: job=out ")
    h.wait_log(r"exited: job=st ")
    time.sleep(1.5)  # two more ticks after the floods

    # stdout: the first 1000 lines logged, escaped; the rest (and "the end") counted.
    out = h.log_find(r"output: job=out run=\S+ stream=stdout \| (.*)$")
    eq(1000, len(out), "stdout lines logged")
    eq([ESC_LINE % k for k in range(1000)], [m.group(1) for m in out], "logged stdout lines")
    eq(n_out + 1 - 1000, int(sup_out[0].group(1)), "stdout lines suppressed")
    eq(1, len(sup_out), "stdout summaries")
    eq(1, h.log_count(r"log limit reached: job=out run=\S+ stream=stdout burst=1000 "
                      r"interval_ms=30000"), "notices for stdout")
    # The flood of stdout hid nothing of stderr: its line was logged above.
    eq(0, h.log_count(r"stream=stderr lines="), "stderr summaries")

    # status: likewise, and the warning quotes the event name escaped.
    bad = h.log_find(r"bad status line: job=st run=\S+ pid=\d+ count=(\d+): (.*)$")
    eq(1000, len(bad), "bad status lines logged")
    eq("status line: unknown event '\\x1b]0;pwned\\x07 999'", bad[-1].group(2))
    eq(n_st - 1000, int(sup_st[0].group(1)), "status lines suppressed")
    eq(1, len(sup_st), "status summaries")

    assert_log_is_safe(h)
    nlines = len(log_bytes(h).splitlines())
    check(nlines < 2300, "meshd logged %d lines for %d flooded" % (nlines, n_out + n_st))

    # The tail of the out run: its real last lines, escaped as in the log.
    status, logs = h.api_json("GET", "/api/jobs/out/logs")
    eq(200, status)
    lines = logs["runs"][-1]["lines"]
    eq(20, len(lines), "tail lines")
    stdout_tail = [l for l in lines if not l.startswith("flood-esc-for: wrote")]
    k = len(stdout_tail) - 1
    eq([ESC_LINE % i for i in range(n_out - k, n_out)] + ["the end"], stdout_tail,
       "the last lines of stdout")
    code, text, err = harness.meshctl("logs", "out", "--socket",
                                      os.path.join(h.state_dir, "meshd.sock"))
    eq(0, code, "meshctl logs: %s" % err)
    check("\nthe end\n" in text, "meshctl logs shows the tail: %r" % text[-300:])
    raw = sorted({c for c in text if (c < " " and c != "\n") or "\x7f" <= c <= "\x9f"})
    check(not raw, "meshctl logs prints raw control characters: %r" % raw)

    # Every second of the flood fired, on time (a generous bound: a loaded, maybe sanitized box).
    stamps = h.stamps("stamps")
    slots = sorted({parse_utc_iso(s["at"]) for s in stamps})
    check(len(slots) >= 6, "ticks: %r" % slots)
    eq(list(range(slots[0], slots[-1] + 1)), slots, "a tick every second, none missing")
    late = [(s["at"], round(s["t"] - parse_utc_iso(s["at"]), 3)) for s in stamps
            if s["t"] - parse_utc_iso(s["at"]) > 0.5]
    check(not late, "ticks late by more than 0.5 s: %r" % late)
    h.stop()


def test_summary_when_the_window_ends(h):
    """A service that floods and then goes quiet gets its summary when the window ends, not at
    its exit; the next window logs again."""
    h.config(node_yaml(h) + """
jobs:
  burst:
    command: %s
    schedule: always
    log_limit: {burst: 10, interval: 1s}
""" % fw("write-pid", h.path("pid"), "flood", "50", "sleep", "2500", "print", "again", "loop"))
    h.start(log_level="notice")
    m = h.wait_log(r"suppressed: job=burst run=\S+ stream=stdout lines=(\d+)$", timeout=10)
    eq(40, int(m[0].group(1)))
    check(pid_alive(h.pids("pid")[0]), "the service still runs")
    t_reached = harness.log_line_time(h.log_find(r".*log limit reached: job=burst .*")[0].group(0))
    t_summary = harness.log_line_time(h.log_find(r".*suppressed: job=burst .*")[0].group(0))
    check(0.8 <= t_summary - t_reached <= 5, "summary %.3f s after the limit was reached"
          % (t_summary - t_reached))
    h.wait_log(r"output: job=burst run=\S+ stream=stdout \| again$")
    eq(11, h.log_count(r"output: job=burst run=\S+ stream=stdout \| "), "lines logged")
    h.stop()
    eq(1, h.log_count(r"suppressed: job=burst "), "no second summary at the end")


def test_log_limit_off_and_reload(h):
    """burst 0 logs everything; a reload changes the limit of a running process at once,
    without restarting it."""
    cfg = node_yaml(h) + """
jobs:
  svc:
    command: %s
    schedule: always
    log_limit: {burst: %d, interval: 1h}
"""
    argv = fw("write-pid", h.path("pid"), "flood", "10", "sleep", "3000", "flood", "10", "loop")
    h.config(cfg % (argv, 5))
    h.start(log_level="notice")
    h.wait_log(r"log limit reached: job=svc run=\S+ stream=stdout burst=5 interval_ms=3600000")
    h.config(cfg % (argv, 0))
    h.hup()
    h.wait_log(r"reloaded: .* changed=0 ", timeout=10)
    h.wait_for(lambda: h.log_count(r"output: job=svc run=\S+ stream=stdout \| flood \d+$") >= 15,
               timeout=15, what="the second ten lines")
    time.sleep(0.3)
    eq(15, h.log_count(r"output: job=svc run=\S+ stream=stdout \| flood \d+$"), "lines logged")
    eq(1, len(h.pids("pid")), "not restarted")
    h.stop()
    # The first window's 5 held-back lines are reported when the run ends.
    eq(1, h.log_count(r"suppressed: job=svc run=\S+ stream=stdout lines=5$"), "summary")


def test_status_strings_are_escaped(h):
    """Strings from status lines reach the log escaped: an alert's message, and an unknown
    event's name quoted in the warning."""
    alert = json.dumps({"event": "alert", "severity": "warning", "key": "disk",
                        "message": "full\x1b[2J\x1b]0;owned\x07\u009b6n\nsecond line"})
    h.config(node_yaml(h) + """
jobs:
  talk:
    command: %s
    schedule: always
    restart: never
""" % fw("status", alert, "status", '{"event":"\\u001b[5mblink"}', "exit", "0"))
    h.start(log_level="notice")
    h.wait_log(r"exited: job=talk ")
    m = h.wait_log(r"alert: job=talk run=\S+ severity=warning key=disk message=(.*)$")
    eq("full\\x1b[2J\\x1b]0;owned\\x07\\u009b6n\\nsecond line", m[0].group(1))
    m = h.wait_log(r"bad status line: job=talk run=\S+ pid=\d+ count=1: (.*)$")
    eq("status line: unknown event '\\x1b[5mblink'", m[0].group(1))
    assert_log_is_safe(h)
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
