#!/usr/bin/env python3
"""meshd-scrape end to end (docs/scrape.md): real files from nalgen.py (the 165-column NAL
header), served by nginx, httpfix's fault server or file:// URLs, loaded into a table of a fresh
database on the ctest cluster (MESHD_TEST_PG).

Under the real meshd (a job with `worker: scrape`, node.worker_dir at the build's libexec/meshd,
run with POST /api/jobs/NAME/run; the registry is a database of its own): the day-to-day cycle
(loaded, 304 unchanged, same bytes, the day's exact diff) with the run summary, the metrics and
the scrape.changed message taken by an `on: scrape.changed` job; the delete guard's refusal with
its alert and the resolve; a stop in the middle of a load.  Run by hand (config on stdin, status
on fd 3, test_workers.Worker): deletes in mark mode, every kind of bad input, max_bad_rows,
duplicates, the column mapping, config errors, Latin-1 and CP1252, a value only the server
checks, resume and retries through the fault server, a crash (SIGKILL) in the middle of a load
and a second run meanwhile, a directory of file:// files, a load announced late, two jobs on
one URL, credentials in a URL, a summary cut to fit.

Each test makes its own databases and servers and stops every server by its PID (Nginx.stop,
FaultServer.stop) and every worker it started by hand (by PID) in its `finally`."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import nalgen  # noqa: E402
from harness import check, eq, node_yaml  # noqa: E402
from httpfix import NGINX_BIN, FaultServer, Nginx  # noqa: E402
from test_workers import WORKER_DIR, Db, cleanly, Worker, metrics, run_summary, wait_run  # noqa: E402

SCRAPE = os.path.join(WORKER_DIR, "meshd-scrape") if WORKER_DIR else ""
KEY = ["co_no", "parcel_id", "asmnt_yr"]
MEMBER = nalgen.member_name(11, 2025)  # NAL11P202501.csv
# The mtimes of the served files: whole seconds a day back, set explicitly (os.utime) so that
# every new version has a new Last-Modified / nginx ETag even within one second.
T0 = int(time.time()) - 86400


# ---- set-up ----------------------------------------------------------------------------------


_run = cleanly


def data_db(h, ddl=True):
    """A fresh data database, with the NAL table `parcels` unless ddl is false."""
    if not os.path.exists(SCRAPE):
        harness.no_pg("no %s (build it first)" % SCRAPE)
    db = Db(h, "scdata")
    if ddl:
        db.sql(nalgen.ddl("parcels"))
    return db


def nginx(h):
    check(os.access(NGINX_BIN, os.X_OK),
          "nginx is not installed at %s (make deps installs nginx-light)" % NGINX_BIN)
    os.makedirs(h.path("www"), exist_ok=True)
    ng = Nginx(h.path("www"), prefix=h.path("nginx"))
    h.servers.append(ng)
    return ng


def access_log(ng, path):
    """nginx's access log entries for path, with its \\xHH escapes (for '"') undone."""
    out = []
    for r in ng.access_log():
        if r["path"] == path:
            out.append({k: re.sub(r"\\x([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), v)
                        if isinstance(v, str) else v for k, v in r.items()})
    return out


def fault_server(h):
    os.makedirs(h.path("www"), exist_ok=True)
    fs = FaultServer(h.path("www"))
    h.servers.append(fs)
    return fs


def put(g, path, day, fmt, mtime, encoding="latin-1"):
    """Writes day `day` of generator g to path with the given mtime; returns nalgen's info."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    info = g.write(path, day=day, fmt=fmt, encoding=encoding)
    os.utime(path, (mtime, mtime))
    return info


def set_mtime(path, mtime):
    os.utime(path, (mtime, mtime))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def nginx_etag(path):
    """nginx's ETag for a static file: "<mtime hex>-<size hex>"."""
    st = os.stat(path)
    return '"%x-%x"' % (int(st.st_mtime), st.st_size)


def source(url, **over):
    """The NAL source of these tests: county 11 into parcels, deleting under a 2 % guard."""
    s = {"name": "nal", "url": url, "table": "parcels", "key": KEY,
         "format": {"encoding": "latin1", "member": "NAL*.csv"},
         "partition": {"co_no": "11"}, "deletes": {"mode": "delete", "max_percent": 2}}
    s.update(over)
    return s


def config(db, sources, h=None, **over):
    """A run's config; by hand (h given) the downloads go to the test's dl/ directory."""
    c = {"database": {"url": db.url}, "sources": sources}
    if h is not None:
        c["download_dir"] = h.path("dl")
    c.update(over)
    return c


def scrape(h, cfg, expect=0, timeout=120):
    """meshd-scrape run by hand; asserts its exit code; returns the Worker (log, events)."""
    wk = start_scrape(h, cfg)
    code = wk.wait(timeout)
    eq(expect, code, "meshd-scrape exit code (log: %s)" % wk.log[-3000:])
    return wk


def start_scrape(h, cfg):
    wk = Worker(cfg, binary=SCRAPE)
    h.workers.append(wk)
    return wk


def result(wk):
    res = [e for e in wk.events if e["event"] == "result"]
    check(len(res) == 1, "one result line: %r (log: %s)" % (wk.events, wk.log[-2000:]))
    return res[0]["summary"]


def item(summary, file="11"):
    got = [i for i in summary["items"] if i.get("file") == file]
    check(len(got) == 1, "one item for file %s: %r" % (file, summary))
    return got[0]


def events(wk, kind):
    return [e for e in wk.events if e["event"] == kind]


def snapshot(db, table="parcels"):
    """Every row's key -> (xmin, ctid, row hash): any write to a row changes its entry."""
    out = {}
    for line in db.sql("SELECT co_no || '/' || parcel_id, xmin::text, ctid::text, "
                       "coalesce(meshd_row_hash::text, '') FROM %s" % table).splitlines():
        k, x, c, rh = line.split("|")
        out[k] = (x, c, rh)
    return out


def plain_snapshot(db, table="parcels"):
    """Every row's key -> (xmin, ctid), for a table without the hash column yet."""
    out = {}
    for line in db.sql("SELECT co_no || '/' || parcel_id, xmin::text, ctid::text FROM %s"
                       % table).splitlines():
        k, x, c = line.split("|")
        out[k] = (x, c)
    return out


def pids(keys):
    return {"%d/%s" % (k[0], k[1]) for k in keys}


def file_row(db, url):
    """The URL's meshd_scrape.files row as a dict (None when absent)."""
    got = db.sql("SELECT row_to_json(f) FROM meshd_scrape.files f WHERE url = '%s'" % url)
    return json.loads(got) if got else None


def without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


def table_row(db, parcel_id, table="parcels"):
    """The row as nalgen.row() gives it: the 165 values as str in header order, '' for NULL."""
    obj = json.loads(db.sql("SELECT row_to_json(t) FROM %s t WHERE parcel_id = '%s'"
                            % (table, parcel_id)))
    return ["" if obj[c.lower()] is None else str(obj[c.lower()]) for c in nalgen.HEADER]


def count(db, where="true", table="parcels"):
    return int(db.sql("SELECT count(*) FROM %s WHERE %s" % (table, where)))


# ---- under meshd -----------------------------------------------------------------------------


def scrape_job(cfg, name="scrape"):
    return """  %s:
    worker: scrape
    schedule: "0 0 1 1 *"
    stop_timeout: 10s
    config: %s
""" % (name, json.dumps(cfg))


def start_meshd(h, reg, jobs):
    h.config(node_yaml(h, "  worker_dir: %s\n" % json.dumps(WORKER_DIR)) + "jobs:\n" + jobs)
    h.start(env={"DATABASE_URL": reg.url})
    h.wait_log(r"registry ready", timeout=30)
    sock = os.path.join(h.state_dir, "meshd.sock")
    h.wait_for(lambda: os.path.exists(sock), what="the API socket")


def run_now(h, job="scrape"):
    status, body = h.api_json("POST", "/api/jobs/%s/run" % job, sock=True)
    eq(202, status, "run: %r" % body)
    return body["run_id"]


def alert(reg, key):
    return reg.sql("SELECT status || '/' || severity FROM agent_alerts WHERE key = '%s'" % key)


# ---- the tests -------------------------------------------------------------------------------


@_run
def test_day_cycle_under_meshd(h):
    """nginx serves day 0: loaded (3000 rows, the files row, summary, metrics, scrape.changed
    taken by an on: job).  Run 2: a 304, nothing received, nothing written.  The file touched
    (new ETag, same bytes): downloaded, "same bytes", nothing written.  Day 1: exactly nalgen's
    new/changed/deleted keys are inserted/updated/deleted, no other row is written, a changed
    row holds its new values; the message carries those counts."""
    reg = Db(h, "screg")
    db = data_db(h)
    ng = nginx(h)
    path = h.path("www/nal11.zip")
    g = nalgen.Nal(3000, county=11, seed=5)
    put(g, path, 0, "zip", T0)
    url = ng.url("/nal11.zip")
    out = h.path("changed.txt")
    on_job = """  on_changed:
    command: ["sh", "-c", %s]
    on: scrape.changed
""" % json.dumps('printf "%%s\\n" "$MESHD_MESSAGE_PAYLOAD" >> %s' % out)
    start_meshd(h, reg, scrape_job(config(db, [source(url)])) + on_job)

    # Day 0 into the empty table.
    run1 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run1)
    eq(("succeeded", 0), (status, code), "run 1 (output %s)" % tail)
    size0 = os.path.getsize(path)
    check("loaded: source=nal file=11 rows=3000 inserted=3000 updated=0 deleted=0 unchanged=0 "
          "rejected=0 bytes=%d" % size0 in tail, "the loaded line: %s" % tail)
    eq(3000, count(db), "rows after day 0")
    eq(pids(g.keys(0)), set(snapshot(db)), "the table holds day 0's keys")
    eq(0, count(db, "meshd_row_hash IS NULL"), "every row has its hash")
    eq(g.row(0, g.keys(0)[17][1]), table_row(db, g.keys(0)[17][1]), "a row's 165 values")
    f1 = file_row(db, url)
    etag0 = nginx_etag(path)
    eq({"url": url, "source": "nal", "target": "parcels", "part": "11", "etag": etag0,
        "bytes": size0, "sha256": sha256(path), "rows": 3000, "inserted": 3000, "updated": 0,
        "deleted": 0, "unchanged": 0, "rejected": 0, "run_id": run1, "announced": True},
       without(f1, "last_modified", "loaded_at", "checked_at"), "meshd_scrape.files")
    eq(str(T0), db.sql("SELECT extract(epoch FROM last_modified)::bigint FROM "
                       "meshd_scrape.files"), "last_modified is the file's mtime")
    s = run_summary(reg, run1)
    eq({"files": 1, "loaded": 1, "unchanged": 0, "failed": 0, "rows": 3000, "inserted": 3000,
        "updated": 0, "deleted": 0, "rejected": 0, "bytes_downloaded": size0},
       without(s, "items"), "run 1's summary")
    eq({"source": "nal", "file": "11", "url": url, "outcome": "loaded", "rows": 3000,
        "inserted": 3000, "updated": 0, "deleted": 0, "unchanged": 0, "bytes_received": size0},
       without(item(s), "load_seconds"), "run 1's item")
    m = metrics(h, reg, run1, 7)
    eq({"rows": 3000, "inserted": 3000, "updated": 0, "deleted": 0, "rejected": 0,
        "download_bytes": size0},
       {k: m.get("scrape.nal.11." + k) for k in ("rows", "inserted", "updated", "deleted",
                                                 "rejected", "download_bytes")}, "metrics")
    check("scrape.nal.11.load_seconds" in m, "load_seconds metric: %r" % m)
    h.wait_file_lines("changed.txt", 1, timeout=30)
    eq({"source": "nal", "table": "parcels", "partition": "11", "inserted": 3000, "updated": 0,
        "deleted": 0, "run_id": run1}, json.loads(h.lines("changed.txt")[0]),
       "the on: scrape.changed job's $MESHD_MESSAGE_PAYLOAD")
    eq([], os.listdir(os.path.join(h.state_dir, "scrape", "nal")),
       "the download is removed after the load ($MESHD_STATE_DIR/scrape/nal)")
    snap1 = snapshot(db)

    # Run 2: the same file: If-None-Match, a 304, nothing written.
    run2 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run2)
    eq(("succeeded", 0), (status, code), "run 2 (output %s)" % tail)
    check("unchanged: source=nal file=11 url=%s" % url in tail, "unchanged line: %s" % tail)
    acc = access_log(ng, "/nal11.zip")
    eq(2, len(acc), "two requests so far: %r" % acc)
    eq((304, 0, etag0), (acc[1]["status"], acc[1]["sent"], acc[1]["if_none_match"]),
       "run 2's request")
    s = run_summary(reg, run2)
    eq((1, 0, 0, 0), (s["unchanged"], s["loaded"], s["bytes_downloaded"], s["inserted"]),
       "run 2's summary: %r" % s)
    eq("unchanged", item(s)["outcome"], "run 2's item")
    check("bytes_received" not in item(s), "no body received: %r" % item(s))
    eq(snap1, snapshot(db), "run 2 wrote no row")
    f2 = file_row(db, url)
    eq(without(f1, "checked_at"), without(f2, "checked_at"), "files row kept (but checked_at)")
    check(f2["checked_at"] is not None, "checked_at set by the 304")

    # Run 3: touched: a new ETag, the same bytes: downloaded and skipped by its SHA-256.
    set_mtime(path, T0 + 60)
    etag1 = nginx_etag(path)
    run3 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run3)
    eq(("succeeded", 0), (status, code), "run 3 (output %s)" % tail)
    check("same bytes: source=nal file=11 url=%s" % url in tail, "same bytes line: %s" % tail)
    acc = access_log(ng, "/nal11.zip")
    eq((200, size0, etag0), (acc[2]["status"], acc[2]["sent"], acc[2]["if_none_match"]),
       "run 3's request")
    s = run_summary(reg, run3)
    eq((1, 0, size0), (s["unchanged"], s["loaded"], s["bytes_downloaded"]), "run 3: %r" % s)
    eq("same bytes", item(s)["outcome"], "run 3's item")
    eq(snap1, snapshot(db), "run 3 wrote no row")
    f3 = file_row(db, url)
    eq(etag1, f3["etag"], "the new ETag is remembered")
    eq((f1["run_id"], f1["loaded_at"], f1["sha256"]), (f3["run_id"], f3["loaded_at"],
                                                        f3["sha256"]), "no new load recorded")

    # Run 4: day 1.
    info = put(g, path, 1, "zip", T0 + 120)
    cnt = info["counts"]
    eq((30, 3, 3), (cnt["changed"], cnt["deleted"], cnt["new"]), "nalgen's day 1")
    run4 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run4)
    eq(("succeeded", 0), (status, code), "run 4 (output %s)" % tail)
    s = run_summary(reg, run4)
    size1 = os.path.getsize(path)
    eq({"source": "nal", "file": "11", "url": url, "outcome": "loaded", "rows": 3000,
        "inserted": 3, "updated": 30, "deleted": 3, "unchanged": 2967, "bytes_received": size1},
       without(item(s), "load_seconds"), "run 4's item")
    snap4 = snapshot(db)
    eq(pids(g.keys(1)), set(snap4), "the table holds day 1's keys")
    check(not pids(info["deleted"]) & set(snap4), "the deleted keys are gone")
    written = {k for k in snap4 if snap1.get(k) != snap4[k]}
    eq(pids(info["changed"]) | pids(info["new"]), written,
       "exactly the changed and the new rows were written")
    pid = info["changed"][0][1]
    check(g.row(0, pid) != g.row(1, pid), "the changed row differs")
    eq(g.row(1, pid), table_row(db, pid), "the changed row holds day 1's values")
    eq(g.row(1, info["new"][0][1]), table_row(db, info["new"][0][1]), "a new row's values")
    m = metrics(h, reg, run4, 7)
    eq({"rows": 3000, "inserted": 3, "updated": 30, "deleted": 3, "rejected": 0,
        "download_bytes": size1},
       {k: m.get("scrape.nal.11." + k) for k in ("rows", "inserted", "updated", "deleted",
                                                 "rejected", "download_bytes")}, "run 4 metrics")
    h.wait_file_lines("changed.txt", 2, timeout=30)
    eq({"source": "nal", "table": "parcels", "partition": "11", "inserted": 3, "updated": 30,
        "deleted": 3, "run_id": run4}, json.loads(h.lines("changed.txt")[1]), "message 2")
    f4 = file_row(db, url)
    eq((3000, 3, 30, 3, 2967, run4, sha256(path), True),
       (f4["rows"], f4["inserted"], f4["updated"], f4["deleted"], f4["unchanged"],
        f4["run_id"], f4["sha256"], f4["announced"]), "files row after day 1")
    h.wait_for(lambda: reg.sql("SELECT count(*) FILTER (WHERE status = 'done') || '/' || "
                               "count(*) FROM agent_messages WHERE type = 'scrape.changed'")
               == "2/2", 30, "two scrape.changed messages, both done (none for runs 2 and 3)")
    h.stop()
    eq(2, len(h.lines("changed.txt")), "the on: job ran once per message")


