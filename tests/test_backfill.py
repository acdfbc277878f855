"""backfill: a range of dates in one application, the model stages only for the last dates, resumable
after a failure like nightly, with progress (dates done / total, rows per second, time left)."""
from __future__ import annotations

import datetime as dt
import logging

import pytest
from pyspark.sql import functions as F

from conftest import small_generate
from jobs import backfill, clean, generate, nightly
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.tables import GOLD_RECOMMENDATIONS, GOLD_RUNS, SILVER_CLEAN_RUNS
from models.progress import Progress, duration

DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(3)]


def test_progress_reports_counts_rates_and_time_left():
    clock = iter([0.0, 10.0, 20.0]).__next__
    progress = Progress(logging.getLogger("test"), "backfill", total=4, unit="dates", clock=clock)
    line = progress.step(rows=1000, what="2026-01-01")
    assert line == "backfill: 1/4 dates (2026-01-01), 1,000 rows, 100 rows/s, 10s elapsed, about 30s left"
    assert progress.step(rows=1000).endswith("20s elapsed, about 20s left")
    assert duration(3725) == "1h02m" and duration(125) == "2m05s"


def test_backfill_cleans_every_date_trains_once_and_resumes_after_a_failure(spark, cfg, monkeypatch, caplog):
    cfg = with_overrides(cfg, [
        *small_generate(days=3, users=25, events=25 * 20 * 3, dirty=0.01, end_date="2026-01-03"),
        "backfill.model_days=1", "embed.vector_size=8", "cluster.k=3", "cluster.segments=2", "als.rank=4",
        "als.max_iter=3", "als.tune_minutes=0", "train.embed_dim=8", "train.hidden=8", "train.epochs=1",
        "train.window=4", "train.sequence_files=2", "train.eval_examples=200", "train.backend=torch-distributor",
        "train.export_onnx=false", "train.timeout_minutes=4", "recommend.k=5", "recommend.min_history=5"])
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
    assert summary["dates"] == 3 and summary["model_dates"] == [DAYS[-1].isoformat()] and summary["rows"] > 0
    runs = {(r["run_date"], r["stage"]): r["status"] for r in delta_io.read(spark, cfg, GOLD_RUNS).collect()}
    assert {s for (d, s) in runs if d < DAYS[-1]} == {"ingest", "clean"}  # no model stage before the last date
    assert runs[(DAYS[1], "clean")] == "succeeded" and runs[(DAYS[-1], "recommend")] == "succeeded"
    assert delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).count() == 3
    recs = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS)
    assert {r[0] for r in recs.select("run_date").distinct().collect()} == {DAYS[-1]}
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backfill: ")]
    assert progress[-1].startswith("backfill: 3/3 dates") and "rows/s" in progress[-1]
    assert "about" in progress[0] and "left" in progress[0]
    # the first date was committed before the failure: the rerun skipped it
    first = delta_io.read(spark, cfg, GOLD_RUNS).where((F.col("run_date") == F.lit(DAYS[0]))
                                                       & (F.col("stage") == "clean")).first()
    assert first["finished_at"] < delta_io.read(spark, cfg, GOLD_RUNS).where(
        (F.col("run_date") == F.lit(DAYS[1])) & (F.col("stage") == "clean")).first()["started_at"]
