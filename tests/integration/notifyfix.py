#!/usr/bin/env python3
"""notifyfix.py - receivers for meshd-report's tests, on 127.0.0.1 only.  Stdlib plus Debian's
python3-aiosmtpd (make deps installs it) and the openssl command.

Each server is an object the test starts and stops itself (its own threads, never anything
found by name); all are context managers, and stop() is safe to call twice.

    WebhookServer()                   an HTTP/1.1 server that records every request and answers
                                      from a script (see its doc)
        .port .url(path) .plan(actions) .requests() .wait_requests(n) .down() .up() .stop()
    SmtpServer(tls=None|"starttls"|"smtps", cert=(certfile, keyfile), user=, password=,
               reply=None)            aiosmtpd on a free port; records each message parsed
                                      with the email package
        .port .url() .messages() .wait_messages(n) .set_reply(r) .stop()
    FakeGitHub(token)                 the GitHub REST endpoints meshd-report uses, in memory
        .port .url() .issues(repo) .issue(repo, n) .comments(repo, n) .requests()
        .rate_limit(n, ...) .set_closed_at(repo, n, ts) .delete_issue(repo, n) .stop()
    self_signed(dir)                  (certfile, keyfile) for CN/SAN 127.0.0.1, made with the
                                      openssl command

aiosmtpd: Debian installs it for Debian's /usr/bin/python3.  When the tests run under another
python3 of the same minor version (a pyenv shim first on the PATH), its dist-packages directory
is added to sys.path as a last resort, which suits a pure-Python package.

Self-test (each fixture through urllib / smtplib):
    python3 notifyfix.py selftest
"""

import datetime
import email
import email.policy
import http.server
import json
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import logging

LOCALHOST = "127.0.0.1"

try:
    import aiosmtpd  # noqa: F401
except ImportError:
    _DEB = "/usr/lib/python3/dist-packages"
    if sys.version_info[:2] == (3, 11) and os.path.isdir(os.path.join(_DEB, "aiosmtpd")):
        sys.path.append(_DEB)
# aiosmtpd 1.4 logs a warning about its own legacy attribute whenever a client authenticates.
logging.getLogger("mail.log").setLevel(logging.ERROR)
try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
except ImportError:  # the SMTP tests say so when they start one
    Controller = None
    AuthResult = None


