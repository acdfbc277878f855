"""How many query classes Spark compiles, with Spark's own cache of compiled classes at each size.

    .venv/bin/python bench/codegen_cache.py stage WAREHOUSE DATE [--stage recommend] [--runs 3] [--entries 100 4000]
    .venv/bin/python bench/codegen_cache.py demo [--workdir /tmp/setlist-codegen] [--entries 100 4000]

`spark.sql.codegen.cache.maxEntries` is a static setting, so each --entries value runs in a process
of its own, one after the other. `stage` copies WAREHOUSE (never changed) and runs one stage of DATE
--runs times through the nightly's stage runner (forced, in the small night's settings the runner
gives it), printing for each run the classes compiled and its seconds. `demo` runs `make demo`'s
chain as the Makefile gives it (`make -n demo`: generate, backfill of the first two dates, the
nightly of the third, tables, preview) as one application in a fresh folder under --workdir and
prints the classes compiled and the wall time.
Both also print the mean generated source size and class size Spark measured (CodegenMetrics).
"""
from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path


def measured(spark) -> str:
    metrics = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics
    source, size = metrics.METRIC_SOURCE_CODE_SIZE().getSnapshot(), metrics.METRIC_GENERATED_CLASS_BYTECODE_SIZE()
    return (f"source {source.getMean():,.0f} chars on average (largest {source.getMax():,}), "
            f"{size.getCount():,} classes of {size.getSnapshot().getMean():,.0f} bytes on average")


def compiled(spark) -> int:
    return spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME().getCount()


def child_stage(args) -> None:
    from _common import session
    spark, cfg = session([f"warehouse={args.copy}", f"spark.conf.spark.sql.codegen.cache.maxEntries={args.entries}"])
    from jobs import nightly
    day = dt.date.fromisoformat(args.date)
    for run in range(1, args.runs + 1):
        before, start = compiled(spark), time.monotonic()
        nightly.run_stages(spark, cfg, day, (args.stage,), force=True, results={})
        print(f"entries {args.entries}: {args.stage} run {run}: {compiled(spark) - before} classes compiled, "
              f"{time.monotonic() - start:.1f} s", flush=True)
    print(f"entries {args.entries}: {measured(spark)}", flush=True)
    spark.stop()


def demo_chain() -> list[str]:
    """The arguments `make demo` gives ./submit.sh (its `--then` chain), read from the Makefile."""
    from _common import ROOT
    recipe = subprocess.run(["make", "-s", "-n", "demo"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    command = shlex.split(recipe[recipe.index("./submit.sh "):].split("\n./", 1)[0].replace("\\\n", " "))
    return command[1:]


def child_demo(args) -> None:
    import _common  # noqa: F401 - the project on sys.path, the environment of a bench
    from pyspark.sql import SparkSession
    from jobs.main import main
    stop, seen = SparkSession.stop, {}

    def counted_stop(self):  # the chain's one session is stopped by main(): read the metrics first
        seen["compiled"], seen["measured"] = compiled(self), measured(self)
        return stop(self)
    SparkSession.stop = counted_stop
    work = Path(args.workdir) / f"entries-{args.entries}"
    shutil.rmtree(work, ignore_errors=True)
    opts = ["--set", f"warehouse={work / 'warehouse'}", "--set", f"raw_path={work / 'raw'}",
            "--set", f"spark.conf.spark.sql.codegen.cache.maxEntries={args.entries}"]
    chain = demo_chain()
    first = chain.index("--then") if "--then" in chain else len(chain)
    start = time.monotonic()
    code = main([*chain[:first], *opts, *chain[first:]])
    print(f"entries {args.entries}: demo chain exit {code}, {time.monotonic() - start:.1f} s, "
          f"{seen.get('compiled')} classes compiled; {seen.get('measured')}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    stage = sub.add_parser("stage")
    stage.add_argument("warehouse")
    stage.add_argument("date")
    stage.add_argument("--stage", default="recommend")
    stage.add_argument("--runs", type=int, default=3)
    demo = sub.add_parser("demo")
    demo.add_argument("--workdir", default="/tmp/setlist-codegen")
    for p in (stage, demo):
        p.add_argument("--entries", type=int, nargs="+", default=[100, 4000])
        p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
        p.add_argument("--copy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.entries = args.entries[0]
        (child_stage if args.mode == "stage" else child_demo)(args)
        return
    for entries in args.entries:
        argv = [sys.executable, __file__, *sys.argv[1:], "--child", "--entries", str(entries)]
        if args.mode == "stage":
            copy = Path(f"/tmp/setlist-codegen-{entries}")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(args.warehouse, copy)
            argv += ["--copy", str(copy)]
        subprocess.run(argv, check=True)
        if args.mode == "stage":
            shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    main()
