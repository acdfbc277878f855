"""Raw files: where a format's files for a date live, whether they are there, and their lines as
numbered rows with lineage.

Raw files for date D and format F live under `<raw_path>/<F>/date=<D>/`. Line numbers are computed
without funnelling a file through one task: each split of a file numbers its own lines in read
order, and the splits are offset by the line counts of the splits before them.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.core.config import Config, join_path


def raw_dir(cfg: Config, fmt: str, day: dt.date) -> str:
    return join_path(cfg.raw_path, fmt, f"date={day.isoformat()}")


def path_exists(spark: SparkSession, path: str) -> bool:
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs.exists(hpath)


def numbered_lines(lines: DataFrame) -> DataFrame:
    """Text rows (raw, source_file, _block, _order) with their 1-based line_number in the file.

    _block is the byte offset of the split a row was read from and _order a value increasing in
    read order within a split (monotonically_increasing_id taken right at the scan).
    """
    in_block = Window.partitionBy("source_file", "_block").orderBy("_order")
    numbered = lines.withColumn("_in_block", F.row_number().over(in_block))
    earlier_blocks = Window.partitionBy("source_file").orderBy("_block").rowsBetween(Window.unboundedPreceding, -1)
    offsets = (numbered.groupBy("source_file", "_block").agg(F.count("*").alias("_n"))
               .withColumn("_before", F.coalesce(F.sum("_n").over(earlier_blocks), F.lit(0)))
               .drop("_n"))
    return (numbered.join(offsets, ["source_file", "_block"])
            .withColumn("line_number", (F.col("_before") + F.col("_in_block")).cast("long"))
            .drop("_block", "_order", "_in_block", "_before"))


def read_lines(spark: SparkSession, path: str, fmt: str, day: dt.date) -> DataFrame:
    """The lines of every file under path as rows (ingest_date, format, source_file, line_number,
    raw, ingest_time)."""
    text = spark.read.option("recursiveFileLookup", "true").text(path)
    lines = text.select(
        F.col("value").alias("raw"),
        F.col("_metadata.file_path").alias("source_file"),
        F.col("_metadata.file_block_start").alias("_block"),
        F.monotonically_increasing_id().alias("_order"),
    )
    return (numbered_lines(lines)
            .withColumn("ingest_date", F.lit(day))
            .withColumn("format", F.lit(fmt))
            .withColumn("ingest_time", F.current_timestamp()))
