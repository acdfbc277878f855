"""The ALS fit of the als stage with different numbers of user and item blocks (`als.blocks`), on an
existing warehouse's plays up to DATE, in one session.

    .venv/bin/python bench/als_blocks.py WAREHOUSE DATE [--blocks 10 4 2] [--repeats 3]

Each round fits ALS (als.rank, als.reg_param, als.alpha, als.max_iter, implicit) once per number of
blocks through models.als.AlsSettings.fit and counts the user factors; prints seconds per fit. 0
stands for the als stage's default (one block per task slot, jobs.als.settings_for). Read-only: the
warehouse is not written.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time

from _common import session


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse")
    ap.add_argument("date", type=dt.date.fromisoformat)
    ap.add_argument("--blocks", type=int, nargs="+", default=[10, 4, 2])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    spark, cfg = session([f"warehouse={args.warehouse}", "tracking.enabled=false"])
    from jobs.core import delta_io
    from jobs.core.tables import SILVER_PLAYS
    from jobs.als import settings_for
    from models.als import AlsParams
    conf = cfg.als
    settings = settings_for(spark, conf)
    params = AlsParams(conf.rank, conf.reg_param, conf.alpha, conf.confidence)
    pairs = settings.interactions(delta_io.read(spark, cfg, SILVER_PLAYS), args.date, params.confidence).cache()
    print(f"{pairs.count():,} user-track pairs; {settings.blocks} blocks by default, "
          f"{spark.sparkContext.defaultParallelism} default parallelism")
    for round_ in range(1, args.repeats + 1):
        for blocks in args.blocks:
            clock = time.monotonic()
            model = dataclasses.replace(settings, blocks=blocks or settings.blocks).fit(pairs, params)
            model.userFactors.count()
            print(f"round {round_}: blocks {blocks or 'default'}: {time.monotonic() - clock:.2f} s", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
