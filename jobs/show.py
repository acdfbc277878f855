"""The inspection commands, for people rather than jobs: `tables` (where every table of the
warehouse is and how many rows it holds) and `preview` (a few users' recommendations)."""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.tables import ALL_TABLES, GOLD_RECOMMENDATIONS

log = logging.getLogger("setlist.show")


def tables(spark: SparkSession, cfg: Config) -> dict:
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


def preview(spark: SparkSession, cfg: Config, day: dt.date | None, users: int = 3, top: int = 10) -> dict:
    """A few users' recommendations for `day` (the latest date if None), with each row's source."""
    recs = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS)
    day = day or recs.agg(F.max("run_date")).first()[0]
    recs = recs.where(F.col("run_date") == F.lit(day))
    # the first users by a join, not a filter on their ids: no user id becomes a literal of a query
    # (and so of the Spark event log, which forget-user would then have to delete)
    first = recs.select("user_id").distinct().orderBy("user_id").limit(users)
    rows = recs.join(first, "user_id").where(F.col("rank") <= top).orderBy("user_id", "rank").collect()
    chosen = sorted({r["user_id"] for r in rows})
    lines = [f"recommendations of {day} ({recs.select('user_id').distinct().count()} users), first {users} users:"]
    for user in chosen:
        lines.append(f"  {user}")
        for r in (r for r in rows if r["user_id"] == user):
            lines.append(f"    {r['rank']:>2}. {r['artist_name']} - {r['track_name']}  [{r['source']}, {r['score']:.3f}]")
    print("\n".join(lines), flush=True)
    return {"date": str(day), "users": chosen}
