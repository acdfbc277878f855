"""The erasure record and its salt: which users were forgotten (silver.erasures holds a salted hash
of each id, never the id) and the filter that keeps them out of every later ingest and clean.

The salt is `erasure.salt` when the config sets one (e.g. `${SETLIST_ERASURE_SALT}` from a secret
store), else a random one kept at `<warehouse>/_erasure/salt`, created with the first erasure and
readable by the owner only.
"""
from __future__ import annotations

import os
import secrets

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config, join_path
from jobs.core.tables import SILVER_ERASURES
from models import storage
from udfs.erasure import user_hash


def salt(cfg: Config, create: bool = False) -> str | None:
    """The salt of the user hashes; None when there is none yet (and `create` is false)."""
    if cfg.erasure.salt:
        return cfg.erasure.salt
    path = join_path(cfg.warehouse, "_erasure", "salt")
    if storage.exists(path):
        return storage.read_bytes(path).decode("ascii").strip()
    if not create:
        return None
    value = secrets.token_hex(32)
    if "://" not in path:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value)
    else:
        storage.write_bytes(path, value.encode("ascii"))
    return value


def erased_hashes(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """(user_hash) of every erased user, or None when nobody was ever erased."""
    if not delta_io.exists(spark, cfg, SILVER_ERASURES):
        return None
    hashes = delta_io.read(spark, cfg, SILVER_ERASURES).select("user_hash").distinct()
    return None if hashes.isEmpty() else hashes


def erasure_filter(spark: SparkSession, cfg: Config) -> tuple[DataFrame, str] | None:
    """(the erased users' hashes, the salt), or None when nobody was ever erased."""
    hashes = erased_hashes(spark, cfg)
    key = salt(cfg)
    return None if hashes is None or key is None else (hashes, key)


ERASED = "_erased"  # mark_erased's column


def mark_erased(rows: DataFrame, user_column: str, erasure: tuple[DataFrame, str]) -> DataFrame:
    """`rows` with a boolean `_erased`: whether the user in `user_column` was erased; `erasure` is
    erasure_filter's answer (not None)."""
    hashes, key = erasure
    marked = rows.join(F.broadcast(hashes.withColumn("_hit", F.lit(True))),
                       user_hash(F.col(user_column), key) == F.col("user_hash"), "left").drop("user_hash")
    return marked.withColumn(ERASED, F.col("_hit").isNotNull()).drop("_hit")


def split_erased(rows: DataFrame, user_column: str, erasure: tuple[DataFrame, str] | None
                 ) -> tuple[DataFrame, DataFrame | None]:
    """(rows of users not erased, rows of erased users or None when nobody was ever erased);
    `erasure` is erasure_filter's answer."""
    if erasure is None:
        return rows, None
    marked = mark_erased(rows, user_column, erasure)
    return marked.where(~F.col(ERASED)).drop(ERASED), marked.where(F.col(ERASED)).drop(ERASED)
