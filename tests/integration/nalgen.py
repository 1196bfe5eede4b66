#!/usr/bin/env python3
"""nalgen.py - deterministic Florida DOR NAL-shaped CSV files for meshd-scrape's tests and bench.

Stdlib only.  The header is the real 165-column NAL header in its order (workers-anchors.md
§4.1); the values are made up but shaped like the real ones: whole-dollar integers for the
JV_*/AV_* values, years and months as integers, zero-padded codes ('001', '01', zip codes) as
text, owner names and addresses with about 30 % of the non-empty text fields quoted, some with
commas and doubled quotes inside, a few with Latin-1 letters (é ñ ü ...) written as Latin-1
bytes (the real files are read as latin1), the EXMPT_* columns mostly empty.  Average row about
570 bytes (the real files average 488).  No field ever holds a line break, so file line N is
CSV record N (line 1 is the header, line 2 the first row).  An empty field is always unquoted
(COPY ... CSV reads it as NULL); "" never appears.

Rows are keyed by (CO_NO, PARCEL_ID, ASMNT_YR); one county and one year per file, so PARCEL_ID
alone is unique in a file.  Day versions: day 0 is `rows` rows; day D+1 is day D with
change_pct % of its rows changed (one or two column groups get a different value: a new
valuation, a new owner, a new sale ...), delete_pct % removed and new_pct % new rows inserted at
random places; the other rows keep their bytes and their relative order.  Every row of a day is
a pure function of (seed, county, year, the row's history), so the same arguments give a
byte-identical file, and the keys that changed/vanished/appeared between day D-1 and day D
are known exactly.

Python API
    g = Nal(rows=1000, county=11, year=2025, seed=1, change_pct=1, delete_pct=0.1, new_pct=0.1)
    info = g.write(path, day=0, fmt="csv"|"zip"|"gzip", encoding="latin-1", crlf=False,
                   compresslevel=6)
        -> dict: path, day, rows, bytes (of the file written), csv_bytes, member (zip),
           counts {rows, prev_rows, changed, deleted, new, unchanged},
           changed / deleted / new: sorted lists of keys [co_no, parcel_id, asmnt_yr]
           (all three empty for day 0), seconds
    g.diff(day)          the same counts and key lists without writing a file
    g.keys(day)          the keys of day `day` in file order
    g.row(day, parcel_id) the row's 165 values as str ('' for empty), or None
    generate(path, rows, county=11, year=2025, seed=1, day=0, ..., meta=None)  one call;
                         meta=PATH also writes the returned dict there as JSON
    ddl(table="nal")     CREATE TABLE ... matching the header (lower-case names, integer /
                         bigint / text, PRIMARY KEY (co_no, parcel_id, asmnt_yr))
    HEADER, COLUMNS [(NAME, sqltype)], member_name(county, year) -> 'NAL11P202501.csv'

Bad inputs (src -> dst, streaming; `line` counts file lines, 1 = header, 2 = first row):
    bad_column_count(src, dst, line, delta=1)      delta extra empty fields (or -delta fewer)
    bad_unterminated_quote(src, dst, line=None, column="OWN_NAME")   line None = the last line
    bad_numeric(src, dst, line, column="JV", value="12A50")
    bad_encoding(src, dst, line, column="OWN_NAME", raw=b"\\xe9")   for a UTF-8 declared file
    bad_duplicate_key(src, dst, line_a, line_b)    line_b gets line_a's key (same row count)
    truncate_file(src, dst, fraction=0.5)          e.g. a zip cut in half (bad_truncated_zip)
Each returns a dict saying what it did (line, column, key, ...).

CLI
    nalgen.py --rows N --county 11 --year 2025 --seed S [--day D] [--change-pct 1
              --delete-pct 0.1 --new-pct 0.1] [--zip|--gzip [--level 1..9]] [--utf8] [--crlf]
              [--meta FILE.json] -o FILE
    nalgen.py --ddl [TABLE]
    nalgen.py --selftest                     small end-to-end check of all of the above
    nalgen.py --bad columns|quote|numeric|encoding|dupkey|truncate -i SRC -o DST
              [--line N] [--line-b M] [--column NAME] [--value V] [--delta K] [--fraction F]
A summary (counts, bytes, seconds) goes to stderr; --meta writes the full dict with the keys.
"""

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import random
import sys
import time
import zipfile

# ---- the header ------------------------------------------------------------------------------

_EXMPT = ["EXMPT_%02d" % i for i in range(1, 47)] + ["EXMPT_80", "EXMPT_81", "EXMPT_82"]

HEADER = (
    "CO_NO PARCEL_ID FILE_T ASMNT_YR BAS_STRT ATV_STRT GRP_NO DOR_UC PA_UC SPASS_CD JV JV_CHNG "
    "JV_CHNG_CD AV_SD AV_NSD TV_SD TV_NSD JV_HMSTD AV_HMSTD JV_NON_HMSTD_RESD AV_NON_HMSTD_RESD "
    "JV_RESD_NON_RESD AV_RESD_NON_RESD JV_CLASS_USE AV_CLASS_USE JV_H2O_RECHRGE AV_H2O_RECHRGE "
    "JV_CONSRV_LND AV_CONSRV_LND JV_HIST_COM_PROP AV_HIST_COM_PROP JV_HIST_SIGNF AV_HIST_SIGNF "
    "JV_WRKNG_WTRFNT AV_WRKNG_WTRFNT NCONST_VAL DEL_VAL PAR_SPLT DISTR_CD DISTR_YR LND_VAL "
    "LND_UNTS_CD NO_LND_UNTS LND_SQFOOT DT_LAST_INSPT IMP_QUAL CONST_CLASS EFF_YR_BLT ACT_YR_BLT "
    "TOT_LVG_AREA NO_BULDNG NO_RES_UNTS SPEC_FEAT_VAL MULTI_PAR_SAL1 QUAL_CD1 VI_CD1 SALE_PRC1 "
    "SALE_YR1 SALE_MO1 OR_BOOK1 OR_PAGE1 CLERK_NO1 SAL_CHNG_CD1 MULTI_PAR_SAL2 QUAL_CD2 VI_CD2 "
    "SALE_PRC2 SALE_YR2 SALE_MO2 OR_BOOK2 OR_PAGE2 CLERK_NO2 SAL_CHNG_CD2 OWN_NAME OWN_ADDR1 "
    "OWN_ADDR2 OWN_CITY OWN_STATE OWN_ZIPCD OWN_STATE_DOM FIDU_NAME FIDU_ADDR1 FIDU_ADDR2 "
    "FIDU_CITY FIDU_STATE FIDU_ZIPCD FIDU_CD S_LEGAL APP_STAT CO_APP_STAT MKT_AR NBRHD_CD "
    "PUBLIC_LND TAX_AUTH_CD TWN RNG SEC CENSUS_BK PHY_ADDR1 PHY_ADDR2 PHY_CITY PHY_ZIPCD ALT_KEY "
    "ASS_TRNSFR_FG PREV_HMSTD_OWN ASS_DIF_TRNS CONO_PRV_HM PARCEL_ID_PRV_HMSTD YR_VAL_TRNSF"
).split() + _EXMPT + "SEQ_NO RS_ID MP_ID STATE_PAR_ID SPC_CIR_CD SPC_CIR_YR SPC_CIR_TXT".split()

