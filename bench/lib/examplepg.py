"""examplepg.py - what bench/{refresh,validate,remediate}.py share: a throwaway PostgreSQL 15
cluster (tests/pg/pgctl.sh: unix socket, fsync off), the example property roll generated into
it (sql/example), psql, and the machine's own figures to print beside a worker's.

    from examplepg import cluster, example_db, machine, med, psql
    with cluster("/var/tmp/meshd-xbench-%d" % os.getpid()) as pg:
        url, seconds = example_db(pg, parcels=1000000)
        fork_ms, psql_ms = machine(url)
"""
import contextlib
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PGCTL = os.path.join(ROOT, "tests", "pg", "pgctl.sh")
EXAMPLE = os.path.join(ROOT, "sql", "example")


def med(xs):
    return statistics.median(xs)


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def psql(url, *cmds):
    """Runs each command in one psql session; returns the unaligned, tuples-only output."""
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", url]
    for c in cmds:
        args += ["-c", c]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def cluster(directory):
    """A fresh cluster in directory (removed afterwards, whatever happens); yields its
    conninfo (database postgres)."""
    pg = subprocess.run([PGCTL, "start", directory], check=True, capture_output=True,
                        text=True).stdout.strip().splitlines()[-1]
    try:
        yield pg
    finally:
        subprocess.run([PGCTL, "destroy", directory], capture_output=True)


def example_db(pg, parcels, seed=1):
    """Database `example` with the example schema and `parcels` generated parcels.  Returns
    (its conninfo, the generator's seconds).  Quiets NOTICEs for the rest of the process."""
    psql(pg, "CREATE DATABASE example")
    url = pg.replace("dbname=postgres", "dbname=example")
    os.environ["PGOPTIONS"] = "-c client_min_messages=warning"
    for f in sorted(os.listdir(EXAMPLE)):
        if f[:4].isdigit():
            subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-f",
                            os.path.join(EXAMPLE, f)], check=True)
    t0 = time.monotonic()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-v", "parcels=%d" % parcels,
                    "-v", "seed=%d" % seed, "-f", os.path.join(EXAMPLE, "generate.sql")],
                   check=True, capture_output=True)
    return url, time.monotonic() - t0


def machine(url, forks=50, connects=20):
    """The machine's own figures, medians in ms: fork+exec+wait of /bin/true, and a psql
    connect + SELECT 1 to url."""
    t = []
    for _ in range(forks):
        t0 = time.monotonic()
        subprocess.run(["/bin/true"])
        t.append(time.monotonic() - t0)
    fork_ms = med(t) * 1000
    t = []
    for _ in range(connects):
        t0 = time.monotonic()
        psql(url, "SELECT 1")
        t.append(time.monotonic() - t0)
    return fork_ms, med(t) * 1000
