#!/usr/bin/env python3
"""meshd-scrape's download engine (workers/scrape/fetch.c, contract in fetch.h) against the real
nginx and httpfix's fault server, through tests/fakes/scrape_fetch_probe (SCRAPE_FETCH_PROBE,
set by CMake): a 200, conditional GETs (304 by ETag and by date), a changed file, resume after
a reset and after a stop (stop_after_ms and SIGTERM), Retry-After, permanent failures, a stall
as a timeout, the per-host limit, file:// URLs, and a Range answered by 200 or 416.

No meshd and no PostgreSQL.  nginx must be installed (make deps installs nginx-light): without
it the tests fail rather than skip.  Every server a test starts is stopped by its `with`
block (nginx by PID), every probe is waited for or killed by PID.  Each probe run's job, stdout
and stderr are appended to the test dir's meshd.log, which the harness prints on a failure.
"""

import email.utils
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Failure, check, eq  # noqa: E402
from httpfix import NGINX_BIN, FaultServer, Nginx  # noqa: E402

PROBE = os.environ.get("SCRAPE_FETCH_PROBE", "")
# Fast retries: the backoff is what a test would otherwise spend its time on.
OPTS = {"retries": 2, "backoff_ms": 50, "max_backoff_ms": 5000}
# The mtime (so the Last-Modified) of the served files: a day back, whole seconds.
T0 = int(time.time()) - 86400


# ---- helpers ---------------------------------------------------------------------------------


def blob(n, seed):
    return random.Random(seed).randbytes(n)


def http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def put(path, data, mtime):
    """Writes a file with the given mtime (Unix s)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def nginx_etag(path):
    """nginx's ETag for a static file: "<mtime hex>-<size hex>" (strong)."""
    st = os.stat(path)
    return '"%x-%x"' % (int(st.st_mtime), st.st_size)


def start_nginx(h):
    check(os.access(NGINX_BIN, os.X_OK),
          "nginx is not installed at %s (make deps installs nginx-light)" % NGINX_BIN)
    os.makedirs(h.path("www"), exist_ok=True)
    return Nginx(h.path("www"), prefix=h.path("nginx"))


