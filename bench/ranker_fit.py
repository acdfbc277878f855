"""The rank stage's XGBoost fit in the driver against SparkXGBRanker's distributed fit, by size.

    .venv/bin/python bench/ranker_fit.py WAREHOUSE DATE [--copies 1 4 16 64] [--rounds 3]

Reads (never writes) the rank stage's learning data of DATE in WAREHOUSE (`jobs.rank.learning_data`:
the labelled candidates of the training nights, and the validation night), then for each `--copies`
factor trains on that many copies of the training rows (each copy its own queries), `--rounds`
times each way, interleaved: `ranker.fit(..., in_driver=True)` (the rows collected to the driver,
XGBoost with a thread per task slot) and `in_driver=False` (rank.workers barrier tasks). It prints
the median seconds of each, the ratio, and both models' NDCG@evaluate.k on the validation night (the
same method, so about the same quality). `rank.driver_below_rows` chooses between the two by the
training rows; this is the measurement behind its default.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from _common import session


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse")
    ap.add_argument("date", type=dt.date.fromisoformat)
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    spark, cfg = session([f"warehouse={args.warehouse}", "spark.event_log=false"])
    from pyspark.sql import functions as F

    from jobs import rank
    from jobs.core.session import task_slots
    from models import ranker

    data = rank.learning_data(spark, cfg, args.date)
    if data.train is None:
        raise SystemExit(f"ranker_fit: {args.date} has one labelled night only: nothing to train on")
    base = data.train.cache()
    valid = data.valid.cache()
    span = base.agg(F.max("qid")).first()[0] + 1
    params, k, threads = ranker.RankerParams.of(cfg.rank), cfg.evaluate.k, task_slots(spark)
    print(f"{base.count():,} training rows ({len(data.train_nights)} nights), validation night {data.valid_night}, "
          f"{threads} task slots, rank.workers {cfg.rank.workers}", flush=True)
    for copies in args.copies:
        # each copy its own queries: the query ids shifted above every real one
        train = base.crossJoin(spark.range(copies).withColumnRenamed("id", "_copy")) \
            .withColumn("qid", F.col("qid") + F.col("_copy") * F.lit(span)).drop("_copy") \
            .repartition(cfg.rank.workers).cache()
        rows = train.count()
        times: dict[str, list[float]] = {"driver": [], "spark": []}
        models = {}
        for r in range(args.rounds):
            for engine in (("driver", "spark") if r % 2 == 0 else ("spark", "driver")):
                start = time.monotonic()
                models[engine] = ranker.fit(train, params, cfg.rank.workers, in_driver=engine == "driver",
                                            threads=threads)
                times[engine].append(time.monotonic() - start)
        scores = {engine: ranker.evaluate_configs(valid, data.valid_next, k, {"ranker": model})[0]["ranker"]
                  for engine, model in models.items()}
        a, b = statistics.median(times["driver"]), statistics.median(times["spark"])
        print(f"{rows:>10,} rows: driver {a:6.2f} s, spark {b:6.2f} s, x{a / b:.2f}; validation ndcg@{k} "
              f"driver {scores['driver']['ndcg']:.4f}, spark {scores['spark']['ndcg']:.4f} "
              f"({args.rounds} rounds each, interleaved)", flush=True)
        train.unpersist()
    spark.stop()


if __name__ == "__main__":
    main()
