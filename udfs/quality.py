"""The cleaner's rules for refusing a record, and the reasons it writes to silver.quarantine.

A record is checked against the rules in the order of REASONS; the first it breaks is its reason.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column
from pyspark.sql import functions as F

WRONG_COLUMN_COUNT = "wrong_column_count"      # a TSV line without exactly six fields
MALFORMED_JSON = "malformed_json"              # a JSON line that does not parse as an object
EMPTY_USER = "empty_user"
MISSING_TIMESTAMP = "missing_timestamp"
UNPARSABLE_TIMESTAMP = "unparsable_timestamp"
TIMESTAMP_BEFORE_FLOOR = "timestamp_before_floor"
TIMESTAMP_AFTER_RUN_DATE = "timestamp_after_run_date"
MISSING_TRACK = "missing_track"                # neither a recording id nor a track name

UNKNOWN_EVENT = "unknown_event"              # feedback whose event is not like, dislike or skip

# The reasons of listens; feedback adds UNKNOWN_EVENT (jobs.feedback).
REASONS = (WRONG_COLUMN_COUNT, MALFORMED_JSON, EMPTY_USER, MISSING_TIMESTAMP, UNPARSABLE_TIMESTAMP,
           TIMESTAMP_BEFORE_FLOOR, TIMESTAMP_AFTER_RUN_DATE, MISSING_TRACK)


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def utc_midnight(day: dt.date) -> Column:
    """Midnight starting `day`, as a timestamp in the session time zone (UTC, see jobs.session)."""
    return F.lit(f"{day.isoformat()} 00:00:00").cast("timestamp")


def quarantine_reason(run_date: dt.date, ts_floor: dt.date) -> Column:
    """The first rule a parsed record breaks, or null for a good one.

    Expects the columns of `udfs.parse`: parse_error, user_id, ts_raw, ts, recording_mbid, track_name.
    A play belongs to the run's date or before it: anything stamped on or after the next midnight UTC
    is from the future as far as this run knows.
    """
    next_midnight = utc_midnight(run_date + dt.timedelta(days=1))
    floor = utc_midnight(ts_floor)
    return (
        F.when(F.col("parse_error").isNotNull(), F.col("parse_error"))
        .when(_blank(F.col("user_id")), F.lit(EMPTY_USER))
        .when(_blank(F.col("ts_raw")), F.lit(MISSING_TIMESTAMP))
        .when(F.col("ts").isNull(), F.lit(UNPARSABLE_TIMESTAMP))
        .when(F.col("ts") < floor, F.lit(TIMESTAMP_BEFORE_FLOOR))
        .when(F.col("ts") >= next_midnight, F.lit(TIMESTAMP_AFTER_RUN_DATE))
        .when(F.col("recording_mbid").isNull() & _blank(F.col("track_name")), F.lit(MISSING_TRACK))
    )
