"""harness.py - start the real meshd on a temporary YAML schedule and watch what it does.

Stdlib only.  A test file imports this module, defines `def test_xxx(h):` functions taking a
Harness, and ends with `if __name__ == "__main__": harness.main(globals())`.

    h = Harness(name)          one temp dir per test (kept on failure, removed on success)
    h.config(text)             writes meshd.yaml; FW is the fake worker path, fw(*args) a YAML argv
    h.start()                  meshd -c meshd.yaml, cwd = the temp dir, output in meshd.log
    h.wait_for(pred, timeout, what) / h.wait_log(regex)
    h.stop()                   SIGTERM, wait up to 20 s, then SIGKILL and fail; asserts the code

Every process meshd starts inherits ITEST_MESHD_TOKEN=<unique> from meshd's environment (meshd
passes its own environment on, minus MESHD_* identity variables), so at teardown the harness
finds every live descendant by scanning /proc/<pid>/environ for the token, SIGKILLs it by PID
and fails the test: after meshd has stopped nothing of ours may be left.  (The name must not
start with MESHD_: meshd drops inherited MESHD_* variables from a child's environment.)

Set ITEST_KEEP=1 to keep the temp dirs of passing tests too.

Environment: MESHD_BIN, MESHCTL_BIN, MESHD_FAKE_WORKER (set by CMake for ctest); MESHD_TEST_PG
for the tests declared with `pg` (pg_conninfo()); MESHD_REQUIRE_PG=1 (make test) turns a test
that cannot have its PostgreSQL from a skip into a failure (no_pg()).  Exit codes of main(): 0
all passed, 1 a failure, 77 when the binaries are missing or every test skipped (ctest
SKIP_RETURN_CODE).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

MESHD = os.environ.get("MESHD_BIN", "")
MESHCTL = os.environ.get("MESHCTL_BIN", "")
FW = os.environ.get("MESHD_FAKE_WORKER", "")
# Set by CMake for a sanitizer build, where a spawn costs ~25 ms instead of ~0.5 ms.
SANITIZED = os.environ.get("MESHD_SANITIZED") == "1"

POLL_S = 0.03
DEFAULT_TIMEOUT = 15.0  # generous: a loaded 2-core CI box, maybe under ASan
STOP_TIMEOUT = 20.0


class Failure(AssertionError):
    pass


class Skip(Exception):
    pass


def pg_required():
    """True under MESHD_REQUIRE_PG=1 (make test sets it): a PostgreSQL test may not skip."""
    return os.environ.get("MESHD_REQUIRE_PG") == "1"


def no_pg(why):
    """Ends a test that cannot have its PostgreSQL: a skip, or a failure under
    MESHD_REQUIRE_PG=1 (there it means the test's set-up is wrong, not that the machine
    lacks something)."""
    if pg_required():
        raise Failure("needs PostgreSQL, MESHD_REQUIRE_PG=1: %s" % why)
    raise Skip(why)


def pg_conninfo():
    """The throwaway cluster's superuser conninfo (MESHD_TEST_PG: ctest sets it for the tests
    declared with `pg` in CMakeLists.txt); without it the test skips, or fails (no_pg)."""
    ci = os.environ.get("MESHD_TEST_PG", "")
    if not ci:
        no_pg("ctest gave it no cluster (MESHD_TEST_PG is not set): declare it with `pg` in "
              "its md_test() line in CMakeLists.txt")
    return ci


def psql(url, query, timeout=60):
    """One statement (or several) through psql; its unaligned, tuples-only output."""
    r = subprocess.run(["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", query],
                       capture_output=True, text=True, timeout=timeout)
    check(r.returncode == 0, "psql failed: %s (%s)" % (r.stderr.strip(), query[:200]))
    return r.stdout.strip()


class Database:
    """A fresh database on the test cluster (pg_conninfo), named <prefix>_<random>, migrated
    by meshctl when asked (a registry), recorded in h.notes; the harness's teardown drops it
    whatever the test did."""

    def __init__(self, h, prefix, migrate=False):
        base = pg_conninfo()
        self.admin = base
        self.name = "%s_%s" % (prefix, uuid.uuid4().hex[:10])
        psql(base, "CREATE DATABASE %s" % self.name)
        self.url = "%s dbname=%s" % (base, self.name)  # the last dbname wins
        h.notes.append(self)
        if migrate:
            code, out, err = meshctl("migrate", "--url", self.url, timeout=60)
            eq(0, code, "meshctl migrate: %s" % err)

    def sql(self, query):
        return psql(self.url, query)

    def drop(self):
        psql(self.admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)


def fw(*args):
    """A YAML flow sequence running the fake worker with args (JSON is valid YAML)."""
    return json.dumps([FW] + [str(a) for a in args])


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def eq(want, got, msg=""):
    if want != got:
        raise Failure("%sexpected %r, got %r" % (msg + ": " if msg else "", want, got))


def utc_iso(slot):
    """Unix seconds -> "YYYY-MM-DDTHH:MM:SSZ" (MESHD_SCHEDULED_AT's form)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(slot))


def run_id(job, slot):
    """The run id of a scheduled slot: "<job>@YYYYMMDDTHHMMSSZ"."""
    return "%s@%s" % (job, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(slot)))


