#!/usr/bin/env python3
"""What a process's memory is made of: /proc/PID/smaps summed per mapped file.

    bench/smaps_by_lib.py PID [PID2]

Prints one row per mapping name (a shared library or the executable by file name; [heap],
[stack], anonymous memory as "[anon]"), largest RSS first: RSS, PSS, private (clean + dirty)
kB, and the total.  With two PIDs (e.g. two builds of meshd started the same way) it prints
both side by side and the difference.
"""

import os
import sys

FIELDS = ("Rss", "Pss", "Private_Clean", "Private_Dirty")


def smaps(pid):
    per = {}
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if "-" in parts[0] and not parts[0].endswith(":"):
                path = parts[5] if len(parts) > 5 else ""
                if path.startswith("/"):
                    name = os.path.basename(path)
                elif path:
                    name = path
                else:
                    name = "[anon]"
                per.setdefault(name, dict.fromkeys(FIELDS, 0))
                continue
            key = parts[0].rstrip(":")
            if key in FIELDS and name is not None:
                per[name][key] += int(parts[1])
    out = {}
    for n, v in per.items():
        out[n] = (v["Rss"], v["Pss"], v["Private_Clean"] + v["Private_Dirty"])
    return out


def total(m):
    return tuple(sum(v[i] for v in m.values()) for i in range(3))


def main():
    pids = [int(a) for a in sys.argv[1:]]
    if not 1 <= len(pids) <= 2:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    maps = [smaps(p) for p in pids]
    names = sorted(set().union(*maps), key=lambda n: -max(m.get(n, (0,))[0] for m in maps))
    if len(maps) == 1:
        print("%-28s %8s %8s %8s" % ("mapping", "RSS kB", "PSS kB", "priv kB"))
        for n in names:
            print("%-28s %8d %8d %8d" % ((n,) + maps[0][n]))
        print("%-28s %8d %8d %8d" % (("total",) + total(maps[0])))
        return
    print("%-28s %17s %17s %17s" % ("mapping", "RSS kB  a / b", "PSS kB  a / b", "b - a (RSS, PSS)"))
    zero = (0, 0, 0)
    for n in names + ["total"]:
        a = total(maps[0]) if n == "total" else maps[0].get(n, zero)
        b = total(maps[1]) if n == "total" else maps[1].get(n, zero)
        print("%-28s %8d %8d %8d %8d %8d %8d" % (n, a[0], b[0], a[1], b[1], b[0] - a[0],
                                                 b[1] - a[1]))


if __name__ == "__main__":
    main()
