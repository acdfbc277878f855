"""cluster: tracks and users into clusters on generated embeddings; Spark KMeans against scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.clustering import KMeans
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F
from sklearn.cluster import KMeans as SkKMeans
from sklearn.metrics import adjusted_rand_score

from conftest import NIGHTS, rows_for
from jobs import cluster
from jobs.core.tables import GOLD_TRACK_CLUSTERS, GOLD_TRACK_EMBEDDINGS, GOLD_USER_SEGMENTS

D = NIGHTS[-1]


def test_cluster_assigns_every_track_and_user_with_labels_and_distances(spark, modelled):
    cfg = modelled
    summary = cluster.run(spark, cfg, D)
    assert 3 <= summary["k"] <= 5
    clusters = rows_for(spark, cfg, GOLD_TRACK_CLUSTERS)
    assert clusters.count() == rows_for(spark, cfg, GOLD_TRACK_EMBEDDINGS).count()
    assert clusters.where(F.col("cluster_label").isNull() | (F.col("distance") < 0)).count() == 0
    assert clusters.select("cluster").distinct().count() == summary["k"]
    # the distance is the cosine distance to the centre, the mean direction of the cluster's unit vectors
    emb = rows_for(spark, cfg, GOLD_TRACK_EMBEDDINGS).select("track_idx", "vector").toPandas().set_index("track_idx")
    sample = clusters.select("track_idx", "cluster", "distance").toPandas()
    members = sample[sample["cluster"] == sample["cluster"].iloc[0]]
    vectors = np.stack(emb.loc[members["track_idx"], "vector"].to_numpy())
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    centre = units.mean(axis=0)
    one = members.iloc[0]
    cosine = units[0] @ centre / np.linalg.norm(centre)
    assert 1.0 - cosine == pytest.approx(one["distance"], rel=1e-3, abs=1e-4)
    segments = rows_for(spark, cfg, GOLD_USER_SEGMENTS)
    assert segments.count() == summary["users"] > 0
    assert segments.select("segment").distinct().count() == summary["segments"]
    assert segments.where(F.size("taste") != cfg.embed.vector_size).count() == 0
    cluster.run(spark, cfg, D)
    assert rows_for(spark, cfg, GOLD_TRACK_CLUSTERS).count() == clusters.count()


def test_the_elbow_picks_where_more_clusters_stop_paying_not_the_smallest_k():
    from models.clustering import elbow
    ks = [4, 6, 8, 10, 12, 14, 16]
    assert elbow(ks, [100.0, 60.0, 35.0, 30.0, 27.0, 25.0, 24.0]) == 8  # the knee
    assert elbow(ks, [100.0 - 2 * k for k in ks]) == 4  # a straight line has no knee: the smallest k
    assert elbow([4, 5], [10.0, 9.0]) == 4 and elbow(ks, [5.0] * 7) == 4


def test_planted_directions_are_found_whatever_the_vector_lengths(spark):
    """Four planted directions, each track's length random (as play counts make Word2Vec lengths):
    cosine k-means on unit vectors recovers the directions, the elbow finds k = 4."""
    from models.clustering import fit_best, unit
    rng = np.random.default_rng(3)
    directions = np.eye(6)[:4] * 3 + rng.normal(0, 0.1, (4, 6))
    labels = np.repeat(np.arange(4), 50)
    vectors = directions[labels] + rng.normal(0, 0.3, (200, 6))
    vectors *= rng.lognormal(0, 1.0, (200, 1))  # lengths that have nothing to do with the direction
    df = spark.createDataFrame([(i, [float(x) for x in v]) for i, v in enumerate(vectors)], "track_idx int, vector array<float>")
    points = df.withColumn("features", unit("vector"))
    model, k, _ = fit_best(points, "kmeans", [2, 3, 4, 5, 6, 7, 8], 30, 7, 200)
    found = [r["cluster"] for r in model.transform(points).orderBy("track_idx").collect()]
    assert k == 4 and adjusted_rand_score(labels, found) == 1.0


def test_spark_kmeans_agrees_with_scikit_learn_on_well_separated_points(spark):
    rng = np.random.default_rng(4)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], dtype=float)
    points = np.concatenate([c + rng.normal(0, 0.5, size=(40, 3)) for c in centres])
    df = spark.createDataFrame([(i, Vectors.dense(p)) for i, p in enumerate(points)], ["id", "features"])
    model = KMeans(k=4, seed=1, featuresCol="features", predictionCol="cluster").fit(df)
    ours = [r["cluster"] for r in model.transform(df).orderBy("id").collect()]
    theirs = SkKMeans(n_clusters=4, n_init=10, random_state=0).fit_predict(points)
    assert adjusted_rand_score(theirs, ours) == 1.0
    np.testing.assert_allclose(sorted(map(tuple, np.round(model.clusterCenters(), 3))),
                               sorted(map(tuple, np.round([points[theirs == c].mean(0) for c in range(4)], 3))),
                               atol=1e-3)
