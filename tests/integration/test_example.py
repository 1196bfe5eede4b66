#!/usr/bin/env python3
"""The example property roll (sql/example/) on the shared throwaway PostgreSQL (MESHD_TEST_PG):
the schema applies twice without change, the generator gives the same rows for the same N and
seed in two fresh databases (and other rows for another seed), the planted defects are there
in the counts generate.sql documents, every view refreshes CONCURRENTLY (so its unique index
qualifies), the view over views shows up in pg_depend, and load.sh generates only once.

No meshd here: this is the data the example schedule works on, not the daemon; the databases
are our own (meshd_ex_<pid>_<name>) and are dropped at the end."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402

EXAMPLE = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                        "sql", "example"))
SCHEMA = sorted(os.path.join(EXAMPLE, f) for f in os.listdir(EXAMPLE)
                if f[:4].isdigit() and f.endswith(".sql"))
VIEWS = ["property.market_health", "property.top_opportunities",
         "property.county_opportunities"]  # dependency order
N = 5000

# The IF NOT EXISTS notices of a second apply are expected; anything worse still shows.
ENV = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")


def psql(url, *args, timeout=120):
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url] + list(args),
                       capture_output=True, text=True, timeout=timeout, env=ENV)
    check(r.returncode == 0, "psql %s failed: %s" % (" ".join(args)[:80], r.stderr))
    return r.stdout.strip()


class Db:
    """A database of our own on the shared cluster, dropped by drop()."""

    def __init__(self, h, name):
        self.admin = harness.pg_conninfo()
        self.name = "meshd_ex_%d_%s" % (os.getpid(), name)
        psql(self.admin, "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)
        psql(self.admin, "-c", "CREATE DATABASE %s" % self.name)
        self.url = "%s dbname=%s" % (self.admin, self.name)  # the last dbname wins
        h.notes.append(self)

    def sql(self, q):
        return psql(self.url, "-Atc", q)

    def apply_schema(self):
        args = []
        for f in SCHEMA:
            args += ["-f", f]
        psql(self.url, *args)

    def generate(self, parcels=N, seed=1):
        psql(self.url, "-v", "parcels=%d" % parcels, "-v", "seed=%d" % seed,
             "-f", os.path.join(EXAMPLE, "generate.sql"))

    def checksum(self, rel, order):
        return self.sql("SELECT count(*) || ':' || md5(string_agg(t::text, E'\\n' ORDER BY %s)) "
                        "FROM %s t" % (order, rel))

    def checksums(self):
        return {
            "parcels": self.checksum("property.parcels", "co_no, parcel_id, asmnt_yr"),
            "sales": self.checksum("property.sales", "co_no, sale_id_cd"),
            "market_health": self.checksum("property.market_health", "co_no, asmnt_yr"),
            "top_opportunities": self.checksum("property.top_opportunities",
                                               "co_no, parcel_id, asmnt_yr"),
            "county_opportunities": self.checksum("property.county_opportunities",
                                                  "co_no, asmnt_yr"),
        }

    def drop(self):
        psql(self.admin, "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)


def run(h, fn):
    try:
        fn()
    finally:
        for n in h.notes:
            if isinstance(n, Db):
                n.drop()


# What the schema holds, to compare before and after a second apply: every relation, column,
# index and view definition in schema property.
CATALOG = """
SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
    SELECT c.relname || ' ' || c.relkind::text || ' ' || coalesce(pg_get_viewdef(c.oid), '') AS x
      FROM pg_class c WHERE c.relnamespace = 'property'::regnamespace
    UNION ALL
    SELECT a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace = 'property'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
     WHERE c.relnamespace = 'property'::regnamespace
    UNION ALL
    SELECT 'counties ' || count(*) FROM property.counties) s
