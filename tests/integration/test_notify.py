#!/usr/bin/env python3
"""meshd as a systemd Type=notify service: this test plays the service manager with a unix
datagram socket as NOTIFY_SOCKET and a WATCHDOG_USEC, and checks READY after start, watchdog
pings on time (and none while the loop is frozen), RELOADING/READY around a reload, STOPPING
on SIGTERM; that every datagram comes from meshd's own pid (the manager's NotifyAccess=main)
and goes to the advertised socket alone; and that jobs do not inherit the variables."""

import json
import os
import re
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, node_yaml  # noqa: E402


class Manager:
    """The receiving end of NOTIFY_SOCKET: every datagram with the time it arrived and the pid
    of its sender (SO_PASSCRED: the kernel attaches the sender's credentials, as systemd reads
    them to enforce NotifyAccess=main)."""

    def __init__(self, h, abstract=False, name="notify.sock"):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract:
            name = "meshd-test-%d-%d" % (os.getpid(), int(time.time() * 1e6))
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = h.path(name)
            self.sock.bind(path)
            self.env = path
        self.sock.setblocking(False)
        self.msgs = []  # (monotonic time, text, sender pid)

    def drain(self):
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
            except BlockingIOError:
                return
            pid = None
            for level, kind, cred in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", cred[:struct.calcsize("3i")])[0]
            self.msgs.append((time.monotonic(), data.decode(), pid))

    def wait(self, h, pred, what, timeout=10, start=0):
        """Waits for a datagram, among those from index start on, that satisfies pred."""
        def found():
            self.drain()
            return any(pred(m[1]) for m in self.msgs[start:])
        h.wait_for(found, timeout=timeout, what=what)

    def texts(self):
        self.drain()
        return [m[1] for m in self.msgs]

    def senders(self):
        self.drain()
        return set(m[2] for m in self.msgs)

    def close(self):
        self.sock.close()


def fields(msg):
    return dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)


def environ_of(pid):
    """The environment pid was started with (/proc/PID/environ), as a dict."""
    with open("/proc/%d/environ" % pid, "rb") as f:
        raw = f.read().decode(errors="replace")
    return dict(e.split("=", 1) for e in raw.split("\0") if "=" in e)


def unix_dgram_sockets(pid):
    """How many unix datagram sockets pid holds (the sd_notify socket is one)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]$", link)
        if m:
            inodes.add(m.group(1))
    n = 0
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            cols = line.split()
            # Num RefCount Protocol Flags Type St Inode [Path]; Type 0002 is SOCK_DGRAM
            if cols[4] == "0002" and cols[6] in inodes:
                n += 1
    return n


# A job that speaks sd_notify itself, as a systemd-aware agent would: if it finds NOTIFY_SOCKET
# it sends READY=1 there (in meshd's name, were the variable leaked).  It records what it saw.
NOTIFY_AWARE_JOB = r"""
import os, socket, sys
where = os.environ.get("NOTIFY_SOCKET", "")
if where:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1\nSTATUS=sent by a job", "\0" + where[1:] if where[0] == "@" else where)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("NOTIFY_SOCKET=%s\n" % where)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
"""


def config(h):
    h.config(node_yaml(h) + """
jobs:
  tick:
    command: %s
    schedule: "* * * * * *"
  svc:
    command: %s
    schedule: always
