"""The command line of every job: `main.py JOB [--conf FILE] [--date D] [--set key=value ...] [options]`.

Several jobs can run one after another in one Spark application, each after `--then`:
`main.py backfill --from A --to B --then nightly --date C --then tables`. The first job's --conf and
--set apply to all of them (a later job may not give its own); every job's arguments are checked
before the first starts; the jobs run in order, the first failure stops the chain with its exit code.

submit.sh runs this file through spark-submit; tests and local runs may call `main()` directly.
The config is loaded and validated before a Spark session exists, so a bad file or flag costs
no JVM and exits 2. Exit codes: see jobs.core.errors.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from contextlib import nullcontext
from typing import Callable

from jobs.core.config import TRAIN_BACKENDS, Config, load_config
from jobs.core.errors import ConfigError, SetlistError

log = logging.getLogger("setlist")

DEFAULT_CONF = "conf/local.yaml"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 2 with one line, like config errors
        raise ConfigError(message)  # main prints it after "setlist: error: "


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a date (YYYY-MM-DD)") from None  # argparse names the option


def _jobs() -> dict[str, Callable]:
    # Imported lazily, each job's module when it runs: a config error must not wait for pyspark/delta
    # imports, and a job does not import what only other jobs use (torch, matplotlib: about 3 s of a
    # `clean` driver's start). Each job's required arguments were checked by parse_chain (CHECKS)
    # before any job runs.
    def generate(spark, cfg, a):
        from jobs import generate
        return generate.run(spark, cfg, a.date)

    def ingest(spark, cfg, a):
        from jobs import ingest
        return ingest.run(spark, cfg, a.date, a.format)

    def nightly(spark, cfg, a):
        from jobs import nightly
        return nightly.run(spark, cfg, a.date, a.force)

    def backfill(spark, cfg, a):
        from jobs import backfill
        return backfill.run(spark, cfg, a.first, a.last, a.force)

    def train(spark, cfg, a):
        from jobs import train
        return train.run(spark, cfg, a.date, a.backend)

    def tables(spark, cfg, a):
        from jobs import show
        return show.tables(spark, cfg)

    def preview(spark, cfg, a):
        from jobs import show
        return show.preview(spark, cfg, a.date)

    def maintain(spark, cfg, a):
        from jobs import maintain
        return maintain.run(spark, cfg, a.date or dt.date.today())

    def forget_user(spark, cfg, a):
        from jobs import forget
        return forget.run(spark, cfg, a.user)

    def stage(name):  # a nightly stage run on its own, on --date: the nightly's own entry for it
        def run(spark, cfg, a):
            from jobs import nightly
            return nightly.STAGES[name](spark, cfg, a.date)
        return run

    return {"generate": generate, "ingest": ingest,
            **{name: stage(name) for name in ("clean", "embed", "cluster", "als", "evaluate", "rank", "recommend")},
            "nightly": nightly, "backfill": backfill, "train": train, "tables": tables, "preview": preview,
            "maintain": maintain, "forget-user": forget_user}


# Jobs that write the warehouse hold its single-writer lease while they run (jobs.core.lease).
READ_ONLY_JOBS = ("generate", "tables", "preview")
THEN = "--then"  # separates the jobs of one application
JOB_NAMES = ("generate", "ingest", "clean", "embed", "cluster", "als", "train", "rank", "recommend", "evaluate", "nightly",
             "backfill", "maintain", "forget-user", "tables", "preview")


def _need_date(args) -> dt.date:
    if args.date is None:
        raise ConfigError(f"{args.job}: --date YYYY-MM-DD is required")
    return args.date


def _need_users(args) -> list[str]:
    if not args.user:
        raise ConfigError(f"{args.job}: --user ID is required (repeat it for several users)")
    return args.user


def _need_range(args) -> tuple[dt.date, dt.date]:
    if args.first is None or args.last is None:
        raise ConfigError(f"{args.job}: --from YYYY-MM-DD and --to YYYY-MM-DD are required")
    if args.last < args.first:
        raise ConfigError(f"{args.job}: --to {args.last} is before --from {args.first}")
    return args.first, args.last


# What each job needs besides the config, checked before any job of the application runs.
CHECKS: dict[str, Callable] = {
    **{job: _need_date for job in ("ingest", "clean", "embed", "cluster", "als", "train", "rank", "recommend",
                                   "evaluate", "nightly")},
    "backfill": _need_range,
    "forget-user": _need_users,
}


def build_parser(conf_default: str | None = DEFAULT_CONF) -> argparse.ArgumentParser:
    parser = _Parser(prog="setlist", description="setlist batch jobs")
    parser.add_argument("job", choices=JOB_NAMES)
    parser.add_argument("--conf", default=conf_default, help=f"config file (default {DEFAULT_CONF})")
    parser.add_argument("--date", type=_date, help="run date YYYY-MM-DD")
    parser.add_argument("--format", help="ingest: one input format (default: every configured one present, and feedback)")
    parser.add_argument("--backend", choices=TRAIN_BACKENDS,
                        help="train: distributed backend (default: conf train.backend)")
    parser.add_argument("--from", dest="first", type=_date, help="backfill: first date YYYY-MM-DD")
    parser.add_argument("--to", dest="last", type=_date, help="backfill: last date YYYY-MM-DD")
    parser.add_argument("--user", action="append", default=[], metavar="ID",
                        help="forget-user: a user id as logged (repeatable)")
    parser.add_argument("--force", action="store_true",
                        help="nightly, backfill: rerun stages already committed for the date(s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set clean.session_gap_minutes=45")
    return parser


def parse(argv: list[str]) -> tuple[argparse.Namespace, Config]:
    args = build_parser().parse_args(argv)
    return args, load_config(args.conf, args.set)


def parse_chain(argv: list[str]) -> tuple[list[argparse.Namespace], Config]:
    """The jobs of one application (argv split at --then) and their one config. Each job's own
    arguments are checked here (a missing --date of the last job fails before the first runs)."""
    segments, current = [], []
    for token in argv:
        if token == THEN:
            segments.append(current)
            current = []
        else:
            current.append(token)
    segments.append(current)
    if any(not segment for segment in segments):
        raise ConfigError(f"{THEN}: a job name must come before and after every {THEN}")
    first, cfg = parse(segments[0])
    chain = [first]
    for segment in segments[1:]:
        args = build_parser(conf_default=None).parse_args(segment)  # None: was --conf given here?
        if args.conf is not None or args.set:
            raise ConfigError(f"{args.job}: --conf and --set go with the first job only (one application runs "
                              f"one config; after {THEN} they are the first job's)")
        args.conf, args.set = first.conf, first.set
        chain.append(args)
    for args in chain:
        CHECKS.get(args.job, lambda a: None)(args)
    return chain, cfg


class JsonLines(logging.Formatter):
    """One JSON object per log line (log_format: json), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def quiet_py4j_retry(record: logging.LogRecord) -> bool:
    """False for py4j's INFO record of a retried command, logged with its traceback on the root
    logger (py4j 0.10.9.9 calls `logging.info(..., exc_info=True)`) when a thread's closed connection
    is replaced: the retry succeeds, and a traceback in a night's log reads as a failure. A command
    that fails for good is still logged, at ERROR."""
    return not (record.levelno < logging.WARNING and record.getMessage() == "Exception while sending command.")


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(quiet_py4j_retry)
    handler.setFormatter(JsonLines() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    # Libraries' own INFO lines are not the night's: py4j's, gensim's; XGBoost's Spark estimator
    # ("Running xgboost ... booster params", "Training on CPUs", one per fit and predict), whose
    # executor side takes the driver logger's level (xgboost.spark.core.get_logger_level); MLflow
    # configures its own loggers when imported, from MLFLOW_LOGGING_LEVEL (one that is set is kept).
    for chatty in ("py4j", "gensim", "smart_open", "XGBoost-PySpark"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def report_error(line: str) -> None:
    """The one-line error for whoever ran the job.

    Under spark-submit the driver's stderr is merged into the JVM's stdout, so submit.sh passes
    SETLIST_ERROR_FILE and prints that file to its own stderr after spark-submit returns.
    """
    target = os.environ.get("SETLIST_ERROR_FILE")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    else:
        print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        chain, cfg = parse_chain(argv)
    except ConfigError as exc:
        report_error(f"setlist: error: {exc}")
        return exc.exit_code
    setup_logging(cfg.log_level, cfg.log_format)
    from jobs.core.session import get_spark
    sessions = []  # the one session of the application, made by the first job that runs

    def session():
        if not sessions:
            sessions.append(get_spark(cfg))
        return sessions[0]

    try:
        for position, args in enumerate(chain):
            code = run_job(session, cfg, args)
            if code:
                if position + 1 < len(chain):
                    log.error("%s failed: not running %s", args.job, ", ".join(a.job for a in chain[position + 1:]))
                return code
        return 0
    finally:
        if sessions:
            sessions[0].stop()


def execution_settings(spark, cfg: Config, args: argparse.Namespace):
    """A nightly stage run on its own gets the execution settings the nightly gives it on its date
    (a small night's interpreted settings: jobs.nightly.sized); other jobs run as the session is."""
    from jobs import nightly
    if args.job in nightly.STAGES and args.date is not None:
        return nightly.sized(spark, cfg, args.job, args.date)
    return nullcontext()


def run_job(session: Callable, cfg: Config, args: argparse.Namespace) -> int:
    """One job under the warehouse lease (writers only): its exit code, its error reported in one line."""
    from jobs.core.lease import Lease
    try:
        lease = Lease(cfg, args.job) if cfg.lease.enabled and args.job not in READ_ONLY_JOBS else nullcontext()
        with lease:
            spark = session()
            with execution_settings(spark, cfg, args):
                result = _jobs()[args.job](spark, cfg, args)
        log.info("%s finished: %s", args.job, result)
        return 0
    except SetlistError as exc:
        log.error("%s failed: %s", args.job, exc)
        report_error(f"setlist {args.job}: error: {exc}")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the trace goes to the log, one line to the scheduler
        log.exception("%s failed", args.job)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        report_error(f"setlist {args.job}: error: {type(exc).__name__}: {first_line} (trace in the log above)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
