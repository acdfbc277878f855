"""evaluate: the lists of the night before, served and every configuration and source over the stored
candidates, scored against the next day's plays of the nightly warehouse; the regression flag."""
from __future__ import annotations

from pyspark.sql import functions as F

from conftest import NIGHTS, rows_for
from jobs import evaluate
from jobs.core.tables import GOLD_METRICS


def test_evaluate_scores_the_served_lists_every_configuration_and_every_source(spark, nights):
    cfg, _ = nights
    day = NIGHTS[1]  # the lists of NIGHTS[0] against the plays of NIGHTS[1]
    results = evaluate.run(spark, cfg, day)
    note = results.pop("note")
    assert {"most_played", "blend", "als", "item2vec", "segment", "popularity", "served_yesterday"} <= set(results)
    assert "ranker" not in results  # no ranker could be trained for the first night
    stored = rows_for(spark, cfg, GOLD_METRICS, day).where(F.col("stage") == "evaluate")
    assert stored.select("model").distinct().count() == len(results)
    assert stored.where("metric = 'ndcg' AND k = 10").count() == len(results)
    for values in results.values():
        assert 0 <= values["ndcg"] <= 1 and 0 < values["coverage"] <= 1 and values["users"] > 0
    assert len({v["users"] for v in results.values()}) == 1  # every list is scored on the same users
    # on generated listening people replay their favourites: the most played beat global popularity
    assert results["most_played"]["ndcg"] > results["popularity"]["ndcg"]
    assert note.startswith("served ndcg@10")
    n = stored.count()
    evaluate.run(spark, cfg, day)
    assert rows_for(spark, cfg, GOLD_METRICS, day).where(F.col("stage") == "evaluate").count() == n


def test_a_served_list_below_the_most_played_is_flagged_as_a_regression():
    worse = {"served_yesterday": {"ndcg": 0.41}, "most_played": {"ndcg": 0.50}}
    better = {"served_yesterday": {"ndcg": 0.55}, "most_played": {"ndcg": 0.50}}
    assert "REGRESSION: below" in evaluate.regression_note(worse, 10)
    assert "REGRESSION" not in evaluate.regression_note(better, 10)
    assert "no served lists" in evaluate.regression_note({"most_played": {"ndcg": 0.5}}, 10)
    # the most played lists served, scored through the stored lists: equal up to summation order
    level = {"served_yesterday": {"ndcg": 0.3}, "most_played": {"ndcg": 0.1 + 0.2}}
    assert "REGRESSION" not in evaluate.regression_note(level, 10)
    slightly = {"served_yesterday": {"ndcg": 0.29999}, "most_played": {"ndcg": 0.3}}
    assert "REGRESSION: below" in evaluate.regression_note(slightly, 10)
