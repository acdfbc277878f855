"""Whether two warehouses hold the same night: a date's candidates and lists, compared row for row.

    .venv/bin/python bench/same_night.py WAREHOUSE_A WAREHOUSE_B DATE [--tables candidates recommendations]

For checking that a change leaves a stage's output alone: copy a warehouse twice, run the stage
for DATE on each copy with the old and the new code (`bench/stage_tasks.py COPY DATE --stage S`,
the old code from a worktree of the earlier commit), then compare. Prints, per table, the rows of
DATE on each side and the rows of each side missing from the other (`exceptAll`, so duplicates
count); exits 1 when any differ. The lists also get the users whose lists differ, and how many of
those differences are only a reordering of equal scores.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys

from _common import session

TABLES = {"candidates": "GOLD_CANDIDATES", "recommendations": "GOLD_RECOMMENDATIONS",
          "staged_recommendations": "GOLD_STAGED_RECOMMENDATIONS"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("date", type=dt.date.fromisoformat)
    parser.add_argument("--tables", nargs="+", choices=sorted(TABLES), default=["candidates", "recommendations"])
    args = parser.parse_args()
    spark, cfg = session(["spark.master=local[2]"])
    from pyspark.sql import functions as F

    from jobs.core import tables as T
    from jobs.core.config import with_overrides

    differ = False
    for name in args.tables:
        table = getattr(T, TABLES[name])
        sides = [spark.read.format("delta").load(table.path(with_overrides(cfg, [f"warehouse={w}"])))
                 .where(F.col("run_date") == F.lit(args.date)) for w in (args.a, args.b)]
        a, b = sides
        only_a, only_b = a.exceptAll(b), b.exceptAll(a)
        n_a, n_b, n_only_a, n_only_b = a.count(), b.count(), only_a.count(), only_b.count()
        print(f"{table.full_name} {args.date}: A {n_a:,} rows, B {n_b:,}; only in A {n_only_a:,}, "
              f"only in B {n_only_b:,}")
        if name != "candidates" and (n_only_a or n_only_b):
            users = only_a.select("user_id").union(only_b.select("user_id")).distinct()
            # a user whose (rank, score) sequence is the same on both sides differs only in which
            # track holds an equal score: a reordering of ties
            keyed = [s.join(users, "user_id").groupBy("user_id").agg(
                F.sort_array(F.collect_list(F.struct("rank", F.round("score", 9).alias("s")))).alias("ranks"))
                for s in sides]
            same_scores = keyed[0].join(keyed[1], "user_id").where(keyed[0]["ranks"] == keyed[1]["ranks"]).count()
            print(f"  users whose lists differ: {users.count():,}; of them with the same scores rank for rank "
                  f"(only equal scores swapped): {same_scores:,}")
        differ |= bool(n_only_a or n_only_b)
    spark.stop()
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
