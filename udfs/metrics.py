"""Ranking metrics at K, defined once, as Spark column expressions over one row per user.

Each row holds `recs` (the ranked list of track_idx, best first) and `truth` (the distinct tracks
the user actually played in the test window). Binary relevance throughout:
- recall@K    = |top-K ∩ truth| / |truth|
- precision@K = |top-K ∩ truth| / K
- hit@K       = 1 if top-K ∩ truth is not empty
- NDCG@K      = Σ_{i ≤ K, rec_i ∈ truth} 1/log2(i+1)  /  Σ_{i ≤ min(K, |truth|)} 1/log2(i+1)
- AP@K        = Σ_{i ≤ K, rec_i ∈ truth} precision@i  /  min(K, |truth|)
These are the definitions of Spark's RankingMetrics (recallAt, ndcgAt, meanAveragePrecisionAt),
which the tests check against. Means over users are taken by the caller.
"""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

RANKING_METRICS = ("recall", "precision", "ndcg", "map", "hit_rate")


def _top(recs: Column, k: int) -> Column:
    return F.slice(recs, 1, k)


def hits(recs: Column, truth: Column, k: int) -> Column:
    return F.size(F.array_intersect(_top(recs, k), truth))


def recall_at(recs: Column, truth: Column, k: int) -> Column:
    return hits(recs, truth, k) / F.size(truth)


def precision_at(recs: Column, truth: Column, k: int) -> Column:
    return hits(recs, truth, k) / F.lit(float(k))


def hit_at(recs: Column, truth: Column, k: int) -> Column:
    return (hits(recs, truth, k) > 0).cast("double")


def ndcg_at(recs: Column, truth: Column, k: int) -> Column:
    top = _top(recs, k)
    dcg = F.aggregate(
        F.transform(top, lambda x, i: F.when(F.array_contains(truth, x), 1.0 / F.log2(i + 2.0)).otherwise(0.0)),
        F.lit(0.0), lambda acc, v: acc + v)
    ideal_n = F.least(F.size(truth), F.lit(k))
    idcg = F.aggregate(F.transform(F.sequence(F.lit(1), ideal_n), lambda i: 1.0 / F.log2(i + 1.0)),
                       F.lit(0.0), lambda acc, v: acc + v)
    return F.when(idcg > 0, dcg / idcg).otherwise(0.0)


def average_precision_at(recs: Column, truth: Column, k: int) -> Column:
    top = _top(recs, k)
    relevant = F.transform(top, lambda x: F.array_contains(truth, x).cast("int"))
    # precision at each relevant position i: (number relevant in 1..i) / i
    precisions = F.transform(
        relevant,
        lambda r, i: F.when(r == 1, F.aggregate(F.slice(relevant, 1, i + 1), F.lit(0), lambda a, v: a + v) / (i + 1.0))
        .otherwise(0.0))
    total = F.aggregate(precisions, F.lit(0.0), lambda acc, v: acc + v)
    return total / F.least(F.size(truth), F.lit(k))


METRIC_COLUMNS = {
    "recall": recall_at,
    "precision": precision_at,
    "ndcg": ndcg_at,
    "map": average_precision_at,
    "hit_rate": hit_at,
}
