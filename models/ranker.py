"""The learned ranker and the configurations a night can serve.

A configuration orders each user's candidates (models.features):
- `ranker`: gradient-boosted trees with a ranking objective (XGBoost's Spark estimator,
  `SparkXGBRanker`, objective rank:ndcg, one query per user and night), trained on past nights'
  candidates labelled by what each user played the next day;
- `blend`: the linear blend of the sources' signals with the configured weights (models.blend);
- `most_played`: the user's own tracks by plays (recent first among equals), then the blend.
Each single source can be ranked alone too (`source_score`), for evaluation. score_config returns
(user_idx, track_idx, source, score) for any of them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from models.blend import SOURCES
from models.features import FEATURES
from models.scoring import named_lists, per_row_metrics, ranked_lists, score_named, truth_of
from udfs.metrics import ndcg_at

CONFIGS = ("ranker", "blend", "most_played")


@dataclass(frozen=True)
class RankerParams:
    n_estimators: int
    max_depth: int
    learning_rate: float
    min_child_weight: float
    subsample: float
    seed: int

    @classmethod
    def of(cls, conf) -> "RankerParams":
        """From a config section with these attributes (the rank section)."""
        return cls(*(getattr(conf, name) for name in cls.__dataclass_fields__))


def most_played_score() -> Column:
    """The user's played tracks first (whichever source proposed them), by plays, recent first among
    equals; then the unplayed candidates by the blend (whose scores stay far below the first tier)."""
    tier = (F.lit(1e6) + F.col("plays") * 100.0 + (99.0 - F.least(F.coalesce(F.col("days_since_last"), F.lit(99.0)),
                                                                   F.lit(99.0))))
    return F.when(F.col("plays") > 0, tier).otherwise(F.col("blend"))


def source_score(source: str) -> Column:
    """One source alone: its candidates by its own rank (others null)."""
    return -F.col(f"{source}_rank")


def score_config(candidates: DataFrame, config: str, model=None) -> DataFrame:
    """(user_idx, track_idx, source, score) of `config` (a CONFIGS name or a single source)."""
    if config == "ranker":
        if model is None:
            raise ValueError("score_config: the ranker configuration needs a trained model")
        # the ranker's margin through a sigmoid: a positive score, in the same order
        scored = model.transform(candidates).withColumn("score", F.lit(1.0) / (F.lit(1.0) + F.exp(-F.col("prediction"))))
    elif config == "blend":
        scored = candidates.withColumn("score", F.col("blend"))
    elif config == "most_played":  # the user's own tracks come from their history
        scored = (candidates.withColumn("score", most_played_score())
                  .withColumn("source", F.when(F.col("history_rank").isNotNull(), F.lit("history"))
                              .otherwise(F.col("source"))))  # a cold user's played tracks keep their source
    elif config in SOURCES:
        scored = (candidates.withColumn("score", source_score(config)).where(F.col("score").isNotNull())
                  .withColumn("source", F.lit(config)))
    else:
        raise ValueError(f"unknown configuration {config!r}: one of {', '.join(CONFIGS + SOURCES)}")
    return scored.select("user_idx", "track_idx", "source", "score")


# XGBoost's Spark estimator hands a partition's query ids to its DMatrix as a pandas Series, which
# XGBoost converts to float32 and then to uint32 (xgboost 3.2.0, data._meta_from_pandas_series): ids
# must be exact in float32, so below 2**24. A (night, user) id such as days * 2**31 + user_idx is not:
# every query of every night then became the same id, one query for the whole training set.
MAX_QUERIES = 1 << 24


QUERIES = ("user", "night")


def query_ids(queries: DataFrame, per: str = "user") -> DataFrame:
    """(run_date, user_idx, qid) for distinct (run_date, user_idx) queries, per = "user": one query
    per (night, user), consecutive ids from 0, night after night, users in order within a night; per
    = "night": one query per night holding all its users (ids 0, 1, ... by night), so the ranker
    learns one order of every user's candidates rather than each user's. XGBoost wants each query's
    rows together and exact ids (MAX_QUERIES). The numbering is a window per night and a running sum
    over the nights' counts (one row per night), so no step puts every query in one partition."""
    from pyspark.sql import Window
    if per not in QUERIES:
        raise ValueError(f"query_ids: per must be one of {', '.join(QUERIES)}, not {per!r}")
    nights = queries.groupBy("run_date").agg(F.count("*").alias("_queries"))
    if per == "night":
        ordinal = nights.withColumn("qid", F.row_number().over(Window.orderBy("run_date")) - 1)
        return (queries.join(F.broadcast(ordinal.select("run_date", "qid")), "run_date")
                .select("run_date", "user_idx", F.col("qid").cast("long")))
    numbered = queries.withColumn("_n", F.row_number().over(Window.partitionBy("run_date").orderBy("user_idx")) - 1)
    before = Window.orderBy("run_date").rowsBetween(Window.unboundedPreceding, -1)
    offsets = nights.withColumn("_offset", F.coalesce(F.sum("_queries").over(before), F.lit(0)))
    return (numbered.join(F.broadcast(offsets.select("run_date", "_offset")), "run_date")
            .select("run_date", "user_idx", (F.col("_offset") + F.col("_n")).cast("long").alias("qid")))


