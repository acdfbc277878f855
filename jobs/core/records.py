"""Bookkeeping tables, each with one writer here: gold.runs (a stage's outcome for a date),
gold.models (a trained model's row) and gold.metrics (metric rows of a stage for a date)."""
from __future__ import annotations

import datetime as dt
import json
import logging

from pyspark.sql import SparkSession

from jobs.core import delta_io, lease, tracking
from jobs.core.config import Config
from jobs.core.tables import GOLD_METRICS, GOLD_MODELS, GOLD_RUNS, Table

log = logging.getLogger("setlist.records")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def record_run(spark: SparkSession, cfg: Config, day: dt.date, stage: str, status: str, started_at: dt.datetime,
               counts: dict | None = None, error: str | None = None) -> None:
    """Upsert the gold.runs row of (run_date, stage) (appended when the key has no row and this
    process holds the warehouse's lease: _new_key). Bookkeeping never fails the run nor hides its real
    error: conflicts are retried (delta_io.upsert), anything else is logged and the run goes on."""
    row = {"run_date": day, "stage": stage, "status": status, "started_at": started_at, "finished_at": now(),
           "rows": None if counts is None else _json(counts), "error": None if error is None else error[:2000]}
    try:
        if _new_key(spark, cfg, GOLD_RUNS, "stage", day, stage):
            delta_io.append(spark, cfg, GOLD_RUNS, [row])
        else:
            delta_io.upsert(spark, cfg, GOLD_RUNS, [row], ("run_date", "stage"))
    except Exception:  # noqa: BLE001 - see above
        log.exception("could not record %s %s %s in %s", day, stage, status, GOLD_RUNS.full_name)


def record_model(spark: SparkSession, cfg: Config, day: dt.date, model: str, version: str, backend: str,
                 world_size: int, params: dict, metrics: dict, path: str, inputs: dict[str, int] | None = None) -> None:
    """Log the model to MLflow (jobs.core.tracking) and upsert its gold.models row of (model,
    run_date), the row that publishes it (appended when the key has no row and this process holds the
    warehouse's lease: _new_key). `inputs`: the Delta version of every table it read; with the
    parameters, they answer "which data and settings made this model" from either place."""
    inputs = inputs or {}
    run_id = tracking.log_model(cfg, day, model, version, params, metrics, path, inputs)
    params = params | {"inputs": inputs} | ({"tracking_run": run_id} if run_id else {})
    row = {"run_date": day, "model": model, "version": version, "backend": backend, "world_size": world_size,
           "params": _json(params, limit=None), "metrics": _json(metrics, limit=None), "path": path,
           "created_at": now()}
    if _new_key(spark, cfg, GOLD_MODELS, "model", day, model):
        delta_io.append(spark, cfg, GOLD_MODELS, [row])
    else:
        delta_io.upsert(spark, cfg, GOLD_MODELS, [row], ("model", "run_date"))


_KEYS_OF: dict[tuple[str, str, dt.date], set[str]] = {}  # (lease token, table, run date): its keys on that date


def known_keys(cfg: Config, table: Table, day: dt.date, keys: set[str]) -> None:
    """Hand _new_key the keys of `table` on `day` that the caller has just read under the warehouse's
    lease (the nightly reads the date's gold.runs stages before its first stage), so that it does not
    read them again."""
    token = lease.held(cfg)
    if token is not None:
        _KEYS_OF[(token, table.full_name, day)] = set(keys)


def _new_key(spark: SparkSession, cfg: Config, table: Table, column: str, day: dt.date, key: str) -> bool:
    """Whether `table` (gold.runs: column `stage`; gold.models: `model`) holds no row
    of (key, day) and this process is its only writer (it holds the warehouse's lease): the rows can
    then be appended (delta_io.append, one Spark job) instead of replacing the key's (three). The keys
    with a row on `day` are read once per lease, table and date (or handed over by known_keys), and
    every key written under the lease joins them."""
    token = lease.held(cfg)
    if token is None:
        return False
    if (token, table.full_name, day) not in _KEYS_OF:
        _KEYS_OF[(token, table.full_name, day)] = {r[column] for r in delta_io.small_rows(spark, cfg, table, day)
                                                   if r["run_date"] == day}
    present = _KEYS_OF[(token, table.full_name, day)]
    new = key not in present
    present.add(key)  # written, or perhaps written: any later row of this key replaces it
    return new


def latest_model(spark: SparkSession, cfg: Config, model: str, day: dt.date):
    """The gold.models row of `model` trained most recently on or before `day`, or None."""
    return latest_models(spark, cfg, (model,), day)[model]


def latest_models(spark: SparkSession, cfg: Config, models: tuple[str, ...], day: dt.date) -> dict:
    """{model: its gold.models row trained most recently on or before `day`, or None}, from one read
    of the table (delta_io.small_rows: its Delta log where it can, without a Spark job)."""
    found = dict.fromkeys(models)
    for row in delta_io.small_rows(spark, cfg, GOLD_MODELS, day):
        if row["model"] in found and (found[row["model"]] is None or row["run_date"] > found[row["model"]]["run_date"]):
            found[row["model"]] = row
    return found


def write_metrics(spark: SparkSession, cfg: Config, day: dt.date, stage: str, k: int,
                  results: dict[str, dict[str, float]], prefix: str = "") -> None:
    """Replace `stage`'s gold.metrics rows of `day` by one row per (model, metric) of results
    ({model: {metric: value, ..., "users": n}}); model names get `prefix`. The partition (day,
    stage) is appended (by delta-rs) when it holds no row and this process holds the warehouse's
    lease (delta_io.replace_partition_rows)."""
    rows = [{"run_date": day, "model": f"{prefix}{model}", "metric": metric, "k": k, "value": float(value),
             "users": int(values["users"]), "stage": stage}
            for model, values in results.items() for metric, value in values.items() if metric != "users"]
    delta_io.replace_partition_rows(spark, cfg, GOLD_METRICS, rows, run_date=day, stage=stage)


def _json(value, limit: int | None = 4000) -> str:
    def default(obj):
        return obj.isoformat() if isinstance(obj, (dt.date, dt.datetime)) else str(obj)
    text = json.dumps(value, default=default, sort_keys=True)
    return text if limit is None else text[:limit]


def input_versions(spark: SparkSession, cfg: Config, *tables) -> dict[str, int]:
    """{table: current Delta version} of the tables a model reads, for its lineage."""
    return {t.full_name: delta_io.version(spark, cfg, t) for t in tables if delta_io.exists(spark, cfg, t)}
