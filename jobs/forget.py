"""forget-user: the right to erasure. Every record of the given users leaves every table and file of
the warehouse, and stays out.

`forget-user --user ID [--user ID ...]`:
1. records each erasure in silver.erasures (append-only): a salted SHA-256 of the id and the time,
   never the id (jobs.core.erasure); ingest and clean drop every later record of a listed user, so
   re-ingesting old raw files cannot bring one back;
2. deletes the users' rows, by MERGE with the rows found (a join on the hash, so that no id is ever
   a literal of a query, a Delta commit or a Spark event log) from every table that holds them:
   bronze.listens and silver.quarantine (raw lines of every format, malformed ones included: the
   user read leniently, udfs.parse.logged_user),
   silver.plays, silver.feedback, gold.user_segments, gold.recommendations and their staged copy (by
   user id),
   gold.sequences, gold.candidates, gold.als_user_factors (by user_idx), silver.users last;
3. rewrites the userFactors of every saved ALS model without them, removes ALS checkpoints, and
   removes Spark event logs, reports and scratch files that name them;
4. purges: deletion vectors materialised (REORG ... APPLY (PURGE)) where a table uses them, then
   VACUUM, listing every folder, with maintain.retain_hours. Until that retention has passed the
   old files stay readable by time travel; with maintain.retain_hours 0 (and
   maintain.allow_short_retention) nothing remains. Raw files outside the warehouse are the
   operator's to delete.
Steps 2 and 4 work on maintain.tables_at_once tables at a time (silver.users after the others).
"""
from __future__ import annotations

import json
import logging
import os
import shutil

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.core import delta_io
from jobs.core.config import Config, join_path
from jobs.core.erasure import salt
from jobs.core.errors import ConfigError
from jobs.core.paths import location
from jobs.core.records import now
from jobs.core.tables import (BRONZE_LISTENS, GOLD_ALS_USER_FACTORS, GOLD_CANDIDATES, GOLD_MODELS, GOLD_RECOMMENDATIONS,
                              GOLD_SEQUENCES, GOLD_STAGED_RECOMMENDATIONS, GOLD_USER_SEGMENTS, SILVER_ERASURES,
                              SILVER_FEEDBACK, SILVER_PLAYS, SILVER_QUARANTINE, SILVER_USERS, Table)
from udfs.erasure import user_hash, user_hash_of
from udfs.parse import logged_user
from udfs.rows import rows_frame

log = logging.getLogger("setlist.forget")

BY_USER_ID = (SILVER_PLAYS, SILVER_FEEDBACK, GOLD_USER_SEGMENTS, GOLD_RECOMMENDATIONS, GOLD_STAGED_RECOMMENDATIONS)
BY_USER_IDX = (GOLD_SEQUENCES, GOLD_CANDIDATES, GOLD_ALS_USER_FACTORS)
RAW_LINE_KEYS = {BRONZE_LISTENS.full_name: ("ingest_date", "format", "source_file", "line_number", "raw"),
                 SILVER_QUARANTINE.full_name: ("ingest_date", "stage", "format", "source_file", "line_number", "raw")}