@_run
def test_delete_guard_refuses_then_resolves_under_meshd(h):
    """A truncated file (2000 of the 3000 rows) would delete a third of the partition: refused,
    exit 1, a critical alert scrape.nal.11, nothing written and the old validators kept; the
    next good file loads and resolves the alert."""
    reg = Db(h, "screg")
    db = data_db(h)
    ng = nginx(h)
    path = h.path("www/nal11.zip")
    g = nalgen.Nal(3000, county=11, seed=6)
    put(g, path, 0, "zip", T0)
    url = ng.url("/nal11.zip")
    start_meshd(h, reg, scrape_job(config(db, [source(url)])))
    run1 = run_now(h)
    eq(("succeeded", 0), wait_run(h, reg, run1)[:2], "run 1")
    snap = snapshot(db)
    f1 = file_row(db, url)

    put(nalgen.Nal(2000, county=11, seed=6), path, 0, "zip", T0 + 60)
    run2 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run2)
    eq(("failed", 1), (status, code), "the truncated file's run (output %s)" % tail)
    msg = ("%s (in 0-nal11.zip): refused: it would delete 1000 of the 3000 rows of parcels 11 "
           "(33.3%%, more than deletes.max_percent 2); a truncated or wrong file? Nothing was "
           "written" % MEMBER)
    check("refused: source=nal file=11: " + msg in tail, "the refused line: %s" % tail)
    s = run_summary(reg, run2)
    eq((0, 1), (s["loaded"], s["failed"]), "run 2's counts: %r" % s)
    eq(("refused", msg), (item(s)["outcome"], item(s)["error"]), "run 2's item")
    h.wait_for(lambda: alert(reg, "scrape.nal.11") == "open/critical", what="the open alert")
    eq(msg, reg.sql("SELECT message FROM agent_alerts WHERE key = 'scrape.nal.11'"),
       "the alert's message")
    eq(snap, snapshot(db), "nothing written")
    eq(without(f1, "checked_at"), without(file_row(db, url), "checked_at"),
       "the files row (validators) kept: the next run downloads again")

    info = put(g, path, 1, "zip", T0 + 120)
    run3 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run3)
    eq(("succeeded", 0), (status, code), "the good file's run (output %s)" % tail)
    eq((3, 30, 3), (item(run_summary(reg, run3))["inserted"],
                    item(run_summary(reg, run3))["updated"],
                    item(run_summary(reg, run3))["deleted"]), "day 1 loaded")
    eq(pids(g.keys(1)), set(snapshot(db)), "the table holds day 1")
    check(info["counts"]["deleted"] == 3, "nalgen")
    h.wait_for(lambda: alert(reg, "scrape.nal.11") == "resolved/critical", what="resolved")
    h.stop()


