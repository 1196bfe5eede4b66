#!/usr/bin/env python3
"""meshd-validate end to end (docs/validate.md) on a real PostgreSQL (the ctest cluster).

Each test makes a fresh data database holding a small parcels table with known defects.  Run
by hand (config on stdin, status on fd 3, test_workers.Worker): every check type at pass, warn
and fail, with group_by and filter; the one-scan property (pg_stat_user_tables.seq_scan goes up
by one for a dozen checks); the cost guard; baselines (row_count change); samples capped when
written; history and retention; an on: scrape.changed run restricted to the partition; config
errors named (bad SQL caught by the dry EXPLAIN) with exit 100; the database down (111); a
statement_timeout (the check errors, exit 1); a stop in the middle of a scan.  Under the real
meshd: the alert raised, the validation.failed message on the bus, and the resolve once the
data is fixed."""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, node_yaml  # noqa: E402
from test_workers import WORKER_DIR, Db, cleanly, Worker, run_summary, wait_run  # noqa: E402

VALIDATE = os.path.join(WORKER_DIR, "meshd-validate") if WORKER_DIR else ""

# 100 parcels in two counties (11: 60 rows, 16: 40 rows); planted defects:
#   3 sale prices stored in cents (x100, over 1e9) in county 16
#   2 rows without dor_uc in county 11, 5 empty phy_addr1 ('') in county 16
#   2 rows whose taxable value exceeds the assessed value
#   one alt_key shared by two parcels
PARCELS = """
CREATE TABLE parcels (
    co_no smallint NOT NULL, parcel_id text NOT NULL, asmnt_yr smallint NOT NULL,
    dor_uc text, phy_addr1 text, phy_zipcd text, jv bigint, av_nsd bigint, tv_nsd bigint,
    sale_prc1 bigint, alt_key text, loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (co_no, parcel_id, asmnt_yr));
CREATE TABLE counties (co_no smallint PRIMARY KEY);
INSERT INTO counties VALUES (11), (16);
INSERT INTO parcels
SELECT CASE WHEN g <= 60 THEN 11 ELSE 16 END, 'P' || lpad(g::text, 5, '0'), 2025,
       CASE WHEN g IN (3, 4) THEN NULL ELSE '001' END,
       CASE WHEN g BETWEEN 61 AND 65 THEN '' ELSE g || ' MAIN ST' END,
       '3' || lpad(g::text, 4, '0'),
       200000 + g * 1000, 150000 + g * 1000,
       CASE WHEN g IN (7, 8) THEN 999999999 ELSE 100000 + g * 1000 END,
       CASE WHEN g IN (90, 91, 92) THEN (250000 + g)::bigint * 10000 ELSE 250000 + g END,
       CASE WHEN g = 10 THEN 'K9' ELSE 'K' || g END
FROM generate_series(1, 100) g;
UPDATE parcels SET alt_key = 'K9' WHERE parcel_id = 'P00009';
ALTER DATABASE CURRENT_DB SET max_parallel_workers_per_gather = 0;
"""


def data_db(h):
    if not os.path.exists(VALIDATE):
        harness.no_pg("no %s (build it first)" % VALIDATE)
    db = Db(h, "vdata")
    db.sql(PARCELS.replace("CURRENT_DB", db.name))
    return db


_run = cleanly


def cfg_for(db, checks, **kw):
    table = {"table": "parcels", "checks": checks}
    table.update(kw.pop("table_opts", {}))
    c = {"database": {"url": db.url}, "suite": "t", "tables": [table]}
    c.update(kw)
    return c


def run(h, cfg, expect=0, env=None, timeout=120):
    wk = Worker(cfg, extra_env=env, binary=VALIDATE)
    h.workers.append(wk)
    code = wk.wait(timeout)
    eq(expect, code, "meshd-validate exit code (log: %s)" % wk.log[-3000:])
    return wk


