"""DataFrames of rows the driver holds (a run's summary row, a handful of offsets or names, an empty
table, a matrix of vectors), handed to the JVM as Arrow.

`spark.createDataFrame(list_of_rows)` pickles the rows into an RDD that Python workers unpickle when
a job first reads it: a process's first such frame starts the executors' Python daemon, which
imports pandas, pyarrow and torch (jobs.core.worker_daemon; 4.7 s for a one-row frame in a fresh
process here, 0.2 s as Arrow), and data stages (ingest, clean) need no Python worker otherwise. A
pyarrow Table goes to the JVM as Arrow batches (SparkSession.createDataFrame of a pyarrow.Table,
Spark 4), read there with no Python worker; the rows and the schema are the same
(docs/performance.md, "A job imports what it runs; driver rows handed to the JVM as Arrow").
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable

import pyarrow as pa
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType


def rows_frame(spark: SparkSession, rows: Iterable[dict | tuple] | pa.Table, schema: StructType) -> DataFrame:
    """A DataFrame of `schema` holding `rows`: dicts (by field name; a missing field is null), tuples or
    Rows (by position), or a pyarrow Table with the schema's columns. A naive datetime is local time,
    as createDataFrame reads it; a value of the wrong type raises pyarrow's error."""
    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    if isinstance(rows, pa.Table):
        table = rows.select(schema.names).cast(arrow_schema)
    else:
        names = schema.names
        records = [r.asDict() if isinstance(r, Row) else r if isinstance(r, dict) else dict(zip(names, r))
                   for r in rows]
        table = pa.Table.from_pylist([{k: as_instant(v) for k, v in r.items()} for r in records], schema=arrow_schema)
    return spark.createDataFrame(table, schema)


def as_instant(value):
    """A value for an Arrow UTC timestamp column: a naive datetime is local time, as Spark's
    createDataFrame reads it; any other value as it is."""
    return value.astimezone(dt.timezone.utc) if isinstance(value, dt.datetime) else value
