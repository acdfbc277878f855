"""clean: one date of bronze.listens into silver plays, ids, quarantine and a reconciled summary.

For run date D: take the current version of each bronze line of D (a re-delivered line's newest
ingest; older versions are counted as replaced); parse it by its format; send every row that breaks
a rule to silver.quarantine with the first reason it breaks (udfs.quality); normalise names and
decide each play's track identity (udfs.text, udfs.identity); drop exact duplicates (same user,
track and second), within the night and against plays cleaned on every other night (late data in
both directions: a play belongs to the night that cleaned it first); give new users and tracks the
next stable integer ids (MERGE, never renumbering; the warehouse lease keeps this one writer at a
time); cut sessions (udfs.sessions), continuing a session from the night before when the gap allows.
The day's data quality is measured as the rows flow (Spark's Observation API on the first pass:
quarantine rate by reason, share without a recording id; then new users and tracks) and checked
against alerts.* and the trailing days (models.alerts): past a warn threshold the run logs and
records it, past a fail threshold the stage stops before anything of the day is written (exit code
6). Records of users erased by forget-user (silver.erasures) are dropped and counted. D's partitions of
silver.plays and silver.quarantine are replaced in one commit each; then the rows committed for D
are counted back and must reconcile exactly with bronze, bronze = plays + quarantined + duplicates
+ erased (duplicates counted on their own); only then does the summary row go to
silver.clean_runs, as the marker that D is cleaned. Cleaning D again, or after a crash at any
point, gives the same tables.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Callable

from pyspark.sql import DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.erasure import ERASED, erasure_filter, mark_erased
from jobs.core.errors import DataQualityFailed, InputError
from jobs.core.frames import CacheScope
from jobs.core.records import now
from jobs.core.tables import (BRONZE_LISTENS, SILVER_CLEAN_RUNS, SILVER_PLAYS, SILVER_QUARANTINE, SILVER_TRACKS,
                              SILVER_USERS)
from udfs.identity import with_track_id
from udfs.ids import new_ids
from udfs.parse import logged_user, parse_records
from models import alerts as alert_rules
from models.alerts import Alert
from udfs.quality import LISTEN_REASONS, quarantine_reason
from udfs.rows import rows_frame
from udfs.sessions import last_play_per_user, sessionize

log = logging.getLogger("setlist.clean")

LINEAGE_ORDER = ("format", "source_file", "line_number")
DUPLICATE_KEY = ("user_id", "track_id", "ts")
NIGHT = ("ingest_date",)  # what every line of a night shares: first in the windows over its plays


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    all_versions = delta_io.read(spark, cfg, BRONZE_LISTENS).where(F.col("ingest_date") == F.lit(day))
    erasure = erasure_filter(spark, cfg)
    # The night's lines are cached once, as plays to be and refused lines (lean_lines), and every later
    # step reads that cache: uncompressed (Spark's choice and application of each column's encoding was
    # about a sixth of the stage's CPU samples), and with the text of the good lines left out, as only
    # quarantined rows keep theirs (docs/performance.md, "Clean's cache kept lean", "One cache of the
    # night's lines").
    with CacheScope(compressed=False) as cache:
        observed, versions = Observation("clean"), Observation("versions")  # measured during the first pass
        parsed = classify(current_versions(all_versions, versions), day, cfg.clean.ts_floor)
        if erasure:  # who logged each line, read leniently from its text before that is left out
            parsed = parsed.withColumn("_user", logged_user(F.col("raw"), F.col("format")))
        lines = lean_lines(parsed, cfg.clean.unicode_form).observe(observed, *quality_measures())
        if erasure:
            lines = mark_erased(lines, "_user", erasure).drop("_user")
        current = cache(lines)  # the one cache of the night's lines: every later step reads it
        bronze_rows = current.count()
        if bronze_rows == 0:
            raise InputError(f"no rows in {BRONZE_LISTENS.full_name} for {day}: run `ingest --date {day}` first")
        seen = observed.get
        replaced = int(versions.get["replaced"] or 0)
        classified = current.where(~F.col(ERASED)) if erasure else current
        erased = current.where(F.col(ERASED)).count() if erasure else 0
        log.info("clean %s: %d bronze rows (%d older versions of re-delivered lines replaced)", day, bronze_rows,
                 replaced)
        quarantine = classified.where(F.col("reason").isNotNull())
        reasons = ({r: int(seen[r]) for r in LISTEN_REASONS if seen[r]} if not erased else
                   {r["reason"]: r["count"] for r in quarantine.groupBy("reason").count().collect()})

        good = classified.where(F.col("reason").isNull())  # plays to be: a filter over the cache
        span = good.agg(F.min("play_date").alias("lo"), F.max("play_date").alias("hi"),
                        F.count("*").alias("n")).first()
        others = other_nights_plays(spark, cfg, day, span)
        duplicates = count_duplicates(good, span["n"], others)
        # The night's new users and tracks are read from its good lines, not from its deduplicated plays:
        # the same keys and the same earliest names (a line held by another night is of a user and a
        # track that have ids already; a repeat within the night shares its key and second with the
        # line kept), so the plays are read once, by the sessions below, and never cached.
        fresh_users = fresh_ids(spark, cfg, SILVER_USERS, good.select("user_id").distinct()
                                .withColumn("first_seen_date", F.lit(day)), "user_id", "user_idx", cache)
        fresh_tracks = fresh_ids(spark, cfg, SILVER_TRACKS, lambda known: first_seen_tracks(good, day, known),
                                 "track_id", "track_idx", cache)
        fresh_user_count, fresh_track_count = fresh_users.count(), fresh_tracks.count()
        alerts, measured = check_quality(spark, cfg, day, seen, fresh_user_count, fresh_track_count)

        if fresh_user_count:  # a MERGE of no rows commits nothing, but it still plans and scans
            insert_ids(spark, cfg, SILVER_USERS, fresh_users, "user_id")
        if fresh_track_count:
            insert_ids(spark, cfg, SILVER_TRACKS, fresh_tracks, "track_id")
        users = delta_io.read(spark, cfg, SILVER_USERS).select("user_id", "user_idx")
        tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_id", "track_idx")
        previous = delta_io.read_or_empty(spark, cfg, SILVER_PLAYS).where(
            F.col("ingest_date") == F.lit(day - dt.timedelta(days=1)))
        # The night's plays are shuffled once, by user: the dedup's window and the sessions' window both
        # partition within that, and both order by the night's date, the user and the time first, so
        # one sort serves them and the Delta writer, which needs the rows by date (docs/performance.md,
        # "The night's plays shuffled and sorted once"). The ids are joined as broadcasts where Spark
        # finds them small enough, which keeps that order.
        plays = drop_duplicates(good.repartition("user_id"), others, leading=NIGHT)
        sessions = sessionize(plays.join(users, "user_id").join(tracks, "track_id"), cfg.clean.session_gap_minutes,
                              last_play_per_user(previous), leading=NIGHT)
        delta_io.replace_date(sessions, cfg, SILVER_PLAYS, "ingest_date", day)
        delta_io.replace_partition(quarantine, cfg, SILVER_QUARANTINE, ingest_date=day, stage="clean")

    play_count, quarantined, new_users, new_tracks = committed_counts(spark, cfg, day)
    if bronze_rows != play_count + quarantined + duplicates + erased:
        raise RuntimeError(f"clean {day}: counts do not reconcile: bronze {bronze_rows} != plays {play_count} "
                           f"+ quarantined {quarantined} + duplicates {duplicates} + erased {erased} (as committed); "
                           f"{SILVER_CLEAN_RUNS.full_name} is not marked, so the date is not cleaned")
    summary = {
        "ingest_date": day, "bronze_rows": bronze_rows, "plays": play_count, "quarantined": quarantined,
        "duplicates": duplicates, "new_users": new_users, "new_tracks": new_tracks,
        "quarantine_reasons": reasons, "replaced": replaced, "erased": erased,
        "missing_mbid_share": measured["missing_recording_id_share"],
        "alerts": json.dumps([a.line() for a in alerts]) if alerts else None,
    }
    run_row = rows_frame(spark, [summary | {"finished_at": now()}], SILVER_CLEAN_RUNS.schema)
    delta_io.replace_date(run_row, cfg, SILVER_CLEAN_RUNS, "ingest_date", day)
    log.info("clean %s: bronze %d = plays %d + quarantined %d + duplicates %d; %d new users, %d new tracks; "
             "quarantine reasons %s", day, bronze_rows, play_count, quarantined, duplicates, new_users,
             new_tracks, dict(sorted(reasons.items())) or "none")
    return summary | {"quality": {k: round(v, 4) for k, v in measured.items()},
                      **({"note": "alerts: " + "; ".join(a.line() for a in alerts)} if alerts else {})}


def quality_measures() -> list:
    """What Observation measures on the first pass: rows, quarantined rows by reason, good records
    and those of them without a recording id."""
    good = F.col("reason").isNull()
    return [F.count(F.lit(1)).alias("rows"), F.sum(good.cast("long")).alias("good"),
            F.sum((good & F.col("recording_mbid").isNull()).cast("long")).alias("good_without_mbid"),
            *[F.sum((F.col("reason") == r).cast("long")).alias(r) for r in LISTEN_REASONS]]


def check_quality(spark: SparkSession, cfg: Config, day: dt.date, seen: dict, new_users: int, new_tracks: int
                  ) -> tuple[list[Alert], dict[str, float]]:
    """The day's data-quality measures against alerts.* (models.alerts); DataQualityFailed (exit code
    6) past a fail threshold, before anything of the day is written; warnings are logged."""
    conf = cfg.alerts
    history = []
    if delta_io.exists(spark, cfg, SILVER_CLEAN_RUNS):
        history = [r.asDict() for r in delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).where(
            F.col("ingest_date").between(F.lit(day - dt.timedelta(days=conf.trailing_days)),
                                         F.lit(day - dt.timedelta(days=1)))).collect()]
    rows, good = int(seen["rows"] or 0), int(seen["good"] or 0)
    measured = alert_rules.measures(rows, rows - good, good, int(seen["good_without_mbid"] or 0), new_users,
                                    new_tracks, history, conf.min_history)
    alerts = alert_rules.evaluate(measured, conf.thresholds())
    failed = [a for a in alerts if a.level == "fail"]
    if failed:
        raise DataQualityFailed(f"clean {day}: data quality past a fail threshold: "
                                f"{'; '.join(a.line() for a in failed)} (alerts.*); the date is not cleaned")
    for alert in alerts:
        log.warning("clean %s: data quality: %s", day, alert.line())
    return alerts, measured


def current_versions(bronze: DataFrame, versions: Observation | None = None) -> DataFrame:
    """The newest ingested version of each (format, file, line) of the date's bronze rows; `versions`
    observes how many older ones were `replaced`."""
    newest = Window.partitionBy("format", "source_file", "line_number").orderBy(F.desc("ingest_time"), F.desc("raw"))
    ranked = bronze.withColumn("_v", F.row_number().over(newest))
    if versions is not None:
        ranked = ranked.observe(versions, F.sum((F.col("_v") > 1).cast("long")).alias("replaced"))
    return ranked.where("_v = 1").drop("_v")


def classify(bronze: DataFrame, day: dt.date, ts_floor: dt.date) -> DataFrame:
    """Parsed bronze rows with `reason`: null for a good record, else why it is refused."""
    return parse_records(bronze).withColumn("reason", quarantine_reason(day, ts_floor))


def refused_text_only(classified: DataFrame) -> DataFrame:
    """Classified rows with `raw` and `raw_base64` kept only where the row is refused (`reason` set):
    silver.quarantine keeps a refused line's text; a play is made of its parsed columns."""
    refused = F.col("reason").isNotNull()
    return classified.withColumns({name: F.when(refused, F.col(name)) for name in ("raw", "raw_base64")})