def results(db, run_id=None):
    """{(name, grp): (value, rows, outcome)} of the newest run (or run_id)."""
    rid = run_id or db.sql("SELECT run_id FROM meshd_validate.results ORDER BY id DESC LIMIT 1")
    out = {}
    for line in db.sql("SELECT name, grp, coalesce(value::text, ''), coalesce(rows::text, ''), "
                       "outcome FROM meshd_validate.results WHERE run_id = '%s'" % rid).splitlines():
        name, grp, value, rows, outcome = line.split("|")
        out[(name, grp)] = (float(value) if value else None, int(rows) if rows else None, outcome)
    return out


def events(wk, kind):
    return [e for e in wk.events if e["event"] == kind]


def alerts(wk):
    return {e["key"]: e["severity"] for e in events(wk, "alert")}


# ---- the checks --------------------------------------------------------------------------------


@_run
def test_every_check_type_pass_warn_fail(h):
    """Each type at its three outcomes on the planted defects, group_by judging each county on
    its own, filter narrowing a check, the alerts (critical for fail, warning for warn) keyed
    check.<table>.<name>[.<group>], a metric per value, and exit 1 because one failed."""
    db = data_db(h)
    checks = [
        {"type": "row_count", "name": "rows", "warn": "< 50", "fail": "< 1", "group_by": ["co_no"]},
        {"type": "missing", "column": "dor_uc", "group_by": ["co_no"]},                    # 11 fails
        {"type": "missing", "column": "phy_addr1", "missing_values": [""],
         "warn": "> 1%", "fail": "> 10%"},                                                  # 5 %: warn
        {"type": "missing", "column": "phy_addr1", "name": "addr_in_11", "missing_values": [""],
         "filter": "co_no = 11"},                                                           # pass
        {"type": "invalid", "column": "sale_prc1", "min": 0, "max": 1e9},                   # 3: fail
        {"type": "invalid", "column": "co_no", "name": "known_county",
         "reference": "counties.co_no"},                                                    # pass
        {"type": "invalid", "column": "phy_zipcd", "regex": "^[0-9]{5}$"},                 # pass
        {"type": "invalid", "column": "dor_uc", "values": ["001", "004"]},                 # pass
        {"type": "invalid", "column": "parcel_id", "min_length": 6, "max_length": 6,
         "warn": "> 0"},                                                                    # pass
        {"type": "duplicate", "columns": ["co_no", "parcel_id", "asmnt_yr"]},               # proven
        {"type": "duplicate", "columns": ["alt_key"], "warn": "> 0", "fail": "> 5"},        # 1: warn
        {"type": "failed_rows", "name": "tv_le_av", "condition": "tv_nsd <= av_nsd",
         "warn": "> 0", "fail": "> 10%"},                                                   # 2: warn
        {"type": "freshness", "column": "loaded_at", "warn": "> 1h", "fail": "> 1d"},       # pass
        {"type": "metric", "name": "avg_jv", "expression": "avg(jv)",
         "warn": "< 100000", "fail": "< 1000"},                                             # pass
        {"type": "metric", "name": "max_sale", "expression": "max(sale_prc1)",
         "fail": "> 1e9", "filter": "co_no = 16"},                                          # fail
        {"type": "schema", "expect": {"co_no": "smallint", "parcel_id": "text", "jv": "int8",
                                      "dor_uc": "varchar(3)"}},                            # 1 wrong type
    ]
    wk = run(h, cfg_for(db, checks), expect=1)
    r = results(db)
    want = {
        ("rows", "11"): (60, "pass"), ("rows", "16"): (40, "warn"),
        ("missing_dor_uc", "11"): (2, "fail"), ("missing_dor_uc", "16"): (0, "pass"),
        ("missing_phy_addr1", ""): (5, "warn"), ("addr_in_11", ""): (0, "pass"),
        ("invalid_sale_prc1", ""): (3, "fail"), ("known_county", ""): (0, "pass"),
        ("invalid_phy_zipcd", ""): (0, "pass"), ("invalid_dor_uc", ""): (0, "pass"),
        ("invalid_parcel_id", ""): (0, "pass"),
        ("duplicate_co_no_parcel_id_asmnt_yr", ""): (0, "pass"),
        ("duplicate_alt_key", ""): (1, "warn"), ("tv_le_av", ""): (2, "warn"),
        ("avg_jv", ""): (250500, "pass"), ("max_sale", ""): (2500920000, "fail"),
        ("schema", ""): (1, "fail"),
    }
    for k, (value, outcome) in want.items():
        check(k in r, "a result for %s: %r" % (k, sorted(r)))
        eq(outcome, r[k][2], "outcome of %s (value %s)" % (k, r[k][0]))
        eq(float(value), r[k][0], "value of %s" % (k,))
    eq(60, r[("addr_in_11", "")][1], "the filter narrows the rows looked at")
    eq(40, r[("missing_dor_uc", "16")][1], "rows per group")
    fresh = r[("freshness_loaded_at", "")]
    check(fresh[2] == "pass" and 0 <= fresh[0] < 600, "fresh: %r" % (fresh,))
    a = alerts(wk)
    eq("critical", a.get("check.parcels.missing_dor_uc.11"), "county 11's alert: %r" % a)
    check("check.parcels.missing_dor_uc.16" not in a, "county 16 passes")
    eq("warning", a.get("check.parcels.rows.16"), "a warn is a warning")
    eq("critical", a.get("check.parcels.schema"), "the schema alert")
    msg = [e for e in events(wk, "alert") if e["key"] == "check.parcels.schema"][0]["message"]
    check("dor_uc is text, expected varchar(3)" in msg, "the schema message says what: %s" % msg)
    msg = [e for e in events(wk, "alert")
           if e["key"] == "check.parcels.invalid_sale_prc1"][0]["message"]
    check("3 bad row(s)" in msg and "fail at > 0" in msg and '"parcel_id": "P000' in msg,
          "the alert says how many, why, and a sample key: %s" % msg)
    m = {e["name"]: e["value"] for e in events(wk, "metric")}
    eq(2, m.get("check.parcels.missing_dor_uc.11"), "a metric per value: %r" % m)
    eq(3, m.get("check.parcels.invalid_sale_prc1"), "metric")
    # validation.failed carries the failing checks and sample keys
    msgs = [e for e in events(wk, "message") if e["type"] == "validation.failed"]
    eq(1, len(msgs), "one validation.failed")
    failed = {(c["name"], c["group"]): c for c in msgs[0]["payload"]["checks"]}
    eq({("missing_dor_uc", "11"), ("invalid_sale_prc1", ""), ("max_sale", ""), ("schema", "")},
       set(failed), "the fail-level failures only")
    keys = sorted(s["parcel_id"] for s in failed[("invalid_sale_prc1", "")]["samples"])
    eq(["P00090", "P00091", "P00092"], keys, "the sample keys")
    res = wk.result()
    eq("failed", res["status"], "result")
    eq(4, res["summary"]["fail"], "summary counts: %r" % res["summary"])
    # samples: key columns + the tested column, in the failures table
    got = db.sql("SELECT row_key::text || ' ' || row_data::text FROM meshd_validate.failures "
                 "WHERE name = 'invalid_sale_prc1' ORDER BY 1").splitlines()
    eq(3, len(got), "three samples")
    check('"parcel_id": "P00090"' in got[0] and '"sale_prc1": 2500900000' in got[0],
          "key and tested column: %s" % got[0])


