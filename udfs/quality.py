"""The rules for refusing a record, and the reasons written to silver.quarantine, declared once.

A record is checked against the rules in the order of LISTEN_REASONS (feedback: FEEDBACK_REASONS);
the first it breaks is its reason. Listens and feedback share every rule but the event's.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column
from pyspark.sql import functions as F

from udfs.dates import utc_midnight
from udfs.formats import FEEDBACK_EVENTS

WRONG_COLUMN_COUNT = "wrong_column_count"      # a TSV line without exactly six fields
MALFORMED_JSON = "malformed_json"              # a JSON line that does not parse as an object
EMPTY_USER = "empty_user"
UNKNOWN_EVENT = "unknown_event"                # feedback whose event is not like, dislike or skip
MISSING_TIMESTAMP = "missing_timestamp"
UNPARSABLE_TIMESTAMP = "unparsable_timestamp"
TIMESTAMP_BEFORE_FLOOR = "timestamp_before_floor"
TIMESTAMP_AFTER_RUN_DATE = "timestamp_after_run_date"
MISSING_TRACK = "missing_track"                # neither a recording id nor a track name

LISTEN_REASONS = (WRONG_COLUMN_COUNT, MALFORMED_JSON, EMPTY_USER, MISSING_TIMESTAMP, UNPARSABLE_TIMESTAMP,
                  TIMESTAMP_BEFORE_FLOOR, TIMESTAMP_AFTER_RUN_DATE, MISSING_TRACK)
FEEDBACK_REASONS = (MALFORMED_JSON, EMPTY_USER, UNKNOWN_EVENT, MISSING_TIMESTAMP, UNPARSABLE_TIMESTAMP,
                    TIMESTAMP_BEFORE_FLOOR, TIMESTAMP_AFTER_RUN_DATE, MISSING_TRACK)


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def _rules(run_date: dt.date, ts_floor: dt.date) -> dict[str, Column]:
    """Each reason's condition over the parsed columns of udfs.parse (parse_error aside)."""
    return {
        EMPTY_USER: _blank(F.col("user_id")),
        UNKNOWN_EVENT: ~F.coalesce(F.col("event").isin(*FEEDBACK_EVENTS), F.lit(False)),
        MISSING_TIMESTAMP: _blank(F.col("ts_raw")),
        UNPARSABLE_TIMESTAMP: F.col("ts").isNull(),
        TIMESTAMP_BEFORE_FLOOR: F.col("ts") < utc_midnight(ts_floor),
        # A record belongs to the run's date or before it: anything stamped on or after the next
        # midnight UTC is from the future as far as this run knows.
        TIMESTAMP_AFTER_RUN_DATE: F.col("ts") >= utc_midnight(run_date + dt.timedelta(days=1)),
        MISSING_TRACK: F.col("recording_mbid").isNull() & _blank(F.col("track_name")),
    }


def quarantine_reason(run_date: dt.date, ts_floor: dt.date, reasons: tuple[str, ...] = LISTEN_REASONS) -> Column:
    """The first rule of `reasons` a parsed record breaks, or null for a good one.

    Expects the columns of udfs.parse: parse_error, user_id, ts_raw, ts, recording_mbid, track_name
    (and event, for feedback). A parse error (wrong column count, malformed JSON) comes first.
    """
    rules = _rules(run_date, ts_floor)
    expr = F.when(F.col("parse_error").isNotNull(), F.col("parse_error"))
    for reason in reasons:
        if reason in rules:
            expr = expr.when(rules[reason], F.lit(reason))
    return expr
