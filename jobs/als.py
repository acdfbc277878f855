"""als: implicit-feedback collaborative filtering (Spark MLlib ALS) on play counts.

For run date D: plays of the last als.history_days days become one (user, track) row each with a
confidence from its play count (als.confidence: log or linear), optionally decayed by the age of
the last play (als.recency_half_life_days). ALS runs with implicitPrefs, coldStartStrategy=drop and
a checkpoint directory under the warehouse, so that many iterations cannot overflow the stack.
Hyperparameters (rank, regularisation, alpha, confidence transform) are chosen every night for the
data at hand: the combinations of als.grid_* are trained on plays before the last
als.validation_days days and ranked on them (a ranking metric, never RMSE), the last night's choice
(or the configured values) first and the rest in a seeded random order, als.search_parallelism at
once, until als.tune_minutes are spent; the best is retrained on all plays. Before any validation window exists, the first is used. The model is saved in a new folder <warehouse>/models/als/<D>/<run>,
its factors go to gold.als_user_factors / gold.als_item_factors, and a row with parameters,
validation metrics and that folder to gold.models, last: the row publishes the model.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.errors import NotEnoughHistory
from jobs.core.frames import CacheScope
from jobs.core.paths import location, new_artifact
from jobs.core.records import input_versions, latest_model, record_model
from jobs.core.session import task_slots
from jobs.core.tables import GOLD_ALS_ITEM_FACTORS, GOLD_ALS_USER_FACTORS, PLAY_EVENTS, SILVER_PLAYS
from models.als import AlsParams, AlsSettings, grid, validate
from udfs.dates import plays_within

log = logging.getLogger("setlist.als")

def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf, k = cfg.als, cfg.evaluate.k
    spark.sparkContext.setCheckpointDir(location(cfg, "checkpoints", "als"))
    settings = settings_for(spark, conf)
    last, searched_on, last_metrics = last_choice(spark, cfg, day)
    candidates = grid(conf.grid_ranks or [conf.rank], conf.grid_reg_params or [conf.reg_param],
                      conf.grid_alphas or [conf.alpha], conf.grid_confidences or [conf.confidence],
                      first=last, seed=conf.seed)
    reuse = searched_on is not None and (day - searched_on).days < conf.tune_every_days
    with CacheScope() as cache:
        plays = cache(plays_within(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days)
                      .select(*PLAY_EVENTS))
        if reuse:  # the search runs every als.tune_every_days nights; in between the last choice is retrained
            log.info("als %s: reusing the parameters searched on %s (als.tune_every_days=%d): %s", day, searched_on,
                     conf.tune_every_days, last)
            validated = last, last_metrics, 0
        else:
            log.info("als %s: validating up to %d parameter set(s) on the last %d day(s) within %.1f minutes", day,
                     len(candidates), conf.validation_days, conf.tune_minutes)
            validated = validate(plays, day, conf.validation_days, candidates, settings, k, conf.grid_metric,
                                 conf.tune_minutes * 60.0, conf.search_parallelism)
        if validated is None:
            log.warning("als %s: no validation window yet (first days of data): training %s without validation",
                        day, candidates[0])
            validated = candidates[0], {"users": 0}, 0
        best, metrics, tried = validated
        pairs = cache(settings.interactions(plays, day, best.confidence))
        log.info("als %s: training %s on %d user-track pairs", day, best, pairs.count())
        model = settings.fit(pairs, best)
    version = f"als-{day.isoformat()}"
    path = new_artifact(cfg, "als", day)  # published by its gold.models row below, once complete
    model.write().save(path)
    for frame, key, table in ((model.userFactors, "user_idx", GOLD_ALS_USER_FACTORS),
                              (model.itemFactors, "track_idx", GOLD_ALS_ITEM_FACTORS)):
        delta_io.replace_date(factors(frame, key, day, version), cfg, table, "run_date", day)
    params = dataclasses.asdict(best) | {"max_iter": conf.max_iter,
                                         "recency_half_life_days": conf.recency_half_life_days,
                                         "history_days": conf.history_days, "grid_size": len(candidates),
                                         "tried": tried,
                                         "searched_on": (searched_on if reuse else day).isoformat()
                                         if (reuse or tried) else None}
    validation = {f"{name}@{k}": value for name, value in metrics.items() if name != "users"}
    validation["users"] = metrics["users"]
    record_model(spark, cfg, day, "als", version, "spark-mllib", spark.sparkContext.defaultParallelism, params,
                 validation, path, input_versions(spark, cfg, SILVER_PLAYS))
    log.info("als %s: saved %s; validation %s", day, path,
             ", ".join(f"{k_}={v:.4f}" for k_, v in validation.items() if not math.isnan(v) and k_ != "users"))
    return {"version": version, "params": params, "validation": validation}


def settings_for(spark: SparkSession, conf) -> AlsSettings:
    """How the stage fits ALS: the als section's settings, with als.blocks 0 resolved to one user and
    one item block per task slot of the application (jobs.core.session.task_slots). Spark's default
    parallelism, which the fits used before, is 4 in conf/local.yaml on a 2-core machine: 2 blocks
    fitted in x0.73-0.88 the time of 4 from 9,676 to 448,515 user-track pairs (docs/performance.md, "ALS blocks")."""
    settings = AlsSettings.of(conf)
    return settings if settings.blocks else dataclasses.replace(settings, blocks=task_slots(spark))


def last_choice(spark: SparkSession, cfg: Config, day: dt.date) -> tuple[AlsParams, dt.date | None, dict]:
    """(the parameters of the last night before D, the night they were searched on or None, their
    validation metrics): the search starts there; conf's values when there is no earlier model."""
    conf = cfg.als
    row = latest_model(spark, cfg, "als", day - dt.timedelta(days=1))
    if row is not None:
        chosen, metrics = json.loads(row["params"]), json.loads(row["metrics"])
        try:
            params = AlsParams(int(chosen["rank"]), float(chosen["reg_param"]), float(chosen["alpha"]),
                               str(chosen.get("confidence", conf.confidence)))
            searched = dt.date.fromisoformat(chosen["searched_on"]) if chosen.get("searched_on") else None
            found = {m.split("@")[0]: v for m, v in metrics.items() if "@" in m} | {"users": metrics.get("users", 0)}
            return params, searched, found
        except (KeyError, TypeError, ValueError):
            pass
    return AlsParams(conf.rank, conf.reg_param, conf.alpha, conf.confidence), None, {}


def factors(frame: DataFrame, key: str, day: dt.date, version: str) -> DataFrame:
    """MLlib's (id, features) factors as rows of a factors table."""
    return frame.select(F.col("id").alias(key), F.col("features").cast("array<float>").alias("factors"),
                        F.lit(day).alias("run_date"), F.lit(version).alias("model_version"))
