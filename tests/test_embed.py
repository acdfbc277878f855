"""embed: Word2Vec over sessions (gensim and MLlib) on generated plays."""
from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from conftest import NIGHTS, rows_for
from jobs import embed
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.tables import GOLD_TRACK_EMBEDDINGS, SILVER_PLAYS
from models.embeddings import Word2VecParams, train_word2vec
from udfs.dates import plays_within

D = NIGHTS[-1]


def test_embed_gensim_covers_every_track_above_min_count_and_rerun_replaces(spark, modelled):
    cfg = modelled
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


def test_embeddings_put_a_track_near_its_session_neighbours(spark, modelled):
    cfg = modelled
    emb = rows_for(spark, cfg, GOLD_TRACK_EMBEDDINGS).select("track_idx", "vector").toPandas()
    assert session_neighbours_are_closer(spark, cfg, emb) > 0.1


def session_neighbours_are_closer(spark, cfg, emb) -> float:
    """Mean cosine of consecutive tracks of a session minus that of random pairs of tracks."""
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
    return consecutive - np.mean([matrix[a] @ matrix[b] for a, b in random_pairs])


def test_embed_spark_engine_trains_in_parallel_with_the_same_vocabulary_and_geometry(spark, modelled, tmp_path):
    cfg = with_overrides(modelled, ["embed.engine=spark"])
    plays = plays_within(delta_io.read(spark, cfg, SILVER_PLAYS), D, 0)
    w2v_partitions = []
    spark.sparkContext.setJobGroup("w2v", "spark engine")
    vectors = train_word2vec(spark, plays, cfg.embed.engine, Word2VecParams.of(cfg.embed), str(tmp_path / "scratch"))
    gensim_tracks = {r[0] for r in rows_for(spark, cfg, GOLD_TRACK_EMBEDDINGS).select("track_idx").collect()}
    tracker = spark.sparkContext.statusTracker()
    for job in tracker.getJobIdsForGroup("w2v"):
        for stage in tracker.getJobInfo(job).stageIds:
            info = tracker.getStageInfo(stage)
            if info is not None and "Word2Vec.scala" in info.name and "mapPartitions" in info.name:
                w2v_partitions.append(info.numTasks)
    spark.sparkContext.setJobGroup("", "")
    # every epoch trains one task per partition (Spark's default parallelism, 2 here), not MLlib's single one
    assert w2v_partitions and set(w2v_partitions) == {spark.sparkContext.defaultParallelism}
    assert {r[0] for r in vectors.select("track_idx").collect()} == gensim_tracks
    assert vectors.where(F.size("vector") != cfg.embed.vector_size).count() == 0
    emb = vectors.toPandas()
    assert session_neighbours_are_closer(spark, cfg, emb) > 0.1


def test_neighbours_of_a_large_catalogue_are_exact_and_computed_in_bounded_memory():
    """item2vec's neighbour search (models.embeddings.top_neighbours) on a catalogue of 60,000 tracks:
    the same neighbours as a brute-force search, without holding a queries x catalogue matrix."""
    import tracemalloc

    from models.embeddings import normalise_rows, top_neighbours
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(60_000, 16)).astype(np.float32)
    queries_at = rng.choice(len(matrix), 2_000, replace=False)
    tracemalloc.start()
    idx, sims = top_neighbours(matrix[queries_at], matrix, 10, exclude_self=queries_at)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # 2,000 x 60,000 similarities alone are 480 MB; with the partition indices, 1.4 GB
    assert peak < 300 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    unit = normalise_rows(matrix)
    for i in (0, 777, 1999):
        exact = unit @ unit[queries_at[i]]
        exact[queries_at[i]] = -np.inf
        best = np.argsort(-exact, kind="stable")[:10]
        assert list(idx[i]) == list(best) and np.allclose(sims[i], exact[best], atol=1e-5)
    assert queries_at[0] not in idx[0] and (np.diff(sims, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("tracks", [40, 4000])  # a full partition, and the sampled floor (models.embeddings.best_n)
def test_neighbours_at_equal_similarity_come_in_the_order_of_the_rows(tracks):
    """Exact ties (tracks with the same vector, as a long tail's often are) are broken by row, so a
    night's neighbours do not depend on how a partition happened to order them."""
    from models.embeddings import top_neighbours
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(tracks, 8)).astype(np.float32)
    twins = rng.choice(np.arange(1, tracks), 12, replace=False)
    matrix[twins] = matrix[0] * 2.0  # twelve rows at cosine 1 from row 0 (and from each other)
    idx, sims = top_neighbours(matrix[[0]], matrix, 15, exclude_self=np.array([0]))
    assert list(idx[0][:12]) == sorted(twins) and np.allclose(sims[0][:12], 1.0)
    assert (np.diff(sims[0]) <= 0).all() and 0 not in idx[0]
    # a zero vector is at similarity 0 from every track: all tie, the first rows come
    idx, sims = top_neighbours(np.zeros((1, 8), np.float32), matrix, 15)
    assert list(idx[0]) == list(range(15)) and not sims.any()
