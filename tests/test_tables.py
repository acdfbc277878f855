"""jobs.core.tables and delta_io: the contract columns' NOT NULL and CHECK constraints are declared
with the tables and enforced by Delta, so a bug that would write bad rows fails the write."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from jobs.core import delta_io
from jobs.core.tables import GOLD_RECOMMENDATIONS, GOLD_RUNS, SILVER_PLAYS

DAY = dt.date(2026, 1, 3)
ROOT = Path(__file__).resolve().parents[1]


def recs(spark, **changes):
    row = {"run_date": DAY, "user_id": "u1", "rank": 1, "track_id": "t1", "artist_name": "A", "track_name": "T",
           "score": 1.5, "source": "als"} | changes
    return spark.createDataFrame([row], GOLD_RECOMMENDATIONS.schema)


def test_good_rows_are_written_and_every_bad_one_fails_the_write(spark, cfg):
    delta_io.ensure(spark, cfg, GOLD_RECOMMENDATIONS)
    history = DeltaTable.forPath(spark, GOLD_RECOMMENDATIONS.path(cfg)).history().collect()
    assert [h["operation"] for h in history] == ["CREATE TABLE"]  # its constraints in the creating commit
    assert {f"delta.constraints.{name}" for name, _ in GOLD_RECOMMENDATIONS.checks} <= set(
        delta_io.properties(spark, cfg, GOLD_RECOMMENDATIONS))
    delta_io.replace_date(recs(spark), cfg, GOLD_RECOMMENDATIONS, "run_date", DAY)
    assert delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).count() == 1
    for bad, constraint in [({"rank": 0}, "rank_positive"), ({"score": float("nan")}, "score_finite"),
                            ({"score": float("inf")}, "score_finite"), ({"source": "mystery"}, "source_known"),
                            ({"user_id": None}, "user_id")]:
        with pytest.raises(Exception, match=f"(?i)(constraint|NOT NULL).*{constraint}|{constraint}.*(violat|null)"):
            delta_io.replace_date(recs(spark, **bad), cfg, GOLD_RECOMMENDATIONS, "run_date", DAY)
    assert delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).count() == 1  # the good night is still there


def test_a_replace_measures_the_rows_it_writes_without_reading_them_again(spark, cfg):
    """replace_date returns the rows it wrote and the caller's aggregates over them (Spark's
    Observation of the write): the same numbers a read of the committed date gives."""
    from pyspark.sql import functions as F
    rows = [recs(spark, user_id=f"u{u}", rank=r, source="als" if r == 1 else "history").first().asDict()
            for u in range(7) for r in (1, 2, 3)]
    frame = spark.createDataFrame(rows, GOLD_RECOMMENDATIONS.schema)
    measured = delta_io.replace_date(frame, cfg, GOLD_RECOMMENDATIONS, "run_date", DAY,
                                     {"als": F.sum((F.col("source") == "als").cast("long")), "top": F.max("rank")})
    assert measured == {"rows": 21, "als": 7, "top": 3}
    table = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS)
    assert table.count() == 21 and table.where("source = 'als'").count() == 7
    assert delta_io.replace_date(frame.limit(0), cfg, GOLD_RECOMMENDATIONS, "run_date", DAY) == {"rows": 0}
    assert delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).count() == 0


def test_constraints_are_added_to_a_table_written_before_they_existed(spark, cfg):
    path = SILVER_PLAYS.path(cfg)
    frame = spark.createDataFrame([], SILVER_PLAYS.schema)
    frame.write.format("delta").partitionBy("ingest_date").save(path)  # as an older setlist left it
    delta_io._ENSURED.discard(path)
    delta_io.ensure(spark, cfg, SILVER_PLAYS)
    properties = spark.sql(f"DESCRIBE DETAIL {delta_io.table_ref(cfg, SILVER_PLAYS)}").first()["properties"]
    assert {"delta.constraints.user_idx_positive", "delta.constraints.track_idx_positive"} <= set(properties)
    status = spark.createDataFrame([{"run_date": DAY, "stage": "clean", "status": "exploded"}], GOLD_RUNS.schema)
    with pytest.raises(Exception, match="status_known"):
        delta_io.upsert(spark, cfg, GOLD_RUNS, [status.first().asDict()], ("run_date", "stage"))


def test_upsert_replaces_the_row_of_its_key_in_one_commit_and_keeps_the_others(spark, cfg):
    def run(day, stage, status, error=None):
        return {"run_date": day, "stage": stage, "status": status, "started_at": None, "finished_at": None,
                "rows": None, "error": error}
    keys = ("run_date", "stage")
    other = DAY - dt.timedelta(days=1)
    for row in (run(DAY, "clean", "failed", "boom"), run(DAY, "embed", "succeeded"), run(other, "clean", "succeeded")):
        delta_io.upsert(spark, cfg, GOLD_RUNS, [row], keys)
    table = DeltaTable.forPath(spark, GOLD_RUNS.path(cfg))
    version = table.history(1).first()["version"]
    delta_io.upsert(spark, cfg, GOLD_RUNS, [run(DAY, "clean", "succeeded")], keys)  # the rerun's outcome
    assert table.history(1).first()["version"] == version + 1  # one commit
    got = sorted((r["run_date"], r["stage"], r["status"], r["error"]) for r in table.toDF().collect())
    assert got == [(other, "clean", "succeeded", None), (DAY, "clean", "succeeded", None),
                   (DAY, "embed", "succeeded", None)]
    with pytest.raises(ValueError, match="needs a value for each of"):
        delta_io.upsert(spark, cfg, GOLD_RUNS, [run(None, "clean", "succeeded")], keys)
    # a quote in a key value is a literal, not SQL
    delta_io.upsert(spark, cfg, GOLD_RUNS, [run(DAY, "it's", "succeeded")], keys)
    delta_io.upsert(spark, cfg, GOLD_RUNS, [run(DAY, "it's", "failed")], keys)
    assert [r["status"] for r in table.toDF().where("stage = \"it's\"").collect()] == ["failed"]


def test_the_lease_holder_appends_a_models_first_row_of_a_date_and_replaces_it_after(spark, cfg):
    """gold.models: under the warehouse's lease a model's first row of a date is a blind append; its
    next row of that date (a rerun's) and every row written without the lease replace the key's row."""
    from jobs.core import records
    from jobs.core.lease import Lease
    from jobs.core.tables import GOLD_MODELS

    def model(name: str, day: dt.date, version: str) -> None:
        records.record_model(spark, cfg, day, name, version, "spark-mllib", 1, {}, {}, f"/models/{name}/{version}")

    def writes_since(version: int) -> list[str]:
        history = DeltaTable.forPath(spark, GOLD_MODELS.path(cfg)).history().where(f"version > {version}")
        return [r["operationParameters"]["mode"] for r in history.orderBy("version").collect()]
    model("als", DAY, "first")  # no lease: upserted (and the table created)
    start = delta_io.version(spark, cfg, GOLD_MODELS)
    with Lease(cfg, "nightly"):
        model("kmeans", DAY, "first")  # a new key
        model("word2vec", DAY, "first")  # a new key
        model("als", DAY, "second")  # its row of DAY was written before the lease
        model("kmeans", DAY, "second")  # written under this lease: replaced
    model("word2vec", DAY, "second")  # no lease again
    assert writes_since(start) == ["Append", "Append", "Overwrite", "Overwrite", "Overwrite"]
    rows = {r["model"]: r["version"] for r in delta_io.read(spark, cfg, GOLD_MODELS).collect()}
    assert rows == {"als": "second", "kmeans": "second", "word2vec": "second"}
    assert delta_io.read(spark, cfg, GOLD_MODELS).count() == 3


def test_the_lease_holder_appends_a_stages_first_metrics_of_a_date_and_replaces_them_after(spark, cfg):
    """gold.metrics: under the lease a stage's first metric rows of a date are a blind append; its next
    rows of that date, and any written without the lease, replace the stage's rows of the date."""
    from jobs.core import records
    from jobs.core.lease import Lease
    from jobs.core.tables import GOLD_METRICS

    def metrics(stage: str, ndcg: float) -> None:
        records.write_metrics(spark, cfg, DAY, stage, 10, {"als": {"ndcg": ndcg, "recall": ndcg / 2, "users": 7}})

    def writes_since(version: int) -> list[str]:
        history = DeltaTable.forPath(spark, GOLD_METRICS.path(cfg)).history().where(f"version > {version}")
        return [r["operationParameters"]["mode"] for r in history.orderBy("version").collect()]
    metrics("evaluate", 0.1)  # no lease: the partition replaced (and the table created)
    start = delta_io.version(spark, cfg, GOLD_METRICS)
    with Lease(cfg, "nightly"):
        metrics("rank", 0.2)      # a new partition
        metrics("evaluate", 0.3)  # written before the lease
        metrics("rank", 0.4)      # written under this lease
    metrics("train", 0.5)  # no lease
    assert writes_since(start) == ["Append", "Overwrite", "Overwrite", "Overwrite"]
    rows = sorted((r["stage"], r["metric"], r["value"]) for r in delta_io.read(spark, cfg, GOLD_METRICS).collect())
    assert rows == [("evaluate", "ndcg", 0.3), ("evaluate", "recall", 0.15), ("rank", "ndcg", 0.4),
                    ("rank", "recall", 0.2), ("train", "ndcg", 0.5), ("train", "recall", 0.25)]


def test_each_table_works_on_tables_at_once_in_order_and_fails_after_the_others_end(spark, cfg):
    import threading
    tables = [GOLD_RECOMMENDATIONS, GOLD_RUNS, SILVER_PLAYS]
    together = threading.Barrier(len(tables), timeout=60)  # broken unless the three are worked on at once
    spark.sparkContext.setLocalProperty("setlist.test", "the caller's")
    try:
        def create(table):
            together.wait()
            assert spark.sparkContext.getLocalProperty("setlist.test") == "the caller's"  # its job properties
            delta_io.ensure(spark, cfg, table)
            return table.full_name
        assert delta_io.each_table(spark, tables, create, 3) == [t.full_name for t in tables]
        assert all(delta_io.exists(spark, cfg, t) for t in tables)

        written = []

        def read_version(table):
            if table is GOLD_RECOMMENDATIONS:
                raise RuntimeError("the first table failed")
            written.append(delta_io.version(spark, cfg, table))
            return table
        with pytest.raises(RuntimeError, match="the first table failed"):
            delta_io.each_table(spark, tables, read_version, 1)
        assert len(written) == 2  # the tables after the failed one were still worked on
    finally:
        spark.sparkContext.setLocalProperty("setlist.test", None)


def test_the_lease_holder_appends_a_partition_that_holds_no_file_and_replaces_one_that_does(spark, cfg):
    """replace_date and replace_partition under the warehouse's lease: a partition with no file yet
    is appended (Delta's replaceWhere first rebuilds the table's file list in Spark jobs; an append
    does not), and a row outside it still fails the write with nothing committed. A partition that
    holds files, a night's rerun or a stage killed after its commit, which left no gold.runs row,
    is replaced, never doubled; so is every write without the lease."""
    from jobs.core.lease import Lease
    from jobs.core.tables import SILVER_QUARANTINE
    later, killed = DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)

    def writes_since(version: int) -> list[str]:
        history = DeltaTable.forPath(spark, GOLD_RECOMMENDATIONS.path(cfg)).history().where(f"version > {version}")
        return [r["operationParameters"]["mode"] for r in history.orderBy("version").collect()]

    def users(day: dt.date) -> list[str]:
        frame = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(f"run_date = DATE'{day}'")
        return sorted(r["user_id"] for r in frame.collect())

    delta_io.replace_date(recs(spark, run_date=killed, user_id="before"), cfg, GOLD_RECOMMENDATIONS, "run_date", killed)
    start = delta_io.version(spark, cfg, GOLD_RECOMMENDATIONS)
    with Lease(cfg, "nightly"):
        assert delta_io.replace_date(recs(spark, user_id="a"), cfg, GOLD_RECOMMENDATIONS, "run_date", DAY) == {"rows": 1}
        delta_io.replace_date(recs(spark, user_id="b"), cfg, GOLD_RECOMMENDATIONS, "run_date", DAY)  # a rerun
        delta_io.replace_date(recs(spark, run_date=killed, user_id="after"), cfg, GOLD_RECOMMENDATIONS,
                              "run_date", killed)
        version = delta_io.version(spark, cfg, GOLD_RECOMMENDATIONS)
        with pytest.raises(Exception, match="gold.recommendations: a row outside the partition run_date = DATE'2026-01-04'"):
            delta_io.replace_date(recs(spark, run_date=DAY, user_id="c"), cfg, GOLD_RECOMMENDATIONS, "run_date", later)
        assert delta_io.version(spark, cfg, GOLD_RECOMMENDATIONS) == version  # nothing committed
        bad = spark.createDataFrame([{"ingest_date": DAY, "format": "lastfm-tsv", "source_file": "f", "line_number": 1,
                                      "raw": "x", "reason": "empty_user", "stage": "clean", "raw_base64": None}],
                                    SILVER_QUARANTINE.schema)
        assert delta_io.replace_partition(bad.drop("ingest_date", "stage"), cfg, SILVER_QUARANTINE, ingest_date=DAY,
                                          stage="clean")["rows"] == 1
    delta_io.replace_date(recs(spark, run_date=later, user_id="d"), cfg, GOLD_RECOMMENDATIONS, "run_date", later)
    assert writes_since(start) == ["Append", "Overwrite", "Overwrite", "Overwrite"]
    assert users(DAY) == ["b"] and users(killed) == ["after"] and users(later) == ["d"]
    quarantine = DeltaTable.forPath(spark, SILVER_QUARANTINE.path(cfg)).history(1).first()
    assert quarantine["operationParameters"]["mode"] == "Append"


