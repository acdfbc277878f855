"""clean: the rules on hand-made records of both formats, generate -> ingest -> clean end to end over
two nights, and the real Last.fm-1K sample with counts worked out independently."""
from __future__ import annotations

import datetime as dt
import json
import pathlib
import unicodedata

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from conftest import LASTFM_SAMPLE, small_generate
from jobs import clean, generate, ingest
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.rawfiles import raw_dir
from jobs.core.tables import (BRONZE_LISTENS, SILVER_CLEAN_RUNS, SILVER_PLAYS, SILVER_QUARANTINE, SILVER_TRACKS,
                              SILVER_USERS)
from jobs.clean import classify, drop_duplicates, refused_text_only, to_plays
from models.synthetic import PLANTED_REASONS
from udfs import quality as Q

RUN = dt.date(2026, 1, 2)
FLOOR = dt.date(2002, 1, 1)
MBID = "6790b616-7925-4741-b030-01958cf4e51d"
ARTIST_MBID = "f1b1cf71-bd35-4e99-8624-24a6e15f133a"
D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
SILVER = (SILVER_PLAYS, SILVER_USERS, SILVER_TRACKS, SILVER_QUARANTINE)


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
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=1000000000000000, track_metadata=meta()),
     Q.TIMESTAMP_OUT_OF_RANGE),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=1767348000000, track_metadata=meta()),
     Q.TIMESTAMP_IN_MILLISECONDS),
    ("listenbrainz-jsonl", lb(user_name=123, listened_at=1767348000, track_metadata=meta()), Q.WRONG_FIELD_TYPE),
    ("listenbrainz-jsonl", lb(user_name={"id": 7}, listened_at=1767348000, track_metadata=meta()),
     Q.WRONG_FIELD_TYPE),
    ("listenbrainz-jsonl", lb(user_name=True, listened_at=1767348000, track_metadata=meta()), Q.WRONG_FIELD_TYPE),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=1767348000, track_metadata=5), Q.WRONG_FIELD_TYPE),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=1767348000, track_metadata=meta(artist=["Deep Dish"])),
     Q.WRONG_FIELD_TYPE),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=[1767348000], track_metadata=meta()), Q.WRONG_FIELD_TYPE),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at=1767348000.5, track_metadata=meta()),
     Q.UNPARSABLE_TIMESTAMP),
    ("listenbrainz-jsonl", lb(user_name="lb", listened_at="1767348000", track_metadata=meta(artist=None)), None),
    ("lastfm-tsv", tsv("user_1", "2026-01-02T10:00:00Z", "", "Caf\ufffd", MBID, "Milkshake"), Q.INVALID_ENCODING),
]


def bronze(spark, cases):
    """Bronze rows of the cases; a raw line with U+FFFD stands for one whose bytes were not UTF-8."""
    rows = [(RUN, fmt, f"file:/{fmt}", i + 1, raw, "Q2Fm6Q==" if "\ufffd" in raw else None, dt.datetime(2026, 1, 3))
            for i, (fmt, raw, _) in enumerate(cases)]
    return spark.createDataFrame(rows, "ingest_date date, format string, source_file string, line_number long, "
                                       "raw string, raw_base64 string, ingest_time timestamp")


def test_every_quarantine_reason_in_both_formats(spark):
    got = classify(bronze(spark, CASES), RUN, FLOOR).select("line_number", "reason")
    expected = spark.createDataFrame([(i + 1, reason) for i, (_, _, reason) in enumerate(CASES)],
                                     "line_number long, reason string")
    assert_df_equality(got, expected, ignore_row_order=True)
    assert set(Q.LISTEN_REASONS) == {r for _, _, r in CASES if r}


