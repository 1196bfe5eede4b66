#!/usr/bin/env python3
"""Cron jobs on the real meshd: firing second, run identity, the state file, catch-up after
downtime, overlap (concurrency: forbid), what a run gets on stdin and in its environment."""

import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, node_yaml, parse_utc_iso, run_id, utc_iso  # noqa: E402


def test_fires_at_the_right_second(h):
    stamps = h.path("stamps")
    h.config(node_yaml(h) + """
jobs:
  tick:
    command: %s
    schedule: "*/2 * * * * *"
    timezone: UTC
""" % fw("stamp", stamps))
    h.start()
    # Wait for the third run to have ended, not just started: a run still going when meshd
    # stops is (rightly) recorded as stopped.
    h.wait_log(r"run done: job=tick run=\S+ status=succeeded", timeout=30, count=3)
    h.stop()
    runs = h.stamps("stamps")
    check(len(runs) >= 3, "3 stamps expected: %r" % runs)
    done = h.log_count(r"run done: job=tick run=\S+ status=succeeded")
    runs = runs[:done]
    slots = []
    for r in runs:
        slot = parse_utc_iso(r["at"])
        check(slot % 2 == 0, "slot %s is not on an even second" % r["at"])
        eq(run_id("tick", slot), r["run_id"], "MESHD_RUN_ID of the slot")
        # Fired at the slot's second: not early, and within one second after it.
        check(slot <= r["t"] < slot + 1.0,
              "run for %s started at %.3f (%.3f s after the slot)" % (r["at"], r["t"], r["t"] - slot))
        slots.append(slot)
    check(slots == sorted(set(slots)), "each slot runs once, in order: %r" % slots)
    # Every spawned run is recorded as done; the run id in the log is the stamp's.
    for r in runs:
        check(h.log_count(r"run done: job=tick run=%s status=succeeded" % r["run_id"]) == 1,
              "run done line for %s" % r["run_id"])


def test_a_burst_of_jobs_due_in_the_same_second_all_run(h):
    """150 jobs due in the same second: started in parts (RUN_BURST per wake-up), all still on
    time, none missed or skipped, and the loop answers in between.

    Every 2 s in a plain build (a spawn costs ~0.5 ms).  Under ASan a spawn costs ~25 ms, so
    150 of them take ~4 s: a 2 s period would rightly make meshd skip slots it is too busy to
    start ("a later slot superseded it"), which is not what this test is about; there the
    period is 12 s."""
    n = 150
    period = 12 if harness.SANITIZED else 2
    jobs = "".join("  b%03d:\n    command: %s\n    schedule: \"*/%d * * * * *\"\n"
                   "    catch_up: 0s\n" % (i, fw("stamp", h.path("stamps")), period)
                   for i in range(n))
    h.config(node_yaml(h) + "jobs:\n" + jobs)
    h.start()

    def by_slot():
        out = {}
        for r in h.stamps("stamps"):
            out.setdefault(r["at"], set()).add(r["run_id"].split("@")[0])
        return out

    # Two whole slots.  A slot's burst may still be starting when the next slot begins (150
    # spawns take a while under ASan on a loaded machine), so wait for the jobs themselves
    # rather than for the next slot; a job that never runs fails the wait.
    h.wait_for(lambda: len(by_slot()) >= 2 and
               all(len(by_slot()[at]) == n for at in sorted(by_slot())[:2]),
               timeout=60 + 3 * period, what="every job in each of the first two slots")
    h.stop()
    slots = by_slot()
    for at in sorted(slots)[:2]:
        eq(n, len(slots[at]), "every job ran for %s" % at)
    # With catch_up: 0s a run judged more than 1 s late would be missed: a burst that takes
    # longer than that (it does under ASan) must still run every job, its later parts being
    # judged against the burst's first instant.
    eq(0, h.log_count(r"missed: job=b"), "nothing missed")
    eq(0, h.log_count(r"skipped: job=b"), "nothing skipped")


def test_state_file_written_after_a_fire(h):
    h.config(node_yaml(h) + """
jobs:
  tick:
    command: %s
    schedule: "* * * * * *"
""" % fw("stamp", h.path("stamps")))
    h.start()
    first = None

    def recorded():
        runs = h.stamps("stamps")
        if not runs:
            return None
        try:
            with open(os.path.join(h.state_dir, "schedule.state")) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            if line.startswith("#") or "\t" not in line:
                continue
            name, slot = line.split("\t", 1)
            if name == "tick" and int(slot) >= parse_utc_iso(runs[0]["at"]):
                return int(slot)
        return None

    first = h.wait_for(recorded, what="schedule.state to record tick's slot")
    h.stop()
    text = open(os.path.join(h.state_dir, "schedule.state")).read()
    for line in text.splitlines():
        check(line.startswith("#") or line.count("\t") == 1, "state line %r" % line)
    check(first > 1e9, "a Unix time in seconds: %r" % first)


