"""embed, cluster, als and evaluate end to end on generated plays, and the model pieces on small
hand-made data (Spark KMeans against scikit-learn, ALS against planted structure)."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from pyspark.ml.clustering import KMeans
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F
from sklearn.cluster import KMeans as SkKMeans
from sklearn.metrics import adjusted_rand_score

from conftest import small_generate
from jobs import als, clean, cluster, delta_io, embed, evaluate, generate, ingest
from jobs.config import with_overrides
from jobs.tables import (GOLD_ALS_ITEM_FACTORS, GOLD_ALS_USER_FACTORS, GOLD_METRICS, GOLD_MODELS,
                         GOLD_TRACK_CLUSTERS, GOLD_TRACK_EMBEDDINGS, GOLD_USER_SEGMENTS, SILVER_PLAYS)

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
D = DAYS[-1]


@pytest.fixture(scope="module")
def warehouse(spark, base_cfg, tmp_path_factory):
    """Three generated, cleaned nights with planted taste, order and loyalty; few defects."""
    root = tmp_path_factory.mktemp("models")
    cfg = with_overrides(base_cfg, [
        f"warehouse={root / 'wh'}", f"raw_path={root / 'raw'}",
        *small_generate(days=3, users=80, events=80 * 30 * 3, dirty=0.01, end_date="2026-01-03", tracks=600,
                        artists=60, genres=4),
        "embed.vector_size=16", "embed.epochs=5", "cluster.k_min=3", "cluster.k_max=5", "cluster.segments=4",
        "als.rank=8", "als.max_iter=6", "als.grid_ranks=[4, 8]", "als.grid_reg_params=[0.05]",
    ])
    generate.run(spark, cfg)
    for day in DAYS:
        ingest.run(spark, cfg, day)
        clean.run(spark, cfg, day)
    return cfg


def rows_for(spark, cfg, table, day=D):
    return delta_io.read(spark, cfg, table).where(F.col("run_date") == F.lit(day))


def test_embed_gensim_covers_every_track_above_min_count_and_rerun_replaces(spark, warehouse):
    cfg = warehouse
    summary = embed.run(spark, cfg, D)
    counts = delta_io.read(spark, cfg, SILVER_PLAYS).groupBy("track_idx").count()
    frequent = {r[0] for r in counts.where(F.col("count") >= cfg.embed.min_count).collect()}
    rare = counts.where(F.col("count") < cfg.embed.min_count).count()
    out = rows_for(spark, cfg, GOLD_TRACK_EMBEDDINGS)
    assert {r[0] for r in out.select("track_idx").collect()} == frequent
    assert summary["rare_left_out"] == rare > 0 and summary["embedded"] == len(frequent)
    assert out.where(F.size("vector") != cfg.embed.vector_size).count() == 0
    assert out.where(F.col("track_id").isNull()).count() == 0
    embed.run(spark, cfg, D)
    assert rows_for(spark, cfg, GOLD_TRACK_EMBEDDINGS).count() == len(frequent)  # replaced, not appended


def test_embeddings_put_a_track_near_its_session_neighbours(spark, warehouse):
    cfg = warehouse
    emb = rows_for(spark, cfg, GOLD_TRACK_EMBEDDINGS).select("track_idx", "vector").toPandas()
    matrix = np.stack(emb["vector"].to_numpy())
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    pos = {t: i for i, t in enumerate(emb["track_idx"])}
    plays = delta_io.read(spark, cfg, SILVER_PLAYS).select("session_id", "session_position", "track_idx").toPandas()
    plays = plays.sort_values(["session_id", "session_position"])
    nxt = plays.groupby("session_id")["track_idx"].shift(-1)
    pairs = [(pos[a], pos[b]) for a, b in zip(plays["track_idx"], nxt) if b == b and a in pos and b in pos and a != b]
    consecutive = np.mean([matrix[a] @ matrix[b] for a, b in pairs])
    rng = np.random.default_rng(0)
    random_pairs = rng.integers(0, len(matrix), size=(2000, 2))
    assert consecutive > np.mean([matrix[a] @ matrix[b] for a, b in random_pairs]) + 0.1


def test_embed_spark_engine_gives_the_same_vocabulary(spark, warehouse, tmp_path):
    cfg = with_overrides(warehouse, ["embed.engine=spark"])
    plays = embed.history(delta_io.read(spark, cfg, SILVER_PLAYS), D, 0)
    vectors = embed.train(spark, plays, cfg.embed, str(tmp_path / "scratch"))
    gensim_tracks = {r[0] for r in rows_for(spark, cfg, GOLD_TRACK_EMBEDDINGS).select("track_idx").collect()}
    assert {r[0] for r in vectors.select("track_idx").collect()} == gensim_tracks
    assert vectors.where(F.size("vector") != cfg.embed.vector_size).count() == 0


def test_cluster_assigns_every_track_and_user_with_labels_and_distances(spark, warehouse):
    cfg = warehouse
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


def test_als_ranks_held_out_items_of_the_users_taste_group_first(spark, base_cfg):
    rng = np.random.default_rng(5)
    rows, held_out = [], {}
    for user in range(40):
        group = user % 2
        items = [i for i in range(60) if i % 2 == group]
        liked = rng.permutation(items)
        held_out[user] = set(int(i) for i in liked[:5])
        rows += [(user, int(i), int(rng.integers(1, 6))) for i in liked[5:]]
    pairs = spark.createDataFrame(rows, "user_idx int, track_idx int, plays int").withColumn(
        "confidence", F.log1p("plays") + 1.0)
    model = als.fit(pairs, als.AlsParams(rank=4, reg_param=0.05, alpha=10.0),
                    with_overrides(base_cfg, ["als.max_iter=10"]).als)
    recs = {r["user_idx"]: r["recs"] for r in als.top_n(model, pairs.select("user_idx").distinct(), 60).collect()}
    for user, items in held_out.items():
        ranked = recs[user]
        same_group = [i for i in ranked if i % 2 == user % 2]
        other = [i for i in ranked if i % 2 != user % 2]
        assert max(ranked.index(i) for i in items) < min(ranked.index(i) for i in other), user
        assert len(same_group) == 30


def test_als_job_grid_search_writes_factors_model_and_metadata(spark, warehouse):
    cfg = warehouse
    summary = als.run(spark, cfg, D)
    assert summary["params"]["grid_size"] == 2 and summary["params"]["rank"] in (4, 8)
    model_row = delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'als'").collect()
    assert len(model_row) == 1
    metrics = json.loads(model_row[0]["metrics"])
    assert 0 < metrics["ndcg@10"] <= 1 and metrics["users"] > 0
    assert json.loads(model_row[0]["params"])["rank"] == summary["params"]["rank"]
    users = rows_for(spark, cfg, GOLD_ALS_USER_FACTORS)
    assert users.where(F.size("factors") != summary["params"]["rank"]).count() == 0
    n_items = rows_for(spark, cfg, GOLD_ALS_ITEM_FACTORS).count()
    assert n_items == delta_io.read(spark, cfg, SILVER_PLAYS).select("track_idx").distinct().count()
    als.run(spark, cfg, D)
    assert rows_for(spark, cfg, GOLD_ALS_ITEM_FACTORS).count() == n_items
    assert delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'als'").count() == 1


def test_evaluate_scores_every_source_and_als_beats_popularity(spark, warehouse):
    cfg = warehouse
    results = evaluate.run(spark, cfg, D)
    assert set(results) == {"popularity", "most_played", "item2vec", "als", "blend"}
    stored = rows_for(spark, cfg, GOLD_METRICS)
    assert stored.select("model").distinct().count() == 5
    assert stored.where("metric = 'ndcg' AND k = 10").count() == 5
    for values in results.values():
        assert 0 <= values["ndcg"] <= 1 and 0 < values["coverage"] <= 1 and values["novelty"] > 0
    assert results["als"]["ndcg"] > 1.5 * results["popularity"]["ndcg"]
    assert results["most_played"]["ndcg"] > results["popularity"]["ndcg"]
    n = stored.count()
    evaluate.run(spark, cfg, D)
    assert rows_for(spark, cfg, GOLD_METRICS).count() == n


def test_train_lstm_with_horovod_end_to_end(spark, warehouse):
    from jobs import train
    cfg = with_overrides(warehouse, ["train.embed_dim=16", "train.hidden=32", "train.epochs=2", "train.batch_size=128",
                                     "train.window=5", "train.sequence_files=4", "train.eval_examples=2000",
                                     "train.timeout_minutes=4"])
    result = train.run(spark, cfg, D, "horovod")
    row = delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'lstm'").collect()
    assert len(row) == 1 and row[0]["backend"] == "horovod" and row[0]["world_size"] == 2
    metrics = json.loads(row[0]["metrics"])
    assert metrics["export"]["torchscript_top_k_equal"] is True and metrics["export"]["onnx_top_k_equal"] is True
    assert metrics["loss_history"][-1] < metrics["loss_history"][0]
    from pathlib import Path
    store = Path(row[0]["path"])
    assert {"model.pt", "model.torchscript.pt", "model.onnx"} <= {p.name for p in store.iterdir()}
    next_track = rows_for(spark, cfg, GOLD_METRICS).where(F.col("model").startswith("next_track:"))
    assert next_track.select("model").distinct().count() == 4
    assert result["metrics"]["lstm"]["hit_rate"] > result["metrics"]["popularity"]["hit_rate"]
    # evaluate's rows of the same date were kept beside train's
    assert rows_for(spark, cfg, GOLD_METRICS).where(~F.col("model").startswith("next_track:")).count() > 0


def test_lstm_scores_on_executors_match_the_model_and_clip_unknown_tracks(spark):
    import torch

    from models.lstm import LstmParams, NextTrackLSTM, top_k
    from models.serving import next_track_scores
    torch.manual_seed(0)
    net = NextTrackLSTM(LstmParams(vocab=30, embed_dim=8, hidden=8, layers=1, dropout=0.0)).eval()
    windows = spark.createDataFrame([(1, [0, 3, 4, 5]), (2, [7, 8, 9, 99])], "user_idx int, x array<int>")
    scored = next_track_scores(spark, {"params": net.params.__dict__, "state": net.state_dict()}, windows,
                               "user_idx", 5).collect()
    by_user = {u: sorted(((r["score"], r["track_idx"]) for r in scored if r["user_idx"] == u), reverse=True)
               for u in (1, 2)}
    # track 99 is beyond the model's vocabulary: read as padding, as the model would see it
    local = top_k(net, torch.tensor([[0, 3, 4, 5], [7, 8, 9, 0]]), 5).tolist()
    with torch.no_grad():
        logits = net(torch.tensor([[0, 3, 4, 5]]))[0]
    logits[0] = float("-inf")  # the padding index is never a next track
    probabilities = torch.softmax(logits, dim=0)
    for row, u in enumerate((1, 2)):
        assert [t for _, t in by_user[u]] == local[row] and 0 not in local[row]
        assert all(0.0 < s < 1.0 for s, _ in by_user[u])
    assert [s for s, _ in by_user[1]] == pytest.approx([float(probabilities[t]) for t in local[0]], rel=1e-5)
