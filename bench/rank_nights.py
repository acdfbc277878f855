"""The rank stage's ranker under other settings, refitted for every night of a backfilled warehouse
and judged on each night's validation night (never on a held-out day).

    .venv/bin/python bench/rank_nights.py WAREHOUSE --from D1 --to D2 \
        --variant rank.query=user --variant rank.query=night [--set key=value ...]

For every run date D from D1 to D2 whose rank stage had a training night (`jobs.rank.learning_data`:
the labelled candidates of the nights before the validation night, read from gold.candidates and
silver.plays, which the backfill stored), each `--variant` (one or more comma-separated key=value
settings over the shipped configuration and `--set`) fits the ranker as the stage does
(`jobs.rank.fit`: its engine choice) and scores its lists of the validation night against what the
users played the day after it, with the users' most played tracks over the same candidates beside
it (`models.ranker.evaluate_configs`, NDCG@evaluate.k). Prints one line per night and the
user-weighted mean over the nights of each variant and of most played. Reads the warehouse, never
writes it (its own session, no lease).
"""
from __future__ import annotations

import argparse
import datetime as dt

from _common import session


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse")
    ap.add_argument("--from", dest="first", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--to", dest="last", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--variant", action="append", required=True, help="key=value[,key=value...]")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    spark, cfg = session([f"warehouse={args.warehouse}", "spark.event_log=false", *args.set])
    from jobs import rank
    from jobs.core.config import with_overrides
    from jobs.core.errors import NotEnoughHistory
    from models import ranker

    k = cfg.evaluate.k
    totals: dict[str, list[float]] = {}
    day = args.first
    while day <= args.last:
        line = []
        for variant in args.variant:
            vcfg = with_overrides(cfg, variant.split(","))
            try:
                data = rank.learning_data(spark, vcfg, day)
            except NotEnoughHistory:
                break
            if data.train is None:
                break
            train = data.train.cache()
            model = rank.fit(spark, vcfg, train, train.count())[0]
            means = ranker.evaluate_configs(data.valid, data.valid_next, k, {"most_played": None, "ranker": model})[0]
            train.unpersist()
            users = means["ranker"]["users"]
            if not line:  # most played orders the same candidates under every variant: counted once a night
                add(totals, "most_played", means["most_played"]["ndcg"], users)
                line.append(f"validation night {data.valid_night} ({users} users): most_played "
                            f"{means['most_played']['ndcg']:.4f}")
            add(totals, variant, means["ranker"]["ndcg"], users)
            line.append(f"{variant} {means['ranker']['ndcg']:.4f}")
        if line:
            print(f"{day}: " + ", ".join(line), flush=True)
        day += dt.timedelta(days=1)
    if totals:
        base = totals["most_played"][0] / max(totals["most_played"][1], 1)
        print(f"over the nights, user-weighted ndcg@{k}: most_played {base:.4f}; " + "; ".join(
            f"{name} {s / max(n, 1):.4f} ({s / max(n, 1) / base if base else float('nan'):.2f}x)"
            for name, (s, n) in totals.items() if name != "most_played"), flush=True)
    spark.stop()


def add(totals: dict[str, list[float]], name: str, ndcg: float, users: int) -> None:
    """Add a night's NDCG of `name`, weighted by its users, to the running user-weighted sums."""
    total = totals.setdefault(name, [0.0, 0])
    total[0] += ndcg * users
    total[1] += users


if __name__ == "__main__":
    main()
