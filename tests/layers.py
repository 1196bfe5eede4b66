#!/usr/bin/env python3
"""The layers of meshd's code, checked from the object files (ctest `layers`, label unit).

    tests/layers.py BUILD_DIR

derives the call graph between source files from `nm` (a file's undefined symbols, resolved to
the file that defines them) and fails on

  - an edge that goes up: every module has a rank (RANK below) and may call only modules of a
    lower rank; upward news travels through callbacks handed in, never by name
    (docs/architecture.md);
  - a cycle (which an upward edge always makes, but it is named as such);
  - common/ calling into supervisor/ (common is the bottom: it knows no daemon);
  - meshctl's files calling the daemon's, or the other way round (separate link units);
  - a supervisor/ file missing from RANK (a new file must be placed in a layer);
  - an entry of KNOWN that no longer exists (remove it: the table must stay the truth).

KNOWN lists the upward edges that exist today and are being removed (issue 11); each is printed
as a reminder.  A new one fails.
"""

import collections
import glob
import os
import subprocess
import sys

# rank: a module calls only modules of a lower rank.  The layers (docs/architecture.md):
#   60  main.c              composition root
#   50s http -> api -> metrics -> view   driving adapters
#   40s sup, control        the supervisor object: start, reload diff, shutdown; operator control
#   30s scheduler, lease, bus   what triggers a run: cron slots, leases, bus messages
#   20  job                 one job's run lifecycle (19: jobalert, meshd's alerts about it)
#   10s driven adapters     processes, launch, registry (+ its events, the cluster's claims and
#                           leases), state file, orphans, notify, cgroups
#   0s  pure logic          prog, history
RANK = {
    "main": 60,
    "http": 55,
    "http_conn": 54,
    "http_request": 53,
    "api": 52,
    "metrics": 51,
    "view": 50,  # below metrics: meshd_healthy and the state labels are view.c's verdict/words
    "control": 41,
    "sup": 40,
    "scheduler": 34,
    "lease": 33,
    "bus": 32,
    "job": 20,
    "jobalert": 19,  # meshd's own alerts about a job: below job.c, which calls it on run ends
    "proc": 14,
    "proc_out": 13,
    "cluster": 13,
    "regevent": 13,
    "registry": 12,
    "orphans": 10,
    "statefile": 10,
    "notify": 10,
    "cgroup": 10,
    "cgroup_run": 9,
    "runlog": 10,
    "launch": 10,
    "history": 5,
    "prog": 2,
    "md_page_html": 1,  # the web page, generated from supervisor/web/index.html
}

# Objects that stand in for a library: pq_lazy.c is libpq's entry points, loaded on first use
# (the daemon links no libpq); calls into it are calls into libpq.
EXTERNAL = {"pq_lazy"}

# Upward edges tolerated for now, each with its symbols (issue 11 removed the last of them; a
# new one must be a callback instead, not an entry here).
KNOWN = {}

# The link units, by the CMake target whose objects they are.
GROUP_OF_TARGET = {
    "meshd_common": "common",
    "meshd_sup": "daemon",
    "meshd": "daemon",
    "meshd_ctl": "ctl",
    "meshctl": "ctl",
}


def target_objects(build, target):
    """The object files of one CMake target.  The ones its link.txt names when there is one
    (the Makefile generator writes it): a build dir keeps the object of a moved or deleted
    source file, which no longer belongs to the target.  Else every object under its dir."""
    tdir = os.path.join("CMakeFiles", target + ".dir")
    link = os.path.join(build, tdir, "link.txt")
    if os.path.exists(link):
        with open(link) as f:
            words = f.read().split()
        return [os.path.join(build, w) for w in words
                if w.endswith(".o") and w.startswith(tdir + os.sep)]
    return glob.glob(os.path.join(build, tdir, "**", "*.o"), recursive=True)