def free_port():
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def self_signed(directory, name="localhost"):
    """A self-signed certificate for 127.0.0.1 and localhost (1 day), made with the openssl
    command; returns (certfile, keyfile).  The certificate is its own CA: a client trusts it
    with ca_file=certfile."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class _Httpd(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


# ---- webhook ---------------------------------------------------------------------------------


class WebhookServer:
    """Records every request (method, path, headers {lower-case name: value}, body bytes, json
    (the body parsed, or None), t (monotonic)) and answers from a script.

    plan(actions): each request takes the next action; once they are used up it answers 200
    with the body "ok".  An action is a dict (or an int, the status):
        {"status": 500}                       that status with a short text body
        {"status": 429, "retry_after": "7"}   and a Retry-After header (seconds or a date)
        {"delay": 5.0, "status": 200}         sleeps first (stop() cuts the sleep short)
        {"body": "...", "content_type": ...}  that body
    down(): closes the listening socket, so connections are refused; up(): listens again on
    the same port."""

    def __init__(self, port=0):
        self._lock = threading.Lock()
        self._plan = []
        self._log = []
        self._stopping = threading.Event()
        self.httpd = None
        self._thread = None
        self.port = port
        self.up()

    # -- test-facing
    def url(self, path="/hook"):
        return "http://%s:%d%s" % (LOCALHOST, self.port, path)

    def plan(self, actions):
        with self._lock:
            self._plan = [a if isinstance(a, dict) else {"status": int(a)} for a in actions]

    def requests(self):
        with self._lock:
            return list(self._log)

    def wait_requests(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.requests()) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("%d of %d requests after %.0f s" % (len(self.requests()), n,
                                                                      timeout))
            time.sleep(0.02)
        return self.requests()

    def clear(self):
        with self._lock:
            self._log = []

    def down(self):
        """Stops listening: a connection to the port is refused until up()."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self._thread.join(10)
            self.httpd = None

    def up(self):
        """Listens (again) on self.port (a free one the first time)."""
        if self.httpd is not None:
            return
        self.httpd = _Httpd((LOCALHOST, self.port), self._handler_class())
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="WebhookServer:%d" % self.port, daemon=True)
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self.down()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- internals
    def _next(self):
        with self._lock:
            return self._plan.pop(0) if self._plan else {}

    def _handler_class(self):
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, *args):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                rec = {"method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body, "json": parsed, "t": time.monotonic()}
                with srv._lock:
                    srv._log.append(rec)
                act = srv._next()
                if act.get("delay"):
                    srv._stopping.wait(float(act["delay"]))
                status = int(act.get("status", 200))
                out = act.get("body", "ok" if status < 300 else "fault %d from notifyfix" % status)
                out = out.encode() if isinstance(out, str) else out
                try:
                    self.send_response(status)
                    if act.get("retry_after") is not None:
                        self.send_header("Retry-After", str(act["retry_after"]))
                    self.send_header("Content-Type", act.get("content_type", "text/plain"))
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the client gave up (a timeout, a stop)

            do_POST = do_GET = do_PUT = do_PATCH = _any

        return Handler


# ---- SMTP ------------------------------------------------------------------------------------


class _SmtpHandler:
    def __init__(self, owner):
        self.owner = owner

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        r = self.owner._reply
        if r is not None and r.get("at") == "rcpt":
            return r["reply"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        r = self.owner._reply
        if r is not None and r.get("at", "data") == "data":
            return r["reply"]
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        rec = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
               "raw": raw, "msg": msg,
               # after STARTTLS, or TLS from the first byte (smtps: session.ssl stays None)
               "tls": session.ssl is not None or
                      server.transport.get_extra_info("ssl_object") is not None,
               "auth": bool(session.authenticated)}
        with self.owner._lock:
            self.owner._log.append(rec)
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1:<free port>.

    tls None: plain SMTP, no STARTTLS offered; "starttls": STARTTLS offered and required
    before MAIL; "smtps": TLS from the first byte.  cert: (certfile, keyfile), needed for both
    TLS modes (self_signed()).  user/password: AUTH (PLAIN, LOGIN) offered and required, only
    over TLS unless tls is None.  reply: {"reply": "451 4.3.0 try later", "at": "data"|"rcpt"}
    answers that instead of accepting (set_reply changes it; None accepts).

    messages(): one dict per accepted message: mail_from, rcpt_tos, raw (bytes as received,
    CRLF), msg (email.message.EmailMessage, policy default), tls (bool), auth (bool)."""

    def __init__(self, tls=None, cert=None, user=None, password=None, reply=None):
        if Controller is None:
            raise RuntimeError("aiosmtpd is not installed (Debian: python3-aiosmtpd; make deps)")
        self._lock = threading.Lock()
        self._log = []
        self._reply = reply
        self.tls = tls
        self.port = free_port()
        kw = {"hostname": LOCALHOST, "port": self.port, "ready_timeout": 10.0}
        ctx = None
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert[0], cert[1])
        if tls == "starttls":
            kw.update(tls_context=ctx, require_starttls=True)
        elif tls == "smtps":
            kw.update(ssl_context=ctx)
        if user is not None:
            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = (getattr(auth_data, "login", None) == user.encode()
                      and getattr(auth_data, "password", None) == password.encode())
                # handled=False: aiosmtpd answers 535 itself (its default assumes we did)
                return AuthResult(success=ok, handled=False)
            kw.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=tls is not None)
        self.controller = Controller(_SmtpHandler(self), **kw)
        self.controller.start()

    def url(self):
        return "%s://%s:%d" % ("smtps" if self.tls == "smtps" else "smtp", LOCALHOST, self.port)

    def set_reply(self, reply):
        self._reply = reply

    def messages(self):
        with self._lock:
            return list(self._log)

    def wait_messages(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.messages()) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("%d of %d messages after %.0f s" % (len(self.messages()), n,
                                                                      timeout))
            time.sleep(0.02)
        return self.messages()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---- GitHub ----------------------------------------------------------------------------------


def _iso(ts):
    return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub:
    """The GitHub REST API endpoints meshd-report uses, with GitHub's documented request and
    response shapes (docs.github.com/rest/issues), kept in memory:

        POST  /repos/{o}/{r}/issues                       201, the issue
        GET   /repos/{o}/{r}/issues?labels=&state=&sort=&direction=&per_page=&page=
                                                          200, an array (labels ANDed)
        GET   /repos/{o}/{r}/issues/{n}                   200, the issue
        PATCH /repos/{o}/{r}/issues/{n}                   200, the issue (state, state_reason,
                                                          title, body, labels)
        POST  /repos/{o}/{r}/issues/{n}/comments          201, the comment
        GET   /repos/{o}/{r}/issues/{n}/comments          200, an array

    under an optional /api/v3 prefix (GitHub Enterprise's).  Every request needs
    "Authorization: Bearer <token>" (or "token <token>") and "X-GitHub-Api-Version: 2022-11-28":
    401 {"message": "Bad credentials"} without either; another version is 400; no User-Agent
    is 403, as on github.com.  A repo is known once it has been named in repos (default: any
    "owner/name" is created on first use).  Labels a new issue names are created.

    rate_limit(n, status=403, retry_after=None, reset_in=60): the next n requests answer
    `status` {"message": "API rate limit exceeded ..."} with x-ratelimit-remaining: 0 and
    x-ratelimit-reset (now + reset_in), and Retry-After when given (a secondary limit)."""

    API_VERSION = "2022-11-28"

    def __init__(self, token, web="https://github.example"):
        self.token = token
        self.web = web
        self._lock = threading.Lock()
        self._repos = {}
        self._log = []
        self._limit = None
        self._next_id = 1000
        self.httpd = _Httpd((LOCALHOST, 0), self._handler_class())
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="FakeGitHub:%d" % self.port, daemon=True)
        self._thread.start()

    # -- test-facing
    def url(self, prefix=""):
        return "http://%s:%d%s" % (LOCALHOST, self.port, prefix)

    def issues(self, repo):
        with self._lock:
            return [dict(i) for i in self._repo(repo)["issues"].values()]

    def issue(self, repo, number):
        with self._lock:
            i = self._repo(repo)["issues"].get(number)
            return dict(i) if i else None

    def comments(self, repo, number):
        with self._lock:
            return [dict(c) for c in self._repo(repo)["comments"].get(number, [])]

    def requests(self):
        with self._lock:
            return list(self._log)

    def clear(self):
        with self._lock:
            self._log = []

    def rate_limit(self, n, status=403, retry_after=None, reset_in=60):
        with self._lock:
            self._limit = {"n": n, "status": status, "retry_after": retry_after,
                           "reset": int(time.time()) + reset_in}

    def delete_issue(self, repo, number):
        """Deletes an issue (as an admin can): its URLs answer 404 from then on."""
        with self._lock:
            del self._repo(repo)["issues"][number]

    def set_closed_at(self, repo, number, ts):
        """Backdates a closed issue's closed_at (Unix s)."""
        with self._lock:
            i = self._repo(repo)["issues"][number]
            assert i["state"] == "closed", "issue %d is open" % number
            i["closed_at"] = _iso(ts)

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self._thread.join(10)
            self.httpd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- the model
    def _repo(self, repo):
        return self._repos.setdefault(repo, {"issues": {}, "comments": {}, "labels": {},
                                             "next": 1})

    def _label(self, repo, name):
        r = self._repo(repo)
        if name not in r["labels"]:
            self._next_id += 1
            r["labels"][name] = {"id": self._next_id, "node_id": "LA_%d" % self._next_id,
                                 "url": "%s/repos/%s/labels/%s" % (self.url(), repo,
                                                                   urllib.parse.quote(name)),
                                 "name": name, "color": "ededed", "default": False,
                                 "description": None}
        return r["labels"][name]

    def _new_issue(self, repo, title, body, labels):
        r = self._repo(repo)
        n = r["next"]
        r["next"] += 1
        self._next_id += 1
        now = _iso(time.time())
        api = "%s/repos/%s/issues/%d" % (self.url(), repo, n)
        issue = {"id": self._next_id, "node_id": "I_%d" % self._next_id, "url": api,
                 "repository_url": "%s/repos/%s" % (self.url(), repo),
                 "labels_url": api + "/labels{/name}", "comments_url": api + "/comments",
                 "events_url": api + "/events", "html_url": "%s/%s/issues/%d" % (self.web, repo, n),
                 "number": n, "state": "open", "state_reason": None, "title": title,
                 "body": body, "user": {"login": "meshd-bot", "id": 1, "type": "Bot"},
                 "labels": [self._label(repo, l) for l in labels], "assignee": None,
                 "assignees": [], "milestone": None, "locked": False, "active_lock_reason": None,
                 "comments": 0, "created_at": now, "updated_at": now, "closed_at": None,
                 "author_association": "OWNER"}
        r["issues"][n] = issue
        return issue

    # -- HTTP
    def _handler_class(self):
        gh = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, *args):
                pass

            def _send(self, status, obj, headers=()):
                out = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                u = urllib.parse.urlsplit(self.path)
                path = u.path[len("/api/v3"):] if u.path.startswith("/api/v3/") else u.path
                rec = {"method": self.command, "path": path,
                       "query": dict(urllib.parse.parse_qsl(u.query)),
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "body": raw,
                       "status": None}
                with gh._lock:
                    gh._log.append(rec)
                status, obj, headers = gh._route(self.command, path, rec["query"],
                                                 rec["headers"], raw)
                rec["status"] = status
                self._send(status, obj, headers)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        return Handler

    def _route(self, method, path, query, headers, raw):
        auth = headers.get("authorization", "")
        if auth not in ("Bearer " + self.token, "token " + self.token) or \
                "x-github-api-version" not in headers:
            return 401, {"message": "Bad credentials",
                         "documentation_url": "https://docs.github.com/rest",
                         "status": "401"}, ()
        if headers["x-github-api-version"] != self.API_VERSION:
            return 400, {"message": "Unsupported 'X-GitHub-Api-Version'",
                         "documentation_url": "https://docs.github.com/rest"}, ()
        if not headers.get("user-agent"):
            return 403, {"message": "Request forbidden by administrative rules. Please make sure "
                                    "your request has a User-Agent header"}, ()
        with self._lock:
            lim = self._limit
            if lim is not None and lim["n"] > 0:
                lim["n"] -= 1
                h = [("x-ratelimit-limit", "5000"), ("x-ratelimit-remaining", "0"),
                     ("x-ratelimit-used", "5000"), ("x-ratelimit-reset", str(lim["reset"])),
                     ("x-ratelimit-resource", "core")]
                if lim["retry_after"] is not None:
                    h.append(("Retry-After", str(lim["retry_after"])))
                return lim["status"], {
                    "message": "API rate limit exceeded for installation ID 1.",
                    "documentation_url": "https://docs.github.com/rest/overview/"
                                         "resources-in-the-rest-api#rate-limiting"}, h
            return self._api(method, path, query, raw)

    def _api(self, method, path, query, raw):
        parts = path.strip("/").split("/")
        if len(parts) < 4 or parts[0] != "repos" or parts[3] != "issues":
            return 404, {"message": "Not Found"}, ()
        repo = parts[1] + "/" + parts[2]
        r = self._repo(repo)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, {"message": "Problems parsing JSON"}, ()
        now = _iso(time.time())
        if len(parts) == 4 and method == "POST":
            if not isinstance(body.get("title"), str) or not body["title"]:
                return 422, {"message": "Validation Failed",
                             "errors": [{"resource": "Issue", "code": "missing_field",
                                         "field": "title"}]}, ()
            for l in body.get("labels", []):
                if not isinstance(l, str) or len(l) > 50:
                    return 422, {"message": "Validation Failed",
                                 "errors": [{"resource": "Label", "code": "invalid",
                                             "field": "name"}]}, ()
            i = self._new_issue(repo, body["title"], body.get("body"), body.get("labels", []))
            return 201, i, [("Location", i["url"])]
        if len(parts) == 4 and method == "GET":
            want = [l for l in query.get("labels", "").split(",") if l]
            state = query.get("state", "open")
            out = []
            for i in r["issues"].values():
                names = {l["name"] for l in i["labels"]}
                if any(w not in names for w in want):
                    continue
                if state != "all" and i["state"] != state:
                    continue
                out.append(i)
            key = {"created": "created_at", "updated": "updated_at",
                   "comments": "comments"}.get(query.get("sort", "created"), "created_at")
            out.sort(key=lambda i: (i[key], i["number"]),
                     reverse=query.get("direction", "desc") == "desc")
            per = min(int(query.get("per_page", 30)), 100)
            page = int(query.get("page", 1))
            return 200, out[(page - 1) * per:page * per], ()
        if len(parts) < 5 or not parts[4].isdigit() or int(parts[4]) not in r["issues"]:
            return 404, {"message": "Not Found",
                         "documentation_url": "https://docs.github.com/rest"}, ()
        n = int(parts[4])
        i = r["issues"][n]
        if len(parts) == 5 and method == "GET":
            return 200, i, ()
        if len(parts) == 5 and method == "PATCH":
            if "state" in body:
                if body["state"] not in ("open", "closed"):
                    return 422, {"message": "Validation Failed"}, ()
                if body["state"] == "closed" and i["state"] == "open":
                    i["closed_at"] = now
                    i["state_reason"] = body.get("state_reason", "completed")
                elif body["state"] == "open" and i["state"] == "closed":
                    i["closed_at"] = None
                    i["state_reason"] = body.get("state_reason", "reopened")
                i["state"] = body["state"]
            for k in ("title", "body"):
                if k in body:
                    i[k] = body[k]
            if "labels" in body:
                i["labels"] = [self._label(repo, l) for l in body["labels"]]
            i["updated_at"] = now
            return 200, i, ()
        if len(parts) == 6 and parts[5] == "comments" and method == "POST":
            if not isinstance(body.get("body"), str) or not body["body"]:
                return 422, {"message": "Validation Failed"}, ()
            self._next_id += 1
            c = {"id": self._next_id, "node_id": "IC_%d" % self._next_id,
                 "url": "%s/repos/%s/issues/comments/%d" % (self.url(), repo, self._next_id),
                 "html_url": "%s#issuecomment-%d" % (i["html_url"], self._next_id),
                 "body": body["body"], "user": {"login": "meshd-bot", "id": 1, "type": "Bot"},
                 "created_at": now, "updated_at": now, "issue_url": i["url"],
                 "author_association": "OWNER"}
            r["comments"].setdefault(n, []).append(c)
            i["comments"] += 1
            i["updated_at"] = now
            return 201, c, [("Location", c["url"])]
        if len(parts) == 6 and parts[5] == "comments" and method == "GET":
            return 200, r["comments"].get(n, []), ()
        return 404, {"message": "Not Found"}, ()


# ---- self-test -------------------------------------------------------------------------------


def _selftest():
    import smtplib
    import tempfile
    import urllib.request

    with WebhookServer() as w:
        w.plan([{"status": 429, "retry_after": "3"}])
        req = urllib.request.Request(w.url(), data=b'{"a":1}', method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("no 429")
        except urllib.error.HTTPError as e:
            assert e.code == 429 and e.headers["Retry-After"] == "3"
        assert urllib.request.urlopen(req, timeout=5).status == 200
        port = w.port
        w.down()
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("not down")
        except urllib.error.URLError:
            pass
        w.up()
        assert w.port == port and urllib.request.urlopen(req, timeout=5).status == 200
        assert len(w.requests()) == 3 and w.requests()[0]["json"] == {"a": 1}
    d = tempfile.mkdtemp(prefix="notifyfix-")
    cert = self_signed(d)
    with SmtpServer(tls="starttls", cert=cert, user="u", password="p") as s:
        c = smtplib.SMTP(LOCALHOST, s.port, timeout=5)
        c.starttls(context=ssl.create_default_context(cafile=cert[0]))
        c.login("u", "p")
        c.sendmail("a@x.org", ["b@y.org"], b"Subject: hi\r\n\r\nbody\r\n")
        c.quit()
        m = s.wait_messages(1)[0]
        assert m["tls"] and m["auth"] and m["msg"]["Subject"] == "hi"
    with FakeGitHub("t0k") as gh:
        h = {"Authorization": "Bearer t0k", "X-GitHub-Api-Version": "2022-11-28",
             "User-Agent": "selftest", "Content-Type": "application/json"}
        req = urllib.request.Request(gh.url("/repos/o/r/issues"), method="POST", headers=h,
                                     data=json.dumps({"title": "t", "labels": ["a"]}).encode())
        i = json.load(urllib.request.urlopen(req, timeout=5))
        assert i["number"] == 1 and i["labels"][0]["name"] == "a"
        req = urllib.request.Request(gh.url("/repos/o/r/issues?labels=a&state=all"), headers=h)
        assert len(json.load(urllib.request.urlopen(req, timeout=5))) == 1
        try:
            urllib.request.urlopen(urllib.request.Request(gh.url("/repos/o/r/issues")), timeout=5)
            raise AssertionError("no 401")
        except urllib.error.HTTPError as e:
            assert e.code == 401
    print("notifyfix selftest ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["selftest"]:
        _selftest()
    else:
        print(__doc__)
