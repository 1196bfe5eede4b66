#!/usr/bin/env python3
"""The HTTP API on the real meshd (docs/api.md): /health, /status, /metrics, control, the local
socket, authentication, persistence of pause, and hostile input that must be bounded."""

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, node_yaml, pid_alive  # noqa: E402

TOKEN = "test-token-0123456789"


def conf(h, jobs, http="{listen: \"127.0.0.1:0\", token: %s}" % json.dumps(TOKEN)):
    h.config(node_yaml(h) + "http: %s\njobs:\n%s" % (http, jobs))


JOBS = """
  once:
    command: ["sh", "-c", "echo line-one; echo line-two >&2"]
    schedule: "0 0 1 1 *"
  svc:
    command: %s
    schedule: always
    start_secs: 100ms
""" % fw("loop")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def job_of(h, name, sock=False):
    status, body = h.api_json("GET", "/api/jobs/" + name, sock=sock)
    eq(200, status, "GET /api/jobs/%s" % name)
    return body


def test_read_endpoints(h):
    conf(h, JOBS)
    h.start()
    h.wait_log(r"spawned: job=svc")
    status, hdrs, body = h.api("GET", "/health")
    eq(200, status, "/health")
    check(hdrs["content-type"].startswith("application/json"), "health is JSON")
    doc = json.loads(body)
    eq("ok", doc["status"])
    eq("itest", doc["node"])
    status, hdrs, body = h.api("HEAD", "/health")
    eq(200, status, "HEAD /health")
    eq(b"", body, "HEAD has no body")

    status, st = h.api_json("GET", "/status")
    eq(200, status, "/status")
    eq(["once", "svc"], [j["name"] for j in st["jobs"]], "jobs in file order")
    check(st["node"]["healthy"] and st["node"]["reasons"] == [], "healthy node")
    eq(os.getpid() != st["node"]["pid"], True)
    once, svc = st["jobs"]
    eq("cron", once["kind"])
    eq("0 0 1 1 *", once["schedule"])
    check(once["next_run"].endswith("-01-01T00:00:00.000Z"), "next run on New Year: %s"
          % once["next_run"])
    eq(None, once["last_run"])
    eq("service", svc["kind"])
    h.wait_for(lambda: job_of(h, "svc")["state"] == "running", what="svc running")
    svc = job_of(h, "svc")
    check(pid_alive(svc["pid"]), "svc pid %r alive" % svc["pid"])
    eq(svc["pid"], svc["current_run"]["pid"])
    eq(None, svc["next_run"])

    status, body = h.api_json("GET", "/api/jobs/nope")
    eq(404, status)
    check("nope" in body["error"], "error names the job: %r" % body)

    status, hdrs, body = h.api("GET", "/metrics")
    eq(200, status, "/metrics")
    check(hdrs["content-type"].startswith("text/plain; version=0.0.4"), hdrs["content-type"])
    text = body.decode()
    check('meshd_job_state{job="svc",state="running"} 1' in text, "svc running in metrics")
    check("meshd_up 1" in text, "meshd_up")
    promtool = shutil.which("promtool")
    check(promtool is not None, "promtool missing: run `make deps` (Debian package prometheus)")
    p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                       timeout=30)
    eq(0, p.returncode, "promtool check metrics: %s %s" % (p.stdout, p.stderr))

    status, hdrs, body = h.api("GET", "/")
    eq(200, status, "GET /")
    check(hdrs["content-type"].startswith("text/html"), "page is HTML")
    check(b"<html" in body.lower(), "an HTML page")
    h.stop()


def test_run_now_logs_and_metrics(h):
    conf(h, JOBS)
    h.start()
    status, body = h.api_json("POST", "/api/jobs/once/run", token=TOKEN)
    eq(202, status, "run: %r" % body)
    check(body["run_id"].startswith("once@"), "run id %r" % body["run_id"])
    h.wait_for(lambda: (job_of(h, "once")["last_run"] or {}).get("status") == "succeeded",
               what="the run succeeded")
    last = job_of(h, "once")["last_run"]
    eq(body["run_id"], last["run_id"])
    eq(0, last["exit_code"])
    eq(None, last["scheduled_for"], "an unscheduled run")
    status, logs = h.api_json("GET", "/api/jobs/once/logs")
    eq(200, status)
    eq(["line-one", "line-two"], logs["runs"][-1]["lines"])
    _, _, m = h.api("GET", "/metrics")
    check('meshd_runs_total{job="once",result="succeeded"} 1' in m.decode(), "counted")
    check('meshd_run_duration_seconds_count{job="once"} 1' in m.decode(), "duration observed")
    h.stop()


