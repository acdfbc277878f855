"""Offline quality on generated data with planted structure: every source and baseline of
`evaluate` on a temporal split (train on the days before the last, test on the last).

    .venv/bin/python bench/quality.py [--days 6] [--users 300] [--workdir /tmp/setlist-bench-quality]

Generates logs, ingests and cleans each day, then runs evaluate for the last day in one local
session, and prints the metrics table with each source's NDCG@K as a ratio to global popularity's.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil

from _common import session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--events-per-user-day", type=int, default=25)
    parser.add_argument("--workdir", default="/tmp/setlist-bench-quality")
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
    results = evaluate.run(spark, cfg, end)
    base = results["popularity"]["ndcg"]
    k = cfg.evaluate.k
    for name, values in results.items():
        print(f"{name:<12} ndcg@{k} {values['ndcg']:.4f}  x{values['ndcg'] / base:.2f} of popularity")
    spark.stop()


if __name__ == "__main__":
    main()
