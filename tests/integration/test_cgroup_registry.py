#!/usr/bin/env python3
"""A run's CPU time and peak memory from its cgroup land in agent_runs (sql/0003) when the
registry is on: the real meshd in a delegated cgroup (see test_cgroup.py), a database of its own
on the shared throwaway PostgreSQL (MESHD_TEST_PG, set by ctest's pg fixture)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Skip, check, eq, fw, node_yaml  # noqa: E402
from test_cgroup import YEARLY, ctl, status  # noqa: E402


def psql(conninfo, sql):
    r = subprocess.run(["psql", conninfo, "-XAtqc", sql], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, "psql failed: %s" % r.stderr)
    return r.stdout.strip()


class Db:
    """A database meshd_cg_<pid>_<name> on the shared test cluster, dropped at the end."""

    def __init__(self, h):
        base = os.environ.get("MESHD_TEST_PG")
        if not base:
            raise Skip("MESHD_TEST_PG is not set (no throwaway PostgreSQL)")
        self.admin = base
        self.name = "meshd_cg_%d_%s" % (os.getpid(), h.name[-20:].lower())
        psql(base, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)
        psql(base, "CREATE DATABASE %s" % self.name)
        self.url = "%s dbname=%s" % (base, self.name)

    def sql(self, q):
        return psql(self.url, q)

    def drop(self):
        psql(self.admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)


def test_cpu_time_lands_in_agent_runs(h):
    db = Db(h)
    try:
        h.make_cgroup()
        h.config(node_yaml(h) + """
jobs:
  burner:
    command: %s
    schedule: %s
""" % (fw("burn", "300", "exit", "0"), YEARLY))
        h.start(cgroup=True, env={"DATABASE_URL": db.url})
        m = h.wait_log(r"cgroups: (on|off) .*")[0]
        check(m.group(1) == "on", "cgroups are off: %s" % m.group(0))
        h.wait_log(r"registry ready", timeout=30)
        ctl(h, "run", "burner")
        h.wait_for(lambda: db.sql("SELECT count(*) FROM agent_runs WHERE job = 'burner' AND "
                                  "status = 'succeeded'") == "1",
                   30, "the run in agent_runs")
        memory = status(h)["node"]["cgroups"]["memory"]
        h.stop()
        row = db.sql("SELECT cpu_usec, cpu_user_usec, cpu_system_usec, "
                     "coalesce(memory_peak_bytes::text, 'null') FROM agent_runs "
                     "WHERE job = 'burner'").split("|")
        cpu, user, system = int(row[0]), int(row[1]), int(row[2])
        check(200000 <= cpu <= 30000000, "cpu_usec %d for ~0.3 s burned" % cpu)
        check(abs(user + system - cpu) <= cpu * 0.1 + 10000,
              "user %d + system %d vs %d" % (user, system, cpu))
        if memory:
            check(row[3] != "null" and int(row[3]) > 0, "memory_peak_bytes %s" % row[3])
        else:
            eq("null", row[3], "memory_peak_bytes without the memory controller")
        # The migration that added the columns is recorded.
        eq("1", db.sql("SELECT count(*) FROM meshd_migrations WHERE version = 3"), "0003 applied")
    finally:
        db.drop()


if __name__ == "__main__":
    harness.main(globals())
