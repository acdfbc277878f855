"""Where one stage's time goes on an existing warehouse: wall time, Spark jobs, task seconds, how
busy the cores were, and the Spark stages with the most task time (with their operators).

    .venv/bin/python bench/stage_tasks.py WAREHOUSE DATE [--stage recommend] [--top 8] [--set key=value ...]

Runs the stage through the nightly's own stage runner (jobs.nightly.run_stages, forced: a stage
already committed for DATE runs again) with Spark's event log on, then reads the event log back. A
warehouse to run it on comes from, for example,
`bench/profile_stages.py --events 3000000 --days 2 --model-days 1 --stages ingest clean embed cluster
als --workdir /tmp/rec3m --set als.tune_minutes=0` (its warehouse: /tmp/rec3m/warehouse). The stage
writes into the warehouse: copy it first to compare two versions of the code on the same data.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import glob
import json
import os
import time

from _common import session
from profile_stages import read_jobs, union_seconds


def read_stages(path: str) -> tuple[dict, dict, list[tuple[int, int]]]:
    """From an event log: task seconds per Spark stage, (tasks, operator names) per stage, and every
    task's (launch, finish) in ms."""
    task_seconds: dict[int, float] = collections.defaultdict(float)
    info: dict[int, tuple[int, list[str]]] = {}
    spans: list[tuple[int, int]] = []
    with open(path) as lines:
        for line in lines:
            event = json.loads(line)
            kind = event.get("Event")
            if kind == "SparkListenerTaskEnd":
                task_seconds[event["Stage ID"]] += (event.get("Task Metrics") or {}).get("Executor Run Time", 0) / 1000
                spans.append((event["Task Info"]["Launch Time"], event["Task Info"]["Finish Time"]))
            elif kind == "SparkListenerStageCompleted":
                stage = event["Stage Info"]
                names: list[str] = []
                for rdd in stage.get("RDD Info", []):
                    name = json.loads(rdd["Scope"]).get("name") if rdd.get("Scope") else None
                    if name and not name.startswith("WholeStageCodegen") and name not in names:
                        names.append(name)
                info[stage["Stage ID"]] = (stage["Number of Tasks"], names)
    return task_seconds, info, spans


def busy_cores(spans: list[tuple[int, int]], cores: int) -> dict[int, float]:
    """Seconds during which 0, 1, ... `cores` (or more) tasks ran, from the first task's launch to the last's end."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    seconds: dict[int, float] = collections.defaultdict(float)
    running, last = 0, None
    for at, step in edges:
        if last is not None:
            seconds[min(running, cores)] += (at - last) / 1000
        running, last = running + step, at
    return dict(sorted(seconds.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse")
    ap.add_argument("date", type=dt.date.fromisoformat)
    ap.add_argument("--stage", default="recommend")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args()
    spark, cfg = session([f"warehouse={args.warehouse}", "spark.event_log=true",
                          "spark.conf.spark.eventLog.compress=false", "spark.conf.spark.eventLog.rolling.enabled=false",
                          *args.set])
    from jobs import nightly
    cores = spark.sparkContext.defaultParallelism
    start = time.monotonic()
    nightly.run_stages(spark, cfg, args.date, (args.stage,), force=True, results={})
    wall = time.monotonic() - start
    app = spark.sparkContext.applicationId
    spark.stop()
    log = glob.glob(os.path.join(args.warehouse, "_spark_events", f"{app}*"))[0]
    jobs = read_jobs(log)
    task_seconds, info, spans = read_stages(log)
    inside = union_seconds([(j["start"], j["end"]) for j in jobs])
    print(f"{args.stage} {args.date}: wall {wall:.1f} s, {len(jobs)} jobs, inside jobs {inside:.1f} s, "
          f"task seconds {sum(task_seconds.values()):.1f} on {cores} task slots")
    print("seconds with N tasks running: " + ", ".join(f"{n}: {s:.1f}" for n, s in busy_cores(spans, cores).items()))
    for stage, seconds in sorted(task_seconds.items(), key=lambda kv: -kv[1])[:args.top]:
        tasks, names = info.get(stage, (0, []))
        print(f"{seconds:7.1f} task s  stage {stage:4d}  {tasks:3d} tasks  {', '.join(names)[:120]}")


if __name__ == "__main__":
    main()
