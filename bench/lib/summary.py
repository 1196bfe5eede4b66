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
# Columns: meshd, meshd with its registry on (when run.sh could start PostgreSQL), supervisord.
COLS = [c for c in ("meshd", "meshd-reg", "supervisord")
        if c != "meshd-reg" or os.path.exists(os.path.join(d, "footprint-meshd-reg.txt"))]
fp = {s: read("footprint-%s.txt" % s) for s in COLS}
rs = {s: read("restart-%s.txt" % s) for s in COLS}
su = {s: read("startup-%s.txt" % s) for s in COLS}


def both(label, fn):
    rows.append((label,) + tuple(fn(c) for c in COLS))


def meshd_only(label, value, other=""):
    """A row with a meshd figure (first column), blank in the others but the last."""
    rows.append((label, value) + ("",) * (len(COLS) - 2) + (other,))


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
        meshd_only("firing lag, %s every-second jobs, %s ms" % (k[1:], pct), f(stat(t, "firing_lag_ms", pct), 2), "no scheduler")
    for pct in ("median", "p99"):
        meshd_only("  last job of each slot (%s), %s ms" % (k[1:], pct), f(stat(t, "slot_last_lag_ms", pct), 2))
    meshd_only("  firings got / expected (%s)" % k[1:], "%s / %s" % (field(t, r"got=(\d+)", int), field(t, r"expected=(\d+)", int)))
cm, cv = read("cronlag-meshd.txt"), read("cronlag-vixie.txt")
for pct in ("median", "p99"):
    meshd_only("every-minute job lag (sh+date), %s ms" % pct, f(stat(cm, "cron_lag_ms", pct), 2),
               "Debian cron: " + f(stat(cv, "cron_lag_ms", pct), 2))
sc = read("spawnceiling.txt")
spawn_us = {}
for prog in ("true_static", "true"):
    for mode in ("fork", "vfork", "posix_spawn"):
        m = re.search(r"^%s\s+%s\s+workers=1 .*lat_median_us=([\d.]+) lat_p99_us=([\d.]+)" % (prog, mode), sc, re.M)
        if m:
            spawn_us[(prog, mode)] = float(m.group(1))
        meshd_only("machine: %s+exec+wait of %s, median / p99 us" % (mode, "a static no-op" if prog == "true_static" else "/bin/true"),
                   "%s / %s" % (m.group(1), m.group(2)) if m else "n/a", "(no supervisor)")

# The issue-9 goals, against this run's own machine figures.
goals = []
v = spawn_us.get(("true_static", "vfork"))
last = stat(read("firing-k10.txt"), "slot_last_lag_ms")
if v and last is not None:
    bound = 2 * (10 * v / 1000.0 / 2)
    goals.append("last job of a 10-job slot, median %.2f ms vs 2 x (10 x vfork %.0f us / 2 cores) = %.2f ms: %s"
                 % (last, v, bound, "met" if last <= bound else "NOT met"))
t = spawn_us.get(("true", "vfork"))
for c in ("meshd", "meshd-reg"):
    k = stat(rs.get(c, ""), "kill_to_exec") if c in rs else None
    if t and k is not None:
        goals.append("%s restart SIGKILL->exec median %.0f us vs 1.5 x one vfork spawn of /bin/true %.0f us = %.0f us: %s"
                     % (c, k, t, 1.5 * t, "met" if k <= 1.5 * t else "NOT met"))

w = max(len(r[0]) for r in rows)
print(open(os.path.join(d, "machine.txt")).read().rstrip())
print()
names = {"supervisord": "supervisord 4.2", "meshd-reg": "meshd+registry"}
print("%-*s  " % (w, "figure") + "  ".join("%-14s" % names.get(c, c) for c in COLS))
for r in rows:
    print("%-*s  " % (w, r[0]) + "  ".join("%-14s" % x for x in r[1:]))
for c in [c for c in COLS if c != "supervisord"]:
    rss = (stat(fp[c], "VmRSS_kB"), stat(fp["supervisord"], "VmRSS_kB"))
    pss = (stat(fp[c], "Pss_kB"), stat(fp["supervisord"], "Pss_kB"))
    if all(rss) and all(pss):
        print("memory ratio supervisord/%s: RSS %.1fx (goal >= 5), PSS %.1fx (goal >= 10)"
              % (c, rss[1] / rss[0], pss[1] / pss[0]))
for g in goals:
    print("goal: " + g)
