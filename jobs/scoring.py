"""Scoring ranked lists against what users played next: the one harness every model and baseline
goes through (als's grid search, evaluate). Metric definitions live in udfs.metrics."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udfs.metrics import METRIC_COLUMNS


def temporal_split(plays: DataFrame, day: dt.date, test_days: int) -> tuple[DataFrame, DataFrame]:
    """(train, test): plays before the last `test_days` days up to `day`, and plays within them."""
    cutoff = day - dt.timedelta(days=test_days - 1)
    upto = plays.where(F.col("play_date") <= F.lit(day))
    return upto.where(F.col("play_date") < F.lit(cutoff)), upto.where(F.col("play_date") >= F.lit(cutoff))


def truth_of(test: DataFrame, train: DataFrame) -> DataFrame:
    """(user_idx, truth array<int>): distinct tracks each user played in the test window, for users
    with history in train (a model can only rank for users it has seen)."""
    known = train.select("user_idx").distinct()
    return (test.join(known, "user_idx").groupBy("user_idx")
            .agg(F.array_sort(F.collect_set("track_idx")).alias("truth")))


def ranked_lists(scored: DataFrame, k: int, score: str = "score", key: str = "user_idx") -> DataFrame:
    """(key, track_idx, score) rows into (key, recs array<int>), best first, at most k. The key is a
    user (user_idx) or a single next-track example (any key). Ties break by track_idx, so lists
    are deterministic."""
    ordered = F.array_sort(F.collect_list(F.struct((-F.col(score)).alias("neg"), F.col("track_idx"))))
    return (scored.groupBy(key).agg(ordered.alias("_r"))
            .select(key, F.slice(F.transform("_r", lambda x: x["track_idx"]), 1, k).alias("recs")))


def score_lists(recs: DataFrame, truth: DataFrame, k: int, key: str = "user_idx") -> dict[str, float]:
    """Mean of every ranking metric at k over the rows of `truth` (a row without a list scores 0).
    Rows are users (key user_idx), or single next-track examples (any key)."""
    joined = truth.join(recs, key, "left").withColumn(
        "recs", F.coalesce(F.col("recs"), F.array().cast("array<int>")))
    aggs = [F.avg(fn(F.col("recs"), F.col("truth"), k)).alias(name) for name, fn in METRIC_COLUMNS.items()]
    row = joined.agg(*aggs, F.count("*").alias("users")).first()
    return {name: float(row[name] or 0.0) for name in METRIC_COLUMNS} | {"users": int(row["users"])}
