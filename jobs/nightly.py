"""nightly: every stage for run date D, in order, resumable.

ingest -> clean -> embed -> cluster -> als -> train -> recommend -> evaluate -> maintain. Each stage's outcome
is a row of gold.runs (stage, date, status, start, end, row counts as JSON, error). A stage that
already succeeded for D is skipped unless --force, so re-running after a failure resumes at the
failed stage. Model stages follow their cadence (nightly.<stage>_every_days): when the last
successful run is more recent than that, the stage is recorded as `reused` and later stages use the
latest model. The run stops at the first failure; its exit code is the failed stage's. A one-screen
summary ends the run.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Callable

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import als, clean, cluster, embed, evaluate, ingest, maintain, recommend, train
from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.errors import NotEnoughHistory
from jobs.core.records import now, record_run
from jobs.core.tables import ALL_TABLES, GOLD_RUNS

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
    "maintain": maintain.run,
}
DONE = ("succeeded", "reused", "waiting_for_history")


def run(spark: SparkSession, cfg: Config, day: dt.date, force: bool = False) -> dict:
    delta_io.ensure(spark, cfg, GOLD_RUNS)
    runs = delta_io.read(spark, cfg, GOLD_RUNS).where(F.col("status").isin(*DONE))
    committed = {r["stage"] for r in runs.where(F.col("run_date") == F.lit(day)).collect()}
    last_trained = {r["stage"]: r["d"] for r in runs.where(
        (F.col("status") == "succeeded") & (F.col("run_date") < F.lit(day))).groupBy("stage")
        .agg(F.max("run_date").alias("d")).collect()}
    outcome: dict[str, str] = {}
    for stage, fn in STAGES.items():
        if stage in committed and not force:
            outcome[stage] = "skipped (already committed)"
            continue
        last = last_trained.get(stage)
        if last is not None and (day - last).days < getattr(cfg.nightly, f"{stage}_every_days", 1) and not force:
            record_run(spark, cfg, day, stage, "reused", now(), {"model_of": last.isoformat()})
            outcome[stage] = f"reused (model of {last})"
            continue
        started, clock = now(), time.monotonic()
        log.info("nightly %s: %s ...", day, stage)
        try:
            result = fn(spark, cfg, day)
        except NotEnoughHistory as exc:
            log.warning("nightly %s: %s waits for more history: %s", day, stage, exc)
            record_run(spark, cfg, day, stage, "waiting_for_history", started, error=str(exc))
            outcome[stage] = "waiting for history (later stages use what exists)"
            continue
        except Exception as exc:
            record_run(spark, cfg, day, stage, "failed", started, error=f"{type(exc).__name__}: {exc}")
            outcome[stage] = f"FAILED: {exc}"
            print(summary_table(day, outcome), flush=True)
            raise
        # train's result carries every rank's detail: the summary is enough for the record
        record_run(spark, cfg, day, stage, "succeeded", started, {k: v for k, v in result.items() if k != "ranks"})
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