def parse_utc_iso(text):
    """"YYYY-MM-DDTHH:MM:SSZ" -> Unix seconds."""
    import calendar
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def log_line_time(line):
    """The Unix time (float) of a meshd log line "2025-01-02T03:04:05.678Z level ..."."""
    import calendar
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z ", line)
    check(m is not None, "log line without a timestamp: %r" % line)
    return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + int(m.group(2)) / 1e3


def node_yaml(h, extra=""):
    """A node: section with the state directory inside the test's temp dir."""
    return "node:\n  name: itest\n  state_dir: %s\n%s" % (json.dumps(h.state_dir), extra)


# ---- processes ---------------------------------------------------------------------------


def pid_alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    # "pid (comm) S ...": the state follows the last ')'.
    state = stat[stat.rfind(")") + 2 :][:1]
    return state not in ("Z", "X", "")


def parent_of(pid):
    """The PPid of pid, or None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def zombies_of(ppid):
    """Zombie processes whose parent is ppid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and not pid_alive(int(d)) and parent_of(int(d)) == ppid:
            out.append(int(d))
    return out


def pids_with_token(token):
    """Every live (non-zombie) process whose environment holds ITEST_MESHD_TOKEN=token."""
    needle = ("ITEST_MESHD_TOKEN=" + token).encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0") and pid_alive(int(d)):
            found.append(int(d))
    return sorted(found)


def read_pids(path):
    """The integers in a pid file (one a line, as the fake worker writes them); [] if absent."""
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


# ---- cgroups ------------------------------------------------------------------------------


def _unescape_mountinfo(field):
    return re.sub(r"\\([0-3][0-7][0-7])", lambda m: chr(int(m.group(1), 8)), field)


def cgroup2_own_dir():
    """This process's cgroup v2 directory (the 0:: line of /proc/self/cgroup under a cgroup2
    mount of /proc/self/mountinfo), or None."""
    own = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                own = line[3:].rstrip("\n")
    if own is None:
        return None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if not right.startswith("cgroup2 "):
                continue
            fields = left.split()
            root, point = _unescape_mountinfo(fields[3]), _unescape_mountinfo(fields[4])
            root = root.rstrip("/") or "/"
            if root == "/" or own == root or own.startswith(root + "/"):
                rest = own[len(root):] if root != "/" else own
                return point.rstrip("/") + "/" + rest.strip("/") if rest.strip("/") else point
    return None


def cgroup_tree_procs(path):
    """Every pid in the cgroup at path and below."""
    pids = []
    for d, _, _ in os.walk(path):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return pids