@_run
def test_mark_mode_marks_and_unmarks(h):
    """deletes.mode mark: the rows gone from the file get meshd_deleted_at (added as
    timestamptz), nothing is deleted; when they come back it is cleared, and the rows gone
    in turn are marked."""
    db = data_db(h)
    www = h.path("www")
    path = os.path.join(www, "nal11.csv")
    url = "file://" + path
    g = nalgen.Nal(3000, county=11, seed=8)
    put(g, path, 0, "csv", T0)
    cfg = config(db, [source(url, deletes={"mode": "mark", "max_percent": 2})], h)
    scrape(h, cfg)
    eq("timestamp with time zone", db.sql(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
        "'parcels'::regclass AND attname = 'meshd_deleted_at'"), "the mark column")
    eq(0, count(db, "meshd_deleted_at IS NOT NULL"), "nothing marked after day 0")

    info1 = put(g, path, 1, "csv", T0 + 60)
    t_before = db.sql("SELECT now()")
    it = item(result(scrape(h, cfg)))
    eq(("loaded", 3, 30, 3), (it["outcome"], it["inserted"], it["updated"], it["deleted"]),
       "day 1 in mark mode: %r" % it)
    eq(3003, count(db), "no row deleted")
    marked = db.sql("SELECT co_no || '/' || parcel_id FROM parcels WHERE meshd_deleted_at IS "
                    "NOT NULL").splitlines()
    eq(pids(info1["deleted"]), set(marked), "exactly day 1's deleted keys are marked")
    eq(0, count(db, "meshd_deleted_at < '%s'" % t_before), "marked at the load's time")

    # Day 0 again: day 1's deleted rows come back (unmarked, day 0's values), day 1's new rows
    # are gone now (marked), its changed rows go back.
    put(g, path, 0, "csv", T0 + 120)
    it = item(result(scrape(h, cfg)))
    eq(("loaded", 0, 33, 3), (it["outcome"], it["inserted"], it["updated"], it["deleted"]),
       "day 0 again: 30 changed back + 3 back, 3 marked: %r" % it)
    marked = db.sql("SELECT co_no || '/' || parcel_id FROM parcels WHERE meshd_deleted_at IS "
                    "NOT NULL").splitlines()
    eq(pids(info1["new"]), set(marked), "now day 1's new keys are the marked ones")
    back = info1["deleted"][0][1]
    eq(g.row(0, back), table_row(db, back), "a row that came back holds its values")
    eq(3003, count(db), "still no row deleted")

    # deletes.column names a boolean column of the table: set true, back to false.
    db.sql(nalgen.ddl("parcels_b") + "ALTER TABLE parcels_b ADD COLUMN gone boolean;")
    bpath = os.path.join(www, "b.csv")
    bsrc = source("file://" + bpath, name="b", table="parcels_b",
                  deletes={"mode": "mark", "column": "gone", "max_percent": 2})
    for day, mt in ((0, T0), (1, T0 + 60)):
        put(g, bpath, day, "csv", mt)
        eq("loaded", item(result(scrape(h, config(db, [bsrc], h))))["outcome"], "b day %d" % day)
    eq(pids(info1["deleted"]), set(db.sql("SELECT co_no || '/' || parcel_id FROM parcels_b "
                                          "WHERE gone").splitlines()), "gone = true")
    eq("0", db.sql("SELECT count(*) FROM pg_attribute WHERE attrelid = 'parcels_b'::regclass "
                   "AND attname = 'meshd_deleted_at'"), "no meshd_deleted_at added")
    put(g, bpath, 0, "csv", T0 + 120)
    eq("loaded", item(result(scrape(h, config(db, [bsrc], h))))["outcome"], "b day 0 again")
    eq(pids(info1["new"]), set(db.sql("SELECT co_no || '/' || parcel_id FROM parcels_b "
                                      "WHERE gone").splitlines()), "gone = true, day 0 again")
    eq("false", db.sql("SELECT string_agg(DISTINCT gone::text, ',') FROM parcels_b WHERE parcel_id "
                   "= '%s'" % back), "a row that came back: gone = false")


