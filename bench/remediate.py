#!/usr/bin/env python3
"""remediate.py - meshd-remediate applying a fix to 10,000 rows of the example property roll,
with its audit, against the bare UPDATE of the same rows in psql, in the same run, on a
throwaway PostgreSQL 15 (tests/pg/pgctl.sh).

    bench/remediate.py [PARCELS [ROWS [ROUNDS]]]   (default 1000000 parcels, 10000 rows, 3)

Set-up: PARCELS generated parcels (sql/example/generate.sql), then ROWS of them get a sale price
x100 (cents taken for dollars).  meshd-validate stores a suite of 5 checks on property.parcels
(the x100 prices as failed_rows sale_prc1 <= 20 * jv, which the fix remedies; missing
parcel_id; invalid co_no; av_le_jv; row_count).  Each round:
  apply    meshd-remediate, apply: auto: plan (targets selected and hashed), then one
           transaction: lock, the 5 checks before, targets again, before-images into the audit,
           the UPDATE (after-images into the audit), the 5 checks after, COMMIT.
           Process wall and WAL bytes (pg_current_wal_lsn before and after).
  undo     meshd-remediate --undo RUN_ID: wall and WAL bytes.
  peer     psql: the bare UPDATE ... SET sale_prc1 = sale_prc1 / 100 WHERE sale_prc1 > 20 * jv
           (no plan, no audit, no checks), wall and WAL bytes; then the x100 put back.
Prints fork+exec of /bin/true and psql connect + SELECT 1 beside them.
Needs a build (build/libexec/meshd/meshd-{validate,remediate})."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from examplepg import cluster, example_db, loadavg, machine, med, psql  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "libexec", "meshd")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
DIR = "/var/tmp/meshd-rmbench-%d" % os.getpid()
T = "property.parcels"
CHECKS = [
    {"type": "row_count"},
    {"type": "failed_rows", "name": "sale_plausible", "condition": "sale_prc1 <= 20 * jv"},
    {"type": "missing", "column": "parcel_id"},
    {"type": "invalid", "column": "co_no", "min": 11, "max": 77},
    {"type": "failed_rows", "name": "av_le_jv", "condition": "av_nsd <= jv", "fail": "> 50%"},
]


def lsn(url):
    return psql(url, "SELECT pg_current_wal_lsn()")


def wal_since(url, start):
    return int(psql(url, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '%s')" % start))


def worker(name, cfg, args=()):
    with tempfile.TemporaryFile() as st:
        env = dict(os.environ, MESHD_STATUS_FD=str(st.fileno()), MESHD_JOB="bench")
        t0 = time.monotonic()
        p = subprocess.run([os.path.join(BIN, "meshd-" + name)] + list(args),
                           input=json.dumps(cfg).encode(), env=env, pass_fds=(st.fileno(),),
                           capture_output=True)
        w = time.monotonic() - t0
        st.seek(0)
        ev = [json.loads(line) for line in st.read().decode().splitlines() if line]
    return w, p.returncode, ev, (p.stdout + p.stderr).decode(errors="replace")


def main():
    with cluster(DIR) as pg:
        run(pg)


def run(pg):
    url, _ = example_db(pg, N)
    # The generator's own x100 rows are fixed first: ROWS planted rows are the whole target.
    psql(url, "UPDATE %s SET sale_prc1 = sale_prc1 / 100 WHERE sale_prc1 > 20 * jv" % T)
    step = max(1, N // ROWS)
    # every parcel with a just value gets a sale price near it, so each planted row is x100
    psql(url, "UPDATE %s SET sale_prc1 = jv WHERE sale_prc1 IS NULL AND jv > 0" % T)
    # (only prices above a fifth of the just value: x100 makes each of them > 20 * jv, and the
    # bare UPDATE below divides exactly these back)
    plant = ("UPDATE %s SET sale_prc1 = sale_prc1 * 100 WHERE sale_prc1 > jv / 5 AND jv > 0 "
             "AND abs(hashtext(parcel_id)) %% %d = 0" % (T, step))
    psql(url, plant)
    planted = int(psql(url, "SELECT count(*) FROM %s WHERE sale_prc1 > 20 * jv" % T))
    psql(url, "VACUUM ANALYZE %s" % T)
    size = psql(url, "SELECT pg_size_pretty(pg_table_size('%s'))" % T)
    print("remediate.py: %d parcels (%s), %d rows to fix; PostgreSQL %s; load %s" % (
        N, size, planted, psql(url, "SHOW server_version"), loadavg()))
    fork_ms, psql_ms = machine(url)
    print("machine: fork+exec /bin/true %.2f ms, psql connect + SELECT 1 %.1f ms" % (fork_ms, psql_ms))

    w, rc, _, log = worker("validate", {"suite": "b", "database": {"url": url},
                                        "tables": [{"table": T, "checks": CHECKS}]})
    assert rc == 1, (rc, log)
    fix = {"name": "cents", "check": "sale_plausible", "action": "update",
           "set": {"sale_prc1": "sale_prc1 / 100"}}
    rcfg = {"suite": "b", "database": {"url": url}, "apply": "auto", "fixes": [fix],
            "max_rows": 2 * planted, "max_percent": 5}
    res = {"apply": [], "apply_wal": [], "undo": [], "undo_wal": [], "peer": [], "peer_wal": []}
    for r in range(ROUNDS):
        psql(url, "CHECKPOINT")
        l0 = lsn(url)
        w, rc, ev, log = worker("remediate", rcfg)
        assert rc == 0, (rc, log)
        res["apply"].append(w)
        res["apply_wal"].append(wal_since(url, l0))
        applied = [e for e in ev if e.get("event") == "message" and e["type"] == "remediation.applied"]
        assert applied and applied[0]["payload"]["rows"] == planted, ev
        run_id = psql(url, "SELECT run_id FROM meshd_remediate.audit ORDER BY id DESC LIMIT 1")
        psql(url, "CHECKPOINT")
        l0 = lsn(url)
        w, rc, ev, log = worker("remediate", {"database": {"url": url}, "max_rows": 2 * planted},
                                ["--undo", run_id])
        assert rc == 0, (rc, log)
        res["undo"].append(w)
        res["undo_wal"].append(wal_since(url, l0))
        assert int(psql(url, "SELECT count(*) FROM %s WHERE sale_prc1 > 20 * jv" % T)) == planted
        psql(url, "CHECKPOINT")
        l0 = lsn(url)
        t0 = time.monotonic()
        psql(url, "UPDATE %s SET sale_prc1 = sale_prc1 / 100 WHERE sale_prc1 > 20 * jv" % T)
        res["peer"].append(time.monotonic() - t0)
        res["peer_wal"].append(wal_since(url, l0))
        psql(url, plant)
        psql(url, "VACUUM %s" % T)
        print("round %d: apply %.2f s %.1f MB WAL; undo %.2f s %.1f MB; bare UPDATE %.2f s %.1f MB" % (
            r + 1, res["apply"][-1], res["apply_wal"][-1] / 1e6, res["undo"][-1],
            res["undo_wal"][-1] / 1e6, res["peer"][-1], res["peer_wal"][-1] / 1e6))
    print("\n| %d rows of %d parcels, medians of %d | wall | WAL |" % (planted, N, ROUNDS))
    print("| --- | ---: | ---: |")
    print("| **meshd-remediate apply** (plan, lock, 5 checks before, audit, UPDATE, 5 checks after; process) | **%.2f s** | **%.1f MB** |" % (
        med(res["apply"]), med(res["apply_wal"]) / 1e6))
    print("| meshd-remediate --undo (process) | %.2f s | %.1f MB |" % (med(res["undo"]), med(res["undo_wal"]) / 1e6))
    print("| bare `UPDATE` of the same rows (psql) | %.2f s | %.1f MB |" % (med(res["peer"]), med(res["peer_wal"]) / 1e6))
    print("\nmachine: fork+exec %.2f ms, psql connect + SELECT 1 %.1f ms; load %s" % (
        fork_ms, psql_ms, loadavg()))
    print("command: bench/remediate.py %d %d %d" % (N, ROWS, ROUNDS))


if __name__ == "__main__":
    main()
