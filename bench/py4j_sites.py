"""Where a stage's driver time goes, by the project's call sites: every py4j round trip the Python
driver makes to the JVM (query planning, Delta's log, jobs run to completion, collects), counted and
timed against the nearest frame of jobs/, models/ or udfs/ on its stack.

    .venv/bin/python bench/py4j_sites.py WAREHOUSE DATE [--stage recommend] [--top 30] [--set key=value ...]

Runs the stage twice through the nightly's own stage runner (jobs.nightly.run_stages, forced): once
to warm the JVM up, untimed, then timed with every py4j command recorded. A stage writes into the
warehouse: run it on a copy. The time of a call site includes the Spark jobs its calls waited for
(a write's time is the whole write, computing what it writes included).
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import time
import traceback

from _common import ROOT, session

PROJECT = tuple(str(ROOT / package) + "/" for package in ("jobs", "models", "udfs"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("warehouse")
    ap.add_argument("date", type=dt.date.fromisoformat)
    ap.add_argument("--stage", default="recommend")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    spark, cfg = session([f"warehouse={args.warehouse}", *args.set])
    from py4j import clientserver

    from jobs import nightly
    nightly.run_stages(spark, cfg, args.date, (args.stage,), force=True, results={})  # warm-up
    sites: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
    send = clientserver.ClientServerConnection.send_command

    def timed(self, command):
        start = time.perf_counter()
        try:
            return send(self, command)
        finally:
            seconds = time.perf_counter() - start
            frame = next((f for f in reversed(traceback.extract_stack()[:-1]) if f.filename.startswith(PROJECT)), None)
            site = (f"{frame.filename[len(str(ROOT)) + 1:]}:{frame.lineno} {frame.name}" if frame
                    else "(outside the project)")
            sites[site][0] += 1
            sites[site][1] += seconds

    clientserver.ClientServerConnection.send_command = timed
    start = time.perf_counter()
    try:
        nightly.run_stages(spark, cfg, args.date, (args.stage,), force=True, results={})
    finally:
        clientserver.ClientServerConnection.send_command = send
    wall = time.perf_counter() - start
    calls, seconds = sum(n for n, _ in sites.values()), sum(s for _, s in sites.values())
    print(f"{args.stage} {args.date}: {wall:.2f} s wall; {calls} py4j calls, {seconds:.2f} s inside them")
    print(f"{'seconds':>8} {'calls':>6}  call site")
    for site, (n, s) in sorted(sites.items(), key=lambda kv: -kv[1][1])[:args.top]:
        print(f"{s:8.3f} {n:6d}  {site}")


if __name__ == "__main__":
    main()
