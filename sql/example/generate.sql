-- generate.sql - deterministic example data for the property schema (0001, 0002 applied first).
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -v parcels=50000 -v seed=1 -f sql/example/generate.sql
--
-- REPLACES the contents of property.parcels and property.sales (TRUNCATE, in the same
-- transaction as the fill, so a failure leaves the old rows), then refreshes the three views.
-- sql/example/load.sh runs it only when property.parcels is empty.
--
-- Deterministic: no random(), no now().  Every value of row n comes from PostgreSQL's
-- hashint8extended(n, salt), one salt per column (seed * 64 + k), so the same parcels and seed
-- give the same rows, byte for byte, in any database.  hashint8extended is the hash that hash
-- partitioning stores rows by, so PostgreSQL keeps it stable across versions (pg_upgrade of
-- a hash-partitioned table depends on it).  The arithmetic on top of it is + - * / on float8
-- and integers only, no exp()/ln() whose last bit could differ between C libraries.
--
-- Fast: one INSERT ... SELECT over generate_series for the parcels and one over the parcels for
-- the sales; no per-row function but an inlined SQL one, no loop.  See docs/benchmarks.md
-- ("Example data generator") for the time a million parcels take.
--
-- What the data looks like (parcels = N):
--   counties  Miami-Dade 30 %, Broward 25 %, Palm Beach 20 %, Orange 15 %, Alachua 7 %,
--             Liberty 3 % (the smallest county on the real roll); roll year 2025
--   use       DOR_UC 001 single family 58 %, 004 condominium 20 %, 000 vacant residential 7 %,
--             008/003 multi-family 5 %, 011/017/048 commercial 6 %, 010 vacant commercial 4 %
--   values    just value right-skewed around a per-county median (a product of uniforms,
--             plus a 3 % tail of 3x..10x), rounded to $100; assessed and taxable values
--             follow the homestead rules in outline (Save Our Homes cap, $25k/$50k exemption)
--   sales     45 % of parcels carry a last sale (2015..2024, skewed to recent), half of those a
--             second, older one; 72 % of sales qualified ('01'); about 4 % of the qualified
--             recent ones went for 30..58 % of just value (the top_opportunities view)
--   owners    about 1.5 % of parcels have no owner at all (own_name and address NULL),
--             12 % are companies or trusts, absentee owners have a mailing address elsewhere
--
-- Planted defects, for the validate worker to find.  Chosen by the row number n alone (not by
-- the seed), so their counts are known: with N a multiple of 1000 there are N/1000 of each;
-- for any N, floor((N + 1000 - k) / 1000) rows with n % 1000 = k:
--   k = 137  cents as dollars: sale_prc1 (and its row in sales) is 100x the real price, a
--            qualified 2024 sale; found by sale_prc1 > 20 * jv (no honest row exceeds 1.35x)
--   k = 421  duplicate-looking parcel: a copy of row n-1 (same county, owner, address, values,
--            sales) whose parcel_id is the same digits written with dashes ('4851-...');
--            found by grouping on regexp_replace(parcel_id, '\D', '', 'g')
--   k = 613  missing dor_uc (use code)
--   k = 614  missing phy_addr1 (site address)
--   k = 615  missing jv (just value)
-- For N = 5000 that is 5 of each; for N = 50000 (make run), 50 of each.

\if :{?parcels}
\else
\set parcels 50000
\endif
\if :{?seed}
\else
\set seed 1
\endif

-- Refuse anything but integers (the values are pasted into SQL below).
SELECT (:'parcels')::bigint AS parcels, (:'seed')::bigint AS seed \gset g_
\if :{?g_parcels}
\else
\quit
\endif

\set ON_ERROR_STOP 1

-- u(n, salt): a uniform double in [0, 1) from the top 53 bits of the hash.  A one-expression
-- SQL function, so the planner inlines it: no function-call overhead per value.  pg_temp, so
-- nothing of the generator stays in the database.
CREATE FUNCTION pg_temp.u(n bigint, salt bigint) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ((hashint8extended(n, salt) >> 11) & 9007199254740991)::float8
                 / 9007199254740992.0 $$;

