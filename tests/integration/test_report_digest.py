#!/usr/bin/env python3
"""meshd-report's digest (workers/report/digest.h) against a seeded registry on the ctest cluster.

Each test makes a fresh database, migrates it with `meshctl migrate`, seeds agent_runs,
agent_executions, agent_alerts and agent_registry with a known day (runs of every status,
retries, a duplicate, a gap of missed slots, skipped slots, the workers' summaries, rows just
outside the window, alerts open and resolved, a silent node, a FATAL job), runs
tests/fakes/report_digest_probe on the window, and checks the digest against the registry it
was built from: the counts (each one recounted here by its own query), the verdict, the failing
job first, the open alerts listed and the later one not, the workers' sections, HTML and
Markdown escaping, the caps, the Markdown file written atomically under its date, and, with
enable_seqscan off, that every query over agent_runs, agent_executions and agent_alerts has an
index to use."""

import json
import os
import re
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402

PROBE = os.environ.get("REPORT_DIGEST_PROBE", "")

# The window: 2026-03-07 07:00 to 2026-03-08 07:00 UTC.
SINCE = "2026-03-07T07:00:00Z"
UNTIL = "2026-03-08T07:00:00Z"
SINCE_MS = 1772866800000
UNTIL_MS = 1772953200000
W = "created_at >= '%s' AND created_at < '%s'" % (SINCE, UNTIL)


psql = harness.psql


class Registry(harness.Database):
    """A fresh, migrated registry database on the test cluster, dropped at clean-up."""

    def __init__(self, h):
        if not PROBE or not os.access(PROBE, os.X_OK):
            harness.no_pg("REPORT_DIGEST_PROBE not set or not executable (%r)" % PROBE)
        super().__init__(h, "digest", migrate=True)

    def one(self, query):
        return int(self.sql(query) or 0)


def probe(reg, *args, since=SINCE_MS, until=UNTIL_MS, expect=0):
    r = subprocess.run([PROBE, str(since), str(until)] + list(args), capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, DATABASE_URL=reg.url))
    eq(expect, r.returncode, "report_digest_probe exit code (stderr: %s)" % r.stderr[-2000:])
    return json.loads(r.stdout) if expect == 0 else r


# ---- the seed ---------------------------------------------------------------------------------

SCRAPE_FAIL = {
    "files": 67, "loaded": 0, "unchanged": 65, "failed": 2, "rows": 0, "inserted": 0,
    "updated": 0, "deleted": 0, "rejected": 0, "bytes_downloaded": 1024,
    "items": [{"source": "nal", "file": "11", "url": "http://x/11.zip", "outcome": "failed",
               "error": "HTTP 404 <Not Found> | gone"},
              {"source": "nal", "file": "12", "url": "http://x/12.zip", "outcome": "rejected",
               "error": "header column \"extra\" is not a column"},
              {"source": "nal", "file": "13", "url": "http://x/13.zip", "outcome": "unchanged"}]}
SCRAPE_OK = {"files": 67, "loaded": 3, "unchanged": 64, "failed": 0, "rows": 30000,
             "inserted": 10, "updated": 290, "deleted": 1, "rejected": 0,
             "bytes_downloaded": 99, "items": []}
REFRESH_OK = {"refreshed": 1, "skipped": 2, "failed": 0,
              "views": [{"view": "property.market_health", "outcome": "refreshed",
                         "mode": "concurrent", "seconds": 0.2, "rows": 6}],
              "indexes": [], "vacuum": []}
VALIDATE_OK = {"suite": "parcels", "results": 12, "pass": 12, "warn": 0, "fail": 0,
               "refused": 0, "error": 0, "resolved": 0, "samples": 0, "failing": []}
VALIDATE_FAIL = {"suite": "parcels", "results": 12, "pass": 10, "warn": 1, "fail": 1,
                 "refused": 0, "error": 0, "resolved": 0, "samples": 5,
                 "failing": [{"key": "check.parcels.phy_addr1", "outcome": "warn", "value": 5,
                              "text": "5 bad row(s)"},
                             {"key": "check.parcels.missing_dor_uc.11", "outcome": "fail",
                              "value": 2, "text": "2 bad row(s) (0.003% of 60000), fail at > 0"}]}
