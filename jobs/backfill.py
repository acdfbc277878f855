"""backfill: a range of dates in one Spark application, for a history that arrives at once.

`backfill --from D1 --to D2` ingests and cleans every date from D1 to D2 in order (each date's
stages recorded in gold.runs and skipped when already committed, exactly as nightly does: a
backfill stopped at any point resumes where it stopped), then runs the model stages (embed,
cluster, als, train, rank, recommend, evaluate, maintain) only for the last `backfill.model_days`
dates, on their cadence (nightly.<stage>_every_days); with model_days 0, none (load a history, train
later). With the default, the ranker of D2 finds
the candidates and outcomes of the days before it that it learns from. Progress after every date:
dates done / total, raw rows per second, the time left (dates with the model stages and dates
without them each at their own pace; the model dates before the first of them is timed are named).
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


def model_dates(dates: list[dt.date], model_days: int) -> list[dt.date]:
    """The dates whose model stages run: the last `model_days` of the range."""
    return dates[len(dates) - min(model_days, len(dates)):] if model_days else []


def run(spark: SparkSession, cfg: Config, first: dt.date, last: dt.date, force: bool = False) -> dict:
    if last < first:
        raise ConfigError(f"backfill: --to {last} is before --from {first}")
    dates = dates_between(first, last)
    with_models = model_dates(dates, cfg.backfill.model_days)
    progress = Progress(log, "backfill", total=len(dates), unit="dates",
                        kinds=["model" if day in with_models else "data" for day in dates])
    outcomes: dict[str, dict[str, str]] = {}
    log.info("backfill %s..%s: %d dates; models for %s", first, last, len(dates),
             f"{len(with_models)} date(s) from {with_models[0]}" if with_models else "none (backfill.model_days 0)")
    for day in dates:
        stages = tuple(nightly.STAGES) if day in with_models else DATA_STAGES
        results: dict = {}
        outcomes[day.isoformat()] = nightly.run_stages(spark, cfg, day, stages, force, results)
        progress.step(rows=nightly.work_rows("ingest", results.get("ingest", {})), what=str(day))
    summary = {"dates": len(dates), "rows": progress.rows, "seconds": round(progress.elapsed, 1),
               "model_dates": [d.isoformat() for d in with_models]}
    print(summary_table(first, last, outcomes, progress), flush=True)
    return summary


def summary_table(first: dt.date, last: dt.date, outcomes: dict[str, dict[str, str]], progress: Progress) -> str:
    lines = [f"setlist backfill {first}..{last}: {progress.line()}"]
    for day, outcome in outcomes.items():
        shown = "; ".join(f"{stage} {text}" for stage, text in outcome.items())
        lines.append(f"  {day}  {shown}")
    return "\n".join(lines)
