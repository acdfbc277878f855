"""tables: where every table of the warehouse is and how many rows it holds (for people, not jobs)."""
from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from jobs import delta_io
from jobs.config import Config
from jobs.tables import ALL_TABLES

log = logging.getLogger("setlist.tables")


def run(spark: SparkSession, cfg: Config) -> dict:
    counts = {}
    width = max(len(t.full_name) for t in ALL_TABLES)
    lines = [f"warehouse: {cfg.warehouse}"]
    for table in ALL_TABLES:
        if delta_io.exists(spark, cfg, table):
            counts[table.full_name] = delta_io.read(spark, cfg, table).count()
            lines.append(f"  {table.full_name:<{width}}  {counts[table.full_name]:>10,} rows  {table.path(cfg)}")
        else:
            lines.append(f"  {table.full_name:<{width}}  {'(not yet written)':>15}  {table.path(cfg)}")
    print("\n".join(lines), flush=True)
    return counts
