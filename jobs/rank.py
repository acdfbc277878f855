"""rank: learn tonight's ranking from the outcomes of past nights, and choose what tonight serves.

Every night recommend stores each user's candidates with their features in gold.candidates
(models.features). For run date D this stage takes the candidates of the last rank.train_days
nights before D whose next day has plays (late data included) and labels each candidate with
whether the user played it the next day. The latest such night validates; the nights before it
train a learning-to-rank model (XGBoost's SparkXGBRanker, objective rank:ndcg, one query per
user and night by default, rank.query; models.ranker), fitted by rank.workers Spark tasks, or by
XGBoost in the driver when the training nights hold fewer than rank.driver_below_rows candidates
(the same model class). On the validation night, every configuration's lists (the ranker, the
linear blend, the users' own most played tracks) are scored against what the users played the
next day, and the night serves the best: a challenger (the ranker, the blend) only when it beats
the users' most played tracks there by rank.min_gain and with confidence, and also over the last
rank.record_nights nights (the validation night and the evaluate stage's out-of-sample scores of the
nights before it, user-weighted), so one lucky night does not switch what is served and a night
never serves what did worse than the users' favourites on its validation window. The choice, why,
every configuration's validation metrics, the ranker's parameters, its training nights and the
Delta version of the candidates it read, and its feature importance go to gold.models (model
`ranker`, read by recommend) and gold.metrics (stage `rank`).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.errors import ConfigError, NotEnoughHistory
from jobs.core.frames import CacheScope
from jobs.core.paths import new_artifact
from jobs.core.records import input_versions, record_model, write_metrics
from jobs.core.session import task_slots
from jobs.core.tables import GOLD_CANDIDATES, GOLD_METRICS, SILVER_PLAYS
from models import ranker
from models.features import next_day_labels

log = logging.getLogger("setlist.rank")

MODEL = "ranker"
CHALLENGERS = ("blend", "ranker")


@dataclass
class LearningData:
    """What the rank stage of D learns from: the labelled candidates of the training nights, and the
    validation night's candidates with what their users played the next day."""
    train_nights: list[dt.date]
    valid_night: dt.date
    train: DataFrame | None          # labelled candidates (ranker.labelled) of the training nights
    valid: DataFrame                 # candidates of the validation night
    valid_next: DataFrame            # (user_idx, track_idx) played the day after the validation night
    candidates_version: int


