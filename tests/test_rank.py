"""rank: the learned ranker against the linear blend where the right weights are known, and the
fallback to the users' most played tracks when the ranker is planted to be bad; on real Spark,
real Delta tables (gold.candidates, silver.plays) and XGBoost's Spark ranker."""
from __future__ import annotations

import datetime as dt
import json
import math
import random

import pytest
from pyspark.sql import functions as F

from jobs import nightly, rank, recommend
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.records import write_metrics
from jobs.core.tables import GOLD_CANDIDATES, GOLD_MODELS, GOLD_RUNS, SILVER_PLAYS
from models import ranker
from models.features import FEATURES

NIGHTS = [dt.date(2026, 2, 1) + dt.timedelta(days=i) for i in range(4)]  # candidates of 3 nights, plays after each
USERS, CANDIDATES, PLAYED = 40, 30, 5


def plant(spark, cfg, truth: str, seed: int = 3) -> None:
    """Candidates of NIGHTS[:3] with random source signals and play counts, and, the day after each
    night, plays of every user's PLAYED best candidates by a known rule: `als` (3 x ALS + item2vec:
    the blend's default weights, which favour the user's history, are wrong here) or `history` (the
    most played first: what most_played serves)."""
    rng = random.Random(seed)
    candidates, plays = [], []
    for night in NIGHTS[:3]:
        for user in range(1, USERS + 1):
            rows = []
            for track in range(1, CANDIDATES + 1):
                row = {f: None for f in FEATURES}
                als, i2v, played = rng.random(), rng.random(), rng.choice([0, 0, 1, 2, 3, 5, 8])
                row |= {"als_signal": als, "item2vec_signal": i2v, "plays": float(played),
                        "history_signal": math.log(played) if played else None,
                        "days_since_last": float(rng.randint(0, 20)) if played else None}
                row["blend"] = 1.0 * (row["history_signal"] or 0.0) + 2.0 * als + 0.05 * i2v  # conf's defaults
                row |= {"run_date": night, "user_idx": user, "track_idx": track, "source": "als"}
                rows.append(row)
            key = (lambda r: 3 * r["als_signal"] + r["item2vec_signal"]) if truth == "als" else \
                (lambda r: r["plays"] + 0.01 * r["als_signal"])
            for r in sorted(rows, key=key, reverse=True)[:PLAYED]:
                day = night + dt.timedelta(days=1)
                plays.append({"user_id": f"u{user}", "user_idx": user, "track_id": f"t{r['track_idx']}",
                              "track_idx": r["track_idx"], "ts": dt.datetime.combine(day, dt.time(12)),
                              "play_date": day, "session_id": user, "session_position": 1,
                              "ingest_date": NIGHTS[3]})
            candidates += rows
    frame = spark.createDataFrame(candidates, GOLD_CANDIDATES.schema)
    for night in NIGHTS[:3]:
        delta_io.replace_date(frame.where(F.col("run_date") == F.lit(night)), cfg, GOLD_CANDIDATES, "run_date", night)
    played = spark.createDataFrame([p | {k: None for k in SILVER_PLAYS.columns if k not in p} for p in plays],
                                   SILVER_PLAYS.schema)
    delta_io.replace_date(played, cfg, SILVER_PLAYS, "ingest_date", NIGHTS[3])


@pytest.fixture
def rank_cfg(cfg):
    return with_overrides(cfg, ["rank.train_days=3", "rank.n_estimators=60", "rank.max_depth=4", "rank.workers=1"])


