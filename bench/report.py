#!/usr/bin/env python3
"""report.py - meshd-report's speed: alert raised -> webhook received, through the real meshd
and a real PostgreSQL 15 (throwaway cluster, tests/pg/pgctl.sh), and notifications per second
through one receiver, against the bare POST rate to the same receiver in the same run.

    bench/report.py [--alerts N] [--sweep N] [--rate N]     (default 200, 6, 2000)

latency, event-driven   meshd runs a service that raises N alerts, one every 0.25 s, each
                        resolved 0.1 s later, through its status fd (the worker protocol), each
                        carrying its raise time (CLOCK_REALTIME) in its message; a report job
                        `on: alert` (group_wait 0s, one group per alert, send_resolved off) sends
                        each to a webhook receiver (a ThreadingHTTPServer in this process) that
                        stamps the arrival.  Latency = arrival - raise: the status line, meshd's
                        registry write, the trigger's `alert` message, the bus wake-up, the
                        report run's start, plan, send.  Twice: linger 0s (a new run per alert)
                        and linger 2m (one run stays, woken by NOTIFY).
latency, cron sweep     no `on:` job: a report job every minute (`* * * * *`), N alerts raised
                        25 s apart and left open (one resolved before the sweep would never be
                        sent); latency is up to the cron period by design.
rate                    N alerts put straight into agent_alerts; one meshd-report run by hand
                        plans and sends N notifications to the receiver: notes/s.  Beside it
                        the bare rate: one curl process POSTing the same N payloads to the same
                        receiver over one keep-alive connection.
Prints fork+exec of /bin/true and psql connect + SELECT 1 beside them.
Needs a build (build/meshd, build/meshctl, build/libexec/meshd/meshd-report)."""
import argparse
import http.server
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from examplepg import cluster, loadavg, machine, psql  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
MESHD = os.path.join(BUILD, "meshd")
MESHCTL = os.path.join(BUILD, "meshctl")
WORKERS = os.path.join(BUILD, "libexec", "meshd")

RAISER = r'''
import json, os, sys, time
fd = int(os.environ["MESHD_STATUS_FD"])
n, gap, prefix, resolve = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
def line(o):
    os.write(fd, (json.dumps(o) + "\n").encode())
time.sleep(2)
for i in range(n):
    key = "%s.%d" % (prefix, i)
    line({"event": "alert", "key": key, "severity": "warning", "message": repr(time.time())})
    if resolve:
        time.sleep(min(0.1, gap / 2))
        line({"event": "resolve", "key": key})
        time.sleep(max(gap - 0.1, 0.01))
    else:
        time.sleep(gap)
time.sleep(3600)
'''


