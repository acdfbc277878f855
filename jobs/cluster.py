"""cluster: track clusters and user taste segments from the run date's track embeddings.

Tracks: Spark MLlib KMeans (k-means||) or BisectingKMeans (cluster.algorithm) with the cosine
distance over the unit-length vectors of gold.track_embeddings for D; k fixed (cluster.k) or chosen
in [k_min, k_max] by the elbow of the cost or by silhouette (cluster.k_criterion, models.clustering).
Each track gets its cluster and cosine distance to the centre, each cluster a label of its most
played artists. Users: a taste vector, the play-weighted mean of the unit embeddings of what they
played (each play's weight halving every cluster.recency_half_life_days back from D),
clustered the same way into cluster.segments segments; cold-start lists use them later.
"""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.errors import InputError
from jobs.core.frames import CacheScope
from jobs.core.records import input_versions, record_model
from jobs.core.tables import GOLD_TRACK_CLUSTERS, GOLD_TRACK_EMBEDDINGS, GOLD_USER_SEGMENTS, SILVER_PLAYS
from models.clustering import cluster_labels, distance_to_centre, estimator, fit_best, taste_vectors, unit
from udfs.dates import plays_within

log = logging.getLogger("setlist.cluster")


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf = cfg.cluster
    plays = plays_within(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days)
    with CacheScope() as cache:
        embeddings = cache(delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(day))
                           .select("track_idx", "track_id", "vector"))
        n_tracks = embeddings.count()
        if n_tracks < 3:
            raise InputError(f"{GOLD_TRACK_EMBEDDINGS.full_name} has {n_tracks} tracks for {day}: "
                             f"run `embed --date {day}` first")
        points = cache(embeddings.withColumn("features", unit("vector")))
        ks = [conf.k] if conf.k else sorted({*range(conf.k_min, conf.k_max + 1, conf.k_step), conf.k_max})
        model, k, silhouette = fit_best(points, conf.algorithm, ks, conf.max_iter, conf.seed, n_tracks,
                                        conf.k_criterion, conf.select_sample)
        assigned = model.transform(points).withColumn("distance", distance_to_centre(model.clusterCenters()))
        tracks_out = (assigned.join(cluster_labels(assigned, plays, conf.label_artists), "cluster", "left")
                      .withColumn("run_date", F.lit(day)).withColumn("algorithm", F.lit(conf.algorithm))
                      .withColumn("k", F.lit(k)))
        delta_io.replace_date(tracks_out, cfg, GOLD_TRACK_CLUSTERS, "run_date", day)
        cache.release(points)

        tastes = cache(taste_vectors(plays, embeddings, day, conf.recency_half_life_days))
        n_users = tastes.count()
        segments_k = max(2, min(conf.segments, n_users - 1))
        seg_model = estimator(conf.algorithm, segments_k, conf.max_iter, conf.seed).fit(tastes)
        users_out = (seg_model.transform(tastes).withColumnRenamed("cluster", "segment")
                     .withColumn("cluster", F.col("segment"))
                     .withColumn("distance", distance_to_centre(seg_model.clusterCenters()))
                     .withColumn("taste", vector_to_array("features", "float32"))
                     .withColumn("run_date", F.lit(day)))
        delta_io.replace_date(users_out, cfg, GOLD_USER_SEGMENTS, "run_date", day)
    summary = {"tracks": n_tracks, "k": k, "silhouette": round(silhouette, 4), "users": n_users,
               "segments": segments_k}
    log.info("cluster %s: %s", day, summary)
    record_model(spark, cfg, day, "kmeans", f"{conf.algorithm}-{day.isoformat()}", conf.algorithm,
                 spark.sparkContext.defaultParallelism,
                 {"k": k, "k_criterion": conf.k_criterion if not conf.k else "fixed", "k_range": [conf.k_min, conf.k_max],
                  "segments": segments_k, "distance": "cosine", "max_iter": conf.max_iter, "seed": conf.seed,
                  "recency_half_life_days": conf.recency_half_life_days},
                 summary, GOLD_TRACK_CLUSTERS.path(cfg),
                 input_versions(spark, cfg, GOLD_TRACK_EMBEDDINGS, SILVER_PLAYS))
    return summary
