#!/usr/bin/env python3
"""refresh.py - meshd-refresh on the example property roll, against psql running the same
REFRESH statements, in the same run, on a throwaway PostgreSQL 15 (tests/pg/pgctl.sh).

    bench/refresh.py [PARCELS [ROUNDS]]     (default 1000000 parcels, 3 rounds; medians)

Measures, per example view: plain vs concurrent refresh (statement seconds; the worker's from
its result summary), unchanged and after 1 % of the parcels changed; the wall time of a run
that skips everything as unchanged (beside fork+exec of /bin/true and a psql connect + SELECT 1);
the latency from SIGTERM to exit during a long plain refresh (beside psql's cancel on SIGINT);
parallel: 2 vs 1 over the three views (beside the same statements in one psql, and in two).
Needs a build (build/libexec/meshd/meshd-refresh)."""
import json, os, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from examplepg import cluster, example_db, loadavg, machine, med, psql  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "build", "libexec", "meshd", "meshd-refresh")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
VIEWS = ["property.market_health", "property.top_opportunities", "property.county_opportunities"]
DIR = "/var/tmp/meshd-rfbench-%d" % os.getpid()


def psql_timed(url, sql):
    """Server round trip of one statement as psql's \\timing reports it, in seconds."""
    out = psql(url, "\\timing on", sql)
    ms = [float(l.split()[1]) for l in out.splitlines() if l.startswith("Time:")]
    return ms[-1] / 1000


def worker(url, cfg):
    """Runs meshd-refresh with cfg; returns (wall s, exit code, result summary or None)."""
    with tempfile.TemporaryFile() as st:
        env = dict(os.environ, MESHD_STATUS_FD=str(st.fileno()), MESHD_JOB="bench",
                   DATABASE_URL=url)
        t0 = time.monotonic()
        p = subprocess.run([WORKER], input=json.dumps(cfg).encode(), env=env,
                           pass_fds=(st.fileno(),), capture_output=True)
        wall = time.monotonic() - t0
        st.seek(0)
        ev = [json.loads(l) for l in st.read().decode().splitlines() if l]
    res = [e for e in ev if e.get("event") == "result"]
    return wall, p.returncode, (res[-1].get("summary") if res else None)


def view_seconds(summary, view):
    return next(v["seconds"] for v in summary["views"] if v["view"] == view)


def change_1pct(url, k):
    """1 % of the parcels get a new just value (a different slice each time)."""
    psql(url, "UPDATE property.parcels SET jv = coalesce(jv, 0) + 1 "
              "WHERE abs(hashtext(parcel_id || '%d')) %% 100 = 0" % k)


def main():
    with cluster(DIR) as pg:
        run(pg)


