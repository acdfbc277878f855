"""Reading and writing the declared tables. Each write is one Delta commit, so a reader sees a
table before or after it, never half of it."""
from __future__ import annotations

import datetime as dt

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import Config
from jobs.errors import InputError
from jobs.tables import Table


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
    return spark.createDataFrame([], table.schema)


def ensure(spark: SparkSession, cfg: Config, table: Table) -> DeltaTable:
    """The table, created empty with its declared schema and partitioning if it is not there yet."""
    builder = DeltaTable.createIfNotExists(spark).location(table.path(cfg)).addColumns(table.schema)
    if table.partition_by:
        builder = builder.partitionedBy(*table.partition_by)
    return builder.execute()


def _writer(df: DataFrame, table: Table):
    writer = conform(df, table).write.format("delta")
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    return writer


def replace_date(df: DataFrame, cfg: Config, table: Table, column: str, day: dt.date, also: str = "") -> None:
    """Atomically replace every row with `column = day` (and the predicate `also`, when given) by
    df's rows, which must all satisfy the same condition. One Delta commit."""
    predicate = f"{column} = DATE'{day.isoformat()}'" + (f" AND ({also})" if also else "")
    _writer(df, table).mode("overwrite").option("replaceWhere", predicate).save(table.path(cfg))


def overwrite(df: DataFrame, cfg: Config, table: Table) -> None:
    _writer(df, table).mode("overwrite").option("overwriteSchema", "true").save(table.path(cfg))


def register(spark: SparkSession, cfg: Config, tables: tuple[Table, ...]) -> list[str]:
    """Name the existing tables `<catalog.database>.<table>` in the session catalog (a metastore when
    one is configured), pointing at their paths: consumers then query them with plain SQL."""
    database = cfg.catalog.database
    location = f"{cfg.warehouse.rstrip('/')}/_catalog/{database}.db"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}` LOCATION '{location}'")
    names = []
    for table in tables:
        if exists(spark, cfg, table):
            name = f"`{database}`.`{table.name}`"
            spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{table.path(cfg)}'")
            names.append(f"{database}.{table.name}")
    return names
