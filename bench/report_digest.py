#!/usr/bin/env python3
"""report_digest.py - meshd-report's digest over a registry with weeks of history, against a
bare full scan of agent_runs, in the same run, on a throwaway PostgreSQL 15 (tests/pg/pgctl.sh).

    bench/report_digest.py [DAYS [RUNS_PER_DAY [ROUNDS]]]   (default 30 1000 5; medians)

The registry (migrated by meshctl, then filled by COPY, deterministic): DAYS days ending now of
RUNS_PER_DAY runs a day over 40 jobs (a nightly meshd-scrape load with a 67-file summary, an
hourly meshd-refresh, meshd-validate every 30 minutes, meshd-remediate twice a day, a command
every 5 minutes, 25 hourly and 10 six-hourly commands); about 1 % failed with an output tail,
some timed out, retried (with their failed executions), skipped; every third night the machine
sleeps two hours (gaps of missed slots); 5 metrics per run; ~10 alerts raised a day, most
resolved within hours, a dozen open; two nodes.  Measured, alternating within each round:
  bare      psql -c "SELECT count(*) FROM agent_runs": process wall, and the statement (\\timing)
  24 h      report_digest_probe over the last 24 hours: process wall (connect, the digest, the
            JSON out) and the digest alone (rpt_digest_build: the transaction and the render)
  DAYS d    the same over the whole history
then one build of each with auto_explain ANALYZE: each statement's time and the indexes it
used.  Also the digest's sizes and the machine's own figures (fork+exec, psql connect).
Needs a build (build/report_digest_probe, build/meshctl)."""
import json
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from examplepg import cluster, loadavg, machine, med, psql  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = os.environ.get("REPORT_DIGEST_PROBE", os.path.join(ROOT, "build", "report_digest_probe"))
MESHCTL = os.environ.get("MESHCTL", os.path.join(ROOT, "build", "meshctl"))
DAYS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
PER_DAY = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
DIR = "/var/tmp/meshd-dgbench-%d" % os.getpid()
MIN = 60000
HOUR = 60 * MIN
DAY = 24 * HOUR

# name, kind, period in minutes, typical duration ms
JOBS = ([("nightly-load", "scrape", 1440, 40 * MIN), ("hourly-views", "refresh", 60, 25000),
         ("data-quality", "validate", 30, 6000), ("remediate", "remediate", 720, 3000),
         ("poll", None, 5, 800)] +
        [("hourly-%02d" % i, None, 60, 2000 + 500 * i) for i in range(25)] +
        [("six-hourly-%02d" % i, None, 360, 30000 + 1000 * i) for i in range(10)])


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)


def rid(job, ms):
    return "%s@%s" % (job, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ms / 1000)))


def summary(kind, rnd, failed):
    if kind == "scrape":
        items = [{"source": "nal", "file": "%d" % (11 + i), "url": "https://example/nal/%d.zip" %
                  (11 + i), "outcome": "failed" if failed and i == 3 else
                  ("loaded" if i % 20 == 0 else "unchanged"),
                  **({"rows": 150000, "inserted": 40, "updated": 1500, "deleted": 12,
                      "unchanged": 148448, "load_seconds": 41.5} if i % 20 == 0 else {}),
                  **({"error": "HTTP 503 Service Unavailable"} if failed and i == 3 else {})}
                 for i in range(67)]
        return {"files": 67, "loaded": 4, "unchanged": 62 if failed else 63,
                "failed": 1 if failed else 0, "rows": 600000, "inserted": 160, "updated": 6000,
                "deleted": 48, "rejected": 0, "bytes_downloaded": 512000000, "items": items}
    if kind == "refresh":
        views = [{"view": "property.%s" % v, "outcome": "refreshed" if rnd.random() < 0.3 else
                  "skipped", "reason": "inputs changed", "mode": "concurrent", "seconds": 0.4,
                  "rows": 5816} for v in ("market_health", "top_opportunities",
                                           "county_opportunities")]
        if failed:
            views[0] = {"view": "property.market_health", "outcome": "failed",
                        "reason": "lock_timeout", "error": "canceling statement (55P03)"}
        return {"refreshed": sum(v["outcome"] == "refreshed" for v in views),
                "skipped": sum(v["outcome"] == "skipped" for v in views),
                "failed": 1 if failed else 0, "views": views, "indexes": [], "vacuum": []}
    if kind == "validate":
        failing = [{"key": "check.parcels.missing_dor_uc.%d" % (11 + i), "outcome": "fail" if
                    failed and i == 0 else "warn", "value": 3 + i,
                    "text": "%d bad row(s) (0.004%% of 75000), warn at > 0" % (3 + i)}
                   for i in range(2 if failed else 1)]
        return {"suite": "parcels", "results": 12, "pass": 12 - len(failing),
                "warn": sum(f["outcome"] == "warn" for f in failing),
                "fail": sum(f["outcome"] == "fail" for f in failing), "refused": 0, "error": 0,
                "resolved": 0, "samples": 5, "failing": failing}
    if kind == "remediate":
        return {"planned": 1, "suite": "parcels",
                "fixes": [{"fix": "cents_to_dollars", "outcome": "planned",
                           "plan": "%016x" % rnd.getrandbits(64), "rows": rnd.randint(1, 40)}]}
    return {"rows": rnd.randint(0, 5000)} if rnd.random() < 0.5 else None


