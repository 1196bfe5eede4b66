#!/usr/bin/env python3
"""Connection-exhaustion attacks on meshd's HTTP listener, run as a separate process by
test_http.py so that the attack and the test's /health probes do not share a GIL.

    http_attack.py idle PORT N SECONDS        N connections that send nothing; each one the
                                              server closes is opened again at once
    http_attack.py slowloris PORT N SECONDS   N connections that send a never-ending request
                                              head one byte a second; reopened when closed

Runs SECONDS, then closes everything and prints one JSON line of counters on stdout:
{"connects": total connections made, "closed_by_server": how many the server ended,
 "max_open": most connections open (connected) at once, "bytes_sent": ...}.
"""

import errno
import json
import resource
import selectors
import socket
import sys
import time

HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "


def main():
    mode, port, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n + 64, hard), hard))
    sel = selectors.DefaultSelector()
    conns = {}  # socket -> {"connected": bool, "sent": int, "next": monotonic time}
    stats = {"connects": 0, "closed_by_server": 0, "max_open": 0, "bytes_sent": 0}

    def open_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return False
        conns[s] = {"connected": False, "sent": 0, "next": 0.0}
        sel.register(s, selectors.EVENT_WRITE)
        stats["connects"] += 1
        return True

    def drop(s, by_server):
        sel.unregister(s)
        del conns[s]
        s.close()
        if by_server:
            stats["closed_by_server"] += 1

    def send_byte(s, c):
        data = HEAD[c["sent"]:c["sent"] + 1] if c["sent"] < len(HEAD) else b"a"
        try:
            c["sent"] += s.send(data)
            stats["bytes_sent"] += 1
        except BlockingIOError:
            pass
        except OSError:
            drop(s, True)
            return
        c["next"] = time.monotonic() + 1.0

    end = time.monotonic() + secs
    while time.monotonic() < end:
        while len(conns) < n and open_one():
            pass
        for key, events in sel.select(timeout=0.05):
            s = key.fileobj
            c = conns.get(s)
            if c is None:
                continue
            if not c["connected"]:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    drop(s, True)
                    continue
                c["connected"] = True
                sel.modify(s, selectors.EVENT_READ)
                if mode == "slowloris":
                    send_byte(s, c)
                continue
            # Readable: the server answered (an error) or closed.  Either way it is done
            # with this connection: open another.
            try:
                s.recv(65536)
            except OSError:
                pass
            drop(s, True)
        stats["max_open"] = max(stats["max_open"], sum(1 for c in conns.values()
                                                       if c["connected"]))
        if mode == "slowloris":
            now = time.monotonic()
            for s, c in list(conns.items()):
                if c["connected"] and c["next"] <= now:
                    send_byte(s, c)
    for s in list(conns):
        drop(s, False)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
