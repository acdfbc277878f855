"""Reading and writing the declared tables. Each write is one Delta commit, so a reader sees a
table before or after it, never half of it."""
from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import pyarrow as pa
from delta.tables import DeltaTable
from pyspark import inheritable_thread_target
from pyspark.sql import Column, DataFrame, Observation, Row, SparkSession
from pyspark.sql import functions as F

from jobs.core import lease
from jobs.core.config import Config
from jobs.core.errors import InputError
from jobs.core.tables import Table
from udfs.rows import as_instant, rows_frame


def conform(df: DataFrame, table: Table) -> DataFrame:
    """Select the table's columns in order, cast to the declared types; a missing column is a bug."""
    missing = [c for c in table.columns if c not in df.columns]
    if missing:
        raise ValueError(f"{table.full_name}: DataFrame lacks column(s) {', '.join(missing)}; has {df.columns}")
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in table.schema.fields])


def exists(spark: SparkSession, cfg: Config, table: Table) -> bool:
    return DeltaTable.isDeltaTable(spark, table.path(cfg))


def read(spark: SparkSession, cfg: Config, table: Table) -> DataFrame:
    if not exists(spark, cfg, table):
        raise InputError(f"table {table.full_name} does not exist at {table.path(cfg)}: "
                         f"run the stage that writes it first")
    return spark.read.format("delta").load(table.path(cfg))


def read_or_empty(spark: SparkSession, cfg: Config, table: Table) -> DataFrame:
    if exists(spark, cfg, table):
        return spark.read.format("delta").load(table.path(cfg))
    return rows_frame(spark, [], table.schema)


def latest_date(spark: SparkSession, cfg: Config, table: Table, day: dt.date) -> dt.date | None:
    """The newest run_date of `table` on or before `day` (a cadence may reuse an older one). A local
    table partitioned by run_date answers from its Delta log (log_of): the dates of the files that
    hold rows."""
    log = log_of(cfg, table) if table.partition_by[:1] == ("run_date",) else None
    if log is not None:
        try:
            files = pa.table(log.get_add_actions(flatten=True)).select(["partition.run_date", "num_records"]).to_pylist()
            if all(f["num_records"] is not None and isinstance(f["partition.run_date"], dt.date) for f in files):
                return max((f["partition.run_date"] for f in files
                            if f["num_records"] > 0 and f["partition.run_date"] <= day), default=None)
        except Exception:  # noqa: BLE001 - a log it cannot read (or files without counts): Spark answers
            pass
    if not exists(spark, cfg, table):
        return None
    return read(spark, cfg, table).where(F.col("run_date") <= F.lit(day)).agg(F.max("run_date")).first()[0]


def version(spark: SparkSession, cfg: Config, table: Table) -> int:
    """The table's current Delta version (what a model trained on it read); a local table's from its
    Delta log (log_of)."""
    log = log_of(cfg, table)
    if log is not None:
        return int(log.version())
    return int(DeltaTable.forPath(spark, table.path(cfg)).history(1).select("version").first()["version"])


def log_of(cfg: Config, table: Table):
    """delta-rs's reader (deltalake.DeltaTable) of a table in a local warehouse at its latest version,
    for the small bookkeeping reads every stage makes (gold.runs, gold.models, a table's version or
    newest date): it answers from the Delta log in milliseconds, where each of those reads as a Spark
    query planned a scan and ran a job or two, 0.3 to 0.9 s each on a warm driver here
    (docs/performance.md, "Bookkeeping read from the Delta log"). None where Spark must answer: a
    warehouse on a URI (delta-rs would need credentials of its own), no table there, a log delta-rs
    cannot read, or a table whose readers need more than Delta's reader protocol 1 (deletion vectors,
    column mapping), which the answer could otherwise miss."""
    if "://" in cfg.warehouse:
        return None
    try:
        from deltalake import DeltaTable as LogReader
        log = LogReader(table.path(cfg))
        return log if log.protocol().min_reader_version == 1 else None
    except Exception:  # noqa: BLE001 - no table, or a log it cannot read: Spark answers
        return None


