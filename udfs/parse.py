"""Raw records of each input format into one shape of columns, before any rule is applied.

Every field is parsed in one place and every format uses it: the user (`user`), a unix-seconds
timestamp (`unix_seconds`, bounded to what a timestamp can hold), a recording id
(udfs.identity.valid_mbid), a JSON object check (`json_object`) and the JSON fields' types
(`wrong_types`: a number or an object where text belongs is refused, never coerced). Listens (both formats) and feedback share them, so their rules cannot drift.

Output columns: parse_error (null, or the reason the record has no usable structure), user_id,
ts_raw (the timestamp as written), ts (parsed, UTC; null when unparsable), ts_number (a JSON
timestamp as a whole number, also when out of a timestamp's range), artist_mbid,
artist_name, recording_mbid, track_name; feedback adds `event`. Names are left as written;
udfs.text normalises them.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udfs.formats import LASTFM_TSV, LISTENBRAINZ_JSONL
from udfs.identity import valid_mbid
from udfs.quality import MALFORMED_JSON, WRONG_COLUMN_COUNT, WRONG_FIELD_TYPE

LASTFM_FIELDS = 6
LASTFM_TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss'Z'"

PARSED_COLUMNS = ("parse_error", "user_id", "ts_raw", "ts", "ts_number", "artist_mbid", "artist_name",
                  "recording_mbid", "track_name")
# Seconds of 0001-01-01 and 9999-12-31T23:59:59 UTC: what a Spark timestamp can hold.
MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799
TEXT, NUMBER_OR_TEXT, OBJECT = ("STRING",), ("STRING", "BIGINT", "INT", "DECIMAL", "DOUBLE"), ("OBJECT",)

_TRACK_METADATA = T.StructType([
    T.StructField("artist_name", T.StringType()),
    T.StructField("track_name", T.StringType()),
    T.StructField("additional_info", T.StructType([
        T.StructField("recording_mbid", T.StringType()),
        T.StructField("artist_mbids", T.ArrayType(T.StringType())),
    ])),
])


def _json_schema(time_field: str, *more: str) -> T.StructType:
    # The timestamp is read as text so that a missing value and an unparsable one can be told apart.
    return T.StructType([T.StructField("user_name", T.StringType()), T.StructField(time_field, T.StringType()),
                         *[T.StructField(name, T.StringType()) for name in more],
                         T.StructField("track_metadata", _TRACK_METADATA)])


def readable_text(value: Column) -> tuple[Column, Column]:
    """(raw, raw_base64) of a line read as text: raw is valid UTF-8 (invalid bytes replaced by U+FFFD,
    so every reader can read it); raw_base64 holds the original bytes when they were not UTF-8, else null."""
    valid = F.is_valid_utf8(value)
    return (F.when(valid, value).otherwise(F.make_valid_utf8(value)),
            F.when(~valid, F.base64(value.cast("binary"))))


def user(col: Column) -> Column:
    """The user id as logged, with any Unicode whitespace (tab, no-break space) trimmed and collapsed:
    every run of it made one space, then the spaces at either end trimmed (`trim` removes spaces only)."""
    return F.trim(F.regexp_replace(col, r"(?U)\s+", " "))


def logged_user(raw: Column, fmt: Column) -> Column:
    """Who logged a raw line, read leniently: the first tab-separated field of a TSV line whatever its
    column count, the user_name of a JSON line even when the line is malformed or truncated. For
    erasure (udfs.erasure): a user's broken lines are theirs too."""
    tsv = F.split(raw, "\t", 2).getItem(0)
    quoted = F.regexp_extract(raw, r'"user_name"\s*:\s*"((?:[^"\\]|\\.)*)"', 1)
    json = F.coalesce(F.get_json_object(raw, "$.user_name"), F.when(quoted != "", quoted))
    return user(F.when(fmt == LASTFM_TSV, tsv).otherwise(json))


def json_object(raw: Column, variant: Column) -> Column:
    """True when the line is one JSON object (not an array, a scalar or a broken text); `variant` is
    the line's try_parse_json."""
    return variant.isNotNull() & F.ltrim(raw).startswith("{")


def unix_seconds(ts_raw: Column) -> Column:
    """A timestamp from whole unix seconds written as text; null when not a whole number or beyond
    what a timestamp can hold (no overflow error: one bad value never stops the night)."""
    seconds = ts_raw.try_cast("long")
    return F.when(seconds.between(MIN_SECONDS, MAX_SECONDS), F.timestamp_seconds(seconds))


def wrong_types(variant: Column, fields: dict[str, tuple[str, ...]]) -> Column:
    """True when a JSON field present (and not null) has a type outside its allowed ones; `variant`
    is the line's try_parse_json. Each field's type (schema_of_variant: STRING, BIGINT,
    DECIMAL(3,1), OBJECT<...>) is read once and compared by its leading name, the text before any
    `<` or `(` (cut without a regular expression)."""
    bad = F.lit(False)
    for path, allowed in fields.items():
        schema = F.schema_of_variant(F.try_variant_get(variant, path, "variant"))
        kind = F.substring_index(F.substring_index(schema, "<", 1), "(", 1)
        bad = bad | ~F.coalesce(kind, F.lit("VOID")).isin("VOID", *allowed)
    return bad


