"""The ALS search one set after another against `als.search_parallelism` sets at once.

    .venv/bin/python bench/als_search.py WAREHOUSE DATE [--sets 8] [--rounds 2] [--parallelism 2]

WAREHOUSE is a cleaned one (e.g. bench/profile_stages.py's; read only). The first --sets parameter
sets of the als stage's search on DATE (the default grid in its seeded order, as `als` tries them)
are validated by `models.als.validate` with no time budget, once with parallelism 1 and once with
--parallelism, alternating --rounds times in one process after a warm-up fit. It prints each
round's seconds, their ratio and whether both chose the same set with the same metrics; the ratio
is what the search's minute (`als.tune_minutes`) gains in sets tried.
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time

from _common import session


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse")
    ap.add_argument("date", type=dt.date.fromisoformat)
    ap.add_argument("--sets", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parallelism", type=int, default=2)
    args = ap.parse_args()
    spark, cfg = session([f"warehouse={args.warehouse}", "spark.event_log=false"])
    from jobs.core import delta_io
    from jobs.core.tables import PLAY_EVENTS, SILVER_PLAYS
    from jobs.als import settings_for
    from models.als import grid, validate
    from udfs.dates import plays_within

    conf = cfg.als
    spark.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="als-search-"))  # the warehouse stays untouched
    settings = settings_for(spark, conf)  # as the als stage fits
    plays = plays_within(delta_io.read(spark, cfg, SILVER_PLAYS), args.date, conf.history_days).select(*PLAY_EVENTS)
    plays = plays.cache()
    print(f"{plays.count():,} plays up to {args.date}", flush=True)
    candidates = grid(conf.grid_ranks, conf.grid_reg_params, conf.grid_alphas, conf.grid_confidences,
                      seed=conf.seed)[:args.sets]
    validate(plays, args.date, conf.validation_days, candidates[:1], settings, cfg.evaluate.k, conf.grid_metric)
    for r in range(args.rounds):
        order = (1, args.parallelism) if r % 2 == 0 else (args.parallelism, 1)
        seconds, chosen = {}, {}
        for n in order:
            start = time.monotonic()
            chosen[n] = validate(plays, args.date, conf.validation_days, candidates, settings, cfg.evaluate.k,
                                 conf.grid_metric, parallelism=n)
            seconds[n] = time.monotonic() - start
        one, many = seconds[1], seconds[args.parallelism]
        print(f"round {r}: {len(candidates)} sets one after another {one:.1f} s, {args.parallelism} at once "
              f"{many:.1f} s, x{many / one:.2f}; the same choice and metrics: {chosen[1] == chosen[args.parallelism]}"
              f" ({chosen[1][0]}, {conf.grid_metric} {chosen[1][1][conf.grid_metric]:.4f})", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
