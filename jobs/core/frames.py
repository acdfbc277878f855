"""Cached DataFrames, released by one context manager whatever happens in between.

    with CacheScope() as cache:
        plays = cache(plays_of_the_window)        # persisted (memory and disk)
        ...                                       # every frame cached here is unpersisted on exit
"""
from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame


class CacheScope:
    def __init__(self, level: StorageLevel = StorageLevel.MEMORY_AND_DISK):
        self.level = level
        self._frames: list[DataFrame] = []

    def __call__(self, frame: DataFrame) -> DataFrame:
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