# What clean keeps of a line in its cache: a play's columns, and a refused line's text and reason.
LINE_COLUMNS = ("format", "source_file", "line_number", "ingest_date", "raw", "raw_base64", "reason", "user_id", "ts",
                "artist_mbid", "artist_name", "recording_mbid", "track_name", "track_id", "play_date")


def lean_lines(classified: DataFrame, unicode_form: str) -> DataFrame:
    """Classified lines as clean caches them, once: a good line as a play (to_plays: names
    normalised, its track identity, its play date), a refused line with its text and reason
    (refused_text_only; its names are not normalised, as silver.quarantine keeps the text only); the
    parse's working columns left out, an erasure's `_user` kept (docs/performance.md, "One cache of
    the night's lines")."""
    good = F.col("reason").isNull()
    named = refused_text_only(classified).withColumns({name: F.when(good, F.col(name))
                                                       for name in ("artist_name", "track_name")})
    extra = [c for c in ("_user",) if c in classified.columns]
    return to_plays(named, unicode_form).select(*LINE_COLUMNS, *extra)


def to_plays(good: DataFrame, unicode_form: str) -> DataFrame:
    """Good records as plays: normalised names, track identity, UTC play date. The names are
    normalised row by row in the JVM (udfs.text: ICU through `java_method`), which costs less than
    a shuffle to normalise each distinct name once and join it back."""
    return with_track_id(good, unicode_form).withColumn("play_date", F.to_date("ts"))