REMEDIATE = {"planned": 1, "applied": 1, "suite": "parcels",
             "fixes": [{"fix": "cents_to_dollars", "outcome": "applied", "plan": "0a1b2c3d4e5f6a7b",
                        "rows": 3},
                       {"fix": "park_countyless", "outcome": "planned", "plan": "ffee00112233aabb",
                        "rows": 2},
                       {"fix": "drop_copies", "outcome": "nothing"}]}


def j(o):
    return "'%s'::jsonb" % json.dumps(o).replace("'", "''")


def run_row(job, at, status, node="pc", slot=None, dur=None, code=None, sig=None, reason=None,
            summary=None, tail=None, attempt=1, executions=1, lives=1, missed_count=None,
            missed_until=None, run_id=None):
    """One agent_runs row recorded at `at` (a SQL timestamptz expression)."""
    run_id = run_id or "%s@%s" % (job, uuid.uuid4().hex[:12])
    started = "NULL" if status in ("missed", "skipped") else at
    finished = "NULL" if status in ("missed", "skipped", "running") else \
        "%s + interval '%d milliseconds'" % (at, dur or 0)
    return ("INSERT INTO agent_runs (run_id, job, node, scheduled_for, started_at, finished_at, "
            "duration_ms, exit_code, signal, status, reason, output_tail, summary, created_at, "
            "attempt, executions, lives, missed_count, missed_until, life, exec_id) VALUES "
            "('%s', '%s', '%s', %s, %s, %s, %s, %s, %s, '%s', %s, %s, %s, %s, %d, %d, %d, %s, "
            "%s, 'aaaaaaaaaaaa', %s);" % (
                run_id, job, node, slot or at, started, finished,
                "NULL" if dur is None else dur, "NULL" if code is None else code,
                "NULL" if sig is None else sig, status,
                "NULL" if reason is None else "'%s'" % reason.replace("'", "''"),
                "NULL" if tail is None else "'%s'" % tail.replace("'", "''"),
                "NULL" if summary is None else j(summary), at, attempt, executions, lives,
                "NULL" if missed_count is None else missed_count,
                "NULL" if missed_until is None else missed_until,
                "NULL" if status in ("missed", "skipped") else
                "'aaaaaaaaaaaa-%s'" % uuid.uuid4().hex[:6]))


def t(hours, base=SINCE):
    """The instant `hours` after the window's start, as SQL."""
    return "('%s'::timestamptz + interval '%s hours')" % (base, hours)