def _track_fields(meta: Column) -> dict[str, Column]:
    info = meta["additional_info"]
    return {
        "artist_mbid": valid_mbid(info["artist_mbids"].getItem(0)),
        "artist_name": meta["artist_name"],
        "recording_mbid": valid_mbid(info["recording_mbid"]),
        "track_name": meta["track_name"],
    }


def _lastfm(fields: Column) -> dict[str, Column]:
    """The columns of a TSV line from its tab-separated `fields`."""
    ok = F.size(fields) == LASTFM_FIELDS

    def field(i: int) -> Column:
        return F.when(ok, fields.getItem(i))

    ts_raw = F.trim(field(1))
    return {
        "parse_error": F.when(~ok, F.lit(WRONG_COLUMN_COUNT)),
        "user_id": user(field(0)),
        "ts_raw": ts_raw,
        "ts": F.try_to_timestamp(ts_raw, F.lit(LASTFM_TS_FORMAT)),
        "ts_number": F.lit(None).cast("long"),
        "artist_mbid": valid_mbid(field(2)),
        "artist_name": field(3),
        "recording_mbid": valid_mbid(field(4)),
        "track_name": field(5),
    }


def _json_record(raw: Column, rec: Column, variant: Column, time_field: str, *more: str) -> dict[str, Column]:
    """The columns of a JSON line from the line, its from_json `rec` and its try_parse_json `variant`."""
    ts_raw = F.trim(rec[time_field])
    types = {"$.user_name": TEXT, f"$.{time_field}": NUMBER_OR_TEXT, "$.track_metadata": OBJECT,
             "$.track_metadata.artist_name": TEXT, "$.track_metadata.track_name": TEXT,
             "$.track_metadata.additional_info.recording_mbid": TEXT, **{f"$.{name}": TEXT for name in more}}
    return {
        "parse_error": F.when(~json_object(raw, variant), F.lit(MALFORMED_JSON))
                        .when(wrong_types(variant, types), F.lit(WRONG_FIELD_TYPE)),
        "user_id": user(rec["user_name"]),
        "ts_raw": ts_raw,
        "ts": unix_seconds(ts_raw),
        "ts_number": ts_raw.try_cast("long"),
        **_track_fields(rec["track_metadata"]),
    }


# Each line is split or parsed once, into these columns of a first projection; every parsed column
# reads them (Spark keeps the two projections apart, as these expressions are not cheap: written
# inline, each parsed column of the CASE below would parse the line again).
_FIELDS, _REC, _VARIANT = "_parse_fields", "_parse_rec", "_parse_variant"


def _staged(rows: DataFrame, **parsed: Column) -> DataFrame:
    return rows.select("*", *[expr.alias(name) for name, expr in parsed.items()])


def parse_records(bronze: DataFrame) -> DataFrame:
    """Bronze rows (with `format` and `raw`) plus the parsed columns, whatever their listen format.

    One pass over the rows: each line is split (TSV) or parsed (JSON) once, then each output column
    picks its format's expression.
    """
    raw, fmt = F.col("raw"), F.col("format")
    is_tsv, is_json = fmt == LASTFM_TSV, fmt == LISTENBRAINZ_JSONL
    staged = _staged(bronze, **{_FIELDS: F.when(is_tsv, F.split(raw, "\t", -1)),
                                _REC: F.when(is_json, F.from_json(raw, _json_schema("listened_at"))),
                                _VARIANT: F.when(is_json, F.try_parse_json(raw))})
    by_format = {LASTFM_TSV: _lastfm(F.col(_FIELDS)),
                 LISTENBRAINZ_JSONL: _json_record(raw, F.col(_REC), F.col(_VARIANT), "listened_at")}
    columns = []
    for name in PARSED_COLUMNS:
        expr = None
        for value, cols in by_format.items():
            expr = (F.when if expr is None else expr.when)(fmt == value, cols[name])
        columns.append(expr.alias(name))
    return staged.select(*[F.col(f"`{c}`") for c in bronze.columns], *columns)


def parse_feedback(lines: DataFrame) -> DataFrame:
    """Raw feedback lines (with `raw`) plus the parsed columns and `event`."""
    raw = F.col("raw")
    staged = _staged(lines, **{_REC: F.from_json(raw, _json_schema("timestamp", "event")),
                               _VARIANT: F.try_parse_json(raw)})
    rec = F.col(_REC)
    cols = _json_record(raw, rec, F.col(_VARIANT), "timestamp", "event") | {"event": F.lower(F.trim(rec["event"]))}
    return staged.select(*[F.col(f"`{c}`") for c in lines.columns], *[expr.alias(name) for name, expr in cols.items()])