def test_bookkeeping_rows_under_the_lease_are_committed_by_delta_rs_without_a_spark_job_as_spark_reads_them(
        spark, cfg):
    """Under the warehouse's lease a stage's new gold.runs, gold.models and gold.metrics rows are
    committed by delta-rs (delta_io._append_by_log): no Spark job, the values Spark reads back are
    the ones written (timestamps as instants), a row a CHECK constraint refuses is refused and nothing
    is committed, every 10th version gets a checkpoint Spark reads, and Spark's own writes go on
    after. Without the lease Spark writes them."""
    import os
    from jobs.core import records
    from jobs.core.lease import Lease
    from jobs.core.tables import GOLD_METRICS, GOLD_MODELS
    for table in (GOLD_RUNS, GOLD_MODELS, GOLD_METRICS):
        delta_io.ensure(spark, cfg, table)
    started = dt.datetime(2026, 1, 3, 23, 59, 58, 123456, tzinfo=dt.timezone.utc)
    spark.sparkContext.setJobGroup("rows", "bookkeeping rows under the lease")
    try:
        with Lease(cfg, "nightly"):
            for stage in ("ingest", "clean", "embed"):
                records.record_run(spark, cfg, DAY, stage, "succeeded", started, {"rows": 3})
            records.record_model(spark, cfg, DAY, "als", "als-1", "spark-mllib", 1, {"rank": 8}, {"ndcg@10": 0.5},
                                 "/models/als-1")
            records.write_metrics(spark, cfg, DAY, "evaluate", 10, {"als": {"ndcg": 0.25, "recall": 0.5, "users": 7}})
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert spark.sparkContext.statusTracker().getJobIdsForGroup("rows") == []
    runs = delta_io.read(spark, cfg, GOLD_RUNS).orderBy("stage").collect()
    assert [(r["run_date"], r["stage"], r["status"], r["rows"]) for r in runs] == [
        (DAY, stage, "succeeded", '{"rows": 3}') for stage in ("clean", "embed", "ingest")]
    local = started.astimezone().replace(tzinfo=None)  # as collect() gives a timestamp
    assert {r["started_at"] for r in runs} == {local}
    model = delta_io.read(spark, cfg, GOLD_MODELS).collect()
    assert [(r["model"], r["version"], r["world_size"], r["path"]) for r in model] == [("als", "als-1", 1, "/models/als-1")]
    metrics = delta_io.read(spark, cfg, GOLD_METRICS).orderBy("metric").collect()
    assert [(r["run_date"], r["stage"], r["model"], r["metric"], r["k"], r["value"], r["users"]) for r in metrics] == [
        (DAY, "evaluate", "als", "ndcg", 10, 0.25, 7), (DAY, "evaluate", "als", "recall", 10, 0.5, 7)]
    history = DeltaTable.forPath(spark, GOLD_RUNS.path(cfg)).history().where("version > 0").collect()
    assert {r["operationParameters"]["mode"] for r in history} == {"Append"} and len(history) == 3

    row = {"run_date": DAY, "stage": "rank", "status": "succeeded", "started_at": started, "finished_at": started,
           "rows": None, "error": None}
    with Lease(cfg, "nightly"):
        before = delta_io.version(spark, cfg, GOLD_RUNS)
        with pytest.raises(Exception, match="status_known"):  # refused, by delta-rs and then by Spark
            delta_io.append(spark, cfg, GOLD_RUNS, [row | {"status": "nonsense"}])
        assert delta_io.version(spark, cfg, GOLD_RUNS) == before
        while delta_io.version(spark, cfg, GOLD_RUNS) < 10:
            delta_io.append(spark, cfg, GOLD_RUNS, [row | {"stage": f"s{delta_io.version(spark, cfg, GOLD_RUNS)}"}])
    log = os.path.join(GOLD_RUNS.path(cfg), "_delta_log")
    assert "00000000000000000010.checkpoint.parquet" in os.listdir(log)
    assert delta_io.read(spark, cfg, GOLD_RUNS).count() == 3 + 7
    records.record_run(spark, cfg, DAY, "ingest", "failed", started, error="again")  # no lease: Spark upserts
    assert DeltaTable.forPath(spark, GOLD_RUNS.path(cfg)).history(1).first()["operationParameters"]["mode"] == "Overwrite"
    assert delta_io.read(spark, cfg, GOLD_RUNS).where("stage = 'ingest'").first()["status"] == "failed"
    assert delta_io.read(spark, cfg, GOLD_RUNS).count() == 10