@_run
def test_all_aggregate_checks_of_a_table_cost_one_scan(h):
    """A dozen passing aggregate checks (row_count, missing, invalid with values, regex, range
    and a reference, failed_rows, freshness, metric) read the table once: seq_scan of parcels
    goes up by exactly one; the proven duplicate check reads nothing.  A second grouping costs
    one more scan, and nothing else does."""
    db = data_db(h)
    db.sql("UPDATE parcels SET dor_uc = '001' WHERE dor_uc IS NULL")
    checks = [
        {"type": "row_count"},
        {"type": "missing", "column": "dor_uc"},
        {"type": "missing", "column": "parcel_id"},
        {"type": "invalid", "column": "co_no", "min": 11, "max": 77},
        {"type": "invalid", "column": "dor_uc", "values": ["001"]},
        {"type": "invalid", "column": "phy_zipcd", "regex": "^[0-9]{5}$"},
        {"type": "invalid", "column": "co_no", "name": "ref", "reference": "counties.co_no"},
        {"type": "invalid", "column": "jv", "min": 0, "max": 1e9},
        {"type": "failed_rows", "name": "av_le_jv", "condition": "av_nsd <= jv"},
        {"type": "freshness", "column": "loaded_at", "fail": "> 1d"},
        {"type": "metric", "name": "avg_jv", "expression": "avg(jv)", "fail": "< 1"},
        {"type": "metric", "name": "sum_jv", "expression": "sum(jv)", "fail": "< 1"},
        {"type": "duplicate", "columns": ["parcel_id", "co_no", "asmnt_yr"]},
    ]

    def scans():
        return int(db.sql("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'parcels'"))

    def settled(n0, n):
        deadline = time.time() + 15
        while time.time() < deadline and scans() < n0 + n:
            time.sleep(0.1)
        time.sleep(1.5)  # counters of a backend arrive within ~1 s; wait past that
        return scans() - n0

    db.sql("SELECT pg_stat_reset()")
    time.sleep(1)
    n0 = scans()
    wk = run(h, cfg_for(db, checks))
    eq(13, len(results(db)), "13 results: %s" % wk.log[-2000:])
    eq(1, settled(n0, 1), "one scan of parcels for 12 aggregate checks")
    n0 = scans()
    checks.append({"type": "missing", "column": "jv", "group_by": ["co_no"]})
    run(h, cfg_for(db, checks))
    eq(2, settled(n0, 2), "a second grouping is a second scan")


