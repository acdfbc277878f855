"""Diversification: the greedy MMR pick with an artist cap, as Spark window functions (no Python loop).

The greedy pass picks, K times, the candidate maximising mmr_lambda x relevance
− (1 − mmr_lambda) x [its artist is already in the list], relevance being the score over the user's
best, with at most max_per_artist tracks per artist (relaxed only when the candidates cannot fill K
otherwise). Because the penalty is the same for the second track of an artist as for the tenth, the
greedy order has a closed form: an artist's best track is always picked before its others and is
never penalised, every other track always is, so the greedy list is the candidates sorted by
adjusted value = mmr_lambda x relevance − (1 − mmr_lambda) x [not its artist's best], those beyond
the cap after all the others, ties by score and then track_idx. tests/test_diversify.py checks this
against the greedy loop itself on random candidates.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def diversify(candidates: DataFrame, k: int, max_per_artist: int, mmr_lambda: float) -> DataFrame:
    """(user_idx, track_idx, score, source, rank) from candidates (user_idx, track_idx, artist_name,
    score, source): exactly k rows per user where there are k candidates, ranked 1..k.
    max_per_artist 0: no cap."""
    user = Window.partitionBy("user_idx")
    artist = Window.partitionBy("user_idx", "_artist").orderBy(F.desc("score"), "track_idx")
    top = F.max("score").over(user)
    relevance = F.col("score") / F.when(top > 0, top).otherwise(F.lit(1.0))
    ranked = (candidates.withColumn("_artist", F.coalesce(F.col("artist_name"), F.lit("")))
              .withColumn("_in_artist", F.row_number().over(artist)))
    value = F.lit(mmr_lambda) * relevance - F.lit(1.0 - mmr_lambda) * (F.col("_in_artist") > 1).cast("double")
    beyond_cap = (F.col("_in_artist") > max_per_artist) if max_per_artist > 0 else F.lit(False)
    order = Window.partitionBy("user_idx").orderBy(beyond_cap.cast("int"), F.desc("_value"), F.desc("score"),
                                                   "track_idx")
    return (ranked.withColumn("_value", value)
            .withColumn("rank", F.row_number().over(order))
            .where(F.col("rank") <= k)
            .select("user_idx", "track_idx", "score", "source", F.col("rank").cast("int").alias("rank")))
