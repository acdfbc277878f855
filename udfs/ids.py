"""Stable integer ids: keys seen for the first time get the next integers after the largest id
given so far, in key order, so that the same night always numbers the same keys the same way."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def new_ids(keys: DataFrame, existing: DataFrame, key: str, idx: str) -> DataFrame:
    """Rows of `keys` (one per key, any other columns kept) whose key is not in `existing`, with idx.

    `existing` has columns key and idx. Numbering one night's new keys is a single ordered window:
    new keys are few next to the table, and the order makes the ids deterministic.
    """
    fresh = keys.join(existing.select(key), key, "left_anti")
    start = existing.agg(F.coalesce(F.max(idx), F.lit(0)).alias("_start"))
    return (fresh.crossJoin(start)
            .withColumn(idx, (F.col("_start") + F.row_number().over(Window.orderBy(key))).cast("int"))
            .drop("_start"))
