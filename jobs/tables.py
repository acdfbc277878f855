"""Every Delta table of the warehouse, declared once: name, layer, columns, partitioning.

Jobs import these objects and never retype a table name, a path or a column list. A table lives at
`<warehouse>/<layer>/<name>`; `io.write_*` helpers cast a DataFrame to the declared schema before
writing, so a column a stage forgets or misspells fails loudly instead of drifting the table.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from jobs.config import Config


@dataclass(frozen=True)
class Table:
    layer: str
    name: str
    schema: T.StructType
    partition_by: tuple[str, ...] = ()
    doc: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]

    def path(self, cfg: Config) -> str:
        return cfg.table_path(self.layer, self.name)


def _schema(*cols: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, dtype, True) for name, dtype in cols])


S, I, L, D, TS, DBL = T.StringType(), T.IntegerType(), T.LongType(), T.DateType(), T.TimestampType(), T.DoubleType()

BRONZE_LISTENS = Table(
    "bronze", "listens",
    _schema(
        ("ingest_date", D),      # the run date the file was ingested for
        ("format", S),           # lastfm-tsv | listenbrainz-jsonl
        ("source_file", S),      # absolute URI of the raw file
        ("line_number", L),      # 1-based line of the record in its file
        ("raw", S),              # the line exactly as read
        ("ingest_time", TS),
    ),
    partition_by=("ingest_date",),
    doc="Raw records, one per input line, with lineage. Append-only; a file ingested twice adds nothing.",
)

SILVER_PLAYS = Table(
    "silver", "plays",
    _schema(
        ("user_id", S), ("user_idx", I), ("track_id", S), ("track_idx", I),
        ("artist_name", S), ("track_name", S), ("recording_mbid", S), ("artist_mbid", S),
        ("ts", TS), ("play_date", D), ("session_id", L), ("session_position", I),
        ("format", S), ("source_file", S), ("line_number", L), ("ingest_date", D),
    ),
    partition_by=("ingest_date",),
    doc="Clean plays: deduplicated, names normalised, sessionised, with stable integer ids.",
)

SILVER_USERS = Table(
    "silver", "users",
    _schema(("user_id", S), ("user_idx", I), ("first_seen_date", D)),
    doc="Stable user ids: a user_idx once given never changes.",
)

SILVER_TRACKS = Table(
    "silver", "tracks",
    _schema(
        ("track_id", S), ("track_idx", I), ("artist_name", S), ("track_name", S),
        ("recording_mbid", S), ("artist_mbid", S), ("first_seen_date", D),
    ),
    doc="Stable track ids: a track_idx once given never changes; names as first seen.",
)

SILVER_QUARANTINE = Table(
    "silver", "quarantine",
    _schema(
        ("ingest_date", D), ("format", S), ("source_file", S), ("line_number", L),
        ("raw", S), ("reason", S),
    ),
    partition_by=("ingest_date",),
    doc="Every record the cleaner refused, with the reason.",
)

SILVER_CLEAN_RUNS = Table(
    "silver", "clean_runs",
    _schema(
        ("ingest_date", D), ("bronze_rows", L), ("plays", L), ("quarantined", L), ("duplicates", L),
        ("new_users", L), ("new_tracks", L),
        ("quarantine_reasons", T.MapType(S, L)), ("finished_at", TS),
    ),
    doc="One row per cleaned date: the reconciliation bronze_rows = plays + quarantined + duplicates. "
        "Written last, so its row is the marker that the date's clean committed.",
)

ALL_TABLES = (BRONZE_LISTENS, SILVER_PLAYS, SILVER_USERS, SILVER_TRACKS, SILVER_QUARANTINE, SILVER_CLEAN_RUNS)