@pytest.mark.parametrize("engine", ["driver", "spark"])
def test_the_ranker_learns_the_weights_the_blend_gets_wrong(spark, rank_cfg, engine):
    # 2,400 training rows: fitted in the driver by default (rank.driver_below_rows), by Spark tasks at 0
    cfg = rank_cfg if engine == "driver" else with_overrides(rank_cfg, ["rank.driver_below_rows=0"])
    plant(spark, cfg, "als")
    # the evaluate stage's record of the night before the validation night (run date = night + 1):
    # the ranker won there too; a row of the validation night itself (run date NIGHTS[3]) must not count
    write_metrics(spark, cfg, NIGHTS[2], "evaluate", 10, {"most_played": {"ndcg": 0.5, "users": 40},
                                                          "ranker": {"ndcg": 0.6, "users": 40}})
    write_metrics(spark, cfg, NIGHTS[3], "evaluate", 10, {"most_played": {"ndcg": 0.9, "users": 4000},
                                                          "ranker": {"ndcg": 0.0, "users": 4000}})
    day = NIGHTS[3]  # learns from the first two nights, validates on the third
    result = rank.run(spark, cfg, day)
    validation = result["validation"]
    assert result["validation_night"] == NIGHTS[2].isoformat() and result["examples"] == 2 * USERS * CANDIDATES
    # the known rule orders each user's candidates perfectly; the blend's weights do not
    assert validation["ranker"]["ndcg"] > 0.8
    assert validation["ranker"]["ndcg"] > validation["blend"]["ndcg"] + 0.2
    assert validation["ranker"]["ndcg"] > validation["most_played"]["ndcg"] + 0.2
    assert result["served"] == "ranker"
    assert f"and over 2 nights ({NIGHTS[1]} and {NIGHTS[2]}: mean ndcg gain +" in result["why"]
    row = delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'ranker'").first()
    params, metrics = json.loads(row["params"]), json.loads(row["metrics"])
    assert params["engine"] == engine
    assert (row["backend"], row["world_size"]) == (("xgboost", 2) if engine == "driver" else ("xgboost-spark", 1))
    assert metrics["earlier_record"]["ranker"] == {"gain": pytest.approx(0.1 * 40), "users": 40,
                                                   "nights": [NIGHTS[1].isoformat()]}
    assert params["record_nights"] == 3
    assert params["train_nights"] == [d.isoformat() for d in NIGHTS[:2]] and params["features"] == list(FEATURES)
    assert params["candidates_version"] >= 0 and metrics["served"] == "ranker"
    top = list(metrics["importance"])
    assert "als_signal" in top[:2] and "item2vec_signal" in top[:5]  # what the rule uses (blend carries ALS too)
    assert recommend.served_config(spark, cfg, day)[0] == "ranker"
    scored = ranker.score_config(delta_io.read(spark, cfg, GOLD_CANDIDATES), "ranker", ranker.load(row["path"]))
    assert scored.where((F.col("score") <= 0) | (F.col("score") >= 1)).count() == 0  # a sigmoid: positive


def test_a_ranker_planted_to_be_bad_is_not_served_and_the_run_says_why(spark, rank_cfg, monkeypatch):
    cfg = rank_cfg
    plant(spark, cfg, "history")
    fit = ranker.fit

    def inverted(frame, params, workers, features=FEATURES, **how):  # learns the opposite of what users did
        return fit(frame.withColumn("label", F.lit(1) - F.col("label")), params, workers, features, **how)
    monkeypatch.setattr(ranker, "fit", inverted)
    outcome = nightly.run_stages(spark, cfg, NIGHTS[3], ("rank",))
    assert outcome["rank"].endswith("serving most_played")
    runs = delta_io.read(spark, cfg, GOLD_RUNS).where(F.col("stage") == "rank").first()
    recorded = json.loads(runs["rows"])
    assert runs["status"] == "succeeded" and recorded["served"] == "most_played"
    assert "ranker does not beat most_played" in recorded["why"]
    v = recorded["validation"]
    assert v["ranker"]["ndcg"] < 0.3 < 0.9 < v["most_played"]["ndcg"]  # ties in plays break by recency here
    assert recommend.served_config(spark, cfg, NIGHTS[3])[0] == "most_played"


