"""Where one stage's time goes on an existing warehouse: wall time, Spark jobs, task seconds, how
busy the cores were, and the Spark stages with the most task time (with their operators).

    .venv/bin/python bench/stage_tasks.py WAREHOUSE DATE [--stage recommend] [--top 8] [--set key=value ...]
                                          [--warmup N] [--jfr FILE]

Runs the stage through the nightly's own stage runner (jobs.nightly.run_stages, forced: a stage
already committed for DATE runs again) with Spark's event log on, then reads the event log back. A
warehouse to run it on comes from, for example,
`bench/profile_stages.py --events 3000000 --days 2 --model-days 1 --stages ingest clean embed cluster
als --workdir /tmp/rec3m --set als.tune_minutes=0` (its warehouse: /tmp/rec3m/warehouse). The stage
writes into the warehouse: copy it first to compare two versions of the code on the same data.

--warmup N runs the stage N times first in the same process, untimed (a night's later stages run
in a JVM that earlier stages warmed up: its JIT has compiled Spark's hot code). With --jfr FILE the driver JVM (which also runs the tasks in local mode) records the stage with the
JDK's Flight Recorder (the `default` settings, CPU load per thread every second) into FILE, and the
bench prints where that JVM's CPU went: the share of each thread group (JIT compiler threads, task
threads, the threads that plan and run queries) and the share of Java stack samples inside Delta,
Catalyst's analyzer and optimizer, code generation and its Janino compiler, class loading and task
serialisation, and in tasks (a sample counts in every group its stack passes through). The recorder
costs time of its own: the demo's warm clean took 26.9 s recorded against 17.5 s not (2026-12-04),
so its shares describe a recorded run, JIT compilation likely over-represented.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import glob
import json
import os
import re
import shutil
import subprocess
import time

from _common import session
from profile_stages import read_jobs, union_seconds


def read_stages(path: str, since: float = 0) -> tuple[dict, dict, list[tuple[int, int]]]:
    """From an event log: task seconds per Spark stage, (tasks, operator names) per stage, and every
    task's (launch, finish) in ms, of the tasks launched at `since` (epoch ms) or later."""
    task_seconds: dict[int, float] = collections.defaultdict(float)
    info: dict[int, tuple[int, list[str]]] = {}
    spans: list[tuple[int, int]] = []
    with open(path) as lines:
        for line in lines:
            event = json.loads(line)
            kind = event.get("Event")
            if kind == "SparkListenerTaskEnd" and event["Task Info"]["Launch Time"] >= since:
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


# (group, a frame that marks it); a Java stack sample counts in every group one of its frames names
JFR_GROUPS = (("Delta", "org.apache.spark.sql.delta."), ("code generation", ".expressions.codegen."),
              ("Janino compiler", "org.codehaus.janino."), ("Catalyst analyzer", ".catalyst.analysis."),
              ("Catalyst optimizer", ".catalyst.optimizer."), ("adaptive execution", ".execution.adaptive."),
              ("class loading", "java.lang.ClassLoader.loadClass"), ("task serialisation", "java.io.ObjectOutputStream"),
              ("running tasks", "org.apache.spark.scheduler.Task.run"), ("Parquet", "org.apache.parquet."), ("py4j", "py4j."))


def jfr_events(jfr: str, recording: str, event: str, *more: str) -> list[str]:
    """The `jfr print` text of each `event` in the recording, one string per event."""
    out = subprocess.run([jfr, "print", "--events", event, *more, recording], capture_output=True, text=True,
                         check=True).stdout
    return out.split(event + " {")[1:]


