"""How the ALS search's best set improved over its minute, read from the logs of runs that did it.

    .venv/bin/python bench/search_log.py LOG [LOG ...]

LOG: the output of any run whose als stage searched (`make demo`, `backfill`, `nightly`,
`bench/quality.py`). For every search the als stage logged ("validating up to N parameter set(s)"),
it prints how many sets finished and each new best on the grid's metric with the seconds since
the search began at which its set finished, e.g. `0.6016 at 4 s -> 0.6756 at 7 s -> ... -> 0.6982 at
58 s` (the demo's search of 2026-12-05). It matches the als stage's log lines (jobs/als.py,
models/als.py): a change to their wording needs the patterns below changed with it.
A set starts when a slot frees (als.search_parallelism) and only while the budget lasts, so an
improvement that finished at t seconds came from a set started at t minus its own fit and
scoring. This is what decides whether `als.tune_minutes` could be shorter: a best that keeps
moving late in the minute is quality a shorter budget would give up. Reads text only, no Spark.
"""
from __future__ import annotations

import argparse
import datetime as dt
import re

START = re.compile(r"^(\S+ \S+),(\d+) INFO setlist\.als: als (\S+): validating up to (\d+) parameter set")
RESULT = re.compile(r"^(\S+ \S+),(\d+) INFO setlist\.als: als (\S+): validation (.*) -> (\w+)@(\d+) ([\d.]+)")
SPENT = re.compile(r"INFO setlist\.als: als (\S+): time budget of (\d+) s spent after starting (\d+) of (\d+)")


def stamp(clock: str, millis: str) -> dt.datetime:
    return dt.datetime.fromisoformat(clock) + dt.timedelta(milliseconds=int(millis))


def searches(lines) -> list[dict]:
    """Each search in the log: its date, grid size, sets started (when the budget cut it short) and
    the (seconds since its start, score) of every set that finished, in finish order."""
    found: list[dict] = []
    current = None
    for line in lines:
        if (m := START.match(line)):
            current = {"day": m.group(3), "grid": int(m.group(4)), "began": stamp(m.group(1), m.group(2)),
                       "results": [], "started": None, "metric": None}
            found.append(current)
        elif current is not None and (m := RESULT.match(line)) and m.group(3) == current["day"]:
            seconds = (stamp(m.group(1), m.group(2)) - current["began"]).total_seconds()
            current["results"].append((seconds, float(m.group(7))))
            current["metric"] = f"{m.group(5)}@{m.group(6)}"
        elif current is not None and (m := SPENT.search(line)) and m.group(1) == current["day"]:
            current["started"] = int(m.group(3))
    return [s for s in found if s["results"]]


def records(results: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(seconds, score) of each set that beat every set finished before it."""
    out: list[tuple[float, float]] = []
    for seconds, score in results:
        if not out or score > out[-1][1]:
            out.append((seconds, score))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("logs", nargs="+")
    args = ap.parse_args()
    for path in args.logs:
        with open(path, errors="replace") as lines:
            found = searches(lines)
        print(f"{path}: {len(found)} search(es)")
        for s in found:
            steps = records(s["results"])
            started = f"{s['started']} of {s['grid']} started" if s["started"] else f"all {s['grid']} started"
            print(f"  {s['day']}: {len(s['results'])} set(s) finished, {started}; best {s['metric']}: "
                  + " -> ".join(f"{score:.4f} at {seconds:.0f} s" for seconds, score in steps))


if __name__ == "__main__":
    main()
