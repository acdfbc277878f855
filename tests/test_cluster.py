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
    # the distance is the Euclidean distance to the mean of the cluster's members (k-means centre)
    emb = rows_for(spark, cfg, GOLD_TRACK_EMBEDDINGS).select("track_idx", "vector").toPandas().set_index("track_idx")
    sample = clusters.select("track_idx", "cluster", "distance").toPandas()
    members = sample[sample["cluster"] == sample["cluster"].iloc[0]]
    centre = np.stack(emb.loc[members["track_idx"], "vector"].to_numpy()).mean(axis=0)
    one = members.iloc[0]
    assert np.linalg.norm(np.array(emb.loc[one["track_idx"], "vector"]) - centre) == pytest.approx(one["distance"],
                                                                                                 rel=1e-3)
    segments = rows_for(spark, cfg, GOLD_USER_SEGMENTS)
    assert segments.count() == summary["users"] > 0
    assert segments.select("segment").distinct().count() == summary["segments"]
    assert segments.where(F.size("taste") != cfg.embed.vector_size).count() == 0
    cluster.run(spark, cfg, D)
    assert rows_for(spark, cfg, GOLD_TRACK_CLUSTERS).count() == clusters.count()


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
