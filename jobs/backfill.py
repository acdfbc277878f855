"""backfill: a range of dates in one Spark application, for a history that arrives at once.

`backfill --from D1 --to D2` ingests and cleans every date from D1 to D2 in order (each date's
stages recorded in gold.runs and skipped when already committed, exactly as nightly does: a
backfill stopped at any point resumes where it stopped), then runs the model stages (embed,
cluster, als, train, rank, recommend, evaluate, maintain) only for the last `backfill.model_days`
dates, on their cadence (nightly.<stage>_every_days). With the default, the ranker of D2 finds
the candidates and outcomes of the days before it that it learns from. Progress after every date:
dates done / total, raw rows per second, the time left.
"""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import SparkSession

from jobs import nightly
from jobs.core.config import Config
from jobs.core.errors import ConfigError
from models.progress import Progress

log = logging.getLogger("setlist.backfill")

DATA_STAGES = ("ingest", "clean")


def dates_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def run(spark: SparkSession, cfg: Config, first: dt.date, last: dt.date, force: bool = False) -> dict:
    if last < first:
        raise ConfigError(f"backfill: --to {last} is before --from {first}")
    dates = dates_between(first, last)
    model_from = last - dt.timedelta(days=cfg.backfill.model_days - 1)
    progress = Progress(log, "backfill", total=len(dates), unit="dates")
    outcomes: dict[str, dict[str, str]] = {}
    log.info("backfill %s..%s: %d dates; models for the %d date(s) from %s", first, last, len(dates),
             min(cfg.backfill.model_days, len(dates)), max(model_from, first))
    for day in dates:
        stages = tuple(nightly.STAGES) if day >= model_from else DATA_STAGES
        results: dict = {}
        outcomes[day.isoformat()] = nightly.run_stages(spark, cfg, day, stages, force, results)
        progress.step(rows=nightly.work_rows("ingest", results.get("ingest", {})), what=str(day))
    summary = {"dates": len(dates), "rows": progress.rows, "seconds": round(progress.elapsed, 1),
               "model_dates": [d.isoformat() for d in dates if d >= model_from]}
    print(summary_table(first, last, outcomes, progress), flush=True)
    return summary


def summary_table(first: dt.date, last: dt.date, outcomes: dict[str, dict[str, str]], progress: Progress) -> str:
    lines = [f"setlist backfill {first}..{last}: {progress.line()}"]
    for day, outcome in outcomes.items():
        shown = "; ".join(f"{stage} {text}" for stage, text in outcome.items())
        lines.append(f"  {day}  {shown}")
    return "\n".join(lines)