def test_auth_rules(h):
    conf(h, JOBS, http="{listen: \"127.0.0.1:0\", token: %s, anonymous_read: false}"
         % json.dumps(TOKEN))
    h.start()
    eq(200, h.api("GET", "/health")[0], "/health is always open")
    status, hdrs, _ = h.api("GET", "/status")
    eq(401, status, "/status needs the token when anonymous_read is false")
    check(hdrs.get("www-authenticate", "").startswith("Bearer"), "a Bearer challenge")
    eq(401, h.api("GET", "/metrics")[0])
    eq(401, h.api("GET", "/status", token="wrong")[0])
    eq(401, h.api("GET", "/status", token=TOKEN + "x")[0], "a longer token")
    eq(401, h.api("GET", "/status", token=TOKEN[:-1])[0], "a prefix of the token")
    eq(200, h.api("GET", "/status", token=TOKEN)[0])
    eq(401, h.api("POST", "/api/jobs/once/run")[0], "POST without a token")
    eq(401, h.api("POST", "/api/jobs/once/run", token="nope")[0])
    eq(202, h.api("POST", "/api/jobs/once/run", token=TOKEN)[0])
    # The local socket needs no token, and is the owner's only.
    sock = os.path.join(h.state_dir, "meshd.sock")
    mode = stat.S_IMODE(os.stat(sock).st_mode)
    eq(0o600, mode, "socket mode %o" % mode)
    eq(200, h.api("GET", "/status", sock=True)[0])
    h.wait_for(lambda: job_of(h, "once", sock=True)["state"] in ("exited", "stopped"),
               what="the first run ended")
    eq(202, h.api("POST", "/api/jobs/once/run", sock=True)[0])
    h.stop()
    check(not os.path.exists(sock), "the socket is removed at exit")


def test_no_token_means_no_remote_control(h):
    conf(h, JOBS, http="{listen: \"127.0.0.1:0\"}")
    h.start()
    status, body = h.api_json("POST", "/api/jobs/once/run", token="anything")
    eq(401, status)
    check("local socket" in body["error"], "says how to control it: %r" % body)
    eq(200, h.api("GET", "/status")[0], "reads stay open by default")
    h.stop()


def test_token_from_environment(h):
    conf(h, JOBS, http="{listen: \"127.0.0.1:0\"}")
    h.start(env={"MESHD_API_TOKEN": TOKEN})
    eq(401, h.api("POST", "/api/jobs/once/run", token="other")[0])
    eq(202, h.api("POST", "/api/jobs/once/run", token=TOKEN)[0])
    check(TOKEN not in h.log(), "the token is never logged")
    h.stop()


