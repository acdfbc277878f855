"""A stage's wall time under different Spark SQL execution settings, interleaved in one process.

    .venv/bin/python bench/exec_modes.py WAREHOUSE DATE [--stages clean recommend] [--rounds 3]
                                         [--mode NAME=key:value,key:value ...] [--set key=value ...]

Runs each stage (forced, through the nightly's own stage runner) once per round under every mode, in
turn, so that the machine's drift over minutes falls on every mode alike, and prints each mode's
median per stage and its ratio to the first mode. The modes are runtime SQL settings
(`spark.conf.set`), restored after each run. The default modes: Spark's defaults ("shipped"),
interpreted expressions without whole-stage code generation ("interpreted"), and adaptive query
execution off ("no-aqe"). The stage writes into the warehouse: run it on a copy.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from _common import session

DEFAULT_MODES = {
    "shipped": {},
    "interpreted": {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"},
    "no-aqe": {"spark.sql.adaptive.enabled": "false"},
}


def parse_mode(text: str) -> tuple[str, dict[str, str]]:
    name, _, pairs = text.partition("=")
    return name, dict(pair.split(":", 1) for pair in pairs.split(",") if pair)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse")
    ap.add_argument("date", type=dt.date.fromisoformat)
    ap.add_argument("--stages", nargs="+", default=["clean", "recommend"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mode", nargs="*", help="NAME=key:value,key:value (replaces the default modes)")
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args()
    modes = dict(parse_mode(m) for m in args.mode) if args.mode else DEFAULT_MODES
    # the modes alone decide: the nightly's own switch for small nights is off
    spark, cfg = session([f"warehouse={args.warehouse}", "nightly.interpreted_below_rows=0", *args.set])
    from jobs import nightly
    from jobs.core.session import sql_settings
    walls: dict[tuple[str, str], list[float]] = {(m, s): [] for m in modes for s in args.stages}
    for round_ in range(args.rounds + 1):  # round 0 warms the JVM up and is not counted
        for name, settings in modes.items():
            with sql_settings(spark, settings):
                for stage in args.stages:
                    start = time.monotonic()
                    nightly.run_stages(spark, cfg, args.date, (stage,), force=True, results={})
                    wall = time.monotonic() - start
                    if round_:
                        walls[(name, stage)].append(wall)
                    print(f"round {round_} {name:12s} {stage:10s} {wall:6.1f} s", flush=True)
    first = next(iter(modes))
    for stage in args.stages:
        base = statistics.median(walls[(first, stage)])
        for name in modes:
            med = statistics.median(walls[(name, stage)])
            runs = ", ".join(f"{w:.1f}" for w in walls[(name, stage)])
            print(f"{stage:10s} {name:12s} median {med:6.1f} s  x{med / base:.2f} of {first}  ({runs})")
    spark.stop()


if __name__ == "__main__":
    main()