def bad_cases(h, g, www):
    """(name, file writer, expected message) for each kind of bad input; every file is day 0
    with one defect, written to www/nal11.csv (the zip case to www/nal11.zip)."""
    good = os.path.join(www, "good.csv")
    g.write(good, 0, "csv")
    good8 = os.path.join(www, "good8.csv")
    g.write(good8, 0, "csv", encoding="utf-8")
    goodz = os.path.join(www, "good.zip")
    g.write(goodz, 0, "zip")
    dst = os.path.join(www, "nal11.csv")
    pid5 = g.keys(0)[3][1]  # line 5
    n = "0-nal11.csv"
    return [
        ("numeric", lambda: nalgen.bad_numeric(good, dst, 10, "JV", "abc"),
         '%s:10: column jv: "abc" is not a bigint' % n),
        ("columns", lambda: nalgen.bad_column_count(good, dst, 20, 1),
         "%s:20: 166 fields, but the header has 165" % n),
        ("quote at the end", lambda: nalgen.bad_unterminated_quote(good, dst,
                                                                   column="SPC_CIR_TXT"),
         "%s: line 3001: unterminated quoted field (EOF)" % n),
        ("quote left open", lambda: nalgen.bad_unterminated_quote(good, dst, 500, "SPC_CIR_TXT"),
         re.compile(r"%s:500: \d+ fields, but the header has 165 \(the record runs to line "
                    r"50[1-9]: a quote left open\?\)$" % re.escape(n))),
        ("encoding", lambda: nalgen.bad_encoding(good8, dst, 30, "OWN_NAME"),
         re.compile(r"%s:30: column own_name: invalid UTF-8 at byte \d+ of the field$"
                    % re.escape(n))),
        ("dupkey", lambda: nalgen.bad_duplicate_key(good, dst, 5, 40),
         "%s: lines 5 and 40 have the same key (11, %s, 2025); with duplicates: last the later "
         "row would win" % (n, pid5)),
        ("partition", lambda: nalgen.bad_numeric(good, dst, 77, "CO_NO", "12"),
         '%s:77: column co_no: "12", but this file holds co_no = 11' % n),
        ("empty", lambda: open(dst, "wb").close(), "%s: the file is empty (no header)" % n),
    ]


@_run
def test_bad_input_rejects_the_file_and_writes_nothing(h):
    """Each defect (a non-numeric value, a field count, an unterminated quote, invalid UTF-8,
    a duplicate key, a truncated zip) rejects the whole file: exit 1, the exact message in the
    log and in the summary item, a critical alert, the table and the files row untouched."""
    db = data_db(h)
    www = h.path("www")
    os.makedirs(www)
    g = nalgen.Nal(3000, county=11, seed=9)
    url = "file://" + os.path.join(www, "nal11.csv")
    urlz = "file://" + os.path.join(www, "nal11.zip")
    put(g, os.path.join(www, "nal11.csv"), 0, "csv", T0)
    put(g, os.path.join(www, "nal11.zip"), 0, "zip", T0)
    cfg = config(db, [source(url)], h)
    scrape(h, cfg)
    snap = snapshot(db)
    f0 = file_row(db, url)
    mt = T0
    wrong = []  # message mismatches: every case runs before the test fails on them
    for name, make, want in bad_cases(h, g, www):
        make()
        mt += 10
        set_mtime(os.path.join(www, "nal11.csv"), mt)
        c = cfg
        if name == "encoding":
            c = config(db, [source(url, format={"encoding": "utf8"})], h)
        wk = scrape(h, c, expect=1)
        it = item(result(wk))
        eq("rejected", it["outcome"], "%s: outcome (%r)" % (name, it))
        pat = want if not isinstance(want, str) else re.compile(re.escape(want) + "$")
        if not pat.match(it["error"]):
            wrong.append("%s: expected the error %r, got %r" % (name, pat.pattern, it["error"]))
        elif not re.search(r"error meshd-scrape\[\d+\]: rejected: source=nal file=11: "
                           + pat.pattern, wk.log, re.M):
            wrong.append("%s: no rejected line for it in the log: %s" % (name, wk.log))
        eq([("critical", "scrape.nal.11")], [(a["severity"], a["key"]) for a in
                                             events(wk, "alert")], "%s: the alert" % name)
        eq([], events(wk, "message"), "%s: no scrape.changed" % name)
        eq(snap, snapshot(db), "%s: nothing written" % name)
        eq(without(f0, "checked_at"), without(file_row(db, url), "checked_at"),
           "%s: the files row kept" % name)

    # A zip cut in half: its central directory is gone.
    nalgen.truncate_file(os.path.join(www, "good.zip"), os.path.join(www, "nal11.zip"), 0.5)
    set_mtime(os.path.join(www, "nal11.zip"), T0 + 500)
    wk = scrape(h, config(db, [source(urlz)], h), expect=1)
    it = item(result(wk))
    eq("rejected", it["outcome"], "truncated zip: %r" % it)
    check(it["error"].startswith("0-nal11.zip: not a readable zip file: "), "the error: %r" % it)
    check("rejected: source=nal file=11: 0-nal11.zip: not a readable zip file: " in wk.log, wk.log)
    eq(snap, snapshot(db), "truncated zip: nothing written")
    eq(None, file_row(db, urlz), "truncated zip: no files row")
    # And the good file still loads (nothing was left locked or half-done).
    put(g, os.path.join(www, "nal11.csv"), 1, "csv", T0 + 600)
    it = item(result(scrape(h, cfg)))
    eq(("loaded", 3, 30, 3), (it["outcome"], it["inserted"], it["updated"], it["deleted"]),
       "day 1 after the bad files")
    check(not wrong, "the messages of bad input:\n  " + "\n  ".join(wrong))


@_run
def test_max_bad_rows_keeps_rejects_and_loads_the_rest(h):
    """max_bad_rows: 5 with three bad rows: they go to meshd_scrape.rejects with their line,
    reason and raw text, the other 2997 load (exit 0).  max_bad_rows: 2 with the same rows:
    the file is rejected naming the first bad row, nothing written."""
    db = data_db(h)
    www = h.path("www")
    os.makedirs(www)
    g = nalgen.Nal(3000, county=11, seed=10)
    good, a, b = (os.path.join(www, n) for n in ("good.csv", "a.csv", "b.csv"))
    path = os.path.join(www, "nal11.csv")
    g.write(good, 0, "csv")
    nalgen.bad_numeric(good, a, 10, "JV", "abc")
    nalgen.bad_column_count(a, b, 20, 1)
    nalgen.bad_numeric(b, path, 30, "LND_VAL", "x9")
    set_mtime(path, T0)
    url = "file://" + path
    wk = scrape(h, config(db, [source(url, max_bad_rows=5)], h))
    s = result(wk)
    it = item(s)
    eq(("loaded", 3000, 2997, 3), (it["outcome"], it["rows"], it["inserted"], it["rejected"]),
       "loaded with 3 rejected: %r" % it)
    eq(3, s["rejected"], "the summary's rejected")
    keys = g.keys(0)
    eq(pids(keys) - pids([keys[8], keys[18], keys[28]]), set(snapshot(db)),
       "every row but lines 10, 20, 30")
    rej = [r.split("|", 5) for r in db.sql(
        "SELECT line, reason, source, url, run_id, raw FROM meshd_scrape.rejects "
        "ORDER BY line").splitlines()]
    eq([["10", 'column jv: "abc" is not a bigint', "nal", url, ""],
        ["20", "166 fields, but the header has 165", "nal", url, ""],
        ["30", 'column lnd_val: "x9" is not a bigint', "nal", url, ""]],
       [r[:5] for r in rej], "meshd_scrape.rejects")
    for r, k in zip(rej, (keys[8], keys[18], keys[28])):
        check(r[5].startswith("11,%s,R,2025," % k[1]), "the raw text of line %s: %r" % (r[0], r))
    eq(3, file_row(db, url)["rejected"], "files.rejected")
    check(re.search(r"loaded: source=nal file=11 rows=3000 inserted=2997 .* rejected=3 ", wk.log),
          "the loaded line: %s" % wk.log)
    eq(["scrape.nal.11.rejected"], [m["name"] for m in events(wk, "metric")
                                    if m["name"].endswith(".rejected") and m["value"] == 3],
       "the rejected metric")

    # max_bad_rows 2: too many: the file is rejected, nothing written.
    snap = snapshot(db)
    set_mtime(path, T0 + 60)
    wk = scrape(h, config(db, [source(url, max_bad_rows=2)], h, force=True), expect=1)
    it = item(result(wk))
    eq(("rejected", 'more than max_bad_rows (2) bad rows; the first: 0-nal11.csv:10: column jv: '
        '"abc" is not a bigint'), (it["outcome"], it["error"]), "max_bad_rows 2")
    eq(snap, snapshot(db), "nothing written")
    eq("3", db.sql("SELECT count(*) FROM meshd_scrape.rejects"), "no new rejects")
    # The run's max_bad_rows applies when the source has none.
    wk = scrape(h, config(db, [source(url)], h, force=True, max_bad_rows=3))
    eq("loaded", item(result(wk))["outcome"], "the run's max_bad_rows 3")

    # On a partition with rows: a bad row whose key can be read keeps its row as it was (not
    # updated, not deleted).  Day 0 in full, then day 1 with a bad value in one of its changed
    # rows, one in an unchanged row, and an extra field in another unchanged row.
    set_mtime(good, T0 + 100)
    scrape(h, config(db, [source("file://" + good, name="nal2")], h))
    eq(3000, count(db), "day 0 in full")
    before = snapshot(db)
    info = g.write(good, 1, "csv")
    k1 = g.keys(1)
    line = {k[1]: i + 2 for i, k in enumerate(k1)}
    ch = info["changed"][0][1]
    same = [k[1] for k in k1 if k[1] not in {c[1] for c in info["changed"] + info["new"]}]
    nalgen.bad_numeric(good, a, line[ch], "JV", "abc")
    nalgen.bad_numeric(a, b, line[same[0]], "JV", "abc")
    nalgen.bad_column_count(b, path, line[same[1]], 1)
    set_mtime(path, T0 + 200)
    wk = scrape(h, config(db, [source(url, name="nal2", max_bad_rows=5)], h, force=True))
    it = item(result(wk))
    eq(("loaded", 3, 29, 3, 3), (it["outcome"], it["inserted"], it["updated"], it["deleted"],
                                 it["rejected"]), "day 1 with 3 bad rows: %r" % it)
    after = snapshot(db)
    eq(pids(k1), set(after), "the table holds day 1's keys (the bad rows' keys too)")
    for pid in (ch, same[0], same[1]):
        eq(before["11/" + pid], after["11/" + pid], "the bad row %s was not written" % pid)