def seed(reg):
    s = []
    # nightly-load (meshd-scrape): its last good load two days before the window; in the
    # window two failures (the 03:00 slot and a catch-up), so it leads the jobs table.
    s.append(run_row("nightly-load", t(-44), "succeeded", dur=600000, code=0, summary=SCRAPE_OK))
    s.append(run_row("nightly-load", t(20), "failed", dur=723000, code=1, summary=SCRAPE_FAIL,
                     tail="loading nal 11\nerror: 2 of 67 files failed\n"))
    s.append(run_row("nightly-load", t(20.5), "failed", dur=700000, code=1, summary=SCRAPE_FAIL))
    # hourly-views (meshd-refresh): 23 good runs and a timeout
    for i in range(23):
        s.append(run_row("hourly-views", t(i + 0.1), "succeeded", dur=20000 + i, code=0,
                         summary=REFRESH_OK))
    s.append(run_row("hourly-views", t(23.1), "timed_out", dur=1800000, sig=15,
                     reason="timed out after 30m"))
    # data-quality (meshd-validate): 3 clean runs, then one that fails a check
    for i in range(3):
        s.append(run_row("data-quality", t(i * 6 + 1), "succeeded", dur=5000, code=0,
                         summary=VALIDATE_OK))
    s.append(run_row("data-quality", t(22), "failed", dur=5200, code=1, summary=VALIDATE_FAIL))
    # remediate: one run, a fix applied and one planned
    s.append(run_row("remediate", t(22.2), "succeeded", dur=3000, code=0, summary=REMEDIATE))
    # tick (a command): 100 runs, two of them retried (a failed attempt first), one ran twice
    for i in range(100):
        rid = "tick@%03d" % i
        retried = i in (10, 20)
        s.append(run_row("tick", t(i * 0.2 + 0.05), "succeeded", dur=100 + i, code=0,
                         attempt=2 if retried else 1, executions=2 if retried else 1,
                         lives=2 if i == 30 else 1, run_id=rid))
        if retried:
            s.append("INSERT INTO agent_executions (exec_id, run_id, job, node, life, attempt, "
                     "status, exit_code, started_at, finished_at, duration_ms) VALUES "
                     "('aaaaaaaaaaaa-x%d', '%s', 'tick', 'pc', 'aaaaaaaaaaaa', 1, 'failed', 1, "
                     "%s, %s, 50);" % (i, rid, t(i * 0.2), t(i * 0.2)))
    # just outside the window: never counted
    s.append(run_row("tick", "('%s'::timestamptz - interval '1 minute')" % SINCE, "failed",
                     dur=1, code=9))
    s.append(run_row("tick", "('%s'::timestamptz + interval '1 minute')" % UNTIL, "failed",
                     dur=1, code=9))
    # lost: the meshd that ran it died
    s.append(run_row("backup", t(4), "abandoned", reason="meshd restarted (life bbbbbbbbbbbb)"))
    # sleepy: a gap of 5 missed slots, two single ones, three skipped
    s.append(run_row("sleepy", t(9), "missed", reason="machine asleep: wall clock jumped 312s",
                     missed_count=5, missed_until=t(13)))
    s.append(run_row("sleepy", t(14), "missed",
                     reason="could not be claimed: registry unreachable for 95s"))
    s.append(run_row("sleepy", t(15), "missed",
                     reason="could not be claimed: registry unreachable for 140s"))
    for i in range(3):
        s.append(run_row("sleepy", t(16 + i), "skipped", reason="previous run still active"))
    s.append(run_row("sleepy", t(19), "succeeded", dur=3 * 3600000, code=0))

    # alerts
    s.append("INSERT INTO agent_alerts (node, job, key, severity, message, opened_at, count) "
             "VALUES ('pc', 'nightly-load', 'scrape.nal.11', 'critical', "
             "'HTTP 404 <script>alert(1)</script> | piped & more', %s, 2);" % t(20.2))
    s.append("INSERT INTO agent_alerts (node, job, key, severity, message, opened_at) VALUES "
             "('pc', 'data-quality', 'check.parcels.phy_addr1', 'warning', '5 bad row(s)', %s);"
             % t(-72))
    s.append("INSERT INTO agent_alerts (node, job, key, severity, message, opened_at, status, "
             "resolved_at) VALUES ('pc', 'hourly-views', 'refresh.public.mv_a', 'critical', "
             "'lock timeout', %s, 'resolved', %s);" % (t(3), t(4)))
    s.append("INSERT INTO agent_alerts (node, key, severity, message, opened_at) VALUES "
             "('pc', 'later.alert', 'critical', 'opened after the window', %s);" % t(25))
    # the registry: two nodes (cloud silent), the jobs; one FATAL on cloud
    s.append("INSERT INTO agent_registry (kind, node, state, last_heartbeat) VALUES "
             "('node', 'pc', 'up', now()), ('node', 'cloud', 'up', now() - interval '2 hours');")
    for job in ("nightly-load", "hourly-views", "data-quality", "remediate", "tick", "sleepy",
                "backup"):
        s.append("INSERT INTO agent_registry (kind, node, job, state, next_run_at) VALUES "
                 "('job', 'pc', '%s', 'exited', now() + interval '1 day');" % job)
    s.append("INSERT INTO agent_registry (kind, node, job, state) VALUES "
             "('job', 'cloud', 'nightly-load', 'fatal');")
    reg.sql("BEGIN;\n" + "\n".join(s) + "\nCOMMIT;")


