"""recommend: the top-K tracks of every user for run date D into gold.recommendations.

Candidates per user, each source's top recommend.candidates_per_source:
- history: the user's own most played tracks (people replay what they love); score: ln(plays);
- als: the latest ALS model trained on or before D (recommendForUserSubset: blocked scoring); score:
  predicted preference;
- lstm: the latest LSTM's next tracks after the user's latest session (scored on the executors);
  score: next-track probability;
- item2vec: neighbours of the user's recent tracks in the latest embeddings; score: cosine similarity;
- segment: the most played tracks of the user's taste segment; score: plays in the segment;
- popularity: the most played tracks overall (the last fallback, and the pool that guarantees K).
A candidate's blended score is the sum over sources of recommend.weight_<source> x its signal in
that source: ln(plays) for history, and for the others its score as a share of the user's best score
in that source (1 for the source's first track; see source_scores). Its `source` is the one that
contributed most. The default weights were chosen on validation splits (bench/quality.py
--tune-blend, README "Measured quality").
Users with fewer than recommend.min_history plays get segment and popularity candidates only.
Feedback (silver.feedback): tracks the user disliked are dropped for good, liked ones boosted, lately
skipped ones damped (recommend.like_boost, skip_penalty, skip_days). Tracks (with
recommend.exclude_played_days > 0) played lately are dropped too; then a
greedy MMR pass per user picks K tracks, trading score against repeating an artist
(recommend.mmr_lambda) with at most recommend.max_per_artist per artist (relaxed only if the
catalogue cannot fill K otherwise). D's rows of gold.recommendations are replaced in one commit.
"""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import torch
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs import candidates, delta_io, embed
from jobs.als import top_scored
from jobs.config import Config, RecommendConf
from jobs.errors import InputError
from jobs.tables import (GOLD_MODELS, GOLD_RECOMMENDATIONS, GOLD_TRACK_EMBEDDINGS, GOLD_USER_SEGMENTS,
                         SILVER_FEEDBACK, SILVER_PLAYS, SILVER_TRACKS, SILVER_USERS)
from udfs.quality import utc_midnight
from models.serving import next_track_scores

log = logging.getLogger("setlist.recommend")

SOURCES = ("history", "als", "lstm", "item2vec", "segment", "popularity")
COLD_SOURCES = ("segment", "popularity")


def latest_date(spark: SparkSession, cfg: Config, table, day: dt.date) -> dt.date | None:
    if not delta_io.exists(spark, cfg, table):
        return None
    return delta_io.read(spark, cfg, table).where(F.col("run_date") <= F.lit(day)).agg(F.max("run_date")).first()[0]


def latest_model(spark: SparkSession, cfg: Config, name: str, day: dt.date):
    if not delta_io.exists(spark, cfg, GOLD_MODELS):
        return None
    return (delta_io.read(spark, cfg, GOLD_MODELS).where((F.col("model") == name) & (F.col("run_date") <= F.lit(day)))
            .orderBy(F.desc("run_date")).first())


def source_scores(scored: DataFrame, n: int, source: str, scale: str = "share") -> DataFrame:
    """(user_idx, track_idx, score) into (user_idx, track_idx, source, signal): the user's top n of
    the source, each with the signal the blend weighs.
    - scale "share" (model scores: ALS preference, probability, similarity, plays of a segment or of
      everyone): the score over the user's best score in that source (negative scores count 0), since
      such scores do not compare across users; 1.0 for the source's first track.
    - scale "log" (the user's own play counts): ln(plays), 0 for a track played once, 1 for about
      2.7 plays, 3.7 for 40. Counts do compare across users (40 plays make a favourite whoever plays
      them) and a log keeps a user's few-plays tail below the other sources' best (measured:
      README "Measured quality")."""
    by_user = Window.partitionBy("user_idx")
    ranked = scored.withColumn("_r", F.row_number().over(by_user.orderBy(F.desc("score"), "track_idx")))
    top = ranked.where(F.col("_r") <= n)
    if scale == "log":
        signal = F.log(F.greatest(F.col("score"), F.lit(1.0)))
    elif scale == "share":
        top = top.withColumn("_s", F.greatest(F.col("score"), F.lit(0.0)))
        best = F.max("_s").over(by_user)
        signal = F.when(best > 0, F.col("_s") / best).otherwise(F.lit(0.0))
    else:
        raise ValueError(f"scale must be share or log, not {scale!r}")
    return top.select("user_idx", "track_idx", F.lit(source).alias("source"), signal.alias("signal"))


def history_scores(plays: DataFrame, users: DataFrame, n: int) -> DataFrame:
    """The history source: each user's n most played tracks, signal ln(plays)."""
    return source_scores(candidates.most_played(plays, users, n), n, "history", scale="log")


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


