"""How fast clean parses and classifies a date's bronze lines, alone: the pass that gives every line
its parsed columns and its quarantine reason (jobs.clean.classify), with nothing written.

    .venv/bin/python bench/classify.py WAREHOUSE DATE [--repeat 2] [--set key=value ...]

Reads the date's bronze.listens once into a local checkpoint, then runs classify over it --repeat
times into Spark's `noop` sink and prints lines, seconds and lines/s per core of each pass (the
first includes code generation). Only reads the warehouse. --set overrides config keys, e.g.
`--set spark.conf.spark.driver.extraJavaOptions=-XX:+DontCompileHugeMethods` (the driver JVM's
options as the config's own: they follow the session's JIT_OPTIONS).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import time

from _common import session


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse")
    ap.add_argument("date", type=dt.date.fromisoformat)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args()
    spark, cfg = session([f"warehouse={args.warehouse}", "log_level=WARNING", *args.set])
    from pyspark.sql import functions as F

    from jobs.clean import classify
    from jobs.core import delta_io
    from jobs.core.tables import BRONZE_LISTENS
    lines = delta_io.read(spark, cfg, BRONZE_LISTENS).where(F.col("ingest_date") == F.lit(args.date)).localCheckpoint()
    rows, master = lines.count(), spark.sparkContext.master
    cores = int(master[6:-1]) if master[6:-1].isdigit() else os.cpu_count()  # local[N] or local[*]
    for attempt in range(1, args.repeat + 1):
        start = time.time()
        classify(lines, args.date, cfg.clean.ts_floor).write.format("noop").mode("overwrite").save()
        took = time.time() - start
        print(f"classify {args.date} pass {attempt}: {rows:,} lines in {took:.1f} s, "
              f"{rows / took / cores:,.0f} lines/s per core ({cores} cores)")
    spark.stop()


if __name__ == "__main__":
    main()