@_run
def test_duplicates_columns_and_config_errors(h):
    """A duplicate key into an empty partition: the error names both lines; duplicates: last:
    the later row wins, with a warning naming both lines.  columns:
    strict refuses a header column the table lacks (naming it), before anything is written
    (not even the hash column); a columns map that leaves out a key column is an error; a map
    loads only the columns it names.  Bad key-table values exit 100; no database, 111."""
    db = data_db(h)
    www = h.path("www")
    os.makedirs(www)
    g = nalgen.Nal(2000, county=11, seed=11)
    good = os.path.join(www, "good.csv")
    path = os.path.join(www, "nal11.csv")
    g.write(good, 0, "csv")
    r = nalgen.bad_duplicate_key(good, path, 5, 40)
    set_mtime(path, T0)
    url = "file://" + path
    keys = g.keys(0)
    # duplicates: error on the empty partition (the one-pass COPY straight into the table).
    wk = scrape(h, config(db, [source(url)], h), expect=1)
    eq(("rejected", "0-nal11.csv: lines 5 and 40 have the same key (11, %s, 2025); with "
        "duplicates: last the later row would win" % r["key"][1]),
       (item(result(wk))["outcome"], item(result(wk))["error"]), "dup error, empty partition")
    eq(0, count(db), "nothing written")
    wk = scrape(h, config(db, [source(url, duplicates="last")], h))
    it = item(result(wk))
    eq(("loaded", 2000, 1999), (it["outcome"], it["rows"], it["inserted"]), "dup last: %r" % it)
    check(re.search(r"warn .*0-nal11\.csv: 1 key\(s\) appear more than once, first at lines 5 "
                    r"and 40 \(11, %s, 2025\): the last row of each wins \(duplicates: last\)"
                    % re.escape(r["key"][1]), wk.log), "the warning: %s" % wk.log)
    eq(pids(keys) - pids([keys[38]]), set(snapshot(db)), "line 40's own key is gone")
    want = g.row(0, keys[38][1])
    want[1] = keys[3][1]
    eq(want, table_row(db, keys[3][1]), "line 40's values under line 5's key")

    # columns: strict, and a table that lacks one of the header's columns.
    db.sql(nalgen.ddl("strict_t") + "ALTER TABLE strict_t DROP COLUMN spc_cir_txt;")
    surl = "file://" + good
    set_mtime(good, T0)
    wk = scrape(h, config(db, [source(surl, name="st", table="strict_t", columns="strict")], h),
                expect=1)
    it = item(result(wk))
    eq(("rejected", '0-good.csv: header column "SPC_CIR_TXT" (field 165) is not a column of '
        'strict_t (columns: strict)'), (it["outcome"], it["error"]), "strict")
    eq(0, count(db, table="strict_t"), "strict: nothing loaded")
    eq("0", db.sql("SELECT count(*) FROM pg_attribute WHERE attrelid = 'strict_t'::regclass "
                   "AND attname = 'meshd_row_hash'"), "strict: not even the hash column added")
    eq(None, file_row(db, surl), "strict: no files row")
    # columns: auto ignores it.
    wk = scrape(h, config(db, [source(surl, name="st", table="strict_t")], h))
    eq(("loaded", 2000), (item(result(wk))["outcome"], item(result(wk))["inserted"]), "auto")
    check("0-good.csv: 1 header column(s) not in strict_t are ignored" in wk.log, wk.log)

    # A columns map without the key's asmnt_yr, then one with it.
    db.sql("CREATE TABLE mapped (co int, pid text, yr int, value bigint, owner text, "
           "PRIMARY KEY (co, pid, yr))")
    cols = {"CO_NO": "co", "PARCEL_ID": "pid", "JV": "value", "OWN_NAME": "owner"}
    murl = "file://" + os.path.join(www, "mapped.csv")  # its own URL: state is kept per URL
    g.write(os.path.join(www, "mapped.csv"), 0, "csv")
    msrc = dict(source(murl, name="mp", table="mapped", key=["co", "pid", "yr"],
                       partition={"co": "11"}, columns=cols))
    wk = scrape(h, config(db, [msrc], h), expect=1)
    it = item(result(wk))
    eq(("rejected", "0-mapped.csv: key column yr is not in the file's header (nor a partition "
        "column)"), (it["outcome"], it["error"]), "the map without a key column")
    eq(0, count(db, table="mapped"), "nothing loaded")
    msrc["columns"] = dict(cols, ASMNT_YR="yr")
    wk = scrape(h, config(db, [msrc], h))
    eq(2000, count(db, table="mapped"), "the map loads")
    row = g.row(0, keys[7][1])
    eq("11|%s|2025|%s|%s" % (keys[7][1], row[nalgen.HEADER.index("JV")],
                             row[nalgen.HEADER.index("OWN_NAME")]),
       db.sql("SELECT co, pid, yr, value, owner FROM mapped WHERE pid = '%s'" % keys[7][1]),
       "a mapped row")

    # Config errors: exit 100 naming the key; an unreachable database: 111.
    for bad, want in (({"max_bad_rows": -5}, "max_bad_rows"),
                      ({"concurrency": 0}, "concurrency"),
                      ({"bogus": 1}, "bogus")):
        wk = scrape(h, config(db, [source(url)], h, **bad), expect=100)
        check(want in wk.log, "%r: the log names %s: %s" % (bad, want, wk.log))
    wk = scrape(h, config(db, [source(url, deletes={"mode": "sometimes"})], h), expect=100)
    check("sometimes" in wk.log, "the bad mode is named: %s" % wk.log)
    wk = scrape(h, {"database": {"url": "host=/nonexistent-meshd port=5432 dbname=x"},
                    "download_dir": h.path("dl"), "sources": [source(url)]}, expect=111)
    check("cannot connect" in wk.log, "the log says why: %s" % wk.log)


