#!/usr/bin/env python3
"""meshd-remediate end to end (docs/remediate.md) on a real PostgreSQL (the ctest cluster).

Each test makes a fresh data database with a parcels table (an identity key, so a duplicate
parcel can exist) holding planted defects: 3 sale prices x100 (cents taken for dollars), one
parcel loaded twice, one row without a county code.  meshd-validate runs first and stores the
suite; meshd-remediate then runs by hand (config on stdin, status on fd 3): each action
(update, delete of the extra copies, quarantine, rerun); plan only by default; the approval of
a stored plan; a stale plan refused; the guards; the post-condition that rolls back a fix that
does not make its check pass or makes another check worse; undo restoring the table byte for
byte, refused over rows changed since, and refused twice.  Under the real meshd, the pipeline
wired by on: - validate fails, remediate applies, validate passes, undo, validate fails again."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, node_yaml  # noqa: E402
from test_workers import WORKER_DIR, Db, cleanly, Worker, wait_run  # noqa: E402

VALIDATE = os.path.join(WORKER_DIR, "meshd-validate") if WORKER_DIR else ""
REMEDIATE = os.path.join(WORKER_DIR, "meshd-remediate") if WORKER_DIR else ""

# 100 parcels; defects: ids 90-92 sale price x100, id 101 a second copy of parcel P00010
# (loaded later), id 102 without co_no.
PARCELS = """
CREATE TABLE parcels (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    co_no smallint, parcel_id text NOT NULL, asmnt_yr smallint NOT NULL,
    jv bigint, av_nsd bigint, sale_prc1 bigint);
INSERT INTO parcels (co_no, parcel_id, asmnt_yr, jv, av_nsd, sale_prc1)
SELECT CASE WHEN g <= 60 THEN 11 ELSE 16 END, 'P' || lpad(g::text, 5, '0'), 2025,
       200000 + g * 1000, 150000 + g * 1000,
       CASE WHEN g IN (90, 91, 92) THEN (250000 + g)::bigint * 100 ELSE 250000 + g END
