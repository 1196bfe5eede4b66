#!/usr/bin/env python3
"""Command lines: meshd refusing a bad config at start (exit 100, file:line:col), `meshctl check`
exit codes, `meshctl next` output."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MESHCTL, Skip, check, eq, fw, meshctl, node_yaml  # noqa: E402


def _need_meshctl():
    if not MESHCTL or not os.access(MESHCTL, os.X_OK):
        raise Skip("MESHCTL_BIN not set")


def _bad_config(h):
    text = node_yaml(h) + """
jobs:
  good:
    command: %s
    schedule: always
  badcron:
    command: %s
    schedule: "0 25 * * *"
  badkey:
    command: %s
    schedule: always
    no_such_key: 1
""" % (fw("write-pid", h.path("good"), "loop"), fw("exit", "0"), fw("exit", "0"))
    lines = text.splitlines()
    cron_line = next(i for i, l in enumerate(lines, 1) if "0 25 * * *" in l)
    key_line = next(i for i, l in enumerate(lines, 1) if "no_such_key" in l)
    return text, cron_line, key_line


def _diag_lines(text, path):
    """{line: [(col, message)]} of the "path:line:col: error: message" lines in text."""
    out = {}
    for m in re.finditer(r"%s:(\d+):(\d+): error: (.*)$" % re.escape(path), text, re.M):
        out.setdefault(int(m.group(1)), []).append((int(m.group(2)), m.group(3)))
    return out


def test_invalid_config_at_start_exits_100(h):
    text, cron_line, key_line = _bad_config(h)
    h.config(text)
    h.start()
    code = h.wait_exit()
    eq(100, code, "meshd exit status for an invalid config")
    diags = _diag_lines(h.log(), h.cfg_path)
    check(cron_line in diags, "error for the bad cron on line %d: %r" % (cron_line, diags))
    check(key_line in diags, "error for the unknown key on line %d: %r" % (key_line, diags))
    check(any("hour" in msg for _, msg in diags[cron_line]), "names the hour field: %r" % diags)
    check(any("no_such_key" in msg for _, msg in diags[key_line]), "names the key: %r" % diags)
    eq(5, diags[key_line][0][0], "column of the unknown key")
    eq([], h.pids("good"), "nothing was started")
    eq(0, h.log_count(r"spawned: "), "spawned lines")


def test_missing_config_at_start_fails(h):
    h.start(config=h.path("does-not-exist.yaml"))
    code = h.wait_exit()
    check(code not in (0, None), "meshd exit status for a missing config: %r" % code)
    check("does-not-exist.yaml" in h.log(), "the missing file is named")


def test_meshctl_check_exit_codes(h):
    _need_meshctl()
    good = h.config(node_yaml(h) + """
jobs:
  a:
    command: ["/bin/true"]
    schedule: "*/15 * * * *"
    timezone: America/New_York
""", path=h.path("good.yaml"))
    code, out, err = meshctl("check", good)
    eq(0, code, "meshctl check on a good file (stdout %r stderr %r)" % (out, err))

    warn = h.config(node_yaml(h) + """
jobs:
  both:
    command: ["/bin/true"]
    schedule: "0 0 1,15 * 1"
""", path=h.path("warn.yaml"))
    code, out, err = meshctl("check", warn)
    eq(0, code, "meshctl check with only warnings")
    check(re.search(r"warn\.yaml:\d+:\d+: warning: ", out + err),
          "a file:line:col warning for dom+dow: %r" % (out + err))

    text, cron_line, key_line = _bad_config(h)
    bad = h.config(text, path=h.path("bad.yaml"))
    code, out, err = meshctl("check", bad)
    eq(2, code, "meshctl check on a bad file")
    diags = _diag_lines(out + err, bad)
    check(cron_line in diags and key_line in diags, "every error reported: %r" % (out + err))

    never = h.config(node_yaml(h) + """
jobs:
  feb30:
    command: ["/bin/true"]
    schedule: "0 0 30 2 *"