def test_pause_resume_persisted(h):
    conf(h, """
  tick:
    command: %s
    schedule: "* * * * * *"
  svc:
    command: %s
    schedule: always
    start_secs: 100ms
""" % (fw("stamp", h.path("ticks")), fw("write-pid", h.path("svc.pids"), "loop")))
    h.start()
    h.wait_file_lines("ticks", 2)
    h.wait_file_lines("svc.pids", 1)
    svc_pid = h.pids("svc.pids")[0]
    eq((200, {"ok": True, "job": "tick", "paused": True}),
       h.api_json("POST", "/api/jobs/tick/pause", token=TOKEN))
    eq(200, h.api("POST", "/api/jobs/svc/pause", token=TOKEN)[0])
    h.wait_dead([svc_pid], what="the paused service stopped")
    time.sleep(1.2)  # a run that had just started may still write its stamp
    n = len(h.lines("ticks"))
    time.sleep(2.5)
    eq(n, len(h.lines("ticks")), "no runs while paused")
    tick = job_of(h, "tick")
    check(tick["paused"] and tick["next_run"] is None, "paused, no next run: %r" % tick)
    eq("stopped", job_of(h, "svc")["state"])
    h.stop()

    # Across a restart: still paused, the service is not started.
    h.proc = None
    h.start()
    h.wait_log(r"paused: job=tick", count=1)
    time.sleep(2.5)
    eq(n, len(h.lines("ticks")), "still no runs after the restart")
    eq(1, len(h.pids("svc.pids")), "the paused service was not started")
    check(job_of(h, "tick")["paused"], "still paused after the restart")
    # Run-now works on a paused job; resume brings the schedule back.
    eq(202, h.api("POST", "/api/jobs/tick/run", token=TOKEN)[0])
    h.wait_file_lines("ticks", n + 1)
    eq(200, h.api("POST", "/api/jobs/tick/resume", token=TOKEN)[0])
    eq(200, h.api("POST", "/api/jobs/svc/resume", token=TOKEN)[0])
    h.wait_file_lines("ticks", n + 3)
    h.wait_file_lines("svc.pids", 2)
    check(not job_of(h, "tick")["paused"], "resumed")
    h.stop()


def test_stop_and_restart_service(h):
    conf(h, JOBS)
    h.start()
    h.wait_for(lambda: job_of(h, "svc")["state"] == "running", what="svc running")
    pid1 = job_of(h, "svc")["pid"]
    status, body = h.api_json("POST", "/api/jobs/svc/run", token=TOKEN)
    eq(409, status, "a running service cannot be run again: %r" % body)
    eq(202, h.api("POST", "/api/jobs/svc/stop", token=TOKEN)[0])
    h.wait_dead([pid1])
    h.wait_for(lambda: job_of(h, "svc")["state"] == "stopped", what="svc stopped")
    time.sleep(0.5)
    eq("stopped", job_of(h, "svc")["state"], "a stopped service stays stopped")
    eq(409, h.api("POST", "/api/jobs/svc/stop", token=TOKEN)[0], "stop when stopped")
    eq(202, h.api("POST", "/api/jobs/svc/restart", token=TOKEN)[0])
    h.wait_for(lambda: job_of(h, "svc")["state"] == "running", what="svc running again")
    pid2 = job_of(h, "svc")["pid"]
    check(pid2 != pid1 and pid_alive(pid2), "a new pid")
    eq(202, h.api("POST", "/api/jobs/svc/restart", token=TOKEN)[0], "restart while running")
    h.wait_dead([pid2])
    h.wait_for(lambda: job_of(h, "svc")["state"] == "running" and
               job_of(h, "svc")["pid"] not in (pid1, pid2), what="svc restarted")
    h.stop()


def test_fatal_job_and_dead_mans_switch_make_health_503(h):
    conf(h, """
  crash:
    command: %s
    schedule: always
    max_retries: 1
    start_secs: 1s
    backoff: {initial: 50ms, max: 50ms}
  nightly:
    command: ["true"]
    schedule: "0 0 1 1 *"
    expect: {succeed_within: 2s}
""" % fw("exit", "3"))
    h.start()
    h.wait_log(r"gave up: job=crash")
    status, body = h.api_json("GET", "/health")
    eq(503, status, "a fatal job is unhealthy: %r" % body)
    check(any("crash" in r and "fatal" in r for r in body["reasons"]), repr(body))
    eq("fatal", job_of(h, "crash")["state"])
    check("gave up" in job_of(h, "crash")["last_error"], "last_error says why")
    h.wait_for(lambda: any("nightly" in r for r in h.api_json("GET", "/health")[1]["reasons"]),
               timeout=10, what="the dead man's switch fired")
    # A successful run silences the switch; the fatal job still keeps /health red.
    eq(202, h.api("POST", "/api/jobs/nightly/run", token=TOKEN)[0])
    h.wait_for(lambda: not any("nightly" in r for r in
                               h.api_json("GET", "/health")[1]["reasons"]), what="switch reset")
    eq(503, h.api("GET", "/health")[0])
    _, _, m = h.api("GET", "/metrics")
    check("meshd_healthy 0" in m.decode(), "meshd_healthy 0")
    h.stop()


