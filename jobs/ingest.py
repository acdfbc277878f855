"""ingest: one date's raw log files into bronze.listens, a row per line with its lineage; the date's
feedback into silver.feedback.

Raw files for date D and format F live under `<raw_path>/<F>/date=<D>/` (jobs.core.rawfiles): every
entry there is read or reported as skipped with its reason, and a configured format without a folder
for D is reported as missing. Every listen line becomes one bronze row as read (no parsing here: a
line the cleaner refuses must still be kept; bytes that are not UTF-8 are kept as base64 beside a
readable version), with the file it came from and its 1-based line number. The rows are MERGEd on
(date, file, line, content): ingesting the same file again adds nothing, and a re-delivered file
with changed content (a half-written last line completed, a corrected line) adds its new and changed
lines, counted, beside the versions they replace (clean reads the newest). Feedback lines (like, dislike, skip;
optional: a day without a feedback folder has none) are parsed by the listens' own field rules
(udfs.parse, udfs.quality) into silver.feedback, refused ones into silver.quarantine (stage
`ingest`); D's rows of both are replaced on a rerun.
"""
from __future__ import annotations

import datetime as dt
import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.erasure import erasure_filter, split_erased
from jobs.core.errors import ConfigError, InputError
from jobs.core.frames import CacheScope
from jobs.core.rawfiles import Discovery, discover, has_feedback_folder, path_exists, raw_dir, read_lines
from jobs.core.tables import BRONZE_LISTENS, SILVER_FEEDBACK, SILVER_QUARANTINE
from udfs.formats import FEEDBACK_JSONL, LISTEN_FORMATS
from udfs.identity import with_track_id
from udfs.parse import logged_user, parse_feedback
from udfs.quality import FEEDBACK_REASONS, quarantine_reason

log = logging.getLogger("setlist.ingest")


def run(spark: SparkSession, cfg: Config, day: dt.date, fmt: str | None = None) -> dict:
    """Ingest date `day` (one format, or every configured format present). Returns row counts."""
    formats = formats_to_ingest(spark, cfg, day, fmt)
    summary = {f: ingest_listens(spark, cfg, day, f) for f in formats}
    missing = [f for f in (cfg.ingest.formats if fmt is None else []) if f not in formats]
    if missing:
        summary["missing_formats"] = missing
        log.warning("ingest %s: no folder for format(s) %s (%s)", day, ", ".join(missing),
                    ", ".join(raw_dir(cfg, f, day) for f in missing))
    if fmt in (None, FEEDBACK_JSONL) and (has_feedback_folder(cfg) or fmt == FEEDBACK_JSONL):
        if not has_feedback_folder(cfg):
            raise ConfigError(f"--format {FEEDBACK_JSONL}: ingest.layout {cfg.ingest.layout!r} has no {{format}}, "
                              f"so feedback has no folder of its own")
        feedback = raw_dir(cfg, FEEDBACK_JSONL, day)
        if path_exists(spark, feedback):
            summary[FEEDBACK_JSONL] = ingest_feedback(spark, cfg, day)
        elif fmt == FEEDBACK_JSONL:
            raise InputError(f"raw input path does not exist: {feedback} (conf key raw_path)")
    return summary


def formats_to_ingest(spark: SparkSession, cfg: Config, day: dt.date, fmt: str | None) -> list[str]:
    """The listen formats to read: `fmt` (which must exist), or every configured one present."""
    if fmt == FEEDBACK_JSONL:
        return []
    if fmt is not None:
        if fmt not in LISTEN_FORMATS:
            raise ConfigError(f"--format {fmt}: not one of {', '.join((*LISTEN_FORMATS, FEEDBACK_JSONL))}")
        if not path_exists(spark, raw_dir(cfg, fmt, day)):
            raise InputError(f"raw input path does not exist: {raw_dir(cfg, fmt, day)} (conf key raw_path)")
        return [fmt]
    present = [f for f in cfg.ingest.formats if path_exists(spark, raw_dir(cfg, f, day))]
    feedback = has_feedback_folder(cfg) and path_exists(spark, raw_dir(cfg, FEEDBACK_JSONL, day))
    if not present and not feedback:
        wanted = ", ".join(raw_dir(cfg, f, day) for f in cfg.ingest.formats)
        raise InputError(f"no raw input for {day}: none of {wanted} exists (conf keys raw_path, ingest.formats)")
    return present


