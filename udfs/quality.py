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

INVALID_ENCODING = "invalid_encoding"          # the line is not valid UTF-8 (its bytes are kept as base64)
WRONG_COLUMN_COUNT = "wrong_column_count"      # a TSV line without exactly six fields
MALFORMED_JSON = "malformed_json"              # a JSON line that does not parse as an object
WRONG_FIELD_TYPE = "wrong_field_type"          # a JSON number, object or list where text belongs (or the reverse)
EMPTY_USER = "empty_user"
UNKNOWN_EVENT = "unknown_event"                # feedback whose event is not like, dislike or skip
MISSING_TIMESTAMP = "missing_timestamp"
TIMESTAMP_IN_MILLISECONDS = "timestamp_in_milliseconds"  # unix milliseconds where seconds belong
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"        # a number no timestamp can hold (year < 1 or > 9999)
UNPARSABLE_TIMESTAMP = "unparsable_timestamp"
TIMESTAMP_BEFORE_FLOOR = "timestamp_before_floor"
TIMESTAMP_AFTER_RUN_DATE = "timestamp_after_run_date"
MISSING_TRACK = "missing_track"                # neither a recording id nor a track name

LISTEN_REASONS = (INVALID_ENCODING, WRONG_COLUMN_COUNT, MALFORMED_JSON, WRONG_FIELD_TYPE, EMPTY_USER,
                  MISSING_TIMESTAMP, TIMESTAMP_IN_MILLISECONDS, TIMESTAMP_OUT_OF_RANGE, UNPARSABLE_TIMESTAMP,
                  TIMESTAMP_BEFORE_FLOOR, TIMESTAMP_AFTER_RUN_DATE, MISSING_TRACK)
FEEDBACK_REASONS = (INVALID_ENCODING, MALFORMED_JSON, WRONG_FIELD_TYPE, EMPTY_USER, UNKNOWN_EVENT,
                    MISSING_TIMESTAMP, TIMESTAMP_IN_MILLISECONDS, TIMESTAMP_OUT_OF_RANGE, UNPARSABLE_TIMESTAMP,
                    TIMESTAMP_BEFORE_FLOOR, TIMESTAMP_AFTER_RUN_DATE, MISSING_TRACK)
PARSE_REASONS = (WRONG_COLUMN_COUNT, MALFORMED_JSON, WRONG_FIELD_TYPE)  # given by udfs.parse as parse_error


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def _epoch_seconds(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp())


def _rules(run_date: dt.date, ts_floor: dt.date) -> dict[str, Column]:
    """Each reason's condition over the parsed columns of udfs.parse."""
    floor_s, end_s = _epoch_seconds(ts_floor), _epoch_seconds(run_date + dt.timedelta(days=1))
    no_ts = F.col("ts").isNull() & F.col("ts_number").isNotNull()
    return {
        INVALID_ENCODING: F.col("raw_base64").isNotNull(),
        **{reason: F.col("parse_error") == reason for reason in PARSE_REASONS},
        EMPTY_USER: _blank(F.col("user_id")),
        UNKNOWN_EVENT: ~F.coalesce(F.col("event").isin(*FEEDBACK_EVENTS), F.lit(False)),
        MISSING_TIMESTAMP: _blank(F.col("ts_raw")),
        TIMESTAMP_IN_MILLISECONDS: no_ts & F.col("ts_number").between(floor_s * 1000, end_s * 1000 - 1),
        TIMESTAMP_OUT_OF_RANGE: no_ts,
        UNPARSABLE_TIMESTAMP: F.col("ts").isNull(),
        TIMESTAMP_BEFORE_FLOOR: F.col("ts") < utc_midnight(ts_floor),
        # A record belongs to the run's date or before it: anything stamped on or after the next
        # midnight UTC is from the future as far as this run knows.
        TIMESTAMP_AFTER_RUN_DATE: F.col("ts") >= utc_midnight(run_date + dt.timedelta(days=1)),
        MISSING_TRACK: F.col("recording_mbid").isNull() & _blank(F.col("track_name")),
    }


def quarantine_reason(run_date: dt.date, ts_floor: dt.date, reasons: tuple[str, ...] = LISTEN_REASONS) -> Column:
    """The first rule of `reasons` a parsed record breaks, or null for a good one.

    Expects raw_base64 (udfs.parse.readable_text) and the columns of udfs.parse: parse_error,
    user_id, ts_raw, ts, ts_number, recording_mbid, track_name (and event, for feedback).
    """
    rules = _rules(run_date, ts_floor)
    expr = None
    for reason in reasons:
        expr = (F.when if expr is None else expr.when)(rules[reason], F.lit(reason))
    return expr
