"""Candidate features: what the learned ranker knows about each (user, candidate track) of a run date.

Every candidate source (models.sources, models.blend) proposes its top tracks per user with a
signal and a rank; the union of those proposals is the user's candidate set. Each candidate gets:
- per source: its signal there (share of the user's best, or ln plays for the history) and its
  rank in that source (null when the source did not propose it);
- the user's history of the track up to the run date: plays, plays on the day and in the last 7
  days, days since the last and the first play, days played on, share of the user's plays, whether
  it was in the user's latest session;
- the user: plays, distinct tracks, days active, days since the last play;
- the track: plays, listeners and plays of the last 7 days over everyone;
- `blend`, the linear blend of the sources with the configured weights (models.blend).
Missing values stay null: the ranker (gradient-boosted trees) learns what an absent signal means.
Labels (next_day_labels): a candidate of run date D is positive when the user played the track on D + 1.
FEATURES names every feature once; gold.candidates is declared from it.
"""
from __future__ import annotations

import datetime as dt
from typing import Mapping

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from models.blend import SOURCES, blend_columns, contributions, weighed

SOURCE_FEATURES = tuple(f"{s}_{x}" for s in SOURCES for x in ("signal", "rank"))
HISTORY_FEATURES = ("plays", "plays_1d", "plays_7d", "days_since_last", "days_since_first", "active_days", "share",
                    "in_last_session")
USER_FEATURES = ("user_plays", "user_tracks", "user_active_days", "user_days_since_last")
TRACK_FEATURES = ("track_plays", "track_users", "track_plays_7d")
FEATURES = SOURCE_FEATURES + HISTORY_FEATURES + USER_FEATURES + TRACK_FEATURES + ("blend",)


def _history(plays: DataFrame, day: dt.date) -> tuple[DataFrame, DataFrame]:
    """((user_idx, track_idx, history features) for every pair played up to `day`,
    (user_idx, user features) for every user who played)."""
    week = F.lit(day - dt.timedelta(days=7))
    latest = Window.partitionBy("user_idx").orderBy(F.desc("ts"), F.desc("session_position"))
    last_session = (plays.withColumn("_r", F.row_number().over(latest)).where("_r = 1")
                    .select("user_idx", F.col("session_id").alias("_last_session")))
    pairs = (plays.join(F.broadcast(last_session), "user_idx")
             .groupBy("user_idx", "track_idx")
             .agg(F.count("*").alias("plays"),
                  F.sum((F.col("play_date") == F.lit(day)).cast("int")).alias("plays_1d"),
                  F.sum((F.col("play_date") > week).cast("int")).alias("plays_7d"),
                  F.datediff(F.lit(day), F.max("play_date")).alias("days_since_last"),
                  F.datediff(F.lit(day), F.min("play_date")).alias("days_since_first"),
                  F.countDistinct("play_date").alias("active_days"),
                  F.max((F.col("session_id") == F.col("_last_session")).cast("int")).alias("in_last_session")))
    users = plays.groupBy("user_idx").agg(
        F.count("*").alias("user_plays"), F.countDistinct("track_idx").alias("user_tracks"),
        F.countDistinct("play_date").alias("user_active_days"),
        F.datediff(F.lit(day), F.max("play_date")).alias("user_days_since_last"))
    shares = (pairs.join(F.broadcast(users.select("user_idx", "user_plays")), "user_idx")
              .withColumn("share", F.col("plays") / F.col("user_plays")).drop("user_plays"))
    return shares, users


def _tracks(plays: DataFrame, day: dt.date) -> DataFrame:
    week = F.lit(day - dt.timedelta(days=7))
    return plays.groupBy("track_idx").agg(
        F.count("*").alias("track_plays"), F.countDistinct("user_idx").alias("track_users"),
        F.sum((F.col("play_date") > week).cast("int")).alias("track_plays_7d"))


def candidate_features(parts: list[DataFrame], plays: DataFrame, day: dt.date, weights: Mapping[str, float],
                       cold: DataFrame | None = None) -> DataFrame:
    """(user_idx, track_idx, source, *FEATURES) for every candidate the sources propose.

    parts: each source's (user_idx, track_idx, source, signal, rank) (models.blend.source_scores);
    plays: the plays behind the candidates, up to `day`; `source` is the linear blend's main
    source of the candidate (the one that contributed most to its blended score)."""
    # One aggregation per candidate gives the per-source columns, the linear blend (models.blend) and
    # the user's history of the track: the proposals and the played pairs' history rows are stacked
    # and aggregated together, in a hash map (numeric aggregates only, see models.blend.contributions)
    # on the plays' partitioning by user, so neither side is shuffled or sorted for a join. A cold
    # user's blend counts the cold sources only; a pair no source proposed (a history row alone) and
    # a candidate with nothing to blend are dropped.
    proposals = weighed(parts, weights, cold)
    history, users = _history(plays, day)
    per_source = [F.max(F.when(F.col("source") == s, F.col(x))).alias(f"{s}_{x}")
                  for s in SOURCES for x in ("signal", "rank")]
    score, main = blend_columns()
    wide = (proposals.unionByName(history, allowMissingColumns=True).groupBy("user_idx", "track_idx")
            .agg(*per_source, *contributions(), F.max(F.col("kept").cast("int")).alias("_kept"),
                 *[F.max(h).alias(h) for h in HISTORY_FEATURES])
            .where("_kept = 1")
            .select("user_idx", "track_idx", *[f"{s}_{x}" for s in SOURCES for x in ("signal", "rank")],
                    score.alias("blend"), main, *HISTORY_FEATURES))
    # one row per user and per track: broadcast, so the wide rows keep their partitioning by user
    out = wide.join(F.broadcast(users), "user_idx", "left").join(F.broadcast(_tracks(plays, day)), "track_idx", "left")
    zero_when_unplayed = ("plays", "plays_1d", "plays_7d", "active_days", "share", "in_last_session",
                          "user_plays", "user_tracks", "user_active_days", "track_plays", "track_users",
                          "track_plays_7d")
    out = out.fillna(0, list(zero_when_unplayed))
    return out.select("user_idx", "track_idx", "source", *[F.col(f).cast("double").alias(f) for f in FEATURES])


def next_day_labels(plays: DataFrame) -> DataFrame:
    """(run_date, user_idx, track_idx, label=1): every play labels the candidates of the night before
    its day (the lists of run date D are for D + 1)."""
    return (plays.select(F.date_sub("play_date", 1).alias("run_date"), "user_idx", "track_idx").distinct()
            .withColumn("label", F.lit(1)))