def test_reload_over_the_api(h):
    conf(h, JOBS)
    h.start()
    h.http_port()  # meshd has read its file
    with open(h.cfg_path) as f:
        good = f.read()
    with open(h.cfg_path, "w") as f:
        f.write(good.replace('"0 0 1 1 *"', '"61 0 1 1 *"'))
    status, body = h.api_json("POST", "/api/reload", token=TOKEN)
    eq(400, status, "a bad file: %r" % body)
    check(any("meshd.yaml:" in d and "minute" in d for d in body["diagnostics"]),
          "diagnostics with file:line:col: %r" % body)
    eq("0 0 1 1 *", job_of(h, "once")["schedule"], "old config kept")
    with open(h.cfg_path, "w") as f:
        f.write(good.replace('"0 0 1 1 *"', '"0 0 2 1 *"'))
    eq(200, h.api("POST", "/api/reload", token=TOKEN)[0])
    eq("0 0 2 1 *", job_of(h, "once")["schedule"], "new config in effect")
    h.stop()


def test_port_from_environment(h):
    conf(h, JOBS, http="{listen: \"127.0.0.1:1\"}")
    port = free_port()
    h.start(env={"PORT": str(port)})
    eq(port, h.http_port(), "PORT replaces the configured port")
    eq(200, h.api("GET", "/health")[0])
    h.stop()