@_run
def test_cost_guard_refuses_with_a_warning(h):
    """max_cost below a check's estimate: that check is not run (refused, a warning alert, in the
    history), the cheap schema check still runs, and the run exits 0."""
    db = data_db(h)
    db.sql("ANALYZE parcels")
    checks = [{"type": "row_count"},
              {"type": "schema", "expect": {"co_no": "smallint"}}]
    wk = run(h, cfg_for(db, checks, max_cost=0.5))
    r = results(db)
    eq("refused", r[("row_count", "")][2], "refused")
    eq("pass", r[("schema", "")][2], "the catalog check runs")
    eq("warning", alerts(wk).get("check.parcels.row_count"), "a warning")
    check("over max_cost 0.5" in wk.log, "the log says why: %s" % wk.log[-1000:])
    run(h, cfg_for(db, checks, max_cost=1e9))
    eq("pass", results(db)[("row_count", "")][2], "under the budget it runs")


@_run
def test_baselines_change_vs_last_run_that_did_not_fail(h):
    """row_count change: the first run sets the baseline; -40 % warns; the baseline then moves
    to the warned count; a drop of 60 % from it fails, and the failed count is not the next
    baseline; coming back resolves against the last good count."""
    db = data_db(h)
    checks = [{"type": "row_count", "change": True, "warn": "not between -20% and 20%",
               "fail": "< -50%"}]
    wk = run(h, cfg_for(db, checks))
    eq((None, 100, "pass"), results(db)[("row_count_change", "")], "first run: baseline")
    db.sql("DELETE FROM parcels WHERE parcel_id > 'P00060'")
    wk = run(h, cfg_for(db, checks))
    eq((-40.0, 60, "warn"), results(db)[("row_count_change", "")], "-40 %")
    db.sql("DELETE FROM parcels WHERE parcel_id > 'P00020'")
    wk = run(h, cfg_for(db, checks), expect=1)
    v = results(db)[("row_count_change", "")]
    eq(("fail", 20), (v[2], v[1]), "-66.7 % from 60")
    check(abs(v[0] + 66.67) < 0.01, "the change: %r" % (v,))
    db.sql("INSERT INTO parcels (co_no, parcel_id, asmnt_yr) SELECT 11, 'N' || g, 2025 "
           "FROM generate_series(1, 40) g")
    wk = run(h, cfg_for(db, checks))
    eq((0.0, 60, "pass"), results(db)[("row_count_change", "")], "back to 60: vs 60, not 20")
    eq(["check.parcels.row_count_change"], [e["key"] for e in events(wk, "resolve")],
       "the resolve")