def small_rows(spark: SparkSession, cfg: Config, table: Table, day: dt.date) -> list[Row]:
    """The rows of a small bookkeeping table (gold.runs, gold.models) with run_date on or before
    `day`, as Spark's collect() gives them (Rows of the declared columns, timestamps naive in local
    time): read from the Delta log by delta-rs where it can (log_of), else by Spark; none when the
    table does not exist."""
    log = log_of(cfg, table)
    if log is not None:
        try:
            # delta-rs's own query engine, not pyarrow's dataset scanner: a process that exits just
            # after such a scan aborted (SIGABRT, exit code 134: apache/arrow#39862) in 11 of 30
            # runs here, none of 30 after this query, which also took 25 ms against 47-76 ms
            # (docs/performance.md, "A driver's exit after a read from the Delta log")
            from deltalake import QueryBuilder
            query = f"SELECT * FROM t WHERE run_date <= DATE '{day.isoformat()}'"
            data = pa.table(QueryBuilder().register("t", log).execute(query).read_all()).to_pylist()
            names = [f.name for f in table.schema.fields]
            return [Row(**{name: _as_collected(record.get(name)) for name in names}) for record in data]
        except Exception:  # noqa: BLE001 - a log or file it cannot read: Spark answers
            pass
    if not exists(spark, cfg, table):
        return []
    return read(spark, cfg, table).where(F.col("run_date") <= F.lit(day)).collect()


def _as_collected(value):
    """A value as pyspark's collect() returns it: a timestamp naive, in the local time zone."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone().replace(tzinfo=None)
    return value


def properties(spark: SparkSession, cfg: Config, table: Table) -> dict[str, str]:
    """The table's properties, constraints (delta.constraints.<name>) included, from SHOW
    TBLPROPERTIES, which reads only the snapshot's metadata: DESCRIBE DETAIL (DeltaTable.detail)
    took about 2 s a table here (it also sizes the files), most of a small night's table checks."""
    return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {table_ref(cfg, table)}").collect()}


_ENSURED: set[str] = set()
STATS_COLUMNS = "delta.dataSkippingStatsColumns"
RETENTION = "delta.deletedFileRetentionDuration"
OBSERVED_WAIT_SECONDS = 60.0
T = TypeVar("T")


def table_ref(cfg: Config, table: Table) -> str:
    """The table in SQL: delta.`<path>`, the path's backticks escaped."""
    return "delta.`" + table.path(cfg).replace("`", "``") + "`"


def ensure(spark: SparkSession, cfg: Config, table: Table) -> DeltaTable:
    """The table, created empty with its declared schema, partitioning, NOT NULL columns, CHECK
    constraints and change feed if it is not there yet; an existing table gets any it lacks. Done
    once per table and process: later calls only open the table."""
    path = table.path(cfg)
    if path in _ENSURED:
        return DeltaTable.forPath(spark, path)
    existed = DeltaTable.isDeltaTable(spark, path)
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(table.declared_schema)
    if table.partition_by:
        builder = builder.partitionedBy(*table.partition_by)
    if table.change_feed:
        builder = builder.property("delta.enableChangeDataFeed", "true")
    if table.personal:
        builder = builder.property(STATS_COLUMNS, ",".join(table.stats_columns))
    # CHECK constraints in the creating commit (Delta keeps a constraint as the table property
    # delta.constraints.<name>, which is what ADD CONSTRAINT writes): one commit for a new table
    # instead of one more per constraint, each 2-3 s on a small machine.
    for name, condition in table.checks:
        builder = builder.property(f"delta.constraints.{name.lower()}", condition)
    # VACUUM's retention too (see vacuum): a warehouse's first upkeep then has no property to set
    builder = builder.property(RETENTION, retention(cfg.maintain.retain_hours))
    delta = builder.execute()
    if existed:  # a table from an older setlist, or created by another process: add what it lacks
        _add_missing_constraints(spark, cfg, table, delta)
    _ENSURED.add(path)
    return delta