"""


def test_schema_applies_twice_and_data_is_deterministic(h):
    def body():
        a, b = Db(h, "a"), Db(h, "b")
        a.apply_schema()
        first = a.sql(CATALOG)
        a.apply_schema()
        eq(first, a.sql(CATALOG), "the catalog after a second apply")
        eq("67", a.sql("SELECT count(*) FROM property.counties WHERE co_no BETWEEN 11 AND 77"),
           "the 67 Florida counties")
        b.apply_schema()

        a.generate()
        b.generate()
        sums = a.checksums()
        eq(sums, b.checksums(), "the same N and seed in two fresh databases")
        eq(str(N), sums["parcels"].split(":")[0], "parcels generated")
        check(int(sums["sales"].split(":")[0]) > N // 4, "sales generated: %s" % sums["sales"])
        check(int(sums["top_opportunities"].split(":")[0]) > 0,
              "some opportunities: %s" % sums["top_opportunities"])

        # A second run replaces the rows with the same ones; another seed gives other rows
        # (the planted defects stay where they are: they follow the row number).
        a.generate()
        eq(sums, a.checksums(), "generate.sql run again on the same database")
        b.generate(seed=2)
        check(b.checksums()["parcels"] != sums["parcels"], "seed 2 gives other parcels")

    run(h, body)


def test_planted_defects_are_there(h):
    def body():
        db = Db(h, "defects")
        db.apply_schema()
        db.generate()
        want = N // 1000  # generate.sql: N/1000 of each kind when N is a multiple of 1000
        counts = db.sql("""
            SELECT count(*) FILTER (WHERE sale_prc1 > 20 * jv) || ' '
                || count(*) FILTER (WHERE dor_uc IS NULL) || ' '
                || count(*) FILTER (WHERE phy_addr1 IS NULL) || ' '
                || count(*) FILTER (WHERE jv IS NULL) || ' '
                || count(*) FILTER (WHERE own_name IS NULL)
              FROM property.parcels""").split()
        eq(["%d" % want] * 4, counts[:4],
           "cents-as-dollars, no use code, no site address, no just value")
        nulls = int(counts[4])
        check(0 < nulls < N // 20, "some parcels without an owner (about 1.5 %%): %d" % nulls)
        eq(str(want), db.sql("""
            SELECT count(*) FROM (SELECT 1 FROM property.parcels
                                   GROUP BY co_no, asmnt_yr, regexp_replace(parcel_id, '\\D', '', 'g')
                                  HAVING count(*) > 1) d"""), "duplicate-looking parcel ids")
        eq(str(want), db.sql("SELECT count(*) FROM property.parcels WHERE parcel_id LIKE '%-%'"),
           "the duplicates are the dashed ids")
        # The x100 prices reach the sales file too, and are the only qualified sales that far
        # above the just value.
        eq(str(want), db.sql("""
            SELECT count(*) FROM property.sales s JOIN property.parcels p USING (co_no, parcel_id)
             WHERE s.sale_prc > 20 * p.jv"""), "x100 prices in sales")

    run(h, body)


def test_views_refresh_concurrently_in_a_dependency_chain(h):
    def body():
        db = Db(h, "views")
        db.apply_schema()
        # Freshly created (WITH DATA) on empty tables: already populated, so CONCURRENTLY
        # works before any data is there.
        for v in VIEWS:
            db.sql("REFRESH MATERIALIZED VIEW CONCURRENTLY %s" % v)
        db.generate()
        before = db.checksums()
        for v in VIEWS:
            db.sql("REFRESH MATERIALIZED VIEW CONCURRENTLY %s" % v)
            # The index CONCURRENTLY relies on: unique, plain columns, no predicate, valid.
            idx = db.sql("""
                SELECT count(*) FROM pg_index
                 WHERE indrelid = '%s'::regclass AND indisunique AND indisvalid
                   AND indexprs IS NULL AND indpred IS NULL""" % v)
            eq("1", idx, "a plain unique index on %s" % v)
        eq(before, db.checksums(), "a concurrent refresh of unchanged tables changes nothing")

        # A change in the base table reaches the chain's end once refreshed in order.
        db.sql("UPDATE property.parcels SET jv = jv * 10 "
               "WHERE parcel_id IN (SELECT parcel_id FROM property.parcels WHERE co_no = 49 "
               "AND sale_yr1 >= 2023 AND qual_cd1 = '01' AND jv > 0 ORDER BY parcel_id LIMIT 3)")
        for v in VIEWS:
            db.sql("REFRESH MATERIALIZED VIEW CONCURRENTLY %s" % v)
        after = db.checksums()
        check(after["top_opportunities"] != before["top_opportunities"]
              and after["county_opportunities"] != before["county_opportunities"],
              "the change went through the chain: %s" % after)

        # pg_depend: a view's query is its rewrite rule, and the rule depends on what it reads.
        deps = db.sql("""
            SELECT string_agg(r.ev_class::regclass || ' -> ' || d.refobjid::regclass, ', '
                              ORDER BY r.ev_class::regclass::text, d.refobjid::regclass::text)
              FROM (SELECT DISTINCT objid, refobjid FROM pg_depend
                     WHERE classid = 'pg_rewrite'::regclass AND refclassid = 'pg_class'::regclass
                       AND deptype = 'n') d
              JOIN pg_rewrite r ON r.oid = d.objid
             WHERE r.ev_class::regclass::text LIKE 'property.%'
               AND d.refobjid <> r.ev_class""")
        eq("property.county_opportunities -> property.market_health, "
           "property.county_opportunities -> property.top_opportunities, "
           "property.market_health -> property.counties, "
           "property.market_health -> property.parcels, "
           "property.market_health -> property.sales, "
           "property.top_opportunities -> property.parcels", deps, "the views' dependencies")

    run(h, body)


def test_load_sh_generates_once(h):
    def body():
        db = Db(h, "load")
        env = dict(ENV, DATABASE_URL=db.url)
        sh = os.path.join(EXAMPLE, "load.sh")
        r = subprocess.run([sh, "2000"], capture_output=True, text=True, timeout=120, env=env)
        check(r.returncode == 0 and "generated 2000 parcels" in r.stdout,
              "first load.sh: %s %s" % (r.stdout, r.stderr))
        first = db.checksums()
        r = subprocess.run([sh, "3000"], capture_output=True, text=True, timeout=120, env=env)
        check(r.returncode == 0 and "already has rows" in r.stdout,
              "second load.sh: %s %s" % (r.stdout, r.stderr))
        eq(first, db.checksums(), "a second load.sh leaves the data alone")
        env.pop("DATABASE_URL")
        r = subprocess.run([sh], capture_output=True, text=True, timeout=60, env=env)
        eq(2, r.returncode, "load.sh without DATABASE_URL: %s" % r.stderr)

    run(h, body)


if __name__ == "__main__":
    harness.main(globals())
