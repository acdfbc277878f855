"""The nightly run on generated data for three consecutive dates, and what consumers see in
gold.recommendations: exactly K per user, artist cap, cold start, exclusions, atomic reruns."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from conftest import small_generate
from jobs import delta_io, generate, nightly, recommend
from jobs.config import RecommendConf, with_overrides
from jobs.tables import GOLD_RECOMMENDATIONS, GOLD_RUNS, SILVER_PLAYS, SILVER_USERS

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
K = 12


def recs_of(spark, cfg, day):
    df = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    return sorted(tuple(r) for r in df.collect())


@pytest.fixture(scope="module")
def nights(spark, base_cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly")
    cfg = with_overrides(base_cfg, [
        f"warehouse={root / 'wh'}", f"raw_path={root / 'raw'}",
        *small_generate(days=3, users=60, events=60 * 25 * 3, dirty=0.01, end_date="2026-01-03", tracks=400,
                        artists=50, genres=4),
        "embed.vector_size=16", "cluster.k=4", "cluster.segments=3", "als.rank=8", "als.max_iter=5",
        "train.embed_dim=16", "train.hidden=16", "train.epochs=1", "train.window=5", "train.sequence_files=2",
        "train.eval_examples=500", "train.backend=torch-distributor", "train.timeout_minutes=4",
        f"recommend.k={K}", "recommend.max_per_artist=2", "recommend.min_history=40", "recommend.candidates_per_source=60",
    ])
    generate.run(spark, cfg)
    outcomes = {}
    for day in DAYS[:2]:
        outcomes[day] = nightly.run(spark, cfg, day)
    return cfg, outcomes


def test_stage_runs_are_recorded_with_cadence_and_waiting_models(spark, nights):
    cfg, outcomes = nights
    runs = {(r["run_date"], r["stage"]): r["status"] for r in delta_io.read(spark, cfg, GOLD_RUNS).collect()}
    stages = list(nightly.STAGES)
    for day in DAYS[:2]:
        assert {s for (d, s) in runs if d == day} == set(stages)
    assert runs[(DAYS[0], "train")] == "waiting_for_history"   # one day of data: nothing to validate on
    assert runs[(DAYS[0], "evaluate")] == "waiting_for_history"
    assert runs[(DAYS[0], "recommend")] == "succeeded"
    assert runs[(DAYS[1], "train")] == "succeeded"


def test_a_failed_stage_fails_the_run_and_a_rerun_resumes_there(spark, nights, monkeypatch):
    cfg, _ = nights
    day = DAYS[2]

    def crashing(k, cap, lam):
        def pick(frame):
            raise RuntimeError("executor killed during recommend")
        return pick
    with monkeypatch.context() as patch:
        patch.setattr(recommend, "diversify", crashing)
        with pytest.raises(Exception, match="executor killed during recommend"):
            nightly.run(spark, cfg, day)
    runs = {r["stage"]: r["status"] for r in delta_io.read(spark, cfg, GOLD_RUNS).where(
        F.col("run_date") == F.lit(day)).collect()}
    assert runs["recommend"] == "failed" and runs["als"] == "succeeded" and runs["train"] == "reused"
    assert recs_of(spark, cfg, day) == []  # nothing half-written
    outcome = nightly.run(spark, cfg, day)
    assert outcome["clean"].startswith("skipped") and outcome["recommend"].startswith("succeeded")
    resumed = recs_of(spark, cfg, day)
    recommend.run(spark, cfg, day)  # the same stage again, uninterrupted
    assert recs_of(spark, cfg, day) == resumed and len(resumed) > 0


def test_every_user_gets_exactly_k_tracks_with_the_artist_cap(spark, nights):
    cfg, _ = nights
    for day in DAYS:
        recs = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
        users = delta_io.read(spark, cfg, SILVER_USERS).where(F.col("first_seen_date") <= F.lit(day)).count()
        per_user = recs.groupBy("user_id").agg(F.count("*").alias("n"), F.countDistinct("track_id").alias("t"),
                                               F.min("rank").alias("lo"), F.max("rank").alias("hi"))
        assert per_user.count() == users
        assert per_user.where((F.col("n") != K) | (F.col("t") != K) | (F.col("lo") != 1) | (F.col("hi") != K)).count() == 0
        assert recs.groupBy("user_id", "artist_name").count().where(F.col("count") > 2).count() == 0
        assert recs.where(F.col("score").isNull() | F.col("track_name").isNull()).count() == 0


def test_cold_start_users_get_full_lists_from_segments_and_popularity(spark, nights):
    cfg, _ = nights
    day = DAYS[2]
    plays = delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") <= F.lit(day))
    cold = {r["user_id"] for r in plays.groupBy("user_id").count().where(F.col("count") < 40).collect()}
    assert cold
    recs = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    cold_recs = recs.where(F.col("user_id").isin(*cold))
    assert {r[0] for r in cold_recs.select("source").distinct().collect()} <= {"segment", "popularity"}
    assert cold_recs.groupBy("user_id").count().where(F.col("count") != K).count() == 0
    warm_sources = {r[0] for r in recs.where(~F.col("user_id").isin(*cold)).select("source").distinct().collect()}
    assert warm_sources & {"als", "lstm", "item2vec", "history"}


def test_excluded_window_and_rerun_replaces_the_date_atomically(spark, nights):
    cfg, _ = nights
    day = DAYS[2]
    strict = with_overrides(cfg, ["recommend.exclude_played_days=2"])
    recommend.run(spark, strict, day)
    recs = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    lately = delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") >= F.lit(DAYS[1]))
    assert recs.join(lately, ["user_id", "track_id"]).count() == 0
    assert recs.groupBy("user_id").count().where(F.col("count") != K).count() == 0
    before_other_days = recs_of(spark, cfg, DAYS[0])
    recommend.run(spark, strict, day)
    assert delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day)).count() == recs.count()
    assert recs_of(spark, cfg, DAYS[0]) == before_other_days


def test_consumers_read_todays_recommendations_without_spark_and_by_sql(spark, nights):
    cfg, _ = nights
    day = DAYS[2]
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
    day = DAYS[2]
    from pathlib import Path
    page = (Path(cfg.warehouse) / "reports" / f"evaluate-{day}.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "long tail" in page and "<table>" in page
    assert "Yesterday's recommendations against today's plays" in page
    from jobs.tables import GOLD_METRICS
    served = delta_io.read(spark, cfg, GOLD_METRICS).where((F.col("run_date") == F.lit(day))
                                                           & (F.col("model") == "served_yesterday"))
    assert served.where("metric = 'ndcg'").count() == 1


def test_the_airflow_dag_example_compiles():
    import py_compile
    from conftest import ROOT
    py_compile.compile(str(ROOT / "conf" / "airflow_dag.py"), doraise=True)
    assert "submit.sh nightly" in (ROOT / "conf" / "airflow_dag.py").read_text()


def test_feedback_drops_dislikes_boosts_likes_and_damps_skips(spark, nights):
    import json
    from pathlib import Path

    from jobs import ingest
    from jobs.tables import SILVER_FEEDBACK, SILVER_QUARANTINE, SILVER_TRACKS
    cfg, _ = nights
    day = DAYS[2]
    recommend.run(spark, cfg, day)
    recs = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    user = recs.where(F.col("source") != "popularity").orderBy("user_id").first()["user_id"]
    mine = {r["rank"]: r for r in recs.where(F.col("user_id") == user).collect()}
    tracks = {r["track_id"]: r for r in delta_io.read(spark, cfg, SILVER_TRACKS).collect()}

    def event(kind, track_id, ts=1767434400):
        t = tracks[track_id]
        return json.dumps({"user_name": user, "event": kind, "timestamp": ts, "track_metadata": {
            "artist_name": t["artist_name"], "track_name": t["track_name"],
            "additional_info": {"recording_mbid": t["recording_mbid"]}}})

    disliked, liked, skipped = mine[1]["track_id"], mine[K]["track_id"], mine[2]["track_id"]
    folder = Path(ingest.raw_dir(cfg, "feedback-jsonl", day))
    folder.mkdir(parents=True)
    (folder / "f.jsonl").write_text("\n".join([event("dislike", disliked), event("like", liked),
                                               event("skip", skipped), event("shrug", liked)]) + "\n")
    assert ingest.run(spark, cfg, day, "feedback-jsonl")["feedback-jsonl"] == {"feedback": 3, "quarantined": 1}
    assert delta_io.read(spark, cfg, SILVER_FEEDBACK).count() == 3
    quarantine = delta_io.read(spark, cfg, SILVER_QUARANTINE).where(F.col("format") == "feedback-jsonl")
    assert [r["reason"] for r in quarantine.collect()] == ["unknown_event"]

    recommend.run(spark, cfg, day)
    after = {r["track_id"]: r for r in delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS)
             .where((F.col("run_date") == F.lit(day)) & (F.col("user_id") == user)).collect()}
    assert disliked not in after and len(after) == K
    assert after[liked]["score"] == pytest.approx(mine[K]["score"] * 1.5)
    if skipped in after:
        assert after[skipped]["score"] == pytest.approx(mine[2]["score"] * 0.5)
    # the listens' quarantine of the day is untouched by feedback's
    assert delta_io.read(spark, cfg, SILVER_QUARANTINE).where(
        (F.col("ingest_date") == F.lit(day)) & (F.col("format") != "feedback-jsonl")).count() > 0


def test_blend_sums_weighted_signals_log_plays_and_shares_of_each_sources_best(spark):
    import math
    plays = spark.createDataFrame([(1, 10, i) for i in range(40)] + [(1, 11, i) for i in range(3)]
                                  + [(1, 12, 0), (2, 10, 0)], "user_idx int, track_idx int, ts int")
    users = spark.createDataFrame([(1,), (2,)], "user_idx int")
    als = spark.createDataFrame([(1, 10, 0.5), (1, 13, 1.0), (1, 14, -0.2), (2, 13, -0.1)],
                                "user_idx int, track_idx int, score double")
    parts = [recommend.history_scores(plays, users, 2), recommend.source_scores(als, 3, "als")]
    signal = {(r["user_idx"], r["track_idx"], r["source"]): r["signal"] for p in parts for r in p.collect()}
    # history: the top 2 (track 12 is cut), ln(plays) up to the 0.01-play tie-break; ALS: shares of
    # the user's best, negative scores count 0
    assert signal == {(1, 10, "history"): pytest.approx(math.log(40), abs=1e-3),
                      (1, 11, "history"): pytest.approx(math.log(3), abs=1e-2),
                      (2, 10, "history"): pytest.approx(0.0, abs=1e-2),
                      (1, 13, "als"): 1.0, (1, 10, "als"): 0.5, (1, 14, "als"): 0.0, (2, 13, "als"): 0.0}
    conf = RecommendConf(weight_history=1.0, weight_als=2.0)
    blended = {(r["user_idx"], r["track_idx"]): (r["score"], r["source"]) for r in recommend.blend(parts, conf).collect()}
    assert blended[(1, 10)] == (pytest.approx(math.log(40) + 1.0, abs=1e-3), "history")
    assert blended[(1, 13)] == (pytest.approx(2.0), "als")
    assert blended[(1, 11)][1] == "history"
    assert sorted(blended, key=lambda u_t: -blended[u_t][0])[:3] == [(1, 10), (1, 13), (1, 11)]
    cold = spark.createDataFrame([(2,)], "user_idx int")
    assert {r["user_idx"] for r in recommend.blend(parts, conf, cold).collect()} == {1}  # cold: no warm sources


def test_blend_weights_are_searched_on_a_validation_split(spark, nights):
    from jobs import evaluate
    cfg, _ = nights
    grid = {"history": [0.0, 1.0], "als": [0.0, 1.0]}
    best, points = evaluate.tune_blend(spark, cfg, DAYS[1], grid)
    assert [w for w, _ in points] == [{"history": h, "als": a} for h in (0.0, 1.0) for a in (0.0, 1.0)]
    scores = {(w["history"], w["als"]): s for w, s in points}
    assert best == max(points, key=lambda p: p[1])[0] and all(0.0 <= s <= 1.0 for s in scores.values())
    # replays dominate the next day of generated listening: the user's history must count
    assert scores[(1.0, 0.0)] > scores[(0.0, 0.0)] and best["history"] == 1.0
    with pytest.raises(ValueError, match="albums"):
        evaluate.tune_blend(spark, cfg, DAYS[1], {"albums": [1.0]})


def test_a_forced_nightly_reruns_every_stage_and_reproduces_the_date(spark, nights):
    cfg, _ = nights
    day = DAYS[0]
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
    assert {s: r["status"] for s, r in runs.items()} == {s: r["status"] for s, r in earlier.items()}
    assert delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") == F.lit(day)).count() == plays_before
    assert recs_of(spark, cfg, day) == before