def test_parsed_fields_of_both_formats(spark):
    parsed = classify(bronze(spark, [CASES[0], CASES[10]]), RUN, FLOOR)
    rows = parsed.select("user_id", "ts", "artist_mbid", "artist_name", "recording_mbid", "track_name").collect()
    assert [tuple(r) for r in rows] == [
        ("user_1", dt.datetime(2026, 1, 2, 10, 0), ARTIST_MBID, "Deep Dish", MBID, "Milkshake"),
        ("lb", dt.datetime(2026, 1, 2, 10, 0), ARTIST_MBID, "Deep Dish", MBID, "Milkshake"),
    ]


def test_clean_caches_its_parsed_lines_uncompressed_keeping_only_the_refused_lines_text(spark):
    """What clean caches (jobs.clean.run): the classified lines, where only a refused line keeps its
    text (silver.quarantine needs it; a play does not), in a cache built without compression, the
    session's own setting untouched."""
    from jobs.core.frames import COMPRESSED, CacheScope
    lean = refused_text_only(classify(bronze(spark, CASES), RUN, FLOOR))
    kept = {r["line_number"]: r["raw"] is not None for r in lean.collect()}
    assert kept == {i + 1: reason is not None for i, (_, _, reason) in enumerate(CASES)}
    names = spark.range(20000).select(F.concat(F.lit("the same few names of tracks, again: "),
                                               (F.col("id") % 10).cast("string")).alias("name"))

    def cached_bytes() -> int:
        return sum(i.memSize() + i.diskSize() for i in spark.sparkContext._jsc.sc().getRDDStorageInfo())

    sizes = {}
    for compressed in (None, False):  # None: the session's setting (Spark's default, compressed)
        before = cached_bytes()
        with CacheScope(compressed=compressed) as cache:
            assert cache(names).count() == 20000
            sizes[compressed] = cached_bytes() - before
            assert spark.conf.get(COMPRESSED) == "true"
        assert cached_bytes() == before  # released on the way out
    assert sizes[False] > 5 * sizes[None] > 0, sizes


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
    assert_df_equality(got, spark.createDataFrame([("u", "a", 3), ("u", "b", 4)], "user_id string, track_id string, "
                                                                                 "line_number long"),
                       ignore_row_order=True)


def snapshot(spark, cfg, table):
    df = delta_io.read(spark, cfg, table)
    return sorted(tuple(r) for r in df.collect())


def files_of(spark, cfg, table, day):
    df = delta_io.read(spark, cfg, table).where(F.col("ingest_date") == F.lit(day))
    return {r[0] for r in df.select(F.input_file_name()).distinct().collect()}


@pytest.fixture(scope="module")
def night(spark, base_cfg, tmp_path_factory):
    """Two generated nights, cleaned in order; snapshots of what night one left."""
    root = tmp_path_factory.mktemp("pipeline")
    cfg = with_overrides(base_cfg, [f"warehouse={root / 'wh'}", f"raw_path={root / 'raw'}", *small_generate()])
    generated = generate.run(spark, cfg)
    ingest.run(spark, cfg, D1)
    first = clean.run(spark, cfg, D1)
    after_d1 = {t.full_name: snapshot(spark, cfg, t) for t in (SILVER_USERS, SILVER_TRACKS)}
    d1_files = files_of(spark, cfg, SILVER_PLAYS, D1)
    ingest.run(spark, cfg, D2)
    second = clean.run(spark, cfg, D2)
    return {"cfg": cfg, "generated": generated, "summaries": {D1: first, D2: second}, "after_d1": after_d1,
            "d1_files": d1_files}


def test_generate_writes_both_formats_for_every_day(night):
    generated = night["generated"]
    assert set(generated) == {"lastfm-tsv", "listenbrainz-jsonl"}
    for fmt, per_day in generated.items():
        assert set(per_day) == {"2026-01-01", "2026-01-02"} and min(per_day.values()) > 100, fmt


