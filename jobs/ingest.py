"""ingest: one date's raw log files into bronze.listens, a row per line with its lineage.

Raw files for date D and format F live under `<raw_path>/<F>/date=<D>/`. Every line becomes one
bronze row as read (no parsing here: a line the cleaner refuses must still be kept), with the file
it came from and its 1-based line number. Line numbers are computed without funnelling a file
through one task: each split of a file numbers its own lines in read order, and the splits are
offset by the line counts of the splits before them. The rows are MERGEd on (date, file, line), so
ingesting the same file again adds nothing. The day's feedback files, when there are any, go to
silver.feedback (jobs.feedback) in the same run (or alone with --format feedback-jsonl).
"""
from __future__ import annotations

import datetime as dt
import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs import delta_io
from jobs.config import Config, join_path
from jobs.errors import ConfigError, InputError
from jobs.tables import BRONZE_LISTENS
from udfs.parse import PARSERS

log = logging.getLogger("setlist.ingest")


def raw_dir(cfg: Config, fmt: str, day: dt.date) -> str:
    return join_path(cfg.raw_path, fmt, f"date={day.isoformat()}")


def _path_exists(spark: SparkSession, path: str) -> bool:
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


def read_raw(spark: SparkSession, path: str, fmt: str, day: dt.date) -> DataFrame:
    """The lines of every file under path as bronze rows for `day`."""
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


def _formats_to_ingest(spark: SparkSession, cfg: Config, day: dt.date, fmt: str | None) -> list[str]:
    from jobs.feedback import FEEDBACK_FORMAT
    if fmt == FEEDBACK_FORMAT:
        return []
    if fmt is not None:
        if fmt not in PARSERS:
            raise ConfigError(f"--format {fmt}: not one of {', '.join(PARSERS)}")
        if not _path_exists(spark, raw_dir(cfg, fmt, day)):
            raise InputError(f"raw input path does not exist: {raw_dir(cfg, fmt, day)} (conf key raw_path)")
        return [fmt]
    present = [f for f in cfg.ingest.formats if _path_exists(spark, raw_dir(cfg, f, day))]
    if not present:
        wanted = ", ".join(raw_dir(cfg, f, day) for f in cfg.ingest.formats)
        raise InputError(f"no raw input for {day}: none of {wanted} exists (conf keys raw_path, ingest.formats)")
    return present


def run(spark: SparkSession, cfg: Config, day: dt.date, fmt: str | None = None) -> dict:
    """Ingest date `day` (one format, or every configured format present). Returns row counts."""
    formats = _formats_to_ingest(spark, cfg, day, fmt)
    table = delta_io.ensure(spark, cfg, BRONZE_LISTENS)
    summary = {}
    for f in formats:
        path = raw_dir(cfg, f, day)
        log.info("ingest %s: reading %s", day, path)
        rows = delta_io.conform(read_raw(spark, path, f, day), BRONZE_LISTENS)
        before = _version(table)
        (table.alias("t")
         .merge(rows.alias("s"),
                f"t.ingest_date = DATE'{day.isoformat()}' AND t.ingest_date = s.ingest_date "
                "AND t.source_file = s.source_file AND t.line_number = s.line_number")
         .whenNotMatchedInsertAll()
         .execute())
        if _version(table) > before:
            metrics = _last_commit_metrics(table)
            inserted, read = int(metrics["numTargetRowsInserted"]), int(metrics["numSourceRows"])
        else:  # Delta commits nothing when a MERGE inserts nothing: every line was there already
            inserted, read = 0, rows.count()
        summary[f] = {"read": read, "inserted": inserted, "already_ingested": read - inserted}
        log.info("ingest %s %s: %d lines read, %d new rows in %s, %d already ingested",
                 day, f, read, inserted, BRONZE_LISTENS.full_name, read - inserted)
    if fmt is None or not formats:
        from jobs import feedback
        counts = feedback.run(spark, cfg, day)
        if counts is not None:
            summary[feedback.FEEDBACK_FORMAT] = counts
        elif not formats:
            raise InputError(f"raw input path does not exist: {feedback.raw_dir_of(cfg, day)} (conf key raw_path)")
    return summary


def _version(table: DeltaTable) -> int:
    return table.history(1).select("version").first()["version"]


def _last_commit_metrics(table: DeltaTable) -> dict:
    row = table.history(1).select("operationMetrics").first()
    return dict(row["operationMetrics"] or {}) if row else {}