@_run
def test_latin1_arrives_as_utf8(h):
    """A Latin-1 file's é/ñ/ü arrive as UTF-8 text; the same bytes read as utf8 are invalid
    (the file is rejected); cp1252's curly quotes and euro sign too."""
    db = data_db(h, ddl=False)
    db.sql("CREATE TABLE people (co_no int, parcel_id text, asmnt_yr int, own_name text, "
           "PRIMARY KEY (co_no, parcel_id, asmnt_yr))")
    www = h.path("www")
    os.makedirs(www)
    path = os.path.join(www, "people.csv")
    names = ["MUÑOZ JOSÉ", "MÜLLER, JÜRGEN", "CÔTÉ \"ZOË\"", "PLAIN"]
    lines = ["CO_NO,PARCEL_ID,ASMNT_YR,OWN_NAME"]
    for i, n in enumerate(names):
        lines.append('11,P%d,2025,"%s"' % (i, n.replace('"', '""')))
    with open(path, "wb") as f:
        f.write(("\r\n".join(lines) + "\r\n").encode("latin-1"))
    set_mtime(path, T0)
    url = "file://" + path
    src = source(url, table="people", format={"encoding": "latin1"})
    scrape(h, config(db, [src], h))
    got = db.sql("SELECT own_name FROM people ORDER BY parcel_id").splitlines()
    eq(names, got, "the names as UTF-8")
    eq("4d55c3914f5a204a4f53c389", db.sql("SELECT encode(convert_to(own_name, 'UTF8'), 'hex') "
                                          "FROM people WHERE parcel_id = 'P0'"), "the bytes")
    wk = scrape(h, config(db, [dict(src, format={"encoding": "utf8"})], h, force=True),
                expect=1)
    check(re.match(r"0-people\.csv:2: column own_name: invalid UTF-8 at byte \d+ of the field$",
                   item(result(wk))["error"]), "utf8 refuses Latin-1: %r" % item(result(wk)))
    # CP1252: curly quotes and the euro sign (0x80-0x9F are not Latin-1 letters).  The other
    # rows are the same except for CO_NO written 011 / +11: integer keys are compared in their
    # canonical form, and the row hash is of the canonical line, so those rows are unchanged.
    lines = ["CO_NO,PARCEL_ID,ASMNT_YR,OWN_NAME", "11,P0,2025,\u201cQUOTED\u201d \u20ac 5"]
    for i, n in enumerate(names[1:], 1):
        lines.append('%s,P%d,2025,"%s"' % ("011" if i % 2 else "+11", i, n.replace('"', '""')))
    with open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("cp1252"))
    set_mtime(path, T0 + 10)
    wk = scrape(h, config(db, [dict(src, format={"encoding": "cp1252"})], h))
    it = item(result(wk))
    eq((1, 0, 3, 0), (it["updated"], it["inserted"], it["unchanged"], it["deleted"]),
       "cp1252: one row changed, 011 and +11 are 11: %r" % it)
    eq(["\u201cQUOTED\u201d \u20ac 5"] + names[1:],
       db.sql("SELECT own_name FROM people ORDER BY parcel_id").splitlines(), "cp1252")
    eq("11", db.sql("SELECT string_agg(DISTINCT co_no::text, ',') FROM people"), "co_no")


@_run
def test_a_value_the_server_refuses_fails_the_file_with_its_line(h):
    """A type the worker does not check (date) is checked by the server: a bad value fails the
    whole file, even with max_bad_rows, naming the file's line, both into an empty partition
    (one pass) and into one with rows (two passes); nothing written."""
    db = data_db(h, ddl=False)
    db.sql("CREATE TABLE dated (co_no int, parcel_id text, asmnt_yr int, sale_dt date, "
           "PRIMARY KEY (co_no, parcel_id, asmnt_yr))")
    path = h.path("www/dated.csv")
    os.makedirs(os.path.dirname(path))

    def write(co, bad_at, mt):
        rows = ["CO_NO,PARCEL_ID,ASMNT_YR,SALE_DT"]
        for i in range(6):
            rows.append("%d,P%d,2025,%s" % (co, i, "2025-13-01" if i + 2 == bad_at else
                                            "2025-0%d-15" % (i + 1)))
        with open(path, "w") as f:
            f.write("\n".join(rows) + "\n")
        set_mtime(path, mt)

    url = "file://" + path
    src = source(url, table="dated", format={"encoding": "utf8"}, max_bad_rows=5)
    write(11, 0, T0)
    scrape(h, config(db, [src], h))
    snap = plain_snapshot(db, "dated")
    eq(6, len(snap), "six rows")
    for label, co, bad_at, mt in (("two passes", 11, 5, T0 + 10), ("one pass", 12, 3, T0 + 20)):
        write(co, bad_at, mt)
        s2 = dict(src, partition={"co_no": str(co)})
        wk = scrape(h, config(db, [s2], h), expect=1)
        it = item(result(wk), str(co))
        eq("rejected", it["outcome"], "%s: %r" % (label, it))
        check(re.match(r'0-dated\.csv:%d: the database refused the row: .*"2025-13-01"' % bad_at,
                       it["error"]), "%s: the error names line %d: %r" % (label, bad_at, it))
        eq(snap, plain_snapshot(db, "dated"), "%s: nothing written" % label)


@_run
def test_resume_retry_and_404_through_the_fault_server(h):
    """Three files of one source (each: county 11, 12, 13) from the fault server: 11's body is
    cut (RST) after 200000 bytes and resumed with Range/If-Range (206; the item says resumed);
    12 answers 503 with Retry-After: 1 first, then loads (the wait honoured); 13 is a 404:
    failed at once (one request), exit 1, a critical alert scrape.nal.13.  The next run loads
    13 (its alert resolved) and finds 11 and 12 unchanged (304)."""
    db = data_db(h)
    fs = fault_server(h)
    www = h.path("www")
    gens = {c: nalgen.Nal(3000, county=c, seed=12) for c in (11, 12, 13)}
    for c in (11, 12):
        put(gens[c], os.path.join(www, "nal%d.zip" % c), 0, "zip", T0)
    fs.plan("/nal11.zip", ["reset_after:200000"])
    fs.plan("/nal12.zip", ["503:retry_after=1"])
    src = source(fs.url("/") + "nal{county}.zip", each={"county": [11, 12, 13]},
                 partition={"co_no": "{county}"}, format={"encoding": "latin1", "member": "NAL*"})
    cfg = config(db, [src], h, retries=3, max_backoff="5s")
    wk = scrape(h, cfg, expect=1)
    s = result(wk)
    eq((3, 2, 1), (s["files"], s["loaded"], s["failed"]), "counts: %r" % s)
    size11 = os.path.getsize(os.path.join(www, "nal11.zip"))
    i11 = item(s, "11")
    eq(("loaded", 3000, True), (i11["outcome"], i11["inserted"], i11.get("resumed")), "11")
    r11 = fs.wait_requests("/nal11.zip", 2)
    eq(2, len(r11), "11: two requests")
    eq(("reset", 200000), (r11[0]["error"], r11[0]["sent"]), "11: the cut")
    eq(("bytes=200000-", fs.etag("/nal11.zip"), 206, size11 - 200000),
       (r11[1]["range"], r11[1]["if_range"], r11[1]["status"], r11[1]["sent"]), "11: the resume")
    i12 = item(s, "12")
    eq(("loaded", 3000), (i12["outcome"], i12["inserted"]), "12")
    check(not i12.get("resumed"), "12 not resumed")
    r12 = fs.wait_requests("/nal12.zip", 2)
    eq([503, 200], [r["status"] for r in r12], "12: 503 then 200")
    gap = r12[1]["t"] - r12[0]["t"]
    check(0.95 <= gap < 4, "12: Retry-After 1 honoured: the retry came after %.2f s" % gap)
    i13 = item(s, "13")
    eq("failed", i13["outcome"], "13: %r" % i13)
    check("404" in i13["error"], "13: the error names the 404: %r" % i13)
    eq(1, len(fs.wait_requests("/nal13.zip", 1)), "13: no retry of a 404")
    check(re.search(r"failed: source=nal file=13: .*404", wk.log), "the failed line: %s" % wk.log)
    eq([("critical", "scrape.nal.13")], [(a["severity"], a["key"]) for a in
                                         events(wk, "alert")], "the alert")
    eq({"11": 3000, "12": 3000}, {l.split("|")[0]: int(l.split("|")[1]) for l in db.sql(
        "SELECT co_no, count(*) FROM parcels GROUP BY 1").splitlines()}, "rows per county")
    eq(pids(gens[11].keys(0)) | pids(gens[12].keys(0)), set(snapshot(db)), "the keys")

    put(gens[13], os.path.join(www, "nal13.zip"), 0, "zip", T0)
    fs.clear()
    wk = scrape(h, cfg)
    s = result(wk)
    eq(("unchanged", "unchanged", "loaded"), tuple(item(s, c)["outcome"] for c in
                                                   ("11", "12", "13")), "run 2: %r" % s)
    eq([304, 304], [fs.last("/nal%d.zip" % c)["status"] for c in (11, 12)], "304s")
    check("scrape.nal.13" in [e["key"] for e in events(wk, "resolve")],
          "13's alert resolved: %r" % events(wk, "resolve"))
    eq(9000, count(db), "all three counties")


