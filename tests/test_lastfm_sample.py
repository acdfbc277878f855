"""The real Last.fm-1K sample (read from ../shared, never copied into the repository) through
ingest and clean, with counts worked out independently of the code under test."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from conftest import LASTFM_SAMPLE
from jobs import clean, delta_io, ingest
from jobs.tables import BRONZE_LISTENS, SILVER_PLAYS, SILVER_QUARANTINE, SILVER_TRACKS, SILVER_USERS

# The sample spans 2008-12-08..2009-05-04; a run dated the day after its last play accepts all of it.
RUN = dt.date(2009, 5, 5)


@pytest.mark.skipif(not LASTFM_SAMPLE.exists(), reason="../shared/data/lastfm1k-sample is not beside the checkout")
def test_real_lastfm_sample_ingests_and_cleans_with_exact_counts(spark, cfg):
    raw = ingest.raw_dir(cfg, "lastfm-tsv", RUN)
    import pathlib
    pathlib.Path(raw).mkdir(parents=True)
    (pathlib.Path(raw) / "listens.tsv").symlink_to(LASTFM_SAMPLE)

    assert ingest.run(spark, cfg, RUN, "lastfm-tsv")["lastfm-tsv"]["inserted"] == 5000
    summary = clean.run(spark, cfg, RUN)
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
