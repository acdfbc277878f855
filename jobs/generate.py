"""generate: synthetic raw listening logs, one folder per format and day, made on the executors.

The listening model is models.synthetic: every task rebuilds the catalogue from the seed and
generates its own users' records, so the driver holds no event whatever the volume. Users log in
one format each (their client); each format's records for the days ending at the run date are
written to `<raw_path>/<format>/date=<D>/`, replacing only the days generated.
"""
from __future__ import annotations

import datetime as dt
import logging
import os

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.core.config import Config, join_path
from models.synthetic import Behaviour, WorldParams, user_format, user_lines, world
from udfs.formats import LISTEN_FORMATS

log = logging.getLogger("setlist.generate")

USERS_PER_TASK = 2000
LINES_PER_BATCH = 20000
_LINE_SCHEMA = "date string, user long, seq long, line string"


def run(spark: SparkSession, cfg: Config, end_date: dt.date | None = None) -> dict:
    g = cfg.generate
    end = end_date or g.end_date
    start = end - dt.timedelta(days=g.days - 1)
    params = WorldParams(g.seed, g.tracks, g.artists, g.genres, g.mbid_fraction, g.popularity_exponent)
    behaviour = Behaviour(g.days, g.events / g.users, g.sequential_prob, g.repeat_prob, g.artist_loyalty,
                          g.active_day_prob, g.dirty_fraction, g.listenbrainz_fraction)
    seed, ts_floor = g.seed, cfg.clean.ts_floor

    def with_format(batches):
        for users in batches:
            yield pd.DataFrame({"id": users["id"],
                                "format": [user_format(seed, int(u), behaviour.listenbrainz_fraction)
                                           for u in users["id"]]})

    def lines_of(batches):
        w = world(params)
        rows: list[tuple] = []
        for users in batches:
            for user in users["id"]:
                for seq, (day, line) in enumerate(user_lines(w, behaviour, seed, int(user), start, ts_floor)):
                    rows.append((day, int(user), seq, line))
                    if len(rows) >= LINES_PER_BATCH:
                        yield pd.DataFrame(rows, columns=["date", "user", "seq", "line"])
                        rows = []
        if rows:
            yield pd.DataFrame(rows, columns=["date", "user", "seq", "line"])

    tasks = max(1, -(-g.users // USERS_PER_TASK), spark.sparkContext.defaultParallelism)
    users = (spark.range(g.users, numPartitions=tasks)
             .mapInPandas(with_format, "id long, format string"))
    summary = {}
    log.info("generate: %d users, %d tracks, ~%d events over %s..%s (seed %d)", g.users, g.tracks, g.events,
             start, end, seed)
    for fmt in LISTEN_FORMATS:
        path = join_path(cfg.raw_path, fmt)
        lines = users.where(F.col("format") == fmt).select("id").mapInPandas(lines_of, _LINE_SCHEMA)
        files = g.files_per_day * g.days
        (lines.repartition(files, "date", F.pmod(F.col("user"), F.lit(g.files_per_day)))
         .sortWithinPartitions("date", "user", "seq")
         .select("line", "date")
         .write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
         .partitionBy("date").text(path))
        drop_checksums(path)
        written = spark.read.text(path)
        if "date" in written.columns:  # absent when no user logs in this format
            counts = (written.where(F.col("date").between(start.isoformat(), end.isoformat()))
                      .groupBy("date").count().collect())
            summary[fmt] = {str(r["date"]): r["count"] for r in counts}
        else:
            summary[fmt] = {}
        log.info("generate: %s -> %s: %d lines", fmt, path, sum(summary[fmt].values()))
    return summary


def drop_checksums(path: str) -> None:
    """Remove the Hadoop checksum files (.<name>.crc) Spark's local writer leaves beside the generated
    files: they are not raw data, and ingest would report every one as a skipped hidden file."""
    if "://" in path and not path.startswith("file:"):
        return
    local = path.removeprefix("file://").removeprefix("file:")
    for folder, _, names in os.walk(local):
        for name in names:
            if name.startswith(".") and name.endswith(".crc"):
                os.remove(os.path.join(folder, name))
