"""Offline quality on generated data with planted structure: every source and baseline of
`evaluate` on a temporal split (train on the days before the last, test on the last).

    .venv/bin/python bench/quality.py [--days 6] [--users 300] [--tune-blend] [--next-track]
                                      [--workdir /tmp/setlist-bench-quality]

Generates logs, ingests and cleans each day, then runs evaluate for the last day in one local
session, and prints the metrics table with each source's NDCG@K as a ratio to global popularity's.
With --tune-blend it first searches recommend's blend weights on the split of the day before the
test window (the test day's plays unseen), prints that grid, and evaluates the test day with the
weights it chose.
With --next-track it also runs embed and train (the LSTM, conf's backend) for the last day and
prints next-track hit rate and NDCG@K of the LSTM and its baselines on held-out sessions.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil

from _common import session

BLEND_GRID = {"als": [1.0, 2.0, 3.0], "item2vec": [0.0, 0.05, 0.1], "popularity": [0.25, 0.5, 1.0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--events-per-user-day", type=int, default=25)
    parser.add_argument("--workdir", default="/tmp/setlist-bench-quality")
    parser.add_argument("--next-track", action="store_true")
    parser.add_argument("--tune-blend", action="store_true")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    end = dt.date(2026, 1, 1) + dt.timedelta(days=args.days - 1)
    spark, cfg = session([
        f"warehouse={args.workdir}/warehouse", f"raw_path={args.workdir}/raw", "log_level=WARNING",
        "spark.master=local[2]", "spark.conf.spark.sql.shuffle.partitions=4",
        f"generate.days={args.days}", f"generate.end_date={end}", f"generate.users={args.users}",
        f"generate.events={args.users * args.events_per_user_day * args.days}", "generate.tracks=3000",
        "generate.artists=300", *args.set,
    ])
    from jobs import clean, evaluate, generate, ingest
    generate.run(spark, cfg)
    for i in range(args.days):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=i)
        ingest.run(spark, cfg, day)
        clean.run(spark, cfg, day)
    if args.tune_blend:
        validation = end - dt.timedelta(days=cfg.evaluate.test_days)
        best, points = evaluate.tune_blend(spark, cfg, validation, BLEND_GRID)
        print(f"blend weights on the validation split of {validation} (history weight 1.0):")
        for weights, ndcg in sorted(points, key=lambda p: -p[1]):
            print("  " + " ".join(f"{s} {w:<5}" for s, w in weights.items()) + f" ndcg@{cfg.evaluate.k} {ndcg:.4f}")
        print(f"chosen: {best}", flush=True)
        cfg = dataclasses.replace(cfg, recommend=dataclasses.replace(
            cfg.recommend, **{f"weight_{s}": w for s, w in best.items()}))
    results = evaluate.run(spark, cfg, end)
    base = results["popularity"]["ndcg"]
    k = cfg.evaluate.k
    for name, values in results.items():
        print(f"{name:<12} ndcg@{k} {values['ndcg']:.4f}  x{values['ndcg'] / base:.2f} of popularity")
    if args.next_track:
        from jobs import embed, train
        embed.run(spark, cfg, end)
        outcome = train.run(spark, cfg, end)
        print(f"next track ({cfg.train.backend}, {cfg.train.world_size} ranks, {cfg.train.epochs} epochs):")
        for name, values in outcome["metrics"].items():
            print(f"{name:<12} hit_rate@{k} {values['hit_rate']:.4f} ndcg@{k} {values['ndcg']:.4f} "
                  f"({values['users']} examples)")
    spark.stop()


if __name__ == "__main__":
    main()
