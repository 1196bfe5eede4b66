#!/usr/bin/env python3
"""httpfix.py - HTTP servers for meshd-scrape's tests, on 127.0.0.1 only.  Stdlib only.

Each server is an object the test starts and stops itself (by its PID / its threads, never by
name); both are context managers, and stop() is safe to call twice.

    Nginx(root_dir, prefix=None)      the real thing: /usr/sbin/nginx (override with $NGINX_BIN
                                      or nginx=) serving root_dir statically, with its default
                                      ETag ("<mtime hex>-<size hex>"), Last-Modified, 304s, Range,
                                      If-Range; no gzip.  prefix: a directory for its conf, pid
                                      and logs (kept); default a temp dir removed by stop().
        .port .url(path) .pid .prefix  .access_log() -> [dict]  .error_log() -> str  .stop()
    FaultServer(root_dir)             a ThreadingHTTPServer (HTTP/1.1, keep-alive) serving files
                                      with a scripted fault per path; see FaultServer's doc.
        .port .url(path) .plan(path, actions) .set_etag(path, v) .set_last_modified(path, t)
        .requests(path=None) -> [dict]  .last(path)  .wait_requests(path, n, timeout)  .settle()
        .etag(path) .pending(path) .clear() .stop()

As root, nginx's workers would drop to `nobody`, which cannot read a root-owned 0700 temp dir
(the harness's test dirs are such): so the conf says `user <current user> <current group>;`
when nginx starts as root (and nothing otherwise: the directive needs root).

Self-test (each fault through urllib / http.client, nginx's headers, all in a 0700 temp dir):
    python3 httpfix.py selftest
"""

import email.utils
import hashlib
import http.client
import http.server
import mimetypes
import os
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

NGINX_BIN = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
LOCALHOST = "127.0.0.1"


