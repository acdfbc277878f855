"""clean: one date of bronze.listens into silver plays, ids, quarantine and a reconciled summary.

For run date D: parse each bronze row of D by its format; send every row that breaks a rule to
silver.quarantine with the first reason it breaks (udfs.quality); normalise names and decide each
play's track identity (udfs.text, udfs.identity); drop exact duplicates (same user, track and
second), within the night and against plays cleaned on earlier nights; give new users and tracks
the next stable integer ids (MERGE, never renumbering); cut sessions (udfs.sessions), continuing a
session from the night before when the gap allows. Counts must reconcile exactly,
bronze = plays + quarantined + duplicates, before anything is written. Then D's partitions of
silver.plays and silver.quarantine are replaced in one commit each, and the summary row goes to
silver.clean_runs last, as the marker that D is cleaned. Cleaning D again gives the same tables.
"""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.errors import InputError
from jobs.core.frames import CacheScope
from jobs.core.records import now
from jobs.core.tables import (BRONZE_LISTENS, SILVER_CLEAN_RUNS, SILVER_PLAYS, SILVER_QUARANTINE, SILVER_TRACKS,
                              SILVER_USERS)
from udfs.identity import track_id
from udfs.ids import new_ids
from udfs.parse import parse_records
from udfs.quality import quarantine_reason
from udfs.sessions import last_play_per_user, sessionize
from udfs.text import normalize_name

log = logging.getLogger("setlist.clean")

LINEAGE_ORDER = ("format", "source_file", "line_number")
DUPLICATE_KEY = ("user_id", "track_id", "ts")


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    bronze = delta_io.read(spark, cfg, BRONZE_LISTENS).where(F.col("ingest_date") == F.lit(day))
    with CacheScope() as cache:
        classified = cache(classify(bronze, day, cfg.clean.ts_floor))
        bronze_rows = classified.count()
        if bronze_rows == 0:
            raise InputError(f"no rows in {BRONZE_LISTENS.full_name} for {day}: run `ingest --date {day}` first")
        log.info("clean %s: %d bronze rows", day, bronze_rows)
        quarantine = classified.where(F.col("reason").isNotNull())
        reasons = {r["reason"]: r["count"] for r in quarantine.groupBy("reason").count().collect()}
        quarantined = sum(reasons.values())

        good = cache(to_plays(classified.where(F.col("reason").isNull()), cfg.clean.unicode_form))
        span = good.agg(F.min("play_date").alias("lo"), F.max("play_date").alias("hi"),
                        F.count("*").alias("n")).first()
        plays = cache(drop_duplicates(good, earlier_plays(spark, cfg, day, span)))
        play_count = plays.count()
        duplicates = span["n"] - play_count
        if bronze_rows != play_count + quarantined + duplicates:  # a bug in the rules, never bad data
            raise RuntimeError(f"clean {day}: counts do not reconcile: bronze {bronze_rows} != plays {play_count} "
                               f"+ quarantined {quarantined} + duplicates {duplicates}")

        new_users = merge_new_ids(spark, cfg, SILVER_USERS, plays.select("user_id").distinct()
                                  .withColumn("first_seen_date", F.lit(day)), "user_id", "user_idx", cache)
        new_tracks = merge_new_ids(spark, cfg, SILVER_TRACKS, first_seen_tracks(plays, day), "track_id", "track_idx",
                                   cache)
        users = delta_io.read(spark, cfg, SILVER_USERS).select("user_id", "user_idx")
        tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_id", "track_idx")
        previous = delta_io.read_or_empty(spark, cfg, SILVER_PLAYS).where(
            F.col("ingest_date") == F.lit(day - dt.timedelta(days=1)))
        sessions = sessionize(plays.join(users, "user_id").join(tracks, "track_id"), cfg.clean.session_gap_minutes,
                              last_play_per_user(previous))
        delta_io.replace_date(sessions, cfg, SILVER_PLAYS, "ingest_date", day)
        delta_io.replace_partition(quarantine, cfg, SILVER_QUARANTINE, ingest_date=day, stage="clean")

    summary = {
        "ingest_date": day, "bronze_rows": bronze_rows, "plays": play_count, "quarantined": quarantined,
        "duplicates": duplicates, "new_users": new_users, "new_tracks": new_tracks,
        "quarantine_reasons": reasons,
    }
    run_row = spark.createDataFrame([summary | {"finished_at": now()}], SILVER_CLEAN_RUNS.schema)
    delta_io.replace_date(run_row, cfg, SILVER_CLEAN_RUNS, "ingest_date", day)
    log.info("clean %s: bronze %d = plays %d + quarantined %d + duplicates %d; %d new users, %d new tracks; "
             "quarantine reasons %s", day, bronze_rows, play_count, quarantined, duplicates, new_users,
             new_tracks, dict(sorted(reasons.items())) or "none")
    return summary


