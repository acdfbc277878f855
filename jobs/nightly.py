"""nightly: every stage for run date D, in order, resumable.

ingest -> clean -> embed -> cluster -> als -> train -> rank -> recommend -> evaluate -> maintain. Each stage's outcome
is a row of gold.runs (stage, date, status, start, end, row counts as JSON, error). A stage that
already succeeded for D is skipped unless --force, so re-running after a failure resumes at the
failed stage. Model stages follow their cadence (nightly.<stage>_every_days): when the last
successful run is more recent than that, the stage is recorded as `reused` and later stages use the
latest model; maintain's cadence (nightly.maintain_every_days) counts from the warehouse's first
night, so a new warehouse gets its first upkeep that many days in. The run stops at the first
failure; its exit code is the failed stage's. While the plays so far are fewer than
nightly.interpreted_below_rows, stages run Spark's interpreted settings (SMALL_NIGHT_MODE) with one
shuffle partition per task slot; a stage run on its own (`main.py clean --date D`) gets the same
settings for D (sized). A one-screen summary ends the run.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import time
from typing import Callable, Iterator

from pyspark.sql import SparkSession

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.errors import NotEnoughHistory
from jobs.core.rawfiles import raw_bytes
from jobs.core.records import known_keys, now, record_run
from jobs.core.session import small_night_settings, sql_settings
from jobs.core.tables import ALL_TABLES, GOLD_RUNS, SILVER_PLAYS

log = logging.getLogger("setlist.nightly")


# Each stage's module is imported (by name, jobs.<stage>) when the stage runs, not with this module:
# a process that runs one stage (`main.py clean --date D`) or a night's data stages only (backfill's
# days without models) does not import torch and matplotlib for model stages it never runs (about 3 s
# of a driver's start here; docs/performance.md, "A job imports what it runs; driver rows handed to
# the JVM as Arrow").
def _stage(name: str) -> Callable:
    def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
        return importlib.import_module(f"jobs.{name}").run(spark, cfg, day)
    run.__qualname__ = f"jobs.{name}.run"
    return run


STAGES: dict[str, Callable] = {name: _stage(name) for name in ("ingest", "clean", "embed", "cluster", "als", "train",
                                                               "rank", "recommend", "evaluate", "maintain")}
DONE = ("succeeded", "reused", "waiting_for_history")
# A stage's settings while the night is small (under nightly.interpreted_below_rows), else "interpreted"
# (jobs.core.session.SMALL_NIGHT). recommend scores, sorts and ranks every candidate: interpreted
# expressions cost it more than compiling already at 78,000 plays (x1.36), without adaptive re-planning
# alone it gains (x0.93; docs/performance.md, "Interpreted execution for small nights"). Either way with one shuffle
# partition per task slot (jobs.core.session.small_night_settings).
SMALL_NIGHT_MODE = {"recommend": "no-aqe"}


def run(spark: SparkSession, cfg: Config, day: dt.date, force: bool = False) -> dict:
    """Every stage for `day`; the summary is printed and returned ({stage: outcome})."""
    outcome = run_stages(spark, cfg, day, tuple(STAGES), force)
    if cfg.catalog.database:
        gold = tuple(t for t in ALL_TABLES if t.layer == "gold")
        outcome["catalog"] = "registered " + ", ".join(delta_io.register(spark, cfg, gold))
    print(summary_table(day, outcome), flush=True)
    return outcome


def committed_stages(spark: SparkSession, cfg: Config, day: dt.date
                     ) -> tuple[set[str], dict[str, dt.date], set[str]]:
    """(stages done for `day`, {stage: the last date before `day` it succeeded on}, every stage with a
    gold.runs row for `day`, failed ones too) from gold.runs, in one query."""
    delta_io.ensure(spark, cfg, GOLD_RUNS)
    rows = [r for r in delta_io.small_rows(spark, cfg, GOLD_RUNS, day)  # from its Delta log where it can
            if r["status"] in DONE or r["run_date"] == day]
    recorded = {r["stage"] for r in rows if r["run_date"] == day}
    rows = [r for r in rows if r["status"] in DONE]
    committed = {r["stage"] for r in rows if r["run_date"] == day}
    last_trained: dict[str, dt.date] = {}
    for r in rows:
        if r["status"] == "succeeded" and r["run_date"] < day and r["run_date"] > last_trained.get(r["stage"], dt.date.min):
            last_trained[r["stage"]] = r["run_date"]
    # upkeep's cadence counts from the warehouse's first night: on a new warehouse there is nothing
    # to compact or vacuum yet (a first night's OPTIMIZE took 71 s of the demo's backfill)
    last_trained.setdefault("maintain", min((r["run_date"] for r in rows), default=day))
    return committed, last_trained, recorded


def run_stages(spark: SparkSession, cfg: Config, day: dt.date, stages: tuple[str, ...], force: bool = False,
               results: dict | None = None) -> dict:
    """Run `stages` (names of STAGES, in that order) for `day`, skipping those committed unless
    `force`, following each stage's cadence; record every outcome in gold.runs. Returns {stage:
    outcome text}; a stage's own result (its counts) goes into `results` when a dict is given. The
    first failure is recorded, printed with the summary so far, and raised.

    Under the warehouse's lease this process is gold.runs' only writer, so a stage with no row for
    `day` yet gets its row appended (delta_io.append, one Spark job) rather than upserted (three);
    without the lease (lease.enabled false, or a caller that did not take it) every row is upserted."""
    # The first Delta reads of a new process can take tens of seconds (the JVM warming up): say so
    # before them, so that a log never sits silent between the lease and the first stage.
    log.info("nightly %s: reading what is done already (%s) and the night's size", day, GOLD_RUNS.full_name)
    clock = time.monotonic()
    committed, last_trained, recorded = committed_stages(spark, cfg, day)
    known_keys(cfg, GOLD_RUNS, day, recorded)  # what record_run appends, without reading them again
    size = night_size(spark, cfg, day) if cfg.nightly.interpreted_below_rows else 0  # decides each stage's settings
    log.info("nightly %s: %s", day, plan_line(stages, committed, force, size, time.monotonic() - clock))
    outcome: dict[str, str] = {}
    for stage in stages:
        fn = STAGES[stage]
        if stage in committed and not force:
            outcome[stage] = "skipped (already committed)"
            continue
        last = last_trained.get(stage)
        every = getattr(cfg.nightly, f"{stage}_every_days", 1)
        if last is not None and (day - last).days < every and not force:
            if stage == "maintain":
                due = last + dt.timedelta(days=every)
                record_run(spark, cfg, day, stage, "reused", now(), {"next_due": due.isoformat()})
                outcome[stage] = f"not due (nightly.maintain_every_days={every}; next on {due})"
            else:
                record_run(spark, cfg, day, stage, "reused", now(), {"model_of": last.isoformat()})
                outcome[stage] = f"reused (model of {last})"
            continue
        started, clock = now(), time.monotonic()
        try:
            with stage_settings(spark, cfg, stage, size) as small:
                execution = small or "session"  # "session": the session's own settings (Spark's defaults compile)
                log.info("nightly %s: %s ...%s", day, stage, small_note(cfg, small, size))
                result = fn(spark, cfg, day)
        except NotEnoughHistory as exc:
            log.warning("nightly %s: %s waits for more history: %s", day, stage, exc)
            record_run(spark, cfg, day, stage, "waiting_for_history", started, error=str(exc))
            outcome[stage] = "waiting for history (later stages use what exists)"
            continue
        except Exception as exc:
            record_run(spark, cfg, day, stage, "failed", started, error=f"{type(exc).__name__}: {exc}")
            outcome[stage] = f"FAILED: {exc}"
            print(summary_table(day, outcome), flush=True)
            raise
        seconds = time.monotonic() - clock
        rows = work_rows(stage, result)
        size = max(size, rows)
        timing = {"seconds": round(seconds, 2), "execution": execution} | (
            {"rows_in": rows, "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None} if rows else {})
        # train's result carries every rank's detail: the summary is enough for the record
        record_run(spark, cfg, day, stage, "succeeded", started,
                   {k: v for k, v in result.items() if k != "ranks"} | {"timing": timing})
        if results is not None:
            results[stage] = result
        outcome[stage] = f"succeeded in {seconds:.0f}s" + (f" ({rows:,} rows, {rows / seconds:,.0f} rows/s)"
                                                            if rows and seconds > 0 else "")
        if isinstance(result.get("note"), str):  # what the stage wants the summary to show (evaluate, rank)
            outcome[stage] += f": {result['note']}"
    return outcome


def plan_line(stages: tuple[str, ...], committed: set[str], force: bool, size: int, seconds: float) -> str:
    """What a run is about to do, in one line: the stages it will look at (each may still be
    reused by its cadence) and those skipped as committed for the date."""
    todo = [s for s in stages if force or s not in committed]
    done = [s for s in stages if s not in todo]
    return (f"{len(todo)} of {len(stages)} stage(s) to run ({', '.join(todo) or 'none'})"
            + (f", {len(done)} committed already ({', '.join(done)})" if done else "")
            + (" (--force)" if force and committed else "")
            + (f"; {size:,} rows so far" if size else "") + f"; read in {seconds:.1f}s")


@contextlib.contextmanager
def stage_settings(spark: SparkSession, cfg: Config, stage: str, size: int) -> Iterator[str | None]:
    """Within the block the session runs with the settings `stage` gets on a night of `size` rows
    (night_size): its SMALL_NIGHT mode, yielded, while the night is under
    nightly.interpreted_below_rows, else the session's own (None); restored afterwards."""
    below = cfg.nightly.interpreted_below_rows
    small = SMALL_NIGHT_MODE.get(stage, "interpreted") if below and size < below else None
    with sql_settings(spark, small_night_settings(spark, small) if small else {}):
        yield small