def run(pg):
    url, gen_s = example_db(pg, N)
    print("refresh.py: %d parcels generated in %.1f s; %s; load %s" % (
        N, gen_s,
        ", ".join("%s %s rows" % (v.split(".")[1], psql(url, "SELECT count(*) FROM %s" % v))
                  for v in VIEWS), loadavg()))

    # the machine's own figures
    fork_ms, psql_ms = machine(url)
    print("machine: fork+exec /bin/true %.2f ms, psql connect + SELECT 1 %.1f ms (medians)" %
          (fork_ms, psql_ms))

    # 1. plain vs concurrent, per view; unchanged, then after 1 % of the parcels changed
    print("\n1. statement seconds, median of %d (worker: its summary's seconds; psql: \\timing)" % ROUNDS)
    print("%-22s %-9s %10s %10s %10s %10s" % ("view", "base", "psql plain", "worker", "psql conc", "worker"))
    k = 0
    for churn in (False, True):
        for v in VIEWS:
            row = {}
            for mode in ("plain", "concurrent"):
                ps, ws = [], []
                for _ in range(ROUNDS):
                    if churn:
                        k += 1; change_1pct(url, k)
                    ps.append(psql_timed(url, "REFRESH MATERIALIZED VIEW %s%s" % (
                        "CONCURRENTLY " if mode == "concurrent" else "", v)))
                    if churn:
                        k += 1; change_1pct(url, k)
                    _, rc, s = worker(url, {"views": [v], "force": True, "mode": mode,
                                            "analyze": False})
                    assert rc == 0, (rc, s)
                    ws.append(view_seconds(s, v))
                row[mode] = (med(ps), med(ws))
            print("%-22s %-9s %10.3f %10.3f %10.3f %10.3f" % (
                v.split(".")[1], "1% chg" if churn else "unchanged", row["plain"][0], row["plain"][1],
                row["concurrent"][0], row["concurrent"][1]))

    # 2. a run that skips everything
    worker(url, {"views": VIEWS})
    t = []
    for _ in range(max(10, ROUNDS)):
        w, rc, s = worker(url, {"views": VIEWS})
        assert rc == 0 and s["skipped"] == 3, s
        t.append(w)
    print("\n2. a run of all three views, every one skipped as unchanged: %.1f ms wall (median of "
          "%d; min %.1f) - fork+exec %.2f ms, psql SELECT 1 %.1f ms" % (
              med(t) * 1000, len(t), min(t) * 1000, fork_ms, psql_ms))

    # 3. SIGTERM during a long plain refresh: the example views take well under a second at
    # 1M parcels, so a bench-only view that hashes every parcel row (seconds of real scan work)
    psql(url, "CREATE MATERIALIZED VIEW property.bench_heavy AS SELECT co_no, parcel_id, "
              "asmnt_yr, md5(p::text) AS h FROM property.parcels p")
    t0 = time.monotonic(); psql(url, "REFRESH MATERIALIZED VIEW property.bench_heavy")
    heavy_s = time.monotonic() - t0
    lat, plat, stmt, codes = [], [], [], set()
    for _ in range(ROUNDS):
        env = dict(os.environ, MESHD_JOB="bench", DATABASE_URL=url)
        p = subprocess.Popen([WORKER], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
        p.stdin.write(json.dumps({"views": ["property.bench_heavy"], "force": True,
                                  "mode": "plain"}).encode())
        p.stdin.close()
        running = False
        for _ in range(200):
            if psql(url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'REFRESH%%' "
                         "AND state = 'active' AND application_name LIKE 'meshd-refresh%%'") == "1":
                running = True
                break
            time.sleep(0.01)
        time.sleep(0.3)  # well inside the statement
        t0 = time.monotonic(); p.send_signal(signal.SIGTERM); rc = p.wait()
        lat.append(time.monotonic() - t0)
        stmt.append(running)
        codes.add(rc)
        q = subprocess.Popen(["psql", "-X", "-q", url, "-c",
                              "REFRESH MATERIALIZED VIEW property.bench_heavy"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if psql(url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'REFRESH%%' "
                         "AND state = 'active' AND application_name = 'psql'") == "1":
                break
            time.sleep(0.01)
        t0 = time.monotonic(); q.send_signal(signal.SIGINT); q.wait()
        plat.append(time.monotonic() - t0)
    print("\n3. SIGTERM during a plain REFRESH of a %.1f s view -> worker exit: median %.0f ms, max "
          "%.0f ms (%d of %d caught inside the statement; exit codes %s); psql SIGINT -> exit: "
          "median %.0f ms" % (heavy_s, med(lat) * 1000, max(lat) * 1000, sum(stmt), len(stmt),
                              sorted(codes), med(plat) * 1000))

    psql(url, "DROP MATERIALIZED VIEW property.bench_heavy")

    # 4. parallel 1 vs 2 over the three views (concurrent, no VACUUM)
    res = {}
    for par in (1, 2):
        t = []
        for _ in range(ROUNDS):
            w, rc, s = worker(url, {"views": VIEWS, "force": True, "parallel": par,
                                    "mode": "concurrent", "analyze": False})
            assert rc == 0, s
            t.append(w)
        res[par] = med(t)
    seq, two = [], []
    for _ in range(ROUNDS):
        t0 = time.monotonic()
        psql(url, *["REFRESH MATERIALIZED VIEW CONCURRENTLY %s" % v for v in VIEWS])
        seq.append(time.monotonic() - t0)
        t0 = time.monotonic()
        a = [subprocess.Popen(["psql", "-X", "-q", url, "-c",
                               "REFRESH MATERIALIZED VIEW CONCURRENTLY %s" % v]) for v in VIEWS[:2]]
        for x in a:
            x.wait()
        psql(url, "REFRESH MATERIALIZED VIEW CONCURRENTLY %s" % VIEWS[2])
        two.append(time.monotonic() - t0)
    print("\n4. all three views, concurrently, wall s (median of %d): worker parallel 1 %.2f, "
          "parallel 2 %.2f; psql one session %.2f, two sessions then the third %.2f" % (
              ROUNDS, res[1], res[2], med(seq), med(two)))
    print("refresh.py: load %s" % loadavg())


main()