FROM generate_series(1, 100) g;
INSERT INTO parcels (co_no, parcel_id, asmnt_yr, jv, av_nsd, sale_prc1)
SELECT co_no, parcel_id, asmnt_yr, jv, av_nsd, sale_prc1 FROM parcels WHERE id = 10;
INSERT INTO parcels (co_no, parcel_id, asmnt_yr, jv, av_nsd, sale_prc1)
VALUES (NULL, 'P99999', 2025, 300000, 200000, 280000);
"""

CHECKS = [
    {"type": "row_count", "fail": "< 1"},
    {"type": "failed_rows", "name": "sale_plausible", "condition": "sale_prc1 <= 20 * jv"},
    {"type": "duplicate", "columns": ["co_no", "parcel_id", "asmnt_yr"]},
    {"type": "missing", "column": "co_no"},
    {"type": "failed_rows", "name": "av_le_jv", "condition": "av_nsd <= jv"},
]

FIXES = [
    {"name": "cents", "check": "sale_plausible", "action": "update",
     "set": {"sale_prc1": "sale_prc1 / 100"}},
    {"name": "dedupe", "check": "duplicate_co_no_parcel_id_asmnt_yr", "action": "delete",
     "order_by": "id"},
    {"name": "no_county", "check": "missing_co_no", "action": "quarantine",
     "reason": "no county code"},
]

SNAPSHOT = "SELECT md5(string_agg(t::text, ';' ORDER BY id)) FROM parcels t"


def data_db(h):
    if not os.path.exists(REMEDIATE):
        harness.no_pg("no %s (build it first)" % REMEDIATE)
    db = Db(h, "rmdata")
    db.sql(PARCELS)
    return db


_run = cleanly


def run(h, binary, cfg, expect=0, env=None, args=None):
    wk = Worker(cfg, extra_env=env, binary=binary) if not args else None
    if wk is None:
        # --undo RUN_ID: the same runner, with arguments
        r, w = os.pipe()
        e = dict(os.environ, MESHD_STATUS_FD=str(w))
        e.pop("DATABASE_URL", None)
        p = subprocess.run([binary] + args, input=json.dumps(cfg).encode(), pass_fds=(w,),
                           env=e, capture_output=True, timeout=120)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            status = f.read().decode()

        class Done:
            pass
        wk = Done()
        wk.log = (p.stdout + p.stderr).decode(errors="replace")
        wk.events = [json.loads(line) for line in status.splitlines() if line]
        eq(expect, p.returncode, "%s exit code (log: %s)" % (os.path.basename(binary),
                                                             wk.log[-3000:]))
        return wk
    h.workers.append(wk)
    code = wk.wait(120)
    eq(expect, code, "%s exit code (log: %s)" % (os.path.basename(binary), wk.log[-3000:]))
    return wk


def validate(h, db, expect):
    return run(h, VALIDATE, {"database": {"url": db.url}, "suite": "p",
                             "tables": [{"table": "parcels", "checks": CHECKS}]}, expect=expect)


def remediate(h, db, fixes=None, expect=0, env=None, args=None, **kw):
    cfg = {"database": {"url": db.url}, "suite": "p", "fixes": FIXES if fixes is None else fixes,
           "max_percent": 10}  # the defects are 3 % of this small table; the default is 1 %
    cfg.update(kw)
    return run(h, REMEDIATE, cfg, expect=expect, env=env, args=args)


def messages(wk, typ):
    return [e["payload"] for e in wk.events if e["event"] == "message" and e["type"] == typ]


def alerts(wk):
    return {e["key"]: e["severity"] for e in wk.events if e["event"] == "alert"}


def defects(db):
    return db.sql("SELECT count(*) FILTER (WHERE sale_prc1 > 20 * jv) || ' ' || "
                  "(SELECT count(*) - count(DISTINCT (co_no, parcel_id, asmnt_yr)) FROM parcels) "
                  "|| ' ' || count(*) FILTER (WHERE co_no IS NULL) FROM parcels")


# ---- by hand -----------------------------------------------------------------------------------


@_run
def test_each_action_applies_and_undo_restores_exactly(h):
    """apply: auto: the update divides the 3 prices, the delete removes the later copy (order_by
    id keeps the first), the quarantine moves the county-less row with its reason; the audit has
    every before-image (and the updates' after-images); validate then passes.  --undo RUN_ID
    restores the table byte for byte (ids included); a second undo is refused."""
    db = data_db(h)
    validate(h, db, 1)
    before = db.sql(SNAPSHOT)
    eq("3 1 1", defects(db), "the planted defects")
    wk = remediate(h, db, apply="auto")
    eq("0 0 0", defects(db), "every defect fixed")
    eq("100", db.sql("SELECT count(*) FROM parcels"), "two rows left the table")
    eq("f", db.sql("SELECT EXISTS (SELECT 1 FROM parcels WHERE id = 101)"),
       "the later copy went, the first stayed")
    eq("250090", db.sql("SELECT sale_prc1 FROM parcels WHERE id = 90"), "divided by 100")
    eq("no county code|P99999", db.sql("SELECT reason || '|' || (row_data->>'parcel_id') "
                                       "FROM meshd_remediate.quarantine"), "quarantined")
    eq("delete|1|0\nquarantine|1|0\nupdate|3|3", db.sql(
        "SELECT action, count(*), count(after) FROM meshd_remediate.audit GROUP BY 1 ORDER BY 1"),
       "before-images of all, after-images of the updates")
    applied = messages(wk, "remediation.applied")
    eq(["cents", "dedupe", "no_county"], sorted(m["fix"] for m in applied), "three applied")
    eq(3, [m for m in applied if m["fix"] == "cents"][0]["rows"], "rows")
    eq([], messages(wk, "remediation.plan"), "apply: auto plans inside the apply")
    eq("3", db.sql("SELECT count(*) FROM meshd_remediate.plans WHERE status = 'applied'"),
       "each plan recorded, applied")
    validate(h, db, 0)

    run_id = db.sql("SELECT DISTINCT run_id FROM meshd_remediate.audit")
    wk = remediate(h, db, fixes=[], args=["--undo", run_id])
    eq(before, db.sql(SNAPSHOT), "undo restores the table exactly")
    eq([5], [m["rows"] for m in messages(wk, "remediation.undone")], "5 rows restored")
    eq("1", db.sql("SELECT count(*) FROM meshd_remediate.quarantine WHERE restored_by IS NOT "
                   "NULL"), "the quarantined row is marked restored")
    validate(h, db, 1)
    wk = remediate(h, db, fixes=[], args=["--undo", run_id], expect=1)
    check("already undone" in wk.log, "a second undo is refused: %s" % wk.log[-500:])
    eq(before, db.sql(SNAPSHOT), "and changes nothing")


@_run
def test_plan_by_default_then_approval_applies_it(h):
    """The default plans only: nothing changes, the plan is stored and published with its
    samples and the meshctl line that approves it.  A remediation.approve message with the
    plan's id applies exactly that plan (its stored definition, whatever the config says
    now); approving it again is refused."""
    db = data_db(h)
    validate(h, db, 1)
    before = db.sql(SNAPSHOT)
    wk = remediate(h, db, fixes=FIXES[:1])
    eq(before, db.sql(SNAPSHOT), "a plan changes nothing")
    plan = messages(wk, "remediation.plan")[0]
    eq((3, 102), (plan["rows"], plan["table_rows"]), "counts")
    eq([90, 91, 92], sorted(s["id"] for s in plan["samples"]), "samples: the primary key")
    check(plan["approve"] == "meshctl publish remediation.approve '{\"plan\":\"%s\"}'" %
          plan["plan"], "the approval line: %r" % plan["approve"])
    eq("planned", db.sql("SELECT status FROM meshd_remediate.plans"), "stored")
    # planning again finds the same plan
    wk = remediate(h, db, fixes=FIXES[:1])
    eq(plan["plan"], messages(wk, "remediation.plan")[0]["plan"], "the same targets, the same plan")
    env = {"MESHD_MESSAGE_ID": "1", "MESHD_MESSAGE_TYPE": "remediation.approve",
           "MESHD_MESSAGE_PAYLOAD": json.dumps({"plan": plan["plan"]})}
    full = db.sql("SELECT hash FROM meshd_remediate.plans")
    eq(64, len(full), "the whole hash is kept")
    env["MESHD_MESSAGE_PAYLOAD"] = json.dumps({"plan": full})  # the id, a prefix or the hash
    wk = remediate(h, db, fixes=[], env=env)
    eq("0 1 1", defects(db), "the approved fix applied")
    eq("applied", db.sql("SELECT status FROM meshd_remediate.plans"), "recorded")
    wk = remediate(h, db, fixes=[], env=env, expect=1)
    check("it is applied" in wk.log, "approving twice: %s" % wk.log[-500:])
    env["MESHD_MESSAGE_PAYLOAD"] = json.dumps({"plan": "0123456789abcdef"})
    wk = remediate(h, db, fixes=[], env=env, expect=1)
    check("no such plan" in wk.log, wk.log[-500:])


@_run
def test_stale_plan_is_refused(h):
    """A row changes between the plan and its approval: the targets' hash differs, the apply is
    refused (nothing written), the plan marked stale, with a critical alert and
    remediation.failed."""
    db = data_db(h)
    validate(h, db, 1)
    plan = messages(remediate(h, db, fixes=FIXES[:1]), "remediation.plan")[0]
    db.sql("UPDATE parcels SET sale_prc1 = sale_prc1 * 100 WHERE id = 5")
    before = db.sql(SNAPSHOT)
    env = {"MESHD_MESSAGE_ID": "1", "MESHD_MESSAGE_TYPE": "remediation.approve",
           "MESHD_MESSAGE_PAYLOAD": json.dumps({"plan": plan["plan"]})}
    wk = remediate(h, db, fixes=[], env=env, expect=1)
    eq(before, db.sql(SNAPSHOT), "nothing written")
    eq("stale", db.sql("SELECT status FROM meshd_remediate.plans WHERE plan = '%s'" % plan["plan"]),
       "marked stale")
    eq({"remediation.cents": "critical"}, alerts(wk), "alert")
    failed = messages(wk, "remediation.failed")
    eq("stale", failed[0]["outcome"], "remediation.failed says why")
    check("stale plan" in failed[0]["why"] and "now 4 rows" in failed[0]["why"], failed[0]["why"])
    eq("0", db.sql("SELECT count(*) FROM meshd_remediate.audit"), "no audit rows")


@_run
def test_guards_refuse_too_many_rows(h):
    """max_rows 2 against 3 targets, and max_percent 1 against 3 % of the table: refused before
    any lock or write, exit 1, a critical alert; under the limits it applies."""
    db = data_db(h)
    validate(h, db, 1)
    before = db.sql(SNAPSHOT)
    wk = remediate(h, db, fixes=[dict(FIXES[0], max_rows=2)], apply="auto", expect=1)
    check("3 rows to change, over max_rows 2" in wk.log, wk.log[-500:])
    eq({"remediation.cents": "critical"}, alerts(wk), "alert")
    wk = remediate(h, db, fixes=FIXES[:1], apply="auto", max_percent=1, expect=1)
    check("over max_percent 1" in wk.log, wk.log[-500:])
    eq(before, db.sql(SNAPSHOT), "nothing written")
    eq("refused", db.sql("SELECT DISTINCT status FROM meshd_remediate.plans"), "refused plans")
    remediate(h, db, fixes=FIXES[:1], apply="auto", max_percent=5)
    eq("0 1 1", defects(db), "within the limits it applies")


@_run
def test_post_condition_rolls_back(h):
    """A fix that makes another check worse (it also raises assessed values above just values)
    and one that does not make its own check pass (it only halves the prices) are rolled back:
    the table is unchanged, no audit rows stay, a critical alert and remediation.failed say
    why; the run exits 1."""
    db = data_db(h)
    validate(h, db, 1)
    before = db.sql(SNAPSHOT)
    worse = {"name": "cents", "check": "sale_plausible", "action": "update",
             "set": {"sale_prc1": "sale_prc1 / 100", "av_nsd": "jv * 2"}}
    wk = remediate(h, db, fixes=[worse], apply="auto", expect=1)
    eq(before, db.sql(SNAPSHOT), "rolled back")
    why = messages(wk, "remediation.failed")[0]["why"]
    check("check.parcels.av_le_jv got worse" in why, why)
    weak = {"name": "cents", "check": "sale_plausible", "action": "update",
            "set": {"sale_prc1": "sale_prc1 / 2"}}
    wk = remediate(h, db, fixes=[weak], apply="auto", expect=1)
    eq(before, db.sql(SNAPSHOT), "rolled back")
    check("does not pass after the fix" in messages(wk, "remediation.failed")[0]["why"], wk.log)
    eq("0", db.sql("SELECT count(*) FROM meshd_remediate.audit"), "no audit rows kept")
    eq("failed", db.sql("SELECT DISTINCT status FROM meshd_remediate.plans"), "plans failed")


@_run
def test_a_kill_inside_the_apply_changes_nothing(h):
    """SIGKILL at the worst moment: the UPDATE done, its before-images written, the post-check
    running (a slow fail-level check keeps it there).  Nothing of it stays: the table as it
    was, no audit rows, no plan recorded as applied, and the table lock gone, so the next run
    applies the fix."""
    db = data_db(h)
    slow = {"type": "metric", "name": "slow", "expression":
            "count(*) + (SELECT 0 FROM pg_sleep(3))", "fail": "< 0"}
    run(h, VALIDATE, {"database": {"url": db.url}, "suite": "p",
                      "tables": [{"table": "parcels", "checks": CHECKS + [slow]}]}, expect=1)
    before = db.sql(SNAPSHOT)
    cfg = {"database": {"url": db.url}, "suite": "p", "fixes": FIXES[:1], "apply": "auto",
           "max_percent": 10}
    wk = Worker(cfg, binary=REMEDIATE)
    h.workers.append(wk)
    # after the UPDATE the worker's backend holds ROW EXCLUSIVE on parcels (the LOCK TABLE
    # before it takes SHARE ROW EXCLUSIVE), and the second slow scan is the post-check
    in_post_check = ("SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                     "JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'parcels' AND "
                     "l.mode = 'RowExclusiveLock' AND a.query LIKE '%pg_sleep(3)%' AND "
                     "a.state = 'active' AND a.pid <> pg_backend_pid()")
    h.wait_for(lambda: db.sql(in_post_check) == "1", 30, "the apply in its post-check")
    os.killpg(wk.proc.pid, 9)
    eq(-9, wk.wait(10), "killed")
    h.wait_for(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                              "LIKE 'meshd-remediate%'") == "0", 30,
               "the killed worker's backend gone (it finishes the statement, then rolls back)")
    eq(before, db.sql(SNAPSHOT), "the table as it was")
    eq("0", db.sql("SELECT count(*) FROM meshd_remediate.audit"), "no audit rows")
    eq("0", db.sql("SELECT count(*) FROM meshd_remediate.plans WHERE status = 'applied'"),
       "no plan applied")
    remediate(h, db, fixes=FIXES[:1], apply="auto")
    eq("0 1 1", defects(db), "the next run applies it")


@_run
def test_undo_refuses_rows_changed_since(h):
    """After an update fix, someone changes one of its rows: the undo would overwrite that
    change, so it is refused as a whole (exit 1), and the table keeps the change."""
    db = data_db(h)
    validate(h, db, 1)
    remediate(h, db, fixes=FIXES[:1], apply="auto")
    db.sql("UPDATE parcels SET sale_prc1 = 1 WHERE id = 91")
    after = db.sql(SNAPSHOT)
    run_id = db.sql("SELECT DISTINCT run_id FROM meshd_remediate.audit")
    wk = remediate(h, db, fixes=[], undo=run_id, expect=1)
    check("1 row(s) of parcels changed since the fix" in wk.log, wk.log[-800:])
    eq(after, db.sql(SNAPSHOT), "nothing restored")


@_run
def test_rerun_and_nothing_to_fix_and_config_errors(h):
    """A rerun fix publishes its message with the failing groups and its to_job; a fix whose
    check passes does nothing; config errors exit 100 naming the fix."""
    db = data_db(h)
    validate(h, db, 1)
    rerun = {"name": "reload", "check": "missing_co_no", "action": "rerun",
             "message": "scrape.rerun", "payload": {"source": "nal"}, "to_job": "nightly"}
    wk = remediate(h, db, fixes=[rerun, dict(FIXES[0], check="av_le_jv", name="noop")],
                   apply="auto")
    m = messages(wk, "scrape.rerun")
    eq(1, len(m), "one rerun message")
    eq(("nal", "nightly", "missing_co_no"), (m[0]["source"], m[0]["to_job"], m[0]["check"]), "it")
    s = [e for e in wk.events if e["event"] == "result"][0]["summary"]
    eq({"reload": "rerun", "noop": "nothing"}, {f["fix"]: f["outcome"] for f in s["fixes"]},
       "summary")
    cases = [
        ([dict(FIXES[0], check="nope")], 'fixes[0] (cents).check: the suite has no check "nope"'),
        ([{"name": "x", "check": "sale_plausible", "action": "update"}], "set: required"),
        ([{"name": "x", "check": "missing_co_no", "action": "rerun"}], "message: required"),
        ([FIXES[0], dict(FIXES[1], where="id > 1; DROP TABLE parcels")], "fixes[1].where"),
        ([{"name": "x", "check": "row_count", "action": "delete"}],
         "no failing rows to delete"),
        ([FIXES[0], FIXES[0]], "already the name of fixes[0]"),
    ]
    for fixes, want in cases:
        wk = remediate(h, db, fixes=fixes, expect=100)
        check(want in wk.log, "the error names it (%s): %s" % (want, wk.log[-800:]))
    wk = run(h, REMEDIATE, {"database": {"url": db.url}, "suite": "nope", "fixes": FIXES},
             expect=100)
    check('suite "nope" has no stored checks' in wk.log, wk.log[-500:])


@_run
def test_validation_failed_selects_the_fixes(h):
    """On validation.failed only the fixes of the checks it names run (the suite comes with
    it); a cut message (truncated, too many to list) leaves every fix to look at its check; a
    job with suite: ignores another suite's message."""
    db = data_db(h)
    validate(h, db, 1)
    env = {"MESHD_MESSAGE_ID": "1", "MESHD_MESSAGE_TYPE": "validation.failed",
           "MESHD_MESSAGE_PAYLOAD": json.dumps({
               "suite": "p", "failed": 1,
               "checks": [{"table": "parcels", "name": "missing_co_no", "value": 1}]})}
    cfg = {"database": {"url": db.url}, "fixes": FIXES, "max_percent": 10}
    wk = run(h, REMEDIATE, cfg, env=env)
    eq(["no_county"], [m["fix"] for m in messages(wk, "remediation.plan")], "the named one")
    env["MESHD_MESSAGE_PAYLOAD"] = json.dumps({"suite": "p", "failed": 900, "truncated": True})
    wk = run(h, REMEDIATE, cfg, env=env)
    eq(["cents", "dedupe", "no_county"], sorted(m["fix"] for m in messages(wk, "remediation.plan")),
       "all of them")
    wk = run(h, REMEDIATE, dict(cfg, suite="other"), env=env)
    check("not this job's" in wk.log, wk.log[-500:])
    eq([], messages(wk, "remediation.plan"), "nothing")