""" % (fw("stamp", h.path("ticks")), fw("env", h.path("env.txt"), "loop")))


def test_ready_watchdog_reload_stopping(h):
    config(h)
    m = Manager(h)
    try:
        h.start(env={"NOTIFY_SOCKET": m.env, "WATCHDOG_USEC": "400000"})
        m.wait(h, lambda t: "READY=1" in t, "READY=1")
        ready = [t for t in m.texts() if "READY=1" in t][0]
        # meshd logs each spawn before it sends READY: the line is in the file already.
        check(h.log_find(r"spawned: job=svc"), "READY comes after the first jobs started")
        check("STATUS=2 jobs:" in ready, "a STATUS line with READY: %r" % ready)
        eq(1, sum("READY=1" in t for t in m.texts()), "one READY at start")

        # Pings every 200 ms (half of 400 ms): ~10 in 2 s; generous bounds.
        m.drain()
        n0 = sum(t == "WATCHDOG=1" for t in m.texts())
        time.sleep(2.0)
        pings = sum(t == "WATCHDOG=1" for t in m.texts()) - n0
        check(6 <= pings <= 14, "%d watchdog pings in 2 s (expected ~10)" % pings)
        gaps = [b[0] - a[0] for a, b in zip(m.msgs, m.msgs[1:])
                if a[1] == "WATCHDOG=1" and b[1] == "WATCHDOG=1"]
        check(gaps and max(gaps) < 0.4, "every ping within the 400 ms timeout: max gap %.3f s"
              % max(gaps or [0]))

        # A frozen loop stops the pings (that is the point of the watchdog).
        os.kill(h.pid, signal.SIGSTOP)
        try:
            m.drain()
            n1 = len(m.msgs)
            time.sleep(1.0)
            m.drain()
            eq(0, sum(t == "WATCHDOG=1" for t in m.texts()[n1:]), "no pings while frozen")
        finally:
            os.kill(h.pid, signal.SIGCONT)
        n2 = len(m.texts())
        m.wait(h, lambda t: t == "WATCHDOG=1", "pings again after SIGCONT", start=n2)

        # Reload: RELOADING=1 (with MONOTONIC_USEC), then READY=1.
        n3 = len(m.texts())
        h.hup()
        h.wait_log(r"reloaded: config=")
        m.wait(h, lambda t: "READY=1" in t, "READY after reload", start=n3)
        after = [t for t in m.texts()[n3:] if t != "WATCHDOG=1"]
        check(len(after) >= 2 and "RELOADING=1" in after[0] and "READY=1" in after[1],
              "RELOADING then READY: %r" % after)
        check(int(fields(after[0])["MONOTONIC_USEC"]) > 0, "MONOTONIC_USEC with RELOADING")

        # A failed reload still ends with READY=1 (the old config keeps running).
        with open(h.cfg_path, "a") as f:
            f.write("  broken: {schedule: 'nope'}\n")
        n4 = len(m.texts())
        h.hup()
        h.wait_log(r"reload failed")
        m.wait(h, lambda t: "READY=1" in t, "READY after a failed reload", start=n4)

        # The jobs do not inherit the manager's variables: the environment the service was
        # started with.
        env = environ_of(h.spawned_pids("svc")[0])
        check("ITEST_MESHD_TOKEN" in env, "read the service's environment: %r" % sorted(env))
        for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            check(var not in env, "%s leaked into a job's environment" % var)

        n5 = len(m.texts())
        h.stop()
        rest = [t for t in m.texts()[n5:] if t != "WATCHDOG=1"]
        check(rest and rest[0].startswith("STOPPING=1"), "STOPPING=1 on SIGTERM: %r" % rest)
        eq({h.pid}, m.senders(), "the pids that sent datagrams (meshd's alone)")
    finally:
        m.close()


def test_only_meshd_talks_and_only_to_the_advertised_socket(h):
    """The manager's socket hears READY=1 then STOPPING=1 (no watchdog was asked for), each
    once and from meshd's pid; a second socket beside it, bound but not advertised, hears
    nothing; a job that would speak sd_notify finds no NOTIFY_SOCKET, so it cannot report in
    meshd's name."""
    h.config(node_yaml(h) + """
jobs:
  aware:
    command: ["python3", "-c", %s, %s]
    schedule: always
    restart: never
  svc:
    command: %s
    schedule: always
""" % (json.dumps(NOTIFY_AWARE_JOB), json.dumps(h.path("aware.txt")), fw("loop")))
    m = Manager(h)
    other = Manager(h, name="other.sock")
    try:
        h.start(env={"NOTIFY_SOCKET": m.env})
        m.wait(h, lambda t: "READY=1" in t, "READY=1")
        h.wait_file_lines("aware.txt", 1)
        eq(["NOTIFY_SOCKET="], h.lines("aware.txt"), "what the sd_notify-aware job found")
        check("NOTIFY_SOCKET" not in environ_of(h.spawned_pids("svc")[0]),
              "NOTIFY_SOCKET in a job's environment")
        eq(1, unix_dgram_sockets(h.pid), "meshd's notification socket")
        h.stop()
        eq(["READY=1", "STOPPING=1"], [t.split("\n")[0] for t in m.texts()],
           "the datagrams the manager got")
        eq({h.pid}, m.senders(), "the pids that sent them (meshd's alone)")
        eq([], other.texts(), "datagrams on the socket that was not advertised")
    finally:
        m.close()
        other.close()


def test_abstract_socket_and_no_watchdog(h):
    config(h)
    m = Manager(h, abstract=True)
    try:
        # WATCHDOG_PID of another process: the watchdog is not ours, so no pings.
        h.start(env={"NOTIFY_SOCKET": m.env, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
        m.wait(h, lambda t: "READY=1" in t, "READY=1 on an abstract socket")
        time.sleep(0.6)
        eq(0, sum(t == "WATCHDOG=1" for t in m.texts()), "no pings for another pid's watchdog")
        h.stop()
        check(any(t.startswith("STOPPING=1") for t in m.texts()), "STOPPING=1")
    finally:
        m.close()


def test_without_notify_socket_nothing_changes(h):
    """No NOTIFY_SOCKET, but a WATCHDOG_USEC for meshd's own pid (a manager set-up gone half
    wrong): meshd opens no notification socket and arms no watchdog, a manager socket that
    was not advertised hears nothing, and the jobs do not inherit WATCHDOG_USEC either."""
    config(h)
    m = Manager(h)
    try:
        h.start(env={"WATCHDOG_USEC": "200000"})
        h.wait_file_lines("ticks", 2)
        eq(0, unix_dgram_sockets(h.pid), "unix datagram sockets held by meshd")
        eq([], h.log_find(r"meshd\[\d+\]: notify:"), "no notify chatter without NOTIFY_SOCKET")
        check("WATCHDOG_USEC" not in environ_of(h.spawned_pids("svc")[0]),
              "WATCHDOG_USEC in a job's environment")
        h.stop()
        eq([], m.texts(), "datagrams on the manager's socket, which was not advertised")
    finally:
        m.close()


def test_journald_stream_gets_priority_prefixes(h):
    """Under systemd, stderr is journald's stream ($JOURNAL_STREAM = its dev:inode): each line
    starts with a syslog "<N>" priority, without meshd's own timestamp and ident[pid] (journald
    adds those).  A JOURNAL_STREAM that is not our stderr changes nothing."""
    config(h)
    open(h.log_path, "ab").close()
    st = os.stat(h.log_path)
    h.start(env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
    h.wait_log(r"^<5>started: node=itest")
    h.wait_log(r"^<5>spawned: job=svc")
    h.stop()
    for line in h.log().splitlines():
        check(re.match(r"<[3-7]>", line), "a line without a priority prefix: %r" % line)

    n = len(h.log().splitlines())
    h.proc = None
    h.start(env={"JOURNAL_STREAM": "1:1"})
    h.wait_log(r"^\S+Z notice meshd\[\d+\]: started: node=itest")
    h.stop()
    for line in h.log().splitlines()[n:]:
        check(re.match(r"\d{4}-\d\d-\d\dT", line), "a stamped line: %r" % line)


if __name__ == "__main__":
    harness.main(globals())