class Receiver:
    """A webhook receiver on 127.0.0.1 stamping each POST's arrival (CLOCK_REALTIME)."""

    def __init__(self):
        self.arrivals = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                t = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.arrivals.append((t, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def take(self):
        with self.lock:
            a, self.arrivals = self.arrivals, []
        return a

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def new_registry(pg, name):
    psql(pg, "CREATE DATABASE %s" % name)
    url = pg.replace("dbname=postgres", "dbname=" + name)
    subprocess.run([MESHCTL, "migrate", "--url", url], check=True, capture_output=True)
    return url


def report_cfg(url, hook, linger, group_wait="0s"):
    return {"database": {"url": url}, "linger": linger,
            "receivers": [{"name": "hook", "type": "webhook", "url": hook}],
            "routes": [{"receivers": ["hook"], "group_by": ["..."], "group_wait": group_wait,
                        "send_resolved": False}]}


def run_meshd(work, url, jobs):
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "meshd.yaml")
    with open(cfg, "w") as f:
        f.write("node:\n  name: bench\n  state_dir: %s\n  worker_dir: %s\n"
                "registry:\n  url: %s\njobs:\n%s" % (json.dumps(os.path.join(work, "state")),
                                                    json.dumps(WORKERS), json.dumps(url), jobs))
    env = dict(os.environ, DATABASE_URL=url)
    log = open(os.path.join(work, "meshd.log"), "w")
    return subprocess.Popen([MESHD, "-c", cfg], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def latencies(arrivals):
    out = []
    for t, body in arrivals:
        note = json.loads(body)
        for a in note["alerts"]:
            out.append(t - float(a["annotations"]["message"]))
    return out


def event_latency(pg, rcv, work, n, linger):
    url = new_registry(pg, "lat_%s" % linger.replace("s", "").replace("m", "m"))
    script = os.path.join(work, "raiser.py")
    with open(script, "w") as f:
        f.write(RAISER)
    jobs = """  raiser:
    command: [python3, %s, "%d", "0.25", "bench", "1"]
    schedule: always
  notify:
    worker: report
    on: alert
    env: {DATABASE_URL: %s}
    config: %s
""" % (json.dumps(script), n, json.dumps(url), json.dumps(report_cfg(url, rcv.url(), linger)))
    rcv.take()
    p = run_meshd(os.path.join(work, "ev-" + linger), url, jobs)
    try:
        deadline = time.time() + 60 + n * 0.5
        got = []
        while time.time() < deadline and len(got) < n:
            time.sleep(0.5)
            got += latencies(rcv.take())
    finally:
        stop(p)
    if not got:
        sys.exit("no notification arrived; meshd's log:\n" +
                 open(os.path.join(work, "ev-" + linger, "meshd.log")).read()[-4000:])
    return got


def sweep_latency(pg, rcv, work, n):
    url = new_registry(pg, "lat_sweep")
    script = os.path.join(work, "raiser.py")
    jobs = """  raiser:
    command: [python3, %s, "%d", "25", "sweep", "0"]
    schedule: always
  notify-sweep:
    worker: report
    schedule: "* * * * *"
    env: {DATABASE_URL: %s}
    config: %s
""" % (json.dumps(script), n, json.dumps(url), json.dumps(report_cfg(url, rcv.url(), "0s")))
    rcv.take()
    p = run_meshd(os.path.join(work, "sweep"), url, jobs)
    got = []
    try:
        deadline = time.time() + 25 * n + 150
        while time.time() < deadline and len(got) < n:
            time.sleep(1)
            got += latencies(rcv.take())
    finally:
        stop(p)
    return got


def rate(pg, rcv, work, n):
    url = new_registry(pg, "rate")
    psql(url, "INSERT INTO agent_alerts (node, job, key, severity, message) "
              "SELECT 'bench', 'rate', 'rate.' || g, 'warning', 'm' FROM generate_series(1, %d) g"
              % n)
    rcv.take()
    cfg = report_cfg(url, rcv.url(), "0s")
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(WORKERS, "meshd-report")], input=json.dumps(cfg),
                       capture_output=True, text=True)
    wall = time.monotonic() - t0
    sent = len(rcv.take())
    if r.returncode != 0 or sent != n:
        sys.exit("meshd-report: exit %d, %d of %d sent: %s" % (r.returncode, sent, n,
                                                              r.stderr[-2000:]))
    body = psql(url, "SELECT payload::text FROM meshd_report.outbox ORDER BY id LIMIT 1")
    payload = os.path.join(work, "payload.json")
    with open(payload, "w") as f:
        f.write(body)
    conf = os.path.join(work, "curl.conf")
    with open(conf, "w") as f:
        for _ in range(n):
            f.write('url = "%s"\nrequest = "POST"\nheader = "Content-Type: application/json"\n'
                    'data-binary = "@%s"\noutput = "/dev/null"\n' % (rcv.url(), payload))
    t0 = time.monotonic()
    subprocess.run(["curl", "-s", "-K", conf], check=True)
    bare = time.monotonic() - t0
    rcv.take()
    return wall, bare


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--sweep", type=int, default=6)
    ap.add_argument("--rate", type=int, default=2000)
    args = ap.parse_args()
    for b in (MESHD, MESHCTL, os.path.join(WORKERS, "meshd-report")):
        if not os.access(b, os.X_OK):
            sys.exit("report.py: no %s (build first)" % b)
    work = tempfile.mkdtemp(prefix="meshd-rptbench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    rcv = Receiver()
    try:
        with cluster(os.path.join(work, "pg")) as pg:
            fork_ms, psql_ms = machine(pg)
            print("machine: fork+exec+wait /bin/true %.2f ms, psql connect+SELECT 1 %.1f ms, "
                  "load %s" % (fork_ms, psql_ms, loadavg()))
            for linger in ("0s", "2m") if args.alerts > 0 else ():
                lat = event_latency(pg, rcv, work, args.alerts, linger)
                print("event-driven (on: alert, linger %s): %d of %d alerts, p50 %.0f ms, "
                      "p90 %.0f ms, p99 %.0f ms, max %.0f ms" % (
                          linger, len(lat), args.alerts, pct(lat, 50) * 1e3, pct(lat, 90) * 1e3,
                          pct(lat, 99) * 1e3, max(lat) * 1e3))
            if args.sweep > 0:
                lat = sweep_latency(pg, rcv, work, args.sweep)
                if not lat:
                    sys.exit("cron sweep: no notification arrived")
                print("cron sweep (* * * * *): %d of %d alerts, p50 %.1f s, max %.1f s" % (
                    len(lat), args.sweep, statistics.median(lat), max(lat)))
            wall, bare = rate(pg, rcv, work, args.rate)
            print("rate: %d notifications planned and sent by one meshd-report run in %.2f s = "
                  "%.0f/s; bare curl POSTs of the same payload (one process, keep-alive) "
                  "%.2f s = %.0f/s" % (args.rate, wall, args.rate / wall, bare,
                                       args.rate / bare))
            print("load after: %s" % loadavg())
    finally:
        rcv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