def _copy_running(db):
    return db.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                  "'meshd-scrape%' AND state = 'active' AND query LIKE 'COPY%FROM STDIN%'") != "0"


def _scrape_backends(db):
    return db.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                  "'meshd-scrape%'")


@_run
def test_stop_during_a_load_under_meshd(h):
    """A stop (POST /api/jobs/scrape/stop) while a 60000-row file loads: the worker dies of
    the SIGTERM (recorded stopped, signal 15), the table and the files row are as before,
    no alert, no message; the next run loads the whole file."""
    reg = Db(h, "screg")
    db = data_db(h)
    ng = nginx(h)
    path = h.path("www/nal11.csv")
    small = nalgen.Nal(3000, county=11, seed=13)
    put(small, path, 0, "csv", T0)
    url = ng.url("/nal11.csv")
    start_meshd(h, reg, scrape_job(config(db, [source(url)])))
    run1 = run_now(h)
    eq(("succeeded", 0), wait_run(h, reg, run1)[:2], "run 1")
    snap = snapshot(db)
    f1 = file_row(db, url)
    # The same seed, 60000 rows: the first 3000 are the same rows; 57000 are new.
    big = nalgen.Nal(60000, county=11, seed=13)
    put(big, path, 0, "csv", T0 + 60)
    run2 = run_now(h)
    h.wait_log(r"meshd-scrape\[\d+\]: loading: source=nal file=11 bytes=%d"
               % os.path.getsize(path), 60)
    pid = int(h.wait_log(r"spawned: job=scrape run=%s pid=(\d+)" % re.escape(run2))[0].group(1))
    h.wait_for(lambda: _copy_running(db), 30, "the load's COPY running")
    t0 = time.time()
    status, body = h.api_json("POST", "/api/jobs/scrape/stop", sock=True)
    eq(202, status, "stop: %r" % body)
    h.wait_dead([pid], 10, "the worker gone")
    took = time.time() - t0
    status, code, sig, tail = wait_run(h, reg, run2)
    eq(("stopped", 15), (status, sig), "run 2 (output %s)" % tail)
    check(took < 2, "the worker took %.2f s to stop" % took)
    check("loaded:" not in tail, "the load did not finish: %s" % tail)
    h.wait_for(lambda: _scrape_backends(db) == "0", 10, "the worker's session gone")
    eq(snap, snapshot(db), "the table as before")
    eq(without(f1, "checked_at"), without(file_row(db, url), "checked_at"), "files row kept")
    eq("0", reg.sql("SELECT count(*) FROM agent_alerts"), "a stop raises no alert")
    eq("1", reg.sql("SELECT count(*) FROM agent_messages WHERE type = 'scrape.changed'"),
       "no message for the stopped load")

    run3 = run_now(h)
    status, code, _, tail = wait_run(h, reg, run3, timeout=120)
    eq(("succeeded", 0), (status, code), "run 3 (output %s)" % tail)
    it = item(run_summary(reg, run3))
    eq(("loaded", 60000, 57000, 0, 0, 3000),
       (it["outcome"], it["rows"], it["inserted"], it["updated"], it["deleted"],
        it["unchanged"]), "run 3 loads it all")
    eq(60000, count(db), "60000 rows")
    after = snapshot(db)
    eq(snap, {k: after[k] for k in snap}, "the first 3000 rows were not rewritten")
    h.stop()


@_run
def test_killed_during_a_load_then_next_run_loads(h):
    """A crash (SIGKILL) in the middle of a load leaves the table and the files row as they
    were (the transaction never committed); the next run loads the file, and the one after
    finds it unchanged.  While the first load runs, a second run of the same partition fails
    at once (exit 111, "another run is loading it now")."""
    db = data_db(h)
    www = h.path("www")
    path = os.path.join(www, "nal11.csv")
    small = nalgen.Nal(3000, county=11, seed=14)
    put(small, path, 0, "csv", T0)
    url = "file://" + path
    cfg = config(db, [source(url)], h)
    scrape(h, cfg)
    snap = snapshot(db)
    f1 = file_row(db, url)
    big = nalgen.Nal(60000, county=11, seed=14)
    put(big, path, 0, "csv", T0 + 60)
    wk = start_scrape(h, cfg)
    h.wait_for(lambda: _copy_running(db) or wk.proc.poll() is not None, 30, "the COPY running")
    check(wk.proc.poll() is None, "the worker is still loading")
    # A second run meanwhile (its own download_dir, as on another node) does not wait for the
    # partition: it fails at once with exit 111 (meshd retries it).
    t0 = time.time()
    other = scrape(h, dict(cfg, download_dir=h.path("dl2")), expect=111)
    it = item(result(other))
    eq(("failed", "parcels 11: another run is loading it now"), (it["outcome"], it["error"]),
       "the second run")
    check(time.time() - t0 < 10, "it did not wait")
    eq([("critical", "scrape.nal.11")], [(a["severity"], a["key"]) for a in
                                         events(other, "alert")], "its alert")
    check(wk.proc.poll() is None, "the first worker is still loading (the test needs it)")
    os.kill(wk.proc.pid, signal.SIGKILL)
    eq(-signal.SIGKILL, wk.wait(), "killed")
    h.wait_for(lambda: _scrape_backends(db) == "0", 10, "the killed worker's session gone")
    eq(snap, snapshot(db), "the table as before")
    eq(f1, file_row(db, url), "the files row as before")
    it = item(result(scrape(h, cfg)))
    eq(("loaded", 60000, 57000, 3000), (it["outcome"], it["rows"], it["inserted"],
                                         it["unchanged"]), "the next run: %r" % it)
    eq(60000, count(db), "all rows")
    # And once more: the same file is not loaded twice.
    it = item(result(scrape(h, cfg)))
    eq("unchanged", it["outcome"], "the run after")