""", path=h.path("never.yaml"))
    code, out, err = meshctl("check", never)
    eq(2, code, "meshctl check on a schedule that never fires (%r)" % (out + err))

    code, out, err = meshctl("check", h.path("nope.yaml"))
    check(code != 0, "meshctl check on a missing file exits nonzero")


NEXT_CASES = [
    # (args, expected lines)
    (["30 2 * * *", "--tz", "America/New_York", "--from", "2026-03-08T00:00:00-05:00"],
     ["2026-03-08T03:00:00-04:00"]),
    # Fall back: 01:30 happens twice, runs once.
    (["30 1 * * *", "--tz", "America/New_York", "--from", "2025-11-02T00:00:00-04:00",
      "--count", "2"],
     ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]),
    (["0 0 29 2 *", "--tz", "UTC", "--from", "2025-01-01T00:00:00Z", "--count", "2"],
     ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]),
    (["*/15 * * * *", "--tz", "Asia/Kolkata", "--from", "2025-06-01T00:07:00Z", "--count", "3"],
     ["2025-06-01T05:45:00+05:30", "2025-06-01T06:00:00+05:30", "2025-06-01T06:15:00+05:30"]),
    (["*/20 * * * * *", "--tz", "UTC", "--from", "2025-01-01T00:00:00Z", "--count", "3"],
     ["2025-01-01T00:00:20+00:00", "2025-01-01T00:00:40+00:00", "2025-01-01T00:01:00+00:00"]),
    (["0 9 * * MON-FRI", "--tz", "UTC", "--from", "2025-06-06T10:00:00Z", "--count", "2"],
     ["2025-06-09T09:00:00+00:00", "2025-06-10T09:00:00+00:00"]),
    # dom/dow both restricted: ORed (the 1st, the 15th, and Mondays).
    (["0 0 1,15 * 1", "--tz", "UTC", "--from", "2025-06-01T00:00:00Z", "--count", "3"],
     ["2025-06-02T00:00:00+00:00", "2025-06-09T00:00:00+00:00", "2025-06-15T00:00:00+00:00"]),
    (["@monthly", "--tz", "UTC", "--from", "2025-01-31T12:00:00Z"],
     ["2025-02-01T00:00:00+00:00"]),
    # 30-minute DST jump (Lord Howe): 02:00 falls in the gap and runs right after it.
    (["0 2 * * *", "--tz", "Australia/Lord_Howe", "--from", "2025-10-05T00:00:00+10:30",
      "--count", "2"],
     ["2025-10-05T02:30:00+11:00", "2025-10-06T02:00:00+11:00"]),
    # Southern hemisphere fall back: the repeated 02:30 runs once, at its first occurrence.
    (["30 2 * * *", "--tz", "Australia/Sydney", "--from", "2025-04-06T00:00:00+11:00",
      "--count", "2"],
     ["2025-04-06T02:30:00+11:00", "2025-04-07T02:30:00+10:00"]),
    # Strictly after --from.
    (["0 12 * * *", "--tz", "UTC", "--from", "2025-01-01T12:00:00Z"],
     ["2025-01-02T12:00:00+00:00"]),
]


def test_meshctl_next(h):
    _need_meshctl()
    failures = []
    for args, want in NEXT_CASES:
        code, out, err = meshctl("next", *args)
        got = out.split()
        if code != 0 or got != want:
            failures.append("meshctl next %s: code %d, got %r, want %r (stderr %r)"
                            % (" ".join(repr(a) for a in args), code, got, want, err.strip()))
    check(not failures, "\n".join(failures))


def test_meshctl_next_rejects_a_bad_expression(h):
    _need_meshctl()
    for expr, field in (("61 * * * *", "minute"), ("0 0 32 * *", "day"),
                        ("* * * * * * *", ""), ("0 0 * 13 *", "month")):
        code, out, err = meshctl("next", expr, "--tz", "UTC")
        eq(2, code, "meshctl next %r exit status" % expr)
        check(err.strip(), "a message on stderr for %r" % expr)
        check(field.lower() in err.lower(), "stderr names the %s field: %r" % (field, err))
    code, out, err = meshctl("next", "* * * * *", "--tz", "Mars/Olympus_Mons")
    eq(2, code, "meshctl next with an unknown zone")


def test_meshctl_next_for_a_configured_job(h):
    _need_meshctl()
    path = h.config(node_yaml(h) + """
jobs:
  nightly:
    command: ["/bin/true"]
    schedule: "30 2 * * *"
    timezone: America/New_York
""")
    code, out, err = meshctl("next", "--job", "nightly", path, "--from",
                             "2026-03-08T00:00:00-05:00", "--count", "2")
    eq(0, code, "meshctl next --job (stderr %r)" % err)
    eq(["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"], out.split(),
       "meshctl next --job output")


if __name__ == "__main__":
    harness.main(globals())
