"""nightly: every stage for run date D, in order, resumable.

ingest -> clean -> embed -> cluster -> als -> train -> recommend -> evaluate. Each stage's outcome
is a row of gold.runs (stage, date, status, start, end, row counts as JSON, error). A stage that
already succeeded for D is skipped unless --force, so re-running after a failure resumes at the
failed stage. Model stages follow their cadence (nightly.<stage>_every_days): when the last
successful run is more recent than that, the stage is recorded as `reused` and later stages use the
latest model. The run stops at the first failure; its exit code is the failed stage's. A one-screen
summary ends the run.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Callable

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import als, clean, cluster, delta_io, embed, evaluate, ingest, recommend, train
from jobs.config import Config
from jobs.errors import NotEnoughHistory
from jobs.tables import ALL_TABLES, GOLD_RUNS

log = logging.getLogger("setlist.nightly")

STAGES: dict[str, Callable] = {
    "ingest": lambda spark, cfg, day: ingest.run(spark, cfg, day),
    "clean": clean.run,
    "embed": embed.run,
    "cluster": cluster.run,
    "als": als.run,
    "train": lambda spark, cfg, day: train.run(spark, cfg, day),
    "recommend": recommend.run,
    "evaluate": evaluate.run,
}
DONE = ("succeeded", "reused", "waiting_for_history")


def _record(spark: SparkSession, cfg: Config, row: dict) -> None:
    table = delta_io.ensure(spark, cfg, GOLD_RUNS)
    frame = delta_io.conform(spark.createDataFrame([row], GOLD_RUNS.schema), GOLD_RUNS)
    (table.alias("t").merge(frame.alias("s"), "t.run_date = s.run_date AND t.stage = s.stage")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())


def _json(value) -> str:
    def default(obj):
        return obj.isoformat() if isinstance(obj, (dt.date, dt.datetime)) else str(obj)
    if isinstance(value, dict) and "ranks" in value:  # train: keep the summary, not every rank's detail
        value = {k: v for k, v in value.items() if k != "ranks"}
    return json.dumps(value, default=default, sort_keys=True)[:4000]


def _every(cfg: Config, stage: str) -> int:
    return getattr(cfg.nightly, f"{stage}_every_days", 1)


def run(spark: SparkSession, cfg: Config, day: dt.date, force: bool = False) -> dict:
    delta_io.ensure(spark, cfg, GOLD_RUNS)
    history = delta_io.read(spark, cfg, GOLD_RUNS).where(F.col("status").isin(*DONE))
    committed = {r["stage"] for r in history.where(F.col("run_date") == F.lit(day)).collect()}
    last_trained = {r["stage"]: r["d"] for r in history.where(
        (F.col("status") == "succeeded") & (F.col("run_date") < F.lit(day))).groupBy("stage")
        .agg(F.max("run_date").alias("d")).collect()}
    outcome: dict[str, str] = {}
    for stage, fn in STAGES.items():
        if stage in committed and not force:
            outcome[stage] = "skipped (already committed)"
            continue
        last = last_trained.get(stage)
        if last is not None and (day - last).days < _every(cfg, stage) and not force:
            now = dt.datetime.now(dt.timezone.utc)
            _record(spark, cfg, {"run_date": day, "stage": stage, "status": "reused", "started_at": now,
                                 "finished_at": now, "rows": json.dumps({"model_of": last.isoformat()}), "error": None})
            outcome[stage] = f"reused (model of {last})"
            continue
        started, clock = dt.datetime.now(dt.timezone.utc), time.monotonic()
        log.info("nightly %s: %s ...", day, stage)
        try:
            result = fn(spark, cfg, day)
        except NotEnoughHistory as exc:
            log.warning("nightly %s: %s waits for more history: %s", day, stage, exc)
            _record(spark, cfg, {"run_date": day, "stage": stage, "status": "waiting_for_history",
                                 "started_at": started, "finished_at": dt.datetime.now(dt.timezone.utc),
                                 "rows": None, "error": str(exc)[:2000]})
            outcome[stage] = "waiting for history (later stages use what exists)"
            continue
        except Exception as exc:
            _record(spark, cfg, {"run_date": day, "stage": stage, "status": "failed", "started_at": started,
                                 "finished_at": dt.datetime.now(dt.timezone.utc), "rows": None,
                                 "error": f"{type(exc).__name__}: {exc}"[:2000]})
            outcome[stage] = f"FAILED: {exc}"
            print(summary_table(day, outcome), flush=True)
            raise
        _record(spark, cfg, {"run_date": day, "stage": stage, "status": "succeeded", "started_at": started,
                             "finished_at": dt.datetime.now(dt.timezone.utc), "rows": _json(result), "error": None})
        outcome[stage] = f"succeeded in {time.monotonic() - clock:.0f}s"
    if cfg.catalog.database:
        gold = tuple(t for t in ALL_TABLES if t.layer == "gold")
        outcome["catalog"] = "registered " + ", ".join(delta_io.register(spark, cfg, gold))
    print(summary_table(day, outcome), flush=True)
    return outcome


def summary_table(day: dt.date, outcome: dict[str, str]) -> str:
    lines = [f"setlist nightly {day}"]
    for stage in STAGES:
        lines.append(f"  {stage:<10} {outcome.get(stage, 'not run')}")
    if "catalog" in outcome:
        lines.append(f"  {'catalog':<10} {outcome['catalog']}")
    return "\n".join(lines)