def section(text, title):
    """The lines of a section of the text digest (its heading to the next)."""
    m = re.search(r"\n%s\n-+\n(.*?)(?=\n\n[A-Z][^\n]*\n-+\n|\n--\n|\Z)" % re.escape(title), text,
                  re.S)
    check(m is not None, "no section %r in:\n%s" % (title, text))
    return m.group(1)


# ---- the tests ------------------------------------------------------------------------------


def test_counts_verdict_and_sections(h):
    """Every count as the registry has it (recounted here), the verdict, failures first."""
    reg = Registry(h)
    seed(reg)
    d = probe(reg, "--node", "pc", "--url", "http://pc:8080/")

    runs = reg.one("SELECT count(*) FROM agent_runs WHERE %s AND status NOT IN "
                   "('missed', 'skipped')" % W)
    eq(runs, d["runs"], "runs")
    eq(reg.one("SELECT count(*) FROM agent_runs WHERE %s AND status = 'succeeded'" % W), d["ok"])
    eq(reg.one("SELECT count(*) FROM agent_runs WHERE %s AND status IN ('failed', 'timed_out')"
               % W), d["failed"], "failed")
    eq(4, d["failed"])
    eq(1, d["lost"])
    eq(reg.one("SELECT sum(coalesce(missed_count, 1)) FROM agent_runs WHERE %s AND "
               "status = 'missed'" % W), d["missed"], "missed slots")
    eq(7, d["missed"])
    eq(3, d["skipped"])
    eq(reg.one("SELECT count(DISTINCT job) FROM agent_runs WHERE %s" % W), d["jobs"])
    eq(1, d["open_critical"])  # the one opened after the window is not counted
    eq(2, d["open_alerts"])
    check(d["attention"], "attention")

    text = d["text"]
    verdict = text.splitlines()[0]
    check(verdict.startswith("ATTENTION: 4 failed runs, 1 run ended unobserved (abandoned or "
                             "unknown), 1 open critical alert, load 'nightly-load' did not "
                             "succeed in the window"), verdict)
    for part in ("7 slots missed", "suite 'parcels' has 1 failing check",
                 "job 'nightly-load' is FATAL on cloud"):
        check(part in verdict, "%r not in the verdict %r" % (part, verdict))
    # the verdict names 8 things at most: the silent node and the duplicate are counted
    check(verdict.endswith(" and 2 more"), verdict)
    check(d["subject"].startswith("meshd digest 2026-03-08: ATTENTION: 4 failed runs"),
          d["subject"])
    check("Runs: %s in 7 jobs: " % format(runs, ",") in text, text[:600])
    check("meshd digest for 2026-03-07 07:00 to 2026-03-08 07:00 UTC (24 h); read from the "
          "registry at " in text, text[:600])
    check("2 runs needed a retry (2 failed attempts)" in text, text[:800])
    check("Alerts open: 1 critical, 1 warning, 0 info; 2 raised in the window, 1 of them "
          "resolved since." in text, text[:1000])

    # jobs: the failing load first, the quiet ones last
    jobs = section(text, "Jobs").splitlines()
    check(jobs[0].startswith("job ") and set(jobs[1]) <= {"-", " "}, jobs[:2])
    check(jobs[2].startswith("nightly-load "), "first job row: %r" % jobs[2])
    check(re.match(r"nightly-load\s+scrape\s+2\s+0\s+2\s+0\s+0\s+failed\s", jobs[2]), jobs[2])
    order = [l.split()[0] for l in jobs[2:] if l.strip()]
    check(order.index("tick") > order.index("data-quality"), order)

    failed = section(text, "Failed runs")
    check("2 of 67 file(s) failed: nal/11: HTTP 404 <Not Found> | gone" in failed, failed)
    check("timed out after 30m" in failed and "timed_out (signal 15)" in failed, failed)
    check("1 check(s) failed, 0 could not run: check.parcels.missing_dor_uc.11" in failed, failed)
    check("meshd restarted (life bbbbbbbbbbbb)" in failed, failed)
    check(failed.index("2026-03-08 03:30") < failed.index("2026-03-08 03:00"), "newest first")
    # the run just outside the window (exit 9) is nowhere
    check("(exit 9)" not in text, "a run outside the window was listed")

    slots = section(text, "Missed and skipped slots")
    check(re.search(r"sleepy\s+5\s+missed\s+2026-03-07 16:00\s+2026-03-07 20:00\s+machine asleep",
                    slots), slots)
    # two reasons that differ only in their numbers are one line, with the newest wording
    check(re.search(r"sleepy\s+2\s+missed .*registry unreachable for 140s", slots), slots)
    check(re.search(r"sleepy\s+3\s+skipped .*previous run still active", slots), slots)

    longest = section(text, "Longest runs")
    check(longest.splitlines()[2].startswith("sleepy ") and "3h00m" in longest.splitlines()[2],
          longest)

    fresh = section(text, "Data freshness")
    check(re.search(r"nightly-load\s+scrape\s+2026-03-05 11:10\s+2026-03-05 11:10\s+2d", fresh),
          fresh)
    check("Load nightly-load: 2 runs, 134 files (0 loaded, 130 unchanged, 4 failed)" in fresh,
          fresh)
    check(re.search(r"nal/11\s+failed\s+HTTP 404", fresh), fresh)
    check("Refresh hourly-views: 23 runs: 23 views refreshed, 46 skipped, 0 failed." in fresh,
          fresh)

    val = section(text, "Validation")
    check("Suite parcels (job data-quality): 4 runs, 1 with failures; results: 46 pass, 1 warn, "
          "1 fail, 0 refused, 0 error." in val, val)
    check(val.index("check.parcels.missing_dor_uc.11") < val.index("check.parcels.phy_addr1"),
          val)

    rem = section(text, "Remediation")
    check("remediate: 1 run: 1 planned, 1 applied." in rem, rem)
    check("cents_to_dollars" in rem and "park_countyless" in rem and "drop_copies" not in rem,
          rem)

    alerts = section(text, "Open alerts")
    check("scrape.nal.11" in alerts and "check.parcels.phy_addr1" in alerts, alerts)
    check(alerts.index("scrape.nal.11") < alerts.index("check.parcels.phy_addr1"), "critical first")
    check("later.alert" not in text and "refresh.public.mv_a" not in alerts, alerts)

    nodes = section(text, "Nodes")
    check(re.search(r"cloud\s+up\s+\S+ \S+\s+silent", nodes), nodes)
    check("Built by meshd-report on node pc." in text, text[-300:])


