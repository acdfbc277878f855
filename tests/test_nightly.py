"""The nightly run on generated data for three consecutive dates: gold.runs, cadence, resume after a
failed stage, forced reruns, the report, and what consumers read."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyspark.sql import functions as F

from conftest import NIGHTLY_K as K
from conftest import NIGHTS
from jobs import nightly, recommend
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.rawfiles import raw_dir
from jobs.core.session import sql_settings, task_slots
from jobs.core.tables import GOLD_RECOMMENDATIONS, GOLD_RUNS, SILVER_PLAYS


def recs_of(spark, cfg, day):
    df = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    return sorted(tuple(r) for r in df.collect())


def test_stage_runs_are_recorded_with_cadence_and_waiting_models(spark, nights):
    cfg, outcomes = nights
    runs = {(r["run_date"], r["stage"]): r["status"] for r in delta_io.read(spark, cfg, GOLD_RUNS).collect()}
    stages = list(nightly.STAGES)
    for day in NIGHTS[:2]:
        assert {s for (d, s) in runs if d == day} == set(stages)
    assert runs[(NIGHTS[0], "train")] == "waiting_for_history"   # one day of data: nothing to validate on
    assert runs[(NIGHTS[0], "rank")] == "waiting_for_history"    # no earlier night's candidates to learn from
    assert runs[(NIGHTS[0], "evaluate")] == "waiting_for_history"
    assert runs[(NIGHTS[0], "recommend")] == "succeeded"
    assert runs[(NIGHTS[1], "train")] == "succeeded"
    assert runs[(NIGHTS[1], "rank")] == "succeeded"              # one labelled night: blend or most played
    # upkeep's cadence counts from the warehouse's first night: nothing to compact on a new warehouse
    assert runs[(NIGHTS[0], "maintain")] == runs[(NIGHTS[1], "maintain")] == "reused"
    upkeep = delta_io.read(spark, cfg, GOLD_RUNS).where((F.col("stage") == "maintain")
                                                        & (F.col("run_date") == F.lit(NIGHTS[1]))).first()
    assert json.loads(upkeep["rows"]) == {"next_due": "2026-01-08"}  # nightly.maintain_every_days = 7
    rank_row = delta_io.read(spark, cfg, GOLD_RUNS).where((F.col("stage") == "rank")
                                                          & (F.col("run_date") == F.lit(NIGHTS[1]))).first()
    recorded = json.loads(rank_row["rows"])
    assert recorded["served"] in ("most_played", "blend") and "no ranker yet" in recorded["why"]
    assert recorded["timing"]["seconds"] > 0
    clean_row = delta_io.read(spark, cfg, GOLD_RUNS).where((F.col("stage") == "clean")
                                                           & (F.col("run_date") == F.lit(NIGHTS[1]))).first()
    timing = json.loads(clean_row["rows"])["timing"]  # per-stage duration and rows/s in gold.runs
    assert timing["rows_in"] > 0 and timing["rows_per_s"] == pytest.approx(timing["rows_in"] / timing["seconds"],
                                                                          rel=0.01)
    # a few thousand plays, under nightly.interpreted_below_rows: every stage ran interpreted (recommend: no-aqe)
    executions = {(r["run_date"], r["stage"]): json.loads(r["rows"])["timing"]["execution"]
                  for r in delta_io.read(spark, cfg, GOLD_RUNS).where(F.col("status") == "succeeded").collect()}
    assert delta_io.read(spark, cfg, SILVER_PLAYS).count() < cfg.nightly.interpreted_below_rows
    assert executions and {stage: mode for (_, stage), mode in executions.items()} == {
        stage: "no-aqe" if stage == "recommend" else "interpreted" for (_, stage) in executions}


def test_a_failed_stage_fails_the_run_and_a_rerun_resumes_there(spark, nights, monkeypatch, caplog):
    cfg, _ = nights
    day = NIGHTS[2]

    def crashing(frame, k, cap, lam):  # fails on the executors, while the lists are computed
        return frame.select("user_idx", "track_idx", "score", "source",
                            F.raise_error(F.lit("executor killed during recommend")).cast("int").alias("rank"))
    with monkeypatch.context() as patch:
        patch.setattr(recommend, "diversify", crashing)
        with pytest.raises(Exception, match="executor killed during recommend"):
            nightly.run(spark, cfg, day)
    runs = {r["stage"]: r["status"] for r in delta_io.read(spark, cfg, GOLD_RUNS).where(
        F.col("run_date") == F.lit(day)).collect()}
    assert runs["recommend"] == "failed" and runs["als"] == "succeeded" and runs["train"] == "reused"
    assert recs_of(spark, cfg, day) == []  # nothing half-written
    with caplog.at_level(logging.INFO, logger="setlist.nightly"):
        outcome = nightly.run(spark, cfg, day)
    assert outcome["clean"].startswith("skipped") and outcome["recommend"].startswith("succeeded")
    # the log says what the run reads before reading it, then what it will do, before the first stage
    lines = [r.getMessage() for r in caplog.records if r.name == "setlist.nightly"]
    assert lines[0] == f"nightly {day}: reading what is done already (gold.runs) and the night's size"
    assert lines[1].startswith(f"nightly {day}: 3 of 10 stage(s) to run (recommend, evaluate, maintain), 7 committed "
                               "already (ingest, clean, embed, cluster, als, train, rank); ") and " rows so far; read in " in lines[1]
    assert lines[2].startswith(f"nightly {day}: recommend ...")
    resumed = recs_of(spark, cfg, day)
    recommend.run(spark, cfg, day)  # the same stage again, uninterrupted
    assert recs_of(spark, cfg, day) == resumed and len(resumed) > 0


def test_consumers_read_todays_recommendations_without_spark_and_by_sql(spark, nights):
    cfg, _ = nights
    day = NIGHTS[2]
    path = GOLD_RECOMMENDATIONS.path(cfg)
    expected = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day)).count()

    from deltalake import DeltaTable
    table = DeltaTable(path)
    frame = table.to_pandas(filters=[("run_date", "=", day)])
    assert len(frame) == expected and set(frame.columns) >= {"user_id", "rank", "track_id", "score", "source"}

    import duckdb
    dataset = table.to_pyarrow_dataset()  # noqa: F841 - scanned by name below
    got = duckdb.sql(f"SELECT count(*), count(DISTINCT user_id), max(rank) FROM dataset "
                     f"WHERE run_date = DATE '{day.isoformat()}'").fetchall()[0]
    assert got == (expected, expected // K, K)

    named = with_overrides(cfg, ["catalog.database=setlist_test"])
    assert "setlist_test.recommendations" in delta_io.register(spark, named, (GOLD_RECOMMENDATIONS, GOLD_RUNS))
    by_sql = spark.sql(f"SELECT count(*) FROM setlist_test.recommendations WHERE run_date = DATE'{day}'").first()[0]
    assert by_sql == expected


def test_evaluate_writes_a_self_contained_report_and_scores_yesterdays_lists(spark, nights):
    cfg, _ = nights
    day = NIGHTS[2]
    from pathlib import Path
    page = (Path(cfg.warehouse) / "reports" / f"evaluate-{day}.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "long tail" in page and "<table>" in page
    assert "Yesterday's recommendations against today's plays" in page
    from jobs.core.tables import GOLD_METRICS
    served = delta_io.read(spark, cfg, GOLD_METRICS).where((F.col("run_date") == F.lit(day))
                                                           & (F.col("model") == "served_yesterday"))
    assert served.where("metric = 'ndcg'").count() == 1


def test_the_airflow_dag_example_compiles():
    import py_compile
    from conftest import ROOT
    py_compile.compile(str(ROOT / "conf" / "airflow_dag.py"), doraise=True)
    assert "submit.sh nightly" in (ROOT / "conf" / "airflow_dag.py").read_text()


def test_a_forced_nightly_reruns_every_stage_and_reproduces_the_date(spark, nights):
    cfg, _ = nights
    day = NIGHTS[0]
    before = recs_of(spark, cfg, day)
    plays_before = delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") == F.lit(day)).count()

    def runs_of():
        return {r["stage"]: r for r in delta_io.read(spark, cfg, GOLD_RUNS)
                .where(F.col("run_date") == F.lit(day)).collect()}
    earlier = runs_of()
    skipped = nightly.run(spark, cfg, day)
    assert all(v.startswith("skipped") for v in skipped.values())
    forced = nightly.run(spark, cfg, day, force=True)
    assert not any(v.startswith("skipped") or v.startswith("reused") for v in forced.values())
    runs = runs_of()  # one row per stage and date, updated by the forced run
    assert set(runs) == set(earlier) == set(nightly.STAGES)
    last_finish = max(r["finished_at"] for r in earlier.values())
    assert all(r["started_at"] > last_finish for r in runs.values())
    # the same outcomes, except upkeep: not due on the first night, run when forced
    assert {s: r["status"] for s, r in runs.items()} == {s: r["status"] for s, r in earlier.items()} | {
        "maintain": "succeeded"}
    assert delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") == F.lit(day)).count() == plays_before
    assert recs_of(spark, cfg, day) == before


def test_every_model_and_the_lists_are_tracked_with_their_parameters_and_input_versions(spark, nights):
    """Which data and parameters produced the lists of D? gold.models alone, and MLflow alone, answer."""
    from mlflow.tracking import MlflowClient

    from jobs.core.tables import GOLD_MODELS
    from jobs.core.tracking import tracking_uri
    cfg, _ = nights
    day = NIGHTS[1]
    rows = {r["model"]: r for r in delta_io.read(spark, cfg, GOLD_MODELS).where(F.col("run_date") == F.lit(day))
            .collect()}
    assert {"word2vec", "kmeans", "als", "lstm", "ranker", "recommendations"} <= set(rows)
    lists = json.loads(rows["recommendations"]["params"])
    assert lists["served"] in ("most_played", "blend", "ranker") and "als" in lists["models"]
    assert lists["inputs"]["silver.plays"] >= 0 and lists["inputs"]["gold.candidates"] >= 0
    for model in ("als", "lstm", "word2vec", "kmeans"):
        params = json.loads(rows[model]["params"])
        assert params["inputs"]["silver.plays"] >= 0 and params["tracking_run"], model
    client = MlflowClient(tracking_uri=tracking_uri(cfg))
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id], f"tags.run_date = '{day}'")
    tracked = {r.data.tags["model"]: r for r in runs}
    assert set(tracked) >= {"word2vec", "kmeans", "als", "lstm", "ranker", "recommendations"}
    als = tracked["als"]
    assert als.info.run_id == json.loads(rows["als"]["params"])["tracking_run"]
    assert int(als.data.tags["input.silver.plays"]) == json.loads(rows["als"]["params"])["inputs"]["silver.plays"]
    assert als.data.params["rank"] == str(json.loads(rows["als"]["params"])["rank"])
    assert "ndcg_at_10" in als.data.metrics
    assert client.list_artifacts(als.info.run_id, "model")  # the saved model's files


INTERPRETED_KEYS = ("spark.sql.codegen.wholeStage", "spark.sql.codegen.factoryMode", "spark.sql.adaptive.enabled",
                    "spark.sql.shuffle.partitions")
SHIPPED = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK",
           "spark.sql.adaptive.enabled": "true",  # Spark's defaults, in place of the test session's,
           "spark.sql.shuffle.partitions": "8"}   # and conf/local.yaml's partitions
INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN",
               "spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": "2"}


def test_stages_run_interpreted_only_while_the_night_is_small_and_the_session_gets_its_settings_back(
        spark, cfg, monkeypatch):
    """nightly.interpreted_below_rows: a stage sees Spark's interpreted settings (recommend: adaptive
    execution off only), with one shuffle partition per task slot, while the plays so far and the rows
    of the night's earlier stages are under it, the session's own once they are not, and the session's
    own again after every stage, a failed one too."""
    shipped, interpreted = SHIPPED, INTERPRETED
    assert spark.sparkContext.master == "local[2]"  # two task slots: a small stage gets two partitions
    seen: dict[str, dict[str, str]] = {}

    def stage(name, rows=None, fails=False):
        def run(spark_, cfg_, day):
            seen[name] = {key: spark_.conf.get(key) for key in INTERPRETED_KEYS}
            assert spark_.sql("SELECT sum(id * 2) AS s FROM range(1000)").first()["s"] == 999000  # a real query
            if fails:
                raise RuntimeError(f"{name} failed")
            return {"plays": rows}
        monkeypatch.setitem(nightly.STAGES, name, run)

    stage("embed", rows=500)        # the first stage: no plays yet, so interpreted; it reports 500 rows
    stage("recommend", rows=500)    # 500 is under 1,000: small, but recommend only turns re-planning off
    stage("cluster", rows=5000)     # still small; it reports 5,000 rows
    stage("als", rows=5000)         # 5,000 is not under 1,000: the session's settings
    small = with_overrides(cfg, ["nightly.interpreted_below_rows=1000"])
    with sql_settings(spark, shipped):  # the test session's own come back after the test
        outcome = nightly.run_stages(spark, small, NIGHTS[0], ("embed", "recommend", "cluster", "als"))
        assert all(text.startswith("succeeded") for text in outcome.values()) and len(outcome) == 4
        assert seen["embed"] == seen["cluster"] == interpreted and seen["als"] == shipped
        assert seen["recommend"] == shipped | {"spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": "2"}
        assert {key: spark.conf.get(key) for key in INTERPRETED_KEYS} == shipped
        recorded = {r["stage"]: json.loads(r["rows"])["timing"]["execution"]
                    for r in delta_io.read(spark, small, GOLD_RUNS).collect()}
        assert recorded == {"embed": "interpreted", "recommend": "no-aqe", "cluster": "interpreted", "als": "session"}
        stage("als", fails=True)
        with pytest.raises(RuntimeError, match="als failed"):
            nightly.run_stages(spark, small, NIGHTS[1], ("als",))  # no plays yet: small again
        assert seen["als"] == interpreted and {key: spark.conf.get(key) for key in INTERPRETED_KEYS} == shipped
        never = with_overrides(cfg, ["nightly.interpreted_below_rows=0"])
        stage("als", rows=1)
        nightly.run_stages(spark, never, NIGHTS[2], ("als",))
        assert seen["als"] == shipped
        # A first night with no plays yet but large raw files is not small: its raw bytes bound its
        # lines (nightly.RAW_BYTES_PER_LINE). 999 lines of 64 bytes are under 1,000; 1,000 are not.
        line = "u" * 63 + "\n"
        for day, lines, expected in ((dt.date(2026, 2, 1), 999, interpreted), (dt.date(2026, 2, 2), 1000, shipped)):
            folder = Path(raw_dir(small, "lastfm-tsv", day))
            folder.mkdir(parents=True)
            (folder / "part-1.tsv").write_text(line * lines)
            nightly.run_stages(spark, small, day, ("als",))
            assert seen["als"] == expected, (day, lines)


def test_a_stage_run_on_its_own_gets_the_settings_the_nightly_would_give_it(spark, cfg, monkeypatch):
    """`main.py clean --date D` (or any nightly stage on its own) runs with the settings the nightly
    gives that stage on D: interpreted while D's night is small, the session's own once it is not,
    and the session's own again afterwards. Other jobs run with the session's own."""
    from jobs import embed, generate
    from jobs import main as cli
    seen = []

    def run(spark_, cfg_, *args):
        seen.append({key: spark_.conf.get(key) for key in INTERPRETED_KEYS})
        return {}
    monkeypatch.setattr(embed, "run", run)
    monkeypatch.setattr(generate, "run", run)
    embed_d = cli.build_parser().parse_args(["embed", "--date", str(NIGHTS[0])])
    generate_d = cli.build_parser().parse_args(["generate", "--date", str(NIGHTS[0])])
    with sql_settings(spark, SHIPPED):
        small = with_overrides(cfg, ["nightly.interpreted_below_rows=1000", "lease.enabled=false"])
        never = with_overrides(small, ["nightly.interpreted_below_rows=0"])
        codes = [cli.run_job(lambda: spark, conf, args) for conf, args in
                 ((small, embed_d), (never, embed_d), (small, generate_d))]
        assert codes == [0, 0, 0]
        assert seen == [INTERPRETED, SHIPPED, SHIPPED]
        assert {key: spark.conf.get(key) for key in INTERPRETED_KEYS} == SHIPPED


def test_task_slots_are_a_local_masters_threads_or_the_clusters_default_parallelism(spark):
    """A small night's shuffle partitions: one per task slot of the application."""
    def slots(master, parallelism=6):
        return task_slots(SimpleNamespace(sparkContext=SimpleNamespace(master=master, defaultParallelism=parallelism)))
    assert task_slots(spark) == 2  # the test session: local[2]
    assert (slots("local"), slots("local[3]"), slots("local[4, 2]"), slots("local[*]")) == (1, 3, 4, os.cpu_count())
    assert slots("spark://127.0.0.1:7077") == 6 and slots("yarn", 40) == 40 and slots("local-cluster[2,1,1024]") == 6


