"""Ranking metrics: hand-computed small cases, and agreement with Spark's RankingEvaluator."""
from __future__ import annotations

import math
import random

import pytest
from pyspark.ml.evaluation import RankingEvaluator
from pyspark.sql import functions as F

from models.scoring import ranked_lists, score_lists, temporal_split, truth_of
from udfs.metrics import METRIC_COLUMNS


def metrics_of(spark, recs, truth, k):
    df = spark.createDataFrame([(recs, truth)], "recs array<int>, truth array<int>")
    row = df.select(*[fn(F.col("recs"), F.col("truth"), k).alias(n) for n, fn in METRIC_COLUMNS.items()]).first()
    return row.asDict()


def test_hand_computed_values(spark):
    got = metrics_of(spark, [1, 2, 3, 4, 5], [2, 5, 9], 5)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert got == pytest.approx({"recall": 2 / 3, "precision": 0.4, "ndcg": dcg / idcg,
                                 "map": (1 / 2 + 2 / 5) / 3, "hit_rate": 1.0})
    got = metrics_of(spark, [1, 2, 3, 4, 5], [2, 5, 9], 2)
    assert got == pytest.approx({"recall": 1 / 3, "precision": 0.5, "ndcg": (1 / math.log2(3)) / (1 + 1 / math.log2(3)),
                                 "map": 0.5 / 2, "hit_rate": 1.0})
    assert metrics_of(spark, [7, 8], [1], 2) == {"recall": 0.0, "precision": 0.0, "ndcg": 0.0, "map": 0.0,
                                                 "hit_rate": 0.0}
    assert metrics_of(spark, [1], [1], 10)["ndcg"] == pytest.approx(1.0)


def test_agree_with_spark_ranking_evaluator(spark):
    rng = random.Random(3)
    rows = []
    for u in range(60):
        recs = rng.sample(range(40), 15)
        truth = sorted(rng.sample(range(40), rng.randint(1, 8)))
        rows.append((u, recs, truth))
    df = spark.createDataFrame(rows, "user_idx int, recs array<int>, truth array<int>")
    k = 10
    ours = score_lists(df.select("user_idx", "recs"), df.select("user_idx", "truth"), k)
    as_double = df.select(F.col("recs").cast("array<double>").alias("prediction"),
                          F.col("truth").cast("array<double>").alias("label"))
    for ours_name, spark_name in (("ndcg", "ndcgAtK"), ("map", "meanAveragePrecisionAtK"), ("recall", "recallAtK"),
                                  ("precision", "precisionAtK")):
        theirs = RankingEvaluator(metricName=spark_name, k=k, predictionCol="prediction", labelCol="label"
                                  ).evaluate(as_double)
        assert ours[ours_name] == pytest.approx(theirs, rel=1e-9), ours_name
    assert ours["users"] == 60


def test_users_without_a_list_score_zero_and_lists_rank_by_score(spark):
    truth = spark.createDataFrame([(1, [5]), (2, [6])], "user_idx int, truth array<int>")
    scored = spark.createDataFrame([(1, 5, 0.9), (1, 4, 0.95), (1, 3, 0.1)], "user_idx int, track_idx int, score double")
    lists = ranked_lists(scored, 2)
    assert [tuple(r) for r in lists.collect()] == [(1, [4, 5])]
    got = score_lists(lists, truth, 2)
    assert got["hit_rate"] == 0.5 and got["users"] == 2


