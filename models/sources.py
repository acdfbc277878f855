"""Candidate sources and baselines: each turns plays (and a model) into scored (user_idx, track_idx,
score) rows. evaluate ranks every one of them the same way; recommend blends them."""
from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from models.embeddings import broadcast_top_n


def track_popularity(plays: DataFrame) -> DataFrame:
    """(track_idx, plays)."""
    return plays.groupBy("track_idx").agg(F.count("*").alias("plays"))


def popular(plays: DataFrame, users: DataFrame, n: int) -> DataFrame:
    """Global popularity: the same n most played tracks for every user."""
    top = (track_popularity(plays).orderBy(F.desc("plays"), "track_idx").limit(n)
           .select("track_idx", F.col("plays").cast("double").alias("score")))
    return users.select("user_idx").crossJoin(F.broadcast(top))


def most_played(plays: DataFrame, users: DataFrame, n: int) -> DataFrame:
    """Each user's own most played tracks (ties: more recent first)."""
    per_user = (plays.join(users.select("user_idx"), "user_idx")
                .groupBy("user_idx", "track_idx").agg(F.count("*").alias("n"), F.max("ts").alias("last")))
    ranked = per_user.withColumn("r", F.row_number().over(
        Window.partitionBy("user_idx").orderBy(F.desc("n"), F.desc("last"), "track_idx")))
    # Score: play count, with the rank's tie-break folded in as a fraction of at most 0.01 play.
    return (ranked.where(F.col("r") <= n)
            .select("user_idx", "track_idx", (F.col("n") + 0.01 / F.col("r")).alias("score")))


def recent_tracks(plays: DataFrame, users: DataFrame, n: int) -> DataFrame:
    """(user_idx, track_idx, recency_rank): each user's last n distinct tracks, 1 = latest."""
    last = (plays.join(users.select("user_idx"), "user_idx")
            .groupBy("user_idx", "track_idx").agg(F.max("ts").alias("last")))
    ranked = last.withColumn("recency_rank", F.row_number().over(
        Window.partitionBy("user_idx").orderBy(F.desc("last"), "track_idx")))
    return ranked.where(F.col("recency_rank") <= n).drop("last")


def neighbour_table(spark: SparkSession, embeddings: DataFrame, n: int) -> DataFrame:
    """(track_idx, neighbour_idx, similarity): each embedded track's n nearest other tracks by cosine.

    The matrix is broadcast once; each task scores its own block of query tracks against it."""
    local = embeddings.select("track_idx", "vector").toPandas()
    keys = local["track_idx"].to_numpy(dtype=np.int64)
    matrix = np.stack(local["vector"].to_numpy()).astype(np.float32) if len(local) else np.zeros((0, 1), np.float32)
    return broadcast_top_n(spark, embeddings, "track_idx", "vector", keys, matrix, n,
                           ("track_idx", "neighbour_idx", "similarity"), exclude_self=True)


def item2vec(neighbours: DataFrame, recent: DataFrame) -> DataFrame:
    """Neighbours of each user's recent tracks; a candidate's score is its highest similarity to
    any of them. (A sum lets the many near-identical neighbours of one album the user just played
    crowd out everything else; measured on generated data, max ranks better.)"""
    joined = recent.join(neighbours, "track_idx")
    return (joined.groupBy("user_idx", F.col("neighbour_idx").alias("track_idx"))
            .agg(F.max("similarity").alias("score")))


def segment_scored(plays: DataFrame, segments: DataFrame, users: DataFrame, n: int) -> DataFrame:
    """The n most played tracks of each user's taste segment (score: plays in the segment)."""
    per_segment = (plays.join(segments.select("user_idx", "segment"), "user_idx")
                   .groupBy("segment", "track_idx").agg(F.count("*").cast("double").alias("score")))
    top = per_segment.withColumn("_r", F.row_number().over(
        Window.partitionBy("segment").orderBy(F.desc("score"), "track_idx"))).where(F.col("_r") <= n).drop("_r")
    return users.join(segments.select("user_idx", "segment"), "user_idx").join(top, "segment").select(
        "user_idx", "track_idx", "score")


def latest_windows(plays: DataFrame, window: int) -> DataFrame:
    """(user_idx, x): the last `window` tracks of each user's latest session, 0-padded on the left."""
    latest = Window.partitionBy("user_idx").orderBy(F.desc("ts"), F.desc("session_position"))
    last_session = (plays.withColumn("_r", F.row_number().over(latest)).where("_r = 1")
                    .select("user_idx", "session_id"))
    in_session = plays.join(last_session, ["user_idx", "session_id"])
    tail = in_session.withColumn("_r", F.row_number().over(
        Window.partitionBy("user_idx").orderBy(F.desc("session_position")))).where(F.col("_r") <= window)
    tracks = (tail.groupBy("user_idx").agg(F.array_sort(F.collect_list(F.struct("session_position", "track_idx")))
                                           .alias("s"))
              .select("user_idx", F.transform("s", lambda e: e["track_idx"]).alias("t")))
    return tracks.select("user_idx", F.concat(F.array_repeat(F.lit(0), F.lit(window) - F.size("t")), "t").alias("x"))