def test_html_markdown_escaped_and_capped(h):
    """The alert's <script> and '|' arrive as text in HTML and Markdown; --top cuts the lists
    with "and N more"; the three documents agree on the verdict."""
    reg = Registry(h)
    seed(reg)
    d = probe(reg, "--top", "2", "--url", "http://pc:8080/")
    html, md = d["html"], d["markdown"]
    check("<script>" not in html, "raw <script> in the HTML")
    check("HTTP 404 &lt;script&gt;alert(1)&lt;/script&gt; | piped &amp; more" in html, "escaped")
    check("HTTP 404 \\<script\\>alert(1)\\</script\\> \\| piped \\& more" in md, "md escaped")
    check('<a href="http://pc:8080/#job=nightly-load">nightly-load</a>' in html, "job link")
    verdict = d["text"].splitlines()[0]
    check(md.startswith("# " + verdict.replace("'", "'")[:20]), md[:100])
    # every Markdown table row has as many cell separators as its header
    for block in re.findall(r"((?:^\|.*\n)+)", md, re.M):
        rows = block.splitlines()
        n = len(re.findall(r"(?<!\\)\|", rows[0]))
        for r in rows:
            eq(n, len(re.findall(r"(?<!\\)\|", r)), "cells in %r" % r)
    # the caps: 5 failed or lost runs, 2 shown
    failed = section(d["text"], "Failed runs")
    eq(2 + 2, len([l for l in failed.splitlines() if l.strip()]) - 1, "rows + header + more")
    check("and 3 more failed runs" in failed, failed)
    check("and 1 more job and reason" in section(d["text"], "Missed and skipped slots"), "slots")
    rem = section(d["text"], "Remediation")
    check("cents_to_dollars" in rem and "and" not in rem.splitlines()[-1], rem)


