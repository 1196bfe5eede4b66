-- 0001_schema.sql - the example domain: a Florida property roll (DOR NAL + SDF layouts).
--
-- This is not a meshd migration (those are sql/NNNN_*.sql, embedded in meshd and applied by
-- `meshctl migrate`); it is the data the example pipeline in conf/meshd.yaml works on.  It is
-- applied by sql/example/load.sh (make run does that once for its local database), and it is
-- safe to apply again: every statement is CREATE ... IF NOT EXISTS or an upsert.  IF NOT EXISTS
-- also means a changed definition here does not reach a database that already has the object:
-- change a table or a view in a new numbered file (ALTER, or DROP and CREATE), never in place.
--
-- Why a schema of its own, `property`: make run puts the example into the same database as
-- meshd's registry (the agent_* tables in public).  A separate schema keeps the two apart, lets
-- the refresh worker be pointed at "schema property" as a whole, and makes removing the example
-- one statement: DROP SCHEMA property CASCADE.
--
-- The columns are the real NAL/SDF names in lower case (docs: the 2025 NAL/SDF/NAP users guide;
-- the 165-column NAL header is quoted in workers-anchors.md §4.1), but only the ones the views,
-- the data-quality checks and the reports use: a loader maps the file's header by name, so
-- the other ~110 columns (the JV_*/AV_* classified-use splits, EXMPT_02..EXMPT_82, fiduciary
-- name and address, ...) can be added later without touching these.  Types follow the data:
-- money is whole dollars in the files, so bigint (a county's total just value overflows int);
-- codes that are zero-padded in the files (DOR_UC '001', QUAL_CD '01', zip codes) are text,
-- so '001' does not become 1.

CREATE SCHEMA IF NOT EXISTS property;

COMMENT ON SCHEMA property IS
    'meshd example pipeline: a Florida property roll modelled on the DOR NAL/SDF files';

-- The 67 Florida counties with the DOR's county numbers: 11..77 in alphabetical order of the
-- county names as the DOR sorts them (Miami-Dade is "Dade", 23).  The NAL/SDF file names
-- carry the same number (NAL16P202501.csv is Broward).
CREATE TABLE IF NOT EXISTS property.counties (
    co_no smallint PRIMARY KEY CHECK (co_no BETWEEN 11 AND 77),
    name  text NOT NULL
);

INSERT INTO property.counties (co_no, name) VALUES
    (11, 'Alachua'), (12, 'Baker'), (13, 'Bay'), (14, 'Bradford'), (15, 'Brevard'),
    (16, 'Broward'), (17, 'Calhoun'), (18, 'Charlotte'), (19, 'Citrus'), (20, 'Clay'),
    (21, 'Collier'), (22, 'Columbia'), (23, 'Miami-Dade'), (24, 'DeSoto'), (25, 'Dixie'),
    (26, 'Duval'), (27, 'Escambia'), (28, 'Flagler'), (29, 'Franklin'), (30, 'Gadsden'),
    (31, 'Gilchrist'), (32, 'Glades'), (33, 'Gulf'), (34, 'Hamilton'), (35, 'Hardee'),
    (36, 'Hendry'), (37, 'Hernando'), (38, 'Highlands'), (39, 'Hillsborough'), (40, 'Holmes'),
    (41, 'Indian River'), (42, 'Jackson'), (43, 'Jefferson'), (44, 'Lafayette'), (45, 'Lake'),
    (46, 'Lee'), (47, 'Leon'), (48, 'Levy'), (49, 'Liberty'), (50, 'Madison'),
    (51, 'Manatee'), (52, 'Marion'), (53, 'Martin'), (54, 'Monroe'), (55, 'Nassau'),
    (56, 'Okaloosa'), (57, 'Okeechobee'), (58, 'Orange'), (59, 'Osceola'), (60, 'Palm Beach'),
    (61, 'Pasco'), (62, 'Pinellas'), (63, 'Polk'), (64, 'Putnam'), (65, 'St. Johns'),
    (66, 'St. Lucie'), (67, 'Santa Rosa'), (68, 'Sarasota'), (69, 'Seminole'), (70, 'Sumter'),
    (71, 'Suwannee'), (72, 'Taylor'), (73, 'Union'), (74, 'Volusia'), (75, 'Wakulla'),
    (76, 'Walton'), (77, 'Washington')
ON CONFLICT (co_no) DO UPDATE SET name = EXCLUDED.name;

-- One row per parcel and roll year: the NAL file.  The key is the file's own: a parcel id is
-- unique only within its county, and each year's roll is a new row.
--
-- Deliberately loose: only the key is NOT NULL, and there is no foreign key to counties.  The
-- real files have gaps (no site address, no use code, no owner on a few rows) and the loader
-- must take them as they are; finding them is the validate worker's job, and it can only report
-- what the table was allowed to hold.  A foreign key would also add a trigger call per row to a
-- 10M-row bulk load; "every co_no is a known county" is one of the checks instead.
CREATE TABLE IF NOT EXISTS property.parcels (
    co_no          smallint NOT NULL,  -- county number 11..77 (counties.co_no)
    parcel_id      text     NOT NULL,  -- the county's parcel id, formatted the county's way
    file_t         text,               -- file type: 'R' real property
    asmnt_yr       smallint NOT NULL,  -- assessment (roll) year
    dor_uc         text,               -- DOR land use code, 3 digits: '001' single family...
    pa_uc          text,               -- the property appraiser's own use code
    jv             bigint,             -- just (market) value, whole dollars
    av_sd          bigint,             -- assessed value, school district
    av_nsd         bigint,             -- assessed value, non-school district
    tv_sd          bigint,             -- taxable value, school district
    tv_nsd         bigint,             -- taxable value, non-school district
    jv_hmstd       bigint,             -- just value of homestead property
    lnd_val        bigint,             -- land value
    lnd_sqfoot     bigint,             -- land area, square feet
    imp_qual       text,               -- improvement quality, '1'..'6'
    const_class    text,               -- construction class, '1'..'5'
    eff_yr_blt     smallint,           -- effective year built
    act_yr_blt     smallint,           -- actual year built
    tot_lvg_area   integer,            -- total living area, square feet
    no_buldng      smallint,           -- number of buildings
    no_res_unts    integer,            -- number of residential units
    -- The two most recent sales, as the NAL carries them (the SDF has all of them).
    multi_par_sal1 text,               -- 'M': one sale of several parcels
    qual_cd1       text,               -- sale qualification code: '01' qualified
    vi_cd1         text,               -- vacant/improved at sale: 'V' or 'I'
    sale_prc1      bigint,             -- sale price, whole dollars
    sale_yr1       smallint,
    sale_mo1       smallint,
    or_book1       text,               -- official records book and page of the deed
    or_page1       text,
    clerk_no1      text,
    multi_par_sal2 text,
    qual_cd2       text,
    vi_cd2         text,
    sale_prc2      bigint,
    sale_yr2       smallint,
    sale_mo2       smallint,
    or_book2       text,
    or_page2       text,
    clerk_no2      text,
    own_name       text,
    own_addr1      text,
    own_addr2      text,
    own_city       text,
    own_state      text,               -- a state name or code as the county writes it
    own_zipcd      text,
    s_legal        text,               -- short legal description
    mkt_ar         text,               -- market area
    nbrhd_cd       text,               -- neighbourhood code
    census_bk      text,               -- census block
    phy_addr1      text,               -- site (physical) address
    phy_addr2      text,
    phy_city       text,
    phy_zipcd      text,
    alt_key        text,               -- the appraiser's alternate key
    exmpt_01       bigint,             -- homestead exemption amount
    seq_no         integer,            -- row number in the county's file
    state_par_id   text,               -- statewide parcel id
    PRIMARY KEY (co_no, parcel_id, asmnt_yr)
);

COMMENT ON TABLE property.parcels IS
    'Florida DOR NAL layout (subset of the 165 columns, real names in lower case); example data';

-- One row per sale: the SDF file.  SALE_ID_CD is the county's sale identifier, unique within
-- the county; the parcel's columns (DOR_UC, NBRHD_CD, ...) are repeated as the file has them.
-- Same looseness as parcels, for the same reasons: a sale of a parcel missing from the NAL is
-- a finding, not a load error.
CREATE TABLE IF NOT EXISTS property.sales (
    co_no           smallint NOT NULL,
    sale_id_cd      text     NOT NULL,
    parcel_id       text     NOT NULL,
    asmnt_yr        smallint,
    dor_uc          text,
    nbrhd_cd        text,
    mkt_ar          text,
    census_bk       text,
    sal_chg_cd      text,              -- sale change code
    vi_cd           text,
    or_book         text,
    or_page         text,
    clerk_no        text,
    qual_cd         text,              -- '01' qualified
    sale_yr         smallint,
    sale_mo         smallint,
    sale_prc        bigint,            -- whole dollars
    multi_par_sal   text,
    state_parcel_id text,
    PRIMARY KEY (co_no, sale_id_cd)
);

COMMENT ON TABLE property.sales IS
    'Florida DOR SDF layout (sales, one row per sale; subset of the 23 columns); example data';