def free_port():
    """A port that was free a moment ago (the caller retries if someone takes it first)."""
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def _children(pid):
    """Child PIDs of pid (from /proc/<pid>/task/*/children)."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _conf_str(s):
    """A value quoted for nginx.conf."""
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


# ---- nginx -----------------------------------------------------------------------------------

_NGINX_LOG_FORMAT = ('$request_method\\t$uri\\t$status\\t$body_bytes_sent\\t$http_range\\t'
                     '$http_if_range\\t$http_if_none_match\\t$http_if_modified_since')
_NGINX_LOG_FIELDS = ("method", "path", "status", "sent", "range", "if_range", "if_none_match",
                     "if_modified_since")


class Nginx:
    """nginx serving root_dir on 127.0.0.1:<free port>, in the foreground (daemon off), as a
    child of this process; its access log is tab-separated (access_log() parses it)."""

    def __init__(self, root_dir, prefix=None, nginx=None, start_timeout=10.0, extra_http=""):
        self.root = os.path.abspath(root_dir)
        self.bin = nginx or NGINX_BIN
        if not os.access(self.bin, os.X_OK):
            raise FileNotFoundError("no nginx at %s" % self.bin)
        self._own_prefix = prefix is None
        self.prefix = os.path.abspath(prefix) if prefix else tempfile.mkdtemp(prefix="httpfix-ngx-")
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        self.conf = os.path.join(self.prefix, "nginx.conf")
        self.errfile = os.path.join(self.prefix, "error.log")
        self.proc = None
        self.port = None
        self._extra = extra_http
        try:
            self._start(start_timeout)
        except BaseException:
            self.stop()
            raise

    def _write_conf(self, port):
        p = self.prefix
        user = ""
        if os.geteuid() == 0:
            import grp
            import pwd
            user = "user %s %s;\n" % (pwd.getpwuid(os.geteuid()).pw_name,
                                      grp.getgrgid(os.getegid()).gr_name)
        tmp = os.path.join(p, "tmp")
        text = (
            "# written by tests/integration/httpfix.py\n"
            "%(user)s"
            "daemon off;\nmaster_process on;\nworker_processes 1;\n"
            "pid %(pid)s;\nerror_log %(err)s info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "    default_type application/octet-stream;\n"
            "    types { application/zip zip; text/csv csv; application/gzip gz; "
            "text/plain txt; text/html html; }\n"
            "    log_format httpfix '%(fmt)s';\n"
            "    access_log %(acc)s httpfix;\n"
            "    client_body_temp_path %(tmp)s/body;\n    proxy_temp_path %(tmp)s/proxy;\n"
            "    fastcgi_temp_path %(tmp)s/fastcgi;\n    uwsgi_temp_path %(tmp)s/uwsgi;\n"
            "    scgi_temp_path %(tmp)s/scgi;\n"
            "    sendfile on;\n    etag on;\n    gzip off;\n    server_tokens off;\n"
            "    keepalive_timeout 30s;\n"
            "%(extra)s"
            "    server {\n"
            "        listen %(host)s:%(port)d;\n"
            "        root %(root)s;\n"
            "        location / { }\n"
            "    }\n"
            "}\n") % {
                "user": user, "pid": _conf_str(os.path.join(p, "nginx.pid")),
                "err": _conf_str(self.errfile), "fmt": _NGINX_LOG_FORMAT,
                "acc": _conf_str(os.path.join(p, "access.log")), "tmp": _conf_str(tmp)[1:-1],
                "extra": self._extra, "host": LOCALHOST, "port": port,
                "root": _conf_str(self.root)}
        with open(self.conf, "w") as f:
            f.write(text)

    def _start(self, timeout):
        last = ""
        for _attempt in range(5):
            port = free_port()
            self._write_conf(port)
            out = open(os.path.join(self.prefix, "stderr.log"), "ab")
            try:
                self.proc = subprocess.Popen(
                    [self.bin, "-p", self.prefix + "/", "-c", self.conf, "-e", self.errfile],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=self.prefix)
            finally:
                out.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self._answers(port):
                    self.port = port
                    return
                time.sleep(0.02)
            if self.proc.poll() is None:          # up but never answered: give up on it
                self._kill()
                raise RuntimeError("nginx did not answer on port %d within %.0f s: %s"
                                   % (port, timeout, self.error_log()[-2000:]))
            last = self.error_log()
            self.proc = None
            if "Address already in use" not in last:
                break
        raise RuntimeError("nginx did not start: %s" % last[-2000:])

    @staticmethod
    def _answers(port):
        try:
            c = http.client.HTTPConnection(LOCALHOST, port, timeout=1)
            c.request("HEAD", "/")
            c.getresponse().read()
            c.close()
            return True
        except OSError:
            return False
        except http.client.HTTPException:
            return False

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def url(self, path="/"):
        return "http://%s:%d/%s" % (LOCALHOST, self.port, urllib.parse.quote(path.lstrip("/")))

    def error_log(self):
        text = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.prefix, name), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def access_log(self):
        """One dict per request nginx logged: method, path, status (int), sent (body bytes,
        int), range, if_range, if_none_match, if_modified_since ('' when absent)."""
        out = []
        try:
            with open(os.path.join(self.prefix, "access.log"), errors="replace") as f:
                for line in f:
                    v = line.rstrip("\n").split("\t")
                    if len(v) != len(_NGINX_LOG_FIELDS):
                        continue
                    d = dict(zip(_NGINX_LOG_FIELDS, ["" if x == "-" else x for x in v]))
                    d["status"] = int(d["status"])
                    d["sent"] = int(d["sent"] or 0)
                    out.append(d)
        except FileNotFoundError:
            pass
        return out

    def _kill(self):
        pids = [self.proc.pid] + _children(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def stop(self, timeout=10.0):
        """SIGTERM (fast shutdown) to the master, wait for it (and its workers), SIGKILL after
        `timeout`.  Removes the prefix if Nginx made it.  Idempotent."""
        if self.proc is not None:
            workers = _children(self.proc.pid)
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._kill()
            deadline = time.monotonic() + 5
            for pid in workers:
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if _alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.proc = None
        if self._own_prefix and self.prefix and os.path.isdir(self.prefix):
            shutil.rmtree(self.prefix, ignore_errors=True)
            self._own_prefix = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---- the fault server ------------------------------------------------------------------------

_ACTION_RE = re.compile(
    r"^(?:(?P<ok>ok)|(?P<drop>drop)|reset_after:(?P<reset>\d+)|close_after:(?P<close>\d+)"
    r"|stall:(?P<stall>\d+(?:\.\d+)?)(?::after=(?P<stall_after>\d+))?"
    r"|slow:(?P<slow>\d+)"
    r"|(?P<status>[1-5]\d\d)(?::retry_after=(?P<retry>.+))?)$")


def parse_action(text):
    """Checks one plan action; returns its match (raises ValueError on a bad one)."""
    m = _ACTION_RE.match(text.strip())
    if not m:
        raise ValueError("bad fault action %r" % text)
    return m


def _norm_path(path):
    p = urllib.parse.unquote(urllib.parse.urlsplit(path).path) or "/"
    return "/" + p.lstrip("/")


def _etag_match_weak(header, etag):
    """If-None-Match: weak comparison against the list (or *)."""
    if header.strip() == "*":
        return True
    bare = etag[2:] if etag.startswith("W/") else etag
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == bare:
            return True
    return False


def _http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


def _parse_date(text):
    try:
        dt = email.utils.parsedate_to_datetime(text)
        return dt.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class _Httpd(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class FaultServer:
    """Serves root_dir over HTTP/1.1 on 127.0.0.1:<free port> with Content-Length, ETag (a hash
    of the file's bytes, or what set_etag() says), Last-Modified (the file's mtime, or
    set_last_modified()), Accept-Ranges; honours If-None-Match (weak compare, wins over
    If-Modified-Since), If-Modified-Since, a single Range (bytes=a-b, a-, -n; 416 past the end;
    several ranges are ignored: 200) and If-Range (an ETag: strong compare; a date: equal to
    Last-Modified), for GET and HEAD.

    plan(path, actions): each request for that path (GET or HEAD, any query string) takes the
    next action; when the list is used up, requests are served normally.  Actions:
        "ok"                      serve normally
        "reset_after:N"           headers and N body bytes of the normal response, wait until
                                  the kernel has them acknowledged, then RST (SO_LINGER 0)
        "close_after:N"           the same, but an orderly close (FIN): a short body
        "drop"                    RST right after reading the request, no response at all
        "503", "429:retry_after=2", "500", any 3-digit status [:retry_after=V]: that status,
                                  a short text body, Retry-After: V if given (seconds or a date)
        "stall:S[:after=N]"       headers and N (default 64) body bytes, then nothing for S
                                  seconds, then the rest
        "slow:BPS"                the body at about BPS bytes a second
    Conditional requests are evaluated first for ok/reset/close/stall/slow: a 304 is a 304.

    requests(path=None): one dict per request, in arrival order (filled in while it runs):
    method, path (decoded, no query), target (as sent), headers {lower-case name: value},
    range, if_range, if_none_match, if_modified_since (None when absent), action, status,
    sent (body bytes written to the socket), error (None, "reset", "closed", "dropped",
    "client gone: ..."), done (bool), t (monotonic start time).  A client may have read the
    whole body before the server thread has counted the last bytes: assert on last(path),
    wait_requests() or settle(), which wait for `done`."""

    def __init__(self, root_dir, port=0, chunk=64 * 1024):
        self.root = os.path.abspath(root_dir)
        self.chunk = chunk
        self._lock = threading.Lock()
        self._plans = {}
        self._etags = {}
        self._lastmod = {}
        self._hash_cache = {}
        self._log = []
        self._conns = set()
        self._stopping = threading.Event()
        handler = self._handler_class()
        self.httpd = _Httpd((LOCALHOST, port), handler, bind_and_activate=True)
        self.httpd.fault = self
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.05}, name="FaultServer:%d" % self.port, daemon=True)
        self._thread.start()

    # -- test-facing
    def url(self, path="/"):
        return "http://%s:%d/%s" % (LOCALHOST, self.port, urllib.parse.quote(path.lstrip("/")))

    def plan(self, path, actions):
        for a in actions:
            parse_action(a)
        with self._lock:
            self._plans[_norm_path(path)] = list(actions)

    def pending(self, path):
        """The actions of path's plan not used yet."""
        with self._lock:
            return list(self._plans.get(_norm_path(path), []))

    def set_etag(self, path, value):
        """Force path's ETag (quotes added if missing); None: back to the hash of the bytes."""
        p = _norm_path(path)
        with self._lock:
            if value is None:
                self._etags.pop(p, None)
            else:
                if not (value.startswith('"') or value.startswith('W/"')):
                    value = '"%s"' % value
                self._etags[p] = value

    def set_last_modified(self, path, ts):
        """Force path's Last-Modified (a Unix time); None: back to the file's mtime."""
        p = _norm_path(path)
        with self._lock:
            if ts is None:
                self._lastmod.pop(p, None)
            else:
                self._lastmod[p] = int(ts)

    def etag(self, path):
        """The ETag the server sends for path now."""
        p = _norm_path(path)
        return self._meta(p, self._file(p))[0]

    def requests(self, path=None):
        with self._lock:
            if path is None:
                return list(self._log)
            p = _norm_path(path)
            return [r for r in self._log if r["path"] == p]

    def wait_requests(self, path, n, timeout=10.0, done=True):
        """Waits until path has had n requests (finished ones when done); returns them."""
        deadline = time.monotonic() + timeout
        while True:
            rs = [r for r in self.requests(path) if r["done"] or not done]
            if len(rs) >= n:
                return rs
            if time.monotonic() > deadline:
                raise TimeoutError("%s: %d of %d requests after %.0f s" % (path, len(rs), n,
                                                                           timeout))
            time.sleep(0.02)

    def last(self, path=None, timeout=10.0):
        """The newest request (for path), once it has finished: a client can have read the
        whole body before the server thread has counted its last bytes, so assert on this,
        or on wait_requests(), rather than on requests()."""
        deadline = time.monotonic() + timeout
        while True:
            rs = self.requests(path)
            if rs and rs[-1]["done"]:
                return rs[-1]
            if time.monotonic() > deadline:
                raise TimeoutError("%s: no finished request after %.0f s" % (path, timeout))
            time.sleep(0.01)

    def settle(self, timeout=10.0):
        """Waits until every request recorded so far has finished; returns requests()."""
        deadline = time.monotonic() + timeout
        while any(not r["done"] for r in self.requests()):
            if time.monotonic() > deadline:
                raise TimeoutError("requests still running after %.0f s" % timeout)
            time.sleep(0.01)
        return self.requests()

    def clear(self):
        with self._lock:
            self._log = []

    def stop(self):
        """Stops accepting, wakes stalled responses, closes open connections, joins.
        Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.httpd.server_close()
        self._thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- internals
    def _file(self, p):
        full = os.path.realpath(os.path.join(self.root, p.lstrip("/")))
        if full != self.root and not full.startswith(self.root + os.sep):
            return None
        return full if os.path.isfile(full) else None

    def _meta(self, p, full):
        """(etag, last_modified_ts, size) of the file now."""
        st = os.stat(full)
        with self._lock:
            etag = self._etags.get(p)
            lm = self._lastmod.get(p)
            cached = self._hash_cache.get(full)
        if etag is None:
            if cached and cached[0] == (st.st_size, st.st_mtime_ns, st.st_ino):
                etag = cached[1]
            else:
                h = hashlib.sha256()
                with open(full, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        h.update(b)
                etag = '"%s"' % h.hexdigest()[:24]
                with self._lock:
                    self._hash_cache[full] = ((st.st_size, st.st_mtime_ns, st.st_ino), etag)
        if lm is None:
            lm = int(st.st_mtime)
        return etag, lm, st.st_size

    def _next_action(self, p):
        with self._lock:
            q = self._plans.get(p)
            if q:
                return q.pop(0)
        return "ok"

    def _handler_class(self):
        fault = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 120

            def setup(self):
                super().setup()
                with fault._lock:
                    fault._conns.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                except OSError:
                    pass
                with fault._lock:
                    fault._conns.discard(self.connection)

            def version_string(self):
                return "httpfix"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fault._serve(self, head=False)

            def do_HEAD(self):
                fault._serve(self, head=True)

        return Handler

    def _serve(self, h, head):
        p = _norm_path(h.path)
        hdrs = {k.lower(): v for k, v in h.headers.items()}
        rec = {"method": h.command, "path": p, "target": h.path, "headers": hdrs,
               "range": hdrs.get("range"), "if_range": hdrs.get("if-range"),
               "if_none_match": hdrs.get("if-none-match"),
               "if_modified_since": hdrs.get("if-modified-since"),
               "action": None, "status": None, "sent": 0, "error": None, "done": False,
               "t": time.monotonic()}
        with self._lock:
            self._log.append(rec)
        try:
            self._respond(h, p, hdrs, head, rec)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout,
                OSError) as e:
            if rec["error"] is None:
                rec["error"] = "client gone: %s" % e.__class__.__name__
            h.close_connection = True
        finally:
            rec["done"] = True

    def _respond(self, h, p, hdrs, head, rec):
        action = self._next_action(p)
        rec["action"] = action
        m = parse_action(action)
        if m.group("drop"):
            rec["error"] = "dropped"
            self._rst(h)
            return
        if m.group("status"):
            code = int(m.group("status"))
            bodyless = code in (204, 304) or code < 200
            body = b"" if bodyless else b"%d fault injected by httpfix\n" % code
            h.send_response(code)
            if m.group("retry"):
                h.send_header("Retry-After", m.group("retry"))
            if not bodyless:
                h.send_header("Content-Type", "text/plain")
                h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            rec["status"] = code
            if body and not head:
                h.wfile.write(body)
                rec["sent"] = len(body)
            return
        full = self._file(p)
        if full is None:
            body = b"not found\n"
            h.send_response(404)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            rec["status"] = 404
            if not head:
                h.wfile.write(body)
                rec["sent"] = len(body)
            return
        etag, lm, size = self._meta(p, full)
        # conditionals
        inm = hdrs.get("if-none-match")
        not_modified = False
        if inm is not None:
            not_modified = _etag_match_weak(inm, etag)
        elif hdrs.get("if-modified-since"):
            ims = _parse_date(hdrs["if-modified-since"])
            not_modified = ims is not None and lm <= ims
        if not_modified:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.send_header("Last-Modified", _http_date(lm))
            h.end_headers()
            rec["status"] = 304
            return
        start, length, status = 0, size, 200
        rng = hdrs.get("range")
        if rng and not head:
            use = True
            ir = hdrs.get("if-range")
            if ir is not None:
                ir = ir.strip()
                if ir.startswith('"') or ir.startswith("W/"):
                    use = (not ir.startswith("W/")) and (not etag.startswith("W/")) and ir == etag
                else:
                    d = _parse_date(ir)
                    use = d is not None and int(d) == lm
            mr = re.match(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", rng)
            if use and mr and (mr.group(1) or mr.group(2)):
                a, b = mr.group(1), mr.group(2)
                if a == "":
                    n = int(b)
                    first, last = max(0, size - n), size - 1
                    bad = n == 0
                else:
                    first = int(a)
                    last = min(int(b), size - 1) if b else size - 1
                    bad = first >= size or (b and int(b) < first)
                if bad:
                    h.send_response(416)
                    h.send_header("Content-Range", "bytes */%d" % size)
                    h.send_header("Content-Length", "0")
                    h.send_header("ETag", etag)
                    h.end_headers()
                    rec["status"] = 416
                    return
                start, length, status = first, last - first + 1, 206
        h.send_response(status)
        h.send_header("Content-Type", mimetypes.guess_type(full)[0] or "application/octet-stream")
        h.send_header("Content-Length", str(length))
        h.send_header("ETag", etag)
        h.send_header("Last-Modified", _http_date(lm))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", "bytes %d-%d/%d" % (start, start + length - 1, size))
        h.end_headers()
        rec["status"] = status
        if head:
            return
        limit, rate, stall, stall_after, close = None, None, None, None, None
        if m.group("reset"):
            limit, close = int(m.group("reset")), "reset"
        elif m.group("close"):
            limit, close = int(m.group("close")), "closed"
        elif m.group("stall"):
            stall, stall_after = float(m.group("stall")), int(m.group("stall_after") or 64)
        elif m.group("slow"):
            rate = max(1, int(m.group("slow")))
        self._send_body(h, full, start, length if limit is None else min(limit, length), rec,
                        rate, stall, stall_after)
        if close:
            rec["error"] = close
            if close == "reset":
                self._rst(h, drain=True)
            else:
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def _send_body(self, h, full, start, length, rec, rate, stall, stall_after):
        t0 = time.monotonic()
        with open(full, "rb") as f:
            f.seek(start)
            left = length
            stalled = stall is None
            while left > 0:
                n = min(left, self.chunk)
                if not stalled:
                    n = min(n, max(0, stall_after - rec["sent"]))
                    if n == 0:
                        stalled = True
                        if self._stopping.wait(stall):
                            raise ConnectionAbortedError("server stopping")
                        continue
                if rate:
                    n = min(n, max(1, rate // 20))
                b = f.read(n)
                if not b:
                    raise OSError("file shrank while serving")
                h.wfile.write(b)
                rec["sent"] += len(b)
                left -= len(b)
                if rate:
                    due = t0 + rec["sent"] / rate
                    wait = due - time.monotonic()
                    if wait > 0 and self._stopping.wait(wait):
                        raise ConnectionAbortedError("server stopping")

    @staticmethod
    def _rst(h, drain=False):
        """Abort the connection with a RST.  drain: first wait (up to 2 s) until the peer has
        acknowledged everything sent, so it really holds those bytes when the RST comes."""
        sock = h.connection
        if drain:
            import fcntl
            import termios
            deadline = time.monotonic() + 2
            buf = struct.pack("i", 0)
            while time.monotonic() < deadline:
                try:
                    outq = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                          buf))[0]
                except OSError:
                    break
                if outq == 0:
                    break
                time.sleep(0.005)
            time.sleep(0.05)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        h.close_connection = True
        # socket.close() would wait for rfile/wfile to let go and then socketserver's
        # shutdown(SHUT_WR) would send a FIN first; detach and close the fd now: RST.
        try:
            fd = sock.detach()
            os.close(fd)
        except OSError:
            pass


# ---- self-test -------------------------------------------------------------------------------


class _Check:
    def __init__(self):
        self.ok = 0
        self.bad = []

    def __call__(self, cond, what, detail=""):
        if cond:
            self.ok += 1
            print("  ok   %s" % what)
        else:
            self.bad.append(what)
            print("  FAIL %s %s" % (what, detail))


def _get(url, headers=None, method="GET", timeout=10):
    """(status, headers dict lower-case, body bytes, error or None) with http.client, reading
    the body even when it breaks off."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    body = bytearray()
    try:
        c.request(method, u.path, headers=headers or {})
        r = c.getresponse()
        hd = {k.lower(): v for k, v in r.getheaders()}
        err = None
        try:
            while True:
                b = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
                if not b:
                    break
                body += b
        except http.client.IncompleteRead as e:
            body += e.partial
            err = "IncompleteRead"
        except (ConnectionResetError, socket.timeout, OSError) as e:
            err = e.__class__.__name__
        if err is None and r.length not in (None, 0):
            err = "IncompleteRead"
        return r.status, hd, bytes(body), err
    except (http.client.RemoteDisconnected, ConnectionResetError) as e:
        return None, {}, b"", e.__class__.__name__
    finally:
        c.close()