assert len(HEADER) == 165, len(HEADER)
assert len(set(HEADER)) == 165

# Money and areas: bigint (a county's sums overflow int; a JV of a big parcel nearly does).
_BIGINT = {
    "JV", "JV_CHNG", "AV_SD", "AV_NSD", "TV_SD", "TV_NSD", "JV_HMSTD", "AV_HMSTD",
    "JV_NON_HMSTD_RESD", "AV_NON_HMSTD_RESD", "JV_RESD_NON_RESD", "AV_RESD_NON_RESD",
    "JV_CLASS_USE", "AV_CLASS_USE", "JV_H2O_RECHRGE", "AV_H2O_RECHRGE", "JV_CONSRV_LND",
    "AV_CONSRV_LND", "JV_HIST_COM_PROP", "AV_HIST_COM_PROP", "JV_HIST_SIGNF", "AV_HIST_SIGNF",
    "JV_WRKNG_WTRFNT", "AV_WRKNG_WTRFNT", "NCONST_VAL", "DEL_VAL", "LND_VAL", "NO_LND_UNTS",
    "LND_SQFOOT", "SPEC_FEAT_VAL", "SALE_PRC1", "SALE_PRC2", "ASS_DIF_TRNS",
} | set(_EXMPT)
# Small counts, years, months, county numbers, one-digit codes: integer.
_INTEGER = {
    "CO_NO", "ASMNT_YR", "GRP_NO", "JV_CHNG_CD", "PAR_SPLT", "DISTR_YR", "LND_UNTS_CD",
    "EFF_YR_BLT", "ACT_YR_BLT", "TOT_LVG_AREA", "NO_BULDNG", "NO_RES_UNTS", "SALE_YR1",
    "SALE_MO1", "SALE_YR2", "SALE_MO2", "CONO_PRV_HM", "YR_VAL_TRNSF", "SEQ_NO", "SPC_CIR_YR",
}
# Everything else is text, including the zero-padded codes (DOR_UC '001', QUAL_CD1 '01', zip
# codes, DT_LAST_INSPT '0322', TWN '09S'), as in sql/example/0001_schema.sql.
COLUMNS = [(c, "bigint" if c in _BIGINT else "integer" if c in _INTEGER else "text")
           for c in HEADER]
NUMERIC = {c for c, t in COLUMNS if t != "text"}
KEY = ("CO_NO", "PARCEL_ID", "ASMNT_YR")
_IDX = {c: i for i, c in enumerate(HEADER)}


def ddl(table="nal"):
    """CREATE TABLE for a table holding the file as it is: lower-case names, integer/bigint for
    the numeric columns, text for the rest, the key NOT NULL and the primary key."""
    lines = []
    for c, t in COLUMNS:
        lines.append("    %s %s%s" % (c.lower(), t, " NOT NULL" if c in KEY else ""))
    lines.append("    PRIMARY KEY (co_no, parcel_id, asmnt_yr)")
    return "CREATE TABLE %s (\n%s\n);\n" % (table, ",\n".join(lines))


def member_name(county, year, kind="P", submission=1):
    """The CSV's name inside the county zip: NAL<cc><P|F><yyyy><nn>.csv."""
    return "NAL%02d%s%04d%02d.csv" % (county, kind, year, submission)


# ---- value pools -----------------------------------------------------------------------------
# A row is its key and a few per-row fields plus 13 contiguous column groups ("segments"), each
# picked from a pool of pre-rendered CSV fragments by bits of a per-row hash.  That is what
# makes a million rows cheap: about 17 bytes objects joined per row.

_LAST = ("SMITH JOHNSON WILLIAMS BROWN JONES GARCIA MILLER DAVIS RODRIGUEZ MARTINEZ HERNANDEZ "
         "LOPEZ GONZALEZ WILSON ANDERSON THOMAS TAYLOR MOORE JACKSON MARTIN LEE PEREZ THOMPSON "
         "WHITE HARRIS SANCHEZ CLARK RAMIREZ LEWIS ROBINSON WALKER YOUNG ALLEN KING WRIGHT SCOTT "
         "TORRES NGUYEN HILL FLORES GREEN ADAMS NELSON BAKER HALL RIVERA CAMPBELL MITCHELL CARTER "
         "ROBERTS O'BRIEN MCDONALD VAN DYKE DELA CRUZ ST JEAN").split()
_LAST_ACC = ["MUÑOZ", "PEÑA", "NUÑEZ", "IBÁÑEZ", "GARCÍA", "MÜLLER", "GÓMEZ", "BÉLANGER",
             "CÔTÉ", "FRANÇOIS", "JOSÉPH", "SCHRÖDER", "DÍAZ", "LEÓN", "CASTAÑEDA"]
_FIRST = ("JAMES MARY ROBERT PATRICIA JOHN JENNIFER MICHAEL LINDA DAVID ELIZABETH WILLIAM "
          "BARBARA RICHARD SUSAN JOSEPH JESSICA THOMAS SARAH CARLOS MARIA JUAN ANA LUIS ROSA "
          "KEVIN KAREN BRIAN NANCY GEORGE BETTY EDWARD HELEN").split()
_FIRST_ACC = ["JOSÉ", "MARÍA", "RENÉ", "ANDRÉ", "JÜRGEN", "ZOË", "IÑIGO", "CÉLINE", "RAÚL",
              "HÉCTOR"]
_CORP = ["LLC", "INC", "LP", "LTD", "CORP", "HOLDINGS LLC", "PROPERTIES LLC", "INVESTMENTS INC",
         "REALTY TRUST", "PARTNERS LP"]
_CORP_W = ["OAK", "PALM", "SUNSHINE", "GULF", "CORAL", "BAYSHORE", "CYPRESS", "MAGNOLIA",
           "EVERGLADES", "ATLANTIC", "KEY", "ORANGE BLOSSOM", "HERON", "PELICAN", "TAMPA BAY"]
_STREET = ["MAIN", "OAK", "PINE", "MAPLE", "CEDAR", "ELM", "LAKE", "HILL", "PARK", "WASHINGTON",
           "LINCOLN", "JACKSON", "UNIVERSITY", "ARCHER", "NEWBERRY", "BISCAYNE", "CORAL WAY",
           "FLAGLER", "OCEAN", "SUNRISE", "LAS OLAS", "HIBISCUS", "ROYAL PALM", "DEL PRADO"]
_STYPE = ["ST", "AVE", "RD", "DR", "BLVD", "LN", "CT", "TER", "WAY", "PL", "CIR", "HWY"]
_DIR = ["", "", "", "N ", "S ", "E ", "W ", "NW ", "NE ", "SW ", "SE "]
_CITY_FL = ["GAINESVILLE", "ALACHUA", "HIGH SPRINGS", "NEWBERRY", "MIAMI", "HIALEAH",
            "FORT LAUDERDALE", "HOLLYWOOD", "TAMPA", "ORLANDO", "JACKSONVILLE", "TALLAHASSEE",
            "OCALA", "NAPLES", "SARASOTA", "PENSACOLA", "KEY WEST", "BOCA RATON", "ST. PETERSBURG",
            "PORT ST. LUCIE"]