def test_counts_reconcile_exactly_for_every_date(spark, night):
    cfg = night["cfg"]
    runs = {r["ingest_date"]: r for r in delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).collect()}
    assert set(runs) == {D1, D2}
    for day, run in runs.items():
        bronze = delta_io.read(spark, cfg, BRONZE_LISTENS).where(F.col("ingest_date") == F.lit(day)).count()
        plays = delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("ingest_date") == F.lit(day)).count()
        quarantined = delta_io.read(spark, cfg, SILVER_QUARANTINE).where(F.col("ingest_date") == F.lit(day)).count()
        assert run["bronze_rows"] == bronze == plays + quarantined + run["duplicates"]
        assert (run["plays"], run["quarantined"]) == (plays, quarantined)
        assert sum(run["quarantine_reasons"].values()) == quarantined
        assert run["duplicates"] > 0
        assert night["summaries"][day]["bronze_rows"] == bronze


def test_every_quarantine_reason_is_caught_and_kept_with_its_raw_record(spark, night):
    cfg = night["cfg"]
    quarantine = delta_io.read(spark, cfg, SILVER_QUARANTINE)
    reasons = {r["reason"] for r in quarantine.select("reason").distinct().collect()}
    # every defect the generator plants is caught, under the reason it is declared with
    assert reasons == PLANTED_REASONS
    bronze = delta_io.read(spark, cfg, BRONZE_LISTENS)
    joined = quarantine.join(bronze, ["ingest_date", "source_file", "line_number", "raw", "format"])
    assert joined.count() == quarantine.count()


def test_plays_have_both_formats_ids_sessions_and_no_duplicates(spark, night):
    cfg = night["cfg"]
    plays = delta_io.read(spark, cfg, SILVER_PLAYS)
    assert {r[0] for r in plays.select("format").distinct().collect()} == {"lastfm-tsv", "listenbrainz-jsonl"}
    assert plays.groupBy("user_id", "track_id", "ts").count().where("count > 1").count() == 0
    assert plays.where(F.col("user_idx").isNull() | F.col("track_idx").isNull() | F.col("session_id").isNull()).count() == 0
    assert plays.where(F.col("play_date") > F.col("ingest_date")).count() == 0
    # positions in a session are 1..n without gaps
    sizes = plays.groupBy("session_id").agg(F.count("*").alias("n"), F.max("session_position").alias("top"),
                                            F.countDistinct("session_position").alias("distinct"))
    assert sizes.where("n != top OR n != distinct").count() == 0
    tracks = delta_io.read(spark, cfg, SILVER_TRACKS)
    names = plays.join(tracks.select("track_id", "track_idx"), ["track_id", "track_idx"])
    assert names.count() == plays.count()
    assert plays.where(F.col("artist_name").rlike(r"^\s|\s$|\s\s")).count() == 0


def test_ids_given_on_night_one_never_change(spark, night):
    cfg = night["cfg"]
    for table, key, idx in ((SILVER_USERS, "user_id", "user_idx"), (SILVER_TRACKS, "track_id", "track_idx")):
        now = {r[key]: r[idx] for r in delta_io.read(spark, cfg, table).collect()}
        before = {row[0]: row[1] for row in night["after_d1"][table.full_name]}
        assert {k: now[k] for k in before} == before
        assert sorted(now.values()) == list(range(1, len(now) + 1))
        assert len(now) > len(before)  # night two brought new ones


def test_cleaning_the_next_night_leaves_the_previous_partition_untouched(spark, night):
    assert files_of(spark, night["cfg"], SILVER_PLAYS, D1) == night["d1_files"]


