"""Column logic of udfs/ on small hand-made tables: names, track identity, stable ids, sessions."""
from __future__ import annotations

import datetime as dt
import unicodedata

import pyarrow as pa
from chispa import assert_df_equality
from pyspark.sql import Row
from pyspark.sql import functions as F

from udfs.identity import track_id, valid_mbid
from jobs.core.tables import SILVER_CLEAN_RUNS
from models.embeddings import VECTORS
from udfs.ids import OFFSETS, new_ids
from udfs.rows import rows_frame
from udfs.sessions import sessionize
from udfs.text import normalize_name

MBID = "6790b616-7925-4741-b030-01958cf4e51d"


def test_names_are_unicode_normalised_trimmed_and_collapsed(spark):
    decomposed = unicodedata.normalize("NFD", "Beyoncé")
    df = spark.createDataFrame([(f"  {decomposed}   Knowles ",), ("ｆｕｌｌ　ｗｉｄｔｈ",), ("   ",), (None,)], "name string")
    got = df.select(normalize_name(F.col("name"), "NFKC").alias("name"))
    expected = spark.createDataFrame([("Beyoncé Knowles",), ("full width",), (None,), (None,)], "name string")
    assert_df_equality(got, expected)
    nfc = df.select(normalize_name(F.col("name"), "NFC").alias("name")).collect()[1]["name"]
    assert nfc == "ｆｕｌｌ ｗｉｄｔｈ"  # NFC keeps compatibility characters, only whitespace collapses


def test_the_jvm_normal_forms_equal_pythons_on_every_assigned_character(spark):
    """Names are normalised in the JVM (ICU4J); a track's identity hangs on the result, so it must be
    what Python's unicodedata gives (the pandas UDF of earlier releases) for every character
    Python's Unicode version assigns, alone and next to its neighbours (composition)."""
    chars = [chr(c) for c in range(0x20, 0x30000)
             if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]
    texts = ["".join(chars[i:i + 40]) for i in range(0, len(chars), 40)] + [unicodedata.normalize("NFD", c) for c in
                                                                           "éÅṩǅ가각"]
    df = spark.createDataFrame([(t,) for t in texts], "text string").repartition(2)
    from udfs.text import unicode_normalize
    got = df.select("text", unicode_normalize(F.col("text"), "NFKC").alias("nfkc"),
                    unicode_normalize(F.col("text"), "NFC").alias("nfc")).collect()
    assert len(got) == len(texts) > 3000
    wrong = [r["text"][:10] for r in got
             if (r["nfkc"], r["nfc"]) != (unicodedata.normalize("NFKC", r["text"]), unicodedata.normalize("NFC", r["text"]))]
    assert wrong == []


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


def test_a_recording_id_is_valid_only_as_a_uuid_of_hex_digits(spark):
    """valid_mbid, checked without a regular expression, against the UUID pattern matched in full
    (the value trimmed of spaces). A final line break is refused: the earlier `rlike` with `$`
    accepted it, newline and all."""
    import re
    pattern = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
    values = [MBID, MBID.upper(), f"  {MBID} ", MBID[:-1], MBID + "0", MBID.replace("-", "", 1) + "0",
              MBID[:8] + "0" + MBID[9:],                 # 36 characters, a dash missing
              MBID[:7] + "-" + MBID[8:],                 # a dash where a digit belongs
              MBID[:10] + "g" + MBID[11:],               # not hex
              MBID[:10] + "\uff10" + MBID[11:],          # a full-width digit
              "\t" + MBID, MBID + "\n", "-" * 36, "0" * 32 + "----", "", " ", None]
    got = [r[0] for r in spark.createDataFrame([(v,) for v in values], "v string")
           .select(valid_mbid(F.col("v"))).collect()]
    expected = [v.strip(" ").lower() if v is not None and pattern.fullmatch(v.strip(" ")) else None for v in values]
    assert got == expected
    assert got[:3] == [MBID] * 3 and got[3:] == [None] * (len(values) - 3)


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
    assert_df_equality(got, spark.createDataFrame([("a", 3), ("c", 4)], "key string, idx int"),
                       ignore_row_order=True, ignore_nullable=True)
    first = new_ids(keys, spark.createDataFrame([], "key string, idx int"), "key", "idx")
    assert_df_equality(first, spark.createDataFrame([("a", 1), ("c", 2), ("z", 3)], "key string, idx int"),
                       ignore_row_order=True, ignore_nullable=True)


def test_new_ids_number_a_large_night_in_parallel_exactly_as_a_small_one_in_one_task(spark):
    existing = spark.createDataFrame([(f"k{i:04d}", i + 1) for i in range(0, 600, 3)], "key string, idx int")
    keys = spark.createDataFrame([(f"k{i:04d}",) for i in reversed(range(600))], "key string")
    one_task = {r.key: r.idx for r in new_ids(keys, existing, "key", "idx").collect()}
    parallel = new_ids(keys, existing, "key", "idx", partitions=4, one_task_below=0)
    assert {r.key: r.idx for r in parallel.collect()} == one_task
    assert sorted(one_task.values()) == list(range(599, 599 + 400))  # after the largest id given, 598
    assert [one_task[k] for k in sorted(one_task)] == sorted(one_task.values())  # in key order


def test_driver_rows_become_a_local_relation_with_the_values_create_dataframe_gives(spark):
    """rows_frame hands a few driver rows to the JVM as Arrow: a LocalTableScan, no Python RDD (whose
    first read starts the executors' Python daemon), with the values and schema createDataFrame gives."""
    schema = SILVER_CLEAN_RUNS.schema
    rows = [{"ingest_date": dt.date(2026, 1, 1), "bronze_rows": 5, "plays": 3, "quarantine_reasons": {"empty_user": 2},
             "finished_at": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc), "missing_mbid_share": 0.25,
             "alerts": "é ✓"},
            {"ingest_date": dt.date(2026, 1, 2), "bronze_rows": 0, "quarantine_reasons": {},
             "finished_at": dt.datetime(2026, 1, 3, 0, 0)}]  # naive: local time, as createDataFrame reads it
    got = rows_frame(spark, rows, schema)
    assert got.schema == schema
    assert got.collect() == spark.createDataFrame(rows, schema).collect()
    assert "LocalTableScan" in got._jdf.queryExecution().executedPlan().toString()
    offsets = rows_frame(spark, [(0, 10), (1, 12)], OFFSETS)
    assert [tuple(r) for r in offsets.collect()] == [(0, 10), (1, 12)] and offsets.schema == OFFSETS
    empty = rows_frame(spark, [], schema)
    assert empty.schema == schema and empty.count() == 0
    table = pa.table({"vector": pa.array([[0.5, 1.0]], pa.list_(pa.float32())), "track_idx": pa.array([7], pa.int32())})
    assert rows_frame(spark, table, VECTORS).collect() == [Row(track_idx=7, vector=[0.5, 1.0])]
