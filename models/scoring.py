"""Scoring ranked lists against what users played next: the one harness every model and baseline
goes through (the ALS grid search, evaluate, next-track evaluation). Metric definitions live in
udfs.metrics."""
from __future__ import annotations

import datetime as dt

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from models.sources import track_popularity
from udfs.metrics import METRIC_COLUMNS
from udfs.rows import rows_frame


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
    return score_named({"": recs}, truth, k, key)[""]


def named_lists(lists: dict[str, DataFrame], key: str = "user_idx") -> DataFrame:
    """Several (key, recs) frames as one (list, key, recs) frame, so that one pass scores them all."""
    frames = [frame.select(F.lit(name).alias("list"), key, "recs") for name, frame in lists.items()]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _named(lists: dict[str, DataFrame] | DataFrame, key: str, names: list[str] | None
           ) -> tuple[DataFrame, list[str]]:
    """(the (list, key, recs) frame, the list names) of {name: (key, recs)}, or of an already named
    frame and its `names`."""
    if isinstance(lists, dict):
        return named_lists(lists, key), list(lists)
    return lists, list(names or [])


def per_row_metrics(lists: dict[str, DataFrame] | DataFrame, truth: DataFrame, key: str = "user_idx",
                    names: list[str] | None = None) -> DataFrame:
    """(list, key, truth, recs) for every row of `truth` and every list (an empty list where the list
    has no row for it). `lists`: {name: (key, recs)} or an already named (list, key, recs) frame
    with its `names`."""
    named, names = _named(lists, key, names)
    every = rows_frame(truth.sparkSession, [(n,) for n in names], StructType([StructField("list", StringType())]))
    return (truth.crossJoin(F.broadcast(every)).join(named, ["list", key], "left")
            .withColumn("recs", F.coalesce(F.col("recs"), F.array().cast("array<int>"))))


def score_named(lists: dict[str, DataFrame] | DataFrame, truth: DataFrame, k: int, key: str = "user_idx",
                names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """score_lists for several lists in one pass: {name: metrics}."""
    named, names = _named(lists, key, names)
    joined = per_row_metrics(named, truth, key, names)
    aggs = [F.avg(fn(F.col("recs"), F.col("truth"), k)).alias(name) for name, fn in METRIC_COLUMNS.items()]
    rows = {r["list"]: r for r in joined.groupBy("list").agg(*aggs, F.count("*").alias("users")).collect()}
    out = {}
    for name in names:
        row = rows.get(name)
        out[name] = {m: float((row[m] if row else 0.0) or 0.0) for m in METRIC_COLUMNS} | {
            "users": int(row["users"]) if row else 0}
    return out


@dataclass(frozen=True)
class Catalogue:
    """What beyond-accuracy metrics need of the catalogue, computed once for every list scored."""
    size: int                 # distinct tracks played in the training plays
    info: DataFrame           # (track_idx, info): self-information -log2 p(track) under training popularity
    artists: DataFrame        # (track_idx, artist_name)
    vectors: DataFrame        # (track_idx, vector): embeddings (may be empty)


def catalogue_of(train: DataFrame, tracks: DataFrame, embeddings: DataFrame) -> Catalogue:
    popularity = track_popularity(train)
    totals = popularity.agg(F.count("*").alias("size"), F.sum("plays").alias("plays")).first()
    info = popularity.select("track_idx", (-F.log2(F.col("plays") / F.lit(totals["plays"] or 1))).alias("info"))
    return Catalogue(int(totals["size"] or 0), info, tracks.select("track_idx", "artist_name"),
                     embeddings.select("track_idx", "vector"))


def beyond_accuracy(lists: DataFrame, catalogue: Catalogue, k: int) -> dict[str, float]:
    """Coverage, artist diversity, embedding diversity and novelty of ranked lists (user_idx, recs):
    novelty is the mean self-information of a list's tracks (0 for a track never played in training)."""
    return beyond_accuracy_named({"": lists}, catalogue, k)[""]


def beyond_accuracy_named(lists: dict[str, DataFrame] | DataFrame, catalogue: Catalogue, k: int,
                          names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """beyond_accuracy for several lists in three passes: {name: metrics}."""
    named, names = _named(lists, "user_idx", names)
    exploded = named.select("list", "user_idx", F.posexplode(F.slice("recs", 1, k)).alias("pos", "track_idx"))
    per_user = (exploded.join(catalogue.info, "track_idx", "left").join(catalogue.artists, "track_idx", "left")
                .groupBy("list", "user_idx")
                .agg((F.countDistinct("artist_name") / F.count("*")).alias("d"),
                     F.avg(F.coalesce(F.col("info"), F.lit(0.0))).alias("n")))
    means = {r["list"]: r for r in per_user.groupBy("list").agg(F.avg("d").alias("d"), F.avg("n").alias("n"))
             .collect()}
    covered = {r["list"]: r[1] for r in exploded.groupBy("list").agg(F.countDistinct("track_idx")).collect()}
    # The mean cosine distance over a list's pairs of tracks, without pairing them: with u the unit
    # vectors (0 for a zero vector, whose distance to anything is 1, as 1 - u.v says), the pairs'
    # dot products sum to (|sum u|^2 - sum |u|^2) / 2, so a list of n tracks with vectors has mean
    # distance 1 - (|sum u|^2 - nonzero) / (n (n - 1)); one pass over the list's n vectors, not its
    # n (n - 1) / 2 pairs (docs/performance.md, "Embedding diversity without pairs").
    norm = F.sqrt(F.aggregate(F.transform("vector", lambda x: x.cast("double") * x.cast("double")), F.lit(0.0),
                              lambda acc, v: acc + v))
    units = catalogue.vectors.select(
        "track_idx", F.when(norm > 0, F.transform("vector", lambda x: x.cast("double") / norm))
        .otherwise(F.transform("vector", lambda x: F.lit(0.0))).alias("unit"),
        (norm > 0).cast("int").alias("nonzero"))
    per_list = (exploded.join(units, "track_idx")
                .groupBy("list", "user_idx")
                .agg(F.count("*").alias("n"), F.sum("nonzero").alias("nonzero"), F.collect_list("unit").alias("units"))
                .where(F.col("n") >= 2))
    total = F.aggregate("units", F.transform(F.col("units")[0], lambda x: F.lit(0.0)),
                        lambda acc, u: F.zip_with(acc, u, lambda x, y: x + y))
    squared = F.aggregate(F.transform(total, lambda x: x * x), F.lit(0.0), lambda acc, v: acc + v)
    distance = {r["list"]: r[1] for r in
                per_list.select("list", (1.0 - (squared - F.col("nonzero")) / (F.col("n") * (F.col("n") - 1)))
                                .alias("d")).groupBy("list").agg(F.avg("d")).collect()}
    out = {}
    for name in names:
        mean = means.get(name)
        out[name] = {
            "coverage": (covered.get(name) or 0) / catalogue.size if catalogue.size else 0.0,
            "diversity_artists": float((mean["d"] if mean else 0.0) or 0.0),
            "diversity_embedding": float(distance.get(name) or 0.0),
            "novelty": float((mean["n"] if mean else 0.0) or 0.0),
        }
    return out
