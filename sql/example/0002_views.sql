-- 0002_views.sql - the materialized views the example pipeline refreshes (conf/meshd.yaml,
-- the hourly-view-refresh job).  Safe to apply again (IF NOT EXISTS), with the caveat of
-- 0001_schema.sql: a changed definition goes into a new numbered file.
--
-- The dependency chain the refresh worker must respect:
--
--     parcels ──► market_health ─────────┐
--     parcels ──► top_opportunities ──────┴──► county_opportunities
--     sales   ──► market_health
--
-- county_opportunities reads the other two views, so it must be refreshed after them; its
-- rewrite rule's pg_depend rows say so, which is where a worker finds the order.
--
-- Every view has a UNIQUE index on plain columns, no expression and no WHERE, which is what
-- REFRESH MATERIALIZED VIEW CONCURRENTLY requires (workers-anchors.md §5.1).  The key columns
-- are never NULL (they come from the tables' primary keys or GROUP BY over them): a row with
-- a NULL key never matches its old self, so a concurrent refresh would delete and re-insert it
-- every time (the "TB of WAL" report in §5.1).
--
-- The views are created WITH DATA (the default).  On a fresh database the tables are empty,
-- so that costs nothing, and it leaves them populated: a concurrent refresh of a view created
-- WITH NO DATA fails ("cannot refresh materialized view concurrently" until a first plain one).
--
-- "Recent" means the roll year and the two before it (sale_yr >= asmnt_yr - 2), measured
-- against the data's own roll year rather than today's date, so a view's content depends
-- only on the tables: refreshing unchanged tables gives the same rows, whatever the date.
-- A "qualified" sale is qual_cd '01' (an arm's-length sale in the DOR's coding; the other
-- codes mark sales between relatives, foreclosures, multi-parcel deals and the like, whose
-- prices say little about the market).

-- Market health per county and roll year: how many parcels, their average and total just value,
-- and the recent qualified sales with their median price.
CREATE MATERIALIZED VIEW IF NOT EXISTS property.market_health AS
WITH roll AS (
    SELECT co_no, asmnt_yr,
           count(*)          AS parcels,
           round(avg(jv))    AS avg_jv,     -- avg ignores the rows without a just value
           sum(jv)           AS total_jv
      FROM property.parcels
     GROUP BY co_no, asmnt_yr
), recent AS (
    SELECT co_no, asmnt_yr,
           count(*) AS recent_sales,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY sale_prc) AS median_sale_prc
      FROM property.sales
     WHERE qual_cd = '01' AND sale_prc > 0 AND sale_yr >= asmnt_yr - 2
     GROUP BY co_no, asmnt_yr
)
SELECT roll.co_no,
       c.name                               AS county,    -- NULL for an unknown co_no
       roll.asmnt_yr,
       roll.parcels,
       roll.avg_jv::bigint                  AS avg_jv,
       roll.total_jv,
       coalesce(recent.recent_sales, 0)     AS recent_sales,
       round(recent.median_sale_prc)::bigint AS median_sale_prc
  FROM roll
  LEFT JOIN recent USING (co_no, asmnt_yr)
  LEFT JOIN property.counties c USING (co_no);

CREATE UNIQUE INDEX IF NOT EXISTS market_health_key
    ON property.market_health (co_no, asmnt_yr);

-- Top opportunities: parcels whose recent qualified sale went for less than 60 % of the
-- current just value.  Integer arithmetic (10 * price < 6 * jv) keeps the filter exact.  The
-- price-to-value ratio is what a report sorts on.
CREATE MATERIALIZED VIEW IF NOT EXISTS property.top_opportunities AS
SELECT p.co_no,
       p.parcel_id,
       p.asmnt_yr,
       p.dor_uc,
       p.phy_addr1,
       p.phy_city,
       p.phy_zipcd,
       p.own_name,
       p.jv,
       p.sale_prc1                                  AS sale_prc,
       p.sale_yr1                                   AS sale_yr,
       p.sale_mo1                                   AS sale_mo,
       round(p.sale_prc1::numeric / p.jv, 3)        AS price_to_jv
  FROM property.parcels p
 WHERE p.qual_cd1 = '01'
   AND p.sale_yr1 >= p.asmnt_yr - 2
   AND p.sale_prc1 > 0
   AND p.jv > 0
   AND 10 * p.sale_prc1 < 6 * p.jv;

CREATE UNIQUE INDEX IF NOT EXISTS top_opportunities_key
    ON property.top_opportunities (co_no, parcel_id, asmnt_yr);

-- Opportunities per county: a view over the two views above (the dependency chain), giving a
-- report one row per county: how many opportunities, what share of the roll they are, and how
-- deep the median discount is next to the county's median sale price.
CREATE MATERIALIZED VIEW IF NOT EXISTS property.county_opportunities AS
SELECT m.co_no,
       m.county,
       m.asmnt_yr,
       m.parcels,
       count(t.parcel_id)                                          AS opportunities,
       round(100.0 * count(t.parcel_id) / m.parcels, 2)            AS pct_of_parcels,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t.price_to_jv))::numeric, 3)
                                                                   AS median_price_to_jv,
       m.median_sale_prc
  FROM property.market_health m
  LEFT JOIN property.top_opportunities t USING (co_no, asmnt_yr)
 GROUP BY m.co_no, m.county, m.asmnt_yr, m.parcels, m.median_sale_prc;

CREATE UNIQUE INDEX IF NOT EXISTS county_opportunities_key
    ON property.county_opportunities (co_no, asmnt_yr);
