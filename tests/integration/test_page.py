#!/usr/bin/env python3
"""The status page (GET /, supervisor/web/index.html) on the real meshd: served verbatim as
self-contained HTML, and driven end to end in Debian's headless chromium by
tests/browser/page_check.mjs (playwright-core): the jobs table, Run now, Pause, Resume.

Needs node (>= 20), /usr/bin/chromium and tests/browser/node_modules: `make deps` installs them.
When they are missing the browser test FAILS (it does not skip): CI installs them."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Failure, check, eq, node_yaml  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = os.path.join(ROOT, "supervisor", "web", "index.html")
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
PAGE_CHECK = os.path.join(BROWSER_DIR, "page_check.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TOKEN = "t0ken-for-tests"
PAGE_CHECK_TIMEOUT = 90


def free_port():
    """A TCP port free on 127.0.0.1 right now (meshd binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5.0, headers=None):
    """(status, headers, body bytes); HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def start_meshd(h):
    """meshd with the HTTP API on a free port and two jobs: `tick`, a cron job that runs only
    when triggered (1 January), and `svc`, an always-on service.  Returns the base URL."""
    port = free_port()
    true, sleep = shutil.which("true"), shutil.which("sleep")
    check(true and sleep, "true and sleep on the PATH")
    h.config(node_yaml(h) + """
http:
  listen: "127.0.0.1:%d"
  token: %s
jobs:
  tick:
    command: %s
    schedule: "0 0 1 1 *"
    timezone: UTC
  svc:
    command: %s
    schedule: always
""" % (port, json.dumps(TOKEN), json.dumps([true]), json.dumps([sleep, "1000"])))
    h.start()
    base = "http://127.0.0.1:%d/" % port

    def up():
        try:
            return http_get(base + "health", timeout=1.0)[0] == 200
        except OSError:
            return False

    h.wait_for(up, what="GET /health answering 200 on " + base)
    return base


def browser_prereqs():
    """A list of what the browser test lacks (empty when all is there)."""
    lacking = []
    node = shutil.which("node")
    if not node:
        lacking.append("node is not on the PATH")
    else:
        try:
            v = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
            major = int(re.match(r"v(\d+)", v.stdout.strip()).group(1))
            if major < 20:
                lacking.append("node %s is too old (playwright-core needs >= 20)" % v.stdout.strip())
        except (OSError, subprocess.SubprocessError, AttributeError, ValueError) as e:
            lacking.append("node --version failed: %s" % e)
    if not os.access(CHROMIUM, os.X_OK):
        lacking.append("%s is missing (Debian package chromium)" % CHROMIUM)
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        lacking.append("%s/node_modules/playwright-core is missing" % BROWSER_DIR)
    return lacking


def test_page_is_served_self_contained(h):
    base = start_meshd(h)
    status, hdrs, body = http_get(base)
    eq(200, status, "GET / status")
    ctype = hdrs.get("Content-Type", "")
    check(ctype.startswith("text/html"), "GET / Content-Type %r, want text/html" % ctype)
    with open(PAGE, "rb") as f:
        want = f.read()
    check(body == want, "GET / is not supervisor/web/index.html verbatim (%d bytes served, "
          "%d in the file): rebuild meshd?" % (len(body), len(want)))
    text = body.decode("utf-8")
    # No external resources of any kind: no absolute URLs at all, no protocol-relative ones
    # in src/href, no CSS imports or url()s but data:.
    check(not re.search(r"https?://", text, re.I),
          "the page names absolute URLs: %r" % re.findall(r"https?://[^\s\"'<>)]*", text, re.I))
    check(not re.search(r"""\b(?:src|href|action)\s*=\s*["']?\s*//""", text, re.I),
          "the page has protocol-relative src/href")
    check(not re.search(r"<script[^>]*\bsrc\s*=", text, re.I), "the page loads a script")
    for m in re.finditer(r"<link[^>]*\bhref\s*=\s*[\"']?([^\"'\s>]*)", text, re.I):
        check(m.group(1).startswith("data:"), "the page links %r" % m.group(1))
    check(not re.search(r"@import", text, re.I), "the page's CSS imports")
    for m in re.finditer(r"url\(\s*[\"']?([^\"')\s]*)", text, re.I):
        check(m.group(1).startswith("data:"), "the page's CSS loads url(%s)" % m.group(1))
    check(len(body) < 32 * 1024, "the page is %d bytes" % len(body))
    # The hooks page_check.mjs relies on.
    for hook in ('id="token"', 'id="banner"', 'type="password"', "data-job", "data-field",
                 "data-action"):
        check(hook in text, "the page lacks %s" % hook)
    h.stop()


def test_status_has_what_the_page_reads(h):
    """The fields of GET /status (docs/api.md) that the page shows."""
    base = start_meshd(h)
    status, hdrs, body = http_get(base + "status")
    eq(200, status, "GET /status status")
    s = json.loads(body)
    for k in ("name", "environment", "uptime_s", "now", "healthy", "reasons", "registry"):
        check(k in s["node"], "node.%s missing from /status" % k)
    names = [j["name"] for j in s["jobs"]]
    eq(["svc", "tick"], sorted(names), "jobs in /status")
    for j in s["jobs"]:
        for k in ("kind", "schedule", "state", "paused", "pid", "restarts", "next_run",
                  "last_run", "current_run", "alerts", "last_error"):
            check(k in j, "jobs[%s].%s missing from /status" % (j["name"], k))
    tick = [j for j in s["jobs"] if j["name"] == "tick"][0]
    eq("cron", tick["kind"], "tick's kind")
    eq("0 0 1 1 *", tick["schedule"], "tick's schedule")
    check(re.match(r"\d{4}-01-01T00:00:00(\.0+)?Z$", tick["next_run"] or ""),
          "tick's next_run %r, want 1 January 00:00:00 UTC" % tick["next_run"])
    h.stop()


def test_page_in_chromium(h):
    lacking = browser_prereqs()
    if lacking:
        raise Failure("the browser test cannot run: %s. Run `make deps` (as root) to install "
                      "node, Debian's chromium and tests/browser's npm packages."
                      % "; ".join(lacking))
    base = start_meshd(h)
    env = dict(os.environ)
    env["TMPDIR"] = h.dir  # a failure's screenshot stays in the kept temp dir
    env["CHROMIUM"] = CHROMIUM
    t0 = time.monotonic()
    # Its own session, so that on a timeout node and the chromium it started go together.
    p = subprocess.Popen(["node", PAGE_CHECK, base, TOKEN, "tick"], cwd=BROWSER_DIR, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=PAGE_CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        raise Failure("page_check.mjs still running after %d s; output:\n%s"
                      % (PAGE_CHECK_TIMEOUT, out))
    out = out.rstrip()
    print("  page_check.mjs (%.1fs):\n    %s" % (time.monotonic() - t0, out.replace("\n", "\n    ")))
    eq(0, p.returncode, "page_check.mjs exit status")
    # meshd saw it too: the triggered run of tick, the pause and the resume.
    h.wait_log(r"spawned: job=tick run=tick@\S+")
    h.stop()


if __name__ == "__main__":
    harness.main(globals())
