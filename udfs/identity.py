"""A track's identity, decided here and nowhere else.

A track is its MusicBrainz recording id where the log carries a valid one, else the pair of its
normalised, case-folded artist and track names. `track_id` is that identity as a string: the
lower-case recording id, or `name:` and 32 hex digits of the pair's SHA-256.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from udfs.text import name_key, normalize_name

NAME_ID_PREFIX = "name:"
HEX_DIGITS = "0123456789abcdefABCDEF"
UUID_DASHES = (9, 14, 19, 24)  # 1-based positions of the dashes in 8-4-4-4-12 hex digits


def valid_mbid(col: Column) -> Column:
    """The MusicBrainz id in lower case, or null where the value is empty or not a UUID (8-4-4-4-12
    hex digits, spaces around it trimmed). Checked without a regular expression, which cost more per
    line than the rest of the check (docs/performance.md, "One cache of the night's lines"): 36
    characters, dashes where a UUID has them, and nothing but 4 dashes left once hex digits are removed."""
    trimmed = F.trim(col)
    uuid = (F.length(trimmed) == 36) & (F.translate(trimmed, HEX_DIGITS, "") == "----")
    for at in UUID_DASHES:
        uuid = uuid & (F.substring(trimmed, at, 1) == "-")
    return F.when(uuid, F.lower(trimmed))


def track_id(recording_mbid: Column, artist_name: Column, track_name: Column) -> Column:
    """Identity of a play's track from its (validated) recording id and normalised names."""
    pair = F.concat_ws("\u001f", name_key(artist_name), name_key(track_name))
    by_name = F.concat(F.lit(NAME_ID_PREFIX), F.substring(F.sha2(pair, 256), 1, 32))
    return F.coalesce(recording_mbid, by_name)


def with_track_id(records: DataFrame, unicode_form: str) -> DataFrame:
    """Records (recording_mbid, artist_name, track_name) with their names in display form
    (udfs.text, Unicode `unicode_form`) and the `track_id` those names and the recording id give."""
    named = records.withColumns({name: normalize_name(F.col(name), unicode_form)
                                 for name in ("artist_name", "track_name")})
    return named.withColumn("track_id", track_id(F.col("recording_mbid"), F.col("artist_name"), F.col("track_name")))
