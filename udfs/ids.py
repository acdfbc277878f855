"""Stable integer ids: keys seen for the first time get the next integers after the largest id
given so far, in key order, so that the same night always numbers the same keys the same way.

A night with few new keys (fewer than `one_task_below`, the usual case once a catalogue exists)
numbers them in one ordered window: one task, no sampling. A night with many (the first nights of a
large catalogue) numbers them in parallel: the new keys are range-partitioned by key, each
partition numbers its own rows, and each partition's numbers are offset by the row counts of the
partitions before it (a handful of numbers collected on the driver); a window ordered over every key
would pull them all into one task. Both give the same numbers.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StructField, StructType

from udfs.rows import rows_frame

ONE_TASK_BELOW = 100_000
OFFSETS = StructType([StructField("_part", IntegerType()), StructField("_before", LongType())])


def new_ids(keys: DataFrame, existing: DataFrame, key: str, idx: str, cache=None, partitions: int = 0,
            one_task_below: int = ONE_TASK_BELOW) -> DataFrame:
    """Rows of `keys` (one per key, any other columns kept) whose key is not in `existing`, with idx.

    `existing` has columns key and idx; `cache` (e.g. a jobs.core.frames.CacheScope) keeps the new
    keys between their count and their numbering, so both see the same rows (without it they are
    checkpointed locally); `partitions` (0: Spark's shuffle partitions) is the parallelism of a large
    night; `one_task_below` the number of new keys under which one ordered window numbers them."""
    spark = keys.sparkSession
    keep = cache if cache is not None else (lambda frame: frame.localCheckpoint())
    fresh = keep(keys.join(existing.select(key), key, "left_anti"))
    start = existing.agg(F.coalesce(F.max(idx), F.lit(0))).first()[0]
    if fresh.count() < one_task_below:
        ordered = F.row_number().over(Window.orderBy(key))
        return fresh.withColumn(idx, (F.lit(start) + ordered).cast("int"))
    n = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    ranged = keep(fresh.repartitionByRange(n, key).withColumn("_part", F.spark_partition_id()))
    within = ranged.withColumn("_n", F.row_number().over(Window.partitionBy("_part").orderBy(key)))
    counts = {r["_part"]: r["count"] for r in ranged.groupBy("_part").count().collect()}
    offsets, total = [], start
    for part in sorted(counts):
        offsets.append((part, total))
        total += counts[part]
    offset_table = rows_frame(spark, offsets or [(0, start)], OFFSETS)
    return (within.join(F.broadcast(offset_table), "_part")
            .withColumn(idx, (F.col("_before") + F.col("_n")).cast("int"))
            .drop("_part", "_n", "_before"))
