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


def sessionize(plays: DataFrame, gap_minutes: int, previous_tail: DataFrame | None = None,
               leading: tuple[str, ...] = ()) -> DataFrame:
    """Add session_id (long) and session_position (1-based) to plays (user_id, track_id, ts, ...).

    previous_tail: for each user, the last play already cleaned before these (columns user_id,
    ts, session_id, session_position); None on a first night; joined as a broadcast (one row per
    user), so the plays keep their order. leading: columns every play shares (the night's date),
    put first in the one window the sessions are cut over, so the plays come out ordered as a table
    partitioned by them is written (no sort of its own) and a frame already partitioned by user_id
    is not shuffled again.
    """
    gap_seconds = gap_minutes * 60
    # One window (one partitioning, one order) for every step: a session's first play is the user's
    # latest play so far that starts one, as the plays are in time order.
    by_user = Window.partitionBy(*leading, "user_id").orderBy(*PLAY_ORDER)
    so_far = by_user.rowsBetween(Window.unboundedPreceding, 0)
    seconds = F.unix_timestamp("ts")
    gap = seconds - F.lag(seconds).over(by_user)
    starts = gap.isNull() | (gap > gap_seconds)
    marked = plays.withColumns({"_starts": starts, "_n": F.row_number().over(by_user)})
    sessions = (marked
                .withColumns({"_first_n": F.max(F.when(F.col("_starts"), F.col("_n"))).over(so_far),
                              "_first_ts": F.max(F.when(F.col("_starts"), F.col("ts"))).over(so_far)})
                .withColumns({"session_position": (F.col("_n") - F.col("_first_n") + 1).cast("int"),
                              "session_id": F.xxhash64("user_id", "_first_ts")}))
    if previous_tail is not None:
        tail = previous_tail.select(
            "user_id",
            F.col("ts").alias("_tail_ts"),
            F.col("session_id").alias("_tail_session"),
            F.col("session_position").alias("_tail_position"),
        )
        continues = (seconds_between(F.col("_tail_ts"), F.col("_first_ts")) >= 0) & \
                    (seconds_between(F.col("_tail_ts"), F.col("_first_ts")) <= gap_seconds) & (F.col("_first_n") == 1)
        sessions = (sessions.join(F.broadcast(tail), "user_id", "left")
                    .withColumn("session_id", F.when(continues, F.col("_tail_session")).otherwise(F.col("session_id")))
                    .withColumn("session_position",
                                F.when(continues, F.col("_tail_position") + F.col("session_position"))
                                .otherwise(F.col("session_position")))
                    .drop("_tail_ts", "_tail_session", "_tail_position"))
    return sessions.drop("_starts", "_n", "_first_n", "_first_ts")


def seconds_between(start, end):
    return F.unix_timestamp(end) - F.unix_timestamp(start)


def last_play_per_user(plays: DataFrame) -> DataFrame:
    """Each user's latest play (user_id, ts, session_id, session_position)."""
    latest = Window.partitionBy("user_id").orderBy(*[F.col(c).desc() for c in PLAY_ORDER])
    return (plays.select("user_id", "ts", "track_id", "session_id", "session_position")
            .withColumn("_r", F.row_number().over(latest)).where("_r = 1")
            .select("user_id", "ts", "session_id", "session_position"))
