"""Each cleaning transform on small hand-made tables."""
from __future__ import annotations

import datetime as dt
import json
import unicodedata

from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.clean import classify, drop_duplicates, to_plays
from udfs import quality as Q
from udfs.identity import track_id, valid_mbid
from udfs.ids import new_ids
from udfs.sessions import sessionize
from udfs.text import normalize_name

RUN = dt.date(2026, 1, 2)
FLOOR = dt.date(2002, 1, 1)
MBID = "6790b616-7925-4741-b030-01958cf4e51d"
ARTIST_MBID = "f1b1cf71-bd35-4e99-8624-24a6e15f133a"


def tsv(*fields: str) -> str:
    return "\t".join(fields)


def lb(**record) -> str:
    return json.dumps(record, ensure_ascii=False)


def meta(artist="Deep Dish", track="Milkshake", mbid=MBID):
    return {"artist_name": artist, "track_name": track,
            "additional_info": {"recording_mbid": mbid, "artist_mbids": [ARTIST_MBID]}}


CASES = [  # (format, raw line, expected reason or None)
    ("lastfm-tsv", tsv("user_1", "2026-01-02T10:00:00Z", ARTIST_MBID, "Deep Dish", MBID, "Milkshake"), None),
    ("lastfm-tsv", tsv("user_1", "2026-01-02T10:00:00Z", ARTIST_MBID, "Deep Dish", MBID), Q.WRONG_COLUMN_COUNT),
    ("lastfm-tsv", "", Q.WRONG_COLUMN_COUNT),
    ("lastfm-tsv", tsv("  ", "2026-01-02T10:00:00Z", "", "Deep Dish", MBID, "Milkshake"), Q.EMPTY_USER),
    ("lastfm-tsv", tsv("user_1", "", "", "Deep Dish", MBID, "Milkshake"), Q.MISSING_TIMESTAMP),
    ("lastfm-tsv", tsv("user_1", "2026-01-02 10:00", "", "Deep Dish", MBID, "Milkshake"), Q.UNPARSABLE_TIMESTAMP),
    ("lastfm-tsv", tsv("user_1", "2001-12-31T23:59:59Z", "", "Deep Dish", MBID, "Milkshake"), Q.TIMESTAMP_BEFORE_FLOOR),
    ("lastfm-tsv", tsv("user_1", "2026-01-03T00:00:00Z", "", "Deep Dish", MBID, "Milkshake"),
     Q.TIMESTAMP_AFTER_RUN_DATE),
    ("lastfm-tsv", tsv("user_1", "2026-01-02T23:59:59Z", "", "Deep Dish", "", "Milkshake"), None),
    ("lastfm-tsv", tsv("user_1", "2026-01-02T10:00:00Z", "", "Deep Dish", "not-an-mbid", " "), Q.MISSING_TRACK),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=1767348000, track_metadata=meta()), None),
    ("listenbrainz-jsonl", '{"user_name": "lb", "listened_at": 17673', Q.MALFORMED_JSON),
    ("listenbrainz-jsonl", "[1, 2]", Q.MALFORMED_JSON),
    ("listenbrainz-jsonl", lb(user_name="", listened_at=1767348000, track_metadata=meta()), Q.EMPTY_USER),
    ("listenbrainz-jsonl", lb(user_name="lb", track_metadata=meta()), Q.MISSING_TIMESTAMP),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at="soon", track_metadata=meta()), Q.UNPARSABLE_TIMESTAMP),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=0, track_metadata=meta()), Q.TIMESTAMP_BEFORE_FLOOR),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=1767398400, track_metadata=meta()),
     Q.TIMESTAMP_AFTER_RUN_DATE),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=1767348000, track_metadata=meta(track="", mbid=None)),
     Q.MISSING_TRACK),
]


def bronze(spark, cases):
    rows = [(RUN, fmt, f"file:/{fmt}", i + 1, raw, dt.datetime(2026, 1, 3)) for i, (fmt, raw, _) in enumerate(cases)]
    return spark.createDataFrame(rows, "ingest_date date, format string, source_file string, line_number long, "
                                       "raw string, ingest_time timestamp")


def test_every_quarantine_reason_in_both_formats(spark):
    got = classify(bronze(spark, CASES), RUN, FLOOR).select("line_number", "reason")
    expected = spark.createDataFrame([(i + 1, reason) for i, (_, _, reason) in enumerate(CASES)],
                                     "line_number long, reason string")
    assertDataFrameEqual(got, expected)
    assert set(Q.REASONS) == {r for _, _, r in CASES if r}


def test_parsed_fields_of_both_formats(spark):
    parsed = classify(bronze(spark, [CASES[0], CASES[10]]), RUN, FLOOR)
    rows = parsed.select("user_id", "ts", "artist_mbid", "artist_name", "recording_mbid", "track_name").collect()
    assert [tuple(r) for r in rows] == [
        ("user_1", dt.datetime(2026, 1, 2, 10, 0), ARTIST_MBID, "Deep Dish", MBID, "Milkshake"),
        ("lb", dt.datetime(2026, 1, 2, 10, 0), ARTIST_MBID, "Deep Dish", MBID, "Milkshake"),
    ]


def test_names_are_unicode_normalised_trimmed_and_collapsed(spark):
    decomposed = unicodedata.normalize("NFD", "Beyoncé")
    df = spark.createDataFrame([(f"  {decomposed}   Knowles ",), ("ｆｕｌｌ　ｗｉｄｔｈ",), ("   ",), (None,)], "name string")
    got = df.select(normalize_name(F.col("name"), "NFKC").alias("name"))
    expected = spark.createDataFrame([("Beyoncé Knowles",), ("full width",), (None,), (None,)], "name string")
    assert_df_equality(got, expected)
    nfc = df.select(normalize_name(F.col("name"), "NFC").alias("name")).collect()[1]["name"]
    assert nfc == "ｆｕｌｌ ｗｉｄｔｈ"  # NFC keeps compatibility characters, only whitespace collapses