def objects(build):
    """{module: (group, object path)} for every object of the targets above."""
    found = {}
    for target, target_group in GROUP_OF_TARGET.items():
        for o in target_objects(build, target):
            module = os.path.basename(o).split(".")[0]
            if module in EXTERNAL:
                continue
            group = target_group
            if module == "meshctl" or module.startswith("ctl_"):
                group = "ctl"  # meshctl's files, whichever library holds them
            if module in found and found[module][1] != o:
                sys.exit("layers: two objects named %s: %s and %s" % (module, found[module][1], o))
            found[module] = (group, o)
    return found


def symbols(path):
    out = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "TDBRCG":
            defined.add(f[2])
        elif len(f) == 2 and f[0] == "U":
            undefined.add(f[1])
    return defined, undefined


def graph(objs):
    defs, undefs = {}, {}
    for module, (_, path) in objs.items():
        defs[module], undefs[module] = symbols(path)
    owner = {}
    for module, d in defs.items():
        for s in d:
            owner[s] = module
    edges = collections.defaultdict(set)
    for module, u in undefs.items():
        for s in u:
            if s in owner and owner[s] != module:
                edges[(module, owner[s])].add(s)
    return edges


def cycles(nodes, edges):
    """Tarjan's strongly connected components of more than one node."""
    succ = collections.defaultdict(list)
    for a, b in edges:
        succ[a].append(b)
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: layers.py BUILD_DIR")
    objs = objects(sys.argv[1])
    if "sched" not in objs and "sup" not in objs:
        sys.exit("layers: no supervisor objects under %s (build first)" % sys.argv[1])
    edges = graph(objs)
    group = {m: g for m, (g, _) in objs.items()}
    errors, notes = [], []

    for m in sorted(objs):
        if group[m] == "daemon" and m not in RANK:
            errors.append("%s: not in RANK: place the new file in a layer (tests/layers.py)" % m)

    seen_known = set()
    for (a, b), syms in sorted(edges.items()):
        ga, gb = group[a], group[b]
        names = ", ".join(sorted(syms))
        if ga == "common" and gb != "common":
            errors.append("%s -> %s (%s): common/ calls into %s" % (a, b, names, gb))
            continue
        if {ga, gb} == {"daemon", "ctl"}:
            errors.append("%s -> %s (%s): meshctl and the daemon are separate link units"
                          % (a, b, names))
            continue
        if ga != "daemon" or gb != "daemon":
            continue
        if a not in RANK or b not in RANK or RANK[a] > RANK[b]:
            continue
        if (a, b) in KNOWN:
            seen_known.add((a, b))
            extra = syms - KNOWN[(a, b)]
            if extra:
                errors.append("%s -> %s: new upward calls %s (only %s are known)"
                              % (a, b, ", ".join(sorted(extra)), ", ".join(sorted(KNOWN[(a, b)]))))
            gone = KNOWN[(a, b)] - syms
            if gone:
                errors.append("%s -> %s: %s no longer called: remove from KNOWN"
                              % (a, b, ", ".join(sorted(gone))))
            notes.append("known upward edge %s -> %s (%s): to remove" % (a, b, names))
        else:
            errors.append("%s (rank %d) -> %s (rank %d) calls up: %s; hand a callback down instead"
                          % (a, RANK[a], b, RANK[b], names))
    for k in sorted(set(KNOWN) - seen_known):
        errors.append("%s -> %s is in KNOWN but no longer exists: remove it" % k)

    daemon_edges = {(a, b) for (a, b) in edges if group[a] == group[b] == "daemon"
                    and (a, b) not in KNOWN}
    for comp in cycles({m for m in objs if group[m] == "daemon"}, daemon_edges):
        errors.append("cycle: %s" % " <-> ".join(comp))

    n_edges = sum(1 for (a, b) in edges if group[a] == group[b] == "daemon")
    print("layers: %d daemon modules, %d edges between them, %d known upward edges"
          % (sum(1 for g in group.values() if g == "daemon"), n_edges, len(seen_known)))
    for n in notes:
        print("  note: " + n)
    for e in errors:
        print("  error: " + e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