def small_note(cfg: Config, small: str | None, size: int) -> str:
    return (f" ({small}: {size:,} rows so far, under nightly.interpreted_below_rows "
            f"{cfg.nightly.interpreted_below_rows:,})" if small else "")


@contextlib.contextmanager
def sized(spark: SparkSession, cfg: Config, stage: str, day: dt.date) -> Iterator[None]:
    """A stage run on its own (`main.py clean --date D`, not within a nightly) with the settings the
    nightly would give it on D (stage_settings, D sized by night_size), restored afterwards."""
    size = night_size(spark, cfg, day) if cfg.nightly.interpreted_below_rows else 0
    with stage_settings(spark, cfg, stage, size) as small:
        if small:
            log.info("%s %s: run%s", stage, day, small_note(cfg, small, size))
        yield


# A raw line of either listen format is longer than this (a Last.fm-1K line with a user, a timestamp
# and two names is about 100 bytes; a ListenBrainz JSON line several hundred), so a night's raw bytes
# divided by it bound its lines from above.
RAW_BYTES_PER_LINE = 64


def plays_so_far(spark: SparkSession, cfg: Config) -> int:
    """silver.plays' rows (0 before the first clean). Delta answers a bare count from its log's file
    statistics, without reading the files."""
    return delta_io.read_or_empty(spark, cfg, SILVER_PLAYS).count()


