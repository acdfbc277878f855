"""Fixed costs a small night pays whatever its data: creating a fresh warehouse's tables,
re-cleaning a date that is already cleaned (no new users or tracks), starting a driver, and the
bookkeeping reads and writes of every stage.

    .venv/bin/python bench/fixed_costs.py ensure [--rounds 4] [--workdir /tmp/setlist-fixed]
    .venv/bin/python bench/fixed_costs.py rerun-clean WAREHOUSE DATE [--rounds 4] [--raw-path RAW]
    .venv/bin/python bench/fixed_costs.py driver-start WAREHOUSE [--rounds 3]
    .venv/bin/python bench/fixed_costs.py bookkeeping WAREHOUSE DATE [--rounds 50]
    .venv/bin/python bench/fixed_costs.py log-reads WAREHOUSE DATE [--rounds 10]
    .venv/bin/python bench/fixed_costs.py log-writes WAREHOUSE DATE [--rounds 10]
    .venv/bin/python bench/fixed_costs.py night WAREHOUSE DATE [--rounds 1] [--raw-path RAW]
    .venv/bin/python bench/fixed_costs.py upkeep WAREHOUSE DATE [--at-once 1 4] [--rounds 3] [--small]
    .venv/bin/python bench/fixed_costs.py stage WAREHOUSE DATE [--stage recommend] [--warmup 3] [--rounds 8]
    .venv/bin/python bench/fixed_costs.py commit WAREHOUSE DATE [--rounds 8]
    .venv/bin/python bench/fixed_costs.py new-partitions WAREHOUSE DATE [--stage recommend] [--rounds 6]
    .venv/bin/python bench/fixed_costs.py idle-workers WAREHOUSE DATE [--stage recommend] [--rounds 3] [--idle 75]
    .venv/bin/python bench/fixed_costs.py gate WAREHOUSE DATE [--rounds 8]

`ensure` times `delta_io.ensure` of every declared table in a new, empty warehouse, `--rounds` times
in one process (the first round also pays the process's first Delta operations). `rerun-clean`
copies WAREHOUSE (never changed) and times `clean --date DATE` on the copy `--rounds` times; the
first run also warms the process. `driver-start` runs `submit.sh tables` on WAREHOUSE (read only:
it counts every table) `--rounds` times with the driver's class archive and without
(`spark.class_archive=false`), alternating, each a new spark-submit, and prints the ratio of the
medians. `bookkeeping` copies WAREHOUSE (a cleaned and modelled one, e.g. bench/profile_stages.py's)
and times, interleaved in one process, each of four pairs `--rounds` times: a gold.runs row of a
new key appended (`delta_io.append`, as the nightly writes a stage's first row of a date under the
warehouse's lease) against the same row upserted; a gold.runs row written by `delta_io.upsert`
(replaceWhere on its key) against the MERGE it replaced (update matched, insert the rest), once
with new keys (a night's rows) and once replacing the rows of five keys (a rerun's); clean's
post-commit counts of DATE (`clean.committed_counts`, one job) against four counts; recommend's
read of the ALS, LSTM and ranker rows of gold.models (`records.latest_models`, once) against the
three queries it replaced (one per model). It prints the medians. `log-reads` copies WAREHOUSE and
times, interleaved in one process, each bookkeeping read a stage makes answered from the table's
Delta log by delta-rs (`delta_io.log_of`, as shipped for a local warehouse) against the same read
through Spark (as for a warehouse on a URI, and as every read was before): a table's version
(silver.plays), the newest date of gold.track_embeddings on or before DATE, gold.models' latest ALS,
LSTM and ranker rows, and the nightly's read of DATE's gold.runs stages; it checks the two answers
are equal and prints the medians. `log-writes` copies WAREHOUSE and, under the warehouse's lease,
times interleaved in one process a new gold.runs row and a new gold.models row appended as shipped
(committed by delta-rs: `delta_io._append_by_log`) against the same append written by Spark (as
without the lease, on a URI, and as every one was before), `--rounds` times each after one untimed
round; it checks Spark reads back every row written and prints the medians. `night` copies
WAREHOUSE (one whose nights before DATE are done) `--rounds` + 1 times and runs the nightly of DATE
(not forced: a scheduled night) on each copy under the warehouse's lease in one process, the first
untimed (it warms the process); it prints each timed night's seconds, Spark jobs and the stages'
seconds from gold.runs. `upkeep` copies WAREHOUSE and
runs the maintain stage for DATE on the copy, `--rounds` times for each `--at-once` value of
maintain.tables_at_once, alternating, after one unmeasured run that warms the process and sets each
table's retention property; it prints each run and the medians. `--small`: under the settings the
nightly gives a small night's stages (jobs.core.session.small_night_settings, "interpreted").
`stage` copies WAREHOUSE and runs one stage of DATE on the copy through the nightly's stage runner,
forced, `--warmup` times untimed and then `--rounds` times, printing each run's seconds and Spark jobs
and their medians (`--stage` may name several, comma-separated, run in the nightly's order). `commit` copies WAREHOUSE and
times, interleaved in one process under the small-night settings, the rows gold.track_embeddings holds
for DATE (held in memory, not read from the table while it is written) written four ways: a Delta
append of a new date, a Delta `replaceWhere` of a new date (as `delta_io.replace_date` writes a
night's partition), the same again replacing that date's rows, and a plain Parquet write of the same
rows (Spark's write without Delta's transaction), each `--rounds` times; it prints the medians and the
Spark jobs of each. `new-partitions` copies WAREHOUSE and, under the warehouse's lease, runs `--stage` of DATE forced
after deleting DATE's rows from the tables the stage writes (so each of its writes meets a
partition with no file, as on a new night), alternating a run whose writes of such a partition
append (as shipped) with one whose writes all replace (`delta_io._appendable` answering False, the
code before), `--rounds` times each after one untimed run of each, and prints each run's seconds and
Spark jobs and the medians. `idle-workers` copies WAREHOUSE and, `--rounds` times for each of two
executor Python daemons, alternating (jobs.core.session.WORKER_DAEMON as shipped, which forks workers
with torch, pandas, pyarrow and pyspark.ml imported, and Spark's own pyspark.daemon), starts a session, runs `--stage` of DATE forced
once untimed, waits `--idle` seconds (Spark stops a Python worker idle for a minute, as between
one night's stages that run Python and the next's) and times the stage again; it prints each run and
the medians. `gate` reads WAREHOUSE (never changed; one where recommend ran for DATE and the night
before) and times, interleaved in one process with a small night's settings (one shuffle partition
per task slot, no adaptive re-planning), the publish gate's list checks and collapse measures of
DATE's staged lists as shipped (the overlap with the previous night's lists measured in
`gate.list_checks`' one query) against the two queries before (`gate.collapsed` measuring it on its
own), after checking both give the same outcome and three untimed runs of each; it prints the
medians. To compare two versions of the code, run the script from a checkout of each, one after
the other, alone on the machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from _common import session


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)

    def mode(name: str, rounds: int, dated: bool = True, raw: bool = False, stage: str | None = None,
             workdir: bool = True):
        parser = sub.add_parser(name)
        if name != "ensure":
            parser.add_argument("warehouse")
        if dated:
            parser.add_argument("date", type=dt.date.fromisoformat)
        if stage:
            parser.add_argument("--stage", default=stage)
        parser.add_argument("--rounds", type=int, default=rounds)
        if raw:
            parser.add_argument("--raw-path", default=None, help="default: raw/ next to the warehouse")
        if workdir:
            parser.add_argument("--workdir", default="/tmp/setlist-fixed")
        return parser
    mode("ensure", 4, dated=False)
    mode("rerun-clean", 4, raw=True)
    mode("driver-start", 3, dated=False, workdir=False)
    mode("bookkeeping", 50)
    mode("log-reads", 10)
    mode("log-writes", 10)
    mode("night", 1, raw=True)
    upk = mode("upkeep", 3)
    upk.add_argument("--at-once", type=int, nargs="+", default=[1, 4])
    upk.add_argument("--small", action="store_true")
    mode("stage", 8, raw=True, stage="recommend").add_argument("--warmup", type=int, default=3)
    mode("commit", 8)
    mode("new-partitions", 6, raw=True, stage="recommend")
    mode("idle-workers", 3, raw=True, stage="recommend").add_argument("--idle", type=float, default=75.0)
    mode("gate", 8, workdir=False)
    args = ap.parse_args()
    if args.what == "driver-start":
        driver_start(Path(args.warehouse), args.rounds)
        return
    if args.what == "gate":
        gate_checks(Path(args.warehouse), args.date, args.rounds)
        return
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if args.what == "ensure":
        ensure_rounds(work, args.rounds)
    elif args.what == "bookkeeping":
        bookkeeping(work, Path(args.warehouse), args.date, args.rounds)
    elif args.what == "log-reads":
        log_reads(work, Path(args.warehouse), args.date, args.rounds)
    elif args.what == "log-writes":
        log_writes(work, Path(args.warehouse), args.date, args.rounds)
    elif args.what == "night":
        night_rounds(work, Path(args.warehouse), args.date, args.rounds,
                     args.raw_path or str(Path(args.warehouse).parent / "raw"))
    elif args.what == "upkeep":
        upkeep(work, Path(args.warehouse), args.date, args.at_once, args.rounds, args.small)
    elif args.what == "commit":
        commit_costs(work, Path(args.warehouse), args.date, args.rounds)
    elif args.what == "new-partitions":
        new_partitions(work, Path(args.warehouse), args.date, args.stage, args.rounds,
                       args.raw_path or str(Path(args.warehouse).parent / "raw"))
    elif args.what == "idle-workers":
        idle_workers(work, Path(args.warehouse), args.date, args.stage, args.rounds, args.idle,
                     args.raw_path or str(Path(args.warehouse).parent / "raw"))
    elif args.what == "stage":
        stage_rounds(work, Path(args.warehouse), args.date, args.stage, args.warmup, args.rounds,
                     args.raw_path or str(Path(args.warehouse).parent / "raw"))
    else:
        rerun_clean(work, Path(args.warehouse), args.date, args.rounds,
                    args.raw_path or str(Path(args.warehouse).parent / "raw"))


def run_row(day: dt.date, stage: str) -> dict:
    """A gold.runs row of (day, stage), as the nightly records a stage that succeeded."""
    from jobs.core.records import now
    return {"run_date": day, "stage": stage, "status": "succeeded", "started_at": now(), "finished_at": now(),
            "rows": None, "error": None}


def copied(warehouse: Path, work: Path) -> Path:
    """A copy of WAREHOUSE to measure on (work/wh), without its event logs and its lease."""
    copy = work / "wh"
    shutil.copytree(warehouse, copy, ignore=shutil.ignore_patterns("_spark_events", "_lease"))
    return copy


def ensure_rounds(work: Path, rounds: int) -> None:
    spark, cfg = session([f"warehouse={work / 'wh'}", f"raw_path={work / 'raw'}"])
    from jobs.core import delta_io
    from jobs.core.config import with_overrides
    from jobs.core.tables import ALL_TABLES
    for r in range(rounds):
        fresh = with_overrides(cfg, [f"warehouse={work / f'wh-{r}'}"])
        start = time.monotonic()
        for table in ALL_TABLES:
            delta_io.ensure(spark, fresh, table)
        print(f"round {r + 1}: {len(ALL_TABLES)} tables ensured in a new warehouse in {time.monotonic() - start:.1f} s",
              flush=True)
    spark.stop()


def rerun_clean(work: Path, warehouse: Path, day: dt.date, rounds: int, raw_path: str) -> None:
    copy = copied(warehouse, work)
    spark, cfg = session([f"warehouse={copy}", f"raw_path={raw_path}"])
    from jobs import clean
    for r in range(rounds):
        start = time.monotonic()
        summary = clean.run(spark, cfg, day)
        print(f"run {r + 1}: clean {day} again in {time.monotonic() - start:.1f} s "
              f"({summary['bronze_rows']} bronze rows, {summary['new_users']} new users)", flush=True)
    spark.stop()


def driver_start(warehouse: Path, rounds: int) -> None:
    root = Path(__file__).resolve().parents[1]
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for archive in (True, False):
            start = time.monotonic()
            proc = subprocess.run([str(root / "submit.sh"), "tables", "--set", f"warehouse={warehouse}",
                                   "--set", f"spark.class_archive={str(archive).lower()}",
                                   "--set", "spark.event_log=false"], capture_output=True, text=True, cwd=root)
            if proc.returncode != 0:
                raise SystemExit(f"submit.sh tables failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
            times[archive].append(time.monotonic() - start)
            print(f"round {r + 1}: submit.sh tables {'with' if archive else 'without'} the class archive "
                  f"in {times[archive][-1]:.1f} s", flush=True)
    with_, without = statistics.median(times[True]), statistics.median(times[False])
    print(f"median {with_:.1f} s with the archive, {without:.1f} s without: x{with_ / without:.2f}")


def log_reads(work: Path, warehouse: Path, day: dt.date, rounds: int) -> None:
    copy = copied(warehouse, work)
    spark, cfg = session([f"warehouse={copy}", "spark.event_log=false"])
    from jobs import nightly
    from jobs.core import delta_io, records
    from jobs.core.tables import GOLD_TRACK_EMBEDDINGS, SILVER_PLAYS

    reads = {
        "silver.plays' version": lambda: delta_io.version(spark, cfg, SILVER_PLAYS),
        "gold.track_embeddings' newest date": lambda: delta_io.latest_date(spark, cfg, GOLD_TRACK_EMBEDDINGS, day),
        "gold.models' latest als, lstm, ranker rows": lambda: records.latest_models(spark, cfg, ("als", "lstm", "ranker"),
                                                                                     day),
        "gold.runs' stages of the date": lambda: nightly.committed_stages(spark, cfg, day),
    }
    from_log = delta_io.log_of

    def through_spark(cfg, table):
        return None

    for name, read in reads.items():
        times: dict[str, list[float]] = {"log": [], "spark": []}
        answers = {}
        for r in range(rounds + 1):  # the first round of each untimed
            for label in (("log", "spark") if r % 2 == 0 else ("spark", "log")):
                delta_io.log_of = from_log if label == "log" else through_spark
                start = time.monotonic()
                answers[label] = read()
                if r:
                    times[label].append(time.monotonic() - start)
            delta_io.log_of = from_log
            assert answers["log"] == answers["spark"], (name, answers)  # the same answer
        a, b = statistics.median(times["log"]), statistics.median(times["spark"])
        print(f"{name}: median {a * 1000:.1f} ms from the Delta log, {b * 1000:.1f} ms through Spark, x{a / b:.3f} "
              f"({rounds} rounds each, interleaved, the same answer)", flush=True)
    spark.stop()


def log_writes(work: Path, warehouse: Path, day: dt.date, rounds: int) -> None:
    copy = copied(warehouse, work)
    spark, cfg = session([f"warehouse={copy}", "spark.event_log=false"])
    from jobs.core import delta_io, records
    from jobs.core.lease import Lease
    from jobs.core.tables import GOLD_MODELS, GOLD_RUNS

    def model_row(key: str) -> dict:
        return {"run_date": day, "model": key, "version": f"{key}-1", "backend": "bench", "world_size": 1,
                "params": "{}", "metrics": "{}", "path": f"/models/{key}", "created_at": records.now()}

    shipped = delta_io._append_by_log  # noqa: SLF001
    written = {GOLD_RUNS.full_name: set(), GOLD_MODELS.full_name: set()}
    with Lease(cfg, "bench"):
        for table, make, column in ((GOLD_RUNS, lambda key: run_row(day, key), "stage"),
                                    (GOLD_MODELS, model_row, "model")):
            delta_io.ensure(spark, cfg, table)
            times: dict[str, list[float]] = {"delta-rs": [], "spark": []}
            for r in range(rounds + 1):  # the first round of each untimed
                for label in (("delta-rs", "spark") if r % 2 == 0 else ("spark", "delta-rs")):
                    key = f"bench-{label}-{r}"
                    delta_io._append_by_log = shipped if label == "delta-rs" else (lambda *a, **k: False)  # noqa: SLF001
                    start = time.monotonic()
                    try:
                        delta_io.append(spark, cfg, table, [make(key)])
                    finally:
                        delta_io._append_by_log = shipped  # noqa: SLF001
                    if r:
                        times[label].append(time.monotonic() - start)
                    written[table.full_name].add(key)
            read = {r[column] for r in delta_io.read(spark, cfg, table).where(f"{column} LIKE 'bench-%'").collect()}
            assert read == written[table.full_name], (table.full_name, read ^ written[table.full_name])
            a, b = statistics.median(times["delta-rs"]), statistics.median(times["spark"])
            print(f"{table.full_name} row appended: median {a * 1000:.1f} ms by delta-rs, {b * 1000:.1f} ms by Spark, "
                  f"x{a / b:.3f} ({rounds} rounds each, interleaved; Spark reads back all {len(read)} rows)", flush=True)
    spark.stop()


def night_rounds(work: Path, warehouse: Path, day: dt.date, rounds: int, raw_path: str) -> None:
    import json
    spark, cfg = session([f"warehouse={work / 'wh0'}", f"raw_path={raw_path}", "spark.event_log=false"])
    from jobs import nightly
    from jobs.core import delta_io
    from jobs.core.config import with_overrides
    from jobs.core.lease import Lease
    from jobs.core.tables import GOLD_RUNS
    scheduler = spark.sparkContext._jsc.sc().dagScheduler()  # noqa: SLF001 - its job counter
    runs = []
    for r in range(rounds + 1):
        copy = work / f"wh{r}"
        shutil.copytree(warehouse, copy, ignore=shutil.ignore_patterns("_spark_events", "_lease"), dirs_exist_ok=True)
        night_cfg = with_overrides(cfg, [f"warehouse={copy}"])
        before, start = scheduler.numTotalJobs(), time.monotonic()
        with Lease(night_cfg, "bench"):
            nightly.run(spark, night_cfg, day)
        seconds, jobs = time.monotonic() - start, scheduler.numTotalJobs() - before
        stages = {row["stage"]: json.loads(row["rows"] or "{}").get("timing", {}).get("seconds")
                  for row in delta_io.small_rows(spark, night_cfg, GOLD_RUNS, day) if row["run_date"] == day}
        if r:
            runs.append((seconds, jobs))
            print(f"round {r}: the nightly of {day} in {seconds:.2f} s, {jobs} Spark jobs; stages (s): "
                  + ", ".join(f"{k} {v}" for k, v in stages.items() if v is not None), flush=True)
        shutil.rmtree(copy, ignore_errors=True)
    print(f"the nightly of {day}: median {statistics.median(s for s, _ in runs):.2f} s, "
          f"{statistics.median(j for _, j in runs):.0f} Spark jobs ({rounds} timed after 1 untimed)", flush=True)
    spark.stop()


def bookkeeping(work: Path, warehouse: Path, day: dt.date, rounds: int) -> None:
    copy = copied(warehouse, work)
    spark, cfg = session([f"warehouse={copy}", "spark.event_log=false"])
    from pyspark.sql import functions as F

    from jobs import clean
    from jobs.core import delta_io, records
    from jobs.core.tables import GOLD_MODELS, GOLD_RUNS, SILVER_PLAYS, SILVER_QUARANTINE, SILVER_TRACKS, SILVER_USERS

    def upserted(stage: str) -> None:
        delta_io.upsert(spark, cfg, GOLD_RUNS, [run_row(day, stage)], ("run_date", "stage"))

    def merged(stage: str) -> None:  # the upsert before: a MERGE, update matched rows, insert the rest
        frame = delta_io.conform(spark.createDataFrame([run_row(day, stage)], GOLD_RUNS.schema), GOLD_RUNS)
        (delta_io.ensure(spark, cfg, GOLD_RUNS).alias("t")
         .merge(frame.alias("s"), "t.run_date = s.run_date AND t.stage = s.stage")
         .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())

    def counted_apart(n: int) -> tuple:  # clean's counts before: one count per table
        at = F.lit(day)
        return (delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("ingest_date") == at).count(),
                delta_io.read(spark, cfg, SILVER_QUARANTINE).where(
                    (F.col("ingest_date") == at) & (F.col("stage") == "clean")).count(),
                delta_io.read(spark, cfg, SILVER_USERS).where(F.col("first_seen_date") == at).count(),
                delta_io.read(spark, cfg, SILVER_TRACKS).where(F.col("first_seen_date") == at).count())

    def read_apart(m: str):  # recommend's read before: one query per model, newest row first
        return (delta_io.read(spark, cfg, GOLD_MODELS).where((F.col("model") == m) & (F.col("run_date") <= F.lit(day)))
                .orderBy(F.desc("run_date")).first())

    models = ("als", "lstm", "ranker")
    # a night's own rows are new keys; a rerun's replace the row of their key (each side its own keys)
    pairs = {
        # the nightly under the warehouse's lease, a stage's first row of a date: appended, not upserted
        "gold.runs row, a new key, the only writer": (
            lambda n: delta_io.append(spark, cfg, GOLD_RUNS, [run_row(day, f"appended-{n}")]),
            lambda n: upserted(f"upserted-{n}")),
        "gold.runs row, a new key": (lambda n: upserted(f"now-{n}"), lambda n: merged(f"before-{n}")),
        "gold.runs row, the key's row replaced": (lambda n: upserted(f"now-{n % 5}"),
                                                  lambda n: merged(f"before-{n % 5}")),
        "clean's committed counts": (lambda n: clean.committed_counts(spark, cfg, day), counted_apart),
        "gold.models rows of three models": (
            lambda n: tuple(records.latest_models(spark, cfg, models, day).values()),
            lambda n: tuple(read_apart(m) for m in models)),
    }
    for name, (now_, before) in pairs.items():
        if not name.startswith("gold.runs row"):
            assert now_(0) == before(0), name  # the same answer
        times: dict[str, list[float]] = {"now": [], "before": []}
        for r in range(rounds):
            order = (("now", now_), ("before", before)) if r % 2 == 0 else (("before", before), ("now", now_))
            for label, fn in order:
                start = time.monotonic()
                fn(r)
                times[label].append(time.monotonic() - start)
        a, b = statistics.median(times["now"]), statistics.median(times["before"])
        print(f"{name}: median {a:.3f} s now, {b:.3f} s before, x{a / b:.2f} ({rounds} rounds each, interleaved)",
              flush=True)
    keys = delta_io.read(spark, cfg, GOLD_RUNS).groupBy("run_date", "stage").count().where("count > 1").count()
    assert keys == 0, "gold.runs holds a key twice"
    spark.stop()


def stage_rounds(work: Path, warehouse: Path, day: dt.date, stage: str, warmup: int, rounds: int,
                 raw_path: str) -> None:
    copy = copied(warehouse, work)
    spark, cfg = session([f"warehouse={copy}", f"raw_path={raw_path}", "spark.event_log=false"])
    from jobs import nightly
    stages = tuple(s for s in nightly.STAGES if s in stage.split(","))
    scheduler = spark.sparkContext._jsc.sc().dagScheduler()  # noqa: SLF001 - its job counter
    times, jobs = [], []
    for r in range(warmup + rounds):
        before, start = scheduler.numTotalJobs(), time.monotonic()
        nightly.run_stages(spark, cfg, day, stages, force=True, results={})
        if r >= warmup:
            times.append(time.monotonic() - start)
            jobs.append(scheduler.numTotalJobs() - before)
            print(f"round {r - warmup + 1}: {stage} {day} forced in {times[-1]:.2f} s, {jobs[-1]} Spark jobs",
                  flush=True)
    print(f"{stage} {day}: median {statistics.median(times):.2f} s, {statistics.median(jobs):.0f} Spark jobs "
          f"({rounds} runs after {warmup} untimed)")
    spark.stop()


def gate_checks(warehouse: Path, day: dt.date, rounds: int) -> None:
    spark, cfg = session([f"warehouse={warehouse}", "spark.event_log=false"])
    from pyspark.sql import functions as F

    from jobs.core import delta_io
    from jobs.core.session import small_night_settings, sql_settings
    from jobs.core.tables import GOLD_RECOMMENDATIONS, GOLD_STAGED_RECOMMENDATIONS, SILVER_USERS
    from models import gate
    night_before = delta_io.latest_date(spark, cfg, GOLD_RECOMMENDATIONS, day - dt.timedelta(days=1))
    staged = delta_io.read(spark, cfg, GOLD_STAGED_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    previous = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(night_before))
    users = delta_io.read(spark, cfg, SILVER_USERS).where(F.col("first_seen_date") <= F.lit(day)).select("user_id")
    available = staged.groupBy("user_id").agg(F.count("*").alias("candidates"))
    sources, before = gate.source_counts(staged), gate.source_counts(previous)
    conf, k = cfg.publish, cfg.recommend.k

    def two_queries():
        drift = gate.collapsed(staged, previous, conf.max_changed_share, conf.max_source_shift, sources, None, before)
        return drift, gate.list_checks(staged, users, available, k)

    def one_query():
        problems, lists = gate.list_checks(staged, users, available, k, previous)
        drift = gate.collapsed(staged, previous, conf.max_changed_share, conf.max_source_shift, sources,
                               lists.pop("overlap"), before)
        return drift, (problems, lists)

    ways = {"one query (shipped)": one_query, "two queries (before)": two_queries}
    times: dict[str, list[float]] = {name: [] for name in ways}
    with sql_settings(spark, small_night_settings(spark, "no-aqe")):
        outcomes = [fn() for fn in ways.values()]
        assert outcomes[0] == outcomes[1], outcomes
        for _ in range(2):  # untimed: the process's first runs of each compile and plan for the first time
            for fn in ways.values():
                fn()
        print(f"gate {day} against {night_before}: {outcomes[0]}", flush=True)
        for r in range(rounds):
            for name in (list(ways) if r % 2 == 0 else list(reversed(ways))):
                start = time.monotonic()
                ways[name]()
                times[name].append(time.monotonic() - start)
    for name, seconds in times.items():
        print(f"{name}: median {statistics.median(seconds):.3f} s ({' '.join(f'{s:.2f}' for s in seconds)})")
    spark.stop()


WRITES = {  # the partitioned tables each stage writes with replace_date / replace_partition (one partition each)
    "clean": ("silver.plays", "silver.quarantine"),
    "embed": ("gold.track_embeddings",),
    "cluster": ("gold.track_clusters", "gold.user_segments"),
    "als": ("gold.als_user_factors", "gold.als_item_factors"),
    "recommend": ("gold.candidates", "gold.staged_recommendations", "gold.recommendations"),
}


def new_partitions(work: Path, warehouse: Path, day: dt.date, stage: str, rounds: int, raw_path: str) -> None:
    copy = copied(warehouse, work)
    spark, cfg = session([f"warehouse={copy}", f"raw_path={raw_path}", "spark.event_log=false"])
    from jobs import nightly
    from jobs.core import delta_io
    from jobs.core.lease import Lease
    from jobs.core.tables import ALL_TABLES
    tables = [t for t in ALL_TABLES if t.full_name in WRITES[stage]]
    scheduler = spark.sparkContext._jsc.sc().dagScheduler()  # noqa: SLF001 - its job counter
    shipped = delta_io._appendable  # noqa: SLF001
    runs: dict[str, list[tuple[float, int]]] = {"append (shipped)": [], "replace (before)": []}
    with Lease(cfg, "bench"):
        for r in range(rounds + 1):
            for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
                for table in tables:  # the stage's own partition of the date: (date) or (date, stage)
                    where = " AND ".join(f"{c} = {delta_io.sql_literal(stage if c == 'stage' else day)}"
                                         for c in table.partition_by)
                    spark.sql(f"DELETE FROM {delta_io.table_ref(cfg, table)} WHERE {where}")
                delta_io._appendable = shipped if name.startswith("append") else (lambda *a, **k: False)  # noqa: SLF001
                before, start = scheduler.numTotalJobs(), time.monotonic()
                try:
                    nightly.run_stages(spark, cfg, day, (stage,), force=True, results={})
                finally:
                    delta_io._appendable = shipped  # noqa: SLF001
                seconds, jobs = time.monotonic() - start, scheduler.numTotalJobs() - before
                if r:
                    runs[name].append((seconds, jobs))
                    print(f"round {r}: {stage} {day}, {name}: {seconds:.2f} s, {jobs} Spark jobs", flush=True)
    for name, values in runs.items():
        print(f"{name:18} median {statistics.median(v[0] for v in values):.2f} s, "
              f"{statistics.median(v[1] for v in values):.0f} Spark jobs ({rounds} runs after one untimed)")
    spark.stop()


def idle_workers(work: Path, warehouse: Path, day: dt.date, stage: str, rounds: int, idle: float,
                 raw_path: str) -> None:
    from jobs.core.session import WORKER_DAEMON
    copy = copied(warehouse, work)
    stages = None
    runs: dict[str, list[float]] = {WORKER_DAEMON: [], "pyspark.daemon": []}
    for r in range(rounds):
        for daemon in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            spark, cfg = session([f"warehouse={copy}", f"raw_path={raw_path}", "spark.event_log=false",
                                  f"spark.conf.spark.python.daemon.module={daemon}"])
            from jobs import nightly
            stages = stages or tuple(s for s in nightly.STAGES if s in stage.split(","))
            nightly.run_stages(spark, cfg, day, stages, force=True, results={})
            time.sleep(idle)
            start = time.monotonic()
            nightly.run_stages(spark, cfg, day, stages, force=True, results={})
            runs[daemon].append(time.monotonic() - start)
            print(f"round {r + 1}: {stage} {day} after {idle:.0f} s idle, daemon {daemon}: {runs[daemon][-1]:.2f} s",
                  flush=True)
            spark.stop()
    shipped, spark_own = (statistics.median(v) for v in runs.values())
    print(f"{stage} {day} after {idle:.0f} s idle: {WORKER_DAEMON} median {shipped:.2f} s, pyspark.daemon median "
          f"{spark_own:.2f} s (x{shipped / spark_own:.2f}; {rounds} runs each, each after one untimed run)")


def commit_costs(work: Path, warehouse: Path, day: dt.date, rounds: int) -> None:
    """One small night's partition written as a Delta append, a Delta replaceWhere (new date, then
    replacing it) and a plain Parquet write, interleaved in one process."""
    copy = copied(warehouse, work)
    spark, cfg = session([f"warehouse={copy}", "spark.event_log=false"])
    from pyspark.sql import functions as F

    from jobs.core import delta_io
    from jobs.core.session import small_night_settings, sql_settings
    from jobs.core.tables import GOLD_TRACK_EMBEDDINGS as table
    rows = delta_io.read(spark, cfg, table).where(F.col("run_date") == F.lit(day)).collect()
    held = spark.createDataFrame(rows, table.schema).cache()  # not a read of the table: a write would re-plan it
    held.count()
    scheduler = spark.sparkContext._jsc.sc().dagScheduler()  # noqa: SLF001 - its job counter
    ways = {
        "Delta append, new date": lambda d: delta_io._writer(held.withColumn("run_date", F.lit(d)), cfg, table)  # noqa: SLF001
        .mode("append").save(table.path(cfg)),
        "Delta replaceWhere, new date": lambda d: delta_io.replace_date(held.withColumn("run_date", F.lit(d)), cfg,
                                                                        table, "run_date", d),
        "Delta replaceWhere, replacing": lambda d: delta_io.replace_date(held.withColumn("run_date", F.lit(d)), cfg,
                                                                         table, "run_date", d),
        "Parquet, no transaction": lambda d: delta_io.conform(held.withColumn("run_date", F.lit(d)), table)
        .write.partitionBy("run_date").mode("overwrite").parquet(str(work / "parquet" / d.isoformat())),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    jobs: dict[str, list[int]] = {name: [] for name in ways}
    with sql_settings(spark, small_night_settings(spark, "interpreted")):
        for r in range(rounds + 1):  # the first round warms the process up, untimed
            for i, (name, write) in enumerate(ways.items()):
                target = dt.date(2100, 1, 1) + dt.timedelta(days=len(ways) * r + i)  # a date of its own
                if name == "Delta replaceWhere, replacing":  # its date holds rows first
                    ways["Delta replaceWhere, new date"](target)
                before, start = scheduler.numTotalJobs(), time.monotonic()
                write(target)
                if r:
                    seconds[name].append(time.monotonic() - start)
                    jobs[name].append(scheduler.numTotalJobs() - before)
    print(f"{len(rows)} rows of {table.full_name} ({day}), {rounds} rounds after one untimed, interleaved:")
    for name in ways:
        print(f"  {name:32} median {statistics.median(seconds[name]):.3f} s, "
              f"{statistics.median(jobs[name]):.0f} Spark jobs")
    spark.stop()


def upkeep(work: Path, warehouse: Path, day: dt.date, at_once: list[int], rounds: int, small: bool) -> None:
    copy = copied(warehouse, work)
    spark, cfg = session([f"warehouse={copy}", "spark.event_log=false"])
    from jobs import maintain
    from jobs.core.config import with_overrides
    from jobs.core.session import small_night_settings
    if small:
        for key, value in small_night_settings(spark, "interpreted").items():
            spark.conf.set(key, value)
    maintain.run(spark, cfg, day)  # warms the process; the tables' retention property is set once
    times: dict[int, list[float]] = {n: [] for n in at_once}
    for r in range(rounds):
        for n in at_once if r % 2 == 0 else list(reversed(at_once)):
            start = time.monotonic()
            summary = maintain.run(spark, with_overrides(cfg, [f"maintain.tables_at_once={n}"]), day)
            times[n].append(time.monotonic() - start)
            print(f"round {r + 1}: maintain {day}, {len(summary['tables'])} tables, {n} at once: "
                  f"{times[n][-1]:.1f} s", flush=True)
    base = statistics.median(times[at_once[0]])
    for n in at_once:
        print(f"{n} at once: median {statistics.median(times[n]):.1f} s (x{statistics.median(times[n]) / base:.2f})")
    spark.stop()


if __name__ == "__main__":
    main()
