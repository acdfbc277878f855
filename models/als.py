"""Implicit-feedback ALS (Spark MLlib) on play counts: interactions, fitting, blocked top-N scoring
and a validated search of its hyperparameters within a time budget. No session handling; the als
stage calls these."""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import random
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np
from pyspark import inheritable_thread_target
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from models.embeddings import broadcast_top_n
from models.scoring import ranked_lists, score_lists, temporal_split, truth_of

log = logging.getLogger("setlist.als")


@dataclasses.dataclass(frozen=True)
class AlsParams:
    rank: int
    reg_param: float
    alpha: float
    confidence: str = "log"         # "log": 1 + log1p(plays); "linear": plays


@dataclasses.dataclass(frozen=True)
class AlsSettings:
    """How ALS is fitted, besides the searched parameters (AlsParams)."""
    recency_half_life_days: float   # confidence halves every N days of the last play's age (0: off)
    max_iter: int
    checkpoint_interval: int
    seed: int
    blocks: int = 0                 # user and item blocks; 0: Spark's default parallelism

    @classmethod
    def of(cls, conf) -> "AlsSettings":
        """From a config section with these attributes (the als section)."""
        return cls(*(getattr(conf, f.name) for f in dataclasses.fields(cls)))

    def interactions(self, plays: DataFrame, day: dt.date, confidence: str = "log") -> DataFrame:
        """(user_idx, track_idx, plays, confidence) for every pair with at least one play."""
        pairs = plays.groupBy("user_idx", "track_idx").agg(F.count("*").alias("plays"),
                                                           F.max("play_date").alias("last"))
        base = F.log1p(F.col("plays")) + 1.0 if confidence == "log" else F.col("plays").cast("double")
        if self.recency_half_life_days > 0:
            age = F.datediff(F.lit(day), F.col("last"))
            base = base * F.pow(F.lit(0.5), age / F.lit(self.recency_half_life_days))
        return pairs.select("user_idx", "track_idx", "plays", base.alias("confidence"))

    def fit(self, pairs: DataFrame, p: AlsParams) -> ALSModel:
        # MLlib's default of 10 blocks makes 10 tasks of every iteration's jobs whatever the cores;
        # one block per task slot cut a fit by 12-29% (1.4M pairs) to half (5,600 pairs) on 2 cores.
        # The als stage sets blocks to its task slots (jobs.als.settings_for); 0 here: Spark's default
        # parallelism
        blocks = self.blocks or pairs.sparkSession.sparkContext.defaultParallelism
        als = ALS(rank=p.rank, regParam=p.reg_param, alpha=p.alpha, maxIter=self.max_iter, implicitPrefs=True,
                  userCol="user_idx", itemCol="track_idx", ratingCol="confidence", coldStartStrategy="drop",
                  checkpointInterval=self.checkpoint_interval, seed=self.seed, nonnegative=False,
                  numUserBlocks=blocks, numItemBlocks=blocks)
        return als.fit(pairs)


def top_scored(model: ALSModel, users: DataFrame, n: int) -> DataFrame:
    """(user_idx, track_idx, score): each user's n best tracks with their predicted preference (the
    dot product of the factors, as MLlib's recommendForUserSubset scores them). The item factors are
    broadcast once; each task multiplies a chunk of its users' factors by them (one BLAS product
    per chunk, models.embeddings.broadcast_top_n) and keeps the top n with a partial sort. MLlib's
    blocked scoring feeds every (user, track) score through a bounded priority queue per user,
    which the scale bench measured as recommend's largest cost (111 of 439 task seconds at 3M events)."""
    spark = users.sparkSession
    items = model.itemFactors.toPandas()
    keys = items["id"].to_numpy(dtype=np.int64)
    matrix = (np.stack(items["features"].to_numpy()).astype(np.float32) if len(items)
              else np.zeros((0, model.rank), np.float32))
    wanted = users.select(F.col("user_idx").alias("id")).distinct()
    factors = model.userFactors.join(wanted, "id").repartition(spark.sparkContext.defaultParallelism)
    return broadcast_top_n(spark, factors, "id", "features", keys, matrix, n, ("user_idx", "track_idx", "score"),
                           cosine=False)


def top_n(model: ALSModel, users: DataFrame, n: int) -> DataFrame:
    """(user_idx, recs array<int>): each user's n best tracks, best first."""
    return ranked_lists(top_scored(model, users, n), n)


def grid(ranks: list[int], reg_params: list[float], alphas: list[float], confidences: list[str],
         first: AlsParams | None = None, seed: int = 7) -> list[AlsParams]:
    """Every combination, `first` (the configured or last chosen parameters) leading and the rest in
    a seeded random order, so that a search cut short by its time budget still samples the space."""
    rest = [AlsParams(r, g, a, c) for r, g, a, c in itertools.product(ranks, reg_params, alphas, confidences)]
    random.Random(seed).shuffle(rest)
    return ([first] if first else []) + [p for p in rest if p != first]


def validate(plays: DataFrame, day: dt.date, validation_days: int, candidates: list[AlsParams],
             settings: AlsSettings, k: int, metric: str, budget_s: float = float("inf"), parallelism: int = 1
             ) -> tuple[AlsParams, dict, int] | None:
    """Train candidates on plays before the validation window (the last validation_days days up to
    day) and rank them on the window, in order, until the time budget is spent (the first is always
    tried); (the best by `metric`@k, ties to the earlier candidate, its metrics, candidates tried).
    None when the window or the days before it have no plays.

    `parallelism` sets are fitted at once, from threads of this driver sharing the Spark application
    (as MLlib's CrossValidator `parallelism` does): a small fit leaves task slots idle while the
    driver plans its next job, and a second fit fills them. A set starts only while the budget
    lasts, as one after another; the fits and their metrics are the same either way."""
    train, held_out = temporal_split(plays, day, validation_days)
    truth = truth_of(held_out, train).persist()
    before = day - dt.timedelta(days=validation_days)
    pairs = {}

    def trial(p: AlsParams) -> dict:
        metrics = score_lists(top_n(settings.fit(pairs[p.confidence], p), truth, k), truth, k)
        log.info("als %s: validation %s -> %s@%d %.4f", day, p, metric, k, metrics[metric])
        return metrics

    try:
        if truth.isEmpty() or train.isEmpty():
            return None
        started, running, slots = time.monotonic(), [], max(1, parallelism)
        in_thread = inheritable_thread_target(plays.sparkSession)(trial)  # the caller's job properties and tags
        with ThreadPoolExecutor(slots, thread_name_prefix="als-search") as pool:
            for i, p in enumerate(candidates):
                if i and time.monotonic() - started > budget_s:
                    log.info("als %s: time budget of %.0f s spent after starting %d of %d parameter sets", day,
                             budget_s, i, len(candidates))
                    break
                if p.confidence not in pairs:
                    pairs[p.confidence] = settings.interactions(train, before, p.confidence).persist()
                running.append((p, pool.submit(in_thread, p)))
                pending = [future for _, future in running if not future.done()]
                while len(pending) >= slots:  # a slot frees when a fit ends
                    pending = list(wait(pending, return_when=FIRST_COMPLETED).not_done)
                failed = next((future.exception() for _, future in running if future.done()
                               and future.exception()), None)
                if failed:
                    raise failed
            done = [(p, future.result()) for p, future in running]
        best, best_metrics = max(done, key=lambda tried: tried[1][metric])  # the first of equals
        return best, best_metrics, len(done)
    finally:
        truth.unpersist()
        for frame in pairs.values():
            frame.unpersist()
