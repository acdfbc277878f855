"""Dates and windows of plays, in UTC (the session time zone, see jobs.core.session)."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def utc_midnight(day: dt.date) -> Column:
    """Midnight starting `day`, as a timestamp."""
    return F.lit(f"{day.isoformat()} 00:00:00").cast("timestamp")


def plays_within(plays: DataFrame, day: dt.date, days: int) -> DataFrame:
    """Plays on or before `day`, limited to the last `days` days (0: all of them)."""
    kept = plays.where(F.col("play_date") <= F.lit(day))
    if days:
        kept = kept.where(F.col("play_date") > F.lit(day - dt.timedelta(days=days)))
    return kept