BEGIN;

-- The LATERAL subqueries below end in OFFSET 0 so that the planner keeps each one as a step
-- computed once per row: without it, it pulls them up and pastes a value's whole expression
-- into every place that uses it (the just value into a dozen others), which was 3x slower.
-- For the same reason no Memoize: every row's parameters are new, so its cache only costs.
SET LOCAL enable_memoize = off;

TRUNCATE property.sales, property.parcels;

WITH
-- The counties generated, with a cumulative share [lo, hi), a median just value for a single
-- family home, cities and their zip codes, the census county code (FIPS, state 12) and the
-- township numbers the parcel ids start with.
county (co_no, lo, hi, base_jv, cities, zips, fips, twn) AS (VALUES
    (23, 0.00, 0.30, 520000, ARRAY['MIAMI', 'HIALEAH', 'MIAMI BEACH', 'HOMESTEAD', 'DORAL'],
                             ARRAY['33125', '33010', '33139', '33030', '33172'], '086', 52),
    (16, 0.30, 0.55, 480000, ARRAY['FORT LAUDERDALE', 'HOLLYWOOD', 'PEMBROKE PINES', 'CORAL SPRINGS'],
                             ARRAY['33301', '33020', '33024', '33065'], '011', 48),
    (60, 0.55, 0.75, 560000, ARRAY['WEST PALM BEACH', 'BOCA RATON', 'DELRAY BEACH', 'JUPITER'],
                             ARRAY['33401', '33432', '33444', '33458'], '099', 42),
    (58, 0.75, 0.90, 390000, ARRAY['ORLANDO', 'WINTER PARK', 'APOPKA', 'OCOEE'],
                             ARRAY['32801', '32789', '32703', '34761'], '095', 22),
    (11, 0.90, 0.97, 290000, ARRAY['GAINESVILLE', 'ALACHUA', 'HIGH SPRINGS'],
                             ARRAY['32601', '32615', '32643'], '001', 10),
    (49, 0.97, 1.01, 140000, ARRAY['BRISTOL', 'HOSFORD'],
                             ARRAY['32321', '32334'], '077', 1)
),
-- Price level of a sale k years before the 2025 roll, relative to 2025 (a rough market curve;
-- an array, not a power, to stay exact).
age_level (lvl) AS (VALUES (ARRAY[1.00, 0.96, 0.90, 0.80, 0.70, 0.66, 0.63, 0.60, 0.58, 0.56, 0.54]))
INSERT INTO property.parcels (
    co_no, parcel_id, file_t, asmnt_yr, dor_uc, pa_uc, jv, av_sd, av_nsd, tv_sd, tv_nsd,
    jv_hmstd, lnd_val, lnd_sqfoot, imp_qual, const_class, eff_yr_blt, act_yr_blt,
    tot_lvg_area, no_buldng, no_res_unts,
    multi_par_sal1, qual_cd1, vi_cd1, sale_prc1, sale_yr1, sale_mo1, or_book1, or_page1, clerk_no1,
    multi_par_sal2, qual_cd2, vi_cd2, sale_prc2, sale_yr2, sale_mo2, or_book2, or_page2, clerk_no2,
    own_name, own_addr1, own_addr2, own_city, own_state, own_zipcd,
    s_legal, mkt_ar, nbrhd_cd, census_bk, phy_addr1, phy_addr2, phy_city, phy_zipcd,
    alt_key, exmpt_01, seq_no, state_par_id)
