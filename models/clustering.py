"""Clustering of vectors with Spark MLlib: (bisecting) k-means with k chosen by silhouette, distances
to centres as built-in expressions, cluster labels, and users' taste vectors."""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.ml.clustering import BisectingKMeans, KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

log = logging.getLogger("setlist.cluster")


def estimator(algorithm: str, k: int, max_iter: int, seed: int):
    cls = KMeans if algorithm == "kmeans" else BisectingKMeans
    return cls(k=k, maxIter=max_iter, seed=seed, featuresCol="features", predictionCol="cluster")


def fit_best(points: DataFrame, algorithm: str, ks: list[int], max_iter: int, seed: int, n_points: int):
    """(model, k, silhouette) of the k in `ks` (capped below the number of points) of best silhouette."""
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster", metricName="silhouette")
    best = None
    for k in sorted({min(k, max(n_points - 1, 2)) for k in ks}):
        model = estimator(algorithm, k, max_iter, seed).fit(points)
        silhouette = evaluator.evaluate(model.transform(points))
        log.info("cluster: %s k=%d silhouette %.4f", algorithm, k, silhouette)
        if best is None or silhouette > best[2]:
            best = (model, k, silhouette)
    return best


def distance_to_centre(centres: list) -> Column:
    """Euclidean distance of `features` to the centre of its `cluster`, as a built-in expression."""
    table = F.array(*[F.array(*[F.lit(float(x)) for x in c]) for c in centres])
    centre = F.element_at(table, F.col("cluster") + 1)
    squares = F.zip_with(vector_to_array("features"), centre, lambda a, b: (a - b) * (a - b))
    return F.sqrt(F.aggregate(squares, F.lit(0.0), lambda acc, v: acc + v))


def cluster_labels(assigned: DataFrame, plays: DataFrame, top: int) -> DataFrame:
    """(cluster, cluster_label): the cluster's `top` most played artists, most played first."""
    per_artist = (plays.join(assigned.select("track_idx", "cluster"), "track_idx")
                  .groupBy("cluster", "artist_name").agg(F.count("*").alias("n")))
    ranked = per_artist.withColumn("r", F.row_number().over(
        Window.partitionBy("cluster").orderBy(F.desc("n"), "artist_name")))
    return (ranked.where(F.col("r") <= top).groupBy("cluster")
            .agg(F.array_join(F.transform(F.array_sort(F.collect_list(F.struct("r", "artist_name"))),
                                          lambda x: x["artist_name"]), ", ").alias("cluster_label")))


def taste_vectors(plays: DataFrame, embeddings: DataFrame, day: dt.date, half_life_days: float) -> DataFrame:
    """(user_idx, user_id, plays, features): weighted mean embedding of each user's plays, a play's
    weight halving every half_life_days back from `day` (0: no decay)."""
    weight = F.lit(1.0) if half_life_days == 0 else F.pow(F.lit(0.5), F.datediff(F.lit(day), "play_date")
                                                          / F.lit(half_life_days))
    weighted = (plays.join(embeddings.select("track_idx", array_to_vector("vector").alias("v")), "track_idx")
                .withColumn("w", weight))
    return (weighted.groupBy("user_idx", "user_id")
            .agg(Summarizer.mean(F.col("v"), F.col("w")).alias("features"), F.count("*").alias("plays")))
