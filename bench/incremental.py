"""An incremental night against a full rebuild of the same history, each run as a user runs it.

    .venv/bin/python bench/incremental.py [--events 1000000] [--days 28] [--nights 2]
                                          [--workdir /tmp/setlist-incremental] [--set key=value ...]
    .venv/bin/python bench/incremental.py --runs WAREHOUSE [--from DATE]

`generate` writes --events events over DAYS + NIGHTS days (events/100 users, events/50 tracks, 4
files per format and day). The full rebuild is one `./submit.sh backfill` of the first DAYS days into
a new warehouse: ingest and clean of every day, and the model stages, training, evaluation and
upkeep for the last `backfill.model_days` dates, which is what rebuilds the tables a nightly keeps
(the ranker learns from the candidates of earlier nights, so a rebuild that skips those nights would
serve other lists). Each of the next NIGHTS days is then one `./submit.sh nightly --date D` on that
warehouse: the night a scheduler runs. Every command is a process of its own, timed from start to
exit, its JVM's start included on both sides; the rebuild covers one day less than the history the
first night extends, which only makes the ratio larger. Also printed, from the rebuild's gold.runs
(each stage's own seconds): the least any rebuild of the same days costs, the ingest and clean of
every day plus the stages of the last date alone, a bound no real rebuild reaches.

--runs WAREHOUSE prints the same per-date figures of an existing warehouse's gold.runs (for example
the backfill of `bench/quality.py --dataset lfm1b`): each date's stages and seconds, and the last
date's night against the sum of every date.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, generated_sizes, session

FIRST = dt.date(2026, 1, 1)
LOAD_STAGES = ("ingest", "clean")


def submit(args: list[str], log: Path) -> float:
    """Run one ./submit.sh command to its exit (its output appended to `log`); its wall seconds."""
    clock = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ ./submit.sh {' '.join(args)}\n")
        out.flush()
        done = subprocess.run([str(ROOT / "submit.sh"), *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - clock
    if done.returncode != 0:
        sys.exit(f"incremental: `./submit.sh {args[0]}` exited {done.returncode}; its output is in {log}")
    return seconds


def stage_seconds(warehouse: str, since: dt.date | None = None) -> dict[dt.date, dict[str, float]]:
    """Per run date of the warehouse's gold.runs, each stage that ran (succeeded) and its own seconds
    (rows.timing.seconds)."""
    spark, cfg = session([f"warehouse={warehouse}", "spark.master=local[1]", "log_level=WARNING"])
    from pyspark.sql import functions as F

    from jobs.core import delta_io
    from jobs.core.tables import GOLD_RUNS
    runs = delta_io.read(spark, cfg, GOLD_RUNS).where(F.col("status") == "succeeded")
    if since is not None:
        runs = runs.where(F.col("run_date") >= F.lit(since))
    out: dict[dt.date, dict[str, float]] = {}
    for row in runs.select("run_date", "stage", "rows").collect():
        timing = json.loads(row["rows"] or "{}").get("timing") or {}
        if "seconds" in timing:
            out.setdefault(row["run_date"], {})[row["stage"]] = float(timing["seconds"])
    spark.stop()
    return dict(sorted(out.items()))


def print_dates(per_date: dict[dt.date, dict[str, float]]) -> dict:
    """Each date's stages and seconds; then the least a rebuild of every date costs (ingest and clean
    of every date, the last date's other stages) and the last date's night against it and against
    the sum of every date's stages."""
    for day, stages in per_date.items():
        parts = ", ".join(f"{s} {v:.1f}" for s, v in stages.items())
        print(f"  {day}: {sum(stages.values()):7.1f} s  ({parts})")
    dates = list(per_date)
    last = per_date[dates[-1]]
    total = sum(sum(s.values()) for s in per_date.values())
    load = sum(v for s in per_date.values() for k, v in s.items() if k in LOAD_STAGES)
    floor = load + sum(v for k, v in last.items() if k not in LOAD_STAGES)
    night = sum(last.values())
    out = {"dates": len(dates), "stage_seconds_all_dates": round(total, 1), "last_night_stage_seconds": round(night, 1),
           "rebuild_floor_stage_seconds": round(floor, 1), "night_vs_all_dates": round(night / total, 3),
           "night_vs_rebuild_floor": round(night / floor, 3)}
    print(f"stage seconds, every date: {total:.1f}; the last date's night: {night:.1f} ({night / total:.3f} of "
          f"every date); the least a rebuild of these {len(dates)} dates costs (ingest and clean of each, the "
          f"last date's other stages): {floor:.1f} (the night {night / floor:.3f} of it)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=28, help="days of history the rebuild backfills")
    parser.add_argument("--nights", type=int, default=2, help="incremental nights after the rebuild")
    parser.add_argument("--workdir", default="/tmp/setlist-incremental")
    parser.add_argument("--set", action="append", default=[], help="key=value for every command")
    parser.add_argument("--runs", metavar="WAREHOUSE", help="only print an existing warehouse's gold.runs")
    parser.add_argument("--from", dest="since", type=dt.date.fromisoformat, help="with --runs: dates from this one")
    args = parser.parse_args()
    if args.runs:
        print_dates(stage_seconds(args.runs, args.since))
        return
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    log = workdir / "commands.log"
    total_days = args.days + args.nights
    last = FIRST + dt.timedelta(days=total_days - 1)
    generate = [*generated_sizes(args.events, total_days), "generate.files_per_day=4"]
    sizes = dict(kv.split("=", 1) for kv in generate)
    common = [f"warehouse={workdir / 'warehouse'}", f"raw_path={workdir / 'raw'}", *args.set]
    sets = [x for kv in common for x in ("--set", kv)]
    report: dict = {"events": args.events, "days": args.days, "nights": args.nights,
                    "users": int(sizes["generate.users"]), "tracks": int(sizes["generate.tracks"]), "set": args.set}
    report["generate_seconds"] = round(submit(["generate", "--date", str(last), *sets,
                                               *[x for kv in generate for x in ("--set", kv)]], log), 1)
    print(f"generated {args.events:,} events over {total_days} days in {report['generate_seconds']} s", flush=True)
    end = FIRST + dt.timedelta(days=args.days - 1)
    rebuild = submit(["backfill", "--from", str(FIRST), "--to", str(end), *sets], log)
    report["rebuild_seconds"] = round(rebuild, 1)
    print(f"full rebuild (backfill {FIRST}..{end}): {rebuild:.1f} s", flush=True)
    nights = []
    for i in range(args.nights):
        day = end + dt.timedelta(days=i + 1)
        seconds = submit(["nightly", "--date", str(day), *sets], log)
        nights.append({"date": str(day), "seconds": round(seconds, 1), "ratio": round(seconds / rebuild, 3)})
        print(f"incremental night {day}: {seconds:.1f} s, {seconds / rebuild:.3f} of the rebuild", flush=True)
    report["nights"] = nights
    print("\neach date's stages (gold.runs, the stages' own seconds):")
    per_date = stage_seconds(str(workdir / "warehouse"))
    rebuilt = {d: s for d, s in per_date.items() if d <= end}
    report["rebuild_dates"] = print_dates(rebuilt)
    report["night_stages"] = {str(d): s for d, s in per_date.items() if d > end}
    mean = sum(n["seconds"] for n in nights) / len(nights)
    print(f"\nthe mean incremental night {mean:.1f} s against the full rebuild {rebuild:.1f} s: {mean / rebuild:.3f}")
    report["mean_night_vs_rebuild"] = round(mean / rebuild, 3)
    (workdir / "incremental.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
