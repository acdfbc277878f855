"""Listening sessions: a user's plays in time order, cut where the gap between two plays exceeds
a configured number of minutes.

A session's id is a hash of its user and its first play's time, so it is the same whenever the
same plays are cleaned. A session that a user began before midnight and went on with after it
continues across nights: the night's first session takes the id of the user's last session of
the previous night, and its positions go on from there, when the gap allows.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

# Ties (two plays stamped the same second, as Last.fm-1K has) are ordered by track id.
PLAY_ORDER = ("ts", "track_id")


def sessionize(plays: DataFrame, gap_minutes: int, previous_tail: DataFrame | None = None) -> DataFrame:
    """Add session_id (long) and session_position (1-based) to plays (user_id, track_id, ts, ...).

    previous_tail: for each user, the last play already cleaned before these (columns user_id,
    ts, session_id, session_position); None on a first night.
    """
    gap_seconds = gap_minutes * 60
    by_user = Window.partitionBy("user_id").orderBy(*PLAY_ORDER)
    seconds = F.unix_timestamp("ts")
    gap = seconds - F.lag(seconds).over(by_user)
    marked = plays.withColumn("_starts", F.when(gap.isNull() | (gap > gap_seconds), 1).otherwise(0))
    marked = marked.withColumn("_seq", F.sum("_starts").over(by_user.rowsBetween(Window.unboundedPreceding, 0)))
    by_session = Window.partitionBy("user_id", "_seq").orderBy(*PLAY_ORDER)
    sessions = (marked
                .withColumn("_first_ts", F.first("ts").over(by_session.rowsBetween(Window.unboundedPreceding, 0)))
                .withColumn("session_position", F.row_number().over(by_session))
                .withColumn("session_id", F.xxhash64("user_id", "_first_ts")))
    if previous_tail is not None:
        tail = previous_tail.select(
            "user_id",
            F.col("ts").alias("_tail_ts"),
            F.col("session_id").alias("_tail_session"),
            F.col("session_position").alias("_tail_position"),
        )
        continues = (seconds_between(F.col("_tail_ts"), F.col("_first_ts")) >= 0) & \
                    (seconds_between(F.col("_tail_ts"), F.col("_first_ts")) <= gap_seconds) & (F.col("_seq") == 1)
        sessions = (sessions.join(tail, "user_id", "left")
                    .withColumn("session_id", F.when(continues, F.col("_tail_session")).otherwise(F.col("session_id")))
                    .withColumn("session_position",
                                F.when(continues, F.col("_tail_position") + F.col("session_position"))
                                .otherwise(F.col("session_position")))
                    .drop("_tail_ts", "_tail_session", "_tail_position"))
    return sessions.drop("_starts", "_seq", "_first_ts")


def seconds_between(start, end):
    return F.unix_timestamp(end) - F.unix_timestamp(start)


def last_play_per_user(plays: DataFrame) -> DataFrame:
    """Each user's latest play (user_id, ts, session_id, session_position)."""
    latest = Window.partitionBy("user_id").orderBy(*[F.col(c).desc() for c in PLAY_ORDER])
    return (plays.select("user_id", "ts", "track_id", "session_id", "session_position")
            .withColumn("_r", F.row_number().over(latest)).where("_r = 1")
            .select("user_id", "ts", "session_id", "session_position"))