def _selftest_nginx(ck, root, data):
    print("nginx (%s) in %s:" % (NGINX_BIN, root))
    if not os.access(NGINX_BIN, os.X_OK):
        ck(False, "nginx installed", NGINX_BIN)
        return
    prefix = os.path.join(root, "ngx-prefix")         # inside the 0700 dir too
    with Nginx(root, prefix=prefix) as ng:
        st, hd, body, err = _get(ng.url("/f.bin"))
        ck(st == 200 and body == data, "GET 200 with the file's bytes", (st, len(body), err))
        etag, lm = hd.get("etag"), hd.get("last-modified")
        ck(bool(etag) and bool(lm), "ETag %s and Last-Modified %s" % (etag, lm))
        ck("content-encoding" not in hd, "no Content-Encoding (gzip off)")
        st, hd2, body, _ = _get(ng.url("/f.bin"), {"If-None-Match": etag})
        ck(st == 304 and body == b"", "If-None-Match: 304, no body", st)
        st, _, body, _ = _get(ng.url("/f.bin"), {"If-Modified-Since": lm})
        ck(st == 304, "If-Modified-Since: 304", st)
        st, hd3, body, _ = _get(ng.url("/f.bin"), {"Range": "bytes=1000-", "If-Range": etag})
        ck(st == 206 and body == data[1000:] and
           hd3.get("content-range") == "bytes 1000-%d/%d" % (len(data) - 1, len(data)),
           "Range bytes=1000- + If-Range (ETag): 206 with the tail", (st, hd3.get("content-range")))
        st, _, body, _ = _get(ng.url("/f.bin"), {"Range": "bytes=1000-", "If-Range": '"nope"'})
        ck(st == 200 and body == data, "Range + stale If-Range: 200 with the whole file", st)
        st, _, body, _ = _get(ng.url("/f.bin"), {"Range": "bytes=1000-", "If-Range": lm})
        ck(st == 206 and body == data[1000:], "Range + If-Range (date): 206", st)
        st, _, _, _ = _get(ng.url("/missing.zip"))
        ck(st == 404, "missing file: 404", st)
        log = ng.access_log()
        ck(len(log) >= 7 and any(r["range"] == "bytes=1000-" and r["status"] == 206 for r in log)
           and any(r["status"] == 304 and r["sent"] == 0 for r in log),
           "access_log() parsed (%d entries, Range and 304 recorded)" % len(log))
        master = ng.pid
        workers = _children(master)
        users = set()
        for w in workers:
            try:
                users.add(os.stat("/proc/%d" % w).st_uid)
            except OSError:
                pass
        ck(workers and users == {os.geteuid()}, "workers %s run as uid %s" % (workers, users))
    ck(not _alive(master) and not any(_alive(w) for w in workers),
       "stop(): master %d and workers gone" % master)
    ck(os.path.isdir(prefix), "prefix passed in is kept")