SELECT
    c.co_no,
    CASE WHEN g.n % 1000 = 421          -- defect: the same digits, written with dashes
         THEN substr(id.digits, 1, 4) || '-' || substr(id.digits, 5, 2) || '-'
              || substr(id.digits, 7, 3) || '-' || substr(id.digits, 10)
         ELSE id.digits END,
    'R',
    2025,
    CASE WHEN g.n % 1000 = 613 THEN NULL ELSE v.dor_uc END,   -- defect: no use code
    substr(v.dor_uc, 2),
    CASE WHEN g.n % 1000 = 615 THEN NULL ELSE m.jv END,       -- defect: no just value
    m.av_sd, m.av_nsd,
    greatest(m.av_sd - CASE WHEN m.hmstd THEN 25000 ELSE 0 END, 0),
    greatest(m.av_nsd - CASE WHEN m.hmstd THEN 50000 ELSE 0 END, 0),
    CASE WHEN m.hmstd THEN m.jv END,
    m.lnd_val,
    CASE WHEN v.dor_uc = '004' THEN NULL ELSE 4000 + floor(pg_temp.u(s.src, :g_seed * 64 + 10) * 16000)::bigint END,
    CASE WHEN v.vacant THEN NULL ELSE (1 + floor(pg_temp.u(s.src, :g_seed * 64 + 11) * 6))::text END,
    CASE WHEN v.vacant THEN NULL ELSE (1 + floor(pg_temp.u(s.src, :g_seed * 64 + 12) * 5))::text END,
    CASE WHEN v.vacant THEN NULL ELSE b.act_yr + floor((2025 - b.act_yr) * pg_temp.u(s.src, :g_seed * 64 + 13) / 2)::int END,
    CASE WHEN v.vacant THEN NULL ELSE b.act_yr END,
    CASE WHEN v.vacant THEN NULL
         WHEN v.dor_uc = '004' THEN 550 + floor(pg_temp.u(s.src, :g_seed * 64 + 14) * 1400)::int
         WHEN v.dor_uc IN ('011', '017', '048', '003') THEN 3000 + floor(pg_temp.u(s.src, :g_seed * 64 + 14) * 45000)::int
         ELSE 900 + floor(pg_temp.u(s.src, :g_seed * 64 + 14) * 2600)::int END,
    CASE WHEN v.vacant THEN 0 WHEN v.dor_uc = '008' THEN 1 + floor(pg_temp.u(s.src, :g_seed * 64 + 15) * 3)::int ELSE 1 END,
    CASE v.dor_uc WHEN '001' THEN 1 WHEN '004' THEN 1
                  WHEN '008' THEN 2 + floor(pg_temp.u(s.src, :g_seed * 64 + 16) * 8)::int
                  WHEN '003' THEN 10 + floor(pg_temp.u(s.src, :g_seed * 64 + 16) * 190)::int
                  ELSE 0 END,
    -- Last sale.
    CASE WHEN sa.has1 AND pg_temp.u(s.src, :g_seed * 64 + 20) < 0.02 THEN 'M' END,
    sa.qual1,
    CASE WHEN sa.has1 THEN CASE WHEN v.vacant THEN 'V' ELSE 'I' END END,
    sa.prc1,
    sa.yr1,
    sa.mo1,
    CASE WHEN sa.has1 THEN (20000 + floor(pg_temp.u(s.src, :g_seed * 64 + 21) * 15000)::int)::text END,
    CASE WHEN sa.has1 THEN (1 + floor(pg_temp.u(s.src, :g_seed * 64 + 22) * 4999)::int)::text END,
    CASE WHEN sa.has1 THEN sa.yr1 || lpad(floor(pg_temp.u(s.src, :g_seed * 64 + 23) * 999999)::int::text, 6, '0') END,
    -- The sale before it.
    NULL,
    sa.qual2,
    CASE WHEN sa.has2 THEN CASE WHEN v.vacant THEN 'V' ELSE 'I' END END,
    sa.prc2,
    sa.yr2,
    sa.mo2,
    CASE WHEN sa.has2 THEN (10000 + floor(pg_temp.u(s.src, :g_seed * 64 + 24) * 10000)::int)::text END,
    CASE WHEN sa.has2 THEN (1 + floor(pg_temp.u(s.src, :g_seed * 64 + 25) * 4999)::int)::text END,
    CASE WHEN sa.has2 THEN sa.yr2 || lpad(floor(pg_temp.u(s.src, :g_seed * 64 + 26) * 999999)::int::text, 6, '0') END,
    -- Owner: none, the occupant (homestead), or an absentee with a mailing address elsewhere.
    o.own_name,
    CASE WHEN o.own_name IS NULL THEN NULL WHEN o.absentee THEN o.away_addr ELSE a.addr END,
    NULL,
    CASE WHEN o.own_name IS NULL THEN NULL WHEN o.absentee THEN o.away_city ELSE a.city END,
    CASE WHEN o.own_name IS NULL THEN NULL WHEN o.absentee THEN o.away_state ELSE 'FL' END,
    CASE WHEN o.own_name IS NULL THEN NULL WHEN o.absentee THEN o.away_zip ELSE a.zip END,
    format('%s SUB PB %s-%s LOT %s BLK %s', a.street, 10 + (s.src % 190), 1 + (s.src % 97),
           1 + (s.src % 40), 1 + (s.src / 40) % 30),
    lpad(floor(pg_temp.u(s.src, :g_seed * 64 + 30) * 40)::int::text, 2, '0'),
    lpad(floor(pg_temp.u(s.src, :g_seed * 64 + 31) * 400)::int::text, 4, '0'),
    '12' || c.fips || lpad(floor(pg_temp.u(s.src, :g_seed * 64 + 32) * 10000000)::int::text, 7, '0'),
    CASE WHEN g.n % 1000 = 614 THEN NULL ELSE a.addr END,    -- defect: no site address
    CASE WHEN v.dor_uc = '004' THEN 'UNIT ' || (100 + s.src % 1900) END,
    a.city,
    a.zip,
    (1000000 + s.src)::text,
    CASE WHEN m.hmstd THEN 50000 END,
    g.n,
    c.co_no || id.digits