# ---- under meshd ------------------------------------------------------------------------------


@_run
def test_pipeline_under_meshd_validate_remediate_validate_undo(h):
    """The users' pipeline with real meshd jobs wired by on:.  validate (run now) fails and
    publishes validation.failed; remediate (on: validation.failed, apply: auto) fixes the three
    defects and publishes remediation.applied; recheck (on: remediation.applied, the suite by
    name) passes and resolves the alerts.  Then, with remediate paused (else it would fix the
    rows again on the next failure), `meshctl publish remediation.undo` runs undo (on:
    remediation.undo), which restores the rows and publishes remediation.undone; recheck-undone
    (on: remediation.undone) fails again and raises the alerts again."""
    reg = Db(h, "rmreg")
    db = data_db(h)
    before = db.sql(SNAPSHOT)
    dbcfg = {"url": db.url}
    jobs = {
        "validate": ("schedule: \"0 0 1 1 *\"",
                     {"database": dbcfg, "suite": "p",
                      "tables": [{"table": "parcels", "checks": CHECKS}]}),
        "remediate": ("on: validation.failed",
                      {"database": dbcfg, "apply": "auto", "max_percent": 10, "fixes": FIXES}),
        "recheck": ("on: remediation.applied", {"database": dbcfg, "suite": "p"}),
        "undo": ("on: remediation.undo", {"database": dbcfg, "max_rows": 100}),
        "recheck-undone": ("on: remediation.undone", {"database": dbcfg, "suite": "p"}),
    }
    text = node_yaml(h, "  worker_dir: %s\n" % json.dumps(WORKER_DIR)) + "jobs:\n"
    for name, (when, cfg) in jobs.items():
        worker = "remediate" if name in ("remediate", "undo") else "validate"
        text += "  %s:\n    worker: %s\n    %s\n    config: %s\n" % (name, worker, when,
                                                                   json.dumps(cfg))
    h.config(text)
    h.start(env={"DATABASE_URL": reg.url})
    h.wait_log(r"registry ready", timeout=30)
    sock = os.path.join(h.state_dir, "meshd.sock")
    h.wait_for(lambda: os.path.exists(sock), what="the API socket")

    def last_run(job, n):
        rows = []

        def have():
            got = reg.sql("SELECT run_id || '|' || status || '|' || coalesce(exit_code, -1) "
                          "FROM agent_runs WHERE job = '%s' AND status <> 'running' "
                          "ORDER BY started_at" % job).splitlines()
            rows[:] = got
            return len(got) >= n
        h.wait_for(have, 60, "%d finished run(s) of %s" % (n, job))
        return rows[n - 1].split("|")

    status, body = h.api_json("POST", "/api/jobs/validate/run", sock=True)
    eq(202, status, "run: %r" % body)
    _, st, code = last_run("validate", 1)
    eq(("failed", "1"), (st, code), "validate finds the defects")
    h.wait_for(lambda: reg.sql("SELECT count(*) FROM agent_alerts WHERE key LIKE "
                               "'check.parcels.%'") == "3",
               what="three check alerts (open, or resolved by the recheck already)")
    rm_run, st, code = last_run("remediate", 1)
    eq(("succeeded", "0"), (st, code), "remediate applies")
    eq("0 0 0", defects(db), "fixed")
    _, st, code = last_run("recheck", 1)
    eq(("succeeded", "0"), (st, code), "the recheck passes")
    h.wait_for(lambda: reg.sql("SELECT count(*) FROM agent_alerts WHERE key LIKE "
                               "'check.parcels.%' AND status = 'open'") == "0",
               what="the check alerts resolved")
    audit_run = db.sql("SELECT DISTINCT run_id FROM meshd_remediate.audit")
    eq(rm_run, audit_run, "the audit names the meshd run")

    # Undo for good: the remediate job paused first, or the next validation.failed (the
    # recheck after the undo) would have it fix the rows again.
    eq(200, h.api("POST", "/api/jobs/remediate/pause", sock=True)[0], "pause remediate")
    code, out, err = harness.meshctl("publish", "remediation.undo",
                                     json.dumps({"run_id": audit_run}), "--url", reg.url)
    eq(0, code, "meshctl publish: %s" % err)
    _, st, code = last_run("undo", 1)
    eq(("succeeded", "0"), (st, code), "undo")
    eq(before, db.sql(SNAPSHOT), "the table as it was")
    _, st, code = last_run("recheck-undone", 1)
    eq(("failed", "1"), (st, code), "the defects are back")
    # The three alerts open again: new rows beside the resolved ones.
    h.wait_for(lambda: reg.sql("SELECT count(*) FROM agent_alerts WHERE key LIKE "
                               "'check.parcels.%'") == "6",
               what="the alerts raised again (%s)" % reg.sql(
                   "SELECT string_agg(key || ':' || status, ', ') FROM agent_alerts"))
    eq("3", reg.sql("SELECT count(*) FROM agent_alerts WHERE key LIKE 'check.parcels.%' AND "
                    "status = 'open'"), "open")
    eq("1", reg.sql("SELECT count(*) FROM agent_messages WHERE type = 'validation.failed' AND "
                    "status = 'pending'"), "the new failure waits for the paused remediate job")
    eq(before, db.sql(SNAPSHOT), "and the table stays as it was")
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
