"""cluster: track clusters and user taste segments from the run date's track embeddings.

Tracks: Spark MLlib KMeans (k-means||) or BisectingKMeans (cluster.algorithm) over the vectors of
gold.track_embeddings for D; k fixed (cluster.k) or chosen in [k_min, k_max] by silhouette
(ClusteringEvaluator). Each track gets its cluster and distance to the centre, each cluster a label
of its most played artists. Users: a taste vector, the play-weighted mean of the embeddings of what
they played (each play's weight halving every cluster.recency_half_life_days back from D),
clustered the same way into cluster.segments segments; cold-start lists use them later.
"""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.ml.clustering import BisectingKMeans, KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs import delta_io
from jobs.config import ClusterConf, Config
from jobs.embed import history
from jobs.errors import InputError
from jobs.tables import GOLD_TRACK_CLUSTERS, GOLD_TRACK_EMBEDDINGS, GOLD_USER_SEGMENTS, SILVER_PLAYS

log = logging.getLogger("setlist.cluster")


def estimator(conf: ClusterConf, k: int):
    cls = KMeans if conf.algorithm == "kmeans" else BisectingKMeans
    return cls(k=k, maxIter=conf.max_iter, seed=conf.seed, featuresCol="features", predictionCol="cluster")


def fit_best(points: DataFrame, conf: ClusterConf, fixed_k: int, n_points: int):
    """(model, k, silhouette): fixed_k if given, else the k in [k_min, k_max] of best silhouette."""
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster", metricName="silhouette")
    ks = [fixed_k] if fixed_k else list(range(conf.k_min, conf.k_max + 1))
    ks = sorted({min(k, max(n_points - 1, 2)) for k in ks})
    best = None
    for k in ks:
        model = estimator(conf, k).fit(points)
        silhouette = evaluator.evaluate(model.transform(points))
        log.info("cluster: %s k=%d silhouette %.4f", conf.algorithm, k, silhouette)
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
    """(user_idx, user_id, plays, features): weighted mean embedding of each user's plays."""
    weight = F.lit(1.0) if half_life_days == 0 else F.pow(F.lit(0.5), F.datediff(F.lit(day), "play_date")
                                                          / F.lit(half_life_days))
    weighted = (plays.join(embeddings.select("track_idx", array_to_vector("vector").alias("v")), "track_idx")
                .withColumn("w", weight))
    return (weighted.groupBy("user_idx", "user_id")
            .agg(Summarizer.mean(F.col("v"), F.col("w")).alias("features"), F.count("*").alias("plays")))


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf = cfg.cluster
    embeddings = (delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(day))
                  .select("track_idx", "track_id", "vector")).persist()
    try:
        n_tracks = embeddings.count()
        if n_tracks < 3:
            raise InputError(f"{GOLD_TRACK_EMBEDDINGS.full_name} has {n_tracks} tracks for {day}: "
                             f"run `embed --date {day}` first")
        points = embeddings.withColumn("features", array_to_vector("vector")).persist()
        model, k, silhouette = fit_best(points, conf, conf.k, n_tracks)
        plays = history(delta_io.read(spark, cfg, SILVER_PLAYS), day, cfg.embed.history_days)
        assigned = model.transform(points).withColumn("distance", distance_to_centre(model.clusterCenters()))
        labels = cluster_labels(assigned, plays, conf.label_artists)
        tracks_out = (assigned.join(labels, "cluster", "left")
                      .withColumn("run_date", F.lit(day)).withColumn("algorithm", F.lit(conf.algorithm))
                      .withColumn("k", F.lit(k)))
        delta_io.replace_date(tracks_out, cfg, GOLD_TRACK_CLUSTERS, "run_date", day)
        points.unpersist()

        tastes = taste_vectors(plays, embeddings, day, conf.recency_half_life_days).persist()
        n_users = tastes.count()
        segments_k = max(2, min(conf.segments, n_users - 1))
        seg_model = estimator(conf, segments_k).fit(tastes)
        users_out = (seg_model.transform(tastes).withColumnRenamed("cluster", "segment")
                     .withColumn("cluster", F.col("segment"))
                     .withColumn("distance", distance_to_centre(seg_model.clusterCenters()))
                     .withColumn("taste", vector_to_array("features", "float32"))
                     .withColumn("run_date", F.lit(day)))
        delta_io.replace_date(users_out, cfg, GOLD_USER_SEGMENTS, "run_date", day)
        tastes.unpersist()
    finally:
        embeddings.unpersist()
    summary = {"tracks": n_tracks, "k": k, "silhouette": round(silhouette, 4), "users": n_users,
               "segments": segments_k}
    log.info("cluster %s: %s", day, summary)
    return summary