def test_health_is_fast_while_the_database_is_away(h):
    conf(h, JOBS)
    h.start(env={"DATABASE_URL": "postgresql://meshd@127.0.0.1:1/meshd?connect_timeout=1"})
    h.http_port()
    times = []
    for _ in range(50):
        t0 = time.monotonic()
        status, _, _ = h.api("GET", "/health")
        times.append(time.monotonic() - t0)
        eq(200, status)
    times.sort()
    check(times[len(times) // 2] < 0.05, "median /health %.1f ms" % (times[25] * 1e3))
    st = h.api_json("GET", "/status")[1]["node"]["registry"]
    check(st["on"] and not st["connected"], "registry on but not connected: %r" % st)
    h.stop()


# ---- hostile input ------------------------------------------------------------------------


def raw(port, data, timeout=5.0):
    """Sends bytes, returns what the server answered until it closed (or the timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and b"Connection: close" not in out and len(out) > 12:
                # keep-alive answer complete enough for a status line check
                break
        return out
    finally:
        s.close()


def status_of(resp):
    check(resp.startswith(b"HTTP/1."), "an HTTP answer: %r" % resp[:80])
    return int(resp.split(b" ", 2)[1])


def test_hostile_requests_are_bounded(h):
    conf(h, JOBS + """
  tick:
    command: %s
    schedule: "* * * * * *"
""" % fw("stamp", h.path("ticks")), http="{listen: \"127.0.0.1:0\", token: %s, "
         "max_connections: 40}" % json.dumps(TOKEN))
    h.start()
    port = h.http_port()
    big = b"a" * 40000
    eq(431, status_of(raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + big +
                          b"\r\n\r\n")), "oversized header")
    eq(414, status_of(raw(port, b"GET /" + big + b" HTTP/1.1\r\nHost: x\r\n\r\n")), "long URL")
    eq(413, status_of(raw(port, b"POST /api/reload HTTP/1.1\r\nHost: x\r\nAuthorization: "
                          b"Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100000\r\n\r\n"
                          + b"x" * 5000)), "declared big body")
    eq(411, status_of(raw(port, b"POST /api/reload HTTP/1.1\r\nHost: x\r\nAuthorization: "
                          b"Bearer " + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                          + b"1400\r\n" + b"x" * 5120 + b"\r\n0\r\n\r\n")), "chunked body")
    eq(405, status_of(raw(port, b"DELETE /status HTTP/1.1\r\nHost: x\r\n\r\n")), "bad method")
    eq(501, status_of(raw(port, b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n")),
       "a method no server knows (RFC 9110 9.1)")
    eq(505, status_of(raw(port, b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n")), "HTTP/2 text")
    eq(404, status_of(raw(port, b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")), "unknown")
    eq(404, status_of(raw(port, b"GET /api/jobs/../../x HTTP/1.1\r\nHost: x\r\n\r\n")))
    eq(200, status_of(raw(port, b"GET http://x/health?a=1 HTTP/1.1\r\nHost: x\r\n\r\n")),
       "absolute-form target")
    resp = raw(port, b"GARBAGE\r\n\r\n")
    check(resp == b"" or status_of(resp) == 400, "not HTTP: closed or 400: %r" % resp[:60])
    eq(400, status_of(raw(port, b"GET /health HTTP/1.1\r\n\r\n")), "HTTP/1.1 without Host")
    eq(200, status_of(raw(port, b"GET /health HTTP/1.0\r\n\r\n")), "HTTP/1.0 needs no Host")
    resp = raw(port, b"\x00\xff\xfe binary junk \r\n\r\n")
    check(resp == b"" or status_of(resp) >= 400, "binary junk: %r" % resp[:60])
    # Upgrade (websocket) and CONNECT are not served: answered like any request, then closed.
    resp = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n")
    eq(200, status_of(resp), "upgrade asked: plain answer")
    eq(1, resp.count(b"HTTP/1.1 "), "and nothing after it: %r" % resp[-80:])
    check(b"Connection: close" in resp, "the connection is closed")
    check(status_of(raw(port, b"CONNECT x:80 HTTP/1.1\r\nHost: x\r\n\r\n")) == 400, "CONNECT")

    # Slow partial requests fill the table (40): a new connection takes the place of the one
    # that has spent longest on its request once that is over a second (it is answered 503);
    # the others are answered 408 and closed when their request's 10 s are up.
    idle = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /hea")  # never finished
        idle.append(s)
        time.sleep(0.01)
    time.sleep(0.2)
    status, dt = probe_health(port)
    eq(200, status, "a new connection on a table full of slow requests")
    check(dt < PROBE_BOUND_S, "answered in %.2f s" % dt)
    # Meshd keeps supervising and the local socket keeps answering meanwhile.
    n0 = len(h.lines("ticks"))
    h.wait_file_lines("ticks", n0 + 2)
    eq(200, h.api("GET", "/health", sock=True)[0], "the local socket is not starved")
    import select
    t0 = time.monotonic()
    pending = list(idle)
    answers = []
    while pending and time.monotonic() - t0 < 30:
        ready, _, _ = select.select(pending, [], [], 1.0)
        for s in ready:
            try:
                data = s.recv(100)
            except OSError:
                data = b""
            answers.append(data[:12])
            check(data == b"" or data.startswith(b"HTTP/1.1 408 ") or
                  data.startswith(b"HTTP/1.1 503 "),
                  "slow request closed, answered 408 (or 503 when displaced): %r" % data[:40])
            pending.remove(s)
            s.close()
    for s in pending:
        s.close()
    check(not pending, "%d slow requests still open after %.0f s"
          % (len(pending), time.monotonic() - t0))
    check(answers.count(b"HTTP/1.1 408") >= 30, "408s: %r" % answers)
    h.wait_for(lambda: h.api("GET", "/health")[0] == 200, what="TCP answers again")
    check(h.running(), "meshd survived")
    h.stop()



def read_response(s):
    """One HTTP/1.1 response from socket s (Content-Length framed): (status, headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        check(chunk, "closed before a full response head: %r" % data[:80])
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    hdrs = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


def test_keep_alive_and_pipelining(h):
    conf(h, JOBS)
    h.start()
    port = h.http_port()
    # Four requests in one write: answered one at a time, in order, on the same connection.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
              b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
              b"DELETE /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    got = []
    while data:
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, v in
                (line.split(":", 1) for line in lines[1:])}
        n = int(hdrs["content-length"])
        status = int(lines[0].split(" ", 2)[1])
        body_len = 0 if len(got) == 1 else n  # the answer to HEAD has no body
        got.append((status, hdrs, rest[:body_len]))
        data = rest[body_len:]
    eq([200, 200, 404, 405], [g[0] for g in got], "answers in request order")
    eq(b"ok", json.loads(got[0][2])["status"].encode())
    eq(got[0][1]["content-length"], got[1][1]["content-length"], "HEAD: the GET's length")
    eq("GET, HEAD", got[3][1].get("allow"), "405 says what is allowed")
    eq("close", got[3][1].get("connection", "").lower(), "the last answer closes")
    # A request that comes a byte at a time (each read a piece of a name or value), with
    # empty and blank header values, is one request like any other.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = (b"GET /api/jobs/%6fnce HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Blank:   \r\n"
           b"Accept:  */*  \r\n\r\n")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(req)):
        s.sendall(req[i:i + 1])
        time.sleep(0.003)
    status, hdrs, body = read_response(s)
    while len(body) < int(hdrs["content-length"]):
        body += s.recv(65536)
    eq(200, status, "a request sent a byte at a time")
    eq("once", json.loads(body)["name"])
    s.close()
    # HTTP/1.0 without keep-alive: one answer, then the server closes.
    resp = raw(port, b"GET /health HTTP/1.0\r\n\r\n")
    eq(200, status_of(resp))
    # A keep-alive connection serves request after request.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    for i in range(20):
        s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        status, hdrs, body = read_response(s)
        while len(body) < int(hdrs["content-length"]):
            body += s.recv(65536)
        eq(200, status, "request %d on one connection" % i)
        json.loads(body)
    s.close()
    h.stop()