def remove_cgroup_tree(path, timeout=5.0):
    """Kills whatever is left in the cgroup at path (cgroup.kill) and removes it, deepest first.
    Returns the pids that were still in it."""
    left = cgroup_tree_procs(path)
    if left:
        try:
            with open(os.path.join(path, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while os.path.isdir(path):
        for d, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(d)
            except OSError:
                pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return left


# ---- the harness -------------------------------------------------------------------------


class Harness:
    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="meshd-it-%s-" % name)
        self.token = uuid.uuid4().hex
        self.cfg_path = os.path.join(self.dir, "meshd.yaml")
        self.log_path = os.path.join(self.dir, "meshd.log")
        self.state_dir = os.path.join(self.dir, "state")
        self.proc = None
        self.logf = None
        self.exit_code = None
        self.notes = []
        self.cgroup = None

    # -- files
    def path(self, name):
        return os.path.join(self.dir, name)

    def config(self, text, path=None):
        """Writes text as the schedule (atomically, so a SIGHUP never reads half of it)."""
        path = path or self.cfg_path
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)
        return path

    def read(self, name, default=""):
        try:
            with open(self.path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return default

    def lines(self, name):
        return [l for l in self.read(name).splitlines() if l.strip()]

    def pids(self, name):
        return read_pids(self.path(name))

    def stamps(self, name):
        """Parsed stamp lines: dicts pid, t (float epoch), run_id, at."""
        out = []
        for l in self.lines(name):
            p = l.split()
            if len(p) == 4:
                out.append({"pid": int(p[0]), "t": float(p[1]), "run_id": p[2], "at": p[3]})
        return out

    # -- meshd
    def make_cgroup(self, mark=True):
        """A fresh cgroup v2 for this test's meshd, below this process's own, as systemd's
        Delegate=yes gives one (marked user.delegate=1 unless mark is false); start(cgroup=True)
        puts meshd in it, teardown kills what is left in it and removes it.  Raises Skip when
        none can be made."""
        base = cgroup2_own_dir()
        if base is None:
            raise Skip("no cgroup v2 hierarchy")
        path = os.path.join(base, "meshd-it-%s.%d" % (self.name, os.getpid()))
        try:
            os.mkdir(path)
        except OSError as e:
            raise Skip("cannot make a cgroup in %s: %s" % (base, e))
        if not os.path.exists(os.path.join(path, "cgroup.kill")):
            os.rmdir(path)
            raise Skip("the kernel has no cgroup.kill")
        if mark:
            try:
                os.setxattr(path, "user.delegate", b"1")
            except OSError as e:
                os.rmdir(path)
                raise Skip("cannot mark a cgroup user.delegate: %s" % e)
        self.cgroup = path
        return path

    def start(self, args=None, env=None, log_level="info", config=None, wrap=None, cgroup=False):
        """Starts meshd (under the command prefix wrap, e.g. unshare, when given), in the
        cgroup of make_cgroup() when cgroup is true."""
        check(self.proc is None, "meshd already started")
        e = dict(os.environ)
        e["ITEST_MESHD_TOKEN"] = self.token
        e.pop("MESHD_CONFIG", None)
        e.pop("DATABASE_URL", None)  # a test that wants a registry passes it in env
        e.pop("PORT", None)
        e.pop("MESHD_API_TOKEN", None)
        try:
            with open(config or self.cfg_path) as f:
                cfg_text = f.read()
        except OSError:
            cfg_text = ""
        if not re.search(r"^http:", cfg_text, re.M):
            # Tests run in parallel: without an http: section of its own, a test's meshd
            # listens on any free loopback port (PORT=0 replaces the default 8470).
            e["PORT"] = "0"
        if env:
            e.update(env)
        argv = list(wrap or []) + [MESHD, "-c", config or self.cfg_path]
        if log_level:
            argv += ["--log-level", log_level]
        argv += list(args or [])
        self.logf = open(self.log_path, "ab")
        preexec = None
        if cgroup:
            procs = os.path.join(self.cgroup or self.make_cgroup(), "cgroup.procs")

            def preexec():
                with open(procs, "w") as f:
                    f.write("0")
        self.proc = subprocess.Popen(
            argv, cwd=self.dir, env=e, stdin=subprocess.DEVNULL, stdout=self.logf,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec)
        return self.proc

    # ---- the HTTP API ----------------------------------------------------------------------

    def http_port(self, timeout=DEFAULT_TIMEOUT):
        """The TCP port meshd logged it listens on."""
        self.wait_log(r"http: listening on \S+:\d+", timeout=timeout)
        ports = re.findall(r"http: listening on \S+:(\d+)", self.log())
        return int(ports[-1])  # the latest start's

    def api(self, method, path, token=None, body=None, headers=None, sock=False, timeout=10):
        """One request to meshd's API over TCP (or the unix socket with sock=True).
        Returns (status, headers dict with lower-case names, body bytes)."""
        import http.client
        import socket as socketmod
        if sock:
            path_ = os.path.join(self.state_dir, "meshd.sock")

            class UnixConn(http.client.HTTPConnection):
                def connect(self):
                    self.sock = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
                    self.sock.settimeout(timeout)
                    self.sock.connect(path_)
            conn = UnixConn("localhost", timeout=timeout)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port(), timeout=timeout)
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def api_json(self, method, path, **kw):
        status, _, body = self.api(method, path, **kw)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            raise Failure("%s %s: not JSON (status %d): %r" % (method, path, status, body[:200]))

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        check(self.running(), "meshd is not running (exit %r)" % (self.proc and self.proc.poll()))
        os.kill(self.proc.pid, sig)

    def hup(self):
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def stop(self, expect=0, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to timeout, then SIGKILL and fail; asserts the exit status."""
        check(self.proc is not None, "meshd was never started")
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        code = self.wait_exit(timeout)
        if code is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise Failure("meshd did not exit within %gs of SIGTERM" % timeout)
        eq(expect, code, "meshd exit status")
        return code

    # -- the log
    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_find(self, regex):
        """Every match of regex (re.M) in the log, as match objects."""
        return list(re.finditer(regex, self.log(), re.M))

    def log_count(self, regex):
        return len(self.log_find(regex))

    def wait_log(self, regex, timeout=DEFAULT_TIMEOUT, count=1):
        """Waits until regex matches at least count times; returns the matches."""
        found = []

        def pred():
            found[:] = self.log_find(regex)
            return len(found) >= count

        self.wait_for(pred, timeout, "%d x /%s/ in the log" % (count, regex))
        return found

    def spawned_pids(self, job):
        return [int(m.group(1)) for m in
                self.log_find(r"spawned: job=%s run=\S+ pid=(\d+)" % re.escape(job))]

    def wait_started(self, timeout=DEFAULT_TIMEOUT):
        self.wait_log(r"\bstarted: ", timeout)

    # -- waiting
    def wait_for(self, pred, timeout=DEFAULT_TIMEOUT, what="condition"):
        """Polls pred every POLL_S until it returns a true value (returned); fails after timeout.
        Also fails early when meshd exited unexpectedly (not via stop()/wait_exit()), unless the
        predicate already holds."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if self.proc is not None and self.exit_code is None and self.proc.poll() is not None:
                v = pred()
                if v:
                    return v
                raise Failure("meshd exited (code %r) while waiting for %s"
                              % (self.proc.returncode, what))
            if time.monotonic() > deadline:
                raise Failure("timed out after %gs waiting for %s" % (timeout, what))
            time.sleep(POLL_S)

    def wait_dead(self, pids, timeout=DEFAULT_TIMEOUT, what=None):
        pids = list(pids)
        self.wait_for(lambda: not any(pid_alive(p) for p in pids), timeout,
                      what or "pids %s to die" % pids)

    def wait_file_lines(self, name, n, timeout=DEFAULT_TIMEOUT):
        self.wait_for(lambda: len(self.lines(name)) >= n, timeout,
                      "%d lines in %s" % (n, name))
        return self.lines(name)

    def descendants(self):
        """Live processes carrying this test's token, meshd itself excluded."""
        me = self.proc.pid if self.proc else -1
        return [p for p in pids_with_token(self.token) if p != me]

    # -- teardown
    def teardown(self):
        """Kills meshd and every leftover of this test by PID; returns a list of complaints."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            problems.append("meshd (pid %d) still running at teardown" % self.proc.pid)
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Orphans may take a moment to be reparented/reaped; look twice.
        for _ in range(2):
            left = pids_with_token(self.token)
            for p in left:
                try:
                    with open("/proc/%d/cmdline" % p, "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    cmd = "?"
                problems.append("process left behind: pid %d: %s" % (p, cmd.strip()))
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not left:
                break
            time.sleep(0.2)
        if self.cgroup is not None:
            left = remove_cgroup_tree(self.cgroup)
            if left:
                problems.append("processes left in the test's cgroup: %s" % left)
            if os.path.isdir(self.cgroup):
                problems.append("cannot remove the test's cgroup %s" % self.cgroup)
        if self.logf:
            self.logf.close()
            self.logf = None
        # The databases the test made (Database), once nothing of it can hold a session open.
        for n in self.notes:
            if isinstance(n, Database):
                try:
                    n.drop()
                except Failure as e:
                    problems.append("cannot drop database %s: %s" % (n.name, e))
        return problems


# ---- meshctl -------------------------------------------------------------------------------


def meshctl(*args, cwd=None, timeout=30):
    """Runs meshctl; returns (code, stdout, stderr)."""
    check(MESHCTL and os.access(MESHCTL, os.X_OK), "MESHCTL_BIN not set or not executable")
    e = dict(os.environ)
    e.pop("MESHD_CONFIG", None)
    r = subprocess.run([MESHCTL] + list(args), cwd=cwd, env=e, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


# ---- the runner ----------------------------------------------------------------------------


def _tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


def run_one(name, fn):
    h = Harness(name)
    t0 = time.monotonic()
    err = None
    skipped = None
    try:
        fn(h)
    except Skip as e:
        skipped = str(e)
    except Exception as e:  # noqa: BLE001 - the runner reports every kind of failure
        err = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    problems = h.teardown()
    if problems and err is None and skipped is None:
        err = "teardown:\n  " + "\n  ".join(problems)
    elif problems:
        err = (err or "") + "teardown:\n  " + "\n  ".join(problems)
    dt = time.monotonic() - t0
    if err is not None:
        print("[ FAIL ] %s (%.1fs)" % (name, dt))
        print("  " + err.rstrip().replace("\n", "\n  "))
        print("  kept %s; meshd.log tail:" % h.dir)
        print("    " + _tail(h.log()).replace("\n", "\n    "))
        sys.stdout.flush()
        return "fail"
    if os.environ.get("ITEST_KEEP"):
        print("  kept %s (ITEST_KEEP)" % h.dir)
    else:
        shutil.rmtree(h.dir, ignore_errors=True)
    if skipped is not None:
        print("[ SKIP ] %s: %s" % (name, skipped))
        return "skip"
    print("[ OK ] %s (%.1fs)" % (name, dt))
    sys.stdout.flush()
    return "ok"


def main(namespace, argv=None):
    argv = sys.argv[1:] if argv is None else argv
    for var, path in (("MESHD_BIN", MESHD), ("MESHD_FAKE_WORKER", FW)):
        if not path or not os.access(path, os.X_OK):
            print("skip: %s not set or not executable (%r)" % (var, path))
            sys.exit(77)
    tests = [(k, v) for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    if argv:
        unknown = [a for a in argv if a not in dict(tests)]
        if unknown:
            print("unknown test(s): %s" % " ".join(unknown))
            sys.exit(2)
        tests = [(k, v) for k, v in tests if k in argv]
    res = {"ok": 0, "fail": 0, "skip": 0}
    for name, fn in tests:
        res[run_one(name, fn)] += 1
    line = "%d passed, %d failed" % (res["ok"], res["fail"])
    if res["skip"]:
        line += ", %d skipped" % res["skip"]
    print(line)
    if res["fail"]:
        sys.exit(1)
    # Every test skipped: say so to ctest (SKIP_RETURN_CODE), as tests/t.h does, rather than
    # have the file reported as passed.
    sys.exit(77 if tests and res["skip"] == len(tests) else 0)