_CITY_US = [("ATLANTA", "GA"), ("NEW YORK", "NY"), ("CHICAGO", "IL"), ("HOUSTON", "TX"),
            ("CHARLOTTE", "NC"), ("BOSTON", "MA"), ("DENVER", "CO"), ("NASHVILLE", "TN")]
_CITY_FOREIGN = [("MONTRÉAL QC", "CANADA"), ("SÃO PAULO", "BRAZIL"), ("MÜNCHEN", "GERMANY"),
                 ("BOGOTÁ", "COLOMBIA"), ("MÉXICO DF", "MEXICO"), ("TORONTO ON", "CANADA"),
                 ("LONDON", "UNITED KINGDOM"), ("ZÜRICH", "SWITZERLAND")]
_SUBDIV = ["OAK HILLS", "SUNSET ESTATES", "BLUE LAKE", "HAILE PLANTATION", "TOWER OAKS",
           "CORAL GABLES SEC 4", "PALM AIRE", "SPANISH RIVER", "GOLDEN GATE", "MISSION BAY",
           "VILLA MAR", "LAKE FOREST", "PINE RIDGE", "EAGLE POINTE"]
_DOR_UC = (["001"] * 30 + ["000"] * 8 + ["004"] * 6 + ["002"] * 4 + ["003", "008", "010", "011",
           "017", "021", "028", "039", "048", "051", "066", "070", "082", "086", "089", "094"])
_QUAL = ["01", "01", "01", "02", "03", "05", "11", "12", "16", "18", "30", "37", "38", "40"]
_ROUND = 10


def _q(s, force):
    """Renders a text field: empty unquoted, quoted when it needs it or when `force`."""
    if not s:
        return ""
    if force or "," in s or '"' in s:
        return '"' + s.replace('"', '""') + '"'
    return s