def csv_field(v):
    if v is None:
        return ""
    s = v if isinstance(v, str) else json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    return '"' + s.replace('"', '""') + '"'


def generate(now_ms, runs_f, execs_f):
    """Writes the runs and executions as CSV; returns the number of runs."""
    rnd = random.Random(1)
    start = now_ms - DAYS * DAY
    # scale the command every 5 minutes so a day holds PER_DAY runs
    fixed = sum(1440 // p for (_, _, p, _) in JOBS if p != 5)
    poll_period = max(1, 1440 // max(1, PER_DAY - fixed)) if PER_DAY > fixed else 1440
    jobs = [(n, k, poll_period if n == "poll" else p, d) for (n, k, p, d) in JOBS]
    n = 0
    ex = 0
    for name, kind, period, typical in jobs:
        slot = start - start % (period * MIN) + period * MIN
        while slot < now_ms:
            # every third night the machine sleeps from 02:00 to 04:00 UTC: meshd wakes and
            # records the job's slots of those two hours as one gap (one slot: one row)
            w0 = slot - slot % DAY + 2 * HOUR
            if (slot // DAY) % 3 == 2 and w0 <= slot < w0 + 2 * HOUR:
                count = len(range(slot, w0 + 2 * HOUR, period * MIN))
                last = slot + (count - 1) * period * MIN
                runs_f.write(",".join(csv_field(x) for x in [
                    rid(name, slot), name, "pc", iso(slot), None, None, None, None, None,
                    "missed", "machine asleep: wall clock jumped 7212s", None, None,
                    iso(w0 + 2 * HOUR + 15000), None, 0, 0,
                    count if count > 1 else None, iso(last) if count > 1 else None,
                    "1f2e3d4c5b6a", None]) + "\n")
                n += 1
                slot = last + period * MIN
                continue
            r = rnd.random()
            status = ("failed" if r < 0.01 else "timed_out" if r < 0.012 else
                      "skipped" if r < 0.017 and period <= 5 else "succeeded")
            node = "pc" if rnd.random() < 0.8 else "cloud"
            created = slot + rnd.randint(2, 40)
            if status == "skipped":
                row = [rid(name, slot), name, node, iso(slot), None, None, None, None, None,
                       "skipped", "previous run still active", None, None, iso(created), None,
                       0, 0, None, None, "1f2e3d4c5b6a", None]
            else:
                dur = max(1, int(rnd.gauss(typical, typical * 0.15)))
                if status == "timed_out":
                    dur = typical * 4
                retried = status == "succeeded" and rnd.random() < 0.005
                exec_id = "1f2e3d4c5b6a-%d" % ex
                row = [rid(name, slot), name, node, iso(slot), iso(created),
                       iso(created + dur), dur, None if status == "timed_out" else
                       (1 if status == "failed" else 0), 15 if status == "timed_out" else None,
                       status, "timed out after %ds" % (dur // 1000) if status == "timed_out"
                       else None,
                       ("step %d ok\n" % rnd.randint(1, 9)) * 40 + "Traceback (most recent "
                       "call last):\nRuntimeError: upstream returned 503\n"
                       if status == "failed" else "done in %d ms\n" % dur,
                       summary(kind, rnd, status != "succeeded"), iso(created), 2 if retried
                       else 1, 2 if retried else 1, 1, None, None, "1f2e3d4c5b6a", exec_id]
                if retried:
                    execs_f.write(",".join(csv_field(x) for x in [
                        "1f2e3d4c5b6a-r%d" % ex, rid(name, slot), name, node, "1f2e3d4c5b6a",
                        iso(slot), 1, iso(created - 5000), iso(created - 4000), 1000, "failed",
                        1]) + "\n")
                execs_f.write(",".join(csv_field(x) for x in [
                    exec_id, rid(name, slot), name, node, "1f2e3d4c5b6a", iso(slot),
                    2 if retried else 1, iso(created), iso(created + dur), dur,
                    status, row[7]]) + "\n")
                ex += 1
            runs_f.write(",".join(csv_field(x) for x in row) + "\n")
            n += 1
            slot += period * MIN
    return n


RUN_COLS = ("run_id, job, node, scheduled_for, started_at, finished_at, duration_ms, exit_code, "
            "signal, status, reason, output_tail, summary, created_at, attempt, executions, "
            "lives, missed_count, missed_until, life, exec_id")
EXEC_COLS = ("exec_id, run_id, job, node, life, scheduled_for, attempt, started_at, finished_at, "
             "duration_ms, status, exit_code")


def fill(url, now_ms):
    with tempfile.NamedTemporaryFile("w", suffix=".csv") as rf, \
            tempfile.NamedTemporaryFile("w", suffix=".csv") as xf:
        n = generate(now_ms, rf, xf)
        rf.flush()
        xf.flush()
        os.chmod(rf.name, 0o644)
        os.chmod(xf.name, 0o644)
        psql(url, "\\copy agent_runs (%s) FROM '%s' WITH (FORMAT csv)" % (RUN_COLS, rf.name),
             "\\copy agent_executions (%s) FROM '%s' WITH (FORMAT csv)" % (EXEC_COLS, xf.name))
    # 5 metrics a run; ~10 alerts a day, most resolved within hours, a dozen open
    psql(url,
         "INSERT INTO agent_metrics (created_at, node, job, run_id, name, value) "
         "SELECT coalesce(r.finished_at, r.created_at), r.node, r.job, r.run_id, "
         "'m' || g, g * 1.5 FROM agent_runs r, generate_series(1, 5) g",
         "INSERT INTO agent_alerts (node, job, key, severity, message, opened_at, updated_at, "
         "status, resolved_at, count) "
         "SELECT 'pc', j, 'check.parcels.k' || i, (ARRAY['critical', 'warning', 'info'])[1 + i %% 3], "
         "'alert number ' || i || ': 3 bad row(s) in county ' || (11 + i %% 67), at, at, "
         "'resolved', at + interval '3 hours', 1 + i %% 4 "
         "FROM (SELECT i, (ARRAY['data-quality', 'nightly-load', 'hourly-views'])[1 + i %% 3] AS j, "
         "to_timestamp(%d / 1000.0) - (i * interval '%s seconds') AS at "
         "FROM generate_series(1, %d) i) a" % (now_ms, 86400 // 10, DAYS * 10),
         "INSERT INTO agent_alerts (node, job, key, severity, message, opened_at) "
         "SELECT 'pc', 'nightly-load', 'scrape.nal.' || i, "
         "CASE WHEN i < 3 THEN 'critical' ELSE 'warning' END, 'HTTP 503 for file ' || i, "
         "now() - i * interval '5 hours' FROM generate_series(1, 12) i",
         "INSERT INTO agent_registry (kind, node, state, last_heartbeat) VALUES "
         "('node', 'pc', 'up', now()), ('node', 'cloud', 'up', now())",
         "INSERT INTO agent_registry (kind, node, job, state, next_run_at) "
         "SELECT 'job', n, j, 'exited', now() + interval '10 minutes' "
         "FROM (SELECT DISTINCT job FROM agent_runs) r(j), unnest(ARRAY['pc', 'cloud']) n",
         "VACUUM ANALYZE")
    return n


def probe(url, since, until, *extra):
    t0 = time.monotonic()
    p = subprocess.run([PROBE, str(since), str(until)] + list(extra), capture_output=True,
                       text=True, env=dict(os.environ, DATABASE_URL=url))
    wall = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    return wall, json.loads(p.stdout)


def bare(url):
    t0 = time.monotonic()
    out = psql(url, "\\timing on", "SELECT count(*) FROM agent_runs")
    wall = time.monotonic() - t0
    ms = [float(l.split()[1]) for l in out.splitlines() if l.startswith("Time:")]
    return wall, ms[-1] / 1000


def plans(url, since, until):
    """[(statement ms, first words, indexes used)] of one build under auto_explain ANALYZE."""
    _, d = probe(url, since, until, "--plans")
    out = []
    for p in d["plans"]:
        ms = float(p.split("duration:")[1].split("ms")[0])
        doc = json.loads(p[p.index("{"):])
        idx = set()

        def walk(n):
            if n.get("Relation Name"):
                idx.add("%s %s" % (n["Node Type"], n.get("Index Name") or n["Relation Name"]))
            for c in n.get("Plans", []):
                walk(c)
        walk(doc["Plan"])
        out.append((ms, " ".join(doc["Query Text"].split()[:6])[:60], sorted(idx)))
    return out


def main():
    with cluster(DIR) as pg:
        run(pg)


def run(pg):
    psql(pg, "CREATE DATABASE registry")
    url = pg.replace("dbname=postgres", "dbname=registry")
    subprocess.run([MESHCTL, "migrate", "--url", url], check=True, capture_output=True)
    now_ms = int(time.time() * 1000)
    t0 = time.monotonic()
    n = fill(url, now_ms)
    sizes = psql(url, "SELECT string_agg(format('%s %s rows %s', c.relname, "
                      "to_char(c.reltuples, 'FM999,999,999'), "
                      "pg_size_pretty(pg_total_relation_size(c.oid))), '; ' ORDER BY c.relname) "
                      "FROM pg_class c WHERE c.relname IN ('agent_runs', 'agent_executions', "
                      "'agent_metrics', 'agent_alerts', 'agent_registry')")
    print("report_digest.py: %d days x %d runs/day: %d agent_runs rows, filled in %.1f s; "
          "PostgreSQL %s; load %s" % (DAYS, PER_DAY, n, time.monotonic() - t0,
                                      psql(url, "SHOW server_version"), loadavg()))
    print("tables: %s" % sizes)
    fork_ms, psql_ms = machine(url)
    print("machine: fork+exec /bin/true %.2f ms, psql connect + SELECT 1 %.1f ms (medians)" %
          (fork_ms, psql_ms))

    day = (now_ms - DAY, now_ms)
    whole = (now_ms - DAYS * DAY, now_ms)
    for w in (day, whole):  # warm the page cache and the catalog
        probe(url, *w)
    bare(url)
    res = {"bare": [], "bare_stmt": [], "day": [], "day_build": [], "all": [], "all_build": []}
    docs = {}
    for r in range(ROUNDS):
        w, s = bare(url)
        res["bare"].append(w)
        res["bare_stmt"].append(s)
        w, d = probe(url, *day)
        res["day"].append(w)
        res["day_build"].append(d["build_ms"][0] / 1000)
        docs["day"] = d
        w, d = probe(url, *whole)
        res["all"].append(w)
        res["all_build"].append(d["build_ms"][0] / 1000)
        docs["all"] = d
        print("round %d: bare %.3f s (statement %.3f s); 24 h %.3f s (digest %.3f s); %d d %.3f s "
              "(digest %.3f s)" % (r + 1, res["bare"][-1], res["bare_stmt"][-1], res["day"][-1],
                                   res["day_build"][-1], DAYS, res["all"][-1],
                                   res["all_build"][-1]))

    b = med(res["bare"])
    print("\n| %s runs (%d days x %d), medians of %d | wall | vs bare scan |" % (
        format(n, ","), DAYS, PER_DAY, ROUNDS))
    print("| --- | ---: | ---: |")
    print("| bare `SELECT count(*) FROM agent_runs` (psql process) | %.3f s | 1.00x |" % b)
    print("| &nbsp;&nbsp;its statement alone (`\\timing`) | %.3f s | %.2fx |" % (
        med(res["bare_stmt"]), med(res["bare_stmt"]) / b))
    for key, label in (("day", "last 24 h"), ("all", "all %d days" % DAYS)):
        d = docs[key]
        print("| **digest, %s** (probe process: connect, digest, JSON out) | **%.3f s** | "
              "**%.2fx** |" % (label, med(res[key]), med(res[key]) / b))
        print("| &nbsp;&nbsp;`rpt_digest_build` alone (%s runs, %s jobs; text %s B, HTML %s B, "
              "Markdown %s B) | %.3f s | %.2fx |" % (
                  format(d["runs"], ","), d["jobs"], format(len(d["text"]), ","),
                  format(len(d["html"]), ","), format(len(d["markdown"]), ","),
                  med(res[key + "_build"]), med(res[key + "_build"]) / b))
    for key, w in (("day", day), ("all", whole)):
        print("\nwhere the time goes, %s (one build under auto_explain ANALYZE, which slows it):" %
              ("last 24 h" if key == "day" else "all %d days" % DAYS))
        for ms, q, idx in plans(url, *w):
            print("  %8.2f ms  %-60s %s" % (ms, q, ", ".join(idx)))
    print("\nverdict, last 24 h: %s" % docs["day"]["text"].splitlines()[0])
    print("machine: fork+exec %.2f ms, psql connect + SELECT 1 %.1f ms; load %s" % (
        fork_ms, psql_ms, loadavg()))
    print("command: bench/report_digest.py %d %d %d" % (DAYS, PER_DAY, ROUNDS))


if __name__ == "__main__":
    main()