def test_beyond_accuracy_coverage_diversity_and_novelty_by_hand(spark):
    from models.scoring import beyond_accuracy, catalogue_of
    # training plays: track 1 three times, track 2 once (p = 3/4 and 1/4), track 3 never
    train = spark.createDataFrame([(1, 1), (2, 1), (3, 1), (1, 2)], "user_idx int, track_idx int")
    tracks = spark.createDataFrame([(1, "A"), (2, "A"), (3, "B")], "track_idx int, artist_name string")
    vectors = spark.createDataFrame([(1, [1.0, 0.0]), (2, [0.0, 1.0]), (3, [1.0, 0.0])],
                                    "track_idx int, vector array<float>")
    lists = spark.createDataFrame([(1, [1, 2]), (2, [1, 3])], "user_idx int, recs array<int>")
    got = beyond_accuracy(lists, catalogue_of(train, tracks, vectors), 10)
    info_1, info_2 = -math.log2(0.75), -math.log2(0.25)
    assert got["novelty"] == pytest.approx(((info_1 + info_2) / 2 + (info_1 + 0.0) / 2) / 2)
    assert got["coverage"] == pytest.approx(3 / 2)  # three tracks recommended, two in the catalogue of plays
    assert got["diversity_artists"] == pytest.approx((0.5 + 1.0) / 2)
    assert got["diversity_embedding"] == pytest.approx((1.0 + 0.0) / 2)  # orthogonal pair, identical pair


def test_embedding_diversity_is_the_mean_pairwise_cosine_distance_of_each_list(spark):
    """diversity_embedding, computed from each list's sum of unit vectors (no pairs), equals the
    mean over users of the mean cosine distance over the pairs of a list's tracks with a vector,
    counted pair by pair: a zero vector is at distance 1 from every track, a track without a vector
    is left out, a list with fewer than two such tracks has no pair, a track twice is two tracks."""
    from models.scoring import beyond_accuracy_named, catalogue_of
    rng = random.Random(5)
    vectors = {t: [rng.uniform(-1, 1) for _ in range(6)] for t in range(40)}
    vectors[3] = [0.0] * 6  # a zero vector
    for t in (7, 8, 9):
        del vectors[t]  # no vector
    lists = {u: [rng.randrange(40) for _ in range(rng.randrange(1, 11))] for u in range(30)}
    lists[30] = [3, 3, 7]  # the zero vector twice: one pair, distance 1
    lists[31] = [7, 8, 12]  # one track with a vector: no pair
    other = {u: list(reversed(recs)) for u, recs in lists.items() if u % 2}

    def expected(named: dict[int, list[int]]) -> float:
        means = []
        for recs in named.values():
            with_vector = [vectors[t] for t in recs[:10] if t in vectors]
            pairs = [(a, b) for i, a in enumerate(with_vector) for b in with_vector[i + 1:]]
            if pairs:
                def distance(a, b):
                    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
                    return 1.0 - (sum(x * y for x, y in zip(a, b)) / norms if norms else 0.0)
                means.append(sum(distance(a, b) for a, b in pairs) / len(pairs))
        return sum(means) / len(means)

    def frame(named):
        return spark.createDataFrame(list(named.items()), "user_idx int, recs array<int>")
    catalogue = catalogue_of(spark.createDataFrame([(1, 1)], "user_idx int, track_idx int"),
                             spark.createDataFrame([(t, "A") for t in range(40)], "track_idx int, artist_name string"),
                             spark.createDataFrame(list(vectors.items()), "track_idx int, vector array<float>"))
    got = beyond_accuracy_named({"all": frame(lists), "odd": frame(other)}, catalogue, 10)
    assert got["all"]["diversity_embedding"] == pytest.approx(expected(lists), abs=1e-6)
    assert got["odd"]["diversity_embedding"] == pytest.approx(expected(other), abs=1e-6)


def test_temporal_split_and_truth(spark):
    import datetime as dt
    d = dt.date(2026, 1, 5)
    plays = spark.createDataFrame([
        (1, 10, dt.date(2026, 1, 3)), (1, 11, dt.date(2026, 1, 5)), (1, 11, dt.date(2026, 1, 5)),
        (2, 12, dt.date(2026, 1, 5)),  # no history before the window: not a test user
        (1, 13, dt.date(2026, 1, 6)),  # after the run date: ignored
    ], "user_idx int, track_idx int, play_date date")
    train, test = temporal_split(plays, d, 1)
    assert train.count() == 1 and test.count() == 3
    assert [tuple(r) for r in truth_of(test, train).collect()] == [(1, [11])]