FROM generate_series(1, :g_parcels) AS g (n)
-- src: the row whose hashes make this row; a duplicate-looking row takes its neighbour's.
CROSS JOIN LATERAL (SELECT CASE WHEN g.n % 1000 = 421 THEN g.n - 1 ELSE g.n END AS src OFFSET 0) s
JOIN county c ON pg_temp.u(s.src, :g_seed * 64 + 1) >= c.lo AND pg_temp.u(s.src, :g_seed * 64 + 1) < c.hi
CROSS JOIN age_level
-- Parcel id: township, range, then the row number (which makes it unique): 13 digits.
CROSS JOIN LATERAL (SELECT lpad((c.twn + floor(pg_temp.u(s.src, :g_seed * 64 + 2) * 8)::int)::text, 2, '0')
                           || lpad((30 + floor(pg_temp.u(s.src, :g_seed * 64 + 3) * 14)::int)::text, 2, '0')
                           || lpad(s.src::text, 9, '0') AS digits OFFSET 0) id
-- Use code, and the value multiple it has next to a single family home.
CROSS JOIN LATERAL (SELECT x.dor_uc, x.mult, x.dor_uc IN ('000', '010') AS vacant
                      FROM (SELECT CASE WHEN r < 0.58 THEN '001' WHEN r < 0.78 THEN '004'
                                        WHEN r < 0.85 THEN '000' WHEN r < 0.89 THEN '008'
                                        WHEN r < 0.90 THEN '003' WHEN r < 0.93 THEN '011'
                                        WHEN r < 0.95 THEN '017' WHEN r < 0.96 THEN '048'
                                        ELSE '010' END AS dor_uc
                              FROM (SELECT pg_temp.u(s.src, :g_seed * 64 + 4) AS r) r0) x0
                      CROSS JOIN LATERAL (SELECT x0.dor_uc,
                          CASE x0.dor_uc WHEN '001' THEN 1.0 WHEN '004' THEN 0.6 WHEN '000' THEN 0.25
                                         WHEN '008' THEN 1.6 WHEN '003' THEN 8.0 WHEN '011' THEN 3.0
                                         WHEN '017' THEN 4.0 WHEN '048' THEN 5.0 ELSE 0.8 END AS mult) x OFFSET 0) v