def learning_data(spark: SparkSession, cfg: Config, day: dt.date) -> LearningData:
    """The labelled nights in the last rank.train_days before D; NotEnoughHistory when none."""
    conf = cfg.rank
    first = day - dt.timedelta(days=conf.train_days)
    if not delta_io.exists(spark, cfg, GOLD_CANDIDATES):
        raise NotEnoughHistory(f"rank {day}: no candidates of earlier nights in {GOLD_CANDIDATES.full_name} yet "
                               f"(recommend stores them every night)")
    version = delta_io.version(spark, cfg, GOLD_CANDIDATES)
    candidates = delta_io.read(spark, cfg, GOLD_CANDIDATES).where(
        F.col("run_date").between(F.lit(first), F.lit(day - dt.timedelta(days=1))))
    plays = delta_io.read(spark, cfg, SILVER_PLAYS).where(
        F.col("play_date").between(F.lit(first + dt.timedelta(days=1)), F.lit(day)))
    nights = sorted(r[0] for r in candidates.select("run_date").distinct().collect())
    played_on = {r[0] for r in plays.select("play_date").distinct().collect()}
    labelled_nights = [d for d in nights if d + dt.timedelta(days=1) in played_on]
    if not labelled_nights:
        raise NotEnoughHistory(f"rank {day}: no night in the last {conf.train_days} (rank.train_days) has candidates "
                               f"and plays on the day after it yet")
    valid_night, train_nights = labelled_nights[-1], labelled_nights[:-1]
    train = (ranker.labelled(candidates.where(F.col("run_date").isin(*train_nights)), next_day_labels(plays),
                             conf.query)
             if train_nights else None)
    return LearningData(train_nights, valid_night, train,
                        candidates.where(F.col("run_date") == F.lit(valid_night)),
                        plays.where(F.col("play_date") == F.lit(valid_night + dt.timedelta(days=1)))
                        .select("user_idx", "track_idx"), version)


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf, k = cfg.rank, cfg.evaluate.k
    data = learning_data(spark, cfg, day)
    with CacheScope() as cache:
        valid = cache(data.valid)
        configs: dict[str, object] = {"most_played": None, "blend": None}
        model, examples, trained, engine = None, 0, {}, None
        if data.train is not None:
            train = cache(data.train)
            trained = train.agg(F.count("*").alias("examples"), F.sum("label").alias("positives"),
                                F.countDistinct("qid").alias("queries")).first().asDict()
            examples = int(trained["examples"] or 0)
            if trained["queries"] > ranker.MAX_QUERIES:
                raise ConfigError(f"rank {day}: {trained['queries']:,} queries in the last "
                                  f"{conf.train_days} nights (rank.train_days) are more than XGBoost's exact query ids "
                                  f"({ranker.MAX_QUERIES:,}): lower rank.train_days")
            if examples:
                log.info("rank %s: training the ranker on %d nights (%s..%s): %d candidates, %d positives, %d queries",
                         day, len(data.train_nights), data.train_nights[0], data.train_nights[-1], examples,
                         trained["positives"], trained["queries"])
                model, engine = fit(spark, cfg, train, examples)
                configs["ranker"] = model
        validation, per_user = ranker.evaluate_configs(valid, data.valid_next, k, configs)
    confidence = {name: round(ranker.confidence_of_gain(per_user[name], per_user["most_played"]), 3)
                  for name in per_user if name != "most_played"}
    record = earlier_record(spark, cfg, data.valid_night)
    served, why = choose(validation, confidence, conf.min_gain, conf.confidence, data.valid_night, k, record)
    log.info("rank %s: %s", day, why)
    path = None
    if model is not None:
        path = new_artifact(cfg, MODEL, day)  # published by the gold.models row below
        model.write().save(path)
    params = ranker.params_dict(ranker.RankerParams.of(conf)) | {
        "objective": "rank:ndcg", "train_nights": [d.isoformat() for d in data.train_nights],
        "validation_night": data.valid_night.isoformat(), "candidates_version": data.candidates_version,
        "features": list(ranker.FEATURES), "min_gain": conf.min_gain, "record_nights": conf.record_nights,
        "engine": engine, "query": conf.query,
    } | {f"train_{k_}": v for k_, v in trained.items()}
    metrics = {"served": served, "why": why, "confidence_over_most_played": confidence, "earlier_record": record,
               "validation": {name: {m: round(v, 4) for m, v in values.items()} for name, values in validation.items()},
               "importance": ranker.importance(model) if model is not None else {}}
    in_driver = engine == "driver"
    record_model(spark, cfg, day, MODEL, f"ranker-{day.isoformat()}", "xgboost" if in_driver else "xgboost-spark",
                 task_slots(spark) if in_driver else conf.workers, params, metrics,
                 path or "", {GOLD_CANDIDATES.full_name: data.candidates_version}
                 | input_versions(spark, cfg, SILVER_PLAYS))
    write_metrics(spark, cfg, day, "rank", k, {f"rank:{name}": values for name, values in validation.items()})
    return {"served": served, "why": why, "note": f"serving {served}", "examples": examples,
            "validation_night": data.valid_night.isoformat(), "validation": metrics["validation"]}


def fit(spark: SparkSession, cfg: Config, train: DataFrame, examples: int, features: tuple[str, ...] = ranker.FEATURES
        ) -> tuple[object, str]:
    """(the ranker fitted on `train`, labelled candidates of `examples` rows, and the engine that
    fitted it): XGBoost in the driver below rank.driver_below_rows rows ("driver"), else
    SparkXGBRanker on rank.workers tasks ("spark")."""
    conf = cfg.rank
    engine = "driver" if examples < conf.driver_below_rows else "spark"
    return ranker.fit(train, ranker.RankerParams.of(conf), conf.workers, features, in_driver=engine == "driver",
                      threads=task_slots(spark)), engine


