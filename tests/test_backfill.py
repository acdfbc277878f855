"""backfill: a range of dates in one application, the model stages only for the last dates, resumable
after a failure like nightly, with progress (dates done / total, rows per second, time left)."""
from __future__ import annotations

import datetime as dt
import logging

import pytest

from conftest import small_generate
from jobs import backfill, clean, generate, nightly
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.tables import GOLD_RUNS, SILVER_CLEAN_RUNS
from models.progress import Progress, duration

DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(3)]


def test_progress_reports_counts_rates_and_time_left():
    clock = iter([0.0, 10.0, 20.0]).__next__
    progress = Progress(logging.getLogger("test"), "backfill", total=4, unit="dates", clock=clock)
    line = progress.step(rows=1000, what="2026-01-01")
    assert line == "backfill: 1/4 dates (2026-01-01), 1,000 rows, 100 rows/s, 10s elapsed, about 30s left"
    assert progress.step(rows=1000).endswith("20s elapsed, about 20s left")
    assert duration(3725) == "1h02m" and duration(125) == "2m05s"


def test_progress_times_dates_with_and_without_models_apart():
    """A backfill's last dates run the model stages and cost many times a data-only date: the time
    left counts each date at the pace of its own kind, and names the kinds not timed yet."""
    clock = iter([0.0, 10.0, 20.0, 220.0, 420.0]).__next__
    progress = Progress(logging.getLogger("test"), "backfill", total=5, unit="dates", clock=clock,
                        kinds=["data", "data", "model", "model", "model"])
    assert progress.step().endswith("10s elapsed, about 10s left + 3 model dates not timed yet")
    assert progress.step().endswith("20s elapsed, 3 model dates not timed yet")
    assert progress.step().endswith("3m40s elapsed, about 6m40s left")  # two more at 200 s, not 73 s
    assert progress.step().endswith("7m00s elapsed, about 3m20s left")
    with pytest.raises(ValueError, match="2 kinds for 5 dates"):
        Progress(logging.getLogger("test"), "backfill", total=5, unit="dates", kinds=["data", "model"])


def test_the_model_stages_run_only_for_the_last_model_days_dates():
    dates = backfill.dates_between(DAYS[0], DAYS[-1])
    assert dates == DAYS
    assert backfill.model_dates(dates, 1) == DAYS[-1:] and backfill.model_dates(dates, 9) == DAYS
    assert backfill.model_dates(dates, 0) == []


def test_the_shared_warehouse_was_backfilled_with_models_on_both_dates(spark, nights):
    cfg, summary = nights
    assert summary["dates"] == 2 and summary["model_dates"] == [DAYS[0].isoformat(), DAYS[1].isoformat()]
    stages = {(r["run_date"], r["stage"]) for r in delta_io.read(spark, cfg, GOLD_RUNS).collect()}
    assert {(d, s) for d in DAYS[:2] for s in nightly.STAGES} <= stages


def test_backfill_cleans_every_date_in_order_and_resumes_after_a_failure(spark, cfg, monkeypatch, caplog):
    cfg = with_overrides(cfg, [*small_generate(days=3, users=25, events=25 * 20 * 3, dirty=0.01, end_date="2026-01-03"),
                               "backfill.model_days=0"])
    generate.run(spark, cfg)
    real = clean.run

    def failing(spark_, cfg_, day):
        if day == DAYS[1]:
            raise RuntimeError("disk full while cleaning")
        return real(spark_, cfg_, day)
    monkeypatch.setitem(nightly.STAGES, "clean", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        backfill.run(spark, cfg, DAYS[0], DAYS[-1])
    monkeypatch.setitem(nightly.STAGES, "clean", real)
    with caplog.at_level(logging.INFO, logger="setlist.backfill"):
        summary = backfill.run(spark, cfg, DAYS[0], DAYS[-1])
    assert summary["dates"] == 3 and summary["model_dates"] == [] and summary["rows"] > 0
    runs = {(r["run_date"], r["stage"]): r for r in delta_io.read(spark, cfg, GOLD_RUNS).collect()}
    assert {s for (_, s) in runs} == {"ingest", "clean"}  # backfill.model_days 0: data only
    assert all(r["status"] == "succeeded" for r in runs.values()) and len(runs) == 6
    assert delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).count() == 3
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backfill: ")]
    assert progress[-1].startswith("backfill: 3/3 dates") and "rows/s" in progress[-1]
    assert "about" in progress[0] and "left" in progress[0]
    # the first date was committed before the failure, so the rerun skipped it
    assert runs[(DAYS[0], "clean")]["finished_at"] < runs[(DAYS[1], "clean")]["started_at"]
