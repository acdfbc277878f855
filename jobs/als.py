"""als: implicit-feedback collaborative filtering (Spark MLlib ALS) on play counts.

For run date D: plays of the last als.history_days days become one (user, track) row each with a
confidence from its play count (als.confidence: log or linear), optionally decayed by the age of
the last play (als.recency_half_life_days). ALS runs with implicitPrefs, coldStartStrategy=drop and
a checkpoint directory under the warehouse, so that many iterations cannot overflow the stack.
Hyperparameters come from conf; with a grid (als.grid_*) every combination is trained on plays
before the last als.validation_days days and ranked on them (a ranking metric, never RMSE); the
best is retrained on all plays. The model is saved under <warehouse>/models/als/<D>, its factors go
to gold.als_user_factors / gold.als_item_factors, and a row with parameters and validation metrics
to gold.models.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import logging
import math

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import delta_io
from jobs.config import AlsConf, Config, join_path
from jobs.embed import history
from jobs.errors import NotEnoughHistory
from jobs.scoring import ranked_lists, score_lists, temporal_split, truth_of
from jobs.tables import GOLD_ALS_ITEM_FACTORS, GOLD_ALS_USER_FACTORS, GOLD_MODELS, SILVER_PLAYS

log = logging.getLogger("setlist.als")


@dataclasses.dataclass(frozen=True)
class AlsParams:
    rank: int
    reg_param: float
    alpha: float


def interactions(plays: DataFrame, day: dt.date, conf: AlsConf) -> DataFrame:
    """(user_idx, track_idx, plays, confidence) for every pair with at least one play."""
    pairs = plays.groupBy("user_idx", "track_idx").agg(F.count("*").alias("plays"), F.max("play_date").alias("last"))
    base = F.log1p(F.col("plays")) + 1.0 if conf.confidence == "log" else F.col("plays").cast("double")
    if conf.recency_half_life_days > 0:
        age = F.datediff(F.lit(day), F.col("last"))
        base = base * F.pow(F.lit(0.5), age / F.lit(conf.recency_half_life_days))
    return pairs.select("user_idx", "track_idx", "plays", base.alias("confidence"))


def fit(pairs: DataFrame, p: AlsParams, conf: AlsConf) -> ALSModel:
    als = ALS(rank=p.rank, regParam=p.reg_param, alpha=p.alpha, maxIter=conf.max_iter, implicitPrefs=True,
              userCol="user_idx", itemCol="track_idx", ratingCol="confidence", coldStartStrategy="drop",
              checkpointInterval=conf.checkpoint_interval, seed=conf.seed, nonnegative=False)
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


def grid(conf: AlsConf) -> list[AlsParams]:
    ranks = conf.grid_ranks or [conf.rank]
    regs = conf.grid_reg_params or [conf.reg_param]
    alphas = conf.grid_alphas or [conf.alpha]
    return [AlsParams(r, g, a) for r, g, a in itertools.product(ranks, regs, alphas)]


def validate(plays: DataFrame, day: dt.date, conf: AlsConf, candidates: list[AlsParams], k: int
             ) -> tuple[AlsParams, dict]:
    """Train each candidate before the validation window, rank on it; the best by conf.grid_metric."""
    train, held_out = temporal_split(plays, day, conf.validation_days)
    truth = truth_of(held_out, train).persist()
    pairs = interactions(train, day - dt.timedelta(days=conf.validation_days), conf).persist()
    try:
        if truth.isEmpty() or pairs.isEmpty():
            raise NotEnoughHistory(f"als {day}: no plays to validate on: the {conf.validation_days} day(s) up to "
                                   f"{day} or the days before are empty (als.validation_days, als.history_days)")
        best, best_metrics = None, None
        for p in candidates:
            metrics = score_lists(top_n(fit(pairs, p, conf), truth, k), truth, k)
            log.info("als %s: validation %s -> %s@%d %.4f", day, p, conf.grid_metric, k, metrics[conf.grid_metric])
            if best is None or metrics[conf.grid_metric] > best_metrics[conf.grid_metric]:
                best, best_metrics = p, metrics
        return best, best_metrics
    finally:
        truth.unpersist()
        pairs.unpersist()


def _factors(frame: DataFrame, key: str, day: dt.date, version: str) -> DataFrame:
    return frame.select(F.col("id").alias(key), F.col("features").cast("array<float>").alias("factors"),
                        F.lit(day).alias("run_date"), F.lit(version).alias("model_version"))


def record_model(spark: SparkSession, cfg: Config, row: dict) -> None:
    """Upsert the gold.models row of (model, run_date)."""
    table = delta_io.ensure(spark, cfg, GOLD_MODELS)
    frame = delta_io.conform(spark.createDataFrame([row], GOLD_MODELS.schema), GOLD_MODELS)
    (table.alias("t").merge(frame.alias("s"), "t.model = s.model AND t.run_date = s.run_date")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf, k = cfg.als, cfg.evaluate.k
    spark.sparkContext.setCheckpointDir(join_path(cfg.warehouse, "_checkpoints", "als"))
    plays = history(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days).persist()
    try:
        candidates = grid(conf)
        log.info("als %s: validating %d parameter set(s) on the last %d day(s)", day, len(candidates),
                 conf.validation_days)
        try:
            best, metrics = validate(plays, day, conf, candidates, k)
        except NotEnoughHistory:
            if len(candidates) > 1:
                raise  # a grid cannot be decided without a validation window
            log.warning("als %s: no validation window yet (first days of data): training without "
                        "validation metrics", day)
            best, metrics = candidates[0], {"users": 0}
        pairs = interactions(plays, day, conf).persist()
        log.info("als %s: training rank=%d reg=%.4g alpha=%.4g on %d user-track pairs", day, best.rank,
                 best.reg_param, best.alpha, pairs.count())
        model = fit(pairs, best, conf)
        pairs.unpersist()
    finally:
        plays.unpersist()
    version = f"als-{day.isoformat()}"
    path = join_path(cfg.warehouse, "models", "als", day.isoformat())
    model.write().overwrite().save(path)
    delta_io.replace_date(_factors(model.userFactors, "user_idx", day, version), cfg, GOLD_ALS_USER_FACTORS,
                          "run_date", day)
    delta_io.replace_date(_factors(model.itemFactors, "track_idx", day, version), cfg, GOLD_ALS_ITEM_FACTORS,
                          "run_date", day)
    params = dataclasses.asdict(best) | {"max_iter": conf.max_iter, "confidence": conf.confidence,
                                         "recency_half_life_days": conf.recency_half_life_days,
                                         "history_days": conf.history_days, "grid_size": len(candidates)}
    validation = {f"{name}@{k}": value for name, value in metrics.items() if name != "users"}
    validation["users"] = metrics["users"]
    record_model(spark, cfg, {"run_date": day, "model": "als", "version": version, "backend": "spark-mllib",
                              "world_size": spark.sparkContext.defaultParallelism, "params": json.dumps(params),
                              "metrics": json.dumps(validation), "path": path,
                              "created_at": dt.datetime.now(dt.timezone.utc)})
    log.info("als %s: saved %s; validation %s", day, path,
             ", ".join(f"{k_}={v:.4f}" for k_, v in validation.items() if not math.isnan(v) and k_ != "users"))
    return {"version": version, "params": params, "validation": validation}
