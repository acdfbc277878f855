"""als: ALS against planted structure, and the als job's grid search, factors and model row."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
from pyspark.sql import functions as F

from conftest import NIGHTS, rows_for
from jobs import als
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.tables import GOLD_ALS_ITEM_FACTORS, GOLD_ALS_USER_FACTORS, GOLD_MODELS, SILVER_PLAYS
from models.als import AlsParams, AlsSettings, top_n

D = NIGHTS[-1]


def test_als_ranks_held_out_items_of_the_users_taste_group_first(spark, base_cfg):
    rng = np.random.default_rng(5)
    rows, held_out = [], {}
    for user in range(40):
        group = user % 2
        items = [i for i in range(60) if i % 2 == group]
        liked = rng.permutation(items)
        held_out[user] = set(int(i) for i in liked[:5])
        rows += [(user, int(i), int(rng.integers(1, 6))) for i in liked[5:]]
    pairs = spark.createDataFrame(rows, "user_idx int, track_idx int, plays int").withColumn(
        "confidence", F.log1p("plays") + 1.0)
    settings = AlsSettings.of(with_overrides(base_cfg, ["als.max_iter=10"]).als)
    model = settings.fit(pairs, AlsParams(rank=4, reg_param=0.05, alpha=10.0))
    recs = {r["user_idx"]: r["recs"] for r in top_n(model, pairs.select("user_idx").distinct(), 60).collect()}
    for user, items in held_out.items():
        ranked = recs[user]
        same_group = [i for i in ranked if i % 2 == user % 2]
        other = [i for i in ranked if i % 2 != user % 2]
        assert max(ranked.index(i) for i in items) < min(ranked.index(i) for i in other), user
        assert len(same_group) == 30


def test_als_fits_one_block_per_task_slot_unless_als_blocks_says(spark, base_cfg):
    """MLlib's default of 10 blocks made 10 tasks of every iteration whatever the cores; the factors
    come back partitioned by block, so their partitions are the blocks the fit used."""
    pairs = spark.createDataFrame([(u, i, 1.0 + (u * i) % 3) for u in range(12) for i in range(8) if (u + i) % 3],
                                  "user_idx int, track_idx int, confidence double")
    params = AlsParams(rank=2, reg_param=0.1, alpha=1.0)
    default = AlsSettings.of(with_overrides(base_cfg, ["als.max_iter=2"]).als).fit(pairs, params)
    assert default.userFactors.rdd.getNumPartitions() == spark.sparkContext.defaultParallelism != 10
    three = AlsSettings.of(with_overrides(base_cfg, ["als.max_iter=2", "als.blocks=3"]).als).fit(pairs, params)
    assert three.userFactors.rdd.getNumPartitions() == three.itemFactors.rdd.getNumPartitions() == 3
    # the als stage fits one block per task slot, whatever spark.default.parallelism says (4 in
    # conf/local.yaml on 2 cores), unless als.blocks says
    four = SimpleNamespace(sparkContext=SimpleNamespace(master="local[2]", defaultParallelism=4))
    assert als.settings_for(four, base_cfg.als).blocks == 2 == als.settings_for(spark, base_cfg.als).blocks
    assert als.settings_for(four, with_overrides(base_cfg, ["als.blocks=3"]).als).blocks == 3
    cluster = SimpleNamespace(sparkContext=SimpleNamespace(master="spark://10.0.0.1:7077", defaultParallelism=48))
    assert als.settings_for(cluster, base_cfg.als).blocks == 48


def test_als_job_grid_search_writes_factors_model_and_metadata(spark, modelled):
    cfg = modelled
    summary = als.run(spark, cfg, D)
    assert summary["params"]["grid_size"] == 2 and summary["params"]["rank"] in (4, 8)
    model_row = delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'als'").collect()
    assert len(model_row) == 1
    metrics = json.loads(model_row[0]["metrics"])
    assert 0 < metrics["ndcg@10"] <= 1 and metrics["users"] > 0
    assert json.loads(model_row[0]["params"])["rank"] == summary["params"]["rank"]
    users = rows_for(spark, cfg, GOLD_ALS_USER_FACTORS)
    assert users.where(F.size("factors") != summary["params"]["rank"]).count() == 0
    n_items = rows_for(spark, cfg, GOLD_ALS_ITEM_FACTORS).count()
    assert n_items == delta_io.read(spark, cfg, SILVER_PLAYS).select("track_idx").distinct().count()
    als.run(spark, cfg, D)
    assert rows_for(spark, cfg, GOLD_ALS_ITEM_FACTORS).count() == n_items
    assert delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'als'").count() == 1


def test_als_searches_within_its_time_budget_and_reuses_the_choice_between_searches(spark, modelled):
    from jobs.core.config import with_overrides
    cfg = with_overrides(modelled, ["als.grid_ranks=[4, 8]", "als.grid_reg_params=[0.05, 0.5]",
                                    "als.grid_confidences=[log, linear]", "als.tune_minutes=0",
                                    "als.tune_every_days=7"])
    day = NIGHTS[1]
    first = als.run(spark, cfg, day)["params"]
    assert first["tried"] == 1 and first["grid_size"] == 8  # a budget of 0: only the first set is tried
    assert first["searched_on"] == day.isoformat()
    wide = with_overrides(cfg, ["als.tune_minutes=10"])
    searched = als.run(spark, wide, day)["params"]
    assert searched["tried"] == 8  # every combination within a wide budget, the best kept
    again = als.run(spark, wide, NIGHTS[2])["params"]  # the next night, within als.tune_every_days
    assert again["tried"] == 0 and again["searched_on"] == day.isoformat()
    assert (again["rank"], again["reg_param"], again["confidence"]) == (searched["rank"], searched["reg_param"],
                                                                        searched["confidence"])
    row = delta_io.read(spark, cfg, GOLD_MODELS).where(f"model = 'als' AND run_date = '{NIGHTS[2]}'").first()
    assert json.loads(row["metrics"])["ndcg@10"] > 0  # the search's validation carried along


def test_als_search_fits_sets_at_once_and_chooses_as_it_would_one_after_another(spark, modelled):
    """als.search_parallelism: the sets are fitted from driver threads sharing the application, so
    their fits overlap in time, and the choice, its metrics and the count tried are those of one fit
    after another."""
    import time

    from jobs.core.tables import PLAY_EVENTS
    from models.als import grid, validate

    class Timed(AlsSettings):
        spans: list = []

        def fit(self, pairs, p):
            start = time.monotonic()
            model = super().fit(pairs, p)
            self.spans.append((start, time.monotonic()))
            return model

    def overlaps(spans):
        return sum(a0 < b1 and b0 < a1 for i, (a0, a1) in enumerate(spans) for b0, b1 in spans[i + 1:])

    plays = delta_io.read(spark, modelled, SILVER_PLAYS).select(*PLAY_EVENTS)
    settings = Timed.of(with_overrides(modelled, ["als.max_iter=3"]).als)
    candidates = grid([4], [0.05], [10.0], ["log", "linear"], seed=7)
    one = validate(plays, D, 1, candidates, settings, 10, "ndcg", parallelism=1)
    assert len(Timed.spans) == 2 and overlaps(Timed.spans) == 0
    Timed.spans.clear()
    two = validate(plays, D, 1, candidates, settings, 10, "ndcg", parallelism=2)
    assert len(Timed.spans) == 2 and overlaps(Timed.spans) >= 1
    assert two == one and one[2] == 2 and one[1]["ndcg"] > 0
    Timed.spans.clear()
    assert validate(plays, D, 1, candidates, settings, 10, "ndcg", budget_s=0, parallelism=2)[2] == 1