def test_the_only_writer_appends_a_nights_new_gold_runs_rows_and_replaces_them_on_a_rerun(spark, cfg, monkeypatch):
    """Under the warehouse's lease a stage's first gold.runs row of a date is a blind append (no file
    of the table read); a row after a failed attempt (or a forced rerun: the key holds a row) and
    every row written without the lease replace the key's row. One row per (date, stage) either way."""
    from delta.tables import DeltaTable

    from jobs.core.lease import Lease
    fail = {"cluster": True}

    def stage(name):
        def run(spark_, cfg_, day):
            if fail.get(name):
                raise RuntimeError(f"{name} failed")
            return {"plays": 1}
        monkeypatch.setitem(nightly.STAGES, name, run)
    for name in ("embed", "cluster"):
        stage(name)

    def writes(since: int) -> list[str]:  # each gold.runs commit after version `since`: its write mode
        history = DeltaTable.forPath(spark, GOLD_RUNS.path(cfg)).history().where(F.col("version") > since)
        return [r["operationParameters"]["mode"] for r in history.orderBy("version").collect()]

    def rows(day):
        return sorted((r["stage"], r["status"]) for r in delta_io.read(spark, cfg, GOLD_RUNS)
                      .where(F.col("run_date") == F.lit(day)).collect())
    with Lease(cfg, "nightly"):
        with pytest.raises(RuntimeError, match="cluster failed"):
            nightly.run_stages(spark, cfg, NIGHTS[0], ("embed", "cluster"))
        created = delta_io.version(spark, cfg, GOLD_RUNS) - 2
        assert writes(created) == ["Append", "Append"]  # embed succeeded, cluster failed: both new keys
        fail["cluster"] = False
        nightly.run_stages(spark, cfg, NIGHTS[0], ("embed", "cluster"))  # embed skipped; cluster's row replaced
        assert writes(created + 2) == ["Overwrite"]
        assert rows(NIGHTS[0]) == [("cluster", "succeeded"), ("embed", "succeeded")]
    nightly.run_stages(spark, cfg, NIGHTS[1], ("embed",))  # no lease: another writer may exist
    assert writes(created + 3) == ["Overwrite"]
    assert rows(NIGHTS[1]) == [("embed", "succeeded")]