def test_cleaning_a_date_twice_leaves_every_table_as_after_once(spark, night):
    cfg = night["cfg"]
    before = {t.full_name: snapshot(spark, cfg, t) for t in SILVER}
    runs_before = [(r["ingest_date"], r["plays"], r["quarantined"], r["duplicates"])
                   for r in delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).orderBy("ingest_date").collect()]
    again = clean.run(spark, cfg, D2)
    assert {t.full_name: snapshot(spark, cfg, t) for t in SILVER} == before
    runs_after = [(r["ingest_date"], r["plays"], r["quarantined"], r["duplicates"])
                  for r in delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).orderBy("ingest_date").collect()]
    # a rerun records what the date brought, not what this run happened to insert
    first = night["summaries"][D2]
    assert runs_after == runs_before and (again["new_users"], again["new_tracks"]) == \
        (first["new_users"], first["new_tracks"]) and first["new_users"] > 0


def test_a_clean_that_fails_part_way_leaves_readers_the_previous_tables(spark, night, monkeypatch):
    cfg = night["cfg"]
    before = {t.full_name: snapshot(spark, cfg, t) for t in (SILVER_PLAYS, SILVER_QUARANTINE, SILVER_CLEAN_RUNS)}

    def failing_sessionize(plays, gap, tail=None, **kw):
        # A task error while the new plays are being written (raise_error runs on the executors).
        return clean_sessionize(plays, gap, tail, **kw).withColumn(
            "session_position", F.when(F.col("user_idx") % 3 == 0, F.raise_error(F.lit("executor lost")))
            .otherwise(F.col("session_position")))

    clean_sessionize = clean.sessionize
    monkeypatch.setattr(clean, "sessionize", failing_sessionize)
    with pytest.raises(Exception, match="executor lost"):
        clean.run(spark, cfg, D2)
    after = {t.full_name: snapshot(spark, cfg, t) for t in (SILVER_PLAYS, SILVER_QUARANTINE, SILVER_CLEAN_RUNS)}
    assert after == before


# The sample spans 2008-12-08..2009-05-04; a run dated the day after its last play accepts all of it.
SAMPLE_RUN = dt.date(2009, 5, 5)


@pytest.mark.skipif(not LASTFM_SAMPLE.exists(), reason="../shared/data/lastfm1k-sample is not beside the checkout")
def test_real_lastfm_sample_ingests_and_cleans_with_exact_counts(spark, cfg):
    raw = raw_dir(cfg, "lastfm-tsv", SAMPLE_RUN)
    pathlib.Path(raw).mkdir(parents=True)
    # a copy, not a link: a symlink leaving raw_path is skipped (and reported) by ingest
    (pathlib.Path(raw) / "listens.tsv").write_bytes(LASTFM_SAMPLE.read_bytes())

    assert ingest.run(spark, cfg, SAMPLE_RUN, "lastfm-tsv")["lastfm-tsv"]["inserted"] == 5000
    summary = clean.run(spark, cfg, SAMPLE_RUN)
    # 5,000 rows, all six-column, all stamped in range; Last.fm-1K has plays of two tracks in the same
    # second, which are not duplicates (the track differs), so nothing is dropped.
    assert {k: summary[k] for k in ("bronze_rows", "plays", "quarantined", "duplicates", "new_users")} == \
        {"bronze_rows": 5000, "plays": 5000, "quarantined": 0, "duplicates": 0, "new_users": 2}
    assert delta_io.read(spark, cfg, BRONZE_LISTENS).count() == 5000
    assert delta_io.read(spark, cfg, SILVER_QUARANTINE).count() == 0
    plays = delta_io.read(spark, cfg, SILVER_PLAYS)
    per_user = {r["user_id"]: r["count"] for r in plays.groupBy("user_id").count().collect()}
    assert per_user == {"user_000001": 4997, "user_000002": 3}
    # Distinct tracks by the identity rule (recording id, else NFKC case-folded artist+track) and
    # sessions at a 30-minute gap, both counted with plain Python over the file.
    assert delta_io.read(spark, cfg, SILVER_TRACKS).count() == summary["new_tracks"] == 1192
    assert plays.select("session_id").distinct().count() == 323
    assert plays.select("play_date").distinct().count() == 145
    assert {r[0] for r in delta_io.read(spark, cfg, SILVER_USERS).select("user_id").collect()} == \
        {"user_000001", "user_000002"}
    first = plays.where(F.col("line_number") == 1).first()
    assert (first["user_id"], first["ts"], first["artist_name"], first["track_name"]) == \
        ("user_000001", dt.datetime(2009, 5, 4, 23, 8, 57), "Deep Dish", "Fuck Me Im Famous (Pacha Ibiza)-09-28-2007")
    assert first["track_id"].startswith("name:")  # this row has no recording id
    japanese = plays.where(F.col("line_number") == 2).first()
    assert japanese["artist_name"] == "坂本龍一" and japanese["artist_mbid"] == "a7f7df4a-77d8-4f12-8acd-5c60c93f4de8"


