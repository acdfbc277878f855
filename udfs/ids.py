"""Stable integer ids: keys seen for the first time get the next integers after the largest id
given so far, in key order, so that the same night always numbers the same keys the same way.

Numbering is parallel: the new keys are range-partitioned by key, each partition numbers its own
rows, and each partition's numbers are offset by the row counts of the partitions before it (a
handful of numbers collected on the driver). A window ordered over every key (Spark's row_number
without a partition) would pull all of a night's new keys into one task.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def new_ids(keys: DataFrame, existing: DataFrame, key: str, idx: str, cache=None, partitions: int = 0) -> DataFrame:
    """Rows of `keys` (one per key, any other columns kept) whose key is not in `existing`, with idx.

    `existing` has columns key and idx; `cache` (e.g. a jobs.core.frames.CacheScope) keeps the
    partitioned new keys between the count and the numbering, so both see the same partitions;
    `partitions` (0: Spark's shuffle partitions) is the parallelism."""
    spark = keys.sparkSession
    n = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    fresh = (keys.join(existing.select(key), key, "left_anti").repartitionByRange(n, key)
             .withColumn("_part", F.spark_partition_id()))
    fresh = cache(fresh) if cache is not None else fresh.localCheckpoint()
    within = fresh.withColumn("_n", F.row_number().over(Window.partitionBy("_part").orderBy(key)))
    counts = {r["_part"]: r["count"] for r in fresh.groupBy("_part").count().collect()}
    start = existing.agg(F.coalesce(F.max(idx), F.lit(0))).first()[0]
    offsets, total = [], start
    for part in sorted(counts):
        offsets.append((part, total))
        total += counts[part]
    offset_table = spark.createDataFrame(offsets or [(0, start)], "_part int, _before long")
    return (within.join(F.broadcast(offset_table), "_part")
            .withColumn(idx, (F.col("_before") + F.col("_n")).cast("int"))
            .drop("_part", "_n", "_before"))
