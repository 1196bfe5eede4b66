#!/usr/bin/env python3
"""meshd as a systemd Type=notify service: this test plays the service manager with a unix
datagram socket as NOTIFY_SOCKET and a WATCHDOG_USEC, and checks READY after start, watchdog
pings on time (and none while the loop is frozen), RELOADING/READY around a reload, STOPPING
on SIGTERM, and that jobs do not inherit the variables."""

import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, fw, node_yaml  # noqa: E402


class Manager:
    """The receiving end of NOTIFY_SOCKET: every datagram with the time it arrived."""

    def __init__(self, h, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "meshd-test-%d-%d" % (os.getpid(), int(time.time() * 1e6))
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = h.path("notify.sock")
            self.sock.bind(path)
            self.env = path
        self.sock.setblocking(False)
        self.msgs = []

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            self.msgs.append((time.monotonic(), data.decode()))

    def wait(self, h, pred, what, timeout=10, start=0):
        """Waits for a datagram, among those from index start on, that satisfies pred."""
        def found():
            self.drain()
            return any(pred(m) for _, m in self.msgs[start:])
        h.wait_for(found, timeout=timeout, what=what)

    def texts(self):
        self.drain()
        return [m for _, m in self.msgs]

    def close(self):
        self.sock.close()


def fields(msg):
    return dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)


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

        # The jobs do not inherit the manager's variables.
        h.wait_for(lambda: os.path.exists(h.path("env.txt")), what="the service wrote its env")
        env = h.read("env.txt")
        for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            check(var + "=" not in env, "%s leaked into a job's environment" % var)

        n5 = len(m.texts())
        h.stop()
        rest = [t for t in m.texts()[n5:] if t != "WATCHDOG=1"]
        check(rest and rest[0].startswith("STOPPING=1"), "STOPPING=1 on SIGTERM: %r" % rest)
    finally:
        m.close()


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
    config(h)
    h.start()
    h.wait_file_lines("ticks", 1)
    eq([], h.log_find(r"meshd\[\d+\]: notify:"), "no notify chatter without NOTIFY_SOCKET")
    h.stop()


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