@_run
def test_a_lost_write_loses_no_resolve(h):
    """The worker tells meshd before it records: a run whose history write fails (here a
    trigger makes it fail; a kill at that moment is the same) has already sent the resolve of
    the check it found fixed, and since nothing was recorded, the next run sends it again
    rather than never."""
    db = data_db(h)
    checks = [{"type": "invalid", "column": "sale_prc1", "max": 1e9}]
    run(h, cfg_for(db, checks), expect=1)
    db.sql("UPDATE parcels SET sale_prc1 = 1 WHERE sale_prc1 > 1e9")
    db.sql("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
           "$$BEGIN RAISE EXCEPTION 'the disk is full'; END$$; "
           "CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON meshd_validate.state "
           "FOR EACH ROW EXECUTE FUNCTION boom()")
    wk = run(h, cfg_for(db, checks), expect=1)
    check("the disk is full" in wk.log, wk.log[-500:])
    eq(["check.parcels.invalid_sale_prc1"], [e["key"] for e in events(wk, "resolve")],
       "the resolve went out before the failed write")
    eq("fail", db.sql("SELECT outcome FROM meshd_validate.state"), "nothing recorded")
    db.sql("DROP TRIGGER boom ON meshd_validate.state")
    wk = run(h, cfg_for(db, checks))
    eq(["check.parcels.invalid_sale_prc1"], [e["key"] for e in events(wk, "resolve")],
       "and again by the next run, which records it")
    eq("pass", db.sql("SELECT outcome FROM meshd_validate.state"), "recorded")


@_run
def test_samples_capped_when_written_and_retention(h):
    """samples: 2 writes two rows for a check with 3 failing; samples: 0 writes none; the
    history keeps every run; retention deletes what is older."""
    db = data_db(h)
    checks = [{"type": "invalid", "column": "sale_prc1", "max": 1e9, "samples": 2},
              {"type": "missing", "column": "dor_uc", "samples": 0},
              {"type": "failed_rows", "name": "tv_le_av", "condition": "tv_nsd <= av_nsd"}]
    run(h, cfg_for(db, checks, samples=1), expect=1)
    got = db.sql("SELECT name, count(*) FROM meshd_validate.failures GROUP BY 1 ORDER BY 1")
    eq("invalid_sale_prc1|2\ntv_le_av|1", got, "capped per check")
    whole = db.sql("SELECT row_data->>'sale_prc1' FROM meshd_validate.failures "
                   "WHERE name = 'tv_le_av'")
    check(whole != "", "failed_rows samples the whole row: %r" % whole)
    run(h, cfg_for(db, checks), expect=1)
    eq("6", db.sql("SELECT count(*) FROM meshd_validate.results"), "two runs kept")
    db.sql("UPDATE meshd_validate.results SET at = at - interval '2 days'")
    db.sql("UPDATE meshd_validate.failures SET at = at - interval '2 days'")
    run(h, cfg_for(db, checks, retention="1d"), expect=1)
    eq("3", db.sql("SELECT count(*) FROM meshd_validate.results"), "older than 1d deleted")
    eq("4", db.sql("SELECT count(*) FROM meshd_validate.failures"),
       "and their samples (2 + 2 of this run)")