def jfr_summary(jfr: str, recording: str) -> list[str]:
    """Where the recorded JVM's CPU went: per thread group, and per group of Java code (inclusive)."""
    load: dict[str, float] = collections.defaultdict(float)
    for event in jfr_events(jfr, recording, "jdk.ThreadCPULoad"):
        thread = re.search(r'eventThread = "([^"]*)"', event)
        user, system = (re.search(rf"{k} = ([\d.]+)%", event) for k in ("user", "system"))
        if thread and user and system:
            load[re.sub(r"\d+", "N", thread.group(1))] += float(user.group(1)) + float(system.group(1))
    total = sum(load.values()) or 1.0
    lines = ["JVM CPU by thread: " + ", ".join(f"{name} {100 * v / total:.0f}%" for name, v in
                                               sorted(load.items(), key=lambda kv: -kv[1])[:8])]
    samples = [re.findall(r"^\s+(\S+)\(.*line:", event, re.M)
               for event in jfr_events(jfr, recording, "jdk.ExecutionSample", "--stack-depth", "256")]
    samples = [frames for frames in samples if frames]
    inside = collections.Counter(name for frames in samples for name, mark in JFR_GROUPS
                                 if any(mark in frame for frame in frames))
    lines.append(f"Java stack samples ({len(samples)}) inside: " + ", ".join(
        f"{name} {100 * n / max(len(samples), 1):.0f}%" for name, n in inside.most_common()))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse")
    ap.add_argument("date", type=dt.date.fromisoformat)
    ap.add_argument("--stage", default="recommend")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--warmup", type=int, default=0, help="untimed runs of the stage first, in the same process")
    ap.add_argument("--jfr", help="record the stage with Java Flight Recorder into this file and summarise it")
    args = ap.parse_args()
    jfr = shutil.which("jfr") if args.jfr else None
    if args.jfr and not jfr:
        raise SystemExit("stage_tasks: --jfr needs the JDK's `jfr` tool on PATH")
    # The recorder starts with the JVM: one started later retransforms classes, and the recompilation
    # that follows made a warm stage about 3x slower. The stage's own recording starts before it runs.
    jfr_start = ("-XX:StartFlightRecording=settings=default",) if args.jfr else ()
    spark, cfg = session([f"warehouse={args.warehouse}", "spark.event_log=true",
                          "spark.conf.spark.eventLog.compress=false", "spark.conf.spark.eventLog.rolling.enabled=false",
                          *args.set], jfr_start)
    from jobs import nightly
    cores = spark.sparkContext.defaultParallelism
    for _ in range(args.warmup):
        nightly.run_stages(spark, cfg, args.date, (args.stage,), force=True, results={})
    recording = None
    if args.jfr:
        jvm = spark._jvm
        recording = jvm.jdk.jfr.Recording(jvm.jdk.jfr.Configuration.getConfiguration("default"))
        recording.enable("jdk.ThreadCPULoad").withPeriod(jvm.java.time.Duration.ofSeconds(1))
        recording.start()
    since, start = time.time() * 1000, time.monotonic()
    nightly.run_stages(spark, cfg, args.date, (args.stage,), force=True, results={})
    wall = time.monotonic() - start
    if recording is not None:
        recording.stop()
        recording.dump(spark._jvm.java.io.File(os.path.abspath(args.jfr)).toPath())
    app = spark.sparkContext.applicationId
    spark.stop()
    log = glob.glob(os.path.join(args.warehouse, "_spark_events", f"{app}*"))[0]
    jobs = [j for j in read_jobs(log) if j["start"] >= since]
    task_seconds, info, spans = read_stages(log, since)
    inside = union_seconds([(j["start"], j["end"]) for j in jobs])
    print(f"{args.stage} {args.date}: wall {wall:.1f} s, {len(jobs)} jobs, inside jobs {inside:.1f} s, "
          f"task seconds {sum(task_seconds.values()):.1f} on {cores} task slots")
    print("seconds with N tasks running: " + ", ".join(f"{n}: {s:.1f}" for n, s in busy_cores(spans, cores).items()))
    for stage, seconds in sorted(task_seconds.items(), key=lambda kv: -kv[1])[:args.top]:
        tasks, names = info.get(stage, (0, []))
        print(f"{seconds:7.1f} task s  stage {stage:4d}  {tasks:3d} tasks  {', '.join(names)[:120]}")
    if args.jfr:
        print("\n".join(jfr_summary(jfr, args.jfr)))


if __name__ == "__main__":
    main()