def other_nights_plays(spark: SparkSession, cfg: Config, day: dt.date, span) -> DataFrame | None:
    """Plays cleaned on every other night, earlier or later, whose play dates overlap this night's."""
    if not span["n"] or not delta_io.exists(spark, cfg, SILVER_PLAYS):
        return None
    return (delta_io.read(spark, cfg, SILVER_PLAYS)
            .where((F.col("ingest_date") != F.lit(day)) & F.col("play_date").between(span["lo"], span["hi"])))


def count_duplicates(good: DataFrame, good_rows: int, others: DataFrame | None) -> int:
    """Good records (good_rows of them) that are not a play of their own: repeats within the night,
    and plays another night already holds. Counted apart from the dedupe itself, so that the
    reconciliation can fail."""
    distinct = good.select(*DUPLICATE_KEY).distinct()
    if others is None:
        return good_rows - distinct.count()
    held = others.select(*DUPLICATE_KEY).distinct().withColumn("_held", F.lit(True))
    row = distinct.join(held, list(DUPLICATE_KEY), "left").agg(F.count("*").alias("distinct"),
                                                                F.count("_held").alias("held")).first()
    return good_rows - row["distinct"] + row["held"]  # one pass for both counts


def committed_counts(spark: SparkSession, cfg: Config, day: dt.date) -> tuple[int, int, int, int]:
    """(plays, quarantined, new users, new tracks) of the date as committed: its rows of silver.plays
    and silver.quarantine, and the keys of silver.users and silver.tracks first seen on it (the same
    counts on a rerun or after a crash). One Spark job for the four."""
    day_ = F.lit(day)
    parts = [("plays", delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("ingest_date") == day_)),
             ("quarantined", delta_io.read(spark, cfg, SILVER_QUARANTINE).where(
                 (F.col("ingest_date") == day_) & (F.col("stage") == "clean"))),
             ("users", delta_io.read(spark, cfg, SILVER_USERS).where(F.col("first_seen_date") == day_)),
             ("tracks", delta_io.read(spark, cfg, SILVER_TRACKS).where(F.col("first_seen_date") == day_))]
    union = None
    for name, frame in parts:
        one = frame.select(F.lit(name).alias("part"))
        union = one if union is None else union.unionAll(one)
    counted = {r["part"]: r["count"] for r in union.groupBy("part").count().collect()}
    return tuple(int(counted.get(name, 0)) for name, _ in parts)


