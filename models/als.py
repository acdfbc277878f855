"""Implicit-feedback ALS (Spark MLlib) on play counts: interactions, fitting, blocked top-N scoring
and a validated grid search. No session handling; the als stage and evaluate call these."""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from models.scoring import ranked_lists, score_lists, temporal_split, truth_of

log = logging.getLogger("setlist.als")


@dataclasses.dataclass(frozen=True)
class AlsParams:
    rank: int
    reg_param: float
    alpha: float


@dataclasses.dataclass(frozen=True)
class AlsSettings:
    """How plays become confidences and how ALS is fitted (everything but the searched parameters)."""
    confidence: str                 # "log": 1 + log1p(plays); "linear": plays
    recency_half_life_days: float   # confidence halves every N days of the last play's age (0: off)
    max_iter: int
    checkpoint_interval: int
    seed: int

    @classmethod
    def of(cls, conf) -> "AlsSettings":
        """From a config section with these attributes (the als section)."""
        return cls(*(getattr(conf, f.name) for f in dataclasses.fields(cls)))

    def interactions(self, plays: DataFrame, day: dt.date) -> DataFrame:
        """(user_idx, track_idx, plays, confidence) for every pair with at least one play."""
        pairs = plays.groupBy("user_idx", "track_idx").agg(F.count("*").alias("plays"),
                                                           F.max("play_date").alias("last"))
        base = F.log1p(F.col("plays")) + 1.0 if self.confidence == "log" else F.col("plays").cast("double")
        if self.recency_half_life_days > 0:
            age = F.datediff(F.lit(day), F.col("last"))
            base = base * F.pow(F.lit(0.5), age / F.lit(self.recency_half_life_days))
        return pairs.select("user_idx", "track_idx", "plays", base.alias("confidence"))

    def fit(self, pairs: DataFrame, p: AlsParams) -> ALSModel:
        als = ALS(rank=p.rank, regParam=p.reg_param, alpha=p.alpha, maxIter=self.max_iter, implicitPrefs=True,
                  userCol="user_idx", itemCol="track_idx", ratingCol="confidence", coldStartStrategy="drop",
                  checkpointInterval=self.checkpoint_interval, seed=self.seed, nonnegative=False)
        return als.fit(pairs)


def top_scored(model: ALSModel, users: DataFrame, n: int) -> DataFrame:
    """(user_idx, track_idx, score): each user's n best tracks with their predicted preference. MLlib
    scores users against items in blocks (recommendForUserSubset), never as one user-by-track product."""
    recs = model.recommendForUserSubset(users.select("user_idx"), n)
    return recs.select("user_idx", F.explode("recommendations").alias("r")).select(
        "user_idx", F.col("r.track_idx").alias("track_idx"), F.col("r.rating").cast("double").alias("score"))


def top_n(model: ALSModel, users: DataFrame, n: int) -> DataFrame:
    """(user_idx, recs array<int>): each user's n best tracks, best first."""
    return ranked_lists(top_scored(model, users, n), n)


def grid(ranks: list[int], reg_params: list[float], alphas: list[float]) -> list[AlsParams]:
    return [AlsParams(r, g, a) for r, g, a in itertools.product(ranks, reg_params, alphas)]


def validate(plays: DataFrame, day: dt.date, validation_days: int, candidates: list[AlsParams],
             settings: AlsSettings, k: int, metric: str) -> tuple[AlsParams, dict] | None:
    """Train each candidate on plays before the validation window (the last validation_days days up
    to day) and rank it on the window; the best by `metric`@k with its metrics. None when the window
    or the days before it have no plays."""
    train, held_out = temporal_split(plays, day, validation_days)
    truth = truth_of(held_out, train).persist()
    pairs = settings.interactions(train, day - dt.timedelta(days=validation_days)).persist()
    try:
        if truth.isEmpty() or pairs.isEmpty():
            return None
        best, best_metrics = None, None
        for p in candidates:
            metrics = score_lists(top_n(settings.fit(pairs, p), truth, k), truth, k)
            log.info("als %s: validation %s -> %s@%d %.4f", day, p, metric, k, metrics[metric])
            if best is None or metrics[metric] > best_metrics[metric]:
                best, best_metrics = p, metrics
        return best, best_metrics
    finally:
        truth.unpersist()
        pairs.unpersist()