def _selftest_fault(ck, root, data):
    print("FaultServer in %s:" % root)
    size = len(data)
    with FaultServer(root) as fs:
        u = fs.url("/f.bin")
        st, hd, body, err = _get(u)
        etag, lm = hd.get("etag"), hd.get("last-modified")
        ck(st == 200 and body == data and etag and lm and hd.get("content-length") == str(size),
           "GET 200, Content-Length, ETag %s, Last-Modified" % etag, (st, err))
        st, _, body, _ = _get(u, {"If-None-Match": etag})
        r = fs.last("/f.bin")
        ck(st == 304 and body == b"" and r["sent"] == 0 and r["if_none_match"] == etag,
           "If-None-Match: 304, 0 bytes sent (recorded)", (st, r))
        st, _, _, _ = _get(u, {"If-None-Match": 'W/"x", ' + etag})
        ck(st == 304, "If-None-Match list with the tag: 304", st)
        st, _, _, _ = _get(u, {"If-Modified-Since": lm})
        ck(st == 304, "If-Modified-Since = Last-Modified: 304", st)
        st, _, _, _ = _get(u, {"If-Modified-Since": _http_date(_parse_date(lm) - 10)})
        ck(st == 200, "If-Modified-Since older: 200", st)
        st, _, _, _ = _get(u, {"If-None-Match": '"other"', "If-Modified-Since": lm})
        ck(st == 200, "If-None-Match mismatch wins over If-Modified-Since: 200", st)
        st, hd, body, _ = _get(u, {"Range": "bytes=100000-", "If-Range": etag})
        r = fs.last("/f.bin")
        ck(st == 206 and body == data[100000:] and hd.get("content-range") ==
           "bytes 100000-%d/%d" % (size - 1, size) and r["range"] == "bytes=100000-"
           and r["sent"] == size - 100000,
           "Range bytes=100000- + If-Range: 206, tail, recorded Range", (st, hd))
        st, hd, body, _ = _get(u, {"Range": "bytes=10-19"})
        ck(st == 206 and body == data[10:20], "Range bytes=10-19: 206, 10 bytes", st)
        st, hd, body, _ = _get(u, {"Range": "bytes=-5"})
        ck(st == 206 and body == data[-5:], "Range bytes=-5: 206, last 5", st)
        st, hd, _, _ = _get(u, {"Range": "bytes=%d-" % size})
        ck(st == 416 and hd.get("content-range") == "bytes */%d" % size, "Range past end: 416", st)
        st, _, body, _ = _get(u, {"Range": "bytes=100000-", "If-Range": lm})
        ck(st == 206 and body == data[100000:], "If-Range with the date: 206", st)
        st, hd, body, _ = _get(u, method="HEAD")
        ck(st == 200 and body == b"" and hd.get("content-length") == str(size), "HEAD", st)

        fs.set_etag("/f.bin", "v2")
        st, hd, body, _ = _get(u, {"If-None-Match": etag})
        ck(st == 200 and hd.get("etag") == '"v2"' and body == data,
           "set_etag: old If-None-Match now 200 with ETag \"v2\"", (st, hd.get("etag")))
        st, _, body, _ = _get(u, {"Range": "bytes=100000-", "If-Range": etag})
        ck(st == 200 and body == data, "set_etag: old If-Range gives 200 and the whole file", st)
        fs.set_etag("/f.bin", None)
        ck(fs.etag("/f.bin") == etag, "set_etag(None): back to the hash")

        fs.clear()
        fs.plan("/f.bin", ["reset_after:100000", "503:retry_after=2", "429:retry_after=1",
                           "close_after:5000", "drop", "ok"])
        st, _, body, err = _get(u)
        r = fs.last("/f.bin")
        ck(st == 200 and len(body) == 100000 and body == data[:100000] and err is not None
           and r["sent"] == 100000 and r["error"] == "reset",
           "reset_after:100000: client got exactly 100000 bytes, then %s" % err,
           (st, len(body), err, r))
        st, hd, _, _ = _get(u)
        ck(st == 503 and hd.get("retry-after") == "2", "503 with Retry-After: 2", (st, hd))
        st, hd, _, _ = _get(u)
        ck(st == 429 and hd.get("retry-after") == "1", "429 with Retry-After: 1", (st, hd))
        st, _, body, err = _get(u)
        ck(st == 200 and len(body) == 5000 and err == "IncompleteRead",
           "close_after:5000: 5000 bytes then FIN (%s)" % err, (st, len(body), err))
        st, _, body, err = _get(u)
        ck(st is None and err, "drop: no response (%s)" % err, (st, err))
        st, _, body, _ = _get(u)
        ck(st == 200 and body == data, "ok", st)
        st, _, body, _ = _get(u)
        ck(st == 200 and body == data and fs.pending("/f.bin") == [],
           "plan used up: served normally", st)
        ck([r["action"] for r in fs.wait_requests("/f.bin", 7)] ==
           ["reset_after:100000", "503:retry_after=2", "429:retry_after=1", "close_after:5000",
            "drop", "ok", "ok"], "requests() records the actions in order")

        # resume after a reset, as the worker will do it
        fs.clear()
        fs.plan("/f.bin", ["reset_after:100000"])
        st, hd, part, err = _get(u)
        st2, hd2, rest, _ = _get(u, {"Range": "bytes=%d-" % len(part), "If-Range": hd["etag"]})
        rs = fs.wait_requests("/f.bin", 2)
        ck(st2 == 206 and part + rest == data and rs[1]["range"] == "bytes=%d-" % len(part)
           and rs[1]["sent"] == size - len(part),
           "resume: Range: bytes=%d- recorded, 206, bytes add up" % len(part), (st2, rs))

        # stall: a client with a 1 s read timeout gives up; one with 5 s gets everything
        fs.plan("/f.bin", ["stall:3", "stall:1:after=1000"])
        t0 = time.monotonic()
        st, _, body, err = _get(u, timeout=1)
        ck(st == 200 and len(body) == 64 and err in ("timeout", "TimeoutError")
           and time.monotonic() - t0 < 2.5,
           "stall:3: 64 bytes then silence, 1 s client timeout fires (%s)" % err,
           (st, len(body), err))
        t0 = time.monotonic()
        st, _, body, err = _get(u, timeout=5)
        dt = time.monotonic() - t0
        ck(st == 200 and body == data and 0.9 < dt < 4, "stall:1:after=1000: whole body after "
           "%.1f s" % dt, (st, len(body), err))
        fs.wait_requests("/f.bin", 2, timeout=10)

        fs.plan("/f.bin", ["slow:400000"])
        t0 = time.monotonic()
        st, _, body, _ = _get(u)
        dt = time.monotonic() - t0
        ck(st == 200 and body == data and dt > 0.8 * size / 400000,
           "slow:400000: %d bytes in %.2f s" % (size, dt))

        # keep-alive: 200, 304, 206 and a 503 on one connection
        c = http.client.HTTPConnection(LOCALHOST, fs.port, timeout=5)
        fs.plan("/f.bin", ["ok", "ok", "ok", "503"])
        got = []
        for hdr in ({}, {"If-None-Match": etag}, {"Range": "bytes=5-9"}, {}):
            c.request("GET", "/f.bin", headers=hdr)
            r = c.getresponse()
            got.append((r.status, len(r.read())))
        c.close()
        ck(got == [(200, size), (304, 0), (206, 5), (503, len(b"503 fault injected by httpfix\n"))],
           "one keep-alive connection: %s" % got)
        st, _, _, _ = _get(fs.url("/nope.zip"))
        ck(st == 404, "missing file: 404", st)
        st, _, _, _ = _get(fs.url("/../../etc/passwd"))
        ck(st == 404, "no way out of root_dir", st)
        # stop() while a response is stalled: prompt
        fs.plan("/f.bin", ["stall:30"])
        n = len(fs.requests("/f.bin")) + 1
        t = threading.Thread(target=_get, args=(u,), kwargs={"timeout": 60}, daemon=True)
        t.start()
        fs.wait_requests("/f.bin", n, done=False, timeout=5)
        time.sleep(0.2)
        t0 = time.monotonic()
    dt = time.monotonic() - t0
    ck(dt < 3, "stop() with a 30 s stall in progress took %.2f s" % dt)
    t.join(5)
    ck(not t.is_alive(), "the stalled client was let go")