def lstm_scored(spark: SparkSession, model_path: str, windows: DataFrame, n: int) -> DataFrame:
    """(user_idx, track_idx, score): the saved LSTM's n most probable next tracks per user window."""
    saved = torch.load(f"{model_path}/model.pt", map_location="cpu", weights_only=False)
    return next_track_scores(spark, saved, windows, "user_idx", n)


def segment_scored(plays: DataFrame, segments: DataFrame, users: DataFrame, n: int) -> DataFrame:
    per_segment = (plays.join(segments.select("user_idx", "segment"), "user_idx")
                   .groupBy("segment", "track_idx").agg(F.count("*").cast("double").alias("score")))
    top = per_segment.withColumn("_r", F.row_number().over(
        Window.partitionBy("segment").orderBy(F.desc("score"), "track_idx"))).where(F.col("_r") <= n).drop("_r")
    return users.join(segments.select("user_idx", "segment"), "user_idx").join(top, "segment").select(
        "user_idx", "track_idx", "score")


def source_candidates(spark: SparkSession, cfg: Config, day: dt.date, plays: DataFrame, warm: DataFrame,
                      everyone: DataFrame) -> tuple[list[DataFrame], dict]:
    conf, n = cfg.recommend, cfg.recommend.candidates_per_source
    parts = [history_scores(plays, warm, n)]
    used = {"history": f"plays up to {day}"}
    als_row = latest_model(spark, cfg, "als", day)
    if als_row is not None:
        parts.append(source_scores(top_scored(ALSModel.load(als_row["path"]), warm, n), n, "als"))
        used["als"] = als_row["version"]
    lstm_row = latest_model(spark, cfg, "lstm", day)
    if lstm_row is not None:
        windows = latest_windows(plays.join(warm, "user_idx"), cfg.train.window)
        parts.append(source_scores(lstm_scored(spark, lstm_row["path"], windows, n), n, "lstm"))
        used["lstm"] = lstm_row["version"]
    emb_date = latest_date(spark, cfg, GOLD_TRACK_EMBEDDINGS, day)
    if emb_date is not None:
        embeddings = delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(emb_date))
        neighbours = candidates.neighbour_table(spark, embeddings, cfg.evaluate.neighbours)
        recent = candidates.recent_tracks(plays, warm, cfg.evaluate.recent_tracks)
        parts.append(source_scores(candidates.item2vec(neighbours, recent), n, "item2vec"))
        used["item2vec"] = f"embeddings of {emb_date}"
    seg_date = latest_date(spark, cfg, GOLD_USER_SEGMENTS, day)
    if seg_date is not None:
        segments = delta_io.read(spark, cfg, GOLD_USER_SEGMENTS).where(F.col("run_date") == F.lit(seg_date))
        parts.append(source_scores(segment_scored(plays, segments, everyone, n), n, "segment"))
        used["segment"] = f"segments of {seg_date}"
    parts.append(source_scores(candidates.popular(plays, everyone, n), n, "popularity"))
    used["popularity"] = f"plays up to {day}"
    return parts, used


def blend(parts: list[DataFrame], conf: RecommendConf, cold: DataFrame | None = None) -> DataFrame:
    """(user_idx, track_idx, score, source) summed over sources; cold users keep cold sources only."""
    weights = F.create_map(*[x for s in SOURCES for x in (F.lit(s), F.lit(float(getattr(conf, f"weight_{s}"))))])
    allc = parts[0]
    for p in parts[1:]:
        allc = allc.unionByName(p)
    if cold is not None:
        allc = allc.join(cold.withColumn("_cold", F.lit(True)), "user_idx", "left")
        allc = allc.where(F.col("_cold").isNull() | F.col("source").isin(*COLD_SOURCES)).drop("_cold")
    weighted = allc.withColumn("w", weights[F.col("source")] * F.col("signal"))
    return (weighted.groupBy("user_idx", "track_idx")
            .agg(F.sum("w").alias("score"), F.max_by("source", F.struct("w", "source")).alias("source")))


def apply_feedback(spark: SparkSession, cfg: Config, day: dt.date, blended: DataFrame, users: DataFrame) -> DataFrame:
    """Drop what a user disliked (ever); boost what they liked; damp what they skipped lately."""
    if not delta_io.exists(spark, cfg, SILVER_FEEDBACK):
        return blended
    conf = cfg.recommend
    tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_id", "track_idx")
    events = (delta_io.read(spark, cfg, SILVER_FEEDBACK).where(F.col("ts") < utc_midnight(day + dt.timedelta(days=1)))
              .join(users.select("user_id", "user_idx"), "user_id").join(tracks, "track_id"))
    disliked = events.where(F.col("event") == "dislike").select("user_idx", "track_idx").distinct()
    liked = events.where(F.col("event") == "like").select("user_idx", "track_idx").distinct() \
        .withColumn("_liked", F.lit(True))
    skipped = (events.where((F.col("event") == "skip")
                            & (F.col("ts") >= utc_midnight(day - dt.timedelta(days=conf.skip_days - 1))))
               .select("user_idx", "track_idx").distinct().withColumn("_skipped", F.lit(True)))
    factor = (F.when(F.col("_liked").isNotNull(), 1.0 + conf.like_boost).otherwise(1.0)
              * F.when(F.col("_skipped").isNotNull(), 1.0 - conf.skip_penalty).otherwise(1.0))
    return (blended.join(disliked, ["user_idx", "track_idx"], "left_anti")
            .join(liked, ["user_idx", "track_idx"], "left").join(skipped, ["user_idx", "track_idx"], "left")
            .withColumn("score", F.col("score") * factor).drop("_liked", "_skipped"))