@_run
def test_scrape_changed_run_checks_only_the_partition(h):
    """An on: scrape.changed run for parcels partition 16 looks at county 16 only (rows 40),
    keys its alerts by the partition, and leaves another table of the suite alone; a message
    for a table the suite does not check does nothing and exits 0."""
    db = data_db(h)
    db.sql("CREATE TABLE other (x int); INSERT INTO other VALUES (1)")
    cfg = {"database": {"url": db.url}, "suite": "t", "tables": [
        {"table": "parcels", "partition": ["co_no"], "checks": [
            {"type": "row_count"}, {"type": "invalid", "column": "sale_prc1", "max": 1e9}]},
        {"table": "other", "checks": [{"type": "row_count"}]}]}
    env = {"MESHD_MESSAGE_ID": "7", "MESHD_MESSAGE_TYPE": "scrape.changed",
           "MESHD_MESSAGE_PAYLOAD": json.dumps({"source": "nal", "table": "public.parcels",
                                                "partition": "16", "inserted": 1})}
    wk = run(h, cfg, expect=1, env=env)
    r = results(db)
    eq({("row_count", ""), ("invalid_sale_prc1", "")}, set(r), "parcels only")
    eq(40, r[("row_count", "")][1], "county 16's rows")
    eq("16", db.sql("SELECT DISTINCT scope FROM meshd_validate.results"), "the scope kept")
    eq({"check.parcels.invalid_sale_prc1@16": "critical"}, alerts(wk), "keyed by partition")
    # a job that names the suite alone runs the checks the suite's last run stored
    by_name = {"database": {"url": db.url}, "suite": "t"}
    wk = run(h, by_name, expect=1, env=env)
    check("the checks its defining job stored" in wk.log, wk.log[-500:])
    eq({"check.parcels.invalid_sale_prc1@16": "critical"}, alerts(wk), "the same checks")
    wk = run(h, dict(by_name, suite="nope"), expect=100)
    check('suite "nope" has no stored checks' in wk.log, wk.log[-500:])
    env["MESHD_MESSAGE_PAYLOAD"] = json.dumps({"table": "nowhere", "partition": "1"})
    wk = run(h, cfg, env=env)
    check("no table of this suite" in wk.log, "says so: %s" % wk.log[-500:])


# ---- errors ----------------------------------------------------------------------------------


@_run
def test_config_errors_exit_100_naming_the_check(h):
    """Bad SQL, a missing column or table, a bad regex or type name: found by the dry EXPLAIN
    before anything runs, exit 100, the message naming the check and the server's words."""
    db = data_db(h)
    cases = [
        ([{"type": "row_count"}, {"type": "failed_rows", "name": "bad", "condition": "nope > 1"}],
         'tables[0].checks[1] (bad): column "nope" does not exist'),
        ([{"type": "missing", "column": "nope"}], "tables[0].checks[0] (missing_nope)"),
        ([{"type": "invalid", "column": "co_no", "values": ["x"]}],
         'invalid input syntax for type smallint: "x"'),
        ([{"type": "invalid", "column": "dor_uc", "regex": "(("}], "invalid regular expression"),
        ([{"type": "schema", "expect": {"co_no": "smallintt"}}], "unknown type: co_no (smallintt)"),
        ([{"type": "metric", "name": "m", "expression": "jv", "warn": "> 1"}],
         'column "t.jv" must appear in the GROUP BY clause'),
        ([{"type": "missing", "column": "jv", "fail": "> 5 rows"}],
         'tables[0].checks[0].fail: "> 5 rows" is not a condition'),
    ]
    for checks, want in cases:
        wk = run(h, cfg_for(db, checks), expect=100)
        check(want in wk.log, "the error names it (%s): %s" % (want, wk.log[-1500:]))
        eq("failed", wk.result()["status"], "result")
    wk = run(h, {"database": {"url": db.url}, "tables": [{"table": "nope",
                                                           "checks": [{"type": "row_count"}]}]},
             expect=100)
    check('tables[0].table: relation "nope" does not exist' in wk.log, wk.log[-500:])
    eq("0", db.sql("SELECT count(*) FROM meshd_validate.results"), "nothing ran")


