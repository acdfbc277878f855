"""Clustering of vectors with Spark MLlib in cosine geometry: (bisecting) k-means with the cosine
distance on unit-length vectors, k chosen by the elbow of the clustering cost (or by silhouette),
distances to centres as built-in expressions, cluster labels, and users' taste vectors.

Why cosine: a Word2Vec vector's length grows with how often its track was played, so Euclidean
k-means on raw vectors splits tracks by play frequency rather than by taste; on unit vectors only
the direction (the contexts a track is played in) counts. Why the elbow: on a long-tail catalogue
the silhouette falls with every k and always picks the smallest (measured: k=4 of 4..12 on the
real dev set); the elbow (Satopää et al., "Kneedle", 2011) picks the k after which more clusters
stop paying, the point of the normalised cost curve farthest below the chord between its ends.
On unit vectors squared Euclidean distance is 2 - 2 cos, so the k-means cost that scikit-learn
minimises on the sample is the cosine cost of Spark's fit."""
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
    return cls(k=k, maxIter=max_iter, seed=seed, featuresCol="features", predictionCol="cluster",
               distanceMeasure="cosine")


def unit(vector_column: str) -> Column:
    """An array<float> column scaled to unit length (zero vectors stay zero), as an ML vector."""
    norm = F.sqrt(F.aggregate(F.transform(vector_column, lambda x: x * x), F.lit(0.0), lambda a, x: a + x))
    scaled = F.transform(vector_column, lambda x: x / F.when(norm > 0, norm).otherwise(F.lit(1.0)))
    return array_to_vector(scaled)


def elbow(ks: list[int], costs: list[float]) -> int:
    """The k of the elbow of a falling cost curve: with k and cost scaled to [0, 1], the point farthest
    below the chord between the first and last points (Kneedle); the smallest k on ties or a flat curve."""
    if len(ks) < 3 or max(costs) == min(costs):
        return ks[0]
    lo_k, hi_k, lo_c, hi_c = min(ks), max(ks), min(costs), max(costs)
    gains = [(hi_c - c) / (hi_c - lo_c) - (k - lo_k) / (hi_k - lo_k) for k, c in zip(ks, costs)]
    return ks[max(range(len(ks)), key=lambda i: (gains[i], -ks[i]))]


def silhouette(model, points: DataFrame) -> float:
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster", metricName="silhouette",
                                    distanceMeasure="cosine")
    return evaluator.evaluate(model.transform(points))


def fit_best(points: DataFrame, algorithm: str, ks: list[int], max_iter: int, seed: int, n_points: int,
             criterion: str = "elbow", sample: int = 0):
    """(model, k, silhouette) for the k of `ks` (capped below the number of points) that `criterion`
    picks: the elbow of the cost, or the best cosine silhouette. Choosing k is a small problem: each
    k is tried on a sample of at most `sample` points (0: all) with scikit-learn on the driver (one
    Spark k-means costs a job per iteration, seconds each for a handful of points), and only the
    chosen k is fitted by Spark on every point."""
    candidates = sorted({min(k, max(n_points - 1, 2)) for k in ks})
    if len(candidates) > 1:
        k = choose_k(points, candidates, max_iter, seed, n_points, criterion, sample)
    else:
        k = candidates[0]
    model = estimator(algorithm, k, max_iter, seed).fit(points)
    return model, k, silhouette(model, points)


def choose_k(points: DataFrame, ks: list[int], max_iter: int, seed: int, n_points: int, criterion: str,
             sample: int) -> int:
    import numpy as np
    from sklearn.cluster import KMeans as LocalKMeans
    from sklearn.metrics import silhouette_score
    drawn = points.sample(fraction=min(1.0, sample / n_points), seed=seed) if 0 < sample < n_points else points
    matrix = np.stack(drawn.select(vector_to_array("features").alias("v")).toPandas()["v"].to_numpy())
    costs, scores = [], []
    for k in ks:
        fitted = LocalKMeans(n_clusters=min(k, len(matrix)), n_init=1, max_iter=max_iter, random_state=seed).fit(matrix)
        costs.append(float(fitted.inertia_))
        if criterion == "silhouette":
            scores.append(float(silhouette_score(matrix, fitted.labels_, metric="cosine", sample_size=min(len(matrix),
                                                                                                      5000),
                                                 random_state=seed)))
        log.info("cluster: k=%d cost %.2f on %d sampled points%s", k, costs[-1], len(matrix),
                 f", silhouette {scores[-1]:.4f}" if scores else "")
    if criterion == "silhouette":
        return ks[max(range(len(ks)), key=lambda i: scores[i])]
    return elbow(ks, costs)


def distance_to_centre(centres: list) -> Column:
    """Cosine distance (1 - cosine similarity) of `features` to the centre of its `cluster`, as a
    built-in expression."""
    table = F.array(*[F.array(*[F.lit(float(x)) for x in c]) for c in centres])
    centre = F.element_at(table, F.col("cluster") + 1)
    features = vector_to_array("features")

    def total(values):
        return F.aggregate(values, F.lit(0.0), lambda acc, v: acc + v)
    dot = total(F.zip_with(features, centre, lambda a, b: a * b))
    norms = F.sqrt(total(F.transform(features, lambda a: a * a))) * F.sqrt(total(F.transform(centre, lambda a: a * a)))
    return F.lit(1.0) - dot / F.when(norms > 0, norms).otherwise(F.lit(1.0))


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
    """(user_idx, user_id, plays, features): weighted mean of the unit embeddings of each user's plays,
    a play's weight halving every half_life_days back from `day` (0: no decay)."""
    weight = F.lit(1.0) if half_life_days == 0 else F.pow(F.lit(0.5), F.datediff(F.lit(day), "play_date")
                                                          / F.lit(half_life_days))
    weighted = (plays.join(embeddings.select("track_idx", unit("vector").alias("v")), "track_idx")
                .withColumn("w", weight))
    return (weighted.groupBy("user_idx", "user_id")
            .agg(Summarizer.mean(F.col("v"), F.col("w")).alias("features"), F.count("*").alias("plays")))