-- Year built (improved parcels).
CROSS JOIN LATERAL (SELECT 1950 + floor(pg_temp.u(s.src, :g_seed * 64 + 5) * 74)::int AS act_yr OFFSET 0) b
-- Just value: median x use multiple x (0.45..1.45) x (0.6..1.4), 3 % of them x3..x10.
CROSS JOIN LATERAL (SELECT (round(c.base_jv * v.mult
                                  * (0.45 + pg_temp.u(s.src, :g_seed * 64 + 6))
                                  * (0.6 + 0.8 * pg_temp.u(s.src, :g_seed * 64 + 7))
                                  * CASE WHEN pg_temp.u(s.src, :g_seed * 64 + 8) < 0.03
                                         THEN 3 + 7 * pg_temp.u(s.src, :g_seed * 64 + 9) ELSE 1 END
                                  / 100) * 100)::bigint AS jv OFFSET 0) j
-- Assessed values.  Homestead (55 % of homes and condos): assessed value capped below just
-- value (Save Our Homes) on both rolls.  Otherwise the school roll is not capped and the
-- non-school roll has the 10 % non-homestead cap.
CROSS JOIN LATERAL (SELECT j.jv, hm.hmstd,
                           CASE WHEN hm.hmstd THEN round(j.jv * cap) ELSE j.jv END::bigint AS av_sd,
                           CASE WHEN hm.hmstd THEN round(j.jv * cap)
                                ELSE round(j.jv * (0.9 + 0.1 * cap)) END::bigint AS av_nsd,
                           CASE WHEN v.vacant THEN j.jv
                                ELSE round(j.jv * (0.2 + 0.3 * pg_temp.u(s.src, :g_seed * 64 + 17))) END::bigint AS lnd_val
                      FROM (SELECT v.dor_uc IN ('001', '004') AND pg_temp.u(s.src, :g_seed * 64 + 18) < 0.55 AS hmstd,
                                   0.55 + 0.45 * pg_temp.u(s.src, :g_seed * 64 + 19) AS cap) hm OFFSET 0) m
-- Sales.  has1: 45 % of parcels, and always the cents-as-dollars rows.  Year skewed to recent,
-- 2024 - floor(10 u^2) (the 2025 roll is as of 1 January 2025); price = just value x market
-- level of that year x a ratio: 0.70..1.30 mostly, 0.30..0.58 for 4 % (below-value buys).
-- The second sale is 1..8 years older and priced 55..90 % of the first.
CROSS JOIN LATERAL (
    SELECT sx.has1, sx.has2,
           CASE WHEN sx.has1 THEN sx.yr1 END AS yr1, CASE WHEN sx.has1 THEN sx.mo1 END AS mo1,
           CASE WHEN sx.has2 THEN sx.yr2 END AS yr2, CASE WHEN sx.has2 THEN sx.mo2 END AS mo2,
           CASE WHEN sx.has1 THEN
               CASE WHEN g.n % 1000 = 137 THEN '01'
                    WHEN q1 < 0.72 THEN '01' WHEN q1 < 0.80 THEN '11' WHEN q1 < 0.88 THEN '12'
                    WHEN q1 < 0.94 THEN '19' ELSE '30' END END AS qual1,
           CASE WHEN sx.has1 THEN
               (round(j.jv * age_level.lvl[2025 - sx.yr1 + 1] * sx.ratio / 100) * 100
                * CASE WHEN g.n % 1000 = 137 THEN 100 ELSE 1 END)::bigint END AS prc1,    -- defect: x100
           CASE WHEN sx.has2 THEN
               CASE WHEN q2 < 0.72 THEN '01' WHEN q2 < 0.85 THEN '11' ELSE '12' END END AS qual2,
           CASE WHEN sx.has2 THEN
               (round(j.jv * age_level.lvl[2025 - sx.yr1 + 1] * sx.ratio
                      * (0.55 + 0.35 * pg_temp.u(s.src, :g_seed * 64 + 40)) / 100) * 100)::bigint END AS prc2
      FROM (SELECT h1 OR g.n % 1000 = 137 AS has1,
                   (h1 OR g.n % 1000 = 137) AND pg_temp.u(s.src, :g_seed * 64 + 41) < 0.5 AS has2,
                   CASE WHEN g.n % 1000 = 137 THEN 2024 ELSE y1 END AS yr1,
                   1 + floor(pg_temp.u(s.src, :g_seed * 64 + 42) * 12)::int AS mo1,
                   CASE WHEN g.n % 1000 = 137 THEN 2024 ELSE y1 END
                       - 1 - floor(pg_temp.u(s.src, :g_seed * 64 + 43) * 8)::int AS yr2,
                   1 + floor(pg_temp.u(s.src, :g_seed * 64 + 44) * 12)::int AS mo2,
                   CASE WHEN g.n % 1000 = 137 THEN 1.0
                        WHEN pg_temp.u(s.src, :g_seed * 64 + 45) < 0.04
                        THEN 0.30 + 0.28 * pg_temp.u(s.src, :g_seed * 64 + 46)
                        ELSE 0.70 + 0.60 * pg_temp.u(s.src, :g_seed * 64 + 46) END AS ratio,
                   pg_temp.u(s.src, :g_seed * 64 + 47) AS q1,
                   pg_temp.u(s.src, :g_seed * 64 + 48) AS q2
              FROM (SELECT pg_temp.u(s.src, :g_seed * 64 + 49) < 0.45 AS h1,
                           2024 - floor(10 * pg_temp.u(s.src, :g_seed * 64 + 50)
                                           * pg_temp.u(s.src, :g_seed * 64 + 50))::int AS y1) y) sx
 OFFSET 0) sa
