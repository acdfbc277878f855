"""The blend: every candidate source's top tracks per user as a signal, summed with weights, then
adjusted by the user's feedback.

A source's signal for a candidate (source_scores):
- history (the user's own play counts): ln(plays), 0 for a track played once, 3.7 for 40 plays.
  Counts compare across users, and a log keeps a user's few-plays tail below other sources' best;
- every other source (ALS preference, next-track probability, cosine similarity, plays in a
  segment or overall): its score over the user's best score in that source, 1.0 for the source's
  first track, since such scores do not compare across users.
A candidate's blended score is Σ weight[source] x signal; its `source` is the one that contributed most.
"""
from __future__ import annotations

from typing import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from models.sources import most_played

SOURCES = ("history", "als", "lstm", "item2vec", "segment", "popularity")
COLD_SOURCES = ("segment", "popularity")


def source_scores(scored: DataFrame, n: int, source: str, scale: str = "share") -> DataFrame:
    """(user_idx, track_idx, score) into (user_idx, track_idx, source, signal, rank): the user's top n
    of the source, each with the signal the blend weighs, scale "share" (the score over the user's
    best in the source; negative scores count 0) or "log" (ln of a play count), and its rank there."""
    by_user = Window.partitionBy("user_idx")
    ranked = scored.withColumn("_r", F.row_number().over(by_user.orderBy(F.desc("score"), "track_idx")))
    top = ranked.where(F.col("_r") <= n)
    if scale == "log":
        signal = F.log(F.greatest(F.col("score"), F.lit(1.0)))
    elif scale == "share":
        top = top.withColumn("_s", F.greatest(F.col("score"), F.lit(0.0)))
        best = F.max("_s").over(by_user)
        signal = F.when(best > 0, F.col("_s") / best).otherwise(F.lit(0.0))
    else:
        raise ValueError(f"scale must be share or log, not {scale!r}")
    return top.select("user_idx", "track_idx", F.lit(source).alias("source"), signal.alias("signal"),
                      F.col("_r").cast("int").alias("rank"))


def history_scores(plays: DataFrame, users: DataFrame, n: int) -> DataFrame:
    """The history source: each user's n most played tracks, signal ln(plays)."""
    return source_scores(most_played(plays, users, n), n, "history", scale="log")


def weighed(parts: list[DataFrame], weights: Mapping[str, float], cold: DataFrame | None = None) -> DataFrame:
    """Every source's proposals (the union of `parts`) with `w`, the proposal's weight x signal, and
    `kept`: false, and w null, for a warm source's proposal to a cold user, which the blend leaves out."""
    proposals = parts[0]
    for part in parts[1:]:
        proposals = proposals.unionByName(part)
    kept = F.lit(True)
    if cold is not None:
        # broadcast (the few users below recommend.min_history): a sort-merge join would sort every proposal
        proposals = proposals.join(F.broadcast(cold.withColumn("_cold", F.lit(True))), "user_idx", "left")
        kept = F.col("_cold").isNull() | F.col("source").isin(*COLD_SOURCES)
    return (proposals.withColumn("w", F.when(kept, weighted_signal(weights))).withColumn("kept", kept)
            .drop("_cold"))


def blend(parts: list[DataFrame], weights: Mapping[str, float], cold: DataFrame | None = None) -> DataFrame:
    """(user_idx, track_idx, score, source) summed over sources; cold users keep cold sources only."""
    return (weighed(parts, weights, cold).where("kept").groupBy("user_idx", "track_idx").agg(*contributions())
            .select("user_idx", "track_idx", *blend_columns()))


def weighted_signal(weights: Mapping[str, float]) -> Column:
    """A proposal's weight x signal: its contribution to the blended score."""
    unknown = set(weights) - set(SOURCES)
    if unknown:
        raise ValueError(f"blend weights for unknown source(s) {sorted(unknown)}; sources are {', '.join(SOURCES)}")
    table = F.create_map(*[x for s in SOURCES for x in (F.lit(s), F.lit(float(weights.get(s, 0.0))))])
    return table[F.col("source")] * F.col("signal")


def contributions() -> list[Column]:
    """Per candidate, over its weighed proposals (`weighed`; at most one per source): each source's
    contribution w as `_w_<source>` (null: not proposed, or left out). Numeric aggregates only, so
    Spark aggregates them in a hash map; a string or struct in the buffer (max_by of the source name)
    makes it sort every proposal instead (a SortAggregate in the plan, seen at 1M and 3M events)."""
    return [F.max(F.when(F.col("source") == F.lit(s), F.col("w"))).alias(f"_w_{s}") for s in SOURCES]


def blend_columns() -> tuple[Column, Column]:
    """From `contributions`: the blended score (the sum of the contributions, null when there is none)
    and the source that contributed most (ties: the greater source name)."""
    ws = [F.col(f"_w_{s}") for s in SOURCES]
    present = F.greatest(*[w.isNotNull() for w in ws])
    score = F.when(present, sum(F.coalesce(w, F.lit(0.0)) for w in ws))
    offers = F.filter(F.array(*[F.struct(w.alias("w"), F.lit(s).alias("source")) for w, s in zip(ws, SOURCES)]),
                      lambda o: o["w"].isNotNull())
    return score.alias("score"), F.array_max(offers)["source"].alias("source")


def apply_feedback(blended: DataFrame, disliked: DataFrame, liked: DataFrame, skipped: DataFrame,
                   like_boost: float, skip_penalty: float) -> DataFrame:
    """Drop what a user disliked; multiply liked tracks' scores by 1 + like_boost and skipped ones'
    by 1 - skip_penalty. Each of disliked, liked, skipped has distinct (user_idx, track_idx)."""
    key = ["user_idx", "track_idx"]
    factor = (F.when(F.col("_liked").isNotNull(), 1.0 + like_boost).otherwise(1.0)
              * F.when(F.col("_skipped").isNotNull(), 1.0 - skip_penalty).otherwise(1.0))
    return (blended.join(disliked, key, "left_anti")
            .join(liked.withColumn("_liked", F.lit(True)), key, "left")
            .join(skipped.withColumn("_skipped", F.lit(True)), key, "left")
            .withColumn("score", F.col("score") * factor).drop("_liked", "_skipped"))