def earlier_record(spark: SparkSession, cfg: Config, valid_night: dt.date) -> dict[str, dict]:
    """What each challenger scored against most_played on the nights before the validation night, at
    most rank.record_nights - 1 of them: the evaluate stage's gold.metrics rows (NDCG@evaluate.k of
    night N, run date N + evaluate.test_days; out of sample: the ranker there is the one night N
    served or would have served). {challenger: {"gain": user-weighted sum of (its NDCG - most_played's),
    "users": users scored, "nights": [N, ...]}}; empty when no such night was evaluated."""
    nights = cfg.rank.record_nights - 1
    if nights <= 0 or not delta_io.exists(spark, cfg, GOLD_METRICS):
        return {}
    lag = dt.timedelta(days=cfg.evaluate.test_days)
    rows = (delta_io.read(spark, cfg, GOLD_METRICS)
            .where((F.col("stage") == "evaluate") & (F.col("metric") == "ndcg") & (F.col("k") == cfg.evaluate.k)
                   & F.col("model").isin("most_played", *CHALLENGERS)
                   & F.col("run_date").between(F.lit(valid_night - dt.timedelta(days=nights) + lag),
                                               F.lit(valid_night - dt.timedelta(days=1) + lag)))
            .select("run_date", "model", "value", "users").collect())
    by_night: dict[dt.date, dict[str, tuple[float, int]]] = {}
    for r in rows:
        by_night.setdefault(r["run_date"] - lag, {})[r["model"]] = (float(r["value"]), int(r["users"]))
    record: dict[str, dict] = {}
    for night, scores in sorted(by_night.items()):
        if "most_played" not in scores:
            continue
        base, users = scores["most_played"]
        for name in CHALLENGERS:
            if name in scores:
                entry = record.setdefault(name, {"gain": 0.0, "users": 0, "nights": []})
                entry["gain"] += (scores[name][0] - base) * users
                entry["users"] += users
                entry["nights"].append(night.isoformat())
    return record


def choose(validation: dict[str, dict[str, float]], confidence: dict[str, float], min_gain: float,
           wanted: float, night: dt.date, k: int, record: dict[str, dict] | None = None) -> tuple[str, str]:
    """(configuration to serve, why). The users' most played tracks are served unless a challenger
    (the ranker or the blend, the better first) beats them on the validation night by min_gain (a
    share of their NDCG) and with confidence: in at least `wanted` of the bootstrap resamples of the
    night's users (a win on a few users is noise, and a night must not switch on noise); and also
    over the earlier nights of `record` (earlier_record) together with the validation night, by the
    user-weighted mean NDCG (one lucky night must not switch either)."""
    base = validation["most_played"]["ndcg"]
    scores = ", ".join(f"{name} {v['ndcg']:.4f}" for name, v in validation.items())
    head = f"validation night {night} scored on {night + dt.timedelta(days=1)} (ndcg@{k}: {scores})"
    verdicts = []
    for name in sorted((n for n in validation if n != "most_played"), key=lambda n: -validation[n]["ndcg"]):
        gain, sure = validation[name]["ndcg"], confidence.get(name, 0.0)
        if not (gain > base * (1.0 + min_gain) and gain > base and sure >= wanted):
            verdicts.append(f"{name} is better than most_played in {sure:.0%} of resamples"
                            if gain > base else f"{name} does not beat most_played")
            continue
        earlier = (record or {}).get(name)
        if not earlier:
            return name, f"{head}: serving {name} (better than most_played in {sure:.0%} of resamples)"
        users = validation["most_played"].get("users", 0)
        pooled = ((gain - base) * users + earlier["gain"]) / max(users + earlier["users"], 1)
        over = (f"{len(earlier['nights']) + 1} nights ({', '.join(earlier['nights'])} and {night}: "
                f"mean ndcg gain {pooled:+.4f})")
        if pooled > 0:
            return name, (f"{head}: serving {name} (better than most_played in {sure:.0%} of resamples, "
                          f"and over {over})")
        verdicts.append(f"{name} is better than most_played in {sure:.0%} of resamples but not over {over}")
    lone = "" if "ranker" in validation else "no ranker yet (one labelled night); "
    return "most_played", (f"{head}: {lone}{'; '.join(verdicts)} (rank.confidence={wanted}, rank.min_gain={min_gain}), "
                           f"serving most_played")