def run(spark: SparkSession, cfg: Config, user_ids: list[str]) -> dict:
    if not user_ids or any(not u.strip() for u in user_ids):
        raise ConfigError("forget-user: give each user as --user ID (a non-empty id as it appears in the raw logs)")
    key = salt(cfg, create=True)
    hashes = sorted({user_hash_of(u, key) for u in user_ids})
    record(spark, cfg, hashes)
    wanted = rows_frame(spark, [(h,) for h in hashes], StructType([StructField("user_hash", StringType())]))
    removed: dict[str, int] = {}
    doomed_idx = matching(delta_io.read_or_empty(spark, cfg, SILVER_USERS), "user_id", wanted, key).select(
        "user_idx").distinct().cache()
    try:
        def erase(table: Table) -> int:
            if table.full_name in RAW_LINE_KEYS:
                return delete_rows(spark, cfg, table, raw_lines_of(spark, cfg, table, wanted, key),
                                   RAW_LINE_KEYS[table.full_name])
            if table in BY_USER_IDX:
                return delete_rows(spark, cfg, table, doomed_idx, ("user_idx",))
            users = matching(delta_io.read(spark, cfg, table).select("user_id").distinct(), "user_id", wanted, key)
            return delete_rows(spark, cfg, table, users, ("user_id",))

        holding = [t for t in (BRONZE_LISTENS, SILVER_QUARANTINE, *BY_USER_ID, *BY_USER_IDX)
                   if delta_io.exists(spark, cfg, t)]
        # one table's delete never needs another's; silver.users, which maps the users to their
        # user_idx, goes after all of them, so that a rerun after a crash still finds every row
        counts = delta_io.each_table(spark, holding, erase, cfg.maintain.tables_at_once)
        removed |= {table.full_name: count for table, count in zip(holding, counts)}
        removed["models.als.userFactors"] = rewrite_als_models(spark, cfg, doomed_idx)
        users = matching(delta_io.read_or_empty(spark, cfg, SILVER_USERS), "user_id", wanted, key)
        removed[SILVER_USERS.full_name] = delete_rows(spark, cfg, SILVER_USERS, users.select("user_id"), ("user_id",))
    finally:
        doomed_idx.unpersist()
    files = remove_files_naming(cfg, user_ids)
    purged = purge(spark, cfg)
    summary = {"users": len(hashes), "rows_removed": removed, "files_removed": files, "purged_tables": purged,
               "retain_hours": cfg.maintain.retain_hours}
    log.info("forget-user: %s", summary)
    print(f"forget-user: {len(hashes)} user(s) erased; rows removed {json.dumps(removed)}; {files} file(s) naming "
          f"them removed; {len(purged)} table(s) vacuumed with a retention of {cfg.maintain.retain_hours:g} hours "
          f"(time travel keeps the old files until then; raw files outside the warehouse are yours to delete)",
          flush=True)
    return summary


def record(spark: SparkSession, cfg: Config, hashes: list[str]) -> None:
    """Append the erasures (a user erased twice keeps the first record)."""
    target = delta_io.ensure(spark, cfg, SILVER_ERASURES)
    rows = rows_frame(spark, [(h, now()) for h in hashes], SILVER_ERASURES.schema)
    target.alias("t").merge(rows.alias("s"), "t.user_hash = s.user_hash").whenNotMatchedInsertAll().execute()


def matching(frame: DataFrame, column: str, wanted: DataFrame, key: str) -> DataFrame:
    """Rows of `frame` whose user (`column`) hashes to one of `wanted`'s."""
    return frame.join(F.broadcast(wanted), user_hash(F.col(column), key) == F.col("user_hash"), "left_semi")


def raw_lines_of(spark: SparkSession, cfg: Config, table: Table, wanted: DataFrame, key: str) -> DataFrame | None:
    """The raw lines of `table` (bronze or quarantine) logged by the users, broken lines included."""
    if not delta_io.exists(spark, cfg, table):
        return None
    lines = delta_io.read(spark, cfg, table)
    return matching(lines.withColumn("_user", logged_user(F.col("raw"), F.col("format"))), "_user", wanted, key)


def delete_rows(spark: SparkSession, cfg: Config, table: Table, doomed: DataFrame | None, keys: tuple[str, ...]) -> int:
    """Delete the rows of `table` matching `doomed` on `keys` (one MERGE, one commit); rows deleted."""
    if doomed is None or not delta_io.exists(spark, cfg, table):
        return 0
    source = doomed.select(*keys).distinct()
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    target = DeltaTable.forPath(spark, table.path(cfg))
    before = target.history(1).first()["version"]
    target.alias("t").merge(source.alias("s"), condition).whenMatchedDelete().execute()
    last = target.history(1).first()
    if last["version"] == before:
        return 0
    return int((last["operationMetrics"] or {}).get("numTargetRowsDeleted", 0))