def _add_missing_constraints(spark: SparkSession, cfg: Config, table: Table, delta: DeltaTable) -> None:
    ref = table_ref(cfg, table)
    detail = properties(spark, cfg, table)
    existing = {f.name for f in delta.toDF().schema.fields}
    added = [f for f in table.schema.fields if f.name not in existing]
    if added:  # a column declared after the table was created (older setlist): added, null in old rows
        spark.sql(f"ALTER TABLE {ref} ADD COLUMNS ({', '.join(f'`{f.name}` {f.dataType.simpleString()}' for f in added)})")
    if table.change_feed and detail.get("delta.enableChangeDataFeed") != "true":
        spark.sql(f"ALTER TABLE {ref} SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')")
    if table.personal and detail.get(STATS_COLUMNS) != ",".join(table.stats_columns):
        spark.sql(f"ALTER TABLE {ref} SET TBLPROPERTIES ('{STATS_COLUMNS}' = '{','.join(table.stats_columns)}')")
    # A table created before its NOT NULL columns were declared keeps nullable columns (Delta cannot
    # tighten them in place): the same rule is added as a CHECK constraint instead.
    nullable = {f.name: f.nullable for f in delta.toDF().schema.fields}
    late_not_null = tuple((f"{c}_not_null", f"`{c}` IS NOT NULL") for c in table.not_null if nullable.get(c, False))
    for name, condition in table.checks + late_not_null:
        if f"delta.constraints.{name.lower()}" not in detail:
            spark.sql(f"ALTER TABLE {ref} ADD CONSTRAINT {name} CHECK ({condition})")


def sql_literal(value) -> str:
    """A value as a Spark SQL literal, quoted and escaped."""
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP'{value.isoformat()}'"
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def replace_partition(df: DataFrame, cfg: Config, table: Table, **partition) -> dict:
    """Atomically replace the rows of one partition (every partition column given, e.g. run_date=D,
    stage="train") by df's rows, which must all lie in it. One Delta commit; returns what
    `_replace` measured of the rows written."""
    if set(partition) != set(table.partition_by):
        raise ValueError(f"{table.full_name}: a partition needs {table.partition_by}, got {sorted(partition)}")
    if "stage" in partition and partition["stage"] not in table.writers:
        raise ValueError(f"{table.full_name}: {partition['stage']!r} is not one of its writers {table.writers}")
    frame = df
    for column, value in partition.items():
        if column not in df.columns:
            frame = frame.withColumn(column, F.lit(value))
    predicate = " AND ".join(f"{column} = {sql_literal(value)}" for column, value in partition.items())
    return _replace(frame, cfg, table, predicate, partition=partition)


def replace_date(df: DataFrame, cfg: Config, table: Table, column: str, day: dt.date,
                 measures: dict[str, Column] | None = None) -> dict:
    """Atomically replace every row with `column = day` by df's rows (one Delta commit). For tables
    keyed by a date alone: silver.clean_runs, silver.plays and the run_date-partitioned gold tables.
    Returns what `_replace` measured of the rows written: {"rows": n, and each of `measures`}."""
    return _replace(df, cfg, table, f"{column} = {sql_literal(day)}", measures,
                    partition={column: day} if table.partition_by == (column,) else None)


def _writer(df: DataFrame, cfg: Config, table: Table):
    """A Delta writer of df's (conformed) rows into the table, created first if it is not there."""
    if table.path(cfg) not in _ENSURED:
        ensure(df.sparkSession, cfg, table)
    writer = conform(df, table).write.format("delta")
    return writer.partitionBy(*table.partition_by) if table.partition_by else writer


