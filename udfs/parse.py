"""Raw records of each input format into one shape of columns, before any rule is applied.

Output columns: parse_error (null, or the reason the record has no usable structure), user_id,
ts_raw (the timestamp as written), ts (parsed, UTC; null when unparsable), artist_mbid,
artist_name, recording_mbid, track_name. Names are left as written; `udfs.text` normalises them.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udfs.identity import valid_mbid
from udfs.quality import MALFORMED_JSON, WRONG_COLUMN_COUNT

LASTFM_TSV = "lastfm-tsv"
LISTENBRAINZ_JSONL = "listenbrainz-jsonl"
LASTFM_FIELDS = 6
LASTFM_TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss'Z'"

PARSED_COLUMNS = ("parse_error", "user_id", "ts_raw", "ts", "artist_mbid", "artist_name",
                  "recording_mbid", "track_name")

_LISTEN_SCHEMA = T.StructType([
    T.StructField("user_name", T.StringType()),
    # Read as text so that a missing value and an unparsable one can be told apart.
    T.StructField("listened_at", T.StringType()),
    T.StructField("track_metadata", T.StructType([
        T.StructField("artist_name", T.StringType()),
        T.StructField("track_name", T.StringType()),
        T.StructField("additional_info", T.StructType([
            T.StructField("recording_mbid", T.StringType()),
            T.StructField("artist_mbids", T.ArrayType(T.StringType())),
        ])),
    ])),
])


def _lastfm(raw: Column) -> dict[str, Column]:
    fields = F.split(raw, "\t", -1)
    ok = F.size(fields) == LASTFM_FIELDS

    def field(i: int) -> Column:
        return F.when(ok, fields.getItem(i))

    ts_raw = F.trim(field(1))
    return {
        "parse_error": F.when(~ok, F.lit(WRONG_COLUMN_COUNT)),
        "user_id": field(0),
        "ts_raw": ts_raw,
        "ts": F.try_to_timestamp(ts_raw, F.lit(LASTFM_TS_FORMAT)),
        "artist_mbid": valid_mbid(field(2)),
        "artist_name": field(3),
        "recording_mbid": valid_mbid(field(4)),
        "track_name": field(5),
    }


def _listenbrainz(raw: Column) -> dict[str, Column]:
    is_object = F.try_parse_json(raw).isNotNull() & F.ltrim(raw).startswith("{")
    rec = F.from_json(raw, _LISTEN_SCHEMA)
    ts_raw = F.trim(rec["listened_at"])
    seconds = ts_raw.try_cast("long")
    meta = rec["track_metadata"]
    return {
        "parse_error": F.when(~is_object, F.lit(MALFORMED_JSON)),
        "user_id": rec["user_name"],
        "ts_raw": ts_raw,
        "ts": F.when(seconds.isNotNull(), F.timestamp_seconds(seconds)),
        "artist_mbid": valid_mbid(meta["additional_info"]["artist_mbids"].getItem(0)),
        "artist_name": meta["artist_name"],
        "recording_mbid": valid_mbid(meta["additional_info"]["recording_mbid"]),
        "track_name": meta["track_name"],
    }


PARSERS = {LASTFM_TSV: _lastfm, LISTENBRAINZ_JSONL: _listenbrainz}


def parse_records(bronze: DataFrame) -> DataFrame:
    """Bronze rows (with `format` and `raw`) plus the parsed columns, whatever their format.

    One pass over the rows: each output column picks its format's expression.
    """
    by_format = {fmt: parser(F.col("raw")) for fmt, parser in PARSERS.items()}
    columns = []
    for name in PARSED_COLUMNS:
        expr = None
        for fmt, cols in by_format.items():
            expr = (F.when if expr is None else expr.when)(F.col("format") == fmt, cols[name])
        columns.append(expr.alias(name))
    return bronze.select("*", *columns)
