"""Feedback: explicit reactions (like, dislike, skip) into silver.feedback, for recommend to use.

Raw files for date D live under `<raw_path>/feedback-jsonl/date=<D>/`, one JSON object per line:
`{"user_name": ..., "event": "like"|"dislike"|"skip", "timestamp": <unix seconds>,
  "track_metadata": {"artist_name": ..., "track_name": ..., "additional_info": {"recording_mbid": ...}}}`.
The track's identity follows the same rule as plays (udfs.identity). Refused lines go to
silver.quarantine with their reason, beside the listens' (format `feedback-jsonl`). D's rows are
replaced on a rerun. Feedback is optional: a day without a feedback folder ingests nothing.
"""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import delta_io
from jobs.config import Config
from jobs.tables import SILVER_FEEDBACK, SILVER_QUARANTINE
from udfs import quality as Q
from udfs.identity import track_id, valid_mbid
from udfs.text import normalize_name

log = logging.getLogger("setlist.feedback")

FEEDBACK_FORMAT = "feedback-jsonl"
EVENTS = ("like", "dislike", "skip")

_SCHEMA = T.StructType([
    T.StructField("user_name", T.StringType()),
    T.StructField("event", T.StringType()),
    T.StructField("timestamp", T.StringType()),
    T.StructField("track_metadata", T.StructType([
        T.StructField("artist_name", T.StringType()),
        T.StructField("track_name", T.StringType()),
        T.StructField("additional_info", T.StructType([T.StructField("recording_mbid", T.StringType())])),
    ])),
])


def parse(lines: DataFrame, day: dt.date, unicode_form: str) -> DataFrame:
    """Numbered raw lines into feedback columns plus `reason` (null for a good line)."""
    rec = F.from_json("raw", _SCHEMA)
    seconds = F.trim(rec["timestamp"]).try_cast("long")
    meta = rec["track_metadata"]
    parsed = lines.select(
        "*",
        (F.try_parse_json("raw").isNotNull() & F.ltrim("raw").startswith("{")).alias("_object"),
        F.trim(rec["user_name"]).alias("user_id"),
        F.lower(F.trim(rec["event"])).alias("event"),
        F.trim(rec["timestamp"]).alias("_ts_raw"),
        F.when(seconds.isNotNull(), F.timestamp_seconds(seconds)).alias("ts"),
        valid_mbid(meta["additional_info"]["recording_mbid"]).alias("recording_mbid"),
        normalize_name(meta["artist_name"], unicode_form).alias("artist_name"),
        normalize_name(meta["track_name"], unicode_form).alias("track_name"),
    )
    next_midnight = Q.utc_midnight(day + dt.timedelta(days=1))
    reason = (F.when(~F.col("_object"), F.lit(Q.MALFORMED_JSON))
              .when(F.col("user_id").isNull() | (F.col("user_id") == ""), F.lit(Q.EMPTY_USER))
              .when(~F.coalesce(F.col("event").isin(*EVENTS), F.lit(False)), F.lit(Q.UNKNOWN_EVENT))
              .when(F.col("_ts_raw").isNull() | (F.col("_ts_raw") == ""), F.lit(Q.MISSING_TIMESTAMP))
              .when(F.col("ts").isNull(), F.lit(Q.UNPARSABLE_TIMESTAMP))
              .when(F.col("ts") >= next_midnight, F.lit(Q.TIMESTAMP_AFTER_RUN_DATE))
              .when(F.col("recording_mbid").isNull() & F.col("track_name").isNull(), F.lit(Q.MISSING_TRACK)))
    return (parsed.withColumn("reason", reason)
            .withColumn("track_id", track_id(F.col("recording_mbid"), F.col("artist_name"), F.col("track_name"))))


def raw_dir_of(cfg: Config, day: dt.date) -> str:
    from jobs.ingest import raw_dir
    return raw_dir(cfg, FEEDBACK_FORMAT, day)


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict | None:
    """Counts of D's feedback (events, quarantined), or None when D has no feedback folder."""
    from jobs.ingest import _path_exists, read_raw
    path = raw_dir_of(cfg, day)
    if not _path_exists(spark, path):
        return None
    parsed = parse(read_raw(spark, path, FEEDBACK_FORMAT, day), day, cfg.clean.unicode_form).persist()
    try:
        good = parsed.where(F.col("reason").isNull())
        bad = parsed.where(F.col("reason").isNotNull())
        counts = {"feedback": good.count(), "quarantined": bad.count()}
        delta_io.replace_date(good, cfg, SILVER_FEEDBACK, "ingest_date", day)
        delta_io.replace_date(bad, cfg, SILVER_QUARANTINE, "ingest_date", day, also=f"format = '{FEEDBACK_FORMAT}'")
    finally:
        parsed.unpersist()
    log.info("feedback %s: %d events into %s, %d quarantined", day, counts["feedback"], SILVER_FEEDBACK.full_name,
             counts["quarantined"])
    return counts