def _replace(df: DataFrame, cfg: Config, table: Table, predicate: str,
             measures: dict[str, Column] | None = None, partition: dict | None = None) -> dict:
    """Overwrite the rows matching `predicate` with df's (conformed) rows: one Delta commit.
    Returns {"rows": the rows written, and each of `measures` (name: an aggregate over df's rows)},
    measured while the rows are written (Spark's Observation), so no second query reads them.

    When `predicate` is one whole partition (`partition`: a value for each of the table's partition
    columns) that holds no file yet, and this process holds the warehouse's lease (no other writer
    can add one meanwhile), the rows are appended instead: Delta's `replaceWhere` first rebuilds the
    table's file list in Spark jobs to find what it replaces, which is most of a small write's cost
    (1.00 s against 0.42 s for an append of the same rows: `bench/fixed_costs.py commit`). The
    append keeps replaceWhere's guarantee that every row lies in the partition: a row outside it
    fails the write before anything is committed. A partition that holds files (a rerun, or a
    stage killed after its commit) is always replaced."""
    observation = Observation()
    aggregates = [F.count(F.lit(1)).alias("rows"), *(column.alias(name) for name, column in (measures or {}).items())]
    if partition is not None and _appendable(df.sparkSession, cfg, table, partition):
        # A filter that fails on a row outside the partition, not a projection that rewrites the column:
        # Delta's writer sorts the rows by the partition column unless they come in that order, and a
        # rewritten column loses the order a stage may have given them (clean's plays).
        inside = F.lit(True)
        for column, value in partition.items():
            inside = inside & (F.col(column) == F.lit(value))
        guarded = df.where(F.when(inside, F.lit(True)).otherwise(
            F.raise_error(F.lit(f"{table.full_name}: a row outside the partition {predicate} being written"))))
        _writer(guarded.observe(observation, *aggregates), cfg, table).mode("append").save(table.path(cfg))
    else:
        _writer(df.observe(observation, *aggregates), cfg, table).mode("overwrite").option(
            "replaceWhere", predicate).save(table.path(cfg))
    return observed(observation, f"the write of {table.full_name}")


def _appendable(spark: SparkSession, cfg: Config, table: Table, partition: dict) -> bool:
    """Whether a write of `partition` (every partition column given) may append: this process holds
    the warehouse's lease, the warehouse is a local folder, and the table's Delta log (the table
    created first if need be), read by delta-rs in milliseconds without a Spark job, lists no file of
    the partition. Anything it cannot tell (a log delta-rs cannot read) answers False: the write then
    replaces."""
    if set(partition) != set(table.partition_by) or lease.held(cfg) is None or "://" in cfg.warehouse:
        return False
    if table.path(cfg) not in _ENSURED:
        ensure(spark, cfg, table)
    log = log_of(cfg, table)
    if log is None:  # a log it cannot read: replace, as without the lease
        return False
    try:
        files = log.file_uris(file_pruning_predicate=[(column, "=", value) for column, value in partition.items()])
    except Exception:  # noqa: BLE001 - as above
        return False
    return not files


def observed(observation: Observation, what: str, wait_seconds: float = OBSERVED_WAIT_SECONDS) -> dict:
    """The metrics of an Observation whose query has run. Spark hands them over from its listener
    thread shortly after the query ends; Observation.get would wait for them for ever, so this waits
    at most `wait_seconds` and then fails with a clear error (metrics that never come are a bug)."""
    deadline = time.monotonic() + wait_seconds
    while not observation._jo.future().isCompleted():  # noqa: SLF001 - py4j handle of the JVM Observation
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: Spark did not report the observed metrics within {wait_seconds:.0f} s")
        time.sleep(0.005)
    return observation.get


def is_conflict(exc: BaseException) -> bool:
    """A Delta write conflict (ConcurrentAppendException and its kin): retrying may succeed."""
    text = f"{type(exc).__name__} {exc}"
    return "Concurrent" in text or "ProtocolChanged" in text or "MetadataChanged" in text