def _daily_two_hours_ago():
    now = int(time.time())
    slot = (now - 7200) // 60 * 60
    t = time.gmtime(slot)
    return slot, "%d %d * * *" % (t.tm_min, t.tm_hour)


def _catchup_config(h, expr, window):
    state = os.path.join(h.state_dir)
    os.makedirs(state, exist_ok=True)
    return node_yaml(h) + """
jobs:
  daily:
    command: %s
    schedule: "%s"
    timezone: UTC
    catch_up: %s
""" % (fw("stamp", h.path("stamps")), expr, window)


def test_catch_up_inside_the_window_runs_once(h):
    slot, expr = _daily_two_hours_ago()
    h.config(_catchup_config(h, expr, "3h"))
    with open(os.path.join(h.state_dir, "schedule.state"), "w") as f:
        f.write("# written by the test\ndaily\t%d\n" % (slot - 3 * 86400))
    h.start()
    h.wait_file_lines("stamps", 1)
    h.wait_log(r"run done: job=daily run=%s status=succeeded" % run_id("daily", slot))
    # The state file moves on to the slot that ran.
    h.wait_for(lambda: "daily\t%d" % slot in open(os.path.join(h.state_dir, "schedule.state")).read(),
               what="schedule.state to record the caught-up slot")
    h.stop()
    runs = h.stamps("stamps")
    eq(1, len(runs), "runs after downtime")
    eq(utc_iso(slot), runs[0]["at"], "MESHD_SCHEDULED_AT of the caught-up run")
    eq(run_id("daily", slot), runs[0]["run_id"], "MESHD_RUN_ID of the caught-up run")
    eq(1, h.log_count(r"catching up: job=daily slot=\S+ late_ms=\d+ reason="), "catching up lines")
    # The two slots between the recorded one and the latest are missed, each named.
    missed = h.log_find(r"missed: job=daily slot=(\S+) reason=")
    eq(2, len(missed), "missed lines: %r" % [m.group(0) for m in missed])
    eq(1, h.log_count(r"spawned: job=daily "), "spawns")


def test_catch_up_outside_the_window_does_not_run(h):
    slot, expr = _daily_two_hours_ago()
    h.config(_catchup_config(h, expr, "1h"))
    with open(os.path.join(h.state_dir, "schedule.state"), "w") as f:
        f.write("daily\t%d\n" % (slot - 3 * 86400))
    h.start()
    h.wait_log(r"missed: job=daily slot=\S+ late_ms=\d+ reason=.*outside the catch-up window")
    h.wait_for(lambda: "daily\t%d" % slot in open(os.path.join(h.state_dir, "schedule.state")).read(),
               what="schedule.state to record the missed slot as handled")
    h.stop()
    eq(0, len(h.stamps("stamps")), "runs outside the catch-up window")
    eq(0, h.log_count(r"spawned: job=daily "), "spawns")
    eq(0, h.log_count(r"catching up: "), "catching up lines")
    eq(3, h.log_count(r"missed: job=daily "), "missed lines (2 superseded + 1 outside the window)")


def test_no_state_means_no_catch_up(h):
    slot, expr = _daily_two_hours_ago()
    h.config(_catchup_config(h, expr, "3h"))
    h.start()
    h.wait_started()
    # Nothing is due: give meshd a moment to (wrongly) run something, then check it did not.
    time.sleep(1.0)
    h.stop()
    eq(0, len(h.stamps("stamps")), "runs without a recorded last slot")
    eq(0, h.log_count(r"missed: |catching up: "), "missed/catching up lines")


def test_forbid_skips_an_overlapping_slot(h):
    h.config(node_yaml(h) + """
jobs:
  slow:
    command: %s
    schedule: "* * * * * *"
    concurrency: forbid
""" % fw("stamp", h.path("stamps"), "sleep", "2500", "stamp", h.path("ends")))
    h.start()
    h.wait_file_lines("ends", 2, timeout=30)
    h.wait_log(r"skipped: job=slow slot=\S+ reason=")
    h.stop()
    starts = h.stamps("stamps")
    ends = h.stamps("ends")
    # Never two runs at once: each run starts after the previous one ended.
    for prev_end, nxt in zip(ends, starts[1:]):
        check(nxt["t"] >= prev_end["t"] - 0.01,
              "run %s started at %.3f before %s ended at %.3f"
              % (nxt["run_id"], nxt["t"], prev_end["run_id"], prev_end["t"]))
    check(h.log_count(r"skipped: job=slow ") >= 2, "at least 2 slots skipped per 2.5 s run")


