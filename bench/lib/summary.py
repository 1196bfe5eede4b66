#!/usr/bin/env python3
"""Summary table of one bench/run.sh results directory: summary.py DIR"""
import os
import re
import sys

d = sys.argv[1]


def read(name):
    p = os.path.join(d, name)
    return open(p).read() if os.path.exists(p) else ""


def stat(text, label, key="median"):
    m = re.search(r"^%s N=(\d+) (.*)$" % re.escape(label), text, re.M)
    if not m or m.group(1) == "0":
        return None
    kv = dict(x.split("=", 1) for x in m.group(2).replace(" (us)", "").split() if "=" in x)
    return float(kv[key])


def field(text, pattern, cast=float):
    m = re.search(pattern, text, re.M)
    return cast(m.group(1)) if m else None


def f(v, digits=1, scale=1.0, unit=""):
    return "n/a" if v is None else ("%.*f%s" % (digits, v * scale, unit))


rows = []
fp = {s: read("footprint-%s.txt" % s) for s in ("meshd", "supervisord")}
rs = {s: read("restart-%s.txt" % s) for s in ("meshd", "supervisord")}
su = {s: read("startup-%s.txt" % s) for s in ("meshd", "supervisord")}


def both(label, fn):
    rows.append((label, fn("meshd"), fn("supervisord")))


both("RSS, kB (VmRSS after 60 s idle)", lambda s: f(stat(fp[s], "VmRSS_kB"), 0))
both("PSS, kB (smaps_rollup Pss)", lambda s: f(stat(fp[s], "Pss_kB"), 0))
both("threads", lambda s: f(field(fp[s], r"idle_total .* threads=(\d+)"), 0))
both("idle CPU, ms per 60 s", lambda s: f(stat(fp[s], "idle_cpu_ms_per_60s"), 2))
both("idle wake-ups in the window (schedstat runs)", lambda s: f(field(fp[s], r"idle_total .* runs=(\d+)"), 0))
both("idle wake-ups per s", lambda s: f(stat(fp[s], "idle_wakeups_per_s(schedstat_runs)"), 2))
def syscalls(s):
    m = re.search(r"^\s+100\.00\s+\S+\s+\S+\s+(\d+)\s+(?:\d+\s+)?total", fp[s], re.M)
    if m:
        return m.group(1)
    return "0" if "strace -c -f for" in fp[s] else "n/a"  # strace -c prints no table for 0 calls


both("syscalls in 10 s of strace -c -f", syscalls)
for pct in ("median", "p99", "max"):
    both("restart SIGKILL->exec %s, ms" % pct, lambda s, p=pct: f(stat(rs[s], "kill_to_exec", p), 2, 1e-3))
both("restart exit->fork median, ms", lambda s: f(stat(rs[s], "exit_to_fork"), 2, 1e-3))
both("restart trials ok / failed", lambda s: "%s / %s" % (field(rs[s], r"# ok=(\d+)", int), field(rs[s], r"# ok=\d+ failures=(\d+)", int)))
both("start-up to 100 children exec'd, median ms", lambda s: f(stat(su[s], "all_children_exec"), 1, 1e-3))
both("start-up, p99 (= max of 10) ms", lambda s: f(stat(su[s], "all_children_exec", "p99"), 1, 1e-3))
both("stop after SIGTERM, median ms", lambda s: f(stat(su[s], "stop_after_signal"), 1, 1e-3))
both("children left after stop (startup runs)", lambda s: str(sum(int(x) for x in re.findall(r"leftovers_killed=(\d+)", su[s]))) if su[s] else "n/a")
for k in ("k10", "k100"):
    t = read("firing-%s.txt" % k)
    for pct in ("median", "p99", "max"):
        rows.append(("firing lag, %s every-second jobs, %s ms" % (k[1:], pct), f(stat(t, "firing_lag_ms", pct), 2), "no scheduler"))
    rows.append(("  firings got / expected (%s)" % k[1:], "%s / %s" % (field(t, r"got=(\d+)", int), field(t, r"expected=(\d+)", int)), ""))
cm, cv = read("cronlag-meshd.txt"), read("cronlag-vixie.txt")
for pct in ("median", "p99"):
    rows.append(("every-minute job lag (sh+date), %s ms" % pct, f(stat(cm, "cron_lag_ms", pct), 2),
                 "Debian cron: " + f(stat(cv, "cron_lag_ms", pct), 2)))
sc = read("spawnceiling.txt")
for prog in ("true_static", "true"):
    m = re.search(r"^%s\s+fork\s+workers=1 .*lat_median_us=([\d.]+) lat_p99_us=([\d.]+)" % prog, sc, re.M)
    rows.append(("machine: fork+exec+wait of %s, median / p99 us" % ("a static no-op" if prog == "true_static" else "/bin/true"),
                 "%s / %s" % (m.group(1), m.group(2)) if m else "n/a", "(no supervisor)"))

w = max(len(r[0]) for r in rows)
print(open(os.path.join(d, "machine.txt")).read().rstrip())
print()
print("%-*s  %-14s  %s" % (w, "figure", "meshd", "supervisord 4.2"))
for r in rows:
    print("%-*s  %-14s  %s" % (w, r[0], r[1], r[2]))
rss = (stat(fp["meshd"], "VmRSS_kB"), stat(fp["supervisord"], "VmRSS_kB"))
pss = (stat(fp["meshd"], "Pss_kB"), stat(fp["supervisord"], "Pss_kB"))
if all(rss) and all(pss):
    print("\nmemory ratio supervisord/meshd: RSS %.1fx, PSS %.1fx" % (rss[1] / rss[0], pss[1] / pss[0]))