@_run
def test_file_urls_from_a_directory(h):
    """file:// URLs expanded with each: (county 11, 12, 13; partition co_no): all loaded; then
    all unchanged (the mtime is the validator); a new version of one (with a new mtime) loads
    with nalgen's exact counts while the others stay unchanged.  force: true loads them all
    again and writes no row; a gzip file of a second source loads in the same run."""
    db = data_db(h)
    www = h.path("www")
    gens = {c: nalgen.Nal(2000, county=c, seed=15) for c in (11, 12, 13)}
    for c in gens:
        put(gens[c], os.path.join(www, "NAL%d.csv" % c), 0, "csv", T0 + c)
    src = source("file://" + www + "/NAL{county}.csv", each={"county": [11, 12, 13]},
                 partition={"co_no": "{county}"})
    cfg = config(db, [src], h)
    s = result(scrape(h, cfg))
    eq([("loaded", 2000)] * 3, [(item(s, c)["outcome"], item(s, c)["inserted"])
                                for c in ("11", "12", "13")], "run 1: %r" % s)
    eq(6000, count(db), "three counties")
    for c in (11, 12, 13):
        f = file_row(db, "file://" + www + "/NAL%d.csv" % c)
        eq((str(c), T0 + c), (f["part"], int(db.sql(
            "SELECT extract(epoch FROM last_modified)::bigint FROM meshd_scrape.files "
            "WHERE part = '%d'" % c))), "the files row of %d" % c)
    snap = snapshot(db)
    s = result(scrape(h, cfg))
    eq(["unchanged"] * 3, [item(s, c)["outcome"] for c in ("11", "12", "13")], "run 2: %r" % s)
    eq(0, s["bytes_downloaded"], "nothing read")
    eq(snap, snapshot(db), "nothing written")

    info = put(gens[12], os.path.join(www, "NAL12.csv"), 1, "csv", T0 + 100)
    s = result(scrape(h, cfg))
    eq(["unchanged", "loaded", "unchanged"], [item(s, c)["outcome"] for c in ("11", "12", "13")],
       "run 3: %r" % s)
    it = item(s, "12")
    eq((info["counts"]["new"], info["counts"]["changed"], info["counts"]["deleted"]),
       (it["inserted"], it["updated"], it["deleted"]), "county 12's diff")
    after = snapshot(db)
    eq({k: v for k, v in snap.items() if not k.startswith("12/")},
       {k: v for k, v in after.items() if not k.startswith("12/")}, "11 and 13 untouched")
    eq(pids(gens[12].keys(1)), {k for k in after if k.startswith("12/")}, "county 12 is day 1")

    # force: every file downloaded and loaded again, and still not a row written (the row
    # hashes match), no scrape.changed.  A second source in the same run: a gzip file.
    gz = nalgen.Nal(1000, county=14, seed=15)
    put(gz, os.path.join(www, "NAL14.csv.gz"), 0, "gzip", T0)
    gsrc = source("file://" + www + "/NAL14.csv.gz", name="gz", partition={"co_no": "14"})
    wk = scrape(h, config(db, [src, gsrc], h, force=True))
    s = result(wk)
    eq([("loaded", 0, 0, 0, 2000)] * 3 + [("loaded", 1000, 0, 0, 0)],
       [(i["outcome"], i["inserted"], i["updated"], i["deleted"], i["unchanged"])
        for i in (item(s, "11"), item(s, "12"), item(s, "13"), item(s, "14"))], "force: %r" % s)
    eq(after, {k: v for k, v in snapshot(db).items() if not k.startswith("14/")},
       "force wrote no row of 11, 12, 13")
    eq(pids(gz.keys(0)), {k for k in snapshot(db) if k.startswith("14/")}, "the gzip's rows")
    eq([{"source": "gz", "table": "parcels", "partition": "14", "inserted": 1000, "updated": 0,
         "deleted": 0, "run_id": ""}], [e["payload"] for e in events(wk, "message")],
       "only the gzip's load is announced")


@_run
def test_a_load_not_announced_is_announced_by_the_next_run(h):
    """Run with no status fd (no bus: by hand), a load that changed rows cannot be announced:
    its files row stays announced = false.  The next run with a status fd sends that load's
    scrape.changed (with the first run's counts) although its own file is unchanged, and marks
    it announced; the run after sends nothing."""
    db = data_db(h)
    path = h.path("www/nal11.csv")
    g = nalgen.Nal(2000, county=11, seed=16)
    put(g, path, 0, "csv", T0)
    url = "file://" + path
    cfg = config(db, [source(url)], h)
    env = dict(os.environ)
    env.pop("MESHD_STATUS_FD", None)
    env["MESHD_RUN_ID"] = "by-hand-1"
    r = subprocess.run([SCRAPE], input=json.dumps(cfg).encode(), capture_output=True, env=env,
                       timeout=120)
    eq(0, r.returncode, "the run without a status fd: %s" % r.stderr.decode()[-2000:])
    f = file_row(db, url)
    eq((2000, False), (f["inserted"], f["announced"]), "loaded, not announced")
    wk = scrape(h, cfg)
    eq("unchanged", item(result(wk))["outcome"], "the file is unchanged")
    eq([{"event": "message", "type": "scrape.changed",
         "payload": {"source": "nal", "table": "parcels", "partition": "11", "inserted": 2000,
                     "updated": 0, "deleted": 0, "run_id": f["run_id"]}}],
       events(wk, "message"), "the old load announced")
    eq(True, file_row(db, url)["announced"], "marked announced")
    eq([], events(scrape(h, cfg), "message"), "announced once")


@_run
def test_two_jobs_load_one_url_into_two_tables(h):
    """Two jobs (two configs, one data database) load the same file into two tables, e.g. the
    whole roll into one and a few columns into another.  Each must load it: the second job's
    table is empty until it does.  (One config cannot name a URL twice: plan.c refuses that.)"""
    db = data_db(h)
    db.sql(nalgen.ddl("parcels_copy"))
    path = h.path("www/nal11.csv")
    g = nalgen.Nal(2000, county=11, seed=17)
    put(g, path, 0, "csv", T0)
    url = "file://" + path
    a = config(db, [source(url, name="roll")], h)
    b = config(db, [source(url, name="copy", table="parcels_copy")], h,
               download_dir=h.path("dl-b"))
    eq("loaded", item(result(scrape(h, a)))["outcome"], "job a")
    it = item(result(scrape(h, b)))
    eq(("loaded", 2000), (it["outcome"], it.get("inserted")),
       "job b loads the same URL into its own table: %r" % it)
    eq(2000, count(db, table="parcels_copy"), "parcels_copy filled")


@_run
def test_credentials_in_a_url_are_never_shown(h):
    """A URL with user:password@: the log, the status lines (summary, alert) and the state
    table never show the password, for a file that loads and for one that fails (a 404)."""
    db = data_db(h)
    fs = fault_server(h)
    put(nalgen.Nal(1000, county=11, seed=18), h.path("www/nal11.zip"), 0, "zip", T0)
    base = fs.url("/").replace("http://", "http://scraper:s3cr3t-pw@")
    src = source(base + "nal{county}.zip", each={"county": [11, 12]},
                 partition={"co_no": "{county}"})
    wk = scrape(h, config(db, [src], h, retries=0), expect=1)
    s = result(wk)
    eq(("loaded", "failed"), (item(s, "11")["outcome"], item(s, "12")["outcome"]), "outcomes")
    eq(fs.url("/nal11.zip"), item(s, "11")["url"], "the summary's URL, without user:password@")
    check("s3cr3t" not in wk.log, "the log shows the password: %s" % wk.log)
    check("s3cr3t" not in wk.status.decode(), "a status line shows the password: %s"
          % wk.status.decode())
    check(fs.last("/nal11.zip")["headers"].get("authorization", "").startswith("Basic "),
          "the credentials were used")
    eq(fs.url("/nal11.zip"), db.sql("SELECT url FROM meshd_scrape.files"),
       "meshd_scrape.files keeps the URL without user:password@")


@_run
def test_summary_of_many_files_is_cut_to_fit(h):
    """150 files of one source: a summary over 16 KiB keeps only the failed items (3 missing
    files), and with every file failed only the totals; the counts stay whole."""
    db = data_db(h, ddl=False)
    db.sql("CREATE TABLE small (grp int, id int, v text, PRIMARY KEY (grp, id))")
    www = h.path("www")
    os.makedirs(www)
    n = list(range(1, 151))
    for i in n:
        if i not in (7, 70, 140):
            p = os.path.join(www, "part-number-%03d.csv" % i)
            with open(p, "w") as f:
                f.write("GRP,ID,V\n%d,1,a\n%d,2,b\n" % (i, i))
            set_mtime(p, T0)
    src = {"name": "many", "url": "file://" + www + "/part-number-{n}.csv",
           "each": {"n": ["%03d" % i for i in n]}, "table": "small", "key": ["grp", "id"],
           "partition": {"grp": "{n}"}}
    wk = scrape(h, config(db, [src], h), expect=1)
    s = result(wk)
    eq((150, 147, 3, 294, "failed items only"),
       (s["files"], s["loaded"], s["failed"], s["inserted"], s.get("truncated")), "totals")
    eq(["007", "070", "140"], sorted(i["file"] for i in s["items"]), "only the failed items")
    check(len(json.dumps(s)) <= 16384, "the summary fits: %d bytes" % len(json.dumps(s)))
    eq(294, count(db, table="small"), "147 files loaded")
    wk = scrape(h, config(db, [dict(src, url="file://" + www + "/gone-{n}.csv")], h), expect=1)
    s = result(wk)
    eq((150, 0, 150, "counts only"), (s["files"], s["loaded"], s["failed"], s.get("truncated")),
       "all failed")
    check("items" not in s, "no items: %r" % list(s))


if __name__ == "__main__":
    harness.main(globals())