def access_log(ng):
    """nginx's access log, with the \\xHH escapes nginx writes for '"' and the like undone."""
    rows = []
    for r in ng.access_log():
        rows.append({k: re.sub(r"\\x([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), v)
                     if isinstance(v, str) else v for k, v in r.items()})
    return rows


def out(h, name):
    os.makedirs(h.path("out"), exist_ok=True)
    return h.path("out/" + name)


def item(url, path, etag=None, last_modified=0):
    return {"url": url, "path": path, "etag": etag, "last_modified": last_modified}


def gone(path):
    """Neither path's .part nor its .part.meta is left."""
    return not os.path.exists(path + ".part") and not os.path.exists(path + ".part.meta")


def _probe_bin():
    check(PROBE and os.access(PROBE, os.X_OK),
          "SCRAPE_FETCH_PROBE not set or not executable (%r): run it through ctest" % PROBE)
    return PROBE


def start_probe(h, items, opts=None, stop_after_ms=None):
    """Starts the probe on a job; returns (Popen, job text).  It carries the harness's token,
    so one left running fails the test at teardown (and is killed by PID)."""
    job = {"opts": dict(OPTS, **(opts or {})), "items": items}
    if stop_after_ms is not None:
        job["stop_after_ms"] = stop_after_ms
    text = json.dumps(job)
    env = dict(os.environ, ITEST_MESHD_TOKEN=h.token)
    jobfile = h.path("job.json")
    with open(jobfile, "w") as f:
        f.write(text)
    with open(jobfile) as f:
        p = subprocess.Popen([_probe_bin()], stdin=f, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, text=True)
    return p, text


def finish_probe(h, p, text, n, timeout=30):
    """Waits for the probe (killed by PID after timeout), checks it exited 0 with one line per
    item; returns (results by item index, stderr)."""
    stdout, stderr = "", ""
    try:
        stdout, stderr = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        stdout, stderr = p.communicate()
        raise Failure("the probe did not finish within %g s" % timeout)
    finally:
        with open(h.log_path, "a") as f:
            f.write("---- probe job: %s\n---- stdout:\n%s---- stderr:\n%s"
                    % (text, stdout, stderr))
    eq(0, p.returncode, "probe exit status (stderr: %s)" % stderr[-1000:])
    res = [json.loads(line) for line in stdout.splitlines()]
    eq(list(range(n)), sorted(r["i"] for r in res), "every item returned once")
    return sorted(res, key=lambda r: r["i"]), stderr


def run_probe(h, items, opts=None, stop_after_ms=None, timeout=30):
    p, text = start_probe(h, items, opts, stop_after_ms)
    return finish_probe(h, p, text, len(items), timeout)


def check_downloaded(r, data, path, attempts=1, resumed=False, received=None, code=200):
    """r is DOWNLOADED with data at path and nothing left over."""
    what = "item %d" % r["i"]
    eq("DOWNLOADED", r["outcome"], what + " outcome (error %r)" % r["error"])
    eq(code, r["http_code"], what + " http_code")
    eq(len(data), r["bytes"], what + " bytes")
    eq(len(data) if received is None else received, r["bytes_received"], what + " bytes_received")
    eq(sha(data), r["sha256"], what + " sha256")
    eq(attempts, r["attempts"], what + " attempts")
    eq(resumed, r["resumed"], what + " resumed")
    eq("", r["error"], what + " error")
    eq(False, r["permanent"], what + " permanent")
    check(0 <= r["seconds"] < 30, "%s seconds: %r" % (what, r["seconds"]))
    eq(data, read(path), what + ": the file's bytes")
    check(gone(path), "%s: .part or .part.meta left next to %s" % (what, path))


# ---- HTTP against nginx ----------------------------------------------------------------------


def test_200_download(h):
    data = blob(300000, 1)
    put(h.path("www/f.bin"), data, T0)
    put(h.path("www/empty.csv"), b"", T0)
    with start_nginx(h) as ng:
        dst, dst0 = out(h, "f.bin"), out(h, "empty.csv")
        res, _ = run_probe(h, [item(ng.url("f.bin"), dst), item(ng.url("empty.csv"), dst0)])
        log = access_log(ng)
    check_downloaded(res[0], data, dst)
    eq(nginx_etag(h.path("www/f.bin")), res[0]["etag_new"], "etag_new: nginx's ETag")
    eq(T0, res[0]["last_modified_new"], "last_modified_new: the file's mtime")
    check_downloaded(res[1], b"", dst0)
    eq(T0, res[1]["last_modified_new"], "empty file's last_modified_new")
    get = [r for r in log if r["path"] == "/f.bin"]
    eq(1, len(get), "one request for f.bin: %r" % log)
    eq(("GET", 200, 300000, "", "", ""),
       (get[0]["method"], get[0]["status"], get[0]["sent"], get[0]["range"],
        get[0]["if_none_match"], get[0]["if_modified_since"]), "f.bin's request")


def test_conditional_get_not_modified(h):
    data = blob(200000, 2)
    src = h.path("www/f.bin")
    put(src, data, T0)
    with start_nginx(h) as ng:
        dst = out(h, "f.bin")
        res, _ = run_probe(h, [item(ng.url("f.bin"), dst)])
        check_downloaded(res[0], data, dst)
        etag = res[0]["etag_new"]
        eq(nginx_etag(src), etag, "first ETag")
        before = os.stat(dst)

        # If-None-Match with the ETag loaded last: a 304, nothing received, nothing written.
        res, _ = run_probe(h, [item(ng.url("f.bin"), dst, etag=etag, last_modified=T0)])
        r = res[0]
        eq(("NOT_MODIFIED", 304, 0, 0, "", 1, False, "", False),
           (r["outcome"], r["http_code"], r["bytes"], r["bytes_received"], r["sha256"],
            r["attempts"], r["resumed"], r["error"], r["permanent"]), "304 by ETag")
        eq(etag, r["etag_new"], "etag_new after a 304")
        eq(T0, r["last_modified_new"], "last_modified_new after a 304")
        last = access_log(ng)[-1]
        eq((304, 0, etag, ""), (last["status"], last["sent"], last["if_none_match"],
                                last["if_modified_since"]), "the request: If-None-Match only")

        # No ETag kept: If-Modified-Since with the time loaded last.
        res, _ = run_probe(h, [item(ng.url("f.bin"), dst, last_modified=T0)])
        r = res[0]
        eq(("NOT_MODIFIED", 304, 0, 0, "", 1), (r["outcome"], r["http_code"], r["bytes"],
                                                r["bytes_received"], r["sha256"], r["attempts"]),
           "304 by date")
        eq(T0, r["last_modified_new"], "last_modified_new after a 304 by date")
        last = access_log(ng)[-1]
        eq((304, 0, "", http_date(T0)), (last["status"], last["sent"], last["if_none_match"],
                                          last["if_modified_since"]),
           "the request: If-Modified-Since only")
        after = os.stat(dst)
        eq((before.st_ino, before.st_mtime_ns), (after.st_ino, after.st_mtime_ns),
           "the downloaded file was not touched by the 304s")
        check(gone(dst), "no .part after a 304")

        # A .part of a newer version that has since gone away, and the version loaded last is
        # current again: the resuming request still carries If-None-Match, the 304 wins, and
        # the .part is thrown away.
        put(dst + ".part", b"x" * 5000, T0)
        with open(dst + ".part.meta", "w") as f:
            f.write("meshd-fetch-part 1\nurl %s\netag \"gone-1\"\n" % ng.url("f.bin"))
        res, _ = run_probe(h, [item(ng.url("f.bin"), dst, etag=etag, last_modified=T0)])
        r = res[0]
        eq(("NOT_MODIFIED", 304, 0, False), (r["outcome"], r["http_code"], r["bytes_received"],
                                             r["resumed"]), "304 while resuming")
        last = access_log(ng)[-1]
        eq((304, etag, "bytes=5000-", '"gone-1"'),
           (last["status"], last["if_none_match"], last["range"], last["if_range"]),
           "the resuming request")
        check(gone(dst), "the stale .part and .part.meta are discarded after the 304")
        eq(data, read(dst), "the file loaded last is kept")


def test_changed_file_downloads_again(h):
    src = h.path("www/f.bin")
    v1, v2 = blob(200000, 3), blob(123457, 4)
    put(src, v1, T0)
    with start_nginx(h) as ng:
        dst = out(h, "f.bin")
        res, _ = run_probe(h, [item(ng.url("f.bin"), dst)])
        check_downloaded(res[0], v1, dst)
        etag1 = res[0]["etag_new"]
        put(src, v2, T0 + 100)
        res, _ = run_probe(h, [item(ng.url("f.bin"), dst, etag=etag1, last_modified=T0)])
        check_downloaded(res[0], v2, dst)
        eq(nginx_etag(src), res[0]["etag_new"], "the new ETag")
        check(res[0]["etag_new"] != etag1, "the ETag changed")
        eq(T0 + 100, res[0]["last_modified_new"], "the new Last-Modified")
        last = access_log(ng)[-1]
        eq((200, len(v2), etag1), (last["status"], last["sent"], last["if_none_match"]),
           "the conditional request got a 200")


def test_404_and_bad_urls_are_permanent(h):
    with start_nginx(h) as ng:
        port = ng.port
        dst, dst2 = out(h, "missing.bin"), out(h, "ftp.bin")
        # user:password stays out of every message
        url = "http://user:secret@127.0.0.1:%d/missing.bin" % port
        res, _ = run_probe(h, [item(url, dst), item("ftp://127.0.0.1/x.bin", dst2)])
        log = access_log(ng)
    r = res[0]
    eq(("FAILED", True, 1, 404, 0, 0, ""),
       (r["outcome"], r["permanent"], r["attempts"], r["http_code"], r["bytes"],
        r["bytes_received"], r["sha256"]), "404")
    eq("http://127.0.0.1:%d/missing.bin: HTTP 404 Not Found" % port, r["error"], "404 error")
    eq(1, len([x for x in log if x["path"] == "/missing.bin"]), "one request, no retry")
    check(not os.path.exists(dst) and gone(dst), "nothing written for a 404")
    r = res[1]
    eq(("FAILED", True, 0, 0), (r["outcome"], r["permanent"], r["attempts"], r["http_code"]),
       "ftp://")
    eq('ftp://127.0.0.1/x.bin: unsupported scheme "ftp" (http, https, file)', r["error"],
       "ftp:// error")


def test_range_resume_200_and_416(h):
    """A .part with a valid If-Range resumes with a 206; one whose file has changed since gets
    a 200 and starts over from 0; one as long as the file gets a 416 and starts over, once."""
    src = h.path("www/f.bin")
    v1, v2 = blob(300000, 5), blob(60000, 6)  # v2 shorter than the .part
    put(src, v1, T0)
    url_log = "/f.bin"
    with start_nginx(h) as ng:
        url = ng.url("f.bin")
        dst = out(h, "f.bin")
        etag1 = nginx_etag(src)
        meta1 = "meshd-fetch-part 1\nurl %s\netag %s\n" % (url, etag1)

        # 206: the .part continues.
        put(dst + ".part", v1[:100000], T0)
        with open(dst + ".part.meta", "w") as f:
            f.write(meta1)
        res, _ = run_probe(h, [item(url, dst)])
        check_downloaded(res[0], v1, dst, resumed=True, received=200000, code=206)
        eq(etag1, res[0]["etag_new"], "etag_new after a 206")
        last = [x for x in access_log(ng) if x["path"] == url_log][-1]
        eq((206, 200000, "bytes=100000-", etag1),
           (last["status"], last["sent"], last["range"], last["if_range"]), "206 request")

        # 200: the file changed since the .part was started.
        os.unlink(dst)
        put(dst + ".part", v1[:100000], T0)
        with open(dst + ".part.meta", "w") as f:
            f.write(meta1)
        put(src, v2, T0 + 100)
        etag2 = nginx_etag(src)
        res, _ = run_probe(h, [item(url, dst)])
        check_downloaded(res[0], v2, dst, resumed=False, received=len(v2))
        eq(etag2, res[0]["etag_new"], "etag_new after the restart")
        last = [x for x in access_log(ng) if x["path"] == url_log][-1]
        eq((200, len(v2), "bytes=100000-", etag1),
           (last["status"], last["sent"], last["range"], last["if_range"]),
           "a stale If-Range got the whole file")

        # 416: the .part is as long as the file.
        os.unlink(dst)
        put(dst + ".part", v2, T0)
        with open(dst + ".part.meta", "w") as f:
            f.write("meshd-fetch-part 1\nurl %s\netag %s\n" % (url, etag2))
        n0 = len([x for x in access_log(ng) if x["path"] == url_log])
        res, err = run_probe(h, [item(url, dst)])
        check_downloaded(res[0], v2, dst, attempts=2, resumed=False, received=len(v2))
        rs = [x for x in access_log(ng) if x["path"] == url_log][n0:]
        eq([(416, "bytes=%d-" % len(v2), etag2), (200, "", "")],
           [(x["status"], x["range"], x["if_range"]) for x in rs], "416, then from 0")
        check(re.search(r"restarting: url=%s cause=HTTP 416 to the Range request" % re.escape(url),
                        err), "the restart is logged: %s" % err)


# ---- faults (httpfix.FaultServer) ------------------------------------------------------------


def test_resume_after_reset_mid_body(h):
    """f.bin (strong ETag) resumes with If-Range: <ETag>; w.bin (weak ETag, which cannot be an
    If-Range validator) with If-Range: <Last-Modified>."""
    data = blob(300000, 7)
    put(h.path("www/f.bin"), data, T0)
    put(h.path("www/w.bin"), data, T0)
    with FaultServer(h.path("www")) as fs:
        fs.plan("/f.bin", ["reset_after:100000"])
        fs.plan("/w.bin", ["reset_after:100000"])
        fs.set_etag("/w.bin", 'W/"weak-1"')
        dst, dstw = out(h, "f.bin"), out(h, "w.bin")
        url, urlw = fs.url("f.bin"), fs.url("w.bin")
        res, err = run_probe(h, [item(url, dst), item(urlw, dstw)])
        rs = fs.wait_requests("/f.bin", 2)
        rw = fs.wait_requests("/w.bin", 2)
        etag = fs.etag("/f.bin")
    check_downloaded(res[1], data, dstw, attempts=2, resumed=True, received=300000, code=206)
    eq(('W/"weak-1"', T0), (res[1]["etag_new"], res[1]["last_modified_new"]), "w.bin validators")
    eq((206, "bytes=100000-", http_date(T0)), (rw[1]["status"], rw[1]["range"], rw[1]["if_range"]),
       "w.bin's second request: If-Range the Last-Modified date")
    # The 100000 bytes before the reset are kept and not asked for again: received adds up to
    # the file exactly.
    check_downloaded(res[0], data, dst, attempts=2, resumed=True, received=300000, code=206)
    eq(etag, res[0]["etag_new"], "etag_new")
    eq(2, len(rs), "two requests")
    eq(("reset", None, None), (rs[0]["error"], rs[0]["range"], rs[0]["if_range"]),
       "first request: plain, reset")
    eq((206, "bytes=100000-", etag, 200000),
       (rs[1]["status"], rs[1]["range"], rs[1]["if_range"], rs[1]["sent"]),
       "second request: Range from the .part's end, If-Range the ETag")
    check(re.search(r"retrying: url=%s attempt=1 of 3 wait_ms=\d+ cause=connection reset"
                    % re.escape(url), err), "the retry is logged: %s" % err)


def test_early_close_and_reset_before_response_are_retried(h):
    """A FIN mid-body (curl: partial file) resumes like a reset; a connection reset before any
    response is tried again from 0."""
    data = blob(200000, 16)
    put(h.path("www/c.bin"), data, T0)
    put(h.path("www/d.bin"), data, T0)
    with FaultServer(h.path("www")) as fs:
        fs.plan("/c.bin", ["close_after:50000"])
        fs.plan("/d.bin", ["drop"])
        items = [item(fs.url("c.bin"), out(h, "c.bin")), item(fs.url("d.bin"), out(h, "d.bin"))]
        res, err = run_probe(h, items)
        rc = fs.wait_requests("/c.bin", 2)
        rd = fs.wait_requests("/d.bin", 2)
    check_downloaded(res[0], data, items[0]["path"], attempts=2, resumed=True, received=200000,
                     code=206)
    eq(("closed", "bytes=50000-", 206), (rc[0]["error"], rc[1]["range"], rc[1]["status"]),
       "c.bin: closed after 50000 bytes, then resumed")
    check(re.search(r"retrying: url=%s attempt=1 of 3 wait_ms=\d+ cause=connection closed early"
                    % re.escape(items[0]["url"]), err), "c.bin's retry is logged: %s" % err)
    check_downloaded(res[1], data, items[1]["path"], attempts=2)
    eq(("dropped", None, 200), (rd[0]["error"], rd[1]["range"], rd[1]["status"]),
       "d.bin: dropped, then from 0")
    check(re.search(r"retrying: url=%s attempt=1 of 3 wait_ms=\d+ cause=connection reset"
                    % re.escape(items[1]["url"]), err), "d.bin's retry is logged: %s" % err)


def test_retry_after_then_success_and_retries_used_up(h):
    data = blob(50000, 8)
    names = ("a.bin", "b.bin", "c.bin", "d.bin")
    for name in names:
        put(h.path("www/" + name), data, T0)
    with FaultServer(h.path("www")) as fs:
        fs.plan("/a.bin", ["503:retry_after=1"])
        fs.plan("/b.bin", ["429:retry_after=1"])
        fs.plan("/c.bin", ["503", "503", "503"])
        # Retry-After as an HTTP date, 3 s ahead: 2 to 3 s from now in whole seconds, and at
        # least 1 s from the request even if the probe takes a second to start.
        fs.plan("/d.bin", ["503:retry_after=" + http_date(time.time() + 3)])
        items = [item(fs.url(n), out(h, n)) for n in names]
        res, err = run_probe(h, items, {"concurrency": 4, "per_host": 4})
        ra, rb, rc, rd = (fs.wait_requests("/" + n, k) for n, k in
                          (("a.bin", 2), ("b.bin", 2), ("c.bin", 3), ("d.bin", 2)))
    for r, rs, code in ((res[0], ra, 503), (res[1], rb, 429), (res[3], rd, 503)):
        check_downloaded(r, data, items[r["i"]]["path"], attempts=2)
        eq([code, 200], [x["status"] for x in rs], "statuses of item %d" % r["i"])
        gap = rs[1]["t"] - rs[0]["t"]
        check(0.95 <= gap < 5, "item %d: Retry-After honoured: retried after %.3f s"
              % (r["i"], gap))
    r = res[2]
    eq(("FAILED", False, 3, 503, 0, ""),
       (r["outcome"], r["permanent"], r["attempts"], r["http_code"], r["bytes"], r["sha256"]),
       "503 three times, retries 2")
    eq("%s: HTTP 503 Service Unavailable after 3 attempts" % items[2]["url"], r["error"], "error")
    eq([503, 503, 503], [x["status"] for x in rc], "c's statuses")
    # backoff_ms 50 doubling, +-10 %
    gaps = [rc[1]["t"] - rc[0]["t"], rc[2]["t"] - rc[1]["t"]]
    check(gaps[0] >= 0.045 and gaps[1] >= 0.09 and gaps[1] < 2, "backoff gaps %r" % gaps)
    check(not os.path.exists(items[2]["path"]) and gone(items[2]["path"]),
          "an error page never reaches the .part")
    eq(2, len(re.findall(r"retrying: url=%s attempt=\d of 3 wait_ms=\d+ cause=HTTP 503 Service "
                         r"Unavailable" % re.escape(items[2]["url"]), err)),
       "two retries of c logged")


def test_stall_is_a_timeout(h):
    data = blob(100000, 9)
    put(h.path("www/f.bin"), data, T0)
    with FaultServer(h.path("www")) as fs:
        fs.plan("/f.bin", ["stall:20:after=1000"])
        dst = out(h, "f.bin")
        url = fs.url("f.bin")
        # user:password is sent, and kept out of the message and the .part.meta
        secret = url.replace("http://", "http://user:s3cret@")
        opts = {"retries": 0, "stall_ms": 1000, "stall_bytes_per_s": 1000}
        res, _ = run_probe(h, [item(secret, dst)], opts)
        eq("Basic dXNlcjpzM2NyZXQ=", fs.requests("/f.bin")[0]["headers"].get("authorization"),
           "the credentials were sent")
        r = res[0]
        eq(("FAILED", False, 1, 200, 0, 1000, ""),
           (r["outcome"], r["permanent"], r["attempts"], r["http_code"], r["bytes"],
            r["bytes_received"], r["sha256"]), "a stall with retries 0")
        eq("%s: timed out: less than 1000 B/s for 1 s" % url, r["error"], "error")
        check(0.9 < r["seconds"] < 10, "timed out after %.2f s" % r["seconds"])
        # What came before the stall is kept for the next run, which resumes it.
        eq(data[:1000], read(dst + ".part"), ".part after the stall")
        eq("meshd-fetch-part 1\nurl %s\netag %s\n" % (url, fs.etag("/f.bin")),
           read(dst + ".part.meta").decode(), ".part.meta")
        res, _ = run_probe(h, [item(secret, dst)], opts)
        check_downloaded(res[0], data, dst, resumed=True, received=99000, code=206)
        eq("bytes=1000-", fs.last("/f.bin")["range"], "the next run's Range")


def test_stop_after_ms_keeps_part_and_next_run_resumes(h):
    data, other = blob(300000, 10), blob(1000, 11)
    put(h.path("www/f.bin"), data, T0)
    put(h.path("www/g.bin"), other, T0)
    with FaultServer(h.path("www")) as fs:
        fs.plan("/f.bin", ["slow:50000"])  # 6 s for the whole file
        dst, dst2 = out(h, "f.bin"), out(h, "g.bin")
        url, url2 = fs.url("f.bin"), fs.url("g.bin")
        items = [item(url, dst), item(url2, dst2)]
        t0 = time.monotonic()
        res, _ = run_probe(h, items, {"concurrency": 1}, stop_after_ms=700)
        dt = time.monotonic() - t0
        check(dt < 4, "the probe stopped %.2f s after its start (stop at 0.7 s)" % dt)
        r = res[0]
        eq(("STOPPED", 1, 0, "", False, "%s: stopped" % url),
           (r["outcome"], r["attempts"], r["bytes"], r["sha256"], r["permanent"], r["error"]),
           "the running item")
        got = r["bytes_received"]
        check(0 < got < len(data), "part of the file received: %d" % got)
        eq(data[:got], read(dst + ".part"), ".part holds what was received")
        eq("meshd-fetch-part 1\nurl %s\netag %s\n" % (url, fs.etag("/f.bin")),
           read(dst + ".part.meta").decode(), ".part.meta")
        check(not os.path.exists(dst), "no file under the final name")
        r = res[1]
        eq(("STOPPED", 0, 0, "%s: stopped" % url2),
           (r["outcome"], r["attempts"], r["bytes_received"], r["error"]),
           "the item never started")
        check(not os.path.exists(dst2) and gone(dst2), "nothing for the item never started")
        eq(0, len(fs.requests("/g.bin")), "no request for the item never started")

        res, _ = run_probe(h, items, {"concurrency": 1})
        check_downloaded(res[0], data, dst, resumed=True, received=len(data) - got, code=206)
        check_downloaded(res[1], other, dst2)
        last = fs.last("/f.bin")
        eq(("bytes=%d-" % got, fs.etag("/f.bin"), 206),
           (last["range"], last["if_range"], last["status"]), "the resuming request")


def test_stop_while_waiting_for_a_retry(h):
    put(h.path("www/f.bin"), blob(1000, 15), T0)
    with FaultServer(h.path("www")) as fs:
        fs.plan("/f.bin", ["503:retry_after=20"])
        dst = out(h, "f.bin")
        t0 = time.monotonic()
        res, err = run_probe(h, [item(fs.url("f.bin"), dst)], {"max_backoff_ms": 60000},
                             stop_after_ms=300)
        dt = time.monotonic() - t0
        eq(1, len(fs.requests("/f.bin")), "no second request")
    check(dt < 5, "stopped %.2f s after the start, not after Retry-After: 20" % dt)
    r = res[0]
    eq(("STOPPED", 1, 503, "%s: stopped" % fs.url("f.bin")),
       (r["outcome"], r["attempts"], r["http_code"], r["error"]), "stopped while waiting")
    check(re.search(r"retrying: url=\S+ attempt=1 of 3 wait_ms=20000 cause=HTTP 503", err),
          "Retry-After: 20 made the wait 20000 ms: %s" % err)
    check(not os.path.exists(dst) and gone(dst), "nothing written")


def test_sigterm_stops_and_keeps_part(h):
    data = blob(300000, 12)
    put(h.path("www/f.bin"), data, T0)
    with FaultServer(h.path("www")) as fs:
        fs.plan("/f.bin", ["slow:50000"])  # 6 s for the whole file
        dst = out(h, "f.bin")
        p, text = start_probe(h, [item(fs.url("f.bin"), dst)])
        try:
            # Mid-body: the server has sent some of it (the .part itself may still be empty:
            # fetch.c buffers 128 KiB before writing, and a stop flushes the buffer).
            deadline = time.monotonic() + 15
            while not any(r["sent"] >= 25000 for r in fs.requests("/f.bin")):
                check(time.monotonic() < deadline and p.poll() is None,
                      "the body never started (probe exit %r)" % p.poll())
                time.sleep(0.02)
            os.kill(p.pid, signal.SIGTERM)
            t0 = time.monotonic()
            p.wait(10)
            dt = time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        res, _ = finish_probe(h, p, text, 1)
    check(dt < 3, "exited %.2f s after SIGTERM" % dt)
    r = res[0]
    eq(("STOPPED", 1, "%s: stopped" % fs.url("f.bin")), (r["outcome"], r["attempts"], r["error"]),
       "stopped by SIGTERM")
    got = r["bytes_received"]
    check(0 < got < len(data), "part of the file received: %d" % got)
    eq(data[:got], read(dst + ".part"), ".part")
    check(os.path.exists(dst + ".part.meta"), ".part.meta kept")


def test_per_host_limit(h):
    """4 slow files from one host with per_host 2 (concurrency 4): never more than 2 at once
    at the server, and the third starts only when one of the first two ended."""
    data = blob(200000, 13)
    names = ["f%d.bin" % i for i in range(4)]
    for n in names:
        put(h.path("www/" + n), data, T0)
    with FaultServer(h.path("www")) as fs:
        for n in names:
            fs.plan("/" + n, ["slow:400000"])  # ~0.5 s each
        seen = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                seen.append(sum(1 for r in fs.requests() if not r["done"]))
                time.sleep(0.005)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            items = [item(fs.url(n), out(h, n)) for n in names]
            res, _ = run_probe(h, items, {"concurrency": 4, "per_host": 2})
        finally:
            stop.set()
            t.join(5)
        rs = fs.settle()
    for r in res:
        check_downloaded(r, data, items[r["i"]]["path"])
    eq(4, len(rs), "one request per file")
    eq(2, max(seen), "most requests in flight at once (of %d samples)" % len(seen))
    starts = sorted(r["t"] for r in rs)
    check(starts[2] - starts[0] >= 0.3, "the third request waited for a free slot: starts %r"
          % [round(s - starts[0], 3) for s in starts])


# ---- file:// ---------------------------------------------------------------------------------


def test_file_urls(h):
    data = blob(150000, 14)
    src = h.path("src/f.bin")
    put(src, data, T0)
    url = "file://" + src
    dst = out(h, "f.bin")
    missing = "file://" + h.path("src/missing.bin")
    dst_missing = out(h, "missing.bin")

    res, _ = run_probe(h, [item(url, dst), item(missing, dst_missing)])
    check_downloaded(res[0], data, dst, code=0)
    eq(("", T0), (res[0]["etag_new"], res[0]["last_modified_new"]), "file:// validators")
    r = res[1]
    eq(("FAILED", True, 1, 0), (r["outcome"], r["permanent"], r["attempts"], r["http_code"]),
       "a missing file:// file")
    check(r["error"].startswith(missing + ": "), "error names the URL: %r" % r["error"])
    check(not os.path.exists(dst_missing) and gone(dst_missing), "nothing for a missing file")

    # Not newer than last_modified: NOT_MODIFIED by mtime, nothing read.
    before = os.stat(dst)
    res, _ = run_probe(h, [item(url, dst, last_modified=T0)])
    r = res[0]
    eq(("NOT_MODIFIED", 0, 0, 0, "", T0),
       (r["outcome"], r["http_code"], r["bytes"], r["bytes_received"], r["sha256"],
        r["last_modified_new"]), "file:// not modified")
    after = os.stat(dst)
    eq((before.st_ino, before.st_mtime_ns), (after.st_ino, after.st_mtime_ns), "dst untouched")

    # Newer: downloaded again.
    os.utime(src, (T0 + 10, T0 + 10))
    res, _ = run_probe(h, [item(url, dst, last_modified=T0)])
    check_downloaded(res[0], data, dst, code=0)
    eq(T0 + 10, res[0]["last_modified_new"], "the new mtime")

    # A .part whose validator is the file's mtime is continued.
    os.unlink(dst)
    put(dst + ".part", data[:1000], T0)
    with open(dst + ".part.meta", "w") as f:
        f.write("meshd-fetch-part 1\nurl %s\nlast-modified %d\n" % (url, T0 + 10))
    res, _ = run_probe(h, [item(url, dst)])
    check_downloaded(res[0], data, dst, resumed=True, received=len(data) - 1000, code=0)

    def part(content, lm):
        os.unlink(dst)
        put(dst + ".part", content, T0)
        with open(dst + ".part.meta", "w") as f:
            f.write("meshd-fetch-part 1\nurl %s\nlast-modified %d\n" % (url, lm))

    # A .part that is already the whole file: completed with nothing more read.
    part(data, T0 + 10)
    res, _ = run_probe(h, [item(url, dst)])
    check_downloaded(res[0], data, dst, resumed=True, received=0, code=0)
    # The file changed since the .part was started (another mtime): from 0, at once.
    part(data[:1000], T0)
    res, err = run_probe(h, [item(url, dst)])
    check_downloaded(res[0], data, dst, attempts=2, resumed=False, received=len(data), code=0)
    check("restarting: url=%s" % url in err, "the restart is logged: %s" % err)
    # A .part longer than the file: from 0.
    part(data + b"more", T0 + 10)
    res, err = run_probe(h, [item(url, dst)])
    check_downloaded(res[0], data, dst, attempts=2, resumed=False, received=len(data), code=0)


if __name__ == "__main__":
    harness.main(globals())