def test_malformed_framing_and_paths_are_400(h):
    conf(h, JOBS + """
  f01:
    command: ["true"]
    schedule: "0 0 1 1 *"
""")
    h.start()
    port = h.http_port()
    eq(200, status_of(raw(port, b"GET /api/jobs/f01 HTTP/1.1\r\nHost: x\r\n\r\n")))
    eq(200, status_of(raw(port, b"GET /api/jobs/f%30%31 HTTP/1.1\r\nHost: x\r\n\r\n")),
       "percent-escapes are decoded")
    for what, req in [
        ("two conflicting Content-Length", b"POST /api/reload HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nxy"),
        ("two equal Content-Length", b"POST /api/reload HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
        ("a Content-Length list", b"POST /api/reload HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 1, 1\r\n\r\nx"),
        ("Content-Length with Transfer-Encoding", b"POST /api/reload HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("two Host", b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
        ("a NUL in the decoded path", b"GET /api/jobs/f01%00x HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a control byte in the decoded path", b"GET /api/jobs/f01%01 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a DEL in the decoded path", b"GET /api/jobs/f01%7f HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a newline in the decoded path", b"GET /api/jobs/f01%0a HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("an invalid escape", b"GET /api/jobs/f0%zz HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a truncated escape", b"GET /api/jobs/f01%4 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a lone percent", b"GET /api/jobs/f01% HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a raw tab in the URL", b"GET /api/jobs/f01\tx HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a raw non-ASCII byte in the URL", b"GET /api/jobs/f01\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a folded header line", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
        ("a folded empty header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n"),
        ("a space before the colon", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n"),
        ("a NUL in a header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ]:
        resp = raw(port, req)
        check(resp.startswith(b"HTTP/1.1 400 "), "%s: want 400, got %r" % (what, resp[:60]))
    check(h.running(), "meshd survived")
    h.stop()


def probe_health(port, timeout=10.0):
    """GET /health on a new connection: (status or None, seconds taken)."""
    t0 = time.monotonic()
    try:
        resp = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                   timeout=timeout)
        status = int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.") else None
    except OSError:
        status = None
    return status, time.monotonic() - t0


ATTACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http_attack.py")
PROBE_BOUND_S = 5.0  # generous: a loaded 2-core machine, maybe under ASan


def health_under_attack(h, mode, n, secs):
    """Runs http_attack.py MODE against meshd's TCP port for SECS seconds and probes /health
    (TCP and the local socket) all along: every probe must answer 200 within PROBE_BOUND_S."""
    port = h.http_port()
    p = subprocess.Popen([sys.executable, ATTACK, mode, str(port), str(n), str(secs)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tcp, local = [], []
    try:
        time.sleep(2.0)  # the attack has filled the connection table
        end = time.monotonic() + secs - 3.0
        while time.monotonic() < end and p.poll() is None:
            tcp.append(probe_health(port))
            t0 = time.monotonic()
            try:
                local.append((h.api("GET", "/health", sock=True)[0], time.monotonic() - t0))
            except OSError as e:
                local.append((repr(e), time.monotonic() - t0))
            time.sleep(0.2)
        out, err = p.communicate(timeout=secs + 30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    eq(0, p.returncode, "the attack ran: %s" % err[-500:])
    stats = json.loads(out)
    check(stats["max_open"] >= 256, "the attack held the table full: %r" % stats)
    check(len(tcp) >= 5, "probed during the attack: %r" % tcp)
    bad = [(s, round(dt, 2)) for s, dt in tcp if s != 200 or dt > PROBE_BOUND_S]
    check(not bad, "%d of %d TCP /health probes failed or were slow during the %s attack "
          "(%r): %r" % (len(bad), len(tcp), mode, stats, bad[:10]))
    bad = [(s, round(dt, 2)) for s, dt in local if s != 200 or dt > PROBE_BOUND_S]
    check(not bad, "local socket /health probes failed: %r" % bad[:10])
    check(h.running(), "meshd survived")
    return stats


def test_health_answers_while_idle_connections_flood(h):
    conf(h, JOBS)
    h.start()
    stats = health_under_attack(h, "idle", 2000, 8)
    check(stats["closed_by_server"] > 0, "idle connections were closed to make room: %r" % stats)
    eq(200, h.api("GET", "/health")[0])
    h.stop()


def test_health_answers_while_slowloris_holds_connections(h):
    conf(h, JOBS)
    h.start()
    # Longer than the request-head deadline (10 s), so the attack's connections are also
    # closed by it and reopened.
    health_under_attack(h, "slowloris", 300, 13)
    eq(200, h.api("GET", "/health")[0])
    h.stop()


def test_full_table_closes_the_oldest_idle_connection(h):
    conf(h, JOBS, http="{listen: \"127.0.0.1:0\", max_connections: 20}")
    h.start()
    port = h.http_port()
    idle = []
    for _ in range(20):
        idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(0.02)  # accepted in this order
    # A keep-alive connection that has had its answer is idle too.
    ka = idle[5]
    ka.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    eq(200, read_response(ka)[0])
    time.sleep(0.3)
    # Three more keep-alive connections, each answered at once on the full table.
    extra = []
    for i in range(3):
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(200, read_response(s)[0], "new connection %d on a full table" % i)
        dt = time.monotonic() - t0
        check(dt < PROBE_BOUND_S, "answered in %.2f s" % dt)
        extra.append(s)
        time.sleep(0.05)
    # The three oldest idle connections were closed (0, 1, 2); the others are still open.
    import select
    for i, s in enumerate(idle):
        r, _, _ = select.select([s], [], [], 2.0 if i < 3 else 0)
        if i < 3:
            check(r and s.recv(100) == b"", "oldest idle connection %d closed" % i)
        else:
            check(not r, "connection %d left open" % i)
    for s in idle + extra:
        s.close()
    h.stop()


def test_request_head_has_a_deadline(h):
    conf(h, JOBS)
    h.start()
    port = h.http_port()
    # One byte a second never completes the head; the deadline counts from its first byte,
    # not from the last one.
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
    t0 = time.monotonic()
    closed_after = None
    i = 0
    s.setblocking(False)
    import select
    while time.monotonic() - t0 < 25:
        try:
            s.send(head[i:i + 1] if i < len(head) else b"a")
        except OSError:
            closed_after = time.monotonic() - t0
            break
        i += 1
        r, _, _ = select.select([s], [], [], 1.0)
        if r:
            try:
                data = s.recv(1000)
            except OSError:
                data = b""
            check(data == b"" or data.startswith(b"HTTP/1.1 408 "), "408 or a close: %r"
                  % data[:60])
            closed_after = time.monotonic() - t0
            break
    s.close()
    check(closed_after is not None, "a head sent one byte a second was still open after 25 s")
    check(8.0 <= closed_after <= 16.0, "closed after %.1f s (the deadline is 10 s)"
          % closed_after)
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