@_run
def test_database_down_111_timeout_1_stop_rolls_back(h):
    """Unreachable database: exit 111.  A scan over statement_timeout: that check is an error
    (a warning alert), the others are judged, exit 1.  SIGTERM in the middle of a scan: the
    query is cancelled, nothing is written, and the worker dies by SIGTERM within 2 s."""
    db = data_db(h)
    wk = run(h, {"database": {"url": "host=127.0.0.1 port=1 dbname=x connect_timeout=2"},
                 "tables": [{"table": "t", "checks": [{"type": "row_count"}]}]}, expect=111)
    slow = {"type": "metric", "name": "slow", "filter": "true",
            "expression": "count(*) + (SELECT 0 FROM pg_sleep(30))", "fail": "< 0"}
    wk = run(h, cfg_for(db, [{"type": "row_count"}, slow], statement_timeout="500ms"), expect=1)
    r = results(db)
    eq("error", r[("slow", "")][2], "the slow check errors")
    eq("pass", r[("row_count", "")][2], "the other one is judged")
    eq("warning", alerts(wk).get("check.parcels.slow"), "a warning for what could not run")
    before = db.sql("SELECT count(*) FROM meshd_validate.results")
    wk = Worker(cfg_for(db, [slow]), binary=VALIDATE)
    h.workers.append(wk)
    h.wait_for(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                              "'%pg_sleep(30)%' AND state = 'active' AND pid <> "
                              "pg_backend_pid()") == "1", what="the slow scan running")
    t0 = time.time()
    os.killpg(wk.proc.pid, signal.SIGTERM)
    code = wk.wait(10)
    eq(-signal.SIGTERM, code, "dies by SIGTERM (log: %s)" % wk.log[-1000:])
    check(time.time() - t0 < 2, "within 2 s")
    eq(before, db.sql("SELECT count(*) FROM meshd_validate.results"), "nothing written")
    h.wait_for(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                              "'%pg_sleep(30)%' AND pid <> pg_backend_pid()") == "0",
               what="the scan cancelled on the server")


# ---- under meshd ------------------------------------------------------------------------------


@_run
def test_alert_message_and_resolve_under_meshd(h):
    """A validate job under the real meshd: the failing check opens a critical alert in the
    registry and a validation.failed message lands on the bus; once the data is fixed the next
    run resolves the alert and exits 0."""
    reg = Db(h, "vreg")
    db = data_db(h)
    cfg = cfg_for(db, [{"type": "invalid", "column": "sale_prc1", "min": 0, "max": 1e9},
                       {"type": "missing", "column": "dor_uc", "group_by": ["co_no"],
                        "warn": "> 0"}])
    h.config(node_yaml(h, "  worker_dir: %s\n" % json.dumps(WORKER_DIR)) + """
jobs:
  quality:
    worker: validate
    schedule: "0 0 1 1 *"
    config: %s
""" % json.dumps(cfg))
    h.start(env={"DATABASE_URL": reg.url})
    h.wait_log(r"registry ready", timeout=30)
    sock = os.path.join(h.state_dir, "meshd.sock")
    h.wait_for(lambda: os.path.exists(sock), what="the API socket")

    def run_now():
        status, body = h.api_json("POST", "/api/jobs/quality/run", sock=True)
        eq(202, status, "run: %r" % body)
        return body["run_id"]

    run1 = run_now()
    status, code, _, tail = wait_run(h, reg, run1)
    eq(("failed", 1), (status, code), "the first run fails: %s" % tail)
    h.wait_for(lambda: reg.sql("SELECT status || '/' || severity FROM agent_alerts WHERE key = "
                               "'check.parcels.invalid_sale_prc1'") == "open/critical",
               what="the critical alert")
    h.wait_for(lambda: reg.sql("SELECT status || '/' || severity FROM agent_alerts WHERE key = "
                               "'check.parcels.missing_dor_uc.11'") == "open/warning",
               what="the warning for county 11")
    payload = json.loads(reg.sql("SELECT payload FROM agent_messages WHERE type = "
                                 "'validation.failed' AND run_id = '%s'" % run1))
    eq(run1, payload["run_id"], "the message names the run")
    eq(["invalid_sale_prc1"], [c["name"] for c in payload["checks"]], "the failing check")
    eq(3, payload["checks"][0]["value"], "its value")
    s = run_summary(reg, run1)
    eq((1, 1, 1), (s["fail"], s["warn"], s["pass"]), "summary: %r" % s)

    db.sql("UPDATE parcels SET sale_prc1 = sale_prc1 / 10000 WHERE sale_prc1 > 1e9")
    db.sql("UPDATE parcels SET dor_uc = '001' WHERE dor_uc IS NULL")
    run2 = run_now()
    status, code, _, tail = wait_run(h, reg, run2)
    eq(("succeeded", 0), (status, code), "the fixed data passes: %s" % tail)
    h.wait_for(lambda: reg.sql("SELECT string_agg(status, ',') FROM agent_alerts WHERE key LIKE "
                               "'check.parcels.%'") == "resolved,resolved",
               what="both alerts resolved")
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