def rewrite_als_models(spark: SparkSession, cfg: Config, doomed_idx: DataFrame) -> int:
    """Rewrite the userFactors of every saved ALS model folder without the users; folders rewritten."""
    root = location(cfg, "models", "als")
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    rewritten = 0
    for folder in model_folders(spark, cfg, root):
        factors = join_path(folder, "userFactors")
        path = jvm.org.apache.hadoop.fs.Path(factors)
        fs = path.getFileSystem(conf)
        if not fs.exists(path):
            continue
        current = spark.read.parquet(factors)
        if current.join(doomed_idx, current["id"] == doomed_idx["user_idx"], "left_semi").isEmpty():
            continue
        staged = factors + ".erasing"
        current.join(doomed_idx, current["id"] == doomed_idx["user_idx"], "left_anti").write.mode("overwrite").parquet(
            staged)
        fs.delete(path, True)
        fs.rename(jvm.org.apache.hadoop.fs.Path(staged), path)
        rewritten += 1
    return rewritten


def model_folders(spark: SparkSession, cfg: Config, root: str) -> list[str]:
    """Every ALS run folder: those gold.models names, any other under <warehouse>/models/als, and the
    copies MLflow keeps as run artifacts under <warehouse>/_mlflow/artifacts."""
    folders = set()
    tracked = join_path(cfg.warehouse, "_mlflow", "artifacts")
    if "://" not in tracked and os.path.isdir(tracked):
        for folder, dirs, _ in os.walk(tracked):
            if "userFactors" in dirs:
                folders.add(folder)
    if delta_io.exists(spark, cfg, GOLD_MODELS):
        folders |= {r["path"] for r in delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'als'").collect()
                    if r["path"]}
    if "://" not in root and os.path.isdir(root):
        for day in os.listdir(root):
            for run_dir in os.listdir(os.path.join(root, day)):
                folders.add(os.path.join(root, day, run_dir))
    return sorted(folders)


def remove_files_naming(cfg: Config, user_ids: list[str]) -> int:
    """Remove the files outside the tables that name a user: Spark event logs (a whole log when one
    of its files does), reports, and ALS checkpoints (factor blocks). Local warehouses; on a URI
    these folders are left to the storage's lifecycle rules."""
    if "://" in cfg.warehouse:
        return 0
    needles = [n for u in user_ids for n in {u.encode("utf-8"), json.dumps(u)[1:-1].encode("utf-8")}]
    removed = 0
    checkpoints = location(cfg, "checkpoints", "als")
    if os.path.isdir(checkpoints):
        shutil.rmtree(checkpoints)
        removed += 1
    for folder in (join_path(cfg.warehouse, "_spark_events"), location(cfg, "reports"), location(cfg, "scratch")):
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            if _names(path, needles):
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
                removed += 1
    return removed


def _names(path: str, needles: list[bytes]) -> bool:
    """True when a file (or any file under a folder) holds one of the needles (Parquet decoded)."""
    if os.path.isdir(path):
        return any(_names(os.path.join(path, name), needles) for name in os.listdir(path))
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        text = str(pq.ParquetFile(path).read().to_pylist()).encode("utf-8")
    else:
        with open(path, "rb") as handle:
            text = handle.read()
    return any(n in text for n in needles)


def purge(spark: SparkSession, cfg: Config) -> list[str]:
    """Materialise deletion vectors and VACUUM every table that held the users' rows."""
    conf = cfg.maintain
    if conf.retain_hours < 168:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    tables = [t for t in (BRONZE_LISTENS, SILVER_QUARANTINE, *BY_USER_ID, *BY_USER_IDX, SILVER_USERS)
              if delta_io.exists(spark, cfg, t)]

    def purged(table: Table) -> str:
        ref = delta_io.table_ref(cfg, table)
        if delta_io.properties(spark, cfg, table).get("delta.enableDeletionVectors") == "true":
            spark.sql(f"REORG TABLE {ref} APPLY (PURGE)")
        delta_io.vacuum(spark, cfg, table, conf.retain_hours, "full")
        return table.full_name

    return delta_io.each_table(spark, tables, purged, conf.tables_at_once)