def _selftest_curl(ck, root, data):
    """With the curl tool (libcurl, as the worker): retry on 503, resume after a reset."""
    curl = shutil.which("curl")
    if not curl:
        print("curl: not installed, skipped")
        return
    print("curl (%s):" % curl)
    out = os.path.join(root, "dl.bin")
    with FaultServer(root) as fs:
        u = fs.url("/f.bin")
        fs.plan("/f.bin", ["503:retry_after=1", "reset_after:100000"])
        r = subprocess.run([curl, "-sS", "-o", out, "--retry", "3", "--retry-delay", "0", u],
                           capture_output=True, text=True, timeout=60)
        with open(out, "rb") as f:
            got = f.read()
        rs = fs.settle()
        ck(r.returncode != 0 and len(got) == 100000,
           "curl --retry: 503 then reset after 100000 bytes: rc %d, %d bytes kept" % (
               r.returncode, len(got)), r.stderr.strip())
        r = subprocess.run([curl, "-sS", "-o", out, "-C", "-", "-H", "If-Range: " + fs.etag(
            "/f.bin"), u], capture_output=True, text=True, timeout=60)
        with open(out, "rb") as f:
            got = f.read()
        rs = fs.settle()
        ck(r.returncode == 0 and got == data and rs[-1]["range"] == "bytes=100000-"
           and rs[-1]["status"] == 206,
           "curl -C - with If-Range: Range: %s, 206, file complete" % rs[-1]["range"],
           r.stderr.strip())
        fs.plan("/f.bin", ["stall:10"])
        t0 = time.monotonic()
        r = subprocess.run([curl, "-sS", "-o", out, "-y", "1", "-Y", "1000", u],
                           capture_output=True, text=True, timeout=60)
        dt = time.monotonic() - t0
        ck(r.returncode == 28 and dt < 5, "curl --speed-time 1 on stall:10: rc 28 after %.1f s"
           % dt, r.stderr.strip())