def diversify(k: int, max_per_artist: int, mmr_lambda: float):
    """A pandas function for applyInPandas over one user's candidates (track_idx, artist_name, score,
    source): greedy MMR with an artist cap, exactly k rows when there are k candidates."""
    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(["score", "track_idx"], ascending=[False, True]).reset_index(drop=True)
        top = frame["score"].iloc[0] if len(frame) else 1.0
        relevance = (frame["score"] / (top if top > 0 else 1.0)).to_numpy()
        artists = frame["artist_name"].fillna("").to_numpy()
        chosen: list[int] = []
        per_artist: dict[str, int] = {}
        for cap in (max_per_artist, None):  # second pass only if the cap leaves the list short
            while len(chosen) < k:
                best, best_value = -1, -np.inf
                for i in range(len(frame)):
                    if i in chosen or (cap is not None and per_artist.get(artists[i], 0) >= cap):
                        continue
                    value = mmr_lambda * relevance[i] - (1 - mmr_lambda) * (1.0 if per_artist.get(artists[i]) else 0.0)
                    if value > best_value:
                        best, best_value = i, value
                if best < 0:
                    break
                chosen.append(best)
                per_artist[artists[best]] = per_artist.get(artists[best], 0) + 1
            if len(chosen) >= k:
                break
        out = frame.iloc[chosen].copy()
        out["rank"] = np.arange(1, len(out) + 1, dtype=np.int32)
        return out[["user_idx", "track_idx", "score", "source", "rank"]]
    return pick


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf = cfg.recommend
    plays = delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") <= F.lit(day)).persist()
    try:
        users = delta_io.read(spark, cfg, SILVER_USERS).where(F.col("first_seen_date") <= F.lit(day))
        everyone = users.select("user_idx")
        history = plays.groupBy("user_idx").agg(F.count("*").alias("n"))
        counted = everyone.join(history, "user_idx", "left").fillna(0, ["n"])
        warm = counted.where(F.col("n") >= conf.min_history).select("user_idx")
        cold = counted.where(F.col("n") < conf.min_history).select("user_idx")
        n_users = everyone.count()
        if n_users == 0:
            raise InputError(f"recommend {day}: no users in {SILVER_USERS.full_name}: run clean first")
        parts, used = source_candidates(spark, cfg, day, embed.history(plays, day, cfg.embed.history_days),
                                        warm, everyone)
        log.info("recommend %s: %d users (%d cold start), sources %s", day, n_users, cold.count(), used)
        blended = blend(parts, conf, cold)
        if conf.exclude_played_days > 0:
            lately = plays.where(F.col("play_date") > F.lit(day - dt.timedelta(days=conf.exclude_played_days)))
            blended = blended.join(lately.select("user_idx", "track_idx").distinct(), ["user_idx", "track_idx"],
                                   "left_anti")
        blended = apply_feedback(spark, cfg, day, blended, users)
        tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_idx", "track_id", "artist_name", "track_name")
        pool = blended.join(tracks, "track_idx")
        picked = pool.groupBy("user_idx").applyInPandas(
            diversify(conf.k, conf.max_per_artist, conf.mmr_lambda),
            "user_idx int, track_idx int, score double, source string, rank int")
        out = (picked.join(tracks, "track_idx").join(users.select("user_idx", "user_id"), "user_idx")
               .withColumn("run_date", F.lit(day)))
        delta_io.replace_date(out, cfg, GOLD_RECOMMENDATIONS, "run_date", day)
    finally:
        plays.unpersist()
    written = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    stats = written.groupBy("user_id").count().agg(F.count("*").alias("users"), F.min("count").alias("min_k"),
                                                   F.sum("count").alias("rows")).first()
    by_source = {r["source"]: r["count"] for r in written.groupBy("source").count().collect()}
    summary = {"users": stats["users"], "rows": stats["rows"], "min_per_user": stats["min_k"], "sources": by_source,
               "models": used}
    log.info("recommend %s: %s", day, summary)
    return summary