def _money(r, lo, hi):
    """A log-uniform whole-dollar amount in [lo, hi], rounded to tens."""
    import math
    v = math.exp(r.uniform(math.log(lo), math.log(hi)))
    return int(v // _ROUND * _ROUND)


def _pick(r, seq):
    return seq[r.randrange(len(seq))]


def _person(r):
    last = _pick(r, _LAST_ACC) if r.random() < 0.015 else _pick(r, _LAST)
    first = _pick(r, _FIRST_ACC) if r.random() < 0.01 else _pick(r, _FIRST)
    return last, first


def _owner_name(r):
    k = r.random()
    last, first = _person(r)
    mid = chr(65 + r.randrange(26))
    if k < 0.35:
        return "%s %s %s" % (last, first, mid)
    if k < 0.55:
        l2, f2 = _person(r)
        return "%s, %s & %s" % (last, first, f2)          # comma: must be quoted
    if k < 0.65:
        l2, f2 = _person(r)
        return "%s %s & %s %s" % (last, first, l2, f2)
    if k < 0.82:
        return "%s %s %s" % (_pick(r, _CORP_W), _pick(r, _CORP_W), _pick(r, _CORP))
    if k < 0.88:
        return "%s %s TRUSTEE, %s FAMILY TRUST" % (last, first, last)
    if k < 0.94:
        return '%s %s "%s"' % (last, first, _pick(r, ["JACK", "BUD", "LUPE", "PEPE", "SKIP"]))
    return "%s %s EST OF" % (last, first)


def _street(r):
    name = "SEÑORA" if r.random() < 0.005 else _pick(r, _STREET)
    return "%d %s%s %s" % (r.randrange(1, 25000), _pick(r, _DIR), name, _pick(r, _STYPE))


def _zip(r, fl=True):
    z = "%05d" % (r.randrange(32003, 34998) if fl else r.randrange(10001, 99950))
    return z + ("-%04d" % r.randrange(1, 9999) if r.random() < 0.25 else "")


def _render(r, values, types, quote_p=0.30):
    """values: str for text, int/None for numbers.  Returns (csv fragment, canonical tuple)."""
    out = []
    canon = []
    for v, t in zip(values, types):
        if t == "n":
            s = "" if v is None else str(v)
            out.append(s)
            canon.append(s)
        else:
            v = v or ""
            out.append(_q(v, r.random() < quote_p))
            canon.append(v)
    return ",".join(out), tuple(canon)


def _types(first, last):
    cols = HEADER[_IDX[first]:_IDX[last] + 1]
    return ["n" if c in NUMERIC else "t" for c in cols], len(cols)


# Each segment: (name, first column, last column, pool bits, builder(r, year) -> values)

def _seg_class(r, year):
    return [_pick(r, ["01", "02", "03", "04"]), _pick(r, ["", "", "1", "2", "3"]),
            r.choice([None, None, r.randrange(1, 10)]), _pick(r, _DOR_UC),
            "%02d" % r.randrange(0, 99), _pick(r, [""] * 9 + ["A", "B"])]


def _seg_val(r, year):
    jv = _money(r, 8000, 6000000)
    hmstd = r.random() < 0.45
    resid = r.random() < 0.8
    av = jv if (not hmstd or r.random() < 0.2) else int(jv * r.uniform(0.45, 0.98)) // 10 * 10
    ex = 50000 if hmstd else 0
    tv_sd = max(0, av - (25000 if hmstd else 0))
    tv_nsd = max(0, av - ex)
    chng = r.random()
    jv_chng = 0 if chng < 0.6 else int(jv * r.uniform(-0.15, 0.25)) // 10 * 10
    jv_chng_cd = None if chng < 0.85 else r.randrange(1, 6)
    vals = [jv, jv_chng, jv_chng_cd, av, av, tv_sd, tv_nsd,
            jv if hmstd else 0, av if hmstd else 0,
            jv if (resid and not hmstd) else 0, av if (resid and not hmstd) else 0,
            jv if not resid else 0, av if not resid else 0]
    # The special-class splits (class use, recharge, conservation, historic, waterfront):
    # mostly empty, one of them filled now and then.
    special = [None] * 12
    if r.random() < 0.04:
        k = r.randrange(6) * 2
        special[k] = int(jv * r.uniform(0.2, 1.0)) // 10 * 10
        special[k + 1] = int(special[k] * r.uniform(0.3, 1.0)) // 10 * 10
    nconst = 0 if r.random() < 0.93 else _money(r, 2000, 900000)
    delv = 0 if r.random() < 0.98 else _money(r, 1000, 100000)
    return vals + special + [nconst, delv]


def _seg_land(r, year):
    vacant = r.random() < 0.15
    sqft = _money(r, 2500, 2000000)
    unts_cd = _pick(r, [1, 1, 2, 3, 4])
    units = sqft if unts_cd == 1 else max(1, sqft // 43560) if unts_cd == 3 else r.randrange(1, 400)
    blt = r.randrange(1905, year)
    return [None if r.random() < 0.97 else r.randrange(1, 4),
            "" if r.random() < 0.9 else "%02d" % r.randrange(1, 20),
            None if r.random() < 0.9 else r.randrange(year - 30, year),
            _money(r, 3000, 3000000), unts_cd, units, sqft,
            "%02d%02d" % (r.randrange(1, 13), r.randrange(0, year % 100 + 1)),
            "" if vacant else str(r.randrange(1, 7)),
            "" if vacant else str(r.randrange(1, 6)),
            None if vacant else min(year, blt + r.randrange(0, 30)),
            None if vacant else blt,
            None if vacant else r.randrange(400, 9000),
            0 if vacant else r.randrange(1, 4),
            0 if vacant else _pick(r, [1, 1, 1, 1, 2, 4, 12, 120]),
            0 if r.random() < 0.5 else _money(r, 200, 250000)]


def _seg_sale(r, year):
    if r.random() < 0.3:
        return [""] * 2 + [""] + [None] * 3 + [""] * 4
    yr = r.randrange(1975, year + 1)
    return ["" if r.random() < 0.92 else "M", _pick(r, _QUAL), _pick(r, ["I", "I", "I", "V"]),
            _money(r, 100, 12000000), yr, r.randrange(1, 13),
            "%d" % r.randrange(100, 9999), "%04d" % r.randrange(1, 3000),
            "%d%06d" % (yr, r.randrange(1, 999999)), "" if r.random() < 0.95 else "1"]


def _seg_own(r, year):
    name = _owner_name(r)
    k = r.random()
    if k < 0.03:
        city, country = _pick(r, _CITY_FOREIGN)
        return [name, _street(r), "", city, "", "", country]
    addr1 = _street(r) if r.random() < 0.85 else "PO BOX %d" % r.randrange(1, 99999)
    addr2 = "" if r.random() < 0.85 else _pick(r, ["APT %d%s" % (r.randrange(1, 999),
                                                                 _pick(r, ["", "A", "B"])),
                                                   "STE %d" % r.randrange(100, 900),
                                                   "C/O %s %s" % _person(r)])
    if k < 0.2:
        city, st = _pick(r, _CITY_US)
        return [name, addr1, addr2, city, st, _zip(r, False), st]
    return [name, addr1, addr2, _pick(r, _CITY_FL), "FL", _zip(r), "FL"]


def _seg_fidu(r, year):
    if r.random() < 0.9:
        return [""] * 7
    last, first = _person(r)
    return ["%s %s, TRUSTEE" % (last, first) if r.random() < 0.5 else
            "%s BANK NA" % _pick(r, _CORP_W), _street(r), "", _pick(r, _CITY_FL), "FL",
            _zip(r), str(r.randrange(1, 5))]


def _legal(r):
    k = r.random()
    sub = "CAÑON DEL SOL" if r.random() < 0.005 else _pick(r, _SUBDIV)
    if k < 0.45:
        return "LOT %d BLK %s %s UNIT %d PB %d PG %d" % (
            r.randrange(1, 80), _pick(r, "ABCDEFGH"), sub, r.randrange(1, 9),
            r.randrange(1, 300), r.randrange(1, 200))
    if k < 0.7:
        return "COM NE COR OF SEC %d, TH S %d FT, W %d FT TO POB, OR %d/%d" % (
            r.randrange(1, 37), r.randrange(10, 2000), r.randrange(10, 2000),
            r.randrange(100, 9999), r.randrange(1, 999))
    if k < 0.85:
        return "UNIT %d, BLDG %s, %s CONDO" % (r.randrange(100, 1999), _pick(r, "ABCDE"), sub)
    if k < 0.92:
        return '%s AKA "THE %s" LESS R/W' % (sub, _pick(r, ["RANCH", "GROVE", "MILL", "LANDING"]))
    return "%s PB %d-%d" % (sub, r.randrange(1, 200), r.randrange(1, 99))


def _seg_loc(r, year):
    return [_legal(r), "" if r.random() < 0.9 else "C", "" if r.random() < 0.97 else "X",
            "%02d" % r.randrange(1, 30), "%06d" % r.randrange(1000, 999999),
            "" if r.random() < 0.97 else _pick(r, "FSCM"), "%04d" % r.randrange(100, 2000),
            "%02d%s" % (r.randrange(1, 60), _pick(r, "NS")),
            "%02d%s" % (r.randrange(1, 45), _pick(r, "EW")), "%02d" % r.randrange(1, 37),
            "12%03d%06d%04d" % (r.randrange(1, 134), r.randrange(100, 999999),
                                r.randrange(1000, 5000))]


def _seg_phy(r, year):
    if r.random() < 0.07:
        return ["", "", "", ""]
    return [_street(r), "" if r.random() < 0.88 else "UNIT %d" % r.randrange(1, 400),
            _pick(r, _CITY_FL), _zip(r)]


def _seg_xfer(r, year):
    if r.random() < 0.93:
        return ["", "", None, None, "", None]
    return ["Y", "%s %s" % _person(r), _money(r, 5000, 500000), r.randrange(11, 78),
            "%013d" % r.randrange(10 ** 12), r.randrange(year - 10, year)]


_EX_COMMON = [(0, 25000), (0, 25000), (0, 25000), (4, 25000), (1, 500), (2, 5000), (3, 5000),
              (10, 50000), (16, 5000), (25, 500), (36, 2000), (46, 1000), (47, 750), (48, 250)]


def _seg_ex(r, year):
    vals = [None] * len(_EXMPT)
    if r.random() < 0.55:
        return vals
    for _ in range(1 + (r.random() < 0.35) + (r.random() < 0.1)):
        k, amt = _pick(r, _EX_COMMON)
        vals[k] = amt if r.random() < 0.6 else r.randrange(1, amt + 1)
    return vals


def _seg_tail(r, year):
    return ["%02d%s" % (r.randrange(0, 99), _pick(r, "ABCDEFX")), "%08d" % r.randrange(10 ** 7)]


def _seg_cir(r, year):
    if r.random() < 0.95:
        return ["", None, ""]
    return [str(r.randrange(1, 5)), r.randrange(year - 5, year + 1),
            _pick(r, ["HURRICANE DAMAGE, ROOF", "FIRE", "FLOOD ZONE CHANGE",
                      'PER APPEAL "VAB" DECISION', "DEMOLISHED"])]


_SEGMENTS = [  # name, first column, last column, pool bits, builder
    ("class", "BAS_STRT", "SPASS_CD", 10, _seg_class),
    ("val", "JV", "DEL_VAL", 14, _seg_val),
    ("land", "PAR_SPLT", "SPEC_FEAT_VAL", 13, _seg_land),
    ("sale1", "MULTI_PAR_SAL1", "SAL_CHNG_CD1", 13, _seg_sale),
    ("sale2", "MULTI_PAR_SAL2", "SAL_CHNG_CD2", 13, _seg_sale),
    ("own", "OWN_NAME", "OWN_STATE_DOM", 14, _seg_own),
    ("fidu", "FIDU_NAME", "FIDU_CD", 10, _seg_fidu),
    ("loc", "S_LEGAL", "CENSUS_BK", 13, _seg_loc),
    ("phy", "PHY_ADDR1", "PHY_ZIPCD", 14, _seg_phy),
    ("xfer", "ASS_TRNSFR_FG", "YR_VAL_TRNSF", 9, _seg_xfer),
    ("ex", "EXMPT_01", "EXMPT_82", 10, _seg_ex),
    ("tail", "RS_ID", "MP_ID", 10, _seg_tail),
    ("cir", "SPC_CIR_CD", "SPC_CIR_TXT", 8, _seg_cir),
]
_BITS = [s[3] for s in _SEGMENTS]
assert sum(_BITS) <= 192
# Which segments a day's change touches, weighted: mostly a new valuation, then an owner or a
# sale, now and then the land, the exemptions, the site address, the legal text.
_CHANGE_W = [("val", 40), ("own", 15), ("sale1", 12), ("land", 10), ("ex", 10), ("phy", 5),
             ("loc", 5), ("class", 3)]
_SEG_NO = {s[0]: i for i, s in enumerate(_SEGMENTS)}

_pool_cache = {}


def _pools(seed, year, encoding):
    """Per segment: (list of rendered bytes, list of canonical value tuples).  Deterministic in
    (seed, year); rebuilt once per process per (seed, year, encoding)."""
    ck = (seed, year, encoding)
    if ck in _pool_cache:
        return _pool_cache[ck]
    out = []
    for name, first, last, bits, build in _SEGMENTS:
        r = random.Random("nalgen-pool:%s:%d:%s" % (seed, year, name))
        types, n = _types(first, last)
        frag, canon = [], []
        for _ in range(1 << bits):
            vals = build(r, year)
            assert len(vals) == n, (name, len(vals), n)
            f, c = _render(r, vals, types)
            frag.append(f.encode(encoding))
            canon.append(c)
        assert len(set(canon)) > 1, name
        out.append((frag, canon))
    _pool_cache[ck] = out
    return out


# ---- keys ------------------------------------------------------------------------------------

_PID_MOD = 10 ** 13
_PID_MUL = 7_654_321_987_611      # odd, not a multiple of 5: a bijection mod 10^13
_PID_ADD = 3_141_592_653_589


def _pid_num(county, ordinal):
    return (ordinal * _PID_MUL + county * 1_000_003_777 + _PID_ADD) % _PID_MOD


def parcel_id(county, ordinal):
    """The PARCEL_ID of row `ordinal` (its birth number; unique per county, forever)."""
    n = _pid_num(county, ordinal)
    style = county % 3
    if style == 0:
        return "%013d" % n                                    # 13 digits: 0131240260010
    if style == 2:                                            # dashed 5-3-3-2
        return "%05d-%03d-%03d-%02d" % (n // 10 ** 8, n // 10 ** 5 % 1000, n // 100 % 1000, n % 100)
    return "%02d-%02d-%02d-%07d" % (n // 10 ** 11, n // 10 ** 9 % 100, n // 10 ** 7 % 100,
                                    n % 10 ** 7)              # dashed 2-2-2-7


# ---- the generator ---------------------------------------------------------------------------


class _Day:
    __slots__ = ("day", "order", "over", "next_ord", "changed", "deleted", "new", "prev_rows")


class Nal:
    """One county's NAL roll for one year, and its day-by-day versions."""

    def __init__(self, rows, county=11, year=2025, seed=1, change_pct=1.0, delete_pct=0.1,
                 new_pct=0.1):
        if not 11 <= county <= 99:
            raise ValueError("county must be 11..99")
        self.rows, self.county, self.year, self.seed = int(rows), int(county), int(year), seed
        self.change_pct, self.delete_pct, self.new_pct = change_pct, delete_pct, new_pct
        self._key = hashlib.blake2b(("nalgen:%s:%d:%d" % (seed, county, year)).encode(),
                                    digest_size=32).digest()
        self._day = None

    # -- per row
    def _base_idx(self, o):
        h = int.from_bytes(hashlib.blake2b(o.to_bytes(8, "little"), digest_size=24,
                                           key=self._key).digest(), "little")
        idx = []
        for b in _BITS:
            idx.append(h & ((1 << b) - 1))
            h >>= b
        return tuple(idx)

    def _mutate(self, idx, rng, pools):
        idx = list(idx)
        names = [n for n, _ in _CHANGE_W]
        weights = [w for _, w in _CHANGE_W]
        k = 1 if rng.random() < 0.75 else 2
        segs = set()
        while len(segs) < k:
            segs.add(_SEG_NO[rng.choices(names, weights)[0]])
        for s in sorted(segs):
            canon = pools[s][1]
            size = len(canon)
            cur = canon[idx[s]]
            j = rng.randrange(size)
            while canon[j] == cur:          # a different value, not only different quoting
                j = (j + 1) % size
            idx[s] = j
        return tuple(idx)

    # -- days
    def _state(self, day):
        if day < 0:
            raise ValueError("day must be >= 0")
        st = self._day
        if st is None or st.day > day:
            st = _Day()
            st.day, st.order, st.over, st.next_ord = 0, list(range(self.rows)), {}, self.rows
            st.changed, st.deleted, st.new, st.prev_rows = [], [], [], 0
        pools = None
        while st.day < day:
            if pools is None:
                pools = _pools(self.seed, self.year, "latin-1")
            d = st.day + 1
            rng = random.Random("nalgen-day:%s:%d:%d:%d" % (self.seed, self.county, self.year, d))
            order = st.order
            n = len(order)
            nc = int(n * self.change_pct / 100.0 + 0.5)
            nd = int(n * self.delete_pct / 100.0 + 0.5)
            nn = int(n * self.new_pct / 100.0 + 0.5)
            if nc + nd > n:
                raise ValueError("change_pct + delete_pct > 100")
            picks = rng.sample(range(n), nc + nd)
            changed = []
            for p in picks[:nc]:
                o = order[p]
                st.over[o] = self._mutate(st.over.get(o) or self._base_idx(o), rng, pools)
                changed.append(o)
            delpos = set(picks[nc:])
            deleted = [order[p] for p in sorted(delpos)]
            for o in deleted:
                st.over.pop(o, None)
            keep = [o for i, o in enumerate(order) if i not in delpos] if delpos else order
            new = list(range(st.next_ord, st.next_ord + nn))
            st.next_ord += nn
            if new:
                at = sorted(rng.randrange(len(keep) + 1) for _ in new)
                merged, prev = [], 0
                for pos, o in zip(at, new):
                    merged.extend(keep[prev:pos])
                    merged.append(o)
                    prev = pos
                merged.extend(keep[prev:])
                keep = merged
            st.prev_rows, st.order, st.day = n, keep, d
            st.changed, st.deleted, st.new = changed, deleted, new
        self._day = st
        return st

    def _key_of(self, o):
        return [self.county, parcel_id(self.county, o), self.year]

    def diff(self, day):
        """What day `day` changed against day-1: counts and sorted key lists."""
        st = self._state(day)
        keys = lambda ords: sorted((self._key_of(o) for o in ords), key=lambda k: k[1])
        counts = {"rows": len(st.order), "prev_rows": st.prev_rows, "changed": len(st.changed),
                  "deleted": len(st.deleted), "new": len(st.new),
                  "unchanged": (st.prev_rows - len(st.changed) - len(st.deleted)) if day else 0}
        return {"day": day, "counts": counts, "changed": keys(st.changed),
                "deleted": keys(st.deleted), "new": keys(st.new)}

    def keys(self, day=0):
        """The keys of day `day`, in file order."""
        return [self._key_of(o) for o in self._state(day).order]

    def _lines(self, day, encoding="latin-1", crlf=False, chunk=2000):
        """Yields the file as bytes chunks: the header line, then `chunk` rows at a time."""
        st = self._state(day)
        pools = _pools(self.seed, self.year, encoding)
        frags = [p[0] for p in pools]
        (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12) = frags
        eol = b"\r\n" if crlf else b"\n"
        yield ",".join(HEADER).encode("ascii") + eol
        co, yr = self.county, self.year
        style = co % 3
        head = b"%d," % co
        mid = b",R,%d," % yr
        over = st.over
        pmul, pmod, padd = _PID_MUL, _PID_MOD, co * 1_000_003_777 + _PID_ADD
        base = self._base_idx
        key = self._key
        blake = hashlib.blake2b
        frombytes = int.from_bytes
        m10, m14, m13, m9, m8 = 1023, 16383, 8191, 511, 255
        buf = []
        for o in st.order:
            ix = over.get(o)
            if ix is None:
                h = frombytes(blake(o.to_bytes(8, "little"), digest_size=24, key=key).digest(),
                              "little")
                # same layout as _base_idx: 10,14,13,13,13,14,10,13,14,9,10,10,8 bits
                i0 = h & m10; h >>= 10
                i1 = h & m14; h >>= 14
                i2 = h & m13; h >>= 13
                i3 = h & m13; h >>= 13
                i4 = h & m13; h >>= 13
                i5 = h & m14; h >>= 14
                i6 = h & m10; h >>= 10
                i7 = h & m13; h >>= 13
                i8 = h & m14; h >>= 14
                i9 = h & m9; h >>= 9
                i10 = h & m10; h >>= 10
                i11 = h & m10; h >>= 10
                i12 = h & m8
            else:
                i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11, i12 = ix
            n = (o * pmul + padd) % pmod        # = _pid_num(co, o)
            if style == 0:
                pid = b"%013d" % n
            elif style == 2:
                pid = b"%05d-%03d-%03d-%02d" % (n // 100000000, n // 100000 % 1000,
                                                n // 100 % 1000, n % 100)
            else:
                pid = b"%02d-%02d-%02d-%07d" % (n // 100000000000, n // 1000000000 % 100,
                                                n // 10000000 % 100, n % 10000000)
            buf.append(b",".join((
                head + pid + mid + f0[i0], f1[i1], f2[i2], f3[i3], f4[i4], f5[i5], f6[i6],
                f7[i7], f8[i8], b"%d" % (o * 3 + 1000000), f9[i9], f10[i10], b"%d" % (o + 1),
                f11[i11], b"C%02d%013d" % (co, n), f12[i12])) + eol)
            if len(buf) >= chunk:
                yield b"".join(buf)
                buf = []
        if buf:
            yield b"".join(buf)

    def row(self, day, pid, encoding="latin-1"):
        """The 165 values of the row with PARCEL_ID `pid` on day `day` (str, '' = empty), or
        None.  Renders that one row (linear search of the day's keys: for small tests)."""
        st = self._state(day)
        for o in st.order:
            if parcel_id(self.county, o) == pid:
                break
        else:
            return None
        saved = st.order
        try:
            st.order = [o]
            data = b"".join(self._lines(day, encoding))
        finally:
            st.order = saved
        text = data.decode(encoding).split("\n", 1)[1]
        return next(csv.reader(io.StringIO(text)))

    def write(self, path, day=0, fmt="csv", encoding="latin-1", crlf=False, compresslevel=6):
        """Writes day `day` to `path` (fmt csv, zip: member NAL<cc>P<yyyy>01.csv deflated, gzip);
        returns the dict described in the module doc."""
        if fmt not in ("csv", "zip", "gzip"):
            raise ValueError("fmt is csv, zip or gzip")
        t0 = time.monotonic()
        st = self._state(day)
        member = member_name(self.county, self.year)
        tmp = path + ".tmp"
        try:
            csv_bytes = self._write(tmp, st, day, fmt, encoding, crlf, compresslevel, member)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        os.replace(tmp, path)
        info = {"path": path, "day": day, "rows": len(st.order), "bytes": os.path.getsize(path),
                "csv_bytes": csv_bytes, "format": fmt, "encoding": encoding,
                "member": member if fmt != "csv" else None,
                "county": self.county, "year": self.year, "seed": self.seed,
                "change_pct": self.change_pct, "delete_pct": self.delete_pct,
                "new_pct": self.new_pct}
        info.update(self.diff(day))
        info["seconds"] = round(time.monotonic() - t0, 3)
        return info

    def _write(self, tmp, st, day, fmt, encoding, crlf, compresslevel, member):
        csv_bytes = 0
        with open(tmp, "wb") as raw:
            if fmt == "csv":
                sink, close = raw, None
            elif fmt == "gzip":
                sink = gzip.GzipFile(filename=member, mode="wb", fileobj=raw, mtime=0,
                                     compresslevel=compresslevel)
                close = sink
            else:
                zf = zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel)
                zi = zipfile.ZipInfo(member, date_time=(self.year, 7, 1, 0, 0, 0))
                zi.compress_type = zipfile.ZIP_DEFLATED
                if "compress_level" in zipfile.ZipInfo.__slots__:     # 3.13+
                    zi.compress_level = compresslevel
                else:
                    zi._compresslevel = compresslevel
                zi.external_attr = 0o644 << 16
                zf_member = zf.open(zi, "w", force_zip64=len(st.order) > 3_000_000)
                sink, close = zf_member, (zf_member, zf)
            write = sink.write
            for b in self._lines(day, encoding, crlf):
                write(b)
                csv_bytes += len(b)
            if isinstance(close, tuple):
                for c in close:
                    c.close()
            elif close is not None:
                close.close()
        return csv_bytes


def generate(path, rows, county=11, year=2025, seed=1, day=0, change_pct=1.0, delete_pct=0.1,
             new_pct=0.1, fmt="csv", encoding="latin-1", crlf=False, meta=None,
             compresslevel=6):
    """One call: Nal(...).write(...); meta=PATH also writes the returned dict as JSON there."""
    info = Nal(rows, county, year, seed, change_pct, delete_pct, new_pct).write(
        path, day, fmt, encoding, crlf, compresslevel)
    if meta:
        with open(meta, "w") as f:
            json.dump(info, f)
    return info


# ---- bad inputs ------------------------------------------------------------------------------


def _split_raw(line):
    """Splits one CSV record (str, no line end) into raw fields, quotes kept."""
    out, i, n = [], 0, len(line)
    while True:
        if i < n and line[i] == '"':
            j = i + 1
            while True:
                j = line.index('"', j)
                if j + 1 < n and line[j + 1] == '"':
                    j += 2
                    continue
                break
            out.append(line[i:j + 1])
            i = j + 1
            if i < n and line[i] != ",":
                raise ValueError("bad CSV at %d" % i)
        else:
            j = line.find(",", i)
            j = n if j < 0 else j
            out.append(line[i:j])
            i = j
        if i >= n:
            return out
        i += 1                       # the comma
        if i == n:
            out.append("")
            return out


def _unq(raw):
    return raw[1:-1].replace('""', '"') if raw.startswith('"') else raw


def _edit_lines(src, dst, edits):
    """Copies src to dst, passing line N (1-based) through edits[N](fields) -> fields | str.
    Works on latin-1 text, which maps every byte to one char and back, so UTF-8 bytes pass
    unharmed.  An edit may return a str: the whole new line (no line end)."""
    with open(src, "rb") as f, open(dst, "wb") as out:
        for no, b in enumerate(f, 1):
            fn = edits.get(no)
            if fn is None:
                out.write(b)
                continue
            eol = b"\r\n" if b.endswith(b"\r\n") else b"\n" if b.endswith(b"\n") else b""
            line = b[:len(b) - len(eol)].decode("latin-1")
            r = fn(_split_raw(line))
            if not isinstance(r, str):
                r = ",".join(r)
            out.write(r.encode("latin-1") + eol)
    missing = [n for n in edits if n > no]
    if missing:
        raise ValueError("%s has %d lines, no line %s" % (src, no, missing))
    return no


def _col(column):
    if column not in _IDX:
        raise ValueError("no column %r" % column)
    return _IDX[column]


def bad_column_count(src, dst, line, delta=1):
    """Line `line` gets `delta` more fields (empty ones) or, delta < 0, -delta fewer."""
    def ed(f):
        return f + [""] * delta if delta > 0 else f[:delta]
    _edit_lines(src, dst, {line: ed})
    return {"line": line, "columns": 165 + delta}


def bad_unterminated_quote(src, dst, line=None, column="OWN_NAME"):
    """`column` on `line` opens a quote that is never closed (line None: the last line, so the
    quote runs to the end of the file; on an earlier line the next '"' in the file ends it and
    the parser's complaint depends on what follows)."""
    if line is None:
        with open(src, "rb") as f:
            line = sum(1 for _ in f)
    c = _col(column)

    def ed(f):
        v = _unq(f[c]).replace('"', "") or "OPEN QUOTE"
        f[c] = '"' + v
        return f
    _edit_lines(src, dst, {line: ed})
    return {"line": line, "column": column}


def bad_numeric(src, dst, line, column="JV", value="12A50"):
    """A non-numeric `value` in numeric `column` on `line`."""
    if column not in NUMERIC:
        raise ValueError("%s is not a numeric column" % column)
    c = _col(column)

    def ed(f):
        f[c] = _q(value, False)
        return f
    _edit_lines(src, dst, {line: ed})
    return {"line": line, "column": column, "value": value}


def bad_encoding(src, dst, line, column="OWN_NAME", raw=b"\xe9"):
    """For a file declared UTF-8 (write(..., encoding="utf-8")): appends ' CAF' + `raw` (a lone
    Latin-1 byte, not valid UTF-8) to `column` on `line`."""
    c = _col(column)
    if c in (_IDX[k] for k in KEY) or column in NUMERIC:
        raise ValueError("pick a text column that is not in the key")
    bad = " CAF" + raw.decode("latin-1")

    def ed(f):
        v = _unq(f[c]) + bad
        f[c] = _q(v, f[c].startswith('"'))
        return f
    _edit_lines(src, dst, {line: ed})
    return {"line": line, "column": column, "bytes": raw.hex()}


def bad_duplicate_key(src, dst, line_a, line_b):
    """Line `line_b` gets the key (CO_NO, PARCEL_ID, ASMNT_YR) of line `line_a` (its own key is
    gone; the row count stays).  Returns the duplicated key."""
    if line_a == line_b or min(line_a, line_b) < 2:
        raise ValueError("two different data lines (>= 2)")
    key = {}
    with open(src, "rb") as f:
        for no, b in enumerate(f, 1):
            if no == line_a:
                fa = _split_raw(b.rstrip(b"\r\n").decode("latin-1"))
                key = [_unq(fa[_IDX[k]]) for k in KEY]
                break
    if not key:
        raise ValueError("no line %d" % line_a)

    def ed(f):
        for k, v in zip(KEY, key):
            f[_IDX[k]] = v
        return f
    _edit_lines(src, dst, {line_b: ed})
    return {"lines": [line_a, line_b], "key": [int(key[0]), key[1], int(key[2])]}


def truncate_file(src, dst, fraction=0.5):
    """The first `fraction` of src's bytes (a zip cut in half loses its central directory)."""
    size = os.path.getsize(src)
    keep = int(size * fraction)
    with open(src, "rb") as f, open(dst, "wb") as out:
        left = keep
        while left:
            b = f.read(min(left, 1 << 20))
            if not b:
                break
            out.write(b)
            left -= len(b)
    return {"bytes": keep, "of": size}


def bad_truncated_zip(src, dst, fraction=0.5):
    return truncate_file(src, dst, fraction)


# ---- self-check ------------------------------------------------------------------------------


def selftest(rows=3000):
    """Small end-to-end check: 165 columns on every line, unique keys, integers where the DDL
    says so, days 1..3 against the files themselves (changed/deleted/new exact, survivors in
    the same order), determinism, zip/gzip members, the bad-input helpers.  Returns 0 or 1."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="nalgen-selftest-")
    bad = []

    def ck(cond, what):
        print("  %s %s" % ("ok  " if cond else "FAIL", what))
        if not cond:
            bad.append(what)

    def load(path, enc="latin-1"):
        with open(path, encoding=enc, newline="") as f:
            return list(csv.reader(f))
    try:
        g = Nal(rows, 16, 2025, seed=3, change_pct=2, delete_pct=0.5, new_pct=0.5)
        prev = prev_keys = None
        for day in range(4):
            p = os.path.join(d, "d%d.csv" % day)
            info = g.write(p, day)
            recs = load(p)
            ok = recs[0] == HEADER and all(len(r) == 165 for r in recs)
            keys = [(int(r[0]), r[1], int(r[3])) for r in recs[1:]]
            ok = ok and len(set(keys)) == len(keys) == info["rows"]
            for r in recs[1:]:
                for i, (c, t) in enumerate(COLUMNS):
                    if t != "text" and r[i] and str(int(r[i])) != r[i]:
                        ok = False
            ck(ok, "day %d: %d rows x 165 columns, unique keys, integers parse" % (day, len(keys)))
            cur = dict(zip(keys, recs[1:]))
            if prev is not None:
                t = lambda ks: sorted(tuple(k) for k in ks)
                ch = sorted(k for k in cur if k in prev and cur[k] != prev[k])
                de = sorted(k for k in prev if k not in cur)
                nw = sorted(k for k in cur if k not in prev)
                ck(t(info["changed"]) == ch and t(info["deleted"]) == de and t(info["new"]) == nw
                   and [k for k in prev_keys if k in cur] == [k for k in keys if k in prev],
                   "day %d vs %d: changed %d, deleted %d, new %d exact; order kept"
                   % (day, day - 1, len(ch), len(de), len(nw)))
            prev, prev_keys = cur, keys

        def sha(p):
            with open(p, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        p2 = os.path.join(d, "again.csv")
        Nal(rows, 16, 2025, seed=3, change_pct=2, delete_pct=0.5, new_pct=0.5).write(p2, 3)
        ck(sha(p2) == sha(os.path.join(d, "d3.csv")), "same arguments: byte-identical file")
        z1, z2 = os.path.join(d, "a.zip"), os.path.join(d, "b.zip")
        g.write(z1, 3, "zip")
        g.write(z2, 3, "zip")
        with zipfile.ZipFile(z1) as zf, open(os.path.join(d, "d3.csv"), "rb") as f:
            ck(sha(z1) == sha(z2) and zf.namelist() == [member_name(16, 2025)]
               and zf.read(member_name(16, 2025)) == f.read(), "zip: deterministic, member "
               + member_name(16, 2025))
        gz = os.path.join(d, "a.gz")
        g.write(gz, 3, "gzip")
        with gzip.open(gz) as zf, open(os.path.join(d, "d3.csv"), "rb") as f:
            ck(zf.read() == f.read(), "gzip: same bytes inside")
        u = os.path.join(d, "u.csv")
        g.write(u, 3, encoding="utf-8")
        ck(load(u, "utf-8") == load(os.path.join(d, "d3.csv")), "UTF-8 file: same values")
        src = os.path.join(d, "d0.csv")
        out = os.path.join(d, "bad.csv")

        def rec(path, line):
            return load(path)[line - 1]
        bad_column_count(src, out, 10)
        ck(len(rec(out, 10)) == 166 and len(rec(out, 11)) == 165, "bad_column_count")
        bad_numeric(src, out, 12, "SALE_PRC1", "1O0")
        ck(rec(out, 12)[_IDX["SALE_PRC1"]] == "1O0", "bad_numeric")
        bad_duplicate_key(src, out, 5, 9)
        r = load(out)
        ck(r[4][:4] == r[8][:4] and r[4][4:] != r[8][4:], "bad_duplicate_key")
        info = bad_unterminated_quote(src, out)
        with open(out, "rb") as f:
            tail = f.read()[-400:]
        ck(info["line"] == rows + 1 and tail.count(b'"') % 2 == 1, "bad_unterminated_quote")
        bad_encoding(u, out, 7)
        try:
            with open(out, encoding="utf-8") as f:
                f.read()
            ck(False, "bad_encoding")
        except UnicodeDecodeError as e:
            with open(out, "rb") as f:
                line_of_error = f.read()[:e.start].count(b"\n") + 1
            ck(line_of_error == 7, "bad_encoding: invalid UTF-8 on line 7")
        truncate_file(z1, out)
        try:
            zipfile.ZipFile(out)
            ck(False, "truncate_file on a zip")
        except zipfile.BadZipFile:
            ck(True, "truncate_file: half a zip is not a zip")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("nalgen selftest: %s" % ("ok" if not bad else "FAILED: " + "; ".join(bad)))
    return 1 if bad else 0


# ---- CLI -------------------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description="Deterministic NAL-shaped CSV files (see the "
                                "module doc).")
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--county", type=int, default=11)
    p.add_argument("--year", type=int, default=2025)
    p.add_argument("--seed", default="1")
    p.add_argument("--day", type=int, default=0)
    p.add_argument("--change-pct", type=float, default=1.0)
    p.add_argument("--delete-pct", type=float, default=0.1)
    p.add_argument("--new-pct", type=float, default=0.1)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--zip", action="store_true")
    g.add_argument("--gzip", action="store_true")
    p.add_argument("--utf8", action="store_true", help="write UTF-8 instead of Latin-1")
    p.add_argument("--level", type=int, default=6, help="deflate level for --zip/--gzip "
                   "(1 is about 3x faster than the default 6)")
    p.add_argument("--crlf", action="store_true")
    p.add_argument("--meta", help="write the result (counts, changed/deleted/new keys) as JSON")
    p.add_argument("-o", "--output")
    p.add_argument("--ddl", nargs="?", const="nal", metavar="TABLE",
                   help="print CREATE TABLE TABLE (default nal) and exit")
    p.add_argument("--bad", choices=["columns", "quote", "numeric", "encoding", "dupkey",
                                     "truncate"])
    p.add_argument("-i", "--input")
    p.add_argument("--line", type=int)
    p.add_argument("--line-b", type=int)
    p.add_argument("--column")
    p.add_argument("--value", default="12A50")
    p.add_argument("--delta", type=int, default=1)
    p.add_argument("--fraction", type=float, default=0.5)
    p.add_argument("--selftest", action="store_true", help="run the built-in self-check")
    a = p.parse_args(argv)
    seed = int(a.seed) if a.seed.lstrip("-").isdigit() else a.seed
    if a.selftest:
        return selftest()
    if a.ddl:
        sys.stdout.write(ddl(a.ddl))
        return 0
    if not a.output:
        p.error("-o FILE is required")
    if a.bad:
        if not a.input:
            p.error("--bad needs -i SRC")
        kw = {"column": a.column} if a.column else {}
        if a.bad == "columns":
            r = bad_column_count(a.input, a.output, a.line, a.delta)
        elif a.bad == "quote":
            r = bad_unterminated_quote(a.input, a.output, a.line, **kw)
        elif a.bad == "numeric":
            r = bad_numeric(a.input, a.output, a.line, value=a.value, **kw)
        elif a.bad == "encoding":
            r = bad_encoding(a.input, a.output, a.line, **kw)
        elif a.bad == "dupkey":
            r = bad_duplicate_key(a.input, a.output, a.line, a.line_b)
        else:
            r = truncate_file(a.input, a.output, a.fraction)
        print(json.dumps(r))
        return 0
    fmt = "zip" if a.zip else "gzip" if a.gzip else "csv"
    info = generate(a.output, a.rows, a.county, a.year, seed, a.day, a.change_pct, a.delete_pct,
                    a.new_pct, fmt, "utf-8" if a.utf8 else "latin-1", a.crlf, a.meta, a.level)
    print("nalgen: %s day %d: %d rows, %d bytes (csv %d, %.0f B/row), %.2f s; vs day-1: "
          "changed %d, deleted %d, new %d" % (
              a.output, a.day, info["rows"], info["bytes"], info["csv_bytes"],
              info["csv_bytes"] / max(1, info["rows"]), info["seconds"],
              info["counts"]["changed"], info["counts"]["deleted"], info["counts"]["new"]),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
