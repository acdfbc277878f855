"""Where a small night's time goes: Spark jobs per stage, time inside jobs, and the rest (driver-side
planning, Delta log reads and commits, Python).

    .venv/bin/python bench/profile_stages.py [--events 20000] [--days 2] [--workdir /tmp/setlist-profile]
                                             [--model-days 1] [--stages ingest clean ...]

Generates --events events over --days days, runs ingest and clean for every day and the model stages
for the last --model-days days with Spark's event log on, then reads the event log and prints per stage: wall
seconds, Spark jobs, seconds inside jobs (their union in time), seconds outside any job, and the
call sites with the most jobs. Fixed per-stage cost shows as many jobs and much time outside jobs on
small data.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import glob
import json
import shutil
import time
from pathlib import Path

from _common import generated_sizes, session

FIRST = dt.date(2026, 1, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/setlist-profile")
    ap.add_argument("--stages", nargs="+", default=["ingest", "clean", "embed", "cluster", "als", "rank",
                                                     "recommend", "evaluate"])
    ap.add_argument("--model-days", type=int, default=1, help="the model stages run on the last N days")
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    spark, cfg = session([f"warehouse={work / 'warehouse'}", f"raw_path={work / 'raw'}", "spark.event_log=true",
                          "spark.conf.spark.eventLog.compress=false", "spark.conf.spark.eventLog.rolling.enabled=false",
                          *generated_sizes(args.events, args.days),
                          f"generate.end_date={FIRST + dt.timedelta(days=args.days - 1)}", *args.set])
    from jobs import generate, nightly
    generate.run(spark, cfg)
    dates = [FIRST + dt.timedelta(days=i) for i in range(args.days)]
    windows = []  # (stage, day, start ms, end ms)
    for day in dates:
        for stage in args.stages:
            if stage not in ("ingest", "clean") and day not in dates[-args.model_days:]:
                continue
            start = time.time() * 1000
            nightly.run_stages(spark, cfg, day, (stage,), results={})
            windows.append((stage, day, start, time.time() * 1000))
    app = spark.sparkContext.applicationId
    spark.stop()
    (work / "windows.json").write_text(json.dumps([(s, str(d), a, b) for s, d, a, b in windows]))
    jobs = read_jobs(glob.glob(f"{work}/warehouse/_spark_events/{app}*")[0])
    print(f"{'stage':10} {'day':10} {'wall s':>7} {'jobs':>5} {'in jobs s':>9} {'outside s':>9}  top call sites")
    for stage, day, start, end in windows:
        mine = [j for j in jobs if start <= j["start"] < end]
        inside = union_seconds([(j["start"], j["end"]) for j in mine])
        wall = (end - start) / 1000
        sites = collections.Counter(j["site"] for j in mine).most_common(4)
        print(f"{stage:10} {day!s:10} {wall:7.1f} {len(mine):5d} {inside:9.1f} {wall - inside:9.1f}  "
              + "; ".join(f"{n}x {s}" for s, n in sites))


def read_jobs(path: str) -> list[dict]:
    """The Spark jobs of an event log: start, end (ms) and call site."""
    jobs: dict[int, dict] = {}
    with open(path) as lines:
        for line in lines:
            event = json.loads(line)
            kind = event.get("Event")
            if kind == "SparkListenerJobStart":
                props = event.get("Properties") or {}
                site = props.get("callSite.short") or "?"
                jobs[event["Job ID"]] = {"start": event["Submission Time"], "end": None, "site": site}
            elif kind == "SparkListenerJobEnd" and event["Job ID"] in jobs:
                jobs[event["Job ID"]]["end"] = event["Completion Time"]
    return [j for j in jobs.values() if j["end"] is not None]


def union_seconds(spans: list[tuple[float, float]]) -> float:
    total, last = 0.0, None
    for lo, hi in sorted(spans):
        if last is None or lo > last:
            total += hi - lo
            last = hi
        elif hi > last:
            total += hi - last
            last = hi
    return total / 1000


if __name__ == "__main__":
    main()