def selftest():
    ck = _Check()
    old = os.umask(0o077)
    root = tempfile.mkdtemp(prefix="httpfix-selftest-")      # 0700, owned by us (root)
    os.umask(old)
    try:
        st = os.stat(root)
        print("root dir %s mode %o uid %d (euid %d)" % (root, st.st_mode & 0o777, st.st_uid,
                                                        os.geteuid()))
        data = hashlib.sha256(b"httpfix").digest() * (300000 // 32)   # 300,000 bytes
        path = os.path.join(root, "f.bin")
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        _selftest_nginx(ck, root, data)
        _selftest_fault(ck, root, data)
        _selftest_curl(ck, root, data)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("selftest: %d ok, %d failed%s" % (ck.ok, len(ck.bad),
                                            (": " + "; ".join(ck.bad)) if ck.bad else ""))
    return 1 if ck.bad else 0


def main(argv):
    if argv[1:2] == ["selftest"]:
        return selftest()
    if argv[1:2] in (["nginx"], ["fault"]) and len(argv) >= 3:
        srv = Nginx(argv[2]) if argv[1] == "nginx" else FaultServer(argv[2])
        print(srv.url("/"), flush=True)
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):      # also when started with them ignored
            signal.signal(sig, lambda *_: done.set())
        try:
            while not done.wait(0.2):
                pass
        finally:
            srv.stop()
        return 0
    print("usage: httpfix.py selftest | nginx DIR | fault DIR   (serves DIR until ^C)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