def test_track_identity_prefers_mbid_else_case_folded_name_pair(spark):
    df = spark.createDataFrame([
        (MBID.upper(), "A", "x"),      # recording id wins, lower-cased
        (None, "Deep Dish", "Milkshake"),
        (None, "deep dish", "MILKSHAKE"),  # same pair, other case: same track
        (None, "Deep Dish", "Milkshake (Live)"),
    ], "mbid string, artist string, track string")
    ids = [r[0] for r in df.select(track_id(valid_mbid(F.col("mbid")), F.col("artist"), F.col("track"))).collect()]
    assert ids[0] == MBID
    assert ids[1] == ids[2] and ids[1].startswith("name:") and len(ids[1]) == len("name:") + 32
    assert ids[3] != ids[1]


def test_to_plays_gives_one_identity_for_messy_spellings(spark):
    messy = [
        ("lastfm-tsv", tsv("u", "2026-01-02T10:00:00Z", "", unicodedata.normalize("NFD", " Café  Tacvba"), "", "Eres"),
         None),
        ("lastfm-tsv", tsv("u", "2026-01-02T11:00:00Z", "", "café tacvba", "", "  ERES "), None),
    ]
    plays = to_plays(classify(bronze(spark, messy), RUN, FLOOR), "NFKC").select("artist_name", "track_id").collect()
    assert plays[0]["artist_name"] == "Café Tacvba"
    assert plays[0]["track_id"] == plays[1]["track_id"]


def test_duplicates_keep_the_first_by_lineage_and_skip_earlier_nights(spark):
    cols = "user_id string, track_id string, ts timestamp, format string, source_file string, line_number long"
    t = dt.datetime(2026, 1, 2, 10)
    plays = spark.createDataFrame([
        ("u", "a", t, "lastfm-tsv", "f", 7), ("u", "a", t, "lastfm-tsv", "f", 3),   # exact duplicate
        ("u", "b", t, "lastfm-tsv", "f", 4),                                       # same second, other track
        ("v", "a", t, "lastfm-tsv", "f", 5),                                       # already cleaned earlier
    ], cols)
    earlier = spark.createDataFrame([("v", "a", t)], "user_id string, track_id string, ts timestamp")
    got = drop_duplicates(plays, earlier).select("user_id", "track_id", "line_number")
    assertDataFrameEqual(got, spark.createDataFrame([("u", "a", 3), ("u", "b", 4)], "user_id string, track_id string, "
                                                                                   "line_number long"))


def test_sessions_break_after_the_gap_and_continue_from_last_night(spark):
    def t(h, m):
        return dt.datetime(2026, 1, 2, h, m)
    plays = spark.createDataFrame([
        ("u", "a", t(0, 10)), ("u", "b", t(0, 14)), ("u", "c", t(0, 44)),   # 30 min gap: same session
        ("u", "d", t(1, 15)),                                               # 31 min: new session
        ("u", "a", t(1, 15)),                                               # same second: ordered by track
        ("w", "a", t(9, 0)),
    ], "user_id string, track_id string, ts timestamp")
    tail = spark.createDataFrame([("u", dt.datetime(2026, 1, 1, 23, 55), 777, 4),
                                  ("w", dt.datetime(2026, 1, 1, 23, 55), 888, 2)],
                                 "user_id string, ts timestamp, session_id long, session_position int")
    got = {(r.user_id, r.track_id, r.ts): (r.session_id, r.session_position)
           for r in sessionize(plays, 30, tail).collect()}
    assert [got[("u", k, ts)] for k, ts in [("a", t(0, 10)), ("b", t(0, 14)), ("c", t(0, 44))]] == \
        [(777, 5), (777, 6), (777, 7)]
    second = got[("u", "a", t(1, 15))]
    assert second[1] == 1 and got[("u", "d", t(1, 15))] == (second[0], 2) and second[0] != 777
    assert got[("w", "a", t(9, 0))][0] != 888 and got[("w", "a", t(9, 0))][1] == 1
    alone = {(r.track_id, r.ts): r.session_position for r in sessionize(plays.where("user_id = 'u'"), 30).collect()}
    assert alone == {("a", t(0, 10)): 1, ("b", t(0, 14)): 2, ("c", t(0, 44)): 3, ("a", t(1, 15)): 1,
                     ("d", t(1, 15)): 2}
    longer = {(r.track_id, r.ts): r.session_position for r in sessionize(plays.where("user_id = 'u'"), 31).collect()}
    assert longer == {("a", t(0, 10)): 1, ("b", t(0, 14)): 2, ("c", t(0, 44)): 3, ("a", t(1, 15)): 4,
                      ("d", t(1, 15)): 5}


def test_new_ids_continue_after_the_largest_and_never_renumber(spark):
    existing = spark.createDataFrame([("b", 1), ("z", 2)], "key string, idx int")
    keys = spark.createDataFrame([("z",), ("c",), ("a",)], "key string")
    got = new_ids(keys, existing, "key", "idx")
    assertDataFrameEqual(got, spark.createDataFrame([("a", 3), ("c", 4)], "key string, idx int"))
    first = new_ids(keys, spark.createDataFrame([], "key string, idx int"), "key", "idx")
    assertDataFrameEqual(first, spark.createDataFrame([("a", 1), ("c", 2), ("z", 3)], "key string, idx int"))