-- Site address: house number, street, suffix; a city of the county and its zip code.
CROSS JOIN LATERAL (
    SELECT st.street, format('%s %s', 100 + floor(pg_temp.u(s.src, :g_seed * 64 + 51) * 19900)::int, st.street) AS addr,
           c.cities[1 + floor(pg_temp.u(s.src, :g_seed * 64 + 52) * cardinality(c.cities))::int] AS city,
           c.zips[1 + floor(pg_temp.u(s.src, :g_seed * 64 + 52) * cardinality(c.zips))::int] AS zip
      FROM (SELECT (ARRAY['PALM', 'OAK', 'CORAL', 'BAY', 'OCEAN', 'LAKE', 'PINE', 'CYPRESS',
                          'MAGNOLIA', 'HIBISCUS', 'ORANGE', 'SUNSET', 'HARBOR', 'ISLAND', 'RIVER',
                          'MANGROVE', 'FLAMINGO', 'PELICAN', 'CITRUS', 'BISCAYNE', 'ATLANTIC',
                          'GULF', 'SEMINOLE', 'TAMARIND', 'POINCIANA', 'BANYAN', 'HERON', 'EGRET',
                          'SABAL', 'JASMINE'])[1 + floor(pg_temp.u(s.src, :g_seed * 64 + 53) * 30)::int]
                   || ' '
                   || (ARRAY['ST', 'AVE', 'RD', 'DR', 'CT', 'LN', 'WAY', 'BLVD', 'TER', 'PL'])
                      [1 + floor(pg_temp.u(s.src, :g_seed * 64 + 54) * 10)::int] AS street) st
 OFFSET 0) a
