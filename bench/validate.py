#!/usr/bin/env python3
"""validate.py - meshd-validate's one scan against the same checks run one query each (as Soda
v3, Great Expectations and dbt issue them) and against a bare SELECT count(*) full scan, in the
same run, on the example property roll in a throwaway PostgreSQL 15 (tests/pg/pgctl.sh).

    bench/validate.py [PARCELS [ROUNDS]]     (default 1000000 parcels, 3 rounds; medians)

The 12 checks (all passing on the generated data, so no sample query runs): row_count; missing
parcel_id, dor_uc, phy_addr1 (with ''); invalid co_no range, asmnt_yr values, dor_uc regex, jv
range, sale_prc1 range, co_no reference to counties; failed_rows tv_nsd <= av_nsd <= jv; metric
avg(jv).  Measured, alternating within each round, the table in the page cache (two warm-up
counts first):
  bare      psql -c "SELECT count(*) FROM property.parcels": process wall
  one-scan  meshd-validate with the 12 checks: process wall (connect, its schema, 12 dry
            EXPLAINs, the scan, the history written) and the scan statement alone (the server
            log's duration line, log_min_duration_statement)
  per-check one psql with the 12 checks as 12 SELECTs (WHERE <bad> count, as the anchors
            write them): process wall
and, apart: the duplicate check on (co_no, parcel_id, asmnt_yr) as a GROUP BY ... HAVING query
(what the anchors run) vs meshd-validate, which proves it by the primary key and runs nothing.
Also: fork+exec of /bin/true and psql connect + SELECT 1, the machine's own figures.
Needs a build (build/libexec/meshd/meshd-validate)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from examplepg import cluster, example_db, loadavg, machine, med, psql  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.environ.get("MESHD_VALIDATE",
                        os.path.join(ROOT, "build", "libexec", "meshd", "meshd-validate"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
DIR = "/var/tmp/meshd-vbench-%d" % os.getpid()
T = "property.parcels"

CHECKS = [
    {"type": "row_count"},
    {"type": "missing", "column": "parcel_id"},
    {"type": "missing", "column": "dor_uc", "fail": "> 5%"},
    {"type": "missing", "column": "phy_addr1", "missing_values": [""], "fail": "> 50%"},
    {"type": "invalid", "column": "co_no", "min": 11, "max": 77},
    {"type": "invalid", "column": "asmnt_yr", "values": [2025]},
    {"type": "invalid", "column": "dor_uc", "regex": "^[0-9]{3}$"},
    {"type": "invalid", "column": "jv", "min": 0, "max": 1e11},
    {"type": "invalid", "column": "sale_prc1", "min": 0, "max": 1e11},
    {"type": "invalid", "column": "co_no", "name": "known_county",
     "reference": "property.counties.co_no"},
    {"type": "failed_rows", "name": "tv_le_av_le_jv", "condition": "tv_nsd <= av_nsd AND av_nsd <= jv",
     "fail": "> 50%"},
    {"type": "metric", "name": "avg_jv", "expression": "avg(jv)", "fail": "< 1"},
]

# The same checks, one query each (a bad-row count, and the row count for percentages where the
# anchor needs one), as Soda v3 / GX / dbt run them.
PER_CHECK = [
    "SELECT count(*) FROM %s" % T,
    "SELECT count(*) FROM %s WHERE parcel_id IS NULL" % T,
    "SELECT count(*) FILTER (WHERE dor_uc IS NULL), count(*) FROM %s" % T,
    "SELECT count(*) FILTER (WHERE phy_addr1 IS NULL OR phy_addr1 = ''), count(*) FROM %s" % T,
    "SELECT count(*) FROM %s WHERE co_no IS NOT NULL AND NOT (co_no BETWEEN 11 AND 77)" % T,
    "SELECT count(*) FROM %s WHERE asmnt_yr IS NOT NULL AND asmnt_yr NOT IN (2025)" % T,
    "SELECT count(*) FROM %s WHERE dor_uc IS NOT NULL AND dor_uc !~ '^[0-9]{3}$'" % T,
    "SELECT count(*) FROM %s WHERE jv IS NOT NULL AND NOT (jv BETWEEN 0 AND 1e11)" % T,
    "SELECT count(*) FROM %s WHERE sale_prc1 IS NOT NULL AND NOT (sale_prc1 BETWEEN 0 AND 1e11)" % T,
    "SELECT count(*) FROM %s p WHERE co_no IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM property.counties c WHERE c.co_no = p.co_no)" % T,
    "SELECT count(*) FILTER (WHERE NOT (tv_nsd <= av_nsd AND av_nsd <= jv)), count(*) FROM %s" % T,
    "SELECT avg(jv) FROM %s" % T,
]
DUP = ("SELECT count(*) FROM (SELECT co_no, parcel_id, asmnt_yr FROM %s GROUP BY 1, 2, 3 "
       "HAVING count(*) > 1) d" % T)


def wall(argv, **kw):
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, **kw)
    return time.monotonic() - t0, p


def worker(url, checks):
    cfg = {"database": {"url": url}, "suite": "bench",
           "tables": [{"table": T, "checks": checks}]}
    with tempfile.TemporaryFile() as st:
        env = dict(os.environ, MESHD_STATUS_FD=str(st.fileno()), MESHD_JOB="bench")
        w, p = wall([WORKER], input=json.dumps(cfg).encode(), env=env, pass_fds=(st.fileno(),))
        st.seek(0)
        ev = [json.loads(line) for line in st.read().decode().splitlines() if line]
    res = [e for e in ev if e.get("event") == "result"]
    assert p.returncode == 0, (p.returncode, p.stdout.decode()[-2000:])
    return w, res[-1]["summary"]


def scan_ms(logfile, since):
    """The duration of meshd-validate's scan (the statement with FILTER clauses) logged after
    byte offset since."""
    with open(logfile, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    got = [float(m.group(1)) for m in
           re.finditer(r"duration: ([0-9.]+) ms  (?:statement|execute [^:]*): SELECT NULL::text AS g",
                       text)]
    return got[-1] if got else float("nan")


def main():
    with cluster(DIR) as pg:
        run(pg)


def run(pg):
    url, gen_s = example_db(pg, N)
    psql(url, "VACUUM ANALYZE %s" % T)
    size = psql(url, "SELECT pg_size_pretty(pg_table_size('%s'))" % T)
    print("validate.py: %d parcels generated in %.1f s (table %s); PostgreSQL %s; load %s" % (
        N, gen_s, size, psql(url, "SHOW server_version"), loadavg()))
    # the scan's own duration from the server log
    psql(pg, "ALTER SYSTEM SET log_min_duration_statement = 200", "SELECT pg_reload_conf()")
    logfile = os.path.join(DIR, "server.log")  # pgctl.sh's pg_ctl -l

    fork_ms, psql_ms = machine(url)
    print("machine: fork+exec /bin/true %.2f ms, psql connect + SELECT 1 %.1f ms (medians)" %
          (fork_ms, psql_ms))

    for _ in range(2):  # warm the page cache
        psql(url, "SELECT count(*) FROM %s" % T)
    worker(url, CHECKS)  # its schema made, the baseline set
    bare, one, scan, per, dup_q, dup_w = [], [], [], [], [], []
    per_sql = []
    for q in PER_CHECK:
        per_sql += ["-c", q]
    for r in range(ROUNDS):
        w, _ = wall(["psql", "-X", "-At", url, "-c", "SELECT count(*) FROM %s" % T])
        bare.append(w)
        off = os.path.getsize(logfile)
        w, s = worker(url, CHECKS)
        assert s["pass"] == 12, s
        one.append(w)
        scan.append(scan_ms(logfile, off) / 1000)
        w, _ = wall(["psql", "-X", "-At", url] + per_sql)
        per.append(w)
        w, p = wall(["psql", "-X", "-At", url, "-c", DUP])
        dup_q.append(w)
        w, s = worker(url, [{"type": "duplicate", "columns": ["co_no", "parcel_id", "asmnt_yr"]}])
        dup_w.append(w)
        print("round %d: bare %.2f s, one-scan %.2f s (scan %.2f s), per-check %.2f s, "
              "duplicate GROUP BY %.2f s vs worker %.3f s" % (
                  r + 1, bare[-1], one[-1], scan[-1], per[-1], dup_q[-1], dup_w[-1]))

    b = med(bare)
    print("\n| %d parcels, 12 checks, medians of %d | wall | vs bare scan |" % (N, ROUNDS))
    print("| --- | ---: | ---: |")
    print("| bare `SELECT count(*)` (psql) | %.2f s | 1.00x |" % b)
    print("| **meshd-validate, one scan** (process) | **%.2f s** | **%.2fx** |" % (med(one), med(one) / b))
    print("| &nbsp;&nbsp;its scan statement alone (server log) | %.2f s | %.2fx |" % (med(scan), med(scan) / b))
    print("| 12 queries, one per check (psql) | %.2f s | %.2fx |" % (med(per), med(per) / b))
    print("| duplicate (co_no, parcel_id, asmnt_yr): GROUP BY ... HAVING (psql) | %.2f s | %.2fx |" % (
        med(dup_q), med(dup_q) / b))
    print("| duplicate: meshd-validate, proven by the primary key (process) | %.3f s | |" % med(dup_w))
    print("\nmachine: fork+exec %.2f ms, psql connect + SELECT 1 %.1f ms; load %s" % (
        fork_ms, psql_ms, loadavg()))
    print("command: bench/validate.py %d %d" % (N, ROUNDS))


if __name__ == "__main__":
    main()