def test_a_process_that_exits_right_after_a_bookkeeping_read_exits_cleanly(spark, cfg):
    """A driver that reads gold.runs from the Delta log (delta_io.small_rows) and exits at once exits
    with 0, every time: read through pyarrow's dataset scanner, such a process aborted at exit
    (SIGABRT, exit code 134; apache/arrow#39862) in about one run of three on this machine."""
    import subprocess
    import sys
    from jobs.core import records
    for stage in ("ingest", "clean"):
        records.record_run(spark, cfg, DAY, stage, "succeeded", records.now())
    script = ("import datetime, sys; from jobs.core import delta_io; from jobs.core.config import load_config; "
              "from jobs.core.tables import GOLD_RUNS; "
              f"cfg = load_config({str(ROOT / 'conf' / 'local.yaml')!r}, ['warehouse={cfg.warehouse}']); "
              f"rows = delta_io.small_rows(None, cfg, GOLD_RUNS, datetime.date({DAY.year}, {DAY.month}, {DAY.day})); "
              "assert len(rows) == 2, rows")
    codes = [subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
             for _ in range(8)]
    assert [c.returncode for c in codes] == [0] * 8, [c.stderr[-300:] for c in codes if c.returncode]


def test_bookkeeping_reads_answer_from_the_delta_log_without_a_spark_job_as_spark_would(spark, cfg):
    """A table's version, its newest date on or before D and the latest model rows are read from a
    local table's Delta log by delta-rs (delta_io.log_of), no Spark job run, with the answers and
    values Spark's own reads give; a table whose readers need deletion vectors is read by Spark."""
    from jobs.core import records
    from jobs.core.tables import GOLD_MODELS
    later = DAY + dt.timedelta(days=1)
    for day, user in ((DAY, "a"), (later, "b")):
        delta_io.replace_date(recs(spark, run_date=day, user_id=user), cfg, GOLD_RECOMMENDATIONS, "run_date", day)
    for day, model, version in ((DAY, "als", "als-1"), (later, "als", "als-2"), (DAY, "ranker", "r-1")):
        records.record_model(spark, cfg, day, model, version, "spark-mllib", 1, {"rank": 8}, {"ndcg@10": 0.5},
                             f"/models/{version}")
    # the later date's rows deleted: that date is no longer an answer
    DeltaTable.forPath(spark, GOLD_RECOMMENDATIONS.path(cfg)).delete(f"run_date = DATE'{later}'")

    def answers():
        return ([delta_io.latest_date(spark, cfg, GOLD_RECOMMENDATIONS, d) for d in
                 (DAY - dt.timedelta(days=1), DAY, later, later + dt.timedelta(days=9))],
                delta_io.version(spark, cfg, GOLD_RECOMMENDATIONS), delta_io.version(spark, cfg, GOLD_MODELS),
                {d: records.latest_models(spark, cfg, ("als", "ranker", "lstm"), d) for d in (DAY, later)})

    spark.sparkContext.setJobGroup("bookkeeping", "reads from the Delta log")
    try:
        from_log = answers()
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert spark.sparkContext.statusTracker().getJobIdsForGroup("bookkeeping") == []
    real = delta_io.log_of
    try:
        delta_io.log_of = lambda cfg, table: None  # every read through Spark, as on a warehouse URI
        from_spark = answers()
    finally:
        delta_io.log_of = real
    assert from_log == from_spark
    dates, _, _, models = from_log
    assert dates == [None, DAY, DAY, DAY]
    assert models[DAY]["als"]["version"] == "als-1" and models[later]["als"]["version"] == "als-2"
    assert models[later]["ranker"]["run_date"] == DAY and models[later]["lstm"] is None
    assert models[later]["als"]["created_at"].tzinfo is None  # as collect() gives a timestamp

    ref = delta_io.table_ref(cfg, GOLD_RECOMMENDATIONS)
    spark.sql(f"ALTER TABLE {ref} SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    delta_io.replace_date(recs(spark, run_date=later, user_id="c"), cfg, GOLD_RECOMMENDATIONS, "run_date", later)
    spark.sql(f"DELETE FROM {ref} WHERE run_date = DATE'{later}'")  # a deletion vector, the file kept
    assert delta_io.log_of(cfg, GOLD_RECOMMENDATIONS) is None
    assert delta_io.latest_date(spark, cfg, GOLD_RECOMMENDATIONS, later) == DAY