def classify(bronze: DataFrame, day: dt.date, ts_floor: dt.date) -> DataFrame:
    """Parsed bronze rows with `reason`: null for a good record, else why it is refused."""
    return parse_records(bronze).withColumn("reason", quarantine_reason(day, ts_floor))


def to_plays(good: DataFrame, unicode_form: str) -> DataFrame:
    """Good records as plays: normalised names, track identity, UTC play date."""
    return (good
            .withColumn("artist_name", normalize_name(F.col("artist_name"), unicode_form))
            .withColumn("track_name", normalize_name(F.col("track_name"), unicode_form))
            .withColumn("track_id", track_id(F.col("recording_mbid"), F.col("artist_name"), F.col("track_name")))
            .withColumn("play_date", F.to_date("ts")))


def earlier_plays(spark: SparkSession, cfg: Config, day: dt.date, span) -> DataFrame | None:
    """Plays cleaned on earlier nights whose play dates overlap this night's (for duplicates)."""
    if not span["n"] or not delta_io.exists(spark, cfg, SILVER_PLAYS):
        return None
    return (delta_io.read(spark, cfg, SILVER_PLAYS)
            .where((F.col("ingest_date") < F.lit(day)) & F.col("play_date").between(span["lo"], span["hi"])))


def drop_duplicates(plays: DataFrame, earlier: DataFrame | None = None) -> DataFrame:
    """One play per (user, track, second), the first by lineage; none already in `earlier`."""
    first = Window.partitionBy(*DUPLICATE_KEY).orderBy(*LINEAGE_ORDER)
    unique = plays.withColumn("_n", F.row_number().over(first)).where("_n = 1").drop("_n")
    if earlier is not None:
        unique = unique.join(earlier.select(*DUPLICATE_KEY), list(DUPLICATE_KEY), "left_anti")
    return unique


def first_seen_tracks(plays: DataFrame, day: dt.date) -> DataFrame:
    """One row per track id with the names and ids of its earliest play of the night."""
    earliest = Window.partitionBy("track_id").orderBy("ts", *LINEAGE_ORDER)
    return (plays.withColumn("_n", F.row_number().over(earliest)).where("_n = 1")
            .select("track_id", "artist_name", "track_name", "recording_mbid", "artist_mbid")
            .withColumn("first_seen_date", F.lit(day)))


def merge_new_ids(spark: SparkSession, cfg: Config, table, keys: DataFrame, key: str, idx: str,
                  cache: CacheScope) -> int:
    """Give keys not yet in `table` the next ids and insert them (MERGE, insert only). Returns how many."""
    fresh = cache(new_ids(keys, delta_io.read_or_empty(spark, cfg, table), key, idx))
    count = fresh.count()
    target = delta_io.ensure(spark, cfg, table)
    (target.alias("t").merge(delta_io.conform(fresh, table).alias("s"), f"t.{key} = s.{key}")
     .whenNotMatchedInsertAll().execute())
    return count
