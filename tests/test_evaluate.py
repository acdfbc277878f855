"""evaluate: every source and baseline scored on a temporal split of generated plays."""
from __future__ import annotations

from pyspark.sql import functions as F

from conftest import NIGHTS, rows_for
from jobs import evaluate
from jobs.core.tables import GOLD_METRICS

D = NIGHTS[-1]


def test_evaluate_scores_every_source_and_als_beats_popularity(spark, modelled):
    cfg = modelled
    results = evaluate.run(spark, cfg, D)
    assert set(results) == {"popularity", "most_played", "item2vec", "als", "blend"}
    stored = rows_for(spark, cfg, GOLD_METRICS).where(F.col("stage") == "evaluate")
    assert stored.select("model").distinct().count() == 5
    assert stored.where("metric = 'ndcg' AND k = 10").count() == 5
    for values in results.values():
        assert 0 <= values["ndcg"] <= 1 and 0 < values["coverage"] <= 1 and values["novelty"] > 0
    assert results["als"]["ndcg"] > 1.5 * results["popularity"]["ndcg"]
    assert results["most_played"]["ndcg"] > results["popularity"]["ndcg"]
    n = stored.count()
    evaluate.run(spark, cfg, D)
    assert rows_for(spark, cfg, GOLD_METRICS).where(F.col("stage") == "evaluate").count() == n