-- Owner: 1.5 % none; 12 % companies and trusts; homestead owners live there, 40 % of the
-- others live elsewhere.
CROSS JOIN LATERAL (
    SELECT CASE WHEN ou < 0.015 THEN NULL
                WHEN ou < 0.135 THEN last || ' ' || (ARRAY['HOLDINGS LLC', 'PROPERTIES LLC', 'INVESTMENTS INC',
                                                           'FAMILY TRUST', 'LIVING TRUST', 'REALTY LP'])
                                                    [1 + floor(pg_temp.u(s.src, :g_seed * 64 + 55) * 6)::int]
                ELSE last || ' ' || first END AS own_name,
           NOT m.hmstd AND pg_temp.u(s.src, :g_seed * 64 + 56) < 0.4 AS absentee,
           format('%s %s', 1 + floor(pg_temp.u(s.src, :g_seed * 64 + 57) * 9999)::int,
                  (ARRAY['BROADWAY', 'MAIN ST', 'PARK AVE', 'PEACHTREE RD', 'ELM ST', 'KING ST W'])[1 + w]) AS away_addr,
           (ARRAY['NEW YORK', 'BROOKLYN', 'ATLANTA', 'CHICAGO', 'TAMPA', 'TORONTO'])[1 + w] AS away_city,
           (ARRAY['NY', 'NY', 'GA', 'IL', 'FL', 'ON'])[1 + w] AS away_state,
           (ARRAY['10001', '11201', '30303', '60601', '33602', 'M5H 2N2'])[1 + w] AS away_zip
      FROM (SELECT pg_temp.u(s.src, :g_seed * 64 + 58) AS ou,
                   floor(pg_temp.u(s.src, :g_seed * 64 + 59) * 6)::int AS w,
                   (ARRAY['GARCIA', 'RODRIGUEZ', 'SMITH', 'JOHNSON', 'HERNANDEZ', 'MARTINEZ', 'WILLIAMS',
                          'LOPEZ', 'BROWN', 'GONZALEZ', 'PEREZ', 'JONES', 'DAVIS', 'MILLER', 'SANCHEZ',
                          'WILSON', 'RAMIREZ', 'TORRES', 'DIAZ', 'MOORE', 'CRUZ', 'TAYLOR', 'REYES',
                          'THOMAS', 'FERNANDEZ', 'MORALES', 'JACKSON', 'WHITE', 'ALVAREZ', 'COHEN'])
                       [1 + floor(pg_temp.u(s.src, :g_seed * 64 + 60) * 30)::int] AS last,
                   (ARRAY['MARIA', 'JOSE', 'JAMES', 'MARY', 'CARLOS', 'ANA', 'ROBERT', 'LINDA', 'LUIS',
                          'PATRICIA', 'MICHAEL', 'CARMEN', 'DAVID', 'ROSA', 'JOHN', 'SUSAN', 'JUAN',
                          'BARBARA', 'WILLIAM', 'ELENA'])
                       [1 + floor(pg_temp.u(s.src, :g_seed * 64 + 61) * 20)::int] AS first) ow
 OFFSET 0) o;

-- The sales file: one row per sale the parcels carry (at most two each), with the parcel's
-- columns repeated as the SDF has them.  sale_id_cd is the parcel's row number and the sale's
-- position, unique within the county.  The planted defects come along: the x100 price, and the
-- duplicate-looking parcel's copies of its neighbour's sales.
INSERT INTO property.sales (
    co_no, sale_id_cd, parcel_id, asmnt_yr, dor_uc, nbrhd_cd, mkt_ar, census_bk, sal_chg_cd,
    vi_cd, or_book, or_page, clerk_no, qual_cd, sale_yr, sale_mo, sale_prc, multi_par_sal,
    state_parcel_id)
SELECT p.co_no, lpad(p.seq_no::text, 9, '0') || x.k, p.parcel_id, p.asmnt_yr, p.dor_uc,
       p.nbrhd_cd, p.mkt_ar, p.census_bk, NULL, x.vi_cd, x.or_book, x.or_page, x.clerk_no,
       x.qual_cd, x.sale_yr, x.sale_mo, x.sale_prc, x.multi_par_sal, p.state_par_id
  FROM property.parcels p
 CROSS JOIN LATERAL (VALUES
        (1, p.vi_cd1, p.or_book1, p.or_page1, p.clerk_no1, p.qual_cd1, p.sale_yr1, p.sale_mo1,
            p.sale_prc1, p.multi_par_sal1),
        (2, p.vi_cd2, p.or_book2, p.or_page2, p.clerk_no2, p.qual_cd2, p.sale_yr2, p.sale_mo2,
            p.sale_prc2, p.multi_par_sal2))
       AS x (k, vi_cd, or_book, or_page, clerk_no, qual_cd, sale_yr, sale_mo, sale_prc, multi_par_sal)
 WHERE x.sale_yr IS NOT NULL;

COMMIT;

-- Statistics for the planner before the views are computed from 50k..1M fresh rows.
ANALYZE property.parcels, property.sales;

-- Refresh in dependency order (0002_views.sql).  Plain, not CONCURRENTLY: every row changed,
-- and nothing reads the example while it is being generated.
REFRESH MATERIALIZED VIEW property.market_health;
REFRESH MATERIALIZED VIEW property.top_opportunities;
REFRESH MATERIALIZED VIEW property.county_opportunities;