def test_file_is_written_atomically(h):
    """digest-YYYY-MM-DD.md (until's UTC date) holds the Markdown; an older file of that name is
    replaced by rename, nothing else stays in the directory; a directory that cannot be made
    fails the probe and leaves nothing."""
    reg = Registry(h)
    seed(reg)
    out = os.path.join(h.dir, "state", "digest")
    os.makedirs(out)
    old = os.path.join(out, "digest-2026-03-08.md")
    with open(old, "w") as f:
        f.write("yesterday's run\n")
    reader = open(old)  # a reader of the old file keeps reading the old file
    ino = os.stat(old).st_ino
    d = probe(reg, "--dir", out)
    eq(old, d["path"], "path")
    eq(["digest-2026-03-08.md"], sorted(os.listdir(out)), "the directory")
    with open(old) as f:
        eq(d["markdown"], f.read(), "the file's content")
    check(os.stat(old).st_ino != ino, "the file was rewritten in place, not renamed over")
    eq("yesterday's run\n", reader.read(), "the old file's reader")
    reader.close()
    eq(0o640, os.stat(old).st_mode & 0o777, "mode")
    # a missing directory is made
    fresh = os.path.join(h.dir, "a", "b")
    d = probe(reg, "--dir", fresh, since=SINCE_MS - 86400000, until=UNTIL_MS - 86400000)
    eq(["digest-2026-03-07.md"], os.listdir(fresh))
    # a directory that cannot be made: a file stands in its way
    blocker = os.path.join(h.dir, "blocker")
    open(blocker, "w").close()
    r = probe(reg, "--dir", os.path.join(blocker, "digest"), expect=1)
    check("cannot create" in r.stderr, r.stderr)


def test_every_query_has_an_index(h):
    """With enable_seqscan off, no plan of the digest scans agent_runs, agent_executions or
    agent_alerts sequentially (a query no index serves keeps its Seq Scan), and the whole
    digest reads one snapshot (one transaction, READ ONLY: no statement writes)."""
    reg = Registry(h)
    seed(reg)
    d = probe(reg, "--explain")
    check(len(d["plans"]) >= 10, "plans: %d" % len(d["plans"]))
    seen = set()

    def walk(node, query):
        rel = node.get("Relation Name")
        if rel:
            seen.add((rel, node["Node Type"], node.get("Index Name")))
            check(not (node["Node Type"] == "Seq Scan" and
                       rel in ("agent_runs", "agent_executions", "agent_alerts")),
                  "Seq Scan on %s in %s" % (rel, query[:300]))
        for c in node.get("Plans", []):
            walk(c, query)

    for p in d["plans"]:
        doc = json.loads(p[p.index("{"):])
        walk(doc["Plan"], doc.get("Query Text", ""))
    used = {i for (_, _, i) in seen if i}
    for idx in ("agent_runs_created", "agent_alerts_triage"):
        check(idx in used, "%s not used; indexes used: %s" % (idx, sorted(used)))
    eq(d["runs"], probe(reg)["runs"], "the same digest without the planner settings")


def test_empty_window(h):
    """A window with nothing in it: OK, and every section says so in one line."""
    reg = Registry(h)
    d = probe(reg)
    text = d["text"]
    eq("OK: no runs in the window", text.splitlines()[0])
    check(not d["attention"], "attention")
    for line in ("No jobs: no runs in the window, and none in agent_registry.",
                 "No failed runs in the window.", "No missed or skipped slots in the window.",
                 "No finished runs in the window.",
                 "No loads, refreshes or stale jobs in the window.",
                 "No scrape runs in the window.", "No refresh runs in the window.",
                 "No validate runs in the window.", "No remediate runs in the window.",
                 "No open alerts.", "No nodes in agent_registry."):
        check(line + "\n" in text, "%r missing" % line)
    r = probe(reg, since=UNTIL_MS, until=SINCE_MS, expect=1)
    check("since < until" in r.stderr, r.stderr)


if __name__ == "__main__":
    harness.main(globals())