def test_each_night_and_user_is_its_own_query_as_xgboost_reads_it(spark):
    import pandas as pd
    import xgboost
    # three nights of 2026 (query ids such as days * 2**31 + user are far above float32's exact range)
    nights = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(3)]
    users = [3, 70, 1_000_003]
    candidates = spark.createDataFrame([(n, u, t, float(t)) for n in nights for u in users for t in range(4)],
                                       "run_date date, user_idx int, track_idx int, plays double")
    # every user played track 1 the next day but user 70 after the second night, who played nothing
    labels = spark.createDataFrame([(n, u, 1, 1) for n in nights for u in users if (n, u) != (nights[1], 70)],
                                   "run_date date, user_idx int, track_idx int, label int")
    rows = ranker.labelled(candidates, labels).orderBy("qid", "track_idx").toPandas()
    assert len(rows) == 8 * 4 and rows["label"].sum() == 8  # the query without a positive is left out
    # XGBoost's Spark estimator passes the ids as a pandas Series: eight queries of four rows each
    matrix = xgboost.DMatrix(rows[["plays"]], rows["label"], qid=pd.Series(rows["qid"]))
    assert list(matrix.get_uint_info("group_ptr")) == list(range(0, 33, 4))
    assert sorted(rows["qid"].unique()) == list(range(8))  # consecutive from 0, night after night
    assert rows.groupby("qid")[["run_date", "user_idx"]].nunique().eq(1).all().all()
    assert rows.groupby(["run_date", "user_idx"])["qid"].nunique().eq(1).all()
    # rank.query=night: one query per night holding its users with a positive (3, 2 and 3 users)
    nightly_rows = ranker.labelled(candidates, labels, "night").orderBy("qid", "user_idx", "track_idx").toPandas()
    matrix = xgboost.DMatrix(nightly_rows[["plays"]], nightly_rows["label"], qid=pd.Series(nightly_rows["qid"]))
    assert list(matrix.get_uint_info("group_ptr")) == [0, 12, 20, 32]
    assert nightly_rows.groupby("qid")["run_date"].nunique().eq(1).all()


def test_without_a_labelled_night_the_stage_waits_and_recommend_serves_the_default(spark, rank_cfg):
    cfg = rank_cfg
    from jobs.core.errors import NotEnoughHistory
    with pytest.raises(NotEnoughHistory, match="no candidates"):
        rank.run(spark, cfg, NIGHTS[0])
    assert recommend.served_config(spark, cfg, NIGHTS[0])[:2] == ("most_played", None)


def test_a_challenger_replaces_most_played_only_when_it_wins_with_confidence():
    from models.ranker import confidence_of_gain
    night = NIGHTS[2]
    # 40 users, the ranker better for 30 of them: a sure win
    base = {u: 0.2 for u in range(40)}
    sure = {u: 0.5 if u < 30 else 0.1 for u in range(40)}
    assert confidence_of_gain(sure, base) > 0.99
    # the same mean gain carried by 2 users of 40: noise
    lucky = {u: 3.2 if u < 2 else 0.2 for u in range(40)}
    assert 0.5 < confidence_of_gain(lucky, base) < 0.95
    validation = {"most_played": {"ndcg": 0.2}, "blend": {"ndcg": 0.19}, "ranker": {"ndcg": 0.35}}
    served, why = rank.choose(validation, {"ranker": 0.99, "blend": 0.3}, 0.0, 0.95, night, 10)
    assert served == "ranker" and "99% of resamples" in why
    served, why = rank.choose(validation, {"ranker": 0.9, "blend": 0.3}, 0.0, 0.95, night, 10)
    assert served == "most_played" and "ranker is better than most_played in 90% of resamples" in why
    assert "blend does not beat most_played" in why
    served, _ = rank.choose(validation, {"ranker": 0.99, "blend": 0.3}, 1.0, 0.95, night, 10)
    assert served == "most_played"  # a gain below rank.min_gain (here 100%) is not enough


def test_a_challenger_that_wins_one_night_but_not_its_record_is_not_served():
    night = NIGHTS[2]
    validation = {"most_played": {"ndcg": 0.60, "users": 100}, "blend": {"ndcg": 0.62, "users": 100},
                  "ranker": {"ndcg": 0.58, "users": 100}}
    confidence = {"blend": 0.99, "ranker": 0.1}
    # the blend lost to most played by 0.03 over the 200 users of the two nights before: -6 + 2 < 0
    losing = {"blend": {"gain": -0.03 * 200, "users": 200, "nights": ["2026-02-01", "2026-02-02"]}}
    served, why = rank.choose(validation, confidence, 0.0, 0.95, night, 10, losing)
    assert served == "most_played"
    assert ("blend is better than most_played in 99% of resamples but not over 3 nights (2026-02-01, 2026-02-02 "
            f"and {night}: mean ndcg gain -0.0133)") in why
    # a smaller loss that the validation night outweighs: (-1 + 2) / 300 > 0
    close = {"blend": {"gain": -0.005 * 200, "users": 200, "nights": ["2026-02-01", "2026-02-02"]}}
    served, why = rank.choose(validation, confidence, 0.0, 0.95, night, 10, close)
    assert served == "blend" and "mean ndcg gain +0.0033" in why
    # no earlier record (the first evaluated nights): the validation night decides alone
    assert rank.choose(validation, confidence, 0.0, 0.95, night, 10, {})[0] == "blend"