def drop_duplicates(plays: DataFrame, earlier: DataFrame | None = None, leading: tuple[str, ...] = ()) -> DataFrame:
    """One play per (user, track, second), the first by lineage; none already in `earlier`.
    `leading`: columns every play shares, put first in the window (udfs.sessions.sessionize); the
    key is ordered user, second, track, as the sessions order a user's plays."""
    first = Window.partitionBy(*leading, "user_id", "ts", "track_id").orderBy(*LINEAGE_ORDER)
    unique = plays.withColumn("_n", F.row_number().over(first)).where("_n = 1").drop("_n")
    if earlier is not None:
        unique = unique.join(earlier.select(*DUPLICATE_KEY), list(DUPLICATE_KEY), "left_anti")
    return unique


def first_seen_tracks(plays: DataFrame, day: dt.date, known: DataFrame | None = None) -> DataFrame:
    """One row per track id with the names and ids of its earliest play of the night; only the
    tracks not in `known` (track ids), whose plays are left out before the window orders them
    (on most nights a small share of the plays)."""
    if known is not None:
        plays = plays.join(known.select("track_id"), "track_id", "left_anti")
    earliest = Window.partitionBy("track_id").orderBy("ts", *LINEAGE_ORDER)
    return (plays.withColumn("_n", F.row_number().over(earliest)).where("_n = 1")
            .select("track_id", "artist_name", "track_name", "recording_mbid", "artist_mbid")
            .withColumn("first_seen_date", F.lit(day)))


def fresh_ids(spark: SparkSession, cfg: Config, table, keys: DataFrame | Callable[[DataFrame], DataFrame], key: str,
              idx: str, cache: CacheScope) -> DataFrame:
    """The keys not yet in `table`, numbered after its largest id (udfs.ids), cached. `keys`: the
    night's keys, or a function that makes them from the table's rows."""
    delta_io.ensure(spark, cfg, table)
    existing = delta_io.read(spark, cfg, table)
    return cache(new_ids(keys(existing) if callable(keys) else keys, existing, key, idx, cache))


def insert_ids(spark: SparkSession, cfg: Config, table, fresh: DataFrame, key: str) -> None:
    """Insert the numbered new keys (MERGE, insert only: a key already there keeps its id)."""
    target = delta_io.ensure(spark, cfg, table)
    (target.alias("t").merge(delta_io.conform(fresh, table).alias("s"), f"t.{key} = s.{key}")
     .whenNotMatchedInsertAll().execute())