def test_data_quality_alerts_warn_and_record_or_fail_before_anything_is_written(spark, cfg):
    """A day with 10% malformed lines is cleaned with a recorded warning; a day with 60% fails the
    stage (exit code 6) before anything of the day is written; the nightly summary and gold.runs say so."""
    from jobs import nightly
    from jobs.core.errors import DataQualityFailed
    from jobs.core.tables import GOLD_RUNS
    cfg = with_overrides(cfg, ["ingest.formats=[lastfm-tsv]"])

    def day_file(day, bad_share):
        folder = pathlib.Path(raw_dir(cfg, "lastfm-tsv", day))
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(100):
            stamp = f"{day}T10:{i // 60:02d}:{i % 60:02d}Z"
            line = tsv(f"user_{i % 7}", stamp, "", f"Artist {i % 5}", "", f"Track {i}")
            lines.append(line.rsplit("\t", 1)[0] if i < bad_share * 100 else line)  # a column short: malformed
        (folder / "plays.tsv").write_text("\n".join(lines) + "\n")

    day_file(D1, 0.10)
    outcome = nightly.run_stages(spark, cfg, D1, ("ingest", "clean"))
    assert "alerts: quarantine_rate 0.1 >= warn threshold 0.05" in outcome["clean"]
    recorded = json.loads(delta_io.read(spark, cfg, GOLD_RUNS).where("stage = 'clean'").first()["rows"])
    assert recorded["quality"]["quarantine_rate"] == pytest.approx(0.10)
    run_row = delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).first()
    assert json.loads(run_row["alerts"]) == ["quarantine_rate 0.1 >= warn threshold 0.05"]
    assert run_row["missing_mbid_share"] == pytest.approx(1.0) and run_row["plays"] == 90

    day_file(D2, 0.60)
    with pytest.raises(DataQualityFailed, match="quarantine_rate 0.6 >= fail threshold 0.5"):
        nightly.run_stages(spark, cfg, D2, ("ingest", "clean"))
    assert DataQualityFailed.exit_code == 6
    assert delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("ingest_date") == F.lit(D2)).count() == 0
    assert delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).where(F.col("ingest_date") == F.lit(D2)).count() == 0
    failed = delta_io.read(spark, cfg, GOLD_RUNS).where((F.col("stage") == "clean")
                                                        & (F.col("run_date") == F.lit(D2))).first()
    assert failed["status"] == "failed" and "quarantine_rate" in failed["error"]
    from models.alerts import evaluate, measures
    history = [{"bronze_rows": 1000, "new_users": 2, "new_tracks": 20, "missing_mbid_share": 0.3}] * 3
    day = measures(100, 0, 100, 90, 40, 20, history, min_history=3)
    assert day["volume_drop"] == pytest.approx(0.9) and day["new_users_ratio"] == pytest.approx(40 / 3)
    assert day["missing_recording_id_rise"] == pytest.approx(0.6)
    levels = {a.measure: a.level for a in evaluate(day, cfg.alerts.thresholds())}
    assert levels == {"volume_drop": "warn", "new_users_ratio": "warn", "missing_recording_id_rise": "fail"}