def night_size(spark: SparkSession, cfg: Config, day: dt.date) -> int:
    """The rows a night's stages work through, as known before they run: the plays so far, or, where
    D's raw files are larger, a bound on their lines. A warehouse's first night has no plays yet:
    without its raw files' size, a 3,000,000-line first night ran ingest and clean interpreted with
    two shuffle partitions (77 s and 238 s, against 20 s and 134 s compiled for the next night of the
    same size, which also had a warm JVM: 2026-12-06, docs/performance.md)."""
    size = plays_so_far(spark, cfg)
    if size >= cfg.nightly.interpreted_below_rows:
        return size
    return max(size, raw_bytes(spark, cfg, day) // RAW_BYTES_PER_LINE)


def work_rows(stage: str, result: dict) -> int:
    """The rows a stage worked through, for its rows/s: raw lines read (ingest), bronze rows (clean),
    plays or examples (the model stages), rows written (recommend); 0 when the stage reports none."""
    if stage == "ingest":
        return sum(v.get("read", 0) for v in result.values() if isinstance(v, dict) and "read" in v)
    for name in ("bronze_rows", "plays", "examples", "rows"):
        value = result.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def summary_table(day: dt.date, outcome: dict[str, str]) -> str:
    lines = [f"setlist nightly {day}"]
    for stage in STAGES:
        lines.append(f"  {stage:<10} {outcome.get(stage, 'not run')}")
    if "catalog" in outcome:
        lines.append(f"  {'catalog':<10} {outcome['catalog']}")
    return "\n".join(lines)