def upsert(spark: SparkSession, cfg: Config, table: Table, rows: list[dict], keys: tuple[str, ...],
           attempts: int = 5) -> None:
    """Insert rows, replacing any row with the same `keys` values (one commit): an overwrite with
    replaceWhere on the rows' keys, which Delta writes as the matching rows' removal and the new
    rows in one commit. It replaced a MERGE (update matched, insert the rest) that planned a join
    of the table with the new rows: x0.79 for a gold.runs row of a new key, x0.89 for one that
    replaces its key's row (`bench/fixed_costs.py bookkeeping`; docs/performance.md, "Cheaper bookkeeping").
    The rows of different keys commute, so a conflict with a concurrent writer is retried (backing
    off) up to `attempts` times."""
    if not rows:
        return
    if any(row.get(k) is None for row in rows for k in keys):
        raise ValueError(f"{table.full_name}: every row needs a value for each of {keys}")
    frame = rows_frame(spark, rows, table.schema)
    predicate = " OR ".join("(" + " AND ".join(f"{k} = {sql_literal(row[k])}" for k in keys) + ")" for row in rows)
    for attempt in range(1, attempts + 1):
        try:
            _replace(frame, cfg, table, predicate)
            return
        except Exception as exc:  # noqa: BLE001 - only conflicts are retried
            if attempt == attempts or not is_conflict(exc):
                raise
            time.sleep(0.5 * attempt)


def append(spark: SparkSession, cfg: Config, table: Table, rows: list[dict]) -> None:
    """Add rows (one commit) without looking at the table's rows: a blind append, which reads no data
    file and none of the table's file list, where `upsert` first finds and removes the rows of the
    same keys. Only for rows whose keys the table cannot hold yet (the caller is the table's only
    writer and has read its keys): a gold.runs row took 0.55 s against the upsert's 1.52 s
    (docs/performance.md, "A night's new gold.runs, gold.models and gold.metrics rows are appended").
    Under the warehouse's lease on a local warehouse delta-rs commits them (_append_by_log), else Spark."""
    if rows and not _append_by_log(spark, cfg, table, rows):
        _writer(rows_frame(spark, rows, table.schema), cfg, table).mode("append").save(table.path(cfg))


def replace_partition_rows(spark: SparkSession, cfg: Config, table: Table, rows: list[dict], **partition) -> None:
    """Replace one partition's rows (every partition column given) by `rows`, a few Python dicts that
    all lie in it (gold.metrics' rows of a date and stage): appended by delta-rs when the partition
    holds no file and this process holds the warehouse's lease (_appendable, _append_by_log), else
    written by Spark as replace_partition writes them."""
    if (not rows or any(row.get(c) != v for row in rows for c, v in partition.items())
            or not _appendable(spark, cfg, table, partition) or not _append_by_log(spark, cfg, table, rows)):
        replace_partition(rows_frame(spark, rows, table.schema), cfg, table, **partition)


