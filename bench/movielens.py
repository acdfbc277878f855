"""ALS against global popularity on real data: MovieLens-100K as implicit feedback.

    .venv/bin/python bench/movielens.py [--test-days 30]

MovieLens-100K (943 users, 1,682 movies, 100,000 timestamped ratings; research use only) ships in
the recbole 1.2.1 wheel on PyPI; the first run downloads that wheel with pip into the setlist cache
and extracts the one file. Every rating counts as one play (implicit feedback). The split is
chronological: the last --test-days days test, everything before trains; test users are those
with history. Movies are watched once, so every source ranks only movies the user has not rated
in train (the usual protocol for this data set). ALS's hyperparameters are chosen on a validation
window (the last --test-days days of train, same protocol), never on the test window: a grid of
ranks, regularisations and alphas. Prints NDCG@10 and more for each source and the ratio to popularity.
"""
from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from _common import session

MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"


def ml100k(cache: Path) -> Path:
    target = cache / "data" / "ml-100k.inter"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "recbole==1.2.1"],
                       check=True)
        wheel = next(Path(tmp).glob("recbole-1.2.1-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            target.write_bytes(z.read(MEMBER))
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--test-days", type=int, default=60)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    spark, cfg = session(["warehouse=/tmp/setlist-bench-ml/warehouse", "raw_path=/tmp/setlist-bench-ml/raw",
                          "log_level=WARNING", "spark.master=local[2]", "spark.conf.spark.sql.shuffle.partitions=4",
                          *args.set])
    from pyspark.sql import functions as F

    from jobs.core.session import cache_dir
    from models import sources
    from models.als import AlsParams, AlsSettings
    from models.scoring import ranked_lists, score_lists, temporal_split, truth_of

    path = ml100k(cache_dir())
    raw = spark.read.option("sep", "\t").option("header", "true").csv(str(path))
    plays = raw.select(F.col("`user_id:token`").cast("int").alias("user_idx"),
                       F.col("`item_id:token`").cast("int").alias("track_idx"),
                       F.timestamp_seconds(F.col("`timestamp:float`").cast("long")).alias("ts"))
    plays = plays.withColumn("play_date", F.to_date("ts")).persist()
    last = plays.agg(F.max("play_date")).first()[0]
    train, test = temporal_split(plays, last, args.test_days)
    truth = truth_of(test, train).persist()
    users = truth.select("user_idx")
    k = cfg.evaluate.k
    seen = train.select("user_idx", "track_idx").distinct()
    widest = seen.groupBy("user_idx").count().agg(F.max("count")).first()[0]
    pool = k + widest  # enough candidates to fill k after dropping what the user has rated

    def unseen(scored):
        return ranked_lists(scored.join(seen, ["user_idx", "track_idx"], "left_anti"), k)

    def als_lists(history, for_users, params, seen_pairs):
        settings = AlsSettings.of(cfg.als)
        model = settings.fit(settings.interactions(history, last), params)
        scored = model.recommendForUserSubset(for_users, pool).select(
            "user_idx", F.explode("recommendations").alias("r")).select(
            "user_idx", F.col("r.track_idx").alias("track_idx"), F.col("r.rating").alias("score"))
        return ranked_lists(scored.join(seen_pairs, ["user_idx", "track_idx"], "left_anti"), k)

    valid_day = last - dt.timedelta(days=args.test_days)
    fit_part, valid_part = temporal_split(train, valid_day, args.test_days)
    valid_truth = truth_of(valid_part, fit_part).persist()
    fit_seen = fit_part.select("user_idx", "track_idx").distinct()
    best = None
    for rank in (16, 64):
        for reg in (0.1, 0.5, 1.0):
            for alpha in (5.0, 20.0):
                params = AlsParams(rank, reg, alpha)
                ndcg = score_lists(als_lists(fit_part, valid_truth.select("user_idx"), params, fit_seen),
                                   valid_truth, k)["ndcg"]
                print(f"  validation {params}: ndcg@{k} {ndcg:.4f}", flush=True)
                if best is None or ndcg > best[1]:
                    best = (params, ndcg)
    chosen = best[0]
    lists_by_source = {
        "popularity": unseen(sources.popular(train, users, pool)),
        "als": als_lists(train, users, chosen, seen),
    }
    print(f"MovieLens-100K: {plays.count()} ratings, test window {args.test_days} days up to {last}, "
          f"{truth.count()} test users; als chosen on validation: {chosen}")
    results = {name: score_lists(lists, truth, k) for name, lists in lists_by_source.items()}
    for name, values in results.items():
        print(f"{name:<12} ndcg@{k} {values['ndcg']:.4f} recall@{k} {values['recall']:.4f} "
              f"map@{k} {values['map']:.4f} hit_rate@{k} {values['hit_rate']:.4f}  "
              f"x{values['ndcg'] / results['popularity']['ndcg']:.2f} of popularity's ndcg")
    spark.stop()


if __name__ == "__main__":
    main()
