"""Scoring ranked lists against what users played next: the one harness every model and baseline
goes through (the ALS grid search, evaluate, next-track evaluation). Metric definitions live in
udfs.metrics."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from models.sources import track_popularity
from udfs.metrics import METRIC_COLUMNS, novelty


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


def ranked_lists(scored: DataFrame, k: int, key: str = "user_idx") -> DataFrame:
    """(key, track_idx, score) rows into (key, recs array<int>), best first, at most k. The key is a
    user (user_idx) or a single next-track example (any key). Ties break by track_idx, so lists
    are deterministic."""
    ordered = F.array_sort(F.collect_list(F.struct((-F.col("score")).alias("neg"), F.col("track_idx"))))
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


def beyond_accuracy(lists: DataFrame, train: DataFrame, tracks: DataFrame, embeddings: DataFrame, k: int
                    ) -> dict[str, float]:
    """Coverage, artist diversity, embedding diversity and novelty of ranked lists (user_idx, recs)."""
    catalogue = train.select("track_idx").distinct().count()
    popularity = track_popularity(train)
    total = train.count()
    info = popularity.select("track_idx", (-F.log2(F.col("plays") / F.lit(total))).alias("info"))
    info_map = info.agg(F.map_from_entries(F.collect_list(F.struct("track_idx", "info"))).alias("m"))
    top = lists.select("user_idx", F.slice("recs", 1, k).alias("recs"))
    exploded = top.select("user_idx", F.posexplode("recs").alias("pos", "track_idx"))
    covered = exploded.select("track_idx").distinct().count()
    artists = (exploded.join(tracks.select("track_idx", "artist_name"), "track_idx")
               .groupBy("user_idx").agg((F.countDistinct("artist_name") / F.count("*")).alias("d")))
    vectors = exploded.join(embeddings.select("track_idx", "vector"), "track_idx")
    a, b = vectors.alias("a"), vectors.alias("b")
    pairs = a.join(b, (F.col("a.user_idx") == F.col("b.user_idx")) & (F.col("a.pos") < F.col("b.pos")))
    dot = F.aggregate(F.zip_with("a.vector", "b.vector", lambda x, y: x * y), F.lit(0.0), lambda s, v: s + v)
    norm_a = F.sqrt(F.aggregate(F.transform("a.vector", lambda x: x * x), F.lit(0.0), lambda s, v: s + v))
    norm_b = F.sqrt(F.aggregate(F.transform("b.vector", lambda x: x * x), F.lit(0.0), lambda s, v: s + v))
    distance = pairs.select(F.col("a.user_idx").alias("user_idx"),
                            (1.0 - dot / F.greatest(norm_a * norm_b, F.lit(1e-12))).alias("dist"))
    per_user_distance = distance.groupBy("user_idx").agg(F.avg("dist").alias("d"))
    novel = top.crossJoin(info_map).select(novelty(F.col("recs"), F.col("m"), k).alias("n"))
    return {
        "coverage": covered / catalogue if catalogue else 0.0,
        "diversity_artists": float(artists.agg(F.avg("d")).first()[0] or 0.0),
        "diversity_embedding": float(per_user_distance.agg(F.avg("d")).first()[0] or 0.0),
        "novelty": float(novel.agg(F.avg("n")).first()[0] or 0.0),
    }