def test_allow_runs_overlapping_slots(h):
    h.config(node_yaml(h) + """
jobs:
  par:
    command: %s
    schedule: "* * * * * *"
    concurrency: allow
""" % fw("stamp", h.path("stamps"), "sleep", "2500"))
    h.start()
    h.wait_file_lines("stamps", 3, timeout=30)
    h.stop()
    runs = h.stamps("stamps")
    eq(len(runs), len({r["pid"] for r in runs}), "one process per run")
    # Runs 1 and 2 overlap: the second starts well before the first (2.5 s) can have ended.
    check(runs[1]["t"] - runs[0]["t"] < 2.0,
          "second run at +%.3f s: not concurrent" % (runs[1]["t"] - runs[0]["t"]))
    eq(0, h.log_count(r"skipped: job=par "), "skipped lines")


def test_stdin_gets_the_job_config(h):
    cfg = {"county": "Travis", "limit": 10, "tags": ["a", "b"], "nested": {"enabled": True}}
    h.config(node_yaml(h) + """
jobs:
  reader:
    command: %s
    schedule: "* * * * * *"
    config:
      county: Travis
      limit: 10
      tags: [a, b]
      nested: {enabled: true}
""" % fw("stdin", h.path("stdin.json"), "write-pid", h.path("done")))
    h.start()
    h.wait_file_lines("done", 1)
    h.stop()
    text = h.read("stdin.json")
    check("\n" not in text.strip(), "compact JSON on one line: %r" % text)
    eq(cfg, json.loads(text), "stdin JSON")


def test_environment_identity_and_expansion(h):
    script = 'env > "$0.tmp" && mv "$0.tmp" "$0"'
    h.config(node_yaml(h) + """
jobs:
  envjob:
    command: ["/bin/sh", "-c", %s, %s]
    schedule: "* * * * * *"
    timezone: UTC
    env:
      GREETING: "${ITEST_SECRET}-suffix"
      PLAIN: plain value
""" % (json.dumps(script), json.dumps(h.path("env.txt"))))
    h.start(env={"ITEST_SECRET": "s3cr3t-v4lue", "MESHD_RUN_ID": "inherited-must-not-leak",
                 "PLAIN": "overridden"})
    h.wait_for(lambda: os.path.exists(h.path("env.txt")), what="env.txt")
    h.stop()
    env = dict(l.split("=", 1) for l in h.read("env.txt").splitlines() if "=" in l)
    eq("s3cr3t-v4lue-suffix", env.get("GREETING"), "${VAR} expansion")
    eq("plain value", env.get("PLAIN"), "job env overrides meshd's")
    eq("envjob", env.get("MESHD_JOB"), "MESHD_JOB")
    eq("itest", env.get("MESHD_NODE"), "MESHD_NODE")
    eq("3", env.get("MESHD_STATUS_FD"), "MESHD_STATUS_FD")
    eq(h.state_dir, env.get("MESHD_STATE_DIR"), "MESHD_STATE_DIR")
    at = env.get("MESHD_SCHEDULED_AT", "")
    slot = parse_utc_iso(at)
    eq(run_id("envjob", slot), env.get("MESHD_RUN_ID"), "MESHD_RUN_ID matches MESHD_SCHEDULED_AT")
    check("s3cr3t" not in h.log(), "an env value was logged")


def test_replace_stops_the_old_run_for_the_new_slot(h):
    h.config(node_yaml(h) + """
jobs:
  rep:
    command: %s
    schedule: "*/2 * * * * *"
    concurrency: replace
    stop_timeout: 1s
""" % fw("stamp", h.path("stamps"), "loop"))
    h.start()
    h.wait_file_lines("stamps", 2, timeout=30)
    first, second = h.stamps("stamps")[:2]
    h.wait_log(r"run done: job=rep run=%s status=stopped" % first["run_id"])
    check(not harness.pid_alive(first["pid"]), "the replaced run is gone")
    check(first["run_id"] != second["run_id"], "a new run id for the new slot")
    h.stop()


def test_fatal_cron_job_runs_again_at_its_next_slot(h):
    h.config(node_yaml(h) + """
jobs:
  flaky:
    command: %s
    schedule: "*/3 * * * * *"
    restart: on-failure
    max_retries: 1
    backoff: {initial: 50ms, max: 50ms}
""" % fw("stamp", h.path("stamps"), "exit", "1"))
    h.start()
    h.wait_log(r"gave up: job=flaky state=FATAL", count=2, timeout=30)
    runs = h.stamps("stamps")
    by_run = {}
    for r in runs:
        by_run.setdefault(r["run_id"], []).append(r)
    h.stop()
    full = [v for v in by_run.values() if len(v) >= 2]
    check(len(full) >= 2, "two slots, each tried max_retries + 1 times: %r" % by_run)
    for tries in full:
        eq(1, len({t["at"] for t in tries}), "retries keep the slot's MESHD_SCHEDULED_AT")


if __name__ == "__main__":
    harness.main(globals())
