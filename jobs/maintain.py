"""maintain: table upkeep with Delta's own commands, and retention of the project's own files.

For every table of the warehouse, maintain.tables_at_once tables at a time: OPTIMIZE (compaction of
the small files each night's commits leave; no Z-ordering: the column readers filter on within a
date, user_id, is personal and has no file statistics, which a Z-order needs, so that no user id
reaches the transaction log), then VACUUM with maintain.retain_hours (never below Delta's safety
default of 168 hours unless maintain.allow_short_retention says so explicitly; set as each table's
delta.deletedFileRetentionDuration, which Delta 4.4 reads instead of a RETAIN clause), log-based
(`LITE`) or listing the folders (maintain.vacuum_mode). Then the project's own files: scratch
folders and LSTM checkpoints of run dates older than maintain.scratch_days before D, and superseded
model folders (every run folder of a model and date but the one gold.models publishes)
are removed (on a local or mounted warehouse; on a URI that is left to the storage's lifecycle rules).
Files and bytes of the warehouse are reported before and after.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time

from pyspark.sql import SparkSession

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.paths import location
from jobs.core.tables import ALL_TABLES, GOLD_MODELS, Table

log = logging.getLogger("setlist.maintain")

DELTA_MIN_RETENTION_HOURS = 168


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf = cfg.maintain
    local = "://" not in cfg.warehouse
    before = footprint(cfg.warehouse) if local else None
    retain = conf.retain_hours
    if retain < DELTA_MIN_RETENTION_HOURS:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    present = [table for table in ALL_TABLES if delta_io.exists(spark, cfg, table)]
    started, done = time.monotonic(), []

    def upkeep(table: Table) -> dict:
        optimized = spark.sql(f"OPTIMIZE {delta_io.table_ref(cfg, table)}")
        metrics = optimized.select("metrics.numFilesAdded", "metrics.numFilesRemoved").first()
        delta_io.vacuum(spark, cfg, table, retain, conf.vacuum_mode)
        done.append(table.full_name)
        elapsed = time.monotonic() - started
        log.info("maintain %s: %s optimized (%d files -> %d) and vacuumed; %d of %d tables in %.1f s, about %.0f s "
                 "left", day, table.full_name, int(metrics[1] or 0), int(metrics[0] or 0), len(done), len(present),
                 elapsed, elapsed / len(done) * (len(present) - len(done)))
        return {"files_added": int(metrics[0] or 0), "files_removed": int(metrics[1] or 0)}

    outcomes = delta_io.each_table(spark, present, upkeep, conf.tables_at_once)
    tables = {table.full_name: outcome for table, outcome in zip(present, outcomes)}
    if not local:  # OPTIMIZE and VACUUM work on any Delta path; the file pruning here is for folders
        log.info("maintain %s: %s optimized and vacuumed; scratch and model folders on a URI are left to the "
                 "storage's lifecycle rules", day, ", ".join(tables))
        return {"tables": tables, "retain_hours": retain}
    removed = prune_own_files(spark, cfg, day)
    after = footprint(cfg.warehouse)
    summary = {"before": before, "after": after, "tables": tables, "removed": removed, "retain_hours": retain}
    log.info("maintain %s: %d files / %d bytes -> %d files / %d bytes; removed %s", day, before["files"],
             before["bytes"], after["files"], after["bytes"], removed)
    return summary


def footprint(root: str) -> dict:
    """Files and bytes under a local folder."""
    files = size = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                size += os.lstat(os.path.join(folder, name)).st_size
                files += 1
            except OSError:
                continue
    return {"files": files, "bytes": size}


def prune_own_files(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    """Remove scratch and checkpoints of run dates before D - maintain.scratch_days, and model run
    folders that no gold.models row publishes."""
    cutoff = day - dt.timedelta(days=cfg.maintain.scratch_days)
    removed = {"scratch": 0, "checkpoints": 0, "models": 0}
    for kind in ("scratch", "checkpoints"):
        root = location(cfg, kind)
        for folder, dirs, _ in os.walk(root):
            for name in list(dirs):
                try:
                    when = dt.date.fromisoformat(name)
                except ValueError:
                    continue
                dirs.remove(name)
                if when < cutoff:
                    shutil.rmtree(os.path.join(folder, name))
                    removed[kind] += 1
    published = set()
    if delta_io.exists(spark, cfg, GOLD_MODELS):
        published = {os.path.normpath(r["path"]) for r in delta_io.read(spark, cfg, GOLD_MODELS).select("path").collect()}
    models = location(cfg, "models")
    for model in sorted(os.listdir(models)) if os.path.isdir(models) else []:
        for date_dir in sorted(os.listdir(os.path.join(models, model))):
            runs = os.path.join(models, model, date_dir)
            if not os.path.isdir(runs):
                continue
            for run_dir in sorted(os.listdir(runs)):
                path = os.path.normpath(os.path.join(runs, run_dir))
                if path not in published and os.path.isdir(path):
                    shutil.rmtree(path)
                    removed["models"] += 1
    return removed