def labelled(candidates: DataFrame, labels: DataFrame, per: str = "user") -> DataFrame:
    """Candidates (with run_date) with label 1 where the user played the track the next day, else 0,
    and their query id (query_ids, `per` user or night); only the (night, user)s with at least one
    positive teach the ranker anything, and only they are kept."""
    keys = ["run_date", "user_idx", "track_idx"]
    joined = candidates.join(labels, keys, "left").fillna(0, ["label"])
    useful = (joined.groupBy("run_date", "user_idx").agg(F.max("label").alias("_any")).where("_any = 1")
              .select("run_date", "user_idx"))
    return joined.join(query_ids(useful, per), ["run_date", "user_idx"])


def fit(frame: DataFrame, params: RankerParams, num_workers: int, features: tuple[str, ...] = FEATURES,
        in_driver: bool = False, threads: int = 1):
    """A SparkXGBRanker model (rank:ndcg, one query per `qid`: query_ids) on labelled candidates.

    in_driver: the same estimator's XGBoost model is trained in this process instead, on the rows
    collected to the driver, with `threads` threads. SparkXGBRanker starts num_workers barrier tasks,
    a tracker and a collective ring around the boosting; on a small training set that costs more than
    the boosting itself. The model is the same class either way (a SparkXGBRankerModel with the
    estimator's parameters), so transform, save and load do not change."""
    from xgboost.spark import SparkXGBRanker
    ranker = SparkXGBRanker(features_col=list(features), label_col="label", qid_col="qid",
                            num_workers=num_workers, objective="rank:ndcg", eval_metric="ndcg@10",
                            n_estimators=params.n_estimators, max_depth=params.max_depth,
                            learning_rate=params.learning_rate, min_child_weight=params.min_child_weight,
                            subsample=params.subsample, random_state=params.seed, missing=float("nan"))
    rows = frame.select("qid", "label", *[F.col(f).cast("double") for f in features])
    if not in_driver:
        return ranker.fit(rows)
    # XGBoost's own conversion of the estimator's parameters (pinned xgboost-cpu 3.2.0; what the
    # estimator does after a distributed fit: _convert_to_sklearn_model, _create_pyspark_model)
    local = ranker._xgb_cls()(**ranker._gen_xgb_params_dict(gen_xgb_sklearn_estimator_param=True))
    local.set_params(n_jobs=max(1, threads))
    # through Arrow (toArrow), not toPandas' row-by-row conversion; each query's rows together, in order
    data = rows.toArrow().to_pandas().sort_values("qid", kind="stable")
    local.fit(data[list(features)].to_numpy(dtype="float64"), data["label"].to_numpy(), qid=data["qid"].to_numpy())
    return ranker._copyValues(ranker._create_pyspark_model(local, None))


def importance(model, features: tuple[str, ...] = FEATURES, top: int = 12) -> dict[str, float]:
    """The features the trees gained most from (total gain), largest first."""
    gains = model.get_booster().get_score(importance_type="total_gain")
    named = {features[int(k[1:])] if k.startswith("f") and k[1:].isdigit() else k: v for k, v in gains.items()}
    return dict(sorted(((k, round(float(v), 2)) for k, v in named.items()), key=lambda kv: -kv[1])[:top])


def load(path: str):
    from xgboost.spark import SparkXGBRankerModel
    return SparkXGBRankerModel.load(path)


def evaluate_configs(candidates: DataFrame, plays_next: DataFrame, k: int, configs: dict[str, object]
                     ) -> tuple[dict[str, dict[str, float]], dict[str, dict[int, float]]]:
    """Every configuration's top-k of `candidates` (one night) scored against what the users played
    next (plays_next: user_idx, track_idx), full-catalogue metrics over the users who played: (mean
    metrics per configuration, NDCG per configuration and user). configs: {name: model or None}."""
    truth = truth_of(plays_next, candidates.select("user_idx").distinct()).cache()
    names = list(configs)
    lists = named_lists({name: ranked_lists(score_config(candidates, name, model), k)
                         for name, model in configs.items()}).cache()
    means = score_named(lists, truth, k, names=names)
    per_user: dict[str, dict[int, float]] = {name: {} for name in names}
    for r in per_row_metrics(lists, truth, names=names).select(
            "list", "user_idx", ndcg_at(F.col("recs"), F.col("truth"), k)).collect():
        per_user[r[0]][r[1]] = float(r[2])
    lists.unpersist()
    truth.unpersist()
    return means, per_user


def confidence_of_gain(challenger: dict[int, float], baseline: dict[int, float], samples: int = 2000,
                       seed: int = 7) -> float:
    """The share of bootstrap resamples of the users in which the challenger's mean NDCG beats the
    baseline's (paired, over the same users): 0.97 means it wins in 97% of resamples."""
    import numpy as np
    users = sorted(baseline)
    if not users:
        return 0.0
    gain = np.array([challenger.get(u, 0.0) - baseline[u] for u in users])
    picks = np.random.default_rng(seed).integers(0, len(gain), size=(samples, len(gain)))
    return float((gain[picks].mean(axis=1) > 0).mean())


def params_dict(params: RankerParams) -> dict:
    return asdict(params)