def _append_by_log(spark: SparkSession, cfg: Config, table: Table, rows: list[dict]) -> bool:
    """Commit `rows` as one blind append with delta-rs (deltalake.write_deltalake), without a Spark
    job: a gold.runs row in about 20 ms against 0.5-2 s for Spark's append of the same row on a
    warm driver (docs/performance.md, "Bookkeeping rows committed by delta-rs"). Only under the
    warehouse's lease (no other writer), on a local warehouse, for a table whose writers need no
    more than Delta's writer protocol 3 (NOT NULL and CHECK constraints, which delta-rs enforces as
    Spark does) and no change feed. Every 10th version (the table's delta.checkpointInterval) gets
    the checkpoint Spark would have written. Returns False, having committed nothing, where Spark
    must write the rows instead (they may then fail there, with Spark's error)."""
    if lease.held(cfg) is None or "://" in cfg.warehouse:
        return False
    if table.path(cfg) not in _ENSURED:
        ensure(spark, cfg, table)
    log = log_of(cfg, table)
    if log is None:
        return False
    try:
        protocol, settings = log.protocol(), log.metadata().configuration
        if (protocol.min_writer_version > 3 or protocol.writer_features
                or settings.get("delta.enableChangeDataFeed", "false").lower() == "true"):
            return False
        before = log.version()
        data = pa.Table.from_pylist([{k: as_instant(v) for k, v in row.items()} for row in rows],
                                    schema=pa.schema(log.schema().to_arrow()))
    except Exception:  # noqa: BLE001 - rows or a log it cannot map: Spark writes them
        return False
    from deltalake import DeltaTable as LogReader, write_deltalake
    from deltalake.transaction import PostCommitHookProperties
    try:
        write_deltalake(log, data, mode="append",
                        post_commithook_properties=PostCommitHookProperties(create_checkpoint=False,
                                                                            cleanup_expired_logs=False))
    except Exception:
        if LogReader(table.path(cfg)).version() != before:  # committed after all: never written twice
            raise
        return False  # nothing committed (a row its constraints refuse, or anything delta-rs cannot do)
    # write_deltalake brings `log` to the version it committed
    if log.version() % int(settings.get("delta.checkpointInterval", "10")) == 0:
        try:
            log.create_checkpoint()
            log.cleanup_metadata()  # log entries past delta.logRetentionDuration, as Spark's checkpoint does
        except Exception:  # noqa: BLE001 - the commit stands; Spark checkpoints at a later multiple
            pass
    return True


def register(spark: SparkSession, cfg: Config, tables: tuple[Table, ...]) -> list[str]:
    """Name the existing tables `<catalog.database>.<table>` in the session catalog (a metastore when
    one is configured), pointing at their paths: consumers then query them with plain SQL."""
    database = cfg.catalog.database
    location = f"{cfg.warehouse.rstrip('/')}/_catalog/{database}.db"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}` LOCATION {sql_literal(location)}")
    names = []
    for table in tables:
        if exists(spark, cfg, table):
            name = f"`{database}`.`{table.name}`"
            spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION {sql_literal(table.path(cfg))}")
            names.append(f"{database}.{table.name}")
    return names


def retention(hours: float) -> str:
    """The value of a table's RETENTION property that keeps removed files for `hours`."""
    return f"interval {hours:g} hours"


def each_table(spark: SparkSession, tables: list[Table], work: Callable[[Table], T], at_once: int) -> list[T]:
    """`work(table)` for every table, up to `at_once` tables at a time from driver threads (each table
    has its own log and commits, so one table's work never waits on another's). On a small warehouse a
    table's OPTIMIZE or VACUUM is mostly the driver's log replay and planning, during which the
    executors idle; overlapping tables fills them. The results come in the tables' order; when one
    fails, the others that started still end, then its error is raised."""
    in_thread = inheritable_thread_target(spark)(work)  # the caller's job properties and tags
    with ThreadPoolExecutor(max(1, min(at_once, len(tables) or 1)), thread_name_prefix="tables") as pool:
        futures = [pool.submit(in_thread, table) for table in tables]
    return [future.result() for future in futures]


def vacuum(spark: SparkSession, cfg: Config, table: Table, retain_hours: float, mode: str) -> None:
    """VACUUM with a retention of `retain_hours`. Delta 4.4 ignores a RETAIN clause other than 0 hours
    ("Vacuum with retention threshold other than 0 hours is ignored"): the retention is the table's
    delta.deletedFileRetentionDuration, so it is set first when it differs. mode `lite` finds the
    files to delete in the log (seconds); `full` lists the table's folder and also removes files no
    commit ever referenced (left by a writer killed mid-write)."""
    ref = table_ref(cfg, table)
    wanted = retention(retain_hours)
    if properties(spark, cfg, table).get(RETENTION) != wanted:
        spark.sql(f"ALTER TABLE {ref} SET TBLPROPERTIES ('{RETENTION}' = '{wanted}')")
    spark.sql(f"VACUUM {ref}" + (" LITE" if mode == "lite" else ""))