def discovered(spark: SparkSession, cfg: Config, day: dt.date, fmt: str) -> Discovery:
    path = raw_dir(cfg, fmt, day)
    found = discover(spark, path, cfg.raw_path)
    log.info("ingest %s: %s: %d file(s) to read, %d skipped", day, path, len(found.files), len(found.skipped))
    for entry in found.skipped:
        log.warning("ingest %s: skipped %s: %s", day, entry["file"], entry["reason"])
    return found


def ingest_listens(spark: SparkSession, cfg: Config, day: dt.date, fmt: str) -> dict:
    found = discovered(spark, cfg, day, fmt)
    counts = {"files": len(found.files), "skipped": found.skipped}
    if not found.files:
        return {"read": 0, "inserted": 0, "already_ingested": 0, "erased": 0} | counts
    table = delta_io.ensure(spark, cfg, BRONZE_LISTENS)
    lines = delta_io.conform(read_lines(spark, found.files, fmt, day), BRONZE_LISTENS)
    rows, erased = without_erased(spark, cfg, lines)
    erased_lines = 0 if erased is None else erased.count()
    before = _version(table)
    (table.alias("t")
     .merge(rows.alias("s"),
            f"t.ingest_date = {delta_io.sql_literal(day)} AND t.ingest_date = s.ingest_date "
            "AND t.source_file = s.source_file AND t.line_number = s.line_number "
            "AND t.raw = s.raw AND t.raw_base64 <=> s.raw_base64")
     .whenNotMatchedInsertAll()
     .execute())
    if _version(table) > before:
        metrics = _last_commit_metrics(table)
        inserted, read = int(metrics["numTargetRowsInserted"]), int(metrics["numSourceRows"])
    else:  # Delta commits nothing when a MERGE inserts nothing: every line was there already
        inserted, read = 0, rows.count()
    read += erased_lines
    log.info("ingest %s %s: %d lines read, %d new or changed rows in %s, %d already ingested, %d of erased users "
             "dropped", day, fmt, read, inserted, BRONZE_LISTENS.full_name, read - inserted - erased_lines,
             erased_lines)
    return {"read": read, "inserted": inserted, "already_ingested": read - inserted - erased_lines,
            "erased": erased_lines} | counts


def feedback_events(lines: DataFrame, day: dt.date, ts_floor: dt.date, unicode_form: str) -> DataFrame:
    """Numbered raw feedback lines into feedback columns plus `reason` (null for a good line)."""
    parsed = parse_feedback(lines)
    return with_track_id(parsed.withColumn("reason", quarantine_reason(day, ts_floor, FEEDBACK_REASONS)),
                         unicode_form)


def without_erased(spark: SparkSession, cfg: Config, lines: DataFrame) -> tuple[DataFrame, DataFrame | None]:
    """(raw lines of users not erased, lines of erased users or None when nobody was ever erased),
    each line's user read leniently from its text: a user erased by forget-user never comes back,
    not even from re-delivered old raw files."""
    kept, erased = split_erased(lines.withColumn("_user", logged_user(F.col("raw"), F.col("format"))), "_user",
                                erasure_filter(spark, cfg))
    return kept.drop("_user"), erased


def ingest_feedback(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    found = discovered(spark, cfg, day, FEEDBACK_JSONL)
    if not found.files:
        return {"feedback": 0, "quarantined": 0, "files": 0, "skipped": found.skipped}
    lines = read_lines(spark, found.files, FEEDBACK_JSONL, day)
    with CacheScope() as cache:
        lines, _ = without_erased(spark, cfg, lines)
        parsed = cache(feedback_events(lines, day, cfg.clean.ts_floor, cfg.clean.unicode_form))
        good, bad = parsed.where(F.col("reason").isNull()), parsed.where(F.col("reason").isNotNull())
        # counted as they are written (delta_io._replace measures its rows), not by queries of their own
        counts = {"feedback": delta_io.replace_date(good, cfg, SILVER_FEEDBACK, "ingest_date", day)["rows"],
                  "quarantined": delta_io.replace_partition(bad, cfg, SILVER_QUARANTINE, ingest_date=day,
                                                            stage="ingest")["rows"],
                  "files": len(found.files), "skipped": found.skipped}
    log.info("ingest %s: %d feedback events into %s, %d quarantined", day, counts["feedback"],
             SILVER_FEEDBACK.full_name, counts["quarantined"])
    return counts


def _version(table: DeltaTable) -> int:
    return table.history(1).select("version").first()["version"]


def _last_commit_metrics(table: DeltaTable) -> dict:
    row = table.history(1).select("operationMetrics").first()
    return dict(row["operationMetrics"] or {}) if row else {}
