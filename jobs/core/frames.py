"""Cached DataFrames, released by one context manager whatever happens in between.

    with CacheScope() as cache:
        plays = cache(plays_of_the_window)        # persisted (memory and disk)
        ...                                       # every frame cached here is unpersisted on exit

`compressed=False` keeps the cached columns as they are, without Spark's compression
(spark.sql.inMemoryColumnarStorage.compressed, read when a frame is cached): a frame that is built once
and read once or twice costs less to cache uncompressed, because choosing and applying each column's
encoding is per-row work of its own (docs/performance.md, "Clean's cache kept lean").
"""
from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from jobs.core.session import sql_settings

COMPRESSED = "spark.sql.inMemoryColumnarStorage.compressed"


class CacheScope:
    def __init__(self, level: StorageLevel = StorageLevel.MEMORY_AND_DISK, compressed: bool | None = None):
        self.level = level
        self.compressed = compressed  # None: the session's setting
        self._frames: list[DataFrame] = []

    def __call__(self, frame: DataFrame) -> DataFrame:
        if self.compressed is None:
            cached = frame.persist(self.level)
        else:
            with sql_settings(frame.sparkSession, {COMPRESSED: str(self.compressed).lower()}):
                cached = frame.persist(self.level)
        self._frames.append(cached)
        return cached

    def release(self, frame: DataFrame) -> None:
        """Unpersist one frame early (it is no longer needed by the stage)."""
        frame.unpersist()
        self._frames = [f for f in self._frames if f is not frame]

    def __enter__(self) -> "CacheScope":
        return self

    def __exit__(self, *exc) -> None:
        for frame in reversed(self._frames):
            frame.unpersist()
        self._frames.clear()
