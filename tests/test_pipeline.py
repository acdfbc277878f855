"""generate -> ingest -> clean end to end on generated logs of both formats, two nights."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from conftest import small_generate
from jobs import clean, delta_io, generate, ingest
from jobs.config import with_overrides
from jobs.tables import (BRONZE_LISTENS, SILVER_CLEAN_RUNS, SILVER_PLAYS, SILVER_QUARANTINE, SILVER_TRACKS,
                         SILVER_USERS)
from udfs.quality import REASONS

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
SILVER = (SILVER_PLAYS, SILVER_USERS, SILVER_TRACKS, SILVER_QUARANTINE)


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
    assert reasons == set(REASONS)
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
    assert runs_after == runs_before and again["new_users"] == again["new_tracks"] == 0


def test_a_clean_that_fails_part_way_leaves_readers_the_previous_tables(spark, night, monkeypatch):
    cfg = night["cfg"]
    before = {t.full_name: snapshot(spark, cfg, t) for t in (SILVER_PLAYS, SILVER_QUARANTINE, SILVER_CLEAN_RUNS)}

    def failing_sessionize(plays, gap, tail=None):
        # A task error while the new plays are being written (raise_error runs on the executors).
        return clean_sessionize(plays, gap, tail).withColumn(
            "session_position", F.when(F.col("user_idx") % 3 == 0, F.raise_error(F.lit("executor lost")))
            .otherwise(F.col("session_position")))

    clean_sessionize = clean.sessionize
    monkeypatch.setattr(clean, "sessionize", failing_sessionize)
    with pytest.raises(Exception, match="executor lost"):
        clean.run(spark, cfg, D2)
    after = {t.full_name: snapshot(spark, cfg, t) for t in (SILVER_PLAYS, SILVER_QUARANTINE, SILVER_CLEAN_RUNS)}
    assert after == before
